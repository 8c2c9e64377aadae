"""Text normalisers for WER/CER: openai-whisper's, loaded without importing torch, with identity.

``whisper_english`` (``EnglishTextNormalizer``: the Whisper paper's normaliser, used by most
SpeechLM resynthesis tables), ``whisper_basic`` (``BasicTextNormalizer``) or ``none``
(whitespace collapsed only). The normaliser's package, version and source hash are recorded.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigError
from ..hashing import digest, sha256_file

NORMALIZERS = ("whisper_english", "whisper_basic", "none")


@dataclass(frozen=True)
class Normalizer:
    """A text normaliser and its identity (recorded in results)."""

    name: str
    fn: Callable[[str], str]
    identity: dict[str, Any]

    def __call__(self, text: str) -> str:
        return " ".join(self.fn(text).split())


_PRIVATE = "_speechlm_eval_whisper_normalizers"


def _whisper_normalizers() -> tuple[ModuleType, Path]:
    """openai-whisper's ``whisper.normalizers`` package and its folder.

    ``import whisper.normalizers`` first runs ``whisper/__init__.py``, which imports torch,
    numba and tiktoken (about 10 s here) although the normalisers need only ``regex`` and
    ``more_itertools``. So, unless openai-whisper is already imported, the sub-package is
    loaded from its folder on its own (same files, same code; also works with
    ``pip install --no-deps openai-whisper more-itertools``).
    """
    if "whisper.normalizers" in sys.modules:
        mod = sys.modules["whisper.normalizers"]
        return mod, Path(mod.__file__).parent
    return load_standalone_normalizers()


def load_standalone_normalizers() -> tuple[ModuleType, Path]:
    """openai-whisper's ``normalizers`` folder loaded as a package of its own (see above)."""
    if _PRIVATE in sys.modules:
        mod = sys.modules[_PRIVATE]
        return mod, Path(mod.__file__).parent
    spec = importlib.util.find_spec("whisper")  # finds the package without running it
    locs = list(spec.submodule_search_locations or []) if spec else []
    folder = Path(locs[0]) / "normalizers" if locs else None
    if folder is None or not (folder / "english.py").is_file():
        raise ConfigError(
            "normalizer 'whisper_english' needs openai-whisper's text normaliser; install "
            "the judges extra (pip install 'speechlm-eval[judges]') or, without its heavy "
            "dependencies, pip install --no-deps openai-whisper more-itertools"
        )
    pspec = importlib.util.spec_from_file_location(
        _PRIVATE, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert pspec is not None and pspec.loader is not None
    mod = importlib.util.module_from_spec(pspec)
    sys.modules[_PRIVATE] = mod
    try:
        pspec.loader.exec_module(mod)
    except ImportError as e:
        del sys.modules[_PRIVATE]
        raise ConfigError(
            f"openai-whisper's text normaliser cannot be imported ({e}); it needs the "
            "packages 'regex' and 'more-itertools'"
        ) from None
    return mod, folder


@cache
def get_normalizer(name: str) -> Normalizer:
    """The normaliser called ``name``: ``whisper_english``, ``whisper_basic`` or ``none``."""
    if name == "none":
        return Normalizer(name, lambda s: s, {"name": "none", "what": "whitespace collapsed"})
    if name not in NORMALIZERS:
        raise ConfigError(
            f"scoring.options: 'normalizer' must be one of {', '.join(NORMALIZERS)}, got {name!r}"
        )
    mod, folder = _whisper_normalizers()
    cls = "EnglishTextNormalizer" if name == "whisper_english" else "BasicTextNormalizer"
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("openai-whisper")
    except PackageNotFoundError:
        ver = None
    files = {
        p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.suffix in (".py", ".json")
    }
    ident = {
        "name": name,
        "class": f"whisper.normalizers.{cls}",
        "package": "openai-whisper",
        "version": ver,
        "source_sha256": digest(files),
    }
    return Normalizer(name, getattr(mod, cls)(), ident)
