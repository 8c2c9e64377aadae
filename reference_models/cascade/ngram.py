"""The cascade's character n-gram LM: the model is :mod:`speechlm_eval.judges.ngram` (the
``text-lm`` judge's offline default, shared with the cascade); this module re-exports it and
keeps the maintainer's tool that rebuilds its packaged training text from gslm-mini's corpus
(reference-model code, which no judge imports).

``python -m reference_models.cascade.ngram --rebuild`` rewrites ``lm_data/`` (needs
``markov-draftjs==2.0.0``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechlm_eval.judges import ngram as _ngram
from speechlm_eval.judges.ngram import (
    ALPHABET,
    BOS,
    DEFAULT_ORDER,
    EOS,
    FORMAT,
    SYMBOLS,
    CharNgram,
    count_codes,
    count_events,
    normalise,
    read_manifest,
    read_training_text,
    sentence_events,
    symbols,
    unpack,
)

__all__ = [
    "ALPHABET",
    "BOS",
    "DEFAULT_ORDER",
    "EOS",
    "FORMAT",
    "SYMBOLS",
    "CharNgram",
    "count_codes",
    "count_events",
    "main",
    "normalise",
    "read_manifest",
    "read_training_text",
    "rebuild",
    "sentence_events",
    "symbols",
    "unpack",
]

# Where rebuild() writes: the packaged text the judge reads (module globals so a test can
# point them at a temporary folder).
DATA_DIR = _ngram.DATA_DIR
TRAIN_TEXT = _ngram.TRAIN_TEXT
MANIFEST = _ngram.MANIFEST


def rebuild(data_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """Write ``lm_data/train.txt`` and ``ngram.json`` from the packaged corpus.

    The corpus is gslm-mini's pinned one (``markov-draftjs`` 2.0.0, Markov-chain text from
    Project Gutenberg's *The Brothers Karamazov*, minus ``corpus.EXCLUDED``), verified by its
    overlap check against every string of the built-in suite's generators (and any built
    suites in ``data_dirs``): an overlap stops the rebuild. Sentences are written
    normalised, sorted, so the file is canonical.
    """
    from reference_models.gslm_mini import corpus

    sents, checked = corpus.checked_training_sentences(0, data_dirs)
    info, overlap = checked["source"], checked["overlap"]
    lines = sorted({normalise(s) for s in sents} - {""})
    text = "".join(f"{ln}\n" for ln in lines).encode("utf-8")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    TRAIN_TEXT.write_bytes(text)
    manifest = {
        "format": FORMAT,
        "train_sha256": hashlib.sha256(text).hexdigest(),
        "sentences": len(lines),
        "characters": sum(len(ln) for ln in lines),
        "default_order": DEFAULT_ORDER,
        "source": info,
        "overlap": overlap,
        "normalisation": "reference_models.cascade.ngram.normalise",
    }
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rebuild", action="store_true", help="rewrite lm_data/ from the corpus")
    ap.add_argument("--check_data", nargs="*", default=[], help="built suites to check overlap")
    a = ap.parse_args(argv)
    if not a.rebuild:
        ap.error("nothing to do (pass --rebuild)")
    m = rebuild([Path(d) for d in a.check_data])
    print(json.dumps({k: m[k] for k in ("train_sha256", "sentences", "characters")}))
    print(json.dumps(m["overlap"]["overlapping"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
