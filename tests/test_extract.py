"""Answer extraction (scorers/extract.py): filter chains from YAML on hand-written replies.

The cases follow the answer-parsing pitfalls of existing SpeechLM benchmarks
(shared/reference/downstream-quality-human.md section 1): AIR-Bench's first / second-to-last
character rule and its parse failures left out of the denominator, VoiceBench's unseeded
random letter for an unmatched reply, AudioBench's parse-or-zero with a success rate,
Kimi-Audio's synonyms, MMAU's "no other choice mentioned" rule, Dynamic-SUPERB's "Respond
with 1 or 2", and Seed-TTS' "fifty" vs "50".
"""

from __future__ import annotations

import pytest
import yaml

from speechlm_eval.errors import ConfigError
from speechlm_eval.scorers.extract import (
    STEPS,
    FilterChain,
    answer_report,
    answer_sample,
    parse_filters,
)


def chain(steps: str | list) -> FilterChain:
    """A one-filter chain from YAML text (or an already loaded list of steps)."""
    loaded = yaml.safe_load(steps) if isinstance(steps, str) else steps
    (c,) = parse_filters([{"name": "f", "steps": loaded}])
    return c


def answers(c: FilterChain, replies: list[str]) -> list[str | None]:
    return [c.extract(r).answer for r in replies]


# --- the YAML shape -------------------------------------------------------------------------------


def test_yaml_shape_and_describe():
    text = """
filters:
  - name: strict
    steps:
      - regex: "ANSWER: ([A-D])"
      - take_first
  - name: flexible
    steps: [strip, {choice_letter: {letters: ABCD}}]
  - name: emotion
    steps:
      - label:
          labels: [neutral, happy, angry, sad]
          synonyms: {happy: [joy, joyful], angry: anger}
"""
    chains = parse_filters(yaml.safe_load(text)["filters"])
    assert [c.name for c in chains] == ["strict", "flexible", "emotion"]
    assert chains[0].describe() == {
        "name": "strict",
        "steps": [
            {"regex": {"pattern": "ANSWER: ([A-D])", "group": None, "ignore_case": False}},
            "take_first",
        ],
    }
    # Every parameter explicit, synonyms as lists: the record is canonical.
    assert chains[2].describe()["steps"][0]["label"]["synonyms"] == {
        "happy": ["joy", "joyful"],
        "angry": ["anger"],
    }
    # A chain parsed from its own description is the same chain.
    again = parse_filters([c.describe() for c in chains])
    assert [c.describe() for c in again] == [c.describe() for c in chains]
    assert {"regex", "choice_letter", "label", "number", "take_first", "take_last"} <= set(STEPS)
    assert {"lowercase", "strip"} <= set(STEPS)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x"}, r"filters: expected a non-empty list of filters"),
        ([], r"filters: expected a non-empty list"),
        (["strict"], r"filters\[0\]: expected a mapping with 'name' and 'steps'"),
        ([{"name": "a", "steps": ["strip"], "filter": 1}], r"unknown key\(s\) \['filter'\]"),
        ([{"steps": ["strip"]}], r"filters\[0\]: missing 'name'"),
        ([{"name": "a"}], r"filters\[0\]: missing 'steps'"),
        ([{"name": "a,b", "steps": ["strip"]}], r"filter name 'a,b' must be letters"),
        ([{"name": "a", "steps": ["strip"]}] * 2, r"filters\[1\]: filter name 'a' is used twice"),
        ([{"name": "a", "steps": []}], r"filters\[0\] \(a\): 'steps' must be a non-empty list"),
        (
            [{"name": "a", "steps": ["strip", "take_frist"]}],
            r"filters\[0\] \(a\) step 2: unknown step 'take_frist'; known: choice_letter, label,",
        ),
        (
            [{"name": "a", "steps": [{"regex": "x", "take_first": None}]}],
            r"step 1: a step is a name or a one-key mapping",
        ),
        ([{"name": "a", "steps": [3]}], r"step 1: a step is a name or a one-key mapping"),
        (
            [{"name": "a", "steps": [{"regex": {"pattern": "x", "grop": 1}}]}],
            r"step 1 \(regex\): unknown key\(s\) \['grop'\]; allowed: group, ignore_case, pattern",
        ),
        (
            [{"name": "a", "steps": [{"regex": {"group": 1}}]}],
            r"step 1 \(regex\).*'pattern'",
        ),
        (
            [{"name": "a", "steps": [{"regex": "ANSWER: ([A-D]"}]}],
            r"step 1 \(regex\): pattern 'ANSWER: \(\[A-D\]' does not compile",
        ),
        (
            [{"name": "a", "steps": [{"regex": {"pattern": "(a)", "group": 2}}]}],
            r"group 2 does not exist; the pattern has 1 group",
        ),
        (
            [{"name": "a", "steps": [{"take_first": 1}]}],
            r"step 1 \(take_first\): takes no parameters, got 1",
        ),
        (
            [{"name": "a", "steps": [{"number": {"x": 1}}]}],
            r"step 1 \(number\): takes no parameters",
        ),
        (
            [{"name": "a", "steps": [{"choice_letter": {"letters": "AAB"}}]}],
            r"step 1 \(choice_letter\).*'letters'.*distinct letters",
        ),
        (
            [{"name": "a", "steps": [{"choice_letter": {"ignore_case": "yes"}}]}],
            r"step 1 \(choice_letter\).*'ignore_case'",
        ),
        ([{"name": "a", "steps": [{"label": []}]}], r"step 1 \(label\).*'labels'"),
        (
            [
                {
                    "name": "a",
                    "steps": [{"label": {"labels": ["sad"], "synonyms": {"happy": "joy"}}}],
                }
            ],
            r"synonyms of 'happy', which is not one of the labels",
        ),
        (
            [
                {
                    "name": "a",
                    "steps": [{"label": {"labels": ["sad", "blue"], "synonyms": {"sad": "Blue"}}}],
                }
            ],
            r"'Blue' is declared twice \(as 'blue' and 'sad'\)",
        ),
    ],
)
def test_malformed_chains_are_one_line_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_filters(spec)
    assert "\n" not in str(e.value)


def test_where_prefixes_every_message():
    with pytest.raises(ConfigError, match=r"^task 'x': scoring.options.filters\[0\]: missing"):
        parse_filters([{"name": "a"}], "task 'x': scoring.options.filters")


# --- the chain's rules -------------------------------------------------------------------------


def test_no_answer_is_none_never_a_guess():
    c = chain("[choice_letter]")
    # VoiceBench would draw random.choice('ABCD') for these; here they stay unanswered.
    for reply in ["", "I don't know.", "E", "The cat is on the mat.", None]:
        ex = c.extract(reply)
        assert ex.answer is None and ex.explanation
    assert c.extract("").explanation == "empty response"
    assert c.extract("E").explanation == "no match at step 1 (choice_letter)"
    # Deterministic: the same reply gives the same result every time.
    assert len({c.extract("The answer is B.") for _ in range(20)}) == 1


def test_several_distinct_candidates_are_ambiguous_unless_a_step_chooses():
    both = "ANSWER: C\nANSWER: D"
    assert chain([{"regex": "ANSWER: ([A-D])"}]).extract(both).explanation == (
        "ambiguous: 'C', 'D' after the last step"
    )
    assert chain([{"regex": "ANSWER: ([A-D])"}, "take_first"]).extract(both).answer == "C"
    assert chain([{"regex": "ANSWER: ([A-D])"}, "take_last"]).extract(both).answer == "D"
    # The same candidate twice is one answer.
    assert chain([{"regex": "ANSWER: ([A-D])"}]).extract("ANSWER: B ... ANSWER: B").answer == "B"


def test_empty_candidates_are_dropped_after_each_step():
    c = chain([{"regex": {"pattern": "answer:(.*)", "ignore_case": True}}, "strip"])
    assert c.extract("Answer:   ").answer is None
    assert c.extract("Answer:  x ").answer == "x"
    assert chain(["strip"]).extract("   ").answer is None


def test_regex_groups_and_flags():
    assert answers(chain([{"regex": r"\d+"}]), ["a 12 b", "none"]) == ["12", None]
    opt = chain([{"regex": {"pattern": "(yes)|(no)", "group": 2}}])
    assert answers(opt, ["no", "yes"]) == ["no", None]  # group 2 absent in "yes": no candidate
    assert (
        chain([{"regex": {"pattern": "answer: (\\w+)", "ignore_case": True}}])
        .extract("ANSWER: Paris")
        .answer
        == "Paris"
    )
    assert chain(["lowercase", {"regex": "answer: (\\w+)"}]).extract("ANSWER: Paris").answer == (
        "paris"
    )


# --- choice letters -------------------------------------------------------------------------------

LETTER_CASES = [
    # The whole reply is the letter, decorated.
    ("B", "B"),
    ("(C)", "C"),
    ("**D**", "D"),
    ("B.", "B"),
    ("  'A'  ", "A"),
    # An explicit statement (AIR-Bench's second-to-last character rule covers "... is A.").
    ("The answer is A.", "A"),
    ("Answer: (C)", "C"),
    ("The correct option is D because it rhymes.", "D"),
    ("I think the answer is B because A is wrong.", "B"),
    ("Answer:\nB", "B"),
    # A leading letter with a delimiter (AIR-Bench's first character rule, made stricter).
    ("B) a dog barking", "B"),
    ("C. The speaker is angry.", "C"),
    ("(A) rain", "A"),
    ("D - the third one", "D"),
    # Not answers.
    ("A dog is barking.", None),  # the article: a leading "A" without a delimiter
    ("The answer is Beethoven.", None),  # a word starting with a letter
    ("AB", None),
    ("E", None),
    ("b", None),  # lowercase is not a letter unless ignore_case
    ("I have no answer.", None),
    # Hedged or self-contradicting: ambiguous, no answer (MMAU: no other choice mentioned).
    ("The answer is A or B.", None),
    ("Answer: (B) or (C)", None),
    ("answer is A, B", None),
    ("option A, and then option C", None),
]


@pytest.mark.parametrize(("reply", "expected"), LETTER_CASES)
def test_choice_letter(reply, expected):
    assert chain(["choice_letter"]).extract(reply).answer == expected


def test_choice_letter_options():
    lower = chain([{"choice_letter": {"letters": "ABCD", "ignore_case": True}}])
    assert answers(lower, ["b", "the answer is c", "(d)"]) == ["B", "C", "D"]
    anywhere = chain([{"choice_letter": {"anywhere": True}}])
    # The risk that keeps it off by default: the article "A" is a standalone letter.
    assert anywhere.extract("A dog is barking.").answer == "A"
    assert anywhere.extract("I pick C here").answer == "C"
    assert anywhere.extract("A dog, then C").answer is None  # A and C: ambiguous
    # Dynamic-SUPERB "Respond with 1 or 2.": the same rules over digits.
    digits = chain([{"choice_letter": "12"}])
    assert answers(digits, ["2", "The answer is 1.", "1 or 2", "3"]) == ["2", "1", None, None]
    two = chain([{"choice_letter": "AB"}])
    assert answers(two, ["C", "B"]) == [None, "B"]


# --- labels ---------------------------------------------------------------------------------------

EMOTION = [
    {
        "label": {
            "labels": ["neutral", "happy", "angry", "sad", "very sad", "_unknown_"],
            "synonyms": {"happy": ["joy", "joyful", "happiness"], "angry": ["anger"]},
        }
    }
]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("happy", "happy"),
        ("The speaker sounds HAPPY.", "happy"),
        ("Joyful!", "happy"),  # a synonym maps to its label (Kimi-Audio: happy ~ joy)
        ("full of joy, pure happiness", "happy"),  # two synonyms of one label: one answer
        ("anger", "angry"),
        ("very   sad", "very sad"),  # longest phrase first, any whitespace inside it
        ("sad-looking face", "sad"),  # a hyphen is not part of a word
        ("_unknown_", "_unknown_"),
        ("unhappy", None),  # whole words only
        ("sadness", None),  # not a declared synonym
        ("happy or sad", None),  # two labels: ambiguous, not the first one
        ("I cannot tell.", None),
        ("not happy", "happy"),  # negation is not understood (documented; use a judge)
    ],
)
def test_label(reply, expected):
    assert chain(EMOTION).extract(reply).answer == expected


def test_label_scalar_form_and_first_mention():
    c = chain([{"label": ["yes", "no"]}, "take_first"])
    assert answers(c, ["No, yes", "YES"]) == ["no", "yes"]


# --- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "found"),
    [
        ("The answer is 42.", ["42"]),
        ("1,234.5 and -3", ["1234.5", "-3"]),
        ("$1,000.50", ["1000.5"]),
        ("50%", ["50"]),
        ("3.0", ["3"]),
        ("0.50", ["0.5"]),
        ("-0", ["0"]),
        ("−7 degrees", ["-7"]),  # a Unicode minus
        ("1,2,3", ["1", "2", "3"]),  # not thousands groups
        ("5-3", ["5", "3"]),  # a range, not a negative 3
        ("COVID-19", ["19"]),  # a hyphen after a word is not a minus
        ("mp3 and 42nd", []),  # digits inside words are not numbers
        ("fifty", []),  # number words are not read (Seed-TTS: "fifty" vs "50")
    ],
)
def test_number(reply, found):
    assert STEPS["number"].build({}, "t")([reply]) == found


def test_number_chain_with_take_last():
    c = chain(["number", "take_last"])
    assert answers(c, ["3 apples and 5 pears, so 8", "none"]) == ["8", None]
    assert chain(["number"]).extract("3 or 5").answer is None  # two numbers: ambiguous


# --- scoring ------------------------------------------------------------------------------------


def test_unparsed_answers_count_wrong_and_report_a_failure_rate():
    c = chain(["choice_letter"])
    replies = {"1": "B", "2": "The answer is C.", "3": "I am not sure", "4": "(A)"}
    targets = {"1": "B", "2": "B", "3": "B", "4": "A"}
    samples = [answer_sample(i, replies[i], targets[i], c) for i in replies]
    assert [s.answer for s in samples] == ["B", "C", None, "A"]
    assert [s.values for s in samples][2] == {"acc": 0.0, "parse_failure": 1.0}
    rep = answer_report(samples)
    # AIR-Bench would report 2/3 (parsed replies only); every reply counts here.
    assert rep.metrics["acc"].value == 0.5 and rep.metrics["acc"].n == 4
    assert rep.metrics["parse_failure"].value == 0.25
    assert not rep.metrics["parse_failure"].higher_is_better
    row = rep.per_item[2]
    assert row["explanation"] == "no match at step 1 (choice_letter)" and "answer" not in row
    assert rep.per_item[0]["answer"] == "B" and rep.per_item[0]["response"] == "B"
