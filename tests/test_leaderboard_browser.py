"""The leaderboard page in a real browser: headless Debian Chromium driven by Playwright.

Opens the generated page from a file:// URL (offline: nothing else is reachable), clicks a
column header, checks the row order against an order computed here from the results files,
checks the plots load from the files next to the page, and saves a screenshot to the test's
tmp dir. Without chromium or playwright the test is skipped, except under CI=true, where a
missing browser is a failure (.ci/browser-deps installs it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from test_leaderboard import REPORTED, acc, ours

from speechlm_eval.leaderboard import main

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


def test_page_sorts_by_clicked_column_and_shows_plots(tmp_path):
    sync_playwright = _browser_or_skip()
    tsc = {"alpha": (0.55, 0.05), "beta": (0.66, 0.02), "delta": (0.61, 0.03)}
    files = [
        ours(tmp_path / "res" / f"{m}.json", m, {"tsc": acc(v, se)}, primary={"tsc": "acc,nll_sum"})
        for m, (v, se) in tsc.items()
    ]
    files.append(ours(tmp_path / "res" / "gamma.json", "gamma", {"swuggy": acc(0.7, 0.01)}))
    files.append(
        ours(
            tmp_path / "res" / "alpha-sw.json",
            "alpha",
            {
                "swuggy": acc(0.54, 0.02)
                | {"acc_freq_oov,nll_sum": 0.45, "acc_freq_oov_stderr,nll_sum": 0.04}
                | {"acc_freq_>100,nll_sum": 0.6, "acc_freq_>100_stderr,nll_sum": 0.04}
            },
        )
    )
    out = tmp_path / "lb"
    main([str(f) for f in files], str(out), reported=REPORTED, params={"alpha": "3M"})
    page_file = out / "leaderboard.html"

    # Expected orders, computed from the results files: best first, rows without a number last
    # (gamma has no tSC; reported rows have tSC only on the official benchmark, another column).
    values = {}
    for f in files:
        d = json.loads(f.read_text())
        if "tsc" in d["results"]:
            values[d["model_name"]] = d["results"]["tsc"]["acc,nll_sum"]
    desc = sorted(values, key=lambda m: -values[m])
    asc = sorted(values, key=lambda m: values[m])

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(page_file.as_uri())
            table = page.locator("#table-likelihood")
            rows = table.locator("tbody tr")
            before = rows.evaluate_all("rs => rs.map(r => r.dataset.model)")
            header = table.locator('th[data-col="tsc@builtin-small"]')
            header.click()
            after = rows.evaluate_all("rs => rs.map(r => r.dataset.model)")
            assert after[: len(desc)] == desc
            assert sorted(after) == sorted(before)  # same rows, reordered
            assert header.get_attribute("aria-sort") == "descending"
            header.click()
            again = rows.evaluate_all("rs => rs.map(r => r.dataset.model)")
            assert again[: len(asc)] == asc  # reversed, rows without a number still last
            assert header.get_attribute("aria-sort") == "ascending"
            # Plots are files next to the page and load from file:// (no network).
            imgs = page.locator("figure img")
            assert imgs.count() >= 2
            widths = imgs.evaluate_all("is => is.map(i => i.complete ? i.naturalWidth : 0)")
            assert all(w > 0 for w in widths), widths
            shot = tmp_path / "leaderboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


# What a 1400 px wide window shows of a table after scrolling its container: the right edge of
# the last header cell, and whether the first column's cells are still the topmost element at
# their own centre (visible, not covered or scrolled away).
_SCROLLED_RIGHT = """
(wrap) => {
  wrap.scrollLeft = wrap.scrollWidth;
  const table = wrap.querySelector("table");
  const heads = table.tHead.rows[0].cells;
  const last = heads[heads.length - 1].getBoundingClientRect();
  const pinned = Array.from(table.querySelectorAll("tr")).map((tr) => {
    const cell = tr.cells[0];
    // Bring the row on screen by scrolling the page vertically only (never the container).
    const y = cell.getBoundingClientRect().top;
    window.scrollTo(0, window.scrollY + y - window.innerHeight / 2);
    const r = cell.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return {text: cell.textContent.trim(), left: r.left, shown: !!hit && cell.contains(hit)};
  });
  const atEnd = wrap.scrollLeft + wrap.clientWidth >= wrap.scrollWidth - 1;
  return {id: table.id, scroll: wrap.scrollLeft, atEnd: atEnd, lastRight: last.right,
          width: window.innerWidth, pinned: pinned};
}
"""


def test_wide_tables_keep_every_column_reachable_and_the_model_visible(tmp_path):
    """At 1400 px, the likelihood family (SALMon's 13 columns beside sWUGGY..tSC) is wider than
    the window: every table must scroll sideways inside its own container up to its last column
    while the Model column stays on screen, and the page itself must not overflow."""
    sync_playwright = _browser_or_skip()
    results = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
    if not results.is_dir():
        pytest.skip("no committed reference results in leaderboard/results")
    out = tmp_path / "lb"
    main([str(results)], str(out), plots=False)  # the packaged reported numbers, by default
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto((out / "leaderboard.html").as_uri())
            assert page.evaluate("document.documentElement.scrollWidth") <= 1400
            salmon = page.locator('th[data-col^="salmon_speaker_consistency@"]')
            assert salmon.count() >= 1
            wraps = page.locator("div.wrap:has(> table[id^='table-'])")
            seen = []
            for i in range(wraps.count()):
                r = wraps.nth(i).evaluate(_SCROLLED_RIGHT)
                seen.append(r["id"])
                assert r["atEnd"], r
                assert r["lastRight"] <= r["width"] + 1, r  # the last column is reachable
                hidden = [c["text"] for c in r["pinned"] if not c["shown"] or c["left"] < 0]
                assert not hidden, (r["id"], r["scroll"], hidden)
            assert "table-likelihood" in seen and len(seen) == wraps.count() >= 3
            # The SALMon header itself, after scrolling its table to the end, is on screen.
            box = salmon.first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1401, box
            shot = tmp_path / "leaderboard-1400-scrolled.png"
            salmon.first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generation_table_sorts_lower_first_and_shows_the_quality_diversity_plot(tmp_path):
    """The real run's Generation table: GenPPL (lower is better) sorts ascending on the first
    click; the Paralinguistic section is there; GSLM's PPX-VERT plot loads next to the page."""
    sync_playwright = _browser_or_skip()
    from test_leaderboard import GEN_FIXTURES

    other = ours(
        tmp_path / "res" / "other.json",
        "other",
        {"genppl": {"genppl,t=0.8": 4.2, "genppl_stderr,t=0.8": 0.3}},
        primary={"genppl": "genppl,t=0.8"},
        hib={"genppl": {"genppl": False}},
        size="tiny",
        data_hash="ef00855ee8b02a80b7a67f504d62650f7deb182cea5c83be6f9b8d6d8d701130",
    )
    out = tmp_path / "lb"
    main([str(GEN_FIXTURES), str(other)], str(out), reported=REPORTED)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto((out / "leaderboard.html").as_uri())
            assert page.locator("#family-paralinguistic").count() == 1
            table = page.locator("#table-generation")
            header = table.locator('th[data-col="genppl@builtin-tiny"]')
            assert header.get_attribute("data-first") == "ascending"
            header.click()
            order = table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.model)")
            assert order[:2] == ["other", "gslm-mini"]  # 4.2 < 5.34; reported rows (official) last
            img = page.locator(
                'figure img[src="plots/quality_diversity_continuation_gslm_builtin-tiny.svg"]'
            )
            assert img.count() == 1
            assert img.evaluate("i => i.complete ? i.naturalWidth : 0") > 0
        finally:
            browser.close()
