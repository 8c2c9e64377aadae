"""The typed-options helper (``speechlm_eval.options``) and the owners that use it.

Coercions are checked against values worked out by hand; every error kind is raised once and
its message checked for the owner, the key and what was expected; the same spelling of true
and false (and the same integers) must parse alike for a model, a judge and the generation
options of gslm-mini.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.options import (
    FALSE_WORDS,
    REQUIRED,
    TRUE_WORDS,
    Opt,
    Spec,
    parse,
    parse_pairs,
    to_bool,
)

SPELLINGS = sorted(TRUE_WORDS | FALSE_WORDS)


def _one(opt: Opt, value: object, *, strict: bool = False) -> object:
    """The parsed value of a single option ``x``."""
    return parse("owner", Spec({"x": opt}, strict=strict), {"x": value})["x"]


def _error(spec: Spec, given: dict, error: type[Exception] = ConfigError) -> str:
    with pytest.raises(error) as e:
        parse("the owner", spec, given)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("the owner")
    return msg


# --- coercion of command-line strings ------------------------------------------------------------


@pytest.mark.parametrize("word", SPELLINGS)
def test_bool_spellings(word: str) -> None:
    want = word in TRUE_WORDS
    for spelt in (word, word.upper(), f" {word.capitalize()} "):
        assert _one(Opt(bool, False), spelt) is want
        assert to_bool(spelt) is want
    assert _one(Opt(bool, not want), want) is want
    assert _one(Opt(bool, False), np.bool_(want)) is want


@pytest.mark.parametrize("bad", ["maybe", "tru", "2", 2, 1.0, [], "yes please"])
def test_bool_rejects(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"owner: option 'x' must be true or false, got "):
        _one(Opt(bool, False), bad)


def test_int_float_str_path_by_hand() -> None:
    cases = [
        (Opt(int, 0), "3", 3),
        (Opt(int, 0), " -12 ", -12),
        (Opt(int, 0), 7.0, 7),  # a whole float is that integer
        (Opt(int, 0), np.int64(4), 4),
        (Opt(float, 0.0), "0.25", 0.25),
        (Opt(float, 0.0), "1e-3", 0.001),
        (Opt(float, 0.0), 2, 2.0),
        (Opt(str, ""), Path("a/b"), "a/b"),
        (Opt(str, ""), "none", "none"),  # None is a value only where the option allows it
        (Opt(Path, None), "~/x", Path.home() / "x"),
        (Opt(dict, {}), {"a": 1}, {"a": 1}),
        (Opt(list, []), ("a", "b"), ["a", "b"]),
    ]
    for opt, given, want in cases:
        got = _one(opt, given)
        assert got == want and type(got) is type(want), (opt.type, given, got)
    for bad in ("3.5", 3.5, True, "three", None):
        with pytest.raises(ConfigError, match=r"owner: option 'x' must be int, got "):
            _one(Opt(int, 0, nullable=False), bad, strict=bad is None)
    for bad in ("nan", "inf", float("inf")):
        with pytest.raises(ConfigError, match="must be a finite number"):
            _one(Opt(float, 0.0), bad)
    with pytest.raises(ConfigError, match="option 'x' must be float, got True"):
        _one(Opt(float, 0.0), True)


def test_none_blank_and_defaults() -> None:
    nullable = Opt(int, 5, nullable=True)
    assert _one(nullable, "none") is None and _one(nullable, " NONE ") is None
    assert _one(nullable, None) is None
    assert _one(nullable, "") == 5  # blank: not given -> the default
    assert _one(Opt(int, 5), "") == 5 and _one(Opt(int, 5), None) == 5  # None asks the default
    assert _one(Opt(str, None), "") is None  # a None default makes the option nullable
    spec = Spec({"x": Opt(int, 1), "y": Opt(dict, {})})
    assert parse("o", spec, {}) == {"x": 1, "y": {}}
    first, second = parse("o", spec, {}), parse("o", spec, {})
    first["y"]["k"] = 1
    assert second["y"] == {}  # a mutable default is never shared


def test_choices_aliases_and_derived_defaults() -> None:
    assert _one(Opt(str, "a", choices=("Auto", "b")), "AUTO") == "Auto"  # any case, as declared
    alias = Opt(str, "float32", choices={"fp32": "float32", "float32": "float32", "bf16": "bf16"})
    assert _one(alias, "FP32") == "float32" and _one(alias, "") == "float32"
    spec = Spec(
        {
            "offset": Opt(int, 2),
            "bos": Opt(int, nullable=True, derive=lambda v: 1 if v["offset"] == 2 else None),
        }
    )
    assert parse("o", spec, {}) == {"offset": 2, "bos": 1}
    assert parse("o", spec, {"offset": "3"}) == {"offset": 3, "bos": None}
    assert parse("o", spec, {"bos": "none"}) == {"offset": 2, "bos": None}
    assert parse("o", spec, {"offset": "3", "bos": "0"}) == {"offset": 3, "bos": 0}


def test_strict_takes_yaml_types_only() -> None:
    assert _one(Opt(bool, False), True, strict=True) is True
    assert _one(Opt(float, 0.5), 1, strict=True) == 1.0
    assert _one(Opt(int, 2, nullable=True), None, strict=True) is None
    for opt, bad in (
        (Opt(bool, False), "yes"),
        (Opt(int, 0), "3"),
        (Opt(int, 0), 3.0),
        (Opt(float, 0.0), "0.5"),
        (Opt(str, "a"), Path("a")),
        (Opt(int, 0), None),
        (Opt(str, "a", choices=("a", "b")), "A"),
    ):
        with pytest.raises(ConfigError, match=r"owner: option 'x' must be "):
            _one(opt, bad, strict=True)


# --- every error kind -----------------------------------------------------------------------------


def test_unknown_keys_list_the_known_ones_sorted() -> None:
    spec = Spec({"zeta": Opt(int, 0), "alpha": Opt(int, 0), "mid": Opt(int, 0)})
    msg = _error(spec, {"beta": 1, "aaa": 2, "mid": 3})
    assert msg == "the owner: unknown option(s) ['aaa', 'beta']; allowed: alpha, mid, zeta"
    msg = _error(Spec({}, noun="key"), {"x": 1})
    assert msg == "the owner: unknown key(s) ['x']; allowed: none"
    usage = Spec({"unit": Opt(str, "s")}, usage="unit=s|ms")
    assert _error(usage, {"layer": 1}) == "the owner takes only unit=s|ms, got layer"


def test_each_error_names_owner_key_and_expectation() -> None:
    def msg(opt: Opt, value: object, **kw: object) -> str:
        return _error(Spec({"k": opt}, **kw), {"k": value})  # type: ignore[arg-type]

    assert msg(Opt(int, 0), "x") == "the owner: option 'k' must be int, got 'x'"
    assert msg(Opt(str, "a"), 3) == "the owner: option 'k' must be a string, got 3"
    assert msg(Opt(float, 0.0), "nan") == "the owner: option 'k' must be a finite number, got 'nan'"
    assert msg(Opt(str, "a", choices=("a", "b")), "c") == (
        "the owner: option 'k' must be one of a, b, got 'c'"
    )
    ranges = [
        (Opt(int, 1, ge=1), 0, ">= 1"),
        (Opt(float, 1.0, gt=0), 0, "> 0"),
        (Opt(int, 0, le=3), 4, "<= 3"),
        (Opt(float, 0.0, lt=0.5), 0.5, "< 0.5"),
        (Opt(int, 1, ge=1, le=9), 10, "in [1, 9]"),
        (Opt(float, 1.0, gt=0, le=30), 31, "in (0, 30]"),
        (Opt(float, 0.5, gt=0, lt=1), 1, "in (0, 1)"),
    ]
    for opt, value, phrase in ranges:
        assert msg(opt, value) == f"the owner: option 'k' must be {phrase}, got {value!r}"
    assert msg(Opt(int, 2, ge=2, expect="an integer >= 2 or null"), 1, quote=False) == (
        "the owner: k must be an integer >= 2 or null, got 1"
    )
    assert msg(Opt(int, REQUIRED, doc="how many"), "") == (
        "the owner: option 'k' is required (how many)"
    )

    def check(value: str) -> str:
        if value == "loud":
            raise ValueError("too loud for the neighbours")
        if value != "ok":
            raise ValueError("")  # no phrase of its own: the message says ``expect``
        return value.upper()

    opt = Opt(str, "ok", check=check, expect="ok or nothing")
    assert _one(opt, "ok") == "OK"
    assert msg(opt, "loud", noun="model argument") == (
        "the owner: model argument 'k': too loud for the neighbours"
    )
    assert msg(opt, "bad") == "the owner: option 'k' must be ok or nothing, got 'bad'"


def test_an_owner_may_raise_its_own_error_class() -> None:
    from speechlm_eval.readers._options import ReaderOptionError

    spec = Spec({"file": Opt(str, "a")}, strict=True, error=ReaderOptionError)
    _error(spec, {"fil": "x"}, ReaderOptionError)
    assert issubclass(ReaderOptionError, ConfigError) and issubclass(ReaderOptionError, DataError)


def test_identity_subset_split_and_pairs() -> None:
    spec = Spec(
        {
            "layer": Opt(int, 3),
            "device": Opt(str, "cpu", identity=False),
            "dedup": Opt(bool, True),
        }
    )
    values = spec.parse("o", {"device": "cuda", "dedup": "off"})
    assert spec.identity(values) == {"layer": 3, "dedup": False}
    assert list(spec.identity(values)) == ["layer", "dedup"]  # spec order
    assert spec.split({"layer": 1, "pretrained": "/m"}) == ({"layer": 1}, {"pretrained": "/m"})
    assert parse_pairs("beam_size=1; cpu_threads=2;", "asr_args") == {
        "beam_size": "1",
        "cpu_threads": "2",
    }
    with pytest.raises(ConfigError, match=r"asr_args: expected k=v;k=v, got 'beam'"):
        parse_pairs("beam", "asr_args")
    with pytest.raises(ConfigError, match=r"asr_args: empty key in '=1'"):
        parse_pairs("=1", "asr_args")
    assert repr(REQUIRED) == "REQUIRED" and "layer" in repr(spec)
    with pytest.raises(TypeError):
        Opt(tuple, ())


# --- one dialect for every owner ------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_args(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Arguments that pass hf-unit-lm's parsing (directories with a config.json); nothing is
    loaded, so the files need not be real models."""
    root = tmp_path_factory.mktemp("hf_args")
    for d in ("enc", "lm"):
        (root / d).mkdir()
        (root / d / "config.json").write_text("{}")
    return {"encoder": str(root / "enc"), "lm": str(root / "lm"), "kmeans": str(root / "km.npy")}


def _bool_of(owner: str, word: str, hf_args: dict[str, str]) -> bool:
    """How each owner reads ``word`` for one of its boolean options."""
    if owner == "hf-unit-lm":
        from reference_models.hf_unit_lm import OPTIONS

        return OPTIONS.parse(owner, {**hf_args, "dedup": word})["dedup"]
    if owner == "gslm-mini":
        from reference_models.gslm_mini.model import OPTIONS

        return OPTIONS.parse(owner, {"with_prompt": word})["with_prompt"]
    if owner == "cascade":
        from reference_models.cascade.model import OPTIONS

        return OPTIONS.parse(owner, {"chat": word})["chat"]
    from speechlm_eval.judges.base import parse_options

    return parse_options("a-judge", {"flag": (bool, False)}, {"flag": word})["flag"]


@pytest.mark.parametrize("word", [*SPELLINGS, "YES", "Off", "TRUE"])
@pytest.mark.parametrize("owner", ["hf-unit-lm", "gslm-mini", "cascade", "judge"])
def test_one_spelling_of_true_and_false_everywhere(owner: str, word: str, hf_args) -> None:
    assert _bool_of(owner, word, hf_args) is (word.lower() in TRUE_WORDS)


def test_integers_parse_alike_for_models_and_judges(hf_args) -> None:
    from reference_models.gslm_mini.model import OPTIONS as GSLM
    from reference_models.hf_unit_lm import OPTIONS as HF
    from speechlm_eval.judges.asr_faster_whisper import FasterWhisperJudge
    from speechlm_eval.judges.base import parse_options

    for given, want in (("5", 5), (" 5 ", 5), (5, 5), (5.0, 5), (np.int32(5), 5)):
        assert HF.parse("hf-unit-lm", {**hf_args, "pad_audio": given})["pad_audio"] == want
        assert GSLM.parse("gslm-mini", {"threads": given})["threads"] == want
        opts = parse_options("faster-whisper", FasterWhisperJudge.OPTIONS, {"beam_size": given})
        assert opts["beam_size"] == want
    with pytest.raises(ConfigError, match="hf-unit-lm: model argument 'pad_audio' must be >= 0"):
        HF.parse("hf-unit-lm", {**hf_args, "pad_audio": "-1"})
    with pytest.raises(ConfigError, match="gslm-mini: model argument 'threads' must be >= 0"):
        GSLM.parse("gslm-mini", {"threads": "-1"})
    with pytest.raises(
        ConfigError, match="judge 'faster-whisper': option 'beam_size' must be >= 1"
    ):
        parse_options("faster-whisper", FasterWhisperJudge.OPTIONS, {"beam_size": "0"})
    # The (type, default) shorthand of a judge keeps batch_size and beam_size >= 1.
    with pytest.raises(ConfigError, match="option 'batch_size' must be >= 1, got 0"):
        parse_options("fake", {"batch_size": (int, 2)}, {"batch_size": 0})


def test_model_arguments_by_hand(hf_args) -> None:
    from reference_models.hf_unit_lm import OPTIONS

    o = OPTIONS.parse("hf-unit-lm", {**hf_args, "dtype": "BF16", "offset": "3", "layer": "-1"})
    assert (o["dtype"], o["offset"], o["bos"], o["eos"], o["layer"]) == (
        "bfloat16",
        3,
        None,
        None,
        -1,
    )
    assert o["encoder"] == Path(hf_args["encoder"]) and str(o["device"]) == "cpu"
    assert OPTIONS.identity(o) == {
        "layer": -1,
        "offset": 3,
        "bos": None,
        "eos": None,
        "dedup": True,
        "pad_audio": 0,
        "dtype": "bfloat16",
    }
    o = OPTIONS.parse("hf-unit-lm", {**hf_args, "eos": "none", "layer": "", "batch_size": "auto"})
    assert (o["bos"], o["eos"], o["layer"]) == (1, None, None)


def test_unknown_model_argument_messages_list_known_keys(hf_args) -> None:
    from reference_models.gslm_mini.model import OPTIONS as GSLM
    from reference_models.hf_unit_lm import OPTIONS as HF

    with pytest.raises(ConfigError) as e:
        HF.parse("hf-unit-lm", {**hf_args, "lyer": "1"})
    assert str(e.value) == (
        "hf-unit-lm: unknown model argument(s) ['lyer']; allowed: allow_pickle, batch_size, "
        "bos, dedup, device, dtype, encoder, eos, kmeans, layer, lm, offset, pad_audio"
    )
    with pytest.raises(ConfigError) as e:
        GSLM.parse("gslm-mini", {"chekpoint": "x"})
    assert str(e.value) == (
        "gslm-mini: unknown model argument(s) ['chekpoint']; allowed: batch_size, checkpoint, "
        "device, threads, with_prompt"
    )
    with pytest.raises(ConfigError, match=r"hf-unit-lm: model argument 'dtype' must be one of"):
        HF.parse("hf-unit-lm", {**hf_args, "dtype": "int8"})
    with pytest.raises(ConfigError, match=r"model argument 'encoder': .* is not an existing dir"):
        HF.parse("hf-unit-lm", {**hf_args, "encoder": "/nonexistent"})
    with pytest.raises(ConfigError, match=r"model argument 'kmeans' is required \(a \.npy file"):
        HF.parse("hf-unit-lm", {**hf_args, "kmeans": ""})


def test_yaml_owners_are_strict() -> None:
    """Scorer and reader options come typed from YAML: the right types pass, strings for
    other types are refused (a quoted "yes" is not guessed)."""
    from speechlm_eval.abx.score import ABXOptions
    from speechlm_eval.readers.pairs import read_pair_folders

    assert ABXOptions.parse({"normalize": False, "frame_tolerance": 2}).frame_tolerance == 2.0
    with pytest.raises(ConfigError, match="ABX options: normalize must be true or false"):
        ABXOptions.parse({"normalize": "yes"})
    with pytest.raises(DataError, match=r"pair_folders reader: option 'subfolder' must be true"):
        read_pair_folders(Path("."), {"subfolder": "yes"})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['sep'\]; allowed: separator"):
        read_pair_folders(Path("."), {"sep": "-"})
