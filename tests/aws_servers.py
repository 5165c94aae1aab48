"""AWS on loopback for tests: moto in server mode, and a proxy in front of it that answers badly on demand.

The proxy passes requests to moto unchanged, except those it was told to spoil: a throttling
answer, an internal error, a connection closed before any answer, or an answer cut off in the
middle. boto3 is not patched: it talks HTTP to the proxy as it would to AWS.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer

Fault = Literal["throttle", "internal", "close", "truncate"]

AWS_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-access-key",
    "AWS_SESSION_TOKEN": "testing-session-token",
}

_ERRORS: dict[str, tuple[int, str, str]] = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "internal": (500, "InternalServiceError", "An internal error occurred"),
}


@contextmanager
def moto_server() -> Iterator[str]:
    """moto as a real HTTP server on a free loopback port; yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A Secrets Manager played by moto for the whole session."""
    with moto_server() as url:
        yield url


@pytest.fixture
def secrets(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """boto3's Secrets Manager client on moto; the same dummy keys in the environment for the gateway."""
    for key, value in AWS_KEYS.items():
        monkeypatch.setenv(key, value)
    return boto3.client("secretsmanager", region_name="ca-central-1", endpoint_url=moto_endpoint)


class FaultProxy:
    """An HTTP server on loopback that forwards to `target` and spoils the requests it is told to."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._faults: deque[Fault] = deque()
        self._always: Fault | None = None
        self._lock = threading.Lock()
        self.received = 0  # requests that reached the proxy
        self.spoiled = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def spoil_next(self, *faults: Fault) -> None:
        """Spoil the next requests, one fault each, in order."""
        with self._lock:
            self._faults.extend(faults)

    def spoil_all(self, fault: Fault | None) -> None:
        """Spoil every request with `fault` until called with None."""
        with self._lock:
            self._always = fault

    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.received += 1
            fault = self._faults.popleft() if self._faults else self._always
            if fault is not None:
                self.spoiled += 1
            return fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._next_fault()
                if fault in _ERRORS:
                    status, code, message = _ERRORS[fault]
                    error = json.dumps({"__type": code, "message": message}).encode()
                    self._answer(status, {"x-amzn-ErrorType": code}, error)
                elif fault == "close":
                    self._hang_up()
                elif fault == "truncate":
                    self.wfile.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                        b'Content-Length: 4096\r\n\r\n{"ARN": "arn:aws:secretsmanager'
                    )
                    self.wfile.flush()
                    self._hang_up()
                else:
                    self._forward(body)

            def _hang_up(self) -> None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(*proxy._target, timeout=30)
                try:
                    dropped = ("host", "connection")
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
                    upstream.request("POST", self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    skip = ("content-length", "connection", "transfer-encoding", "server", "date")
                    kept = {k: v for k, v in response.getheaders() if k.lower() not in skip}
                    self._answer(response.status, kept, payload)
                finally:
                    upstream.close()

        return Handler


@contextmanager
def fault_proxy(target: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of `target`, stopped on exit."""
    proxy = FaultProxy(target).start()
    try:
        yield proxy
    finally:
        proxy.stop()
