"""A TCP proxy with faults, for the campaign (scripts/lib/chaos.py): between Warung and one
dependency, it passes bytes through, or cuts the link (open connections closed, new ones
refused), delays every chunk, resets connections as they come, or answers every HTTP request
with what a sealed Vault answers. Runs its own asyncio loop in a thread.
"""

import asyncio
import socket
import threading

SEALED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
          b"content-length: 30\r\nconnection: close\r\n\r\n"
          b'{"errors":["Vault is sealed"]}')


class FaultProxy:
    MODES = ("ok", "cut", "latency", "reset", "sealed")

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.mode = "ok"
        self.latency = 0.0
        self.loop = asyncio.new_event_loop()
        self.writers = set()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.sock = sock
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(
            asyncio.start_server(self._serve, sock=self.sock))
        ready.set()
        self.loop.run_forever()

    def set(self, mode, latency=0.0):
        """Switches the fault; `cut` and `reset` also end the connections now open."""
        assert mode in self.MODES, mode
        self.mode, self.latency = mode, latency
        if mode in ("cut", "reset"):
            self.loop.call_soon_threadsafe(self._close_all)

    def _close_all(self):
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _serve(self, reader, writer):
        if self.mode in ("cut", "reset"):
            writer.transport.abort()
            return
        if self.mode == "sealed":
            await reader.read(65536)
            writer.write(SEALED)
            await writer.drain()
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers.discard(writer)
        self.writers.discard(up_writer)

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                if self.mode == "latency" and self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort() if writer.transport else None
