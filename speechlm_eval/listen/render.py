"""The page's HTML: one Jinja2 template for the served page and the static export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .study import Study

PAGE_DIR = Path(__file__).parent / "page"


def render_page(study: Study, config: dict[str, Any], inline: bool) -> str:
    """The HTML page with ``config`` embedded (and, when ``inline``, the CSS and JS too)."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PAGE_DIR)), autoescape=True, keep_trailing_newline=True
    )
    # "<" escaped so no string in the config can close the <script> element.
    cfg = json.dumps(config, separators=(",", ":")).replace("<", "\\u003c")
    extra = {}
    if inline:
        extra = {
            # Our own files, inlined as they are (autoescaping would break the script).
            "css": Markup((PAGE_DIR / "style.css").read_text(encoding="utf-8")),
            "js": Markup((PAGE_DIR / "app.js").read_text(encoding="utf-8")),
        }
    return env.get_template("page.html.j2").render(
        title=study.test.upper(),
        config_json=Markup(cfg),
        inline=inline,
        **extra,
    )


def page_config(study: Study) -> dict[str, Any]:
    """What every page needs, whatever the mode: the test, its scale, the study id."""
    scale = dict(study.data["scale"])
    scale["labels"] = {str(k): v for k, v in scale["labels"].items()}
    return {"study_id": study.study_id, "test": study.test, "scale": scale}
