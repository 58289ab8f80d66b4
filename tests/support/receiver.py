"""A real HTTP receiver on 127.0.0.1 for the channel tests (webhook, Apprise, Alertmanager
stand-ins): it records every POST and answers from a per-path script.

- `Receiver.script(path, [Reply(...), HANG, ...])`: answers in order; the last one repeats;
  a path with no script gets 200. `HANG` holds the request without answering until the
  receiver stops (a receiver that hangs).
- `stop()` closes the listening socket (connections are refused: the receiver is down);
  `start()` listens again on the same port.
- `wait_for(n)` waits, bounded, for the n-th request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.http import Reply

HANG = "hang"
WAIT = 30.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, owner: Receiver, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        record = Received(
            path=self.path, headers={k.lower(): v for k, v in self.headers.items()}, body=body
        )
        reply = owner._next_reply(self.path.split("?", 1)[0])
        with owner.cond:
            owner.requests.append(record)
            owner.cond.notify_all()
        if reply == HANG:
            owner.released.wait(WAIT * 4)
            self.close_connection = True
            return
        assert isinstance(reply, Reply)
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.cond = threading.Condition()
        self.released = threading.Event()
        self._scripts: dict[str, list[Reply | str]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.released.clear()
        self._server = _Server(self, ("127.0.0.1", self.port))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, replies: Sequence[Reply | str]) -> None:
        with self.cond:
            self._scripts[path] = list(replies)

    def _next_reply(self, path: str) -> Reply | str:
        with self.cond:
            replies = self._scripts.get(path)
            if not replies:
                return Reply(200, b"{}", (("Content-Type", "application/json"),))
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def at(self, path: str) -> list[Received]:
        with self.cond:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def wait_for(
        self, count: int, *, path: str | None = None, timeout: float = WAIT
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [
                    r for r in self.requests if path is None or r.path.split("?", 1)[0] == path
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(found)}")
                self.cond.wait(left)
