"""The ``continue`` pipeline and the ``continuation`` scorer, with stand-in model and judges.

The stand-ins make every transcript and every log-probability known in advance, so the
metrics can be checked against hand-computed values; the metric functions themselves are
checked against independent formulations in ``test_generation_metrics.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import write_wav

from speechlm_eval.audio import Audio
from speechlm_eval.cache import BlobStore, ResultCache
from speechlm_eval.config import parse_task
from speechlm_eval.errors import ConfigError
from speechlm_eval.execute import BatchSizer, ExecStats
from speechlm_eval.model import SpeechLM
from speechlm_eval.pipelines import TaskContext
from speechlm_eval.pipelines.continuation import run_continue
from speechlm_eval.readers.transcribed import read_librispeech
from speechlm_eval.scorers.continuation import GenerationScorer, Prompt

SR = 16000
# utterance id -> (seconds, reference text)
UTTS = {
    "1-2-0000": (6.5, "A B C D"),
    "1-2-0001": (8.0, "E F G"),
    "1-2-0002": (2.0, "TOO SHORT"),  # excluded: shorter than min_seconds
}


class Tones(SpeechLM):
    """Continuation j of a request: a tone whose frequency says (temperature, j), as long as
    the request allows."""

    sample_rate = SR
    capabilities = frozenset({"continue"})

    def __init__(self, device=None):
        super().__init__(device=device)
        self.calls = 0

    def identity(self):
        return {"model": "tones"}

    def continue_(self, requests):
        self.calls += len(requests)
        out = []
        for r in requests:
            n = round(r.max_seconds * SR)
            t = np.arange(n) / SR
            out.append(
                [
                    Audio(
                        (0.1 * np.sin(2 * np.pi * (200 + 100 * j + 50 * r.temperature) * t)).astype(
                            np.float32
                        ),
                        SR,
                    )
                    for j in range(r.num_samples)
                ]
            )
        return out


class LengthASR:
    """Transcript: one word per whole second of audio, the word naming the audio's length
    class: 'x x x ...'. Records every audio it hears."""

    name = "length-asr"

    def __init__(self):
        self.heard: list[Audio] = []

    def transcribe(self, audios, stats=None, cache=None, desc=None):
        self.heard.extend(audios)
        return [" ".join(["x"] * int(a.duration)) for a in audios]


class CharLM:
    """log p(text) = -0.5 per character, tokens = characters (known NLL: 0.5 per token)."""

    def loglikelihood(self, texts, stats=None, cache=None, desc=None):
        return [(-0.5 * len(t), len(t)) for t in texts]


def make_data(root: Path) -> Path:
    d = root / "continuation" / "dev-clean" / "1" / "2"
    rng = np.random.default_rng(0)
    for utt, (sec, _) in UTTS.items():
        write_wav(d / f"{utt}.wav", (0.05 * rng.standard_normal(round(sec * SR))).astype("f4"))
    (d / "1-2.trans.txt").write_text("".join(f"{u} {t}\n" for u, (_, t) in UTTS.items()))
    return root / "continuation" / "dev-clean"


def task(**generation):
    gen = {"num_samples": 2, "temperatures": [0.5, 1.0], **generation}
    return parse_task(
        {
            "task": "cont",
            "version": 1,
            "capability": "continue",
            "dataset": {"reader": "librispeech", "subdirs": ["x"], "sample_rate": SR},
            "scoring": {"scorer": "continuation"},
            "generation": gen,
        },
        "cont.yaml",
    )


def context(tmp_path, cfg, model, judges, cache=None):
    ds = read_librispeech(make_data(tmp_path / "data"), {})
    return TaskContext(
        cfg=cfg,
        dataset=ds,
        model=model,
        model_key="tones",
        cache=cache or ResultCache(None),
        blobs=BlobStore(tmp_path / "blobs"),
        sizer=BatchSizer(4),
        stats=ExecStats(),
        seed=0,
        log_samples=True,
        judges=judges,
    )


def test_prompts_are_cut_and_judged_with_the_prompt_to_the_reference_length(tmp_path):
    asr = LengthASR()
    model = Tones()
    out = run_continue(context(tmp_path, task(), model, {"asr": asr, "text_lm": CharLM()}))
    sc = out.scoring
    assert sc["prompts"] == {
        "utterances": 3,
        "excluded_too_short": 1,
        "excluded_by_max_prompts": 0,
        "prompts": 2,
    }
    # 2 prompts x 2 temperatures x 2 samples, then the 2 references
    assert len(out.samples) == 8 and len(asr.heard) == 10
    # max_seconds 'reference': each continuation lasts the rest of its utterance, and the
    # judged audio (prompt + continuation) is the utterance's length
    for row, heard in zip(out.samples, asr.heard[:8], strict=True):
        sec = UTTS[row["doc_id"]][0]
        assert heard.duration == pytest.approx(sec, abs=1 / SR)
        assert row["transcript"] == " ".join(["x"] * int(sec))
    # the prompt is the utterance's first 3 s, unchanged, at the start of the judged audio
    first = next(i for i, r in enumerate(out.samples) if r["doc_id"] == "1-2-0000")
    import soundfile as sf

    orig, _ = sf.read(tmp_path / "data/continuation/dev-clean/1/2/1-2-0000.wav", dtype="float32")
    np.testing.assert_array_equal(asr.heard[first].samples[: 3 * SR], orig[: 3 * SR])
    assert sc["generation"]["seed"] == 0 and sc["generation"]["temperatures"] == [0.5, 1.0]
    assert sc["excluded"]["empty_transcript"] == {"t=0.5": 0, "t=1": 0, "oracle": 0}


def test_metrics_equal_hand_computed_values(tmp_path):
    out = run_continue(
        context(tmp_path, task(), Tones(), {"asr": LengthASR(), "text_lm": CharLM()})
    )
    m = out.entry
    # CharLM: NLL 0.5 per token for every text -> per-utterance PPL exp(0.5) everywhere
    for f in ("t=0.5", "t=1", "oracle"):
        assert m[f"ppx_mean,{f}"] == pytest.approx(math.exp(0.5))
        assert m[f"ppx_median,{f}"] == pytest.approx(math.exp(0.5))
        assert m[f"genppl,{f}"] == pytest.approx(math.exp(0.5))
    # "x x x x x x" (6 words) and "x x x x x x x x" (8): every word repeats. fairseq's
    # auto-BLEU2: unigram precision 1, bigram precision 1 -> 1.0; slamkit's: every bigram
    # occurs elsewhere -> 1.0. Self-BLEU2 against the pool (other transcripts all "x ...")
    # -> 1.0. VERT = sqrt(1 * 1) = 1.
    for f in ("t=0.5", "t=1"):
        assert m[f"auto_bleu2_gslm,{f}"] == pytest.approx(1.0)
        assert m[f"auto_bleu_slamkit,{f}"] == pytest.approx(1.0)
        assert m[f"self_bleu2_gslm,{f}"] == pytest.approx(1.0)
        assert m[f"vert,{f}"] == pytest.approx(1.0)
        # the reference text 'a b c d' shares no word with 'x x x ...': cont-BLEU2 = 0
        assert m[f"cont_bleu2,{f}"] == 0.0
    assert out.higher_is_better["ppx_mean"] is False


def test_a_resumed_run_samples_nothing_again(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    judges = {"asr": LengthASR(), "text_lm": CharLM()}
    m1 = Tones()
    a = run_continue(context(tmp_path, task(), m1, judges, cache))
    m2 = Tones()
    b = run_continue(context(tmp_path, task(), m2, judges, cache))
    assert m1.calls == 4 and m2.calls == 0  # 2 prompts x 2 temperatures, then all cached
    assert a.entry == b.entry
    assert [r["continuation_audio"] for r in a.samples] == [
        r["continuation_audio"] for r in b.samples
    ]


def test_empty_transcripts_are_excluded_and_counted(tmp_path):
    class Deaf(LengthASR):
        def transcribe(self, audios, stats=None, cache=None, desc=None):
            # the second prompt's continuations (both temperatures) come back empty
            texts = super().transcribe(audios)
            return ["" if i in (2, 3, 6, 7) else t for i, t in enumerate(texts)]

    out = run_continue(context(tmp_path, task(), Tones(), {"asr": Deaf(), "text_lm": CharLM()}))
    ex = out.scoring["excluded"]["empty_transcript"]
    assert sum(ex.values()) == 4 and ex["oracle"] == 0
    for row in out.samples:
        assert ("nll_ppx" in row) is (not row["empty"])
        assert ("nll_genppl" in row) is (not row["empty"])


def test_bad_generation_options_are_one_line_errors(tmp_path):
    judges = {"asr": LengthASR(), "text_lm": CharLM()}
    with pytest.raises(ConfigError, match="temperatures"):
        run_continue(context(tmp_path, task(temperatures=[]), Tones(), judges))
    with pytest.raises(ConfigError, match="max_seconds"):
        run_continue(context(tmp_path, task(max_seconds="long"), Tones(), judges))
    with pytest.raises(ConfigError, match="no utterance is at least 60 s"):
        run_continue(context(tmp_path, task(min_seconds=60.0), Tones(), judges))
    with pytest.raises(ConfigError, match="unknown|not a known|prompt_sec"):
        run_continue(context(tmp_path, task(prompt_sec=2), Tones(), judges))


def test_max_prompts_keeps_the_shortest(tmp_path):
    out = run_continue(
        context(tmp_path, task(max_prompts=1), Tones(), {"asr": LengthASR(), "text_lm": CharLM()})
    )
    assert {r["doc_id"] for r in out.samples} == {"1-2-0000"}  # 6.5 s < 8.0 s
    assert out.scoring["prompts"]["excluded_by_max_prompts"] == 1


def test_without_prompt_the_judges_hear_the_continuation_only(tmp_path):
    asr = LengthASR()
    cfg = task(with_prompt=False, max_seconds=10.0)
    run_continue(context(tmp_path, cfg, Tones(), {"asr": asr, "text_lm": CharLM()}))
    for a in asr.heard[:8]:  # cut to the reference minus the prompt: 3.5 s or 5 s
        assert round(a.duration, 3) in (3.5, 5.0)
    # the oracle is the reference after the prompt
    assert sorted(round(a.duration, 3) for a in asr.heard[8:]) == [3.5, 5.0]


def test_scorer_aggregate_is_a_function_of_the_rows():
    sc = GenerationScorer({})
    prompts = [Prompt("p", None, 7.0, "the cat sat", None)]  # type: ignore[arg-type]
    rows = [
        {"doc_id": "p", "temperature": 1.0, "sample": 0, **sc._text_fields("A, a. A!")},
        {"doc_id": "p", "temperature": 1.0, "sample": 1, **sc._text_fields(" . ")},
    ]
    assert rows[0]["text"] == "a a a" and rows[1]["empty"]  # normalised (whisper_english)
    rep = sc.aggregate(prompts, rows, [{"doc_id": "p", **sc._text_fields("b c")}])
    t = rep.by_filter["t=1"].metrics
    # the anchors' toy values: fairseq excludes overlapping n-grams (0.0), slamkit counts them
    assert t["auto_bleu2_gslm"].value == 0.0 and t["auto_bleu_slamkit"].value == 1.0
    assert rep.info["excluded"]["empty_transcript"]["t=1"] == 1
    assert "none" not in rep.by_filter  # one temperature: no curve
    assert rep.info["tradeoff"]["reason"].startswith("fewer than two")


def test_unknown_scoring_option_is_an_error():
    with pytest.raises(ConfigError, match="auc_windw"):
        GenerationScorer({"auc_windw": [0, 1]})
    with pytest.raises(ConfigError, match="auc_window"):
        GenerationScorer({"auc_window": [1, 0]})


class LoudnessMOS:
    """MOS stand-in: 'ovrl' = 10 x the continuation's RMS (known per tone)."""

    def predict(self, audios, stats=None, cache=None, desc=None):
        return [{"ovrl": float(10 * np.sqrt(np.mean(a.samples**2)))} for a in audios]


class FirstSampleSpeaker:
    """Speaker stand-in: similarity 0.5 for sample 0 of a request, NaN (no signal) otherwise."""

    def __init__(self):
        self.pairs = []

    def similarity(self, a, b, stats=None, cache=None, desc=None):
        self.pairs.extend(zip(a, b, strict=True))
        return [0.5 if i % 2 == 0 else float("nan") for i in range(len(a))]


def test_mos_and_speaker_roles_score_the_continuation_alone(tmp_path):
    spk = FirstSampleSpeaker()
    judges = {"asr": LengthASR(), "text_lm": CharLM(), "mos": LoudnessMOS(), "speaker": spk}
    out = run_continue(context(tmp_path, task(), Tones(), judges))
    # tones of amplitude 0.1: RMS 0.1 / sqrt(2) -> ovrl 0.7071 for every continuation
    for f in ("t=0.5", "t=1"):
        assert out.entry[f"mos_ovrl,{f}"] == pytest.approx(10 * 0.1 / math.sqrt(2), rel=1e-3)
        # the NaN half is excluded and counted, never averaged
        assert out.entry[f"speaker_similarity,{f}"] == 0.5
    assert out.scoring["excluded"]["speaker_no_signal"] == {
        "t=0.5": 2,
        "t=1": 2,
    }  # 4 per temperature, half NaN
    assert "mos_ovrl,oracle" not in out.entry
    # the speaker judge compares the prompt (3 s) with the continuation (the rest)
    for prompt, cont in spk.pairs:
        assert prompt.duration == pytest.approx(3.0)
        assert cont.duration in (pytest.approx(3.5), pytest.approx(5.0))


def test_repeat_prompt_baseline_is_judged_beside_the_model(tmp_path):
    asr = LengthASR()
    model = Tones()
    cfg = task(baselines=["repeat_prompt"])
    out = run_continue(context(tmp_path, cfg, model, {"asr": asr, "text_lm": CharLM()}))
    assert model.calls == 4  # the baseline asks nothing of the model
    rows = [r for r in out.samples if r["filter"] == "repeat_prompt"]
    assert len(rows) == 2 and all(r["temperature"] is None for r in rows)
    assert "ppx_mean,repeat_prompt" in out.entry and "vert,repeat_prompt" in out.entry
    # the judged audio: the prompt, then the prompt again and again, cut to the reference
    heard = asr.heard[8:10]  # after the 8 model continuations, before the 2 references
    for a in heard:
        assert a.duration == pytest.approx(6.5, abs=1 / SR) or a.duration == pytest.approx(8.0)
        p = a.samples[: 3 * SR]
        np.testing.assert_array_equal(a.samples[3 * SR : 6 * SR], p)
    # the curve uses the sampled temperatures only
    pts = out.scoring["tradeoff"]["points"]
    assert [p["temperature"] for p in pts] == [0.5, 1.0]
    with pytest.raises(ConfigError, match="baselines"):
        run_continue(context(tmp_path, task(baselines=["silence"]), Tones(), {"asr": asr}))
