"""The cascade's text LMs through lm-eval's interface: the character n-gram and an hf model.

No ASR here (fast). Every probability is checked against a hand computation and against an
independent formulation (Witten-Bell written out from raw counts; brute-force GPT-2 forward).
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from reference_models.cascade import ngram as ng
from reference_models.cascade import textlm
from speechlm_eval.errors import ConfigError, DataError

PANGRAMS = [
    "The quick brown fox jumps over the lazy dog's back.",
    "Pack my box with five dozen liquor jugs!",
    "A wizard's job is to vex chumps quickly in fog.",
    "The dog sat by the fox and the box.",
]


@pytest.fixture(scope="module")
def small() -> textlm.NgramLM:
    """The lm-eval n-gram LM on a small corpus file written here (order 3)."""
    return _lm_on(PANGRAMS, 3)


def _lm_on(sents: list[str], order: int) -> textlm.NgramLM:
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp(prefix="cascade_ngram_"))
    (d / "c.txt").write_text("\n".join(sents) + "\n", encoding="utf-8")
    lm, _ = textlm.load_text_lm("ngram", {"order": str(order), "corpus": str(d / "c.txt")})
    assert isinstance(lm, textlm.NgramLM)
    return lm


# --- normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("Hello,   WORLD.", "hello world"),
        ("Café's 2 dogs!", "cafe's two dogs"),
        ("rock-and-roll", "rock and roll"),
        ("\u2018Tis the dogs\u2019 bone", "tis the dogs bone"),
        ("I have 21 cats", "i have twenty one cats"),
        ("...", ""),
        ("", ""),
    ],
)
def test_normalise(raw: str, want: str) -> None:
    assert ng.normalise(raw) == want


def test_symbols_end_with_sentence_end() -> None:
    assert ng.symbols("Hi!") == ["h", "i", ng.EOS]
    assert ng.symbols("") == [ng.EOS]


# --- counting: fast path vs NLTK's own fit vs brute force ------------------------------------


def test_fast_counts_equal_brute_force_events() -> None:
    brute: dict[int, Counter] = {n: Counter() for n in range(1, 5)}
    for s in PANGRAMS:
        for e in ng.sentence_events(ng.symbols(s), 4):
            brute[len(e)][e] += 1
    assert ng.count_events(PANGRAMS, 4) == brute
    # hand check: 4 sentences -> 4 sentence ends, each after 4 x <s> context padding
    assert brute[1][(ng.EOS,)] == 4
    assert brute[4][(ng.BOS, ng.BOS, ng.BOS, "t")] == 2  # two sentences start with "t"


def test_fast_fit_equals_nltk_fit() -> None:
    fast = ng.CharNgram(PANGRAMS, 4, fit="fast")
    ref = ng.CharNgram(PANGRAMS, 4, fit="nltk")
    assert fast.counts_sha256 == ref.counts_sha256
    for text in ("the fox", "a box of jugs", "zzz", ""):
        assert fast.logprob(text) == ref.logprob(text)


def test_alphabet_must_be_covered() -> None:
    with pytest.raises(ConfigError, match="lacks symbol"):
        ng.CharNgram(["ab", "b"], 2)


# --- probabilities: hand-computed and an independent Witten-Bell -------------------------------


def test_witten_bell_hand_computed() -> None:
    """Corpus ["ab", "b"], order 2. Unigrams a:1 b:2 </s>:2 (N=5).
    P(b|<s>) = (1 + 2 * 2/5) / (2 + 2) = 0.45 ; P(</s>|b) = (2 + 1 * 2/5) / (2 + 1) = 0.8;
    P(a|a): context "a" seen once (a->b), so (0 + 1 * 1/5) / (1 + 1) = 0.1."""
    m = ng.CharNgram.__new__(ng.CharNgram)
    # build without the alphabet check (the corpus is deliberately tiny)
    from nltk.lm import Vocabulary, WittenBellInterpolated

    m.order = 2
    m.lm = WittenBellInterpolated(
        2, vocabulary=Vocabulary([ng.BOS, ng.EOS, "a", "b"], unk_cutoff=1)
    )
    m.lm.fit([list(ng.sentence_events(ng.symbols(s), 2)) for s in ("ab", "b")])
    assert m.prob("b", []) == pytest.approx(0.45)
    assert m.prob(ng.EOS, ["b"]) == pytest.approx(0.8)
    assert m.prob("a", ["a"]) == pytest.approx(0.1)
    lp, n = m.logprob("b")
    assert n == 2
    assert lp == pytest.approx(math.log(0.45) + math.log(0.8))


def _wb_reference(sents: list[str], order: int):
    """Witten-Bell interpolation written out from raw event counts (independent of NLTK)."""
    c = Counter()
    for s in sents:
        for e in ng.sentence_events(ng.symbols(s), order):
            c[e] += 1
    ctx_total: Counter = Counter()
    ctx_types: Counter = Counter()
    for e, k in c.items():
        ctx_total[e[:-1]] += k
        ctx_types[e[:-1]] += 1

    def p(w: str, ctx: tuple[str, ...]) -> float:
        if not ctx:
            return c[(w,)] / ctx_total[()]
        lower = p(w, ctx[1:])
        if ctx_total[ctx] == 0:
            return lower
        return (c[(*ctx, w)] + ctx_types[ctx] * lower) / (ctx_total[ctx] + ctx_types[ctx])

    def logprob(text: str) -> float:
        seq = [ng.BOS] * (order - 1) + ng.symbols(text)
        return sum(
            math.log(p(seq[i], tuple(seq[i - order + 1 : i]))) for i in range(order - 1, len(seq))
        )

    return logprob


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_logprob_equals_independent_witten_bell(order: int) -> None:
    m = ng.CharNgram(PANGRAMS, order)
    ref = _wb_reference(PANGRAMS, order)
    for text in ("the fox jumps", "quizzical", "", "the dog's box"):
        assert m.logprob(text)[0] == pytest.approx(ref(text), rel=1e-12, abs=1e-12)


def test_distribution_sums_to_one(small: textlm.NgramLM) -> None:
    for hist in ([], list("the "), list("qqq")):
        assert small.model.distribution(hist).sum() == pytest.approx(1.0, abs=1e-12)


# --- lm-eval interface ---------------------------------------------------------------------


def test_rolling_through_lm_eval_equals_model(small: textlm.NgramLM) -> None:
    texts = ["The fox.", "", "jugs of liquor"]
    got = textlm.rolling_logprobs(small, texts, ["a", "b", "c"])
    for t, (lp, n) in zip(texts, got, strict=True):
        assert (lp, n) == small.model.logprob(t)
    assert got[1][1] == 1  # an empty transcript is scored as "</s>" alone


def test_loglikelihood_is_prefix_difference(small: textlm.NgramLM) -> None:
    from lm_eval.api.instance import Instance

    (lp, greedy) = small.loglikelihood([Instance("loglikelihood", {}, ("the", " fox"), 0)])[0]
    m = small.model
    brute = sum(
        math.log(m.prob(ch, list("the fox")[:i])) for i, ch in enumerate("the fox") if i >= 3
    )
    assert lp == pytest.approx(brute, rel=1e-12)
    assert isinstance(greedy, bool)


def _gen(lm, seed: int, **kw) -> str:
    return textlm.generate(lm, "the ", textlm.gen_kwargs(40, **kw), seed)


def test_generation_is_seeded(small: textlm.NgramLM) -> None:
    a = [_gen(small, s, temperature=1.0) for s in range(4)]
    b = [_gen(small, s, temperature=1.0) for s in range(4)]
    assert a == b
    assert len(set(a)) > 1  # different seeds give different samples
    # the caller's RNG is untouched
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    _gen(small, 5, temperature=1.0)
    assert torch.rand(1) == before


def test_greedy_and_top_k_one_agree(small: textlm.NgramLM) -> None:
    greedy = _gen(small, 0)
    assert greedy == _gen(small, 99)
    assert _gen(small, 7, temperature=1.0, top_k=1) == greedy
    # greedy picks the argmax at every step (checked by hand-rolled argmax)
    hist, out = list("the "), []
    for _ in range(40):
        d = small.model.distribution(hist)
        k = int(d.argmax())
        if small.model.outcomes[k] == ng.EOS:
            break
        out.append(small.model.outcomes[k])
        hist.append(out[-1])
    assert greedy == "".join(out).split("\n")[0]


def test_until_truncates(small: textlm.NgramLM) -> None:
    full = _gen(small, 3, temperature=1.0)
    assert " " in full
    cut = textlm.generate(small, "the ", textlm.gen_kwargs(40, temperature=1.0, until=[" "]), 3)
    assert cut == full[: full.index(" ")]


def test_shipped_lm_identity_and_disjointness() -> None:
    man = ng.read_manifest()
    sents, sha = ng.read_training_text()
    assert sha == man["train_sha256"] and len(sents) == man["sentences"]
    # recorded by the rebuild's check (which stops on any overlap)
    assert man["overlap"]["overlapping"] == {"equal": 0, "contains": 0, "template": 0}
    assert all(ng.normalise(s) == s for s in sents[:500])


def test_bad_text_lm_arguments(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not an lm-evaluation-harness model"):
        textlm.load_text_lm("no-such-lm", {})
    with pytest.raises(ConfigError, match="'pretrained' is required"):
        textlm.load_text_lm("hf", {})
    with pytest.raises(ConfigError, match="not a local transformers model folder"):
        textlm.load_text_lm("hf", {"pretrained": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="order"):
        textlm.load_text_lm("ngram", {"order": "x"})
    with pytest.raises(ConfigError, match="cannot read"):
        textlm.load_text_lm("ngram", {"corpus": str(tmp_path / "none.txt")})


# --- a tiny random GPT-2 through lm-eval's hf model --------------------------------------------


def save_tiny_gpt2(path) -> None:
    """A random 2-layer GPT-2 with a byte-level BPE tokenizer trained here (no download)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [s.lower() for s in PANGRAMS] * 3,
        vocab_size=300,
        min_frequency=1,
        special_tokens=["<|endoftext|>"],
    )
    tok = GPT2TokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_gpt2")
    save_tiny_gpt2(d)
    return d


def brute_force_gpt2(path, text: str) -> tuple[float, int]:
    """Log-probability of ``text`` by plain transformers forward passes, with the windows
    lm-eval's ``loglikelihood_rolling`` documents: the first window predicts the first L
    tokens after BOS; each later one predicts the next (up to L) tokens, its input being
    the L tokens just before the last predicted one. Every token is predicted once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    toks = tok(text)["input_ids"]
    n_ctx, n = model.config.n_positions, len(toks)

    def logp(inp: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(model(torch.tensor([inp])).logits[0].double(), -1)

    first = logp([tok.eos_token_id, *toks[: n_ctx - 1]])
    total = sum(float(first[i, t]) for i, t in enumerate(toks[:n_ctx]))
    done = min(n, n_ctx)
    while done < n:
        k = min(n_ctx, n - done)
        end = done + k
        lp = logp(toks[end - n_ctx - 1 : end - 1])
        total += sum(float(lp[n_ctx - k + i, toks[done + i]]) for i in range(k))
        done = end
    return total, n


def test_hf_rolling_equals_brute_force(gpt2_dir) -> None:
    lm, record = textlm.load_text_lm("hf", {"pretrained": str(gpt2_dir), "device": "cpu"})
    texts = [
        "the quick brown fox",
        "Pack my box!",
        # longer than the 32-token context: lm-eval's rolling windows
        " ".join(PANGRAMS),
    ]
    got = textlm.rolling_logprobs(lm, texts, ["a", "b", "c"])
    for t, (lp, n) in zip(texts, got, strict=True):
        ref_lp, ref_n = brute_force_gpt2(gpt2_dir, t)
        assert n == ref_n
        assert lp == pytest.approx(ref_lp, abs=1e-3 * max(1, n))
    assert got[2][1] > 32
    assert record["pretrained"]["weights_hash"]
    assert "device" not in record["args"]


def test_hf_empty_transcript_scores_end_of_text(gpt2_dir) -> None:
    lm, _ = textlm.load_text_lm("hf", {"pretrained": str(gpt2_dir)})
    ((lp, n),) = textlm.rolling_logprobs(lm, [""], ["k"])
    assert n == 1
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gpt2_dir).eval()
    eos = model.config.eos_token_id
    with torch.no_grad():
        ref = torch.log_softmax(model(torch.tensor([[eos]])).logits[0, -1].double(), -1)[eos]
    assert lp == pytest.approx(float(ref), abs=1e-4)


def test_hf_generation_seeded(gpt2_dir) -> None:
    lm, _ = textlm.load_text_lm("hf", {"pretrained": str(gpt2_dir)})
    kw = textlm.gen_kwargs(8, temperature=1.0)
    a = [textlm.generate(lm, "the fox", kw, s) for s in range(3)]
    assert a == [textlm.generate(lm, "the fox", kw, s) for s in range(3)]
    assert len(set(a)) > 1


def test_empty_transcript_without_eos_is_an_error() -> None:
    class NoTok:
        def loglikelihood_rolling(self, reqs):
            return [0.0 for _ in reqs]

    with pytest.raises(DataError, match="k1: the ASR transcript is empty"):
        textlm.rolling_logprobs(NoTok(), [" "], ["k1"])


def test_rebuild_reproduces_the_shipped_text(tmp_path, monkeypatch) -> None:
    """``--rebuild`` from the pinned corpus writes the shipped ``train.txt`` byte for byte."""
    pytest.importorskip("markov_draftjs", reason="gslm-train extra (markov-draftjs) missing")
    shipped = ng.read_manifest()
    monkeypatch.setattr(ng, "DATA_DIR", tmp_path)
    monkeypatch.setattr(ng, "TRAIN_TEXT", tmp_path / "train.txt")
    monkeypatch.setattr(ng, "MANIFEST", tmp_path / "ngram.json")
    man = ng.rebuild()
    assert man["train_sha256"] == shipped["train_sha256"]
    assert man["sentences"] == shipped["sentences"]
    assert man["overlap"]["overlapping"] == {"equal": 0, "contains": 0, "template": 0}
