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


def test_wheel_ships_the_reported_numbers_and_uses_them(tmp_path):
    """The leaderboard's literature numbers are package data: a wheel built from this tree holds
    speechlm_eval/leaderboard/reported.yaml (byte-identical to the source), and the installed
    package, run away from any checkout, shows the reported rows without --reported."""
    import importlib.util
    import shutil
    import subprocess
    import sys
    import zipfile

    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("building a wheel needs setuptools")
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("speechlm_eval", "tasks", "reference_models"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--no-index", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("speechlm_eval-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    shipped = site / "speechlm_eval" / "leaderboard" / "reported.yaml"
    assert shipped.read_bytes() == (ROOT / "speechlm_eval/leaderboard/reported.yaml").read_bytes()
    assert (site / "speechlm_eval" / "leaderboard" / "page.html.j2").is_file()

    results = tmp_path / "results_1.json"
    results.write_text(
        '{"model_name": "m", "config": {"model": "m"}, "date": 1790000000,'
        ' "results": {"tsc": {"acc,nll_sum": 0.5}}}'
    )
    code = (
        "import sys, speechlm_eval.leaderboard as lb\n"
        "print(lb.__file__)\n"
        "print(lb.generate([sys.argv[1]], sys.argv[2], plots=False)['leaderboard.md'])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(results), str(tmp_path / "out")],
        cwd=tmp_path,  # not the checkout: nothing may come from the source tree
        env={"PYTHONPATH": str(site), "PATH": ""},
        check=True,
        capture_output=True,
        text=True,
    )
    where, md = run.stdout.split("\n", 1)
    assert Path(where).is_relative_to(site), where
    assert "TWIST-1.3B" in md and "slp-rl/slamkit" in md
