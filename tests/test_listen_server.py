"""The listening-test server on 127.0.0.1: validation, traversal, atomic per-rater storage."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_listen_study import make_runs

from speechlm_eval.listen.study import create_study, rater_plan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(study_dir: Path, procs: list | None = None):
    """``slm-eval listen serve`` in a subprocess on a free port; yields the port (and appends
    the process to ``procs`` when given)."""
    port = free_port()
    cmd = [sys.executable, "-m", "speechlm_eval.cli", "listen", "serve", str(study_dir)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if procs is not None:
        procs.append(proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    raise RuntimeError(f"server did not start: {out}") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def request(
    port: int, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"
):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": ctype} if body is not None else {}
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("srv")
    st = create_study(make_runs(root), "mos", root / "study", items=2)
    with running_server(st.root) as port:
        yield st, port


def _good(st, rater: str, i: int = 0, value=4):
    t = rater_plan(st.data, rater)[i]
    return {"trial": t["id"], "value": value, "played": t["stimuli"], "elapsed_ms": 1200}


def test_binds_to_loopback_by_default():
    import argparse

    from speechlm_eval.listen.cli import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["serve", "x"]).host == "127.0.0.1"


def test_a_valid_answer_is_stored_and_resumed(served):
    st, port = served
    status, data = request(port, "POST", "/api/ann/answer", json.dumps(_good(st, "ann")).encode())
    assert status == 200, data
    saved = json.loads((st.root / "answers" / "ann.json").read_text())
    assert list(saved["answers"]) == [rater_plan(st.data, "ann")[0]["id"]]
    status, data = request(port, "GET", "/api/ann/state")
    assert json.loads(data)["answered"] == 1
    status, page = request(port, "GET", "/r/ann")
    assert status == 200 and b'"answers":{"t' in page  # the page resumes with the answer


@pytest.mark.parametrize(
    "change, status",
    [
        ({"trial": "t9999"}, 422),  # unknown trial
        ({"value": 6}, 422),  # out of range
        ({"value": 0}, 422),
        ({"value": True}, 422),  # a bool is not a rating
        ({"value": "5"}, 422),
        ({"played": []}, 422),  # not played before rating
        ({"played": ["s000000000000"]}, 422),  # unknown stimulus id
        ({"elapsed_ms": -1}, 422),
        ({"extra": 1}, 422),  # unknown field
    ],
)
def test_invalid_answers_are_rejected_and_not_stored(served, change, status):
    st, port = served
    body = _good(st, "bad") | change
    got, data = request(port, "POST", "/api/bad/answer", json.dumps(body).encode())
    assert got == status, data
    assert "error" in json.loads(data)
    assert not (st.root / "answers" / "bad.json").exists()


def test_malformed_and_oversized_bodies(served):
    st, port = served
    assert request(port, "POST", "/api/bad/answer", b"{not json")[0] == 400
    assert request(port, "POST", "/api/bad/answer", b"\xff\xfe")[0] == 400
    assert request(port, "POST", "/api/bad/answer", b"[]")[0] == 422
    assert request(port, "POST", "/api/bad/answer", b"{}", ctype="text/plain")[0] == 415
    big = json.dumps(_good(st, "bad") | {"pad": "x" * 40000}).encode()
    assert request(port, "POST", "/api/bad/answer", big)[0] == 413
    assert request(port, "POST", "/api/a%20b/answer", b"{}")[0] == 404  # bad rater id
    assert not (st.root / "answers" / "bad.json").exists()


@pytest.mark.parametrize(
    "path",
    [
        "/audio/../study.json",
        "/audio/..%2fstudy.json",
        "/audio/%2e%2e%2fstudy.json",
        "/audio/study.json",
        "/static/..%2f..%2fstudy.py",
        "/static/page.html.j2",
        "/audio/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/r/..%2f..%2fetc",
    ],
)
def test_only_the_study_files_are_served(served, path):
    _, port = served
    status, data = request(port, "GET", path)
    assert status == 404, (path, data[:200])


def test_registered_audio_is_served(served):
    st, port = served
    sid = next(iter(st.stimuli))
    status, data = request(port, "GET", f"/audio/{sid}")
    assert status == 200 and data[:4] == b"RIFF"
    assert data == (st.root / st.stimuli[sid]["file"]).read_bytes()


def test_two_raters_posting_concurrently_lose_nothing(served):
    st, port = served

    def answer_all(rater: str) -> list[int]:
        plan = rater_plan(st.data, rater)
        return [
            request(
                port,
                "POST",
                f"/api/{rater}/answer",
                json.dumps(
                    {"trial": t["id"], "value": 3 + (i % 2), "played": t["stimuli"]}
                ).encode(),
            )[0]
            for i, t in enumerate(plan)
        ]

    with ThreadPoolExecutor(8) as ex:
        # each rater's answers also race each other: two threads per rater
        futs = [ex.submit(answer_all, r) for r in ("c1", "c2", "c1", "c2")]
        codes = [c for f in futs for c in f.result()]
    assert set(codes) == {200}
    for r in ("c1", "c2"):
        saved = json.loads((st.root / "answers" / f"{r}.json").read_text())
        assert set(saved["answers"]) == {t["id"] for t in st.trials}
    assert not list((st.root / "answers").glob(".*.tmp"))  # no temporary file left behind


def test_acknowledged_answers_survive_a_killed_server(tmp_path):
    st = create_study(make_runs(tmp_path), "mos", tmp_path / "study", items=2)
    plan = rater_plan(st.data, "k")
    procs: list = []
    with running_server(st.root, procs) as port:
        for t in plan[:3]:
            body = {"trial": t["id"], "value": 2, "played": t["stimuli"]}
            assert request(port, "POST", "/api/k/answer", json.dumps(body).encode())[0] == 200
        procs[0].kill()  # SIGKILL, no clean shutdown: only what reached the disk counts
        procs[0].wait()
    saved = json.loads((st.root / "answers" / "k.json").read_text())
    assert set(saved["answers"]) == {t["id"] for t in plan[:3]}
    with running_server(st.root) as port:  # a restarted server resumes the rater
        state = json.loads(request(port, "GET", "/api/k/state")[1])
        assert state["answered"] == 3


def test_a_new_rater_gets_an_id_and_keeps_it(served):
    _, port = served
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    loc, cookie = r.getheader("Location"), r.getheader("Set-Cookie")
    assert r.status == 302 and loc.startswith("/r/r")
    rater = loc[len("/r/") :]
    assert f"slm_listen_rater={rater}" in cookie and "HttpOnly" in cookie
    c.request("GET", "/", headers={"Cookie": f"slm_listen_rater={rater}"})
    r = c.getresponse()
    r.read()
    assert r.getheader("Location") == loc  # the same rater after closing the tab
    c.close()
