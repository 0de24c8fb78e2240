"""Serving an ASGI app from a thread: the built-in simulator, and servers in tests."""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import uvicorn


class BackgroundServer:
    """An ASGI app served by uvicorn on a loopback port, in a thread of its own."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *,
                 lifespan: Literal["auto", "on", "off"] = "off",
                 name: str = "background-server") -> None:
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                     lifespan=lifespan, access_log=False))
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} could not start on {host}:{port}")
            time.sleep(0.01)
        bound = self._server.servers[0].sockets[0].getsockname()
        self.url = f"http://{host}:{bound[1]}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
