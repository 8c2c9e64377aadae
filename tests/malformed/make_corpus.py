"""(Re)create the binary files of the malformed-input corpus, byte for byte.

Run ``python tests/malformed/make_corpus.py`` to rewrite them in this folder; the test
``test_corpus_files_are_reproducible`` regenerates them in a temporary folder and compares
bytes. Text files of the corpus (gold CSVs, manifests, YAML, scores, JSON) are committed as
they are and not written here. Every case that uses a file is listed in ``CASES.yaml``.

WAV files are written with ``scipy.io.wavfile`` rather than soundfile: libsndfile stamps the
PEAK chunk of float WAVs with the current time, so its output differs from run to run.
Nothing here is random except seeded ``numpy`` generators.
"""

from __future__ import annotations

import io
import pickle
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.io import wavfile

HERE = Path(__file__).resolve().parent
SR = 16000
# Printed by the pickle payloads if anything ever unpickles them: tests assert it never shows.
PAYLOAD_MARKER = "MALFORMED-CORPUS: this pickle ran code"


class _Payload:
    """Unpickling this calls print(): harmless, but proof that the file's code ran."""

    def __reduce__(self) -> tuple[Callable[..., None], tuple[str]]:
        return (print, (PAYLOAD_MARKER,))


def _tone(seconds: float = 0.25, amp: float = 0.1, sr: int = SR, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _wav(x: np.ndarray, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    wavfile.write(buf, sr, x)  # the dtype decides the encoding: int16 PCM, uint8, float32/64
    return buf.getvalue()


def _pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _torch_zip_pickle() -> bytes:
    """A ``pytorch_model.bin`` in torch's zip layout whose pickle calls print() when loaded.

    Written with zipfile and fixed timestamps (torch.save adds a random serialization id).
    """
    raw = pickle.dumps({"encoder.weight": _Payload()}, protocol=2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in (
            ("archive/data.pkl", raw),
            ("archive/byteorder", b"little"),
            ("archive/version", b"3\n"),
        ):
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def files() -> dict[str, bytes]:
    """Relative path -> content of every generated corpus file."""
    tone = _tone()
    ok16 = _wav(_pcm16(tone))
    nan = tone.copy()
    nan[100] = np.nan
    inf = tone.copy()
    inf[100] = np.inf
    loud = tone.copy()
    loud[1000] = 2.5  # one unnormalised sample: its value and position must be reported
    centroids = np.linspace(-1.0, 1.0, 4 * 8).reshape(4, 8)  # (K=4, D=8): the tiny encoder's D
    with_nan = centroids.copy()
    with_nan[2, 3] = np.nan
    header_len = ok16.index(b"data") + 8
    return {
        # audio: each replaces one file of a clean dataset
        "audio/random_bytes.wav": np.random.default_rng(0).bytes(2048),
        "audio/zero_bytes.wav": b"",
        "audio/zero_frames.wav": _wav(np.zeros(0, np.int16)),
        "audio/truncated_header.wav": ok16[:30],
        "audio/truncated_data.wav": ok16[: header_len + 1000],
        "audio/nan_float.wav": _wav(nan),
        "audio/inf_float.wav": _wav(inf),
        "audio/unnormalised_float.wav": _wav(loud),
        "audio/int16_scaled_float.wav": _wav((tone * 32767).astype(np.float32)),
        "audio/unnormalised_double.wav": _wav(tone.astype(np.float64) * 15),
        "audio/pcm_u8.wav": _wav(np.round(tone * 127 + 128).astype(np.uint8)),
        "audio/stereo.wav": _wav(np.stack([_pcm16(tone)] * 2, axis=1)),
        "audio/six_channels.wav": _wav(np.stack([_pcm16(tone)] * 6, axis=1)),
        "audio/rate_8000.wav": _wav(_pcm16(_tone(sr=8000)), sr=8000),
        "audio/rate_44100.wav": _wav(_pcm16(_tone(sr=44100)), sr=44100),
        "audio/text.wav": b"This is a text file, not audio.\n",
        # empty (0-byte) files where a table, a manifest, a YAML file or scores are expected
        "gold/zero_bytes.csv": b"",
        "manifest/empty.jsonl": b"",
        "manifest/empty.csv": b"",
        "yaml/empty.yaml": b"",
        "scores/empty.txt": b"",
        # binary garbage where text is expected
        "gold/binary.csv": np.random.default_rng(1).bytes(512),
        "manifest/binary.jsonl": b"\xff\xfe" + np.random.default_rng(2).bytes(256),
        "yaml/binary.yaml": b"\xff\xfe\x00t\x00a\x00s\x00k" + np.random.default_rng(3).bytes(64),
        "results/binary.json": b"\xff\xfe" + np.random.default_rng(4).bytes(256),
        "scores/binary.txt": b"\x89PNG\r\n\x1a\n" + np.random.default_rng(5).bytes(256),
        # weights
        "weights/kmeans_ok.npy": _npy(centroids),
        "weights/kmeans_object.npy": _npy(
            np.array([{"cluster_centers_": centroids.tolist()}], dtype=object), allow_pickle=True
        ),
        "weights/kmeans_pickle.bin": pickle.dumps(_Payload(), protocol=4),
        "weights/kmeans_rank1.npy": _npy(centroids[0]),
        "weights/kmeans_nan.npy": _npy(with_nan),
        "weights/kmeans_truncated.npy": _npy(centroids)[:100],
        "weights/encoder/pytorch_model.bin": _torch_zip_pickle(),
        # never read: the encoder fails first; only its presence is checked and hashed
        "weights/lm/model.safetensors": b"placeholder: never loaded\n",
    }


def generate(out: Path) -> list[Path]:
    """Write every generated file under ``out``; returns their paths."""
    written = []
    for rel, data in files().items():
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        written.append(p)
    return written


if __name__ == "__main__":
    paths = generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {len(paths)} files, {sum(p.stat().st_size for p in paths)} bytes")
