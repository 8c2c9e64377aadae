"""The LLM judge's ``fdbench-behavior`` rubric (Full-Duplex-Bench v1.5's behaviour tags) and the
``fdbench`` scorer's ``behavior`` option.

The benchmark's instruction is CC BY-NC 4.0 and not in this project: the tests write a
placeholder instruction, which the hash check refuses and on which the judge runs with the
expected digest monkeypatched. When the Full-Duplex-Bench mirror is on this machine, the real
``behavior.txt`` (commit d7336bd) is accepted, the user message is compared with Python's own
evaluation of the official ``final_input`` f-string, and the parser and the compact JSON are
run side by side with the official ``extract_json`` and ``json_dict_to_compact_text`` taken
from ``eval_behavior.py``; otherwise those tests skip, saying why. The parser is also checked
on hand-made answers and against a second formulation written here (the shortest prefix that
``json.loads`` reads). The scorer runs on hand-built sessions with a ``clean`` variant, a fake
ASR and a fake judge (ratios computed by hand); the judge against the local OpenAI-compatible
server (tests/openai_server.py).
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from openai_server import OpenAIServer
from test_fdbench_tasks import EchoTalker
from test_fdbench_tasks import layout as fd_layout

from speechlm_eval.audio import Audio
from speechlm_eval.cache import ResultCache
from speechlm_eval.dataset import SessionItem
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.judges import judge_key
from speechlm_eval.judges import llm as llm_module
from speechlm_eval.judges.llm import (
    BEHAVIOR_FIELDS,
    BEHAVIOR_TAGS,
    ENV_BEHAVIOR,
    ENV_MODEL,
    ENV_RUBRIC,
    ENV_URL,
    FDBENCH_COMMIT,
    LLMJudge,
    asr_object,
    compact_json,
    find_json_object,
    load_behavior_rubric,
    parse_fdbench_behavior,
    rating,
)
from speechlm_eval.pipelines.converse import Session
from speechlm_eval.scorers.fdbench import FDBenchScorer

pytest.importorskip("httpx")

SERVED = "judge-model-2025-01-01"
FAST = {"backoff": "0.001", "max_backoff": "0.01", "max_retries": "1"}
MIRROR = Path("/work/.mirror/DanielLin94144+Full-Duplex-Bench/repo")
INSTRUCTION_PATH = "v1_v1.5/evaluation/instruction/behavior.txt"
CODE_PATH = "v1_v1.5/evaluation/eval_behavior.py"

# A placeholder instruction (not the benchmark's text).
PLACEHOLDER = 'Placeholder: tag the model\'s reply.\nAnswer { "behaviour": ["C_*"] }.\n'


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write(tmp_path: Path, text: str = PLACEHOLDER, name: str = "behavior.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8"))
    return p


def mirror_file(path: str) -> str:
    """A file of the official repository at d7336bd from the local mirror, or a skip."""
    if not MIRROR.exists():
        pytest.skip(f"Full-Duplex-Bench mirror not at {MIRROR}")
    try:
        out = subprocess.run(
            ["git", "-C", str(MIRROR), "show", f"{FDBENCH_COMMIT}:{path}"],
            capture_output=True,
            check=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot read {path} @ {FDBENCH_COMMIT[:7]} from the mirror: {e}")
    return out.stdout


@pytest.fixture(scope="module")
def official_instruction() -> str:
    return mirror_file(INSTRUCTION_PATH)


@pytest.fixture(scope="module")
def official_code() -> dict[str, Any]:
    """The official functions (extract_json, parse_eval, json_dict_to_compact_text) taken
    from eval_behavior.py by ast and run here (the module's imports, openai, not needed),
    and the ``final_input`` f-string's node."""
    source = mirror_file(CODE_PATH)
    tree = ast.parse(source)
    want = ("extract_json", "parse_eval", "json_dict_to_compact_text", "stats_by_axis")
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in want]
    assert len(fns) == len(want)
    from collections import Counter
    from typing import Union

    scope: dict[str, Any] = {"json": json, "Dict": dict, "Any": Any, "Union": Union}
    scope["Counter"] = Counter
    exec(compile(ast.Module(fns, []), CODE_PATH, "exec"), scope)
    (node,) = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        and isinstance(n.targets[0], ast.Name)
        and n.targets[0].id == "final_input"
    ]
    scope["final_input"] = node
    return scope


def official_message(code: dict[str, Any], values: dict[str, str]) -> str:
    """Python's own value of the official ``final_input`` f-string, the four texts bound."""
    names = {f"{k}_text": v for k, v in values.items()}
    return eval(compile(ast.Expression(code["final_input"]), "<f-string>", "eval"), {}, names)


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch):
    """Nothing of the user's environment (endpoint, model, key, rubric files) reaches here."""
    for var in (ENV_URL, ENV_MODEL, ENV_RUBRIC, ENV_BEHAVIOR, "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def accept_placeholder(monkeypatch):
    monkeypatch.setattr(llm_module, "BEHAVIOR_SHA256", sha(PLACEHOLDER))


# --- the instruction file and its hash -----------------------------------------------------------


def test_a_file_with_another_text_is_refused(tmp_path):
    p = write(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_behavior_rubric(p)
    msg = str(e.value)
    assert str(p.resolve()) in msg and FDBENCH_COMMIT in msg and "differs" in msg
    assert INSTRUCTION_PATH in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="rubric_file"):
        LLMJudge(rubric="fdbench-behavior", rubric_file=str(p))
    with pytest.raises(ConfigError, match="cannot read it"):
        load_behavior_rubric(tmp_path / "missing.txt")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    with pytest.raises(ConfigError, match="cannot read it as UTF-8"):
        load_behavior_rubric(tmp_path / "latin1.txt")


def test_the_placeholder_is_accepted_when_its_digest_is_expected(tmp_path, accept_placeholder):
    p = write(tmp_path)
    r = load_behavior_rubric(p)
    assert r.system == PLACEHOLDER and r.fields == BEHAVIOR_FIELDS and r.labels == BEHAVIOR_TAGS
    assert r.origin == {
        "file": str(p.resolve()),
        "file_sha256": hashlib.sha256(PLACEHOLDER.encode()).hexdigest(),
        "system_sha256": sha(PLACEHOLDER),
    }
    # Read in text mode as the official open().read(): CRLF line ends give the same message.
    crlf = write(tmp_path, PLACEHOLDER.replace("\n", "\r\n"), "crlf.txt")
    assert load_behavior_rubric(crlf).system == PLACEHOLDER


def test_the_official_instruction_is_accepted(official_instruction, tmp_path):
    p = write(tmp_path, official_instruction)
    r = load_behavior_rubric(p)
    assert r.system == official_instruction and r.name == "fdbench-behavior"
    assert r.origin is not None and r.origin["system_sha256"] == sha(official_instruction)
    one_more = official_instruction.replace("exactly one", "exactly two", 1)
    assert one_more != official_instruction
    with pytest.raises(ConfigError, match="differs"):
        load_behavior_rubric(write(tmp_path, one_more, "b.txt"))


# --- the message layout --------------------------------------------------------------------------

WORDS = [["Hi,", 0.5, 0.9], ["café", 1.0, 1.25], ["{x}", 1.3, None]]


def test_asr_object_and_compact_json_by_hand():
    obj = asr_object(WORDS)
    text = compact_json(obj)
    assert text == (
        '{"text":"Hi, café {x}","chunks":[{"text":"Hi,","timestamp":[0.5,0.9]},'
        '{"text":"café","timestamp":[1.0,1.25]},{"text":"{x}","timestamp":[1.3,null]}]}'
    )
    assert compact_json(asr_object([])) == '{"text":"","chunks":[]}'


def test_compact_json_as_the_official_function(official_code):
    official = official_code["json_dict_to_compact_text"]
    for words in (WORDS, [], [["a", 0.1, 0.2]] * 3, [["\u00fcber\u201d", 12.5, 13.0]]):
        assert compact_json(asr_object(words)) == official(asr_object(words))


def values(tag: str) -> dict[str, str]:
    return {f: compact_json(asr_object([[f"{f}-{tag}", 0.0, 0.5]])) for f in BEHAVIOR_FIELDS}


# The user message for values("x"), written out by hand from the official f-string's layout.
MESSAGE = (
    "\n        {\n"
    '            "input_clean": {"text":"input_clean-x","chunks":[{"text":"input_clean-x",'
    '"timestamp":[0.0,0.5]}]},\n'
    '            "input_noisy": {"text":"input_noisy-x","chunks":[{"text":"input_noisy-x",'
    '"timestamp":[0.0,0.5]}]},\n'
    '            "output_clean": {"text":"output_clean-x","chunks":[{"text":"output_clean-x",'
    '"timestamp":[0.0,0.5]}]},\n'
    '            "output_noisy": {"text":"output_noisy-x","chunks":[{"text":"output_noisy-x",'
    '"timestamp":[0.0,0.5]}]}\n'
    "        }\n        "
)


def test_template_is_the_official_f_string(official_code):
    tricky = {f: f'{{"a": "{{{f}}}"}} {{0}}' for f in BEHAVIOR_FIELDS}
    want = official_message(official_code, tricky)
    assert llm_module.BEHAVIOR_TEMPLATE.format(**tricky) == want
    assert official_message(official_code, values("x")) == MESSAGE
    # The message is the JSON object the instruction describes.
    assert list(json.loads(MESSAGE)) == list(BEHAVIOR_FIELDS)


# --- the parser ----------------------------------------------------------------------------------

OK = '{"behaviour": ["C_RESPOND"]}'


@pytest.mark.parametrize(
    ("answer", "tag"),
    [
        (OK, "C_RESPOND"),
        ('{ "behaviour": ["C_RESUME"] }', "C_RESUME"),
        ('Asks to repeat.\n{"behaviour":["C_UNCERTAIN_HANDLING"]}', "C_UNCERTAIN_HANDLING"),
        ('```json\n{"behaviour": ["C_UNKNOWN"]}\n```', "C_UNKNOWN"),
        ('{"behaviour": ["C_RESPOND"], "note": "x"}', "C_RESPOND"),
        ('{"behaviour": ["C_RESPOND"]} {"behaviour": ["C_RESUME"]}', "C_RESPOND"),  # the first
        ('{"a": 1} then {"behaviour": ["C_RESUME"]}', "C_RESUME"),  # an object without the key
        ('{"a": {"behaviour": ["C_RESPOND"]}}', None),  # nested in one without it: skipped whole
        ('{"a": {"behaviour": ["C_RESPOND"]}', "C_RESPOND"),  # the outer one is broken
        ('{"a": {"behaviour": ["C_RESPOND"]}, "b": {"behaviour": ["C_RESUME"]}}', None),
        ('{"behaviour": "C_RESPOND"}', None),  # a bare string (the official count fails on it)
        ('{"behaviour": ["C_RESPOND", "C_RESUME"]}', None),  # not exactly one
        ('{"behaviour": ["C_RESPOND", "C_RESPOND"]}', None),
        ('{"behaviour": []}', None),
        ('{"behaviour": ["C_OTHER"]}', None),
        ('{"behaviour": ["c_respond"]}', None),
        ('{"behaviour": [" C_RESPOND"]}', None),
        ('{"behaviour": [["C_RESPOND"]]}', None),
        ('{"behavior": ["C_RESPOND"]}', None),  # the key is spelt "behaviour"
        ("{behaviour: [C_RESPOND]}", None),
        ("C_RESPOND", None),
        ("", None),
    ],
)
def test_parser_hand_made(answer, tag):
    assert parse_fdbench_behavior(answer) == tag
    r = rating(answer, "stop", SERVED, "fp", parser="fdbench-behaviour")
    assert (r["status"], r["value"], r["score"]) == ("ok" if tag else "unparsed", tag, None)
    assert r["raw"] == answer and r["model"] == SERVED


def shortest_prefix_object(text: str, key: str = "behaviour") -> dict[str, Any] | None:
    """The rule formulated another way: at each ``{`` from the left, the shortest slice from
    there that json.loads reads is the value there (none: go to the next ``{``); an object
    with the key is the answer, one without it is stepped over to its end."""
    i = 0
    while i < len(text):
        if text[i] != "{":
            i += 1
            continue
        for j in range(i + 2, len(text) + 1):
            try:
                obj = json.loads(text[i:j])
            except ValueError:
                continue
            if key in obj:
                return obj
            i = j
            break
        else:
            i += 1
    return None


def random_answers(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    parts = [
        "{",
        "}",
        '"behaviour"',
        '"behaviour": ',
        '"x": ',
        ":",
        ", ",
        "[",
        "]",
        '"C_RESPOND"',
        '"C_RESUME"',
        '"C_UNKNOWN"',
        '"C_X"',
        "1",
        " ",
        "\n",
        "text ",
        OK,
        '{"behaviour": ["C_UNCERTAIN_HANDLING"]}',
        '{"x": 1}',
    ]
    return ["".join(rng.choice(parts) for _ in range(rng.randint(0, 10))) for _ in range(n)]


def test_parser_agrees_with_an_independent_formulation():
    found = 0
    for text in random_answers(3000, 20261205):
        want = shortest_prefix_object(text)
        assert find_json_object(text) == want, repr(text)
        found += want is not None
    assert found > 600


def official_tag(code: dict[str, Any], text: str) -> str | None:
    """The official reading: parse_eval (extract_json), then stats_by_axis on the one record;
    the tag when it counts exactly one tag among the four, else None (it failed or read
    something else)."""
    try:
        rec = code["parse_eval"](text)
        counts, _, _ = code["stats_by_axis"]([rec])
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    tags = [t for c in counts.values() for t, k in c.items() for _ in range(k)]
    return tags[0] if len(tags) == 1 and tags[0] in BEHAVIOR_TAGS else None


def test_parser_agrees_with_the_official_extract_json(official_code):
    hits = 0
    extract = official_code["extract_json"]
    for text in [*random_answers(3000, 11), OK, '{"a": {"behaviour": ["C_RESPOND"]}}']:
        try:
            want_obj = extract(text)
        except ValueError:
            want_obj = None
        assert find_json_object(text) == want_obj, repr(text)
        assert parse_fdbench_behavior(text) == official_tag(official_code, text), repr(text)
        hits += want_obj is not None
    assert hits > 600


# --- the judge against a local server ------------------------------------------------------------


def script(text: str) -> str:
    """The answer to a behaviour message: by the first word of output_noisy's text."""
    msg = json.loads(text)
    first = (msg["output_noisy"]["text"].split() or [""])[0]
    return {
        "respond": '{"behaviour": ["C_RESPOND"]}',
        "resume": 'The model continues. {"behaviour": ["C_RESUME"]}',
        "junk": "I think it responds.",
        "two": '{"behaviour": ["C_RESPOND", "C_RESUME"]}',
    }.get(first, '{"behaviour": ["C_UNKNOWN"]}')


@pytest.fixture(scope="module")
def server():
    with OpenAIServer("script", served=SERVED, script=script) as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.reset()
    return server


def judge(srv: OpenAIServer, path: Path, **options: str) -> LLMJudge:
    return LLMJudge(
        base_url=srv.url,
        model=SERVED,
        rubric="fdbench-behavior",
        rubric_file=str(path),
        **{**FAST, **options},
    )


def item(first_word: str) -> dict[str, str]:
    v = values("x")
    v["output_noisy"] = compact_json(asr_object([[first_word, 3.0, 3.4], ["on", 3.5, 3.7]]))
    return v


def test_request_payload_seed_1_temperature_0(srv, tmp_path, accept_placeholder):
    j = judge(srv, write(tmp_path))
    (res,) = j.rate_fields([values("x")])
    assert (res["status"], res["value"], res["score"]) == ("ok", "C_UNKNOWN", None)
    (payload,) = srv.requests
    assert payload == {
        "model": SERVED,
        "messages": [
            {"role": "system", "content": PLACEHOLDER},
            {"role": "user", "content": MESSAGE},
        ],
        "temperature": 0.0,
        "seed": 1,
        "max_tokens": 512,
    }
    # The seed stays an option: another one, or none.
    judge(srv, write(tmp_path), seed="7").rate_fields([values("y")])
    assert srv.requests[-1]["seed"] == 7
    judge(srv, write(tmp_path), seed="none").rate_fields([values("z")])
    assert "seed" not in srv.requests[-1]
    # The other rubrics keep seed 0.
    assert LLMJudge(base_url=srv.url, model=SERVED).options["seed"] == 0


def test_statuses_cache_and_identity(srv, tmp_path, accept_placeholder):
    p = write(tmp_path)
    cache = ResultCache(tmp_path / "cache.sqlite")
    firsts = ["respond", "resume", "junk", "two", "other", "bad [fault:500]"]
    got = judge(srv, p).rate_fields([item(w) for w in firsts], cache=cache)
    assert [(r["status"], r["value"]) for r in got] == [
        ("ok", "C_RESPOND"),
        ("ok", "C_RESUME"),
        ("unparsed", None),
        ("unparsed", None),
        ("ok", "C_UNKNOWN"),
        ("error", None),
    ]
    assert got[2]["raw"] == "I think it responds." and got[0]["model"] == SERVED
    posts = len(srv.requests)
    again = judge(srv, p).rate_fields([item(w) for w in firsts], cache=cache)
    assert again[:5] == got[:5] and len(srv.requests) == posts + 2  # only the error re-asked
    j = judge(srv, p)
    ident = j.identity()
    assert ident["rubric"]["name"] == "fdbench-behavior"
    assert ident["rubric"]["file"] == str(p.resolve())
    assert ident["rubric"]["system_sha256"] == sha(PLACEHOLDER)
    assert ident["parser"]["name"] == "fdbench-behaviour"
    assert ident["labels"] == list(BEHAVIOR_TAGS) and "scale" not in ident
    assert ident["request"] == {"temperature": 0.0, "seed": 1, "max_tokens": 512}
    assert "system message" in ident["messages"]
    # Keyed by what is sent, not by where the file is; not the other rubrics' keys.
    (tmp_path / "elsewhere").mkdir()
    assert judge_key(judge(srv, write(tmp_path / "elsewhere"))) == judge_key(j)
    assert judge_key(LLMJudge(base_url=srv.url, model=SERVED, **FAST)) != judge_key(j)
    with pytest.raises(ConfigError, match="use rate_fields"):
        j.rate(["p"], ["c"])
    with pytest.raises(ValueError, match="item 0 has"):
        j.rate_fields([{"context": "c", "interrupt": "i", "response": "r"}])


def test_availability_and_environment(monkeypatch, srv, tmp_path, accept_placeholder):
    j = LLMJudge(base_url=srv.url, model=SERVED, rubric="fdbench-behavior")
    assert j.available is False
    assert j.unavailable_reason.startswith("rubric 'fdbench-behavior' is read from")
    assert ENV_BEHAVIOR in j.unavailable_reason and INSTRUCTION_PATH in j.unavailable_reason
    assert j.identity()["rubric"]["name"] == "fdbench-behavior"  # identity still works
    with pytest.raises(ConfigError, match="is read from your copy"):
        j.rate_fields([values("x")])
    p = write(tmp_path)
    # Each file rubric reads its own variable: the interruption one is not taken here.
    monkeypatch.setenv(ENV_RUBRIC, str(p))
    assert LLMJudge(base_url=srv.url, model=SERVED, rubric="fdbench-behavior").available is False
    monkeypatch.setenv(ENV_BEHAVIOR, str(p))
    j = LLMJudge(base_url=srv.url, model=SERVED, rubric="fdbench-behavior")
    assert j.available and j.identity()["rubric"]["file"] == str(p.resolve())
    with pytest.raises(ConfigError, match="'rubric_file' is for rubric"):
        LLMJudge(base_url=srv.url, model=SERVED, rubric_file=str(p))


# --- the scorer ----------------------------------------------------------------------------------

SR = 16000


def audio(name: str, seconds: float = 1.0) -> Audio:
    return Audio(np.zeros(int(seconds * SR), np.float32), SR, name)


class FakeASR:
    """Word timestamps by the audio's source name; records what it was asked."""

    name = "fake-asr"

    def __init__(self, words: dict[str, list[list[Any]]]) -> None:
        self.words_by, self.asked = words, []

    def words(self, audios, stats=None, cache=None, desc=None):
        self.asked.extend(a.source for a in audios)
        return [[tuple(w) for w in self.words_by[a.source]] for a in audios]


class FakeVAD:
    name = "fake-vad"

    def segments(self, audios, stats=None, cache=None, desc=None):
        return [[] for _ in audios]


class FakeLLM:
    """Answers by the first word of output_noisy's text (None: a failed request)."""

    name = "fake-llm"
    rubric = SimpleNamespace(name="fdbench-behavior")

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers, self.asked = answers, []

    def rate_fields(self, items, stats=None, cache=None, desc=None):
        self.asked.extend(items)
        out = []
        for it in items:
            a = self.answers[json.loads(it["output_noisy"])["text"].split()[0]]
            if a is None:
                out.append({"status": "error", "score": None, "value": None, "error": "HTTP 500"})
            else:
                out.append(rating(a, "stop", SERVED, "fp", parser="fdbench-behaviour"))
        return out


def sessions_for(kind: str, firsts: list[str]) -> tuple[list[Session], dict[str, list]]:
    """One session per first word of the model's output on the noisy input, with a clean
    variant; every channel's words differ (named after the sample and the channel)."""
    out, words = [], {}
    for i, w in enumerate(firsts):
        names = {f: f"{f}{i}" for f in BEHAVIOR_FIELDS}
        for f, n in names.items():
            first = w if f == "output_noisy" else n
            words[n] = [[first, 0.25 * i, 0.25 * i + 0.5], ["w", 1.0, 1.5]]
        it = SessionItem(f"d{i}", kind, {"overlap": [1.0, 2.0]}, variants={"clean": "x.wav"})
        clean = (audio(names["input_clean"]), audio(names["output_clean"]))
        out.append(
            Session(it, audio(names["input_noisy"]), audio(names["output_noisy"]), {"clean": clean})
        )
    return out, words


ANSWERS = {
    "respond": '{"behaviour": ["C_RESPOND"]}',
    "resume": '{"behaviour": ["C_RESUME"]}',
    "unsure": 'x {"behaviour": ["C_UNCERTAIN_HANDLING"]}',
    "junk": "it resumes",
    "fail": None,
}


def test_scorer_tags_every_sample_and_reports_the_ratios():
    firsts = ["respond", "respond", "resume", "junk", "fail", "unsure", "respond", "resume"]
    sessions, words = sessions_for("overlap_user_interruption", firsts)
    scorer = FDBenchScorer({"behavior": True, "primary": "respond_rate,none"})
    assert scorer.variants == ("clean",) and FDBenchScorer({}).variants == ()
    asr, llm = FakeASR(words), FakeLLM(ANSWERS)
    rows = scorer.judge(sessions, {"asr": asr, "vad": FakeVAD(), "llm": llm}, ResultCache(None))
    # The four channels of each sample, in the official message's order.
    assert asr.asked == [f"{f}{i}" for i in range(len(firsts)) for f in BEHAVIOR_FIELDS]
    # One request per sample: each field the official ASR object of its channel's words.
    assert len(llm.asked) == len(firsts)
    for i, sent in enumerate(llm.asked):
        for f in BEHAVIOR_FIELDS:
            w = words[f"{f}{i}"]
            chunks = [{"text": t, "timestamp": [a, b]} for t, a, b in w]
            assert json.loads(sent[f]) == {"text": f"{w[0][0]} w", "chunks": chunks}
            assert ": " not in sent[f] and ", " not in sent[f]  # compact
    assert rows[0]["words_output"] == [["respond", 0.0, 0.5], ["w", 1.0, 1.5]]
    assert rows[1]["words_clean_input"] == words["input_clean1"]
    assert [r["behavior"] for r in rows] == [
        "C_RESPOND",
        "C_RESPOND",
        "C_RESUME",
        None,
        None,
        "C_UNCERTAIN_HANDLING",
        "C_RESPOND",
        "C_RESUME",
    ]
    assert [r["llm_status"] for r in rows][3:5] == ["unparsed", "error"]
    rep = scorer.finish([], [rows])
    m = rep.by_filter["none"].metrics
    # Over all 8 samples: 3 respond, 2 resume, 1 uncertain, 0 unknown, 2 untagged.
    assert m["respond_rate"].value == pytest.approx(3 / 8) and m["respond_rate"].n == 8
    assert m["resume_rate"].value == pytest.approx(2 / 8)
    assert m["uncertain_rate"].value == pytest.approx(1 / 8)
    assert m["unknown_rate"].value == 0.0
    # Standard error of a proportion's mean (sample std over sqrt n): by hand for 3 of 8.
    p = 3 / 8
    assert m["respond_rate"].stderr == pytest.approx(np.sqrt(p * (1 - p) * 8 / 7 / 8))
    assert m["respond_rate"].higher_is_better is True
    assert not m["resume_rate"].higher_is_better and not m["unknown_rate"].higher_is_better
    info = rep.info
    assert info["llm_status"] == {"error": 1, "ok": 6, "unparsed": 1}
    assert info["behavior_samples"] == {
        "samples": 8,
        "tagged": 6,
        "C_RESPOND": 3,
        "C_RESUME": 2,
        "C_UNCERTAIN_HANDLING": 1,
        "C_UNKNOWN": 0,
    }
    assert info["behavior_ratios_of_tagged"] == pytest.approx(
        {"C_RESPOND": 0.5, "C_RESUME": 2 / 6, "C_UNCERTAIN_HANDLING": 1 / 6, "C_UNKNOWN": 0.0}
    )
    assert info["llm_served"] == [{"model": SERVED, "system_fingerprint": "fp", "rows": 7}]
    assert "behavior" not in info["not_computed"] and "before_after" in info["not_computed"]


def test_scorer_direction_for_the_other_subsets():
    sessions, words = sessions_for("overlap_background_speech", ["resume", "respond"])
    scorer = FDBenchScorer({"behavior": True})
    judges = {"asr": FakeASR(words), "vad": FakeVAD(), "llm": FakeLLM(ANSWERS)}
    m = scorer.finish([], [scorer.judge(sessions, judges, None)]).by_filter["none"].metrics
    assert m["resume_rate"].value == 0.5 and m["resume_rate"].higher_is_better is True
    assert m["respond_rate"].value == 0.5 and m["respond_rate"].higher_is_better is False


def test_scorer_without_the_option_lists_behavior_as_not_computed():
    sessions, words = sessions_for("overlap_user_interruption", ["respond"])
    scorer = FDBenchScorer({})
    rows = scorer.judge(sessions, {"asr": FakeASR(words), "vad": FakeVAD()}, None)
    info = scorer.finish([], [rows]).info
    assert "fdbench_v15_<subset>_behavior" in info["not_computed"]["behavior"]
    assert "llm_status" not in rows[0] and "llm_status" not in info


def test_scorer_errors():
    sessions, words = sessions_for("overlap_user_interruption", ["respond"])
    judges: dict[str, Any] = {"asr": FakeASR(words), "vad": FakeVAD()}
    scorer = FDBenchScorer({"behavior": True})
    with pytest.raises(ConfigError, match="option behavior needs an 'llm' judge role"):
        scorer.judge(sessions, judges, None)
    slamkit = LLMJudge(base_url="http://127.0.0.1:9/v1", model="m")
    with pytest.raises(ConfigError, match="behavior needs rubric=fdbench-behavior"):
        scorer.judge(sessions, {**judges, "llm": slamkit}, None)
    s = sessions[0]
    bare = Session(s.item, s.user, s.model)  # no clean variant
    with pytest.raises(DataError, match="no 'clean' session"):
        scorer.judge([bare], {**judges, "llm": FakeLLM(ANSWERS)}, None)
    with pytest.raises(ConfigError, match="relevance and behavior"):
        FDBenchScorer({"behavior": True, "relevance": True})


def test_the_task_files_bind_the_rubric():
    from speechlm_eval.config import load_config_file

    root = Path(__file__).resolve().parents[1] / "tasks"
    subsets = {
        "interruption": ("user_interruption", "respond_rate"),
        "backchannel": ("user_backchannel", "resume_rate"),
        "talking_to_other": ("talking_to_other", "resume_rate"),
        "background_speech": ("background_speech", "resume_rate"),
    }
    group = load_config_file(root / "group_fdbench.yaml")
    for short, (subset, primary) in subsets.items():
        name = f"fdbench_v15_{short}_behavior"
        cfg = load_config_file(root / f"{name}.yaml")
        assert dict(cfg.judges["llm"].options) == {"rubric": "fdbench-behavior"}
        assert cfg.judges["llm"].judge == "llm-judge"
        assert cfg.scoring.options == {"primary": f"{primary},none", "behavior": True}
        assert cfg.dataset.options["subset"] == subset
        assert name in group.tasks


# --- the task through the runner -----------------------------------------------------------------

layout = fd_layout  # the fixture: official-layout folders from the tiny full-duplex stimuli


def by_word_count(text: str) -> str:
    """The tag of a behaviour message: BEHAVIOR_TAGS[number of output_noisy words mod 4]."""
    n = len(json.loads(text)["output_noisy"]["chunks"])
    return json.dumps({"behaviour": [BEHAVIOR_TAGS[n % 4]]})


def test_the_task_end_to_end(layout, tmp_path, accept_placeholder):
    """fdbench_v15_interruption_behavior on the tiny official-layout folders (a model that
    echoes the user, faster-whisper's word timestamps): skipped with the reason until
    configured; then each sample's four channels are transcribed, its message is the official
    layout of the words the samples file keeps, and the ratios are recomputed from it."""
    from speechlm_eval.runner import RunOptions, evaluate

    task = "fdbench_v15_interruption_behavior"

    def run(judges: list[str], name: str) -> tuple[dict, Path]:
        opts = RunOptions(
            tasks=task,
            data_dir=str(layout),
            data_source="official",
            output_path=str(tmp_path / name),
            use_cache=str(tmp_path / "cache.sqlite"),
            log_samples=True,
            judges=judges,
        )
        return evaluate("echo-talker", {}, opts, model=EchoTalker()), tmp_path / name

    res, _ = run([], "off")
    why = res["skipped"][task]
    assert "no endpoint configured" in why and ENV_BEHAVIOR in why
    p = write(tmp_path)
    with OpenAIServer("script", served=SERVED, script=by_word_count) as srv:
        base = f"llm=llm-judge,base_url={srv.url},model={SERVED}"
        res, out = run([f"{base},rubric=fdbench-behavior,rubric_file={p}"], "on")
        sent = [r["messages"][1]["content"] for r in srv.requests]
    (f,) = sorted(out.rglob(f"samples_{task}_*.jsonl"))
    rows = [json.loads(x) for x in f.read_text().splitlines()]
    assert len(rows) == 2 and len(sent) == 2
    keys = dict(
        zip(
            BEHAVIOR_FIELDS,
            ("words_clean_input", "words_input", "words_clean_output", "words_output"),
            strict=True,
        )
    )
    for r in rows:
        assert r["words_input"] and r["words_output"], "the echo model said nothing"
        msg = llm_module.BEHAVIOR_TEMPLATE.format(
            **{f: compact_json(asr_object(r[k])) for f, k in keys.items()}
        )
        assert msg in sent
        assert r["behavior"] == BEHAVIOR_TAGS[len(r["words_output"]) % 4]
        assert r["llm_status"] == "ok"
    got = res["results"][task]
    for tag, name in zip(
        BEHAVIOR_TAGS,
        ("respond_rate", "resume_rate", "uncertain_rate", "unknown_rate"),
        strict=True,
    ):
        assert got[f"{name},none"] == pytest.approx(np.mean([r["behavior"] == tag for r in rows]))
    assert res["scoring"][task]["llm_status"] == {"ok": 2}
    assert res["judges"][task]["llm"]["rubric"]["system_sha256"] == sha(PLACEHOLDER)
