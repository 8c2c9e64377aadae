"""gslm-mini's outputs must not depend on the machine's thread settings.

Found by the leaderboard run: OMP_NUM_THREADS=1 vs 2 changed numpy's (OpenBLAS) log-mel
projection in the last bits, which flipped k-means near-ties and moved swuggy by 5 points.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("faster_whisper")

SCRIPT = """
import hashlib, numpy as np
from reference_models.gslm_mini.encoder import WhisperEncoder
rng = np.random.default_rng(0)
t = np.arange(48000) / 16000
x = 0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)
x = x + 0.05 * rng.standard_normal(t.size)
e = WhisperEncoder(threads=1)
mel = e.log_mel(x.astype(np.float32))
print(hashlib.sha256(mel.tobytes()).hexdigest())
"""


def test_log_mel_identical_for_any_blas_thread_count():
    out = []
    for n in ("1", "2", "4"):
        env = {**os.environ, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}
        p = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        out.append(p.stdout.strip())
    assert len(out[0]) == 64 and out[0] == out[1] == out[2]
