"""A self-contained static page of a study, for offline or crowd use.

One HTML file with the CSS, the script and every stimulus inlined (``data:`` URIs), and the
plans of ``raters`` rater slots (``s01``, ``s02``, ...) computed here exactly as the server would:
a rater opens ``listen.html#rater=s03``, answers are kept in the browser (a reload resumes), and
at the end the page downloads ``answers_<study>_<rater>.json``; drop those files into the study's
``answers/`` folder (or pass them to ``listen analyze --answers``) and analyse as usual.
"""

from __future__ import annotations

import base64
from pathlib import Path

from ..errors import ConfigError
from ..results import atomic_write_text
from .render import page_config, render_page
from .study import Study


def export_static(study: Study, out: Path | None = None, raters: int = 20) -> Path:
    """Write the static page (default ``<study>/export/listen.html``) and return its path."""
    if not 1 <= raters <= 999:
        raise ConfigError(f"--raters must be in 1..999, got {raters}")
    names = [f"s{i:02d}" for i in range(1, raters + 1)]
    plans = {r: study.plan(r) for r in names}
    audio = {}
    for sid, s in study.stimuli.items():
        data = (study.root / s["file"]).read_bytes()
        audio[sid] = "data:audio/wav;base64," + base64.b64encode(data).decode("ascii")
    cfg = page_config(study) | {"mode": "static", "rater": None, "plans": plans, "audio": audio}
    html = render_page(study, cfg, inline=True)
    path = out or study.root / "export" / "listen.html"
    atomic_write_text(path, html)
    return path
