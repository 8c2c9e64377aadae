"""The ``length-baseline`` model: log-probability = -duration over one token."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from helpers import make_storycloze, tone, write_wav

from reference_models.length_baseline import LengthBaseline
from speechlm_eval import Audio, ConfigError, LoglikelihoodRequest, registry
from speechlm_eval.runner import RunOptions, evaluate


def _req(n: int, sr: int = 16000, key: str = "k") -> LoglikelihoodRequest:
    return LoglikelihoodRequest(audio=Audio(np.full(n, 0.1, np.float32), sr), key=key)


def test_scores_hand_computed():
    m = LengthBaseline()
    out = m.loglikelihood([_req(8000), _req(24000), _req(22050, 22050)])
    assert [r.logprob for r in out] == [-0.5, -1.5, -1.0]
    assert [r.num_tokens for r in out] == [1, 1, 1]
    out = LengthBaseline(unit="samples").loglikelihood([_req(8000), _req(22050, 22050)])
    assert [r.logprob for r in out] == [-8000.0, -22050.0]
    assert m.sample_rate is None  # scored at the file's own rate, never resampled


def test_identity_and_arguments():
    ident = LengthBaseline().identity()
    assert ident["unit"] == "seconds" and "shorter" in ident["rule"]
    assert LengthBaseline(unit="samples").identity() != ident
    with pytest.raises(ConfigError, match="unit: expected one of seconds, samples"):
        LengthBaseline(unit="frames")
    with pytest.raises(ConfigError, match="takes only unit=seconds\\|samples, got layer"):
        LengthBaseline(layer="3")
    with pytest.raises(ConfigError, match="scores audio only; request 't1'"):
        LengthBaseline().loglikelihood([LoglikelihoodRequest(text="hello", key="t1")])


def test_registered_as_entry_point():
    assert registry.get("models", "length-baseline") is LengthBaseline


def test_storycloze_shorter_positive_scores_one(tmp_path):
    """helpers.make_storycloze: positives 0.25 s, negatives 0.3 s -> the rule is always right."""
    make_storycloze(tmp_path, n=5)
    res = evaluate(
        "length-baseline",
        {},
        RunOptions(tasks="ssc", data_dir=str(tmp_path), no_cache=True),
        model=LengthBaseline(),
    )
    r = res["results"]["ssc"]
    assert r["acc,nll_sum"] == 1.0 and r["acc,nll_mean"] == 1.0
    assert res["config"]["model_identity"]["rule"].startswith("logprob = -duration")


def _lexical(root: Path, lengths: dict[tuple[int, str], tuple[float, float]]) -> None:
    d = root / "zerospeech2021" / "lexical" / "dev"
    rows = []
    for k, ((i, v), (word_s, non_s)) in enumerate(lengths.items()):
        for correct, sec in ((1, word_s), (0, non_s)):
            name = f"{'w' if correct else 'n'}{i}_{v}"
            write_wav(d / f"{name}.wav", tone(10 * k + correct, seconds=sec))
            rows.append({"filename": name, "id": str(i), "voice": v,
                         "frequency": "50" if correct else "", "word": f"w{i}" if correct else "",
                         "correct": correct})  # fmt: skip
    with open(d / "gold.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_lexical_hand_computed(tmp_path):
    """Per (id, voice): 1 if the word is shorter, 0.5 on equal length, 0 if longer; averaged
    over voices per id, then over ids (ZR2021): id 0 (1 + 0) / 2, id 1 (0.5 + 1) / 2,
    id 2 (0 + 0) / 2 -> (0.5 + 0.75 + 0) / 3."""
    _lexical(
        tmp_path,
        {
            (0, "a"): (0.30, 0.40),
            (0, "b"): (0.50, 0.40),
            (1, "a"): (0.25, 0.25),
            (1, "b"): (0.20, 0.35),
            (2, "a"): (0.45, 0.30),
            (2, "b"): (0.60, 0.55),
        },
    )
    res = evaluate(
        "length-baseline",
        {},
        RunOptions(tasks="swuggy", data_dir=str(tmp_path), no_cache=True),
        model=LengthBaseline(),
    )
    assert res["results"]["swuggy"]["acc,nll_sum"] == pytest.approx((0.5 + 0.75 + 0.0) / 3)
