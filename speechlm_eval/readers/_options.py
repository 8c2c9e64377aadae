"""Reader options (``dataset.options`` of a task YAML), parsed by :mod:`speechlm_eval.options`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, DataError
from ..options import Opt, Spec


class ReaderOptionError(ConfigError, DataError):
    """A reader option is unknown or invalid: a configuration error, and also a
    :class:`DataError`, which readers raised for it before (callers catching that still do)."""


def reader_spec(options: Mapping[str, Opt]) -> Spec:
    """The spec of a reader's options: YAML-typed (strict), keys quoted as ``option 'x'``."""
    return Spec(options, strict=True, error=ReaderOptionError)


def read_options(reader: str, spec: Spec, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` of the reader ``reader`` checked and defaulted; errors start
    ``<reader> reader:``."""
    return spec.parse(f"{reader} reader", options)


def names(value: Any) -> list[str]:
    """A name or a non-empty list of names (``item: [dev-clean.item, dev.item]``) as a list;
    ``ValueError`` otherwise (an ``Opt.check``)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("")


def non_empty(value: str) -> str:
    """A non-empty string, e.g. a file name (an ``Opt.check``)."""
    if not value:
        raise ValueError("")
    return value
