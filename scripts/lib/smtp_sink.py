#!/usr/bin/env python3
"""Local SMTP sink for Warung development and tests.

Accepts every message (any sender, any recipient, no TLS, no authentication
required) and stores each one as an ``.eml`` file in a directory:

* file names sort by arrival time and are unique:
  ``20250101T120000.123456Z-000001-1a2b3c4d.eml``
* files are written atomically: a hidden ``.tmp-*`` file is written, fsynced
  and then renamed, so a reader that lists ``*.eml`` never sees a partial file;
* the SMTP envelope is prepended as two headers, ``X-Envelope-From`` and
  ``X-Envelope-To`` (recipients separated by ", "), followed by the message
  exactly as received.

Runs until SIGTERM or SIGINT, then closes the listener and exits 0.

Usage: smtp_sink.py --dir DIR [--host 127.0.0.1] [--port 1025]
Needs aiosmtpd (installed in the stack's venv).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import secrets
import signal
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

LOG = logging.getLogger("smtp-sink")


def _header_value(value: str) -> str:
    """Keep envelope values on one header line."""
    return value.replace("\r", " ").replace("\n", " ").strip()


class MailDirSink:
    """aiosmtpd handler that writes every message into ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._seq = itertools.count(1)

    def _new_name(self) -> str:
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        micros = int((now % 1) * 1_000_000)
        return f"{stamp}.{micros:06d}Z-{next(self._seq):06d}-{secrets.token_hex(4)}"

    async def handle_RCPT(  # noqa: N802 (aiosmtpd hook name)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        body = envelope.original_content
        if body is None:
            content = envelope.content or b""
            body = content if isinstance(content, bytes) else content.encode("utf-8")
        eol = b"\r\n" if b"\r\n" in body else b"\n"
        mail_from = _header_value(envelope.mail_from or "")
        rcpt_to = ", ".join(_header_value(r) for r in envelope.rcpt_tos)
        head = (
            b"X-Envelope-From: " + mail_from.encode("utf-8") + eol
            + b"X-Envelope-To: " + rcpt_to.encode("utf-8") + eol
        )
        name = self._new_name()
        try:
            path = await asyncio.get_running_loop().run_in_executor(
                None, self._write, name, head + body
            )
        except OSError as exc:
            LOG.error("could not store message: %s", exc)
            return "451 Requested action aborted: local error in processing"
        LOG.info("stored %s from=<%s> to=<%s> bytes=%d",
                 os.path.basename(path), mail_from, rcpt_to, len(body))
        return "250 Message accepted for delivery"

    def _write(self, name: str, data: bytes) -> str:
        tmp = os.path.join(self.directory, f".tmp-{name}.eml")
        final = os.path.join(self.directory, f"{name}.eml")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return final


def _accept_any_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    # Authentication is never required; a client configured with credentials
    # may still try AUTH, and any credentials are accepted.
    return AuthResult(success=True)


async def serve(host: str, port: int, directory: str) -> None:
    handler = MailDirSink(directory)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="warung-smtp-sink",  # avoids a slow getfqdn() lookup
            ident="warung smtp sink",
            decode_data=False,
            enable_SMTPUTF8=True,
            auth_required=False,
            auth_require_tls=False,
            authenticator=_accept_any_login,
        )

    server = await loop.create_server(factory, host=host, port=port)
    LOG.info("listening on %s:%d, writing messages to %s", host, port, directory)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    LOG.info("stopping")
    server.close()
    await server.wait_closed()
    LOG.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", required=True, help="directory for .eml files")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    # aiosmtpd logs every SMTP command at INFO and a deprecation warning for
    # each AUTH on its "mail.log" logger; keep only its errors.
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    try:
        asyncio.run(serve(args.host, args.port, directory))
    except OSError as exc:
        LOG.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
