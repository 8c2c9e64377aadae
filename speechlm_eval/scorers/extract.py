"""Answer extraction: named, deterministic filter chains declared in YAML.

A task that scores free-form responses (a spoken question answered in text, a label asked
for) names one or more filter chains; each chain turns a response into one answer or into
*no answer*, and the results report every metric under each chain's name
(``acc,strict``, ``acc,flexible``: lm-evaluation-harness' ``metric,filter`` keys)::

    filters:
      - name: strict                      # letters, digits, '_', '-', '.'
        steps:
          - regex: "ANSWER: ([A-D])"       # a step with its main parameter
          - take_first                     # a step without parameters
      - name: flexible
        steps:
          - choice_letter: {letters: ABCD}  # or a mapping of parameters
      - name: emotion
        steps:
          - label:
              labels: [neutral, happy, angry, sad]
              synonyms: {happy: [joy, joyful], angry: [anger], sad: [sadness]}

A step is a bare name or a one-key mapping ``name: parameters``; unknown names, unknown or
mistyped parameters and malformed chains are one-line :class:`ConfigError`.

**Semantics.** A chain works on a list of candidate strings, starting with ``[response]``.
Each step maps the list to a new one (an extractor may find several candidates in one
string, or none); empty strings are dropped after every step. The answer is the single
distinct candidate left after the last step. Nothing left, or several different
candidates, gives ``None``: no answer, which a scorer counts as wrong *and* reports as a
parse failure (:func:`answer_sample`). There is never a guess: VoiceBench draws an unseeded
random letter for an unparsed reply and AIR-Bench drops unparsed replies from the
denominator; both hide a model that does not follow the answer format.

**Steps** (:data:`STEPS`; :func:`register_step` adds one):

- ``regex: PATTERN`` or ``{pattern, group, ignore_case}``: every match's ``group`` (default
  1 if the pattern has groups, else the whole match);
- ``choice_letter: LETTERS`` or ``{letters: ABCD, ignore_case: false, anywhere: false}``:
  a choice letter, by the strongest rule that matches: the whole reply is the letter
  (``B``, ``(B)``, ``**B.**``); an explicit statement (``answer is B``, ``Answer: (B)``,
  ``option B``); a leading letter with a delimiter (``B) ...``, ``B. ...``, ``B: ...``);
  and, only with ``anywhere: true``, a standalone letter anywhere -- off by default because
  the article in "A dog barks" is a standalone "A". Letters are case-sensitive by default
  for the same reason;
- ``label: [..]`` or ``{labels, synonyms}``: the closed-set labels (and declared synonyms,
  mapped to their label) mentioned as whole words, any case, longest phrase first ("very
  sad" before "sad"); "unhappy" does not mention "happy". Negation is not understood: "not
  happy" mentions happy, so a label task with such replies needs a judge;
- ``number``: every number written in digits (``-3``, ``1,234.5``, ``50%`` -> ``50``),
  canonical (``1234.5``, ``3.0`` -> ``3``); not inside words (``mp3``, ``42nd``) and no
  number words ("fifty" stays unparsed: normalise first where that matters);
- ``number_words``: English number words written as digits (``seven`` -> ``7``, ``twenty
  one`` -> ``21``, ``minus three`` -> ``-3``) by openai-whisper's ``EnglishNumberNormalizer``
  (the WER normaliser's own number rules), applied to the runs of letters only (digits and
  punctuation are left as they are, so ``1,234.5`` survives); those runs come out lowercase.
  Put it before ``number`` for spoken answers;
- ``reject: PATTERN`` or ``{pattern, ignore_case: true}``: drop every candidate the pattern
  matches (a refusal such as "I cannot answer"), so a hedged reply that also names a letter
  is no answer rather than a lucky one;
- ``take_first``, ``take_last``: keep the first or last candidate;
- ``lowercase``, ``strip`` (whitespace).

Targets are compared as strings, in the chain's canonical form (a declared label, a letter
as declared, a number as ``number`` writes it).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple

from ..errors import ConfigError
from ..metrics import SampleScore, ScoreReport, mean
from ..options import REQUIRED, Opt, Spec
from .base import sample_records

StepFn = Callable[[list[str]], list[str]]  # candidates in, candidates out
Builder = Callable[[dict[str, Any], str], StepFn]  # (parsed parameters, where) -> step


@dataclass(frozen=True)
class StepType:
    """A registered step: its parameters (None: takes none), the parameter a scalar value
    stands for, and the builder ``(parsed parameters, where) -> step function``."""

    name: str
    spec: Spec | None
    main: str | None
    build: Builder


STEPS: dict[str, StepType] = {}


def register_step(
    name: str, spec: Spec | None = None, main: str | None = None
) -> Callable[[Builder], Builder]:
    """Register a step builder under ``name``; ``spec`` declares its parameters (strict, as
    YAML types them) and ``main`` the one a scalar value sets (``regex: "A: (.)"``)."""

    def deco(build: Builder) -> Builder:
        if name in STEPS:
            raise ValueError(f"filter step {name!r} is registered twice")
        STEPS[name] = StepType(name, spec, main, build)
        return build

    return deco


def _map(f: Callable[[str], str]) -> StepFn:
    return lambda cands: [f(c) for c in cands]


def _each(f: Callable[[str], list[str]]) -> StepFn:
    return lambda cands: [x for c in cands for x in f(c)]


# --- simple steps -------------------------------------------------------------------------------


@register_step("take_first")
def _take_first(params: dict[str, Any], where: str) -> StepFn:
    return lambda cands: cands[:1]


@register_step("take_last")
def _take_last(params: dict[str, Any], where: str) -> StepFn:
    return lambda cands: cands[-1:]


@register_step("lowercase")
def _lowercase(params: dict[str, Any], where: str) -> StepFn:
    return _map(str.lower)


@register_step("strip")
def _strip(params: dict[str, Any], where: str) -> StepFn:
    return _map(str.strip)


# --- regex ----------------------------------------------------------------------------------------


@register_step(
    "regex",
    Spec(
        {
            "pattern": Opt(str, REQUIRED, doc="a Python regular expression"),
            "group": Opt(int, None, ge=0, doc="default: 1 if the pattern has groups, else 0"),
            "ignore_case": Opt(bool, False),
        },
        noun="key",
        strict=True,
    ),
    main="pattern",
)
def _regex(params: dict[str, Any], where: str) -> StepFn:
    flags = re.IGNORECASE if params["ignore_case"] else 0
    try:
        pat = re.compile(params["pattern"], flags)
    except re.error as e:
        raise ConfigError(
            f"{where}: pattern {params['pattern']!r} does not compile ({e.msg} at {e.pos})"
        ) from None
    group = params["group"]
    if group is None:
        group = 1 if pat.groups else 0
    if group > pat.groups:
        raise ConfigError(
            f"{where}: group {group} does not exist; the pattern has {pat.groups} group(s)"
        )
    # An optional group that did not take part in a match gives None: no candidate.
    return _each(lambda c: [g for m in pat.finditer(c) if (g := m.group(group)) is not None])


# --- choice letters -------------------------------------------------------------------------------


def _letters(value: Any) -> str:
    if not (isinstance(value, str) and 2 <= len(value) <= 26 and value.isalnum()):
        raise ValueError("two or more letters or digits, e.g. ABCD")
    if len(set(value.upper())) != len(value):
        raise ValueError("distinct letters")
    return value


_OPEN = r"[\s*_(\[{\"'`]*"  # what may precede a bare letter: markdown, brackets, quotes
_CLOSE = r"[\s*_)\]}\"'`.,:;!]*"


@register_step(
    "choice_letter",
    Spec(
        {
            "letters": Opt(str, "ABCD", check=_letters, expect="letters such as ABCD"),
            "ignore_case": Opt(bool, False, doc="also accept 'b' for B"),
            "anywhere": Opt(bool, False, doc="also a standalone letter anywhere (risky)"),
        },
        noun="key",
        strict=True,
    ),
    main="letters",
)
def _choice_letter(params: dict[str, Any], where: str) -> StepFn:
    declared = params["letters"]
    canon = {ch: ch for ch in declared}
    if params["ignore_case"]:
        canon.update({ch.lower(): ch for ch in declared})
        canon.update({ch.upper(): ch for ch in declared})
    x = "([" + "".join(re.escape(ch) for ch in canon) + "])"
    end = r"(?![\w'])"  # not part of a word ("Beethoven", "A's")
    rules = [
        re.compile(rf"^{_OPEN}{x}{_CLOSE}$"),  # the whole reply is the letter
        re.compile(  # an explicit statement; "answer is A or B" gives both (ambiguous)
            rf"(?i:\b(?:answer|option|choice)\b)(?:\s+(?i:is|would\s+be|should\s+be|will\s+be))?"
            rf"\s*[:=\-–]?\s*[*_(\[{{\"'`]*{x}{end}"
            rf"(?:[\s*_)\]}}\"'`]*(?:,|/|&|(?i:\bor\b|\band\b))\s*[*_(\[{{\"'`]*{x}{end})?"
        ),
        re.compile(rf"^{_OPEN}{x}(?:[)\]}}.:]|\s+[-–]\s)"),  # "B) ...", "B. ...", "B - ..."
    ]
    if params["anywhere"]:
        rules.append(re.compile(rf"(?<![\w']){x}{end}"))

    def one(text: str) -> list[str]:
        for rule in rules:  # the strongest rule that matches decides
            found = [canon[g] for m in rule.finditer(text) for g in m.groups() if g]
            if found:
                return found
        return []

    return _each(one)


# --- closed label sets ----------------------------------------------------------------------------


def _str_list(value: Any) -> list[str]:
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise ValueError("a non-empty list of strings")
    if any(not v.strip() for v in value):
        raise ValueError("a list of non-empty strings")
    return list(value)


def _synonyms(value: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lab, syns in value.items():
        try:
            out[str(lab)] = _str_list([syns] if isinstance(syns, str) else syns)
        except ValueError:
            raise ValueError(f"synonyms of {lab!r}: a string or a list of strings") from None
    return out


def _key(phrase: str) -> str:
    return " ".join(phrase.split()).lower()


@register_step(
    "label",
    Spec(
        {
            "labels": Opt(list, REQUIRED, check=_str_list, expect="a non-empty list of strings"),
            "synonyms": Opt(dict, {}, check=_synonyms, doc="label -> phrases meaning it"),
        },
        noun="key",
        strict=True,
    ),
    main="labels",
)
def _label(params: dict[str, Any], where: str) -> StepFn:
    phrases: dict[str, str] = {}  # phrase (lowercase, single spaces) -> label as declared

    def add(phrase: str, label: str) -> None:
        k = _key(phrase)
        if k in phrases:
            raise ConfigError(
                f"{where}: {phrase!r} is declared twice (as {phrases[k]!r} and {label!r})"
            )
        phrases[k] = label

    for lab in params["labels"]:
        add(lab, lab)
    for lab, syns in params["synonyms"].items():
        if lab not in params["labels"]:
            raise ConfigError(f"{where}: synonyms of {lab!r}, which is not one of the labels")
        for syn in syns:
            add(syn, lab)
    # Longest phrase first, so "very sad" wins over "sad" at the same place; whole words
    # only (no letter or digit on either side); any run of whitespace inside a phrase.
    alts = sorted(phrases, key=len, reverse=True)
    body = "|".join(r"\s+".join(re.escape(w) for w in a.split()) for a in alts)
    pat = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)
    return _each(lambda c: [phrases[_key(m.group(0))] for m in pat.finditer(c)])


# --- numbers --------------------------------------------------------------------------------------

# A number in digits, not inside a word: optional minus (not a hyphen after a word, as in
# "COVID-19"), thousands groups of exactly three digits, optional decimals.
_NUMBER = re.compile(r"(?<![\w.])([-−]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\w)")


def canonical_number(sign: str, whole: str, frac: str | None) -> str:
    """``-1,234.50`` -> ``-1234.5``; integral values without decimals (``3.0`` -> ``3``)."""
    d = Decimal(("-" if sign else "") + whole.replace(",", "") + (frac or ""))
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


@register_step("number")
def _number(params: dict[str, Any], where: str) -> StepFn:
    return _each(lambda c: [canonical_number(*m.groups()) for m in _NUMBER.finditer(c)])


# --- number words and refusals -------------------------------------------------------------------

_WORD_RUN = re.compile(r"[A-Za-z]+(?:[\s-]+[A-Za-z]+)*")


@cache
def _english_number_normalizer() -> Callable[[str], str]:
    from .normalizers import load_standalone_normalizers

    mod, _ = load_standalone_normalizers()
    return importlib.import_module(f"{mod.__name__}.english").EnglishNumberNormalizer()


def number_words_to_digits(text: str) -> str:
    """``text`` with English number words as digits (the ``number_words`` step)."""
    norm = _english_number_normalizer()
    return _WORD_RUN.sub(lambda m: norm(m.group(0).lower().replace("-", " ")), text)


@register_step("number_words")
def _number_words(params: dict[str, Any], where: str) -> StepFn:
    _english_number_normalizer()  # loaded when the chain is parsed: a missing package fails early
    return _map(number_words_to_digits)


@register_step(
    "reject",
    Spec(
        {
            "pattern": Opt(str, REQUIRED, doc="a Python regular expression"),
            "ignore_case": Opt(bool, True),
        },
        noun="key",
        strict=True,
    ),
    main="pattern",
)
def _reject(params: dict[str, Any], where: str) -> StepFn:
    flags = re.IGNORECASE if params["ignore_case"] else 0
    try:
        pat = re.compile(params["pattern"], flags)
    except re.error as e:
        raise ConfigError(
            f"{where}: pattern {params['pattern']!r} does not compile ({e.msg} at {e.pos})"
        ) from None
    return lambda cands: [c for c in cands if not pat.search(c)]


# --- chains -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One parsed step of a chain."""

    name: str
    params: dict[str, Any]
    fn: StepFn = field(repr=False, compare=False)

    def __call__(self, cands: list[str]) -> list[str]:
        return [c for c in self.fn(cands) if c]  # an empty string is no answer

    def describe(self) -> str | dict[str, Any]:
        """The step as YAML would write it, every parameter explicit."""
        return {self.name: dict(self.params)} if self.params else self.name


class Extraction(NamedTuple):
    """A chain's result: the answer (None: none parsed) and, when None, why."""

    answer: str | None
    explanation: str | None


@dataclass(frozen=True)
class FilterChain:
    """A named list of steps (see the module doc for the semantics)."""

    name: str
    steps: tuple[Step, ...]

    def extract(self, response: str | None) -> Extraction:
        """The answer in ``response``, or None with the reason."""
        cands = [response] if isinstance(response, str) and response else []
        if not cands:
            return Extraction(None, "empty response")
        for i, step in enumerate(self.steps, 1):
            cands = step(cands)
            if not cands:
                return Extraction(None, f"no match at step {i} ({step.name})")
        distinct = list(dict.fromkeys(cands))
        if len(distinct) > 1:
            shown = ", ".join(repr(c) for c in distinct[:5])
            return Extraction(None, f"ambiguous: {shown} after the last step")
        return Extraction(distinct[0], None)

    def describe(self) -> dict[str, Any]:
        """The chain as YAML would write it (for the results' scoring record)."""
        return {"name": self.name, "steps": [s.describe() for s in self.steps]}


_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_step(raw: Any, where: str) -> Step:
    if isinstance(raw, str):
        name, given = raw, None
    elif isinstance(raw, Mapping) and len(raw) == 1:
        ((name, given),) = raw.items()
    else:
        raise ConfigError(
            f"{where}: a step is a name or a one-key mapping {{name: parameters}}, "
            f"got {_short(raw)}"
        )
    st = STEPS.get(name) if isinstance(name, str) else None
    if st is None:
        raise ConfigError(
            f"{where}: unknown step {_short(name)}; known: {', '.join(sorted(STEPS))}"
        )
    here = f"{where} ({name})"
    if given is not None and not isinstance(given, Mapping):
        if st.main is None:
            raise ConfigError(f"{here}: takes no parameters, got {_short(given)}")
        given = {st.main: given}
    if st.spec is None:
        if given:
            raise ConfigError(f"{here}: takes no parameters, got {_short(given)}")
        params: dict[str, Any] = {}
    else:
        params = st.spec.parse(here, given)
    return Step(name, params, st.build(params, here))


def parse_filters(spec: Any, where: str = "filters") -> list[FilterChain]:
    """The filter chains of a YAML value: a list of ``{name, steps}`` mappings (module doc).

    ``where`` starts every error message (``task 'x': scoring.options.filters``).
    """
    if not isinstance(spec, list) or not spec:
        raise ConfigError(
            f"{where}: expected a non-empty list of filters ({{name: ..., steps: [...]}}), "
            f"got {_short(spec)}"
        )
    chains: list[FilterChain] = []
    for i, entry in enumerate(spec):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{at}: expected a mapping with 'name' and 'steps', got {_short(entry)}"
            )
        unknown = sorted(str(k) for k in entry if k not in ("name", "steps"))
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {unknown}; allowed: name, steps")
        for k in ("name", "steps"):
            if k not in entry:
                raise ConfigError(f"{at}: missing {k!r}")
        name = entry["name"]
        if not (isinstance(name, str) and _NAME.match(name)):
            raise ConfigError(
                f"{at}: filter name {_short(name)} must be letters, digits, '_', '-' or '.'"
            )
        if any(c.name == name for c in chains):
            raise ConfigError(f"{at}: filter name {name!r} is used twice")
        steps = entry["steps"]
        if not isinstance(steps, list) or not steps:
            raise ConfigError(f"{at} ({name}): 'steps' must be a non-empty list")
        parsed = tuple(_parse_step(s, f"{at} ({name}) step {j}") for j, s in enumerate(steps, 1))
        chains.append(FilterChain(name, parsed))
    return chains


# --- scoring extracted answers --------------------------------------------------------------------


def answer_sample(
    doc_id: str,
    response: str | None,
    target: str,
    chain: FilterChain,
    meta: Mapping[str, Any] | None = None,
) -> SampleScore:
    """One response scored under ``chain``: ``acc`` 1/0 (no answer counts 0) and
    ``parse_failure`` 1 when no answer was parsed; the answer and why it is missing."""
    ex = chain.extract(response)
    return SampleScore(
        doc_id,
        {
            "acc": float(ex.answer is not None and ex.answer == target),
            "parse_failure": float(ex.answer is None),
        },
        answer=ex.answer,
        explanation=ex.explanation,
        meta={"response": response, "target": target, **(meta or {})},
    )


def answer_report(samples: Sequence[SampleScore]) -> ScoreReport:
    """``acc`` over every sample (unparsed ones count as wrong, never left out) and the
    ``parse_failure`` rate (lower is better), closed-form standard errors."""
    return ScoreReport(
        {
            "acc": mean([s.values["acc"] for s in samples]),
            "parse_failure": mean(
                [s.values["parse_failure"] for s in samples], higher_is_better=False
            ),
        },
        sample_records(samples),
    )
