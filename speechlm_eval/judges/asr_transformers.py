"""ASR judge ``transformers-asr``: a transformers speech-recognition model from a local folder.

CTC models (wav2vec2, HuBERT, WavLM, ... ``*ForCTC``) decode greedily (argmax, the
pipeline's CTC decoding); sequence-to-sequence models (Whisper, Speech2Text) decode with
beam search of ``beam_size`` (greedy when 1), no sampling. Everything is read from
``model=DIR`` (``save_pretrained`` output with its tokenizer and feature extractor);
nothing is downloaded. Batching and decoding are transformers' ``pipeline``; audio is
resampled here (scipy, recorded) to the feature extractor's rate before it gets there.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from ..hashing import saved_model_identity, sha256_file
from ..options import Opt, Spec
from .base import ASRJudge, package_version

WHISPER_WINDOW_SECONDS = 30
_PROCESSOR_SUFFIXES = (".json", ".txt", ".model", ".tiktoken")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_DTYPES = ("float32", "float16", "bfloat16")


def processor_sha256(model_dir: Path) -> str:
    """SHA-256 over the tokenizer / feature-extractor / generation files (all but weights)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(model_dir.iterdir()):
        if p.is_file() and p.suffix in _PROCESSOR_SUFFIXES and p.name not in _WEIGHT_INDEXES:
            h.update(f"{p.name}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


class TransformersASRJudge(ASRJudge):
    """transformers ASR pipeline on a local model folder.

    Options: ``model`` (folder; required), ``beam_size`` (seq2seq only; default 5),
    ``language`` (multilingual Whisper only; default ``en``), ``device`` (default ``cpu``),
    ``dtype`` (default ``float32``), ``batch_size`` (default 16).
    """

    OPTIONS: ClassVar[Spec] = Spec(
        {
            "model": Opt(str, None, doc="local model folder (required)"),
            "beam_size": Opt(int, 5, ge=1, doc="seq2seq only; 1 = greedy"),
            "language": Opt(str, "en", doc="multilingual Whisper only"),
            "device": Opt(str, "cpu"),
            "dtype": Opt(str, "float32", choices=_DTYPES),
            "batch_size": Opt(int, 16, ge=1),
        }
    )

    @classmethod
    def resolve_options(cls, name: str, options: Any) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        if not opts["model"]:
            raise ConfigError(f"judge {name!r}: option 'model' (a local model folder) is required")
        path = Path(opts["model"]).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"judge {name!r}: option 'model': {path} is not a transformers model folder "
                "(no config.json); hub ids are not accepted (nothing is downloaded)"
            )
        opts["model"] = str(path.resolve())
        return opts

    def __init__(self, name: str = "transformers-asr", **options: Any) -> None:
        super().__init__(name, **options)
        import torch
        import transformers

        self.path = Path(self.options["model"])
        self._weights = saved_model_identity("model", self.path)  # errors if no weights
        dtype = getattr(torch, self.options["dtype"])
        major = int(transformers.__version__.split(".")[0])
        # transformers 5 renamed torch_dtype to dtype.
        dkw = {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}
        try:
            self.pipe = transformers.pipeline(
                "automatic-speech-recognition",
                model=str(self.path),
                device=self.options["device"],
                model_kwargs=dkw,
            )
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(
                f"judge {self.name!r}: cannot load an ASR pipeline from {self.path} "
                f"({type(e).__name__}: {e})"
            ) from None
        self.pipe.model.eval()
        tok = self.pipe.tokenizer
        if tok is not None and tok.pad_token_id is None and tok.eos_token_id is not None:
            # Batching needs a pad token; padded positions are masked or cut, so EOS (what
            # transformers suggests) cannot change a transcript.
            tok.pad_token = tok.eos_token
        self.sample_rate = int(self.pipe.feature_extractor.sampling_rate)
        self.arch = self.pipe.type  # "ctc", "seq2seq", "seq2seq_whisper", ...
        if self.arch not in ("ctc", "seq2seq", "seq2seq_whisper"):
            raise ConfigError(
                f"judge {self.name!r}: {self.path} is a {self.arch!r} ASR model; supported: "
                "CTC and sequence-to-sequence (Whisper, Speech2Text)"
            )

    @cached_property
    def _multilingual(self) -> bool:
        gc = getattr(self.pipe.model, "generation_config", None)
        return bool(getattr(gc, "is_multilingual", False))

    def _generate_kwargs(self) -> dict[str, Any]:
        if self.arch == "ctc":
            return {}
        kw: dict[str, Any] = {"num_beams": self.options["beam_size"], "do_sample": False}
        if self.arch == "seq2seq_whisper" and self._multilingual:
            kw.update(language=self.options["language"], task="transcribe")
        return kw

    def _transcribe_batch(self, samples: list[np.ndarray]) -> list[str]:
        if self.arch == "ctc":
            return self._ctc(samples)
        limit = WHISPER_WINDOW_SECONDS * self.sample_rate
        long_ = self.arch == "seq2seq_whisper"
        out: list[str | None] = [None] * len(samples)
        short = [i for i, s in enumerate(samples) if not (long_ and s.size > limit)]
        kw = self._generate_kwargs()
        extra = {"generate_kwargs": kw} if kw else {}
        if short:
            res = self.pipe([samples[i] for i in short], batch_size=len(short), **extra)
            for i, r in zip(short, res, strict=True):
                out[i] = r["text"]
        for i, s in enumerate(samples):
            if out[i] is None:
                # Whisper long-form (sequential windows) needs timestamp prediction.
                out[i] = self.pipe(s, return_timestamps=True, **extra)["text"]
        return [t or "" for t in out]

    def _ctc(self, samples: list[np.ndarray]) -> list[str]:
        """Batched CTC forward, greedy decoding cut at each utterance's own length.

        Written here because transformers' pipeline takes the argmax over *every* frame of a
        padded batch, so a short utterance's transcript changes with its batch-mates (the
        padded frames emit tokens). Models without an attention mask (wav2vec2-base style,
        group norm) change under zero padding even on real frames, so they run one
        utterance at a time: transcripts never depend on batch composition.
        """
        import torch

        fe, tok, model = self.pipe.feature_extractor, self.pipe.tokenizer, self.pipe.model
        masked = bool(getattr(fe, "return_attention_mask", False))
        groups = [samples] if masked else [[s] for s in samples]
        out: list[str] = []
        for g in groups:
            inputs = fe(
                g,
                sampling_rate=self.sample_rate,
                padding=True,
                return_tensors="pt",
                return_attention_mask=masked,
            )
            kw = {
                model.main_input_name: inputs[model.main_input_name].to(model.device, model.dtype)
            }
            if masked:
                kw["attention_mask"] = inputs["attention_mask"].to(model.device)
            with torch.no_grad():
                ids = model(**kw).logits.argmax(dim=-1).cpu()
            lengths = model._get_feat_extract_output_lengths(torch.tensor([s.size for s in g]))
            # skip_special_tokens=False: as the pipeline decodes CTC (the pad token is the blank).
            out.extend(tok.decode(ids[i, : int(n)]) for i, n in enumerate(lengths))
        return out

    def identity(self) -> dict[str, Any]:
        cfg = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        decoding: dict[str, Any]
        if self.arch == "ctc":
            masked = bool(getattr(self.pipe.feature_extractor, "return_attention_mask", False))
            decoding = {
                "method": "CTC greedy (argmax over each utterance's own frames)",
                "batching": "padded with attention mask" if masked else "one utterance at a time",
            }
        else:
            decoding = {
                "method": "beam search" if self.options["beam_size"] > 1 else "greedy",
                "beam_size": self.options["beam_size"],
                "do_sample": False,
            }
            if self.arch == "seq2seq_whisper":
                decoding["language"] = self.options["language"] if self._multilingual else "en"
                decoding["long_form"] = "sequential 30 s windows with timestamps above 30 s"
        return {
            **self._identity_head("transformers"),
            "runtime": {"torch": package_version("torch")},
            "model": {
                "name": self.path.name,
                "architecture": (cfg.get("architectures") or [cfg.get("model_type")])[0],
                "type": self.arch,
                **self._weights,
                "processor_hash": processor_sha256(self.path),
            },
            "compute_type": self.options["dtype"],
            "decoding": decoding,
            "input": self._input_identity(),
        }
