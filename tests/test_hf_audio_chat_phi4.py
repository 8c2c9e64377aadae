"""``hf-audio-chat`` on a tiny randomly initialised Phi-4-multimodal built and saved here, with
a ``Phi4MultimodalProcessor`` around its log-mel feature extractor, a byte-level BPE tokenizer
trained here and a chat template in Phi's turn format written here. Nothing is downloaded.

The processor's image part imports torchvision, whose only build for torch 2.13 on the
registry is a CUDA one that does not import beside the CPU torch: there the adapter (and this
test) builds the processor with an inert image processor; images are never sent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch
from hf_audio_chat_tiny import CLIPS, INSTRUCTION, SR, noise, tone, widen_weights

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError, PluginError
from speechlm_eval.model import LoglikelihoodRequest, RespondRequest, RespondResult

SPECIAL = [
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
    "<|image|>",
    "<|audio|>",
]
CORPUS = [
    "system user assistant What is said in the audio?",
    "Answer with A or B. The answer is A. The answer is B.",
    "the cat sat on the mat",
]
# Phi's turn format; audio parts become <|audio|>, text parts their text.
TEMPLATE = (
    "{%- for m in messages %}<|{{ m['role'] }}|>"
    "{%- if m['content'] is string %}{{ m['content'] }}{%- else %}"
    "{%- for p in m['content'] %}{%- if p['type'] == 'audio' %}<|audio|>"
    "{%- elif p['type'] == 'text' %}{{ p['text'] }}{%- endif %}{%- endfor %}{%- endif %}"
    "<|end|>{%- endfor %}{%- if add_generation_prompt %}<|assistant|>{%- endif %}"
)


def build_tokenizer():
    """A ByteLevel BPE tokenizer with Phi's special tokens (audio and image tokens named)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        chat_template=TEMPLATE,
        extra_special_tokens={"image_token": "<|image|>", "audio_token": "<|audio|>"},
    )


def build_phi4(path: Path) -> Path:
    """A ~40k-parameter Phi-4-multimodal and its processor, saved in ``path``."""
    from transformers import (
        Phi4MultimodalConfig,
        Phi4MultimodalFeatureExtractor,
        Phi4MultimodalForCausalLM,
        Phi4MultimodalProcessor,
    )
    from transformers.image_processing_utils import ImageProcessingMixin

    tok = build_tokenizer()
    config = Phi4MultimodalConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        audio_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_blocks=1,
            num_attention_heads=2,
            ext_pw_out_channel=16,
            depthwise_separable_out_channel=16,
            nemo_conv_channels=16,
            input_size=80,
            time_reduction=8,
            audio_token_id=tok.audio_token_id,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
            crop_size=28,
            image_token_id=tok.image_token_id,
        ),
    )
    model = Phi4MultimodalForCausalLM(config)
    widen_weights(model)
    model.save_pretrained(path)
    Phi4MultimodalProcessor(
        image_processor=ImageProcessingMixin(),  # never saved as such: no images here
        audio_processor=Phi4MultimodalFeatureExtractor(),
        tokenizer=tok,
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def phi_dir(tmp_path_factory) -> Path:
    return build_phi4(tmp_path_factory.mktemp("phi4"))


def make(phi_dir: Path, **kw):
    from reference_models.hf_audio_chat import HFAudioChat

    args = {"model": str(phi_dir), "max_new_tokens": "5", "instruction": INSTRUCTION}
    args.update(kw)
    return HFAudioChat(**args)


@pytest.fixture(scope="module")
def chat(phi_dir):
    return make(phi_dir)


# --- shapes, masks, prompt ------------------------------------------------------------------


def test_prompt_expands_each_clip_into_its_audio_embeddings(chat) -> None:
    fam, proc = chat.family, chat.processor
    assert fam.name == "phi4-multimodal" and fam.batch_by_length
    prompt = fam.render(proc, None, INSTRUCTION, True)
    assert prompt == "<|user|><|audio|>" + INSTRUCTION + "<|end|><|assistant|>"
    assert fam.render(proc, "Be brief.", "Hi", False).startswith("<|system|>Be brief.<|end|>")
    audios = [CLIPS["noise1s"].samples, None, CLIPS["noise03"].samples]
    prompts = [fam.render(proc, None, INSTRUCTION, a is not None) for a in audios]
    batch = fam.encode(proc, prompts, audios)
    # By hand: (16000 - 400) // 160 + 1 = 98 log-mel frames -> ceil(98 / 8) = 13 embeddings;
    # 4800 samples -> 28 frames -> 4.
    assert fam.embed_count(proc, 16000) == 13 and fam.embed_count(proc, 4800) == 4
    counts = (batch["input_ids"] == proc.audio_token_id).sum(-1).tolist()
    assert counts == [13, 0, 4]
    assert tuple(batch["audio_input_features"].shape) == (2, 98, 80)
    assert batch["audio_embed_sizes"].tolist() == [13, 4]
    assert batch["audio_attention_mask"].sum(-1).tolist() == [98, 28]
    mask = batch["attention_mask"]
    assert all(mask[i, -1] == 1 for i in range(3)) and mask[1, 0] == 0  # left padding


def test_respond_and_loglikelihood_shapes(chat) -> None:
    out = chat.respond([RespondRequest(audio=CLIPS["tone07"]), RespondRequest(text="Say A.")])
    assert len(out) == 2 and all(isinstance(r, RespondResult) for r in out)
    assert all(isinstance(r.text, str) and r.audio is None for r in out)
    (ll,) = chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="The answer")])
    n = len(chat.tokenizer("The answer", add_special_tokens=False)["input_ids"])
    assert ll.num_tokens == n and ll.logprob < 0
    assert chat.sample_rate == SR
    assert chat.tokenizer.convert_tokens_to_ids("<|end|>") in chat.eos_token_ids


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
    from reference_models.audio_chat_families import ChatFamily

    fam = chat.family

    def deaf(processor, prompts, audios):  # what a processor ignoring its audio returns
        return processor.tokenizer(prompts, padding=True, return_tensors="pt")

    monkeypatch.setattr(fam, "processor_call", deaf)
    with pytest.raises(PluginError, match="audio was dropped"):
        chat.respond([RespondRequest(audio=CLIPS["noise1s"])])
    with pytest.raises(PluginError, match="audio was dropped"):
        chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["noise1s"], text="A")])

    def unexpanded(processor, prompts, audios):  # features, one placeholder per clip
        batch = ChatFamily.processor_call(fam, processor, prompts, audios)
        text = processor.tokenizer(prompts, padding=True, return_tensors="pt")
        batch["input_ids"], batch["attention_mask"] = text["input_ids"], text["attention_mask"]
        return batch

    monkeypatch.setattr(fam, "processor_call", unexpanded)
    with pytest.raises(PluginError, match="not expanded"):
        chat.respond([RespondRequest(audio=CLIPS["noise1s"])])


# --- determinism and batch independence -----------------------------------------------------


def test_why_clips_of_different_lengths_are_not_batched(chat) -> None:
    """The encoder's subsampling sees a batch's padding: a short clip's logits change beside
    a longer one."""
    proc, model, fam = chat.processor, chat.model, chat.family
    prompt = fam.render(proc, None, INSTRUCTION, True)
    short, long = CLIPS["noise03"].samples, CLIPS["noise1s"].samples
    with torch.no_grad():
        alone = model(**fam.processor_call(proc, [prompt], [short])).logits[0, -1]
        both = model(**fam.processor_call(proc, [prompt] * 2, [long, short])).logits[1, -1]
    assert not torch.allclose(alone, both, atol=1e-3)
    assert chat._groups([short, long, None, short.copy()]) == [[0, 3], [1], [2]]


def test_greedy_batched_equals_one_by_one(chat) -> None:
    reqs = [RespondRequest(audio=c) for c in CLIPS.values()]
    reqs += [RespondRequest(text="Say A."), RespondRequest(text="Is it B?", audio=CLIPS["tone07"])]
    reqs += [RespondRequest(audio=noise(1.0, 9))]  # same length as noise1s: shares its batch
    batched = [r.text for r in chat.respond(reqs)]
    single = [chat.respond([r])[0].text for r in reqs]
    assert batched == single


def test_loglikelihood_batched_equals_one_by_one(chat) -> None:
    reqs = [
        LoglikelihoodRequest(audio=CLIPS["noise1s"], text="A"),
        LoglikelihoodRequest(audio=CLIPS["noise03"], text="The answer is B."),
        LoglikelihoodRequest(text="the cat sat on the mat"),
        LoglikelihoodRequest(audio=CLIPS["tone12"], text="B"),
        LoglikelihoodRequest(audio=noise(1.0, 9), text="A"),
    ]
    batched = chat.loglikelihood(reqs)
    for req, b in zip(reqs, batched, strict=True):
        (one,) = chat.loglikelihood([req])
        assert one.num_tokens == b.num_tokens
        assert one.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_sampling_is_seeded_per_request(phi_dir) -> None:
    reqs = [RespondRequest(audio=c, key=k) for k, c in CLIPS.items()]
    m1 = make(phi_dir, temperature="1.0", seed="7")
    first = [r.text for r in m1.respond(reqs)]
    assert [r.text for r in make(phi_dir, temperature="1.0", seed="7").respond(reqs)] == first
    assert [m1.respond([r])[0].text for r in reversed(reqs)] == first[::-1]


def brute_force_loglik(phi_dir: Path, audio: Audio | None, answer: str) -> tuple[float, int]:
    """Σ log p(answer token k | prompt, answer[:k]), one full forward per token; the prompt
    from the tokenizer's template, its audio token expanded here from the feature
    extractor's embedding count (not through the processor)."""
    from transformers import (
        AutoTokenizer,
        Phi4MultimodalFeatureExtractor,
        Phi4MultimodalForCausalLM,
    )

    tok = AutoTokenizer.from_pretrained(str(phi_dir))
    fe = Phi4MultimodalFeatureExtractor.from_pretrained(str(phi_dir))
    model = Phi4MultimodalForCausalLM.from_pretrained(str(phi_dir)).eval()
    user = ("<|audio|>" if audio is not None else "") + INSTRUCTION
    text = tok.apply_chat_template(
        [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
    )
    feats = {}
    if audio is not None:
        feats = dict(fe([audio.samples], sampling_rate=SR, return_tensors="pt"))
        text = text.replace("<|audio|>", "<|audio|>" * int(feats["audio_embed_sizes"][0]))
    prompt = tok(text, add_special_tokens=False)["input_ids"]
    answer_ids = tok(answer, add_special_tokens=False)["input_ids"]
    total = 0.0
    with torch.no_grad():
        for k, target in enumerate(answer_ids):
            ids = torch.tensor([prompt + answer_ids[:k]])
            logits = model(input_ids=ids, **feats).logits
            total += torch.log_softmax(logits[0, -1].double(), -1)[target].item()
    return total, len(answer_ids)


def test_loglikelihood_equals_token_by_token_loop(chat, phi_dir) -> None:
    cases = [
        (CLIPS["noise1s"], "The answer is A."),
        (CLIPS["noise03"], "B"),
        (None, "the cat sat"),
    ]
    got = chat.loglikelihood([LoglikelihoodRequest(audio=a, text=t) for a, t in cases])
    for (audio, text), res in zip(cases, got, strict=True):
        want, n = brute_force_loglik(phi_dir, audio, text)
        assert res.num_tokens == n
        assert res.logprob == pytest.approx(want, abs=1e-4)


# --- dtype, identity, errors ----------------------------------------------------------------


def test_bfloat16_runs(phi_dir) -> None:
    m = make(phi_dir, dtype="bf16")
    assert m.model.dtype == torch.bfloat16
    (r,) = m.respond([RespondRequest(audio=CLIPS["tone07"])])
    assert isinstance(r.text, str)
    (ll,) = m.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="A")])
    assert np.isfinite(ll.logprob)


def test_identity(phi_dir, chat) -> None:
    ident = chat.identity()
    assert ident["family"] == "phi4-multimodal"
    assert make(phi_dir, device="cpu").identity() == ident and "cpu" not in json.dumps(ident)
    assert {"tokenizer.json", "chat_template.jinja"} <= set(ident["processor"]["files"])
    assert make(phi_dir, system="Be brief.").identity() != ident


def test_errors(phi_dir, chat, tmp_path) -> None:
    import shutil

    with_lora = tmp_path / "with_lora"
    shutil.copytree(phi_dir, with_lora)
    (with_lora / "speech-lora").mkdir()
    (with_lora / "speech-lora" / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="speech-lora/, which hf-audio-chat does not load") as e:
        make(with_lora)
    assert "\n" not in str(e.value)
    need = chat.family.min_samples(chat.processor)
    assert need == 400
    (ok,) = chat.loglikelihood(
        [LoglikelihoodRequest(audio=Audio(noise(1, 4).samples[:need], SR), text="A")]
    )
    assert np.isfinite(ok.logprob)
    with pytest.raises(DataError, match="needs at least 400"):
        chat.respond([RespondRequest(audio=Audio(np.zeros(need - 1, np.float32), SR), key="q")])
