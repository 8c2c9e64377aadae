"""The one executor (``speechlm_eval.execute.execute``) for every worker: a model's ``continue``
with N seeded samples and a VAD judge go through the same code as likelihoods and transcripts,
with the same cache, resume and de-duplication.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np
import pytest

from speechlm_eval import Audio, ContinueRequest, PluginError, SpeechLM
from speechlm_eval.cache import BlobStore, ResultCache
from speechlm_eval.execute import (
    BatchSizer,
    ExecStats,
    Item,
    continue_capability,
    execute,
    model_key,
    request_key,
)
from speechlm_eval.judges import Judge
from speechlm_eval.judges.base import JudgeRequest, OptionSpec, judge_key, run_judge

SR = 16000


def prompt(i: int, seconds: float) -> Audio:
    rng = np.random.default_rng(i)
    return Audio((0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)


class Sampler(SpeechLM):
    """continue: sample j of a request is noise from a generator seeded by (seed, j, prompt
    length); it dies with KeyboardInterrupt on a prompt of ``die_on`` samples (a crash)."""

    capabilities = frozenset({"continue"})
    sample_rate = SR

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.die_on: int | None = None

    def identity(self) -> dict[str, Any]:
        return {"class": "Sampler"}

    def continue_(self, requests: list[ContinueRequest]) -> list[list[Audio]]:
        if any(r.prompt.samples.size == self.die_on for r in requests):
            raise KeyboardInterrupt
        self.calls.append([r.key for r in requests])
        out = []
        for r in requests:
            n = int(r.max_seconds * SR)
            samples = []
            for j in range(r.num_samples):
                g = np.random.default_rng([r.seed, j, r.prompt.samples.size])
                samples.append(Audio((r.temperature * g.standard_normal(n)).astype(np.float32), SR))
            out.append(samples)
        return out


def continue_items(prompts: dict[str, Audio], seed: int = 0, n: int = 3) -> list[Item]:
    def item(key: str, a: Audio) -> Item:
        return Item(
            key,
            a.duration,
            lambda conform: ContinueRequest(
                conform(a), num_samples=n, temperature=0.5, max_seconds=0.05, seed=seed, key=key
            ),
        )

    return [item(k, a) for k, a in prompts.items()]


def run_continue(model, cache_path, items, stats=None):
    blobs = BlobStore.beside(cache_path)
    job = continue_capability(model, blobs).job(model, model_key("sampler", model))
    return execute(
        job,
        items,
        cache=ResultCache(cache_path),
        sizer=BatchSizer(2),
        stats=stats if stats is not None else ExecStats(),
        desc="continue",
    )


PROMPTS = {f"p{i}": prompt(i, 0.1 + 0.02 * i) for i in range(5)}


def test_continue_samples_are_seeded_cached_and_resume_after_a_crash(tmp_path):
    m = Sampler()
    full = run_continue(m, tmp_path / "a.sqlite", continue_items(PROMPTS))
    assert [len(v) for v in full] == [3] * 5
    assert m.calls == [["p4", "p3"], ["p2", "p1"], ["p0"]]  # longest first, batches of 2
    # the samples of one prompt differ from each other (seeded per sample index)
    assert not np.array_equal(full[0][0].samples, full[0][1].samples)

    # a run killed in its second batch keeps the first; resumed, it computes only the rest
    dying = Sampler()
    dying.die_on = PROMPTS["p1"].samples.size
    cache = tmp_path / "b.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_continue(dying, cache, continue_items(PROMPTS))
    resumed, stats = Sampler(), ExecStats()
    again = run_continue(resumed, cache, continue_items(PROMPTS), stats)
    assert resumed.calls == [["p2", "p1"], ["p0"]]
    assert (stats.cache_hits, stats.computed) == (2, 3)
    for x, y in zip(full, again, strict=True):
        assert all(np.array_equal(a.samples, b.samples) for a, b in zip(x, y, strict=True))

    # everything cached now: nothing is recomputed and the samples are the very same
    idle, stats = Sampler(), ExecStats()
    cached = run_continue(idle, cache, continue_items(PROMPTS), stats)
    assert idle.calls == [] and (stats.cache_hits, stats.computed) == (5, 0)
    assert all(
        np.array_equal(a[0].samples, b[0].samples) for a, b in zip(full, cached, strict=True)
    )

    # another seed is another request: computed, and different audio
    other = run_continue(Sampler(), cache, continue_items(PROMPTS, seed=1))
    assert not np.array_equal(other[0][0].samples, full[0][0].samples)


def test_fingerprint_has_every_option_and_not_the_label():
    a = PROMPTS["p0"]
    base = ContinueRequest(a, num_samples=2, temperature=0.7, seed=3, key="x")
    assert (
        base.fingerprint()
        == ContinueRequest(a, num_samples=2, temperature=0.7, seed=3, key="y").fingerprint()
    )
    variants = [
        ContinueRequest(a, num_samples=3, temperature=0.7, seed=3),
        ContinueRequest(a, num_samples=2, temperature=0.8, seed=3),
        ContinueRequest(a, num_samples=2, temperature=0.7, seed=4),
        ContinueRequest(a, num_samples=2, temperature=0.7, seed=3, top_k=5),
        ContinueRequest(a, num_samples=2, temperature=0.7, seed=3, top_p=0.9),
        ContinueRequest(a, num_samples=2, temperature=0.7, seed=3, max_seconds=5),
        ContinueRequest(PROMPTS["p1"], num_samples=2, temperature=0.7, seed=3),
        ContinueRequest(a.resample(8000), num_samples=2, temperature=0.7, seed=3),
    ]
    prints = [v.fingerprint() for v in variants]
    assert base.fingerprint() not in prints and len({str(p) for p in prints}) == len(prints)


def test_wrong_number_of_continuations_is_a_plugin_error(tmp_path):
    class Short(Sampler):
        def continue_(self, requests):
            return [samples[:-1] for samples in super().continue_(requests)]

    with pytest.raises(PluginError, match=r"continue\('p4'\): model returned 2 continuations"):
        run_continue(Short(), tmp_path / "c.sqlite", continue_items(PROMPTS))


# --- a judge through the same executor --------------------------------------------------------


class EnergyVAD(Judge):
    """VAD stand-in: one segment over the samples whose magnitude exceeds ``level``."""

    kind = "vad"
    OPTIONS: ClassVar[OptionSpec] = {"level": (float, 0.05), "batch_size": (int, 2)}

    def __init__(self, **options: Any) -> None:
        super().__init__("energy-vad", **options)
        self.batches: list[int] = []

    def identity(self) -> dict[str, Any]:
        return {"judge": "energy-vad", "level": self.options["level"]}

    def segments(self, audios, stats=None, cache=None):
        return run_judge(self, "segments", self._segments, audios, stats, cache)

    def _segments(self, requests: list[JudgeRequest]) -> list[list[list[float]]]:
        self.batches.append(len(requests))
        out = []
        for r in requests:
            loud = np.flatnonzero(np.abs(r.audio.samples) > self.options["level"])
            out.append([[loud[0] / SR, (loud[-1] + 1) / SR]] if loud.size else [])
        return out


def burst(start: float, end: float, total: float = 1.0, sr: int = SR) -> Audio:
    x = np.zeros(int(total * sr), np.float32)
    x[int(start * sr) : int(end * sr)] = 0.5
    return Audio(x, sr)


def test_judge_goes_through_the_executor_cache_dedup_and_resampling(tmp_path):
    vad = EnergyVAD()
    audios = [burst(0.1, 0.3), burst(0.5, 0.9), burst(0.1, 0.3), burst(0.2, 0.4, sr=8000)]
    cache = ResultCache(tmp_path / "v.sqlite")
    stats = ExecStats()
    segs = vad.segments(audios, stats, cache)
    assert segs[0] == segs[2] == [[0.1, 0.3]] and segs[1] == [[0.5, 0.9]]
    assert segs[3] == [[pytest.approx(0.2, abs=2e-3), pytest.approx(0.4, abs=2e-3)]]
    assert (stats.computed, stats.cache_hits) == (3, 0)  # the repeated audio judged once
    assert stats.resampled == {"8000->16000": 1}
    again, stats = EnergyVAD(), ExecStats()
    assert again.segments(audios, stats, ResultCache(tmp_path / "v.sqlite")) == segs
    assert again.batches == [] and stats.cache_hits == 4
    # another identity (option) is another cache namespace
    assert judge_key(EnergyVAD(level=0.1)) != judge_key(vad)


def test_judge_and_model_keys_never_collide_for_the_same_audio():
    a = PROMPTS["p0"]
    req = JudgeRequest(a)
    from speechlm_eval.execute import Job

    k1 = request_key(Job("segments", judge_key(EnergyVAD()), lambda r: r), req)
    k2 = request_key(Job("transcribe", judge_key(EnergyVAD()), lambda r: r), req)
    k3 = request_key(Job("segments", model_key("sampler", Sampler()), lambda r: r), req)
    assert len({k1, k2, k3}) == 3


# --- the packaged Silero VAD judge --------------------------------------------------------------


def test_silero_vad_finds_the_pause_between_two_utterances(tmp_path):
    pytest.importorskip("silero_vad")
    pytest.importorskip("piper")
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    from speechlm_eval.builtin.voices import all_voices
    from speechlm_eval.judges import load_judge

    joe = all_voices()["joe"]
    one, two = joe.text("The weather is fine today."), joe.text("We will walk to the river.")
    pause = np.zeros(SR, np.float32)  # a planted 1 s pause
    x = np.concatenate([one, pause, two]).astype(np.float32)
    vad = load_judge("silero-vad")
    (segs,) = vad.segments([Audio(x, SR)], cache=ResultCache(tmp_path / "s.sqlite"))
    assert len(segs) >= 2
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(segs)]
    i = int(np.argmax(gaps))
    # the largest gap is the planted pause (less the package's 30 ms padding on each side)
    assert segs[i][1] <= one.size / SR + 0.1 and segs[i + 1][0] >= (one.size + SR) / SR - 0.1
    assert gaps[i] == pytest.approx(1.0, abs=0.2)
    # the same segments as the package's function called directly (the reference)
    ref = get_speech_timestamps(torch.from_numpy(x), load_silero_vad(onnx=False), sampling_rate=SR)
    assert segs == [(t["start"] / SR, t["end"] / SR) for t in ref]


# --- respond: text and audio answers through the same executor ----------------------------------


class Parrot(SpeechLM):
    """respond: the instruction's text upper-cased; with audio, the audio reversed as speech."""

    capabilities = frozenset({"respond"})
    sample_rate = SR

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def identity(self) -> dict[str, Any]:
        return {"class": "Parrot"}

    def respond(self, requests):
        from speechlm_eval import RespondResult

        self.calls += 1
        return [
            RespondResult(
                text=(r.text or "").upper(),
                audio=None if r.audio is None else Audio(r.audio.samples[::-1].copy(), SR),
            )
            for r in requests
        ]


def test_respond_answers_are_cached_text_and_audio(tmp_path):
    from speechlm_eval import RespondRequest
    from speechlm_eval.execute import respond_capability

    def items():
        return [
            Item("q1", 0.0, lambda conform: RespondRequest(text="say yes", key="q1")),
            Item(
                "q2",
                PROMPTS["p2"].duration,
                lambda conform: RespondRequest(text="echo", audio=conform(PROMPTS["p2"])),
            ),
        ]

    def run(model):
        blobs = BlobStore.beside(tmp_path / "r.sqlite")
        job = respond_capability(model, blobs).job(model, model_key("parrot", model))
        return execute(
            job, items(), cache=ResultCache(tmp_path / "r.sqlite"), sizer=BatchSizer(4),
            stats=ExecStats(),
        )  # fmt: skip

    first, again = run(Parrot()), run(idle := Parrot())
    assert first[0].text == "SAY YES" and first[0].audio is None
    assert np.array_equal(first[1].audio.samples, PROMPTS["p2"].samples[::-1])
    assert idle.calls == 0 and again[0].text == "SAY YES"
    assert np.array_equal(again[1].audio.samples, first[1].audio.samples)


def test_continue_request_budget_is_checked_in_one_place():
    from speechlm_eval import ConfigError

    a = PROMPTS["p0"]
    assert ContinueRequest(a, num_samples=3, seed=2, max_seconds=0.3).budget(50, "r") == (3, 2, 15)
    assert ContinueRequest(a, max_seconds=1.0).budget(12.5, "r") == (1, 0, 12)
    for bad, message in (
        ({"num_samples": 0}, "r: num_samples must be an integer >= 1, got 0"),
        ({"num_samples": True}, "r: num_samples must be an integer >= 1, got True"),
        ({"seed": -1}, "r: seed must be an integer >= 0, got -1"),
        ({"max_seconds": 0.01}, r"r: max_seconds must be a number >= one frame \(0.020 s\)"),
        ({"max_seconds": float("nan")}, "r: max_seconds must be a number"),
    ):
        with pytest.raises(ConfigError, match=message):
            ContinueRequest(a, **bad).budget(50, "r")
