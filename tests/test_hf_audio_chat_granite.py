"""``hf-audio-chat`` on a tiny randomly initialised Granite Speech built and saved here, with
a ``GraniteSpeechProcessor`` around a byte-level BPE tokenizer trained here and a chat template
in Granite's role-marker format written here. Nothing is downloaded.

``GraniteSpeechFeatureExtractor`` computes its mel spectrogram with torchaudio, which has no
CPU build beside torch 2.13 on the registry. Without torchaudio, only that one transform is
replaced (by ``StandInMel``: ``torch.stft`` + transformers' own HTK mel filter bank); the
extractor's own code still does the log, normalisation, frame stacking and embedding counts,
and ``test_stand_in_matches_torchaudio`` compares the two wherever torchaudio imports."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch
from hf_audio_chat_tiny import CLIPS, INSTRUCTION, SR, noise, tone, widen_weights

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, PluginError
from speechlm_eval.model import LoglikelihoodRequest, RespondRequest, RespondResult

SPECIAL = ["<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>", "<|audio|>"]
CORPUS = [
    "system user assistant What is said in the audio?",
    "Answer with A or B. The answer is A. The answer is B.",
    "the cat sat on the mat",
]
# Granite's turn format (<|start_of_role|>role<|end_of_role|>content<|end_of_text|>), no
# default system prompt.
TEMPLATE = (
    "{%- for m in messages %}<|start_of_role|>{{ m['role'] }}<|end_of_role|>"
    "{{ m['content'] }}<|end_of_text|>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{%- endif %}"
)
LOGITS_SCALING = 4.0


def _torchaudio_works() -> bool:
    try:
        import torchaudio

        torchaudio.transforms.MelSpectrogram(sample_rate=SR)
    except Exception:  # absent, or a CUDA build that cannot load beside the CPU torch
        return False
    return True


HAVE_TORCHAUDIO = _torchaudio_works()


class StandInMel(torch.nn.Module):
    """``torchaudio.transforms.MelSpectrogram`` with the arguments the Granite extractor uses
    (power 2, centred reflect-padded periodic Hann window, HTK mel scale, no filter norm)."""

    def __init__(
        self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int
    ) -> None:
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        bank = mel_filter_bank(
            num_frequency_bins=n_fft // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=0.0,
            max_frequency=sample_rate / 2,
            sampling_rate=sample_rate,
            norm=None,
            mel_scale="htk",
        )
        self.register_buffer("bank", torch.tensor(bank, dtype=torch.float32))
        self.register_buffer("window", torch.hann_window(win_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            x,
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return torch.einsum("fm,...ft->...mt", self.bank, spec.abs() ** 2)


@pytest.fixture(scope="module", autouse=True)
def mel_backend():
    """The real torchaudio where it works, else the stand-in (for this module only)."""
    if HAVE_TORCHAUDIO:
        yield
        return
    import transformers.models.granite_speech.feature_extraction_granite_speech as fx

    with pytest.MonkeyPatch.context() as mp:
        fake = types.SimpleNamespace(transforms=types.SimpleNamespace(MelSpectrogram=StandInMel))
        mp.setattr(fx, "torchaudio", fake, raising=False)
        mp.setattr(fx, "requires_backends", lambda *a, **k: None)
        yield


def build_tokenizer():
    """A ByteLevel BPE tokenizer with Granite's special tokens, trained on three sentences."""
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
        eos_token="<|end_of_text|>",
        pad_token="<|end_of_text|>",
        additional_special_tokens=SPECIAL[1:],
        chat_template=TEMPLATE,
    )


def build_granite(path: Path, template: str = TEMPLATE) -> Path:
    """A ~20k-parameter Granite Speech (no LoRA adapter) and its processor, in ``path``."""
    from transformers import (
        GraniteSpeechConfig,
        GraniteSpeechFeatureExtractor,
        GraniteSpeechForConditionalGeneration,
        GraniteSpeechProcessor,
    )

    tok = build_tokenizer()
    tok.chat_template = template
    config = GraniteSpeechConfig(
        encoder_config=dict(
            input_dim=160,
            num_layers=1,
            hidden_dim=16,
            feedforward_mult=2,
            num_heads=2,
            output_dim=8,
            context_size=20,
            max_pos_emb=64,
        ),
        projector_config=dict(
            model_type="blip_2_qformer",
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            encoder_hidden_size=16,
            cross_attention_frequency=1,
        ),
        text_config=dict(
            model_type="granite",
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            logits_scaling=LOGITS_SCALING,
        ),
        has_lora_adapter=False,
        audio_token_index=tok.convert_tokens_to_ids("<|audio|>"),
    )
    model = GraniteSpeechForConditionalGeneration(config)
    widen_weights(model)
    model.save_pretrained(path)
    GraniteSpeechProcessor(
        audio_processor=GraniteSpeechFeatureExtractor(), tokenizer=tok
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def granite_dir(tmp_path_factory, mel_backend) -> Path:
    return build_granite(tmp_path_factory.mktemp("granite"))


def make(granite_dir: Path, **kw):
    from reference_models.hf_audio_chat import HFAudioChat

    args = {"model": str(granite_dir), "max_new_tokens": "5", "instruction": INSTRUCTION}
    args.update(kw)
    return HFAudioChat(**args)


@pytest.fixture(scope="module")
def chat(granite_dir):
    return make(granite_dir)


def audio_id(chat) -> int:
    return chat.tokenizer.convert_tokens_to_ids("<|audio|>")


# --- shapes, masks, prompt ------------------------------------------------------------------


@pytest.mark.skipif(not HAVE_TORCHAUDIO, reason="torchaudio does not import beside this torch")
def test_stand_in_matches_torchaudio() -> None:
    import torchaudio

    kw = dict(sample_rate=SR, n_fft=512, win_length=400, hop_length=160, n_mels=80)
    x = torch.tensor(np.stack([noise(0.5, 1).samples, tone(0.5, 440.0).samples]))
    ref = torchaudio.transforms.MelSpectrogram(**kw)(x)
    assert torch.allclose(StandInMel(**kw)(x), ref, rtol=1e-4, atol=1e-5)


def test_prompt_expands_each_clip_into_its_audio_embeddings(chat) -> None:
    fam, proc = chat.family, chat.processor
    assert fam.name == "granite-speech" and fam.batch_by_length
    prompt = fam.render(proc, None, INSTRUCTION, True)
    assert prompt == (
        "<|start_of_role|>user<|end_of_role|><|audio|>" + INSTRUCTION + "<|end_of_text|>"
        "<|start_of_role|>assistant<|end_of_role|>"
    )
    system = fam.render(proc, "Be brief.", "Hi", False)
    assert system.startswith("<|start_of_role|>system<|end_of_role|>Be brief.<|end_of_text|>")
    audios = [CLIPS["noise1s"].samples, None, CLIPS["noise03"].samples]
    prompts = [fam.render(proc, None, INSTRUCTION, a is not None) for a in audios]
    batch = fam.encode(proc, prompts, audios)
    # By hand: 16000 samples -> 101 mel frames (hop 160, centred) -> 50 stacked frames ->
    # 4 windows of 15 -> 12 embeddings; 4800 -> 31 -> 15 -> 1 window -> 3.
    assert fam.embed_count(proc, 16000) == 12 and fam.embed_count(proc, 4800) == 3
    counts = (batch["input_ids"] == audio_id(chat)).sum(-1).tolist()
    assert counts == [12, 0, 3]
    assert tuple(batch["input_features"].shape) == (2, 50, 160)
    assert batch["input_features_mask"].sum(-1).tolist() == [12, 3]
    mask = batch["attention_mask"]
    assert all(mask[i, -1] == 1 for i in range(3)) and mask[1, 0] == 0  # left padding


def test_respond_and_loglikelihood_shapes(chat) -> None:
    out = chat.respond([RespondRequest(audio=CLIPS["tone07"]), RespondRequest(text="Say A.")])
    assert len(out) == 2 and all(isinstance(r, RespondResult) for r in out)
    assert all(isinstance(r.text, str) and r.audio is None for r in out)
    (ll,) = chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="The answer")])
    n = len(chat.tokenizer("The answer", add_special_tokens=False)["input_ids"])
    assert ll.num_tokens == n and ll.logprob < 0
    assert chat.sample_rate == SR and chat.dtype == "float32"


def test_logits_are_divided_by_logits_scaling(chat) -> None:
    # transformers 5.x leaves Granite Speech's logits undivided; the adapter divides.
    model = chat.model
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        full = model(input_ids=ids).logits[0]
        hidden = model.model(input_ids=ids).last_hidden_state[0]
    raw = model.lm_head(hidden)
    divided_by_transformers = torch.allclose(full, raw / LOGITS_SCALING, atol=1e-5)
    assert divided_by_transformers or torch.allclose(full, raw, atol=1e-5)
    expected = 1.0 if divided_by_transformers else LOGITS_SCALING
    assert model._slm_logits_divisor == expected
    got = chat.family.logits(model, model.lm_head, hidden)
    assert torch.allclose(got, raw / LOGITS_SCALING, atol=1e-6)


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
    from reference_models.audio_chat_families import GraniteSpeechFamily

    fam = chat.family

    def deaf(processor, prompts, audios):  # what a processor ignoring its audio returns
        return processor.tokenizer(prompts, padding=True, return_tensors="pt")

    monkeypatch.setattr(fam, "processor_call", deaf)
    with pytest.raises(PluginError, match="audio was dropped"):
        chat.respond([RespondRequest(audio=CLIPS["noise1s"])])
    with pytest.raises(PluginError, match="audio was dropped"):
        chat.loglikelihood([LoglikelihoodRequest(audio=CLIPS["noise1s"], text="A")])

    def unexpanded(processor, prompts, audios):  # features, one placeholder per clip
        batch = GraniteSpeechFamily.processor_call(fam, processor, prompts, audios)
        text = processor.tokenizer(prompts, padding=True, return_tensors="pt")
        batch["input_ids"], batch["attention_mask"] = text["input_ids"], text["attention_mask"]
        return batch

    monkeypatch.setattr(fam, "processor_call", unexpanded)
    with pytest.raises(PluginError, match="not expanded"):
        chat.respond([RespondRequest(audio=CLIPS["noise1s"])])


# --- determinism and batch independence -----------------------------------------------------


def test_padding_a_clip_changes_its_features(chat) -> None:
    """Why clips of different lengths are never batched: the extractor pads the waveforms
    and the encoder has no mask, so a short clip's features depend on its batch."""
    proc = chat.processor
    fe = chat.family.feature_extractor(proc)
    short, long = CLIPS["noise03"].samples, CLIPS["noise1s"].samples
    alone = fe([short])["input_features"][0]
    padded = fe([short, long])["input_features"][1, : alone.shape[0]]
    assert not torch.allclose(alone, padded, atol=1e-4)
    clips = [short, None, long, short.copy(), None]
    assert chat._groups(clips) == [[0, 3], [1, 4], [2]]


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


def test_sampling_is_seeded_per_request(granite_dir) -> None:
    reqs = [RespondRequest(audio=c, key=k) for k, c in CLIPS.items()]
    m1 = make(granite_dir, temperature="1.0", seed="7")
    first = [r.text for r in m1.respond(reqs)]
    assert [r.text for r in make(granite_dir, temperature="1.0", seed="7").respond(reqs)] == first
    assert [m1.respond([r])[0].text for r in reversed(reqs)] == first[::-1]


def brute_force_loglik(granite_dir: Path, audio: Audio | None, answer: str) -> tuple[float, int]:
    """Σ log p(answer token k | prompt, answer[:k]) from the model's full forward, logits
    divided by ``logits_scaling`` (the trained model's distribution), one forward per token;
    the prompt's audio tokens expanded here from the feature extractor's embedding count."""
    from transformers import AutoProcessor, GraniteSpeechForConditionalGeneration

    proc = AutoProcessor.from_pretrained(str(granite_dir))
    model = GraniteSpeechForConditionalGeneration.from_pretrained(str(granite_dir)).eval()
    user = ("<|audio|>" if audio is not None else "") + INSTRUCTION
    text = proc.tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
    )
    feats = {}
    if audio is not None:
        out = proc.audio_processor([audio.samples])
        (n,) = out["audio_embed_sizes"]
        text = text.replace("<|audio|>", "<|audio|>" * n)
        feats = {"input_features": out["input_features"]}
    prompt = proc.tokenizer(text, add_special_tokens=False)["input_ids"]
    answer_ids = proc.tokenizer(answer, add_special_tokens=False)["input_ids"]
    total = 0.0
    with torch.no_grad():
        for k, target in enumerate(answer_ids):
            ids = torch.tensor([prompt + answer_ids[:k]])
            logits = model(input_ids=ids, **feats).logits[0, -1].double()
            hidden = model.model(input_ids=ids, **feats).last_hidden_state[0, -1]
            if torch.allclose(logits.float(), model.lm_head(hidden), atol=1e-5):
                logits = logits / LOGITS_SCALING  # transformers 5.x left it undivided
            total += torch.log_softmax(logits, -1)[target].item()
    return total, len(answer_ids)


def test_loglikelihood_equals_token_by_token_loop(chat, granite_dir) -> None:
    cases = [
        (CLIPS["noise1s"], "The answer is A."),
        (CLIPS["noise03"], "B"),
        (None, "the cat sat"),
    ]
    got = chat.loglikelihood([LoglikelihoodRequest(audio=a, text=t) for a, t in cases])
    for (audio, text), res in zip(cases, got, strict=True):
        want, n = brute_force_loglik(granite_dir, audio, text)
        assert res.num_tokens == n
        assert res.logprob == pytest.approx(want, abs=1e-4)


# --- LoRA switching, dtype, identity, errors ------------------------------------------------


def test_lora_adapter_on_only_with_audio(chat) -> None:
    """What generate() does with a checkpoint's LoRA adapter, the scoring pass does too
    (transformers 5.25 needs peft >= 0.22 to load one; the registry has 0.21, so the switch
    is checked on a recording stand-in)."""
    calls: list[str] = []
    model = types.SimpleNamespace(
        _hf_peft_config_loaded=True,
        enable_adapters=lambda: calls.append("on"),
        disable_adapters=lambda: calls.append("off"),
    )
    chat.family.prepare_forward(model, True)
    chat.family.prepare_forward(model, False)
    assert calls == ["on", "off"]
    chat.family.prepare_forward(types.SimpleNamespace(), True)  # no adapter: nothing to do
    # And no batch mixes audio and text-only requests (one switch per batch).
    assert chat._groups([None, CLIPS["tone07"].samples]) == [[0], [1]]


def test_bfloat16_runs(granite_dir) -> None:
    m = make(granite_dir, dtype="bf16")
    assert m.model.dtype == torch.bfloat16
    (r,) = m.respond([RespondRequest(audio=CLIPS["tone07"])])
    assert isinstance(r.text, str)
    (ll,) = m.loglikelihood([LoglikelihoodRequest(audio=CLIPS["tone07"], text="A")])
    assert np.isfinite(ll.logprob)


def test_identity(granite_dir, chat) -> None:
    ident = chat.identity()
    assert ident["family"] == "granite-speech"
    assert make(granite_dir, device="cpu").identity() == ident and "cpu" not in json.dumps(ident)
    assert {"tokenizer.json", "chat_template.jinja"} <= set(ident["processor"]["files"])
    assert make(granite_dir, system="Be brief.").identity() != ident


def test_a_dated_template_needs_a_system_prompt(tmp_path) -> None:
    dated = TEMPLATE.replace(
        "{%- for m in messages %}",
        "{%- set today = strftime_now('%B %d, %Y') %}{%- for m in messages %}",
    )
    path = build_granite(tmp_path / "dated", template=dated)
    with pytest.raises(ConfigError, match="writes today's date") as e:
        make(path)
    assert "\n" not in str(e.value)
    assert make(path, system="You are Granite.").family.name == "granite-speech"
