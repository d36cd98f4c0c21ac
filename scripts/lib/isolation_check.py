#!/usr/bin/env python3
"""Proves that the test suite left the instance a person runs (`scripts/up`) alone.

The suite runs on a database of its own and under a Redis key prefix of its own
(`scripts/stack env --tests`). After it ran, this check reads every tenant the suite made
and fails if any of them is in the instance's database, or if any key under the instance's
Redis prefix names one of them. It also fails when the suite's database has no tenant (then
the check would prove nothing).

  isolation_check.py --instance-db URL --test-db URL --redis URL \\
      [--instance-prefix warung] [--test-prefix warung-test]

The URLs are the compliance role's (it reads every tenant's rows and writes nothing).
scripts/test first runs it with the suite's own database and prefix as the "instance": that
negative control must fail, or the check is blind.
"""

import argparse
import socket
import subprocess
import sys
from urllib.parse import urlparse


def psql(url, sql):
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
        check=True, capture_output=True, text=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def tenant_ids(url):
    """Every tenant's id; none in a database never migrated (an instance never started)."""
    if psql(url, "select to_regclass('public.tenants') is not null") != ["t"]:
        return set()
    return set(psql(url, "select id from tenants"))


def redis_keys(url, prefix):
    """Every key under `prefix:` (SCAN, so a large instance is not blocked)."""
    parsed = urlparse(url)
    sock = socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 10)
    reader = sock.makefile("rb")

    def command(*args):
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = str(arg).encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        sock.sendall(payload)
        return read()

    def read():
        line = reader.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode()}")
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = reader.read(size + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            return [read() for _ in range(int(rest))]
        raise RuntimeError(f"redis: unexpected reply {line!r}")

    database = (parsed.path or "/").strip("/")
    if database:
        command("SELECT", database)
    keys, cursor = [], "0"
    while True:
        cursor, batch = command("SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", 1000)
        keys.extend(batch)
        if cursor == "0":
            return keys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance-db", required=True)
    parser.add_argument("--test-db", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--instance-prefix", default="warung")
    parser.add_argument("--test-prefix", default="warung-test")
    args = parser.parse_args()

    problems = []
    made = tenant_ids(args.test_db)
    if not made:
        problems.append("the suite's database has no tenant: nothing to compare")
    leaked = made & tenant_ids(args.instance_db)
    if leaked:
        problems.append(f"{len(leaked)} of the suite's {len(made)} tenants are in the instance's database")
    simple = {t.replace("-", "") for t in made}
    named = [k for k in redis_keys(args.redis, args.instance_prefix)
             if any(t in k or s in k for t in made for s in simple)]
    if named:
        problems.append(f"{len(named)} keys under the instance's Redis prefix "
                        f"'{args.instance_prefix}:' name the suite's tenants")
    own = len(redis_keys(args.redis, args.test_prefix))
    for problem in problems:
        print(f"isolation: FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"isolation: ok, none of the suite's {len(made)} tenants is in the instance's database, "
          f"and no key under '{args.instance_prefix}:' names one "
          f"(the suite used {own} keys under '{args.test_prefix}:')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
