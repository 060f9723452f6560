"""The run folder: layout, kind, new-or-resume, failed starts, foreign files and the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from poisson_vae.config import RunConfig, SparseCodingRunConfig
from poisson_vae.errors import CheckpointError, ConfigError
from poisson_vae.runs import Run, RunBusyError, RunExistsError, check_output_path, is_replica


def _started(folder: Path, kind: str = "vae") -> Run:
    """A run folder with a configuration and a checkpoint."""
    config = RunConfig() if kind == "vae" else SparseCodingRunConfig()
    run = Run(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run.write_config(config)
    run.checkpoint.parent.mkdir(exist_ok=True)
    run.checkpoint.write_bytes(b"state")
    return run


def test_layout_and_kind(tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    assert run.kind is None and not run.started and not run.finished
    assert run.checkpoint == tmp_path / "run" / "checkpoints" / "last.ckpt"
    _started(tmp_path / "run")
    assert run.kind == "vae" and run.started and isinstance(run.config(), RunConfig)
    sparse = _started(tmp_path / "sparse", "sparse-coding")
    assert sparse.kind == "sparse-coding"
    assert sparse.checkpoint.name == "last.safetensors"
    assert sparse.weights_path.name == "dictionary.safetensors"
    with pytest.raises(ConfigError, match="holds a sparse-coding run, not a VAE run"):
        sparse.config(RunConfig)


def test_a_folder_without_config_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="has no config.json"):
        Run(tmp_path).config()
    assert Run(tmp_path).stored_config() is None


def test_a_started_run_is_refused_unless_resumed(tmp_path: Path) -> None:
    run = _started(tmp_path)
    with pytest.raises(RunExistsError, match="already holds a run: pass resume to continue it"):
        with run.session(resume=False):
            pass
    with run.session(resume=True):
        pass


def test_a_failed_start_does_not_block_the_next(tmp_path: Path) -> None:
    # what a start that failed before its first checkpoint leaves: its config and logs
    run = Run(tmp_path)
    run.write_config(RunConfig())
    (tmp_path / "logs" / "version_0").mkdir(parents=True)
    with run.session(resume=False):
        assert not run.config_path.exists() and not run.logs.exists()


def test_foreign_files_are_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("my own results")
    for resume in (False, True):
        with pytest.raises(RunExistsError, match="holds files that are not a run"):
            with Run(tmp_path).session(resume=resume):
                pass
    assert (tmp_path / "metrics.json").read_text() == "my own results"


def test_a_config_json_that_is_not_a_runs_is_never_replaced(tmp_path: Path) -> None:
    """A folder whose config.json looks like a failed start's would be cleared for the new start:
    unless the file is a run's configuration and nothing else but the run's files lies beside it."""
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(RunExistsError, match="config.json: a run configuration needs .* not a run's"):
        with Run(tmp_path).session(resume=False):
            pass
    assert (tmp_path / "config.json").read_text() == '{"hello": 1}'
    Run(tmp_path / "other").write_config(RunConfig())
    (tmp_path / "other" / "notes.txt").write_text("mine")
    for resume in (False, True):
        with pytest.raises(RunExistsError, match=r"holds files that are not a run \(notes.txt\)"):
            with Run(tmp_path / "other").session(resume=resume):
                pass
    assert (tmp_path / "other" / "config.json").is_file()


def test_a_checkpoint_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    run = _started(tmp_path)
    run.checkpoint.unlink()
    run.checkpoint.mkdir()
    with pytest.raises(ConfigError, match="last.ckpt is not a file"):
        with run.session(resume=True):
            pass


@pytest.mark.parametrize("out", ["", " "])
def test_an_empty_out_is_refused(out: str) -> None:
    with pytest.raises(ConfigError, match="^out is empty"):
        Run(out)


def test_a_file_as_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    for out in (tmp_path / "afile", tmp_path / "afile" / "run"):
        with pytest.raises(ConfigError, match="afile is a file, not a folder"):
            Run(out)


def test_a_refused_start_leaves_no_folder(tmp_path: Path) -> None:
    run = Run(tmp_path / "new")
    with pytest.raises(RuntimeError):
        with run.session(resume=False):
            raise RuntimeError("refused after the checks")
    assert not (tmp_path / "new").exists()


def test_an_unwritable_parent_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="^cannot create the run folder /proc/x"):
        with Run("/proc/x").session(resume=False):
            pass


def test_temporary_files_of_interrupted_writes_are_removed(tmp_path: Path) -> None:
    run = _started(tmp_path)
    leftovers = [tmp_path / ".metrics.json.123.tmp", tmp_path / "checkpoints" / ".last.ckpt.9.tmp"]
    for path in leftovers:
        path.write_bytes(b"x" * 100)
    with run.session(resume=True):
        assert not any(path.exists() for path in leftovers)


def test_a_second_session_in_one_process_is_refused(tmp_path: Path) -> None:
    run = _started(tmp_path)
    with run.session(resume=True):
        with pytest.raises(
            RunBusyError, match=f"being trained by another process \\(pid {os.getpid()}\\)"
        ):
            with Run(tmp_path).session(resume=True):
                pass
    with Run(tmp_path).session(resume=True):  # released
        pass


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path: Path) -> None:
    _started(tmp_path)
    script = (
        "import sys, time\n"
        "from poisson_vae.runs import Run\n"
        "with Run(sys.argv[1]).session(resume=True):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunBusyError, match=f"pid {holder.pid}"):
            with Run(tmp_path).session(resume=True):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with Run(tmp_path).session(resume=True):
        pass


def test_replicas_neither_check_nor_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _started(tmp_path)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert is_replica()
    with run.session(resume=False):  # a replica re-runs the command that started the run
        assert not (tmp_path / Run.LOCK).exists()


@pytest.mark.parametrize(
    ("variables", "replica"),
    [({}, False), ({"RANK": "0"}, False), ({"RANK": "2"}, True), ({"SLURM_PROCID": "1"}, True)],
)
def test_one_replica_check_for_every_launcher(
    monkeypatch: pytest.MonkeyPatch, variables: dict, replica: bool
) -> None:
    for name in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert is_replica() is replica


def test_outputs_never_overwrite_a_runs_own_files(tmp_path: Path) -> None:
    _started(tmp_path / "run")
    for path in (
        "dictionary.png",
        "training_curves.png",
        "config.json",
        "eval/metrics.json",
        "checkpoints/x",
    ):
        with pytest.raises(ConfigError, match="would overwrite a file of the run"):
            check_output_path(tmp_path / "run" / path)
    assert check_output_path(tmp_path / "run" / "my-samples.png").name == "my-samples.png"
    assert check_output_path(tmp_path / "elsewhere.png").name == "elsewhere.png"


def test_training_history_joins_the_starts_in_order(tmp_path: Path) -> None:
    run = _started(tmp_path)
    assert run.training_history() == ({}, [], {})
    header = "epoch,step,train/loss,train/beta,val/nelbo\n"
    logs = {
        0: "0,9,5.0,0.1,\n0,19,4.0,0.2,\n0,19,,,3.5\n1,29,3.0,0.3,\n",  # killed after step 29
        1: "1,24,3.2,0.25,\n1,34,2.5,0.35,\n1,39,,,2.9\n",  # resumed from the step-20 checkpoint
        10: "2,49,2.0,0.5,\n",  # version 10 comes after version 1, not before it
        2: "1,44,2.2,0.45,\n",
    }
    for version, rows in logs.items():
        folder = tmp_path / "logs" / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(header + rows)
    (tmp_path / "logs" / "version_x").mkdir()  # not a start
    history = run.training_history()
    assert history.resumed_at == [24, 44, 49]
    assert history.columns["train/loss"].tolist() == [
        [9, 5.0], [19, 4.0], [24, 3.2], [34, 2.5], [44, 2.2], [49, 2.0]
    ]  # fmt: skip
    assert history.columns["val/nelbo"].tolist() == [[19, 3.5], [39, 2.9]]
    assert set(history.columns) == {"train/loss", "train/beta", "val/nelbo"}
    # each step's epoch, counted from 1; the resumed start's rows replace the killed one's
    assert history.epochs == {9: 1, 19: 1, 24: 2, 34: 2, 39: 2, 44: 2, 49: 3}


def test_metrics_are_written_atomically_and_read_back(tmp_path: Path) -> None:
    run = _started(tmp_path)
    with pytest.raises(ConfigError, match="has not finished"):
        run.metrics()
    run.write_metrics({"nelbo": 1.5})
    assert run.finished and run.metrics() == {"nelbo": 1.5}
    run.metrics_path.write_text(json.dumps([1]))
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        run.metrics()
    with pytest.raises(ConfigError, match="pvae evaluate"):
        run.eval_metrics()


def test_weights_of_the_other_kind_are_named(tmp_path: Path) -> None:
    sparse = _started(tmp_path, "sparse-coding")
    with pytest.raises(ConfigError, match="holds a sparse-coding run, not a VAE run"):
        sparse.require_weights("vae")
    with pytest.raises(ConfigError, match="dictionary.safetensors is missing"):
        sparse.require_weights("sparse-coding")


def test_the_lock_file_is_gone_after_a_session(tmp_path: Path) -> None:
    run = _started(tmp_path)
    with run.session(resume=True):
        assert (tmp_path / Run.LOCK).read_text().strip() == str(os.getpid())
    assert not (tmp_path / Run.LOCK).exists()
