"""A tiny offline stand-in for httpbin.org: ``/delay/N``, ``/status/N`` and ``/get`` on loopback.

    python -m examples.httpbin --port 8000 --scale 1

``scale`` multiplies every delay, so tests can ask for ``/delay/2`` and wait 0.2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class HttpbinHandler(BaseHTTPRequestHandler):
    server: HttpbinServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        try:
            if segments[:1] == ["delay"] and len(segments) == 2:
                time.sleep(min(float(segments[1]), 10.0) * self.server.scale)
                self._json(200, parts.path, parts.query)
            elif segments[:1] == ["status"] and len(segments) == 2:
                self._json(int(segments[1]), parts.path, parts.query)
            elif segments == ["get"]:
                self._json(200, parts.path, parts.query)
            else:
                self._json(404, parts.path, parts.query)
        except (ValueError, IndexError):
            self._json(400, parts.path, parts.query)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            pass

    def _json(self, status: int, path: str, query: str) -> None:
        host = self.headers.get("Host", "")
        body = json.dumps(
            {
                "args": {k: v[0] for k, v in parse_qs(query).items()},
                "headers": dict(self.headers.items()),
                "origin": self.client_address[0],
                "url": f"http://{host}{path}",
            },
            indent=2,
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class HttpbinServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, scale: float = 1.0) -> None:
        super().__init__(("127.0.0.1", port), HttpbinHandler)
        self.scale = scale

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def serve(port: int = 0, scale: float = 1.0) -> Iterator[str]:
    """Run the server in a background thread; yields its base URL; stops it on exit."""
    server = HttpbinServer(port, scale)
    thread = threading.Thread(target=server.serve_forever, name="httpbin", daemon=True)
    thread.start()
    try:
        yield server.base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    server = HttpbinServer(args.port, args.scale)
    print(f"serving httpbin endpoints on {server.base_url}")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
