#!/usr/bin/env python3
"""The seeded fault campaign (#17), run by scripts/chaos. Two Warung processes (each with the
relay, the workers and the job scheduler) serve a scripted workload of a shop's day while
faults are injected one after another, in an order and with durations drawn from the seed:

  broker-freeze   Tansu SIGSTOPped for 30 s        broker-kill   SIGKILL, then restarted
  vault-sealed    Vault answers 503 "sealed"       vault-down    Vault's link cut
  redis-down      Redis's link cut                 smtp-down     SMTP's link cut
  smtp-slow       SMTP 2 s per chunk               postgres-restart  every session dropped,
  warung-kill     one Warung SIGKILLed, restarted                    new ones refused
  link-latency    PostgreSQL and Redis 50 ms per chunk
  link-reset      PostgreSQL's and Redis's open connections reset

Then every fault is healed, the pipeline is given time to drain, and the history checker
(history.py) and the PII canary scan (canaries.py) judge what Warung kept. The campaign's own
broker is a Tansu of its own; the database is <stack database>_chaos; the Redis prefix is
warung-chaos; PostgreSQL, Redis, Vault and SMTP are the stack's, behind fault proxies.
"""

import argparse
import atexit
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import canaries
import history
from faultproxy import FaultProxy

KINDS = ("broker-freeze", "broker-kill", "vault-sealed", "vault-down", "redis-down", "smtp-down",
         "smtp-slow", "postgres-restart", "warung-kill", "link-latency", "link-reset")

# The audit records an acknowledged request of each kind must leave, once each (calibrated
# with `--calibrate` on a run without faults).
ACTIONS = {
    "product": ["product.created", "stock.moved"],
    "stock": ["stock.moved"],
    "customer": ["consent.granted", "customer.created", "pii.accessed"],
    "customer-update": ["customer.updated", "pii.accessed"],
    "consent-grant": ["consent.granted"],
    "consent-withdraw": ["consent.withdrawn"],
    # A change whose outcome was never answered: the state, and so the record, is unknown.
    "consent-unknown": [],
    "order": ["order.created", "stock.moved"],
    "payment": ["order.paid"],
    "refund": ["order.refunded", "stock.moved"],
    "export": ["privacy.request_filed"],
}


# Every process the campaign starts: stopped on any exit, an interrupted campaign included, so
# no Warung or broker of it lingers to act on the next campaign's database.
CHILDREN = []


def stop_children():
    for process in CHILDREN:
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGCONT)
                process.kill()
            except ProcessLookupError:
                pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(message):
    print(f"chaos: {message}", flush=True)


class Broker:
    def __init__(self, tansu, directory):
        self.tansu, self.directory, self.port = tansu, directory, free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        os.makedirs(directory, exist_ok=True)
        self.process = None
        self.start()
        for topic in ("warung.audit.v1", "warung.events.v1"):
            subprocess.run([tansu, "topic", "create", "--broker", self.url, "--partitions", "1",
                            topic], cwd="/", check=True, capture_output=True)

    def start(self):
        self.process = subprocess.Popen(
            [self.tansu, "broker", "--cluster-id", "chaos", "--listener-url", self.url,
             "--advertised-listener-url", self.url, "--storage-engine",
             f"sqlite://{self.directory}/tansu.db"],
            cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        CHILDREN.append(self.process)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("chaos: the campaign's broker did not start")

    def signal(self, sig):
        self.process.send_signal(sig)

    def kill(self):
        self.process.send_signal(signal.SIGCONT)
        self.process.kill()
        self.process.wait()

    def stop(self):
        self.kill()


class Warung:
    def __init__(self, name, binary, env, log_dir):
        self.name, self.binary = name, binary
        self.port, self.metrics_port = free_port(), free_port()
        self.env = dict(env, WARUNG_HTTP__BIND=f"127.0.0.1:{self.port}",
                        WARUNG_HTTP__METRICS_BIND=f"127.0.0.1:{self.metrics_port}")
        self.log = os.path.join(log_dir, f"warung-{name}.log")
        self.process = None
        self.start()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        log = open(self.log, "ab")
        self.process = subprocess.Popen([self.binary, "serve", "--modules", "all"], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        CHILDREN.append(self.process)
        for _ in range(300):
            try:
                urllib.request.urlopen(self.base + "/health/live", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit(f"chaos: warung {self.name} exited; see {self.log}")
                time.sleep(0.1)
        raise SystemExit(f"chaos: warung {self.name} did not start; see {self.log}")

    def kill(self):
        self.process.kill()
        self.process.wait()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


class Client:
    """Requests to either Warung; every answer (or its absence) goes into the history."""

    def __init__(self, warungs, history_file, rng):
        self.warungs, self.history, self.rng = warungs, history_file, rng
        self.lock = threading.Lock()
        self.tally = {"acknowledged": 0, "refused (4xx)": 0, "failed (5xx)": 0, "unanswered": 0}

    def call(self, method, path, body=None, token=None, headers=None, kind=None, tenant=None,
             probe=None):
        warung = self.rng.choice(self.warungs)
        request = urllib.request.Request(
            warung.base + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json", **(headers or {})})
        if token:
            request.add_header("authorization", f"Bearer {token}")
        status, answer, request_id = 0, None, None
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                status, request_id = response.status, response.headers.get("x-request-id")
                text = response.read()
                answer = json.loads(text) if text else None
        except urllib.error.HTTPError as err:
            status, request_id = err.code, err.headers.get("x-request-id")
            err.read()
        except OSError:
            pass  # no answer: the outcome is unknown, and nothing is owed
        with self.lock:
            self.tally["acknowledged" if 200 <= status < 300 else "refused (4xx)"
                       if 400 <= status < 500 else "failed (5xx)" if status >= 500
                       else "unanswered"] += 1
        if kind and tenant and request_id:
            line = {"kind": kind, "tenant": tenant, "request_id": request_id, "status": status,
                    "actions": ACTIONS.get(kind, []) if 200 <= status < 300 else []}
            if probe:
                line["probe"] = probe
            with self.lock:
                self.history.write(json.dumps(line) + "\n")
                self.history.flush()
        return status, answer


def verify_owner(client, address, within=60):
    """Follows the verification link mailed to the owner: until then the shop mails no
    customer (their receipts and confirmations wait), and the campaign checks mail too."""
    import email as mail_parser
    import email.policy
    import re
    directory = os.environ["STACK_MAIL_DIR"]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for name in sorted(os.listdir(directory), reverse=True):
            with open(os.path.join(directory, name), "rb") as f:
                message = mail_parser.message_from_binary_file(f, policy=email.policy.default)
            if address not in (message.get("To") or ""):
                continue
            text = "".join(part.get_content() for part in message.walk()
                           if part.get_content_type() == "text/plain")
            found = re.search(r"verify-email\?token=([A-Za-z0-9_.~-]+)", text)
            if found:
                status, _ = client.call("POST", "/api/v1/auth/verify-email",
                                        {"token": found.group(1)})
                if status in (200, 204):
                    return
        time.sleep(0.5)
    raise SystemExit(f"chaos: no verification mail for a shop owner within {within} s")


class Shop:
    def __init__(self, client, rng, canary=None):
        self.client, self.rng = client, rng
        tag = uuid.uuid4().hex[:10]
        self.slug, email = f"chaos-{tag}", f"owner.{tag}@example.id"
        password = f"kata-sandi-{tag}"
        for _ in range(30):
            status, answer = client.call("POST", "/api/v1/onboarding/merchants", {
                "business_name": f"Toko Chaos {tag}", "slug": self.slug, "locale": "id",
                "country": "ID",
                "owner": {"full_name": "Sari Dewi", "email": email, "password": password},
                "consents": [{"purpose": "account", "granted": True}]})
            if status in (201, 409):
                break
            time.sleep(1)
        for _ in range(30):
            status, answer = client.call("POST", "/api/v1/auth/login",
                                         {"tenant": self.slug, "email": email,
                                          "password": password})
            if status == 200:
                break
            time.sleep(1)
        self.token = answer["access_token"]
        verify_owner(client, email)
        self.tenant = json.loads(
            __import__("base64").urlsafe_b64decode(self.token.split(".")[1] + "==")).get("tid")
        self.products, self.customers, self.orders = [], [], []
        # Each customer's receipt_email consent as last acknowledged (None: unknown), and those
        # with an export filed (one each: a second one finds the first still open).
        self.receipts, self.exported = {}, set()
        self.canary = canary

    def do(self, kind, **kw):
        return self.client.call(token=self.token, tenant=self.tenant, kind=kind, **kw)

    def step(self):
        rng = self.rng
        choices = ["product"] * 2 + ["stock", "customer", "customer-update", "consent",
                                     "order", "order", "export"]
        kind = rng.choice(choices)
        if kind == "product" or not self.products:
            sku = f"CH-{uuid.uuid4().hex[:12]}"
            status, answer = self.do("product", method="POST", path="/api/v1/products",
                                     body={"name": "Kopi Susu", "sku": sku, "price_minor": 18000,
                                           "currency": "IDR", "stock": 10_000},
                                     probe={"table": "products", "column": "sku", "value": sku})
            if status == 201:
                self.products.append(answer["id"])
        elif kind == "stock":
            self.do("stock", method="POST",
                    path=f"/api/v1/products/{rng.choice(self.products)}/stock-adjustments",
                    body={"delta": rng.randint(1, 50)})
        elif kind == "customer" or not self.customers:
            person = self.canary if self.canary and not self.customers else None
            tag = uuid.uuid4().hex[:8]
            body = {"full_name": person["name"] if person else f"Pelanggan {tag}",
                    "email": person["email"] if person else f"p.{tag}@example.id",
                    "phone": person["phone"] if person else "+62 811 0000 0000",
                    "address": person["address"] if person else f"Jl. Melati {tag}",
                    "locale": "id", "consents": [{"purpose": "orders", "granted": True}]}
            status, answer = self.do("customer", method="POST", path="/api/v1/customers",
                                     body=body)
            if status == 201:
                self.customers.append(answer["id"])
                self.receipts[answer["id"]] = False
        elif kind == "customer-update":
            self.do("customer-update", method="PATCH",
                    path=f"/api/v1/customers/{rng.choice(self.customers)}",
                    body={"address": f"Jl. Mawar {uuid.uuid4().hex[:6]}"})
        elif kind == "consent":
            customer = rng.choice(self.customers)
            known = self.receipts.get(customer)
            grant = not known if known is not None else rng.random() < 0.5
            name = ("consent-unknown" if known is None
                    else "consent-grant" if grant else "consent-withdraw")
            status, _ = self.do(name, method="PUT", path=f"/api/v1/customers/{customer}/consents",
                                body={"consents": [{"purpose": "receipt_email", "granted": grant}]})
            self.receipts[customer] = grant if status == 200 else None
        elif kind == "export":
            fresh = [c for c in self.customers if c not in self.exported]
            if fresh:
                customer = rng.choice(fresh)
                self.exported.add(customer)
                self.do("export", method="POST", path="/api/v1/privacy/requests",
                        body={"type": "export", "subject": {"kind": "customer", "id": customer}})
        else:
            self.order()

    def order(self):
        rng = self.rng
        key = str(uuid.uuid4())
        status, answer = self.do("order", method="POST", path="/api/v1/orders",
                                 headers={"idempotency-key": key},
                                 body={"lines": [{"product_id": rng.choice(self.products),
                                                  "quantity": rng.randint(1, 3)}],
                                       "customer_id": rng.choice(self.customers)})
        if status != 201:
            return
        order = answer["id"]
        status, _ = self.do("payment", method="POST", path=f"/api/v1/orders/{order}/payments",
                            headers={"idempotency-key": str(uuid.uuid4())},
                            body={"method": "cash", "amount_minor": answer["total_minor"]})
        if status in (200, 201) and rng.random() < 0.3:
            self.do("refund", method="POST", path=f"/api/v1/orders/{order}/refunds",
                    headers={"idempotency-key": str(uuid.uuid4())}, body={"reason": "other"})


def schedule(rng, seconds):
    """(start offset, kind, duration) of each injection, one after another."""
    plan, at = [], 5.0
    while True:
        kind = rng.choice(KINDS)
        duration = 30.0 if kind == "broker-freeze" else round(rng.uniform(4, 15), 1)
        if at + duration > seconds:
            return plan
        plan.append((round(at, 1), kind, duration))
        at += duration + round(rng.uniform(2, 6), 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--state", required=True, type=os.path.abspath,
                        help="folder for logs, history and broker")
    parser.add_argument("--calibrate", action="store_true",
                        help="no faults; print the audit event types each kind of request left")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    seconds = args.minutes * 60
    plan = [] if args.calibrate else schedule(random.Random(seed), seconds)
    say(f"seed {seed}, {args.minutes:g} minutes, {len(plan)} injections "
        f"(replay: scripts/chaos --seed {seed} --minutes {args.minutes:g})")
    for at, kind, duration in plan:
        say(f"  at {at:>6.1f}s  {kind:<17} for {duration:g}s")

    env = dict(os.environ)
    os.makedirs(args.state, exist_ok=True)
    started_epoch = int(time.time())
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_epoch))

    def hostport(url):
        rest = url.split("@")[-1].split("/")[0] if "@" in url else url.split("//")[-1].split("/")[0]
        host, port = rest.rsplit(":", 1)
        return host, int(port)

    pg = FaultProxy(*hostport(env["WARUNG_DATABASE__APP_URL"]))
    redis = FaultProxy(*hostport(env["WARUNG_REDIS__URL"]))
    vault = FaultProxy(*hostport(env["WARUNG_VAULT__ADDR"]))
    smtp = FaultProxy("127.0.0.1", int(env.get("WARUNG_SMTP__PORT", "1025")))
    broker = Broker(env["STACK_TANSU_BIN"], os.path.join(args.state, "broker"))

    def through(url, proxy):
        host, port = hostport(url)
        return url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}", 1)

    warung_env = dict(env)
    for key in ("APP_URL", "SYSTEM_URL"):
        warung_env[f"WARUNG_DATABASE__{key}"] = through(env[f"WARUNG_DATABASE__{key}"], pg)
    warung_env.update({
        "WARUNG_REDIS__URL": through(env["WARUNG_REDIS__URL"], redis),
        "WARUNG_REDIS__KEY_PREFIX": "warung-chaos",
        "WARUNG_VAULT__ADDR": f"http://127.0.0.1:{vault.port}",
        "WARUNG_SMTP__PORT": str(smtp.port),
        "WARUNG_KAFKA__BROKERS": f"127.0.0.1:{broker.port}",
        "WARUNG_KAFKA__REBUILD_AFTER_MS": "20000",
        "WARUNG_OUTBOX__RELAY": "true", "WARUNG_JOBS__SCHEDULER": "true",
        "WARUNG_TELEMETRY__FORMAT": "json",
        "WARUNG_RATE_LIMIT__PER_IP_PER_SECOND": "100000", "WARUNG_RATE_LIMIT__PER_IP_BURST": "100000",
        "WARUNG_RATE_LIMIT__PUBLIC_WRITES_PER_IP_PER_HOUR": "100000000",
        "WARUNG_AUTH__MAX_FAILURES_PER_IP": "100000000",
        "WARUNG_AUTH__ACCESS_TTL_SECS": "3600",
        "WARUNG_NOTIFICATIONS__BACKOFF_BASE_MS": "500", "WARUNG_NOTIFICATIONS__BACKOFF_MAX_MS": "5000",
    })
    warungs = [Warung(name, args.binary, warung_env, args.state) for name in ("a", "b")]
    history_path = os.path.join(args.state, "history.jsonl")
    people = [
        {"email": f"ani.{seed}.canary@example.id", "phone": f"+62 812 {seed % 10000:04d} 7301",
         "nik": "3174055205900417", "name": f"Ani Kenari {seed}",
         "address": f"Jl. Kenari No. {seed}, NIK 3174055205900417"},
        {"email": f"budi.{seed}.canary@example.id", "phone": f"+62 813 {seed % 10000:04d} 9922",
         "nik": "3273011506880231", "name": f"Budi Murai {seed}",
         "address": f"Jl. Murai No. {seed}, NIK 3273011506880231"},
    ]
    canary_path = os.path.join(args.state, "canaries.json")
    with open(canary_path, "w") as f:
        json.dump(people, f)

    slots = {}
    listing = subprocess.run([args.binary, "jobs", "list"], env=warung_env, capture_output=True,
                             text=True).stdout
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) >= 7:
            sec, minute, hour = parts[1:4]
            slots[parts[0]] = (60 if minute == "*" else 600 if minute == "*/10"
                               else 3600 if hour == "*" else 86400)

    with open(history_path, "w") as history_file:
        history_file.write(json.dumps({"meta": {"job_slots": slots, "seed": seed}}) + "\n")
        client = Client(warungs, history_file, random.Random(seed + 1))
        shops = [Shop(client, random.Random(seed + 2 + i), canary=people[i]) for i in range(2)]
        stop = threading.Event()

        def workload(shop):
            while not stop.is_set():
                try:
                    shop.step()
                except (KeyError, TypeError, ValueError) as err:
                    say(f"workload: {err!r}")
                time.sleep(0.05)

        threads = [threading.Thread(target=workload, args=(s,), daemon=True) for s in shops]
        for t in threads:
            t.start()
        begin = time.monotonic()
        injected = []
        for at, kind, duration in plan:
            time.sleep(max(0.0, begin + at - time.monotonic()))
            say(f"{time.monotonic() - begin:6.1f}s inject {kind} ({duration:g}s)")
            victim = None
            if kind == "broker-freeze":
                broker.signal(signal.SIGSTOP)
            elif kind == "broker-kill":
                broker.kill()
            elif kind == "vault-sealed":
                vault.set("sealed")
            elif kind == "vault-down":
                vault.set("cut")
            elif kind == "redis-down":
                redis.set("cut")
            elif kind == "smtp-down":
                smtp.set("cut")
            elif kind == "smtp-slow":
                smtp.set("latency", 2.0)
            elif kind == "postgres-restart":
                pg.set("cut")
            elif kind == "warung-kill":
                victim = rng.choice(warungs)
                victim.kill()
            elif kind == "link-latency":
                pg.set("latency", 0.05)
                redis.set("latency", 0.05)
            elif kind == "link-reset":
                pg.set("reset")
                redis.set("reset")
            time.sleep(duration if kind != "link-reset" else 0.5)
            if kind == "broker-freeze":
                broker.signal(signal.SIGCONT)
            elif kind == "broker-kill":
                broker.start()
            elif kind == "warung-kill":
                victim.start()
            for proxy in (pg, redis, vault, smtp):
                proxy.set("ok")
            injected.append(kind)
        time.sleep(max(0.0, begin + seconds - time.monotonic()))
        stop.set()
        for t in threads:
            t.join(30)

    say("requests: " + ", ".join(f"{n} {what}" for what, n in client.tally.items()))
    say(f"workload stopped; {len(injected)} injections "
        f"({', '.join(f'{k} {injected.count(k)}' for k in KINDS if k in injected)}); draining")
    db = env["WARUNG_DATABASE__COMPLIANCE_URL"]
    # Done when the outbox is sent, every audit record it sent is stored (a sink rebuilding its
    # consumer takes two quiet spells and a group join), and no mail is due. Mail deferred on
    # purpose (one consent confirmation per person per hour, quotas) is not waited for: the
    # checker counts only what was marked sent. What never drains is for the checker to count.
    drained = ("select (select count(*) from outbox where published_at is null)"
               " + (select count(*) from outbox o where o.topic = 'warung.audit.v1'"
               "    and not exists (select 1 from audit_events a"
               "                    where a.tenant_id = o.tenant_id and a.event_id = o.event_id))"
               " + (select count(*) from notification_deliveries"
               "    where status in ('pending', 'sending')"
               "      and next_attempt_at < now() + interval '30 seconds')")
    waited = time.monotonic()
    while time.monotonic() - waited < 240:
        if int(history.psql(db, drained)[0][0]) == 0:
            break
        time.sleep(1)
    say(f"drained in {time.monotonic() - waited:.0f}s")

    if args.calibrate:
        rows = history.psql(db, "select request_id, event_type from audit_events "
                                "where request_id is not null")
        by_request = {}
        for request_id, event in rows:
            by_request.setdefault(request_id, []).append(event)
        _, entries = history.read_history(history_path)
        seen = {}
        for entry in entries:
            if 200 <= entry["status"] < 300:
                events = tuple(sorted(by_request.get(entry["request_id"], [])))
                seen.setdefault(entry["kind"], set()).add(events)
        for kind, variants in sorted(seen.items()):
            say(f"calibrate {kind}: {sorted(variants)}")

    print("\nhistory", flush=True)
    failed = history.report(history.check(history_path, db, env["STACK_MAIL_DIR"], started_at))
    print("\nPII canaries", flush=True)
    metrics = [f"http://127.0.0.1:{w.metrics_port}/metrics" for w in warungs]
    found = canaries.scan_database(db, sorted({v for p in people for v in canaries.values(p)}))
    canaries.positive_control(db, env["WARUNG_DATABASE__MIGRATE_URL"])
    needles = sorted({v for p in people for v in canaries.values(p)})
    found.update(canaries.scan_topics(f"127.0.0.1:{broker.port}",
                                      ["warung.audit.v1", "warung.events.v1"], needles))
    found.update(canaries.scan_files([w.log for w in warungs], needles))
    for url in metrics:
        found.update({f"{k} {url}": v for k, v in canaries.scan_metrics(url, needles).items()})
    found.update(canaries.scan_mail(env["STACK_MAIL_DIR"], people, since=started_epoch))
    for place, hits in sorted(found.items()):
        print(f"canaries: FAIL {place}: {len(hits)} value(s)", flush=True)
    if not found:
        print(f"canaries: 0 hits for {len(needles)} values in the database, both topics, "
              f"the logs, /metrics and other people's mail", flush=True)
    for w in warungs:
        w.stop()
    broker.stop()
    say(f"seed {seed}: {'FAILED' if failed or found else 'passed'}")
    return 1 if failed or found else 0


if __name__ == "__main__":
    atexit.register(stop_children)
    # SIGTERM (a killed campaign) exits through atexit like any other end.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
