"""Judge registry, option handling, the transcript cache, and the transformers ASR judge.

The transformers models are tiny and randomly initialised, built here and saved to a tmp
folder: these tests check loading, batching and identities, not recognition quality.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from speechlm_eval.audio import Audio
from speechlm_eval.cache import ResultCache
from speechlm_eval.errors import ConfigError, DataError, PluginError
from speechlm_eval.execute import ExecStats
from speechlm_eval.judges import (
    ASRJudge,
    judge_key,
    judge_names,
    load_judge,
    path_sha256,
    transcribe_cached,
)

SR = 16000


def noise(n: int, seed: int, sr: int = SR) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio((0.1 * rng.standard_normal(n)).astype(np.float32), sr)


class FakeASR(ASRJudge):
    """Transcript = the number of samples it received; records every batch."""

    OPTIONS: ClassVar[dict[str, tuple[type, Any]]] = {"batch_size": (int, 2), "tag": (str, "v1")}

    def __init__(self, **options: Any) -> None:
        super().__init__("fake", **options)
        self.batches: list[list[int]] = []

    die_on_size: int | None = None  # a crash (KeyboardInterrupt) on a batch with this size

    def _transcribe_batch(self, samples: list[np.ndarray]) -> list[str]:
        if any(s.size == self.die_on_size for s in samples):
            raise KeyboardInterrupt
        self.batches.append([s.size for s in samples])
        return [f"n{s.size}" for s in samples]

    def identity(self) -> dict[str, Any]:
        return {"judge": "fake", "tag": self.options["tag"], "input": self._input_identity()}


# --- registry and options ---------------------------------------------------------------------


def test_judges_are_registered():
    assert {"faster-whisper", "openai-whisper", "transformers-asr"} <= set(judge_names())
    with pytest.raises(PluginError, match="unknown judge 'nope'; registered: .*faster-whisper"):
        load_judge("nope")


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['beam'\]"):
        load_judge("faster-whisper", beam=3)
    with pytest.raises(ConfigError, match="'beam_size' must be int, got 'five'"):
        load_judge("faster-whisper", beam_size="five")
    with pytest.raises(ConfigError, match="'beam_size' must be >= 1"):
        load_judge("faster-whisper", beam_size=0)
    with pytest.raises(
        ConfigError, match="must be a CTranslate2 Whisper folder.*nothing is downloaded"
    ):
        load_judge("faster-whisper", model="tiny.en")
    with pytest.raises(ConfigError, match="'model' .* is required"):
        load_judge("transformers-asr")
    with pytest.raises(ConfigError, match="not a transformers model folder"):
        load_judge("transformers-asr", model=str(tmp_path))
    with pytest.raises(ConfigError, match="'model' is required"):
        load_judge("openai-whisper")


def test_transcribe_batches_longest_first_and_keeps_order():
    j = FakeASR(batch_size=2)
    audios = [noise(n, i) for i, n in enumerate((100, 400, 300, 200, 50))]
    assert j.transcribe(audios) == ["n100", "n400", "n300", "n200", "n50"]
    assert j.batches == [[400, 300], [200, 100], [50]]


def test_transcribe_resamples_explicitly_and_counts_it():
    j = FakeASR()
    stats = ExecStats()
    a = noise(8000, 0, sr=8000)
    assert j.transcribe([a, noise(100, 1)], stats) == ["n16000", "n100"]
    assert stats.resampled == {"8000->16000": 1}
    assert stats.model_calls == 1 and stats.batch_sizes == [2]
    with pytest.raises(TypeError, match="item 0 is ndarray"):
        j.transcribe([a.samples])


def test_transcribe_cached_hits_dedupes_and_is_keyed_by_identity(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    j = FakeASR(batch_size=2)
    a, b, c = noise(100, 0), noise(200, 1), noise(300, 2)
    same_as_a = Audio(a.samples.copy(), SR)  # same content, another object
    stats = ExecStats()
    assert transcribe_cached(j, [a, b, same_as_a], cache, stats) == ["n100", "n200", "n100"]
    assert (stats.computed, stats.cache_hits) == (2, 0)  # the duplicate is transcribed once
    stats = ExecStats()
    assert transcribe_cached(j, [c, b, a], cache, stats) == ["n300", "n200", "n100"]
    assert (stats.computed, stats.cache_hits) == (1, 2)
    assert j.batches[-1] == [300]
    # Another identity (e.g. other decoding options) never reuses these transcripts.
    other = FakeASR(tag="v2")
    assert judge_key(other) != judge_key(j)
    stats = ExecStats()
    transcribe_cached(other, [a, b], cache, stats)
    assert (stats.computed, stats.cache_hits) == (2, 0)
    # Resampling is recorded for cached audio too (same record for fresh and resumed runs).
    slow = Audio(a.samples, 8000)
    for _ in range(2):
        stats = ExecStats()
        transcribe_cached(j, [slow, b], cache, stats)
        assert stats.resampled == {"8000->16000": 1}
    assert stats.cache_hits == 2 and stats.model_calls == 0
    # A new process (new cache handle) finds them on disk.
    cache.close()
    again = FakeASR()
    stats = ExecStats()
    assert transcribe_cached(again, [b], ResultCache(tmp_path / "c.sqlite"), stats) == ["n200"]
    assert again.batches == [] and stats.cache_hits == 1


def test_transcribe_cached_commits_in_chunks(tmp_path):
    """A run killed mid-way keeps the chunks it finished."""

    cache = ResultCache(tmp_path / "c.sqlite")
    audios = [noise(n, i) for i, n in enumerate((400, 300, 200, 100, 50))]
    # The same judge class (a subclass would be other code, with a cache namespace of its own)
    dies = FakeASR(batch_size=2)
    dies.die_on_size = 50
    with pytest.raises(KeyboardInterrupt):
        transcribe_cached(dies, audios, cache)
    stats = ExecStats()
    j = FakeASR(batch_size=2)
    transcribe_cached(j, audios, cache, stats)
    assert stats.cache_hits == 4 and j.batches == [[50]]


def test_path_sha256_file_and_folder(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.bin").write_bytes(b"abc")
    (tmp_path / "m" / "sub").mkdir()
    (tmp_path / "m" / "sub" / "b.txt").write_bytes(b"xyz")
    assert path_sha256(tmp_path / "m" / "a.bin") == hashlib.sha256(b"abc").hexdigest()
    want = hashlib.sha256()
    for rel, data in (("a.bin", b"abc"), ("sub/b.txt", b"xyz")):
        want.update(f"{rel}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    assert path_sha256(tmp_path / "m") == want.hexdigest()


# --- transformers-asr on tiny random models ---------------------------------------------------


@pytest.fixture(scope="module")
def ctc_dir(tmp_path_factory) -> Path:
    import torch
    import transformers as T

    d = tmp_path_factory.mktemp("ctc")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocab.update({c: i + 5 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")})
    (d / "vocab.json").write_text(json.dumps(vocab))
    tok = T.Wav2Vec2CTCTokenizer(str(d / "vocab.json"), word_delimiter_token="|")
    fe = T.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SR, do_normalize=True, return_attention_mask=True
    )
    T.Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(d)
    cfg = T.Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    T.Wav2Vec2ForCTC(cfg).save_pretrained(d)
    return d


def test_transformers_ctc_batched_equals_single_and_the_pipeline(ctc_dir):
    audios = [noise(n, i) for i, n in enumerate((8000, 16000, 4000, 12000))]
    batched = load_judge("transformers-asr", model=str(ctc_dir), batch_size=3)
    single = load_judge("transformers-asr", model=str(ctc_dir), batch_size=1)
    texts = batched.transcribe(audios)
    assert len(texts) == 4 and all(texts)
    assert texts == single.transcribe(audios)  # padding never changes a transcript
    # Reference: transformers' own pipeline on one utterance (no padding involved).
    ref = [single.pipe(a.samples)["text"] for a in audios]
    assert texts == [" ".join(t.split()) for t in ref]


def test_transformers_judge_is_loaded_once_and_identified(ctc_dir, monkeypatch):
    a = load_judge("transformers-asr", model=str(ctc_dir), batch_size=3)
    monkeypatch.chdir(ctc_dir.parent)
    b = load_judge("transformers-asr", model=ctc_dir.name, batch_size="3", beam_size=5)
    assert a is b  # same resolved options (relative path, string numbers, defaults)
    c = load_judge("transformers-asr", model=str(ctc_dir), batch_size=2)
    assert c is not a
    ident = a.identity()
    assert ident["judge"] == "transformers-asr" and ident["kind"] == "asr"
    assert ident["package"] == "transformers" and ident["version"]
    m = ident["model"]
    assert m["architecture"] == "Wav2Vec2ForCTC" and m["type"] == "ctc"
    assert m["weights_hash"] == path_sha256(ctc_dir / "model.safetensors")
    assert m["config_hash"] == path_sha256(ctc_dir / "config.json")
    assert ident["compute_type"] == "float32"
    assert judge_key(a) == judge_key(c)  # batch size is not part of the identity
    json.dumps(ident)


def test_transformers_whisper_seq2seq(tmp_path):
    import torch
    import transformers as T
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    d = tmp_path / "whisper"
    d.mkdir()
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>"]
    specials += ["<|translate|>", "<|startoflm|>", "<|startofprev|>", "<|notimestamps|>"]
    for s in specials:
        vocab[s] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    eot = "<|endoftext|>"
    tok = T.WhisperTokenizer(
        str(d / "vocab.json"), str(d / "merges.txt"), unk_token=eot, bos_token=eot, eos_token=eot
    )
    tok.pad_token = None  # as some checkpoints ship it; the judge pads with EOS then
    T.WhisperProcessor(T.WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(d)
    cfg = T.WhisperConfig(
        vocab_size=len(vocab),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=1500,
        max_target_positions=16,
        pad_token_id=vocab[eot],
        bos_token_id=vocab[eot],
        eos_token_id=vocab[eot],
        decoder_start_token_id=vocab["<|startoftranscript|>"],
    )
    torch.manual_seed(0)
    model = T.WhisperForConditionalGeneration(cfg)
    model.generation_config.no_timestamps_token_id = vocab["<|notimestamps|>"]
    model.generation_config.is_multilingual = False
    model.generation_config.max_length = 16  # = max_target_positions, as real checkpoints have
    model.save_pretrained(d)

    audios = [noise(n, i) for i, n in enumerate((8000, 4000))]
    batched = load_judge("transformers-asr", model=str(d), batch_size=2, beam_size=2)
    single = load_judge("transformers-asr", model=str(d), batch_size=1, beam_size=2)
    texts = batched.transcribe(audios)
    assert len(texts) == 2 and texts == single.transcribe(audios)
    ident = batched.identity()
    assert ident["model"]["type"] == "seq2seq_whisper"
    assert ident["decoding"] == {
        "method": "beam search",
        "beam_size": 2,
        "do_sample": False,
        "language": "en",
        "long_form": "sequential 30 s windows with timestamps above 30 s",
    }


def test_wer_scorer_score_audio_uses_the_judge_through_the_cache(tmp_path, monkeypatch):
    from speechlm_eval.scorers.wer import WERScorer

    judge = FakeASR(batch_size=4)  # the task's bound 'asr' role
    scorer = WERScorer({"normalizer": "none", "bootstrap_resamples": 0})
    refs = {"a": "n100", "b": "n200 extra"}
    resynth = {"a": noise(100, 0), "b": noise(300, 1)}  # b comes back longer: a substitution
    original = {"a": noise(100, 2), "b": noise(200, 3)}
    cache = ResultCache(tmp_path / "c.sqlite")
    stats = ExecStats()
    rep = scorer.score_audio(refs, resynth, cache, judge, original=original, stats=stats)
    assert rep.metrics["wer"].value == pytest.approx(2 / 3)  # b: 1 substitution + 1 deletion
    assert rep.metrics["wer_original"].value == pytest.approx(1 / 3)  # b: 1 deletion
    assert rep.metrics["wer_delta"].value == pytest.approx(1 / 3)
    assert rep.judge == judge.identity()
    assert stats.computed == 4 and stats.cache_hits == 0
    again = ExecStats()
    rep2 = scorer.score_audio(refs, resynth, cache, judge, original=original, stats=again)
    assert again.cache_hits == 4 and again.computed == 0
    assert rep2.metrics["wer"].value == rep.metrics["wer"].value
    with pytest.raises(DataError, match="no original audio for 1 utterance"):
        scorer.score_audio(refs, resynth, cache, judge, original={"a": original["a"]})
