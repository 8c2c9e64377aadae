"""Full-Duplex-Bench tasks end to end: official-layout folders built here from the built-in
full-duplex stimuli, a causal stand-in model streamed through ``converse``, and every metric
recomputed here from the kept model channels with the judges and ``speechlm_eval.fdbench``
called directly (the glue: which audio is transcribed, the interruption crop and shift, the
VAD rounding, the aggregation)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import build_tiny
from test_converse_tasks import EchoTalker

from speechlm_eval import fdbench as fdb
from speechlm_eval.audio import Audio, load_audio
from speechlm_eval.judges import load_judge
from speechlm_eval.runner import RunOptions, evaluate

TASKS = (
    "fdbench_pause_synthetic",
    "fdbench_turn_taking",
    "fdbench_interruption",
    "fdbench_backchannel",
    "fdbench_v15_interruption",
)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    """v1 subsets and one v1.5 subset, two samples each, from the tiny full-duplex stimuli."""
    built = tmp_path_factory.mktemp("fd_tiny")
    build_tiny(built, ["dialogue"])
    fd = built / "dialogue/fullduplex"
    stims = [json.loads(x) for x in (fd / "fullduplex.jsonl").open()]
    root = tmp_path_factory.mktemp("fdb") / "Full-Duplex-Bench"
    for i, s in enumerate(stims, 1):
        wav = fd / s["file"]
        pause = s["pauses"][0]
        barge = s["interruptions"][0]
        ann = {
            "v1.0/synthetic_pause_handling": {
                "pause.json": [{"text": "[PAUSE]", "timestamp": [pause["start"], pause["end"]]}]
            },
            "v1.0/candor_turn_taking": {
                "turn_taking.json": [
                    {"text": "[TURN-TAKING]", "timestamp": [s["turn_ends"][0], barge["start"]]}
                ]
            },
            "v1.0/synthetic_user_interruption": {
                "interrupt.json": [
                    {
                        "context": "x",
                        "interrupt": barge["text"],
                        "timestamp": [barge["start"], barge["end"]],
                    }
                ]
            },
            "v1.0/icc_backchannel": {},
            "v1.5/user_interruption": {
                "metadata.json": {
                    "context_text": "x",
                    "current_turn_text": barge["text"],
                    "timestamps": [barge["start"], barge["end"]],
                }
            },
        }
        for sub, files in ann.items():
            d = root / sub / str(i)
            d.mkdir(parents=True)
            for w in ("input.wav", "context.wav", "interrupt.wav", "clean_input.wav"):
                shutil.copy(wav, d / w)
            if sub.startswith("v1.5"):  # a clean input that differs: half the amplitude
                a = load_audio(wav)
                sf.write(d / "clean_input.wav", a.samples * 0.5, a.sample_rate, subtype="FLOAT")
            for name, obj in files.items():
                (d / name).write_text(json.dumps(obj))
    gt = {"1": [0.1, 0.4, 0.5], "2": [0.3, 0.3, 0.2, 0.2]}
    (root / "v1.0/icc_backchannel/icc_gt_distribution.json").write_text(json.dumps(gt))
    return root.parent


@pytest.fixture(scope="module")
def run(layout: Path, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("fdb_out")
    opts = RunOptions(
        tasks=",".join(TASKS),
        data_dir=str(layout),
        data_source="official",
        output_path=str(out / "res"),
        use_cache=str(out / "cache.sqlite"),
        log_samples=True,
    )
    return evaluate("echo-talker", {}, opts, model=EchoTalker()), out / "res"


def _rows(out: Path, task: str) -> list[dict]:
    (f,) = sorted(out.rglob(f"samples_{task}_*.jsonl"))
    return [json.loads(x) for x in f.read_text().splitlines()]


def _model_audio(out: Path, row: dict) -> Audio:
    (folder,) = {p.parent for p in out.rglob("samples_*.jsonl")}
    return load_audio(folder / row["model_audio"])


def test_turn_metrics_recomputed_from_the_kept_channels(run) -> None:
    res, out = run
    asr = load_judge("faster-whisper", beam_size=5)
    for task in ("fdbench_pause_synthetic", "fdbench_turn_taking", "fdbench_interruption"):
        rows = _rows(out, task)
        assert len(rows) == 2
        tors, lats = [], []
        for r in rows:
            a = _model_audio(out, r)
            if task == "fdbench_interruption":
                ann = json.loads(
                    (
                        Path(res["datasets"][task]["root"]) / r["doc_id"] / "interrupt.json"
                    ).read_text()
                )
                end = ann[0]["timestamp"][1]
                crop = Audio(a.samples[int(end * a.sample_rate) :].copy(), a.sample_rate)
                words = [(w[0], w[1] + end, w[2] + end) for w in asr.words([crop])[0]]
                ref = end
            else:
                words = [tuple(w) for w in asr.words([a])[0]]
                ann_file = "turn_taking.json" if task == "fdbench_turn_taking" else None
                ref = (
                    json.loads(
                        (Path(res["datasets"][task]["root"]) / r["doc_id"] / ann_file).read_text()
                    )[0]["timestamp"][0]
                    if ann_file
                    else None
                )
            assert [w[0] for w in r["words"]] == [w[0] for w in words]
            got = [x for w in r["words"] for x in w[1:]]
            assert got == pytest.approx([x for w in words for x in w[1:]], abs=1e-9)
            tors.append(fdb.take_over(words))
            if ref is not None and tors[-1]:
                lats.append(max(0.0, words[0][1] - ref))
        m = res["results"][task]
        assert m["tor,none"] == pytest.approx(np.mean(tors))
        if lats:
            assert m["latency,none"] == pytest.approx(np.mean(lats))
        assert res["scoring"][task]["word_timestamps"]["word_timestamps"]


def test_backchannel_and_v15_timing(run) -> None:
    res, out = run
    vad = load_judge("silero-vad")
    gt = {"1": [0.1, 0.4, 0.5], "2": [0.3, 0.3, 0.2, 0.2]}
    jsd = []
    for r in _rows(out, "fdbench_backchannel"):
        a = _model_audio(out, r)
        segs = fdb.silero_seconds(vad.segments([a])[0], a.duration)
        b = fdb.backchannel_sample(segs, r["words"], a.duration, gt[r["doc_id"]])
        assert (b.tor, b.frequency, b.jsd) == (r["tor"], r["freq"], r["jsd"])
        jsd.append(b.jsd)
    assert res["results"]["fdbench_backchannel"]["jsd,none"] == pytest.approx(np.mean(jsd))
    stops = []
    for r in _rows(out, "fdbench_v15_interruption"):
        a = _model_audio(out, r)
        user = load_audio(
            Path(res["datasets"]["fdbench_v15_interruption"]["root"]) / r["doc_id"] / "input.wav"
        )
        t = fdb.timing(vad.segments([user])[0], vad.segments([a])[0])
        assert r["stop_latencies"] == pytest.approx(t.stop_latencies)
        stops += t.stop_latencies
    m = res["results"]["fdbench_v15_interruption"]
    if stops:
        assert m["stop_latency,none"] == pytest.approx(np.mean(stops))
    assert "behavior" in res["scoring"]["fdbench_v15_interruption"]["not_computed"]
    assert "relevance" in res["scoring"]["fdbench_interruption"]["not_computed"]


def test_variant_sessions_run_when_the_scorer_asks(
    layout: Path, tmp_path: Path, monkeypatch
) -> None:
    """v1.5 items carry a ``clean`` variant of the user channel; a scorer that asks for it
    (``variants``) gets a second session per item, cached under its own key."""
    from speechlm_eval.scorers.fdbench import FDBenchScorer

    seen: list = []
    real_judge = FDBenchScorer.judge

    def spy(self, sessions, *a, **kw):
        seen.extend(sessions)
        return real_judge(self, sessions, *a, **kw)

    monkeypatch.setattr(FDBenchScorer, "variants", ("clean",), raising=False)
    monkeypatch.setattr(FDBenchScorer, "judge", spy)
    model = EchoTalker()
    opts = RunOptions(
        tasks="fdbench_v15_interruption",
        data_dir=str(layout),
        data_source="official",
        output_path=str(tmp_path / "res"),
        use_cache=str(tmp_path / "cache.sqlite"),
    )
    evaluate("echo-talker", {}, opts, model=model)
    assert model.opened == 4  # 2 stimuli x (input, clean input)
    assert all(set(s.variants) == {"clean"} for s in seen)
    from speechlm_eval.model import ConverseRequest
    from speechlm_eval.streaming import drive

    for s in seen:  # the variant session is the model's session on the variant input
        user, out = s.variants["clean"]
        assert np.allclose(user.samples, 0.5 * s.user.samples, atol=1e-6)
        direct = drive(EchoTalker(), ConverseRequest(user, key="direct", seed=0)).model
        assert np.array_equal(out.samples, direct.samples)
        assert not np.array_equal(out.samples, s.model.samples)
    again = EchoTalker()
    evaluate("echo-talker", {}, opts, model=again)
    assert again.opened == 0  # all four sessions came from the cache
    # An item without the variant a scorer needs: one error naming it.
    monkeypatch.setattr(FDBenchScorer, "variants", ("noisy",), raising=False)
    with pytest.raises(Exception, match=r"has no 'noisy' variant"):
        evaluate("echo-talker", {}, opts, model=EchoTalker())
