"""The canary scanner's matchers (scripts/lib/canaries.py) on planted data: a canary in a log,
in metrics-like text, or in mail to someone else is found; a person's own mail may carry their
own data. The database scan and its positive control run against PostgreSQL in the campaign.
"""

import os
import tempfile
import unittest

import canaries as c

ANI = {"email": "ani.canary-7f3a@example.id", "phone": "+62 812 7733 0417",
       "nik": "3174055205900417", "name": "Ani Kenari 7f3a", "address": "Jl. Kenari No. 7f3a"}
BUDI = {"email": "budi.canary-9c1e@example.id", "phone": "+62 813 9911 2231",
        "nik": "3273011506880231", "name": "Budi Kenari 9c1e", "address": "Jl. Murai No. 9c1e"}


def mail(to, body):
    return (f"From: Warung <no-reply@warung.local>\r\nTo: {to}\r\nSubject: Receipt\r\n"
            f"Message-ID: <d1@warung.local>\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"\r\n{body}\r\n").encode()


class Matchers(unittest.TestCase):
    def test_each_needle_is_found_once_and_absent_ones_are_not(self):
        data = b"a Ani Kenari 7f3a b Ani Kenari 7f3a +62 812 7733 0417"
        self.assertEqual(c.hits_in(data, c.values(ANI)), ["+62 812 7733 0417", "Ani Kenari 7f3a"])
        self.assertEqual(c.hits_in(b"nothing here", c.values(ANI)), [])

    def test_a_log_line_with_a_nik_is_found(self):
        with tempfile.NamedTemporaryFile("wb", suffix=".log", delete=False) as f:
            f.write(b'{"level":"INFO","msg":"customer created"}\n'
                    b'{"level":"WARN","msg":"bad nik 3273011506880231"}\n')
        try:
            found = c.scan_files([f.name], c.values(ANI) + c.values(BUDI))
            self.assertEqual(list(found.values()), [["3273011506880231"]])
        finally:
            os.unlink(f.name)


class Mail(unittest.TestCase):
    def scan(self, *messages):
        with tempfile.TemporaryDirectory() as directory:
            for i, raw in enumerate(messages):
                with open(os.path.join(directory, f"{i}.eml"), "wb") as f:
                    f.write(raw)
            return c.scan_mail(directory, [ANI, BUDI])

    def test_a_persons_own_mail_may_carry_their_data(self):
        self.assertEqual(self.scan(mail(ANI["email"], f"Halo {ANI['name']}, {ANI['address']}")), {})

    def test_another_persons_data_in_a_mail_is_a_hit(self):
        found = self.scan(mail(ANI["email"], f"Halo {ANI['name']}, also {BUDI['phone']}"))
        self.assertEqual(list(found.values()), [[BUDI["phone"]]])

    def test_a_canary_in_mail_to_the_shop_owner_is_a_hit(self):
        found = self.scan(mail("owner@toko.id", f"New customer {ANI['email']}"))
        self.assertEqual(list(found.values()), [[ANI["email"]]])

    def test_mail_stored_before_the_campaign_is_left_out_and_later_mail_is_read(self):
        leak = mail("owner@toko.id", f"New customer {ANI['email']}")
        with tempfile.TemporaryDirectory() as directory:
            old, new = os.path.join(directory, "old.eml"), os.path.join(directory, "new.eml")
            for path in (old, new):
                with open(path, "wb") as f:
                    f.write(leak)
            os.utime(old, (1_000, 1_000))
            found = c.scan_mail(directory, [ANI, BUDI], since=2_000)
        self.assertEqual(list(found), ["mail new.eml"])


if __name__ == "__main__":
    unittest.main()
