"""benchmarks/harness_overhead.py runs end to end at a small size and prints the table its README shows.

Speed itself is never asserted here: it is measured by the script and reported in results/.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_smoke_run_prints_the_table_and_writes_the_json(tmp_path):
    out = tmp_path / "overhead.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "harness_overhead.py"), "--runs", "10", "20", "--repeats", "1",
           "--validate-repeats", "1", "--tmp", str(tmp_path), "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = lines.index("| runs | plan s | report s | diagnostics s | wall s (plan / report / diagnostics) |")
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[header + 2:header + 4]]
    assert [r[0] for r in rows] == ["10", "20"] and all(len(r) == 5 for r in rows)
    assert all(float(r[1]) > 0 and float(r[2]) > 0 and float(r[3]) == float(r[3]) for r in rows)  # diagnostics: a difference
    assert all(len(r[4].split(" / ")) == 3 for r in rows)
    assert lines[0].startswith("machine: ") and "torch " in lines[0] and "code " in lines[0]
    assert any(line.startswith("`bench validate suites/fashionmnist_quick.yaml` start-up") for line in lines)

    result = json.loads(out.read_text())
    assert {"settings", "machine", "cpu", "cores", "torch", "git", "command", "imports", "warmup", "rows", "validate"} <= set(result)
    assert [r["runs"] for r in result["rows"]] == [10, 20]
    for row in result["rows"]:
        assert set(row["cpu_s"]) == set(row["wall_s"]) == {"plan", "report", "report_diagnostics", "diagnostics"}
        assert row["capped"] == []
    assert len(result["validate"]["wall_s"]) == 1 and not list(tmp_path.glob("tmp*"))  # its records are cleaned up
