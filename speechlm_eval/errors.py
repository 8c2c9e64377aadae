"""User-facing errors.

Every problem caused by the user's input (a file, a field, a flag) is raised as
:class:`SlmEvalError` with a message naming the culprit and what was expected.
The CLI prints such errors as one line and exits non-zero, without a traceback.
"""

from __future__ import annotations


class SlmEvalError(Exception):
    """An error caused by input the user can fix; its message says what and where."""

    def __str__(self) -> str:
        # Always one line: the CLI prints "slm-eval: error: <message>", and messages often
        # embed a library's multi-line text (YAML parser marks, torch.load's advice).
        text = super().__str__()
        return " ".join(part.strip() for part in text.splitlines() if part.strip())


class DataError(SlmEvalError):
    """A dataset file (audio, gold table, manifest, item file) is missing or malformed."""


class DataNotFoundError(DataError):
    """A task's data folder is in none of the places searched."""


class ConfigError(SlmEvalError):
    """A task/group YAML file, a flag or a model argument is invalid."""


class PluginError(SlmEvalError):
    """A plugin cannot be found or loaded."""
