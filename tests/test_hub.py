"""Models on the Hugging Face Hub, tested offline: a local folder, a populated cache, an upload."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from poisson_vae import VAE, ModelConfig, build_vae
from poisson_vae.errors import MissingExtraError


def _model() -> VAE:
    torch.manual_seed(0)
    return build_vae(ModelConfig(n_latents=5))


def _same(a: VAE, b: VAE) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_local_folder_loads_without_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    model = _model()
    model.save_pretrained(tmp_path)
    assert _same(VAE.from_hub(str(tmp_path)), model)
    with pytest.raises(MissingExtraError, match=r"pip install 'poisson-vae\[hub\]'"):
        VAE.from_hub("someone/a-model")


def test_a_cached_repository_loads_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the layout of the Hub's cache: refs/main names a snapshot folder holding the files
    repo = tmp_path / "models--someone--a-model"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    model = _model()
    model.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(snapshot.name)
    loaded = VAE.from_hub("someone/a-model", cache_dir=tmp_path, local_files_only=True)
    assert _same(loaded, model)


def test_push_uploads_the_saved_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    uploaded = {}

    class FakeApi:
        def __init__(self, token=None) -> None:
            uploaded["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False) -> None:
            uploaded["repo"] = repo_id

        def upload_folder(self, repo_id, folder_path, commit_message, allow_patterns):
            uploaded["files"] = sorted(path.name for path in Path(folder_path).iterdir())
            uploaded["loaded"] = VAE.from_pretrained(folder_path)
            return "https://huggingface.co/someone/a-model/commit/1"

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    model = _model()
    assert (
        model.push_to_hub("someone/a-model", token="t")
        == "https://huggingface.co/someone/a-model/commit/1"
    )
    assert uploaded["repo"] == "someone/a-model" and uploaded["token"] == "t"
    assert uploaded["files"] == ["config.json", "model.safetensors"] and _same(uploaded["loaded"], model)
