"""Raters' answers: validation of one submitted answer, and the per-rater answer files.

One file per rater, ``answers/<rater>.json``, rewritten atomically (temporary file, fsync,
rename) after every answer, so a crash never leaves a half-written file and a reload finds
every answer given so far. The static page writes the same format for the rater to send back.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..results import atomic_write_text
from .study import RATER_ID, SCALES, Study

ANSWERS_FORMAT = "slm-eval-listen-answers"
_FIELDS = {"trial", "value", "played", "elapsed_ms"}
MAX_ELAPSED_MS = 24 * 3600 * 1000


class AnswerError(ValueError):
    """A submitted answer that is not valid for the study (the server answers 4xx)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_answer(study: Study, plan: dict[str, dict[str, Any]], body: Any) -> dict[str, Any]:
    """Check one answer ``{"trial", "value", "played", "elapsed_ms"?}`` against the rater's
    plan (trial id -> presented trial) and return the record to store. Raises AnswerError
    naming the field and what was expected."""
    if not isinstance(body, dict):
        raise AnswerError("the answer must be a JSON object")
    extra = set(body) - _FIELDS
    if extra:
        raise AnswerError(f"unknown field(s): {', '.join(sorted(map(str, extra)))}")
    tid = body.get("trial")
    if not isinstance(tid, str) or tid not in plan:
        raise AnswerError(f"trial: unknown trial id {tid!r}")
    shown = plan[tid]
    stims = list(shown["stimuli"])
    must_play = set(stims) | ({shown["reference"]} if shown.get("reference") else set())
    played = body.get("played")
    if not isinstance(played, list) or not all(isinstance(p, str) for p in played):
        raise AnswerError("played: expected a list of stimulus ids")
    unknown = set(played) - must_play
    if unknown:
        raise AnswerError(f"played: unknown stimulus id(s) {', '.join(sorted(unknown))}")
    if set(played) != must_play:
        raise AnswerError("played: every sample of the trial must be played before rating")
    elapsed = body.get("elapsed_ms")
    if elapsed is not None and not (_is_int(elapsed) and 0 <= elapsed <= MAX_ELAPSED_MS):
        raise AnswerError(f"elapsed_ms: expected an integer in 0..{MAX_ELAPSED_MS}")
    value = body.get("value")
    test = study.test
    scale = SCALES[test]
    if test in ("mos", "smos", "cmos"):
        if not (_is_int(value) and scale["min"] <= value <= scale["max"]):
            raise AnswerError(f"value: expected an integer in {scale['min']}..{scale['max']}")
    elif test == "ab":
        if not isinstance(value, str) or value not in stims:
            raise AnswerError("value: expected the id of one of the two samples")
    else:  # mushra
        if not isinstance(value, dict) or set(value) != set(stims):
            raise AnswerError("value: expected a score for each sample of the trial, and no other")
        for k, v in value.items():
            if not (_is_int(v) and 0 <= v <= 100):
                raise AnswerError(f"value.{k}: expected an integer in 0..100")
    return {
        "trial": tid,
        "value": value,
        "shown": stims,
        "elapsed_ms": elapsed,
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }


def answers_path(study: Study, rater: str) -> Path:
    if not RATER_ID.match(rater):
        raise AnswerError("rater id: 1 to 64 letters, digits, '-' or '_'")
    return study.root / "answers" / f"{rater}.json"


def read_rater(study: Study, rater: str) -> dict[str, Any]:
    """The rater's answers so far (an empty record for a new rater)."""
    path = answers_path(study, rater)
    if not path.exists():
        return {
            "format": ANSWERS_FORMAT,
            "study_id": study.study_id,
            "rater": rater,
            "answers": {},
        }
    return load_answers_file(study, path)


def write_rater(study: Study, record: dict[str, Any]) -> None:
    """Store the rater's record atomically (never a half-written file)."""
    atomic_write_text(answers_path(study, record["rater"]), json.dumps(record, indent=1) + "\n")


def load_answers_file(study: Study, path: Path) -> dict[str, Any]:
    """Read and re-validate one answers file (from the server or sent back from the static page):
    every answer is checked against the rater's plan, so a hand-edited or foreign file fails
    with a DataError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable answers file ({e})") from None
    if not isinstance(data, dict) or data.get("format") != ANSWERS_FORMAT:
        raise DataError(f"{path}: 'format' must be {ANSWERS_FORMAT!r}")
    if data.get("study_id") != study.study_id:
        raise DataError(
            f"{path}: answers for study {data.get('study_id')!r}, not this study ({study.study_id})"
        )
    rater = data.get("rater")
    if not isinstance(rater, str) or not RATER_ID.match(rater):
        raise DataError(f"{path}: 'rater' must be 1 to 64 letters, digits, '-' or '_'")
    answers = data.get("answers")
    if not isinstance(answers, dict):
        raise DataError(f"{path}: 'answers' must be a mapping trial id -> answer")
    plan = {t["id"]: t for t in study.plan(rater)}
    for tid, rec in answers.items():
        if not isinstance(rec, dict):
            raise DataError(f"{path}: answers.{tid} must be an object")
        body = {
            "trial": rec.get("trial"),
            "value": rec.get("value"),
            "played": list(rec.get("shown") or []),
            "elapsed_ms": rec.get("elapsed_ms"),
        }
        t = plan.get(tid)
        if t is not None and t.get("reference"):
            body["played"].append(t["reference"])
        try:
            validate_answer(study, plan, body)
        except AnswerError as e:
            raise DataError(f"{path}: answers.{tid}: {e}") from None
        if rec.get("trial") != tid or rec.get("shown") != plan[tid]["stimuli"]:
            raise DataError(f"{path}: answers.{tid}: not the trial as this rater was shown it")
        if isinstance(rec.get("elapsed_ms"), float) and not math.isfinite(rec["elapsed_ms"]):
            raise DataError(f"{path}: answers.{tid}.elapsed_ms must be finite")
    return data


def load_all_answers(study: Study, extra: list[Path] | None = None) -> list[dict[str, Any]]:
    """Every rater's record: ``answers/*.json`` plus ``extra`` files (from the static page).
    Two files for one rater id are an error (which one counts would be a guess)."""
    files = sorted((study.root / "answers").glob("*.json")) + list(extra or [])
    out: dict[str, dict[str, Any]] = {}
    where: dict[str, Path] = {}
    for f in files:
        rec = load_answers_file(study, f)
        r = rec["rater"]
        if r in out:
            raise DataError(f"{f}: rater {r!r} already answered in {where[r]}")
        out[r] = rec
        where[r] = f
    return [out[r] for r in sorted(out)]
