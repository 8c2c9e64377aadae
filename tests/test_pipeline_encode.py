"""The encode pipeline end to end: item file + audio → model.encode → ABX through the runner.

A fake model returns known features per file; the runner's scores must equal the ABX scorer
called directly on the same features, and a second run must come from the cache.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_wav

from speechlm_eval import EncodeResult, SpeechLM
from speechlm_eval.abx.synthetic import make_synthetic
from speechlm_eval.readers.abx import read_abx_item
from speechlm_eval.runner import RunOptions, evaluate
from speechlm_eval.scorers.abx import ABXScorer
from speechlm_eval.tasks import load_index


class KnownFeatures(SpeechLM):
    capabilities = frozenset({"encode"})
    sample_rate = 16000

    def __init__(self, features=None) -> None:
        super().__init__()
        self.features = features
        self.calls = 0

    def identity(self):
        return {"class": "KnownFeatures"}

    def encode(self, requests):
        self.calls += len(requests)
        return [EncodeResult(*self.features[r.key]) for r in requests]


@pytest.fixture
def abx_data(tmp_path):
    root = tmp_path / "data" / "abx" / "dev"
    syn = make_synthetic(tmp_path / "syn", n_files=12, items_per_file=5, n_speakers=3, seed=5)
    (root).mkdir(parents=True)
    (root / "dev.item").write_text(syn.item_path.read_text())
    for i, (stem, seconds) in enumerate(syn.durations.items()):
        # Distinct audio per file: the cache keys requests by audio content.
        n = round(seconds * 16000)
        write_wav(
            root / f"{stem}.wav",
            (0.01 * np.random.default_rng(i).standard_normal(n)).astype(np.float32),
        )
    return tmp_path / "data", root, syn


def test_runner_scores_equal_the_scorer_on_the_same_features(abx_data, tmp_path):
    data, root, syn = abx_data
    model = KnownFeatures(syn.features)
    opts = RunOptions(
        tasks="abx_within,abx_across", data_dir=str(data), use_cache=str(tmp_path / "c.sqlite")
    )
    res = evaluate("known", {}, opts, model=model)
    idx = load_index()
    for task in ("abx_within", "abx_across"):
        cfg = idx.tasks[task]
        ds = read_abx_item(root, dict(cfg.dataset.options))
        direct = ABXScorer(dict(cfg.scoring.options)).score(ds, syn.features)
        for name, m in direct.metrics.items():
            assert res["results"][task][f"{name},none"] == pytest.approx(m.value, abs=0)
        assert res["higher_is_better"][task][task] is False
        assert res["scoring"][task]["primary_metric"] == f"{task},none"
        assert res["scoring"][task]["frame_rates"] == [50.0]
    assert 0 < res["results"]["abx_within"]["abx_within,none"] < 0.5
    assert model.calls == 12  # each file encoded once, shared by both tasks via the cache
    again = KnownFeatures(syn.features)
    res2 = evaluate("known", {}, opts, model=again)
    assert again.calls == 0 and res2["results"] == res["results"]


def test_score_a_zerospeech_feature_submission(abx_data, tmp_path, capsys):
    from speechlm_eval.cli import main

    data, root, syn = abx_data
    cfg = load_index().tasks["abx_within"]
    direct = ABXScorer(dict(cfg.scoring.options)).score(
        read_abx_item(root, dict(cfg.dataset.options)), syn.features
    )
    out = tmp_path / "res"
    argv = ["score", "--task", "abx_within", "--features", str(syn.feature_dir)]
    rc = main([*argv, "--frame_rate", "50", "--data_dir", str(data), "--output_path", str(out)])
    assert rc == 0
    import json

    res = json.loads(next(out.glob("results_*.json")).read_text())
    assert res["results"]["abx_within"]["abx_within,external"] == direct.metrics["abx_within"].value
    assert main([*argv, "--data_dir", str(data)]) == 2  # no --frame_rate: one clear error
    assert "--frame_rate" in capsys.readouterr().err
