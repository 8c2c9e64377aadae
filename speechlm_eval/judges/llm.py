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

Configuration: ``base_url`` (default: ``$SLM_EVAL_LLM_JUDGE_URL``), ``model`` (default:
``$SLM_EVAL_LLM_JUDGE_MODEL``; required when an endpoint is set), the key in the environment
variable named by ``api_key_env`` (``OPENAI_API_KEY``; never recorded). Without an endpoint
the judge still constructs, with ``available`` False and ``unavailable_reason`` saying what to
set; :meth:`LLMJudge.rate` then raises :class:`~speechlm_eval.errors.ConfigError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from ..hashing import digest
from ..metrics import Metric, cluster_mean
from ..options import Opt, Spec
from .base import Judge, package_version, run_judge_requests

__all__ = [
    "ENV_MODEL",
    "ENV_URL",
    "PARSERS",
    "RUBRICS",
    "SCALE",
    "SLAMKIT_RUBRIC",
    "STATUSES",
    "LLMJudge",
    "parse_boxed",
    "rating",
    "render",
    "summarize",
]

log = logging.getLogger(__name__)

ENV_URL = "SLM_EVAL_LLM_JUDGE_URL"
ENV_MODEL = "SLM_EVAL_LLM_JUDGE_MODEL"
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
    """A rubric: its text (with both slots), where it comes from, and the parser it pairs with."""

    name: str
    text: str
    source: str
    parser: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


RUBRICS: dict[str, Rubric] = {
    "slamkit": Rubric(
        "slamkit",
        SLAMKIT_RUBRIC,
        "slp-rl/slamkit config/metric/llm_as_judge.yaml (instruction) @ 388b402, MIT licence",
        "slamkit-boxed",
    ),
}

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


# --- results -----------------------------------------------------------------------------------


def _result(
    status: str,
    value: int | None = None,
    raw: str | None = None,
    error: str | None = None,
    finish_reason: str | None = None,
    model: str | None = None,
    system_fingerprint: str | None = None,
) -> dict[str, Any]:
    score = float(value) if status == "ok" and value is not None else None
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
) -> dict[str, Any]:
    """The result of one answer text: parsed with :func:`parse_boxed`, checked against
    :data:`SCALE`, the text kept (clipped to :data:`MAX_RAW` characters)."""
    value = parse_boxed(answer)
    if value is None:
        status = "unparsed"
    elif SCALE[0] <= value <= SCALE[1]:
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
    ok = [(float(r["score"]), c) for r, c in zip(results, ids, strict=True) if r["status"] == "ok"]
    parsed = [
        (float(r["value"]), c) for r, c in zip(results, ids, strict=True) if r["status"] in PARSED
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


def _read_answer(record: Mapping[str, Any]) -> dict[str, Any]:
    """The result of a cached answer record: parsed now (:func:`rating`), or ``error``."""
    if record["error"] is not None:
        return _result("error", error=record["error"])
    return rating(
        record["answer"], record["finish_reason"], record["model"], record["system_fingerprint"]
    )


# --- options -----------------------------------------------------------------------------------


def _from_env(var: str) -> Any:
    return lambda _before: os.environ.get(var, "").strip() or None


@dataclass(frozen=True)
class PairRequest:
    """One (prompt transcript, continuation transcript) pair to rate."""

    prompt: str
    continuation: str
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "continuation": self.continuation}


# --- the judge ---------------------------------------------------------------------------------


class LLMJudge(Judge):
    """Rates (prompt transcript, continuation transcript) pairs with an LLM behind an
    OpenAI-compatible ``/chat/completions`` endpoint (see the module doc).

    Options: ``base_url`` (``http(s)://host[:port]/v1``; default ``$SLM_EVAL_LLM_JUDGE_URL``,
    none: not configured), ``model`` (the served model name, pinned; default
    ``$SLM_EVAL_LLM_JUDGE_MODEL``, required with an endpoint), ``api_key_env`` (the variable
    holding the key, ``OPENAI_API_KEY``), ``seed`` (0; ``none``: not sent), ``temperature``
    (0), ``max_tokens`` (512; ``none``: not sent), ``rubric`` (``slamkit``); not in the
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
            "seed": Opt(int, 0, nullable=True, doc="sent with every request; none: not sent"),
            "temperature": Opt(float, 0.0, ge=0),
            "max_tokens": Opt(int, 512, ge=1, nullable=True, doc="answer cap; none: not sent"),
            "rubric": Opt(str, "slamkit", choices=tuple(RUBRICS)),
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
        if opts["base_url"] is not None and not opts["model"]:
            raise ConfigError(
                f"judge {name!r}: option 'model' is required with an endpoint "
                f"({opts['base_url']}): the served model's pinned name, e.g. "
                f"model=gpt-4o-2024-08-06 (or set {ENV_MODEL})"
            )
        return opts

    def __init__(self, name: str = "llm-judge", **options: Any) -> None:
        super().__init__(name, **options)
        self.rubric = RUBRICS[self.options["rubric"]]
        self._transport: EndpointClient | None = None
        self._transport_lock = threading.Lock()
        # Whether an endpoint is configured (nothing is sent to check that it answers), and
        # why rate() cannot run otherwise (see Judge.available).
        self.available = self.options["base_url"] is not None
        self.unavailable_reason = (
            ""
            if self.available
            else f"no endpoint configured: set {ENV_URL} or --judge "
            "llm=llm-judge,base_url=...,model=..."
        )

    # --- configuration -------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        return int(self.options["batch_size"])

    def identity(self) -> dict[str, Any]:
        """Endpoint (no credentials: refused in ``base_url``), model name, request settings,
        rubric (name, source, SHA-256 of its text), parser and scale; never the key."""
        o = self.options
        parser = self.rubric.parser
        return {
            **self._identity_head("httpx"),
            "speechlm_eval": package_version("speechlm-eval"),
            "api": ROUTE.strip("/").replace("/", "."),
            "endpoint": o["base_url"],
            "model": o["model"],
            "request": self.request_settings(),
            "messages": "one user message: the rubric with the two transcripts in its slots",
            "rubric": {
                "name": self.rubric.name,
                "sha256": self.rubric.sha256,
                "source": self.rubric.source,
            },
            "parser": {"name": parser, **PARSERS[parser]},
            "scale": list(SCALE),
        }

    def cache_identity(self) -> dict[str, Any]:
        """What the endpoint is sent, besides the two texts (in each request's fingerprint):
        the cache of raw answers is keyed by this alone (see the module doc), never by the
        harness' or httpx's version, the parser or the code."""
        o = self.options
        return {
            "api": ROUTE.strip("/").replace("/", "."),
            "endpoint": o["base_url"],
            "model": o["model"],
            "request": self.request_settings(),
            "messages": "one user message: the rubric with the two transcripts in its slots",
            "rubric_sha256": self.rubric.sha256,
        }

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
        """The JSON body sent for one pair."""
        text = render(self.rubric.text, prompt, continuation)
        return {
            "model": self.options["model"],
            "messages": [{"role": "user", "content": text}],
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
            return _read_answer(value)

        results = run_judge_requests(
            self,
            "chat",
            self._rate_batch,
            reqs,
            lambda r: len(r.prompt) + len(r.continuation),
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

    def _rate_batch(self, requests: list[PairRequest]) -> list[dict[str, Any]]:
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
        self, transport: EndpointClient, request: PairRequest, stop: threading.Event
    ) -> dict[str, Any]:
        label = request.key or "pair"
        payload = self.payload(request.prompt, request.continuation)
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
