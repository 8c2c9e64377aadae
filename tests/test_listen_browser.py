"""A whole MOS study in a real browser (headless Debian Chromium driven by Playwright).

Two raters at once against ``slm-eval listen serve`` on 127.0.0.1: an attentive one (rates the
systems apart, answers the gold and trapping clips right, reloads midway and resumes) and one
who straight-lines (always 3: fails the gold clip). Then ``slm-eval listen analyze`` must
exclude the second for those reasons and give the first one's means. Skipped without chromium
or playwright, except under CI=true (a missing browser fails there).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_listen_server import running_server
from test_listen_study import make_runs, real_run  # noqa: F401 (a fixture)

from speechlm_eval.cli import main
from speechlm_eval.listen.study import create_study
from speechlm_eval.results import load_results

CHROMIUM = os.environ.get("SLM_EVAL_CHROMIUM", "/usr/bin/chromium")


def _browser_or_skip():
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the playwright package (pip install -e '.[test]')")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing.append(f"{CHROMIUM} (apt-get install chromium, or bash .ci/browser-deps)")
    if missing:
        msg = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{msg}; CI must run this test")
        pytest.skip(msg)
    return sync_playwright


def _play_all(page) -> None:
    """Play every sample of the trial to the end (at 16x speed, to keep the test short)."""
    n = page.locator("#players .player").count()
    page.evaluate(
        "() => document.querySelectorAll('#players audio')"
        ".forEach(a => { a.playbackRate = 16; a.play(); })"
    )
    page.wait_for_function(
        f"document.querySelectorAll('#players .player.played').length === {n}", timeout=20000
    )


def _attentive(trial: dict, items: list[str]) -> int:
    if trial["kind"] == "trap":
        return trial["expect"][0]
    if trial["kind"] == "gold":
        return 1
    bump = items.index(trial["item"]) % 2
    return (4 + bump) if trial["system"] == "alpha" else (2 - bump)


def test_two_raters_run_a_mos_study_and_the_analysis_screens_one(tmp_path):
    sync_playwright = _browser_or_skip()
    st = create_study(make_runs(tmp_path), "mos", tmp_path / "study", items=2, seed=7)
    trials = {t["id"]: t for t in st.trials}
    items = st.data["items"]
    n = len(st.trials)
    given: dict[str, list[tuple[dict, int]]] = {"good": [], "lazy": []}
    shots = tmp_path / "shots"
    with running_server(st.root) as port, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        try:
            pages = {}
            for r in given:
                # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's
                # CSP (rightly) forbids; the page itself never needs it.
                ctx = browser.new_context(viewport={"width": 900, "height": 720}, bypass_csp=True)
                pages[r] = ctx.new_page()
                pages[r].goto(f"http://127.0.0.1:{port}/r/{r}")
            load_ms = pages["good"].evaluate(
                "performance.getEntriesByType('navigation')[0].loadEventEnd"
            )
            print(f"page load (navigation loadEventEnd): {load_ms:.0f} ms")
            for step in range(n):
                for r, page in pages.items():  # the two raters take turns: both at once
                    if r == "good" and step == 3:
                        page.reload()  # midway: nothing lost, resumes at the next trial
                        assert page.locator("#progress-text").inner_text() == f"3 of {n} answered"
                    tid = page.locator("#trial").get_attribute("data-trial")
                    t = trials[tid]
                    assert page.locator("#next").is_disabled()  # nothing rated yet
                    assert page.locator('input[name="score"]').first.is_disabled()  # not played
                    _play_all(page)
                    v = _attentive(t, items) if r == "good" else 3
                    radio = page.locator(f'input[name="score"][value="{v}"]')
                    if r == "good" and step == 1:
                        radio.focus()  # keyboard only: select with Space, submit with Enter
                        page.keyboard.press("Space")
                        assert radio.is_checked()
                        if t["kind"] == "trap":
                            page.screenshot(path=str(shots / "trap.png"))
                        page.locator("#next").focus()
                        page.keyboard.press("Enter")
                    else:
                        radio.check()
                        if r == "good" and step == 2:
                            page.screenshot(path=str(shots / "trial.png"))
                        page.locator("#next").click()
                    page.wait_for_function(
                        f"document.getElementById('progress').value === {step + 1}"
                    )
                    given[r].append((t, v))
            for r, page in pages.items():
                assert page.locator("#done").is_visible()
                page.screenshot(path=str(shots / f"done-{r}.png"))
        finally:
            browser.close()
    if os.environ.get("SLM_EVAL_LISTEN_SCREENSHOT"):
        shutil.copy(shots / "trial.png", os.environ["SLM_EVAL_LISTEN_SCREENSHOT"])

    out = tmp_path / "results"
    assert main(["listen", "analyze", str(st.root), "--output_path", str(out)]) == 0
    analysis = json.loads((out / f"listen_{st.study_id}.json").read_text())
    trap = next(t for t in st.trials if t["kind"] == "trap")
    lazy = ["failed_gold", *(["failed_trap"] if trap["expect"][0] != 3 else []), "straight_lining"]
    assert analysis["raters"]["good"]["excluded"] == []
    assert sorted(analysis["raters"]["lazy"]["excluded"]) == sorted(lazy)
    assert analysis["exclusions"] == {k: 1 for k in lazy}
    assert analysis["n_raters"] == 2 and analysis["n_raters_kept"] == 1
    for system in ("alpha", "beta"):
        mine = [v for t, v in given["good"] if t["kind"] == "test" and t["system"] == system]
        assert analysis["systems"][system]["mean"] == pytest.approx(np.mean(mine))
        assert analysis["systems"][system]["n"] == len(mine)
        res = load_results(next((out / system).glob("results_*.json")))
        assert res["results"]["human_mos"]["mos,none"] == pytest.approx(np.mean(mine))
        assert res["configs"]["human_mos"]["human"] is True
        assert res["model_name"] == system


def _set_slider(page, stim: str, value: int) -> None:
    page.evaluate(
        '([s, v]) => { const r = document.querySelector(`input[data-stim="${s}"]`);'
        " r.value = v; r.dispatchEvent(new Event('input', {bubbles: true})); }",
        [stim, value],
    )


def test_mushra_of_a_real_run_in_the_static_page(real_run, tmp_path):  # noqa: F811
    """The reference model's own output (gslm-mini, written by the runner) in a MUSHRA study,
    run offline from the exported static page: an attentive rater and one who rates the hidden
    reference low (BS.1534 post-screening excludes them); answers come back as downloaded
    files; a reload midway resumes from the browser's storage."""
    sync_playwright = _browser_or_skip()
    st = create_study([real_run], "mushra", tmp_path / "study")
    assert main(["listen", "export", str(st.root), "--raters", "2"]) == 0
    html = st.root / "export" / "listen.html"
    text = html.read_text()
    assert "http://" not in text and "https://" not in text  # opens offline: nothing external
    want = {"gslm-mini": 60, "anchor35": 10, "anchor70": 40, "hidden_reference": 100}
    files = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        try:
            ctx = browser.new_context(
                viewport={"width": 980, "height": 760}, bypass_csp=True, accept_downloads=True
            )
            for rater in ("s01", "s02"):
                page = ctx.new_page()
                page.goto(html.as_uri() + f"#rater={rater}")
                for step in range(len(st.trials)):
                    if step == 1:
                        page.reload()
                        assert page.locator("#progress-text").inner_text() == "1 of 2 answered"
                    tid = page.locator("#trial").get_attribute("data-trial")
                    trial = st.trial(tid)
                    assert page.locator("#players .player").count() == len(trial["stimuli"]) + 1
                    _play_all(page)
                    assert page.locator("#next").is_disabled()  # no slider moved: no score
                    stims = page.locator("#players input[type=range]")
                    for k in range(stims.count()):
                        sid = stims.nth(k).get_attribute("data-stim")
                        system = st.stimuli[sid]["system"]
                        v = want[system] if rater == "s01" or system != "hidden_reference" else 50
                        if v == 100:  # by keyboard: End moves a range input to its maximum
                            stims.nth(k).focus()
                            page.keyboard.press("End")
                        else:
                            _set_slider(page, sid, v)
                    if rater == "s01" and step == 0:
                        page.screenshot(path=str(tmp_path / "mushra.png"), full_page=True)
                    page.locator("#next").click()
                    page.wait_for_function(
                        f"document.getElementById('progress').value === {step + 1}"
                    )
                with page.expect_download() as dl:
                    page.locator("#download").click()
                target = tmp_path / f"answers_{rater}.json"
                dl.value.save_as(str(target))
                files.append(str(target))
        finally:
            browser.close()
    if os.environ.get("SLM_EVAL_LISTEN_SCREENSHOT"):
        shutil.copy(tmp_path / "mushra.png", os.environ["SLM_EVAL_LISTEN_SCREENSHOT"])
    out = tmp_path / "results"
    assert main(["listen", "analyze", str(st.root), "-o", str(out), "--answers", *files]) == 0
    a = json.loads((out / f"listen_{st.study_id}.json").read_text())
    assert a["raters"]["s01"]["excluded"] == []
    assert a["raters"]["s02"]["excluded"] == ["mushra_hidden_reference"]
    for system, v in want.items():
        assert a["systems"][system]["mean"] == v and a["systems"][system]["n"] == 2
    res = load_results(next((out / "gslm-mini").glob("results_*.json")))
    assert res["results"]["human_mushra"]["mushra,none"] == 60
    assert res["datasets"]["human_mushra"]["source"] == "builtin"  # the run's dataset


@pytest.mark.parametrize("test", ["cmos", "smos", "ab"])
def test_pair_and_similarity_pages(tmp_path, test):
    """CMOS, SMOS and A/B pages: the controls each shows, answered by keyboard-free clicks
    from an attentive rater; the analysis keeps the rater and reads the answers back (for CMOS
    the sign-corrected scores equal the rater's opinion whatever order the page showed)."""
    sync_playwright = _browser_or_skip()
    st = create_study(make_runs(tmp_path), test, tmp_path / "study", items=2, seed=4)
    opinion = {"alpha": 1, "beta": -2}
    errors: list[str] = []
    with running_server(st.root) as port, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_context(bypass_csp=True).new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/r/solo")
            for step in range(len(st.trials)):
                t = st.trial(page.locator("#trial").get_attribute("data-trial"))
                shown = [
                    page.locator("#players .player").nth(k).get_attribute("data-stim")
                    for k in range(page.locator("#players .player").count())
                ]
                if t.get("reference"):
                    assert shown[0] == t["reference"]  # the reference clip beside the stimulus
                    shown = shown[1:]
                assert sorted(shown) == sorted(t["stimuli"])
                _play_all(page)
                if test == "ab":
                    v = t["expect"] if t["kind"] == "gold" else t["stimuli"][0]
                elif test == "smos":
                    v = (
                        t["expect"][0]
                        if t["kind"] != "test"
                        else (4 if t["system"] == "alpha" else 2)
                    )
                else:
                    gold = 0 if t["stimuli"][0] == t["stimuli"][1] else -3
                    v = opinion[t["system"]] if t["kind"] == "test" else gold
                    v = v if shown == t["stimuli"] else -v  # the page asks "second vs first"
                page.locator(f'input[name="score"][value="{v}"]').check()
                page.locator("#next").click()
                page.wait_for_function(f"document.getElementById('progress').value === {step + 1}")
            assert page.locator("#done").is_visible()
        finally:
            browser.close()
    assert errors == []
    out = tmp_path / "results"
    assert main(["listen", "analyze", str(st.root), "-o", str(out)]) == 0
    a = json.loads((out / f"listen_{st.study_id}.json").read_text())
    assert a["raters"]["solo"]["excluded"] == []
    if test == "cmos":
        assert {s: e["mean"] for s, e in a["systems"].items()} == opinion
    elif test == "ab":
        assert a["pairwise"][0]["wins_a"] == 2 and a["pairwise"][0]["wins_b"] == 0
    else:
        assert a["systems"]["alpha"]["mean"] == 4 and a["systems"]["beta"]["mean"] == 2
