#!/usr/bin/env python3
"""PII canaries (#17): unique personal data a campaign seeds through the API (an email, a phone,
a NIK, a name, an address) must never appear in plaintext anywhere Warung writes: any database
column (text, JSON, and bytea read as bytes), the Kafka topics, Warung's logs, `/metrics`, or a
mail to anyone but that person. Prints each place with hits and exits 1 on any.

Every scan first proves itself: it writes a control canary into a scratch table (text and
bytea) as the schema owner, and fails unless the database scan finds it in both columns.

  canaries.py --canaries FILE --db URL --owner-db URL [--brokers HOST:PORT]
      [--topic T ...] [--log FILE ...] [--metrics URL] [--mail-dir DIR]

FILE is JSON: [{"email": "...", "phone": "...", "nik": "...", "name": "...",
"address": "..."}, ...]; every value of a person is a canary, and mail to that person's email
may carry their own data. --db is the compliance role's URL (reads every row, writes nothing).
"""

import argparse
import email
import email.policy
import json
import os
import secrets
import subprocess
import sys
import urllib.request

FIELDS = ("email", "phone", "nik", "name", "address")


def values(person):
    return [person[f] for f in FIELDS if person.get(f)]


def hits_in(data, needles):
    """The needles found in `data` (bytes), each once."""
    return sorted({n for n in needles if n.encode() in data})


def psql(url, sql):
    done = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", url],
                          input=sql, capture_output=True, text=True)
    if done.returncode != 0:
        # psql's message only: the command line holds the URL and its password.
        raise SystemExit(f"canaries: a query failed: {done.stderr.strip()}")
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def literal(text):
    return "'" + text.replace("'", "''") + "'"


def columns(url):
    """(table, column, type) of every ordinary or partitioned table's text-like column."""
    return psql(url, """
        select c.relname, a.attname, t.typname
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        join pg_type t on t.oid = a.atttypid
        where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
          and t.typname in ('text', 'varchar', 'bpchar', 'json', 'jsonb', 'bytea', 'citext')
        order by 1, 2""")


def scan_database(url, needles):
    """{"table.column": [needles found]} over every text-like column."""
    parts = []
    for table, column, kind in columns(url):
        for needle in needles:
            if kind == "bytea":
                test = f'position(convert_to({literal(needle)}, \'UTF8\') in "{column}") > 0'
            else:
                test = f'strpos("{column}"::text, {literal(needle)}) > 0'
            parts.append(f"select {literal(table + '.' + column)}, {literal(needle)} "
                         f'where exists (select 1 from "{table}" where {test})')
    found = {}
    for i in range(0, len(parts), 400):
        for place, needle in psql(url, "\nunion all\n".join(parts[i:i + 400]) + ";"):
            found.setdefault(place, []).append(needle)
    return found


def positive_control(db, owner_db):
    """A control canary written on purpose must be found, as text and as bytes."""
    control = f"canary-control-{secrets.token_hex(8)}"
    table = f"canary_control_{secrets.token_hex(4)}"
    psql(owner_db, f"create table {table} (note text, blob bytea);"
                   f"insert into {table} values ('x {control} y', convert_to('<{control}>', 'UTF8'));"
                   f"grant select on {table} to warung_compliance;")
    try:
        found = scan_database(db, [control])
    finally:
        psql(owner_db, f"drop table if exists {table};")
    want = {f"{table}.note", f"{table}.blob"}
    if set(found) != want:
        raise SystemExit(f"canaries: the positive control was not found as written "
                         f"(found {sorted(found)}, wanted {sorted(want)}): the scan is blind")


def scan_topics(brokers, topics, needles):
    from kafka import KafkaConsumer, TopicPartition  # the stack venv has kafka-python
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    found = {}
    for topic in topics:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            continue
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(p) < ends[p] for p in partitions):
            batch = consumer.poll(timeout_ms=2000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    for needle in hits_in((record.key or b"") + b"\0" + (record.value or b""),
                                          needles):
                        found.setdefault(f"kafka {topic}", []).append(needle)
    consumer.close()
    return {place: sorted(set(n)) for place, n in found.items()}


def scan_mail(directory, people, since=None):
    """Mail to anyone must not carry another person's data; a person's own mail may. With
    `since` (epoch seconds), only mail the sink stored from then on: the sink's folder is shared
    by every run, and another campaign's people may share a canary value (the NIKs)."""
    found = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".eml"):
            continue
        if since is not None and os.path.getmtime(os.path.join(directory, name)) < since:
            continue
        with open(os.path.join(directory, name), "rb") as f:
            raw = f.read()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        to = (message.get("To") or "").lower()
        parts = [raw] + [p.get_content().encode() for p in message.walk()
                         if p.get_content_maintype() == "text"]
        text = b"\n".join(parts)
        for person in people:
            if person.get("email", "").lower() in to:
                continue
            for needle in hits_in(text, values(person)):
                found.setdefault(f"mail {name}", []).append(needle)
    return found


def scan_files(paths, needles):
    found = {}
    for path in paths:
        with open(path, "rb") as f:
            for needle in hits_in(f.read(), needles):
                found.setdefault(f"log {path}", []).append(needle)
    return found


def scan_metrics(url, needles):
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    hits = hits_in(body, needles)
    return {"metrics": hits} if hits else {}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--owner-db", required=True)
    parser.add_argument("--brokers")
    parser.add_argument("--topic", action="append", default=[])
    parser.add_argument("--log", action="append", default=[])
    parser.add_argument("--metrics")
    parser.add_argument("--mail-dir")
    args = parser.parse_args()

    with open(args.canaries) as f:
        people = json.load(f)
    needles = sorted({v for person in people for v in values(person)})
    positive_control(args.db, args.owner_db)
    found = scan_database(args.db, needles)
    if args.brokers and args.topic:
        found.update(scan_topics(args.brokers, args.topic, needles))
    found.update(scan_files(args.log, needles))
    if args.metrics:
        found.update(scan_metrics(args.metrics, needles))
    if args.mail_dir:
        found.update(scan_mail(args.mail_dir, people))
    places = ["database", "kafka" if args.topic else None, "logs" if args.log else None,
              "metrics" if args.metrics else None, "mail" if args.mail_dir else None]
    scanned = ", ".join(p for p in places if p)
    if found:
        # The places, never the values: a canary stands for someone's data.
        for place, hits in sorted(found.items()):
            kinds = sorted({f for person in people for f in FIELDS if person.get(f) in hits})
            print(f"canaries: FAIL {place}: {', '.join(kinds)} in plaintext", file=sys.stderr)
        return 1
    print(f"canaries: ok, {len(needles)} values of {len(people)} people, 0 hits in {scanned} "
          f"(the positive control was found)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
