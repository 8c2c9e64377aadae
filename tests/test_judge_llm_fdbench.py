"""The LLM judge's ``fdbench-interruption`` rubric (Full-Duplex-Bench v1's relevance rating) and
the ``fdbench`` scorer's ``relevance`` option.

The benchmark's prompt is CC BY-NC 4.0 and not in this project, so the tests write files in
the official layout with placeholder text: the extraction is checked on them against Python's
own evaluation of the f-string, the hash check refuses them, and the judge runs on them with
the expected digests monkeypatched. When the Full-Duplex-Bench mirror is on this machine, the
real file (commit d7336bd) is read too (its digests accepted, its f-string evaluated by
Python), and the parser is run side by side with the official ``parse_output`` taken from it;
otherwise those tests skip, saying why. The parser is also checked on hand-made answers and
against a second formulation written here (a scan, no regex). The scorer is run end to end
with a fake ASR and a fake LLM judge; the judge against the local OpenAI-compatible server
(tests/openai_server.py).
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from openai_server import OpenAIServer
from test_fdbench_tasks import layout as fd_layout

from speechlm_eval.audio import Audio
from speechlm_eval.cache import ResultCache
from speechlm_eval.errors import ConfigError
from speechlm_eval.judges import judge_key
from speechlm_eval.judges import llm as llm_module
from speechlm_eval.judges.llm import (
    ENV_MODEL,
    ENV_RUBRIC,
    ENV_URL,
    FDBENCH_COMMIT,
    LLMJudge,
    extract_fdbench_messages,
    load_fdbench_rubric,
    parse_fdbench_rating,
    rating,
)
from speechlm_eval.scorers.fdbench import FDBenchScorer

pytest.importorskip("httpx")

SERVED = "judge-model-2025-01-01"
FAST = {"backoff": "0.001", "max_backoff": "0.01", "max_retries": "1"}
MIRROR = Path("/work/.mirror/DanielLin94144+Full-Duplex-Bench/repo")
OFFICIAL_PATH = "v1_v1.5/evaluation/eval_user_interruption.py"

# A file in the official layout with placeholder text (not the benchmark's prompt).
SYSTEM = (
    "\n   Placeholder rubric: rate the reply from 0 to 5.\n   Answer: Analysis, then a rating.\n   "
)
LAYOUT = '''\
import json
import re


def parse_output(data):
    pattern = re.compile(r"Analysis:(.*)", re.DOTALL)
    return {}


def eval_user_interruption(root_dir, client):
    MODEL_NAME = "some-model"
    seed = 0

    system_msg = """
   Placeholder rubric: rate the reply from 0 to 5.
   Answer: Analysis, then a rating.
   """

    for file_dir in sorted(root_dir):
        while True:
            in_interrupt_text = "i"
            in_before_interrupt_text = "c"
            out_after_interrupt_text = "r"
            TOR = 1
            if TOR == 1:
                user_msg = f"""
                CTX: {in_before_interrupt_text}
                INT {{brace}}: {in_interrupt_text}
                RESP: {out_after_interrupt_text}
                """
                messages = [
                    {"role": "system", "content": system_msg},
                    {"role": "user", "content": user_msg},
                ]
            break
'''
# The template the judge must make of LAYOUT's f-string, written out by hand.
TEMPLATE = (
    "\n                CTX: {context}\n                INT {{brace}}: {interrupt}\n"
    "                RESP: {response}\n                "
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write(tmp_path: Path, text: str = LAYOUT, name: str = "eval_user_interruption.py") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def fstring_of(source: str, names: dict[str, str]) -> str:
    """Python's own value of the ``user_msg`` f-string in ``source`` with ``names`` bound."""
    tree = ast.parse(source)
    (node,) = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        and isinstance(n.targets[0], ast.Name)
        and n.targets[0].id == "user_msg"
    ]
    return eval(compile(ast.Expression(node), "<f-string>", "eval"), {}, dict(names))


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch):
    """Nothing of the user's environment (endpoint, model, key, rubric) reaches these tests."""
    for var in (ENV_URL, ENV_MODEL, ENV_RUBRIC, "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def accept_layout(monkeypatch):
    """The test layout's digests as the expected ones (the real file's are not at hand)."""
    monkeypatch.setattr(llm_module, "FDBENCH_SYSTEM_SHA256", sha(SYSTEM))
    monkeypatch.setattr(llm_module, "FDBENCH_USER_SHA256", sha(TEMPLATE))


@pytest.fixture(scope="module")
def official_source() -> str:
    """The official file at d7336bd from the local mirror, or a skip saying why."""
    if not MIRROR.exists():
        pytest.skip(f"Full-Duplex-Bench mirror not at {MIRROR}")
    try:
        out = subprocess.run(
            ["git", "-C", str(MIRROR), "show", f"{FDBENCH_COMMIT}:{OFFICIAL_PATH}"],
            capture_output=True,
            check=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot read {OFFICIAL_PATH} @ {FDBENCH_COMMIT[:7]} from the mirror: {e}")
    return out.stdout


# --- extraction and the hash check ---------------------------------------------------------------


def test_extraction_from_the_official_layout(tmp_path):
    system, template = extract_fdbench_messages(write(tmp_path))
    assert system == SYSTEM and template == TEMPLATE
    # The template gives what the f-string gives, braces in the values left alone.
    names = {
        "in_before_interrupt_text": "the {context}",
        "in_interrupt_text": "wait, {0} stop",
        "out_after_interrupt_text": "ok {response}",
    }
    want = fstring_of(LAYOUT, names)
    got = template.format(
        context="the {context}", interrupt="wait, {0} stop", response="ok {response}"
    )
    assert got == want and "INT {brace}: wait, {0} stop" in got


def test_a_file_with_another_prompt_is_refused(tmp_path):
    p = write(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_fdbench_rubric(p)
    msg = str(e.value)
    assert str(p.resolve()) in msg and FDBENCH_COMMIT in msg and "system message differs" in msg
    assert "\n" not in msg
    with pytest.raises(ConfigError, match="rubric_file"):
        LLMJudge(rubric="fdbench-interruption", rubric_file=str(p))


def test_only_the_user_message_differing_is_refused_too(tmp_path, monkeypatch):
    monkeypatch.setattr(llm_module, "FDBENCH_SYSTEM_SHA256", sha(SYSTEM))
    with pytest.raises(ConfigError, match="its user message differs"):
        load_fdbench_rubric(write(tmp_path))


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda s: s.replace("def eval_user_interruption", "def other"), "no top-level function"),
        (lambda s: s.replace('user_msg = f"""', 'user_msg = """'), "not an f-string"),
        (lambda s: s.replace("{in_interrupt_text}", "{in_interrupt_text!r}"), "interpolates"),
        (lambda s: s.replace("{out_after_interrupt_text}", "{TOR}"), "interpolates"),
        (lambda s: s.replace("    seed = 0\n", '    system_msg = "x"\n'), "2 assignments"),
        (lambda s: s.replace("def parse_output(data):", "def parse_output(data)"), "as Python"),
    ],
)
def test_layouts_that_are_not_the_official_one(tmp_path, edit, why):
    with pytest.raises(ConfigError, match=why) as e:
        extract_fdbench_messages(write(tmp_path, edit(LAYOUT)))
    assert FDBENCH_COMMIT in str(e.value)
    with pytest.raises(ConfigError, match="cannot read it"):
        extract_fdbench_messages(tmp_path / "missing.py")


def test_the_official_file_is_accepted(official_source, tmp_path):
    p = write(tmp_path, official_source)
    rubric = load_fdbench_rubric(p)
    assert rubric.origin is not None
    assert rubric.origin["file"] == str(p.resolve())
    assert rubric.origin["file_sha256"] == hashlib.sha256(official_source.encode()).hexdigest()
    assert rubric.scale == (0, 5) and rubric.fields == ("context", "interrupt", "response")
    names = {
        "in_before_interrupt_text": "Tell me about {Paris}.",
        "in_interrupt_text": "Sorry, what about Rome?",
        "out_after_interrupt_text": "Rome is the capital of Italy.",
    }
    want = fstring_of(official_source, names)
    got = rubric.text.format(
        context=names["in_before_interrupt_text"],
        interrupt=names["in_interrupt_text"],
        response=names["out_after_interrupt_text"],
    )
    assert got == want
    # One changed character anywhere in the prompt: refused.
    with pytest.raises(ConfigError, match="differs"):
        load_fdbench_rubric(write(tmp_path, official_source.replace("0 to 5", "0 to 6", 1), "b.py"))


# --- the parser ----------------------------------------------------------------------------------

RATE = "I would rate the AI's response as"


@pytest.mark.parametrize(
    ("answer", "value", "status"),
    [
        (f"Analysis: on topic.\n{RATE} 4.", 4, "ok"),
        (f"Analysis: on topic.\n{RATE} 0", 0, "ok"),
        (f"Analysis:\n\n  fine\n{RATE} 5", 5, "ok"),
        (f"Analysis: a.\n{RATE} 2.\nAnalysis: b.\n{RATE} 3.", 3, "ok"),  # the last match wins
        # one Analysis, two ratings: the first match ends at the first rating; no second match
        (f"Analysis: a.\n{RATE} 2.\n{RATE} 5.", 2, "ok"),
        # ... but with nothing between "Analysis:" and the first rating, the pattern's greedy
        # \s* takes that line's newline, so the next rating line is the match
        (f"Analysis:\n{RATE} 2.\n{RATE} 5.", 5, "ok"),
        (f"Analysis:\n{RATE} 2.", 2, "ok"),
        (f"Analysis: x\n{RATE} 6.", 6, "out_of_range"),
        (f"Analysis: x\n{RATE} 10", 10, "out_of_range"),
        (f"Analysis: x\n{RATE} 04", 4, "ok"),
        (f"Analysis: x\n{RATE} \u0663", 3, "ok"),  # Python's \d and int() take Arabic-Indic digits
        # the rating inside another sentence (not at a line start): no match
        (f"Analysis: x. Overall {RATE} 4.", None, "unparsed"),
        (f"Analysis: x\nOverall, {RATE} 4.", None, "unparsed"),
        (f"{RATE} 4.", None, "unparsed"),  # no Analysis
        (f"analysis: x\n{RATE} 4.", None, "unparsed"),  # case matters
        (f"Analysis: x\n{RATE} four.", None, "unparsed"),
        (f"Analysis: x\n{RATE} -1", None, "unparsed"),
        (f"Analysis: x\n{RATE}4", None, "unparsed"),
        ("I would give it a 4 out of 5.", None, "unparsed"),
        ("", None, "unparsed"),
    ],
)
def test_parser_hand_made(answer, value, status):
    assert parse_fdbench_rating(answer) == value
    r = rating(answer, "stop", parser="fdbench-rating", scale=(0, 5))
    assert (r["value"], r["status"]) == (value, status)
    assert r["score"] == (float(value) if status == "ok" else None)


def scan_rating(text: str) -> int | None:
    """The official rule written as a scan, no regex: from the left, an ``Analysis:``, the
    whitespace after it, then the first ``\\n`` + the rating sentence + decimal digits
    (greedy) makes a match; only when there is none, a rating line that starts at the
    whitespace's last character (a newline) does (the pattern's greedy ``\\s*`` gives it
    back last). The next search starts where a match ended; the last match's digits count."""
    text += "\n"
    head, tail = "Analysis:", f"\n{RATE} "

    def digits_at(j: int) -> int:
        """The end of the digits after a rating line at ``j`` (``j + len(tail)``: none)."""
        if not text.startswith(tail, j):
            return -1
        end = k = j + len(tail)
        while end < len(text) and text[end].isdecimal():
            end += 1
        return end if end > k else -1

    pos, value = 0, None
    while (a := text.find(head, pos)) != -1:
        w = a + len(head)
        while w < len(text) and text[w].isspace():
            w += 1
        j = text.find(tail, w)
        while j != -1 and digits_at(j) == -1:
            j = text.find(tail, j + 1)
        if j == -1 and w > a + len(head) and digits_at(w - 1) != -1:
            j = w - 1
        if j == -1:
            break  # no rating after this Analysis: none after a later one either
        end = digits_at(j)
        value = int(text[j + len(tail) : end])
        pos = end
    return value


def random_answers(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    parts = [
        "Analysis:",
        "Analysis: ",
        f"\n{RATE} ",
        f"{RATE} ",
        "\n",
        " ",
        "x",
        "3",
        "6",
        "12",
        "\u0663",
        ".",
        "Analysis:\n",
        f"Analysis: x\n{RATE} 4",
    ]
    return ["".join(rng.choice(parts) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def test_parser_agrees_with_an_independent_scan():
    found = near = 0
    for text in random_answers(5000, 20260415):
        want = scan_rating(text)
        assert parse_fdbench_rating(text) == want, repr(text)
        found += want is not None
        near += want is None and "Analysis:" in text and RATE in text
    assert found > 1000 and near > 500  # matches and near misses both well represented


def test_parser_agrees_with_the_official_parse_output(official_source):
    # The official function itself, taken from the file by ast and run here (imports of the
    # module, e.g. tqdm, are not needed by it).
    tree = ast.parse(official_source)
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "parse_output"]
    scope: dict[str, Any] = {"re": re}
    exec(compile(ast.Module([fn], []), OFFICIAL_PATH, "exec"), scope)
    official = scope["parse_output"]
    for text in [*random_answers(3000, 7), f"Analysis: a.\n{RATE} 2.\nAnalysis: b.\n{RATE} 3."]:
        got = official(text + "\n")  # as the official code calls it
        assert parse_fdbench_rating(text) == got.get("rating"), repr(text)


# --- the judge against a local server -------------------------------------------------------------

ANSWERS = {
    "r-ok": f"Analysis: The reply addresses the interruption.\n{RATE} 4.",
    "r-low": f"Analysis: Off topic.\n{RATE} 1.",
    "r-six": f"Analysis: Great.\n{RATE} 6.",
    "r-junk": "The response is relevant; 4/5.",
    "r-two": f"Analysis: first.\n{RATE} 2.\nAnalysis: revised.\n{RATE} 5.",
}


def script(text: str) -> str:
    """The answer for a user message of the test layout: by its response's first word."""
    if "RESP: " not in text:
        return "slamkit's rubric: \\boxed{3}"
    resp = text[text.index("RESP: ") + len("RESP: ") :].split()
    return ANSWERS.get(resp[0] if resp else "", f"Analysis: ok.\n{RATE} 3.")


@pytest.fixture(scope="module")
def server():
    with OpenAIServer("script", served=SERVED, script=script) as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.reset()
    return server


def fd_judge(srv: OpenAIServer, path: Path, **options: str) -> LLMJudge:
    return LLMJudge(
        base_url=srv.url,
        model=SERVED,
        rubric="fdbench-interruption",
        rubric_file=str(path),
        **{**FAST, **options},
    )


def item(response: str, context: str = "ctx", interrupt: str = "int") -> dict[str, str]:
    return {"context": context, "interrupt": interrupt, "response": response}


def test_request_payload_system_and_user_seed_0_temperature_0(srv, tmp_path, accept_layout):
    j = fd_judge(srv, write(tmp_path))
    (res,) = j.rate_fields([item("r-ok it is", "Tell me {a} story", "Stop!")])
    assert (res["status"], res["score"], res["value"]) == ("ok", 4.0, 4)
    (payload,) = srv.requests
    user = TEMPLATE.replace("{context}", "Tell me {a} story").replace("{interrupt}", "Stop!")
    user = user.replace("{response}", "r-ok it is").replace("{{brace}}", "{brace}")
    assert payload == {
        "model": SERVED,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
        "temperature": 0.0,
        "seed": 0,
        "max_tokens": 512,
    }


def test_statuses_cache_and_identity(srv, tmp_path, accept_layout):
    p = write(tmp_path)
    cache = ResultCache(tmp_path / "cache.sqlite")
    names = ["r-ok", "r-low", "r-six", "r-junk", "r-two", "r-x [fault:500]"]
    got = fd_judge(srv, p).rate_fields([item(n) for n in names], cache=cache)
    assert [(r["status"], r["score"], r["value"]) for r in got] == [
        ("ok", 4.0, 4),
        ("ok", 1.0, 1),
        ("out_of_range", None, 6),
        ("unparsed", None, None),
        ("ok", 5.0, 5),  # the last match
        ("error", None, None),
    ]
    assert got[3]["raw"] == ANSWERS["r-junk"]
    posts = len(srv.requests)
    again = fd_judge(srv, p).rate_fields([item(n) for n in names], cache=cache)
    assert again[:5] == got[:5] and len(srv.requests) == posts + 2  # only the error re-asked
    j = fd_judge(srv, p)
    ident = j.identity()
    assert ident["rubric"]["name"] == "fdbench-interruption"
    assert ident["rubric"]["file"] == str(p.resolve())
    assert ident["rubric"]["system_sha256"] == sha(SYSTEM)
    assert ident["rubric"]["user_sha256"] == sha(TEMPLATE)
    assert ident["rubric"]["file_sha256"] == hashlib.sha256(LAYOUT.encode()).hexdigest()
    assert ident["parser"]["name"] == "fdbench-rating" and ident["scale"] == [0, 5]
    assert ident["request"] == {"temperature": 0.0, "seed": 0, "max_tokens": 512}
    assert "system message" in ident["messages"]
    # The cache key: what was sent (not the file's path), and not slamkit's.
    (tmp_path / "elsewhere").mkdir()
    moved = write(tmp_path / "elsewhere")
    assert judge_key(fd_judge(srv, moved)) == judge_key(j)
    assert judge_key(LLMJudge(base_url=srv.url, model=SERVED, **FAST)) != judge_key(j)
    # slamkit's pairs are refused by rate(); rate_fields checks the fields.
    with pytest.raises(ConfigError, match="use rate_fields"):
        j.rate(["p"], ["c"])
    with pytest.raises(ValueError, match="item 0 has"):
        j.rate_fields([{"prompt": "p", "continuation": "c"}])
    with pytest.raises(TypeError, match="field 'response' is int"):
        j.rate_fields([{"context": "c", "interrupt": "i", "response": 3}])


def test_slamkit_pairs_through_rate_fields_share_rate_s_cache(srv, tmp_path):
    # The slamkit rubric through rate_fields asks the same question as rate(): same cache entry.
    cache = ResultCache(tmp_path / "cache.sqlite")
    j = LLMJudge(base_url=srv.url, model=SERVED, **FAST)
    first = j.rate(["p"], ["c"], cache=cache)
    n = len(srv.requests)
    assert j.rate_fields([{"prompt": "p", "continuation": "c"}], cache=cache) == first
    assert len(srv.requests) == n


def test_availability_and_options(monkeypatch, srv, tmp_path, accept_layout):
    j = LLMJudge(rubric="fdbench-interruption")
    assert j.available is False
    assert "no endpoint configured" in j.unavailable_reason
    assert ENV_RUBRIC in j.unavailable_reason and FDBENCH_COMMIT[:7] in j.unavailable_reason
    j = LLMJudge(base_url=srv.url, model=SERVED, rubric="fdbench-interruption")
    assert j.available is False and j.unavailable_reason.startswith("rubric 'fdbench-interruption'")
    assert j.identity()["rubric"]["name"] == "fdbench-interruption"  # identity still works
    with pytest.raises(ConfigError, match="rubric 'fdbench-interruption' is read from"):
        j.rate_fields([item("r-ok")])
    # The environment names the file, for this rubric only.
    p = write(tmp_path)
    monkeypatch.setenv(ENV_RUBRIC, str(p))
    j = LLMJudge(base_url=srv.url, model=SERVED, rubric="fdbench-interruption")
    assert j.available and j.identity()["rubric"]["file"] == str(p.resolve())
    assert LLMJudge(base_url=srv.url, model=SERVED).rubric.name == "slamkit"
    with pytest.raises(ConfigError, match="'rubric_file' is for rubric fdbench-interruption"):
        LLMJudge(base_url=srv.url, model=SERVED, rubric_file=str(p))


# --- the scorer ----------------------------------------------------------------------------------

SR = 16000
END = 2.0  # the interruption's end (s)


class FakeASR:
    """Word timestamps by the model channel's length (each sample's channel differs)."""

    name = "fake-asr"

    def __init__(self, words: dict[int, list[list[Any]]]) -> None:
        self.by_length = words

    def words(self, audios, stats=None, cache=None, desc=None):
        return [self.by_length[a.samples.size] for a in audios]


class FakeLLM:
    """Known answers by response text; records what it was asked."""

    name = "fake-llm"
    rubric = SimpleNamespace(name="fdbench-interruption")

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers
        self.asked: list[dict[str, str]] = []

    def rate_fields(self, items, stats=None, cache=None, desc=None):
        self.asked.extend(items)
        out = []
        for it in items:
            a = self.answers[it["response"]]
            if a is None:
                out.append({"status": "error", "score": None, "value": None, "error": "HTTP 500"})
            else:
                out.append(rating(a, "stop", SERVED, "fp", parser="fdbench-rating", scale=(0, 5)))
        return out


def session(i: int, extra_s: float, context: str = "ctx", interrupt: str = "int"):
    n = int((END + extra_s) * SR)
    model = Audio(np.zeros(n, np.float32), SR, f"s{i}")
    meta = {"interrupt_end": END, "context": f"{context} {i}", "interrupt_text": f"{interrupt} {i}"}
    item_ = SimpleNamespace(kind="user_interruption", meta=meta)
    return SimpleNamespace(doc_id=f"d{i}", item=item_, model=model, user=model), n - int(END * SR)


def test_scorer_rates_tor_1_samples_and_reports_relevance():
    # (words of the cropped channel, the judge's answer to its response) per sample
    spec = [
        ([["sure", 0.2, 0.6], ["Rome", 0.7, 1.5]], f"Analysis: a\n{RATE} 4."),  # ok 4
        ([["no", 0.1, 0.3], ["way", 0.4, 0.8], ["ok", 0.9, 1.6]], f"Analysis: b\n{RATE} 1."),
        ([], None),  # TOR 0: no words
        ([["uh", 0.1, 0.2]], None),  # TOR 0: < 1 s and <= 3 words
        ([["a", 0.0, 0.5], ["b", 0.6, 1.2]], f"Analysis: c\n{RATE} 6."),  # out of range
        ([["c", 0.0, 0.5], ["d", 0.6, 1.2]], "rated 5"),  # unparsed
        ([["e", 0.0, 0.5], ["f", 0.6, 1.2]], None),  # request failed: error
        ([["g", 0.0, 0.5], ["h", 0.6, 1.3]], f"Analysis: d\n{RATE} 0."),  # ok 0
    ]
    sessions, words = [], {}
    for i, (w, _) in enumerate(spec):
        s, n = session(i, 1.0 + 0.01 * i)
        sessions.append(s)
        words[n] = w
    answers = {" ".join(x[0] for x in w): a for w, a in spec if w}
    llm = FakeLLM(answers)
    scorer = FDBenchScorer({"relevance": True, "primary": "relevance,none"})
    judges = {"asr": FakeASR(words), "vad": None, "llm": llm}
    rows = scorer.judge(sessions, judges, ResultCache(None))
    assert [r["tor"] for r in rows] == [1, 1, 0, 0, 1, 1, 1, 1]
    # Only TOR = 1 samples are sent, with the reader's texts and the words joined by spaces.
    assert llm.asked == [
        {"context": f"ctx {i}", "interrupt": f"int {i}", "response": " ".join(x[0] for x in w)}
        for i, (w, _) in enumerate(spec)
        if i not in (2, 3)
    ]
    statuses = [r["llm_status"] for r in rows]
    assert statuses == ["ok", "ok", "tor_0", "tor_0", "out_of_range", "unparsed", "error", "ok"]
    assert rows[2]["llm_score"] is None and "response_text" not in rows[2]
    rep = scorer.finish([], [rows])
    m = rep.by_filter["none"].metrics
    assert m["relevance"].value == pytest.approx((4 + 1 + 0) / 3) and m["relevance"].n == 3
    assert m["relevance"].higher_is_better is True
    assert m["tor"].value == pytest.approx(6 / 8)
    info = rep.info
    assert info["llm_status"] == {"error": 1, "ok": 3, "out_of_range": 1, "tor_0": 2, "unparsed": 1}
    assert info["relevance_samples"] == {"rated": 6, "ok": 3, "not_rated_tor_0": 2}
    assert info["relevance_all_parsed"] == pytest.approx((4 + 1 + 6 + 0) / 4)
    assert info["llm_served"] == [{"model": SERVED, "system_fingerprint": "fp", "rows": 5}]
    assert "not_computed" not in info


def test_scorer_without_the_option_lists_relevance_as_not_computed():
    s, n = session(0, 1.5)
    scorer = FDBenchScorer({})
    rows = scorer.judge([s], {"asr": FakeASR({n: [["a", 0.0, 1.2]]}), "vad": None}, None)
    rep = scorer.finish([], [rows])
    assert "relevance" not in rep.by_filter["none"].metrics
    assert "fdbench_interruption_relevance" in rep.info["not_computed"]["relevance"]
    assert "llm_status" not in rows[0]


def test_scorer_needs_the_fdbench_rubric():
    s, n = session(0, 1.5)
    asr = FakeASR({n: [["a", 0.0, 1.2]]})
    scorer = FDBenchScorer({"relevance": True})
    with pytest.raises(ConfigError, match="needs an 'llm' judge role"):
        scorer.judge([s], {"asr": asr, "vad": None}, None)
    slamkit = LLMJudge(base_url="http://127.0.0.1:9/v1", model="m")
    with pytest.raises(ConfigError, match="relevance needs rubric=fdbench-interruption"):
        scorer.judge([s], {"asr": asr, "vad": None, "llm": slamkit}, None)


def test_the_task_file_binds_the_rubric():
    from speechlm_eval.config import load_config_file

    root = Path(__file__).resolve().parents[1] / "tasks"
    cfg = load_config_file(root / "fdbench_interruption_relevance.yaml")
    assert cfg.judges["llm"].judge == "llm-judge"
    assert dict(cfg.judges["llm"].options) == {"rubric": "fdbench-interruption"}
    assert cfg.scoring.options == {"primary": "relevance,none", "relevance": True}
    group = load_config_file(root / "group_fdbench.yaml")
    assert "fdbench_interruption_relevance" in group.tasks


# --- the task through the runner -----------------------------------------------------------------


layout = fd_layout  # the fixture: official-layout folders from the tiny full-duplex stimuli
FRAME = 0.04


class Parrot:
    """After 0.3 s of user silence following user sound, says back up to the last 3 s of
    sound it heard since it last spoke (speech, long enough for a turn: TOR = 1)."""

    def __init__(self, info: Any) -> None:
        self.n, self.heard, self.quiet, self.sound = info.frame_samples, [], 0, False
        self.queue = np.zeros(0, np.float32)

    def step(self, user: np.ndarray) -> np.ndarray:
        loud = float(np.abs(user).max()) > 1e-3
        if loud:
            self.heard.append(user.copy())
        self.sound |= loud
        self.quiet = 0 if loud else self.quiet + 1
        if self.sound and self.quiet * FRAME >= 0.3 and not self.queue.size:
            self.queue = np.concatenate(self.heard[-int(3 / FRAME) :])
            self.heard, self.sound = [], False
        out = np.zeros(self.n, np.float32)
        take = min(self.n, self.queue.size)
        out[:take], self.queue = self.queue[:take], self.queue[take:]
        return out

    def close(self) -> None:
        pass


def parrot_model() -> Any:
    from speechlm_eval.model import SpeechLM

    class ParrotLM(SpeechLM):
        capabilities = frozenset({"converse"})
        sample_rate = SR
        converse_frame_seconds = FRAME

        def identity(self) -> dict[str, Any]:
            return {"class": "ParrotLM"}

        def open_session(self, info: Any) -> Parrot:
            return Parrot(info)

    return ParrotLM()


def test_the_task_end_to_end(layout, tmp_path, accept_layout):
    """fdbench_interruption_relevance on the tiny official-layout folders (a model that
    parrots the user, faster-whisper's word timestamps): skipped with the reason until
    configured; then every TOR = 1 sample is rated (the answer's rating: the response's word
    count mod 6) and the relevance is recomputed from the samples file."""
    from speechlm_eval.runner import RunOptions, evaluate

    def by_length(text: str) -> str:
        n = len(text[text.index("RESP: ") + len("RESP: ") :].split())
        return f"Analysis: {n} words.\n{RATE} {n % 6}."

    def run(judges: list[str], name: str) -> tuple[dict, Path]:
        opts = RunOptions(
            tasks="fdbench_interruption_relevance",
            data_dir=str(layout),
            data_source="official",
            output_path=str(tmp_path / name),
            use_cache=str(tmp_path / "cache.sqlite"),
            log_samples=True,
            judges=judges,
        )
        return evaluate("parrot", {}, opts, model=parrot_model()), tmp_path / name

    res, _ = run([], "off")
    why = res["skipped"]["fdbench_interruption_relevance"]
    assert "no endpoint configured" in why and ENV_RUBRIC in why
    p = write(tmp_path)
    with OpenAIServer("script", served=SERVED, script=by_length) as srv:
        base = f"llm=llm-judge,base_url={srv.url},model={SERVED}"
        with pytest.raises(ConfigError, match="relevance needs rubric=fdbench-interruption"):
            run([base], "slamkit")
        res, out = run([f"{base},rubric=fdbench-interruption,rubric_file={p}"], "on")
    task = "fdbench_interruption_relevance"
    (f,) = sorted(out.rglob(f"samples_{task}_*.jsonl"))
    rows = [json.loads(x) for x in f.read_text().splitlines()]
    rated = [r for r in rows if r["tor"] == 1]
    assert rated, "the stand-in model never took the turn: nothing rated"
    want = [len(" ".join(w[0] for w in r["words"]).split()) % 6 for r in rated]
    assert [r["llm_value"] for r in rated] == want
    assert all(r["llm_status"] == "tor_0" for r in rows if r["tor"] == 0)
    assert res["results"][task]["relevance,none"] == pytest.approx(np.mean(want))
    assert res["scoring"][task]["llm_status"] == {"ok": len(rated)} | (
        {"tor_0": len(rows) - len(rated)} if len(rows) > len(rated) else {}
    )
    rubric = res["judges"][task]["llm"]["rubric"]
    assert rubric["file"] == str(p.resolve()) and rubric["user_sha256"] == sha(TEMPLATE)
