"""Negative controls of the history checker (scripts/lib/history.py): histories with a planted
loss, duplicate, gap, lost and repeated mail, double run and visible aborted write must each be
reported under their own name, and a clean history must pass. Run by scripts/test:

  python3 -m unittest discover -s scripts/lib -p 'test_*.py'
"""

import io
import unittest

import history as h

T = "01a20000-0000-7000-8000-000000000001"


def ok(request_id, *actions, status=201):
    return {"tenant": T, "request_id": request_id, "status": status, "actions": list(actions)}


def row(seq, action, request_id, event=None):
    return (T, event or f"e{seq}", seq, action, request_id)


CLEAN_HISTORY = [ok("r1", "product.created"), ok("r2", "order.created", "payment.recorded")]
CLEAN_ROWS = [row(1, "product.created", "r1"), row(2, "order.created", "r2"),
              row(3, "payment.recorded", "r2")]


def counts(findings):
    return {name: len(items) for name, items in findings.items() if items}


class Audit(unittest.TestCase):
    def test_a_clean_history_has_nothing_to_report(self):
        findings = h.merge(h.audit_findings(CLEAN_HISTORY, CLEAN_ROWS),
                           h.chain_findings(CLEAN_ROWS, []))
        self.assertEqual(counts(findings), {})
        out = io.StringIO()
        self.assertEqual(h.report(findings, out), 0)
        self.assertIn("lost-write             0", out.getvalue())

    def test_an_acknowledged_change_without_its_row_is_a_lost_write(self):
        rows = [r for r in CLEAN_ROWS if r[3] != "payment.recorded"]
        findings = h.audit_findings(CLEAN_HISTORY, rows)
        self.assertEqual(counts(findings), {"lost-write": 1})
        self.assertIn("payment.recorded of request r2", findings["lost-write"][0])

    def test_a_refused_request_owes_no_row(self):
        findings = h.audit_findings([ok("r9", "product.created", status=503)], [])
        self.assertEqual(counts(findings), {})

    def test_an_event_stored_twice_and_a_change_audited_twice_are_duplicates(self):
        rows = CLEAN_ROWS + [row(4, "product.created", "r1", event="e1")]
        findings = h.audit_findings(CLEAN_HISTORY, rows)
        self.assertEqual(counts(findings), {"duplicate": 2})

    def test_a_gap_and_a_repeated_link_are_nonmonotonic(self):
        gap = [row(1, "a", "r1"), row(2, "b", "r2"), row(4, "c", "r3")]
        self.assertEqual(counts(h.chain_findings(gap, [])), {"nonmonotonic": 1})
        self.assertIn("[3] missing", h.chain_findings(gap, [])["nonmonotonic"][0])
        repeated = [row(1, "a", "r1"), row(2, "b", "r2"), row(2, "c", "r3", event="x")]
        self.assertEqual(counts(h.chain_findings(repeated, [])), {"nonmonotonic": 1})

    def test_links_that_left_with_a_retired_partition_are_not_a_gap(self):
        rows = [row(5, "a", "r1"), row(6, "b", "r2")]
        self.assertEqual(counts(h.chain_findings(rows, [(T, 1, 4)])), {})
        self.assertEqual(counts(h.chain_findings(rows, [(T, 2, 4)])), {"nonmonotonic": 1})


class Mail(unittest.TestCase):
    def test_sent_but_never_received_is_lost_and_received_as_two_mails_is_a_duplicate(self):
        received = [("d1", "receipt"), ("d3", "receipt"), ("d3", "another receipt"),
                    ("other", "x")]
        findings = h.mail_findings(["d1", "d2", "d3"], received)
        self.assertEqual(counts(findings), {"lost-mail": 1, "duplicate-mail": 1})
        self.assertIn("d2", findings["lost-mail"][0])
        self.assertIn("d3", findings["duplicate-mail"][0])

    def test_the_same_mail_received_twice_is_noted_as_repeated_and_does_not_fail(self):
        findings = h.mail_findings(["d1"], [("d1", "receipt"), ("d1", "receipt")])
        self.assertEqual(counts(findings), {"repeated-mail": 1})
        out = io.StringIO()
        self.assertEqual(h.report(h.merge(findings), out), 0)
        self.assertIn("repeated-mail          1", out.getvalue())

    def test_a_resend_differs_only_in_date_and_boundary_and_reads_as_the_same_mail(self):
        import os
        import tempfile

        def mime(date, boundary, text):
            return (f"Message-ID: <d1@shop.example>\r\nDate: {date}\r\nSubject: Receipt\r\n"
                    f"To: a@example.com\r\nMIME-Version: 1.0\r\n"
                    f"Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
                    f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
                    f"--{boundary}--\r\n")
        with tempfile.TemporaryDirectory() as sink:
            for name, body in [("1.eml", mime("Mon, 1 Dec 2026 10:00:00 +0000", "aaa", "Total 5")),
                               ("2.eml", mime("Mon, 1 Dec 2026 10:00:09 +0000", "bbb", "Total 5")),
                               ("3.eml", mime("Mon, 1 Dec 2026 10:00:09 +0000", "ccc", "Total 6"))]:
                with open(os.path.join(sink, name), "w") as f:
                    f.write(body)
            received = h.mail_ids(sink)
        self.assertEqual(received[0], received[1])
        self.assertNotEqual(received[0], received[2])


class Jobs(unittest.TestCase):
    def test_two_scheduled_successes_in_one_slot_are_a_double_run(self):
        runs = [("audit.retention", "schedule", "succeeded", 120.0),
                ("audit.retention", "schedule", "succeeded", 150.0),
                ("audit.retention", "schedule", "succeeded", 185.0),
                ("audit.retention", "manual", "succeeded", 130.0),
                ("audit.retention", "schedule", "fenced", 140.0)]
        findings = h.job_findings(runs, {"audit.retention": 60})
        self.assertEqual(counts(findings), {"double-run": 1})
        self.assertEqual(counts(h.job_findings(runs[1:], {"audit.retention": 60})), {})


class Aborted(unittest.TestCase):
    def test_a_row_left_by_a_request_that_answered_503_is_visible(self):
        probe = {"table": "products", "column": "sku", "value": "SKU-1"}
        refused = dict(ok("r5", "product.created", status=503), probe=probe)
        self.assertEqual(counts(h.aborted_findings([refused], lambda p: True)),
                         {"aborted-write-visible": 1})
        self.assertEqual(counts(h.aborted_findings([refused], lambda p: False)), {})
        accepted = dict(ok("r6", "product.created"), probe=probe)
        self.assertEqual(counts(h.aborted_findings([accepted], lambda p: True)), {})


if __name__ == "__main__":
    unittest.main()
