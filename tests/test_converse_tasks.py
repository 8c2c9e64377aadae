"""The ``converse`` pipeline and its tasks on the built-in tiny dialogue data: a causal stand-in
model through ``evaluate``, resume after a model error (finished sessions never recomputed,
no results written), determinism, the ``fullduplex`` scorer on hand-made timelines and the
``turn_taking`` scorer against the turn-taking module called directly."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest
from helpers import build_tiny

from speechlm_eval import turntaking as tt
from speechlm_eval.audio import Audio
from speechlm_eval.dataset import SessionItem
from speechlm_eval.errors import DataError, PluginError
from speechlm_eval.model import SessionInfo, SpeechLM
from speechlm_eval.runner import RunOptions, evaluate
from speechlm_eval.scorers.fullduplex import FullDuplexScorer, score_session
from speechlm_eval.scorers.turntaking import TurnTakingScorer

SR = 16000
FRAME = 0.04


class Talker:
    """After 0.3 s of user silence following user sound, says back (parrots) the first 0.6 s
    of sound it heard from the user: speech, so the VAD judge hears it (energy, causal)."""

    def __init__(self, model: EchoTalker, info: SessionInfo) -> None:
        self.model, self.n = model, info.frame_samples
        self.quiet, self.heard_sound = 0, False
        self.kept: list[np.ndarray] = []  # the first 0.6 s of loud frames heard
        self.queue = np.zeros(0, np.float32)

    def step(self, user: np.ndarray) -> np.ndarray:
        self.model.steps += 1
        if self.model.fail_at is not None and self.model.steps == self.model.fail_at:
            raise RuntimeError("injected failure")
        loud = float(np.abs(user).max()) > 1e-3
        if loud and len(self.kept) * FRAME < 0.6:
            self.kept.append(user.copy())
        self.heard_sound |= loud
        self.quiet = 0 if loud else self.quiet + 1
        if self.heard_sound and self.quiet * FRAME >= 0.3 and not self.queue.size:
            self.queue, self.heard_sound = np.concatenate(self.kept), False
        out = np.zeros(self.n, np.float32)
        take = min(self.n, self.queue.size)
        out[:take], self.queue = self.queue[:take], self.queue[take:]
        return out

    def close(self) -> None:
        self.model.closed += 1


class EchoTalker(SpeechLM):
    capabilities: ClassVar[frozenset[str]] = frozenset({"converse"})
    sample_rate = SR
    converse_frame_seconds = FRAME

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.fail_at, self.steps, self.opened, self.closed = fail_at, 0, 0, 0

    def identity(self) -> dict[str, Any]:
        return {"class": "EchoTalker"}  # equal for every instance: cache hits across runs

    def open_session(self, info: SessionInfo) -> Talker:
        self.opened += 1
        return Talker(self, info)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dialogue_tiny")
    build_tiny(out, ["dialogue"])
    return out


def _opts(data: Path, tmp: Path, **kw: Any) -> RunOptions:
    base = dict(
        tasks="converse_turn_taking,converse_fullduplex",
        data_dir=str(data),
        data_source="official",
        output_path=str(tmp / "out"),
        use_cache=str(tmp / "cache.sqlite"),
        log_samples=True,
    )
    base.update(kw)
    return RunOptions(**base)


def _rows(out: Path, task: str) -> list[dict[str, Any]]:
    (f,) = sorted(out.rglob(f"samples_{task}_*.jsonl"))
    return [json.loads(x) for x in f.read_text().splitlines()]


def test_tasks_run_and_resume_after_a_model_error(data: Path, tmp_path: Path) -> None:
    n_sessions = 4  # tiny: 2 conversations + 2 full-duplex stimuli
    # A run that fails in the middle of the third session: one error naming the session and
    # the frame, nothing written; the two finished sessions are in the cache.
    probe = EchoTalker()
    res = evaluate("echo-talker", {}, _opts(data, tmp_path / "probe"), model=probe)
    assert probe.opened == n_sessions and probe.closed == n_sessions
    # The conversations task runs first (2 sessions, cached as each finishes); the failure
    # comes 5 frames into the first full-duplex session (sessions run longest first).
    conv = [json.loads(x) for x in (data / "dialogue/conversations/conversations.jsonl").open()]
    frames = sorted(
        (-(-round(c["duration"] * SR) // round(FRAME * SR)) for c in conv), reverse=True
    )
    steps_two = frames[0] + frames[1]
    failing = EchoTalker(fail_at=steps_two + 5)
    with pytest.raises(PluginError, match=r"converse session 'fd-\d+', frame 4 .*injected failure"):
        evaluate("echo-talker", {}, _opts(data, tmp_path), model=failing)
    assert not list((tmp_path / "out").rglob("results_*.json"))
    assert failing.opened == 3 and failing.closed == 3
    again = EchoTalker()
    res2 = evaluate("echo-talker", {}, _opts(data, tmp_path), model=again)
    assert again.opened == n_sessions - 2  # the two finished sessions came from the cache
    # Same results as the uninterrupted run, row for row.
    for task in ("converse_turn_taking", "converse_fullduplex"):
        assert res2["results"][task] == res["results"][task]
        a = _rows(tmp_path / "probe" / "out", task)
        b = _rows(tmp_path / "out", task)
        strip = ("model_audio",)
        assert [{k: v for k, v in r.items() if k not in strip} for r in a] == [
            {k: v for k, v in r.items() if k not in strip} for r in b
        ]
    sc = res2["scoring"]["converse_fullduplex"]
    assert sc["protocol"]["frame_seconds"] == FRAME and sc["realtime"]["sessions"] == 2


def test_the_talker_behaviour_is_measured_on_the_timeline(data: Path, tmp_path: Path) -> None:
    """The stand-in answers 0.3 s of silence after sound with 0.6 s of speech (+ one frame
    of delay, + the frame it takes to count): it takes the planned pauses (all of them are
    longer than 0.3 s) and responds ~0.3-0.42 s after the turn end."""
    res = evaluate(
        "echo-talker", {}, _opts(data, tmp_path, tasks="converse_fullduplex"), model=EchoTalker()
    )
    m = res["results"]["converse_fullduplex"]
    assert m["pause_takeover_rate,none"] == 1.0
    assert m["response_rate,none"] == 1.0
    assert 0.3 <= m["response_latency,none"] <= 0.3 + 3 * FRAME
    rows = _rows(tmp_path / "out", "converse_fullduplex")
    stim = {
        json.loads(x)["id"]: json.loads(x)
        for x in (data / "dialogue/fullduplex/fullduplex.jsonl").open()
    }
    for r in rows:
        # recomputed from the VAD segments the row kept, by the scorer's own rule
        again = score_session(stim[r["doc_id"]], [tuple(s) for s in r["model_speech"]], 1.0)
        assert again["response_latency"] == pytest.approx(r["response_latency"], abs=1e-4)


# --- the scorers on hand-made timelines -----------------------------------------------------------

META = {
    "id": "s",
    "pauses": [{"start": 2.0, "end": 3.0, "planned": True}],
    "turn_ends": [5.0, 9.0],
    "interruptions": [{"start": 7.0, "end": 9.0}],
}


def test_fullduplex_session_hand_computed() -> None:
    # speaks 2.5-2.75 in the pause, answers at 5.4, is still talking at the barge-in (7.0)
    # and stops at 7.45.
    r = score_session(META, [(2.5, 2.75), (5.4, 7.45)], stop_within=1.0)
    assert r["pause_takeover"] == 1.0 and r["pause_speech_seconds"] == pytest.approx(0.25)
    assert r["responded"] == 1.0 and r["response_latency"] == pytest.approx(0.4)
    assert r["speaking_at_barge_in"] and r["stop_latency"] == pytest.approx(0.45)
    assert r["stopped"] == 1.0
    # silent in the pause, never answers before the barge-in, silent at it
    r = score_session(META, [(9.5, 10.0)], stop_within=1.0)
    assert r["pause_takeover"] == 0.0 and r["responded"] == 0.0
    assert r["response_latency"] is None and not r["speaking_at_barge_in"]
    # talks through the barge-in for 2 s: not a stop within 1 s
    r = score_session(META, [(5.2, 9.0)], stop_within=1.0)
    assert r["stop_latency"] == pytest.approx(2.0) and r["stopped"] == 0.0
    with pytest.raises(DataError, match="expected one planned pause"):
        score_session({**META, "pauses": []}, [], 1.0)


def test_fullduplex_aggregate_counts_sessions_without_barge_in_speech() -> None:
    sc = FullDuplexScorer({})
    parts = [
        [
            {"doc_id": "a", **score_session(META, [(5.4, 7.45)], 1.0)},
            {"doc_id": "b", **score_session(META, [(9.5, 10.0)], 1.0)},
        ]
    ]
    rep = sc.finish([], parts)
    m = rep.by_filter["none"].metrics
    assert m["response_rate"].value == 0.5 and m["response_latency"].value == pytest.approx(0.4)
    assert m["interrupt_stop_rate"].n == 1  # b was silent at the barge-in: not a stop
    assert rep.info["counts"]["not_speaking_at_barge_in"] == 1


class FixedVAD:
    """A stand-in vad judge: the segments of each audio, looked up by its first sample."""

    def __init__(self, table: dict[float, list[tuple[float, float]]]) -> None:
        self.table = table

    def segments(self, audios, stats=None, cache=None, desc=None):
        return [self.table[round(float(a.samples[0]), 3)] for a in audios]


def test_turn_taking_scorer_equals_the_module(tmp_path: Path) -> None:
    def marked(v: float) -> Audio:
        x = np.zeros(SR * 10, np.float32)
        x[0] = v
        return Audio(x, SR)

    ref_path = tmp_path / "b.wav"
    import soundfile as sf

    sf.write(ref_path, marked(0.3).samples, SR, subtype="FLOAT")
    user = [(0.5, 2.0), (2.1, 3.0), (6.0, 7.0)]  # 0.1 s silence: merged into one IPU
    model = [(3.4, 5.8), (6.5, 8.0)]
    other = [(3.2, 5.9)]
    vad = FixedVAD({0.1: user, 0.2: model, 0.3: other})
    item = SessionItem("c", "conversation", {}, ref_path)
    s = SimpleNamespace(doc_id="c", item=item, user=marked(0.1), model=marked(0.2))
    sc = TurnTakingScorer({"min_silence": 0.2})
    rows = sc.judge([s], {"vad": vad}, cache=None)
    want = tt.stats({"u": tt.ipus(user, 0.2), "m": tt.ipus(model, 0.2)}, 10.0).as_dict()
    assert rows[0]["model"] == want
    rep = sc.finish([], [rows])
    assert rep.by_filter["model"].metrics["gaps_per_min"].value == pytest.approx(
        want["gaps_per_min"]
    )
    # by hand: IPUs user (0.5-3.0), (6.0-7.0); model (3.4-5.8), (6.5-8.0): gaps 3.0-3.4 and
    # 5.8-6.0, one overlap 6.5-7.0; 10 s = 1/6 min
    assert want["gaps_count"] == 2 and want["overlaps_count"] == 1
    assert want["gaps_per_min"] == pytest.approx(12.0)
    assert want["overlaps_seconds"] == pytest.approx(0.5)
    assert "reference" in rows[0] and rep.info["counts"]["with_reference"] == 1
    ref = tt.stats({"u": tt.ipus(user, 0.2), "b": tt.ipus(other, 0.2)}, 10.0).as_dict()
    # by hand: reference IPUs user (0.5-3.0), (6.0-7.0); other (3.2-5.9): gaps 3.0-3.2 and
    # 5.9-6.0 -> 12 per minute too; model overlaps 6 per minute, reference none
    assert ref["gaps_per_min"] == pytest.approx(12.0) and ref["overlaps_count"] == 0
    vs = rep.by_filter["vs_reference"].metrics
    assert vs["abs_diff_gaps_per_min"].value == pytest.approx(0.0)
    assert vs["abs_diff_overlaps_per_min"].value == pytest.approx(6.0)
    assert vs["abs_diff_gaps_per_min"].higher_is_better is False


# --- dialogue->dialogue continuation (dGSLM-style, offline) ----------------------------------


class CopyDialogue(SpeechLM):
    """Continues a two-channel prompt by repeating it (cut or zero-padded to max_seconds)."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"continue"})
    continue_modalities: ClassVar[frozenset[str]] = frozenset({"dialogue->dialogue"})
    sample_rate = SR

    def __init__(self, short: bool = False) -> None:
        super().__init__()
        self.short = short
        self.requests: list[Any] = []

    def continue_(self, requests):
        from speechlm_eval.audio import TwoChannelAudio

        out = []
        for r in requests:
            self.requests.append(r)
            n = round(r.max_seconds * SR) - (SR if self.short else 0)
            d = r.prompt_dialogue

            def fit(x: np.ndarray, n: int = n) -> np.ndarray:
                y = np.zeros(n, np.float32)
                y[: min(n, x.size)] = x[:n]
                return y

            out.append([TwoChannelAudio(Audio(fit(d.a.samples), SR), Audio(fit(d.b.samples), SR))])
        return out


def test_dialogue_continuation_end_to_end(data: Path, tmp_path: Path) -> None:
    model = CopyDialogue()
    res = evaluate(
        "copy-dialogue",
        {},
        _opts(data, tmp_path, tasks="dialogue_continuation,converse_fullduplex"),
        model=model,
    )
    assert "converse_fullduplex" in res["skipped"]  # no converse capability
    m = res["results"]["dialogue_continuation"]
    sc = res["scoring"]["dialogue_continuation"]
    assert sc["conversations"]["usable"] + sc["conversations"]["excluded_too_short"] == 2
    assert {r.direction for r in model.requests} == {"dialogue->dialogue"}
    assert all(r.prompt_dialogue.duration == pytest.approx(10.0) for r in model.requests)
    rows = _rows(tmp_path / "out", "dialogue_continuation")
    for r in rows:  # a copied prompt has the prompt's statistics
        assert r["model"] == r["prompt"]
    assert m["ipus_per_min,model"] == pytest.approx(
        np.mean([r["prompt"]["ipus_per_min"] for r in rows])
    )
    # a model that returns a continuation of the wrong length: one error naming it
    with pytest.raises(PluginError, match=r"lasts 9.000 s; a dialogue continuation must last"):
        evaluate(
            "copy-dialogue",
            {},
            _opts(data, tmp_path / "bad", tasks="dialogue_continuation"),
            model=CopyDialogue(short=True),
        )


def test_dialogue_consistency_against_scipy() -> None:
    from scipy import stats as st

    from speechlm_eval.audio import TwoChannelAudio
    from speechlm_eval.scorers.turntaking import DialogueContinuationScorer

    rng = np.random.default_rng(3)
    table: dict[float, list[tuple[float, float]]] = {}
    samples = []

    def chan(v: float, segs: list[tuple[float, float]]) -> Audio:
        table[v] = segs
        x = np.zeros(SR * 10, np.float32)
        x[0] = v
        return Audio(x, SR)

    def timeline(k: int) -> list[tuple[float, float]]:
        starts = np.sort(rng.uniform(0, 9, k))
        return [(float(s), float(s) + 0.3) for s in starts]

    v = 0.001
    for i in range(6):
        two = []
        for _ in range(3):  # prompt, continuation, reference
            a, b = chan(round(v, 3), timeline(2 + i)), chan(round(v + 0.001, 3), timeline(1 + i))
            v += 0.002
            two.append(TwoChannelAudio(a, b))
        samples.append(
            SimpleNamespace(doc_id=f"c{i}", prompt=two[0], continuation=two[1], reference=two[2])
        )
    sc = DialogueContinuationScorer({"min_silence": 0.2})
    rep = sc.score_dialogues(samples, {"vad": FixedVAD(table)}, cache=None)
    rows = rep.per_item
    p = [r["prompt"]["ipus_per_min"] for r in rows]
    c = [r["model"]["ipus_per_min"] for r in rows]
    want = st.pearsonr(p, c).statistic
    got = rep.by_filter["model"].metrics["consistency_ipus_per_min"].value
    assert got == pytest.approx(want, abs=1e-12)
    assert rep.info["consistency"]["model"]["ipus_per_min"]["n"] == 6


def test_fisher_style_stereo_corpus(data: Path, tmp_path: Path) -> None:
    """The built-in conversations written as stereo files (A left, B right) in a Fisher-style
    folder: the stereo task gives the same model/reference statistics as the two-file one."""
    import soundfile as sf

    fisher = tmp_path / "corpus" / "fisher"
    fisher.mkdir(parents=True)
    conv = data / "dialogue/conversations"
    for row in (json.loads(x) for x in (conv / "conversations.jsonl").open()):
        a, _ = sf.read(conv / row["files"]["A"], dtype="float32")
        b, _ = sf.read(conv / row["files"]["B"], dtype="float32")
        sf.write(fisher / f"{row['id']}.wav", np.stack([a, b], 1), SR, subtype="FLOAT")
    base = dict(data_source="official", use_cache=str(tmp_path / "c.sqlite"))
    two = evaluate(
        "echo-talker",
        {},
        RunOptions(tasks="converse_turn_taking", data_dir=str(data), **base),
        model=EchoTalker(),
    )
    stereo = evaluate(
        "echo-talker",
        {},
        RunOptions(tasks="converse_turn_taking_fisher", data_dir=str(tmp_path / "corpus"), **base),
        model=EchoTalker(),
    )
    m2, ms = (
        two["results"]["converse_turn_taking"],
        stereo["results"]["converse_turn_taking_fisher"],
    )
    for k in (
        "gaps_per_min,model",
        "overlaps_per_min,reference",
        "abs_diff_gaps_per_min,vs_reference",
    ):
        assert ms[k] == pytest.approx(m2[k], abs=1e-9)
