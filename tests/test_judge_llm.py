"""The LLM judge ``llm-judge`` (slamkit's ``llm_as_judge``) against a real OpenAI-compatible
server on 127.0.0.1 (tests/openai_server.py, backend ``script``: answers scripted per pair).

The parser is checked on hand-worked answers and against a second formulation written here (a
scan, no regex) on random strings; the requests are checked as the server received them
(pinned model, seed, temperature 0, the rubric with both transcripts in place); caching (the
raw answer, keyed by what the endpoint saw, parsed on read), error accounting (never cached),
refused requests (a configuration error that stops the run), the unconfigured judge and
ordered concurrent requests are checked through the judge's public ``rate``. Until pyproject
names the judge, the tests that load it by name register it in the judge registry themselves.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sqlite3
import time
import unicodedata
from types import SimpleNamespace

import pytest
from openai_server import OpenAIServer

from speechlm_eval import registry
from speechlm_eval.cache import ResultCache
from speechlm_eval.errors import ConfigError
from speechlm_eval.execute import ExecStats
from speechlm_eval.judges import base as judges_base
from speechlm_eval.judges import clear_loaded, judge_key, judge_record, load_judge
from speechlm_eval.judges import llm as llm_module
from speechlm_eval.judges.llm import (
    ENV_MODEL,
    ENV_URL,
    MAX_RAW,
    SLAMKIT_RUBRIC,
    LLMJudge,
    parse_boxed,
    rating,
    render,
    summarize,
)

pytest.importorskip("httpx")

SERVED = "judge-model-2025-01-01"
FAST = {"backoff": "0.001", "max_backoff": "0.01", "max_retries": "1"}
# The digest of slamkit's instruction as YAML decodes it (config/metric/llm_as_judge.yaml of
# slp-rl/slamkit at 388b402, read with yaml.safe_load when this test was written).
SLAMKIT_SHA256 = "4005003e48ef6782c7917160ed0fc717fa299aa06e89c2673a9010356fefc3a3"

# Scripted answers, by continuation: the server finds the continuation in the rubric.
ANSWERS = {
    "c-ok": "The continuation follows well.\nThe final answer is $\\boxed{4}$",
    "c-low": "Unrelated. The final answer is $\\boxed{1}$",
    "c-high": "Very likely. The final answer is $\\boxed{5}$",
    "c-range": "The final answer is $\\boxed{7}$",
    "c-junk": "I would rate this a 4 out of 5.",
    "c-two": "Maybe \\boxed{x} or \\boxed{2}, then again \\boxed{5}.",
    "c-long": "analysis " * 400 + "The final answer is $\\boxed{3}$",
    # the box in the middle of a long answer: the kept (clipped) text loses it
    "c-mid": "before " * 400 + "\\boxed{2} and later \\boxed{5} " + "after " * 400,
}
_HEAD = 'the text continuation is :"'
_TAIL = '". You must give'


def script(text: str) -> str:
    """The answer for a rendered rubric: by its continuation (``c-…``), else a fixed 3."""
    cont = text[text.index(_HEAD) + len(_HEAD) : text.index(_TAIL)].strip()
    return ANSWERS.get(cont.split()[0] if cont else "", "\\boxed{3}")


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch):
    """Nothing of the user's environment (endpoint, model, key) reaches these tests."""
    for var in (ENV_URL, ENV_MODEL, "OPENAI_API_KEY", "LLM_JUDGE_TEST_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def server():
    with OpenAIServer("script", served=SERVED, script=script) as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.reset()
    return server


def judge(srv: OpenAIServer, **options: str) -> LLMJudge:
    return LLMJudge(base_url=srv.url, model=SERVED, **{**FAST, **options})


def n_posts(srv: OpenAIServer) -> int:
    with srv.lock:
        return len(srv.requests)


# --- the rubric and the parser ------------------------------------------------------------------


def test_rubric_is_slamkit_instruction_verbatim():
    assert hashlib.sha256(SLAMKIT_RUBRIC.encode()).hexdigest() == SLAMKIT_SHA256
    assert SLAMKIT_RUBRIC.count("[prompt_audio_transcription]") == 1
    assert SLAMKIT_RUBRIC.count("[generated_audio_transcription]") == 1
    assert "from 1 to 5" in SLAMKIT_RUBRIC and "\\boxed{x}" in SLAMKIT_RUBRIC


def test_render_puts_each_transcript_in_its_slot():
    got = render(SLAMKIT_RUBRIC, "the cat sat", "on the mat")
    assert got == SLAMKIT_RUBRIC.replace("[prompt_audio_transcription]", "the cat sat").replace(
        "[generated_audio_transcription]", "on the mat"
    )
    assert 'The text prompt is: "the cat sat", and the text continuation is :"on the mat".' in got
    # One pass: a transcript holding a slot's text is not substituted again.
    odd = render(SLAMKIT_RUBRIC, "[generated_audio_transcription]", "x")
    assert 'The text prompt is: "[generated_audio_transcription]"' in odd


@pytest.mark.parametrize(
    ("answer", "value", "status"),
    [
        ("The final answer is $\\boxed{4}$", 4, "ok"),
        ("\\boxed{1}", 1, "ok"),
        ("\\boxed{5}.", 5, "ok"),
        ("\\boxed{03}", 3, "ok"),  # int("03")
        ("\\boxed{\u0663}", 3, "ok"),  # ARABIC-INDIC DIGIT THREE: Python's \d and int() take it
        ("\\\\boxed{2}", 2, "ok"),  # the match starts at the second backslash
        ("I'd say 3, or 4. Final: \\boxed{4}", 4, "ok"),  # bare numbers do not count
        ("\\boxed{2} first, then \\boxed{5}", 2, "ok"),  # the first boxed integer wins
        ("\\boxed{x} then \\boxed{3}", 3, "ok"),  # a boxed non-number is passed over
        ("\\boxed{7}", 7, "out_of_range"),
        ("\\boxed{0}", 0, "out_of_range"),
        ("$\\boxed{12}$", 12, "out_of_range"),
        ("\\boxed{-2}", None, "unparsed"),
        ("\\boxed{4.5}", None, "unparsed"),
        ("\\boxed{ 4}", None, "unparsed"),
        ("\\boxed{4 }", None, "unparsed"),
        ("\\boxed{{4}}", None, "unparsed"),
        ("\\Boxed{4}", None, "unparsed"),
        ("boxed{4}", None, "unparsed"),
        ("\\boxed4", None, "unparsed"),
        ("I would rate this a 4 out of 5.", None, "unparsed"),
        ("", None, "unparsed"),
    ],
)
def test_parse_hand_worked(answer, value, status):
    assert parse_boxed(answer) == value
    r = rating(answer, "stop")
    assert (r["value"], r["status"]) == (value, status)
    assert r["score"] == (float(value) if status == "ok" else None)
    assert r["raw"] == answer and r["error"] is None and r["finish_reason"] == "stop"


def scan_boxed(text: str) -> int | None:
    """slamkit's rule written without a regex: the first ``\\boxed{`` followed by one or more
    decimal characters (Unicode category Nd) and ``}``, read as an integer."""
    tag = "\\boxed{"
    start = text.find(tag)
    while start != -1:
        end = start + len(tag)
        while end < len(text) and text[end].isdecimal():
            end += 1
        if end > start + len(tag) and end < len(text) and text[end] == "}":
            digits = text[start + len(tag) : end]
            return sum(unicodedata.decimal(ch) * 10**k for k, ch in enumerate(reversed(digits)))
        start = text.find(tag, start + 1)
    return None


def test_parser_agrees_with_an_independent_scan_on_random_strings():
    rng = random.Random(20250518)
    digits = ["1", "4", "5", "7", "0", "\u0663", "\uff14"]  # ASCII, Arabic-Indic, fullwidth
    noise = [" ", "x", "-", ".", "$", "\n", "a", "{", "}", "\\", "boxed", "{{", "}}"]

    def boxish() -> str:
        """``\\boxed{`` and a short run of digits and noise, closed or not."""
        inner = "".join(rng.choice(digits * 3 + noise) for _ in range(rng.randint(0, 3)))
        return "\\boxed{" + inner + rng.choice(["}", "}", "}", "", "}}", " }"])

    found = near = 0
    for _ in range(4000):
        n = rng.randint(0, 10)
        text = "".join(
            boxish() if rng.random() < 0.3 else rng.choice(digits + noise) for _ in range(n)
        )
        want = scan_boxed(text)
        assert parse_boxed(text) == want, repr(text)
        found += want is not None
        near += want is None and "\\boxed{" in text
    assert found > 1000 and near > 500  # boxed integers and near misses both well represented


def test_summarize_counts_and_both_means():
    rows = [rating(a) for a in ("\\boxed{4}", "\\boxed{2}", "\\boxed{9}", "none")]
    rows.append({"score": None, "status": "error", "value": None, "raw": None, "error": "x"})
    s = summarize(rows)
    counts = {k: s[k] for k in ("n", "ok", "out_of_range", "unparsed", "error")}
    assert counts == {"n": 5, "ok": 2, "out_of_range": 1, "unparsed": 1, "error": 1}
    assert (s["mean"].value, s["mean"].n) == (3.0, 2)
    # (4 + 2 + 9) / 3: slamkit averages every parsed integer
    assert (s["slamkit_mean"].value, s["slamkit_mean"].n) == (5.0, 3)
    # each result its own cluster: the plain standard error s / sqrt(n)
    assert s["slamkit_mean"].stderr == pytest.approx(math.sqrt(13 / 3), rel=1e-12)
    # by clusters: 4 and 9 one prompt, 2 another: CR1 over residual sums (-1 + 4) and -3,
    # sqrt(2 * (9 + 9)) / 3 = 2
    s = summarize(rows, ["a", "b", "a", "b", "b"])
    assert s["slamkit_mean"].stderr == pytest.approx(2.0, rel=1e-12)
    assert s["mean"].stderr == pytest.approx(1.0, rel=1e-12)  # residuals 1, -1: sqrt(2*2)/2
    assert summarize([])["mean"] is None and summarize([])["slamkit_mean"] is None
    with pytest.raises(ValueError, match="5 results but 1 clusters"):
        summarize(rows, ["a"])


# --- configuration --------------------------------------------------------------------------------


def test_unconfigured_judge_constructs_but_cannot_rate():
    j = LLMJudge()
    assert j.available is False
    assert j.unavailable_reason == (
        "no endpoint configured: set SLM_EVAL_LLM_JUDGE_URL or --judge "
        "llm=llm-judge,base_url=...,model=..."
    )
    ident = j.identity()
    assert ident["endpoint"] is None and ident["kind"] == "llm"
    with pytest.raises(ConfigError, match="no endpoint configured"):
        j.rate(["a"], ["b"])
    with pytest.raises(ConfigError, match="no endpoint configured"):
        j.rate([], [])


def test_endpoint_and_model_from_the_environment(monkeypatch, srv):
    monkeypatch.setenv(ENV_URL, srv.url + "/")
    with pytest.raises(ConfigError, match="'model' is required"):
        LLMJudge()
    monkeypatch.setenv(ENV_MODEL, SERVED)
    j = LLMJudge()
    assert j.available and j.unavailable_reason == ""
    assert (j.identity()["endpoint"], j.identity()["model"]) == (srv.url, SERVED)
    # An option given wins over the environment; none switches the endpoint off.
    assert LLMJudge(base_url="none").available is False


def test_options_refused():
    with pytest.raises(ConfigError, match="API key is not an option") as e:
        LLMJudge(base_url="http://127.0.0.1:9/v1", model="m", api_key="sk-secret")
    assert "sk-secret" not in str(e.value)
    with pytest.raises(ConfigError, match="credentials") as e:
        LLMJudge(base_url="http://user:sk-secret@127.0.0.1:9/v1", model="m")
    assert "sk-secret" not in str(e.value)
    with pytest.raises(ConfigError, match="rubric"):
        LLMJudge(base_url="http://127.0.0.1:9/v1", model="m", rubric="mine")
    with pytest.raises(ConfigError, match="max_concurrency"):
        LLMJudge(base_url="http://127.0.0.1:9/v1", model="m", max_concurrency="0")


def test_constructing_sends_nothing(srv):
    models_before = srv.models_calls
    j = judge(srv)
    j.identity()
    judge_record(j)
    assert n_posts(srv) == 0 and srv.models_calls == models_before


def test_identity_names_what_changes_answers_and_never_the_key(monkeypatch, srv):
    monkeypatch.setenv("LLM_JUDGE_TEST_KEY", "sk-very-secret")
    j = judge(srv, api_key_env="LLM_JUDGE_TEST_KEY")
    ident = j.identity()
    assert ident["endpoint"] == srv.url and ident["model"] == SERVED
    assert ident["request"] == {"temperature": 0.0, "seed": 0, "max_tokens": 512}
    assert ident["rubric"]["name"] == "slamkit" and ident["rubric"]["sha256"] == SLAMKIT_SHA256
    assert ident["parser"]["name"] == "slamkit-boxed" and ident["scale"] == [1, 5]
    assert ident["version"] and ident["speechlm_eval"]
    assert "sk-very-secret" not in repr(judge_record(j))
    key = judge_key(j)
    assert judge_key(judge(srv, max_concurrency="2", timeout="5", batch_size="3")) == key
    for changed in ({"seed": "1"}, {"temperature": "0.7"}, {"max_tokens": "64"}):
        assert judge_key(judge(srv, **changed)) != key
    assert judge_key(LLMJudge(base_url=srv.url, model="other", **FAST)) != key
    assert judge_key(LLMJudge(base_url=srv.url + "/x", model=SERVED, **FAST)) != key


def test_cache_key_is_what_the_endpoint_saw_not_versions_parser_or_code(monkeypatch, srv):
    j = judge(srv)
    key, record = judge_key(j), judge_record(j)
    assert j.cache_identity() == {
        "api": "chat.completions",
        "endpoint": srv.url,
        "model": SERVED,
        "request": {"temperature": 0.0, "seed": 0, "max_tokens": 512},
        "messages": "one user message: the rubric with the two transcripts in its slots",
        "rubric_sha256": SLAMKIT_SHA256,
    }
    # Another speechlm-eval / httpx version, another parser, other code: recorded, not keyed.
    for module in (llm_module, judges_base):
        monkeypatch.setattr(module, "package_version", lambda name: f"{name}-99")
    monkeypatch.setitem(
        llm_module.PARSERS, "slamkit-boxed", {**llm_module.PARSERS["slamkit-boxed"], "rule": "?"}
    )
    monkeypatch.setattr(judges_base, "judge_code", lambda _j: {"module_sha256": "changed"})
    assert judge_key(j) == key
    now = judge_record(j)
    assert now["version"] == "httpx-99" and now["speechlm_eval"] == "speechlm-eval-99"
    assert now["parser"]["rule"] == "?" and now["code"] == {"module_sha256": "changed"}
    assert now != record
    # Another rubric text is another question.
    j.rubric = llm_module.Rubric("mine", SLAMKIT_RUBRIC + " ", "here", "slamkit-boxed")
    assert judge_key(j) != key


# --- requests and answers -------------------------------------------------------------------------


def test_request_payload_is_pinned_and_holds_the_rubric(srv):
    (res,) = judge(srv).rate(["the cat sat"], ["c-ok on the mat"])
    assert res["status"] == "ok" and res["score"] == 4.0
    (payload,) = srv.requests
    expected = SLAMKIT_RUBRIC.replace("[prompt_audio_transcription]", "the cat sat").replace(
        "[generated_audio_transcription]", "c-ok on the mat"
    )
    assert payload == {
        "model": SERVED,
        "messages": [{"role": "user", "content": expected}],
        "temperature": 0.0,
        "seed": 0,
        "max_tokens": 512,
    }
    srv.reset()
    judge(srv, seed="none", max_tokens="none", temperature="0.25").rate(["p"], ["c"])
    (payload,) = srv.requests
    assert payload["temperature"] == 0.25 and "seed" not in payload and "max_tokens" not in payload


def test_rate_results_in_order_with_every_status(srv):
    names = ["c-ok", "c-low", "c-range", "c-junk", "c-two", "c-high"]
    got = judge(srv).rate([f"prompt {i}" for i in range(len(names))], names)
    assert [(r["status"], r["score"], r["value"]) for r in got] == [
        ("ok", 4.0, 4),
        ("ok", 1.0, 1),
        ("out_of_range", None, 7),
        ("unparsed", None, None),
        ("ok", 2.0, 2),
        ("ok", 5.0, 5),
    ]
    assert got[3]["raw"] == ANSWERS["c-junk"]
    assert all(r["finish_reason"] == "stop" and r["error"] is None for r in got)
    # what answered, as the server said
    assert all((r["model"], r["system_fingerprint"]) == (SERVED, "fp_test") for r in got)
    s = summarize(got)
    assert (s["ok"], s["out_of_range"], s["unparsed"], s["error"]) == (4, 1, 1, 0)
    assert s["mean"].value == 3.0 and s["slamkit_mean"].value == 19 / 5


def test_long_answers_are_parsed_whole_and_kept_clipped(srv):
    (r,) = judge(srv).rate(["p"], ["c-long"])
    assert r["status"] == "ok" and r["score"] == 3.0
    assert len(ANSWERS["c-long"]) > MAX_RAW
    assert r["raw"].startswith("analysis analysis") and r["raw"].endswith("\\boxed{3}$")
    assert "characters cut" in r["raw"] and len(r["raw"]) < MAX_RAW + 60


def test_identical_pairs_are_asked_once(srv):
    got = judge(srv).rate(["p", "p", "q"], ["c-ok", "c-ok", "c-ok"])
    assert [r["score"] for r in got] == [4.0, 4.0, 4.0]
    assert n_posts(srv) == 2


def test_bad_inputs():
    j = LLMJudge(base_url="http://127.0.0.1:9/v1", model="m")
    with pytest.raises(ValueError, match="2 prompts but 1 continuations"):
        j.rate(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="continuation 0 is int"):
        j.rate(["a"], [3])


# --- cache and errors -----------------------------------------------------------------------------


def test_the_raw_answer_is_cached_and_parsed_when_read(monkeypatch, srv, tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResultCache(path)
    (first,) = judge(srv).rate(["p"], ["c-mid"], cache=cache)
    cache.close()
    assert first["status"] == "ok" and first["value"] == 2
    assert "\\boxed" not in first["raw"]  # clipped away from what the result keeps
    with sqlite3.connect(path) as db:
        (stored,) = [json.loads(v) for (v,) in db.execute("SELECT value FROM results")]
    assert stored == {  # the answer whole, as it came, and who answered
        "answer": ANSWERS["c-mid"],
        "error": None,
        "finish_reason": "stop",
        "model": SERVED,
        "system_fingerprint": "fp_test",
    }
    # A resumed run reads the same result back, served model and fingerprint included.
    cache = ResultCache(path)
    assert judge(srv).rate(["p"], ["c-mid"], cache=cache) == [first]
    # Another parser (here: the last boxed integer) re-parses the stored answer, asking nothing.
    monkeypatch.setattr(llm_module, "parse_boxed", lambda a: int(llm_module._BOXED.findall(a)[-1]))
    (again,) = judge(srv).rate(["p"], ["c-mid"], cache=cache)
    assert n_posts(srv) == 1
    assert (again["status"], again["score"], again["model"]) == ("ok", 5.0, SERVED)


def test_answers_are_cached_and_a_second_run_asks_nothing(srv, tmp_path):
    prompts, conts = ["a", "b", "c"], ["c-ok", "c-junk", "c-range"]
    cache = ResultCache(tmp_path / "cache.sqlite")
    first = judge(srv, batch_size="2").rate(prompts, conts, cache=cache)
    assert n_posts(srv) == 3
    cache.close()
    cache = ResultCache(tmp_path / "cache.sqlite")
    stats = ExecStats()
    again = judge(srv).rate(prompts, conts, stats=stats, cache=cache)
    assert n_posts(srv) == 3  # no request: unparsed and out-of-range answers are cached too
    assert again == first and stats.cache_hits == 3 and stats.computed == 0
    # Another seed is another question: asked again.
    judge(srv, seed="1").rate(prompts[:1], conts[:1], cache=cache)
    assert n_posts(srv) == 4


def test_a_killed_run_keeps_the_batches_it_finished(srv, tmp_path):
    cache = ResultCache(tmp_path / "cache.sqlite")
    j = judge(srv, batch_size="2")
    real, calls = j._rate_batch, []

    def dies_on_the_second_batch(requests):
        calls.append(len(requests))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(requests)

    j._rate_batch = dies_on_the_second_batch  # run_judge_requests gets it from the instance
    prompts, conts = ["a", "b", "c", "d"], ["c-ok", "c-low", "c-high", "c-two"]
    with pytest.raises(KeyboardInterrupt):
        j.rate(prompts, conts, cache=cache)
    assert n_posts(srv) == 2
    got = judge(srv, batch_size="2").rate(prompts, conts, cache=cache)
    assert n_posts(srv) == 4  # only the two pairs of the batch that never finished
    assert [r["score"] for r in got] == [4.0, 1.0, 5.0, 2.0]


def test_http_errors_are_reported_never_cached(srv, tmp_path):
    cache = ResultCache(tmp_path / "cache.sqlite")
    prompts = ["p1", "p2", "p3"]
    conts = ["c-ok", "c-high [fault:500]", "c-low [fault:503x2]"]
    got = judge(srv).rate(prompts, conts, cache=cache)  # max_retries=1: two attempts each
    assert [r["status"] for r in got] == ["ok", "error", "error"]
    assert got[1]["score"] is None and got[1]["value"] is None and got[1]["raw"] is None
    assert "HTTP 500" in got[1]["error"] and "2 attempt(s)" in got[1]["error"]
    assert "HTTP 503" in got[2]["error"]
    assert summarize(got)["error"] == 2
    assert sorted(srv.attempts.values()) == [1, 2, 2]
    # The next run asks only the two failed pairs again; the 503s are over by now.
    again = judge(srv).rate(prompts, conts, cache=cache)
    assert [r["status"] for r in again] == ["ok", "error", "ok"]
    assert again[2]["score"] == 1.0 and again[0] == got[0]
    assert n_posts(srv) == 5 + 2 + 1  # p2: two attempts (500 again); p3: one (answered)
    third = judge(srv).rate(prompts, conts, cache=cache)
    assert third[2] == again[2] and n_posts(srv) == 8 + 2  # only p2 again, still failing


def test_malformed_answers_and_exhausted_retries_are_errors(srv):
    conts = [
        "c-ok [fault:nochoices]",
        "c-ok [fault:badjson]",
        "c-ok [fault:429x5] [fault:retry_after=0]",  # rate limited past max_retries: transient
        "c-ok",
    ]
    got = judge(srv).rate(["p"] * 4, conts)
    assert [r["status"] for r in got] == ["error", "error", "error", "ok"]
    assert "no 'choices'" in got[0]["error"]
    assert "not JSON" in got[1]["error"]
    assert "HTTP 429" in got[2]["error"] and "2 attempt(s)" in got[2]["error"]
    assert all(r["model"] is None for r in got[:3])


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        ("[fault:400]", 400, "unsupported parameter 'foo'"),
        ("[fault:403]", 403, "injected 403"),
        ("[fault:404]", 404, "injected 404"),
    ],
)
def test_a_refused_request_is_a_configuration_error_and_nothing_more_is_sent(
    srv, tmp_path, fault, status, message
):
    cache = ResultCache(tmp_path / "cache.sqlite")
    # Longest first: the refused pair (the longest) is the first of the first batch; one at a
    # time, so nothing else is in flight when it is refused.
    conts = ["c-ok", f"c-low with a long tail {fault}", "c-high", "c-two", "c-range"]
    j = judge(srv, max_concurrency="1", batch_size="2")
    with pytest.raises(ConfigError) as e:
        j.rate(["p"] * 5, conts, cache=cache)
    text = str(e.value)
    assert f"HTTP {status}" in text and message in text
    assert f"{srv.url}/chat/completions" in text and "judge 'llm-judge'" in text
    assert "\n" not in text
    assert n_posts(srv) == 1  # the refused one, not retried, and nothing after it
    # With the fault gone, the next run asks every pair (nothing was cached as a verdict).
    got = judge(srv).rate(["p"] * 4, [c for c in conts if "fault" not in c], cache=cache)
    assert [r["status"] for r in got] == ["ok", "ok", "ok", "out_of_range"]


def test_the_wrong_model_is_a_configuration_error(srv):
    with pytest.raises(ConfigError, match=r"HTTP 400 .*The model `gpt-nope` does not exist"):
        LLMJudge(base_url=srv.url, model="gpt-nope", **FAST).rate(["p", "q"], ["c-ok", "c-ok"])


def test_unreachable_endpoint_is_an_error_per_pair():
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    j = LLMJudge(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout="2", **FAST)
    got = j.rate(["a", "b"], ["c", "d"])
    assert [r["status"] for r in got] == ["error", "error"]
    assert "connection error" in got[0]["error"]


def test_api_key_is_sent_and_redacted(monkeypatch):
    monkeypatch.setenv("LLM_JUDGE_TEST_KEY", "sk-test-123456")
    with OpenAIServer("script", served=SERVED, script=script, api_key="sk-test-123456") as s:
        j = LLMJudge(base_url=s.url, model=SERVED, api_key_env="LLM_JUDGE_TEST_KEY", **FAST)
        (got,) = j.rate(["p"], ["c-ok"])
        assert got["status"] == "ok"
        with pytest.raises(ConfigError, match="HTTP 401") as e:
            j.rate(["p"], ["c-ok [fault:echokey]"])
        assert "sk-test-123456" not in str(e.value) and "***" in str(e.value)
        assert "$LLM_JUDGE_TEST_KEY" in str(e.value)  # the variable's name, never its value
        with pytest.raises(ConfigError, match="HTTP 401.*missing or wrong API key"):
            LLMJudge(base_url=s.url, model=SERVED, **FAST).rate(["p"], ["c-ok"])


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrent_requests_keep_the_order(srv):
    n = 8
    # The later pairs answer sooner: results still come back in input order.
    conts = [f"c-{'ok' if i % 2 else 'low'} [fault:latency={0.05 * (n - i):.2f}]" for i in range(n)]
    t0 = time.perf_counter()
    got = judge(srv, max_concurrency="4").rate([f"p{i}" for i in range(n)], conts)
    wall = time.perf_counter() - t0
    assert [r["score"] for r in got] == [4.0 if i % 2 else 1.0 for i in range(n)]
    assert 2 <= srv.max_in_flight <= 4
    assert wall < sum(0.05 * (n - i) for i in range(n)) * 0.75  # overlapped, not one by one
    srv.reset()
    judge(srv, max_concurrency="1").rate(["q1", "q2", "q3"], ["c-ok"] * 3)
    assert srv.max_in_flight == 1


# --- the registry ---------------------------------------------------------------------------------


def test_loaded_by_name_once_per_process(monkeypatch, srv):
    eps = registry._entry_points("judges")
    monkeypatch.setitem(eps, "llm-judge", SimpleNamespace(load=lambda: LLMJudge, dist=None))
    clear_loaded()
    try:
        a = load_judge("llm-judge", base_url=srv.url, model=SERVED)
        b = load_judge("llm-judge", base_url=srv.url + "/", model=SERVED, seed="0")
        assert a is b and a.name == "llm-judge"
        monkeypatch.setenv(ENV_URL, srv.url)
        monkeypatch.setenv(ENV_MODEL, SERVED)
        assert load_judge("llm-judge") is a  # the same endpoint from the environment
        off = load_judge("llm-judge", base_url="none")
        assert off is not a and not off.available
        assert judge_record(a)["code"]
    finally:
        clear_loaded()
