"""Publishing on the Hugging Face Hub: training arguments pickled without the token, and pushes that keep the files
and say how to retry when they fail. The card that goes with them is :mod:`hindi_ocr.card`.

The Trainer does the pushing (``--push_to_hub``, ``--hub_strategy``, ``--hub_private_repo``, ``--hub_token``);
:func:`publish_run` writes our card first (``OcrTrainer.create_model_card``) and retries the final push.
"""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path

from .card import GOT_IMAGE_TOKENS, merged_card
from .card_reading import base_license, load_card

logger = logging.getLogger(__name__)

TRAINER_PUSH_IGNORE = ("_*", "checkpoint-*")  # what Trainer.push_to_hub leaves out of output_dir
RETRY_WAITS = (3, 6)  # seconds before the 2nd and 3rd attempt of a final push
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class HubTokenNotPickled:
    """Mixin for TrainingArguments: the Trainer pickles the arguments into training_args.bin in output_dir and in
    every checkpoint, then pushes them; a ``--hub_token`` given on the command line must not travel with them."""

    def __getstate__(self):
        state = dict(self.__dict__)
        state["hub_token"] = None
        return state


def publish_merged(folder: str, repo_id: str, base: str | None, adapter: str, adapter_revision: str | None = None,
                   token: str | None = None, private: bool | None = None, line_layout: str = "squash",
                   max_new_tokens: int = 256, num_image_tokens: int = GOT_IMAGE_TOKENS, lines_per_page: int = 1) -> None:
    """infer.py --merge_lora DIR --push_to_hub REPO_ID: a card for the merged folder, then the upload."""
    card = merged_card(repo_id, base, adapter, load_card(adapter, adapter_revision, token), line_layout,
                       max_new_tokens, num_image_tokens, lines_per_page, licence=base_license(base, token))
    card.save(Path(folder) / "README.md")
    push_folder(folder, repo_id, token=token, private=private, commit_message="Upload merged model")


# ---- pushing ----------------------------------------------------------------------------------------------------

def publish_run(trainer) -> None:
    """End of train.py: our card into output_dir, then the final push when --push_to_hub was given."""
    if trainer.args.push_to_hub:
        push_run(trainer)
    else:
        trainer.create_model_card()


def push_run(trainer, commit_message: str = "End of training") -> None:
    """The final push: the model saved once by every process (a collective under FSDP / ZeRO-3, so it is never
    repeated on one process alone), then our card and the upload of output_dir from process 0, the upload alone
    retried on transient errors (what Trainer.push_to_hub does, split so); a failure keeps output_dir."""
    from huggingface_hub import HfApi
    from transformers.trainer_utils import get_last_checkpoint

    args = trainer.args
    trainer.callback_handler.on_push_begin(args, trainer.state, trainer.control)
    trainer.save_model(_internal_call=True)
    if not trainer.is_world_process_zero():
        return
    trainer.create_model_card()
    trainer._finish_current_push()  # a checkpoint upload still under way goes first
    repo_id = getattr(trainer, "hub_model_id", None) or args.hub_model_id
    last = get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
    rerun = (f", or rerun train.py with the same flags plus --resume_from_checkpoint {shlex.quote(last)} "
             "(a run that reached max_steps is not trained again: it saves, evaluates and pushes)" if last else "")

    def upload():
        HfApi(token=args.hub_token).upload_folder(
            repo_id=repo_id, folder_path=args.output_dir, commit_message=commit_message, revision=args.hub_revision,
            ignore_patterns=list(TRAINER_PUSH_IGNORE))

    push_with_retries(upload, repo_id, args.output_dir, what="the model, processor, card and metrics",
                      revision=args.hub_revision, rerun=rerun)


def push_folder(folder: str, repo_id: str, token: str | None = None, private: bool | None = None,
                commit_message: str = "Upload model") -> None:
    """Create the repo if needed and upload a folder, with the same retries and failure message as push_run."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)

    def push():
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message)

    push_with_retries(push, repo_id, folder, what="the merged model and its card")


def push_with_retries(push, repo_id: str, folder: str, what: str, revision: str | None = None,
                      rerun: str = "", repo_type: str = "model") -> None:
    """Run ``push``; retry 5xx/429/network errors; finally exit with what failed, that ``folder`` is intact and
    the command that uploads it again."""
    for wait in RETRY_WAITS + (None,):
        try:
            push()
            logger.info("pushed %s to %s", folder, repo_id)
            return
        except Exception as err:  # noqa: BLE001 - any failure must end in the message below
            if wait is not None and is_transient(err):
                logger.warning("push to %s failed (%s); retrying in %ss", repo_id, describe(err), wait)
                time.sleep(wait)
                continue
            raise SystemExit(failure_message(err, repo_id, folder, what, revision, rerun, repo_type)) from err


def is_transient(err: Exception) -> bool:
    """Server errors, rate limits and dropped connections may pass on retry; 4xx answers will not."""
    from huggingface_hub.errors import HfHubHTTPError

    try:  # the HTTP client of huggingface_hub: httpx2 in 2.x, httpx in 1.x
        import httpx2 as httpx
    except ImportError:
        import httpx

    if isinstance(err, HfHubHTTPError):
        return err.response is not None and err.response.status_code in TRANSIENT_STATUS
    return isinstance(err, (httpx.TransportError, ConnectionError, TimeoutError))


def describe(err: Exception) -> str:
    """``HTTP 500 Internal Server Error: <server message>`` for Hub answers, else the error's first line."""
    response = getattr(err, "response", None)
    if response is not None and getattr(response, "status_code", None):
        detail = getattr(err, "server_message", None) or ""
        text = f"HTTP {response.status_code} {response.reason_phrase}"
        return f"{text}: {detail.strip()}" if detail.strip() else text
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first_line}" if first_line else type(err).__name__


def failure_message(err: Exception, repo_id: str, folder: str, what: str, revision: str | None = None,
                    rerun: str = "", repo_type: str = "model") -> str:
    status = getattr(getattr(err, "response", None), "status_code", None)
    auth = (" Check the token: `hf auth login`, HF_TOKEN or --hub_token, with write access to the namespace."
            if status in (401, 403) else "")
    command = ["hf", "upload", repo_id, str(folder), "."]
    command += [part for pattern in TRAINER_PUSH_IGNORE for part in ("--exclude", pattern)]
    command += ["--revision", revision] if revision else []
    command += ["--repo-type", repo_type] if repo_type != "model" else []
    return (f"push to {repo_id} failed ({describe(err)}).{auth} Nothing is lost: {what} are saved in {folder}. "
            f"Retry the upload with `{shlex.join(command)}`{rerun}.")
