"""Models on the Hugging Face Hub: ``VAE.push_to_hub`` and ``VAE.from_hub``.

A model on the Hub is the folder :meth:`~poisson_vae.vae.VAE.save_pretrained` writes
(``config.json`` and ``model.safetensors``): safetensors holds tensors only, so loading a model
from the Hub runs no code from it. Needs the ``hub`` extra: ``pip install 'poisson-vae[hub]'``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from .errors import require_extra
from .runs import Run
from .vae import VAE, load_model

__all__ = ["from_hub", "push_to_hub"]

_FILES = [Run.CONFIG, Run.WEIGHTS["vae"]]


def push_to_hub(
    model: VAE,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload a poisson-vae model",
) -> str:
    """Upload ``model`` to the Hub repository ``repo_id`` (created if needed); returns the URL of
    the commit."""
    hub = require_extra("huggingface_hub", "hub", "pushing a model to the Hugging Face Hub")
    api = hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, commit_message=commit_message, allow_patterns=_FILES
        )
    return str(getattr(commit, "commit_url", commit))


def from_hub(
    repo_id: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | None = None,
    map_location: str | torch.device = "cpu",
) -> VAE:
    """The model in Hub repository ``repo_id`` (downloaded once, then read from the cache), or in
    the local folder ``repo_id``; on ``map_location``, in eval mode."""
    if Path(repo_id).is_dir():
        return load_model(repo_id, map_location)
    hub = require_extra("huggingface_hub", "hub", "loading a model from the Hugging Face Hub")
    folder = hub.snapshot_download(
        str(repo_id),
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        allow_patterns=_FILES,
    )
    return load_model(folder, map_location)
