#!/usr/bin/env python3
"""The history checker of the fault campaign (#17): what the workload was told, against what
Warung kept. Counts, with Jepsen's names:

  lost-write             an acknowledged mutation without its audit row(s)
  duplicate              an event stored twice, or a mutation audited more than once
  nonmonotonic           a tenant's audit chain going back, repeating or skipping a link
  lost-mail              a mail Warung marked sent that never reached the SMTP sink
  duplicate-mail         one delivery received as two different mails
  double-run             one schedule slot of a job executed (succeeded) twice
  aborted-write-visible  a request answered 5xx, yet what it would have written exists

Prints each count and exits 1 when any is not zero. It also prints, without failing on it:

  repeated-mail          one delivery received more than once, each copy the same mail (same
                         Message-ID, subject, recipients and text): SMTP's at-least-once, when the
                         connection drops after the sink took the mail but before its answer
                         reached Warung; mail programs show such copies once

The history is JSON lines written by the workload, one per request it sent:

  {"tenant": "<uuid>", "request_id": "<the x-request-id Warung answered>", "status": 201,
   "actions": ["product.created"], "probe": {"table": "products", "column": "sku",
   "value": "SKU-1"}}

`actions` are the audit event types an acknowledged request must leave, once each; `probe` names a
row the request would create, looked up when it answered 5xx. A first line
{"meta": {"job_slots": {"audit.retention": 60}}} gives each job's schedule period in seconds.

  history.py --history FILE --db URL --mail-dir DIR [--since RFC3339]

The database URL is the compliance role's (it reads every tenant's rows and writes nothing).
"""

import argparse
import email
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime

COUNTS = ("lost-write", "duplicate", "nonmonotonic", "lost-mail", "duplicate-mail",
          "double-run", "aborted-write-visible")
# Reported, never failed on (see above).
NOTED = ("repeated-mail",)


# ---------------------------------------------------------------------------------------------
# The rules: pure functions over the history and the facts read from Warung.

def audit_findings(history, audit_rows):
    """`audit_rows`: (tenant, event_id, chain_seq, action, request_id) of every stored record of
    the history's tenants. Returns lost-write and duplicate findings."""
    by_request = defaultdict(Counter)
    events = Counter()
    for tenant, event_id, _seq, action, request_id in audit_rows:
        events[(tenant, event_id)] += 1
        if request_id:
            by_request[(tenant, request_id)][action] += 1
    findings = defaultdict(list)
    for (tenant, event_id), n in events.items():
        if n > 1:
            findings["duplicate"].append(f"event {event_id} of {tenant} stored {n} times")
    for entry in history:
        if not 200 <= entry.get("status", 0) < 300:
            continue
        stored = by_request.get((entry["tenant"], entry["request_id"]), Counter())
        for action in entry.get("actions", []):
            n = stored.get(action, 0)
            if n == 0:
                findings["lost-write"].append(
                    f"{action} of request {entry['request_id']} ({entry['status']}) has no audit row")
            elif n > 1:
                findings["duplicate"].append(
                    f"{action} of request {entry['request_id']} has {n} audit rows")
    return findings


def chain_findings(audit_rows, retired_runs):
    """Each tenant's chain must be 1, 2, 3, ... with no link twice; `retired_runs` are
    (tenant, first, last) runs that left with a dropped partition."""
    seqs = defaultdict(list)
    for tenant, _event, seq, _action, _request in audit_rows:
        seqs[tenant].append(seq)
    for tenant, first, last in retired_runs:
        seqs[tenant].extend(range(first, last + 1))
    findings = defaultdict(list)
    for tenant, values in seqs.items():
        counted = Counter(values)
        repeated = sorted(s for s, n in counted.items() if n > 1)
        if repeated:
            findings["nonmonotonic"].append(f"{tenant}: links {repeated[:5]} stored twice")
        present = sorted(counted)
        expected = list(range(1, present[-1] + 1)) if present else []
        missing = sorted(set(expected) - set(present))
        if missing:
            findings["nonmonotonic"].append(f"{tenant}: links {missing[:5]} missing")
    return findings


def mail_findings(sent_deliveries, received):
    """`sent_deliveries`: ids of deliveries Warung marked sent; `received`: (delivery id, content)
    of each mail in the sink, the id from its Message-ID and the content what a reader sees
    (subject, recipients, text), one per mail file."""
    copies = defaultdict(list)
    for delivery, content in received:
        copies[delivery].append(content)
    findings = defaultdict(list)
    for delivery in sent_deliveries:
        found = copies.get(delivery, [])
        if not found:
            findings["lost-mail"].append(f"delivery {delivery} marked sent, never received")
        elif len(set(found)) > 1:
            findings["duplicate-mail"].append(
                f"delivery {delivery} received as {len(set(found))} different mails")
        elif len(found) > 1:
            findings["repeated-mail"].append(
                f"delivery {delivery} received {len(found)} times, the same mail each time")
    return findings


def job_findings(runs, slots):
    """`runs`: (job, trigger, outcome, started_at as epoch seconds); `slots`: period in seconds
    per job. Two succeeded scheduled runs of one job in one period are a double run."""
    per_slot = Counter()
    for job, trigger, outcome, started in runs:
        period = slots.get(job)
        if trigger != "schedule" or outcome != "succeeded" or not period:
            continue
        per_slot[(job, int(started // period))] += 1
    findings = defaultdict(list)
    for (job, slot), n in per_slot.items():
        if n > 1:
            findings["double-run"].append(f"{job}: slot {slot} ran {n} times")
    return findings


def aborted_findings(history, probe_exists):
    """`probe_exists(probe) -> bool`: whether the row a 5xx request would have written exists."""
    findings = defaultdict(list)
    for entry in history:
        if entry.get("status", 0) >= 500 and entry.get("probe") and probe_exists(entry["probe"]):
            findings["aborted-write-visible"].append(
                f"request {entry['request_id']} answered {entry['status']} but left "
                f"{entry['probe']['table']}.{entry['probe']['column']}")
    return findings


def merge(*parts):
    merged = {name: [] for name in COUNTS + NOTED}
    for part in parts:
        for name, items in part.items():
            merged[name].extend(items)
    return merged


# ---------------------------------------------------------------------------------------------
# Reading Warung.

def psql(url, sql, *params):
    """Rows of `sql` as lists of text; parameters are passed as psql variables (quoted)."""
    args = ["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", url]
    for i, value in enumerate(params, 1):
        args += ["-v", f"p{i}={value}"]
    done = subprocess.run(args, input=sql, capture_output=True, text=True)
    if done.returncode != 0:
        # psql's own message, never the command line: it holds the URL and its password.
        raise SystemExit(f"history: a query failed: {done.stderr.strip()}")
    out = done.stdout
    return [line.split("\t") for line in out.splitlines() if line]


def read_history(path):
    meta, entries = {}, []
    with open(path) as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                if "meta" in item:
                    meta.update(item["meta"])
                else:
                    entries.append(item)
    return meta, entries


def mail_ids(directory):
    """(delivery id, content) of each mail in the sink. The content leaves out what a resend
    changes without changing the mail: the Date header and the MIME boundaries."""
    received = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".eml"):
            with open(os.path.join(directory, name), "rb") as f:
                message = email.message_from_binary_file(f)
            mid = (message.get("Message-ID") or "").strip("<> ")
            if mid:
                received.append((mid.split("@", 1)[0], mail_content(message)))
    return received


def mail_content(message):
    parts = [message.get("Subject", ""), message.get("To", ""), message.get("From", "")]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_payload(decode=True).decode(errors="replace"))
    return "\n".join(parts)


def check(history_path, db, mail_dir, since):
    meta, history = read_history(history_path)
    tenants = sorted({e["tenant"] for e in history if e.get("tenant")})
    array = "{" + ",".join(tenants) + "}"
    audit_rows = [(t, e, int(s), a, r or None) for t, e, s, a, r in psql(
        db, "select tenant_id, event_id, chain_seq, event_type, coalesce(request_id, '') "
            "from audit_events where tenant_id = any(:'p1'::uuid[])", array)]
    retired = [(t, int(a), int(b)) for t, a, b in psql(
        db, "select tenant_id, first_seq, last_seq from audit_retired_links "
            "where tenant_id = any(:'p1'::uuid[])", array)]
    sent = [row[0] for row in psql(
        db, "select id from notification_deliveries where status = 'sent' "
            "and tenant_id = any(:'p1'::uuid[])", array)]
    runs = [(j, t, o, float(s)) for j, t, o, s in psql(
        db, "select job, trigger, outcome, extract(epoch from started_at) from job_runs "
            "where started_at >= :'p1'::timestamptz", since)]

    def probe_exists(probe):
        rows = psql(db, f"select count(*) from {probe['table']} where {probe['column']} = :'p1'",
                    probe["value"])
        return int(rows[0][0]) > 0

    return merge(
        audit_findings(history, audit_rows),
        chain_findings(audit_rows, retired),
        mail_findings(sent, mail_ids(mail_dir)),
        job_findings(runs, meta.get("job_slots", {})),
        aborted_findings(history, probe_exists),
    )


def report(findings, out=sys.stdout):
    for name in COUNTS + NOTED:
        items = findings.get(name, [])
        print(f"{name:<22} {len(items)}", file=out)
        for item in items[:10]:
            print(f"    {item}", file=out)
    return 1 if any(findings.get(name) for name in COUNTS) else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--mail-dir", required=True)
    parser.add_argument("--since", default=datetime(1970, 1, 1).isoformat() + "Z",
                        help="only job runs started since (the campaign's start)")
    args = parser.parse_args()
    return report(check(args.history, args.db, args.mail_dir, args.since))


if __name__ == "__main__":
    sys.exit(main())
