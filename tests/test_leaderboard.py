"""Leaderboard: tables from hand-written results files, checked against hand-computed cells and
against an independent re-reading of the outputs (Markdown/HTML parsed back, CSV read back)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.leaderboard import (
    add_arguments,
    build_board,
    check_stale,
    generate,
    main,
    run_cli,
)
from speechlm_eval.leaderboard.plots import fingerprint_of
from speechlm_eval.leaderboard.render import read_csv

REPO = Path(__file__).resolve().parents[1]
# The one copy of the literature's numbers: package data, read by default.
REPORTED = REPO / "speechlm_eval" / "leaderboard" / "reported.yaml"


# --- fixtures: results files written by hand ------------------------------------------------


def ours(
    path: Path,
    model: str,
    tasks: dict[str, dict[str, float]],
    *,
    source: str = "builtin",
    size: str = "small",
    data_hash: str = "a" * 64,
    skipped: dict[str, str] | None = None,
    primary: dict[str, str] | None = None,
    hib: dict[str, dict[str, bool]] | None = None,
    date: float = 1_790_000_000.0,
    limit: float | None = None,
    identity: dict | None = None,
    scoring: dict[str, dict] | None = None,
) -> Path:
    """A results file in this harness's layout (README "Results files"); ``scoring`` adds
    fields to ``scoring.<task>`` (a generation task's ``tradeoff``, say)."""
    datasets = {}
    for t in tasks:
        ds: dict = {"reader": "x", "source": source}
        if source == "builtin":
            ds["builtin"] = {"subset": t, "size": size, "content_sha256": data_hash}
        else:
            ds["manifest_sha256"] = data_hash
        datasets[t] = ds
    data = {
        "results": {t: {"alias": t, **m} for t, m in tasks.items()},
        "skipped": skipped or {},
        "higher_is_better": hib
        or {t: {k.split(",")[0]: True for k in m if "_stderr," not in k} for t, m in tasks.items()},
        "datasets": datasets,
        "scoring": {
            t: {"primary_metric": (primary or {}).get(t, "acc,nll_sum")}
            | (scoring or {}).get(t, {})
            for t in tasks
        },
        "config": {
            "model": model,
            "model_args": {},
            "model_identity": identity or {"class": model},
            "limit": limit,
        },
        "model_name": model,
        "git_hash": "0123456789ab",
        "speechlm_eval_version": "0.1.0",
        "date": date,
        "start_time": "2026-01-01T00:00:00+00:00",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def acc(v: float, se: float, v_mean: float | None = None, se_mean: float | None = None) -> dict:
    m = {"acc,nll_sum": v, "acc_stderr,nll_sum": se}
    if v_mean is not None:
        m |= {"acc,nll_mean": v_mean, "acc_stderr,nll_mean": se_mean}
    return m


def three_models(root: Path) -> list[Path]:
    """alpha/beta/gamma on built-in swuggy + tSC; gamma lacks tSC (skipped), beta lacks swuggy."""
    return [
        ours(
            root / "beta" / "results_1.json",
            "beta",
            {"tsc": acc(0.61, 0.02, 0.66, 0.021)},
            skipped={"swuggy": "skipped (no data: task 'swuggy': data folder not found; /x/y)"},
            primary={"tsc": "acc,nll_mean"},
        ),
        ours(
            root / "alpha" / "results_1.json",
            "alpha",
            {
                "swuggy": acc(0.5425, 0.01952, 0.52, 0.0213)
                | {"acc_freq_oov,nll_sum": 0.45, "acc_freq_oov_stderr,nll_sum": 0.0439}
                | {"acc_freq_>100,nll_sum": 0.604, "acc_freq_>100_stderr,nll_sum": 0.0376},
                "tsc": acc(0.55, 0.05, 0.5, 0.05),
            },
            primary={"tsc": "acc,nll_mean"},
        ),
        ours(
            root / "gamma" / "results_1.json",
            "gamma",
            {"swuggy": acc(0.7, 0.01, 0.71, 0.01)},
            skipped={"tsc": "skipped (model lacks loglikelihood)"},
        ),
    ]


def md_table(md: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    """The first Markdown table whose header contains ``first_header`` (independent parser)."""
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| Model |") and first_header in line:
            head = [c.strip() for c in line.strip("|").split(" | ")]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split(" | ")])
            return head, rows
    raise AssertionError(f"no table with {first_header!r}")


def col_index(head: list[str], task_label: str, dataset: str) -> int:
    for i, h in enumerate(head):
        parts = h.split("<br>")
        if parts[0] == task_label and len(parts) > 1 and parts[1] == dataset:
            return i
    raise AssertionError(f"no column {task_label} / {dataset} in {head}")


# --- table content --------------------------------------------------------------------------


def test_markdown_cells_hand_computed(tmp_path):
    files = three_models(tmp_path / "res")
    out = tmp_path / "lb"
    main([str(f) for f in files], str(out), reported=False, plots=False)
    md = (out / "leaderboard.md").read_text()
    head, rows = md_table(md, "sWUGGY")
    by_model = {r[0]: r for r in rows}
    # Default order: measured rows by name.
    assert [r[0] for r in rows] == ["alpha", "beta", "gamma"]
    sw = col_index(head, "sWUGGY", "built-in (small)")
    ts = col_index(head, "tSC", "built-in (small)")
    # Hand-computed: 0.5425 -> 54.2 (one decimal, in %), stderr 0.01952 -> 2.0.
    assert by_model["alpha"][sw] == "54.2 ± 2.0"
    assert by_model["gamma"][sw] == "70.0 ± 1.0"
    # tSC's headline is the mean variant (primary_metric acc,nll_mean): 0.66 -> 66.0, 0.021 -> 2.1
    assert by_model["beta"][ts] == "66.0 ± 2.1"
    assert by_model["alpha"][ts] == "50.0 ± 5.0"
    # Skipped tasks say so with a short, machine-independent reason; nothing is blank there.
    assert by_model["beta"][sw] == "skipped (no data)"
    assert by_model["gamma"][ts] == "skipped (model lacks loglikelihood)"
    assert "/x/y" not in md
    # Column headers name the metric, its unit, the scoring and the direction.
    assert head[ts].endswith("acc (%) [mean] ↑") and head[sw].endswith("acc (%) [sum] ↑")


def test_error_rates_are_in_percent_as_the_caption_and_headers_say(tmp_path):
    """Results files record proportions (WER 0.848); the tables, whose caption and headers say
    %, show 84.8 — for WER, CER and ABX as for accuracies — while the CSV keeps 0.848."""
    wer = {"wer,none": 0.848, "wer_stderr,none": 0.051, "cer,none": 0.576}
    wer |= {"wer_delta,none": 0.25, "wer_delta_stderr,none": 0.0125}
    abx = {"abx_within,none": 0.0823, "abx_within_stderr,none": 0.004}
    gen = {"genppl,none": 93.74}
    f = ours(
        tmp_path / "r.json",
        "m",
        {"resynth_wer": wer, "abx_within": abx, "genppl": gen},
        primary={"resynth_wer": "wer,none", "abx_within": "abx_within,none", "genppl": "genppl"},
        hib={"resynth_wer": {"wer": False, "cer": False, "wer_delta": False}},
    )
    out = generate([str(f)], tmp_path / "lb", reported=False, plots=False)
    md = out["leaderboard.md"]
    assert "a metric marked (%) is in percent" in md and "WER, CER" in md
    head, rows = md_table(md, "resynth_wer")
    i = col_index(head, "resynth_wer", "built-in (small)")
    assert head[i].endswith("wer (%) ↓")
    assert rows[0][i] == "84.8 ± 5.1"
    head, rows = md_table(md, "abx_within")
    i = col_index(head, "abx_within", "built-in (small)")
    assert head[i].endswith("abx_within (%) ↓") and rows[0][i] == "8.2 ± 0.4"
    # Not a proportion: its own unit, no (%).
    head, rows = md_table(md, "genppl")
    i = col_index(head, "GenPPL", "built-in (small)")
    assert head[i].endswith("genppl ↓") and rows[0][i] == "93.74"
    # The HTML page says the same; its "every metric" details mark each metric's unit.
    page = out["leaderboard.html"]
    assert '<span class="metric">wer (%) ↓</span>' in page
    assert "<td>wer_delta (%)</td><td>none</td>" in page and ">25.0</td>" in page
    assert "<td>cer (%)</td><td>none</td>" in page and ">57.6</td>" in page
    # The CSV is for programs: the results files' proportions, exactly, and it says so.
    df = read_csv_text(out["leaderboard.csv"], tmp_path)
    assert df[df["metric"] == "wer"]["value"].tolist() == [0.848]
    assert df[df["metric"] == "abx_within"]["value"].tolist() == [0.0823]
    assert "proportions (0.848) where the tables show % (84.8)" in md


def test_reported_error_rates_in_percent_are_converted_like_accuracies(tmp_path):
    """A source printing WER 12.5 (scale: percent) means 0.125: same column, same unit."""
    rep = tmp_path / "rep.yaml"
    rep.write_text(
        "tasks: {resynth_wer: {metric: wer, higher_is_better: false}}\n"
        "sources: {s: {title: t, section: 'Table 2', scale: percent}}\n"
        "entries: [{model: P, source: s, scores: {resynth_wer: 12.5}}]\n"
    )
    f = ours(
        tmp_path / "r.json",
        "m",
        {"resynth_wer": {"wer,none": 0.848, "wer_stderr,none": 0.051}},
        source="official",
        primary={"resynth_wer": "wer,none"},
    )
    md = generate([str(f)], tmp_path / "lb", reported=rep, plots=False)["leaderboard.md"]
    head, rows = md_table(md, "resynth_wer")
    i = col_index(head, "resynth_wer", "official")
    assert {r[0]: r[i] for r in rows} == {"m": "84.8 ± 5.1", "P": "12.5"}


def test_missing_task_is_a_dash_and_rows_without_numbers_are_left_out(tmp_path):
    files = [
        ours(tmp_path / "a.json", "alpha", {"swuggy": acc(0.6, 0.01)}),
        ours(tmp_path / "b.json", "beta", {"tsc": acc(0.7, 0.01)}),
    ]
    md = generate([str(f) for f in files], tmp_path / "lb", reported=False, plots=False)
    head, rows = md_table(md["leaderboard.md"], "sWUGGY")
    by = {r[0]: r for r in rows}
    assert by["beta"][col_index(head, "sWUGGY", "built-in (small)")] == "—"
    assert by["alpha"][col_index(head, "tSC", "built-in (small)")] == "—"


def test_every_cell_matches_an_independent_reading_of_the_json(tmp_path):
    """Brute force: recompute each headline cell from the raw JSON with plain Python and compare
    with the Markdown table and with the HTML page's data-sort values."""
    files = three_models(tmp_path / "res")
    out = tmp_path / "lb"
    main([str(f) for f in files], str(out), reported=False, plots=False)
    head, rows = md_table((out / "leaderboard.md").read_text(), "sWUGGY")
    by = {r[0]: r for r in rows}
    page = _parse_html((out / "leaderboard.html").read_text())
    labels = {"swuggy": "sWUGGY", "tsc": "tSC"}
    checked = 0
    for f in files:
        d = json.loads(f.read_text())
        for task, res in d["results"].items():
            m, filt = d["scoring"][task]["primary_metric"].split(",")
            v, se = res[f"{m},{filt}"], res[f"{m}_stderr,{filt}"]
            want = f"{round(v * 100, 1):.1f} ± {round(se * 100, 1):.1f}"
            i = col_index(head, labels[task], "built-in (small)")
            assert by[d["model_name"]][i] == want
            assert float(page[(d["model_name"], f"{task}@builtin-small")]) == v
            checked += 1
    assert checked == 4


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cols: list[str | None] = []
        self.cells: dict[tuple[str, str], str] = {}
        self._row: str | None = None
        self._i = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "thead":
            self.cols = []
        elif tag == "th":
            self.cols.append(a.get("data-col"))
        elif tag == "tr":
            self._row, self._i = a.get("data-model"), 0
        elif tag == "td" and self._row is not None:
            col = self.cols[self._i] if self._i < len(self.cols) else None
            if col and a.get("data-sort"):
                self.cells[(self._row, col)] = a["data-sort"]
            self._i += 1


def _parse_html(text: str) -> dict[tuple[str, str], str]:
    p = _Cells()
    p.feed(text)
    return p.cells


def test_sort_by_a_column_best_first_and_lower_is_better(tmp_path):
    files = three_models(tmp_path / "res")
    b = build_board([str(f) for f in files], tmp_path, reported=False, sort_by="swuggy")
    # swuggy: gamma 0.70 > alpha 0.5425; beta has none -> last.
    assert [e.label for e in b.entries] == ["gamma", "alpha", "beta"]
    # A lower-is-better metric sorts ascending.
    low = [
        ours(
            tmp_path / f"w{i}.json",
            name,
            {"asr_wer": {"wer,none": w, "wer_stderr,none": 0.01}},
            primary={"asr_wer": "wer,none"},
            hib={"asr_wer": {"wer": False}},
        )
        for i, (name, w) in enumerate([("m1", 0.3), ("m2", 0.1), ("m3", 0.2)])
    ]
    b = build_board([str(f) for f in low], tmp_path, reported=False, sort_by="asr_wer")
    assert [e.label for e in b.entries] == ["m2", "m3", "m1"]
    assert b.columns[0].higher_is_better is False
    with pytest.raises(ConfigError, match="--sort_by nope: no such column"):
        build_board([str(f) for f in low], tmp_path, reported=False, sort_by="nope")


def test_builtin_and_official_never_share_a_column(tmp_path):
    files = [
        ours(tmp_path / "b.json", "m", {"sblimp": acc(0.56, 0.016)}, source="builtin"),
        ours(tmp_path / "o.json", "m", {"sblimp": acc(0.58, 0.01)}, source="official"),
        ours(tmp_path / "t.json", "m", {"sblimp": acc(0.60, 0.07)}, size="tiny"),
    ]
    b = build_board([str(f) for f in files], tmp_path, reported=REPORTED)
    cols = [c.key for c in b.columns if c.task == "sblimp"]
    assert cols == ["sblimp@official", "sblimp@builtin-small", "sblimp@builtin-tiny"]
    m = next(e for e in b.entries if e.label == "m")
    assert b.cells[(m.key, "sblimp@official")].score.value == 0.58
    assert b.cells[(m.key, "sblimp@builtin-small")].score.value == 0.56
    # Reported numbers (official benchmark) land only in the official column.
    for e in b.entries:
        if e.kind == "reported":
            assert (e.key, "sblimp@builtin-small") not in b.cells
    gslm = next(e for e in b.entries if e.label == "GSLM")
    assert b.cells[(gslm.key, "sblimp@official")].score.value == pytest.approx(0.542)


def test_same_builtin_subset_with_other_content_is_another_column(tmp_path):
    files = [
        ours(tmp_path / "a.json", "a", {"swuggy": acc(0.6, 0.01)}, data_hash="1" * 64),
        ours(tmp_path / "b.json", "b", {"swuggy": acc(0.7, 0.01)}, data_hash="2" * 64),
    ]
    b = build_board([str(f) for f in files], tmp_path, reported=False)
    assert sorted(c.key for c in b.columns) == [
        "swuggy@builtin-small@11111111",
        "swuggy@builtin-small@22222222",
    ]
    assert any("2 different data hashes" in n for n in b.notes)


def test_newer_results_file_wins_and_is_named(tmp_path):
    old = ours(tmp_path / "old.json", "m", {"swuggy": acc(0.5, 0.01)}, date=1.0)
    new = ours(tmp_path / "new.json", "m", {"swuggy": acc(0.6, 0.01)}, date=2.0)
    b = build_board([str(old), str(new)], tmp_path, reported=False)
    m = b.entries[0]
    assert b.cells[(m.key, "swuggy@builtin-small")].score.value == 0.6
    assert b.notes == ["`old.json`: swuggy superseded by the newer `new.json`."]
    # A file given twice (spelt two ways) is read once: no duplicate numbers.
    b = build_board([str(new), str(tmp_path / "." / "new.json")], tmp_path, reported=False)
    assert len([s for s in b.scores if s.metric == "acc"]) == 1


def test_two_models_with_one_name_are_two_rows(tmp_path):
    a = ours(tmp_path / "a.json", "hf-unit-lm", {"swuggy": acc(0.5, 0.01)}, identity={"w": 1})
    b = ours(tmp_path / "b.json", "hf-unit-lm", {"swuggy": acc(0.6, 0.01)}, identity={"w": 2})
    board = build_board([str(a), str(b)], tmp_path, reported=False)
    assert len(board.entries) == 2
    assert all(e.label.startswith("hf-unit-lm (") for e in board.entries)


def test_limit_and_other_scoring_are_tagged(tmp_path):
    files = [
        ours(tmp_path / "a.json", "a", {"tsc": acc(0.6, 0.01, 0.7, 0.01)}, limit=10),
        ours(tmp_path / "b.json", "b", {"tsc": acc(0.6, 0.01, 0.7, 0.01)}),
        ours(tmp_path / "c.json", "c", {"tsc": acc(0.6, 0.01, 0.7, 0.01)}),
    ]
    md = generate(
        [str(f) for f in files],
        tmp_path,
        reported=False,
        plots=False,
        metrics={},
    )["leaderboard.md"]
    head, rows = md_table(md, "tSC")
    by = {r[0]: r for r in rows}
    i = col_index(head, "tSC", "built-in (small)")
    assert by["a"][i] == "60.0 ± 1.0 [limit]" and by["b"][i] == "60.0 ± 1.0"
    assert "limit 10: not comparable" in md
    # The headline can be overridden; the other variant is then the column's scoring.
    b = build_board(
        [str(f) for f in files], tmp_path, reported=False, metrics={"tsc": "acc,nll_mean"}
    )
    assert b.columns[0].filter == "nll_mean"
    with pytest.raises(ConfigError, match="no such metric"):
        build_board([str(files[0])], tmp_path, reported=False, metrics={"tsc": "acc,nope"})


# --- CSV ------------------------------------------------------------------------------------


def test_csv_round_trip_holds_every_number_exactly(tmp_path):
    files = three_models(tmp_path / "res")
    out = tmp_path / "lb"
    main([str(f) for f in files], str(out), reported=False, plots=False)
    df = read_csv(out / "leaderboard.csv")
    ok = df[df["status"] == "ok"]
    want = {}
    for f in files:
        d = json.loads(f.read_text())
        for task, res in d["results"].items():
            for k, v in res.items():
                if "," in k and "_stderr," not in k:
                    m, filt = k.split(",")
                    want[(d["model_name"], task, m, filt)] = (v, res[f"{m}_stderr,{filt}"])
    got = {(r.model, r.task, r.metric, r.filter): (r.value, r.stderr) for r in ok.itertuples()}
    assert got == want  # exact float equality: the CSV keeps every digit
    skipped = df[df["status"] != "ok"]
    assert sorted(zip(skipped["model"], skipped["task"], skipped["status"], strict=True)) == [
        ("beta", "swuggy", "skipped (no data)"),
        ("gamma", "tsc", "skipped (model lacks loglikelihood)"),
    ]
    # Exactly one headline number per (model, task, dataset).
    heads = ok[ok["primary"]]
    assert len(heads) == len(heads.drop_duplicates(["model", "task", "dataset"])) == 4


# --- lm-evaluation-harness files from elsewhere ---------------------------------------------


def lm_eval_file(path: Path) -> Path:
    """The layout lm-evaluation-harness 0.4 writes (evaluator.py + EvaluationTracker)."""
    data = {
        "results": {
            "tsc": {
                "alias": "tsc",
                "acc,none": 0.625,
                "acc_stderr,none": 0.0125,
                "acc_norm,none": 0.6,
                "acc_norm_stderr,none": "N/A",
            },
            "swuggy": {"alias": " - swuggy", "acc,none": 0.75, "acc_stderr,none": 0.01},
        },
        "group_subtasks": {"tsc": [], "swuggy": []},
        "configs": {"tsc": {"task": "tsc", "metadata": {"version": 1.0}}},
        "versions": {"tsc": 1.0, "swuggy": 1.0},
        "n-shot": {"tsc": 0},
        "higher_is_better": {"tsc": {"acc": True, "acc_norm": True}, "swuggy": {"acc": True}},
        "n-samples": {"tsc": {"original": 1871, "effective": 1871}},
        "config": {
            "model": "hf",
            "model_args": "pretrained=org/speech-lm-1b,dtype=float32",
            "model_num_parameters": 1_300_000_000,
            "batch_size": "1",
            "limit": None,
        },
        "git_hash": "abc1234",
        "date": 1_700_000_000.0,
        "model_name": "org/speech-lm-1b",
        "model_name_sanitized": "org__speech-lm-1b",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def test_lm_eval_style_file(tmp_path):
    f = lm_eval_file(tmp_path / "org__speech-lm-1b" / "results_2024-01-01T00-00-00.json")
    b = build_board([str(tmp_path)], tmp_path, reported=False)  # a folder is searched
    (e,) = b.entries
    assert e.label == "org/speech-lm-1b" and e.params == 1.3e9
    # No dataset source recorded: its own column, never merged with built-in or official ones.
    assert [c.key for c in b.columns] == ["swuggy@unspecified", "tsc@unspecified"]
    cell = b.cells[(e.key, "tsc@unspecified")]
    assert (cell.score.metric, cell.score.value, cell.score.stderr) == ("acc", 0.625, 0.0125)
    norm = next(s for s in b.scores if s.metric == "acc_norm")
    assert norm.stderr is None and not norm.primary  # "N/A" stderr read as missing
    # Declared official: merges with the reported numbers on the official benchmark.
    b = build_board([str(f)], tmp_path, reported=REPORTED, assume_source="official")
    assert {c.key for c in b.columns if c.task == "tsc"} == {"tsc@official"}
    md = generate([str(f)], tmp_path, reported=False, plots=False)["leaderboard.md"]
    head, rows = md_table(md, "tSC")
    assert rows[0][col_index(head, "tSC", "source not recorded")] == "62.5 ± 1.2"
    assert rows[0][2] == "1.3B"


def test_real_lm_eval_output_when_installed(tmp_path):
    """Cross-check with a results file written by lm-evaluation-harness itself (optional)."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.loggers import EvaluationTracker

    results = {
        "results": {"tsc": {"alias": "tsc", "acc,none": 0.5, "acc_stderr,none": 0.1}},
        "higher_is_better": {"tsc": {"acc": True}},
        "config": {"model": "dummy", "model_args": "pretrained=x/y"},
        "date": 1.0,
    }
    tracker = EvaluationTracker(output_path=str(tmp_path / "out"))
    tracker.general_config_tracker.log_experiment_args(
        model_source="hf",
        model_args="pretrained=x/y",
        system_instruction=None,
        chat_template=None,
        fewshot_as_multiturn=False,
    )
    tracker.save_results_aggregated(results=results, samples=None)
    (f,) = (tmp_path / "out").rglob("results_*.json")
    b = build_board([str(f)], tmp_path, reported=False)
    (e,) = b.entries
    assert e.label == "x/y", lm_eval.__name__
    assert b.cells[(e.key, "tsc@unspecified")].score.value == 0.5


# --- reported numbers -----------------------------------------------------------------------


def test_reported_rows_are_marked_and_sourced(tmp_path):
    f = ours(
        tmp_path / "r.json", "gslm-mini", {"tsc": acc(0.5, 0.05, 0.5, 0.05)}, source="official"
    )
    files = generate([str(f)], tmp_path, reported=REPORTED, plots=False)
    md = files["leaderboard.md"]
    head, rows = md_table(md, "tSC")
    i = col_index(head, "tSC", "official")
    twist = [r for r in rows if r[0] == "TWIST-1.3B"]
    # The two sources disagree: both are shown, each with its own source and scoring tag.
    assert sorted(r[i] for r in twist) == ["61.3 [n.s.]", "70.6 [n.s.]"]
    assert {re.search(r"\[(S\d)\]", r[1]).group(1) for r in twist} == {"S1", "S3"}
    assert all(r[1].startswith("*reported*") for r in twist)
    slam = next(r for r in rows if r[0] == "Slam")
    assert slam[i] == "82.0 [mean]"  # the column's scoring is the measured row's (sum)
    assert "slp-rl/slamkit `docs/SLAM.md` @ 0ccce5ac38ba" in md
    assert "slp-rl/SpokenStoryCloze `README.md`" in md
    df = read_csv_text(files["leaderboard.csv"], tmp_path)
    rep = df[(df["kind"] == "reported") & (df["task"] == "tsc")]
    assert set(rep["origin"]) == {"slam_md", "slam_md_own", "storycloze_readme"}
    assert set(df[df["kind"] == "measured"]["origin"]) == {"r.json"}


def test_reported_numbers_ship_with_the_package_and_are_the_default(tmp_path, capsys):
    """With no --reported, a leaderboard built anywhere (not a checkout's leaderboard/) shows
    the literature's rows from the packaged file; --reported FILE replaces it, --no_reported
    drops it. There is one copy of the file: the package's."""
    assert REPORTED.is_file()
    assert not (REPO / "leaderboard" / "reported.yaml").exists(), "a second copy would drift"
    f = ours(tmp_path / "res" / "results_1.json", "m", {"tsc": acc(0.5, 0.05)}, source="official")
    out = tmp_path / "elsewhere"
    main([str(f)], str(out), plots=False)
    md = (out / "leaderboard.md").read_text()
    head, rows = md_table(md, "tSC")
    i = col_index(head, "tSC", "official")
    by = {(r[0], r[1]): r[i] for r in rows}
    assert by[("TWIST-1.3B", "*reported* [S1]")] == "70.6 [n.s.]"
    assert "slp-rl/slamkit `docs/SLAM.md` @ 0ccce5ac38ba" in md
    # The CLI: default, another file, none.
    p = argparse.ArgumentParser()
    add_arguments(p)
    base = [str(f), "--out", str(out), "--no_plots"]
    assert run_cli(p.parse_args(base)) == 0
    assert (out / "leaderboard.md").read_text() == md
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "sources: {s: {title: My table, section: 'Table 1', scale: percent}}\n"
        "entries: [{model: Mine, source: s, scores: {tsc: 60.0}}]\n"
    )
    assert run_cli(p.parse_args([*base, "--reported", str(mine)])) == 0
    rows = md_table((out / "leaderboard.md").read_text(), "tSC")[1]
    assert [r[0] for r in rows] == ["m", "Mine"]
    assert run_cli(p.parse_args([*base, "--no_reported"])) == 0
    rows = md_table((out / "leaderboard.md").read_text(), "tSC")[1]
    assert [r[0] for r in rows] == ["m"]
    with pytest.raises(ConfigError, match="--reported .*nope.yaml: file not found"):
        run_cli(p.parse_args([*base, "--reported", str(tmp_path / "nope.yaml")]))
    capsys.readouterr()


def test_measured_model_facts_come_from_the_reported_file(tmp_path):
    f = ours(tmp_path / "g.json", "gslm-mini", {"tsc": acc(0.5, 0.05)})
    b = build_board([str(f)], tmp_path, reported=REPORTED)
    e = next(e for e in b.entries if e.label == "gslm-mini")
    assert e.params == 3.45e6 and "unit LM" in e.note
    b = build_board([str(f)], tmp_path, reported=REPORTED, params={"gslm-mini": "4M"})
    assert next(e for e in b.entries if e.label == "gslm-mini").params == 4e6


def read_csv_text(text: str, tmp_path: Path):
    p = tmp_path / "x.csv"
    p.write_text(text)
    return read_csv(p)


def test_reported_file_is_complete_and_sourced(tmp_path):
    """Every source names repository, file, commit and table; every number has a source."""
    import yaml

    data = yaml.safe_load(REPORTED.read_text())
    for sid, s in data["sources"].items():
        for k in ("title", "repo", "path", "commit", "url", "section", "scale"):
            assert s.get(k), f"source {sid} lacks {k}"
        assert re.fullmatch(r"[0-9a-f]{40}", s["commit"]), sid
    b = build_board([str(lm_eval_file(tmp_path / "results_x.json"))], tmp_path, reported=REPORTED)
    reported = [s for s in b.scores if s.entry.startswith("reported:")]
    n_numbers = sum(
        len(v) if isinstance(v, dict) else 1 for e in data["entries"] for v in e["scores"].values()
    )
    assert len(reported) == n_numbers
    assert all(s.origin in data["sources"] for s in reported)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("sources: {}\nentries: []\n", "'sources' must be a non-empty mapping"),
        (
            "sources: {s: {title: t, section: x, scale: percent}}\n"
            "entries: [{model: m, source: nope, scores: {tsc: 1}}]\n",
            "source 'nope' is not defined",
        ),
        (
            "sources: {s: {title: t, section: x, scale: percent, colour: red}}\nentries: []\n",
            "unknown key",
        ),
        (
            "sources: {s: {title: t, section: x, scale: percent}}\n"
            "entries: [{model: m, source: s, scores: {tsc: high}}]\n",
            "scores.tsc.acc must be a number",
        ),
    ],
)
def test_bad_reported_file_is_one_clear_error(tmp_path, text, match):
    p = tmp_path / "rep.yaml"
    p.write_text(text)
    f = ours(tmp_path / "a.json", "a", {"tsc": acc(0.5, 0.1)})
    with pytest.raises(ConfigError, match=match) as e:
        build_board([str(f)], tmp_path, reported=p)
    assert str(p) in str(e.value)


# --- bad input ------------------------------------------------------------------------------


def test_bad_results_files_are_one_clear_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"broken\.json: not a readable JSON results file"):
        build_board([str(bad)], tmp_path, reported=False)
    nores = tmp_path / "nores.json"
    nores.write_text(json.dumps({"config": {"model": "m"}}))
    with pytest.raises(DataError, match=r"nores\.json: not a results file \(no 'results'"):
        build_board([str(nores)], tmp_path, reported=False)
    text = tmp_path / "text.json"
    ours(text, "m", {"tsc": {"acc,nll_sum": "high"}})
    with pytest.raises(DataError, match=r"text\.json: results\.tsc\.acc,nll_sum must be a number"):
        build_board([str(text)], tmp_path, reported=False)
    noname = tmp_path / "noname.json"
    noname.write_text(json.dumps({"results": {"tsc": {"acc,none": 0.5}}}))
    with pytest.raises(DataError, match=r"noname\.json: no model name"):
        build_board([str(noname)], tmp_path, reported=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no results_"):
        build_board([str(tmp_path / "empty")], tmp_path, reported=False)
    with pytest.raises(DataError, match=r"missing\.json: results file not found"):
        build_board([str(tmp_path / "missing.json")], tmp_path, reported=False)


# --- stale check, determinism, plots --------------------------------------------------------


def test_stale_check_detects_a_changed_input(tmp_path):
    files = three_models(tmp_path / "res")
    out = tmp_path / "lb"
    written = main([str(f) for f in files], str(out), reported=False)
    names = sorted(str(p.relative_to(out)) for p in written)
    assert "plots/subgroups_swuggy_builtin-small.svg" in names
    assert check_stale([str(f) for f in files], str(out), reported=False) == []
    # A changed subgroup number: the CSV, the HTML details and the plot that shows it.
    d = json.loads(files[1].read_text())
    d["results"]["swuggy"]["acc_freq_oov,nll_sum"] = 0.5
    files[1].write_text(json.dumps(d))
    stale = check_stale([str(f) for f in files], str(out), reported=False)
    assert stale == [
        "leaderboard.csv",
        "leaderboard.html",
        "plots/subgroups_swuggy_builtin-small.svg",
    ]
    # A changed headline number: every table.
    d["results"]["swuggy"]["acc,nll_sum"] = 0.5
    files[1].write_text(json.dumps(d))
    stale = check_stale([str(f) for f in files], str(out), reported=False)
    assert stale[:3] == ["leaderboard.csv", "leaderboard.html", "leaderboard.md"]
    main([str(f) for f in files], str(out), reported=False)
    main([str(f) for f in files], str(out), reported=False)
    assert check_stale([str(f) for f in files], str(out), reported=False) == []
    # A plot drawn differently from the same data (another matplotlib) is not stale ...
    svg = out / "plots" / "subgroups_swuggy_builtin-small.svg"
    svg.write_text(svg.read_text().replace("<svg ", "<svg data-x='1' ", 1))
    assert check_stale([str(f) for f in files], str(out), reported=False) == []
    # ... but a missing plot is, and so is one the data no longer supports.
    svg.unlink()
    (out / "plots" / "old.svg").write_text("<svg><desc>data-sha256:" + "0" * 64 + "</desc></svg>")
    assert check_stale([str(f) for f in files], str(out), reported=False) == [
        "plots/old.svg",
        "plots/subgroups_swuggy_builtin-small.svg",
    ]
    main([str(f) for f in files], str(out), reported=False)  # removes old.svg (ours)
    assert not (out / "plots" / "old.svg").exists()


def test_cli_check_exit_codes(tmp_path, capsys):
    files = three_models(tmp_path / "res")
    out = tmp_path / "lb"
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = [*map(str, files), "--out", str(out), "--no_reported", "--no_plots"]
    assert run_cli(p.parse_args(args)) == 0
    assert run_cli(p.parse_args([*args, "--check"])) == 0
    (out / "leaderboard.md").write_text("edited by hand\n")
    assert run_cli(p.parse_args([*args, "--check"])) == 1
    assert f"stale: {out / 'leaderboard.md'}" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="--params: expected KEY=VALUE"):
        run_cli(p.parse_args([*args, "--params", "oops"]))


_DIGEST = """
import hashlib, json, sys
from speechlm_eval.leaderboard import generate
files = generate(sys.argv[2:], sys.argv[1], reported=sys.argv[1] + "/reported.yaml")
print(json.dumps({k: hashlib.sha256(v.encode()).hexdigest() for k, v in files.items()}))
"""


def test_outputs_are_byte_identical_across_processes(tmp_path):
    files = three_models(tmp_path / "res")
    out = tmp_path / "lb"
    out.mkdir()
    # A small reported file (rows with sizes -> a size plot) keeps the two processes quick.
    (out / "reported.yaml").write_text(
        "models: {alpha: {params: 2M}}\n"
        "sources: {s: {title: t, section: 'Table 1', scale: percent, scoring: nll_mean}}\n"
        "entries:\n"
        "  - {model: P, source: s, params: 1B, scores: {swuggy: 61.5, tsc: 70.1}}\n"
        "  - {model: Q, source: s, params: 7B, scores: {swuggy: 66.0, tsc: 75.3}}\n"
    )
    digests = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run(
            [sys.executable, "-c", _DIGEST, str(out), *map(str, files)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        digests.append(json.loads(r.stdout))
    assert digests[0] == digests[1]
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.html"} <= set(digests[0])
    assert any(k.endswith(".svg") for k in digests[0])


def test_plots_are_reproducible_and_fingerprinted(tmp_path):
    files = three_models(tmp_path / "res")
    # Sizes for the size plot; a PPX-VERT sweep over temperatures for GSLM's curve.
    files.append(
        gen_results(
            tmp_path / "gen.json", "alpha", [(0.5, 40.0, 0.4), (0.8, 60.0, 0.2), (1.1, 120.0, 0.1)]
        )
    )
    out = generate(
        [str(f) for f in files],
        tmp_path,
        reported=REPORTED,
        params={"alpha": "3.2M", "gamma": "1e6"},
    )
    assert sorted(k for k in out if k.endswith(".svg")) == [
        "plots/quality_diversity_continuation_gslm_builtin-tiny.svg",
        "plots/score_vs_size.svg",
        "plots/subgroups_swuggy_builtin-small.svg",
    ]
    for name, svg in ((k, v) for k, v in out.items() if k.endswith(".svg")):
        assert "<dc:date>" not in svg, name
        assert fingerprint_of(svg.encode()) is not None, name
    # The data hash covers the numbers drawn: another value -> another fingerprint.
    fp = fingerprint_of(out["plots/score_vs_size.svg"].encode())
    out2 = generate(
        [str(f) for f in files],
        tmp_path,
        reported=REPORTED,
        params={"alpha": "3.3M", "gamma": "1e6"},
    )
    assert fingerprint_of(out2["plots/score_vs_size.svg"].encode()) != fp
    assert out["leaderboard.md"].count("](plots/") == 3
    assert 'src="plots/score_vs_size.svg"' in out["leaderboard.html"]
    # The HTML page needs nothing from the network.
    assert not re.search(r"(src|href)=\"(https?:)?//[^\"]*\.(js|css)", out["leaderboard.html"])


def _readme_section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end != -1 else len(text)]


def test_readme_leaderboard_example_writes_outside_the_committed_tables():
    """Run in a checkout, the README's example must not overwrite leaderboard/ (generated from
    leaderboard/results and checked by CI); only the --check line may name it."""
    section = _readme_section(
        (REPO / "README.md").read_text(encoding="utf-8"), "## Leaderboard (`slm-eval leaderboard`)"
    )
    commands = re.findall(r"slm-eval leaderboard [^`\n]*(?:\\\n[^`\n]*)*", section)
    writing = [c for c in commands if "--check" not in c]
    assert writing, section
    for c in writing:
        m = re.search(r"--out\s+(\S+)", c)
        assert m, c
        assert Path(m.group(1)).parts != ("leaderboard",), f"example overwrites leaderboard/: {c}"
    # The section says where the literature's numbers come from, and the units.
    assert "ship with the package" in section and "--no_reported" in section
    assert "WER" in section and "%" in section and "leaderboard.csv" in section


def test_committed_leaderboard_is_fresh():
    """leaderboard/ holds the tables generated from leaderboard/results (CI's stale check)."""
    results = REPO / "leaderboard" / "results"
    if not results.is_dir():
        pytest.skip("no committed reference results in leaderboard/results")
    stale = check_stale([str(results)], str(REPO / "leaderboard"))
    assert stale == [], f"regenerate: slm-eval leaderboard {results} --out leaderboard/"


# --- generation and paralinguistic tasks ------------------------------------------------------

# Trimmed copies of a real gslm-mini run (continuation_gslm, genppl, continuation_quality; and a
# prosody_pgslm run with --limit 2) on the built-in tiny data: results and scoring unchanged.
GEN_FIXTURES = Path(__file__).resolve().parent / "leaderboard_fixtures" / "gslm-mini"


def gen_results(
    path: Path,
    model: str,
    points: list[tuple[float, float, float]],
    *,
    oracle: tuple[float, float] = (50.0, 0.3),
    task: str = "continuation_gslm",
    auc: float = 1.5,
) -> Path:
    """A continuation task's results file as the continuation scorer writes it: PPX and VERT
    per temperature (filter ``t=<T>``), the oracle, the area (filter ``none``, the headline) and
    the curve points under ``scoring.<task>.tradeoff.points``."""
    m: dict[str, float] = {}
    for t, ppx, vert in points:
        m |= {f"ppx_mean,t={t:g}": ppx, f"vert,t={t:g}": vert}
    m |= {"ppx_mean,oracle": oracle[0], "vert,oracle": oracle[1], "auc_ppx_vert,none": auc}
    return ours(
        path,
        model,
        {task: m},
        primary={task: "auc_ppx_vert,none"},
        hib={task: {"ppx_mean": False, "vert": False, "auc_ppx_vert": False}},
        size="tiny",
        data_hash="ef00855ee8b02a80b7a67f504d62650f7deb182cea5c83be6f9b8d6d8d701130",
        scoring={
            task: {
                "tradeoff": {
                    "points": [{"temperature": t, "ppx": p, "vert": v} for t, p, v in points]
                }
            }
        },
    )


def _fixture(task: str) -> dict:
    for f in sorted(GEN_FIXTURES.glob("results_*.json")):
        d = json.loads(f.read_text())
        if task in d["results"]:
            return d
    raise AssertionError(task)


def _own_unit(x: float) -> str:
    """A number in its own unit as the tables print it: 3 significant-ish decimals below 1,
    2 from 1, 1 from 100 (5.34, 0.293, 137.3)."""
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"


def test_generation_and_paralinguistic_tables_from_real_results(tmp_path):
    """The real run's tasks land in the Generation and Paralinguistic tables, each cell the
    file's primary_metric (read here from the JSON), with the file's direction and the unit
    in the header; slamkit's reported GenPPL / Auto-BLEU sit in the same table, Auto-BLEU in
    % as SLAM.md prints it, and the Notes name the judges and why the two do not compare."""
    board = build_board([str(GEN_FIXTURES)], tmp_path / "lb", reported=REPORTED)
    fam = {c.task: c.family for c in board.columns}
    assert fam["genppl"] == fam["continuation_gslm"] == fam["continuation_quality"]
    assert fam["genppl"] == "generation" and fam["prosody_pgslm"] == "paralinguistic"
    assert board.families().index("generation") + 1 == board.families().index("paralinguistic")

    out = generate([str(GEN_FIXTURES)], tmp_path / "lb", reported=REPORTED, plots=False)
    md = out["leaderboard.md"]
    assert "## Generation" in md and "## Paralinguistic" in md
    expected = {  # task: (column label, headline "metric,filter")
        "genppl": ("GenPPL", "genppl,t=0.8"),
        "continuation_gslm": ("GSLM continuation", "auc_ppx_vert,none"),
        "continuation_quality": ("Continuation quality", "mos_ovrl,t=0.7"),
        "prosody_pgslm": ("pGSLM prosody", "f0_min_mae_audio,t=0.7"),
    }
    page = _parse_html(out["leaderboard.html"])
    for task, (label, primary) in expected.items():
        d = _fixture(task)
        assert d["scoring"][task].get("primary_metric", primary) == primary
        metric, filt = primary.split(",")
        res = d["results"][task]
        hib = d["higher_is_better"][task][metric]
        head, rows = md_table(md, label)
        i = col_index(head, label, "built-in (tiny)")
        arrow = "↑" if hib else "↓"
        shown_filter = "" if filt == "none" else f" [{filt}]"
        assert head[i].endswith(f"{metric}{shown_filter} {arrow}"), head[i]
        row = next(r for r in rows if r[0] == "gslm-mini")
        want = _own_unit(res[primary])  # none of these is a proportion: no (%) in the header
        assert "(%)" not in head[i]
        se = res.get(f"{metric}_stderr,{filt}")
        if isinstance(se, float):
            want += f" ± {_own_unit(se)}"
        if d["config"]["limit"] is not None:
            want += " [limit]"
        assert row[i] == want, (task, row[i], want)
        assert float(page[("gslm-mini", f"{task}@builtin-tiny")]) == res[primary]
    # Directions, not guessed: the file says mos higher, GenPPL / AUC / F0 MAE lower.
    cols = {c.key: c for c in board.columns}
    assert cols["continuation_quality@builtin-tiny"].higher_is_better is True
    assert cols["continuation_quality@builtin-tiny#speaker_similarity"].higher_is_better is True
    for key in (
        "genppl@builtin-tiny",
        "continuation_gslm@builtin-tiny",
        "prosody_pgslm@builtin-tiny",
    ):
        assert cols[key].higher_is_better is False, key
    assert cols["genppl@builtin-tiny#auto_bleu_slamkit"].higher_is_better is False

    # Auto-BLEU beside GenPPL, at the headline's temperature, in % (the file: 0.0).
    head, rows = md_table(md, "GenPPL")
    gslm = next(r for r in rows if r[0] == "gslm-mini")
    i = col_index(head, "Auto-BLEU", "built-in (tiny)")
    assert head[i].endswith("auto_bleu_slamkit (%) [t=0.8] ↓")
    res = _fixture("genppl")["results"]["genppl"]
    v, se = res["auto_bleu_slamkit,t=0.8"], res["auto_bleu_slamkit_stderr,t=0.8"]
    assert gslm[i] == f"{v * 100:.2f} ± {se * 100:.2f}" == "0.00 ± 0.00"
    # slamkit's rows: official data (another column), numbers exactly as SLAM.md prints them.
    i_ppl, i_bleu = col_index(head, "GenPPL", "official"), col_index(head, "Auto-BLEU", "official")
    assert head[i_bleu].endswith("auto_bleu_slamkit (%) ↓")
    by = {r[0]: r for r in rows}
    assert (by["TWIST-350M"][i_ppl], by["TWIST-350M"][i_bleu]) == ("137.3", "3.46")
    assert (by["Slam"][i_ppl], by["Slam"][i_bleu]) == ("62.80", "3.88")
    assert (
        gslm[i_ppl] == gslm[i_bleu] == "—"
        and by["Slam"][col_index(head, "GenPPL", "built-in (tiny)")] == "—"
    )
    # The CSV keeps the results files' units: slamkit's 3.88 is the fraction 0.0388.
    df = read_csv_text(out["leaderboard.csv"], tmp_path)
    row = df[(df["model"] == "Slam") & (df["metric"] == "auto_bleu_slamkit")]
    assert row["value"].tolist() == [0.0388] and row["task"].tolist() == ["genppl"]
    # The comparison carries its note: our judges, slamkit's, and that they differ.
    notes = md[md.index("## Notes") :]
    assert "GenPPL (genppl): measured rows gslm-mini judged by asr: whisper-tiny.en" in notes
    assert "speechlm-eval-ngram" in notes and "Llama-3.2-1B" in notes
    assert "not comparable" in notes
    # Every metric (other temperatures, the oracle) is in the HTML details.
    assert "GSLM continuation — every metric" in out["leaderboard.html"]
    assert "<td>oracle</td>" in out["leaderboard.html"]


def test_generation_model_lacking_a_task_and_another_temperature(tmp_path):
    """A model without continuation_gslm is left out of that table (and shows '—' where the
    table has it); one that skipped it says so; a headline at another temperature is tagged."""
    other = ours(
        tmp_path / "res" / "other.json",
        "other",
        {
            "genppl": {
                "genppl,t=1": 7.5,
                "genppl_stderr,t=1": 0.5,
                "auto_bleu_slamkit,t=1": 0.02,
                "auto_bleu_slamkit,t=0.8": 0.5,  # not the headline's temperature: not shown
            }
        },
        primary={"genppl": "genppl,t=1"},
        hib={"genppl": {"genppl": False, "auto_bleu_slamkit": False}},
        size="tiny",
        data_hash="ef00855ee8b02a80b7a67f504d62650f7deb182cea5c83be6f9b8d6d8d701130",
        skipped={"continuation_gslm": "skipped (model lacks continue)"},
    )
    files = [str(GEN_FIXTURES), str(other)]
    md = generate(files, tmp_path / "lb", reported=False, plots=False)["leaderboard.md"]
    head, rows = md_table(md, "GenPPL")
    by = {r[0]: r for r in rows}
    i, j = (
        col_index(head, "GenPPL", "built-in (tiny)"),
        col_index(head, "Auto-BLEU", "built-in (tiny)"),
    )
    assert by["other"][i] == "7.50 ± 0.500 [t=1]"  # the column's temperature is t=0.8
    assert by["other"][j] == "2.00 [t=1]"  # auto-BLEU of the same (t=1) generations
    head, rows = md_table(md, "GSLM continuation")
    by = {r[0]: r for r in rows}
    assert by["other"][col_index(head, "GSLM continuation", "built-in (tiny)")] == (
        "skipped (model lacks continue)"
    )
    assert by["other"][col_index(head, "Continuation quality", "built-in (tiny)")] == "—"
    head, rows = md_table(md, "pGSLM prosody")
    assert [r[0] for r in rows] == ["gslm-mini"]  # other has no prosody number: not listed


def test_quality_diversity_plot_draws_the_results_files_curve_points(tmp_path):
    """One line per model through exactly the results files' tradeoff points, the oracle from
    the same files; single-temperature tasks (genppl, continuation_quality) get no plot."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    from speechlm_eval.leaderboard.plots import _draw, plan

    other_pts = [(0.5, 30.0, 0.30), (0.7, 20.0, 0.20), (1.0, 12.0, 0.12), (1.2, 9.0, 0.09)]
    other = gen_results(tmp_path / "other.json", "other", other_pts, oracle=(8.0, 0.15))
    board = build_board([str(GEN_FIXTURES), str(other)], tmp_path / "lb", reported=False)
    plots = [p for p in plan(board) if p.kind == "quality_diversity"]
    assert [p.name for p in plots] == ["plots/quality_diversity_continuation_gslm_builtin-tiny.svg"]
    series = {s["label"]: s for s in plots[0].data["series"]}
    assert list(series) == ["gslm-mini", "other"]  # row order
    d = _fixture("continuation_gslm")
    want = {
        "gslm-mini": [
            (p["temperature"], p["ppx"], p["vert"])
            for p in d["scoring"]["continuation_gslm"]["tradeoff"]["points"]
        ],
        "other": other_pts,
    }
    res = d["results"]["continuation_gslm"]
    oracle = {"gslm-mini": [res["ppx_mean,oracle"], res["vert,oracle"]], "other": [8.0, 0.15]}
    for label, s in series.items():
        assert list(zip(s["temps"], s["ppx"], s["vert"], strict=True)) == want[label]
        assert s["oracle"] == oracle[label]
    # The drawing: x = VERT, y = PPX, each line through its points (temperature order), the
    # oracle a star at (VERT, PPX).
    fig = _draw(Figure, NullFormatter, plots[0])
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for label, pts in want.items():
        xy = [tuple(p) for p in lines[label].get_xydata().tolist()]
        assert xy == [(v, p) for _, p, v in sorted(pts)]
    stars = [tuple(c.get_offsets().tolist()[0]) for c in ax.collections]
    assert stars == [(o[1], o[0]) for o in oracle.values()]
    assert ax.get_xlabel().startswith("VERT") and ax.get_ylabel().startswith("PPX")
    # Written with the other plots, shown on the page and in the Markdown.
    out = generate([str(GEN_FIXTURES), str(other)], tmp_path / "lb", reported=False)
    name = plots[0].name
    assert fingerprint_of(out[name].encode()) == plots[0].fingerprint()
    assert f'src="{name}"' in out["leaderboard.html"] and f"]({name})" in out["leaderboard.md"]


def test_curve_of_a_superseded_results_file_is_not_drawn(tmp_path):
    old = gen_results(tmp_path / "a" / "results_1.json", "m", [(0.5, 9.0, 0.1), (1.0, 5.0, 0.2)])
    new = gen_results(tmp_path / "b" / "results_2.json", "m", [(0.5, 8.0, 0.1), (1.0, 4.0, 0.2)])
    data = json.loads(new.read_text())
    data["date"] += 10
    new.write_text(json.dumps(data))
    board = build_board([str(old), str(new)], tmp_path / "lb", reported=False)
    assert [c.points for c in board.curves] == [((0.5, 8.0, 0.1), (1.0, 4.0, 0.2))]


def test_generation_families_units_and_directions():
    from speechlm_eval.leaderboard.families import (
        guess_higher_is_better,
        is_percent,
        rule_family,
    )

    assert rule_family("continuation_gslm") == rule_family("genppl") == "generation"
    assert rule_family("prosody_pgslm") == rule_family("stsp_s2s") == "paralinguistic"
    # BLEU family in %, VERT and the curve summaries not.
    for m in ("auto_bleu_slamkit", "auto_bleu2_gslm", "self_bleu2_gslm", "cont_bleu2"):
        assert is_percent(m), m
    for m in ("vert", "auc_ppx_vert", "vert_at_oracle_ppx", "ppx_mean", "genppl", "mos_ovrl"):
        assert not is_percent(m), m
    # Without a results file's word (reported rows, lm-eval files): the conventions.
    lower = ("ppx_mean", "genppl", "auto_bleu_slamkit", "self_bleu2_gslm", "vert")
    lower += ("auc_ppx_vert", "f0_min_mae_audio")
    higher = ("mos_ovrl", "speaker_similarity", "f0_corr_audio", "cont_bleu2", "acc")
    assert not any(guess_higher_is_better(m) for m in lower)
    assert all(guess_higher_is_better(m) for m in higher)


def test_headline_falls_back_to_the_tasks_primary_option(tmp_path):
    """A scorer that records only scoring.<task>.options.primary still gets its headline."""
    f = ours(
        tmp_path / "r.json",
        "m",
        {"prosody_pgslm": {"f0_std_audio,t=0.7": 0.4, "f0_min_mae_audio,t=0.7": 0.14}},
        hib={"prosody_pgslm": {"f0_std_audio": True, "f0_min_mae_audio": False}},
    )
    data = json.loads(f.read_text())
    data["scoring"]["prosody_pgslm"] = {"options": {"primary": "f0_min_mae_audio,t=0.7"}}
    f.write_text(json.dumps(data))
    board = build_board([str(f)], tmp_path / "lb", reported=False)
    (col,) = board.columns
    assert (col.metric, col.filter, col.higher_is_better) == ("f0_min_mae_audio", "t=0.7", False)
