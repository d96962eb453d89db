"""A TCP proxy on 127.0.0.1 that injects faults in front of a real server (S3 API or PostgreSQL).

`fail_next(n)` cuts every open connection and makes the next `n` connection attempts fail:
alternately reset at once, or (for HTTP) answered `503 SlowDown` after the request headers.
`fail_always()` makes every attempt fail: a permanent outage. Counts are kept for reports.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_BODY = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)


class FaultProxy:
    def __init__(self, target_port: int, http: bool) -> None:
        self.target_port, self.http = target_port, http
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pending = 0
        self.always = False
        self.injected = 0
        self.forwarded = 0
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def fail_next(self, n: int) -> None:
        with self.lock:
            self.pending = n
            for s in list(self.open):  # established connections drop too, as in a real outage
                _close(s)
            self.open.clear()

    def fail_always(self) -> None:
        with self.lock:
            self.always = True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                fault = self.always or self.pending > 0
                if fault:
                    self.pending = max(0, self.pending - 1)
                    self.injected += 1
                    kind = self.injected % 2 if self.http else 0
                else:
                    self.forwarded += 1
            if fault:
                threading.Thread(target=self._fault, args=(client, kind), daemon=True).start()
            else:
                threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _fault(self, client: socket.socket, kind: int) -> None:
        if kind == 1:  # an HTTP error after reading the request head
            client.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = client.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                client.sendall(SLOW_DOWN)
            except OSError:
                pass
        else:  # a reset: SO_LINGER 0 makes close() send RST
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        _close(client)

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            _close(client)
            return
        with self.lock:
            self.open.update((client, upstream))

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                _close(src)
                _close(dst)

        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def close(self) -> None:
        _close(self.listener)
        self.fail_next(0)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


@contextmanager
def fault_proxy(target_port: int, http: bool = False) -> Iterator[FaultProxy]:
    proxy = FaultProxy(target_port, http)
    try:
        yield proxy
    finally:
        proxy.close()
