"""Tests of the gslm-mini reference model on its shipped checkpoint (fast: < 30 s).

The expected numbers come from an independent computation: the plugin's encoder frames,
nearest centroid by numpy brute force, run-length collapse by hand, and one unbatched
GPT-2 forward per clip loaded straight from the checkpoint.
"""

from __future__ import annotations

import json
import random
from functools import cache

import numpy as np
import pytest
import torch

from reference_models.gslm_mini.model import DEFAULT_CHECKPOINT, GSLMMini
from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.hashing import sha256_file
from speechlm_eval.model import EncodeRequest, LoglikelihoodRequest

SR = 16000

# Sanity words, fixed by a rule (not picked by hand): the 30 most frequent words of
# wordfreq's English list that have exactly one CMUdict pronunciation of 5-7 phones.
# Pronunciations are CMUdict's, hard-coded so the test needs no CMUdict load.
WORDS = {
    "people": "P IY1 P AH0 L",
    "something": "S AH1 M TH IH0 NG",
    "little": "L IH1 T AH0 L",
    "another": "AH0 N AH1 DH ER0",
    "mr": "M IH1 S T ER0",
    "second": "S EH1 K AH0 N D",
    "someone": "S AH1 M W AH2 N",
    "number": "N AH1 M B ER0",
    "until": "AH0 N T IH1 L",
    "company": "K AH1 M P AH0 N IY2",
    "having": "HH AE1 V IH0 NG",
    "however": "HH AW2 EH1 V ER0",
    "looking": "L UH1 K IH0 NG",
    "public": "P AH1 B L IH0 K",
    "women": "W IH1 M AH0 N",
    "start": "S T AA1 R T",
    "system": "S IH1 S T AH0 M",
    "anything": "EH1 N IY0 TH IH2 NG",
    "nothing": "N AH1 TH IH0 NG",
    "person": "P ER1 S AH0 N",
    "everything": "EH1 V R IY0 TH IH2 NG",
    "making": "M EY1 K IH0 NG",
    "support": "S AH0 P AO1 R T",
    "music": "M Y UW1 Z IH0 K",
    "states": "S T EY1 T S",
    "believe": "B IH0 L IY1 V",
    "party": "P AA1 R T IY0",
    "country": "K AH1 N T R IY0",
    "season": "S IY1 Z AH0 N",
    "children": "CH IH1 L D R AH0 N",
}


@pytest.fixture(scope="module")
def model() -> GSLMMini:
    return GSLMMini()


@cache
def _voices():
    from speechlm_eval.builtin.voices import all_voices

    return all_voices()


@cache
def _clip(phones: tuple[str, ...], voice: str = "joe") -> Audio:
    return Audio(_voices()[voice].phones(list(phones)), SR, source=f"{voice}: {' '.join(phones)}")


def _scrambled(phones: tuple[str, ...], seed: int) -> tuple[str, ...]:
    rng = random.Random(seed)
    while True:
        out = tuple(rng.sample(phones, len(phones)))
        if out != phones:
            return out


def _noise(seconds: float, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio((0.05 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)


def _requests() -> list[LoglikelihoodRequest]:
    clips = [_clip(tuple(WORDS[w].split())) for w in ("people", "children", "music")]
    clips += [_noise(0.4, 1), _noise(1.3, 2)]
    return [LoglikelihoodRequest(audio=a, key=f"r{i}") for i, a in enumerate(clips)]


def test_shipped_checkpoint_loads(model: GSLMMini) -> None:
    assert model.capabilities == frozenset({"loglikelihood", "encode", "resynthesize", "continue"})
    assert model.sample_rate == SR
    cfg = json.loads((DEFAULT_CHECKPOINT / "gslm_mini.json").read_text())
    assert model.n_units == cfg["n_units"]
    ident = model.identity()
    json.dumps(ident)  # serialisable
    assert ident["kmeans"]["sha256"] == sha256_file(DEFAULT_CHECKPOINT / "kmeans.npy")
    assert ident["lm"]["weights_hash"] == sha256_file(
        DEFAULT_CHECKPOINT / "lm" / "model.safetensors"
    )
    assert ident["checkpoint"]["config_sha256"] == sha256_file(
        DEFAULT_CHECKPOINT / "gslm_mini.json"
    )
    assert ident["encoder"]["model_bin_sha256"] == cfg["encoder"]["model_bin_sha256"]
    assert (ident["offset"], ident["bos"], ident["eos"], ident["dedup"]) == (2, 1, 1, True)
    assert "path" not in json.dumps(ident)  # location-independent
    total = sum(p.stat().st_size for p in DEFAULT_CHECKPOINT.rglob("*") if p.is_file())
    assert total < 50e6


def test_loglikelihood_deterministic_and_batch_invariant(model: GSLMMini) -> None:
    reqs = _requests()
    batched = model.loglikelihood(reqs)
    again = model.loglikelihood(reqs)
    single = [model.loglikelihood([r])[0] for r in reqs]
    reverse = model.loglikelihood(reqs[::-1])[::-1]
    for a, b, c, d in zip(batched, again, single, reverse, strict=True):
        assert a == b  # bit-identical on repeat
        assert a.num_tokens == c.num_tokens == d.num_tokens
        assert a.logprob == pytest.approx(c.logprob, abs=1e-4)
        assert a.logprob == pytest.approx(d.logprob, abs=1e-4)
        assert a.logprob < 0


def test_loglikelihood_equals_independent_computation(model: GSLMMini) -> None:
    from transformers import GPT2LMHeadModel

    lm = GPT2LMHeadModel.from_pretrained(str(DEFAULT_CHECKPOINT / "lm")).eval()
    centroids = np.load(DEFAULT_CHECKPOINT / "kmeans.npy").astype(np.float64)
    reqs = _requests()
    got = model.loglikelihood(reqs)
    feats = model.encode([EncodeRequest(r.audio) for r in reqs])
    for req, res, enc in zip(reqs, got, feats, strict=True):
        x = enc.features.astype(np.float64)
        d = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
        units = d.argmin(1)
        units = [u for i, u in enumerate(units) if i == 0 or u != units[i - 1]]
        ids = torch.tensor([[1, *(int(u) + 2 for u in units), 1]])
        with torch.inference_mode():
            logp = torch.log_softmax(lm(input_ids=ids).logits[0, :-1].double(), -1)
        want = float(logp.gather(1, ids[0, 1:, None]).sum())
        assert res.num_tokens == len(units) + 1, req.key
        assert res.logprob == pytest.approx(want, abs=1e-3), req.key


def test_encode_frame_rate_and_shape(model: GSLMMini) -> None:
    lengths = (SR, int(0.73 * SR), 333, int(31.5 * SR))  # 31.5 s: two 30 s encoder windows
    out = model.encode([EncodeRequest(_noise(n / SR, n)) for n in lengths])
    for n, r in zip(lengths, out, strict=True):
        assert r.frame_rate == 50.0
        assert r.features.dtype == np.float32
        assert r.features.shape == (n // 320, 384)
        assert np.all(np.isfinite(r.features))
    # Frames depend on their own clip only: a clip's frames are the same alone or batched.
    solo = model.encode([EncodeRequest(_noise(lengths[1] / SR, lengths[1]))])[0]
    np.testing.assert_array_equal(solo.features, out[1].features)


def test_errors(model: GSLMMini, tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown model argument"):
        GSLMMini(chekpoint="x")
    with pytest.raises(ConfigError, match="gslm_mini.json"):
        GSLMMini(checkpoint=str(tmp_path))
    with pytest.raises(DataError, match="20 ms"):
        model.loglikelihood([LoglikelihoodRequest(audio=_noise(0.01, 0))])


def test_words_beat_scrambled_phones(model: GSLMMini) -> None:
    """Sanity, not tuning: a real word usually has a lower mean NLL per token than the same
    phones in a scrambled order. 30 words x the 3 voices (joe, 2 eSpeak) = 90 pairs, so the
    check is not at the mercy of a few coin flips for a model this small."""
    reqs = []
    for voice in _voices():
        for i, w in enumerate(WORDS):
            phones = tuple(WORDS[w].split())
            reqs.append(LoglikelihoodRequest(audio=_clip(phones, voice), key=w))
            reqs.append(
                LoglikelihoodRequest(audio=_clip(_scrambled(phones, i), voice), key=w + "*")
            )
    res = model.loglikelihood(reqs)
    mean = [r.logprob / r.num_tokens for r in res]
    n = len(reqs) // 2
    wins = sum(mean[2 * i] > mean[2 * i + 1] for i in range(n))
    assert wins > n / 2, f"word beat its scramble {wins}/{n} times"
