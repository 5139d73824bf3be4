"""A threaded anonymous FTP server on 127.0.0.1 (pyftpdlib) serving a folder, for download tests,
with an injected fault: a transfer aborted after K bytes, once per path, which the server reports as
426 as a real one does when its side of the data connection fails."""

import errno
import os
import threading
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


class _FailingAfter:
    """A file whose reads fail after `limit` bytes."""

    def __init__(self, file, limit: int):
        self._file, self._left = file, limit

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise OSError(errno.EIO, "read error")
        data = self._file.read(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._file, name)


class FtpServer:
    """`with FtpServer(root) as server:` serves `root` at server.url("/"); server.cut_after maps a
    path to the bytes sent before its next transfer is aborted; server.retrieved lists the paths
    asked for (RETR), in order."""

    def __init__(self, root):
        self.root = Path(root).resolve()
        self.cut_after: dict[str, int] = {}
        self.retrieved: list[str] = []
        state = self

        class Files(AbstractedFS):
            def open(self, filename, mode):
                path = "/" + os.path.relpath(filename, state.root)
                state.retrieved.append(path)
                file = super().open(filename, mode)
                cut = state.cut_after.pop(path, None)
                return file if cut is None else _FailingAfter(file, cut)

        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(str(self.root))
        # sendfile() would bypass the file object's reads, and with them the injected fault.
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "abstracted_fs": Files,
                                                  "use_sendfile": False})
        self._server = FTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"timeout": 0.02, "handle_exit": False}, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"ftp://127.0.0.1:{self._server.address[1]}{path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.close_all()
        self._thread.join(timeout=5)
