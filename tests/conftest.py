import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


import pytest


@pytest.fixture
def env(tmp_path):
    """Subprocess environment with a fake model plugin registered through an entry point."""
    from cli_helpers import plugin_env

    return plugin_env(tmp_path)
