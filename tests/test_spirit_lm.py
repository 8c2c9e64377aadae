"""Tests of the ``spirit-lm`` adapter on tiny, randomly initialised local models.

Nothing is downloaded: a tiny HuBERT, 501 random centroids, a tiny Llama with SPIRIT-LM's
vocabulary size and a word-level tokenizer carrying the SPIRIT-LM special tokens at their
real ids are built under pytest's tmp_path. Expected numbers come from a brute-force path
(full encoder forward, numpy nearest centroid, one unbatched forward per scored token).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from reference_models.spirit_lm import HU_OFFSET, SPEECH, TEXT, SpiritLM, sample_seed  # noqa: E402
from speechlm_eval.audio import Audio  # noqa: E402
from speechlm_eval.errors import ConfigError, DataError  # noqa: E402
from speechlm_eval.model import LoglikelihoodRequest  # noqa: E402

HIDDEN = 16
K = 501
VOCAB = 32503  # base: text, [Text], [Speech], [Hu0]..[Hu500]
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog"]


def _save_tokenizer(path: Path, specials: list[str]) -> None:
    """Word-level tokenizer: 32000 text entries (<unk>, <s>, </s>, words, fillers), then
    ``specials`` appended in order from id 32000."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for w in WORDS:
        vocab[w] = len(vocab)
    while len(vocab) < TEXT:
        vocab[f"w{len(vocab)}"] = len(vocab)
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.add_tokens(specials, special_tokens=True)
    fast.save_pretrained(path)


SPECIALS = ["[Text]", "[Speech]", *(f"[Hu{u}]" for u in range(K))]


def _audio(n: int, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.05 * rng.standard_normal(n)
    return Audio(x.astype(np.float32), 16000, f"utt{seed}")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spirit_lm")
    torch.manual_seed(0)
    enc = root / "hubert"
    transformers.HubertModel(
        transformers.HubertConfig(
            hidden_size=HIDDEN,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            conv_dim=(16, 16),
            conv_kernel=(10, 3),
            conv_stride=(5, 2),
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
        )
    ).eval().save_pretrained(enc)
    rng = np.random.default_rng(0)
    np.save(root / "km.npy", rng.standard_normal((K, HIDDEN)).astype(np.float32))
    np.save(root / "km500.npy", rng.standard_normal((K - 1, HIDDEN)).astype(np.float32))
    lm = root / "llama"
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
    )
    transformers.LlamaForCausalLM(cfg).eval().save_pretrained(lm)
    _save_tokenizer(lm, SPECIALS)
    bad = root / "llama_badtok"  # [Speech] and [Text] swapped
    shutil.copytree(lm, bad)
    _save_tokenizer(bad, ["[Speech]", "[Text]", *SPECIALS[2:]])
    return {"root": root, "encoder": enc, "kmeans": root / "km.npy", "lm": lm, "bad": bad}


def _args(files: dict[str, Path], **over: str) -> dict[str, str]:
    args = {k: str(files[k]) for k in ("lm", "encoder", "kmeans")}
    args.update(over)
    return args


@pytest.fixture(scope="module")
def model(files: dict[str, Path]) -> SpiritLM:
    return SpiritLM(**_args(files))


def _units(files: dict[str, Path], audio: Audio) -> list[int]:
    """Brute force: full HuBERT forward, numpy nearest centroid, run-length collapse."""
    enc = transformers.HubertModel.from_pretrained(files["encoder"], local_files_only=True).eval()
    with torch.no_grad():
        h = enc(torch.from_numpy(audio.samples)[None], output_hidden_states=True)
    feats = h.hidden_states[2][0].numpy().astype(np.float64)
    c = np.load(files["kmeans"]).astype(np.float64)
    units = ((feats[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
    return [int(u) for i, u in enumerate(units) if i == 0 or u != units[i - 1]]


def _brute_logprob(files: dict[str, Path], ids: list[int], start: int) -> float:
    """One unbatched forward per scored token, on its prefix alone."""
    lm = transformers.LlamaForCausalLM.from_pretrained(files["lm"], local_files_only=True).eval()
    total = 0.0
    with torch.no_grad():
        for j in range(start, len(ids)):
            logits = lm(torch.tensor([ids[:j]])).logits[0, -1].double()
            total += float(torch.log_softmax(logits, -1)[ids[j]])
    return total


def test_speech_token_layout_exact(model: SpiritLM, files: dict[str, Path]) -> None:
    audio = _audio(4000, 1)
    units = _units(files, audio)
    ids, start = model.sequence(LoglikelihoodRequest(audio=audio))
    assert ids == [1, SPEECH, *(HU_OFFSET + u for u in units)]
    assert start == 2
    assert len(units) > 3  # the chirp gives several units


def test_speech_logprob_matches_brute_force(model: SpiritLM, files: dict[str, Path]) -> None:
    audio = _audio(3000, 2)
    ids = [1, SPEECH, *(HU_OFFSET + u for u in _units(files, audio))]
    (res,) = model.loglikelihood([LoglikelihoodRequest(audio=audio)])
    assert res.num_tokens == len(ids) - 2  # the units only, not BOS or [Speech]
    assert res.logprob == pytest.approx(_brute_logprob(files, ids, 2), abs=1e-4)


def test_text_and_text_given_audio(model: SpiritLM, files: dict[str, Path]) -> None:
    text = model.sequence(LoglikelihoodRequest(text="the cat sat"))
    assert text == ([1, TEXT, 3, 4, 5], 2)
    audio = _audio(2500, 3)
    both, start = model.sequence(LoglikelihoodRequest(audio=audio, text="a dog"))
    units = _units(files, audio)
    assert both == [1, SPEECH, *(HU_OFFSET + u for u in units), TEXT, 8, 9]
    assert start == len(both) - 2  # only the text tokens are scored
    res = model.loglikelihood(
        [LoglikelihoodRequest(text="the cat sat"), LoglikelihoodRequest(audio=audio, text="a dog")]
    )
    assert [r.num_tokens for r in res] == [3, 2]
    assert res[0].logprob == pytest.approx(_brute_logprob(files, text[0], 2), abs=1e-4)
    assert res[1].logprob == pytest.approx(_brute_logprob(files, both, start), abs=1e-4)


def test_batched_equals_single_and_deterministic(model: SpiritLM) -> None:
    reqs = [
        LoglikelihoodRequest(audio=_audio(1600, 4)),
        LoglikelihoodRequest(text="on the mat"),
        LoglikelihoodRequest(audio=_audio(4800, 5), text="the dog"),
    ]
    batched = model.loglikelihood(reqs)
    single = [model.loglikelihood([r])[0] for r in reqs]
    for b, s in zip(batched, single, strict=True):
        assert b.num_tokens == s.num_tokens
        assert b.logprob == pytest.approx(s.logprob, abs=1e-4)
    again = model.loglikelihood(reqs)
    assert [r.logprob for r in again] == [r.logprob for r in batched]


def test_identity(model: SpiritLM, files: dict[str, Path]) -> None:
    ident = model.identity()
    assert ident["layer"] == 2 and ident["dtype"] == "float32"
    assert ident["kmeans"]["n_units"] == K
    for key in ("weights_hash", "config_hash", "tokenizer_hash"):
        assert len(ident["lm"][key]) == 64
    assert len(ident["code_sha256"]) == 64
    assert "device" not in ident
    assert model.capabilities == frozenset({"loglikelihood", "encode", "continue"})
    assert model.continue_modalities == frozenset({"speech->text", "text->text"})


def test_one_line_errors(model: SpiritLM, files: dict[str, Path]) -> None:
    cases = [
        (dict(lm=str(files["bad"])), "not SPIRIT-LM's base layout"),
        (dict(kmeans=str(files["root"] / "km500.npy")), "501 HuBERT units"),
        (dict(layer="7"), "expected 0..2"),
        (dict(dtype="int8"), "one of float32"),
        (dict(lm=str(files["root"] / "missing")), "not an existing directory"),
    ]
    for over, words in cases:
        with pytest.raises(ConfigError, match=words) as e:
            SpiritLM(**_args(files, **over))
        assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="special tokens"):
        model.loglikelihood([LoglikelihoodRequest(text="the [Hu3] cat")])
    with pytest.raises(DataError, match="neither audio nor text"):
        model.loglikelihood([LoglikelihoodRequest()])


def test_continue_units_matches_uncached_loop(model: SpiritLM, files: dict[str, Path]) -> None:
    """Seeded per sample, units only, and equal to a full-forward loop with the same mask."""
    audio = _audio(1600, 6)
    got = model.continue_units(audio, num_samples=2, max_units=6, top_k=50, seed=3)
    again = model.continue_units(audio, num_samples=2, max_units=6, top_k=50, seed=3)
    assert [g.tolist() for g in got] == [a.tolist() for a in again]
    assert not np.array_equal(got[0], got[1])
    lm = transformers.LlamaForCausalLM.from_pretrained(files["lm"], local_files_only=True).eval()
    base = [1, SPEECH, *(HU_OFFSET + u for u in _units(files, audio))]
    for i, units in enumerate(got):
        assert units.shape == (6,) and units.min() >= 0 and units.max() < K
        gen = torch.Generator().manual_seed(sample_seed(3, i))
        ids = list(base)
        with torch.no_grad():
            for _ in range(6):
                logits = lm(torch.tensor([ids])).logits[0, -1].float()
                masked = torch.full_like(logits, float("-inf"))
                masked[HU_OFFSET : HU_OFFSET + K] = logits[HU_OFFSET : HU_OFFSET + K]
                kth = torch.topk(masked, 50).values[-1]
                masked = masked.masked_fill(masked < kth, float("-inf"))
                probs = torch.softmax(masked, -1)[HU_OFFSET : HU_OFFSET + K]
                ids.append(HU_OFFSET + int(torch.multinomial(probs, 1, generator=gen)))
        assert [t - HU_OFFSET for t in ids[len(base) :]] == units.tolist()
