"""The ``text-lm`` judge: log-probability of text through lm-eval (n-gram default, local hf).

No weights are downloaded: the default n-gram is trained at load on the packaged text (or a
toy corpus here), and the Hugging Face case is a tiny random GPT-2 saved to a temporary folder.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from reference_models.cascade import textlm as cascade_textlm
from speechlm_eval.cache import ResultCache
from speechlm_eval.errors import ConfigError
from speechlm_eval.execute import ExecStats
from speechlm_eval.judges import clear_loaded, judge_key, load_judge, textlm
from speechlm_eval.judges.textlm import TextLMJudge

TEXTS = ["the cat sat on the mat", "a quick brown fox", "", "the cat sat on the mat"]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    clear_loaded()


@pytest.fixture(scope="module")
def toy_corpus(tmp_path_factory) -> Path:
    """One sentence holding every symbol once, plus an extra a and b (the trainer requires every
    symbol to occur): counts a=2, b=2, the 24 other letters, space, apostrophe and </s> 1 each."""
    p = tmp_path_factory.mktemp("toy_corpus") / "c.txt"
    p.write_text("abcdefghijklmnopqrstuvwxyz a'b\n", encoding="utf-8")
    return p


def test_registered_with_offline_default() -> None:
    judge = load_judge("text-lm")
    assert isinstance(judge, TextLMJudge) and judge.kind == "text_lm"
    assert "ngram" in TextLMJudge.offline_default
    assert judge is load_judge("text-lm", model="ngram")  # loaded once per process


def test_default_equals_the_cascades_text_lm() -> None:
    """The cascade and the judge share one module (the same code path, the same numbers)."""
    assert cascade_textlm is textlm
    judge = load_judge("text-lm")
    lm, record = cascade_textlm.load_text_lm("ngram", {})
    keys = [f"k{i}" for i in range(len(TEXTS))]
    assert judge.loglikelihood(TEXTS) == cascade_textlm.rolling_logprobs(lm, TEXTS, keys)
    assert judge.identity()["model"] == record  # the cascade's record, unchanged
    assert record["class"] == "reference_models.cascade.textlm.NgramLM"


def test_hand_computed_toy_cases(toy_corpus: Path) -> None:
    """31 symbols seen. Order 1 is NLTK's maximum likelihood: "ab" scores P(a) P(b) P(</s>) =
    2/31 * 2/31 * 1/31. Order 2 is Witten-Bell, P(x | h) = (c(h x) + T(h) P1(x)) / (c(h) + T(h))
    with T(h) the distinct symbols after h: <s> -> a (c=1, T=1); a -> b, ' (c=2, T=2);
    b -> c, </s> (c=2, T=2)."""
    uni = load_judge("text-lm", model=f"ngram,order=1,corpus={toy_corpus}")
    assert uni.loglikelihood(["ab", ""]) == [
        (pytest.approx(math.log(2 / 31 * 2 / 31 * 1 / 31), abs=1e-12), 3),
        (pytest.approx(math.log(1 / 31), abs=1e-12), 1),  # an empty text scores </s> alone
    ]
    bi = load_judge("text-lm", model=f"ngram,order=2,corpus={toy_corpus}")
    p_a = (1 + 1 * 2 / 31) / (1 + 1)
    p_b = (1 + 2 * 2 / 31) / (2 + 2)
    p_end = (1 + 2 * 1 / 31) / (2 + 2)
    ((lp, n),) = bi.loglikelihood(["ab"])
    assert n == 3
    assert lp == pytest.approx(math.log(p_a * p_b * p_end), abs=1e-12)


def test_batching_and_caching_through_the_executor(tmp_path: Path) -> None:
    judge = load_judge("text-lm", batch_size=2)
    cache = ResultCache(tmp_path / "c.sqlite")
    stats = ExecStats()
    first = judge.loglikelihood(TEXTS, stats, cache)
    assert stats.computed == 3  # the repeated text is scored once
    assert first[0] == first[3]
    assert all(n >= 1 and math.isfinite(lp) for lp, n in first)
    again = ExecStats()
    assert judge.loglikelihood(TEXTS, again, ResultCache(tmp_path / "c.sqlite")) == first
    assert again.computed == 0 and again.cache_hits == 4


def test_options_resolve_alike_and_identity_follows_the_model(toy_corpus: Path) -> None:
    one = load_judge("text-lm", model=f"ngram,order=2,corpus={toy_corpus}")
    two = load_judge("text-lm", model="ngram", order="2", corpus=str(toy_corpus))
    assert one is two
    other = load_judge("text-lm", model=f"ngram,order=3,corpus={toy_corpus}")
    assert judge_key(one) != judge_key(other)
    assert judge_key(one) != judge_key(load_judge("text-lm"))
    assert one.identity()["model"]["order"] == 2


def test_one_line_config_errors(tmp_path: Path) -> None:
    cases = [
        ({"model": "no-such-lm"}, "not an lm-evaluation-harness model"),
        ({"model": "hf"}, "'pretrained' is required"),
        ({"model": f"hf,pretrained={tmp_path / 'missing'}"}, "not a local transformers model"),
        ({"model": "hf,pretrained"}, "expected key=value"),
        ({"model": "ngram", "batch_size": 0}, "batch_size"),
    ]
    for options, match in cases:
        with pytest.raises(ConfigError, match=match) as e:
            load_judge("text-lm", **options)
        assert "\n" not in str(e.value)


# --- a tiny random GPT-2 through lm-eval's hf model --------------------------------------------


def _save_tiny_gpt2(path: Path, seed: int) -> None:
    """A random 2-layer GPT-2 and a byte-level BPE tokenizer trained on a few words here."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS * 3, vocab_size=280, special_tokens=["<|endoftext|>"])
    eot = "<|endoftext|>"
    tok = GPT2TokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token=eot, eos_token=eot, unk_token=eot
    )
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,  # every test text fits one window: a plain token-by-token loop checks it
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)


@pytest.fixture(scope="module")
def gpt2_dirs(tmp_path_factory) -> tuple[Path, Path]:
    a, b = tmp_path_factory.mktemp("gpt2_a"), tmp_path_factory.mktemp("gpt2_b")
    _save_tiny_gpt2(a, 0)
    _save_tiny_gpt2(b, 1)
    return a, b


def _token_by_token(path: Path, text: str) -> tuple[float, int]:
    """sum_i log P(token_i | <|endoftext|>, token_<i), one forward pass per token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = tok(text)["input_ids"]
    total = 0.0
    with torch.no_grad():
        for i, t in enumerate(ids):
            ctx = torch.tensor([[tok.eos_token_id, *ids[:i]]])
            logits = model(ctx).logits[0, -1].double()
            total += float(torch.log_softmax(logits, -1)[t])
    return total, len(ids)


def test_hf_equals_token_by_token_loop(gpt2_dirs: tuple[Path, Path]) -> None:
    a, b = gpt2_dirs
    judge = load_judge("text-lm", model=f"hf,pretrained={a}", device="cpu")
    texts = [t for t in TEXTS if t]
    got = judge.loglikelihood(texts)
    for (lp, n), text in zip(got, texts, strict=True):
        want_lp, want_n = _token_by_token(a, text)
        assert n == want_n
        assert lp == pytest.approx(want_lp, abs=1e-4)
    ident = judge.identity()
    assert ident["model"]["pretrained"] and "device" not in ident["model"]["args"]
    other = load_judge("text-lm", model="hf", pretrained=str(b), device="cpu")
    assert judge_key(other) != judge_key(judge)
    assert other.loglikelihood(texts[:1]) != got[:1]


def test_run_judge_requests_needs_fingerprints() -> None:
    from speechlm_eval.judges import run_judge_requests

    with pytest.raises(TypeError, match="no fingerprint"):
        run_judge_requests(load_judge("text-lm"), "loglikelihood", list, ["plain str"])
