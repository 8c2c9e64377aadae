"""The transport of OpenAI-compatible HTTP endpoints, shared by models and judges.

One :class:`EndpointClient` per endpoint owns an ``httpx.Client`` (keep-alive, at most
``max_concurrency`` connections, no redirects), bounds the requests in flight, and sends one
request at a time with :meth:`EndpointClient.call`: the decoded JSON answer, or an
:class:`EndpointError` naming the request and the problem in one line. Users:

- the ``openai-chat`` model (:mod:`reference_models.openai_compat`), which adds the
  chat-completions schema, the ``/models`` probe and the model identity;
- the LLM judge (:mod:`speechlm_eval.judges.llm`), which sends its rubric through it.

Retries: a request is tried again on 429, 408, 409, 5xx (but 501), timeouts and dropped
connections (:data:`RETRY_STATUS`), with exponential backoff from ``backoff`` seconds doubling
up to ``max_backoff`` and jittered by a generator the caller seeds (so a rerun waits the same);
a server's ``Retry-After`` / ``retry-after-ms`` is honoured up to ``max_backoff``. Every other
4xx is the request's own fault and is reported at once.

The API key is read from the environment variable named by ``api_key_env`` when the client is
made and sent as ``Authorization: Bearer``; it is never part of a message (a server's text
quoting it is redacted, see :meth:`EndpointClient.redact`). Endpoint URLs holding credentials,
a query or a fragment are refused (:func:`check_base_url`), so that the URL can be recorded
as it is. Making a client sends nothing.

This module is the harness' core: it imports nothing from plugins.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import PluginError

__all__ = [
    "MAX_MESSAGE",
    "RETRY_STATUS",
    "Cancelled",
    "EndpointClient",
    "EndpointError",
    "check_base_url",
    "check_env_name",
    "content_text",
    "error_text",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)

# Status codes worth another try: the server is busy (429), the request timed out at a proxy
# (408), a conflict that clears (409), or the server failed (5xx but 501, "not implemented").
# Every other 4xx is the request's own fault: repeating it cannot help, so it is reported at once.
RETRY_STATUS: frozenset[int] = frozenset({408, 409, 429})
MAX_MESSAGE = 200  # characters of a server's error text kept in a message


# --- configuration checks --------------------------------------------------------------------


def check_base_url(value: str) -> str:
    """``scheme://host[:port]/path`` without a trailing slash; credentials, query and fragment
    are refused (``ValueError``) so that the URL can be recorded (identity, messages) as it is."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected http(s)://host[:port]/path, got {value!r}")
    if parts.username or parts.password:
        # Not echoed: the value holds a secret.
        raise ValueError(
            "must not hold credentials; put the key in the variable named by api_key_env"
        )
    if parts.query or parts.fragment:
        # Not echoed either: gateways put keys in queries.
        raise ValueError("must have no query or fragment (the parts after '?' or '#')")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def check_env_name(value: str) -> str:
    """``value`` when it can name an environment variable (letters, digits, ``_``);
    ``ValueError`` otherwise."""
    if not value or not value.replace("_", "a").isalnum():
        raise ValueError(f"expected the name of an environment variable, got {value!r}")
    return value


# --- errors ----------------------------------------------------------------------------------


class EndpointError(PluginError):
    """A request that failed for good: ``status`` is the last HTTP status (``None`` when the
    last attempt got no answer, or the answer was malformed)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Cancelled(Exception):
    """A request not sent (or not retried) because another request of the batch failed
    (its ``stop`` event was set)."""


# --- answers ---------------------------------------------------------------------------------


def content_text(content: Any) -> str | None:
    """``message.content`` of a chat completion: a string, null, or (some servers) a list of
    text parts, joined; ``ValueError`` for anything else."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p.get("text")
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "output_text")
        ]
        if all(isinstance(t, str) for t in texts) and texts:
            return "".join(texts)
    raise ValueError(f"message.content is neither text nor text parts ({type(content).__name__})")


def error_text(err: Any) -> str:
    """A server's ``error`` value as text (its ``message`` or ``detail`` when it is an object),
    cut to :data:`MAX_MESSAGE` characters. Not redacted: see :meth:`EndpointClient.redact`."""
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or json.dumps(err))[:MAX_MESSAGE]
    return str(err)[:MAX_MESSAGE]


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds a server asks to wait: ``retry-after-ms`` (OpenAI), ``Retry-After`` as seconds
    or as an HTTP date; ``None`` when absent or unreadable. ``headers`` is looked up with
    lower-case names (``httpx.Headers`` is case-insensitive)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


# --- the client ------------------------------------------------------------------------------


class EndpointClient:
    """HTTP transport to one OpenAI-compatible endpoint (see the module doc).

    ``name`` prefixes every message and names the worker threads; ``base_url`` is checked
    with :func:`check_base_url` and ``api_key_env`` with :func:`check_env_name`. ``timeout``
    is in seconds per attempt (connecting: at most 10 s of it); ``max_retries`` counts the
    tries after the first; ``max_concurrency`` bounds the requests in flight across every
    thread using this client; ``backoff`` / ``max_backoff`` are the first and the longest wait
    between tries, in seconds. Retry warnings go to ``logger`` (default: this module's).

    Nothing is sent when the client is made; the key is read from the environment then.
    ``PluginError`` when httpx is not installed.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 5,
        max_concurrency: int = 8,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        logger: logging.Logger | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise PluginError(
                f"{name} needs httpx: pip install 'speechlm-eval[endpoints]'"
            ) from None
        self.name = name
        self.base_url: str = check_base_url(base_url)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_concurrency = int(max_concurrency)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.log = logger if logger is not None else log
        key = os.environ.get(check_env_name(api_key_env), "")
        # Kept only to redact it from server messages; never written anywhere.
        self._secret = key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=self.max_concurrency,
                max_keepalive_connections=self.max_concurrency,
            ),
            # A redirect would carry the key to another host; an endpoint is given exactly.
            follow_redirects=False,
        )
        # The bound holds across concurrent callers too (a pool of max_concurrency threads
        # per batch, but two batches at once would double it).
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._seen_lock = threading.Lock()
        self._seen: dict[str, set[str]] = {"model": set(), "system_fingerprint": set()}

    @property
    def http_error(self) -> type[Exception]:
        """``httpx.HTTPError``: httpx's failures that :meth:`call` does not turn into an
        :class:`EndpointError` (e.g. an answer body that cannot be decoded)."""
        return self._httpx.HTTPError

    def observed(self) -> dict[str, list[str]]:
        """Model names and ``system_fingerprint`` values the server answered with so far."""
        with self._seen_lock:
            return {k: sorted(v) for k, v in self._seen.items()}

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***`` (unchanged when no key is set)."""
        return text.replace(self._secret, "***") if self._secret else text

    def close(self) -> None:
        """Close the HTTP connections (the client is unusable afterwards)."""
        self._client.close()

    # --- one HTTP exchange, with retries -------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        payload: Any | None,
        label: str,
        rng: random.Random,
        stop: threading.Event | None = None,
    ) -> Any:
        """The decoded JSON answer of ``method path`` (``payload`` sent as JSON when not
        ``None``), retried as the module doc says; ``label`` names the request in messages,
        ``rng`` jitters the waits. :class:`EndpointError` when it fails for good (also for a
        2xx answer that is not JSON, or that holds only an ``error``); :class:`Cancelled`
        when ``stop`` is set before an attempt or during a wait."""
        httpx = self._httpx
        where = f"{self.base_url}{path}"
        content = None if payload is None else json.dumps(payload).encode()
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            if stop is not None and stop.is_set():
                raise Cancelled
            retry_after: float | None = None
            status: int | None = None
            with self._slots:
                try:
                    resp = self._client.request(
                        method,
                        path,
                        content=content,
                        headers={"Content-Type": "application/json"} if content else None,
                    )
                except httpx.TimeoutException:
                    problem = f"timed out after {self.timeout:g} s"
                except httpx.TransportError as e:
                    problem = f"connection error ({type(e).__name__})"
                else:
                    code = status = resp.status_code
                    if 200 <= code < 300:
                        return self._json(resp, label, where)
                    problem = f"HTTP {code} {resp.reason_phrase}".rstrip()
                    detail = self._server_message(resp)
                    if detail:
                        problem += f": {detail}"
                    if not (code in RETRY_STATUS or (code >= 500 and code != 501)):
                        raise EndpointError(f"{self.name}: {label}: {problem} (from {where})", code)
                    retry_after = retry_after_seconds(resp.headers)
            if attempt + 1 == attempts:
                raise EndpointError(
                    f"{self.name}: {label}: failed after {attempts} attempt(s) at {where}; "
                    f"last: {problem}",
                    status,
                )
            delay = self.retry_delay(attempt, retry_after, rng)
            self.log.warning(
                "%s: %s: %s; retry %d/%d in %.2f s",
                self.name,
                label,
                problem,
                attempt + 1,
                attempts - 1,
                delay,
            )
            if stop is not None:
                if stop.wait(delay):
                    raise Cancelled
            else:
                time.sleep(delay)
        raise AssertionError("unreachable")

    def retry_delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based): the server's
        ``retry_after`` when given, else the jittered exponential step; at most
        ``max_backoff``."""
        cap = self.max_backoff
        if retry_after is not None:
            return min(max(retry_after, 0.0), cap)
        # "Equal jitter": half the exponential step plus a random half, so retries of many
        # requests spread out but none comes back sooner than half the step.
        step = min(cap, self.backoff * 2.0**attempt)
        return step / 2 + rng.random() * step / 2

    def _json(self, resp: Any, label: str, where: str) -> Any:
        try:
            body = json.loads(resp.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            start = resp.content[:60].decode("utf-8", "replace")
            raise EndpointError(
                f"{self.name}: {label}: malformed response from {where}: not JSON "
                f"({len(resp.content)} bytes, starting {self.redact(start)!r})"
            ) from None
        if isinstance(body, dict) and "error" in body and "choices" not in body:
            # Some servers report errors with status 200.
            msg = error_text(body["error"])
            raise EndpointError(f"{self.name}: {label}: server error from {where}: {msg}")
        with self._seen_lock:
            for k in ("model", "system_fingerprint"):
                v = body.get(k) if isinstance(body, dict) else None
                if isinstance(v, str) and v not in self._seen[k]:
                    self._seen[k].add(v)
                    if len(self._seen[k]) > 1:
                        # The backend changed under the run: answers may not be comparable.
                        self.log.warning("%s: the server now answers with %s %r", self.name, k, v)
        return body

    def _server_message(self, resp: Any) -> str:
        try:
            body = resp.json()
            text = error_text(body.get("error", body)) if isinstance(body, dict) else str(body)
        except ValueError:
            text = resp.text
        return self.redact(" ".join(str(text).split()))[:MAX_MESSAGE]

    # --- a batch, bounded --------------------------------------------------------------------

    def run_concurrently(
        self,
        requests: Sequence[Any],
        one: Callable[[int, Any, threading.Event], Any],
    ) -> list[Any]:
        """``one(index, request, stop)`` for every request, at most ``max_concurrency`` at a
        time; the results in order.

        When one fails, ``stop`` is set: no further request starts (``one`` should raise
        :class:`Cancelled` when it sees ``stop`` set, as :meth:`call` does), the ones in
        flight finish, and the first failure in batch order is raised (an
        :class:`EndpointError` saying how many more failed).
        """
        if not requests:
            return []
        stop = threading.Event()

        def guarded(i: int, r: Any) -> Any:
            try:
                return one(i, r, stop)
            except Cancelled:
                raise
            except BaseException:
                # Set here, not when the caller notices: this thread's next request must
                # already see it, so nothing new starts after a failure.
                stop.set()
                raise

        workers = min(self.max_concurrency, len(requests))
        pool = ThreadPoolExecutor(workers, thread_name_prefix=self.name)
        futures: list[Future[Any]] = []
        try:
            futures = [pool.submit(guarded, i, r) for i, r in enumerate(requests)]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                stop.set()  # nothing new starts; requests in flight end (bounded by timeout)
                wait(futures)
        except BaseException:  # KeyboardInterrupt while waiting: the same, then out
            stop.set()
            for f in futures:
                f.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        failed = [
            (i, f.exception())
            for i, f in enumerate(futures)
            if not f.cancelled() and f.exception() is not None
        ]
        real = [e for _, e in failed if not isinstance(e, Cancelled)]
        if real:
            first = real[0]  # the first in batch order: the same report on every rerun
            if len(real) > 1 and isinstance(first, EndpointError):
                more = f" ({len(real) - 1} more request(s) of the batch failed)"
                raise EndpointError(f"{first}{more}", first.status) from None
            raise first
        return [f.result() for f in futures]
