"""benchmarks/step_ops.py counts the operators of a step by part (counts, not speed: deterministic)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def counted(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / f"ops{len(extra)}.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "step_ops.py"), "--model", "lenet5", "--steps", "2", "--json", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| lenet5 | 1x28x28 |" in proc.stdout
    return json.loads(out.read_text())["rows"][0]["per_step"]


def test_the_foreach_step_is_a_few_operators_and_the_loop_one_per_parameter_and_state(tmp_path):
    foreach, loop = counted(tmp_path), counted(tmp_path, "--optimizer-impl", "loop")
    assert set(foreach) == {"data", "forward", "backward", "optimizer", "mask", "other"}
    assert foreach["mask"] == 1  # one foreach multiply over every masked tensor
    assert foreach["optimizer"] <= 4 < 10 * 4 <= loop["optimizer"]  # LeNet-5: 10 parameters, several ops each
    assert {k: v for k, v in foreach.items() if k != "optimizer"} == {k: v for k, v in loop.items() if k != "optimizer"}
