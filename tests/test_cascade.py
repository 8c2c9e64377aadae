"""The cascade reference model end to end: packaged ASR judge -> text LM -> Piper TTS.

The model (and so the Whisper tiny.en judge) is loaded once per module, with greedy ASR
decoding to keep CI short. Built-in data is the tiny suite, built here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import build_tiny

from reference_models.cascade import textlm
from reference_models.cascade.model import Cascade, parse_asr_args
from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError
from speechlm_eval.model import (
    ContinueRequest,
    ConverseRequest,
    LoglikelihoodRequest,
    RespondRequest,
)
from speechlm_eval.runner import RunOptions, evaluate
from speechlm_eval.streaming import drive

SR = 16000
ASR_ARGS = "beam_size=1"


@pytest.fixture(scope="module")
def model() -> Cascade:
    return Cascade(asr_args=ASR_ARGS)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("cascade_tiny")
    build_tiny(out, ["lexical", "storycloze"])
    return out


def _say(model: Cascade, text: str) -> np.ndarray:
    return model.tts.say(text).samples


# --- loglikelihood ---------------------------------------------------------------------------


def test_identity_names_every_part(model: Cascade) -> None:
    ident = model.identity()
    json.dumps(ident)
    assert ident["asr"]["judge"] == "faster-whisper" and ident["asr"]["model"]["sha256"]
    assert ident["asr"]["decoding"]["beam_size"] == 1
    assert ident["text_lm"]["text_lm"] == textlm.NGRAM_NAME
    assert ident["text_lm"]["corpus_sha256"] and ident["text_lm"]["counts_sha256"]
    assert ident["tts"]["model_sha256"] and ident["vad"]["sha256"]
    assert ident == model.identity()


def test_loglikelihood_is_text_lm_of_transcript(model: Cascade) -> None:
    a = Audio(_say(model, "The old man walked home."), SR, "a")
    b = Audio(_say(model, "Home walked man the old."), SR, "b")
    res = model.loglikelihood(
        [
            LoglikelihoodRequest(audio=a, key="a"),
            LoglikelihoodRequest(text="The old man walked home.", key="t"),
            LoglikelihoodRequest(audio=b, key="b"),
        ]
    )
    heard = model.transcribe([a, b])
    lm = model.lm.model
    assert (res[0].logprob, res[0].num_tokens) == pytest.approx(lm.logprob(heard[0]))
    assert (res[2].logprob, res[2].num_tokens) == pytest.approx(lm.logprob(heard[1]))
    assert (res[1].logprob, res[1].num_tokens) == lm.logprob("The old man walked home.")
    # hand check of the token count: characters + </s>
    assert res[1].num_tokens == len("the old man walked home") + 1
    with pytest.raises(ValueError, match="both audio and text"):
        model.loglikelihood([LoglikelihoodRequest(audio=a, text="x", key="k")])


def test_hf_text_lm_through_cascade(tmp_path) -> None:
    from test_cascade_ngram import brute_force_gpt2, save_tiny_gpt2

    save_tiny_gpt2(tmp_path)
    m = Cascade(asr_args=ASR_ARGS, text_lm="hf", pretrained=str(tmp_path))
    (r,) = m.loglikelihood([LoglikelihoodRequest(text="the lazy dog", key="k")])
    lp, n = brute_force_gpt2(tmp_path, "the lazy dog")
    assert r.num_tokens == n and r.logprob == pytest.approx(lp, abs=1e-3)
    assert m.identity()["text_lm"]["pretrained"]["weights_hash"]


def _strip_run(res: dict) -> dict:
    drop = {"date", "start_time", "end_time", "total_evaluation_time_seconds", "runtime"}
    return {k: v for k, v in res.items() if k not in drop}


def test_end_to_end_on_builtin_tiny_is_reproducible(model: Cascade, tiny, tmp_path) -> None:
    opts = RunOptions(tasks="swuggy,ssc", data_dir=str(tiny), limit=1, no_cache=True, seed=0)
    first = evaluate("cascade", {"asr_args": ASR_ARGS}, opts, model=model)
    second = evaluate("cascade", {"asr_args": ASR_ARGS}, opts, model=model)
    assert _strip_run(first) == _strip_run(second)
    for task in ("swuggy", "ssc"):
        r = first["results"][task]
        for v in ("nll_sum", "nll_mean"):
            assert 0.0 <= r[f"acc,{v}"] <= 1.0
    assert first["n-samples"]["ssc"]["effective"] == 1
    assert first["config"]["model_identity"]["asr"]["judge"] == "faster-whisper"


# --- generation ------------------------------------------------------------------------------


def test_continue_is_seeded(model: Cascade) -> None:
    prompt = Audio(_say(model, "The old man walked slowly to the"), SR, "p")

    def run(seed: int, n: int = 2) -> list[Audio]:
        (out,) = model.continue_(
            [
                ContinueRequest(
                    prompt=prompt, num_samples=n, temperature=1.0, max_seconds=2.0, seed=seed
                )
            ]
        )
        return out

    a, b = run(0), run(0)
    assert len(a) == 2
    for x, y in zip(a, b, strict=True):
        assert x.sample_rate == SR and np.array_equal(x.samples, y.samples)
        assert x.duration <= 2.0
    assert np.array_equal(run(0, n=1)[0].samples, a[0].samples)  # sample 0 is sample 0
    ref = a[0].samples
    # different seeds give different samples (stops at the first seed that differs)
    assert any(not np.array_equal(run(s, n=1)[0].samples, ref) for s in (1, 2, 3))


def test_respond_text_and_audio(model: Cascade) -> None:
    instr = "Tell me about the garden."
    audio = Audio(_say(model, instr), SR, "instr")
    r_text, r_audio, r_text2 = model.respond(
        [RespondRequest(text=instr), RespondRequest(audio=audio), RespondRequest(text=instr)]
    )
    assert r_text.text and r_text.audio is not None and r_text.audio.sample_rate == SR
    assert r_text.text == r_text2.text and np.array_equal(
        r_text.audio.samples, r_text2.audio.samples
    )
    (heard,) = model.transcribe([audio])
    assert r_audio.text == model.respond([RespondRequest(text=heard)])[0].text


def test_parse_asr_args() -> None:
    assert parse_asr_args("beam_size=1; cpu_threads=2") == {"beam_size": "1", "cpu_threads": "2"}
    assert parse_asr_args({"beam_size": 1}) == {"beam_size": 1}
    assert parse_asr_args(None) == {}
    with pytest.raises(ConfigError, match="asr_args"):
        parse_asr_args("beam_size")


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="gap"):
        Cascade(gap="soon")
    with pytest.raises(ConfigError, match="chat"):
        Cascade(chat="maybe")
    with pytest.raises(ConfigError, match="beam_size"):
        Cascade(asr_args="beam_size=0")
    with pytest.raises(ConfigError, match="text_lm"):
        Cascade(asr_args=ASR_ARGS, text_lm="no-such-lm")


# --- converse: real VAD on synthetic user channels ----------------------------------------------


def _active(x: np.ndarray, win: int = 160) -> np.ndarray:
    """Per 10 ms window: is there signal (independent of the VAD)?"""
    n = x.size // win
    return np.abs(x[: n * win]).reshape(n, win).max(1) > 1e-4


def _speech_span(x: np.ndarray, win: int = 160) -> tuple[int, int]:
    """First and last sample of the 10 ms windows within 40 dB of the loudest (no VAD)."""
    n = x.size // win
    rms = np.sqrt((x[: n * win].astype(np.float64).reshape(n, win) ** 2).mean(1))
    idx = np.flatnonzero(rms > rms.max() / 100)
    return int(idx[0] * win), int((idx[-1] + 1) * win)


def test_converse_answers_after_the_gap_and_yields(model: Cascade) -> None:
    u1 = _say(model, "Hello there, how are you today?")
    u2 = _say(model, "Wait, stop, I have a question.")
    pause = model.policy.gap + 1.2  # the barge-in comes about a second into the answer
    lead = SR // 2
    user = np.concatenate(
        [np.zeros(lead), u1, np.zeros(round(pause * SR)), u2, np.zeros(3 * SR)]
    ).astype(np.float32)
    end1 = lead + _speech_span(u1)[1]
    start2 = lead + u1.size + round(pause * SR) + _speech_span(u2)[0]
    end2 = lead + u1.size + round(pause * SR) + _speech_span(u2)[1]
    res = drive(model, ConverseRequest(user=Audio(user, SR, "u"), key="c"))
    out = res.model
    assert res.realtime["frames"] == -(-user.size // round(0.08 * SR))
    assert out.sample_rate == SR and out.samples.size == user.size
    act = _active(out.samples)
    on = np.flatnonzero(act) * 160
    assert on.size, "the model never spoke"
    # 1. silent while the user speaks turn 1; first answer about `gap` after its end: the
    # streaming VAD's lag in seeing the end (~0.1 s), the wait for the rest of the frame and
    # the one frame of output delay (2 x 0.08 s) come on top.
    first = on[0]
    slack = 0.1 + 2 * 0.08
    assert end1 + (model.policy.gap - 0.1) * SR <= first <= end1 + (model.policy.gap + slack) * SR
    # 2. yields: silent from the barge-in + yield_after (+ VAD slack) until turn 2 has ended
    cut = start2 + round((model.policy.yield_after + 0.1) * SR)
    assert not act[cut // 160 : end2 // 160].any()
    assert act[(start2 - SR // 10) // 160]  # it was still speaking just before the barge-in
    # 3. answers turn 2 after the gap
    later = on[on > end2]
    assert later.size and later[0] <= end2 + (model.policy.gap + slack) * SR
    # deterministic
    again = drive(model, ConverseRequest(user=Audio(user, SR, "u"), key="c")).model
    assert np.array_equal(again.samples, out.samples)


def test_converse_silence_gives_silence(model: Cascade) -> None:
    out = drive(model, ConverseRequest(user=Audio(np.zeros(SR, np.float32), SR), key="s")).model
    assert out.samples.size == SR and not out.samples.any()
    assert math.isclose(out.duration, 1.0)
