"""`slm-eval score`: ZR2021 submission files scored with the same scorers as model runs."""

from __future__ import annotations

import pytest
from helpers import make_lexical

from speechlm_eval import DataError
from speechlm_eval.cli import main
from speechlm_eval.readers.zr2021 import read_lexical
from speechlm_eval.submission import read_scores


def _submission(path, ds, flip=()):
    lines = []
    for it in ds.items:
        w, n = it.candidates
        good = (it.doc_id, it.meta["voice"]) not in flip
        lines += [f"{w} {-1.0 if good else -5.0}", f"{n} {-3.0}"]
    path.write_text("\n".join(lines) + "\n")


def test_score_submission(tmp_path, capsys):
    d = make_lexical(tmp_path / "data", ids=4)
    ds = read_lexical(d, {})
    sub = tmp_path / "dev.txt"
    _submission(sub, ds, flip={("id0", "v1"), ("id1", "v1"), ("id1", "v2")})
    rc = main(
        [
            "score",
            "--task",
            "swuggy",
            "--scores",
            str(sub),
            "--data_dir",
            str(tmp_path / "data"),
            "--output_path",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    # ids: 0.5, 0, 1, 1 -> 0.625
    assert "acc,external" in out and "0.6250" in out
    assert len(list((tmp_path / "out").glob("results_*.json"))) == 1


def test_submission_errors(tmp_path, capsys):
    d = make_lexical(tmp_path / "data", ids=2)
    ds = read_lexical(d, {})
    sub = tmp_path / "dev.txt"
    _submission(sub, ds)
    lines = sub.read_text().splitlines()
    sub.write_text("\n".join(lines[1:]) + "\n")
    rc = main(
        ["score", "--task", "swuggy", "--scores", str(sub), "--data_dir", str(tmp_path / "data")]
    )
    assert rc == 2 and "no score for 1 file(s)" in capsys.readouterr().err
    sub.write_text("\n".join([*lines, "stray 1.0"]) + "\n")
    rc = main(
        ["score", "--task", "swuggy", "--scores", str(sub), "--data_dir", str(tmp_path / "data")]
    )
    assert rc == 2 and "not in the dataset, e.g. 'stray'" in capsys.readouterr().err
    for text, msg in [
        ("a 1\na 2\n", "scored twice"),
        ("a b c\n", "expected '<file> <score>'"),
        ("a x\n", "is not a number"),
        ("a nan\n", "not finite"),
    ]:
        sub.write_text(text)
        with pytest.raises(DataError, match=msg):
            read_scores(sub)
