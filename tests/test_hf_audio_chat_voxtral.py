"""``hf-audio-chat`` on a tiny randomly initialised Voxtral built and saved here, with a
``VoxtralProcessor`` around a byte-level ``tekken.json`` written here (mistral-common's
tokenizer file) and a 128-bin Whisper feature extractor. Nothing is downloaded. Checks: the
prompt layout and its 375 audio tokens per 30-s chunk, the audio reaching the model,
determinism, batch independence, and agreement with a token-by-token loop whose prompt is
built by mistral-common directly (not through transformers' processor)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("mistral_common")
import torch
from hf_audio_chat_tiny import CLIPS, INSTRUCTION, SR, noise, tone, widen_weights, write_tekken

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, PluginError
from speechlm_eval.model import LoglikelihoodRequest, RespondRequest, RespondResult

AUDIO_ID, BEGIN_AUDIO_ID = 24, 25


def build_voxtral(path: Path) -> Path:
    """A ~30k-parameter Voxtral and its processor, saved in ``path``."""
    from transformers import (
        MistralCommonBackend,
        VoxtralConfig,
        VoxtralForConditionalGeneration,
        VoxtralProcessor,
        WhisperFeatureExtractor,
    )

    vocab = write_tekken(path)
    tok = MistralCommonBackend.from_pretrained(str(path), local_files_only=True)
    VoxtralProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tok)
    # The projector stacks intermediate_size // hidden_size = 4 encoder frames: the encoder's
    # 1500 frames per 30 s become 375 tokens, as many as mistral-common writes [AUDIO].
    config = VoxtralConfig(
        audio_config=dict(
            hidden_size=16,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_mel_bins=128,
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=vocab,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
        ),
        audio_token_id=AUDIO_ID,
    )
    model = VoxtralForConditionalGeneration(config)
    widen_weights(model)
    model.save_pretrained(path)
    VoxtralProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tok
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vox_dir(tmp_path_factory) -> Path:
    return build_voxtral(tmp_path_factory.mktemp("voxtral"))


def make(vox_dir: Path, **kw):
    from reference_models.hf_audio_chat import HFAudioChat

    args = {"model": str(vox_dir), "max_new_tokens": "5", "instruction": INSTRUCTION}
    args.update(kw)
    return HFAudioChat(**args)


@pytest.fixture(scope="module")
def chat(vox_dir):
    return make(vox_dir)


# --- shapes, masks, prompt ------------------------------------------------------------------


def test_prompt_has_375_audio_tokens_per_30_s_chunk(chat) -> None:
    fam, proc = chat.family, chat.processor
    assert fam.name == "voxtral"
    audios = [CLIPS["noise1s"].samples, None, noise(31.0, 3).samples]
    prompts = [fam.render(proc, None, INSTRUCTION, a is not None) for a in audios]
    batch = fam.encode(proc, prompts, audios)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 3
    # 30 s x 12.5 Hz = 375 tokens per chunk; 1 s -> one chunk, 31 s -> two, text -> none.
    assert fam.tokens_per_chunk(proc) == 375 and fam.chunk_samples(proc) == 30 * SR
    assert (ids == AUDIO_ID).sum(-1).tolist() == [375, 0, 750]
    assert (ids == BEGIN_AUDIO_ID).sum(-1).tolist() == [1, 0, 1]
    assert tuple(batch["input_features"].shape) == (3, 128, 3000)  # one row per chunk
    # Left padding: the longest row is full, the others end with their last token.
    lengths = mask.sum(-1).tolist()
    assert lengths[2] == ids.shape[1] and all(mask[i, -1] == 1 for i in range(3))
    assert mask[0, : ids.shape[1] - lengths[0]].sum() == 0
    # <s>[INST][BEGIN_AUDIO][AUDIO]x375 text[/INST], the text as its UTF-8 bytes.
    row = ids[0, mask[0].bool()].tolist()
    text = list(INSTRUCTION.encode())
    assert row == [1, 3, BEGIN_AUDIO_ID] + [AUDIO_ID] * 375 + [32 + b for b in text] + [4]
    text_row = ids[1, mask[1].bool()].tolist()
    assert text_row == [1, 3] + [32 + b for b in text] + [4]


def test_respond_and_loglikelihood_shapes(chat) -> None:
    out = chat.respond([RespondRequest(audio=CLIPS["tone07"]), RespondRequest(text="Say A.")])
    assert len(out) == 2 and all(isinstance(r, RespondResult) for r in out)
    assert all(isinstance(r.text, str) and r.audio is None for r in out)
    (ll,) = chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="Answer A")])
    assert ll.num_tokens == len(b"Answer A") and ll.logprob < 0  # byte tokens
    assert chat.capabilities == frozenset({"respond", "loglikelihood"})
    assert chat.sample_rate == SR and chat.dtype == "float32"
    assert 2 in chat.eos_token_ids  # </s> ends an answer


# --- the audio reaches the model ------------------------------------------------------------


def test_answer_depends_on_the_audio(chat) -> None:
    # Every clip up to 30 s gives the same prompt tokens: only the features differ.
    same = [noise(1.0, 1), noise(1.0, 2), tone(1.0, 440.0), tone(1.0, 1500.0)]
    reqs = [LoglikelihoodRequest(audio=c, text="The answer is A.") for c in same]
    lls = [r.logprob for r in chat.loglikelihood(reqs + reqs[:1])]
    assert lls[0] == lls[4]
    assert min(abs(a - b) for i, a in enumerate(lls[:4]) for b in lls[i + 1 : 4]) > 1e-3
    answers = {r.text for r in chat.respond([RespondRequest(audio=c) for c in same])}
    assert len(answers) > 1


def test_audio_past_30_s_is_heard_not_cut(chat, caplog) -> None:
    long = noise(31.0, 5)
    with caplog.at_level("WARNING", logger="reference_models.hf_audio_chat"):
        (ll,) = chat.loglikelihood([LoglikelihoodRequest(audio=long, text="A", key="long")])
    assert "hears only" not in caplog.text
    # The last second changes the result: the second chunk reached the model.
    quiet_end = long.samples.copy()
    quiet_end[30 * SR :] = 0.0
    (ref,) = chat.loglikelihood([LoglikelihoodRequest(audio=Audio(quiet_end, SR), text="A")])
    assert abs(ll.logprob - ref.logprob) > 1e-4


def test_a_processor_that_drops_the_audio_is_caught(chat, monkeypatch) -> None:
    from reference_models.audio_chat_families import VoxtralFamily

    fam = chat.family

    def deaf(processor, prompts, audios):  # the chats with their audio parts removed
        text_only = [
            [{**m, "content": [p for p in m["content"] if p.get("type") != "audio"]} for m in c]
            for c in prompts
        ]
        return processor.apply_chat_template(
            text_only, tokenize=True, return_dict=True, return_tensors="pt"
        )

    monkeypatch.setattr(fam, "processor_call", deaf)
    with pytest.raises(PluginError, match="audio was dropped"):
        chat.respond([RespondRequest(audio=CLIPS["noise1s"])])
    with pytest.raises(PluginError, match="audio was dropped"):
        chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["noise1s"], text="A")])

    def unexpanded(processor, prompts, audios):  # features, but the [AUDIO] tokens lost
        batch = VoxtralFamily.processor_call(fam, processor, prompts, audios)
        ids = batch["input_ids"]
        batch["input_ids"] = torch.where(ids == AUDIO_ID, torch.full_like(ids, 11), ids)
        return batch

    monkeypatch.setattr(fam, "processor_call", unexpanded)
    with pytest.raises(PluginError, match="not expanded"):
        chat.respond([RespondRequest(audio=CLIPS["noise1s"])])


# --- determinism and batch independence -----------------------------------------------------


def test_greedy_batched_equals_one_by_one(chat) -> None:
    reqs = [RespondRequest(audio=c) for c in CLIPS.values()]
    reqs += [RespondRequest(text="Say A."), RespondRequest(text="Is it B?", audio=CLIPS["tone07"])]
    batched = [r.text for r in chat.respond(reqs)]
    single = [chat.respond([r])[0].text for r in reqs]
    assert batched == single
    assert [r.text for r in chat.respond(reqs)] == batched  # and again


def test_sampling_is_seeded_per_request(vox_dir) -> None:
    reqs = [RespondRequest(audio=c, key=k) for k, c in CLIPS.items()]
    m1 = make(vox_dir, temperature="1.0", seed="7")
    first = [r.text for r in m1.respond(reqs)]
    assert [r.text for r in make(vox_dir, temperature="1.0", seed="7").respond(reqs)] == first
    assert [m1.respond([r])[0].text for r in reversed(reqs)] == first[::-1]


def test_loglikelihood_batched_equals_one_by_one(chat) -> None:
    reqs = [
        LoglikelihoodRequest(audio=CLIPS["noise1s"], text="A"),
        LoglikelihoodRequest(audio=CLIPS["noise03"], text="The answer is B."),
        LoglikelihoodRequest(text="the cat sat on the mat"),
        LoglikelihoodRequest(audio=CLIPS["tone12"], text="B"),
    ]
    batched = chat.loglikelihood(reqs)
    for req, b in zip(reqs, batched, strict=True):
        (one,) = chat.loglikelihood([req])
        assert one.num_tokens == b.num_tokens
        assert one.logprob == pytest.approx(b.logprob, abs=1e-4)


def brute_force_loglik(vox_dir: Path, audio: Audio | None, answer: str) -> tuple[float, int]:
    """Σ log p(answer token k | prompt, answer[:k]), one full forward per token; the prompt
    and the padded audio come from mistral-common's own request encoding and the features
    from the Whisper feature extractor called here, not from ``VoxtralProcessor``."""
    from mistral_common.protocol.instruct.chunk import AudioChunk, TextChunk
    from mistral_common.protocol.instruct.messages import UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.audio import Audio as MistralAudio
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    from transformers import VoxtralForConditionalGeneration, WhisperFeatureExtractor

    mistral = MistralTokenizer.from_file(str(vox_dir / "tekken.json"))
    content: list = [TextChunk(text=INSTRUCTION)]
    if audio is not None:
        clip = MistralAudio(audio_array=audio.samples.copy(), sampling_rate=SR, format="wav")
        content.insert(0, AudioChunk.from_audio(clip))
    encoded = mistral.encode_chat_completion(
        ChatCompletionRequest(messages=[UserMessage(content=content)])
    )
    prompt = list(encoded.tokens)
    feats = {}
    if audio is not None:
        (padded,) = [a.audio_array for a in encoded.audios]
        assert padded.shape[0] % (30 * SR) == 0  # padded to whole 30-s chunks
        mel = WhisperFeatureExtractor(feature_size=128)(
            padded, sampling_rate=SR, padding=False, return_tensors="pt"
        )["input_features"]  # [1, 128, 3000 k]
        feats["input_features"] = mel.reshape(128, -1, 3000).transpose(0, 1)
    answer_ids = mistral.instruct_tokenizer.tokenizer.encode(answer, bos=False, eos=False)
    model = VoxtralForConditionalGeneration.from_pretrained(str(vox_dir)).eval()
    total = 0.0
    with torch.no_grad():
        for k, target in enumerate(answer_ids):
            ids = torch.tensor([prompt + answer_ids[:k]])
            logits = model(input_ids=ids, **feats).logits
            total += torch.log_softmax(logits[0, -1].double(), -1)[target].item()
    return total, len(answer_ids)


def test_loglikelihood_equals_token_by_token_loop(chat, vox_dir) -> None:
    cases = [
        (CLIPS["noise1s"], "The answer is A."),
        (CLIPS["noise03"], "B"),
        (None, "the cat sat"),
    ]
    got = chat.loglikelihood([LoglikelihoodRequest(audio=a, text=t) for a, t in cases])
    for (audio, text), res in zip(cases, got, strict=True):
        want, n = brute_force_loglik(vox_dir, audio, text)
        assert res.num_tokens == n
        assert res.logprob == pytest.approx(want, abs=1e-4)


# --- dtype, identity, errors ----------------------------------------------------------------


def test_bfloat16_runs(vox_dir) -> None:
    m = make(vox_dir, dtype="bf16")
    assert m.model.dtype == torch.bfloat16
    (r,) = m.respond([RespondRequest(audio=CLIPS["tone07"])])
    assert isinstance(r.text, str)
    (ll,) = m.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="A")])
    assert np.isfinite(ll.logprob) and ll.num_tokens == 1


def test_identity(vox_dir, chat, tmp_path) -> None:
    import mistral_common

    ident = chat.identity()
    assert ident["family"] == "voxtral"
    assert make(vox_dir, device="cpu").identity() == ident and "cpu" not in json.dumps(ident)
    assert set(ident["model"]) >= {"config_hash", "weights_hash"}
    assert "tekken.json" in ident["processor"]["files"]
    fingerprint = chat.family.template_fingerprint(chat.processor)
    assert fingerprint == f"mistral-common {mistral_common.__version__} instruct v7"
    assert make(vox_dir, max_new_tokens="7").identity() != ident
    # Another tokenizer file (processor=) is another identity, the model's stays.
    proc = tmp_path / "proc"
    proc.mkdir()
    shutil.copy(vox_dir / "processor_config.json", proc)
    write_tekken(proc, version="v11")
    other = make(vox_dir, processor=str(proc))
    assert other.identity()["processor"]["files"] != ident["processor"]["files"]
    assert other.identity()["chat_template_sha256"] != ident["chat_template_sha256"]
    assert other.identity()["model"] == ident["model"]


def test_errors_are_one_line(vox_dir, tmp_path) -> None:
    from reference_models.hf_audio_chat import HFAudioChat

    no_tekken = tmp_path / "no_tekken"
    no_tekken.mkdir()
    shutil.copy(vox_dir / "processor_config.json", no_tekken)
    with pytest.raises(ConfigError, match="has no tekken.json"):
        HFAudioChat(model=str(vox_dir), processor=str(no_tekken))
    with pytest.raises(ConfigError, match="'qwen2-audio' was requested"):
        HFAudioChat(model=str(vox_dir), family="qwen2-audio")
    # A v7 tokenizer refuses a system prompt beside audio: said once, as a config error.
    m = make(vox_dir, system="Be brief.")
    with pytest.raises(ConfigError) as e:
        m.respond([RespondRequest(audio=CLIPS["tone07"])])
    assert "voxtral: the tokenizer refused the chat" in str(e.value)
    assert "\n" not in str(e.value)
    (r,) = m.respond([RespondRequest(text="Say A.")])  # text-only chats keep the system turn
    assert isinstance(r.text, str)
