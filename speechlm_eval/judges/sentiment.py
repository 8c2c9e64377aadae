"""Sentiment judges ``text-sentiment`` and ``speech-sentiment``, for STSP (SPIRIT-LM's
Speech-Text Sentiment Preservation: does a continuation keep its prompt's sentiment?).

Both return, per input, ``{"label": one of positive/negative/neutral, "scores": {label: score},
...}`` through the harness' executor (longest first, batched, identical inputs judged once,
cached by the judge's identity and the input's content hash).

``text-sentiment`` (texts in):

- ``backend=vader`` (the offline default; vaderSentiment ships its lexicon): VADER's
  ``compound`` score gives the label with the thresholds of VADER's README ("About the
  Scoring": positive when ``compound >= 0.05``, negative when ``compound <= -0.05``, neutral
  in between; options ``positive_threshold`` / ``negative_threshold``). ``scores`` are VADER's
  ``pos`` / ``neg`` / ``neu`` proportions (not what decides the label: the compound does), and
  ``compound`` is returned too.
- ``backend=transformers``: a sequence classifier from a local folder (``model=DIR``; SPIRIT-LM
  uses a RoBERTa 3-class sentiment model, j-hartmann's ``sentiment-roberta-large-english-3-
  classes``). Softmax over the classes, the argmax class's ``id2label`` name lower-cased, then
  mapped to the label set by ``label_map`` (default: positive, negative and neutral map to
  themselves). Every class of the model must be mapped: one that is not is a ConfigError naming
  it and the folder. ``scores``: the class probabilities summed per label; ``class`` and
  ``classes`` give the model's own argmax class and probabilities.

``speech-sentiment`` (audio in):

- ``backend=asr+text`` (the offline default): "ASR transcript -> text sentiment", i.e. the
  sentiment of the *words* only (lexical; how they are said is not heard). The ASR judge
  (``asr``, default ``faster-whisper``) and the text judge (``text``, default
  ``text-sentiment``) are loaded with :func:`~speechlm_eval.judges.load_judge` on first use
  (their names and options are checked at load) and both are recorded in the identity; each
  step is cached under its own judge. Adds ``transcript``.
- ``backend=transformers``: ``AutoModelForAudioClassification`` from a local folder, the form
  of SPIRIT-LM's speech classifier (wav2vec2 fine-tuned on Expresso's speaking styles). The
  argmax class (lower-cased) is mapped by ``emotion_map``, default SPIRIT-LM's
  ``EXPRESSO_EMOTION_2_SENTIMENT`` (happy -> positive, angry and sad -> negative, default ->
  neutral); a predicted class outside the map is a DataError naming it and the folder.
  ``classes=mapped`` takes the softmax and argmax over the mapped classes only (SPIRIT-LM's
  ``emotions_to_predict``); ``all`` (default) over every class, as SPIRIT-LM's STSP run does.
  Audio is resampled explicitly (scipy, recorded) to the feature extractor's rate; SPIRIT-LM
  assumes 16 kHz in-memory audio. Feature extractors without an attention mask (wav2vec2-base
  style) run one clip at a time, so padding never changes a result.

Maps are given as a mapping (Python, YAML) or as ``from:to`` pairs separated by ``/``, ``;`` or
spaces (``label_map=label_0:negative/label_1:neutral/label_2:positive``; ``/`` also works when
nested in ``text_args=k=v;k=v``). Weights are never downloaded (``local_files_only``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import registry
from ..audio import Audio
from ..cache import ResultCache
from ..errors import ConfigError, DataError
from ..execute import ExecStats
from ..hashing import saved_model_identity
from ..options import Opt, Spec, parse_pairs
from .base import (
    RESAMPLER,
    ASRJudge,
    Judge,
    JudgeRequest,
    judge_record,
    load_judge,
    package_version,
    path_sha256,
    run_judge,
    run_judge_requests,
)

LABELS = ("positive", "negative", "neutral")
# VADER's README ("About the Scoring"): positive if compound >= 0.05, negative if <= -0.05.
VADER_POSITIVE, VADER_NEGATIVE = 0.05, -0.05
# The 3-class text sentiment models' own labels (lower-cased) are already the label set.
TEXT_LABEL_MAP = {label: label for label in LABELS}
# SPIRIT-LM (spiritlm/eval/stsp/utils.py): the Expresso style classifier's classes -> sentiment.
EXPRESSO_EMOTION_2_SENTIMENT = {
    "happy": "positive",
    "angry": "negative",
    "sad": "negative",
    "default": "neutral",
}
# Files of a model folder beside its weights that change outputs (tokenizer, feature extractor).
_PROCESSOR_SUFFIXES = (".json", ".txt", ".model")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def parse_label_map(value: Any) -> dict[str, str]:
    """A ``{class: label}`` map from a mapping or ``"a:b/c:d"`` (``/``, ``;`` or spaces between
    pairs); classes lower-cased, every label one of positive/negative/neutral. ValueError with a
    phrase otherwise (the option parser turns it into a one-line ConfigError)."""
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str):
        pairs = []
        for part in filter(None, re.split(r"[/;\s]+", value.strip())):
            k, sep, v = part.partition(":")
            if not sep or not k or not v:
                raise ValueError(f"expected class:label pairs, got {part!r}")
            pairs.append((k, v))
    else:
        raise ValueError(f"expected a mapping or class:label pairs, got {type(value).__name__}")
    out: dict[str, str] = {}
    for k, v in pairs:
        cls, label = k.strip().lower(), v.strip().lower()
        if label not in LABELS:
            raise ValueError(f"maps {cls!r} to {label!r}; labels must be {', '.join(LABELS)}")
        if out.get(cls, label) != label:
            raise ValueError(f"maps {cls!r} twice ({out[cls]!r} and {label!r})")
        out[cls] = label
    if not out:
        raise ValueError("is empty")
    return dict(sorted(out.items()))


def _judge_args(value: Any) -> dict[str, Any]:
    """Options of a nested judge: a mapping, or ``"k=v;k=v"`` (``--judge`` splits on commas)."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, str):
        try:
            return parse_pairs(value, "options")
        except ConfigError as e:  # re-raised by the option parser, naming judge and option
            raise ValueError(str(e).removeprefix("options: ")) from None
    raise ValueError("")


def _check_given(name: str, backend: str, given: Mapping[str, Any], own: dict[str, set]) -> None:
    """A non-blank option of another backend is an error (it would be silently ignored)."""
    for key, value in given.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        for other, keys in own.items():
            if other != backend and key in keys and key not in own.get(backend, set()):
                raise ConfigError(
                    f"judge {name!r}: option {key!r} applies to backend={other} only "
                    f"(backend is {backend})"
                )


def _local_folder(name: str, option: str, value: str | None, what: str) -> Path:
    """``value`` as an existing local model folder (with config.json), resolved; else a
    one-line ConfigError (hub ids are refused: nothing is downloaded)."""
    if not value:
        raise ConfigError(f"judge {name!r}: option {option!r} ({what}) is required")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"judge {name!r}: option {option!r}: {path} is not a local folder "
            "(hub ids are not accepted; nothing is downloaded)"
        )
    if option == "model" and not (path / "config.json").is_file():
        raise ConfigError(
            f"judge {name!r}: option 'model': {path} is not a transformers model folder "
            "(no config.json)"
        )
    return path.resolve()


def processor_sha256(folder: Path) -> str:
    """SHA-256 over a model folder's non-weight files (config, tokenizer, feature extractor)."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in _PROCESSOR_SUFFIXES and p.name not in _WEIGHT_INDEXES:
            h.update(f"{p.name}\0{path_sha256(p)}\n".encode())
    return h.hexdigest()


def _architecture(folder: Path) -> str:
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return str((cfg.get("architectures") or [cfg.get("model_type")])[0])


def _softmax_rows(logits: Any) -> np.ndarray:
    import torch

    return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)


def _result(
    probs: np.ndarray, names: Sequence[str], mapping: Mapping[str, str], where: str
) -> dict[str, Any]:
    """``label`` / ``scores`` / ``class`` / ``classes`` of one row of class probabilities: the
    argmax class (first on ties) mapped to the label set; scores summed per label."""
    k = int(np.argmax(probs))
    cls = names[k]
    if cls not in mapping:
        raise DataError(
            f"{where} predicted class {cls!r}, which the map does not name "
            f"(mapped: {', '.join(mapping)}); add it to the map or use classes=mapped"
        )
    scores = dict.fromkeys(LABELS, 0.0)
    for name, p in zip(names, probs, strict=True):
        if name in mapping:
            scores[mapping[name]] += float(p)
    return {
        "label": mapping[cls],
        "scores": scores,
        "class": cls,
        "classes": {n: float(p) for n, p in zip(names, probs, strict=True)},
    }


@dataclass(frozen=True)
class SentimentTextRequest:
    """One text; ``key`` names it in messages (not part of the cache key)."""

    text: str
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return {"text": hashlib.sha256(self.text.encode("utf-8")).hexdigest()}


# --- text ------------------------------------------------------------------------------------


class TextSentimentJudge(Judge):
    """Sentiment of texts: positive / negative / neutral (see the module doc).

    Options: ``backend`` (``vader``, default, or ``transformers``); for vader
    ``positive_threshold`` (0.05) and ``negative_threshold`` (-0.05) on the compound score; for
    transformers ``model`` (local folder, required), ``tokenizer`` (local folder; default: the
    model's), ``label_map`` (class -> label; default the identity on positive/negative/
    neutral), ``max_length`` (tokens kept per text, 512, capped by the tokenizer's limit),
    ``device`` (cpu). ``batch_size`` (texts per call, 16).
    """

    kind = "sentiment"
    sample_rate = None  # type: ignore[assignment]  # text in: no audio to resample
    needs: ClassVar[tuple[str, ...]] = ("text",)
    offline_default = "VADER lexicon (shipped in vaderSentiment), README thresholds +-0.05"
    OPTIONS: ClassVar[Spec] = Spec(
        {
            "backend": Opt(str, "vader", choices=("vader", "transformers")),
            "positive_threshold": Opt(
                float, VADER_POSITIVE, ge=-1, le=1, doc="vader: compound >= it is positive"
            ),
            "negative_threshold": Opt(
                float, VADER_NEGATIVE, ge=-1, le=1, doc="vader: compound <= it is negative"
            ),
            "model": Opt(str, None, doc="transformers: local sequence-classifier folder"),
            "tokenizer": Opt(str, None, doc="transformers: local tokenizer folder (default model)"),
            "label_map": Opt(
                object,
                TEXT_LABEL_MAP,
                check=parse_label_map,
                doc="transformers: class:label pairs",
                expect="class:label pairs",
            ),
            "max_length": Opt(int, 512, ge=1, doc="transformers: tokens kept per text"),
            "device": Opt(str, "cpu", identity=False),
            "batch_size": Opt(int, 16, ge=1, identity=False, doc="texts per call"),
        }
    )
    _BACKEND_OPTIONS: ClassVar[dict[str, set]] = {
        "vader": {"positive_threshold", "negative_threshold"},
        "transformers": {"model", "tokenizer", "label_map", "max_length", "device"},
    }

    @classmethod
    def resolve_options(cls, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        _check_given(name, opts["backend"], options, cls._BACKEND_OPTIONS)
        if opts["backend"] == "vader":
            if not opts["negative_threshold"] < opts["positive_threshold"]:
                raise ConfigError(
                    f"judge {name!r}: negative_threshold ({opts['negative_threshold']}) must be "
                    f"below positive_threshold ({opts['positive_threshold']})"
                )
        else:
            model = _local_folder(name, "model", opts["model"], "a local classifier folder")
            opts["model"] = str(model)
            opts["tokenizer"] = str(
                _local_folder(name, "tokenizer", opts["tokenizer"], "")
                if opts["tokenizer"]
                else model
            )
        return opts

    def __init__(self, name: str = "text-sentiment", **options: Any) -> None:
        super().__init__(name, **options)
        self.backend = self.options["backend"]
        if self.backend == "vader":
            try:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
            except ImportError:
                raise ConfigError(
                    f"judge {self.name!r} needs the package vaderSentiment: "
                    "pip install 'speechlm-eval[data]'"
                ) from None
            self._vader = SentimentIntensityAnalyzer()
            return
        import transformers

        self.path = Path(self.options["model"])
        self.tokenizer_path = Path(self.options["tokenizer"])
        self._weights = saved_model_identity("model", self.path)  # errors if no weights
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(self.tokenizer_path), local_files_only=True
            )
            self.model = transformers.AutoModelForSequenceClassification.from_pretrained(
                str(self.path), local_files_only=True
            )
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(
                f"judge {self.name!r}: cannot load a sequence classifier from {self.path} "
                f"({type(e).__name__}: {e})"
            ) from None
        self.model.to(self.options["device"]).eval()
        # Tokens kept per text: the option, capped by the tokenizer's own limit where it has one
        # (transformers' "no limit" is a huge number).
        limit = int(getattr(self.tokenizer, "model_max_length", 0) or 0)
        self.max_length = int(self.options["max_length"])
        if 0 < limit < 10**6:
            self.max_length = min(self.max_length, limit)
        cfg = self.model.config
        self.classes = [str(cfg.id2label[i]).lower() for i in range(cfg.num_labels)]
        unmapped = [c for c in self.classes if c not in self.options["label_map"]]
        if unmapped:
            raise ConfigError(
                f"judge {self.name!r}: model {self.path} has class {unmapped[0]!r}, which "
                f"option 'label_map' does not map to {'/'.join(LABELS)} "
                f"(its classes: {', '.join(self.classes)})"
            )

    def identity(self) -> dict[str, Any]:
        if self.backend == "vader":
            import vaderSentiment

            root = Path(vaderSentiment.__file__).parent
            lexicons = ("vader_lexicon.txt", "emoji_utf8_lexicon.txt")
            return {
                **self._identity_head("vaderSentiment"),
                "backend": "vader",
                "lexicon": {f: path_sha256(root / f) for f in lexicons if (root / f).is_file()},
                "rule": "compound >= positive_threshold: positive; "
                "compound <= negative_threshold: negative; else neutral",
                "thresholds": {
                    "positive": self.options["positive_threshold"],
                    "negative": self.options["negative_threshold"],
                },
                "scores": "VADER pos/neg/neu proportions",
            }
        return {
            **self._identity_head("transformers"),
            "backend": "transformers",
            "torch": package_version("torch"),
            "tokenizers": package_version("tokenizers"),
            "model": {
                "name": self.path.name,
                "architecture": _architecture(self.path),
                **self._weights,
                "processor_hash": processor_sha256(self.path),
            },
            "tokenizer": {
                "path": str(self.tokenizer_path),
                "hash": processor_sha256(self.tokenizer_path),
            },
            "classes": list(self.classes),
            "label_map": dict(self.options["label_map"]),
            "max_length": self.max_length,
            "decision": "argmax of softmax over the classes (first on ties), mapped",
            "compute_type": "float32",
        }

    def classify(
        self,
        inputs: Sequence[str],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        """``{"label", "scores", ...}`` of each text, in order (see the module doc)."""
        for i, t in enumerate(inputs):
            if not isinstance(t, str):
                raise TypeError(f"classify: input {i} is {type(t).__name__}, expected str")
        reqs = [SentimentTextRequest(t, f"text {i}") for i, t in enumerate(inputs)]
        return run_judge_requests(
            self, "classify", self._classify, reqs, lambda r: len(r.text), stats, cache, desc
        )

    def _classify(self, requests: list[SentimentTextRequest]) -> list[dict[str, Any]]:
        texts = [r.text for r in requests]
        if self.backend == "vader":
            return [self.vader(t) for t in texts]
        return self._transformers(texts)

    def vader(self, text: str) -> dict[str, Any]:
        """VADER's label, scores and compound of one text, uncached."""
        raw = self._vader.polarity_scores(text)
        c = float(raw["compound"])
        if c >= self.options["positive_threshold"]:
            label = "positive"
        elif c <= self.options["negative_threshold"]:
            label = "negative"
        else:
            label = "neutral"
        scores = {"positive": raw["pos"], "negative": raw["neg"], "neutral": raw["neu"]}
        return {"label": label, "scores": {k: float(v) for k, v in scores.items()}, "compound": c}

    def _transformers(self, texts: list[str]) -> list[dict[str, Any]]:
        import torch

        tok = self.tokenizer
        # No pad token: one text at a time (padding with anything else could change logits).
        groups = [texts] if tok.pad_token_id is not None else [[t] for t in texts]
        out: list[dict[str, Any]] = []
        for g in groups:
            enc = tok(
                g,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.model.device)
            with torch.no_grad():
                probs = _softmax_rows(self.model(**enc).logits)
            out.extend(
                _result(p, self.classes, self.options["label_map"], f"model {self.path}")
                for p in probs
            )
        return out


# --- speech ----------------------------------------------------------------------------------

ASR_TEXT = "ASR transcript -> text sentiment (lexical sentiment only; prosody is not heard)"


class SpeechSentimentJudge(Judge):
    """Sentiment of speech: positive / negative / neutral (see the module doc).

    Options: ``backend`` (``asr+text``, default, or ``transformers``); for asr+text ``asr`` (an
    ASR judge, ``faster-whisper``), ``asr_args`` (its options, ``k=v;k=v``), ``text`` (a text
    sentiment judge, ``text-sentiment``), ``text_args`` (its options); for transformers
    ``model`` (local audio-classifier folder, required), ``emotion_map`` (class -> label;
    default SPIRIT-LM's Expresso map), ``classes`` (``all`` or ``mapped``), ``device`` (cpu).
    ``batch_size`` (clips per call, 8).
    """

    kind = "sentiment"
    offline_default = f"{ASR_TEXT}: faster-whisper (packaged tiny.en) + text-sentiment (VADER)"
    OPTIONS: ClassVar[Spec] = Spec(
        {
            "backend": Opt(str, "asr+text", choices=("asr+text", "transformers")),
            "asr": Opt(str, "faster-whisper", doc="asr+text: the ASR judge"),
            "asr_args": Opt(object, {}, check=_judge_args, doc="asr+text: k=v;k=v"),
            "text": Opt(str, "text-sentiment", doc="asr+text: the text sentiment judge"),
            "text_args": Opt(object, {}, check=_judge_args, doc="asr+text: k=v;k=v"),
            "model": Opt(str, None, doc="transformers: local audio-classifier folder"),
            "emotion_map": Opt(
                object,
                EXPRESSO_EMOTION_2_SENTIMENT,
                check=parse_label_map,
                doc="transformers: class:label pairs",
                expect="class:label pairs",
            ),
            "classes": Opt(str, "all", choices=("all", "mapped"), doc="transformers: argmax over"),
            "device": Opt(str, "cpu", identity=False),
            "batch_size": Opt(int, 8, ge=1, identity=False, doc="clips per call"),
        }
    )
    _BACKEND_OPTIONS: ClassVar[dict[str, set]] = {
        "asr+text": {"asr", "asr_args", "text", "text_args"},
        "transformers": {"model", "emotion_map", "classes", "device"},
    }

    @classmethod
    def resolve_options(cls, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        _check_given(name, opts["backend"], options, cls._BACKEND_OPTIONS)
        if opts["backend"] == "transformers":
            path = _local_folder(name, "model", opts["model"], "a local audio-classifier folder")
            opts["model"] = str(path)
        return opts

    def __init__(self, name: str = "speech-sentiment", **options: Any) -> None:
        super().__init__(name, **options)
        self.backend = self.options["backend"]
        if self.backend == "asr+text":
            # Only checked here: load_judge constructs this judge under its (non-reentrant)
            # lock, so the nested judges are loaded on first use (the properties below).
            asr_cls = registry.get("judges", self.options["asr"])
            if not (isinstance(asr_cls, type) and issubclass(asr_cls, ASRJudge)):
                raise ConfigError(
                    f"judge {self.name!r}: option 'asr': {self.options['asr']!r} is not an "
                    "ASR judge"
                )
            try:
                asr_cls.resolve_options(self.options["asr"], self.options["asr_args"])
            except ConfigError as e:
                raise ConfigError(f"judge {self.name!r}: option 'asr_args': {e}") from None
            text_cls = registry.get("judges", self.options["text"])
            if not (
                isinstance(text_cls, type)
                and issubclass(text_cls, Judge)
                and "text" in text_cls.needs
                and callable(getattr(text_cls, "classify", None))
            ):
                raise ConfigError(
                    f"judge {self.name!r}: option 'text': {self.options['text']!r} is not a "
                    "text sentiment judge (no classify on texts)"
                )
            try:
                text_cls.resolve_options(self.options["text"], self.options["text_args"])
            except ConfigError as e:
                raise ConfigError(f"judge {self.name!r}: option 'text_args': {e}") from None
            return
        import transformers

        self.path = Path(self.options["model"])
        self._weights = saved_model_identity("model", self.path)
        try:
            self.feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(
                str(self.path), local_files_only=True
            )
            self.model = transformers.AutoModelForAudioClassification.from_pretrained(
                str(self.path), local_files_only=True
            )
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(
                f"judge {self.name!r}: cannot load an audio classifier from {self.path} "
                f"({type(e).__name__}: {e})"
            ) from None
        self.model.to(self.options["device"]).eval()
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        cfg = self.model.config
        names = [str(cfg.id2label[i]).lower() for i in range(cfg.num_labels)]
        emap = self.options["emotion_map"]
        if self.options["classes"] == "mapped":
            missing = [e for e in emap if e not in names]
            if missing:
                raise ConfigError(
                    f"judge {self.name!r}: classes=mapped, but model {self.path} has no class "
                    f"{missing[0]!r} (its classes: {', '.join(names)})"
                )
            self.indices = [i for i, n in enumerate(names) if n in emap]
        else:
            self.indices = list(range(len(names)))
        self.classes = [names[i] for i in self.indices]
        self.masked = bool(getattr(self.feature_extractor, "return_attention_mask", False))

    @cached_property
    def asr(self) -> ASRJudge:
        """The ASR judge of ``asr+text`` (loaded once per process by load_judge)."""
        judge = load_judge(self.options["asr"], **self.options["asr_args"])
        assert isinstance(judge, ASRJudge)
        return judge

    @cached_property
    def text(self) -> Any:
        """The text sentiment judge of ``asr+text`` (loaded once per process by load_judge)."""
        return load_judge(self.options["text"], **self.options["text_args"])

    def identity(self) -> dict[str, Any]:
        if self.backend == "asr+text":
            return {
                "judge": self.name,
                "kind": self.kind,
                "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "backend": "asr+text",
                "method": ASR_TEXT,
                "asr": judge_record(self.asr),
                "text": judge_record(self.text),
            }
        return {
            **self._identity_head("transformers"),
            "backend": "transformers",
            "torch": package_version("torch"),
            "model": {
                "name": self.path.name,
                "architecture": _architecture(self.path),
                **self._weights,
                "processor_hash": processor_sha256(self.path),
            },
            "classes": list(self.classes),
            "emotion_map": dict(self.options["emotion_map"]),
            "decision": f"argmax of softmax over {self.options['classes']} classes "
            "(first on ties), mapped",
            "batching": "padded with attention mask" if self.masked else "one clip at a time",
            "input": {"sample_rate": self.sample_rate, "resampler": RESAMPLER},
            "compute_type": "float32",
        }

    def classify(
        self,
        inputs: Sequence[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        """``{"label", "scores", ...}`` of each clip, in order (see the module doc)."""
        if self.backend == "asr+text":
            for i, a in enumerate(inputs):
                if not isinstance(a, Audio):
                    raise TypeError(f"classify: item {i} is {type(a).__name__}, expected Audio")
            texts = self.asr.transcribe(inputs, stats, cache, desc)
            results = self.text.classify(texts, stats, cache, desc)
            return [{**r, "transcript": t} for r, t in zip(results, texts, strict=True)]
        return run_judge(self, "classify", self._classify, inputs, stats, cache, desc)

    @cached_property
    def _where(self) -> str:
        return f"judge {self.name!r}: model {self.path}"

    def _classify(self, requests: list[JudgeRequest]) -> list[dict[str, Any]]:
        import torch

        samples = [r.audio.samples for r in requests]
        groups = [samples] if self.masked else [[s] for s in samples]
        model, fe = self.model, self.feature_extractor
        out: list[dict[str, Any]] = []
        for g in groups:
            inputs = fe(
                g,
                sampling_rate=self.sample_rate,
                padding=True,
                return_tensors="pt",
                return_attention_mask=self.masked,
            )
            kw = {model.main_input_name: inputs[model.main_input_name].to(model.device)}
            if self.masked:
                kw["attention_mask"] = inputs["attention_mask"].to(model.device)
            with torch.no_grad():
                logits = model(**kw).logits[:, self.indices]
            probs = _softmax_rows(logits)
            out.extend(
                _result(p, self.classes, self.options["emotion_map"], self._where) for p in probs
            )
        return out
