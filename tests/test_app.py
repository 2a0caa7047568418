"""The application layer: the README's Python example runs as written, and the functions the CLI
calls give what the CLI prints."""

from __future__ import annotations

import re

import pandas as pd

from prunebench import app
from prunebench.executors import plan_suite
from tests.conftest import REPO, TINY_SUITE, requires_fashion_mnist


def readme_python_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@requires_fashion_mnist
def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    code = readme_python_example().replace('"suites/', f'"{REPO}/suites/')
    monkeypatch.chdir(tmp_path)  # its results="runs" lands in the test's folder
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    board = namespace["board"]
    assert isinstance(board, pd.DataFrame) and list(board["method"].unique()) == ["dense", "imp", "lrr"]
    assert (tmp_path / "runs" / "suites" / "fashionmnist_quick-reduced.json").is_file()


def test_run_suite_returns_the_leaderboard_and_load_results_reads_it_back(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SUITE)
    board = app.run_suite(path, results=tmp_path / "r", progress=False)
    assert list(zip(board["method"], board["level"])) == [("dense", 0), ("lrr", 0), ("lrr", 1), ("lrr", 2)]
    assert list(board["n"]) == [2, 2, 2, 2] and board["sparsity_pct"].round(6).tolist() == [0.0, 0.0, 50.0, 75.0]
    again = app.load_results(tmp_path / "r")
    pd.testing.assert_frame_equal(again.drop(columns="suite"), board)
    assert set(again["suite"]) == {"tiny"}
    # a second call trains nothing: every run is complete
    suite = app.load(path)
    done = app.execute_suite(suite, plan_suite(suite.runs(), tmp_path / "r"), tmp_path / "r", app.ExecSettings(), progress=False)
    assert [o.status for o in done.outcomes] == ["skipped"] * 4 and done.results.counts == {"complete": 4}
