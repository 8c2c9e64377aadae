"""The resynthesis pipeline end to end: built-in ASR data, the packaged ASR judge, WER/CER.

An identity "vocoder" must score exactly the judge's WER on the input (delta 0); a model
that returns silence-like noise must be much worse. Checks the results records too.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build_tiny

from speechlm_eval import Audio, SpeechLM
from speechlm_eval.runner import RunOptions, evaluate

pytest.importorskip("faster_whisper")
pytest.importorskip("piper")


class Echo(SpeechLM):
    capabilities = frozenset({"resynthesize"})
    sample_rate = 16000

    def __init__(self, noise: str = "0") -> None:
        super().__init__(noise=noise)
        self.noise = noise == "1"

    def resynthesize(self, requests):
        out = []
        for r in requests:
            x = r.audio.samples
            if self.noise:  # same length, no speech
                x = (0.01 * np.random.default_rng(0).standard_normal(x.size)).astype(np.float32)
            out.append(Audio(x.copy(), r.audio.sample_rate))
        return out


@pytest.fixture(scope="module")
def asr_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("builtin")
    build_tiny(out, ["asr"])
    return out


def _run(root, tmp_path, model):
    opts = RunOptions(
        tasks="resynth_wer,resynth_cer", data_dir=str(root), use_cache=str(tmp_path / "c.sqlite")
    )
    return evaluate("echo", {}, opts, model=model)


def test_identity_resynthesis_equals_the_judge_on_the_input(asr_root, tmp_path):
    res = _run(asr_root, tmp_path, Echo())
    r = res["results"]["resynth_wer"]
    assert r["wer,none"] == r["wer_original,none"] and r["wer_delta,none"] == 0.0
    assert 0.0 <= r["wer,none"] < 0.5  # tiny.en on clear synthetic speech
    assert res["scoring"]["resynth_wer"]["primary_metric"] == "wer,none"
    assert res["scoring"]["resynth_cer"]["primary_metric"] == "cer,none"
    assert res["higher_is_better"]["resynth_wer"]["wer"] is False
    ident = res["judges"]["resynth_wer"]["asr"]
    assert (
        "faster" in str(ident).lower()
        and len(res["datasets"]["resynth_wer"]["builtin"]["content_sha256"]) == 64
    )
    # The same audio out as in: MOS equal (paired delta exactly 0), speaker similarity 1.
    assert r["mos_ovrl_delta,none"] == 0.0 and r["mos_ovrl,none"] == r["mos_ovrl_original,none"]
    assert r["speaker_similarity,none"] == pytest.approx(1.0, abs=1e-5)
    ex = res["scoring"]["resynth_wer"]["excluded"]
    assert ex["speaker_no_signal"] == 0
    assert set(ex["mos_no_value"]) == {
        f"mos_{k}{s},none"
        for k in ("ovrl", "sig", "bak", "p808")
        for s in ("", "_original", "_delta")
    }
    assert not any(ex["mos_no_value"].values())  # DNSMOS gives every clip a value
    assert set(res["judges"]["resynth_wer"]) == {"asr", "mos", "speaker"}
    # The second task reuses every transcript from the cache (same judge, same audio).
    assert (
        res["n-samples"]["resynth_cer"]["effective"] == res["n-samples"]["resynth_wer"]["effective"]
    )


def test_a_model_that_destroys_speech_is_much_worse(asr_root, tmp_path):
    res = _run(asr_root, tmp_path, Echo(noise="1"))
    r = res["results"]["resynth_wer"]
    assert r["wer,none"] > r["wer_original,none"] + 0.5
    assert r["wer_delta,none"] == pytest.approx(r["wer,none"] - r["wer_original,none"])
    # Noise in place of speech: lower MOS than the input (measured on the tiny build: OVRL
    # 1.11 vs 3.00), and no voice at all for the speaker judge (resemblyzer's VAD trims the
    # whole output): every utterance is excluded and counted, no similarity is made up.
    assert r["mos_ovrl_delta,none"] < -1.0
    assert res["scoring"]["resynth_wer"]["excluded"]["speaker_no_signal"] == 8
    assert "speaker_similarity,none" not in r


def test_samples_refer_to_the_kept_output_audio(asr_root, tmp_path):
    """With --log_samples each row names its resynthesised audio by content hash, and the file
    is there beside the samples, holding exactly what the model returned (for listening tests)."""
    import json

    import soundfile as sf

    opts = RunOptions(
        tasks="resynth_wer",
        data_dir=str(asr_root),
        use_cache=str(tmp_path / "c.sqlite"),
        output_path=str(tmp_path / "out"),
        log_samples=True,
    )
    evaluate("echo", {}, opts, model=Echo(noise="1"))
    folder = tmp_path / "out" / "echo"
    (samples,) = folder.glob("samples_resynth_wer_*.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert rows and all(r["output_audio"].startswith("audio/") for r in rows)
    for r in rows:
        x, sr = sf.read(str(folder / r["output_audio"]), dtype="float32")
        a = Audio(x, sr)
        assert r["output_audio"] == f"audio/{a.content_hash()}.wav"  # bit-exact samples
    assert len(list((folder / "audio").glob("*.wav"))) == len({r["output_audio"] for r in rows})
