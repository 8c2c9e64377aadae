"""STSP (SPIRIT-LM's Speech-Text Sentiment Preservation): the reader (both layouts, bad rows),
the scorer (hand-computed), the pipeline with stand-in models and judges (directions, empty
outputs, few-shot prefixes), the runner's direction skipping, the cross-modal ContinueRequest,
the cascade and spirit-lm adapters, and one end-to-end run on the built-in subset.

Until pyproject.toml registers the reader and scorer ``stsp``, the tests register them in the
registry themselves, as entry points would.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import write_wav

from speechlm_eval import registry
from speechlm_eval.audio import Audio
from speechlm_eval.cache import BlobStore, ResultCache
from speechlm_eval.config import parse_task
from speechlm_eval.errors import ConfigError, DataError, PluginError
from speechlm_eval.execute import BatchSizer, ExecStats, continue_capability, execute
from speechlm_eval.model import ContinueRequest, SpeechLM
from speechlm_eval.pipelines import TaskContext, pipeline_for
from speechlm_eval.pipelines.stsp import choose_examples, run_stsp
from speechlm_eval.readers.stsp import FewShotExample, read_few_shot_pool, read_stsp
from speechlm_eval.runner import RunOptions, evaluate
from speechlm_eval.scorers.stsp import STSPScorer

SR = 16000


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """The reader and scorer ``stsp`` in the registry, as their entry points put them."""
    for kind, obj in (("readers", read_stsp), ("scorers", STSPScorer)):
        eps = registry._entry_points(kind)
        monkeypatch.setitem(eps, "stsp", SimpleNamespace(load=lambda obj=obj: obj, dist=None))
    registry._load.cache_clear()
    yield
    registry._load.cache_clear()


# --- data --------------------------------------------------------------------------------------


def ramp(n: int, level: float) -> np.ndarray:
    """Samples level * (1..n)/n: every sample distinct, so halves can be told apart."""
    return (level * np.arange(1, n + 1) / n).astype(np.float32)


def spirit_layout(root: Path, rows: list[dict], pools: dict[str, list[dict]] | None = None) -> Path:
    """A SPIRIT-LM ``stsp_data`` folder: data/ wavs, manifest/emov/emov.test.jsonl, pools."""
    data = root / "stsp_data"
    for i in range(8):
        write_wav(data / "data" / "emov" / f"w{i}.wav", ramp(800 + 100 * i, 0.1 + 0.1 * i))
    write_wav(data / "data" / "emov" / "silent.wav", np.zeros(800, dtype=np.float32))
    m = data / "manifest" / "emov" / "emov.test.jsonl"
    m.parent.mkdir(parents=True, exist_ok=True)
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, recs in (pools or {}).items():
        p = data / "manifest" / "few_shot" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return data


def row(i, asr, sentiment=None, emotion=None, wav=None):
    r = {"id": i, "wav_path": wav or f"emov/w{i % 8}.wav", "asr": asr, "split": "test"}
    r["speaker"] = "sam"
    if sentiment is not None:
        r["sentiment"] = sentiment
    if emotion is not None:
        r["emotion"] = emotion
    return r


ROWS = [
    row(0, "I love it", sentiment="positive", emotion="happy"),
    row(1, "I hate it", emotion="angry"),  # no sentiment: EMOTION_2_SENTIMENT
    row(2, "I love it", sentiment="negative"),  # the model will keep "love": judged wrong
    row(3, "silent", emotion="default", wav="emov/silent.wav"),
]


def test_reader_spirit_lm_manifest(tmp_path):
    root = spirit_layout(tmp_path, [*ROWS, row(4, "so fun", emotion="amused")])
    ds = read_stsp(root, {})
    assert ds.doc_ids() == ["0", "1", "2", "3", "4"]  # ids as strings, manifest order
    assert ds.labels == {
        "0": "positive",
        "1": "negative",
        "2": "negative",
        "3": "neutral",
        "4": "positive",
    }
    assert ds.texts["1"] == "I hate it"  # the text prompt is the asr field
    assert ds.files["2"] == (root / "data" / "emov" / "w2.wav").resolve()  # relative to data/
    assert ds.meta["0"] == {"emotion": "happy", "split": "test", "speaker": "sam"}
    assert ds.identity["layout"] == "spirit-lm" and ds.identity["labels"]["positive"] == 2
    small = ds.limited(2)
    assert small.doc_ids() == ["0", "1"] and set(small.files) == {"0", "1"}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (row(9, "x", sentiment="happy"), "'sentiment'"),  # an emotion where a label belongs
        (row(9, "x", emotion="bored"), "'emotion'"),  # not in EMOTION_2_SENTIMENT
        ({"id": 9, "asr": "x", "sentiment": "neutral"}, "'wav_path'"),
        (row(9, "x", sentiment="neutral", wav="emov/nope.wav"), "'wav_path'"),
        (row(9, "x", sentiment="neutral", wav="../../x.wav"), "'wav_path'"),
        (row(0, "x", sentiment="neutral"), "'id'"),  # duplicate
        (row(9, "", sentiment="neutral"), "'asr'"),
    ],
)
def test_reader_bad_rows_name_file_line_and_field(tmp_path, bad, field):
    root = spirit_layout(tmp_path, [ROWS[0], bad])
    with pytest.raises(DataError) as e:
        read_stsp(root, {})
    msg = str(e.value)
    assert "\n" not in msg
    assert "emov.test.jsonl: line 2" in msg and field in msg


def builtin_layout(root: Path, items: list[tuple[str, str, float]]) -> Path:
    """The built-in subset's layout: stsp/dev/*.wav + stsp.jsonl (id, file, voice, text, label)."""
    d = root / "stsp" / "dev"
    rows = []
    for i, (text, label, level) in enumerate(items, 1):
        write_wav(d / f"f{i}.wav", ramp(1600, level) if level else np.zeros(1600, "f4"))
        rows.append({"id": f"stsp-{i:04d}", "file": f"f{i}.wav", "voice": "v1", "text": text})
        rows[-1]["label"] = label
    (d / "stsp.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_reader_builtin_layout_and_its_bad_label(tmp_path):
    d = builtin_layout(tmp_path, [("I love it", "positive", 0.5), ("meh", "neutral", 0.2)])
    ds = read_stsp(d, {})
    assert ds.identity["layout"] == "builtin"
    assert ds.labels == {"stsp-0001": "positive", "stsp-0002": "neutral"}
    assert ds.texts["stsp-0002"] == "meh" and ds.meta["stsp-0001"]["speaker"] == "v1"
    assert ds.few_shot_dir is None
    lines = (d / "stsp.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"neutral"', '"mixed"')
    (d / "stsp.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"stsp.jsonl: line 2: field 'label'"):
        read_stsp(d, {})


# --- scorer ------------------------------------------------------------------------------------


def test_scorer_hand_computed():
    labels = {"a": "positive", "b": "negative", "c": "neutral", "d": "positive"}
    preds = {"a": ["positive"], "b": ["positive"], "c": [None], "d": ["positive"]}
    r = STSPScorer().score(labels, preds)
    m = r.metrics
    assert m["acc"].value == 0.5 and m["acc"].n == 4
    # sample std of [1, 0, 0, 1] is sqrt(1/3); over sqrt(4)
    assert m["acc"].stderr == pytest.approx(math.sqrt(1 / 3) / 2)
    assert m["acc_positive"].value == 1.0 and m["acc_negative"].value == 0.0
    assert m["acc_neutral"].value == 0.0  # the empty output is wrong
    assert m["empty_rate"].value == 0.25 and not m["empty_rate"].higher_is_better
    assert r.info["n_empty"] == 1 and r.info["labels"] == {
        "positive": 2,
        "negative": 1,
        "neutral": 1,
    }
    assert r.info["chance_majority_class"] == {"label": "positive", "rate": 0.5}
    # two outputs per prompt: each prompt averaged first
    r2 = STSPScorer().score(
        {"a": "positive", "b": "neutral"}, {"a": ["positive", "neutral"], "b": ["neutral"] * 2}
    )
    assert r2.metrics["acc"].value == pytest.approx((0.5 + 1.0) / 2)


# --- stand-in model and judges -----------------------------------------------------------------


class Echo(SpeechLM):
    """Text out: the last line of the text prompt (empty for 'silent'); for a speech prompt, a
    word for its peak level. Speech out: the prompt audio itself (a text prompt: a tone whose
    level says love/hate). Records every request."""

    capabilities = frozenset({"continue"})
    continue_modalities = frozenset(
        {"speech->speech", "speech->text", "text->speech", "text->text"}
    )

    def __init__(self, modalities=None, device=None):
        super().__init__(device=device)
        if modalities is not None:
            self.continue_modalities = frozenset(modalities)
        self.requests: list[ContinueRequest] = []

    def identity(self):
        return {"model": "echo"}

    def continue_(self, requests):
        self.requests += requests
        out = []
        for r in requests:
            if r.prompt_text is not None:
                text = r.prompt_text.splitlines()[-1]
                text = "" if text == "silent" else text
            else:
                peak = float(np.max(np.abs(r.prompt.samples)))
                text = "" if peak == 0 else ("I love it" if peak > 0.35 else "I hate it")
            if r.output == "text":
                out.append([text] * r.num_samples)
            elif r.prompt is not None:
                out.append([r.prompt] * r.num_samples)
            else:
                level = 0.0 if not text else (0.5 if "love" in text else 0.2)
                out.append([Audio(np.full(400, level, "f4"), SR)] * r.num_samples)
        return out


class WordJudge:
    """Text sentiment by keyword: love -> positive, hate -> negative, else neutral."""

    def __init__(self):
        self.seen: list = []

    def classify(self, inputs, stats=None, cache=None, desc=None):
        self.seen += list(inputs)
        return [
            {"label": "positive" if "love" in t else "negative" if "hate" in t else "neutral"}
            for t in inputs
        ]


class LevelJudge:
    """Speech sentiment by peak level: > 0.35 positive, else negative (a transcript too)."""

    def __init__(self):
        self.seen: list = []

    def classify(self, inputs, stats=None, cache=None, desc=None):
        self.seen += list(inputs)
        peaks = [float(np.max(np.abs(a.samples))) for a in inputs]
        return [{"label": "positive" if p > 0.35 else "negative", "transcript": "x"} for p in peaks]


def stsp_task(**generation):
    short = {"speech": "s", "text": "t"}
    d = generation.get("direction", "speech->speech")
    role = "text_sentiment" if d.endswith("text") else "speech_sentiment"
    return parse_task(
        {
            "task": "stsp_" + "2".join(short[x] for x in d.split("->")),
            "version": 1,
            "capability": "continue",
            "dataset": {"reader": "stsp", "subdirs": ["x"], "sample_rate": SR},
            "scoring": {"scorer": "stsp"},
            "generation": generation,
            "judges": {role: role.replace("_", "-")},
        },
        "stsp.yaml",
    )


def context(tmp_path, ds, cfg, model, judges, log_samples=True):
    return TaskContext(
        cfg=cfg,
        dataset=ds,
        model=model,
        model_key="echo",
        cache=ResultCache(None),
        blobs=BlobStore(tmp_path / "blobs"),
        sizer=BatchSizer(3),
        stats=ExecStats(),
        seed=0,
        log_samples=log_samples,
        judges=judges,
    )


def test_text_to_text_accuracy_and_empty_output(tmp_path):
    ds = read_stsp(spirit_layout(tmp_path, ROWS), {})
    judge, model = WordJudge(), Echo()
    out = pipeline_for("continue", "t")(
        context(tmp_path, ds, stsp_task(direction="text->text"), model, {"text_sentiment": judge})
    )
    # 0: love/positive right; 1: hate/negative right; 2: love/negative wrong; 3: empty, wrong
    assert out.entry["acc,none"] == 0.5
    assert out.entry["acc_neutral,none"] == 0.0 and out.entry["empty_rate,none"] == 0.25
    assert judge.seen == ["I love it", "I hate it", "I love it"]  # the empty one is not judged
    assert out.scoring["n_empty"] == 1 and out.scoring["direction"] == "text->text"
    assert out.scoring["generation"]["temperature"] == 0.8
    assert out.scoring["generation"]["top_p"] == 0.95
    req = {r.key: r for r in model.requests}
    assert req["1"].prompt_text == "I hate it" and req["1"].output == "text"
    assert req["1"].max_tokens == 50 and req["1"].prompt is None
    rows = {r["doc_id"]: r for r in out.samples}
    assert "answer" not in rows["3"] and rows["3"]["explanation"].startswith("empty")
    assert rows["0"]["answer"] == "positive" and rows["0"]["acc"] == 1.0
    assert rows["0"]["output_text"] == "I love it"


def test_speech_directions_use_the_speech_judge(tmp_path):
    ds = read_stsp(spirit_layout(tmp_path, ROWS), {})
    judge = LevelJudge()
    cfg = stsp_task(direction="speech->speech", max_seconds=3.0)
    out = run_stsp(context(tmp_path, ds, cfg, Echo(), {"speech_sentiment": judge}))
    # peaks: w0 0.1, w1 0.2, w2 0.3 -> negative; silent -> empty. Labels: pos, neg, neg, neu.
    assert out.entry["acc,none"] == 0.5
    assert len(judge.seen) == 3 and out.scoring["empty_output"].startswith("digital silence")
    assert all(r["output_audio"].startswith("audio/") for r in out.samples)
    assert len(out.kept_audio) == 4
    # speech -> text: the stand-in says 'I hate it' for every audible prompt
    wj = WordJudge()
    out = run_stsp(
        context(tmp_path, ds, stsp_task(direction="speech->text"), Echo(), {"text_sentiment": wj})
    )
    assert out.entry["acc,none"] == 0.5 and wj.seen == ["I hate it"] * 3
    # the wrong role bound: a one-line error naming the role
    with pytest.raises(ConfigError, match="speech_sentiment"):
        run_stsp(context(tmp_path, ds, stsp_task(direction="text->speech"), Echo(), {}))


def test_fingerprint_of_speech_requests_is_unchanged_and_requests_are_checked():
    a = Audio(ramp(100, 0.5), SR)
    fp = ContinueRequest(prompt=a, temperature=0.7, seed=3).fingerprint()
    assert set(fp) == {
        "prompt",
        "num_samples",
        "temperature",
        "top_k",
        "top_p",
        "max_seconds",
        "seed",
    }
    t = ContinueRequest(prompt_text="hi", output="text", max_tokens=5)
    assert t.direction == "text->text" and t.fingerprint()["prompt"] is None
    assert t.fingerprint()["prompt_text"] == "hi" and t.fingerprint()["output"] == "text"
    assert ContinueRequest(prompt=a, output="text").direction == "speech->text"
    with pytest.raises(ValueError, match="exactly one"):
        ContinueRequest(prompt=a, prompt_text="hi")
    with pytest.raises(ValueError, match="exactly one"):
        ContinueRequest()
    with pytest.raises(ValueError, match="output"):
        ContinueRequest(prompt=a, output="video")


def test_capability_refuses_undeclared_directions_and_bad_text_results(tmp_path):
    model = Echo(modalities={"speech->speech"})
    cap = continue_capability(model, BlobStore(tmp_path / "b"))
    job = cap.job(model, "k")
    from speechlm_eval.execute import Item

    item = Item("x", 1.0, lambda _c: ContinueRequest(prompt_text="hi", output="text"))
    kw = {"cache": ResultCache(None), "sizer": BatchSizer(1), "stats": ExecStats()}
    with pytest.raises(PluginError, match="does not serve text->text"):
        execute(job, [item], **kw)
    assert model.requests == []  # refused before the model saw it
    bad = Echo()
    bad.continue_ = lambda reqs: [[Audio(ramp(10, 0.1), SR)] for _ in reqs]
    job = continue_capability(bad, BlobStore(tmp_path / "c")).job(bad, "k")
    with pytest.raises(PluginError, match="expected str"):
        execute(job, [item], **kw)
    good = Echo()
    job = continue_capability(good, BlobStore(tmp_path / "d")).job(good, "k")
    cache = ResultCache(None)
    kw["cache"] = cache
    assert execute(job, [item], **kw) == [["hi"]]
    assert execute(job, [item], **kw) == [["hi"]] and len(good.requests) == 1  # cached


# --- the runner skips a direction the model lacks ------------------------------------------------


def test_runner_skips_directions_the_model_lacks(tmp_path):
    builtin_layout(tmp_path, [("I love it", "positive", 0.5), ("I hate it", "negative", 0.2)])
    model = Echo(modalities={"text->text"})
    opts = RunOptions(
        tasks="stsp_s2s,stsp_s2t,stsp_t2s,stsp_t2t", data_dir=str(tmp_path), no_cache=True
    )
    res = evaluate("echo", {}, opts, model=model)
    assert res["skipped"] == {
        "stsp_s2s": "skipped (model lacks continue speech->speech)",
        "stsp_s2t": "skipped (model lacks continue speech->text)",
        "stsp_t2s": "skipped (model lacks continue text->speech)",
    }
    assert res["results"]["stsp_t2t"]["acc,none"] == 1.0  # VADER on the echoed prompts
    assert {r.direction for r in model.requests} == {"text->text"}


# --- few-shot ----------------------------------------------------------------------------------

POOL_T2T = [
    {"prompt": f"p{lab}{i}", "generation": f"g{lab}{i}", "sentiment": lab}
    for lab in ("positive", "negative", "neutral")
    for i in range(3)
]
POOL_S2S = [
    {"prompt": f"emov/w{k}.wav", "generation": f"emov/w{k + 3}.wav", "sentiment": lab}
    for k, lab in enumerate(("positive", "negative", "neutral"))
]


def test_choose_examples_counts_and_seeding():
    pool = [FewShotExample(r["prompt"], r["generation"], r["sentiment"], "x") for r in POOL_T2T]
    for n, k in ((3, 1), (6, 2), (9, 3), (4, 2)):
        ex = choose_examples(pool, n, seed=0)
        assert [e.sentiment for e in ex] == ["negative"] * k + ["neutral"] * k + ["positive"] * k
    assert choose_examples(pool, 6, seed=1) == choose_examples(pool, 6, seed=1)
    draws = {tuple(e.prompt for e in choose_examples(pool, 3, seed=s)) for s in range(12)}
    assert len(draws) > 1  # the seed matters
    with pytest.raises(DataError, match="3 negative example"):
        choose_examples(pool, 12, seed=0)


def test_few_shot_text_prefix_has_the_test_item_appended(tmp_path):
    root = spirit_layout(tmp_path, ROWS, {"t2t.jsonl": POOL_T2T})
    ds = read_stsp(root, {})
    model = Echo()
    cfg = stsp_task(direction="text->text", few_shot=3)
    out = run_stsp(context(tmp_path, ds, cfg, model, {"text_sentiment": WordJudge()}))
    prompts = {r.key: r.prompt_text for r in model.requests}
    lines = prompts["1"].split("\n")
    assert lines[-1] == "I hate it"  # the test item is there (the released code drops it)
    assert [ln.split()[0][1:-1] for ln in lines[:-1]] == ["negative", "neutral", "positive"]
    for ln in lines[:-1]:
        p, g = ln.split(" ")
        assert g == "g" + p[1:]  # each example: its prompt, then its own generation
    assert len({p.rsplit("\n", 1)[0] for p in prompts.values()}) == 1  # one prefix per run
    assert out.scoring["few_shot"]["test_item_appended"] is True
    assert len(out.scoring["few_shot"]["examples"]) == 3
    # cross-modal few-shot is refused, naming what is implemented
    with pytest.raises(ConfigError, match="text->text and speech->speech only"):
        run_stsp(
            context(
                tmp_path,
                ds,
                stsp_task(direction="speech->text", few_shot=3),
                model,
                {"text_sentiment": WordJudge()},
            )
        )


def test_few_shot_speech_prefix_is_halves_of_wavs_then_the_item(tmp_path):
    root = spirit_layout(tmp_path, ROWS, {"s2s.jsonl": POOL_S2S})
    ds = read_stsp(root, {})
    _, pool = read_few_shot_pool(ds, "speech->speech")
    model = Echo()
    cfg = stsp_task(direction="speech->speech", few_shot=3, few_shot_gap=0.01, max_seconds=1.0)
    run_stsp(context(tmp_path, ds, cfg, model, {"speech_sentiment": LevelJudge()}))
    got = {r.key: r.prompt.samples for r in model.requests}["0"]
    gap = np.zeros(160, "f4")
    expect = []
    for k in (1, 2, 0):  # negative, neutral, positive: pool rows w1/w4, w2/w5, w0/w3
        p = ramp(800 + 100 * k, 0.1 + 0.1 * k)
        g = ramp(800 + 100 * (k + 3), 0.1 + 0.1 * (k + 3))
        expect += [p[: p.size // 2], g[g.size // 2 :], gap]
    expect.append(ramp(800, 0.1))  # the test item w0, whole
    np.testing.assert_allclose(got, np.concatenate(expect), atol=1e-6)
    assert [e.sentiment for e in pool] == ["positive", "negative", "neutral"]


def test_few_shot_needs_a_pool(tmp_path):
    ds = read_stsp(builtin_layout(tmp_path, [("I love it", "positive", 0.5)]), {})
    with pytest.raises(DataError, match="no few-shot pool"):
        run_stsp(
            context(
                tmp_path,
                ds,
                stsp_task(direction="text->text", few_shot=3),
                Echo(),
                {"text_sentiment": WordJudge()},
            )
        )


# --- reference models --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cascade():
    from reference_models.cascade.model import Cascade

    return Cascade(asr_args="beam_size=1")


def test_cascade_serves_all_four_directions(cascade):
    assert cascade.continue_modalities == {
        "speech->speech",
        "speech->text",
        "text->speech",
        "text->text",
        "dialogue->dialogue",  # dGSLM-style two-channel continuation (tests/test_converse_tasks.py)
    }
    speech = cascade.tts.say("I really loved the concert")
    reqs = [
        ContinueRequest(prompt_text="I loved the", output="text", max_tokens=12, seed=1),
        ContinueRequest(prompt=speech, output="text", max_tokens=12, seed=1),
        ContinueRequest(prompt_text="I loved the", output="speech", max_seconds=1.5, seed=1),
        ContinueRequest(prompt=speech, output="speech", max_seconds=1.5, seed=1),
    ]
    out = cascade.continue_(reqs)
    t2t, s2t, t2s, s2s = (o[0] for o in out)
    assert isinstance(t2t, str) and isinstance(s2t, str) and 0 < len(t2t) <= 12
    assert isinstance(t2s, Audio) and t2s.duration <= 1.5 and isinstance(s2s, Audio)
    assert cascade.continue_(reqs[:1])[0][0] == t2t  # seeded


def test_end_to_end_cascade_stsp_t2t_on_builtin(tmp_path_factory, cascade):
    from helpers import build_tiny

    from speechlm_eval.cli import main

    out = tmp_path_factory.mktemp("stsp_tiny")
    t0 = time.perf_counter()
    build_tiny(out, ["stsp"])
    built = time.perf_counter() - t0
    res_dir = out / "results"
    t0 = time.perf_counter()
    rc = main(
        [
            "run",
            "--model",
            "cascade",
            "--model_args",
            "asr_args=beam_size=1",
            "--tasks",
            "stsp_t2t",
            "--limit",
            "4",
            "--data_dir",
            str(out),
            "--output_path",
            str(res_dir),
            "--no_cache",
        ]
    )
    ran = time.perf_counter() - t0
    assert rc == 0
    res = json.loads(next(res_dir.rglob("results_*.json")).read_text())
    r = res["results"]["stsp_t2t"]
    assert 0.0 <= r["acc,none"] <= 1.0
    assert res["n-samples"]["stsp_t2t"]["effective"] == 4
    sc = res["scoring"]["stsp_t2t"] if "scoring" in res else None
    print(f"stsp built-in tiny build {built:.1f} s, run {ran:.1f} s, acc {r['acc,none']}", sc)


def test_spirit_lm_serves_text_outputs_only(tmp_path_factory):
    pytest.importorskip("transformers")
    import test_spirit_lm as t

    from reference_models.spirit_lm import TEXT, SpiritLM

    files = t.files.__wrapped__(tmp_path_factory)  # the tiny random model of test_spirit_lm
    model = SpiritLM(**t._args(files))
    assert "continue" in model.capabilities
    assert model.continue_modalities == {"speech->text", "text->text"}
    audio = t._audio(2000, 1)
    reqs = [
        ContinueRequest(prompt_text="hello", output="text", max_tokens=6, seed=2, num_samples=2),
        ContinueRequest(prompt=audio, output="text", max_tokens=6, seed=2, temperature=0.8),
    ]
    out = model.continue_(reqs)
    assert [len(o) for o in out] == [2, 1] and all(isinstance(x, str) for o in out for x in o)
    assert model.continue_(reqs) == out  # seeded
    ids = model.sample_text(
        [1, TEXT, 5],
        max_tokens=6,
        temperature=1.0,
        top_k=None,
        top_p=0.95,
        generator=__import__("torch").Generator().manual_seed(0),
    )
    assert len(ids) <= 6 and all(i < TEXT for i in ids)  # text tokens only, within budget
    with pytest.raises(ConfigError, match="no speech output"):
        model.continue_([ContinueRequest(prompt=audio, output="speech")])
