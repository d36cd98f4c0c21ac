#!/usr/bin/env python3
"""Keeps docs/API.md's error table and README's settings table true to the code (#22).

Every error code the code can answer with must be in a row of docs/API.md's error table that
has its status:
  - codes given at a call site: `Error::bad_request("code", ..)` (400),
    `Error::conflict("code", ..)` (409), `Error::unprocessable("code", ..)` (422);
  - the fixed codes of `platform::Error` (`fn code`), with the status `fn status` gives their
    variant; a dependency's 503 codes (`Dependency::unavailable_code`).
It also fails on a code the table lists that the code no longer has.

Every setting with a built-in default (`defaults()` in platform/src/config.rs) must be in
README's configuration table, as `WARUNG_SECTION__KEY` or as `__KEY` in a row of its section.

  docs_check.py [ROOT]
"""

import json
import os
import re
import sys

STATUS = {
    "BAD_REQUEST": 400, "UNAUTHORIZED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405, "CONFLICT": 409, "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415, "UNPROCESSABLE_ENTITY": 422, "TOO_MANY_REQUESTS": 429,
    "INTERNAL_SERVER_ERROR": 500, "SERVICE_UNAVAILABLE": 503,
}
CONSTRUCTORS = {"bad_request": 400, "conflict": 409, "unprocessable": 422}
CALL = re.compile(r"\b(bad_request|conflict|unprocessable)\(\s*\"([a-z_]+)\"")


def function_body(source, name):
    start = source.index(f"fn {name}(")
    depth, i = 0, source.index("{", start)
    for j in range(i, len(source)):
        depth += {"{": 1, "}": -1}.get(source[j], 0)
        if depth == 0:
            return source[i:j]
    raise ValueError(f"fn {name} never ends")


def arms(body):
    """(variant names, right-hand side) of each `Self::A | Self::B => x` match arm."""
    for left, right in re.findall(r"((?:\|?\s*Self::\w+[^=]*?)+)=>\s*([^,\n]+)", body):
        yield re.findall(r"Self::(\w+)", left), right.strip()


def fixed_codes(error_rs, health_rs):
    """{code: status} of platform::Error's own codes."""
    status_of = {}
    for variants, right in arms(function_body(error_rs, "status")):
        name = right.removeprefix("StatusCode::")
        for variant in variants:
            status_of[variant] = STATUS[name]
    codes = {}
    for variants, right in arms(function_body(error_rs, "code")):
        literal = re.fullmatch(r"\"([a-z_]+)\"", right)
        for variant in variants:
            if literal:
                codes[literal.group(1)] = status_of[variant]
    for code in re.findall(r"=>\s*\"([a-z_]+)\"", function_body(health_rs, "unavailable_code")):
        codes[code] = 503
    return codes


def call_site_codes(sources):
    """{code: status} of the codes given at call sites, and where each is."""
    codes, where = {}, {}
    for path, text in sources:
        for constructor, code in CALL.findall(text):
            codes[code] = CONSTRUCTORS[constructor]
            where.setdefault(code, path)
    return codes, where


def documented(api_md):
    """{(status, code)} of docs/API.md's error table rows."""
    rows = set()
    for status, rest in re.findall(r"^\| (\d{3}) \|(.*)$", api_md, re.M):
        for code in re.findall(r"`([a-z_]+)`", rest.split("|")[0]):
            rows.add((int(status), code))
    return rows


def problems(codes, rows):
    found = []
    for code, status in sorted(codes.items()):
        if (status, code) not in rows:
            listed = sorted(s for s, c in rows if c == code)
            found.append(f"`{code}` ({status}) is not in docs/API.md's error table"
                         + (f" (it is listed under {listed})" if listed else ""))
    for status, code in sorted(rows):
        if code not in codes:
            found.append(f"docs/API.md lists `{code}` ({status}), which no code answers with")
    return found


def default_settings(config_rs):
    """Every WARUNG_* variable of config.rs's built-in defaults (the json! literal)."""
    start = config_rs.index("fn defaults()")
    begin = config_rs.index("json!(", start) + len("json!(")
    depth = 0
    for end in range(begin, len(config_rs)):
        depth += {"{": 1, "}": -1}.get(config_rs[end], 0)
        if depth == 0 and config_rs[end] == "}":
            break
    text = config_rs[begin:end + 1]
    text = re.sub(r"(?<=\d)_(?=\d)", "", text)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    found = set()

    def walk(prefix, value):
        for key, inner in value.items():
            name = f"{prefix}__{key.upper()}" if prefix else f"WARUNG_{key.upper()}"
            if isinstance(inner, dict):
                walk(name, inner)
            else:
                found.add(name)

    walk("", json.loads(text))
    return found


def documented_settings(readme):
    """Every WARUNG_* variable README's table names, `__KEY` continuations included."""
    found = set()
    for row in re.findall(r"^\| (`WARUNG_.*?) \|", readme, re.M):
        names = re.findall(r"`(WARUNG_[A-Z_]+|__[A-Z_]+)`", row)
        section = None
        for name in names:
            if name.startswith("WARUNG_"):
                found.add(name)
                section = name.rsplit("__", 1)[0] if "__" in name else None
            elif section:
                found.add(section + name)
    return found


def sources(root):
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("target", "tests", "node_modules", ".git")]
        for name in files:
            if name.endswith(".rs"):
                path = os.path.join(base, name)
                with open(path) as f:
                    yield os.path.relpath(path, root), f.read()


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    read = lambda p: open(os.path.join(root, p)).read()
    codes = fixed_codes(read("platform/src/error.rs"), read("platform/src/health.rs"))
    at_sites, _ = call_site_codes(sources(root))
    codes.update(at_sites)
    found = problems(codes, documented(read("docs/API.md")))
    settings = default_settings(read("platform/src/config.rs"))
    missing = sorted(settings - documented_settings(read("README.md")))
    found += [f"the setting {name} is not in README's configuration table" for name in missing]
    for problem in found:
        print(f"docs: {problem}", file=sys.stderr)
    if not found:
        print(f"docs: all {len(codes)} error codes are in docs/API.md with their status, and all "
              f"{len(settings)} settings with a default are in README")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
