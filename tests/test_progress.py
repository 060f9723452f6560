"""Progress: bars only on a terminal, plain lines elsewhere, and every run's train.log."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from poisson_vae.progress import RunLog, on_terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_only_a_terminal_is_a_terminal() -> None:
    assert on_terminal(_Terminal()) and not on_terminal(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not on_terminal(closed)


def test_a_run_log_appends_stamped_lines_and_echoes_when_asked(tmp_path: Path, capsys) -> None:
    RunLog(tmp_path / "train.log", echo=False).line("first")
    RunLog(tmp_path / "train.log", echo=True).line("second")
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == ["first", "second"]
    assert capsys.readouterr().err.endswith(" second\n")


@pytest.mark.parametrize("terminal", [True, False])
def test_training_shows_a_bar_on_a_terminal_and_lines_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    import poisson_vae.training as training
    from poisson_vae.cli import main

    monkeypatch.setattr(training, "on_terminal", lambda: terminal)
    flags = ["--n-train", "400", "--n-valid", "200", "--n-latents", "8", "--batch-size", "200"]
    assert (
        main(["train", "--out", str(tmp_path / "run"), "--epochs", "2", "--val-every", "1", *flags]) == 0
    )
    captured = capsys.readouterr()
    log = (tmp_path / "run" / "train.log").read_text()
    assert "epoch 1/2, train loss" in log and "epoch 2/2" in log and "validation NELBO" in log
    assert "finished: nelbo" in log
    if terminal:
        assert "\r" in captured.out  # the bar
    else:
        assert "\r" not in captured.out + captured.err and "epoch 2/2, train loss" in captured.err
