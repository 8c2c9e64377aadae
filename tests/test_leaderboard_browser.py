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
