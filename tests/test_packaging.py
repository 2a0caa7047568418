"""The distribution installs one namespace, prunebench, and every package of the source tree in it."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_no_generic_top_level_names():
    config = setuptools_config()
    assert all(p == "prunebench" or p.startswith("prunebench.") for p in config["packages"]), config["packages"]
    assert config["package-dir"] == {"prunebench": "benchmark", "prunebench.methods": "methods"}


def test_every_source_package_is_installed():
    """A new subpackage (a folder with __init__.py) missing from pyproject would be absent from a wheel."""
    listed = set(setuptools_config()["packages"])
    found = {"prunebench." + ".".join(p.parent.relative_to(REPO / "benchmark").parts) if p.parent != REPO / "benchmark"
             else "prunebench" for p in (REPO / "benchmark").rglob("__init__.py")} | {"prunebench.methods"}
    assert found == listed
