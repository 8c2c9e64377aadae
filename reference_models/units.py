"""Composable parts of unit language models (GSLM, TWIST, SLAM, gslm-mini).

A unit speech LM is three parts, built by each model from its arguments or checkpoint and
put together by :class:`reference_models.hf_unit_lm.UnitSpeechLM`:

- a frame encoder (:class:`FrameEncoder`): 16 kHz audio -> frame features (``hf_unit_lm``'s
  transformers HuBERT / wav2vec2 / WavLM layer; ``gslm_mini``'s Whisper frames);
- :class:`UnitTokenizer`: frame features -> nearest k-means centroid per frame (the units)
  -> optional run-length collapse;
- :class:`UnitLM`: a causal LM over unit tokens: the token layout (unit ``u`` -> token
  ``u + offset``, optional BOS and EOS), batched log-probabilities, the sampling context.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from speechlm_eval.audio import Audio

__all__ = ["FrameEncoder", "UnitLM", "UnitTokenizer", "dedup_units", "quantize"]


class FrameEncoder(Protocol):
    """16 kHz audio -> frame features (frames x dims, float32), ``frame_rate`` frames/s.

    One clip per call: a frame must depend on its own clip only, so that results do not
    depend on batching."""

    frame_rate: float

    def __call__(self, audio: Audio) -> np.ndarray: ...


def dedup_units(units: np.ndarray) -> np.ndarray:
    """Run-length collapse: drop each unit equal to its predecessor (``1 1 2 2 1`` -> ``1 2 1``)."""
    u = np.asarray(units)
    if u.ndim != 1:
        raise ValueError(f"expected a 1-D unit sequence, got shape {u.shape}")
    if u.size == 0:
        return u.copy()
    keep = np.empty(u.shape, dtype=bool)
    keep[0] = True
    np.not_equal(u[1:], u[:-1], out=keep[1:])
    return u[keep]


def quantize(features: np.ndarray | torch.Tensor, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) for each row of ``features``.

    Computed in float64 with the expanded form ``|x|^2 - 2 x.c + |c|^2`` so that
    near-ties resolve the same way as a direct computation; exact ties go to the
    lowest index (argmin returns the first minimum).
    """
    x = torch.as_tensor(features).detach().to("cpu", torch.float64)
    c = torch.as_tensor(np.asarray(centroids), dtype=torch.float64)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"features {tuple(x.shape)} and centroids {tuple(c.shape)} do not match")
    d = (x * x).sum(1, keepdim=True) - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    return torch.argmin(d, dim=1).numpy().astype(np.int64)


class UnitTokenizer:
    """Frame features -> units: nearest of K centroids per frame, then (``dedup``) the
    run-length collapse."""

    def __init__(self, centroids: np.ndarray, dedup: bool) -> None:
        self.centroids = centroids
        self.dedup = dedup

    @property
    def n_units(self) -> int:
        """Number of k-means clusters (K)."""
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        """Feature dimension the centroids live in (D)."""
        return int(self.centroids.shape[1])

    def frame_units(self, features: np.ndarray) -> np.ndarray:
        """The unit of every frame (int64, never collapsed): what a unit vocoder reads."""
        return quantize(features, self.centroids)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """The unit sequence (int64; run-length collapsed if ``dedup``)."""
        units = self.frame_units(features)
        return dedup_units(units) if self.dedup else units


class UnitLM:
    """A causal LM (transformers, ``model(input_ids=..., attention_mask=...).logits``) over
    unit tokens: unit ``u`` is token ``u + offset``; ``bos`` / ``eos`` are optional special
    tokens (None: not used); ``max_tokens`` is its context (None: unbounded)."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        n_units: int,
        offset: int,
        bos: int | None,
        eos: int | None,
        max_tokens: int | None,
        device: torch.device,
    ) -> None:
        self.model = model
        self.n_units, self.offset, self.bos, self.eos = n_units, offset, bos, eos
        self.max_tokens = max_tokens
        self.device = device

    def tokens(self, units: np.ndarray) -> list[int]:
        """Token ids ``[bos] + (units + offset) + [eos]`` (bos/eos omitted when None)."""
        ids = (units + self.offset).tolist()
        if self.bos is not None:
            ids.insert(0, self.bos)
        if self.eos is not None:
            ids.append(self.eos)
        return ids

    def context(self, units: np.ndarray) -> list[int]:
        """The context a continuation of ``units`` is sampled after: ``[bos] + units + offset``
        (no closing EOS)."""
        head = [self.bos] if self.bos is not None else []
        return [int(t) for t in (*head, *(units + self.offset))]

    def allowed_next(self) -> torch.Tensor:
        """Which tokens may be sampled (bool over the vocabulary): the units and EOS."""
        vocab = int(self.model.get_input_embeddings().num_embeddings)
        allowed = torch.zeros(vocab, dtype=torch.bool)
        allowed[self.offset : self.offset + self.n_units] = True
        if self.eos is not None:
            allowed[self.eos] = True
        return allowed

    @torch.inference_mode()
    def logprobs(self, seqs: list[list[int]]) -> list[float]:
        """Sum of ``log p(token | previous tokens)`` over all tokens after the first, per
        sequence. All go through the LM as one right-padded batch with an attention mask."""
        lengths = [len(s) for s in seqs]
        width = max(lengths)
        input_ids = torch.zeros((len(seqs), width), dtype=torch.long)  # pad id irrelevant: masked
        attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            input_ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            attention_mask[i, : len(s)] = 1
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            use_cache=False,
        )
        logits = out.logits
        totals = []
        for i, n in enumerate(lengths):
            # Row by row keeps the float32 copy at T x V rather than B x T x V.
            logp = torch.log_softmax(logits[i, : n - 1].float(), dim=-1)
            target = input_ids[i, 1:n].to(logp.device)
            totals.append(float(logp.gather(1, target[:, None]).sum()))
        return totals

    def __repr__(self) -> str:
        layout: dict[str, Any] = {"offset": self.offset, "bos": self.bos, "eos": self.eos}
        return f"UnitLM({type(self.model).__name__}, {self.n_units} units, {layout})"
