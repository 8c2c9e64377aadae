"""Content identities: canonical JSON digests, file digests, saved-model digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import ConfigError

_CHUNK = 4 * 1024 * 1024


def digest(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes (same as ``sha256sum``), read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _weight_files(model_dir: Path) -> list[Path]:
    """The files ``from_pretrained`` loads weights from, in its order of preference."""
    for single, index in (
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        if (model_dir / single).is_file():
            return [model_dir / single]
        if (model_dir / index).is_file():
            with open(model_dir / index) as f:
                shards = sorted(set(json.load(f).get("weight_map", {}).values()))
            return [model_dir / index] + [model_dir / s for s in shards]
    return []


def saved_model_identity(arg: str, model_dir: Path) -> dict[str, str]:
    """Path, config hash and weights hash of a transformers ``save_pretrained`` directory.

    ``arg`` names the model argument in error messages.
    """
    files = _weight_files(model_dir)
    if not files:
        raise ConfigError(
            f"model argument {arg!r}: {model_dir} has no model.safetensors or pytorch_model.bin "
            "(nor a sharded index)"
        )
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise ConfigError(f"model argument {arg!r}: weight shards missing: {', '.join(missing)}")
    if len(files) == 1:
        weights_hash = sha256_file(files[0])  # plain file digest: checkable with sha256sum
    else:
        h = hashlib.sha256()
        for p in files:
            h.update(f"{p.name}\0{sha256_file(p)}\n".encode())
        weights_hash = h.hexdigest()
    return {
        "path": str(model_dir.resolve()),
        "config_hash": sha256_file(model_dir / "config.json"),
        "weights_hash": weights_hash,
    }
