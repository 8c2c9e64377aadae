"""LLM judge ``llm-judge``: an LLM rates a spoken continuation from its transcripts.

The survey's "ChatGPT score" for speech continuations, as slamkit's ``llm_as_judge`` metric
defines it (repository ``slp-rl/slamkit``, MIT licence; read at commit 388b402, 2025-05-18):

- the instrument (``config/metric/llm_as_judge.yaml``, key ``instruction``): one user message
  asking the LLM to rate how relevant and likely the continuation is given the prompt, and
  whether it makes sense, on an integer scale from 1 (very unlikely, irrelevant) to 5 (very
  likely, highly relevant), to analyse briefly and then end with a LaTeX ``\\boxed{}`` answer;
  the two transcripts are substituted for the placeholders ``[prompt_audio_transcription]``
  and ``[generated_audio_transcription]``;
- the parser (``slamkit/metric/metric_utils.py::extract_digit_from_boxed``): the first place
  in the answer where ``\\boxed{`` is directly followed by one or more decimal digits (any
  Unicode digit, as Python's ``\\d``) and then ``}``; the score is those digits read as an
  integer. Nothing else counts: ``\\boxed{ 4}``, ``\\boxed{4.5}``, ``\\boxed{-1}``, a bare
  ``4`` are no answer, and a first ``\\boxed{x}`` that holds no digits is passed over for the
  next one;
- the judge model: ``gpt-4o`` through the OpenAI client with the API's default sampling (no
  temperature, no seed), or a local Hugging Face LLM sampled at temperature 0.8 (512 new
  tokens); slamkit reports the mean of the parsed integers and silently drops answers
  without one and requests that failed.

What this judge keeps and what it changes, each on purpose:

- the rubric is slamkit's text verbatim (:data:`SLAMKIT_RUBRIC`, attributed below): an LLM
  judge's prompt *is* the instrument, and a paraphrase would measure something else;
- the parser is the same rule (:func:`parse_boxed`), written here;
- the model is not defaulted: a pinned snapshot must be named (``gpt-4o`` is an alias that
  moves), and requests are sent at temperature 0 with ``seed`` 0 by default (both options)
  so that a rerun asks the same question the same way;
- nothing is dropped silently. Every pair gets a result ``{"score", "status", "value",
  "raw", "error", "finish_reason", "model", "system_fingerprint"}`` whose ``status`` is
  ``ok`` (an integer in 1..5: ``score`` is it as a float), ``out_of_range`` (slamkit's parser
  found an integer outside 1..5, kept in ``value``; slamkit would average it in, here
  ``score`` is None), ``unparsed`` (the answer has no boxed integer) or ``error`` (the
  request failed after its retries, or the server's answer was malformed: ``error`` says
  why); ``model`` and ``system_fingerprint`` are what the server said answered.
  :func:`summarize` counts them and gives both the mean of the ``ok`` scores and slamkit's
  mean (every parsed integer, in range or not).

A request the endpoint refuses for good, with a 4xx status that is not retried (400, 401,
403, 404, ...: not in :data:`~speechlm_eval.endpoints.RETRY_STATUS`), is a configuration
problem (wrong key, model, endpoint or option), not a verdict on one pair: :meth:`LLMJudge.rate`
raises :class:`~speechlm_eval.errors.ConfigError` (one line: the endpoint, the status, the
server's message, the key redacted) and sends no further request. ``error`` is for failures
that may pass (429, 5xx, timeouts, dropped connections) once their retries are spent.

Caching: pairs go through the harness' executor (:func:`~.base.run_judge_requests`), and every
batch is committed as it finishes, so a killed run never asks twice. What is cached is the
server's answer as it came (the answer text, unclipped, its ``finish_reason``, the served
``model`` and ``system_fingerprint``), keyed by what the endpoint was sent and nothing else
(:meth:`LLMJudge.cache_identity`: endpoint, model, request settings, the rubric's SHA-256, and
the two texts); it is parsed when read. So a new version of speechlm-eval or of httpx never
asks again (a paid API's answers are not reproducible), and a changed parser re-parses the
stored answers without a request; the versions and the parser are still recorded with every
result (:meth:`LLMJudge.identity`). Answers are cached, parsed or not (the model's answer to the
question is the measurement; asking again until one parses would pick answers). Failed
requests are not reused: they are written like any answer but read back as a miss, so the next
run asks again — an outage must not be frozen into the cache as a verdict on the continuation.

The transport is the harness' :class:`~speechlm_eval.endpoints.EndpointClient`, the one the
``openai-chat`` model uses too: the same HTTP client, bounded concurrency, retries with backoff
on 429/408/409/5xx, timeouts and dropped connections (honouring ``Retry-After``), the same
endpoint and key checks, and the key redacted from every message. Unlike ``openai-chat``
nothing is sent when the judge is constructed (no ``GET /models`` probe): the judge is built
whenever a task binds its role, the client is made (sending nothing) on the first
:meth:`LLMJudge.rate`, and the first request goes out then.

A second rubric, ``rubric=fdbench-interruption``: Full-Duplex-Bench v1's relevance rating of a
model's response after a user's interruption (``v1_v1.5/evaluation/eval_user_interruption.py``
of ``DanielLin94144/Full-Duplex-Bench``, read at commit d7336bd). There the LLM (gpt-4-turbo,
seed 0, the API's default temperature) gets a system message (a 0-5 rubric) and a user message
holding the context turn, the interrupting turn and the AI's response (the ASR text of the
model's channel from the interruption's end on); the answer is read with a regular expression
(the last ``Analysis: ... I would rate the AI's response as <n>``), an answer that does not
parse is asked again until one does, and every parsed integer is averaged. That repository is
CC BY-NC 4.0, so its prompt is not in this project: ``rubric_file`` (default
``$SLM_EVAL_LLM_JUDGE_RUBRIC_FILE``) names the user's copy of that file, the two messages are
read from it with :mod:`ast` (:func:`extract_fdbench_messages`; nothing in it runs) and must
match the SHA-256 digests of the official ones (:func:`load_fdbench_rubric`; another text is
refused with a ``ConfigError`` naming the file and the commit); the file's path and digests are
recorded in the identity. Items are rated with :meth:`LLMJudge.rate_fields` (fields
``context``, ``interrupt``, ``response``); the parser is the same rule
(:func:`parse_fdbench_rating`), the scale 0-5. Deviations, on purpose: temperature 0 and seed 0
(the official code sends the API's default temperature), ``max_tokens`` 512 like every request
of this judge (the official call sets none; ``max_tokens=none`` sends none, and a cut answer
shows as ``finish_reason`` ``length``), an answer that does not parse is counted as
``unparsed``, never asked again (asking until one parses picks answers) nor dropped, and a
parsed integer outside 0-5 is ``out_of_range`` (the official mean would take it).
Without a rubric file the judge constructs with ``available`` False and says what to set.

A third, ``rubric=fdbench-behavior``: Full-Duplex-Bench v1.5's behaviour tag
(``v1_v1.5/evaluation/eval_behavior.py``, same commit). There the LLM (gpt-4o-2024-08-06, seed 1,
the API's default temperature) gets the instruction file ``instruction/behavior.txt`` as the
system message and, as the user message, a JSON object of four ASR results with word timestamps
(the user input without and with the overlap event, the model's output on each: fields
``input_clean``, ``input_noisy``, ``output_clean``, ``output_noisy``, each the ASR script's
``{"text", "chunks"}`` object dumped compactly: :func:`asr_object`, :func:`compact_json`), laid
out as the official f-string (:data:`BEHAVIOR_TEMPLATE`); the answer's first JSON object with
the key ``behaviour`` is read (:func:`find_json_object`, the official ``extract_json`` rule) and
its list must hold one of ``C_RESPOND``, ``C_RESUME``, ``C_UNCERTAIN_HANDLING``,
``C_UNKNOWN`` (:func:`parse_fdbench_behavior`): then the result is ``ok`` with the tag as
``value`` (no ``score``), anything else ``unparsed``. The instruction is read from the user's
copy (``rubric_file``, default ``$SLM_EVAL_LLM_JUDGE_BEHAVIOR_FILE``; text mode, as the official
``open().read()``) and must hash to :data:`BEHAVIOR_SHA256`. Deviations, on purpose: seed 1 by
default as the official, but temperature 0 and ``max_tokens`` 512 like every request here; an
unparsed answer is counted, never asked again with the next seed (the official loop asks until
one parses), and a list of several tags, an unknown tag or a bare string are unparsed (the
official count would take every string of the list, or fail).

Configuration: ``base_url`` (default: ``$SLM_EVAL_LLM_JUDGE_URL``), ``model`` (default:
``$SLM_EVAL_LLM_JUDGE_MODEL``; required when an endpoint is set), the key in the environment
variable named by ``api_key_env`` (``OPENAI_API_KEY``; never recorded). Without an endpoint
the judge still constructs, with ``available`` False and ``unavailable_reason`` saying what to
set; :meth:`LLMJudge.rate` then raises :class:`~speechlm_eval.errors.ConfigError`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import random
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..cache import ResultCache
from ..endpoints import (
    RETRY_STATUS,
    EndpointClient,
    EndpointError,
    check_base_url,
    check_env_name,
    content_text,
)
from ..errors import ConfigError
from ..execute import ExecStats
from ..hashing import digest, sha256_file
from ..metrics import Metric, cluster_mean
from ..options import Opt, Spec
from .base import Judge, package_version, run_judge_requests

__all__ = [
    "BEHAVIOR_FIELDS",
    "BEHAVIOR_SHA256",
    "BEHAVIOR_TAGS",
    "BEHAVIOR_TEMPLATE",
    "ENV_BEHAVIOR",
    "ENV_MODEL",
    "ENV_RUBRIC",
    "ENV_URL",
    "FDBENCH_COMMIT",
    "FDBENCH_SYSTEM_SHA256",
    "FDBENCH_USER_SHA256",
    "PARSERS",
    "RUBRICS",
    "SCALE",
    "SLAMKIT_RUBRIC",
    "STATUSES",
    "LLMJudge",
    "Rubric",
    "asr_object",
    "compact_json",
    "extract_fdbench_messages",
    "find_json_object",
    "load_behavior_rubric",
    "load_fdbench_rubric",
    "parse_boxed",
    "parse_fdbench_behavior",
    "parse_fdbench_rating",
    "rating",
    "render",
    "summarize",
]

log = logging.getLogger(__name__)

ENV_URL = "SLM_EVAL_LLM_JUDGE_URL"
ENV_MODEL = "SLM_EVAL_LLM_JUDGE_MODEL"
ENV_RUBRIC = "SLM_EVAL_LLM_JUDGE_RUBRIC_FILE"
ROUTE = "/chat/completions"
SCALE = (1, 5)  # the rubric's integer scale, both ends included
STATUSES = ("ok", "out_of_range", "unparsed", "error")
PARSED = ("ok", "out_of_range")  # the statuses whose value slamkit averages
MAX_RAW = 2000  # characters of an answer kept in a result (head and tail when longer)
MAX_ERROR = 300  # characters of an error message kept in a result

# --- the rubric --------------------------------------------------------------------------------
#
# SLAMKIT_RUBRIC is quoted verbatim (not paraphrased: the prompt is the measuring instrument)
# from slamkit, https://github.com/slp-rl/slamkit, file config/metric/llm_as_judge.yaml, key
# ``instruction`` (added in commit 669e913, 2025-04-01; the same text at 388b402), as
# YAML decodes it; its UTF-8 SHA-256 is SLAMKIT_RUBRIC_SHA256 (checked on import: the text
# cannot drift from the quoted one unnoticed). slamkit's licence:
#
#   MIT License
#
#   Copyright (c) 2025 SLP-RL
#
#   Permission is hereby granted, free of charge, to any person obtaining a copy
#   of this software and associated documentation files (the "Software"), to deal
#   in the Software without restriction, including without limitation the rights
#   to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
#   copies of the Software, and to permit persons to whom the Software is
#   furnished to do so, subject to the following conditions:
#
#   The above copyright notice and this permission notice shall be included in all
#   copies or substantial portions of the Software.
#
#   THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
#   IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
#   FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
#   AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
#   LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
#   OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
#   SOFTWARE.
PROMPT_SLOT = "[prompt_audio_transcription]"
CONTINUATION_SLOT = "[generated_audio_transcription]"
SLAMKIT_RUBRIC = (
    "The task is evaluating the relevance and likelihood of the predicted text continuation, "
    "given the text prompt. You should also consider whether the meaning of the text "
    'continuation is making sense. The text prompt is: "[prompt_audio_transcription]", and '
    'the text continuation is :"[generated_audio_transcription]". You must give an overall '
    "rating from 1 to 5. The rating guideline is as below:\n"
    "1: The text continuation is very unlikely and irrelevant to the text prompt.\n"
    "2: The text continuation is unlikely and marginally relevant to the text prompt.\n"
    "3: The text continuation is moderately likely and relevant to the text prompt.\n"
    "4: The text continuation is likely and relevant to the text prompt.\n"
    "5: The text continuation is very likely and highly relevant.\n"
    " You should take the following steps to provide the score:\n"
    "First: briefly analyze the sample with the above definition.\n"
    'Second: MUST follow the output format as: "The final answer is $\\boxed{x}$". Where x '
    "is the score you are giving."
)


SLAMKIT_RUBRIC_SHA256 = "4005003e48ef6782c7917160ed0fc717fa299aa06e89c2673a9010356fefc3a3"
if hashlib.sha256(SLAMKIT_RUBRIC.encode("utf-8")).hexdigest() != SLAMKIT_RUBRIC_SHA256:
    raise RuntimeError("SLAMKIT_RUBRIC differs from slamkit's instruction (SHA-256 mismatch)")


@dataclass(frozen=True)
class Rubric:
    """A rubric: its text (with its slots), where it comes from, and the parser it pairs with.

    slamkit's (the default shape): ``text`` is one user message with the two slots of
    :func:`render`. A rubric with a ``system`` message (Full-Duplex-Bench's) sends it first and
    ``text`` as the user message, a :meth:`str.format` template over ``fields``. ``scale`` is
    the integer range of a valid rating; ``messages`` says in words what is sent (in the
    identity and the cache key); ``origin`` records where the text was read (a user's file);
    ``labels``: a categorical rubric's answers (Full-Duplex-Bench v1.5's behaviour tags),
    recorded instead of ``scale``."""

    name: str
    text: str
    source: str
    parser: str
    system: str | None = None
    fields: tuple[str, ...] = ("prompt", "continuation")
    scale: tuple[int, int] = SCALE
    messages: str = "one user message: the rubric with the two transcripts in its slots"
    origin: Mapping[str, Any] | None = None
    # A categorical rubric's answers (its parser returns one of them or None); empty: a rating
    # on ``scale``.
    labels: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        """SHA-256 of the user message's text; with a system message, of both (the system
        message, a NUL, the user template), so that a change of either is another question."""
        if self.system is None:
            return hashlib.sha256(self.text.encode("utf-8")).hexdigest()
        return hashlib.sha256(f"{self.system}\0{self.text}".encode()).hexdigest()

    def chat(self, values: Mapping[str, str]) -> list[dict[str, str]]:
        """The chat messages for one item: ``values`` holds each of :attr:`fields`."""
        if self.system is None:
            text = render(self.text, values["prompt"], values["continuation"])
            return [{"role": "user", "content": text}]
        # str.format substitutes each field once, as the official f-string does.
        user = self.text.format(**{f: values[f] for f in self.fields})
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


RUBRICS: dict[str, Rubric] = {
    "slamkit": Rubric(
        "slamkit",
        SLAMKIT_RUBRIC,
        "slp-rl/slamkit config/metric/llm_as_judge.yaml (instruction) @ 388b402, MIT licence",
        "slamkit-boxed",
    ),
}
# Rubrics whose text is read from the user's copy of a file this project may not ship (option
# rubric_file; loaded by load_fdbench_rubric and load_behavior_rubric).
FILE_RUBRICS = ("fdbench-interruption", "fdbench-behavior")
RUBRIC_NAMES = (*RUBRICS, *FILE_RUBRICS)

_SLOTS = re.compile(re.escape(PROMPT_SLOT) + "|" + re.escape(CONTINUATION_SLOT))


def render(rubric: str, prompt: str, continuation: str) -> str:
    """The rubric with the prompt and the continuation in their slots.

    One pass over the rubric (slamkit replaces the prompt slot first, then the continuation
    slot everywhere, so a prompt that itself contained the continuation slot's text would be
    altered there; the texts are otherwise identical)."""
    texts = {PROMPT_SLOT: prompt, CONTINUATION_SLOT: continuation}
    return _SLOTS.sub(lambda m: texts[m.group(0)], rubric)


# --- the parser --------------------------------------------------------------------------------

# slamkit/metric/metric_utils.py::extract_digit_from_boxed: re.search, first match, int().
_BOXED = re.compile(r"\\boxed\{(\d+)\}")
PARSERS: dict[str, dict[str, str]] = {
    "slamkit-boxed": {
        "pattern": _BOXED.pattern,
        "rule": "first \\boxed{<decimal digits>} in the answer (re.search, Unicode \\d), read "
        "with int(); none: unparsed; an integer outside the scale: out_of_range",
        "source": "slp-rl/slamkit slamkit/metric/metric_utils.py::extract_digit_from_boxed "
        "@ 388b402",
    }
}


def parse_boxed(answer: str) -> int | None:
    """The integer in the first ``\\boxed{digits}`` of ``answer``, or None (slamkit's rule;
    see the module doc). No range check here: :class:`LLMJudge` applies :data:`SCALE`."""
    m = _BOXED.search(answer)
    return int(m.group(1)) if m else None


# --- Full-Duplex-Bench v1's interruption rubric --------------------------------------------------
#
# Full-Duplex-Bench (DanielLin94144/Full-Duplex-Bench) is CC BY-NC 4.0: its prompt text is not
# in this (MIT) project. The user names their own copy of the official file with rubric_file;
# the two messages are read from it with ast (nothing in it is run) and must hash to the
# digests below, computed from v1_v1.5/evaluation/eval_user_interruption.py at FDBENCH_COMMIT:
# - the system message: the string assigned to ``system_msg`` in ``eval_user_interruption``,
#   UTF-8 (FDBENCH_SYSTEM_SHA256);
# - the user message: the f-string assigned to ``user_msg`` there, written as a str.format
#   template (literal braces doubled, each interpolated variable replaced by its field's name
#   in braces, FDBENCH_FIELDS), UTF-8 (FDBENCH_USER_SHA256).
FDBENCH_COMMIT = "d7336bda1385872b83b48a8d45d9c0003836a60d"
FDBENCH_PATH = "v1_v1.5/evaluation/eval_user_interruption.py"
FDBENCH_FUNCTION = "eval_user_interruption"
FDBENCH_SYSTEM_SHA256 = "60345e34b8855786351db19830d09515f225011414180e85587210cc3c50691c"
FDBENCH_USER_SHA256 = "7403ac71a610d2717f215bfc93ebbba84cf932e2584f8b3c7ccf3a36411b9b04"
# The official code's variable names -> this judge's field names (what each one holds: the
# context turn and the interrupting turn from interrupt.json, the ASR text of the model's
# channel from the interruption's end on).
FDBENCH_FIELDS = {
    "in_before_interrupt_text": "context",
    "in_interrupt_text": "interrupt",
    "out_after_interrupt_text": "response",
}
FDBENCH_SCALE = (0, 5)


def _fdbench_error(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"judge option rubric_file: {path}: {why}; expected Full-Duplex-Bench's {FDBENCH_PATH} "
        f"at commit {FDBENCH_COMMIT[:7]} ({FDBENCH_COMMIT})"
    )


def _assigned(func: ast.FunctionDef, name: str, path: Path) -> ast.expr:
    """The one value assigned to the plain name ``name`` in ``func``'s body (any depth)."""
    found = [
        n.value
        for n in ast.walk(func)
        if isinstance(n, ast.Assign)
        and len(n.targets) == 1
        and isinstance(n.targets[0], ast.Name)
        and n.targets[0].id == name
    ]
    if len(found) != 1:
        raise _fdbench_error(path, f"{len(found)} assignments to {name!r} in {func.name}(), not 1")
    return found[0]


def extract_fdbench_messages(path: str | Path) -> tuple[str, str]:
    """(system message, user-message template) read from a copy of Full-Duplex-Bench's
    ``eval_user_interruption.py`` with :mod:`ast` (the file is parsed, never run); the
    template is the ``user_msg`` f-string as a :meth:`str.format` template over ``context``,
    ``interrupt`` and ``response``. No hash check here (:func:`load_fdbench_rubric` does it);
    ``ConfigError`` naming the file when it is missing, unreadable or not laid out so."""
    p = Path(path).expanduser()
    try:
        tree = ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as e:
        raise _fdbench_error(p, f"cannot read it as Python ({type(e).__name__}: {e})") from None
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == FDBENCH_FUNCTION]
    if len(funcs) != 1:
        raise _fdbench_error(p, f"no top-level function {FDBENCH_FUNCTION}()")
    system = _assigned(funcs[0], "system_msg", p)
    if not (isinstance(system, ast.Constant) and isinstance(system.value, str)):
        raise _fdbench_error(p, "system_msg is not a string literal")
    user = _assigned(funcs[0], "user_msg", p)
    if not isinstance(user, ast.JoinedStr):
        raise _fdbench_error(p, "user_msg is not an f-string")
    parts: list[str] = []
    for v in user.values:
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            parts.append(v.value.replace("{", "{{").replace("}", "}}"))
        elif (
            isinstance(v, ast.FormattedValue)
            and isinstance(v.value, ast.Name)
            and v.value.id in FDBENCH_FIELDS
            and v.conversion == -1
            and v.format_spec is None
        ):
            parts.append("{" + FDBENCH_FIELDS[v.value.id] + "}")
        else:
            raise _fdbench_error(
                p, f"user_msg interpolates something else than {', '.join(FDBENCH_FIELDS)}"
            )
    return system.value, "".join(parts)


def load_fdbench_rubric(path: str | Path) -> Rubric:
    """The ``fdbench-interruption`` rubric from the user's copy of the official file: the two
    messages (:func:`extract_fdbench_messages`) checked against :data:`FDBENCH_SYSTEM_SHA256`
    and :data:`FDBENCH_USER_SHA256`; a file whose prompt differs is refused (``ConfigError``
    naming the file and the expected commit). The file's resolved path, its SHA-256 and both
    digests are kept in ``origin`` (recorded in the judge's identity)."""
    p = Path(path).expanduser().resolve()
    system, user = extract_fdbench_messages(p)
    digests = {
        "system_sha256": hashlib.sha256(system.encode("utf-8")).hexdigest(),
        "user_sha256": hashlib.sha256(user.encode("utf-8")).hexdigest(),
    }
    for what, want in (("system", FDBENCH_SYSTEM_SHA256), ("user", FDBENCH_USER_SHA256)):
        if digests[f"{what}_sha256"] != want:
            raise _fdbench_error(
                p, f"its {what} message differs from the official one (SHA-256 mismatch)"
            )
    return Rubric(
        "fdbench-interruption",
        user,
        f"DanielLin94144/Full-Duplex-Bench {FDBENCH_PATH} ({FDBENCH_FUNCTION}: system_msg, "
        f"user_msg) @ {FDBENCH_COMMIT[:7]}, CC BY-NC 4.0, read from the user's copy",
        "fdbench-rating",
        system=system,
        fields=tuple(FDBENCH_FIELDS.values()),
        scale=FDBENCH_SCALE,
        messages="a system message (the rubric) and a user message (the template with the "
        "context turn, the interrupting turn and the response in its fields)",
        origin={"file": str(p), "file_sha256": sha256_file(p), **digests},
    )


# Full-Duplex-Bench's parse_output (same file): this pattern with re.DOTALL over the answer
# plus "\n", every non-overlapping match in turn, the last one kept; the rating is group 2
# read with int(). The official code then asks again until an answer parses (here: counted as
# unparsed, never asked again) and averages every parsed integer (here: 0..5 is ok, anything
# else out_of_range).
_FDBENCH_RATING = re.compile(
    r"Analysis:\s*(.*?)\nI would rate the AI's response as (\d+)", re.DOTALL
)


def parse_fdbench_rating(answer: str) -> int | None:
    """The rating of the last match of Full-Duplex-Bench's answer pattern in ``answer`` (see
    :data:`PARSERS`), or None. No range check here: :class:`LLMJudge` applies the scale."""
    value = None
    for m in _FDBENCH_RATING.finditer(answer + "\n"):
        value = int(m.group(2))
    return value


PARSERS["fdbench-rating"] = {
    "pattern": _FDBENCH_RATING.pattern,
    "rule": "re.DOTALL finditer over the answer + newline, the last match's second group read "
    "with int(); none: unparsed; an integer outside the scale: out_of_range",
    "source": f"DanielLin94144/Full-Duplex-Bench {FDBENCH_PATH}::parse_output "
    f"@ {FDBENCH_COMMIT[:7]}",
}
# Parser name -> function; looked up by module name on every call (tests may replace them).
_PARSE_FUNCS: dict[str, Callable[[str], int | str | None]] = {
    "slamkit-boxed": lambda a: parse_boxed(a),
    "fdbench-rating": lambda a: parse_fdbench_rating(a),
}


# --- Full-Duplex-Bench v1.5's behaviour tags ------------------------------------------------
#
# eval_behavior.py of the same repository (commit FDBENCH_COMMIT): per sample, the system message
# is the whole text of instruction/behavior.txt as Python's open(..., encoding="utf-8").read()
# gives it (universal newlines), the user message is the f-string ``final_input`` of
# eval_behavior_all with the four ASR results in it, each the ASR script's {"text", "chunks"}
# object dumped compactly (separators "," and ":", ensure_ascii False); gpt-4o-2024-08-06, seed 1
# (1 more after each answer that does not parse), the API's default temperature. The answer is
# read by extract_json (key "behaviour") and stats_by_axis counts every tag of its list.
# The instruction is CC BY-NC 4.0 like the rest: the user names their copy (rubric_file), checked
# against BEHAVIOR_SHA256 (its text as read, UTF-8); only the digest is here. The user-message
# layout is the f-string's, a format (JSON with fixed indentation), rebuilt below from its lines.
BEHAVIOR_PATH = "v1_v1.5/evaluation/instruction/behavior.txt"
BEHAVIOR_SHA256 = "19e5477dac9a9a1e11de126783a0b820b3ecb70db5e91181824fa944e1947977"
BEHAVIOR_TAGS = ("C_RESPOND", "C_RESUME", "C_UNCERTAIN_HANDLING", "C_UNKNOWN")
# The four word-timestamp objects, in the official message's order: the clean user input (no
# overlap event), the user input with it, the model's output on each.
BEHAVIOR_FIELDS = ("input_clean", "input_noisy", "output_clean", "output_noisy")
BEHAVIOR_KEY = "behaviour"  # the answer object's key (British spelling, as in the official code)
BEHAVIOR_SEED = 1  # the official first seed: this rubric's default for option seed
ENV_BEHAVIOR = "SLM_EVAL_LLM_JUDGE_BEHAVIOR_FILE"
# final_input: a newline, then 8-space-indented "{", one 12-space-indented "key": value line per
# field (commas between), 8-space-indented "}", a newline and 8 spaces (str.format template).
BEHAVIOR_TEMPLATE = (
    "\n" + " " * 8 + "{{\n"
    + ",\n".join(" " * 12 + f'"{f}": {{{f}}}' for f in BEHAVIOR_FIELDS)
    + "\n" + " " * 8 + "}}\n" + " " * 8
)  # fmt: skip


def compact_json(value: Any) -> str:
    """``value`` as the official code writes each ASR result into the message: JSON with no
    space after separators, non-ASCII characters kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def asr_object(words: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """The official ASR script's result object for ``words`` ((text, start s, end s) each):
    ``text`` (the words joined by single spaces) and ``chunks`` (``{"text", "timestamp":
    [start, end]}`` per word, in order); the object the behaviour message carries."""
    return {
        "text": " ".join(str(w[0]) for w in words).strip(),
        "chunks": [{"text": str(w[0]), "timestamp": [w[1], w[2]]} for w in words],
    }


def _behavior_error(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"judge option rubric_file: {path}: {why}; expected Full-Duplex-Bench's {BEHAVIOR_PATH} "
        f"at commit {FDBENCH_COMMIT[:7]} ({FDBENCH_COMMIT})"
    )


def load_behavior_rubric(path: str | Path) -> Rubric:
    """The ``fdbench-behavior`` rubric from the user's copy of the official ``behavior.txt``:
    its text (read as the official code reads it) must hash to :data:`BEHAVIOR_SHA256`, else
    ``ConfigError`` naming the file and the commit. The file's resolved path and SHA-256 and the
    text's digest are kept in ``origin`` (recorded in the judge's identity)."""
    p = Path(path).expanduser().resolve()
    try:
        with p.open(encoding="utf-8") as f:  # text mode: \r\n read as \n, like the official
            system = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise _behavior_error(
            p, f"cannot read it as UTF-8 text ({type(e).__name__}: {e})"
        ) from None
    got = hashlib.sha256(system.encode("utf-8")).hexdigest()
    if got != BEHAVIOR_SHA256:
        raise _behavior_error(
            p, "its text differs from the official instruction (SHA-256 mismatch)"
        )
    return Rubric(
        "fdbench-behavior",
        BEHAVIOR_TEMPLATE,
        f"DanielLin94144/Full-Duplex-Bench {BEHAVIOR_PATH} (system message) and "
        f"v1_v1.5/evaluation/eval_behavior.py (final_input layout) @ {FDBENCH_COMMIT[:7]}, "
        "CC BY-NC 4.0, read from the user's copy",
        "fdbench-behaviour",
        system=system,
        fields=BEHAVIOR_FIELDS,
        messages="a system message (the instruction) and a user message (a JSON object of the "
        "four word-timestamp ASR results: input_clean, input_noisy, output_clean, output_noisy)",
        origin={"file": str(p), "file_sha256": sha256_file(p), "system_sha256": got},
        labels=BEHAVIOR_TAGS,
    )


def find_json_object(text: str, key: str = BEHAVIOR_KEY) -> dict[str, Any] | None:
    """The first JSON object in ``text`` that has ``key`` at its top level, by the official
    ``extract_json`` rule: try to decode a JSON value at each ``{`` from the left; a decoded
    object without the key is skipped whole (the search goes on after its end, so objects
    nested in it are not looked at), a ``{`` where decoding fails is passed over. None: none."""
    decoder = json.JSONDecoder()
    at = text.find("{")
    while at >= 0:
        try:
            obj, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at = text.find("{", at + 1)
            continue
        if key in obj:
            return obj
        at = text.find("{", end)
    return None


def parse_fdbench_behavior(answer: str) -> str | None:
    """The tag of a behaviour answer: the ``behaviour`` list of :func:`find_json_object`'s
    object when it holds exactly one of :data:`BEHAVIOR_TAGS` (exact spelling), else None.
    The official code counts every string of that list (a bare string would be split into
    characters and stop it), so one known tag is the only answer it and this judge read alike."""
    obj = find_json_object(answer)
    if obj is None:
        return None
    tags = obj[BEHAVIOR_KEY]
    if isinstance(tags, list) and len(tags) == 1 and tags[0] in BEHAVIOR_TAGS:
        return str(tags[0])
    return None


PARSERS["fdbench-behaviour"] = {
    "rule": "the first JSON object decoded at a '{' (json.JSONDecoder.raw_decode, from the left; "
    "an object without the key skipped whole) with the key 'behaviour', whose value is a list of "
    f"exactly one of {', '.join(BEHAVIOR_TAGS)}; anything else: unparsed",
    "source": "DanielLin94144/Full-Duplex-Bench v1_v1.5/evaluation/eval_behavior.py::"
    f"extract_json, stats_by_axis @ {FDBENCH_COMMIT[:7]}",
}
_PARSE_FUNCS["fdbench-behaviour"] = lambda a: parse_fdbench_behavior(a)
# Rubric read from a file -> (loader, the official file's path, the environment variable that
# names the user's copy).
FILE_LOADERS: dict[str, tuple[Callable[[str | Path], Rubric], str, str]] = {
    "fdbench-interruption": (lambda p: load_fdbench_rubric(p), FDBENCH_PATH, ENV_RUBRIC),
    "fdbench-behavior": (lambda p: load_behavior_rubric(p), BEHAVIOR_PATH, ENV_BEHAVIOR),
}


# --- results -----------------------------------------------------------------------------------


def _result(
    status: str,
    value: int | str | None = None,
    raw: str | None = None,
    error: str | None = None,
    finish_reason: str | None = None,
    model: str | None = None,
    system_fingerprint: str | None = None,
) -> dict[str, Any]:
    # A rating's score; a categorical answer (a tag) has none.
    score = float(value) if status == "ok" and isinstance(value, int) else None
    return {
        "score": score,
        "status": status,
        "value": value,
        "raw": raw,
        "error": error,
        "finish_reason": finish_reason,
        "model": model,
        "system_fingerprint": system_fingerprint,
    }


def _clip(text: str, limit: int = MAX_RAW) -> str:
    """``text``, or its head and tail around a note of what was cut (the boxed answer is
    usually at the end)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} [... {len(text) - 2 * half} characters cut ...] {text[-half:]}"


def rating(
    answer: str,
    finish_reason: str | None = None,
    model: str | None = None,
    system_fingerprint: str | None = None,
    *,
    parser: str = "slamkit-boxed",
    scale: tuple[int, int] = SCALE,
) -> dict[str, Any]:
    """The result of one answer text: parsed with ``parser`` (a name in :data:`PARSERS`;
    default slamkit's :func:`parse_boxed`), checked against ``scale`` (both ends included),
    the text kept (clipped to :data:`MAX_RAW` characters). A categorical parser's answer (a
    tag: it returns only valid ones) is ``ok`` with the tag as ``value`` and no ``score``."""
    value = _PARSE_FUNCS[parser](answer)
    if value is None:
        status = "unparsed"
    elif isinstance(value, str) or scale[0] <= value <= scale[1]:
        status = "ok"
    else:
        status = "out_of_range"
    return _result(status, value, _clip(answer), None, finish_reason, model, system_fingerprint)


def summarize(
    results: Sequence[Mapping[str, Any]], clusters: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Counts by status; ``mean``: the mean of the ``ok`` scores; ``slamkit_mean``: the mean
    over every parsed integer, in range or not (:data:`PARSED`), which is what slamkit's
    ``llm_as_judge`` reports (it drops the rest silently). Both means are a
    :class:`~speechlm_eval.metrics.Metric` (None when nothing counts), with the cluster-robust
    standard error over ``clusters`` (one per result, e.g. the prompt each continuation
    continues; default: every result its own)."""
    counts = {s: 0 for s in STATUSES}
    for r in results:
        counts[r["status"]] += 1
    ids = list(range(len(results))) if clusters is None else list(clusters)
    if len(ids) != len(results):
        raise ValueError(f"summarize: {len(results)} results but {len(ids)} clusters")
    # Means of ratings only: a categorical rubric's tags (no score) are counted, not averaged.
    ok = [
        (float(r["score"]), c)
        for r, c in zip(results, ids, strict=True)
        if r["status"] == "ok" and r["score"] is not None
    ]
    parsed = [
        (float(r["value"]), c)
        for r, c in zip(results, ids, strict=True)
        if r["status"] in PARSED and isinstance(r["value"], int | float)
    ]
    return {"n": len(results), **counts, "mean": _mean(ok), "slamkit_mean": _mean(parsed)}


def _mean(pairs: list[tuple[float, Any]]) -> Metric | None:
    if not pairs:
        return None
    return cluster_mean([v for v, _ in pairs], [c for _, c in pairs])


# What the cache holds of one request: the server's answer as it came (or why there is none).
_ANSWER_FIELDS = ("answer", "error", "finish_reason", "model", "system_fingerprint")


def _answer_record(
    answer: str | None = None,
    error: str | None = None,
    finish_reason: str | None = None,
    model: str | None = None,
    system_fingerprint: str | None = None,
) -> dict[str, Any]:
    return {
        "answer": answer,
        "error": error,
        "finish_reason": finish_reason,
        "model": model,
        "system_fingerprint": system_fingerprint,
    }


def _is_answer_record(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == set(_ANSWER_FIELDS)
        and all(v is None or isinstance(v, str) for v in value.values())
        and (value["answer"] is None) != (value["error"] is None)
    )


def _read_answer(record: Mapping[str, Any], rubric: Rubric) -> dict[str, Any]:
    """The result of a cached answer record: parsed now (:func:`rating`, with the rubric's
    parser and scale), or ``error``."""
    if record["error"] is not None:
        return _result("error", error=record["error"])
    return rating(
        record["answer"],
        record["finish_reason"],
        record["model"],
        record["system_fingerprint"],
        parser=rubric.parser,
        scale=rubric.scale,
    )


# --- options -----------------------------------------------------------------------------------


def _from_env(var: str) -> Any:
    return lambda _before: os.environ.get(var, "").strip() or None


def _rubric_file_from_env(before: Mapping[str, Any]) -> str | None:
    # Only a rubric read from a file takes a variable (slamkit's is built in), each its own
    # (one run may bind both Full-Duplex-Bench rubrics, from two files).
    which = before.get("rubric")
    if which not in FILE_LOADERS:
        return None
    return os.environ.get(FILE_LOADERS[which][2], "").strip() or None


@dataclass(frozen=True)
class PairRequest:
    """One (prompt transcript, continuation transcript) pair to rate."""

    prompt: str
    continuation: str
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "continuation": self.continuation}

    def values(self) -> dict[str, str]:
        return {"prompt": self.prompt, "continuation": self.continuation}


@dataclass(frozen=True)
class FieldsRequest:
    """One item of a rubric with other fields than slamkit's two: (field, text) pairs."""

    items: tuple[tuple[str, str], ...]
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return dict(self.items)

    def values(self) -> dict[str, str]:
        return dict(self.items)


# --- the judge ---------------------------------------------------------------------------------


class LLMJudge(Judge):
    """Rates (prompt transcript, continuation transcript) pairs with an LLM behind an
    OpenAI-compatible ``/chat/completions`` endpoint (see the module doc).

    Options: ``base_url`` (``http(s)://host[:port]/v1``; default ``$SLM_EVAL_LLM_JUDGE_URL``,
    none: not configured), ``model`` (the served model name, pinned; default
    ``$SLM_EVAL_LLM_JUDGE_MODEL``, required with an endpoint), ``api_key_env`` (the variable
    holding the key, ``OPENAI_API_KEY``), ``seed`` (0; ``none``: not sent), ``temperature``
    (0), ``max_tokens`` (512; ``none``: not sent), ``rubric`` (``slamkit``,
    ``fdbench-interruption`` or ``fdbench-behavior``, the latter with ``seed`` 1 by default),
    ``rubric_file`` (the Full-Duplex-Bench rubrics' source file, see the module doc; recorded
    by path and digests); not in the
    identity: ``timeout`` (s per attempt, 120), ``max_retries`` (5), ``max_concurrency`` (8),
    ``backoff`` / ``max_backoff`` (first and longest wait between tries, 1 and 60 s),
    ``batch_size`` (pairs per executor batch, i.e. per cache commit, 32).
    """

    kind = "llm"
    sample_rate = None  # type: ignore[assignment]  # text in: no audio to resample
    needs: ClassVar[tuple[str, ...]] = ("text", "OpenAI-compatible chat endpoint")
    offline_default = ""
    OPTIONS: ClassVar[Spec] = Spec(
        {
            "base_url": Opt(
                str,
                None,
                derive=_from_env(ENV_URL),
                nullable=True,
                check=check_base_url,
                doc=f"e.g. http://127.0.0.1:8000/v1; default ${ENV_URL}",
            ),
            "model": Opt(
                str,
                None,
                derive=_from_env(ENV_MODEL),
                nullable=True,
                doc=f"served model name, pinned (e.g. gpt-4o-2024-08-06); default ${ENV_MODEL}",
            ),
            "api_key_env": Opt(
                str,
                "OPENAI_API_KEY",
                identity=False,
                check=check_env_name,
                doc="variable holding the key",
            ),
            "seed": Opt(
                int,
                0,
                nullable=True,
                doc="sent with every request; none: not sent; default 1 with rubric "
                "fdbench-behavior (the official seed)",
            ),
            "temperature": Opt(float, 0.0, ge=0),
            "max_tokens": Opt(int, 512, ge=1, nullable=True, doc="answer cap; none: not sent"),
            "rubric": Opt(str, "slamkit", choices=RUBRIC_NAMES),
            "rubric_file": Opt(
                str,
                None,
                derive=_rubric_file_from_env,
                nullable=True,
                doc="your copy of Full-Duplex-Bench's v1_v1.5/evaluation/"
                f"eval_user_interruption.py (rubric=fdbench-interruption; default ${ENV_RUBRIC}) "
                f"or instruction/behavior.txt (rubric=fdbench-behavior; default ${ENV_BEHAVIOR})",
            ),
            "timeout": Opt(float, 120.0, gt=0, identity=False, doc="seconds per attempt"),
            "max_retries": Opt(int, 5, ge=0, identity=False, doc="retries after the first try"),
            "max_concurrency": Opt(int, 8, ge=1, identity=False, doc="requests in flight"),
            "backoff": Opt(float, 1.0, ge=0, identity=False, doc="first retry delay (s)"),
            "max_backoff": Opt(float, 60.0, ge=0, identity=False, doc="longest wait (s)"),
            "batch_size": Opt(int, 32, ge=1, identity=False, doc="pairs per cache commit"),
        }
    )

    @classmethod
    def resolve_options(cls, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        if "api_key" in options:
            # Named without its value: a key among the options would reach the results file.
            raise ConfigError(
                f"judge {name!r}: the API key is not an option; put it in an environment "
                "variable and name that with api_key_env=NAME"
            )
        opts = super().resolve_options(name, options)
        if opts["rubric_file"] is not None and opts["rubric"] not in FILE_RUBRICS:
            raise ConfigError(
                f"judge {name!r}: option 'rubric_file' is for rubric "
                f"{' or '.join(FILE_RUBRICS)}, not {opts['rubric']!r}"
            )
        if opts["rubric"] == "fdbench-behavior" and "seed" not in options:
            # The official first seed is this rubric's default (seed=none still sends none).
            opts["seed"] = BEHAVIOR_SEED
        if opts["base_url"] is not None and not opts["model"]:
            raise ConfigError(
                f"judge {name!r}: option 'model' is required with an endpoint "
                f"({opts['base_url']}): the served model's pinned name, e.g. "
                f"model=gpt-4o-2024-08-06 (or set {ENV_MODEL})"
            )
        return opts

    def __init__(self, name: str = "llm-judge", **options: Any) -> None:
        super().__init__(name, **options)
        self._transport: EndpointClient | None = None
        self._transport_lock = threading.Lock()
        # Whether an endpoint is configured (nothing is sent to check that it answers) and the
        # rubric is at hand, and why rate() cannot run otherwise (see Judge.available).
        missing = []
        if self.options["base_url"] is None:
            missing.append(
                f"no endpoint configured: set {ENV_URL} or --judge "
                "llm=llm-judge,base_url=...,model=..."
            )
        which = self.options["rubric"]
        if which in RUBRICS:
            self.rubric: Rubric | None = RUBRICS[which]
        elif self.options["rubric_file"] is None:
            self.rubric = None
            _, official, env = FILE_LOADERS[which]
            missing.append(
                f"rubric {which!r} is read from your copy of Full-Duplex-Bench's {official} "
                f"(commit {FDBENCH_COMMIT[:7]}; CC BY-NC 4.0, not shipped here): set "
                f"{env} or rubric_file=/path/to/{official.rsplit('/', 1)[-1]}"
            )
        else:
            # A file given but not the official prompt: a configuration error, raised now.
            self.rubric = FILE_LOADERS[which][0](self.options["rubric_file"])
        self.available = not missing
        self.unavailable_reason = "; ".join(missing)

    # --- configuration -------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        return int(self.options["batch_size"])

    def identity(self) -> dict[str, Any]:
        """Endpoint (no credentials: refused in ``base_url``), model name, request settings,
        rubric (name, source, SHA-256 of its text), parser and scale; never the key."""
        o = self.options
        rubric = self._rubric()
        parser = rubric.parser
        rubric_id: dict[str, Any] = {
            "name": rubric.name,
            "sha256": rubric.sha256,
            "source": rubric.source,
        }
        if rubric.origin is not None:  # read from the user's file: which, and its digests
            rubric_id.update(rubric.origin)
        return {
            **self._identity_head("httpx"),
            "speechlm_eval": package_version("speechlm-eval"),
            "api": ROUTE.strip("/").replace("/", "."),
            "endpoint": o["base_url"],
            "model": o["model"],
            "request": self.request_settings(),
            "messages": rubric.messages,
            "rubric": rubric_id,
            "parser": {"name": parser, **PARSERS[parser]},
            # A categorical rubric's tags, or a rating's scale.
            **({"labels": list(rubric.labels)} if rubric.labels else {"scale": list(rubric.scale)}),
        }

    def cache_identity(self) -> dict[str, Any]:
        """What the endpoint is sent, besides the two texts (in each request's fingerprint):
        the cache of raw answers is keyed by this alone (see the module doc), never by the
        harness' or httpx's version, the parser or the code."""
        o = self.options
        rubric = self._rubric()
        return {
            "api": ROUTE.strip("/").replace("/", "."),
            "endpoint": o["base_url"],
            "model": o["model"],
            "request": self.request_settings(),
            "messages": rubric.messages,
            "rubric_sha256": rubric.sha256,
        }

    def _rubric(self) -> Rubric:
        """The rubric, or a stand-in naming the missing file (identity of an unconfigured
        judge: it cannot rate, so nothing is keyed by it)."""
        if self.rubric is not None:
            return self.rubric
        if self.options["rubric"] == "fdbench-behavior":
            return Rubric(
                "fdbench-behavior",
                "",
                "not loaded: no rubric_file",
                "fdbench-behaviour",
                fields=BEHAVIOR_FIELDS,
                labels=BEHAVIOR_TAGS,
            )
        return Rubric(
            self.options["rubric"],
            "",
            "not loaded: no rubric_file",
            "fdbench-rating",
            fields=tuple(FDBENCH_FIELDS.values()),
            scale=FDBENCH_SCALE,
        )

    def request_settings(self) -> dict[str, Any]:
        """The payload fields every request shares besides ``model`` and ``messages``."""
        o = self.options
        s: dict[str, Any] = {"temperature": o["temperature"]}
        if o["seed"] is not None:
            s["seed"] = o["seed"]
        if o["max_tokens"] is not None:
            s["max_tokens"] = o["max_tokens"]
        return s

    def payload(self, prompt: str, continuation: str) -> dict[str, Any]:
        """The JSON body sent for one pair (slamkit's rubric)."""
        return self.fields_payload({"prompt": prompt, "continuation": continuation})

    def fields_payload(self, values: Mapping[str, str]) -> dict[str, Any]:
        """The JSON body sent for one item: ``values`` holds each of the rubric's fields."""
        return {
            "model": self.options["model"],
            "messages": self._rubric().chat(values),
            **self.request_settings(),
        }

    # --- rating --------------------------------------------------------------------------------

    def rate(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        """One result per (prompt, continuation) pair, in order (see the module doc for its
        fields). Through the executor: identical pairs are asked once, raw answers are cached
        by what the endpoint was sent (:meth:`cache_identity` and the two texts) and parsed
        when read, failed requests are asked again next time. ``ConfigError`` when the endpoint
        refuses a request with a 4xx that is not retried (no further request is sent).
        """
        if not self.available:
            raise ConfigError(f"judge {self.name!r}: {self.unavailable_reason}")
        if self._rubric().fields != ("prompt", "continuation"):
            raise ConfigError(
                f"judge {self.name!r}: rubric {self._rubric().name!r} rates the fields "
                f"{', '.join(self._rubric().fields)}, not (prompt, continuation) pairs: "
                "use rate_fields"
            )
        if len(prompts) != len(continuations):
            raise ValueError(f"rate: {len(prompts)} prompts but {len(continuations)} continuations")
        for what, texts in (("prompt", prompts), ("continuation", continuations)):
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise TypeError(f"rate: {what} {i} is {type(t).__name__}, expected str")
        reqs = [
            PairRequest(p, c, f"pair {i}")
            for i, (p, c) in enumerate(zip(prompts, continuations, strict=True))
        ]
        return self._rate_requests(reqs, stats, cache, desc)

    def rate_fields(
        self,
        items: Sequence[Mapping[str, str]],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        """One result per item, in order, like :meth:`rate`, for any rubric: each item maps
        every field of the rubric (``Rubric.fields``: ``prompt``, ``continuation`` for
        slamkit's; ``context``, ``interrupt``, ``response`` for ``fdbench-interruption``) to
        its text. Cached by what the endpoint was sent (the rubric's digest and the texts)."""
        if not self.available:
            raise ConfigError(f"judge {self.name!r}: {self.unavailable_reason}")
        fields = self._rubric().fields
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or set(item) != set(fields):
                got = sorted(item) if isinstance(item, Mapping) else type(item).__name__
                raise ValueError(f"rate_fields: item {i} has {got}, expected {list(fields)}")
            for f in fields:
                if not isinstance(item[f], str):
                    raise TypeError(
                        f"rate_fields: item {i} field {f!r} is {type(item[f]).__name__}, "
                        "expected str"
                    )
        reqs: list[PairRequest | FieldsRequest]
        if fields == ("prompt", "continuation"):
            # slamkit's pairs keep their own request type (and so their cache keys).
            reqs = [
                PairRequest(it["prompt"], it["continuation"], f"pair {i}")
                for i, it in enumerate(items)
            ]
        else:
            reqs = [
                FieldsRequest(tuple((f, it[f]) for f in fields), f"item {i}")
                for i, it in enumerate(items)
            ]
        return self._rate_requests(reqs, stats, cache, desc)

    def _rate_requests(
        self,
        reqs: Sequence[PairRequest | FieldsRequest],
        stats: ExecStats | None,
        cache: ResultCache | None,
        desc: str | None,
    ) -> list[dict[str, Any]]:
        """The executor run shared by :meth:`rate` and :meth:`rate_fields`."""
        rubric = self._rubric()
        failed_now: set[str] = set()

        def store(key: str, _req: Any, record: dict[str, Any]) -> dict[str, Any]:
            if record["error"] is not None:
                failed_now.add(key)
            return record

        def load(key: str, value: Any) -> dict[str, Any] | None:
            # A stored failure (an earlier run's) is a miss: asked again. This call's own
            # failures are returned as they are. Answers are parsed here, on every read.
            if not _is_answer_record(value):
                return None
            if value["error"] is not None and key not in failed_now:
                return None
            return _read_answer(value, rubric)

        results = run_judge_requests(
            self,
            "chat",
            self._rate_batch,
            reqs,
            lambda r: sum(len(v) for v in r.values().values()),
            stats,
            cache,
            desc,
            store,
            load,
        )
        counts = summarize(results)
        bad = {s: counts[s] for s in STATUSES[1:]}
        if any(bad.values()):
            detail = ", ".join(f"{n} {s}" for s, n in bad.items() if n)
            log.warning(
                "judge %r: %d of %d pair(s) not rated (%s)",
                self.name,
                sum(bad.values()),
                len(results),
                detail,
            )
        return results

    def _rate_batch(self, requests: list[PairRequest | FieldsRequest]) -> list[dict[str, Any]]:
        """The answer records of ``requests`` (see :func:`_answer_record`), at most
        ``max_concurrency`` in flight. A refused request (:meth:`_ask`'s ``ConfigError``)
        stops the batch: nothing new is sent, and the error is raised once those in flight
        end."""
        if not requests:
            return []
        transport = self._get_transport()
        return transport.run_concurrently(
            requests, lambda _i, r, stop: self._ask(transport, r, stop)
        )

    def _ask(
        self,
        transport: EndpointClient,
        request: PairRequest | FieldsRequest,
        stop: threading.Event,
    ) -> dict[str, Any]:
        label = request.key or "pair"
        payload = self.fields_payload(request.values())
        # Retry jitter seeded by the pair: the same pairs retried wait the same.
        rng = random.Random(digest(request.fingerprint()))
        try:
            body = transport.call("POST", ROUTE, payload, label, rng, stop)
        except EndpointError as e:
            if e.status is not None and 400 <= e.status < 500 and e.status not in RETRY_STATUS:
                # The request's own fault (key, model, endpoint, an option): every other pair
                # would be refused alike. Stops the run; the message is redacted like errors.
                raise ConfigError(
                    f"judge {self.name!r}: the endpoint refused the request (HTTP {e.status}, "
                    f"not retried): {transport.redact(str(e))}; check base_url, model, the key "
                    f"in ${self.options['api_key_env']} and the options; no further request "
                    "is sent"
                ) from None
            return _answer_record(error=transport.redact(str(e))[:MAX_ERROR])
        except transport.http_error as e:  # httpx's other failures (decoding, ...)
            msg = f"{self.name}: {label}: {type(e).__name__}: {e}"
            return _answer_record(error=transport.redact(msg)[:MAX_ERROR])
        try:
            text, finish = _answer(body)
        except ValueError as e:
            where = f"{transport.base_url}{ROUTE}"
            msg = f"{self.name}: {label}: malformed response from {where}: {e}"
            return _answer_record(error=transport.redact(msg)[:MAX_ERROR])
        model, fingerprint = (body.get(k) for k in ("model", "system_fingerprint"))
        return _answer_record(
            text,
            finish_reason=finish,
            model=model if isinstance(model, str) else None,
            system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
        )

    def _get_transport(self) -> EndpointClient:
        """The HTTP transport, made on first use (no request is sent by making it)."""
        with self._transport_lock:
            if self._transport is None:
                self._transport = _make_transport(self.options)
            return self._transport

    def close(self) -> None:
        """Close the HTTP connections (a later :meth:`rate` opens new ones)."""
        with self._transport_lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None


# The name the transport's messages and worker threads carry (as before the transport moved
# to the core: error texts in cached results start with it).
_TRANSPORT_NAME = "llm-judge"


def _make_transport(options: Mapping[str, Any]) -> EndpointClient:
    """The judge's HTTP client (reads the key from the environment; sends nothing)."""
    return EndpointClient(
        _TRANSPORT_NAME,
        options["base_url"],
        api_key_env=options["api_key_env"],
        timeout=options["timeout"],
        max_retries=options["max_retries"],
        max_concurrency=options["max_concurrency"],
        backoff=options["backoff"],
        max_backoff=options["max_backoff"],
        logger=log,
    )


def _answer(body: Any) -> tuple[str, str | None]:
    """The answer text (``choices[0].message.content``, or its refusal) and the finish
    reason; ``ValueError`` with a phrase when the body is not a chat completion."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("no 'choices' in the response")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ValueError("no 'choices[0].message' in the response")
    text = content_text(message.get("content"))
    if text is None and isinstance(message.get("refusal"), str):
        text = message["refusal"]  # an answer all the same (it will not parse)
    if text is None:
        raise ValueError("the message has no content")
    finish = choices[0].get("finish_reason")
    return text, finish if isinstance(finish, str) else None
