"""``--resume_from_checkpoint hub``: continue a run in a new session (Kaggle and Colab end theirs after hours) from the
``last-checkpoint/`` that ``--hub_strategy checkpoint`` pushed to ``--hub_model_id``.

The folder is downloaded into ``output_dir`` as ``checkpoint-N`` (N from its trainer_state.json), the name the
Trainer and :mod:`hindi_ocr.checkpoints` expect, and is then checked like any local checkpoint. A staging folder
named ``_...`` is used so that a kill mid-download leaves nothing that looks like a checkpoint (the Trainer's pushes
skip ``_*`` too).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from .checkpoints import TRAINER_STATE, checkpoint_problem

logger = logging.getLogger(__name__)

HUB = "hub"
LAST_CHECKPOINT = "last-checkpoint"
STAGING = "_last-checkpoint-download"


def wants_hub(resume) -> bool:
    return isinstance(resume, str) and resume.strip().lower() == HUB


def fetch_last_checkpoint(repo_id: str | None, output_dir: str, token: str | None = None,
                          revision: str | None = None) -> str:
    """The local ``checkpoint-N`` folder holding the Hub's ``last-checkpoint/``; downloads it unless already there."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    flag = "--resume_from_checkpoint hub"
    if not repo_id:
        raise SystemExit(f"{flag} fetches {LAST_CHECKPOINT}/ from the repo of --hub_model_id: add --hub_model_id "
                         "USER/NAME, the repo a run with --push_to_hub --hub_strategy checkpoint pushed to")
    where = f"{repo_id}" + (f" (revision {revision})" if revision else "")
    try:
        # one commit for every read: a checkpoint pushed in between must not mix with the one being fetched
        commit = HfApi(token=token).model_info(repo_id, revision=revision).sha
        state_file = hf_hub_download(repo_id, f"{LAST_CHECKPOINT}/{TRAINER_STATE}", revision=commit, token=token)
    except Exception as error:  # noqa: BLE001 - missing repo, missing folder, offline, no access: one message
        raise SystemExit(f"{flag}: could not read {LAST_CHECKPOINT}/{TRAINER_STATE} from {where} "
                         f"({type(error).__name__}: {error}). The run to continue must have been started with "
                         "--push_to_hub --hub_strategy checkpoint and have saved at least one checkpoint; a private "
                         "repo needs a token (hf auth login, HF_TOKEN or --hub_token)") from None
    state = Path(state_file).read_bytes()
    step = json.loads(state).get("global_step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise SystemExit(f"{flag}: {LAST_CHECKPOINT}/{TRAINER_STATE} in {where} has global_step {step!r}, not a "
                         "step number; it was not written by the Trainer")
    where += f" at commit {commit[:12]}"
    target = Path(output_dir) / f"checkpoint-{step}"
    if target.exists():
        if (target / TRAINER_STATE).is_file() and (target / TRAINER_STATE).read_bytes() == state \
                and checkpoint_problem(target) is None:
            logger.info("%s: %s already holds %s/ of %s (step %d)", flag, target, LAST_CHECKPOINT, where, step)
            return str(target)
        raise SystemExit(f"{flag}: --output_dir {output_dir} already holds a different {target.name}; resume from it "
                         "with --resume_from_checkpoint true, or give an empty --output_dir to fetch the Hub's")
    staging = Path(output_dir) / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # ours: a download a kill interrupted
    logger.info("%s: downloading %s/ (step %d) from %s into %s", flag, LAST_CHECKPOINT, step, where, target)
    snapshot_download(repo_id, revision=commit, token=token, allow_patterns=[f"{LAST_CHECKPOINT}/*"],
                      local_dir=staging)
    problem = checkpoint_problem(staging / LAST_CHECKPOINT)
    if problem:
        raise SystemExit(f"{flag}: {LAST_CHECKPOINT}/ in {where} cannot be resumed from: {problem}; it is left in "
                         f"{staging} to look at")
    (staging / LAST_CHECKPOINT).rename(target)
    shutil.rmtree(staging)
    return str(target)
