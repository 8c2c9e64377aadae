"""``hf-audio-chat`` on a tiny randomly initialised SeamlessM4T v2 speech-to-text model built
and saved here, with a ``SeamlessM4TProcessor`` around its fbank feature extractor and a
``SeamlessM4TTokenizer`` made from a BPE vocabulary trained here on three sentences. Nothing
is downloaded. Checks: features and masks per clip, the decoder prefix of the target
language, the audio reaching the model, batch independence, greedy answers equal to the
model's own ``generate(tgt_lang=...)``, and log-probs equal to a token-by-token loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch
from hf_audio_chat_tiny import CLIPS, SR, noise, tone, widen_weights

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError, PluginError
from speechlm_eval.model import LoglikelihoodRequest, RespondRequest, RespondResult

LANGS = ["__eng__", "__fra__"]
CORPUS = ["the cat sat on the mat", "The answer is A. The answer is B.", "le chat est sur le tapis"]


def build_tokenizer():
    """A ``SeamlessM4TTokenizer`` (Metaspace BPE, fairseq special ids 0-3, language codes)
    from a vocabulary and merges trained here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import SeamlessM4TTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=120, special_tokens=["<pad>", "<unk>", "<s>", "</s>", *LANGS]
    )
    bpe.train_from_iterator(CORPUS, trainer)
    trained = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    return SeamlessM4TTokenizer(
        vocab=trained["vocab"],
        merges=merges,
        additional_special_tokens=LANGS,
        src_lang="eng",
        tgt_lang="eng",
    )


def build_seamless(path: Path) -> Path:
    """A ~25k-parameter SeamlessM4T v2 speech-to-text model and its processor, in ``path``."""
    from transformers import (
        SeamlessM4TFeatureExtractor,
        SeamlessM4TProcessor,
        SeamlessM4Tv2Config,
        SeamlessM4Tv2ForSpeechToText,
    )

    tok = build_tokenizer()
    config = SeamlessM4Tv2Config(
        vocab_size=len(tok),
        hidden_size=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        speech_encoder_layers=1,
        speech_encoder_attention_heads=2,
        speech_encoder_intermediate_size=32,
        conv_depthwise_kernel_size=3,
        max_position_embeddings=64,
        t2u_vocab_size=20,
        char_vocab_size=40,
        unit_hifi_gan_vocab_size=20,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        decoder_start_token_id=3,
    )
    model = SeamlessM4Tv2ForSpeechToText(config)
    widen_weights(model)
    model.generation_config.text_decoder_lang_to_code_id = {
        lang.strip("_"): tok.convert_tokens_to_ids(lang) for lang in LANGS
    }
    model.save_pretrained(path)
    SeamlessM4TProcessor(
        feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=tok
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def seamless_dir(tmp_path_factory) -> Path:
    return build_seamless(tmp_path_factory.mktemp("seamless"))


def make(seamless_dir: Path, **kw):
    from reference_models.hf_audio_chat import HFAudioChat

    args = {"model": str(seamless_dir), "max_new_tokens": "5"}
    args.update(kw)
    return HFAudioChat(**args)


@pytest.fixture(scope="module")
def chat(seamless_dir):
    return make(seamless_dir)


def lang_id(chat, lang: str) -> int:
    return chat.tokenizer.convert_tokens_to_ids(f"__{lang}__")


# --- shapes, masks, prefix ------------------------------------------------------------------


def test_features_and_masks_per_clip(chat) -> None:
    fam, proc = chat.family, chat.processor
    assert fam.name == "seamless-m4t-v2" and fam.encoder_decoder
    audios = [CLIPS["noise1s"].samples, CLIPS["noise03"].samples]
    batch = fam.encode(proc, [None, None], audios)
    # By hand: 1 + (16000 - 400) // 160 = 98 fbank frames -> 49 stacked pairs of 2 x 80;
    # 4800 samples -> 28 -> 14.
    assert tuple(batch["input_features"].shape) == (2, 49, 160)
    assert batch["attention_mask"].sum(-1).tolist() == [49, 14]
    assert fam.feature_frames(proc, 16000) == 49 and fam.feature_frames(proc, 4800) == 14
    assert fam.decoder_prefix(chat.model) == [3, lang_id(chat, "eng")]


def test_respond_and_loglikelihood_shapes(chat) -> None:
    out = chat.respond(
        [RespondRequest(audio=CLIPS["tone07"]), RespondRequest(audio=CLIPS["noise03"])]
    )
    assert len(out) == 2 and all(isinstance(r, RespondResult) for r in out)
    assert all(isinstance(r.text, str) and r.audio is None for r in out)
    (ll,) = chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="the cat")])
    n = len(chat.tokenizer("the cat", add_special_tokens=False)["input_ids"])
    assert ll.num_tokens == n and ll.logprob < 0
    assert chat.sample_rate == SR and chat.eos_token_ids == [3]


def test_target_language_changes_the_prefix_and_scores(seamless_dir, chat) -> None:
    fra = make(seamless_dir, tgt_lang="fra")
    assert fra.family.decoder_prefix(fra.model) == [3, lang_id(chat, "fra")]
    req = [LoglikelihoodRequest(audio=CLIPS["noise1s"], text="le chat")]
    assert fra.loglikelihood(req)[0].logprob != chat.loglikelihood(req)[0].logprob
    assert fra.identity()["settings"]["tgt_lang"] == "fra"
    assert chat.identity()["settings"]["tgt_lang"] == "eng"


# --- the audio reaches the model ------------------------------------------------------------


def test_answer_depends_on_the_audio(chat) -> None:
    same = [noise(1.0, 1), noise(1.0, 2), tone(1.0, 440.0), tone(1.0, 1500.0)]
    reqs = [LoglikelihoodRequest(audio=c, text="The answer is A.") for c in same]
    lls = [r.logprob for r in chat.loglikelihood(reqs + reqs[:1])]
    assert lls[0] == lls[4]
    assert min(abs(a - b) for i, a in enumerate(lls[:4]) for b in lls[i + 1 : 4]) > 1e-3
    answers = {r.text for r in chat.respond([RespondRequest(audio=c) for c in same])}
    assert len(answers) > 1


def test_a_processor_that_drops_the_audio_is_caught(chat, monkeypatch) -> None:
    fam = chat.family

    def deaf(processor, prompts, audios):  # no features at all
        return {"attention_mask": torch.ones(len(audios), 1, dtype=torch.long)}

    monkeypatch.setattr(fam, "processor_call", deaf)
    with pytest.raises(PluginError, match="audio was dropped"):
        chat.respond([RespondRequest(audio=CLIPS["noise1s"])])

    def silent(processor, prompts, audios):  # features of other (empty) audio
        return processor(
            audio=[np.zeros(800, np.float32) for _ in audios], sampling_rate=SR, return_tensors="pt"
        )

    monkeypatch.setattr(fam, "processor_call", silent)
    with pytest.raises(PluginError, match="feature frames"):
        chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["noise1s"], text="A")])


# --- determinism, batch independence, references --------------------------------------------


def test_greedy_batched_equals_one_by_one(chat) -> None:
    reqs = [RespondRequest(audio=c) for c in CLIPS.values()]
    reqs.append(RespondRequest(audio=noise(1.0, 9)))  # same length as noise1s: shares its batch
    batched = [r.text for r in chat.respond(reqs)]
    single = [chat.respond([r])[0].text for r in reqs]
    assert batched == single
    assert [r.text for r in chat.respond(reqs)] == batched


def test_loglikelihood_batched_equals_one_by_one(chat) -> None:
    reqs = [
        LoglikelihoodRequest(audio=CLIPS["noise1s"], text="A"),
        LoglikelihoodRequest(audio=CLIPS["noise03"], text="The answer is B."),
        LoglikelihoodRequest(audio=CLIPS["tone12"], text="the cat sat on the mat"),
        LoglikelihoodRequest(audio=noise(1.0, 9), text="The answer is B."),
    ]
    batched = chat.loglikelihood(reqs)
    for req, b in zip(reqs, batched, strict=True):
        (one,) = chat.loglikelihood([req])
        assert one.num_tokens == b.num_tokens
        assert one.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_sampling_is_seeded_per_request(seamless_dir) -> None:
    reqs = [RespondRequest(audio=c, key=k) for k, c in CLIPS.items()]
    m1 = make(seamless_dir, temperature="1.0", seed="7")
    first = [r.text for r in m1.respond(reqs)]
    assert [r.text for r in make(seamless_dir, temperature="1.0", seed="7").respond(reqs)] == first
    assert [m1.respond([r])[0].text for r in reversed(reqs)] == first[::-1]


def test_greedy_answer_equals_the_models_own_generate(chat, seamless_dir) -> None:
    """The reference: the model's own ``generate(tgt_lang=)`` with the checkpoint's language
    map, greedy, on features from the processor called here."""
    from transformers import AutoProcessor, SeamlessM4Tv2ForSpeechToText

    proc = AutoProcessor.from_pretrained(str(seamless_dir))
    model = SeamlessM4Tv2ForSpeechToText.from_pretrained(str(seamless_dir)).eval()
    with open(seamless_dir / "generation_config.json", encoding="utf-8") as f:
        codes = json.load(f)["text_decoder_lang_to_code_id"]
    model.generation_config.text_decoder_lang_to_code_id = codes
    for clip in CLIPS.values():
        inputs = proc(audio=[clip.samples], sampling_rate=SR, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, tgt_lang="eng", max_new_tokens=5, do_sample=False)
        assert out[0, :2].tolist() == [3, codes["eng"]]
        want = proc.tokenizer.decode(out[0, 2:], skip_special_tokens=True).strip()
        assert chat.respond([RespondRequest(audio=clip)])[0].text == want


def brute_force_loglik(seamless_dir: Path, audio: Audio, answer: str) -> tuple[float, int]:
    """Σ log p(answer token k | audio, </s> __eng__ answer[:k]), one forward per token, the
    features from the feature extractor called here."""
    from transformers import (
        SeamlessM4TFeatureExtractor,
        SeamlessM4TTokenizer,
        SeamlessM4Tv2ForSpeechToText,
    )

    fe = SeamlessM4TFeatureExtractor.from_pretrained(str(seamless_dir))
    tok = SeamlessM4TTokenizer.from_pretrained(str(seamless_dir))
    model = SeamlessM4Tv2ForSpeechToText.from_pretrained(str(seamless_dir)).eval()
    feats = fe(audio.samples, sampling_rate=SR, return_tensors="pt")
    prefix = [tok.eos_token_id, tok.convert_tokens_to_ids("__eng__")]
    answer_ids = tok(answer, add_special_tokens=False)["input_ids"]
    total = 0.0
    with torch.no_grad():
        for k, target in enumerate(answer_ids):
            dec = torch.tensor([prefix + answer_ids[:k]])
            logits = model(**feats, decoder_input_ids=dec).logits
            total += torch.log_softmax(logits[0, -1].double(), -1)[target].item()
    return total, len(answer_ids)


def test_loglikelihood_equals_token_by_token_loop(chat, seamless_dir) -> None:
    cases = [(CLIPS["noise1s"], "The answer is A."), (CLIPS["noise03"], "B")]
    got = chat.loglikelihood([LoglikelihoodRequest(audio=a, text=t) for a, t in cases])
    for (audio, text), res in zip(cases, got, strict=True):
        want, n = brute_force_loglik(seamless_dir, audio, text)
        assert res.num_tokens == n
        assert res.logprob == pytest.approx(want, abs=1e-4)


# --- dtype, identity, errors ----------------------------------------------------------------


def test_bfloat16_runs(seamless_dir) -> None:
    m = make(seamless_dir, dtype="bf16")
    assert m.model.dtype == torch.bfloat16
    (r,) = m.respond([RespondRequest(audio=CLIPS["tone07"])])
    assert isinstance(r.text, str)
    (ll,) = m.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="A")])
    assert np.isfinite(ll.logprob)


def test_identity(seamless_dir, chat) -> None:
    ident = chat.identity()
    assert ident["family"] == "seamless-m4t-v2"
    assert make(seamless_dir, device="cpu").identity() == ident
    assert "tokenizer.json" in ident["processor"]["files"]
    assert "generation_config_hash" in ident["model"]  # the language map lives there
    assert make(seamless_dir, max_new_tokens="7").identity() != ident


def test_errors_are_one_line(seamless_dir, chat) -> None:
    from reference_models.audio_chat_families import FAMILIES

    cases = [
        ({"instruction": "Translate."}, "'instruction': seamless-m4t-v2 translates speech"),
        ({"system": "Be brief."}, "'system': seamless-m4t-v2 translates speech"),
        ({"tgt_lang": "deu"}, "'deu' is not a language of this model; expected one of eng, fra"),
    ]
    for kw, msg in cases:
        with pytest.raises(ConfigError) as e:
            make(seamless_dir, **kw)
        assert msg in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="tgt_lang is for seamless-m4t-v2"):
        FAMILIES["qwen2-audio"].check_options({"tgt_lang": "eng"})
    with pytest.raises(DataError, match="q1: seamless-m4t-v2 translates speech and takes no text"):
        chat.respond([RespondRequest(audio=CLIPS["tone07"], text="What?", key="q1")])
    with pytest.raises(DataError, match="q2: seamless-m4t-v2 needs audio"):
        chat.respond([RespondRequest(text="What?", key="q2")])
    with pytest.raises(DataError, match="q3: seamless-m4t-v2 needs audio"):
        chat.loglikelihood([LoglikelihoodRequest(text="A", key="q3")])
    need = chat.family.min_samples(chat.processor)
    assert need == 560
    (ok,) = chat.loglikelihood(
        [LoglikelihoodRequest(audio=Audio(noise(1, 4).samples[:need], SR), text="A")]
    )
    assert np.isfinite(ok.logprob)
    with pytest.raises(DataError, match="needs at least 560"):
        chat.respond([RespondRequest(audio=Audio(np.zeros(need - 1, np.float32), SR), key="q4")])


def test_why_clips_of_different_lengths_are_not_batched(chat) -> None:
    """transformers' length adaptor reads padded encoder states: a 1-s clip (49 frames, not
    a multiple of the stride 8) scores differently beside a 1.2-s clip than alone."""
    proc, model = chat.processor, chat.model
    short, long = CLIPS["noise1s"].samples, CLIPS["tone12"].samples
    dec = torch.tensor([[3, lang_id(chat, "eng"), 10, 11]])
    with torch.no_grad():
        alone = model(
            **proc(audio=[short], sampling_rate=SR, return_tensors="pt"), decoder_input_ids=dec
        )
        both = model(
            **proc(audio=[short, long], sampling_rate=SR, return_tensors="pt"),
            decoder_input_ids=dec.repeat(2, 1),
        )
    assert not torch.allclose(alone.logits[0], both.logits[0], atol=1e-3)
    assert chat.family.batch_by_length
    assert chat._groups([short, long, short.copy()]) == [[0, 2], [1]]
