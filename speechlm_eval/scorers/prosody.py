"""Scorer ``prosody``: pGSLM's prosody metrics in *audio space* (any ``continue`` model).

pGSLM (Kharitonov et al. 2022; fairseq ``examples/textless_nlp/pgslm/eval/cont_metrics.py``)
measures its prosody streams directly (stream space: teacher-forced units, speaker-mean
normalised log-F0 per unit segment). A ``continue`` model returns audio, so here the ``pitch``
judge re-extracts F0 from the audio and the metrics are utterance-level re-derivations
(definitions: :mod:`speechlm_eval.prosody_metrics`, "Audio space"); they carry the suffix
``_audio`` so they are never mistaken for pGSLM's stream-space numbers:

- ``f0_min_mae_audio`` (correctness): per prompt, the smallest distance over its samples
  between a continuation's mean normalised log-F0 and the reference continuation's, averaged
  over prompts (lower is better);
- ``f0_corr_audio`` (consistency): Pearson r between the prompt's mean normalised log-F0 and
  each continuation's, the prompt repeated once per sample as pGSLM pairs them;
- ``f0_std_audio`` (expressiveness): the pooled std of normalised log-F0 over the voiced
  frames of every continuation; the reference continuations' value is reported under the
  filter ``oracle`` to compare with.

Normalisation: log-F0 minus the *reference* speaker's mean log-F0 over the voiced frames of
that speaker's reference utterances (prompts and reference continuations; pGSLM's per-speaker
``F0Stat``); an utterance without a speaker id is its own speaker. Audio with no voiced frame
has no value: it is excluded and counted, never averaged as NaN. The duration stream has no
audio-space counterpart here (it would need the model's unit encoder).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import prosody_metrics as pm
from ..audio import Audio
from ..errors import DataError
from ..metrics import Metric, ScoreReport
from ..options import Opt, Spec
from .continuation import ContinuationReport, Judged, PartScorer, Prompt, rows_by_filter

if TYPE_CHECKING:
    from ..cache import ResultCache
    from ..execute import ExecStats


OPTIONS = Spec(
    {"primary": Opt(str, None, doc="the headline metric, 'metric,filter'")},
    noun="key",
    strict=True,
)


@dataclass
class ProsodyRows:
    """What :meth:`ProsodyScorer.judge` keeps of one part of the prompts: a row per
    continuation with its F0 track, and the prompts' and references' tracks."""

    rows: list[dict[str, Any]]
    prompt_f0: dict[str, np.ndarray]
    truth_f0: dict[str, np.ndarray]


class ProsodyScorer(PartScorer):
    """The ``prosody`` scorer (see the module docstring). Option: ``primary``."""

    name = "prosody"
    inputs = "continuations"
    roles = ("pitch",)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = OPTIONS.parse(f"scorer {self.name!r}", options or {})

    def judge(
        self,
        prompts: Sequence[Prompt],
        judged: Sequence[Judged],
        references: Mapping[str, Audio],
        prompt_audio: Mapping[str, Audio],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> ProsodyRows:
        """F0 tracks of one part's prompts, references and continuations (no audio kept:
        a track is 1/40 of its audio's size at 5 ms frames)."""
        ids = [p.doc_id for p in prompts]
        audios = (
            [prompt_audio[d] for d in ids]
            + [references[d] for d in ids]
            + [j.continuation for j in judged]
        )
        tracks = [np.asarray(t.hz) for t in judges["pitch"].f0(audios, stats, cache, desc)]
        n = len(ids)
        rows = [
            {
                "doc_id": j.doc_id,
                "temperature": j.temperature,
                "filter": j.filter,
                "sample": j.sample,
                "f0": f0,
            }
            for j, f0 in zip(judged, tracks[2 * n :], strict=True)
        ]
        return ProsodyRows(
            rows,
            dict(zip(ids, tracks[:n], strict=True)),
            dict(zip(ids, tracks[n : 2 * n], strict=True)),
        )

    def finish(self, prompts: Sequence[Prompt], parts: Sequence[ProsodyRows]) -> ContinuationReport:
        """The metrics over every part (:meth:`aggregate`)."""
        return self.aggregate(
            prompts,
            [r for part in parts for r in part.rows],
            {d: t for part in parts for d, t in part.prompt_f0.items()},
            {d: t for part in parts for d, t in part.truth_f0.items()},
        )

    def aggregate(
        self,
        prompts: Sequence[Prompt],
        rows: list[dict[str, Any]],
        prompt_f0: Mapping[str, np.ndarray],
        truth_f0: Mapping[str, np.ndarray],
    ) -> ContinuationReport:
        """Metrics from the F0 tracks alone (prompts', references', continuations')."""
        speaker = {p.doc_id: p.speaker if p.speaker is not None else p.doc_id for p in prompts}
        by_speaker: dict[str, list[np.ndarray]] = defaultdict(list)
        for d, s in speaker.items():
            by_speaker[s] += [prompt_f0[d], truth_f0[d]]
        spk_mean: dict[str, float] = {}
        for s, f0s in by_speaker.items():
            try:
                spk_mean[s] = pm.speaker_log_f0_stats(f0s)[0]
            except ValueError:
                raise DataError(
                    f"speaker {s!r}: no voiced frame in any reference utterance; the pitch "
                    "judge found no F0 to normalise by"
                ) from None
        mean_of = {d: spk_mean[speaker[d]] for d in speaker}
        ids = list(speaker)
        p_mean = [pm.audio_f0_utterance_mean(prompt_f0[d], mean_of[d]) for d in ids]
        t_mean = [pm.audio_f0_utterance_mean(truth_f0[d], mean_of[d]) for d in ids]
        for r in rows:
            r["f0_mean_norm"] = pm.audio_f0_utterance_mean(r["f0"], mean_of[r["doc_id"]])
            r["voiced_frames"] = int(np.count_nonzero(r["f0"]))
        by_filter: dict[str, ScoreReport] = {}
        excluded: dict[str, Any] = {}
        for filt, rs in rows_by_filter(rows).items():
            by_doc: dict[str, list[float | None]] = defaultdict(list)
            for r in rs:  # one pass, not one scan of the rows per prompt
                by_doc[r["doc_id"]].append(r["f0_mean_norm"])
            gens = [by_doc.get(d, []) for d in ids]
            mae = pm.audio_f0_min_mae(gens, t_mean)
            corr = pm.audio_f0_correlation(p_mean, gens)
            std = pm.audio_f0_pooled_std([r["f0"] for r in rs], [mean_of[r["doc_id"]] for r in rs])
            m: dict[str, Metric] = {}
            if mae["min_mae"] is not None:
                m["f0_min_mae_audio"] = Metric(mae["min_mae"], None, mae["n_prompts"], False)
            if corr["r"] is not None and np.isfinite(corr["r"]):
                m["f0_corr_audio"] = Metric(float(corr["r"]), None, corr["n_pairs"], True)
            if std["std"] is not None:
                m["f0_std_audio"] = Metric(std["std"], None, std["n_frames"], True)
            by_filter[filt] = ScoreReport(m)
            excluded[filt] = {
                "min_mae": {k: mae[k] for k in ("excluded_prompts", "excluded_samples")},
                "corr": {k: corr[k] for k in ("excluded_prompts", "excluded_samples")},
                "unvoiced_continuations": std["excluded_utterances"],
            }
        ref_std = pm.audio_f0_pooled_std([truth_f0[d] for d in ids], [mean_of[d] for d in ids])
        if ref_std["std"] is not None:
            by_filter["oracle"] = ScoreReport(
                {"f0_std_audio": Metric(ref_std["std"], None, ref_std["n_frames"], True)}
            )
        excluded["oracle"] = {"unvoiced_continuations": ref_std["excluded_utterances"]}
        for r in rows:
            del r["f0"]  # frame tracks stay out of the samples file (the judge's cache has them)
        info = {
            "primary": self.options["primary"],
            "scorer": self.name,
            "space": "audio (F0 re-extracted by the pitch judge; utterance-level re-derivation)",
            "speaker_log_f0_mean": {s: round(v, 6) for s, v in sorted(spk_mean.items())},
            "excluded": excluded,
        }
        return ContinuationReport(by_filter, rows, info)
