"""Tests of the local Hub server (tests/hub_server.py) driven by the real huggingface_hub client,
transformers, and datasets: no mocks, every assertion is on bytes / listings coming back over HTTP
or on the server's on-disk state."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session

REPO = "user/tiny-model"


def _png_bytes(color=(255, 0, 0)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def _safetensors_bytes(seed: int = 0) -> bytes:
    import torch
    from safetensors.torch import save

    gen = torch.Generator().manual_seed(seed)
    return save({"weight": torch.randn(16, 8, generator=gen), "bias": torch.zeros(16)})


def _make_folder(root: Path, version: int = 1) -> dict[str, bytes]:
    files = {
        "config.json": json.dumps({"model_type": "tiny", "version": version}).encode(),
        "model.safetensors": _safetensors_bytes(seed=version),
        "samples/line_0.png": _png_bytes((version * 40 % 256, 0, 0)),
        "notes/readme.txt": f"हिन्दी OCR notes v{version}\n".encode(),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@pytest.fixture
def api(local_hub):
    return HfApi(endpoint=local_hub.endpoint, token=local_hub.token)


# --------------------------------------------------------------------------------------------------
# 1. repos
# --------------------------------------------------------------------------------------------------
def test_create_repo_model_and_dataset(local_hub, api):
    url = api.create_repo(REPO, repo_type="model", private=False, exist_ok=True)
    assert url.repo_id == REPO and url.repo_type == "model"
    assert str(url) == f"{local_hub.endpoint}/{REPO}"
    # exist_ok=True on an existing repo answers 409 + url; the client must accept it
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(REPO)
    assert exc.value.response.status_code == 409

    ds_url = api.create_repo("user/private-ds", repo_type="dataset", private=True, exist_ok=True)
    assert ds_url.repo_type == "dataset" and str(ds_url) == f"{local_hub.endpoint}/datasets/user/private-ds"

    info = api.repo_info(REPO)
    assert info.id == REPO and info.private is False and len(info.sha) == 40
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]  # initial commit, like the real Hub
    ds_info = api.dataset_info("user/private-ds")
    assert ds_info.private is True and ds_info.sha != info.sha

    # private repos are invisible without a token; model namespace != dataset namespace
    anon = HfApi(endpoint=local_hub.endpoint, token=False)
    assert anon.repo_exists(REPO) is True
    assert anon.repo_exists("user/private-ds", repo_type="dataset") is False
    with pytest.raises(RepositoryNotFoundError):
        anon.dataset_info("user/private-ds")
    assert api.repo_exists("user/private-ds", repo_type="model") is False

    api.update_repo_settings(REPO, private=True)
    assert anon.repo_exists(REPO) is False and api.model_info(REPO).private is True
    api.update_repo_settings(REPO, private=False)

    # repo id without namespace -> the token's user
    assert api.create_repo("no-namespace").repo_id == f"{local_hub.user}/no-namespace"
    assert api.whoami()["name"] == local_hub.user

    # functional API (module-level HfApi instance) goes to the local hub too
    import huggingface_hub

    assert huggingface_hub.repo_exists(REPO)
    api.delete_repo(REPO)
    assert not api.repo_exists(REPO)


# --------------------------------------------------------------------------------------------------
# 2. + 3. + 4. uploads (regular + LFS), listings, downloads
# --------------------------------------------------------------------------------------------------
def test_upload_folder_lfs_and_downloads(local_hub, api, tmp_path):
    api.create_repo(REPO, exist_ok=True)
    folder = tmp_path / "out"
    files_v1 = _make_folder(folder, version=1)

    info1 = api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="Upload v1")
    assert len(info1.oid) == 40
    assert info1.commit_url == f"{local_hub.endpoint}/{REPO}/commit/{info1.oid}"

    # server side: exact bytes, LFS routing decided by preupload, LFS protocol actually used
    stored = local_hub.repo_files(REPO)
    assert {k: v for k, v in stored.items() if k != ".gitattributes"} == files_v1
    assert local_hub.is_lfs(REPO, "model.safetensors") and local_hub.is_lfs(REPO, "samples/line_0.png")
    assert not local_hub.is_lfs(REPO, "config.json") and not local_hub.is_lfs(REPO, "notes/readme.txt")
    assert local_hub.count("POST", r"/api/models/user/tiny-model/preupload/main$") == 1
    assert local_hub.count("POST", r"\.git/info/lfs/objects/batch$", status=200) == 1
    assert local_hub.count("PUT", r"^/__lfs/upload/", status=200) == 2
    assert local_hub.count("POST", r"\.git/info/lfs/objects/verify$", status=200) == 2
    assert local_hub.repo_commits(REPO)[0]["title"] == "Upload v1"

    # listings
    assert sorted(api.list_repo_files(REPO)) == sorted([".gitattributes", *files_v1])
    assert api.file_exists(REPO, "samples/line_0.png") and not api.file_exists(REPO, "nope.bin")
    root = {e.path: type(e).__name__ for e in api.list_repo_tree(REPO)}
    assert root == {
        ".gitattributes": "RepoFile",
        "config.json": "RepoFile",
        "model.safetensors": "RepoFile",
        "samples": "RepoFolder",
        "notes": "RepoFolder",
    }
    sub = list(api.list_repo_tree(REPO, path_in_repo="samples", expand=True))
    assert [e.path for e in sub] == ["samples/line_0.png"]
    assert sub[0].lfs.sha256 and sub[0].lfs.size == len(files_v1["samples/line_0.png"])
    assert sub[0].last_commit.oid == info1.oid and sub[0].last_commit.title == "Upload v1"
    paths = api.get_paths_info(REPO, ["config.json", "samples", "missing.txt"])
    assert [(p.path, type(p).__name__) for p in paths] == [("config.json", "RepoFile"), ("samples", "RepoFolder")]
    info = api.model_info(REPO, files_metadata=True)
    assert info.sha == info1.oid
    siblings = {s.rfilename: s for s in info.siblings}
    import hashlib

    assert siblings["model.safetensors"].lfs.sha256 == hashlib.sha256(files_v1["model.safetensors"]).hexdigest()
    assert siblings["config.json"].lfs is None and siblings["config.json"].size == len(files_v1["config.json"])
    commits = api.list_repo_commits(REPO)
    assert [c.title for c in commits] == ["Upload v1", "initial commit"]

    # second commit: update + add + delete -> new sha; unchanged files are skipped by the client
    files_v2 = dict(files_v1)
    files_v2["config.json"] = json.dumps({"model_type": "tiny", "version": 2}).encode()
    (folder / "config.json").write_bytes(files_v2["config.json"])
    info2 = api.create_commit(
        REPO,
        operations=[
            CommitOperationAdd("config.json", folder / "config.json"),
            CommitOperationAdd("model.safetensors", folder / "model.safetensors"),  # unchanged -> dropped
            CommitOperationAdd("extra/weights.bin", b"\x00binary" * 10),
            CommitOperationDelete("notes/"),
        ],
        commit_message="Update config",
        commit_description="second commit",
    )
    assert info2.oid != info1.oid
    head = local_hub.repo_commits(REPO)[0]
    assert head["id"] == info2.oid and head["message"] == "second commit"
    assert head["files"]["model.safetensors"] == local_hub.repo_commits(REPO)[1]["files"]["model.safetensors"]
    assert sorted(api.list_repo_files(REPO)) == sorted(
        [".gitattributes", "config.json", "model.safetensors", "samples/line_0.png", "extra/weights.bin"]
    )
    assert sorted(api.list_repo_files(REPO, revision=info1.oid)) == sorted([".gitattributes", *files_v1])
    assert api.model_info(REPO).sha == info2.oid

    # downloads: main vs pinned commit, LFS and regular
    cache = tmp_path / "cache"
    p_main = hf_hub_download(REPO, "config.json", cache_dir=cache)
    p_old = hf_hub_download(REPO, "config.json", revision=info1.oid, cache_dir=cache)
    assert Path(p_main).read_bytes() == files_v2["config.json"]
    assert Path(p_old).read_bytes() == files_v1["config.json"]
    assert f"snapshots/{info2.oid}/" in p_main and f"snapshots/{info1.oid}/" in p_old
    p_lfs = hf_hub_download(REPO, "model.safetensors", cache_dir=cache)
    assert Path(p_lfs).read_bytes() == files_v1["model.safetensors"]
    # LFS blob is cached under its sha256 (X-Linked-Etag), regular file under its git sha1 (ETag)
    assert Path(p_lfs).resolve().name == hashlib.sha256(files_v1["model.safetensors"]).hexdigest()
    data = files_v2["config.json"]
    assert Path(p_main).resolve().name == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    meta = api.get_hf_file_metadata(url=f"{local_hub.endpoint}/{REPO}/resolve/main/samples/line_0.png")
    assert meta.commit_hash == info2.oid and meta.size == len(files_v1["samples/line_0.png"])

    snap_main = Path(snapshot_download(REPO, cache_dir=tmp_path / "snap"))
    snap_v1 = Path(snapshot_download(REPO, revision=info1.oid, local_dir=tmp_path / "snap_v1"))
    got_main = {str(p.relative_to(snap_main)): p.read_bytes() for p in snap_main.rglob("*") if p.is_file()}
    got_v1 = {
        str(p.relative_to(snap_v1)): p.read_bytes()
        for p in snap_v1.rglob("*")
        if p.is_file() and ".cache" not in p.parts
    }
    assert snap_main.name == info2.oid
    assert got_main == {k: v for k, v in local_hub.repo_files(REPO).items()}
    assert {k: v for k, v in got_v1.items() if k != ".gitattributes"} == files_v1

    # errors from the resolve endpoint map to the right client exceptions
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "does/not/exist.txt", cache_dir=cache)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch", cache_dir=cache)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("user/no-such-repo", "config.json", cache_dir=cache)

    # re-uploading identical content creates no new commit (server returns remote oids in preupload)
    n_commits = len(local_hub.repo_commits(REPO))
    api.upload_folder(repo_id=REPO, folder_path=folder, allow_patterns=["model.safetensors", "samples/*"])
    assert len(local_hub.repo_commits(REPO)) == n_commits


def test_space_repo_needs_sdk_and_serves_files(local_hub, api):
    # The real Hub refuses a Space that does not say how it runs (huggingface_hub checks it before sending, too).
    answer = get_session().post(f"{local_hub.endpoint}/api/repos/create", json={"name": "demo", "type": "space"},
                                headers={"authorization": f"Bearer {local_hub.token}"})
    assert answer.status_code == 400 and "sdk" in answer.json()["error"]
    url = api.create_repo("user/demo", repo_type="space", space_sdk="gradio", private=True)
    assert url.repo_type == "space" and str(url) == f"{local_hub.endpoint}/spaces/user/demo"
    api.upload_file(path_or_fileobj=b"print('hi')\n", path_in_repo="app.py", repo_id="user/demo", repo_type="space")
    info = api.space_info("user/demo")
    assert info.private is True and info.sdk == "gradio"
    assert sorted(s.rfilename for s in info.siblings) == [".gitattributes", "app.py"]
    assert local_hub.repo_files("user/demo", repo_type="space")["app.py"] == b"print('hi')\n"
    assert api.repo_exists("user/demo", repo_type="model") is False
    assert HfApi(endpoint=local_hub.endpoint, token=False).repo_exists("user/demo", repo_type="space") is False


def test_branches_tags_pr_and_range(local_hub, api):
    api.create_repo(REPO, exist_ok=True)
    data = bytes(range(256)) * 4
    api.upload_file(path_or_fileobj=data, path_in_repo="blob.bin", repo_id=REPO)
    api.create_branch(REPO, branch="dev")
    api.upload_file(path_or_fileobj=b"dev only", path_in_repo="dev.txt", repo_id=REPO, revision="dev")
    api.create_tag(REPO, tag="v1", revision="dev")
    pr = api.upload_file(path_or_fileobj=b"pr", path_in_repo="pr.txt", repo_id=REPO, create_pr=True)
    assert pr.pr_url.endswith("/discussions/1") and pr.pr_revision == "refs/pr/1"

    assert "dev.txt" not in api.list_repo_files(REPO)
    assert "dev.txt" in api.list_repo_files(REPO, revision="v1")
    assert "pr.txt" in api.list_repo_files(REPO, revision="refs/pr/1")
    refs = api.list_repo_refs(REPO, include_pull_requests=True)
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"]

    # HfFileSystem reads with Range requests
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem(endpoint=local_hub.endpoint, token=local_hub.token)
    with fs.open(f"{REPO}/blob.bin", "rb", block_size=100) as f:
        f.seek(300)
        assert f.read(10) == data[300:310]
    assert fs.cat_file(f"{REPO}@refs/pr/1/pr.txt") == b"pr"
    assert sorted(fs.ls(f"{REPO}@dev", detail=False)) == sorted(
        [f"{REPO}@dev/.gitattributes", f"{REPO}@dev/blob.bin", f"{REPO}@dev/dev.txt"]
    )
    assert local_hub.count("GET", r"/resolve/", status=206) >= 1


def test_raw_http_protocol_details(local_hub, api):
    """Wire-level details the client relies on: headers of resolve, ranges, chunked bodies, errors."""
    import hashlib
    import http.client

    api.create_repo(REPO, exist_ok=True)
    data = bytes(range(200))
    sha = api.upload_file(path_or_fileobj=data, path_in_repo="d/x.bin", repo_id=REPO).oid
    host, port = local_hub.endpoint.removeprefix("http://").split(":")

    def request(method, path, body=None, headers=None, chunked=False):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    status, headers, body = request("HEAD", f"/{REPO}/resolve/main/d/x.bin")
    assert status == 200 and body == b""
    assert headers["x-repo-commit"] == sha
    assert headers["x-linked-etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert headers["x-linked-size"] == headers["content-length"] == "200"

    status, headers, body = request("GET", f"/{REPO}/resolve/{sha}/d/x.bin", headers={"Range": "bytes=-10"})
    assert status == 206 and body == data[-10:] and headers["content-range"] == "bytes 190-199/200"
    status, _, body = request("GET", f"/{REPO}/resolve/main/d%2Fx.bin", headers={"Range": "bytes=5-9"})
    assert status == 206 and body == data[5:10]
    status, headers, _ = request("GET", f"/{REPO}/resolve/main/d/x.bin", headers={"Range": "bytes=200-"})
    assert status == 416 and headers["content-range"] == "bytes */200"

    status, headers, _ = request("GET", f"/{REPO}/resolve/main/nope.txt")
    assert status == 404 and headers["x-error-code"] == "EntryNotFound" and headers["x-repo-commit"] == sha
    status, headers, _ = request("GET", f"/{REPO}/resolve/nobranch/d/x.bin")
    assert status == 404 and headers["x-error-code"] == "RevisionNotFound"
    status, headers, _ = request("GET", "/api/models/user/missing")
    assert status == 404 and headers["x-error-code"] == "RepoNotFound"

    # chunked request body (httpx streams file objects that way when their size is unknown)
    payload = json.dumps({"files": [{"path": "d/x.bin", "sample": "", "size": 200}]}).encode()
    auth = {"Authorization": f"Bearer {local_hub.token}", "Content-Type": "application/json"}
    status, _, body = request(
        "POST", f"/api/models/{REPO}/preupload/main", body=iter([payload[:7], payload[7:]]), headers=auth, chunked=True
    )
    assert status == 200
    info = json.loads(body)["files"][0]
    assert info["uploadMode"] == "lfs" and info["oid"] == hashlib.sha256(data).hexdigest()

    status, headers, body = request("POST", f"/api/models/{REPO}/preupload/main", body=payload)
    assert status == 401 and headers["x-error-message"] == "Invalid credentials in Authorization header"
    assert json.loads(body) == {"error": "Invalid credentials in Authorization header"}


# --------------------------------------------------------------------------------------------------
# 6. auth and injected failures
# --------------------------------------------------------------------------------------------------
def test_auth_errors_on_writes(local_hub, api, capfd):
    api.create_repo(REPO, exist_ok=True)
    before = len(local_hub.repo_commits(REPO))

    wrong = HfApi(endpoint=local_hub.endpoint, token="hf_wrong_token_000000000000000000")
    with pytest.raises(HfHubHTTPError) as exc:
        wrong.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=REPO)
    assert exc.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as exc:
        wrong.whoami()
    assert exc.value.response.status_code == 401

    anon = HfApi(endpoint=local_hub.endpoint, token=False)
    for call in (
        lambda: anon.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=REPO),
        lambda: anon.create_repo("user/other"),
        lambda: anon.create_commit(REPO, operations=[CommitOperationDelete(".gitattributes")], commit_message="x"),
    ):
        with pytest.raises(HfHubHTTPError) as exc:
            call()
        assert exc.value.response.status_code == 401

    local_hub.add_token("hf_readonly_token_00000000000000000", write=False)
    ro = HfApi(endpoint=local_hub.endpoint, token="hf_readonly_token_00000000000000000")
    with pytest.raises(HfHubHTTPError) as exc:
        ro.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=REPO)
    assert exc.value.response.status_code == 403
    assert ro.list_repo_files(REPO) == [".gitattributes"]  # reads are fine

    assert len(local_hub.repo_commits(REPO)) == before  # nothing was committed
    assert local_hub.count(status=401) >= 4
    out, err = capfd.readouterr()
    assert local_hub.token not in out + err and "hf_wrong_token" not in out + err
    assert all(local_hub.token not in r.path for r in local_hub.requests)


def test_injected_failures(local_hub, api):
    api.create_repo(REPO, exist_ok=True)

    # commit POST is not retried by the client: the 500 surfaces, and nothing is committed
    rule = local_hub.fail_next(r"/commit/main$", status=500, message="disk on fire")
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=REPO)
    assert exc.value.response.status_code == 500 and "disk on fire" in str(exc.value)
    assert rule.hits == 1 and "a.txt" not in local_hub.repo_files(REPO)

    # a permanent 401 on commits (until cleared)
    local_hub.fail_next(r"/commit/", status=401, times=None, method="POST")
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as exc:
            api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=REPO)
        assert exc.value.response.status_code == 401
    local_hub.clear_failures()
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=REPO)
    assert local_hub.repo_files(REPO)["a.txt"] == b"v1"

    # LFS PUT fails once with 503: lfs_upload uses http_backoff -> retried -> success
    rule = local_hub.fail_next(r"^/__lfs/upload/", status=503, method="PUT")
    api.upload_file(path_or_fileobj=b"\x00" * 1000, path_in_repo="w.bin", repo_id=REPO)
    assert rule.hits == 1 and local_hub.repo_files(REPO)["w.bin"] == b"\x00" * 1000
    # the retry, seen by the server: the failed PUT, then the same upload again (no clock involved)
    assert local_hub.count("PUT", r"^/__lfs/upload/", status=503) == 1
    assert local_hub.count("PUT", r"^/__lfs/upload/") == 2

    # download: HEAD fails with 502 once -> hf_hub_download retries and gets the file
    local_hub.fail_next(r"/resolve/main/a\.txt$", status=502, method="HEAD")
    assert Path(hf_hub_download(REPO, "a.txt")).read_bytes() == b"v1"

    # connection dropped without an answer on the preupload call -> retried by http_backoff
    rule = local_hub.fail_next(r"/preupload/", status=0)
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=REPO)
    assert rule.hits == 1 and local_hub.repo_files(REPO)["a.txt"] == b"v2"

    # LFS blob that was never uploaded: the server rejects the lfsFile commit line (422)
    from huggingface_hub._commit_api import _send_commit

    op = CommitOperationAdd("ghost.bin", b"\x01" * 10)
    op._upload_mode = "lfs"
    with pytest.raises(HfHubHTTPError) as exc:
        _send_commit(
            operations=[op],
            files_to_copy={},
            commit_message="ghost",
            commit_description="",
            repo_type="model",
            repo_id=REPO,
            headers=api._build_hf_headers(),
            revision="main",
            endpoint=local_hub.endpoint,
        )
    assert exc.value.response.status_code == 422


def test_upload_folder_run_as_future_and_parent_commit(local_hub, api, tmp_path):
    """What Trainer(push_to_hub=True, hub_strategy='every_save') does: background upload_folder jobs."""
    api.create_repo(REPO, exist_ok=True)
    for step in (1, 2):
        ckpt = tmp_path / f"checkpoint-{step}"
        _make_folder(ckpt, version=step)
        future = api.upload_folder(
            repo_id=REPO, folder_path=ckpt, commit_message=f"Training in progress, step {step}", run_as_future=True
        )
        assert future.result(timeout=60).oid == local_hub.repo_commits(REPO)[0]["id"]
    assert [c["title"] for c in local_hub.repo_commits(REPO)][:2] == [
        "Training in progress, step 2",
        "Training in progress, step 1",
    ]
    assert json.loads(local_hub.repo_files(REPO)["config.json"])["version"] == 2

    old = local_hub.repo_commits(REPO)[1]["id"]
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"late", path_in_repo="late.txt", repo_id=REPO, parent_commit=old)
    assert exc.value.response.status_code == 412


# --------------------------------------------------------------------------------------------------
# 5. transformers / datasets / subprocess flows
# --------------------------------------------------------------------------------------------------
def test_transformers_and_peft_push_to_hub_and_from_pretrained(local_hub, tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37
    )
    model = BertModel(config)
    commit = model.push_to_hub("user/tiny-bert", commit_message="tiny bert")
    assert local_hub.repo_commits("user/tiny-bert")[0]["title"] == "tiny bert"
    files = local_hub.repo_files("user/tiny-bert")
    assert {"config.json", "model.safetensors"} <= set(files)
    assert local_hub.is_lfs("user/tiny-bert", "model.safetensors")
    assert json.loads(files["config.json"])["hidden_size"] == 32
    assert commit.oid == local_hub.repo_commits("user/tiny-bert")[0]["id"]

    loaded = BertModel.from_pretrained("user/tiny-bert", cache_dir=tmp_path / "tf_cache")
    ref, got = model.state_dict(), loaded.state_dict()
    assert set(ref) == set(got)
    assert all(torch.equal(ref[k], got[k]) for k in ref)

    # PEFT adapter round trip (what a LoRA fine-tune of GOT-OCR2 pushes)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["query", "value"], init_lora_weights=False))
    peft_model.push_to_hub("user/tiny-bert-lora", commit_message="lora adapter")
    adapter_files = local_hub.repo_files("user/tiny-bert-lora")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(adapter_files)
    assert local_hub.is_lfs("user/tiny-bert-lora", "adapter_model.safetensors")
    reloaded = PeftModel.from_pretrained(
        BertModel.from_pretrained("user/tiny-bert", cache_dir=tmp_path / "tf_cache"), "user/tiny-bert-lora"
    )
    lora_ref = {k: v for k, v in peft_model.state_dict().items() if "lora_" in k}
    lora_got = {k: v for k, v in reloaded.state_dict().items() if "lora_" in k}
    assert lora_ref and set(lora_ref) == set(lora_got)
    assert all(torch.equal(lora_ref[k], lora_got[k]) for k in lora_ref)


def test_datasets_push_to_hub_and_load_dataset(local_hub, tmp_path):
    import datasets

    rows = {"text": ["नमस्ते दुनिया", "भारत", "ओसीआर"], "id": [0, 1, 2]}
    ds = datasets.Dataset.from_dict(rows)
    ds.push_to_hub("user/hindi-lines", commit_message="Upload lines")
    files = local_hub.repo_files("user/hindi-lines", repo_type="dataset")
    parquet = [p for p in files if p.endswith(".parquet")]
    assert parquet == ["data/train-00000-of-00001.parquet"]
    assert local_hub.is_lfs("user/hindi-lines", parquet[0], repo_type="dataset")
    assert b"dataset_info" in files["README.md"] and b"data/train-*" in files["README.md"]
    assert local_hub.repo_commits("user/hindi-lines", repo_type="dataset")[0]["title"] == "Upload lines"

    loaded = datasets.load_dataset("user/hindi-lines", split="train", cache_dir=str(tmp_path / "ds_cache"))
    assert loaded.to_dict() == rows
    assert local_hub.count(path_regex=r"^/api/datasets/user/hindi-lines") >= 1


def test_subprocess_uses_env_vars_only(local_hub, tmp_path):
    """A subprocess (like `train.py --push_to_hub`) only gets the env vars set by the fixture."""
    script = textwrap.dedent(
        """
        import sys
        from huggingface_hub import HfApi, hf_hub_download, constants
        assert constants.ENDPOINT.startswith("http://127.0.0.1:"), constants.ENDPOINT
        api = HfApi()
        api.create_repo("user/from-subprocess", exist_ok=True)
        api.upload_file(path_or_fileobj=b"\\x00weights", path_in_repo="w.bin", repo_id="user/from-subprocess")
        path = hf_hub_download("user/from-subprocess", "w.bin")
        sys.stdout.write(open(path, "rb").read().hex())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr
    assert bytes.fromhex(proc.stdout.strip()) == b"\x00weights"
    assert local_hub.repo_files("user/from-subprocess")["w.bin"] == b"\x00weights"
    assert local_hub.is_lfs("user/from-subprocess", "w.bin")
    # the subprocess cache lives under the fixture's HF_HOME
    assert any((Path(os.environ["HF_HUB_CACHE"]) / "models--user--from-subprocess").iterdir())
