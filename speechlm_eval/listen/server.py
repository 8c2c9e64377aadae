"""The listening-test web app (aiohttp): the page, the study's audio, and the answers API.

Routes: ``/`` (a new rater gets an id, kept in a cookie, and is sent to ``/r/<id>``),
``/r/<id>`` (the page, with the rater's plan and the answers given so far, so a reload resumes),
``/static/app.js|style.css``, ``/audio/<stimulus id>`` (only the study's registered stimuli:
nothing else on disk can be named, so no path traversal), ``GET /api/<id>/state`` and
``POST /api/<id>/answer`` (validated, at most :data:`MAX_BODY` bytes; bad input gets a 4xx
JSON error and is never stored). Answers are written atomically, one file per rater, under a
per-rater lock, so two raters at once never interfere.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from functools import lru_cache
from typing import Any

from aiohttp import web

from .answers import AnswerError, answers_path, read_rater, validate_answer, write_rater
from .render import PAGE_DIR, page_config, render_page
from .study import RATER_ID, Study

STATIC = {"app.js": "application/javascript", "style.css": "text/css"}
MAX_BODY = 16 * 1024  # an answer is well under 1 kB; a MUSHRA trial with 12 sliders ~ 400 B
COOKIE = "slm_listen_rater"
# Same-origin only: the page uses no external resource (it must open offline).
CSP = "default-src 'self'; media-src 'self'; img-src 'self' data:; object-src 'none'"
STUDY_KEY: web.AppKey[Study] = web.AppKey("study", Study)


def _error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


def _rater(request: web.Request) -> str:
    rater = request.match_info["rater"]
    if not RATER_ID.match(rater):
        raise _error(web.HTTPNotFound, "unknown rater id")
    return rater


def make_app(study: Study) -> web.Application:
    """The aiohttp application serving ``study``."""
    app = web.Application(client_max_size=MAX_BODY)
    app[STUDY_KEY] = study
    locks: dict[str, asyncio.Lock] = {}

    @lru_cache(maxsize=4096)
    def plan_of(rater: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        plan = study.plan(rater)
        return plan, {t["id"]: t for t in plan}

    async def index(request: web.Request) -> web.StreamResponse:
        rater = request.cookies.get(COOKIE)
        if not rater or not RATER_ID.match(rater):
            rater = "r" + secrets.token_hex(6)
        resp = web.HTTPFound(f"/r/{rater}")
        resp.set_cookie(COOKIE, rater, max_age=30 * 24 * 3600, samesite="Strict", httponly=True)
        raise resp

    async def page(request: web.Request) -> web.Response:
        rater = _rater(request)
        rec = await asyncio.to_thread(read_rater, study, rater)
        plan, _ = plan_of(rater)
        cfg = page_config(study) | {
            "mode": "server",
            "rater": rater,
            "plan": plan,
            "answers": rec["answers"],
            "audio": {s: f"/audio/{s}" for t in plan for s in [*t["stimuli"], t["reference"]] if s},
            "api_base": "/api/",
        }
        html = render_page(study, cfg, inline=False)
        resp = web.Response(text=html, content_type="text/html")
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["Cache-Control"] = "no-store"
        resp.set_cookie(COOKIE, rater, max_age=30 * 24 * 3600, samesite="Strict", httponly=True)
        return resp

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise _error(web.HTTPNotFound, "no such file")
        return web.FileResponse(PAGE_DIR / name, headers={"Content-Type": STATIC[name]})

    async def audio(request: web.Request) -> web.StreamResponse:
        path = study.audio_path(request.match_info["stim"])  # a registered id, or None
        if path is None or not path.is_file():
            raise _error(web.HTTPNotFound, "no such stimulus")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})

    async def state(request: web.Request) -> web.Response:
        rater = _rater(request)
        rec = await asyncio.to_thread(read_rater, study, rater)
        plan, _ = plan_of(rater)
        return web.json_response(
            {"answered": len(rec["answers"]), "trials": len(plan), "answers": rec["answers"]}
        )

    async def answer(request: web.Request) -> web.Response:
        rater = _rater(request)
        if request.content_type != "application/json":
            raise _error(web.HTTPUnsupportedMediaType, "expected Content-Type: application/json")
        raw = await request.read()  # larger than MAX_BODY: aiohttp answers 413 itself
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _error(web.HTTPBadRequest, "the body is not JSON") from None
        _, by_id = plan_of(rater)
        try:
            record = validate_answer(study, by_id, body)
        except AnswerError as e:
            raise _error(web.HTTPUnprocessableEntity, str(e)) from None
        lock = locks.setdefault(rater, asyncio.Lock())
        async with lock:
            rec = await asyncio.to_thread(read_rater, study, rater)
            rec["answers"][record["trial"]] = record  # a changed mind replaces the answer
            await asyncio.to_thread(write_rater, study, rec)
        return web.json_response(
            {"ok": True, "record": record, "answered": len(rec["answers"]), "trials": len(by_id)}
        )

    app.router.add_get("/", index)
    app.router.add_get("/r/{rater}", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/audio/{stim}", audio)
    app.router.add_get("/api/{rater}/state", state)
    app.router.add_post("/api/{rater}/answer", answer)
    return app


def serve(study: Study, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app until interrupted (127.0.0.1 by default: reachable from this machine only)."""
    answers_path(study, "probe").parent.mkdir(parents=True, exist_ok=True)
    print(f"serving study {study.study_id} ({study.test}) on http://{host}:{port}/  (Ctrl-C stops)")
    web.run_app(make_app(study), host=host, port=port, print=None)
