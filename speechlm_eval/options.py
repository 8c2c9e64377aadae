"""Typed options for models, judges, readers and scorers: one parser, one spelling of true.

Every plugin that takes ``key=value`` settings -- model arguments (``--model_args``), judge
options (``asr_args``, ``judge_args``), reader and scorer options (task YAML) -- declares them
once, as a :class:`Spec` of :class:`Opt`, and reads them with :func:`parse`::

    SPEC = Spec(
        {
            "layer": Opt(int, None, ge=0, doc="hidden-state index (default: last)"),
            "dedup": Opt(bool, True, doc="collapse repeated units"),
            "device": Opt(str, "cpu", identity=False, doc="where it runs"),
        },
        noun="model argument",
    )
    values = parse("hf-unit-lm", SPEC, {"layer": "3", "dedup": "yes"})
    # {'layer': 3, 'dedup': True, 'device': 'cpu'}
    SPEC.identity(values)  # {'layer': 3, 'dedup': True}: what changes outputs

Rules, the same for every owner:

- Command-line values arrive as strings and are coerced: ``bool`` from one spelling set
  (``true/false``, ``1/0``, ``yes/no``, ``on/off``, any case), ``int`` (a decimal string, or
  a whole float), ``float`` (finite), ``str``, ``Path`` (``~`` expanded), choices (any case,
  returned as declared). A blank value (``key=``) means "not given" (the default), and
  ``none`` means None where None is allowed.
- A ``strict`` spec reads values that a YAML parser already typed (task files): no string
  is converted to another type there, so ``normalize: "yes"`` (quoted) is an error rather
  than a guess, and None is only YAML's ``null``.
- Unknown keys are an error listing the known ones, sorted. Every error names the owner and
  the key, on one line (:class:`~speechlm_eval.errors.ConfigError`, or the spec's ``error``).
- :meth:`Spec.identity` gives the parsed values that change outputs (``Opt.identity``), for
  the owner's ``identity()``; devices, thread counts and batch sizes stay out of it.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from .errors import ConfigError, SlmEvalError

__all__ = [
    "FALSE_WORDS",
    "REQUIRED",
    "TRUE_WORDS",
    "Opt",
    "Spec",
    "parse",
    "parse_pairs",
    "to_bool",
]

# The one spelling of true and false, for every option of every owner.
TRUE_WORDS: Final = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS: Final = frozenset({"false", "0", "no", "off"})


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


REQUIRED: Final = _Marker("REQUIRED")  # an Opt default: the key must be given
_ABSENT: Final = _Marker("ABSENT")

# How a type is named in "must be ..." messages ("int" and "float" as the judges always said).
_TYPE_WORDS: dict[type, str] = {
    bool: "true or false",
    int: "int",
    float: "float",
    str: "a string",
    Path: "a path",
    dict: "a mapping",
    list: "a list",
}
_TYPES = (bool, int, float, str, Path, dict, list, object)


@dataclass(frozen=True)
class Opt:
    """One option: its type, default, constraints, documentation, and whether it is identity.

    - ``type``: ``bool``, ``int``, ``float``, ``str``, ``Path``, ``dict``, ``list`` or
      ``object`` (any value; ``check`` does the work).
    - ``default``: the value when the key is absent (or blank on the command line);
      :data:`REQUIRED` makes the key mandatory. Defaults go through the same checks.
    - ``nullable``: None is a value (spelt ``none`` on the command line); by default, when
      the default is None.
    - ``choices``: allowed values, or a mapping of accepted spellings to values (aliases).
    - ``ge`` / ``gt`` / ``le`` / ``lt``: bounds of a number.
    - ``derive``: computes the default from the values parsed before this key (spec order).
    - ``check``: last step, returns the final value (may convert it); raises ``ValueError``
      with a phrase for the message, or an empty one to use ``expect``.
    - ``expect``: what a valid value is, in words, for messages ("must be <expect>").
    - ``identity``: the value changes outputs (part of the owner's identity).
    """

    type: type = str
    default: Any = None
    doc: str = ""
    identity: bool = True
    nullable: bool | None = None
    choices: Iterable[Any] | Mapping[str, Any] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    derive: Callable[[Mapping[str, Any]], Any] | None = None
    check: Callable[[Any], Any] | None = None
    expect: str | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise TypeError(f"unsupported option type {self.type!r}")
        if self.choices is not None and not isinstance(self.choices, Mapping):
            # Frozen: keep an immutable, ordered copy (a generator would be spent once).
            object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def allows_none(self) -> bool:
        """Whether None is a valid value."""
        return self.default is None if self.nullable is None else self.nullable


class Spec:
    """The options of one owner (a model, a judge, a reader, a scorer), in order.

    ``options``: name -> :class:`Opt`, or the shorthand ``(type, default)``. ``noun`` names
    a key in messages ("option", "model argument", "key"); ``quote``: write keys quoted
    (``option 'beam_size'``) or bare (``beam_size``). ``strict``: values are typed already
    (YAML), see the module doc. ``usage``: a short line ("unit=seconds|samples") said instead
    of the list of known keys when a key is unknown. ``error``: the exception class raised
    (a :class:`ConfigError` unless an owner's callers expect another).
    """

    def __init__(
        self,
        options: Mapping[str, Opt | tuple[type, Any]],
        *,
        noun: str = "option",
        quote: bool = True,
        strict: bool = False,
        usage: str | None = None,
        error: type[SlmEvalError] = ConfigError,
    ) -> None:
        self.options: dict[str, Opt] = {
            k: o if isinstance(o, Opt) else Opt(o[0], o[1]) for k, o in options.items()
        }
        self.noun, self.quote, self.strict, self.usage, self.error = (
            noun,
            quote,
            strict,
            usage,
            error,
        )

    def __repr__(self) -> str:
        return f"Spec({', '.join(self.options)})"

    @property
    def known(self) -> list[str]:
        """The option names, sorted."""
        return sorted(self.options)

    def label(self, key: str) -> str:
        """How messages name ``key``: ``model argument 'layer'``, or bare ``layer``."""
        return f"{self.noun} {key!r}" if self.quote else key

    def parse(self, owner: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """``given`` checked and typed, every option present (defaults filled in), in spec
        order. ``owner`` starts every error message (``judge 'faster-whisper'``)."""
        given = dict(given or {})
        unknown = sorted((k for k in given if k not in self.options), key=str)
        if unknown:
            if self.usage:
                msg = f"{owner} takes only {self.usage}, got {', '.join(map(str, unknown))}"
            else:
                msg = (
                    f"{owner}: unknown {self.noun}(s) {unknown}; allowed: "
                    f"{', '.join(self.known) or 'none'}"
                )
            raise self.error(msg)
        out: dict[str, Any] = {}
        for key, opt in self.options.items():
            out[key] = self._value(owner, key, opt, given.get(key, _ABSENT), out)
        return out

    def split(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(this spec's keys, the rest): for owners that pass other keys on (``cascade``
        gives them to its text LM)."""
        own = {k: v for k, v in given.items() if k in self.options}
        return own, {k: v for k, v in given.items() if k not in self.options}

    def identity(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the options that change outputs, in spec order."""
        return {k: values[k] for k, o in self.options.items() if o.identity and k in values}

    # --- one value -----------------------------------------------------------------------------

    def _value(self, owner: str, key: str, opt: Opt, raw: Any, before: Mapping[str, Any]) -> Any:
        def fail(phrase: str) -> SlmEvalError:
            return self.error(f"{owner}: {self.label(key)} {phrase}, got {raw!r}")

        # On the command line ``key=`` says nothing, and a Python caller's None for an option
        # that cannot be None asks for its default.
        blank = isinstance(raw, str) and not raw.strip()
        if not self.strict and (blank or (raw is None and not opt.allows_none)):
            raw = _ABSENT
        if raw is _ABSENT:
            if opt.derive is not None:
                raw = opt.derive(before)
            elif opt.default is REQUIRED:
                doc = f" ({opt.doc})" if opt.doc else ""
                raise self.error(f"{owner}: {self.label(key)} is required{doc}")
            else:
                raw = copy.deepcopy(opt.default)  # a mutable default is never shared
        if raw is None or (
            not self.strict
            and opt.allows_none
            and isinstance(raw, str)
            and raw.strip().lower() == "none"
        ):
            if opt.allows_none:
                return None
            raise fail(f"must be {opt.expect or _word(opt)}")
        try:
            value = _coerce(raw, opt.type, self.strict)
        except ValueError:
            raise fail(f"must be {opt.expect or _word(opt)}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise fail(f"must be {opt.expect or 'a finite number'}")
        if opt.choices is not None:
            value = _choose(value, opt.choices, self.strict)
            if value is _ABSENT:
                names = ", ".join(map(str, opt.choices))
                raise fail(f"must be {opt.expect or 'one of ' + names}")
        bounds = _bounds(opt)
        if bounds and not _within(value, opt):
            raise fail(f"must be {opt.expect or bounds}")
        if opt.check is not None:
            try:
                value = opt.check(value)
            except ValueError as e:
                if str(e):
                    raise self.error(f"{owner}: {self.label(key)}: {e}") from None
                raise fail(f"must be {opt.expect or _word(opt)}") from None
        return value


def parse(owner: str, spec: Spec, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """``spec.parse(owner, given)``: the options of ``owner`` typed, checked, defaulted."""
    return spec.parse(owner, given)


def to_bool(value: Any) -> bool:
    """A bool from a bool or one of true/false, 1/0, yes/no, on/off (any case); else
    ``ValueError``. The one spelling every option uses."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError("")


def parse_pairs(text: str, owner: str, sep: str = ";") -> dict[str, str]:
    """``"k=v;k=v"`` -> ``{"k": "v", ...}`` (values stay strings; blank parts are skipped).

    For options nested in one value (``asr_args=beam_size=1;cpu_threads=2``: ``--model_args``
    itself splits on commas)."""
    out: dict[str, str] = {}
    for part in text.split(sep):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            form = "key=value" if sep == "," else f"k=v{sep}k=v"  # --model_args says key=value
            raise ConfigError(f"{owner}: expected {form}, got {part!r}")
        k, v = part.split("=", 1)
        if not k.strip():
            raise ConfigError(f"{owner}: empty key in {part!r}")
        out[k.strip()] = v.strip()
    return out


# --- coercion ------------------------------------------------------------------------------------


def _coerce(value: Any, typ: type, strict: bool) -> Any:
    """``value`` as ``typ``, or ValueError. ``strict``: no conversion from strings."""
    is_bool = isinstance(value, (bool, np.bool_))
    if typ is object:
        return value
    if typ is bool:
        if strict and not is_bool:
            raise ValueError("")
        return to_bool(value)
    if typ is int:
        # bool is an int subclass, but "layer=True" is a mistake, not layer 1.
        if is_bool:
            raise ValueError("")
        if isinstance(value, numbers.Integral):
            return int(value)
        if not strict and isinstance(value, float) and value.is_integer():
            return int(value)
        if not strict and isinstance(value, str):
            return int(value.strip())
        raise ValueError("")
    if typ is float:
        if is_bool:
            raise ValueError("")
        if isinstance(value, numbers.Real):
            return float(value)
        if not strict and isinstance(value, str):
            return float(value.strip())
        raise ValueError("")
    if typ is str:
        if isinstance(value, str) or (not strict and isinstance(value, Path)):
            return str(value)
        raise ValueError("")
    if typ is Path:
        if isinstance(value, (str, Path)):
            return Path(value).expanduser()
        raise ValueError("")
    if typ is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise ValueError("")
    if typ is list:
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ValueError("")
    raise TypeError(f"unsupported option type {typ!r}")


def _choose(value: Any, choices: Iterable[Any] | Mapping[str, Any], strict: bool) -> Any:
    """The declared choice ``value`` names (any case unless strict), or _ABSENT."""
    table = choices if isinstance(choices, Mapping) else {c: c for c in choices}
    try:
        if value in table:
            return table[value]
    except TypeError:  # unhashable
        return _ABSENT
    if not strict and isinstance(value, str):
        folded = value.strip().casefold()
        for name, choice in table.items():
            if isinstance(name, str) and name.casefold() == folded:
                return choice
    return _ABSENT


def _word(opt: Opt) -> str:
    return _TYPE_WORDS.get(opt.type, "a valid value")


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bounds(opt: Opt) -> str:
    """The range in words: ``>= 1``, ``in (0, 1)``, ``in (0, 30]``; '' when unbounded."""
    low = (f"[{_num(opt.ge)}" if opt.ge is not None else None) or (
        f"({_num(opt.gt)}" if opt.gt is not None else None
    )
    high = (f"{_num(opt.le)}]" if opt.le is not None else None) or (
        f"{_num(opt.lt)})" if opt.lt is not None else None
    )
    if low and high:
        return f"in {low}, {high}"
    if low:
        return (">= " if low[0] == "[" else "> ") + low[1:]
    if high:
        return ("<= " if high[-1] == "]" else "< ") + high[:-1]
    return ""


def _within(value: Any, opt: Opt) -> bool:
    return not (
        (opt.ge is not None and value < opt.ge)
        or (opt.gt is not None and value <= opt.gt)
        or (opt.le is not None and value > opt.le)
        or (opt.lt is not None and value >= opt.lt)
    )
