"""Shared pytest fixtures.

``local_hub`` starts a real Hub-compatible HTTP server (``tests/hub_server.py``) and points every
Hugging Face library of this process - and of any subprocess started by the test - at it.

How the endpoint is made to take effect (verified against huggingface_hub 2.4 / datasets 3.6 /
transformers 5.x):

* Subprocesses (e.g. ``train.py --push_to_hub``) only need the environment variables, which are set
  with ``monkeypatch.setenv``: ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_DISABLE_XET=1`` (the server has
  no Xet backend: uploads go through preupload -> LFS batch API -> PUT -> verify -> commit),
  ``HF_HOME`` / ``HF_HUB_CACHE`` / ``HF_DATASETS_CACHE`` / ``HF_XET_CACHE`` (under ``tmp_path``),
  telemetry / update checks / download counters off, ``NO_PROXY`` for 127.0.0.1.
* In-process, setting env vars is NOT enough: ``huggingface_hub.constants`` reads them at import
  time, and so does ``datasets.config``.  So the fixture also monkeypatches
    - ``huggingface_hub.constants``: ``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE`` (used by
      ``hf_hub_url``), ``HF_URL_HOSTS``, ``HF_HUB_DISABLE_XET`` (read at call time by
      ``is_xet_available``), the cache / token paths, ``HF_HUB_OFFLINE``;
    - ``huggingface_hub.hf_api.api.endpoint``: the module-level ``HfApi()`` behind the functional
      API (``huggingface_hub.create_repo``, ``upload_folder``, ...) copied the endpoint when created;
    - ``datasets.config.HF_ENDPOINT`` / ``HUB_DATASETS_URL`` / caches / ``HF_UPDATE_DOWNLOAD_COUNTS``
      if ``datasets`` is already imported (if it is imported later, during the test, it reads the env
      vars set above);
    - ``transformers.utils.hub._hf_api`` (a cached ``HfApi`` instance) is reset to ``None`` so that it
      is rebuilt with the patched endpoint.
  ``HfApi(...)`` instances created *before* the fixture keep their old endpoint: create them inside
  the test (or pass ``endpoint=local_hub.endpoint``).
* The shared httpx client of huggingface_hub is closed before and after each test
  (``close_session()``), so no keep-alive connection to a previous test's server is reused.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_server import LocalHub  # noqa: E402


def _patch_datasets(monkeypatch: pytest.MonkeyPatch, endpoint: str, hf_home: Path) -> None:
    cfg = sys.modules["datasets.config"]
    datasets_cache = hf_home / "datasets"
    monkeypatch.setattr(cfg, "HF_ENDPOINT", endpoint)
    monkeypatch.setattr(cfg, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(cfg, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    monkeypatch.setattr(cfg, "HF_HUB_OFFLINE", False, raising=False)
    monkeypatch.setattr(cfg, "HF_CACHE_HOME", str(hf_home))
    monkeypatch.setattr(cfg, "HF_DATASETS_CACHE", datasets_cache)
    monkeypatch.setattr(cfg, "DOWNLOADED_DATASETS_PATH", datasets_cache / "downloads")
    monkeypatch.setattr(cfg, "EXTRACTED_DATASETS_PATH", datasets_cache / "downloads" / "extracted")


def _reset_module_globals() -> None:
    """Forget caches that modules imported *during* a test may have built with that test's endpoint."""
    hub_mod = sys.modules.get("transformers.utils.hub")
    if hub_mod is not None and hasattr(hub_mod, "_hf_api"):
        hub_mod._hf_api = None


# Variables that would point the libraries at another endpoint or token, or keep them offline.
HUB_ENV_UNSET = ("HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HF_DATASETS_OFFLINE", "HUGGINGFACE_CO_STAGING", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE")


def hub_environment(hub: LocalHub, hf_home: Path) -> dict[str, str]:
    """Environment variables that point a subprocess's Hugging Face libraries at ``hub`` with caches in ``hf_home``."""
    endpoint = hub.endpoint
    return {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": hub.token,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_DATASETS_CACHE": str(hf_home / "datasets"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "DO_NOT_TRACK": "1",
        "NO_PROXY": ",".join(filter(None, ["127.0.0.1", "localhost", os.environ.get("NO_PROXY")])),
        "no_proxy": ",".join(filter(None, ["127.0.0.1", "localhost", os.environ.get("no_proxy")])),
    }


@pytest.fixture
def hub_reachable(monkeypatch):
    """For tests that run their own LocalHub: in-process huggingface_hub calls (HfApi, snapshot_download) must reach
    it also where HF_HUB_OFFLINE=1 is exported, an offline user's usual setting (subprocesses get their own env)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """A running ``LocalHub`` (see tests/hub_server.py) with all HF libraries pointed at it.

    Yields the hub: ``local_hub.endpoint``, ``local_hub.token``, ``local_hub.fail_next(...)``,
    ``local_hub.repo_files(repo_id)``, ``local_hub.count(method, path_regex)``...
    """
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub import hf_api as hf_api_module
    from huggingface_hub.utils import close_session

    hub = LocalHub(tmp_path / "hub_storage").start()
    endpoint = hub.endpoint
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()

    # --- environment (subprocesses, and modules imported later in this process) ---
    env = hub_environment(hub, hf_home)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in HUB_ENV_UNSET:
        monkeypatch.delenv(key, raising=False)

    # --- huggingface_hub constants read at import time ---
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    url_template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url_template)
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(hf_home / "assets"))
    monkeypatch.setattr(constants, "HF_XET_CACHE", str(hf_home / "xet"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens"))
    monkeypatch.setattr(hf_api_module.api, "endpoint", endpoint)
    assert huggingface_hub.constants is constants

    # --- libraries already imported that copied HF_ENDPOINT ---
    datasets_preloaded = "datasets.config" in sys.modules
    if datasets_preloaded:
        _patch_datasets(monkeypatch, endpoint, hf_home)
    if "transformers.utils.hub" in sys.modules:
        monkeypatch.setattr(sys.modules["transformers.utils.hub"], "_hf_api", None)

    close_session()
    try:
        yield hub
    finally:
        close_session()
        hub.stop()
        _reset_module_globals()
        # ``datasets`` imported *during* the test copied this test's HF_ENDPOINT / caches into
        # ``datasets.config``: once the env is restored, re-read it from the env (in place).
        if not datasets_preloaded and "datasets.config" in sys.modules:
            monkeypatch.undo()
            importlib.reload(sys.modules["datasets.config"])
        assert not hub.errors, "LocalHub internal errors:\n" + "\n".join(hub.errors)
