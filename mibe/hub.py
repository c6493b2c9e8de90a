"""A quick look at the HF hub before a download, so an offline machine answers in a second.

`from_pretrained` and `load_dataset` retry an unreachable hub for about 25 s each; a metadata
request with a timeout fails at once. With HF_HUB_OFFLINE=1 no probe is made (the caches answer).
"""

from __future__ import annotations

from typing import Any


def probe(repo_id: str, repo_type: str = "model") -> None:
    """Raise (any exception, with its reason) when `repo_id` cannot be fetched from the hub now."""
    from huggingface_hub import constants, dataset_info, model_info

    if constants.HF_HUB_OFFLINE:
        return
    lookup = dataset_info if repo_type == "dataset" else model_info
    lookup(repo_id, timeout=10)


def dataset(repo_id: str, split: str, revision: str | None, config: str | None = None) -> Any:
    """One split of a hub dataset, only ever from the hub (or its cache): `datasets` would read a local
    folder named like `repo_id` instead, so the name rule (mibe/names.py) picks the form it is given."""
    import datasets

    from mibe import names

    probe(repo_id, "dataset")
    return datasets.load_dataset(names.hub_load_path(repo_id), config, split=split, revision=revision)
