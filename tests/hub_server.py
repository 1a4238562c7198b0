"""A small, real Hugging Face Hub server for tests (stdlib only).

``LocalHub(root_dir)`` runs a ``ThreadingHTTPServer`` on ``127.0.0.1:<random port>`` in a background
thread and stores repositories on disk, so that the real ``huggingface_hub`` client (and transformers /
datasets / peft on top of it) can push and pull without mocks.  The wire format follows what the
installed ``huggingface_hub`` (2.x, httpx2 based) sends and parses; see ``hf_api.py``, ``_commit_api.py``,
``lfs.py``, ``file_download.py`` and ``hf_file_system.py`` of the installed package.

Implemented endpoints (``{t}`` is ``models`` / ``datasets`` / ``spaces``; ``{prefix}`` is ``""`` for
models, ``datasets/`` or ``spaces/`` otherwise; ``{rev}`` is a branch, tag, ``refs/pr/N`` or commit sha,
URL-quoted or not):

    GET    /api/whoami-v2                                   user of the bearer token (401 if invalid)
    GET    /api/agent-harnesses                             empty registry (client user-agent detection)
    POST   /api/validate-yaml                               always valid (README.md metadata check)
    POST   /api/repos/create                                create repo (409 if it exists; a space needs ``sdk``)
    DELETE /api/repos/delete                                delete repo
    GET    /api/{t}/{ns}/{name}[/revision/{rev}]            repo info: sha, private, siblings (?blobs=1: sizes/lfs)
    GET    /api/{t}/{ns}/{name}/tree/{rev}[/{path}]         tree listing (?recursive=1, ?expand=1 adds lastCommit)
    POST   /api/{t}/{ns}/{name}/paths-info/{rev}            form or json ``paths`` (+ ``expand``)
    POST   /api/{t}/{ns}/{name}/preupload/{rev}             decides regular vs lfs per file, returns remote oid
    POST   /api/{t}/{ns}/{name}/commit/{rev}                ndjson commit (file / lfsFile / deletedFile /
                                                            deletedFolder), ?create_pr=1 creates refs/pr/N
    GET    /api/{t}/{ns}/{name}/commits/{rev}               commit history, newest first
    PUT    /api/{t}/{ns}/{name}/settings                    visibility / private toggle
    GET    /api/{t}/{ns}/{name}/refs                        branches / tags (/ pullRequests with ?include_prs=1)
    POST|DELETE /api/{t}/{ns}/{name}/branch/{branch}        create (json startingPoint) / delete a branch
    POST   /api/{t}/{ns}/{name}/tag/{rev}                   create tag (json ``tag``); DELETE .../tag/{tag}
    POST   /{prefix}{ns}/{name}.git/info/lfs/objects/batch  git-lfs batch API, ``basic`` transfer only
    PUT    /__lfs/upload/{sha256}?ticket=...                upload target handed out by the batch API
    POST   /{prefix}{ns}/{name}.git/info/lfs/objects/verify LFS verify (json oid + size)
    GET|HEAD /{prefix}{ns}/{name}/resolve/{rev}/{path}      file download, Range support; headers X-Repo-Commit,
                                                            ETag (git blob sha1, or sha256 for LFS),
                                                            X-Linked-Etag / X-Linked-Size for LFS files
    *      /api/{t}/{ns}/{name}/xet-*-token/...             501: Xet is not implemented (set HF_HUB_DISABLE_XET=1)

Errors carry ``X-Error-Code`` (RepoNotFound / RevisionNotFound / EntryNotFound) and ``X-Error-Message``
headers plus a json ``{"error": ...}`` body, which is how ``hf_raise_for_status`` picks exception types.
Files are served directly (no CDN redirect), so no redirect handling is needed on the client side.

Auth: writes need ``Authorization: Bearer <token>`` with a token known to the hub (``hub.token`` by
default); a missing or wrong token gives 401 "Invalid credentials in Authorization header".  Reads of
public repos need no token, but a *wrong* token is still a 401 (like the real Hub).  Private repos
are 404 RepoNotFound without a valid token.  The Authorization header is never logged or stored.

Storage (under ``root_dir``)::

    blobs/<sha256>                          file contents, content addressed
    repos/<type>/<ns>/<name>/repo.json      {"private", "created_at", "refs": {"heads", "tags", "prs"}}
    repos/<type>/<ns>/<name>/commits/<sha>.json
        {"id", "parents", "title", "message", "date", "author",
         "files": {path: {"sha256", "size", "lfs", "oid"}}}    (a full snapshot manifest per commit)

New repos get an initial commit with the standard ``.gitattributes`` (like the real Hub).  A file is
stored as LFS when ``.gitattributes`` routes it to LFS (``*.safetensors``, ``*.bin``, ``*.parquet``,
``*.png`` ...), when its 512-byte sample contains a NUL byte, or when it is >= ``lfs_threshold`` bytes.

Failure injection: ``hub.fail_next(path_regex, status=500, times=1, method=None, delay=0)`` makes the
next matching requests fail (``times=None``: until ``hub.clear_failures()``; ``status=0``: drop the
connection without answering; ``status=None``: only add ``delay`` seconds).  The regex is searched in
the raw and in the URL-unquoted request path (without query string).  ``hub.requests`` records
``(method, path, status)`` of every request, e.g. to check that the LFS batch API was used;
``hub.count(method, path_regex, status)``, ``hub.repo_files(repo_id)`` (``{path: bytes}`` read from
disk), ``hub.repo_commits(repo_id)`` and ``hub.is_lfs(repo_id, path)`` inspect the server side.

Client retry behaviour to keep in mind when injecting failures (huggingface_hub 2.4): preupload, LFS
batch, LFS PUT and verify go through ``http_backoff`` (retries 408/429/5xx and network errors, sleeping
1, 2, 4, 8, 8 s), so ``times=1`` costs ~1 s and a permanent 5xx surfaces only after ~23 s.  The commit
POST is *not* retried: inject on ``r"/commit/"`` for a fast, surfacing failure.  ``hf_hub_download``
falls back to a retried metadata call when the first HEAD fails and nothing is cached.

Usage::

    with LocalHub(tmp_path / "hub") as hub:
        api = HfApi(endpoint=hub.endpoint, token=hub.token)
        api.create_repo("user/model", exist_ok=True)
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import secrets
import shutil
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_TOKEN = "hf_test_localhub_0123456789abcdefghijklmnopqrstuv"
DEFAULT_USER = "test-user"
LFS_THRESHOLD = 10 * 1024 * 1024
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"

_TYPE_FROM_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
SPACE_SDKS = ("gradio", "docker", "static")  # what POST /api/repos/create accepts as a Space's "sdk"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_HEX_RE = re.compile(r"^[0-9a-f]{7,40}$")

_LFS_EXTENSIONS = (
    "7z arrow bin bz2 ckpt ftz gz h5 joblib mlmodel model msgpack npy npz onnx ot parquet pb pickle pkl pt pth "
    "rar safetensors tar tflite tgz wasm xz zip zst "
    # binary media that dataset repos carry
    "png jpg jpeg webp gif bmp tiff mp3 wav flac ogg mp4 avi mkv pdf"
).split()
DEFAULT_GITATTRIBUTES = (
    "".join(f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in _LFS_EXTENSIONS)
    + "*.lfs.* filter=lfs diff=lfs merge=lfs -text\n"
    + "saved_model/**/* filter=lfs diff=lfs merge=lfs -text\n"
    + "*tfevents* filter=lfs diff=lfs merge=lfs -text\n"
)


class HubError(Exception):
    """An error answered to the client as ``status`` + json body + X-Error-* headers."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None, body: dict | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, dict(headers or {})
        self.body = dict(body or {})


@dataclass
class Failure:
    """An injected failure rule (see ``LocalHub.fail_next``); ``hits`` counts how often it fired."""

    pattern: re.Pattern
    status: int | None
    times: int | None
    method: str | None
    message: str
    headers: dict
    delay: float
    hits: int = 0

    def matches(self, method: str, raw_path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return bool(self.pattern.search(raw_path) or self.pattern.search(unquote(raw_path)))


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int | None


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now_iso() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


class _Store:
    """On-disk repositories + content-addressed blobs.  All methods expect ``self.lock`` to be usable."""

    def __init__(self, root: Path, lfs_threshold: int):
        self.root = root
        self.blobs = root / "blobs"
        self.tmp = root / "tmp"
        self.repos = root / "repos"
        for folder in (self.blobs, self.tmp, self.repos):
            folder.mkdir(parents=True, exist_ok=True)
        self.lfs_threshold = lfs_threshold
        self.lock = threading.RLock()

    # -- blobs ---------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        path = self.blob_path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def put_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha256):
            tmp = self.tmp / uuid.uuid4().hex
            tmp.write_bytes(data)
            tmp.replace(self.blob_path(sha256))
        return sha256

    # -- repos ---------------------------------------------------------------------------------
    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        ns, name = repo_id.split("/")
        return self.repos / repo_type / ns / name

    def load_repo(self, repo_type: str, repo_id: str) -> dict | None:
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def save_repo(self, meta: dict) -> None:
        folder = self.repo_dir(meta["type"], meta["id"])
        tmp = folder / f"repo.json.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(folder / "repo.json")

    def load_commit(self, meta: dict, sha: str) -> dict:
        return json.loads((self.repo_dir(meta["type"], meta["id"]) / "commits" / f"{sha}.json").read_text())

    def create_repo(self, repo_type: str, repo_id: str, private: bool, author: str, sdk: str | None = None) -> dict:
        folder = self.repo_dir(repo_type, repo_id)
        (folder / "commits").mkdir(parents=True, exist_ok=True)
        meta = {
            "id": repo_id,
            "type": repo_type,
            "private": private,
            "created_at": _now_iso(),
            "refs": {"heads": {}, "tags": {}, "prs": {}},
        }
        if sdk:
            meta["sdk"] = sdk
        self.save_repo(meta)
        data = DEFAULT_GITATTRIBUTES.encode()
        files = {".gitattributes": self._entry(data, lfs=False)}
        sha = self.write_commit(meta, parents=[], files=files, title="initial commit", message="", author=author)
        meta["refs"]["heads"]["main"] = sha
        self.save_repo(meta)
        return meta

    def _entry(self, data: bytes, lfs: bool) -> dict:
        sha256 = self.put_blob(data)
        oid = git_blob_sha1(lfs_pointer(sha256, len(data))) if lfs else git_blob_sha1(data)
        return {"sha256": sha256, "size": len(data), "lfs": lfs, "oid": oid}

    def write_commit(self, meta: dict, parents: list, files: dict, title: str, message: str, author: str) -> str:
        date = _now_iso()
        seed = json.dumps([parents, files, title, message, date, uuid.uuid4().hex], sort_keys=True)
        sha = hashlib.sha1(seed.encode()).hexdigest()
        commit = {
            "id": sha,
            "parents": parents,
            "title": title,
            "message": message,
            "date": date,
            "author": author,
            "files": files,
        }
        path = self.repo_dir(meta["type"], meta["id"]) / "commits" / f"{sha}.json"
        path.write_text(json.dumps(commit, indent=1, sort_keys=True))
        return sha

    def resolve_revision(self, meta: dict, revision: str) -> str | None:
        refs = meta["refs"]
        if revision.startswith("refs/heads/"):
            return refs["heads"].get(revision[len("refs/heads/") :])
        if revision.startswith("refs/tags/"):
            return refs["tags"].get(revision[len("refs/tags/") :])
        if revision.startswith("refs/pr/"):
            return refs["prs"].get(revision[len("refs/pr/") :])
        if revision in refs["heads"]:
            return refs["heads"][revision]
        if revision in refs["tags"]:
            return refs["tags"][revision]
        if _HEX_RE.match(revision):
            commits = self.repo_dir(meta["type"], meta["id"]) / "commits"
            matches = [p.stem for p in commits.glob(f"{revision}*.json")]
            if len(matches) == 1:
                return matches[0]
        return None

    def history(self, meta: dict, sha: str) -> list[dict]:
        """First-parent history, newest first."""
        out = []
        while sha:
            commit = self.load_commit(meta, sha)
            out.append(commit)
            sha = commit["parents"][0] if commit["parents"] else None
        return out


def _gitattributes_lfs_patterns(content: str) -> list[tuple[str, bool]]:
    rules = []
    for line in content.splitlines():
        parts = line.strip().split()
        if not parts or parts[0].startswith("#"):
            continue
        for attr in parts[1:]:
            if attr == "filter=lfs":
                rules.append((parts[0], True))
            elif attr in ("-filter", "!filter"):
                rules.append((parts[0], False))
    return rules


def _path_matches(pattern: str, path: str) -> bool:
    pattern = pattern.replace("**/", "*").replace("/**", "/*")
    if "/" in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(path, pattern.lstrip("/"))
    return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)


def _is_ignored(gitignore: str | None, path: str) -> bool:
    if not gitignore:
        return False
    ignored = False
    for line in gitignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        if _path_matches(pattern, path) or any(
            _path_matches(pattern.rstrip("/"), "/".join(path.split("/")[: i + 1])) for i in range(path.count("/"))
        ):
            ignored = not negate
    return ignored


def _validate_path_in_repo(path: str) -> str:
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this many seconds

    # Never let BaseHTTPRequestHandler print anything (it would go to stderr); requests are recorded
    # in ``hub.requests`` as (method, path, status) only - headers (Authorization!) are never logged.
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def hub(self) -> LocalHub:
        return self.server.hub  # type: ignore[attr-defined]

    @property
    def store(self) -> _Store:
        return self.hub._store

    def _iter_body(self):
        """Yield the request body in chunks (Content-Length or chunked transfer encoding)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise ConnectionResetError("client closed the connection mid-body")
                    remaining -= len(chunk)
                    yield chunk
                self.rfile.readline(65537)
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ConnectionResetError("client closed the connection mid-body")
                remaining -= len(chunk)
                yield chunk

    def _spool_body(self) -> None:
        """LFS uploads are streamed to a temp file (hashing on the fly) instead of being held in memory."""
        hasher, size = hashlib.sha256(), 0
        self.upload = self.store.tmp / f"upload-{uuid.uuid4().hex}"
        with open(self.upload, "wb") as f:
            for chunk in self._iter_body():
                hasher.update(chunk)
                size += len(chunk)
                f.write(chunk)
        self.upload_sha256, self.upload_size = hasher.hexdigest(), size

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        raw_path, self.query = split.path, parse_qs(split.query)
        self._status: int | None = None
        self.body, self.upload = b"", None
        try:
            if method == "PUT" and raw_path.startswith("/__lfs/upload/"):
                self._spool_body()
            else:
                self.body = b"".join(self._iter_body())
            failure = self.hub._take_failure(method, raw_path)
            if failure is not None:
                if failure.delay:
                    time.sleep(failure.delay)
                if failure.status == 0:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if failure.status is not None:
                    raise HubError(failure.status, failure.message, headers=failure.headers)
            self._route(method, raw_path)
        except HubError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # pragma: no cover - server bug: surface it to the client as a 500
            self.hub.errors.append("".join(traceback.format_exception(exc)))
            self._send_error(HubError(500, f"LocalHub internal error: {type(exc).__name__}: {exc}"))
        finally:
            if self.upload is not None:
                self.upload.unlink(missing_ok=True)
            self.hub._record(RequestRecord(method, raw_path, self._status))

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict | None = None,
        content_type: str = "application/json",
        content_length: int | None = None,
    ) -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, obj: Any, status: int = 200, headers: dict | None = None, content_type: str = "") -> None:
        self._send(status, json.dumps(obj).encode(), headers, content_type or "application/json")

    def _send_error(self, err: HubError) -> None:
        safe_message = err.message.encode("latin-1", "replace").decode("latin-1").replace("\n", " ")
        headers = {"X-Error-Message": safe_message, **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send_json({"error": err.message, **err.body}, status=err.status, headers=headers)

    def _json_body(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from None

    # -- auth ------------------------------------------------------------------------------------
    def _user(self) -> str | None:
        """User of the bearer token, None if no token; 401 if a token is given but unknown."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else None
        if token is None or token not in self.hub.tokens:
            raise HubError(401, INVALID_CREDENTIALS)
        return self.hub.tokens[token]["user"]

    def _require_write(self) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, INVALID_CREDENTIALS)
        token = self.headers["Authorization"][len("Bearer ") :].strip()
        if not self.hub.tokens[token]["write"]:
            raise HubError(403, "You don't have the rights to write to this repository (read-only token)")
        return user

    # -- repo helpers ----------------------------------------------------------------------------
    def _repo(self, repo_type: str, ns: str, name: str, write: bool = False) -> dict:
        user = self._require_write() if write else self._user()
        repo_id = f"{unquote(ns)}/{unquote(name)}"
        meta = None
        if all(_NAME_RE.match(part) for part in repo_id.split("/")):
            meta = self.store.load_repo(repo_type, repo_id)
        if meta is None or (meta["private"] and user is None):
            raise HubError(404, "Repository not found", code="RepoNotFound")
        return meta

    def _commit_for(self, meta: dict, revision: str) -> dict:
        sha = self.store.resolve_revision(meta, revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return self.store.load_commit(meta, sha)

    def _repo_url(self, meta: dict) -> str:
        return f"{self.hub.endpoint}/{_URL_PREFIX[meta['type']]}{meta['id']}"

    @staticmethod
    def _split_revision(rest: str) -> tuple[str, str]:
        """Split ``<rev>/<path>`` where rev may be quoted (``refs%2Fpr%2F1``) or not (``refs/pr/1``)."""
        parts = rest.split("/")
        if unquote(parts[0]) == "refs" and len(parts) >= 3:
            return "/".join(unquote(p) for p in parts[:3]), unquote("/".join(parts[3:]))
        return unquote(parts[0]), unquote("/".join(parts[1:]))

    # -- routing ---------------------------------------------------------------------------------
    _API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)(?:/(.*))?$")
    _LFS = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)\.git/info/lfs/objects/(batch|verify)$")
    _RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/(.+)$")

    def _route(self, method: str, raw_path: str) -> None:
        if raw_path == "/api/whoami-v2" and method == "GET":
            return self._whoami()
        if raw_path == "/api/agent-harnesses" and method == "GET":  # user-agent agent detection registry
            return self._send_json({"standardEnvVars": [], "harnesses": {}})
        if raw_path == "/api/validate-yaml" and method == "POST":
            return self._send_json({"errors": [], "warnings": []})
        if raw_path == "/api/repos/create" and method == "POST":
            return self._create_repo()
        if raw_path == "/api/repos/delete" and method == "DELETE":
            return self._delete_repo()
        if raw_path.startswith("/__lfs/upload/") and method == "PUT":
            return self._lfs_put(raw_path[len("/__lfs/upload/") :])
        if m := self._LFS.match(raw_path):
            if method != "POST":
                raise HubError(405, "Method not allowed")
            repo_type = _TYPE_FROM_PLURAL.get(f"{m.group(1)}", "model")
            meta = self._repo(repo_type, m.group(2), m.group(3), write=True)
            return self._lfs_batch(meta) if m.group(4) == "batch" else self._lfs_verify(meta)
        if m := self._API_REPO.match(raw_path):
            return self._route_api(method, _TYPE_FROM_PLURAL[m.group(1)], m.group(2), m.group(3), m.group(4))
        if (m := self._RESOLVE.match(raw_path)) and method in ("GET", "HEAD"):
            repo_type = _TYPE_FROM_PLURAL.get(f"{m.group(1)}", "model")
            meta = self._repo(repo_type, m.group(2), m.group(3))
            revision, path = self._split_revision(m.group(4))
            return self._resolve(meta, revision, path)
        raise HubError(404, f"LocalHub: no route for {method} {raw_path}")

    def _route_api(self, method: str, repo_type: str, ns: str, name: str, rest: str | None) -> None:
        action, _, arg = (rest or "").partition("/")
        write = method in ("POST", "PUT", "DELETE") and action not in ("paths-info",)
        if action.startswith("xet-"):
            raise HubError(501, "LocalHub does not implement Xet storage: set HF_HUB_DISABLE_XET=1")
        meta = self._repo(repo_type, ns, name, write=write)
        if method == "GET" and action in ("", "revision"):
            return self._repo_info(meta, unquote(arg) if action == "revision" else "main")
        if method == "GET" and action == "tree":
            revision, path = self._split_revision(arg)
            return self._tree(meta, revision, path)
        if method == "POST" and action == "paths-info":
            return self._paths_info(meta, self._split_revision(arg)[0])
        if method == "POST" and action == "preupload":
            return self._preupload(meta, self._split_revision(arg)[0])
        if method == "POST" and action == "commit":
            return self._commit(meta, self._split_revision(arg)[0])
        if method == "GET" and action == "commits":
            return self._list_commits(meta, self._split_revision(arg)[0])
        if method == "GET" and action == "refs":
            return self._refs(meta)
        if action == "settings" and method == "PUT":
            return self._settings(meta)
        if action == "branch" and method in ("POST", "DELETE"):
            return self._branch(meta, unquote(arg), method)
        if action == "tag" and method in ("POST", "DELETE"):
            return self._tag(meta, unquote(arg), method)
        raise HubError(404, f"LocalHub: no route for {method} /api/.../{rest}")

    # -- account / repos -------------------------------------------------------------------------
    def _whoami(self) -> None:
        user = self._user()
        if user is None:
            raise HubError(401, INVALID_CREDENTIALS)
        token = self.headers["Authorization"][len("Bearer ") :].strip()
        role = "write" if self.hub.tokens[token]["write"] else "read"
        self._send_json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": f"{user}@localhub.test",
                "emailVerified": True,
                "isPro": False,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "localhub", "role": role}},
            }
        )

    def _create_repo(self) -> None:
        user = self._require_write()
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        ns, name = payload.get("organization") or user, payload.get("name") or ""
        if not (_NAME_RE.match(ns) and _NAME_RE.match(name)) or "--" in name or name.endswith((".git", ".")):
            raise HubError(400, f"Invalid repo name: {ns}/{name}")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        sdk = payload.get("sdk")
        if repo_type == "space" and sdk not in SPACE_SDKS:  # like the real Hub: a Space says how it runs
            raise HubError(400, f"Invalid or missing sdk for a space: {sdk!r}; one of {', '.join(SPACE_SDKS)}")
        repo_id = f"{ns}/{name}"
        with self.store.lock:
            existing = self.store.load_repo(repo_type, repo_id)
            if existing is not None:
                url = self._repo_url(existing)
                # the client reads ``url`` from the 409 body when ``exist_ok=True``
                raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
            meta = self.store.create_repo(repo_type, repo_id, private, author=user, sdk=sdk)
        self._send_json({"url": self._repo_url(meta), "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        user = self._require_write()
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or user}/{payload.get('name')}"
        with self.store.lock:
            if repo_type not in _URL_PREFIX or self.store.load_repo(repo_type, repo_id) is None:
                raise HubError(404, "Repository not found", code="RepoNotFound")
            shutil.rmtree(self.store.repo_dir(repo_type, repo_id))
        self._send_json({})

    # -- read API --------------------------------------------------------------------------------
    def _file_json(self, path: str, entry: dict) -> dict:
        out = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
        if entry["lfs"]:
            pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
            out["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
        return out

    @staticmethod
    def _dir_oid(files: dict, directory: str) -> str:
        prefix = directory + "/"
        lines = sorted(f"{p} {e['oid']}" for p, e in files.items() if p.startswith(prefix))
        return hashlib.sha1("\n".join(lines).encode()).hexdigest()

    @staticmethod
    def _dirs(files: dict) -> set[str]:
        dirs = set()
        for path in files:
            parts = path.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return dirs

    def _last_commit(self, meta: dict, commit: dict, path: str, is_dir: bool) -> dict:
        def signature(c: dict) -> Any:
            return self._dir_oid(c["files"], path) if is_dir else c["files"].get(path)

        current, sig = commit, signature(commit)
        while current["parents"]:
            parent = self.store.load_commit(meta, current["parents"][0])
            if signature(parent) != sig:
                break
            current = parent
        return {"id": current["id"], "title": current["title"], "date": current["date"]}

    def _entry_json(self, meta: dict, commit: dict, path: str, is_dir: bool, expand: bool) -> dict:
        if is_dir:
            out = {"type": "directory", "oid": self._dir_oid(commit["files"], path), "size": 0, "path": path}
        else:
            out = self._file_json(path, commit["files"][path])
        if expand:
            out["lastCommit"] = self._last_commit(meta, commit, path, is_dir)
            if not is_dir:
                out["securityFileStatus"] = {"status": "safe", "avScan": None, "pickleImportScan": None}
        return out

    def _repo_info(self, meta: dict, revision: str) -> None:
        commit = self._commit_for(meta, revision)
        with_blobs = _truthy((self.query.get("blobs") or ["false"])[0])
        siblings = []
        for path, entry in sorted(commit["files"].items()):
            sibling: dict = {"rfilename": path}
            if with_blobs:
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if entry["lfs"]:
                    pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
                    sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": pointer_size}
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(f"{meta['type']}/{meta['id']}".encode()).hexdigest()[:24],
            "id": meta["id"],
            "author": meta["id"].split("/")[0],
            "sha": commit["id"],
            "lastModified": commit["date"],
            "createdAt": meta["created_at"],
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(e["size"] for e in commit["files"].values()),
        }
        if meta["type"] == "model":
            info["modelId"] = meta["id"]
        if meta["type"] == "space":
            info["sdk"] = meta.get("sdk")
        self._send_json(info)

    def _tree(self, meta: dict, revision: str, path: str) -> None:
        commit = self._commit_for(meta, revision)
        path = path.strip("/")
        recursive = _truthy((self.query.get("recursive") or ["false"])[0])
        expand = _truthy((self.query.get("expand") or ["false"])[0])
        files, dirs = commit["files"], self._dirs(commit["files"])
        if path and path not in dirs:
            raise HubError(404, f"Entry not found: {path}", code="EntryNotFound")
        prefix = f"{path}/" if path else ""

        def wanted(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

        out = [self._entry_json(meta, commit, d, True, expand) for d in sorted(dirs) if wanted(d)]
        out += [self._entry_json(meta, commit, f, False, expand) for f in sorted(files) if wanted(f)]
        self._send_json(out)

    def _paths_info(self, meta: dict, revision: str) -> None:
        if self.headers.get("Content-Type", "").startswith("application/json"):
            payload = self._json_body()
            paths, expand = payload.get("paths") or [], _truthy(payload.get("expand", False))
        else:
            form = parse_qs(self.body.decode())
            paths, expand = form.get("paths", []), _truthy((form.get("expand") or ["false"])[0])
        commit = self._commit_for(meta, revision)
        dirs = self._dirs(commit["files"])
        out = []
        for path in paths if isinstance(paths, list) else [paths]:
            path = path.strip("/")
            if path in commit["files"]:
                out.append(self._entry_json(meta, commit, path, False, expand))
            elif path in dirs:
                out.append(self._entry_json(meta, commit, path, True, expand))
        self._send_json(out)

    def _list_commits(self, meta: dict, revision: str) -> None:
        commit = self._commit_for(meta, revision)
        out = [
            {
                "id": c["id"],
                "title": c["title"],
                "message": c["message"],
                "date": c["date"],
                "authors": [{"user": c["author"], "avatar": None}],
            }
            for c in self.store.history(meta, commit["id"])
        ]
        self._send_json(out)

    def _refs(self, meta: dict) -> None:
        refs = meta["refs"]

        def fmt(kind: str, name: str, sha: str) -> dict:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}

        out = {
            "branches": [fmt("heads", n, s) for n, s in sorted(refs["heads"].items())],
            "tags": [fmt("tags", n, s) for n, s in sorted(refs["tags"].items())],
            "converts": [],
        }
        if _truthy((self.query.get("include_prs") or ["0"])[0]):
            out["pullRequests"] = [fmt("pr", n, s) for n, s in sorted(refs["prs"].items(), key=lambda x: int(x[0]))]
        self._send_json(out)

    def _settings(self, meta: dict) -> None:
        payload = self._json_body()
        with self.store.lock:
            meta = self.store.load_repo(meta["type"], meta["id"])
            if "visibility" in payload:
                meta["private"] = payload["visibility"] == "private"
            elif "private" in payload:
                meta["private"] = bool(payload["private"])
            self.store.save_repo(meta)
        self._send_json({})

    def _branch(self, meta: dict, branch: str, method: str) -> None:
        with self.store.lock:
            meta = self.store.load_repo(meta["type"], meta["id"])
            heads = meta["refs"]["heads"]
            if method == "DELETE":
                if branch not in heads:
                    raise HubError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
                if branch == "main":
                    raise HubError(403, "Cannot delete the default branch")
                del heads[branch]
            else:
                if branch in heads:
                    raise HubError(409, f"Reference already exists: refs/heads/{branch}")
                if not branch or branch.startswith("refs/") or ".." in branch:
                    raise HubError(400, f"Invalid branch name: {branch}")
                start = self._json_body().get("startingPoint") or "main"
                heads[branch] = self._commit_for(meta, start)["id"]
            self.store.save_repo(meta)
        self._send_json({})

    def _tag(self, meta: dict, arg: str, method: str) -> None:
        with self.store.lock:
            meta = self.store.load_repo(meta["type"], meta["id"])
            tags = meta["refs"]["tags"]
            if method == "DELETE":
                if arg not in tags:
                    raise HubError(404, f"Invalid rev id: {arg}", code="RevisionNotFound")
                del tags[arg]
            else:
                tag = self._json_body().get("tag") or ""
                if tag in tags:
                    raise HubError(409, f"Tag already exists: {tag}")
                if not tag or tag.startswith("refs/"):
                    raise HubError(400, f"Invalid tag name: {tag}")
                tags[tag] = self._commit_for(meta, arg)["id"]
            self.store.save_repo(meta)
        self._send_json({})

    # -- downloads -------------------------------------------------------------------------------
    def _resolve(self, meta: dict, revision: str, path: str) -> None:
        commit = self._commit_for(meta, revision)
        entry = commit["files"].get(path)
        headers = {"X-Repo-Commit": commit["id"], "Accept-Ranges": "bytes"}
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", code="EntryNotFound", headers=headers)
        size = entry["size"]
        if entry["lfs"]:
            headers.update(
                {"ETag": f'"{entry["sha256"]}"', "X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(size)}
            )
        else:
            headers["ETag"] = f'"{entry["oid"]}"'
        headers["Content-Disposition"] = f'inline; filename="{path.rsplit("/", 1)[-1]}";'.encode().decode("latin-1")
        start, end, status = 0, size - 1, 200
        range_header = self.headers.get("Range")
        if range_header:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                raise HubError(416, f"Invalid range: {range_header}", headers={"Content-Range": f"bytes */{size}"})
            if m.group(1) == "":  # suffix range: last N bytes
                start, end = max(size - int(m.group(2)), 0), size - 1
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start >= size or start > end:
                raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(end - start + 1, 0)
        if self.command == "HEAD":
            return self._send(status, b"", headers, "application/octet-stream", content_length=length)
        self._send(status, b"", headers, "application/octet-stream", content_length=length)
        with open(self.store.blob_path(entry["sha256"]), "rb") as f:
            f.seek(start)
            while length > 0:
                chunk = f.read(min(length, 1 << 20))
                if not chunk:
                    break
                self.wfile.write(chunk)
                length -= len(chunk)

    # -- uploads ---------------------------------------------------------------------------------
    def _head_files(self, meta: dict, revision: str, create_pr: bool) -> dict:
        sha = self.store.resolve_revision(meta, revision)
        if sha is None:
            if create_pr:
                return {}
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return self.store.load_commit(meta, sha)["files"]

    def _read_text_file(self, files: dict, path: str) -> str | None:
        entry = files.get(path)
        if entry is None:
            return None
        return self.store.blob_path(entry["sha256"]).read_bytes().decode("utf-8", "replace")

    def _preupload(self, meta: dict, revision: str) -> None:
        payload = self._json_body()
        create_pr = _truthy((self.query.get("create_pr") or ["0"])[0])
        files = self._head_files(meta, revision, create_pr)
        lfs_rules = _gitattributes_lfs_patterns(self._read_text_file(files, ".gitattributes") or "")
        gitignore = payload.get("gitIgnore")
        if gitignore is None:
            gitignore = self._read_text_file(files, ".gitignore")
        out = []
        for item in payload.get("files") or []:
            path = _validate_path_in_repo(item["path"])
            sample = base64.b64decode(item.get("sample") or "")
            lfs = int(item.get("size") or 0) >= self.store.lfs_threshold or b"\x00" in sample
            for pattern, is_lfs in lfs_rules:
                if _path_matches(pattern, path):
                    lfs = lfs or is_lfs
            remote = files.get(path)
            remote_oid = None if remote is None else (remote["sha256"] if remote["lfs"] else remote["oid"])
            out.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": _is_ignored(gitignore, path),
                    "oid": remote_oid,
                }
            )
        self._send_json({"files": out, "commitOid": self.store.resolve_revision(meta, revision)})

    def _lfs_batch(self, meta: dict) -> None:
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "LocalHub only implements the LFS 'upload' operation")
        if "basic" not in (payload.get("transfers") or ["basic"]):
            raise HubError(400, "LocalHub only implements the 'basic' LFS transfer")
        objects = []
        for obj in payload.get("objects") or []:
            oid, size = obj.get("oid"), obj.get("size")
            if not (isinstance(oid, str) and _SHA256_RE.match(oid) and isinstance(size, int) and size >= 0):
                objects.append(
                    {"oid": str(oid), "size": int(size or 0), "error": {"code": 422, "message": "Invalid oid/size"}}
                )
                continue
            if self.store.has_blob(oid, size):
                objects.append({"oid": oid, "size": size})  # already uploaded: no actions
                continue
            ticket = secrets.token_hex(16)
            with self.store.lock:
                self.hub._upload_tickets[ticket] = (oid, size)
            repo_base = f"{self.hub.endpoint}/{_URL_PREFIX[meta['type']]}{meta['id']}.git/info/lfs/objects"
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {
                        "upload": {"href": f"{self.hub.endpoint}/__lfs/upload/{oid}?ticket={ticket}", "header": {}},
                        "verify": {"href": f"{repo_base}/verify", "header": {}},
                    },
                }
            )
        self._send_json(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_put(self, oid: str) -> None:
        ticket = (self.query.get("ticket") or [""])[0]
        with self.store.lock:
            expected = self.hub._upload_tickets.get(ticket)
        if expected is None or expected[0] != oid:
            raise HubError(403, "Invalid or expired LFS upload ticket")
        if self.upload_size != expected[1]:
            raise HubError(400, f"Size mismatch: expected {expected[1]} bytes, got {self.upload_size}")
        if self.upload_sha256 != oid:
            raise HubError(400, "sha256 mismatch: uploaded content does not match the LFS oid")
        self.upload.replace(self.store.blob_path(oid))
        self._send(200, b"", {"ETag": f'"{oid[:32]}"'})

    def _lfs_verify(self, meta: dict) -> None:
        payload = self._json_body()
        if not self.store.has_blob(str(payload.get("oid")), payload.get("size")):
            raise HubError(404, f"LFS object not found: {payload.get('oid')}")
        self._send_json({"oid": payload["oid"], "size": payload["size"]})

    def _commit(self, meta: dict, revision: str) -> None:
        user = self._require_write()
        create_pr = _truthy((self.query.get("create_pr") or ["0"])[0])
        try:
            lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        except ValueError as exc:
            raise HubError(400, f"Invalid ndjson payload: {exc}") from None
        header = next((line["value"] for line in lines if line.get("key") == "header"), None)
        if not header or not header.get("summary"):
            raise HubError(400, "Commit header with a non-empty summary is required")

        with self.store.lock:
            meta = self.store.load_repo(meta["type"], meta["id"])
            if revision.startswith("refs/heads/"):
                revision = revision[len("refs/heads/") :]
            if revision.startswith("refs/pr/") and revision[len("refs/pr/") :] in meta["refs"]["prs"]:
                ref_kind, ref_name = "prs", revision[len("refs/pr/") :]
            elif revision in meta["refs"]["heads"]:
                ref_kind, ref_name = "heads", revision
            else:
                message = f"Invalid rev id: {revision} (commits must target a branch)"
                raise HubError(404, message, code="RevisionNotFound")
            head = meta["refs"][ref_kind][ref_name]
            parent_commit = header.get("parentCommit")
            if parent_commit and parent_commit != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(self.store.load_commit(meta, head)["files"])
            for line in lines:
                key, value = line.get("key"), line.get("value") or {}
                if key == "header":
                    continue
                path = str(value.get("path", ""))
                path = _validate_path_in_repo(path.strip("/") if key == "deletedFolder" else path)
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"Unsupported encoding: {value.get('encoding')}")
                    files[path] = self.store._entry(base64.b64decode(value.get("content") or ""), lfs=False)
                elif key == "lfsFile":
                    oid = value.get("oid", "")
                    if not (_SHA256_RE.match(oid) and self.store.has_blob(oid)):
                        raise HubError(
                            422,
                            f"Your push was rejected because an LFS pointer pointed to a file that does not exist"
                            f" (path={path}, oid={oid})",
                        )
                    size = self.store.blob_path(oid).stat().st_size
                    if value.get("size") is not None and int(value["size"]) != size:
                        raise HubError(422, f"LFS size mismatch for {path}")
                    files[path] = {
                        "sha256": oid,
                        "size": size,
                        "lfs": True,
                        "oid": git_blob_sha1(lfs_pointer(oid, size)),
                    }
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    doomed = [p for p in files if p.startswith(path + "/")]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound")
                    for p in doomed:
                        del files[p]
                else:
                    raise HubError(400, f"Unknown commit operation: {key}")

            pr_url = None
            if create_pr:
                number = str(max([int(n) for n in meta["refs"]["prs"]] + [0]) + 1)
                ref_kind, ref_name = "prs", number
                pr_url = f"{self._repo_url(meta)}/discussions/{number}"
            sha = self.store.write_commit(
                meta,
                parents=[head],
                files=files,
                title=header["summary"],
                message=header.get("description") or "",
                author=user,
            )
            meta["refs"][ref_kind][ref_name] = sha
            self.store.save_repo(meta)
        self._send_json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self._repo_url(meta)}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": pr_url,
            }
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: LocalHub):
        self.hub = hub
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request_thread(self, request, client_address):  # type: ignore[override]
        with self._conn_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.discard(request)

    def close_all_connections(self) -> None:
        with self._conn_lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class LocalHub:
    """A Hub-compatible HTTP server on 127.0.0.1 storing repos under ``root_dir``.

    Attributes: ``endpoint`` (``http://127.0.0.1:<port>``), ``token`` (a valid write token), ``user``
    (namespace used when a repo id has none), ``requests`` (list of ``RequestRecord``), ``errors``
    (tracebacks of server-side bugs; should stay empty).
    """

    def __init__(
        self,
        root_dir: str | Path,
        token: str = DEFAULT_TOKEN,
        user: str = DEFAULT_USER,
        lfs_threshold: int = LFS_THRESHOLD,
    ):
        self.root_dir = Path(root_dir)
        self._store = _Store(self.root_dir, lfs_threshold)
        self.token = token
        self.user = user
        self.tokens: dict[str, dict] = {token: {"user": user, "write": True}}
        self.requests: list[RequestRecord] = []
        self.errors: list[str] = []
        self._failures: list[Failure] = []
        self._upload_tickets: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> LocalHub:
        if self._server is None:
            self._server = _Server(self)
            host, port = self._server.server_address[:2]
            self.endpoint = f"http://{host}:{port}"
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="LocalHub", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all_connections()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- configuration -----------------------------------------------------------------------------
    def add_token(self, token: str, user: str | None = None, write: bool = True) -> None:
        """Register another valid token (``write=False``: read-only, writes get a 403)."""
        self.tokens[token] = {"user": user or self.user, "write": write}

    def fail_next(
        self,
        path_regex: str,
        status: int | None = 500,
        times: int | None = 1,
        method: str | None = None,
        message: str | None = None,
        headers: dict | None = None,
        delay: float = 0.0,
    ) -> Failure:
        """Make the next ``times`` requests whose path matches ``path_regex`` fail with ``status``.

        ``times=None`` fails until ``clear_failures()``.  ``status=0`` closes the connection without an
        answer (network error on the client side).  ``status=None`` only delays by ``delay`` seconds.
        Returns the rule; its ``hits`` attribute counts how many requests it affected.
        """
        rule = Failure(
            pattern=re.compile(path_regex),
            status=status,
            times=times,
            method=method,
            message=message or f"Injected failure (HTTP {status})",
            headers=dict(headers or {}),
            delay=delay,
        )
        with self._lock:
            self._failures.append(rule)
        return rule

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def _take_failure(self, method: str, raw_path: str) -> Failure | None:
        with self._lock:
            for rule in self._failures:
                if rule.matches(method, raw_path):
                    rule.hits += 1
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._failures.remove(rule)
                    return rule
        return None

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    # -- introspection helpers for tests ------------------------------------------------------------
    def count(self, method: str | None = None, path_regex: str = "", status: int | None = None) -> int:
        """Number of recorded requests matching method / path regex (on the unquoted path) / status."""
        pattern = re.compile(path_regex)
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method)
                and pattern.search(unquote(r.path))
                and (status is None or r.status == status)
            )

    def repo_files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Server-side view of a repo snapshot: ``{path: content}`` (reads the disk, not the API)."""
        with self._store.lock:
            meta = self._store.load_repo(repo_type, repo_id)
            if meta is None:
                raise KeyError(f"{repo_type} {repo_id} does not exist")
            sha = self._store.resolve_revision(meta, revision)
            if sha is None:
                raise KeyError(f"revision {revision} not found in {repo_id}")
            files = self._store.load_commit(meta, sha)["files"]
        return {p: self._store.blob_path(e["sha256"]).read_bytes() for p, e in files.items()}

    def repo_commits(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[dict]:
        """Server-side commit history (newest first), each with ``id``, ``title``, ``files`` manifest."""
        with self._store.lock:
            meta = self._store.load_repo(repo_type, repo_id)
            if meta is None:
                raise KeyError(f"{repo_type} {repo_id} does not exist")
            sha = self._store.resolve_revision(meta, revision)
            return self._store.history(meta, sha) if sha else []

    def is_lfs(self, repo_id: str, path: str, repo_type: str = "model", revision: str = "main") -> bool:
        commits = self.repo_commits(repo_id, repo_type, revision)
        return bool(commits and commits[0]["files"][path]["lfs"])
