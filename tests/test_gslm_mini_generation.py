"""gslm-mini's generation capabilities on the shipped checkpoint: ``resynthesize``, ``continue``.

Greedy decoding is checked against a brute-force loop (a full LM forward per step, argmax
over the allowed tokens) on the LM loaded straight from the checkpoint; sampling for
reproducibility (same seed => same audio, whatever the batch or number of samples),
variety (different seeds => different units) and the duration budget.
"""

from __future__ import annotations

import shutil
from functools import cache

import numpy as np
import pytest
import torch

from reference_models.gslm_mini.model import DEFAULT_CHECKPOINT, GSLMMini
from reference_models.gslm_mini.vocoder import UNIT_HOP, UnitVocoder, run_lengths
from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError
from speechlm_eval.model import ContinueRequest, EncodeRequest, ResynthesizeRequest

SR = 16000


@pytest.fixture(scope="module")
def model() -> GSLMMini:
    return GSLMMini()


@cache
def _speech(text: str, voice: str = "joe") -> Audio:
    from speechlm_eval.builtin.voices import all_voices

    return Audio(all_voices()[voice].text(text), SR, source=f"{voice}: {text}")


def _prompt() -> Audio:
    return _speech("The children walked home along the river.")


# --- resynthesize ------------------------------------------------------------------------------


def test_capabilities(model: GSLMMini) -> None:
    assert model.capabilities == frozenset({"loglikelihood", "encode", "resynthesize", "continue"})
    ident = model.identity()
    assert set(ident["vocoder"]) == {"config.json", "model.safetensors", "durations.json"}
    assert ident["with_prompt"] is False


def test_resynthesize_length_determinism_and_batch(model: GSLMMini) -> None:
    clips = [_prompt(), _speech("Nothing was said about it.", "espeak-en-us+f4")]
    clips.append(Audio(clips[0].samples[:12345], SR, "cut"))  # not a multiple of 320
    reqs = [ResynthesizeRequest(audio=a, key=str(i)) for i, a in enumerate(clips)]
    out = model.resynthesize(reqs)
    again = model.resynthesize(reqs[::-1])[::-1]
    for a, y, z in zip(clips, out, again, strict=True):
        assert y.sample_rate == SR
        assert y.samples.size == a.samples.size  # the input's duration, sample for sample
        assert np.all(y.samples[(a.samples.size // UNIT_HOP) * UNIT_HOP :] == 0)
        np.testing.assert_array_equal(y.samples, z.samples)  # deterministic, batch-free
        assert 0.005 < float(np.sqrt(np.mean(y.samples**2))) < 0.5  # speech-like level


def test_resynthesis_is_the_vocoder_on_frame_units(model: GSLMMini) -> None:
    """Independent path: centroids by numpy brute force on the encoder frames, then the
    vocoder loaded straight from the checkpoint."""
    audio = _prompt()
    feats = model.encode([EncodeRequest(audio)])[0].features
    centroids = np.load(DEFAULT_CHECKPOINT / "kmeans.npy").astype(np.float64)
    d = ((feats.astype(np.float64)[:, None, :] - centroids[None]) ** 2).sum(-1)
    units = d.argmin(1)
    voc = UnitVocoder.load(DEFAULT_CHECKPOINT / "vocoder")
    want = voc(units)
    got = model.resynthesize([ResynthesizeRequest(audio)])[0].samples
    np.testing.assert_array_equal(got[: want.size], want)


# --- continue ----------------------------------------------------------------------------------


def _greedy_brute_force(prompt: Audio, max_frames: int, voc: UnitVocoder) -> list[int]:
    """Full forward pass per step, argmax over units (and <S> after the first step)."""
    from transformers import GPT2LMHeadModel

    lm = GPT2LMHeadModel.from_pretrained(str(DEFAULT_CHECKPOINT / "lm")).eval()
    m = GSLMMini()
    values, _ = run_lengths(m.frame_units(prompt))
    seq = [1, *(int(v) + 2 for v in values)]
    drawn: list[int] = []
    frames = 0
    while frames < max_frames:
        with torch.inference_mode():
            logits = lm(input_ids=torch.tensor([seq])).logits[0, -1].double()
        logits = logits.clone()  # an ordinary tensor, writable outside inference mode
        logits[0] = -np.inf  # PAD is never drawn
        if not drawn:
            logits[1] = -np.inf  # no empty continuation
        tok = int(torch.argmax(logits))
        if tok == 1:
            break
        seq.append(tok)
        drawn.append(tok - 2)
        frames = int(voc.durations.frames(np.asarray(drawn)).sum())
    return drawn


def test_top_k_1_is_greedy_and_equals_brute_force(model: GSLMMini) -> None:
    prompt = _prompt()
    voc = UnitVocoder.load(DEFAULT_CHECKPOINT / "vocoder")
    req = ContinueRequest(prompt=prompt, top_k=1, max_seconds=1.5, seed=11)
    got = model.sample_units(req)[0].tolist()
    assert got == _greedy_brute_force(prompt, 75, voc)
    # temperature 0 is greedy too, and the seed does not matter
    zero = ContinueRequest(prompt=prompt, temperature=0.0, max_seconds=1.5, seed=5)
    assert model.sample_units(zero)[0].tolist() == got


def test_continue_seeds(model: GSLMMini) -> None:
    prompt = _prompt()
    base = {"prompt": prompt, "max_seconds": 1.0, "temperature": 1.0}
    r0 = ContinueRequest(**base, seed=0, num_samples=2, key="a")
    r1 = ContinueRequest(**base, seed=1, num_samples=1, key="b")
    u0 = model.sample_units(r0)
    u1 = model.sample_units(r1)
    assert len(u0) == 2
    assert not np.array_equal(u0[0], u1[0])  # different seeds differ
    assert not np.array_equal(u0[0], u0[1])  # so do two samples of one request
    out = model.continue_([r0, r1])
    alone = model.continue_([ContinueRequest(**base, seed=0, num_samples=1, key="c")])
    again = model.continue_([r1, r0])
    assert [len(x) for x in out] == [2, 1]
    # same seed => identical audio, whatever the batch and num_samples
    np.testing.assert_array_equal(out[0][0].samples, alone[0][0].samples)
    np.testing.assert_array_equal(out[0][0].samples, again[1][0].samples)
    np.testing.assert_array_equal(out[1][0].samples, again[0][0].samples)
    np.testing.assert_array_equal(out[0][1].samples, again[1][1].samples)


def test_continue_max_seconds(model: GSLMMini) -> None:
    prompt = _prompt()
    voc = UnitVocoder.load(DEFAULT_CHECKPOINT / "vocoder")
    for max_seconds in (0.5, 1.23):
        req = ContinueRequest(prompt=prompt, max_seconds=max_seconds, seed=2, num_samples=2)
        units = model.sample_units(req)
        audio = model.continue_([req])[0]
        max_frames = int(max_seconds * 50 + 1e-9)
        for u, a in zip(units, audio, strict=True):
            frames = voc.durations.frames(u)
            assert a.sample_rate == SR
            assert a.samples.size <= max_seconds * SR
            assert a.samples.size == min(frames.sum(), max_frames) * UNIT_HOP
            # stopped by the budget (the last unit crossed it) or by <S> before it
            assert frames[:-1].sum() < max_frames


def test_with_prompt_returns_prompt_and_continuation(model: GSLMMini) -> None:
    prompt = _prompt()
    req = ContinueRequest(prompt=prompt, max_seconds=1.0, seed=4)
    cont = model.continue_([req])[0][0]
    whole = GSLMMini(with_prompt="true").continue_([req])[0][0]
    n_prompt = (prompt.samples.size // UNIT_HOP) * UNIT_HOP
    assert whole.samples.size == n_prompt + cont.samples.size
    np.testing.assert_array_equal(whole.samples[n_prompt:], cont.samples)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("temperature", -0.5, "temperature"),
        ("top_k", 0, "top_k"),
        ("top_p", 0.0, "top_p"),
        ("top_p", 1.5, "top_p"),
        ("max_seconds", 0.01, "max_seconds"),
        ("num_samples", 0, "num_samples"),
        ("seed", -1, "seed"),
    ],
)
def test_continue_bad_options(model: GSLMMini, field: str, value: object, match: str) -> None:
    req = ContinueRequest(prompt=_prompt(), key="p1", **{field: value})
    with pytest.raises(ConfigError, match=f"'p1'.*{match}"):
        model.continue_([req])


def test_checkpoint_without_vocoder(tmp_path) -> None:
    ck = tmp_path / "ck"
    shutil.copytree(DEFAULT_CHECKPOINT, ck, ignore=shutil.ignore_patterns("vocoder"))
    m = GSLMMini(checkpoint=str(ck))
    assert m.capabilities == frozenset({"loglikelihood", "encode"})
    assert "vocoder" not in m.identity()
    with pytest.raises(ConfigError, match="no vocoder"):
        m.resynthesize([ResynthesizeRequest(_prompt())])
