"""The README check fails a quick start that does not work (negative controls)."""

import http.server
import threading
import unittest

import readme_check


def readme(*blocks):
    body = "\n".join(f"```sh\n{b}\n```\n" for b in blocks)
    return f"# R\n\n### Try it\n\n{body}\n## Next\n\n```sh\nfalse\n```\n"


class Answers(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path == "/ok" else 404
        body = b'{"id": "abc"}' if status == 200 else b'{"code": "not_found"}'
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ReadmeCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.HTTPServer(("127.0.0.1", 0), Answers)
        cls.base = f"http://127.0.0.1:{cls.server.server_port}"
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()

    def test_a_working_quick_start_passes_and_only_its_section_runs(self):
        text = readme("id=$(curl -s http://127.0.0.1:8080/ok | jq -r .id)", 'test "$id" = abc')
        status, output = readme_check.run(text, self.base)
        self.assertEqual(status, 0, output)

    def test_an_http_error_fails_it(self):
        text = readme("curl -s http://127.0.0.1:8080/missing | jq .")
        status, _ = readme_check.run(text, self.base)
        self.assertNotEqual(status, 0)

    def test_a_failing_command_in_a_later_block_fails_it(self):
        text = readme("curl -s http://127.0.0.1:8080/ok", "false", "echo never")
        status, output = readme_check.run(text, self.base)
        self.assertNotEqual(status, 0)
        self.assertNotIn("never", output)

    def test_a_readme_without_the_section_is_refused(self):
        with self.assertRaises(ValueError):
            readme_check.blocks("# R\n\n## Other\n")


if __name__ == "__main__":
    unittest.main()
