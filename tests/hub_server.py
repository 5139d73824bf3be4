"""A Hugging Face Hub on 127.0.0.1 for tests, speaking the protocol huggingface_hub uses: repository
info (`/api/models/{repo}/revision/{rev}`), the tree API, and `resolve` URLs answering HEAD and GET
with X-Repo-Commit and ETag; weights are LFS files, redirected to a storage URL with X-Linked-Etag and
X-Linked-Size as the Hub does. Errors carry the Hub's X-Error-Code. Private repositories need a
bearer token; gated ones show their listing to all and their files to the token let in. Every request is recorded, so a test can tell whether the network was used."""

import hashlib
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

from http_server import LocalServer

LFS_SUFFIXES = (".safetensors", ".bin")


class HubServer(LocalServer):
    """`with HubServer() as hub:`; hub.push(repo, folder) commits a folder's files; `hub.endpoint` is
    what HF_ENDPOINT takes."""

    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 → content, the LFS storage
        self.requests: list[tuple[str, str]] = []
        self.storage: str | None = None  # where weights are redirected; None: this server under another host name
        super().__init__(_Handler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def push(self, repo: str, folder, branch: str = "main", tag: str | None = None, token: str | None = None,
             gated: str | None = None) -> str:
        """Commit every file under `folder` to `branch` (and `tag`); returns the commit hash. token: the
        repository is private to it; gated: its files are for that token only."""
        files = {path.relative_to(folder).as_posix(): path.read_bytes()
                 for path in sorted(Path(folder).rglob("*")) if path.is_file()}
        commit = hashlib.sha1(repo.encode() + b"".join(k.encode() + v for k, v in files.items())).hexdigest()
        entry = self.repos.setdefault(repo, {"refs": {}, "commits": {}, "token": token, "gated": gated})
        entry["commits"][commit] = files
        entry["refs"][branch] = commit
        if tag:
            entry["refs"][tag] = commit
        for content in files.values():
            self.blobs[hashlib.sha256(content).hexdigest()] = content
        return commit


def _git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    server_state: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    def _answer(self, body: bool):
        path = unquote(urlsplit(self.path).path)
        self.server_state.requests.append((self.command, path))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
            repo, files, commit = self._lookup("/".join(parts[2:4]), parts[5])
            if files is None:
                return
            if parts[4] == "revision":
                info = {"id": repo, "modelId": repo, "sha": commit, "private": self._repo(repo)["token"] is not None,
                        "siblings": [{"rfilename": name} for name in files]}
                return self._send(200, json.dumps(info).encode(), body, {"Content-Type": "application/json"})
            tree = [{"type": "file", "path": name, "size": len(content), "oid": _git_blob_id(content),
                     **({"lfs": {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}}
                        if name.endswith(LFS_SUFFIXES) else {})} for name, content in files.items()]
            return self._send(200, json.dumps(tree).encode(), body, {"Content-Type": "application/json"})
        if parts[0] == "lfs-storage" and len(parts) == 2 and parts[1] in self.server_state.blobs:
            return self._send(200, self.server_state.blobs[parts[1]], body, {"Content-Type": "application/octet-stream"})
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, files, commit = self._lookup("/".join(parts[:2]), parts[3])
            if files is None:
                return
            name = "/".join(parts[4:])
            gated = self._repo(repo)["gated"]
            if gated is not None and self._bearer() != gated:  # the Hub's answers, without a token and with another
                return self._error(403 if self._bearer() else 401, "GatedRepo",
                                   f"Access to model {repo} is restricted and you are not in the authorized list.")
            if name not in files:
                return self._error(404, "EntryNotFound", f"{name} does not exist on {parts[3]}")
            content = files[name]
            headers = {"X-Repo-Commit": commit, "Content-Type": "application/octet-stream"}
            if name.endswith(LFS_SUFFIXES):
                sha256 = hashlib.sha256(content).hexdigest()
                # Storage on another host, as the Hub's CDN is: clients do not follow it for metadata.
                storage = self.server_state.storage or self.server_state.endpoint.replace("127.0.0.1", "localhost")
                headers |= {"Location": f"{storage}/lfs-storage/{sha256}", "X-Linked-Etag": f'"{sha256}"',
                            "X-Linked-Size": str(len(content)), "ETag": f'"{_git_blob_id(content)}"'}
                return self._send(302, b"", body, headers)
            return self._send(200, content, body, headers | {"ETag": f'"{_git_blob_id(content)}"'})
        self._error(404, None, "not found")

    def _repo(self, repo: str) -> dict | None:
        return self.server_state.repos.get(repo)

    def _lookup(self, repo: str, revision: str):
        """The files and commit of a repository at a branch, tag or commit; (repo, None, None) once an
        error is answered."""
        entry = self._repo(repo)
        authorised = entry is not None and entry["token"] in (None, self._bearer())
        if not authorised:
            # The Hub answers a private repository without its token as it answers a missing one.
            return repo, self._error(401, "RepoNotFound", "Repository not found"), None
        commit = entry["refs"].get(revision, revision)
        if commit not in entry["commits"]:
            return repo, self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}"), None
        return repo, entry["commits"][commit], commit

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"Content-Type": "application/json", **({"X-Error-Code": code} if code else {}),
                   "X-Error-Message": message}
        self._send(status, json.dumps({"error": message}).encode(), True, headers)

    def _send(self, status: int, content: bytes, body: bool, headers: dict) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(content)
