"""Serve an ASGI app on 127.0.0.1:<ephemeral port> in a daemon thread (shared by the fakes)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

import uvicorn


class LoopbackServer:
    """`with Subclass(...) as fake:` starts uvicorn on a free loopback port and stops it after."""

    label = "fake server"

    def __init__(self, app: Any, **uvicorn_options: Any) -> None:
        # IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted sockets of that protocol,
        # and without it every answer waits ~40 ms for a delayed ACK.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        options = {"log_level": "warning", "lifespan": "off", "access_log": False, **uvicorn_options}
        self._server = uvicorn.Server(uvicorn.Config(app, **options))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self.label} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
