"""Text LM judge ``text-lm``: the log-probability of text, through lm-evaluation-harness.

Any model lm-eval knows (``hf``, ``vllm``, ``gguf``, ...) is loaded with lm-eval's own
registry and arguments (``model=hf,pretrained=/local/dir``: the folder must exist, nothing is
downloaded); the offline default is :class:`NgramLM`, an lm-eval ``LM`` registered as
``speechlm-eval-ngram`` that wraps the character n-gram of :mod:`.ngram`, trained at load on
public-domain text shipped in the wheel. Users of a text LM call only lm-eval's methods:

- :func:`rolling_logprobs` -> ``LM.loglikelihood_rolling`` (the whole text's log-probability,
  every token predicted once, as lm-eval's perplexity tasks use it);
- :func:`generate` -> ``LM.generate_until`` (continuations and responses).

:class:`TextLMJudge` puts ``loglikelihood_rolling`` behind the judge interface (loaded once per
process, batched and cached through the executor, identity recorded in results); GenPPL uses
it, and the cascade reference model shares this module (``reference_models.cascade.textlm`` is
this module under its former name) so both score text with the same code.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lm_eval.models  # noqa: F401  (fills lm-eval's lazy model registry first)
import numpy as np
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import get_model, register_model

from ..cache import ResultCache
from ..errors import ConfigError, DataError
from ..execute import ExecStats
from ..hashing import saved_model_identity, sha256_file
from ..options import Opt, Spec, parse_pairs
from . import ngram as ng
from .base import Judge, package_version, run_judge_requests

NGRAM_NAME = "speechlm-eval-ngram"
ALIASES = {"ngram": NGRAM_NAME}
# lm-eval arguments that change where or how fast a model runs, not what it computes.
RUNTIME_ARGS = frozenset({"device", "batch_size", "max_batch_size", "parallelize"})


@register_model(NGRAM_NAME)
class NgramLM(LM):
    """lm-eval ``LM`` around :class:`~speechlm_eval.judges.ngram.CharNgram`.

    Arguments (strings accepted, as from ``--model_args``): ``order`` (default 6),
    ``corpus`` (a UTF-8 text file, one sentence per line; default: the shipped
    ``lm_data/train.txt``). ``device``/``batch_size`` are accepted and ignored (CPU, one
    sentence at a time: results cannot depend on them).

    Tokens are characters (plus the sentence end ``</s>``): ``loglikelihood_rolling``
    returns the natural-log probability of the normalised text and ``</s>``;
    ``generate_until`` samples characters until ``</s>``, a stop string or
    ``max_gen_toks``, with temperature / top-k / top-p applied by transformers' logits
    processors and ``torch.multinomial`` drawing from torch's global generator (seed it
    with ``torch.manual_seed``, as for Hugging Face models).
    """

    def __init__(
        self,
        order: int | str = ng.DEFAULT_ORDER,
        corpus: str | None = None,
        device: Any = None,
        batch_size: Any = None,
        max_batch_size: Any = None,
    ) -> None:
        super().__init__()
        try:
            n = int(order)
        except (TypeError, ValueError):
            raise ConfigError(
                f"text LM argument 'order': expected an integer, got {order!r}"
            ) from None
        if not 1 <= n <= 12:
            raise ConfigError(f"text LM argument 'order': expected 1..12, got {n}")
        path = None if corpus in (None, "") else Path(str(corpus)).expanduser()
        sents, text_sha = ng.read_training_text(path)
        self.model = ng.CharNgram(sents, n)
        self.order = n
        self._identity = {
            "name": NGRAM_NAME,
            # The path the cascade has always recorded (still an import path of this class:
            # reference_models.cascade.textlm is this module), so identities did not change
            # when the class moved here.
            "class": "reference_models.cascade.textlm.NgramLM",
            "format": ng.FORMAT,
            "order": n,
            "smoothing": "nltk.lm.WittenBellInterpolated",
            "unit": "character (a-z, apostrophe, space) + </s>",
            "corpus": "shipped lm_data/train.txt" if path is None else str(path.resolve()),
            "corpus_sha256": text_sha,
            "counts_sha256": self.model.counts_sha256,
            "nltk": ng._nltk_version(),
            "sentences": len(sents),
        }

    def identity(self) -> dict[str, Any]:
        """What determines this LM's outputs: corpus and count hashes, order, smoothing."""
        return dict(self._identity)

    def tok_encode(self, string: str) -> list[str]:
        """The symbols ``loglikelihood_rolling`` scores: normalised characters and ``</s>``."""
        return ng.symbols(string)

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = True):
        return [self.model.logprob(req.args[0])[0] for req in requests]

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = True):
        """log P(continuation | context) over the continuation's characters (no ``</s>``)."""
        out = []
        for req in requests:
            context, continuation = req.args
            ctx = ng.normalise(context)
            full = ng.normalise(context + continuation)
            if not full.startswith(ctx):
                raise ValueError(
                    f"normalising changed the context when the continuation was appended: "
                    f"{ctx!r} vs {full!r}"
                )
            hist = list(ctx)
            total, greedy = 0.0, True
            for ch in full[len(ctx) :]:
                dist = self.model.distribution(hist)
                p = float(dist[self.model.outcomes.index(ch)])
                total += math.log(p)
                greedy = greedy and self.model.outcomes[int(np.argmax(dist))] == ch
                hist.append(ch)
            out.append((total, greedy))
        return out

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = True) -> list[str]:
        return [self._generate(req.args[0], dict(req.args[1])) for req in requests]

    def _generate(self, context: str, kwargs: dict[str, Any]) -> str:
        import torch
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        until = kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_toks = int(kwargs.pop("max_gen_toks", kwargs.pop("max_new_tokens", 256)))
        temperature = float(kwargs.pop("temperature", 0.0) or 0.0)
        do_sample = bool(kwargs.pop("do_sample", temperature > 0))
        top_k = kwargs.pop("top_k", None)
        top_p = kwargs.pop("top_p", None)
        if kwargs:
            raise ConfigError(f"{NGRAM_NAME}: unsupported generation argument(s) {sorted(kwargs)}")
        warpers = LogitsProcessorList()
        if do_sample:
            if temperature <= 0:
                raise ConfigError(f"{NGRAM_NAME}: sampling needs temperature > 0")
            if temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(temperature))
            if top_k:
                warpers.append(TopKLogitsWarper(int(top_k)))
            if top_p is not None and float(top_p) < 1.0:
                warpers.append(TopPLogitsWarper(float(top_p)))
        hist = list(ng.normalise(context))
        if hist and context and not (context[-1].isalnum() or context[-1] == "'"):
            hist.append(" ")  # the context ended a word: keep the boundary normalise drops
        out: list[str] = []
        eos = len(self.model.outcomes) - 1
        for _ in range(max_toks):
            p = self.model.distribution(hist)
            if do_sample:
                with np.errstate(divide="ignore"):
                    logits = torch.tensor(np.log(p), dtype=torch.float64)[None, :]
                logits = warpers(torch.zeros((1, 1), dtype=torch.long), logits)
                probs = torch.softmax(logits, dim=-1)
                k = int(torch.multinomial(probs[0], 1).item())
            else:
                k = int(np.argmax(p))  # ties: the first outcome (fixed order)
            if k == eos:
                break
            ch = self.model.outcomes[k]
            out.append(ch)
            hist.append(ch)
            text = "".join(out)
            hit = [s for s in until if s and s in text]
            if hit:
                return text[: min(text.index(s) for s in hit)]
        return "".join(out)


# --- loading -----------------------------------------------------------------------------------


def load_text_lm(name: str, args: dict[str, Any]) -> tuple[LM, dict[str, Any]]:
    """An lm-eval ``LM`` from lm-eval's registry and its identity record.

    ``name``: any lm-eval model name, or ``ngram`` (the default, :class:`NgramLM`).
    ``args``: its constructor arguments as lm-eval takes them. For ``hf`` models the
    ``pretrained`` (and ``tokenizer``, if given) folder must exist locally: the record
    carries its config and weight hashes, and nothing is downloaded.
    """
    resolved = ALIASES.get(name, name)
    try:
        cls = get_model(resolved)
    except ValueError:
        raise ConfigError(
            f"model argument 'text_lm': {name!r} is not an lm-evaluation-harness model "
            f"(use 'ngram' for the packaged default, or an lm-eval name such as 'hf')"
        ) from None
    record: dict[str, Any] = {"text_lm": resolved}
    if resolved in ("hf", "hf-auto", "huggingface"):
        pretrained = args.get("pretrained")
        if not pretrained:
            raise ConfigError(
                "model argument 'pretrained' is required with text_lm=hf: the local folder "
                "of a transformers causal LM (nothing is downloaded)"
            )
        path = Path(str(pretrained)).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"model argument 'pretrained': {path} is not a local transformers model folder "
                "(no config.json); hub names are not accepted (nothing is downloaded)"
            )
        args = {**args, "pretrained": str(path)}
        if not args.get("device"):  # HFLM's default is cuda; use it only when there is one
            import torch

            args["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        record["pretrained"] = saved_model_identity("pretrained", path)
        for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
            if (path / f).is_file():
                record["pretrained"][f"{f}_sha256"] = sha256_file(path / f)
    try:
        lm = cls.create_from_arg_obj(dict(args))
    except (TypeError, ValueError, OSError) as e:
        raise ConfigError(
            f"text LM {resolved!r}: cannot load with arguments {sorted(args)} "
            f"({type(e).__name__}: {e})"
        ) from None
    if isinstance(lm, NgramLM):
        record.update(lm.identity())
    record["args"] = {k: str(v) for k, v in sorted(args.items()) if k not in RUNTIME_ARGS}
    return lm, record


# --- the two calls the cascade makes -----------------------------------------------------------


def token_count(lm: LM, text: str) -> int:
    """Tokens ``loglikelihood_rolling`` predicts for ``text``: the LM's ``tok_encode``.

    lm-eval's rolling windows predict every token of ``tok_encode(text)`` once (the
    prefix token is context only). An LM without ``tok_encode`` is counted in characters.
    """
    enc = getattr(lm, "tok_encode", None)
    return len(enc(text)) if callable(enc) else len(text)


def empty_text(lm: LM) -> str | None:
    """What an empty transcript is scored as: ``""`` for the n-gram (it scores ``</s>``), the
    tokenizer's end-of-text string for Hugging Face LMs (``P(EOS | BOS)``), else None."""
    if isinstance(lm, NgramLM):
        return ""
    tok = getattr(lm, "tokenizer", None)
    eos = getattr(tok, "eos_token", None)
    return eos if isinstance(eos, str) and eos else None


def rolling_logprobs(lm: LM, texts: Sequence[str], keys: Sequence[str]) -> list[tuple[float, int]]:
    """(natural-log probability, token count) of each text via ``loglikelihood_rolling``."""
    scored: list[str] = []
    for text, key in zip(texts, keys, strict=True):
        if text.strip():
            scored.append(text)
            continue
        alt = empty_text(lm)
        if alt is None:
            raise DataError(
                f"{key}: the ASR transcript is empty and this text LM has no end-of-text "
                "token to score an empty utterance with"
            )
        scored.append(alt)
    reqs = [
        Instance("loglikelihood_rolling", {}, (t,), i, metadata=("cascade", i, 1))
        for i, t in enumerate(scored)
    ]
    values = lm.loglikelihood_rolling(reqs) if reqs else []
    out = []
    for t, v, key in zip(scored, values, keys, strict=True):
        lp = float(v[0] if isinstance(v, (tuple, list)) else v)
        n = token_count(lm, t)
        if n < 1 or not math.isfinite(lp):
            raise DataError(f"{key}: text LM gave log-prob {lp} over {n} tokens for {t!r}")
        out.append((lp, n))
    return out


def gen_kwargs(
    max_gen_toks: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    until: Sequence[str] = ("\n",),
) -> dict[str, Any]:
    """lm-eval ``generate_until`` arguments; greedy when ``temperature`` is 0.

    ``top_k``/``top_p`` are passed explicitly (0 / 1.0 when unset) so a Hugging Face model's
    ``generation_config`` defaults (e.g. ``top_k=50``) never apply silently.
    """
    kw: dict[str, Any] = {"until": list(until), "max_gen_toks": int(max_gen_toks)}
    if temperature and temperature > 0:
        kw.update(
            do_sample=True,
            temperature=float(temperature),
            top_k=int(top_k or 0),
            top_p=float(1.0 if top_p is None else top_p),
        )
    else:
        kw.update(do_sample=False, temperature=0.0)
    return kw


def generate(lm: LM, context: str, kwargs: dict[str, Any], seed: int) -> str:
    """One ``generate_until`` call with torch's global generator seeded by ``seed``.

    The caller's RNG state is restored afterwards (``torch.random.fork_rng``).
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        req = Instance("generate_until", {}, (context, dict(kwargs)), 0, metadata=("cascade", 0, 1))
        (text,) = lm.generate_until([req])
    return str(text)


# --- the judge ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextRequest:
    """One text for a text judge; ``key`` names it in messages (not part of the cache key)."""

    text: str
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return {"text": hashlib.sha256(self.text.encode("utf-8")).hexdigest()}


def split_model_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"hf,pretrained=/m/x,dtype=float32"`` -> ``("hf", {"pretrained": ..., ...})``: lm-eval's
    ``--model`` and ``--model_args`` in one string (the form slamkit's configs use)."""
    name, _, rest = str(spec).strip().partition(",")
    if not name.strip():
        raise ConfigError("judge 'text-lm': option 'model' is empty (use ngram or an lm-eval name)")
    return name.strip(), parse_pairs(rest, "judge 'text-lm' option 'model'", sep=",")


class TextLMJudge(Judge):
    """Text LM judge: the natural-log probability of texts under an lm-eval model.

    Options: ``model`` — ``ngram`` (default: the packaged character n-gram, trained at load,
    offline) or any lm-eval model name, optionally with its arguments in lm-eval's form
    (``hf,pretrained=/local/dir``); every other option except ``batch_size`` (texts per
    executor batch, 16) is passed to the lm-eval model too (``pretrained=...``, ``order=5``).
    Weights are never downloaded: ``hf`` needs a local folder.
    """

    kind = "text_lm"
    sample_rate = None  # type: ignore[assignment]  # text in: no audio to resample
    needs: ClassVar[tuple[str, ...]] = ("text",)
    offline_default = (
        "ngram: character 6-gram (NLTK Witten-Bell) trained at load on packaged public-domain text"
    )
    OPTIONS: ClassVar[Spec] = Spec(
        {
            "model": Opt(str, "ngram", doc="ngram, or an lm-eval model [,key=value,...]"),
            "batch_size": Opt(int, 16, ge=1, identity=False, doc="texts per executor batch"),
        }
    )

    @classmethod
    def resolve_options(cls, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """``{"model": lm-eval name, "args": {...}, "batch_size": n}``: the same model named in
        one string or in separate options resolves alike (and so loads once)."""
        own = {k: v for k, v in options.items() if k in ("model", "batch_size")}
        extra = {str(k): str(v) for k, v in options.items() if k not in own}
        opts = super().resolve_options(name, own)
        model, args = split_model_spec(opts["model"])
        clash = sorted(set(args) & set(extra))
        if clash:
            raise ConfigError(f"judge {name!r}: {clash} given both in 'model' and as options")
        return {"model": model, "args": {**args, **extra}, "batch_size": opts["batch_size"]}

    def __init__(self, name: str = "text-lm", **options: Any) -> None:
        super().__init__(name, **options)
        try:
            self.lm, self._record = load_text_lm(self.options["model"], self.options["args"])
        except ConfigError as e:
            raise ConfigError(f"judge {self.name!r}: {e}") from None

    def identity(self) -> dict[str, Any]:
        """lm-eval's version, the LM's record (weight or count hashes, arguments that change
        outputs), and how texts are scored; the same fields the cascade records."""
        ident = {
            **self._identity_head("lm_eval"),
            "model": dict(self._record),
            "method": "loglikelihood_rolling",
            "empty_text": empty_text(self.lm),
        }
        if not isinstance(self.lm, NgramLM):  # neural LMs: the stack that computes the logits
            ident["torch"] = package_version("torch")
            ident["transformers"] = package_version("transformers")
        return ident

    def loglikelihood(
        self,
        texts: Sequence[str],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> list[tuple[float, int]]:
        """``(log-prob sum, tokens predicted)`` of each text (lm-eval ``loglikelihood_rolling``:
        every token predicted once), through the executor: longest first, batched, identical
        texts scored once, cached by this judge's identity and the text's SHA-256. An empty
        text is scored as :func:`empty_text` (DataError where the LM has none)."""
        names = list(keys) if keys is not None else [f"text {i}" for i in range(len(texts))]
        reqs = [TextRequest(str(t), k) for t, k in zip(texts, names, strict=True)]
        rows = run_judge_requests(
            self, "loglikelihood", self._score, reqs, lambda r: len(r.text), stats, cache, desc
        )
        return [(float(lp), int(n)) for lp, n in rows]

    def _score(self, requests: list[TextRequest]) -> list[list[float | int]]:
        pairs = rolling_logprobs(self.lm, [r.text for r in requests], [r.key for r in requests])
        return [[lp, n] for lp, n in pairs]  # JSON lists: the cache's format
