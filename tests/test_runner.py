"""The runner end to end in-process with a fake model: schema, scoring options, cache, limits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import SR, EnergyLM, make_lexical, make_salmon, make_storycloze, tone, write_wav

from speechlm_eval import DataError, LoglikelihoodResult
from speechlm_eval.results import strip_volatile
from speechlm_eval.runner import RunOptions, evaluate, parse_model_args


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    make_lexical(root, ids=4, win={(1, "v1"), (2, "v1"), (2, "v2")})
    make_storycloze(root, "sStoryCloze", n=4, lose={3})
    make_storycloze(root, "tStoryCloze", n=3, seed=200)
    make_salmon(root, "speaker_consistency", n=4, k=2)
    return root


def _opts(tmp_path, data, **kw):
    base = dict(
        tasks="swuggy,ssc,tsc,salmon_speaker_consistency",
        data_dir=str(data),
        output_path=str(tmp_path / "out"),
        use_cache=str(tmp_path / "cache.sqlite"),
    )
    base.update(kw)
    return RunOptions(**base)


def test_results_schema_and_scores(tmp_path, data):
    m = EnergyLM()
    res = evaluate("energy", {}, _opts(tmp_path, data, log_samples=True), model=m)
    r = res["results"]
    # swuggy: id0 1, id1 (0 + 1)/2, id2 0, id3 1 -> mean 0.625
    assert r["swuggy"]["acc,nll_sum"] == pytest.approx(0.625)
    assert r["swuggy"]["acc_freq_oov,nll_sum"] == pytest.approx(1.0)
    assert r["ssc"]["acc,nll_mean"] == pytest.approx(0.75)
    assert r["tsc"]["acc,nll_mean"] == pytest.approx(1.0)
    assert r["salmon_speaker_consistency"]["acc,nll_mean"] == pytest.approx(1.0)
    for task in r:
        assert isinstance(r[task]["acc_stderr,nll_sum"], (float, str))
        assert res["versions"][task] == 1 and len(res["task_hashes"][task]) == 64
        assert res["higher_is_better"][task]["acc"] is True
        assert set(res["datasets"][task]) >= {"reader", "root", "n_files", "source"}
    assert res["n-samples"]["swuggy"] == {"original": 4, "effective": 4}
    assert res["scoring"]["swuggy"]["primary_metric"] == "acc,nll_sum"
    assert res["scoring"]["ssc"]["primary_metric"] == "acc,nll_mean"
    assert res["datasets"]["swuggy"]["manifest_sha256"]
    assert res["config"]["model"] == "energy" and res["config"]["random_seed"] == 0
    assert res["packages"]["numpy"] == np.__version__
    assert res["audio"]["ssc"]["resampled"] == {}
    out = tmp_path / "out" / "energy"
    files = sorted(p.name for p in out.iterdir())
    assert len([f for f in files if f.startswith("results_")]) == 1
    assert any(f.startswith("samples_swuggy_") and f.endswith(".jsonl") for f in files)
    written = json.loads(next(out.glob("results_*.json")).read_text())
    assert written["results"] == json.loads(json.dumps(r))
    rows = [json.loads(x) for x in next(out.glob("samples_ssc_*.jsonl")).read_text().splitlines()]
    assert len(rows) == 4 and rows[3]["score,nll_mean"] == 0.0 and rows[0]["score,nll_sum"] == 1.0


def test_sum_and_mean_differ_when_lengths_differ(tmp_path):
    # positive: short but louder per token; negative: long and quiet -> sum prefers the positive,
    # mean prefers the negative.
    d = tmp_path / "data" / "sStoryCloze"
    write_wav(d / "0_correct.wav", tone(1, seconds=0.2, amp=0.1))
    write_wav(d / "0_incorrect.wav", tone(2, seconds=1.0, amp=0.07))
    res = evaluate("energy", {}, _opts(tmp_path, tmp_path / "data", tasks="ssc"), model=EnergyLM())
    assert res["results"]["ssc"]["acc,nll_sum"] == 1.0
    assert res["results"]["ssc"]["acc,nll_mean"] == 0.0


def test_cache_resume_and_determinism(tmp_path, data):
    m1 = EnergyLM()
    r1 = evaluate("energy", {}, _opts(tmp_path, data, batch_size=3), model=m1)
    n_files = sum(len(c) for c in m1.calls)
    assert n_files == 16 + 8 + 6 + 8  # every distinct file once
    assert all(len(c) <= 3 for c in m1.calls)
    # longest first within a task: ssc incorrect files are longer than correct ones
    first_ssc = next(c for c in m1.calls if any("incorrect" in k for k in c))
    assert all("incorrect" in k for k in first_ssc)
    m2 = EnergyLM()
    r2 = evaluate("energy", {}, _opts(tmp_path, data, batch_size=3), model=m2)
    assert m2.calls == []  # everything came from the cache
    assert strip_volatile(r1) == strip_volatile(r2)
    assert r2["runtime"]["cache"]["swuggy"] == {
        "hits": 16,
        "computed": 0,
        "model_calls": 0,
        "batch_sizes": [],
    }
    assert r1["runtime"]["cache"]["swuggy"]["batch_sizes"] == [3, 1]
    m3 = EnergyLM()
    r3 = evaluate("energy", {}, _opts(tmp_path, data, batch_size=5, no_cache=True), model=m3)
    assert sum(len(c) for c in m3.calls) == n_files
    assert r3["results"] == r1["results"]  # batch size does not change scores


def test_limit_and_skipped_capability(tmp_path, data):
    res = evaluate(
        "energy", {}, _opts(tmp_path, data, limit=2, tasks="swuggy,ssc"), model=EnergyLM()
    )
    assert res["n-samples"]["swuggy"] == {"original": 4, "effective": 2}
    assert res["n-samples"]["ssc"] == {"original": 4, "effective": 2}

    class EncodeOnly(EnergyLM):
        capabilities = frozenset({"encode"})

    res = evaluate("enc", {}, _opts(tmp_path, data, tasks="swuggy"), model=EncodeOnly())
    assert res["results"] == {}
    assert res["skipped"] == {"swuggy": "skipped (model lacks loglikelihood)"}


def test_resampling_is_recorded(tmp_path, data):
    class LM24k(EnergyLM):
        sample_rate = 24000

        def loglikelihood(self, requests):
            assert all(r.audio.sample_rate == 24000 for r in requests)
            return super().loglikelihood(requests)

    res = evaluate("e24", {}, _opts(tmp_path, data, tasks="tsc"), model=LM24k())
    assert res["audio"]["tsc"]["resampled"] == {"16000->24000": 6}
    assert res["audio"]["tsc"]["resampler"] == "scipy.signal.resample_poly"


def test_auto_batch_size_backs_off_on_oom(tmp_path, data):
    class Picky(EnergyLM):
        def loglikelihood(self, requests):
            if len(requests) > 2:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
            return super().loglikelihood(requests)

    m = Picky()
    res = evaluate(
        "p",
        {},
        _opts(tmp_path, data, tasks="swuggy", batch_size="auto", max_batch_size=8, no_cache=True),
        model=m,
    )
    assert res["runtime"]["auto_batch_size"] == 2
    assert res["runtime"]["cache"]["swuggy"]["batch_sizes"] == [2]
    assert res["results"]["swuggy"]["acc,nll_sum"] == pytest.approx(0.625)


def test_bad_plugin_output_and_bad_audio(tmp_path, data):
    class Short(EnergyLM):
        def loglikelihood(self, requests):
            return super().loglikelihood(requests)[:-1]

    with pytest.raises(Exception, match="model returned 0 results for 1 requests"):
        evaluate("s", {}, _opts(tmp_path, data, tasks="tsc", no_cache=True), model=Short())
    write_wav(data / "tStoryCloze" / "0_correct.wav", tone(9, sr=22050), sr=22050)
    with pytest.raises(DataError, match="0_correct.wav: sample rate is 22050 Hz"):
        evaluate("e", {}, _opts(tmp_path, data, tasks="tsc"), model=EnergyLM())
    assert not list((tmp_path / "out").glob("*/results_*.json"))


def test_loglikelihood_result_validation_and_model_args():
    with pytest.raises(ValueError):
        LoglikelihoodResult(float("nan"), 3)
    with pytest.raises(ValueError):
        LoglikelihoodResult(-1.0, 0)
    assert parse_model_args("path=/a/b, layer=6,dedup=true") == {
        "path": "/a/b",
        "layer": "6",
        "dedup": "true",
    }
    with pytest.raises(Exception, match="expected key=value"):
        parse_model_args("path")
    assert SR == 16000


def test_likelihood_tasks_skip_models_that_do_not_score_audio(tmp_path):
    """A model whose loglikelihood scores text answers only (instruction models) is skipped on
    the speech-sequence likelihood tasks, with the reason, rather than failing on them."""
    from helpers import make_lexical

    from speechlm_eval import SpeechLM
    from speechlm_eval.runner import RunOptions, evaluate

    class TextOnly(SpeechLM):
        capabilities = frozenset({"loglikelihood"})
        likelihood_of = frozenset({"text_given_audio"})

        def loglikelihood(self, requests):
            raise AssertionError("must not be called")

    make_lexical(tmp_path / "d")
    res = evaluate(
        "text-only", {}, RunOptions(tasks="swuggy", data_dir=str(tmp_path / "d"), no_cache=True),
        model=TextOnly(),
    )  # fmt: skip
    assert res["results"] == {}
    assert res["skipped"] == {
        "swuggy": "skipped (model scores text_given_audio, not audio sequences)"
    }
