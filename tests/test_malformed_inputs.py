"""The malformed-input corpus (tests/malformed/): every case is one clear error.

Each case of ``malformed/CASES.yaml`` puts one broken input into an otherwise clean setting
(a dataset built by tests/helpers.py makers, an --include_path folder, a flag, a results or
scores file) and runs the CLI in-process. It must exit with code 2 and print exactly one
``slm-eval: error:`` line naming the culprit and what was expected, no traceback, and leave
no results file. The same clean setting without the broken input must succeed
(``test_clean_setting_succeeds``), so each error is caused by the input it names.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import yaml
from helpers import make_lexical, make_salmon, make_storycloze, make_syntactic, tone, write_wav

from speechlm_eval import registry
from speechlm_eval.audio import audio_info, load_audio
from speechlm_eval.cli import main
from speechlm_eval.errors import DataError

CORPUS = Path(__file__).resolve().parent / "malformed"
CASES: list[dict[str, Any]] = yaml.safe_load((CORPUS / "CASES.yaml").read_text())
MARKER = "MALFORMED-CORPUS"  # printed by the corpus' pickle/YAML payloads if they ever run
# tqdm progress lines (the run prints them on stderr before an audio error is found)
PROGRESS = re.compile(r"\d+%\|.*\|\s*\d+/\d+\s*\[")
FIELDS = {
    "id", "what", "command", "task", "file", "place", "action", "from", "to", "args", "expect",
    "culprit", "style", "pending",
}  # fmt: skip


def _load_make_corpus() -> Any:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def energy_plugin(tmp_path_factory: pytest.TempPathFactory):
    """Register the fake ``energy`` model in this process, through a real entry point."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "malformedplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: malformedplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[speechlm_eval.models]\nenergy = malformedplugin:Energy\n"
    )
    (site / "malformedplugin.py").write_text("from helpers import EnergyLM as Energy\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        registry._entry_points.cache_clear()
        registry._load.cache_clear()
        yield
    registry._entry_points.cache_clear()
    registry._load.cache_clear()


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every layout the cases damage, small and valid (see the header of CASES.yaml)."""
    root = tmp_path_factory.mktemp("clean")
    make_lexical(root, ids=2)
    make_syntactic(root, ids=2)
    make_storycloze(root, "sStoryCloze", n=3)
    make_salmon(root, "speaker_consistency", n=2, k=2)
    mine = root / "mine"
    for i in range(3):
        write_wav(mine / f"a{i}.wav", tone(900 + i, amp=0.05))
        write_wav(mine / f"b{i}.wav", tone(950 + i, amp=0.2))
    for name in ("manifest.jsonl", "manifest.csv"):
        shutil.copy(CORPUS / "clean" / name, mine / name)
    return root


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, energy_plugin: None) -> Path:
    """No built-in suite and no $SLM_EVAL_DATA: only the data a case names is found."""
    monkeypatch.setenv("SLM_EVAL_BUILTIN", str(tmp_path / "no-builtin"))
    monkeypatch.delenv("SLM_EVAL_DATA", raising=False)
    return tmp_path


# --- applying a case -------------------------------------------------------------------------


def _fmt(arg: str, case: dict[str, Any]) -> str:
    file = str(CORPUS / case["file"]) if "file" in case else ""
    return arg.replace("{file}", file).replace("{corpus}", str(CORPUS))


def _damage(case: dict[str, Any], data: Path) -> None:
    """Apply the case's placement to a copy of the clean data."""
    target = data / case["place"]
    action = case.get("action", "copy")
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if action == "copy":
        shutil.copyfile(CORPUS / case["file"], target)
    elif action == "mkdir":
        target.mkdir()
    elif action == "dangling_symlink":
        target.symlink_to(target.with_name(target.name + ".missing"))
    elif action == "copy_from":
        shutil.copyfile(data / case["from"], target)
    elif action == "symlink":
        target.symlink_to(case["to"])
    elif action != "delete":
        raise AssertionError(f"{case['id']}: unknown action {action!r}")


def _argv(case: dict[str, Any], clean: Path, tmp: Path) -> tuple[list[str], Path]:
    """The command line for a case, and the folder where a results file must not appear."""
    out = tmp / "out"
    command = case.get("command", "run")
    data = clean
    include: list[str] = []
    place = case.get("place")
    if place == "include":
        inc = tmp / "include"
        inc.mkdir()
        shutil.copyfile(CORPUS / case["file"], inc / Path(case["file"]).name)
        include = ["--include_path", str(inc)]
    elif place is not None:
        data = tmp / "data"
        shutil.copytree(clean, data, symlinks=True)
        _damage(case, data)
    extra = [_fmt(a, case) for a in case.get("args", [])]
    if command == "run":
        argv = [
            "run", "--model", "energy", "--tasks", case["task"], "--data_dir", str(data),
            "--output_path", str(out), "--use_cache", str(tmp / "cache.sqlite"),
            "--include_path", str(CORPUS / "clean"), *include, *extra,
        ]  # fmt: skip
    elif command == "score":
        argv = ["score", *extra, "--data_dir", str(data), "--output_path", str(out), *include]
    elif command == "compare":
        argv = ["compare", *extra]
    else:
        raise AssertionError(f"{case['id']}: unknown command {command!r}")
    return argv, out


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        return int(e.code)


def _culprit(case: dict[str, Any]) -> str:
    if "culprit" in case:
        return case["culprit"]
    place = case.get("place")
    return Path(place).name if place and place != "include" else Path(case["file"]).name


def _check_case(case: dict[str, Any], clean: Path, tmp: Path, capsys) -> None:
    argv, out = _argv(case, clean, tmp)
    rc = _run(argv)
    captured = capsys.readouterr()
    err = captured.err
    lines = [x for x in re.split(r"[\r\n]+", err) if x.strip() and not PROGRESS.search(x)]
    assert "Traceback" not in err, err
    assert MARKER not in captured.out + err, "a pickle or YAML payload was executed"
    assert rc == 2, f"exit code {rc}\n{err}"
    if case.get("style", "slm-eval") == "argparse":
        # argparse prints its usage, then one "slm-eval <command>: error:" line
        errors = [x for x in lines if re.match(r"slm-eval( \w+)?: error:", x)]
        assert len(errors) == 1 and errors[0] == lines[-1], err
    else:
        assert len(lines) == 1 and lines[0].startswith("slm-eval: error: "), err
        errors = lines
    for fragment in [_culprit(case), *case["expect"]]:
        assert fragment in errors[0], f"{fragment!r} not in: {errors[0]}"
    assert not list(out.rglob("results_*.json")) if out.exists() else True
    assert not list(out.rglob("*.tmp")) if out.exists() else True


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c,
            id=c["id"],
            marks=[pytest.mark.xfail(reason=c["pending"], strict=True)] if "pending" in c else [],
        )
        for c in CASES
    ],
)
def test_malformed_input_gives_one_clear_error(case, clean_data, isolated, capsys):
    _check_case(case, clean_data, isolated, capsys)


# --- the corpus itself -----------------------------------------------------------------------


def test_corpus_is_complete_and_small():
    assert len(CASES) >= 50
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicated case ids"
    used = set()
    for c in CASES:
        assert set(c) <= FIELDS, (c["id"], set(c) - FIELDS)
        assert c["expect"] and all(isinstance(x, str) for x in c["expect"]), c["id"]
        if "file" in c:
            assert (CORPUS / c["file"]).is_file(), c["id"]
            used.add(c["file"])
    support = {"make_corpus.py", "CASES.yaml"}
    files = {
        p.relative_to(CORPUS).as_posix()
        for p in CORPUS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    # Files used by the clean setting or by a case through {corpus}/...
    helpers = {f for f in files if f.startswith("clean/")} | {
        "results/base.json",
        "weights/kmeans_ok.npy",
        "weights/encoder/config.json",
        "weights/lm/config.json",
        "weights/lm/model.safetensors",
    }
    assert files - used - support - helpers == set(), "corpus files no case uses"
    size = sum((CORPUS / f).stat().st_size for f in files)
    assert size < 1_000_000, size


def test_corpus_files_are_reproducible(tmp_path):
    """make_corpus.py recreates every binary corpus file byte for byte."""
    mc = _load_make_corpus()
    for p in mc.generate(tmp_path):
        rel = p.relative_to(tmp_path)
        assert (CORPUS / rel).read_bytes() == p.read_bytes(), f"{rel} differs: rerun make_corpus"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--tasks", "ssc,swuggy,sblimp,salmon_speaker_consistency,mine,minecsv"],
        ["score", "--task", "ssc", "--scores", "{scores}"],
        ["compare", "{corpus}/results/base.json", "{corpus}/results/base.json"],
        ["compare", "{corpus}/results/base.json", "{corpus}/results/base.json",
         "--tolerance_file", "{tol}"],
    ],
    ids=["run", "score", "compare", "compare_tolerance_file"],
)  # fmt: skip
def test_clean_setting_succeeds(argv, clean_data, isolated, capsys):
    """Without the broken input, the same commands on the same data exit 0."""
    tmp = isolated
    scores = tmp / "scores.txt"
    scores.write_text("".join(f"{i}_correct -1.{i}\n{i}_incorrect -2.{i}\n" for i in range(3)))
    tol = tmp / "tol.yaml"
    tol.write_text("default: 0.02\nk: 2\ntasks:\n  ssc: 0.03\n")
    argv = [
        a.replace("{scores}", str(scores))
        .replace("{corpus}", str(CORPUS))
        .replace("{tol}", str(tol))
        for a in argv
    ]
    out = tmp / "out"
    if argv[0] == "run":
        argv += ["--model", "energy", "--data_dir", str(clean_data), "--output_path", str(out)]
        argv += ["--use_cache", str(tmp / "c.sqlite"), "--include_path", str(CORPUS / "clean")]
    elif argv[0] == "score":
        argv += ["--data_dir", str(clean_data), "--output_path", str(out)]
    rc = _run(argv)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "error" not in err
    if argv[0] in ("run", "score"):
        assert len(list(out.rglob("results_*.json"))) == 1


# --- the audio checks against an independent reading ------------------------------------------


def test_truncation_check_agrees_with_the_header(tmp_path):
    """The truncated-data check compares the RIFF header's own data size (parsed here with
    the stdlib) with the bytes present; a complete file and a streamed-size header pass."""
    import struct
    import wave

    src = CORPUS / "audio" / "truncated_data.wav"
    with wave.open(str(src)) as w:  # the stdlib trusts the header: frames it declares
        declared = w.getnframes()
    assert sf.info(str(src)).frames < declared  # libsndfile silently reports fewer
    with pytest.raises(DataError, match=f"declares {declared * 2} bytes"):
        audio_info(src)
    ok = write_wav(tmp_path / "ok.wav", tone(1), subtype="PCM_16")
    assert audio_info(ok).frames == tone(1).size
    # Writers streaming to a pipe leave a placeholder data size (ffmpeg, SoX): not a truncation.
    for placeholder in (0xFFFFFFFF, 0x7FFFF000):
        b = bytearray(ok.read_bytes())
        i = b.index(b"data")
        b[i + 4 : i + 8] = struct.pack("<I", placeholder)
        streamed = tmp_path / f"streamed_{placeholder:x}.wav"
        streamed.write_bytes(bytes(b))
        assert load_audio(streamed).samples.size == tone(1).size


@pytest.mark.parametrize("peak", [1.0, 0.999, 1.0001, 2.0])
def test_float_range_check_matches_numpy(tmp_path, peak):
    """Float files pass exactly when max |x| <= 1 (computed independently with numpy);
    integer PCM at full scale always passes."""
    x = tone(2, amp=0.5)
    x[37] = -peak
    p = write_wav(tmp_path / "f.wav", x, subtype="FLOAT")
    if np.max(np.abs(x)) <= 1.0:
        assert load_audio(p).samples[37] == np.float32(-peak)
    else:
        with pytest.raises(DataError, match=f"largest magnitude is {peak:g} .sample 37"):
            load_audio(p)
    full = write_wav(tmp_path / "pcm.wav", np.clip(x, -1, 1), subtype="PCM_16")
    assert np.max(np.abs(load_audio(full).samples)) <= 1.0


def test_bom_in_gold_csv_is_read(tmp_path):
    """A UTF-8 byte-order mark (spreadsheet exports) is not part of the first column name."""
    from speechlm_eval.readers.zr2021 import read_lexical

    d = make_lexical(tmp_path, ids=2)
    gold = d / "gold.csv"
    gold.write_bytes(b"\xef\xbb\xbf" + gold.read_bytes())
    assert len(read_lexical(d, {}).items) == 4


def test_flac_without_length_and_cut_flac(tmp_path):
    """FLAC cases made here (libFLAC's bytes vary by version, so they are not in the corpus):
    a stream with total_samples = 0 in STREAMINFO ("unknown"), and a file cut in half."""
    x = tone(3, seconds=1.0)
    ok = tmp_path / "ok.flac"
    sf.write(str(ok), x, 16000, subtype="PCM_16")
    assert load_audio(ok, 16000).samples.size == x.size
    b = bytearray(ok.read_bytes())
    # STREAMINFO follows "fLaC" and its 4-byte block header; bytes 10..17 of it end with the
    # 36-bit total sample count.
    info = int.from_bytes(b[18:26], "big") & ~((1 << 36) - 1)
    b[18:26] = info.to_bytes(8, "big")
    unknown = tmp_path / "unknown.flac"
    unknown.write_bytes(bytes(b))
    with pytest.raises(DataError, match="unknown.flac: the file does not state its length"):
        audio_info(unknown)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(ok.read_bytes()[: ok.stat().st_size // 2])
    with pytest.raises(DataError, match="cut.flac: (cannot decode audio|decoded .* frames)"):
        load_audio(cut, 16000)
