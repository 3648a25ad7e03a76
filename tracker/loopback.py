"""A small threaded HTTP/1.1 server on 127.0.0.1 for the local stand-ins (E-utilities,
ClinicalTrials.gov) and test feeds. Each request goes to one `answer` function."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass(frozen=True)
class Request:
    method: str
    path: str                      # with its query string
    headers: dict[str, str]
    body: bytes
    client_port: int


# (status, headers, body); None closes the connection without a word.
Answer = Callable[[Request], "tuple[int, dict[str, str], bytes] | None"]


class LoopbackServer:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self._server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "LoopbackServer":
        answer = self.answer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep-alive, as the real services do

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass   # the stand-ins keep their own structured logs

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = answer(Request(self.command, self.path, dict(self.headers), body, self.client_address[1]))
                if reply is None:
                    self.close_connection = True
                    return
                status, headers, content = reply
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="loopback").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
