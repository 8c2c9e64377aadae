"""Run the installed reference ABX (zerospeech-libriabx2, ``zrc_abx2``) on an item file + features.

For cross-checks (tests, ``benchmarks/abx.py``) only; nothing in the harness depends on it.
It is a stand-alone script (no import of ``speechlm_eval``) so that it can run under
another interpreter that has the reference installed::

    python speechlm_eval/abx/reference.py ITEM FEATURE_DIR OUT.json --frame-rate 50 \
        [--distance cosine] [--max-size-group 10] [--max-x-across 5] [--seed 3459] \
        [--speaker-mode within|across|all] [--context-mode within|any|all] [--threads 1]
        [--runs '[{"seed": 11}, {"distance": "euclidean"}]']

``FEATURE_DIR`` holds ``<stem>.npy`` per file of the item file. The reference's own entry
point lists those files with ``os.walk`` (file-system order, which its seeded group
sub-sampling depends on); here the list is passed in the order of first appearance in the
item file, the order speechlm-eval uses. ``OUT.json`` gets the reference's scores keyed
``<speaker mode>-<context mode>`` and the wall-clock and CPU seconds its computation took
(feature loading included, interpreter start-up and imports excluded).

Installing the reference: ``pip install --no-deps zerospeech-libriabx2`` (builds a small
Cython extension). Its declared dependency torchaudio is only used by its CPC-checkpoint
feature extractor; the registry's torchaudio does not load beside a CPU torch 2.13 and
breaks ``import transformers`` feature extractors, so it is left out and a stub module
stands in for it in this process.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import sys
import time
import types
from pathlib import Path


def _import_reference():
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        stub = types.ModuleType("torchaudio")
        stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
        sys.modules["torchaudio"] = stub
    from zrc_abx2.ABX_src.models import Pooling
    from zrc_abx2.eval_ABX import EvalABX

    return EvalABX, Pooling


def _file_order(item_path: Path) -> list[str]:
    lines = item_path.read_text(encoding="utf-8").splitlines()[1:]
    return list(dict.fromkeys(line.split()[0] for line in lines if line.strip()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("item", type=Path)
    p.add_argument("features", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--frame-rate", type=float, required=True)
    p.add_argument("--distance", default="cosine")
    p.add_argument("--max-size-group", type=int, default=10)
    p.add_argument("--max-x-across", type=int, default=5)
    p.add_argument("--seed", type=int, default=3459)
    p.add_argument("--speaker-mode", default="all")
    p.add_argument("--context-mode", default="all")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument(
        "--runs",
        default=None,
        help='JSON list of {"distance", "max_size_group", "max_x_across", "seed"} (each '
        "defaulting to the flags): several runs in one process; OUT.json is then "
        '{"runs": [...]}',
    )
    args = p.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    EvalABX, Pooling = _import_reference()
    seq_list = [(s, str(args.features / f"{s}.npy")) for s in _file_order(args.item)]

    def load(path: str) -> torch.Tensor:
        return torch.tensor(np.load(path))

    speakers = ["within", "across"] if args.speaker_mode == "all" else [args.speaker_mode]
    contexts = ["within", "any"] if args.context_mode == "all" else [args.context_mode]
    single = {
        "distance": args.distance,
        "max_size_group": args.max_size_group,
        "max_x_across": args.max_x_across,
        "seed": args.seed,
    }
    runs = json.loads(args.runs) if args.runs else [single]
    results = []
    for run in runs:
        cfg = {**single, **run}
        t0, c0 = time.perf_counter(), time.process_time()
        scores = EvalABX()._ABX(
            Pooling.NONE,
            cfg["seed"],
            load,
            str(args.item),
            seq_list,
            cfg["distance"],
            args.frame_rate,  # the reference's step_feature = 1 / feature_size = frames/s
            speakers,
            contexts,
            cuda=False,
            max_x_across=cfg["max_x_across"],
            max_size_group=cfg["max_size_group"],
        )
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        results.append({**cfg, "scores": scores, "seconds": seconds, "cpu_seconds": cpu})
    args.out.write_text(json.dumps(results[0] if not args.runs else {"runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
