#!/usr/bin/env python3
"""Runs the README's quick start as a newcomer would paste it, against a running Warung.

Every ```sh block of the README's "### Try it" section runs in one bash, in order, with
`set -euo pipefail`, `curl` failing on any HTTP error (--fail-with-body), and the README's
address (http://127.0.0.1:8080) replaced by BASE. Any failing command fails the check.

  readme_check.py README.md BASE
"""

import re
import subprocess
import sys

SECTION = "### Try it"
README_BASE = "http://127.0.0.1:8080"
PREAMBLE = """set -euo pipefail
curl() { command curl --silent --show-error --fail-with-body "$@"; }
"""


def blocks(text):
    """The ```sh blocks of the quick-start section, in order."""
    start = text.find(SECTION)
    if start < 0:
        raise ValueError(f"no '{SECTION}' section")
    rest = text[start + len(SECTION):]
    end = rest.find("\n## ")
    section = rest if end < 0 else rest[:end]
    found = re.findall(r"```sh\n(.*?)```", section, re.S)
    if not found:
        raise ValueError(f"no sh block under '{SECTION}'")
    return found


def script(text, base):
    return PREAMBLE + "\n".join(b.replace(README_BASE, base) for b in blocks(text))


def run(text, base, timeout=120):
    """(exit status, output) of the quick start against BASE."""
    done = subprocess.run(["bash", "-c", script(text, base)], capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def main():
    path, base = sys.argv[1], sys.argv[2].rstrip("/")
    with open(path) as f:
        text = f.read()
    status, output = run(text, base)
    if status != 0:
        print(output[-4000:], file=sys.stderr)
        print(f"readme: the quick start failed (exit {status}) against {base}", file=sys.stderr)
        return 1
    print(f"readme: the quick start ran as written ({len(blocks(text))} blocks, "
          f"{len(output.splitlines())} lines of output)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
