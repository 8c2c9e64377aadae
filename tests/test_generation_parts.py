"""Generation tasks in parts, with bounded memory: the ``--no_cache`` blob store on disk, the kept
output audio read back from it (``SpilledAudio``), the ``continue`` pipeline judging a few
prompts at a time (results independent of the part size), ``finite_cluster_mean`` (judge values
with no value: excluded and counted), the continuation scorer's ``llm`` role, a task skipped
when its judge is unavailable, and MOS / speaker NaN exclusion in the continuation scorer and
the resynthesis pipeline.

The stand-in model and judges are functions of their inputs' content (hashes), so every number
is known in advance or recomputed here by an independent formulation.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import tempfile
import warnings
import weakref
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from helpers import write_wav

from speechlm_eval import registry
from speechlm_eval.audio import Audio, load_audio
from speechlm_eval.cache import BlobStore, ResultCache
from speechlm_eval.config import parse_task
from speechlm_eval.execute import BatchSizer, ExecStats
from speechlm_eval.judges import clear_loaded, load_judge
from speechlm_eval.judges.base import ASRJudge
from speechlm_eval.metrics import cluster_mean, finite_cluster_mean
from speechlm_eval.model import SpeechLM
from speechlm_eval.pipelines import TaskContext
from speechlm_eval.pipelines import continuation as cont_pipeline
from speechlm_eval.pipelines.base import SpilledAudio
from speechlm_eval.pipelines.continuation import run_continue
from speechlm_eval.pipelines.resynthesize import run_resynthesize
from speechlm_eval.readers.transcribed import read_librispeech
from speechlm_eval.results import write_audio
from speechlm_eval.runner import RunOptions, evaluate
from speechlm_eval.scorers.continuation import GenerationScorer, Judged, Prompt

SR = 16000
PROMPT_S = 0.25
N_PROMPTS = 5  # long enough to prompt with; one more utterance is too short
VOCAB = ("the", "cat", "sat", "on", "a", "mat")
URL_ENV, MODEL_ENV = "SLM_EVAL_LLM_JUDGE_URL", "SLM_EVAL_LLM_JUDGE_MODEL"


def _h(*parts: object) -> int:
    """A stable 32-bit hash of ``parts`` (Python's own ``hash`` is salted per process)."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def _nan_safe(x: object) -> str:
    """JSON text of ``x`` with keys sorted: NaN compares equal to NaN (dict == does not)."""
    return json.dumps(x, sort_keys=True, default=str)


# --- stand-ins ---------------------------------------------------------------------------------


def continuation_of(prompt: np.ndarray, temperature: float, j: int, seconds: float, seed: int):
    """Sample ``j`` of a prompt: seeded noise, a function of the prompt's content, the
    temperature, the sample index and the run's seed only (never of the batch or the part)."""
    digest = hashlib.sha256(np.ascontiguousarray(prompt).tobytes()).hexdigest()
    rng = np.random.default_rng([seed, _h(digest, temperature), j])
    amp = 0.05 + 0.05 * temperature
    return (amp * rng.standard_normal(round(seconds * SR))).astype(np.float32)


class NoiseLM(SpeechLM):
    """A ``continue`` model whose samples are :func:`continuation_of`; ``on_call`` runs first
    (a probe of what is alive when the model is asked for the next part)."""

    sample_rate = SR
    capabilities = frozenset({"continue"})

    def __init__(self, device=None, on_call=None):
        super().__init__(device=device)
        self.requests: list = []
        self.on_call = on_call

    def identity(self):
        return {"model": "noise-lm"}

    def continue_(self, requests):
        if self.on_call is not None:
            self.on_call()
        self.requests.extend(requests)
        return [
            [
                Audio(
                    continuation_of(r.prompt.samples, r.temperature, j, r.max_seconds, r.seed), SR
                )
                for j in range(r.num_samples)
            ]
            for r in requests
        ]


def words_of(x: np.ndarray) -> str:
    """The stand-in ASR's transcript: one word per 0.05 s chunk, chosen by the chunk's bytes."""
    step = SR // 20
    chunks = [x[i : i + step] for i in range(0, x.size, step)]
    return " ".join(VOCAB[_h(c.tobytes()) % len(VOCAB)] for c in chunks)


class WordASR:
    """Transcribes with :func:`words_of`; records each call's audio (and weak references)."""

    name = "word-asr"

    def __init__(self, on_call=None):
        self.calls: list[list[Audio]] = []
        self.refs: list[list[weakref.ref]] = []
        self.on_call = on_call

    def identity(self):
        return {"judge": "word-asr"}

    def transcribe(self, audios, stats=None, cache=None, desc=None):
        if self.on_call is not None:
            self.on_call(audios)
        self.refs.append([weakref.ref(a) for a in audios])
        self.calls.append([Audio(a.samples.copy(), a.sample_rate) for a in audios])
        return [words_of(a.samples) for a in audios]


class CharLM:
    """log p(text) varies with the text (so PPX and GenPPL differ between rows)."""

    def loglikelihood(self, texts, stats=None, cache=None, desc=None):
        return [(-0.5 * len(t) - 0.01 * (_h(t) % 7), max(1, len(t.split()))) for t in texts]


class HashMOS:
    """MOS stand-in: 'ovrl' and 'sig' by content; 'ovrl' is NaN (no value) for about a quarter."""

    def __init__(self):
        self.refs: list[weakref.ref] = []

    def predict(self, audios, stats=None, cache=None, desc=None):
        self.refs.extend(weakref.ref(a) for a in audios)
        out = []
        for a in audios:
            k = _h(a.content_hash())
            ovrl = float("nan") if k % 4 == 0 else 1.0 + (k % 400) / 100
            out.append({"ovrl": ovrl, "sig": 2.0 + (k % 7) / 4})
        return out


class HashSpeaker:
    """Speaker stand-in: similarity by content, NaN (no signal) for about a third."""

    def similarity(self, a, b, stats=None, cache=None, desc=None):
        out = []
        for x, y in zip(a, b, strict=True):
            k = _h(x.content_hash(), y.content_hash())
            out.append(float("nan") if k % 3 == 0 else (k % 100) / 100)
        return out


def llm_result(prompt: str, continuation: str) -> dict:
    """The stand-in LLM judge's result for a pair, with the real judge's fields: every status
    occurs, and two server fingerprints."""
    k = _h(prompt, continuation)
    status = ("ok", "ok", "unparsed", "out_of_range", "error", "ok")[k % 6]
    value = {"ok": 1 + (k // 6) % 5, "out_of_range": 6 + (k // 6) % 3}.get(status)
    answered = status != "error"
    return {
        "score": float(value) if status == "ok" and value is not None else None,
        "status": status,
        "value": value,
        "raw": f"answer {k}" if answered else None,
        "error": None if answered else f"error {k}",
        "finish_reason": "stop" if answered else None,
        "model": "stand-in-llm" if answered else None,
        "system_fingerprint": f"fp_{k % 2}" if answered else None,
    }


class HashLLM:
    """LLM judge stand-in with the real judge's interface (``available``, ``rate``)."""

    available = True
    unavailable_reason = ""

    def __init__(self):
        self.pairs: list[tuple[str, str]] = []

    def rate(self, prompts, continuations, stats=None, cache=None, desc=None):
        self.pairs.extend(zip(prompts, continuations, strict=True))
        return [llm_result(p, c) for p, c in zip(prompts, continuations, strict=True)]


# --- data and tasks ----------------------------------------------------------------------------


def utterance_seconds(i: int) -> float:
    return 0.5 + 0.05 * i


def make_data(root: Path) -> Path:
    """LibriSpeech layout: N_PROMPTS utterances of 0.5 s to 0.7 s and one of 0.2 s (too
    short), distinct noise each; transcripts in the stand-in ASR's vocabulary."""
    d = root / "cont" / "1" / "2"
    rng = np.random.default_rng(0)
    lines = []
    for i in range(N_PROMPTS + 1):
        sec = utterance_seconds(i) if i < N_PROMPTS else 0.2
        x = (0.05 * rng.standard_normal(round(sec * SR))).astype(np.float32)
        write_wav(d / f"1-2-{i:04d}.wav", x)
        text = " ".join(VOCAB[(i + k) % len(VOCAB)] for k in range(4)).upper()
        lines.append(f"1-2-{i:04d} {text}\n")
    (d / "1-2.trans.txt").write_text("".join(lines))
    return root / "cont"


GENERATION = {
    "num_samples": 2,
    "temperatures": [0.5, 1.0],
    "prompt_seconds": PROMPT_S,
    "min_seconds": 0.3,
    "baselines": ["repeat_prompt"],
}


def cont_task(**generation):
    return parse_task(
        {
            "task": "cont",
            "version": 1,
            "capability": "continue",
            "dataset": {"reader": "librispeech", "subdirs": ["x"], "sample_rate": SR},
            "scoring": {"scorer": "continuation"},
            "generation": {**GENERATION, **generation},
        },
        "cont.yaml",
    )


def context(data: Path, blobs, model, judges, cfg=None, log_samples=True) -> TaskContext:
    return TaskContext(
        cfg=cfg or cont_task(),
        dataset=read_librispeech(data, {}),
        model=model,
        model_key="noise-lm",
        cache=ResultCache(None),
        blobs=blobs,
        sizer=BatchSizer(4),
        stats=ExecStats(),
        seed=0,
        log_samples=log_samples,
        judges=judges,
    )


def file_samples(data: Path, doc: str) -> np.ndarray:
    x, rate = sf.read(str(data / "1" / "2" / f"{doc}.wav"), dtype="float32")
    assert rate == SR
    return x


@pytest.fixture
def data(tmp_path):
    return make_data(tmp_path / "data")


@pytest.fixture(autouse=True)
def _no_llm_endpoint(monkeypatch):
    """No user endpoint reaches these tests; loaded judges are forgotten before and after."""
    for var in (URL_ENV, MODEL_ENV, "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    clear_loaded()
    yield
    clear_loaded()


# --- 1. BlobStore(None): a temporary folder, not memory ---------------------------------------


def _spill_dirs(root: Path) -> list[Path]:
    return sorted(root.glob("slm-eval-blobs-*"))


def test_no_cache_blob_store_spills_to_a_temporary_folder(tmp_path, monkeypatch):
    tmp_root = tmp_path / "tmp"
    tmp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_root))  # where TemporaryDirectory goes
    store = BlobStore(None)
    assert store.root is None  # nothing kept across runs
    (spill,) = _spill_dirs(tmp_root)
    values = {
        "a1": np.arange(7, dtype=np.float32) / 3,
        "b2": np.array([[1, -2, 3], [4, 5, -32768]], dtype=np.int16),
        "c3": np.random.default_rng(1).standard_normal((2, 3, 4)),  # float64
    }
    for k, v in values.items():
        store.put(k, v)
    for k, v in values.items():
        got = store.get(k)
        assert got is not None and got.dtype == v.dtype and got.shape == v.shape
        np.testing.assert_array_equal(got, v)
    assert store.get("zz-missing") is None
    # on disk, one .npy per key (no temporary file left behind)
    files = sorted(p for p in spill.rglob("*") if p.is_file())
    assert sorted(p.name for p in files) == ["a1.npy", "b2.npy", "c3.npy"]
    np.testing.assert_array_equal(np.load(spill / "b2" / "b2.npy"), values["b2"])
    # and only there: with the file gone, the value is gone (nothing held in memory)
    (spill / "a1" / "a1.npy").unlink()
    assert store.get("a1") is None
    # a later put of a key replaces its value
    store.put("b2", np.zeros(3, dtype=np.float32))
    np.testing.assert_array_equal(store.get("b2"), np.zeros(3, dtype=np.float32))
    # another store has a folder of its own
    other = BlobStore(None)
    assert other.get("c3") is None and len(_spill_dirs(tmp_root)) == 2
    # the folder goes with the store
    alive = weakref.ref(store)
    with warnings.catch_warnings():
        # no warning is expected; ignored all the same
        warnings.simplefilter("ignore", ResourceWarning)
        del store
        gc.collect()
    assert alive() is None and not spill.exists()
    assert len(_spill_dirs(tmp_root)) == 1
    # closed explicitly: the folder is gone as well
    other.put("k", np.ones(2))
    other.close()
    assert _spill_dirs(tmp_root) == [] and other.get("k") is None


def test_a_blob_store_with_a_root_uses_no_temporary_folder(tmp_path, monkeypatch):
    tmp_root = tmp_path / "tmp"
    tmp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_root))
    store = BlobStore(tmp_path / "blobs")
    store.put("ab12", np.ones(3, dtype=np.float32))
    assert (tmp_path / "blobs" / "ab" / "ab12.npy").is_file()
    assert _spill_dirs(tmp_root) == []
    assert BlobStore.beside(tmp_path / "c.sqlite").root == tmp_path / "c.sqlite.blobs"
    assert BlobStore.beside(None).root is None


# --- 2. finite_cluster_mean ---------------------------------------------------------------------


def cr1_se(values: list[float], clusters: list[str]) -> float | None:
    """The cluster-robust (CR1) standard error of a mean, written out with loops:
    sqrt(G / (G - 1) * sum_g (sum_{i in g} (y_i - ybar))^2) / N."""
    n = len(values)
    ybar = sum(values) / n
    sums: dict[str, float] = {}
    for v, c in zip(values, clusters, strict=True):
        sums[c] = sums.get(c, 0.0) + (v - ybar)
    g = len(sums)
    if g < 2:
        return None
    return math.sqrt(g / (g - 1) * sum(s * s for s in sums.values())) / n


def test_finite_cluster_mean_hand_computed():
    # one item per cluster: NaN and None excluded and counted; se = s / sqrt(n)
    m, out = finite_cluster_mean([1.0, float("nan"), 3.0, None, 5.0], ["a", "a", "b", "b", "c"])
    assert out == 2
    assert (m.value, m.n, m.higher_is_better) == (3.0, 3, True)
    # residuals -2, 0, 2: sqrt(3/2 * 8) / 3 = sqrt(4/3)
    assert m.stderr == pytest.approx(math.sqrt(4 / 3), rel=1e-12)
    # clustered: p = {2, 4, NaN}, q = {6, 10}; mean 22/4 = 5.5; residual sums -5 and 5:
    # sqrt(2/1 * 50) / 4 = 2.5
    vals = np.array([2.0, 4.0, np.nan, 6.0, 10.0])
    clusters = ["p", "p", "p", "q", "q"]
    m, out = finite_cluster_mean(vals, clusters, higher_is_better=False)
    assert out == 1 and m.value == 5.5 and m.n == 4 and m.higher_is_better is False
    assert m.stderr == pytest.approx(2.5, rel=1e-12)
    assert m.stderr == pytest.approx(cr1_se([2, 4, 6, 10], ["p", "p", "q", "q"]), rel=1e-12)
    ref = cluster_mean([2.0, 4.0, 6.0, 10.0], ["p", "p", "q", "q"], higher_is_better=False)
    assert (m.value, m.stderr, m.n) == (ref.value, ref.stderr, ref.n)
    # infinities are not values either; a cluster left with no value is no cluster (G = 1)
    m, out = finite_cluster_mean([1.0, math.inf, 3.0, -math.inf], ["a", "b", "a", "c"])
    assert out == 2 and m.value == 2.0 and m.n == 2 and m.stderr is None


def test_finite_cluster_mean_all_missing_and_lengths():
    assert finite_cluster_mean([float("nan"), None, np.nan], ["a", "b", "c"]) == (None, 3)
    assert finite_cluster_mean([], []) == (None, 0)
    # no value missing: exactly cluster_mean
    vals, cl = [0.3, 0.1, 0.7, 0.2, 0.9], ["x", "y", "x", "z", "y"]
    m, out = finite_cluster_mean(vals, cl)
    ref = cluster_mean(vals, cl)
    assert out == 0 and (m.value, m.stderr, m.n) == (ref.value, ref.stderr, ref.n)
    assert m.stderr == pytest.approx(cr1_se(vals, cl), rel=1e-12)
    with pytest.raises(ValueError):
        finite_cluster_mean([1.0, 2.0, 3.0], ["a", "b"])
    with pytest.raises(ValueError):
        finite_cluster_mean([1.0], ["a", "b"])
    with pytest.raises(ValueError):  # lengths are checked even where every value is NaN
        finite_cluster_mean([float("nan")] * 2, ["a"])


# --- 3. SpilledAudio ------------------------------------------------------------------------------


def test_spilled_audio_keeps_each_audio_once_on_disk(tmp_path):
    blobs = BlobStore(tmp_path / "blobs")
    kept = SpilledAudio(blobs)
    rng = np.random.default_rng(3)
    a = Audio((0.1 * rng.standard_normal(321)).astype(np.float32), SR, "first")
    b = Audio((0.1 * rng.standard_normal(123)).astype(np.float32), 22050, "second")
    same_as_a = Audio(a.samples.copy(), SR, "a again")
    a_at_8k = Audio(a.samples.copy(), 8000)
    ha = kept.add(a)
    assert ha == a.content_hash() == hashlib.sha256(b"16000:" + a.samples.tobytes()).hexdigest()
    hb = kept.add(b)
    assert kept.add(same_as_a) == ha and len(kept) == 2  # identical audio: kept once
    h8 = kept.add(a_at_8k)  # the same samples at another rate are other audio
    assert h8 not in (ha, hb) and len(kept) == 3 and list(kept) == [ha, hb, h8]
    for h, want in ((ha, a), (hb, b), (h8, a_at_8k)):
        got = kept[h]
        assert isinstance(got, Audio) and got.sample_rate == want.sample_rate
        assert got.samples.dtype == np.float32
        assert got.samples.tobytes() == want.samples.tobytes()  # bit-exact
        assert got is not want
    assert kept[ha].source == "first"  # the first one kept
    assert ha in kept and "0" * 64 not in kept and kept.get("0" * 64) is None
    with pytest.raises(KeyError):
        kept["0" * 64]
    # the samples live in the blob store, not in the mapping
    (blob,) = (tmp_path / "blobs").rglob(f"*{hb}*")
    blob.unlink()
    with pytest.raises(KeyError, match="gone from the blob store"):
        kept[hb]


def test_write_audio_writes_spilled_audio(tmp_path):
    kept = SpilledAudio(BlobStore(None))
    rng = np.random.default_rng(4)
    audios = [Audio((0.2 * rng.standard_normal(n)).astype(np.float32), SR) for n in (100, 257)]
    hashes = [kept.add(a) for a in audios]
    write_audio(tmp_path / "audio", kept)
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == sorted(
        f"{h}.wav" for h in hashes
    )
    for h, a in zip(hashes, audios, strict=True):
        x, rate = sf.read(str(tmp_path / "audio" / f"{h}.wav"), dtype="float32")
        assert rate == SR and x.tobytes() == a.samples.tobytes()


# --- 4. the continue pipeline in parts ----------------------------------------------------------


def all_judges():
    return {
        "asr": WordASR(),
        "text_lm": CharLM(),
        "mos": HashMOS(),
        "speaker": HashSpeaker(),
        "llm": HashLLM(),
    }


def _order(row: dict) -> tuple:
    return (row["filter"], row["doc_id"], row["sample"])


def test_results_do_not_depend_on_the_part_size(data, monkeypatch):
    default = cont_pipeline.PART_PROMPTS
    assert default >= N_PROMPTS  # the default: every prompt in one part here
    outs = {}
    for part in (1, 2, default):
        monkeypatch.setattr(cont_pipeline, "PART_PROMPTS", part)
        judges = all_judges()
        out = run_continue(context(data, BlobStore(None), NoiseLM(), judges))
        assert len(judges["asr"].calls) == -(-N_PROMPTS // part)  # one judging per part
        outs[part] = out
    ref = outs[default]
    # the stand-ins make every kind of metric and record appear
    for key in ("ppx_mean,t=1", "vert,t=0.5", "mos_ovrl,t=1", "speaker_similarity,t=1"):
        assert key in ref.entry, key
    assert {"llm_score,t=0.5", "llm_score,repeat_prompt", "auc_ppx_vert,none"} <= set(ref.entry)
    assert "mos_no_value" in ref.scoring["excluded"] and "llm_status" in ref.scoring
    assert sum(ref.scoring["excluded"]["speaker_no_signal"].values()) > 0
    for part in (1, 2):
        out = outs[part]
        assert out.entry == ref.entry, part  # bit-identical numbers
        assert out.higher_is_better == ref.higher_is_better
        assert _nan_safe(out.scoring) == _nan_safe(ref.scoring)
        # the same rows; within each filter in the same order (the order the metrics see)
        assert _nan_safe(sorted(out.samples, key=_order)) == _nan_safe(
            sorted(ref.samples, key=_order)
        )
        for f in {r["filter"] for r in ref.samples}:
            assert _nan_safe([r for r in out.samples if r["filter"] == f]) == _nan_safe(
                [r for r in ref.samples if r["filter"] == f]
            )
        assert set(out.kept_audio) == set(ref.kept_audio)
    # 5 prompts x (2 temperatures x 2 samples + 1 baseline)
    assert len(ref.samples) == N_PROMPTS * 5 and len(ref.kept_audio) == N_PROMPTS * 5


def expected_continuation(data: Path, row: dict) -> np.ndarray:
    """The continuation a samples row stands for, made here from the data file."""
    doc = row["doc_id"]
    x = file_samples(data, doc)
    prompt = x[: round(PROMPT_S * SR)]
    seconds = x.size / SR - PROMPT_S  # max_seconds 'reference': the rest of the utterance
    if row["filter"] == "repeat_prompt":  # the prompt tiled to the budget
        return np.resize(prompt, round(seconds * SR)).astype(np.float32)
    return continuation_of(prompt, row["temperature"], row["sample"], seconds, seed=0)


def test_log_samples_audio_is_each_rows_continuation(data, tmp_path, monkeypatch):
    monkeypatch.setattr(cont_pipeline, "PART_PROMPTS", 2)
    out = run_continue(context(data, BlobStore(tmp_path / "blobs"), NoiseLM(), all_judges()))
    assert isinstance(out.kept_audio, SpilledAudio)
    write_audio(tmp_path / "out" / "audio", out.kept_audio)
    files = sorted((tmp_path / "out" / "audio").iterdir())
    assert len(files) == len(out.samples) == N_PROMPTS * 5  # all distinct here
    for row in out.samples:
        rel = row["continuation_audio"]
        assert rel.startswith("audio/") and rel.endswith(".wav")
        want = expected_continuation(data, row)
        x, rate = sf.read(str(tmp_path / "out" / rel), dtype="float32")
        assert rate == SR and x.tobytes() == want.tobytes(), rel
        assert rel == f"audio/{Audio(want, SR).content_hash()}.wav"
    # without --log_samples: no rows, no audio kept
    bare = run_continue(context(data, BlobStore(None), NoiseLM(), all_judges(), log_samples=False))
    assert bare.samples == [] and len(bare.kept_audio) == 0
    assert bare.entry == out.entry


def test_judges_hear_one_part_at_a_time(data, monkeypatch):
    part = 2
    monkeypatch.setattr(cont_pipeline, "PART_PROMPTS", part)
    prefix = {  # each utterance's first samples: the start of its prompt and its reference
        f"1-2-{i:04d}": file_samples(data, f"1-2-{i:04d}")[:64].tobytes() for i in range(N_PROMPTS)
    }
    asr_calls: list[set[str]] = []
    earlier_alive: list[int] = []

    def probe(audios):
        gc.collect()
        # nothing a judge got for an earlier part is still alive
        earlier_alive.append(sum(r() is not None for refs in asr.refs for r in refs))
        earlier_alive[-1] += sum(r() is not None for r in mos.refs)
        asr_calls.append(
            {d for a in audios for d, p in prefix.items() if a.samples[:64].tobytes() == p}
        )

    asr, mos = WordASR(on_call=probe), HashMOS()
    judges = {"asr": asr, "text_lm": CharLM(), "mos": mos}
    run_continue(context(data, BlobStore(None), NoiseLM(), judges))
    # parts of 2, 2 and 1 prompts: each call hears the continuations and references of its own
    assert asr_calls == [{"1-2-0000", "1-2-0001"}, {"1-2-0002", "1-2-0003"}, {"1-2-0004"}]
    assert [len(c) for c in asr.calls] == [2 * 5 + 2, 2 * 5 + 2, 5 + 1]
    assert earlier_alive == [0, 0, 0]


def test_a_part_s_audio_is_freed_before_the_next_part_is_generated(data, monkeypatch):
    monkeypatch.setattr(cont_pipeline, "PART_PROMPTS", 1)
    alive_at_model_calls: list[int] = []
    asr, mos = WordASR(), HashMOS()

    def probe():
        gc.collect()
        n = sum(r() is not None for refs in asr.refs for r in refs)
        alive_at_model_calls.append(n + sum(r() is not None for r in mos.refs))

    judges = {"asr": asr, "text_lm": CharLM(), "mos": mos}
    run_continue(context(data, BlobStore(None), NoiseLM(on_call=probe), judges))
    assert len(asr.calls) == N_PROMPTS
    assert alive_at_model_calls and max(alive_at_model_calls) == 0, alive_at_model_calls


# --- 5. the llm role ------------------------------------------------------------------------------


def _clip(v: float) -> Audio:
    """A distinct tiny audio per value (the stand-ins look them up by content)."""
    return Audio(np.full(32, v, dtype=np.float32), SR)


class TableASR:
    """Transcript by the audio's content hash, from a table the test writes."""

    def __init__(self, table: dict[str, str]):
        self.table = table
        self.calls: list[list[Audio]] = []

    def transcribe(self, audios, stats=None, cache=None, desc=None):
        self.calls.append(list(audios))
        return [self.table[a.content_hash()] for a in audios]


class TableLLM:
    """Results with the real judge's fields, from a table: continuation transcript -> (status,
    parsed value); the answering server's fingerprint is ``fp_<doc>`` (the transcript's second
    word)."""

    available = True

    def __init__(self, answers: dict[str, tuple[str, int | None]]):
        self.answers = answers
        self.calls: list[tuple[list[str], list[str]]] = []

    def rate(self, prompts, continuations, stats=None, cache=None, desc=None):
        self.calls.append((list(prompts), list(continuations)))
        out = []
        for c in continuations:
            status, value = self.answers[c]
            answered = status != "error"
            out.append(
                {
                    "score": float(value) if status == "ok" and value is not None else None,
                    "status": status,
                    "value": value,
                    "raw": f"raw of {c}" if answered else None,
                    "error": None if answered else "boom",
                    "finish_reason": "stop" if answered else None,
                    "model": "m" if answered else None,
                    "system_fingerprint": f"fp_{c.split()[1]}" if answered else None,
                }
            )
        return out


def _scorer_case(items, prompt_texts=("first words", "other words")):
    """Prompts p1 and p2 and a continuation per item of ``items`` ((doc, temperature, sample);
    temperature None: the repeat_prompt baseline), each a distinct tiny audio that is also what
    the judges hear (as with_prompt false); the ASR stand-in knows every transcript."""
    prompts = [Prompt(d, None, 1.0, "ref text", None, 0.5) for d in ("p1", "p2")]  # type: ignore[arg-type]
    table: dict[str, str] = {}
    prompt_audio, references = {}, {}
    for k, d in enumerate(("p1", "p2")):
        prompt_audio[d], references[d] = _clip(0.01 * (k + 1)), _clip(0.02 * (k + 1) + 0.5)
        table[prompt_audio[d].content_hash()] = prompt_texts[k]
        table[references[d].content_hash()] = f"reference of {d}"
    judged = []
    for n, (doc, t, s) in enumerate(items):
        c = _clip(-0.001 * (n + 1))
        table[c.content_hash()] = f"c{n} {doc} words"
        baseline = "repeat_prompt" if t is None else None
        judged.append(Judged(doc, t, s, c, c, baseline=baseline))
    return prompts, judged, references, prompt_audio, TableASR(table)


def test_llm_role_means_ok_answers_and_counts_every_status():
    answers = {  # (doc, temperature, sample) -> (status, parsed value)
        ("p1", 1.0, 0): ("ok", 4),
        ("p1", 1.0, 1): ("ok", 2),
        ("p1", 1.0, 2): ("unparsed", None),
        ("p2", 1.0, 0): ("ok", 5),
        ("p2", 1.0, 1): ("error", None),
        ("p1", 0.5, 0): ("out_of_range", 7),  # a value, but not a score: left out
        ("p1", 0.5, 1): ("ok", 3),
        ("p2", 0.5, 0): ("ok", 1),
        ("p2", 0.5, 1): ("ok", 2),
        ("p1", None, 0): ("error", None),
        ("p2", None, 0): ("unparsed", None),
    }
    prompts, judged, refs, prompt_audio, asr = _scorer_case(list(answers))
    llm = TableLLM(
        {
            asr.table[j.audio.content_hash()]: answers[(j.doc_id, j.temperature, j.sample)]
            for j in judged
        }
    )
    sc = GenerationScorer({})
    rows = sc.judge(
        prompts, judged, refs, prompt_audio, {"asr": asr, "llm": llm}, ResultCache(None)
    )
    rep = sc.finish(prompts, [rows])
    # one ASR call: what the judges hear, references, the prompts' own audio, then each
    # continuation alone (what the LLM rates; here the same audio as what the judges hear)
    (heard,) = asr.calls
    n = len(judged)
    assert heard[n + 2 : n + 4] == [prompt_audio["p1"], prompt_audio["p2"]]
    assert heard[n + 4 :] == [j.continuation for j in judged]
    # the pairs rated: (the ASR's transcript of the prompt audio, of the continuation)
    (call,) = llm.calls
    assert call[0] == ["first words" if j.doc_id == "p1" else "other words" for j in judged]
    assert call[1] == [f"c{n} {j.doc_id} words" for n, j in enumerate(judged)]
    for r, j, c in zip(rep.per_item, judged, call[1], strict=True):
        st, value = answers[(j.doc_id, j.temperature, j.sample)]
        assert (r["llm_status"], r["llm_value"]) == (st, value)
        assert r["llm_score"] == (float(value) if st == "ok" else None)
        assert r["prompt_transcript"] == ("first words" if j.doc_id == "p1" else "other words")
        # the judge's answer, kept for audit
        answered = st != "error"
        assert r["llm_raw"] == (f"raw of {c}" if answered else None)
        assert r["llm_error"] == (None if answered else "boom")
        assert r["llm_finish_reason"] == ("stop" if answered else None)
        assert r["llm_model"] == ("m" if answered else None)
        assert r["llm_system_fingerprint"] == (f"fp_{j.doc_id}" if answered else None)
    m1 = rep.by_filter["t=1"].metrics["llm_score"]
    # t=1: ok 4, 2 (p1) and 5 (p2): mean 11/3; residual sums -4/3, 4/3: sqrt(2 * 32/9) / 3
    assert m1.value == pytest.approx(11 / 3, rel=1e-12) and m1.n == 3
    assert m1.stderr == pytest.approx(8 / 9, rel=1e-12)
    assert m1.higher_is_better is True
    ref = cluster_mean([4.0, 2.0, 5.0], ["p1", "p1", "p2"])
    assert (m1.value, m1.stderr) == (ref.value, ref.stderr)
    # t=0.5: ok 3 (p1), 1 and 2 (p2): mean 2; residual sums 1, -1: sqrt(2 * 2) / 3
    m05 = rep.by_filter["t=0.5"].metrics["llm_score"]
    assert (m05.value, m05.n) == (2.0, 3) and m05.stderr == pytest.approx(2 / 3, rel=1e-12)
    assert m05.stderr == pytest.approx(cr1_se([3, 1, 2], ["p1", "p2", "p2"]), rel=1e-12)
    # slamkit's mean: every parsed integer, the out-of-range 7 too. t=1 has none out of range:
    # the same as llm_score. t=0.5: 7 and 3 (p1), 1 and 2 (p2): 13/4; residual sums 3.5 and
    # -3.5: sqrt(2 * 24.5 / 16) = 7/4
    s1 = rep.by_filter["t=1"].metrics["llm_score_slamkit"]
    assert (s1.value, s1.stderr, s1.n) == (m1.value, m1.stderr, 3)
    s05 = rep.by_filter["t=0.5"].metrics["llm_score_slamkit"]
    assert (s05.value, s05.n, s05.higher_is_better) == (3.25, 4, True)
    assert s05.stderr == pytest.approx(7 / 4, rel=1e-12)
    assert s05.stderr == pytest.approx(cr1_se([7, 3, 1, 2], ["p1", "p1", "p2", "p2"]), rel=1e-12)
    # the baseline: no ok answer, no score; counted all the same
    assert "llm_score" not in rep.by_filter["repeat_prompt"].metrics
    assert "llm_score_slamkit" not in rep.by_filter["repeat_prompt"].metrics
    assert rep.info["llm_status"] == {
        "t=0.5": {"ok": 3, "out_of_range": 1},
        "t=1": {"error": 1, "ok": 3, "unparsed": 1},
        "repeat_prompt": {"error": 1, "unparsed": 1},
    }
    # rows answered, by (served model, fingerprint): p1 3 + 2, p2 1 + 2 + 1 (errors: none)
    assert rep.info["llm_served"] == [
        {"model": "m", "system_fingerprint": "fp_p1", "rows": 5},
        {"model": "m", "system_fingerprint": "fp_p2", "rows": 4},
    ]
    assert "llm_score" not in rep.by_filter["oracle"].metrics


def test_llm_never_rates_an_empty_continuation_transcript():
    items = [("p1", 1.0, 0), ("p1", 1.0, 1), ("p2", 1.0, 0), ("p2", 1.0, 1), ("p1", 0.5, 0)]
    prompts, judged, refs, prompt_audio, asr = _scorer_case(items)
    # c1: nothing heard; c2: only what the normaliser removes; c3: the judges hear words (the
    # prompt, say) but the continuation alone is a filler; c4: nothing at t=0.5
    texts = ["c0 p1 words", "", "uh um", "the cat sat", ""]
    for j, t in zip(judged, texts, strict=True):
        asr.table[j.audio.content_hash()] = t
    alone = _clip(0.9)
    asr.table[alone.content_hash()] = "hmm"
    judged[3] = Judged("p2", 1.0, 1, alone, judged[3].audio)
    llm = TableLLM({"c0 p1 words": ("ok", 4)})
    sc = GenerationScorer({})
    rep = sc.score_continuations(
        prompts, judged, refs, prompt_audio, {"asr": asr, "llm": llm}, ResultCache(None)
    )
    # only the pair with words was sent; t=0.5 had nothing to send: no call for it
    assert llm.calls == [(["first words"], ["c0 p1 words"])]
    rows = rep.per_item
    assert [r["llm_status"] for r in rows] == ["ok"] + ["empty_transcript"] * 4
    assert [r["continuation_transcript"] for r in rows] == ["c0 p1 words", "", "uh um", "hmm", ""]
    for r in rows[1:]:
        assert all(r[k] is None for k in ("llm_score", "llm_value", "llm_raw", "llm_model"))
    assert rep.info["llm_status"] == {
        "t=0.5": {"empty_transcript": 1},
        "t=1": {"empty_transcript": 3, "ok": 1},
    }
    m = rep.by_filter["t=1"].metrics["llm_score"]
    assert (m.value, m.n) == (4.0, 1)  # never averaged in
    assert rep.by_filter["t=1"].metrics["llm_score_slamkit"].n == 1
    assert "llm_score" not in rep.by_filter["t=0.5"].metrics
    # the text metrics' own exclusion: rows whose heard transcript is empty (c1, c2, c4)
    assert rep.info["excluded"]["empty_transcript"] == {"t=0.5": 1, "t=1": 2, "oracle": 0}
    assert rep.info["llm_served"] == [{"model": "m", "system_fingerprint": "fp_p1", "rows": 1}]


def test_without_the_llm_role_nothing_of_it_appears():
    prompts, judged, refs, prompt_audio, asr = _scorer_case([("p1", 1.0, 0), ("p2", 1.0, 0)])
    sc = GenerationScorer({})
    rep = sc.score_continuations(
        prompts, judged, refs, prompt_audio, {"asr": asr}, ResultCache(None)
    )
    (heard,) = asr.calls
    assert len(heard) == 2 + 2  # no prompt audio transcribed
    assert "llm_status" not in rep.info and "llm_score" not in rep.by_filter["t=1"].metrics
    assert all("llm_status" not in r and "prompt_transcript" not in r for r in rep.per_item)


def test_llm_rates_the_continuation_alone_when_the_judges_hear_the_prompt_too(data):
    llm, asr = HashLLM(), WordASR()
    run_continue(context(data, BlobStore(None), NoiseLM(), {"asr": asr, "llm": llm}))
    alone = {words_of(c.samples) for c in _all_model_continuations(data)}
    alone |= _baseline_transcripts(data)
    # every rated continuation transcript is the transcript of a continuation alone
    assert llm.pairs and {c for _, c in llm.pairs} <= alone


def _all_model_continuations(data: Path) -> list[Audio]:
    out = []
    for i in range(N_PROMPTS):
        x = file_samples(data, f"1-2-{i:04d}")
        prompt, seconds = x[: round(PROMPT_S * SR)], x.size / SR - PROMPT_S
        for t in GENERATION["temperatures"]:
            for j in range(GENERATION["num_samples"]):
                out.append(Audio(continuation_of(prompt, t, j, seconds, seed=0), SR))
    return out


def _baseline_transcripts(data: Path) -> set[str]:
    out = set()
    for i in range(N_PROMPTS):
        x = file_samples(data, f"1-2-{i:04d}")
        prompt, seconds = x[: round(PROMPT_S * SR)], x.size / SR - PROMPT_S
        out.add(words_of(np.resize(prompt, round(seconds * SR)).astype(np.float32)))
    return out


def test_pipeline_gives_the_llm_the_prompt_audio_transcripts(data):
    llm, asr = HashLLM(), WordASR()
    cfg = cont_task(with_prompt=False)  # the continuation transcript is the same either way
    out = run_continue(context(data, BlobStore(None), NoiseLM(), {"asr": asr, "llm": llm}, cfg))
    prompt_text = {
        f"1-2-{i:04d}": words_of(file_samples(data, f"1-2-{i:04d}")[: round(PROMPT_S * SR)])
        for i in range(N_PROMPTS)
    }
    assert len(llm.pairs) == len(out.samples) == N_PROMPTS * 5
    for (p, c), row in zip(llm.pairs, out.samples, strict=True):
        assert p == row["prompt_transcript"] == prompt_text[row["doc_id"]]
        assert c == row["transcript"]
        assert (row["llm_status"], row["llm_score"]) == (
            llm_result(p, c)["status"],
            llm_result(p, c)["score"],
        )
    # llm_score per filter: the mean over ok rows, cluster-robust by prompt
    for f in ("t=0.5", "t=1", "repeat_prompt"):
        rows = [r for r in out.samples if r["filter"] == f]
        ok = [r for r in rows if r["llm_status"] == "ok"]
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["llm_status"]] = counts.get(r["llm_status"], 0) + 1
        assert out.scoring["llm_status"][f] == counts
        if not ok:
            assert f"llm_score,{f}" not in out.entry
            continue
        vals = [r["llm_score"] for r in ok]
        assert out.entry[f"llm_score,{f}"] == pytest.approx(sum(vals) / len(vals), rel=1e-12)
        se = cr1_se(vals, [r["doc_id"] for r in ok])
        got = out.entry[f"llm_score_stderr,{f}"]
        assert got == "N/A" if se is None else got == pytest.approx(se, rel=1e-12)


# --- 5b and 6. through the runner: the real LLM judge, and a task skipped without it ------------


class RegisteredASR(ASRJudge):
    """:func:`words_of` as a registered ASR judge (through the executor and cache)."""

    def __init__(self, name="gp-words-asr", **options):
        super().__init__(name, **options)
        self.heard = 0

    def identity(self):
        return {"judge": "gp-words-asr", "kind": "asr"}

    def _transcribe_batch(self, samples):
        self.heard += len(samples)
        return [words_of(np.asarray(x, dtype=np.float32)) for x in samples]


TASK_YAML = """\
task: gp_llm
version: 1
capability: continue
dataset:
  reader: librispeech
  subdirs: [cont]
  sample_rate: 16000
judges:
  asr: gp-words-asr
  llm: llm-judge
generation:
  num_samples: 2
  temperatures: [0.5, 1.0]
  prompt_seconds: 0.25
  min_seconds: 0.3
  max_prompts: 3
  with_prompt: false  # the judges hear the continuation alone (the LLM's pair either way)
scoring:
  scorer: continuation
"""


@pytest.fixture
def runner_env(tmp_path, monkeypatch):
    make_data(tmp_path / "data")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "gp_llm.yaml").write_text(TASK_YAML)
    eps = registry._entry_points("judges")
    monkeypatch.setitem(eps, "gp-words-asr", SimpleNamespace(load=lambda: RegisteredASR, dist=None))
    return SimpleNamespace(data=tmp_path / "data", tasks=tasks)


def test_task_whose_judge_is_unavailable_is_skipped_and_runs_nothing(runner_env, tmp_path):
    model = NoiseLM()
    opts = RunOptions(
        tasks="gp_llm",
        data_dir=str(runner_env.data),
        include_path=[str(runner_env.tasks)],
        no_cache=True,
        output_path=str(tmp_path / "out"),
        log_samples=True,
    )
    res = evaluate("noise-lm", {}, opts, model=model)
    assert res["skipped"] == {
        "gp_llm": "skipped (judge 'llm': no endpoint configured: set SLM_EVAL_LLM_JUDGE_URL or "
        "--judge llm=llm-judge,base_url=...,model=...)"
    }
    assert res["results"] == {} and "gp_llm" not in res.get("scoring", {})
    assert model.requests == []  # nothing generated
    assert load_judge("gp-words-asr").heard == 0  # nothing transcribed (the judge was loaded)
    assert list((tmp_path / "out" / "noise-lm").glob("samples_*")) == []


def _llm_answer(continuation: str) -> str:
    """The scripted LLM: \\boxed{k}, k the number of words "the" and "cat" (0 and 6 or more:
    out of range); no box at all when k is 3 (unparsed)."""
    k = sum(w in ("the", "cat") for w in continuation.split())
    return "I cannot say." if k == 3 else f"Fine. The final answer is $\\boxed{{{k}}}$"


def _llm_status(continuation: str) -> tuple[str, float | None]:
    """What :func:`_llm_answer` comes to, by the judge's rules (1 to 5 in range)."""
    k = sum(w in ("the", "cat") for w in continuation.split())
    if k == 3:
        return "unparsed", None
    return ("ok", float(k)) if 1 <= k <= 5 else ("out_of_range", None)


def test_real_llm_judge_through_the_runner(runner_env, tmp_path):
    pytest.importorskip("httpx")
    from openai_server import OpenAIServer

    from speechlm_eval.judges.llm import SLAMKIT_RUBRIC, render

    head, tail = 'the text continuation is :"', '". You must give'

    def script(text: str) -> str:
        return _llm_answer(text[text.index(head) + len(head) : text.index(tail)])

    served = "judge-model-2025-01-01"
    with OpenAIServer("script", served=served, script=script) as srv:
        opts = RunOptions(
            tasks="gp_llm",
            data_dir=str(runner_env.data),
            include_path=[str(runner_env.tasks)],
            no_cache=True,
            output_path=str(tmp_path / "out"),
            log_samples=True,
            judges=[
                f"llm=llm-judge,base_url={srv.url},model={served},backoff=0.001,"
                "max_backoff=0.01,max_retries=1"
            ],
        )
        res = evaluate("noise-lm", {}, opts, model=NoiseLM())
        sent = [p["messages"][0]["content"] for p in srv.requests]
    assert res["skipped"] == {}
    r, sc = res["results"]["gp_llm"], res["scoring"]["gp_llm"]
    assert res["judges"]["gp_llm"]["llm"]["model"] == served
    out = tmp_path / "out" / "noise-lm"
    (path,) = out.glob("samples_gp_llm_*.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 3 * 2 * 2
    # the prompts as the ASR heard them (the first 0.25 s of the 3 shortest utterances)
    prompt_text = {
        f"1-2-{i:04d}": words_of(file_samples(runner_env.data / "cont", f"1-2-{i:04d}")[:4000])
        for i in range(3)
    }
    statuses = set()
    for row in rows:
        assert row["prompt_transcript"] == prompt_text[row["doc_id"]]
        want, score = _llm_status(row["transcript"])
        assert (row["llm_status"], row["llm_score"]) == (want, score)
        statuses.add(want)
        # the answer as the server gave it, and who answered
        assert row["llm_raw"] == _llm_answer(row["transcript"]) and row["llm_error"] is None
        assert (row["llm_model"], row["llm_system_fingerprint"]) == (served, "fp_test")
        assert row["llm_finish_reason"] == "stop"
        k = sum(w in ("the", "cat") for w in row["transcript"].split())
        assert row["llm_value"] == (None if k == 3 else k)
        # each pair was sent as the rubric with both transcripts in place
        assert render(SLAMKIT_RUBRIC, row["prompt_transcript"], row["transcript"]) in sent
        assert (out / row["continuation_audio"]).is_file()
    assert len(sent) == len({(r["prompt_transcript"], r["transcript"]) for r in rows})
    for f in ("t=0.5", "t=1"):
        fr = [row for row in rows if row["filter"] == f]
        ok = [row for row in fr if row["llm_status"] == "ok"]
        counts: dict[str, int] = {}
        for row in fr:
            counts[row["llm_status"]] = counts.get(row["llm_status"], 0) + 1
        assert sc["llm_status"][f] == counts
        vals = [row["llm_score"] for row in ok]
        assert r[f"llm_score,{f}"] == pytest.approx(sum(vals) / len(vals), rel=1e-12)
        se = cr1_se(vals, [row["doc_id"] for row in ok])
        got = r[f"llm_score_stderr,{f}"]
        assert got == "N/A" if se is None else got == pytest.approx(se, rel=1e-12)
        parsed = [row["llm_value"] for row in fr if row["llm_value"] is not None]
        assert r[f"llm_score_slamkit,{f}"] == pytest.approx(sum(parsed) / len(parsed), rel=1e-12)
    assert statuses == {"ok", "unparsed", "out_of_range"}, statuses
    assert sc["llm_served"] == [
        {"model": served, "system_fingerprint": "fp_test", "rows": len(rows)}
    ]


def test_a_refusing_llm_endpoint_stops_the_run_with_a_configuration_error(runner_env, tmp_path):
    pytest.importorskip("httpx")
    from openai_server import OpenAIServer

    from speechlm_eval.errors import ConfigError

    with OpenAIServer("script", served="judge-model", script=lambda _t: "\\boxed{3}") as srv:
        opts = RunOptions(
            tasks="gp_llm",
            data_dir=str(runner_env.data),
            include_path=[str(runner_env.tasks)],
            no_cache=True,
            output_path=str(tmp_path / "out"),
            judges=[f"llm=llm-judge,base_url={srv.url},model=not-served,max_concurrency=1"],
        )
        with pytest.raises(ConfigError) as e:
            evaluate("noise-lm", {}, opts, model=NoiseLM())
    assert "HTTP 400" in str(e.value) and "The model `not-served` does not exist" in str(e.value)
    assert srv.answered == []


# --- 7. MOS and speaker NaN: excluded and counted ------------------------------------------------


class TableMOS:
    def __init__(self, table: dict[str, dict[str, float]]):
        self.table = table

    def predict(self, audios, stats=None, cache=None, desc=None):
        return [dict(self.table[a.content_hash()]) for a in audios]


class TableSpeaker:
    def __init__(self, table: dict[str, float]):
        self.table = table  # by the second audio (the continuation / the output)

    def similarity(self, a, b, stats=None, cache=None, desc=None):
        return [self.table[y.content_hash()] for y in b]


NAN = float("nan")


def test_continuation_scorer_excludes_and_counts_mos_and_speaker_nan():
    items = {  # (doc, temperature, sample) -> (ovrl, sig, speaker)
        ("p1", 1.0, 0): (3.0, 1.0, 0.5),
        ("p1", 1.0, 1): (NAN, 2.0, NAN),
        ("p2", 1.0, 0): (4.0, 3.0, 0.7),
        ("p2", 1.0, 1): (5.0, 4.0, 0.9),
        ("p1", 0.5, 0): (NAN, 2.0, NAN),
        ("p2", 0.5, 0): (NAN, 3.0, NAN),
    }
    prompts, judged, refs, prompt_audio, asr = _scorer_case(list(items))
    v = {j.continuation.content_hash(): items[(j.doc_id, j.temperature, j.sample)] for j in judged}
    mos = TableMOS({h: {"ovrl": x[0], "sig": x[1]} for h, x in v.items()})
    spk = TableSpeaker({h: x[2] for h, x in v.items()})
    sc = GenerationScorer({})
    judges = {"asr": asr, "mos": mos, "speaker": spk}
    rep = sc.finish(
        prompts, [sc.judge(prompts, judged, refs, prompt_audio, judges, ResultCache(None))]
    )
    t1, t05 = rep.by_filter["t=1"].metrics, rep.by_filter["t=0.5"].metrics
    # t=1 ovrl: 3 (p1), 4 and 5 (p2): mean 4; residual sums -1 and 1: sqrt(2 * 2) / 3
    assert (t1["mos_ovrl"].value, t1["mos_ovrl"].n) == (4.0, 3)
    assert t1["mos_ovrl"].stderr == pytest.approx(2 / 3, rel=1e-12)
    ref = cluster_mean([3.0, 4.0, 5.0], ["p1", "p2", "p2"])
    assert (t1["mos_ovrl"].value, t1["mos_ovrl"].stderr) == (ref.value, ref.stderr)
    assert (t1["mos_sig"].value, t1["mos_sig"].n) == (2.5, 4)  # nothing missing
    # speaker t=1: 0.5 (p1), 0.7 and 0.9 (p2): mean 0.7
    assert t1["speaker_similarity"].value == pytest.approx(0.7, rel=1e-12)
    assert t1["speaker_similarity"].n == 3
    se = cr1_se([0.5, 0.7, 0.9], ["p1", "p2", "p2"])
    assert t1["speaker_similarity"].stderr == pytest.approx(se, rel=1e-12)
    # t=0.5: every ovrl and every similarity missing: no metric, all counted
    assert "mos_ovrl" not in t05 and "speaker_similarity" not in t05
    assert t05["mos_sig"].value == 2.5
    ex = rep.info["excluded"]
    assert ex["mos_no_value"] == {
        "mos_ovrl,t=0.5": 2,
        "mos_ovrl,t=1": 1,
        "mos_sig,t=0.5": 0,
        "mos_sig,t=1": 0,
    }
    assert ex["speaker_no_signal"] == {"t=0.5": 2, "t=1": 1}
    # no value missing: the record is there (the role was bound), every count zero
    items_ok = {k: (1.0, 2.0, 0.3) for k in items}
    prompts, judged, refs, prompt_audio, asr = _scorer_case(list(items_ok))
    mos = TableMOS({j.continuation.content_hash(): {"ovrl": 1.0} for j in judged})
    spk = TableSpeaker({j.continuation.content_hash(): 0.3 for j in judged})
    rep = sc.score_continuations(
        prompts,
        judged,
        refs,
        prompt_audio,
        {"asr": asr, "mos": mos, "speaker": spk},
        ResultCache(None),
    )
    assert rep.info["excluded"]["mos_no_value"] == {"mos_ovrl,t=0.5": 0, "mos_ovrl,t=1": 0}
    assert rep.info["excluded"]["speaker_no_signal"] == {"t=0.5": 0, "t=1": 0}


class HalfEcho(SpeechLM):
    """Resynthesis: the input at half amplitude (so output and input differ)."""

    sample_rate = SR
    capabilities = frozenset({"resynthesize"})

    def identity(self):
        return {"model": "half-echo"}

    def resynthesize(self, requests):
        return [Audio((0.5 * r.audio.samples).astype(np.float32), SR) for r in requests]


class RefASR(ASRJudge):
    """Every audio is heard as the reference text (WER 0): not under test here."""

    def identity(self):
        return {"judge": "ref-asr"}

    def _transcribe_batch(self, samples):
        return ["the cat" for _ in samples]


def test_resynthesis_mos_and_speaker_nan_are_excluded_and_paired(tmp_path):
    d = tmp_path / "ls" / "1" / "2"
    ids = [f"1-2-{i:04d}" for i in range(4)]
    rng = np.random.default_rng(5)
    for u in ids:
        write_wav(d / f"{u}.wav", (0.1 * rng.standard_normal(800)).astype(np.float32))
    (d / "1-2.trans.txt").write_text("".join(f"{u} THE CAT\n" for u in ids))
    cfg = parse_task(
        {
            "task": "rs",
            "version": 1,
            "capability": "resynthesize",
            "dataset": {"reader": "librispeech", "subdirs": ["x"], "sample_rate": SR},
            "scoring": {"scorer": "wer", "options": {"bootstrap_resamples": 0}},
        },
        "rs.yaml",
    )
    inp = {u: load_audio(d / f"{u}.wav", SR) for u in ids}
    outp = {u: Audio((0.5 * inp[u].samples).astype(np.float32), SR) for u in ids}
    # ovrl of output and input; NaN: no value. Paired delta over u0 and u3 only.
    ovrl_out = dict(zip(ids, (3.0, NAN, 2.0, 4.0), strict=True))
    ovrl_in = dict(zip(ids, (2.5, 3.5, NAN, 3.0), strict=True))
    table = {
        outp[u].content_hash(): {"ovrl": ovrl_out[u], "sig": 1.0 + k} for k, u in enumerate(ids)
    }
    table |= {inp[u].content_hash(): {"ovrl": ovrl_in[u], "sig": 1.5} for u in ids}
    sims = dict(zip(ids, (0.9, NAN, 0.7, NAN), strict=True))
    judges = {
        "asr": RefASR("ref-asr"),
        "mos": TableMOS(table),
        "speaker": TableSpeaker({outp[u].content_hash(): sims[u] for u in ids}),
    }
    ctx = TaskContext(
        cfg=cfg,
        dataset=read_librispeech(tmp_path / "ls", {}),
        model=HalfEcho(),
        model_key="half-echo",
        cache=ResultCache(None),
        blobs=BlobStore(None),
        sizer=BatchSizer(4),
        stats=ExecStats(),
        seed=0,
        log_samples=True,
        judges=judges,
    )
    out = run_resynthesize(ctx)
    e = out.entry
    assert e["mos_ovrl,none"] == 3.0  # (3 + 2 + 4) / 3
    assert e["mos_ovrl_original,none"] == 3.0  # (2.5 + 3.5 + 3) / 3
    # paired: (0.5 + 1.0) / 2, not mean(out) - mean(in) = 0
    assert e["mos_ovrl_delta,none"] == pytest.approx(0.75, rel=1e-12)
    # one item per utterance: se = s / sqrt(n); residuals -0.25, 0.25 -> 0.25
    assert e["mos_ovrl_delta_stderr,none"] == pytest.approx(0.25, rel=1e-12)
    assert e["mos_ovrl_stderr,none"] == pytest.approx(cr1_se([3, 2, 4], ["a", "c", "d"]), rel=1e-12)
    assert e["mos_sig,none"] == 2.5 and e["mos_sig_delta,none"] == 1.0
    assert e["speaker_similarity,none"] == pytest.approx(0.8, rel=1e-12)
    assert e["speaker_similarity_stderr,none"] == pytest.approx(0.1, rel=1e-12)
    assert out.scoring["excluded"] == {
        "mos_no_value": {
            "mos_ovrl,none": 1,
            "mos_ovrl_original,none": 1,
            "mos_ovrl_delta,none": 2,
            "mos_sig,none": 0,
            "mos_sig_original,none": 0,
            "mos_sig_delta,none": 0,
        },
        "speaker_no_signal": 2,
    }
    rows = {r["doc_id"]: r for r in out.samples}
    assert rows[ids[1]]["mos_ovrl"] is None and rows[ids[1]]["mos_ovrl_original"] == 3.5
    assert rows[ids[2]]["mos_ovrl_original"] is None and rows[ids[2]]["mos_ovrl"] == 2.0
    assert rows[ids[1]]["speaker_similarity"] is None and rows[ids[0]]["speaker_similarity"] == 0.9
