"""Task -> family, display labels and metric conventions for the leaderboard.

The family of a task decides which table it appears in. It is resolved in this order:
an explicit override (``--family task=family``), a ``family`` recorded in the results file's
task config (``configs.<task>.family`` or ``configs.<task>.metadata.family``), the table of
known task names below, the task's capability (``configs.<task>.capability``), else ``other``.
"""

from __future__ import annotations

import re
from typing import Any

# Display order and titles of the families (issue 6: likelihood pairs, representation,
# generation, dialogue, downstream, quality; issue 14 splits the sampled-continuation tasks into
# generation, judged on the transcript and the audio, and paralinguistic, judged on prosody and
# expressivity: pGSLM's F0 metrics, STSP's sentiment preservation).
FAMILIES: dict[str, str] = {
    "likelihood": "Likelihood pairs",
    "representation": "Representation",
    "generation": "Generation",
    "paralinguistic": "Paralinguistic",
    "dialogue": "Dialogue",
    "downstream": "Downstream",
    "quality": "Quality",
    "other": "Other",
}

# The capability a task needs says what kind of evaluation it is (DESIGN.md's table).
CAPABILITY_FAMILY: dict[str, str] = {
    "loglikelihood": "likelihood",
    "encode": "representation",
    "resynthesize": "representation",
    "continue": "generation",
    "respond": "downstream",
    "converse": "dialogue",
}

# Known task names (exact) and name prefixes (ending in "_") -> family, in display order.
_TASK_RULES: tuple[tuple[str, str], ...] = (
    ("swuggy", "likelihood"),
    ("sblimp", "likelihood"),
    ("ssc", "likelihood"),
    ("tsc", "likelihood"),
    ("salmon_", "likelihood"),
    ("prosaudit", "likelihood"),
    ("abx", "representation"),
    ("abx_", "representation"),
    ("resynth", "representation"),
    ("resynth_", "representation"),
    ("genppl", "generation"),
    ("auto_bleu", "generation"),
    ("continuation", "generation"),
    ("continuation_", "generation"),
    ("prosody", "paralinguistic"),
    ("prosody_", "paralinguistic"),
    ("stsp", "paralinguistic"),
    ("stsp_", "paralinguistic"),
    ("turn_taking", "dialogue"),
    ("dialogue_", "dialogue"),
    ("converse_", "dialogue"),
    ("fdbench_", "dialogue"),
    ("mos", "quality"),
    ("mos_", "quality"),
    ("human_", "quality"),  # listening tests (slm-eval listen analyze): beside automatic MOS
)

_TASK_LABELS: dict[str, str] = {
    "swuggy": "sWUGGY",
    "sblimp": "sBLIMP",
    "ssc": "sSC",
    "tsc": "tSC",
    "genppl": "GenPPL",
    "continuation_gslm": "GSLM continuation",
    "continuation_quality": "Continuation quality",
    "continuation_llm": "LLM judge (ChatGPT score)",
    "prosody_pgslm": "pGSLM prosody",
    "prosody_pgslm_stream": "pGSLM prosody (streams)",
    "converse_turn_taking": "Turn-taking (dGSLM)",
    "converse_fullduplex": "Pause / barge-in",
    "converse_interactive": "Not addressed",
    "dialogue_continuation": "Dialogue continuation (dGSLM)",
    "fdbench_pause_synthetic": "FDB pause (synthetic)",
    "fdbench_pause_candor": "FDB pause (Candor)",
    "fdbench_backchannel": "FDB backchannel",
    "fdbench_turn_taking": "FDB turn-taking (Candor)",
    "fdbench_interruption": "FDB interruption",
    "fdbench_v15_interruption": "FDB v1.5 interruption (timing)",
    "fdbench_v15_backchannel": "FDB v1.5 backchannel (timing)",
    "fdbench_v15_talking_to_other": "FDB v1.5 talking to other (timing)",
    "fdbench_v15_background_speech": "FDB v1.5 background speech (timing)",
    "fdbench_v15_interruption_behavior": "FDB v1.5 interruption (behaviour)",
    "fdbench_v15_backchannel_behavior": "FDB v1.5 backchannel (behaviour)",
    "fdbench_v15_talking_to_other_behavior": "FDB v1.5 talking to other (behaviour)",
    "fdbench_v15_background_speech_behavior": "FDB v1.5 background speech (behaviour)",
    "fdbench_interruption_relevance": "FDB interruption relevance",
}

# Metrics shown in a column of their own beside a task's headline (same dataset, same filter as
# the row's headline, e.g. the same temperature), with the column's label. slamkit's table
# prints Auto-BLEU next to GenPPL, both from one generation run (its asr_perplexity metric):
# our ``genppl`` task is that run, so its ``auto_bleu_slamkit`` gets the Auto-BLEU column.
# GSLM reports the PPX-VERT area with its two oracle anchors.
EXTRA_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "genppl": (("auto_bleu_slamkit", "Auto-BLEU"),),
    "continuation_gslm": (
        ("ppx_at_oracle_vert", "PPX @ oracle VERT"),
        ("vert_at_oracle_ppx", "VERT @ oracle PPX"),
    ),
    "continuation_quality": (("speaker_similarity", "Speaker similarity"),),
    "prosody_pgslm_stream": (("dur_min_mae_stream", "Duration min-MAE"),),
    # Full-Duplex-Bench v1's README columns (its backchannel, turn-taking and interruption
    # groups), and this harness' full-duplex stimuli.
    "fdbench_backchannel": (("freq", "BC freq"), ("jsd", "BC JSD")),
    "fdbench_turn_taking": (("latency", "Turn latency (s)"),),
    "fdbench_interruption": (("latency", "Interr. latency (s)"),),
    "converse_fullduplex": (
        ("response_latency", "Response latency (s)"),
        ("interrupt_stop_rate", "Stops after barge-in"),
    ),
    "converse_interactive": (("response_rate", "Answers requests"),),
}


def rule_family(task: str) -> str | None:
    """Family from the table of known task names, or None."""
    for name, fam in _TASK_RULES:
        if task == name or (name.endswith("_") and task.startswith(name)):
            return fam
    return None


def task_rank(task: str) -> tuple[int, str]:
    """Sort key: known tasks in the table's order, then the rest alphabetically."""
    for i, (name, _) in enumerate(_TASK_RULES):
        if task == name or (name.endswith("_") and task.startswith(name)):
            return (i, task)
    return (len(_TASK_RULES), task)


def config_family(config: Any) -> str | None:
    """A ``family`` declared in a results file's task config (top level or ``metadata``)."""
    if not isinstance(config, dict):
        return None
    fam = config.get("family")
    if fam is None and isinstance(config.get("metadata"), dict):
        fam = config["metadata"].get("family")
    return fam if isinstance(fam, str) and fam else None


def task_label(task: str) -> str:
    """Human label of a task (``salmon_speaker_consistency`` -> ``SALMon speaker consistency``)."""
    if task in _TASK_LABELS:
        return _TASK_LABELS[task]
    if task.startswith("salmon_"):
        return "SALMon " + task[len("salmon_") :].replace("_", " ")
    if task.startswith("human_"):  # marked as human, so it is never read as a predictor's MOS
        return task[len("human_") :].upper() + " (human listening test)"
    return task


# Metrics that are proportions (results files record 0.848) and are shown in percent (84.8),
# as speech papers quote them: accuracies and error rates (ABX, WER, CER, EER), including their
# subgroups and variants (``acc_freq_oov``, ``wer_original``, ``wer_delta`` in points), and the
# BLEU family of the generation tasks (self-, auto-, continuation-BLEU: slamkit's SLAM.md prints
# Auto-BLEU x 100, 3.46 for a mean of 0.0346; BLEU is quoted x 100 generally). VERT, the
# geometric mean of self- and auto-BLEU, and its curve summaries stay in the units fairseq's
# GSLM scripts print and the PPX-VERT area is computed in (fractions).
# The lookahead keeps names that merely start alike (``werewolf``) out.
_PERCENT = re.compile(
    r"^(acc|accuracy|exact_match|abx|error_rate|err_rate|wer|cer|eer|(self|auto|cont)_bleu\d*)"
    r"(?![A-Za-z0-9])"
)
# Percent metrics printed with two decimals (slamkit prints Auto-BLEU as 3.46): small values.
_TWO_DECIMALS = re.compile(r"^(self|auto|cont)_bleu")
# Metrics where lower is better, when the results file does not say (lm-eval files do):
# errors and perplexities (GSLM's PPX), repetition (auto-/self-BLEU, VERT), F0 error (MAE),
# latencies, JS distances and unwanted turns (pause take-over, false responses).
_LOWER = re.compile(
    r"(^|_)(wer|cer|error|err|ppl|perplexity|genppl|ppx|loss|auto_bleu|self_bleu|vert|mae|eer"
    r"|abx|latency|jsd|takeover|false)"
)


def is_percent(metric: str) -> bool:
    """Whether a metric is a proportion shown in % (the tables multiply it by 100)."""
    return bool(_PERCENT.search(metric))


def percent_decimals(metric: str) -> int:
    """Decimals of a metric shown in %: 2 for the BLEU family (as slamkit prints it), else 1."""
    return 2 if _TWO_DECIMALS.search(metric) else 1


def extra_columns(task: str) -> tuple[tuple[str, str], ...]:
    """(metric, column label) of the columns shown beside a task's headline."""
    return EXTRA_COLUMNS.get(task, ())


def guess_higher_is_better(metric: str) -> bool:
    return not _LOWER.search(metric)
