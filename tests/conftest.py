import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


import pytest

# Every place the harness reads or writes outside a test's own folders, by environment variable.
# Tests must not see the user's built-in suite, request cache, data roots or model caches (the
# README's main job fills the user cache, and a test that finds it there passes or fails by
# accident), nor download anything.
_LOCATIONS = {"SLM_EVAL_BUILTIN": "builtin", "XDG_CACHE_HOME": "cache", "HF_HOME": "hf"}
_UNSET = ("SLM_EVAL_DATA",)
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _isolate(mp: pytest.MonkeyPatch, root: Path) -> None:
    for var, sub in _LOCATIONS.items():
        mp.setenv(var, str(root / sub))
    for var in _UNSET:
        mp.delenv(var, raising=False)
    for var, value in _OFFLINE.items():
        mp.setenv(var, value)


@pytest.fixture(scope="session", autouse=True)
def _hermetic_session(tmp_path_factory):
    """Session-scoped fixtures (built suites shared by several tests) see no user location."""
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp_path_factory.mktemp("user-locations"))
        yield


@pytest.fixture(autouse=True)
def _hermetic(tmp_path_factory, monkeypatch):
    """Each test starts with empty user locations of its own (cache, built-in suite)."""
    _isolate(monkeypatch, tmp_path_factory.mktemp("user"))


@pytest.fixture
def env(tmp_path):
    """Subprocess environment with a fake model plugin registered through an entry point."""
    from cli_helpers import plugin_env

    return plugin_env(tmp_path)
