"""Every Python package in the source tree ships in the wheel (pyproject lists them by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    found = set()
    for top in ("speechlm_eval", "reference_models"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    assert found <= listed, f"not in pyproject packages: {sorted(found - listed)}"
    assert conf["package-dir"]["speechlm_eval_tasks"] == "tasks"
