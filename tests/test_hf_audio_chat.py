"""``hf-audio-chat`` on a tiny randomly initialised Qwen2-Audio built and saved here, with a
processor around a byte-level BPE tokenizer trained here on three sentences. Nothing is
downloaded; the checks are of shapes, masks, determinism, batch independence, the audio
reaching the model, and agreement with a token-by-token brute-force loop -- not magnitudes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError, PluginError
from speechlm_eval.model import (
    LoglikelihoodRequest,
    RespondRequest,
    RespondResult,
)

SR = 16000
SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_bos|>",
    "<|AUDIO|>",
    "<|audio_eos|>",
]
CORPUS = [
    "You are a helpful assistant. What is said in the audio?",
    "Answer with A or B. The answer is A. The answer is B.",
    "system user assistant Audio 1: the cat sat on the mat",
]
INSTRUCTION = "What is said in the audio?"


def build_tokenizer():
    """A ByteLevel BPE tokenizer with Qwen's special tokens, trained on three sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL[1:],
    )


def build_qwen2_audio(path: Path) -> Path:
    """A ~50k-parameter Qwen2-Audio and its processor, saved in ``path``."""
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    tok = build_tokenizer()
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tok
    )
    config = Qwen2AudioConfig(
        audio_config=dict(
            model_type="qwen2_audio_encoder",
            d_model=16,
            encoder_layers=1,
            encoder_attention_heads=2,
            encoder_ffn_dim=32,
            num_mel_bins=128,
        ),
        text_config=dict(
            model_type="qwen2",
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        ),
        audio_token_id=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(config)
    with torch.no_grad():
        # The default init (std 0.02) makes a near-uniform next-token distribution in which
        # the audio barely moves the argmax; larger weights make answers depend on it visibly.
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    return build_qwen2_audio(tmp_path_factory.mktemp("qwen2-audio"))


def make(qwen_dir: Path, **kw):
    from reference_models.hf_audio_chat import HFAudioChat

    args = {"model": str(qwen_dir), "max_new_tokens": "6", "instruction": INSTRUCTION}
    args.update(kw)
    return HFAudioChat(**args)


@pytest.fixture(scope="module")
def chat(qwen_dir):
    return make(qwen_dir)


def noise(seconds: float, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio((0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)


def tone(seconds: float, hz: float) -> Audio:
    t = np.arange(int(seconds * SR)) / SR
    return Audio((0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), SR)


CLIPS = {
    "noise1s": noise(1.0, 1),
    "tone07": tone(0.7, 440.0),
    "noise03": noise(0.3, 2),
    "tone12": tone(1.2, 1500.0),
}


# --- shapes, masks, prompt ------------------------------------------------------------------


def test_prompt_expands_each_clip_into_its_audio_tokens(chat) -> None:
    fam, proc = chat.family, chat.processor
    audios = [CLIPS["noise1s"].samples, None, CLIPS["noise03"].samples]
    prompts = [fam.render(proc, None, INSTRUCTION, a is not None) for a in audios]
    assert "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>" in prompts[0]
    assert prompts[0].endswith("<|im_start|>assistant\n")
    assert "<|AUDIO|>" not in prompts[1]
    with_system = fam.render(proc, "Be brief.", "Hi", True)
    assert with_system.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    batch = fam.encode(proc, prompts, audios)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 3
    # One 30-s window of 128 mel bins per clip (none for the text-only row).
    assert tuple(batch["input_features"].shape) == (2, 128, 3000)
    assert batch["feature_attention_mask"].sum(-1).tolist() == [100, 30]
    # 25 audio tokens per second: ((L-1)//2+1-2)//2+1 for L mel frames.
    counts = (ids == proc.audio_token_id).sum(-1).tolist()
    assert counts == [25, 0, fam.audio_tokens(30)] and fam.audio_tokens(30) == 7
    # Left padding: the longest row is full, the others start with padding.
    lengths = mask.sum(-1).tolist()
    assert lengths[0] == ids.shape[1] and all(mask[i, -1] == 1 for i in range(3))
    for i in (1, 2):
        assert mask[i, : ids.shape[1] - lengths[i]].sum() == 0


def test_respond_and_loglikelihood_shapes(chat) -> None:
    reqs = [RespondRequest(audio=CLIPS["tone07"]), RespondRequest(text="Say A.")]
    out = chat.respond(reqs)
    assert len(out) == 2 and all(isinstance(r, RespondResult) for r in out)
    assert all(isinstance(r.text, str) and r.audio is None for r in out)
    ll = chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="The answer is A.")])
    n = len(chat.tokenizer("The answer is A.", add_special_tokens=False)["input_ids"])
    assert ll[0].num_tokens == n and ll[0].logprob < 0
    assert chat.respond([]) == [] and chat.loglikelihood([]) == []
    assert chat.capabilities == frozenset({"respond", "loglikelihood"})
    assert chat.sample_rate == SR and chat.dtype == "float32"


# --- the audio reaches the model ------------------------------------------------------------


def test_answer_depends_on_the_audio(chat) -> None:
    # Clips of one length: the prompts are then identical token for token, and only the
    # features can tell them apart (a deaf adapter would score and answer them all alike).
    same = [noise(1.0, 1), noise(1.0, 2), tone(1.0, 440.0), tone(1.0, 1500.0)]
    a, b = same[0], same[2]
    la, lb, la2 = chat.loglikelihood(
        [
            LoglikelihoodRequest(audio=a, text="The answer is A."),
            LoglikelihoodRequest(audio=b, text="The answer is A."),
            LoglikelihoodRequest(audio=a, text="The answer is A."),
        ]
    )
    assert la.logprob == la2.logprob
    assert abs(la.logprob - lb.logprob) > 1e-3
    answers = {r.text for r in chat.respond([RespondRequest(audio=c) for c in same])}
    assert len(answers) > 1


def test_processor_audios_keyword_is_never_the_way_in(chat) -> None:
    """The trap: ``audios=`` is not the processor's keyword (older releases ignored it
    silently; 5.x raises). Either way it must not produce features, and the adapter uses
    ``audio=``."""
    proc, clip = chat.processor, CLIPS["noise1s"].samples
    prompt = chat.family.render(proc, None, INSTRUCTION, True)
    try:
        out = proc(text=[prompt], audios=[clip], sampling_rate=SR, return_tensors="pt")
    except (TypeError, ValueError):
        pass
    else:
        assert out.get("input_features") is None
    good = chat.family.processor_call(proc, [prompt], [clip])
    assert good["input_features"].shape[0] == 1


def test_a_processor_that_drops_the_audio_is_caught(chat, monkeypatch) -> None:
    fam = chat.family

    def deaf(processor, prompts, audios):  # what a processor ignoring its audio returns
        return processor.tokenizer(prompts, padding=True, return_tensors="pt")

    monkeypatch.setattr(fam, "processor_call", deaf)
    with pytest.raises(PluginError, match="audio was dropped"):
        chat.respond([RespondRequest(audio=CLIPS["noise1s"])])
    with pytest.raises(PluginError, match="audio was dropped"):
        chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["noise1s"], text="A")])

    from reference_models.audio_chat_families import ChatFamily

    def unexpanded(processor, prompts, audios):  # features, but one placeholder per clip
        batch = ChatFamily.processor_call(fam, processor, prompts, audios)
        text = processor.tokenizer(prompts, padding=True, return_tensors="pt")
        batch["input_ids"], batch["attention_mask"] = text["input_ids"], text["attention_mask"]
        return batch

    monkeypatch.setattr(fam, "processor_call", unexpanded)
    with pytest.raises(PluginError, match="not expanded"):
        chat.respond([RespondRequest(audio=CLIPS["noise1s"])])


# --- determinism and batch independence -----------------------------------------------------


def test_sampling_is_seeded_per_request(qwen_dir) -> None:
    reqs = [RespondRequest(audio=c, key=k) for k, c in CLIPS.items()]
    m1 = make(qwen_dir, temperature="1.0", seed="7")
    first = [r.text for r in m1.respond(reqs)]
    again = [r.text for r in make(qwen_dir, temperature="1.0", seed="7").respond(reqs)]
    assert first == again
    # Alone or in another order, a request gets the same sample.
    assert [m1.respond([r])[0].text for r in reversed(reqs)] == first[::-1]
    other = [r.text for r in make(qwen_dir, temperature="1.0", seed="8").respond(reqs)]
    assert other != first


def test_greedy_batched_equals_one_by_one(chat) -> None:
    reqs = [RespondRequest(audio=c) for c in CLIPS.values()]
    reqs += [RespondRequest(text="Say A."), RespondRequest(text="Is it B?", audio=CLIPS["tone07"])]
    batched = [r.text for r in chat.respond(reqs)]
    single = [chat.respond([r])[0].text for r in reqs]
    assert batched == single
    assert [r.text for r in chat.respond(reqs)] == batched  # and again


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


def brute_force_loglik(qwen_dir: Path, audio: Audio | None, answer: str) -> tuple[float, int]:
    """Σ log p(answer token k | prompt, answer[:k]): one full forward per token, no padding,
    the prompt built from the processor directly (not through the adapter)."""
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

    proc = AutoProcessor.from_pretrained(str(qwen_dir))
    model = Qwen2AudioForConditionalGeneration.from_pretrained(str(qwen_dir)).eval()
    content = ([{"type": "audio"}] if audio is not None else []) + [
        {"type": "text", "text": INSTRUCTION}
    ]
    text = proc.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    extra = {} if audio is None else {"audio": [audio.samples], "sampling_rate": SR}
    enc = proc(text=[text], return_tensors="pt", **extra)
    prompt = enc["input_ids"][0].tolist()
    answer_ids = proc.tokenizer(answer, add_special_tokens=False)["input_ids"]
    feats = {k: enc[k] for k in ("input_features", "feature_attention_mask") if k in enc}
    total = 0.0
    with torch.no_grad():
        for k, target in enumerate(answer_ids):
            ids = torch.tensor([prompt + answer_ids[:k]])
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **feats).logits
            total += torch.log_softmax(logits[0, -1].double(), -1)[target].item()
    return total, len(answer_ids)


def test_loglikelihood_equals_token_by_token_loop(chat, qwen_dir) -> None:
    cases = [
        (CLIPS["noise1s"], "The answer is A."),
        (CLIPS["noise03"], "B"),
        (None, "the cat sat"),
    ]
    got = chat.loglikelihood([LoglikelihoodRequest(audio=a, text=t) for a, t in cases])
    for (audio, text), res in zip(cases, got, strict=True):
        want, n = brute_force_loglik(qwen_dir, audio, text)
        assert res.num_tokens == n
        assert res.logprob == pytest.approx(want, abs=1e-4)


# --- dtype, identity ------------------------------------------------------------------------


def test_bfloat16_runs(qwen_dir) -> None:
    m = make(qwen_dir, dtype="bf16")
    assert m.dtype == "bfloat16" and m.model.dtype == torch.bfloat16
    (r,) = m.respond([RespondRequest(audio=CLIPS["tone07"])])
    assert isinstance(r.text, str)
    (ll,) = m.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="A")])
    assert np.isfinite(ll.logprob) and ll.num_tokens == 1
    assert m.identity()["settings"]["dtype"] == "bfloat16"


def test_identity(qwen_dir, chat, tmp_path) -> None:
    ident = chat.identity()
    on_cpu = make(qwen_dir, device="cpu")
    assert on_cpu.identity() == ident and on_cpu.device == "cpu"
    assert "device" not in on_cpu.model_args and "cpu" not in json.dumps(ident)
    assert ident["family"] == "qwen2-audio"
    assert set(ident["model"]) >= {"config_hash", "weights_hash"}
    assert "tokenizer.json" in ident["processor"]["files"]
    assert len(ident["chat_template_sha256"]) == 64
    assert ident["generation"]["seed"] is None  # greedy: the seed changes nothing
    assert make(qwen_dir, seed="3").identity() == ident
    assert make(qwen_dir, max_new_tokens="7").identity() != ident
    assert make(qwen_dir, system="Be brief.").identity() != ident
    sampled = make(qwen_dir, temperature="0.7").identity()
    assert sampled["generation"]["seed"] == 0
    assert make(qwen_dir, temperature="0.7", seed="1").identity() != sampled
    # Another chat template (processor=) is another identity.
    proc = tmp_path / "proc"
    shutil.copytree(qwen_dir, proc)
    tpl = proc / "chat_template.jinja"
    tpl.write_text(tpl.read_text().replace("You are a helpful assistant.", "Be terse."))
    other = make(qwen_dir, processor=str(proc)).identity()
    assert other["chat_template_sha256"] != ident["chat_template_sha256"]
    assert other["model"] == ident["model"]


# --- errors ---------------------------------------------------------------------------------


def test_bad_options_are_one_line_errors(qwen_dir, tmp_path) -> None:
    from reference_models.hf_audio_chat import HFAudioChat

    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ({}, "'model' is required"),
        ({"model": str(tmp_path / "nope")}, "is not an existing directory"),
        ({"model": str(empty)}, "has no config.json"),
        ({"model": str(llama)}, "'llama' model, not a supported family"),
        ({"model": str(qwen_dir), "family": "gemma3n"}, "must be one of auto, qwen2-audio"),
        ({"model": str(qwen_dir), "family": "voxtral"}, "'voxtral' was requested but"),
        ({"model": str(qwen_dir), "dtype": "fp8"}, "must be one of float32, bfloat16"),
        ({"model": str(qwen_dir), "temperature": "-1"}, "'temperature' must be >= 0"),
        ({"model": str(qwen_dir), "max_new_tokens": "0"}, "'max_new_tokens' must be >= 1"),
        ({"model": str(qwen_dir), "top_p": "0"}, "'top_p' must be in (0, 1]"),
        ({"model": str(qwen_dir), "beams": "2"}, "unknown model argument(s) ['beams']"),
        ({"model": str(qwen_dir), "processor": str(empty)}, "cannot load a processor"),
    ]
    for kw, msg in cases:
        with pytest.raises(ConfigError) as e:
            HFAudioChat(**kw)
        assert msg in str(e.value) and "\n" not in str(e.value), (kw, str(e.value))


def test_bad_requests(chat) -> None:
    with pytest.raises(DataError, match="neither audio nor text"):
        make_bare(chat).respond([RespondRequest(key="q0")])
    with pytest.raises(DataError, match="no text"):
        chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], key="q1")])
    with pytest.raises(DataError, match="needs at least 321"):
        chat.respond([RespondRequest(audio=Audio(np.zeros(200, np.float32), SR), key="q2")])
    with pytest.raises(ValueError, match="24000 Hz"):
        chat.respond([RespondRequest(audio=Audio(np.zeros(24000, np.float32), 24000))])


def test_audio_past_the_window_is_cut_with_a_warning(chat, caplog) -> None:
    long = noise(31.0, 5)
    with caplog.at_level("WARNING", logger="reference_models.hf_audio_chat"):
        (ll,) = chat.loglikelihood([LoglikelihoodRequest(audio=long, text="A", key="long")])
    assert "long: 31.0 s of audio; qwen2-audio hears only the first 30 s" in caplog.text
    # What the model hears is the first 30 s: the same as the clip cut there.
    cut = Audio(long.samples[: 30 * SR].copy(), SR)
    (ref,) = chat.loglikelihood([LoglikelihoodRequest(audio=cut, text="A")])
    assert ll.logprob == pytest.approx(ref.logprob, abs=1e-5)


def make_bare(chat):
    """The fixture model without its ``instruction`` (a request with no text has nothing)."""
    import copy

    bare = copy.copy(chat)
    bare.options = {**chat.options, "instruction": None}
    return bare


# --- through the executor and the registry --------------------------------------------------


def test_end_to_end_through_the_executor_is_cached(qwen_dir, tmp_path) -> None:
    from speechlm_eval.cache import BlobStore, ResultCache
    from speechlm_eval.execute import (
        BatchSizer,
        ExecStats,
        Item,
        execute,
        model_key,
        respond_capability,
    )

    def items():
        return [
            Item(k, c.duration, lambda conform, c=c, k=k: RespondRequest(audio=conform(c), key=k))
            for k, c in CLIPS.items()
        ]

    def run(model):
        path = tmp_path / "cache.sqlite"
        job = respond_capability(model, BlobStore.beside(path)).job(
            model, model_key("hf-audio-chat", model)
        )
        stats = ExecStats()
        values = execute(job, items(), cache=ResultCache(path), sizer=BatchSizer(3), stats=stats)
        return values, stats

    first, s1 = run(make(qwen_dir))
    assert s1.computed == len(CLIPS) and s1.batch_sizes == [3, 1]
    direct = make(qwen_dir).respond([RespondRequest(audio=c) for c in CLIPS.values()])
    assert [v.text for v in first] == [r.text for r in direct]
    again, s2 = run(make(qwen_dir, device="cpu"))
    assert s2.computed == 0 and s2.model_calls == 0 and s2.cache_hits == len(CLIPS)
    assert [v.text for v in again] == [v.text for v in first]


def test_registered_as_a_model_plugin() -> None:
    from reference_models.hf_audio_chat import HFAudioChat
    from speechlm_eval import registry

    assert registry.get("models", "hf-audio-chat") is HFAudioChat
