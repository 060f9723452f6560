"""Configurations: the constraint table, field-named errors, documents and the resume rules."""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from poisson_vae.config import (
    RESUMABLE,
    DataConfig,
    ModelConfig,
    RunConfig,
    SparseCodingConfig,
    SparseCodingRunConfig,
    TrainConfig,
    boolean,
    choice,
    config_from_dict,
    integer,
    load_config,
    number,
)
from poisson_vae.errors import ConfigError
from poisson_vae.vae import build_vae

ALL_CONFIGS = (DataConfig, ModelConfig, TrainConfig, SparseCodingConfig)


@pytest.mark.parametrize("kind", ALL_CONFIGS)
def test_every_field_has_help_and_a_constraint(kind: type) -> None:
    for item in fields(kind):
        assert item.metadata["help"], item.name
        assert item.metadata["check"] is not None, item.name


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (integer(1), [1, 7, np.int64(3)], [0, -1, 2.5, "5", True, None, math.nan]),
        (integer(0, 10), [0, 10], [-1, 11, 1.0]),
        (number(0, low_open=True), [1e-9, 3, 2.5], [0, -1, math.nan, math.inf, "1", False]),
        (number(0, 1), [0, 0.5, 1], [-0.1, 1.01, math.nan]),
        (boolean(), [True, False], [0, 1, "false", None]),
        (choice(("a", "b")), ["a", "b"], ["c", None, 1]),
    ],
)
def test_checks_accept_and_refuse(check, good: list, bad: list) -> None:
    for value in good:
        check("field", value)
    for value in bad:
        with pytest.raises(ConfigError, match=f"^field must be {re.escape(check.requirement)}, got "):
            check("field", value)
    check.or_none()("field", None)


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        (ModelConfig, {"n_latents": 2.5}, "n_latents must be a positive integer, got 2.5"),
        (ModelConfig, {"n_latents": "5"}, "n_latents must be a positive integer, got '5'"),
        (ModelConfig, {"n_latents": True}, "n_latents must be a positive integer, got True"),
        (ModelConfig, {"latent": "beta"}, "latent must be one of poisson, .*, got 'beta'"),
        (
            TrainConfig,
            {"warmup_clip_factor": math.nan},
            "warmup_clip_factor must be a finite number >= 1",
        ),
        (TrainConfig, {"lr_min": 0.1, "lr": 0.01}, "lr_min must be at most lr"),
        (TrainConfig, {"devices": "two"}, "devices must be a positive count or 'auto'"),
        (
            TrainConfig,
            {"beta_hold_fraction": 0.6},
            r"beta_hold_fraction must lie in \[0, anneal_fraction",
        ),
        (
            ModelConfig,
            {"inference": "iterative", "latent": "laplace"},
            "inference iterative exists for latent poisson, gaussian, gaussian-relu, not laplace",
        ),
        (ModelConfig, {"inference": "iterative", "arch": "mlp|lin"}, "arch must be lin|lin"),
        (ModelConfig, {"inference": "iterative", "method": "exact"}, "method must be mc"),
        (
            ModelConfig,
            {"inference": "iterative", "latent": "gaussian", "kl_prefactor": "prior"},
            "kl_prefactor applies to latent poisson only",
        ),
        (
            TrainConfig,
            {"beta_hold_fraction": 0.2, "beta_anneal_fraction": 0.1},
            r"beta_hold_fraction must lie in \[0, beta_anneal_fraction = 0.1\]",
        ),
        (DataConfig, {"patch_size": 1}, "patch_size must be an integer >= 2, got 1"),
        (DataConfig, {"data": "imagenet"}, "data must be a dataset of `pvae data list` or npy:PATH"),
        (SparseCodingConfig, {"lam": 0}, "lam must be a finite number > 0, got 0"),
        (
            SparseCodingConfig,
            {"algorithm": "fista", "threshold": "hard"},
            "threshold applies to algorithm lca",
        ),
    ],
)
def test_errors_name_the_field_not_a_flag(kind: type, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        kind(**values)
    assert "--" not in str(error.value)


def test_an_error_renders_in_another_language() -> None:
    with pytest.raises(ConfigError) as caught:
        TrainConfig(lr_min=0.1, lr=0.01)
    error = caught.value
    assert error.names == ("lr_min", "lr")
    flags = error.render(lambda section, name: "--" + name.replace("_", "-"))
    assert flags.startswith("--lr-min must be at most --lr (the cosine decays from --lr to --lr-min)")
    assert str(error.in_section("train")).startswith("train.lr_min must be at most train.lr")
    assert str(error.within("config.json: ")).startswith("config.json: lr_min must be")


def test_a_value_with_braces_survives_the_template() -> None:
    with pytest.raises(ConfigError, match=r"got '\{x\}'"):
        ModelConfig(latent="{x}")


def test_build_vae_checks_a_config_edited_after_creation() -> None:
    config = ModelConfig(n_latents=4)
    config.n_latents = 0
    with pytest.raises(ConfigError, match="n_latents must be a positive integer, got 0"):
        build_vae(config)
    config.n_latents, config.method = 4, "exact"
    config.latent = "gaussian-relu"
    with pytest.raises(ConfigError, match="method exact needs closed-form"):
        build_vae(config)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (None, "must be a JSON object of sections, got None"),
        ([[1]], r"must be a JSON object of sections, got \[\[1\]\]"),
        ({"model": None}, "section 'model' must be an object of options, got None"),
        ({"trainer": {}}, r"unknown configuration section\(s\) \['trainer'\]"),
        ({"model": {"width": 3}}, r"unknown option\(s\) \['width'\] in section 'model'"),
        ({"train": {"epochs": 0}}, "train.epochs must be a positive integer, got 0"),
    ],
)
def test_documents_are_refused_in_one_line(document: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(document)


def test_the_kind_of_run_is_told_by_its_sections() -> None:
    assert isinstance(config_from_dict({"model": {}}), RunConfig)
    assert isinstance(config_from_dict({"sparse_coding": {}}), SparseCodingRunConfig)
    with pytest.raises(ConfigError, match="needs a 'model' section"):
        config_from_dict({"data": {}})


def test_a_round_trip_through_json_is_exact() -> None:
    config = RunConfig(model=ModelConfig(n_latents=12), train=TrainConfig(epochs=3, devices=2))
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.train.devices == "2"


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": {"n_latents": -1}}))
    with pytest.raises(ConfigError, match=f"^{path}: model.n_latents must be a positive integer"):
        load_config(path)
    path.write_text("{")
    with pytest.raises(ConfigError, match=f"{path} is not valid JSON"):
        load_config(path)
    with pytest.raises(ConfigError, match="is a folder, not a JSON file"):
        load_config(tmp_path)


# --- the resume rules ------------------------------------------------------------------------
def _stored(**train) -> dict:
    return RunConfig(model=ModelConfig(n_latents=8), train=TrainConfig(epochs=5, **train)).to_dict()


def test_a_new_run_takes_file_then_recipe_then_flags() -> None:
    base = {"model": {"n_latents": 12}, "train": {"epochs": 7}}
    recipe = {"epochs": 3000, "lr": 2e-3, "batch_size": 200}
    config = RunConfig.resolve({"batch_size": 50, "seed": 4}, base=base, recipe=recipe)
    assert config.model.n_latents == 12
    assert config.train.epochs == 7  # the file beats the recipe
    assert config.train.lr == 2e-3  # the recipe fills what the file leaves unset
    assert (config.train.batch_size, config.train.seed) == (50, 4)  # flags beat both


def test_a_resumed_run_keeps_its_configuration() -> None:
    config = RunConfig.resolve({"epochs": 9, "progress": False}, stored=_stored())
    assert (config.train.epochs, config.train.progress, config.model.n_latents) == (9, False, 8)
    assert "epochs" in RESUMABLE and "n_latents" not in RESUMABLE
    assert RunConfig.resolve({"n_latents": 8}, stored=_stored()).model.n_latents == 8  # unchanged
    with pytest.raises(ConfigError, match="^n_latents differs from the run being resumed; drop it"):
        RunConfig.resolve({"n_latents": 16}, stored=_stored())
    with pytest.raises(ConfigError, match="^lr, n_latents differ from the run being resumed; drop them"):
        RunConfig.resolve({"n_latents": 16, "lr": 0.1}, stored=_stored())
    for name, source in (("recipe", {"recipe": {"lr": 1.0}}), ("config", {"base": {}})):
        with pytest.raises(ConfigError, match=f"^{name} applies to a new run"):
            RunConfig.resolve({}, stored=_stored(), **source)


def test_a_stored_configuration_of_an_older_version_takes_the_new_defaults() -> None:
    stored = _stored()
    del stored["train"]["tensorboard"], stored["model"]["indicator"]
    config = RunConfig.resolve({}, stored=stored)
    assert config.train.tensorboard is False and config.model.indicator == "sigmoid"


def test_a_relative_data_path_matches_the_stored_absolute_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    stored = RunConfig(data=DataConfig(data="npy:x.npy")).to_dict()
    assert stored["data"]["data"] == f"npy:{tmp_path / 'x.npy'}"
    assert RunConfig.resolve({"data": "npy:x.npy"}, stored=stored).data.data == stored["data"]["data"]


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="^width is not an option of a vae run"):
        RunConfig.resolve({"width": 3})
    with pytest.raises(ConfigError, match="^n_latents is not an option of a sparse-coding run"):
        SparseCodingRunConfig.resolve({"n_latents": 3})
