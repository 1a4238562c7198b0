"""What this project reads from other repos' model cards: a base model's licence (stated on the card we push), an
adapter's card (its results carried onto a merged checkpoint's card, its sample lines offered by the demo).

Why through huggingface_hub's card API: the card's YAML metadata is parsed as the Hub parses it, for a local folder
or a Hub repo alike, with the token and endpoint the rest of the run uses.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from huggingface_hub import ModelCard, constants

logger = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
LICENSE_KEYS = ("license", "license_name", "license_link")


def hub_id(name: str | None) -> str | None:
    """``name`` when it names a Hub repo rather than a local folder (local paths mean nothing in a card)."""
    if name and HUB_ID.match(name) and not Path(name).exists():
        return name
    return None


def base_license(base: str | None, token: str | None = None) -> dict:
    """``license`` (and ``license_name``/``license_link``) from the base model's own card on the Hub, read with
    huggingface_hub's card API; {} when there is none to read (a local folder, no card, a card without a licence).
    A fine-tune is bound by its base's terms, which only the base states: this project must not choose them."""
    repo = hub_id(base)
    if not repo:
        return {}
    try:
        data = ModelCard.load(repo, token=token).data
    except Exception as err:  # noqa: BLE001 - no card or unreachable: the card then says to check the base's terms
        logger.warning("could not read the licence of the base model %s from its card (%s)", repo, err)
        return {}
    if not data.get("license"):
        return {}
    found = {key: data.get(key) for key in LICENSE_KEYS if data.get(key)}
    link = found.get("license_link")
    if link and not re.match(r"^https?://", link):  # a file of the base repo, not of this one
        found["license_link"] = f"{constants.ENDPOINT}/{repo}/blob/main/{link.removeprefix('./')}"
    return found


def load_card(source: str, revision: str | None = None, token: str | None = None) -> ModelCard | None:
    """The README.md card of a local folder or Hub repo, None when it has none."""
    from huggingface_hub import hf_hub_download

    local = Path(source) / "README.md"
    try:
        if not local.is_file():
            if Path(source).is_dir():
                return None
            local = hf_hub_download(source, "README.md", revision=revision, token=token)
        return ModelCard.load(local)
    except Exception:  # no card, or unreachable: the merged card then has no results
        return None
