"""gslm-mini's training script end to end on the ``smoke`` budget (about 50 s a build here).

Two builds from empty work folders must write bit-identical checkpoints (every file but the
timings in ``training_report.json``), and the result must load as the ``gslm-mini`` plugin and
score and resynthesise audio. The ``dev`` budget (the shipped checkpoint, about 35-41 min) runs
the same code with larger numbers; its determinism was measured by two full rebuilds (see the
model card).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("markov_draftjs", reason="gslm-train extra (markov-draftjs) missing")
pytest.importorskip("sklearn", reason="gslm-train extra (scikit-learn) missing")

ROOT = Path(__file__).resolve().parents[1]


def _build(base: Path) -> Path:
    out = base / "ckpt"
    cmd = [sys.executable, "-m", "reference_models.gslm_mini.train", "--budget", "smoke"]
    cmd += ["--out", str(out), "--work", str(base / "work")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _files(ckpt: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(ckpt)): p.read_bytes()
        for p in sorted(ckpt.rglob("*"))
        if p.is_file() and p.name != "training_report.json"
    }


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _build(tmp_path_factory.mktemp("a")), _build(tmp_path_factory.mktemp("b"))


def test_two_builds_are_bit_identical(builds: tuple[Path, Path]) -> None:
    a, b = (_files(x) for x in builds)
    expected = {"gslm_mini.json", "kmeans.npy", "position_mean.npy", "training_text.txt"}
    assert expected <= set(a)
    assert any(k.startswith("lm/") and k.endswith(".safetensors") for k in a)
    assert any(k.startswith("vocoder/") for k in a)
    assert sorted(a) == sorted(b)
    differ = [k for k in a if a[k] != b[k]]
    assert differ == []
    report = json.loads((builds[0] / "training_report.json").read_text())
    assert report["budget"]["name"] == "smoke" and report["seed"] == 0
    assert report["corpus"]["overlap"]["overlapping"] == {"equal": 0, "contains": 0, "template": 0}


def test_smoke_checkpoint_loads_as_the_plugin(builds: tuple[Path, Path]) -> None:
    from reference_models.gslm_mini.model import GSLMMini
    from speechlm_eval.audio import Audio
    from speechlm_eval.model import LoglikelihoodRequest, ResynthesizeRequest

    model = GSLMMini(checkpoint=str(builds[0]), threads=1)
    cfg = json.loads((builds[0] / "gslm_mini.json").read_text())
    assert model.n_units == cfg["n_units"]
    t = np.arange(16000, dtype=np.float32) / 16000
    clip = Audio((0.3 * np.sin(2 * np.pi * 220 * t) * np.hanning(t.size)).astype(np.float32), 16000)
    (ll,) = model.loglikelihood([LoglikelihoodRequest(audio=clip, key="x")])
    assert ll.num_tokens > 0 and np.isfinite(ll.logprob) and ll.logprob < 0
    (y,) = model.resynthesize([ResynthesizeRequest(clip)])
    assert y.sample_rate == 16000 and y.samples.size > 0 and np.isfinite(y.samples).all()
