"""Running the CLI in subprocesses with plugins registered through a real entry point.

A throw-away distribution (``*.dist-info`` with ``entry_points.txt``) on PYTHONPATH
registers a fake model and a broken one, exactly as a third-party package would
(the ``env`` fixture in conftest.py builds it).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import make_lexical, make_salmon, make_storycloze, make_syntactic

TESTS = Path(__file__).resolve().parent


def plugin_env(tmp_path: Path) -> dict[str, str]:
    """Environment whose PYTHONPATH holds the fake plugin distribution."""
    site = tmp_path / "site"
    dist = site / "fakeplugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[speechlm_eval.models]\nenergy = fakeplugin:Energy\nbroken = brokenplugin:Model\n"
    )
    (site / "fakeplugin.py").write_text("from helpers import EnergyLM as Energy\n")
    (site / "brokenplugin.py").write_text("import a_module_that_does_not_exist\n")
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS), e.get("PYTHONPATH", "")])
    e.pop("SLM_EVAL_DATA", None)
    return e


def slm(env, *args, check=None, **kw):
    p = subprocess.run(
        [sys.executable, "-m", "speechlm_eval.cli", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )
    if check is not None:
        assert p.returncode == check, p.stderr
    return p


def cli_data(root: Path) -> Path:
    make_lexical(root, ids=6)
    make_syntactic(root, ids=4)
    make_storycloze(root, "sStoryCloze", n=6)
    make_storycloze(root, "tStoryCloze", n=6, seed=400)
    make_salmon(root, "gender_consistency", n=6, k=3)
    return root


TASKS = "zerospeech,storycloze,salmon_gender_consistency"
N_FILES = 24 + 16 + 12 + 12 + 18


def run_args(data, out, cache, tasks=TASKS, *extra):
    return [
        "run",
        "--model",
        "energy",
        "--tasks",
        tasks,
        "--data_dir",
        data,
        "--output_path",
        out,
        "--use_cache",
        cache,
        *extra,
    ]


def committed(cache: Path) -> int:
    if not cache.exists():
        return 0
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
