"""A threaded HTTP file server on 127.0.0.1 for download tests and benchmarks: serves a folder with
byte ranges (206, Content-Range), If-Range, ETag and Last-Modified, Apache-style directory listings,
and injected faults (a connection cut after K bytes, error statuses before the real answer)."""

import email.utils
import html
import os
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
_CHUNK = 1 << 20


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    status: int = 0


@dataclass
class Faults:
    """cut_after: path → bytes of body sent before the connection drops, once (the first request);
    cut_always: path → such cuts, one per request in turn, over and over; statuses: path → error statuses answered, one per request,
    before the real answer; no_ranges: paths always sent whole (Range ignored, as some servers do);
    no_if_range: paths whose ranges are sent whatever If-Range says (as some proxies do); no_validators:
    paths sent without ETag and Last-Modified; no_length: paths sent without Content-Length, the body
    ending when the connection closes."""

    cut_after: dict[str, int] = field(default_factory=dict)
    cut_always: dict[str, list[int]] = field(default_factory=dict)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    no_ranges: set[str] = field(default_factory=set)
    no_if_range: set[str] = field(default_factory=set)
    no_validators: set[str] = field(default_factory=set)
    no_length: set[str] = field(default_factory=set)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that drops its connection (a cut download it retries, a cancelled one) is no server fault:
        # the default would print a traceback into the test output.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalServer:
    """A threaded HTTP server on a free port of 127.0.0.1, answering with `handler` (which reaches
    this object as `server_state`); `with` starts and stops it. tls: an SSLContext to serve HTTPS with."""

    def __init__(self, handler, tls=None):
        bound = type("Handler", (handler,), {"server_state": self})
        self._httpd = _Server(("127.0.0.1", 0), bound)
        self.scheme = "https" if tls else "http"
        if tls:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_port

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


class FileServer(LocalServer):
    """`with FileServer(root) as server:` serves `root` at server.url("/")."""

    def __init__(self, root, tls=None):
        self.root = Path(root).resolve()
        self.faults = Faults()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        super().__init__(_Handler, tls)

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def requests_for(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    def _take_fault(self, path: str) -> tuple[int | None, int | None]:
        with self._lock:
            statuses = self.faults.statuses.get(path)
            status = statuses.pop(0) if statuses else None
            cut = None if status else self.faults.cut_after.pop(path, None)
            turns = self.faults.cut_always.get(path)
            if cut is None and not status and turns:
                cut = turns.pop(0)
                turns.append(cut)
        return status, cut


class _Handler(BaseHTTPRequestHandler):
    server_state: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        path = unquote(urlsplit(self.path).path)
        request = Request(path, dict(self.headers.items()))
        self.server_state.requests.append(request)
        status, cut = self.server_state._take_fault(path)
        target = (self.server_state.root / path.lstrip("/")).resolve()
        if status:
            self._send_status(request, status)
        elif not target.is_relative_to(self.server_state.root) or not target.exists():
            self._send_status(request, 404)
        elif target.is_dir():
            self._send_listing(request, path, target)
        else:
            self._send_file(request, target, cut)

    def _send_status(self, request: Request, status: int) -> None:
        request.status = status
        body = f"<html><body><h1>{status}</h1></body></html>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_listing(self, request: Request, path: str, folder: Path) -> None:
        if not path.endswith("/"):
            request.status = 301
            self.send_response(301)
            self.send_header("Location", quote(path) + "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        # Like Apache's mod_autoindex: sort links and a parent link around the entries.
        rows = ['<a href="?C=N;O=D">Name</a>', f'<a href="{quote(str(Path(path).parent))}/">Parent Directory</a>']
        for entry in sorted(folder.iterdir()):
            name = entry.name + ("/" if entry.is_dir() else "")
            rows.append(f'<a href="{quote(name)}">{html.escape(name)}</a>')
        body = ("<html><body><pre>\n" + "\n".join(rows) + "\n</pre></body></html>\n").encode()
        request.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/html;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, request: Request, target: Path, cut: int | None) -> None:
        stat = target.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        start, end = 0, stat.st_size
        wanted = None if request.path in self.server_state.faults.no_ranges else _RANGE.fullmatch(self.headers.get("Range", ""))
        if_range = None if request.path in self.server_state.faults.no_if_range else self.headers.get("If-Range")
        if wanted and (if_range is None or if_range in (etag, modified)):
            start = int(wanted[1])
            end = min(int(wanted[2]) + 1, stat.st_size) if wanted[2] else stat.st_size
            if start >= stat.st_size:
                request.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{stat.st_size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        request.status = 206 if start or end < stat.st_size else 200
        self.send_response(request.status)
        self.send_header("Content-Type", "application/octet-stream")
        if request.path in self.server_state.faults.no_length:
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(end - start))
        if request.path not in self.server_state.faults.no_validators:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
        self.send_header("Accept-Ranges", "bytes")
        if request.status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{stat.st_size}")
        self.end_headers()
        self._send_body(target, start, end, cut)

    def _send_body(self, target: Path, start: int, end: int, cut: int | None) -> None:
        limit = end if cut is None else min(end, start + cut)
        with open(target, "rb") as source:
            source.seek(start)
            remaining = limit - start
            while remaining > 0:
                chunk = source.read(min(_CHUNK, remaining))
                self.wfile.write(chunk)
                remaining -= len(chunk)
        if cut is not None:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True


def write_file(path: Path, data: bytes, *, mtime: float | None = None) -> Path:
    """Write `data` at `path` (folders created); `mtime` changes the file's ETag deterministically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path
