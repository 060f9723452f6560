"""The benchmark scripts that the suite can exercise without a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_its_steps_at_toy_sizes_on_the_cpu(tmp_path: Path) -> None:
    # The same steps as on a GPU (but the CUDA test files, which this suite runs anyway).
    command = [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--quick"]
    command += ["--skip", "cuda-tests", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["step"]: row for row in json.loads((tmp_path / "gpu_check.json").read_text())}
    assert [rows[name]["status"] for name in ("doctor", "sampler", "train", "bf16")] == ["ok"] * 4
    assert rows["ddp"]["status"] == "skipped" and rows["cuda-tests"]["status"] == "skipped"
    assert rows["train"]["note"].startswith("validation NELBO")
    assert "| bf16 | ok |" in (tmp_path / "gpu_check.md").read_text()
    assert len(json.loads((tmp_path / "sampler.json").read_text())) == 5  # the paths of one temperature
