"""The Hugging Face dataset reader: datasets the tests build (save_to_disk, parquet, a copied HF
cache), decoded audio equal to what was written, identity recorded, offline enforced."""

from __future__ import annotations

import io
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

datasets = pytest.importorskip("datasets")

from speechlm_eval.audio import Audio  # noqa: E402
from speechlm_eval.errors import ConfigError, DataError, DataNotFoundError  # noqa: E402
from speechlm_eval.readers.hf_dataset import read_hf_dataset  # noqa: E402

RNG = np.random.default_rng(7)


def _wav(x: np.ndarray, rate: int, subtype: str = "FLOAT") -> bytes:
    b = io.BytesIO()
    sf.write(b, x, rate, format="WAV", subtype=subtype)
    return b.getvalue()


def _signals() -> list[tuple[np.ndarray, int]]:
    return [
        ((RNG.standard_normal(800) * 0.1).astype(np.float32), 8000),
        ((RNG.standard_normal(1600) * 0.1).astype(np.float32), 16000),
        ((RNG.standard_normal(441) * 0.1).astype(np.float32), 22050),
    ]


def _dataset(signals=None, *, stereo: bool = False) -> tuple[object, list]:
    """A small dataset with an Audio column built from WAV bytes (no torchcodec needed)."""
    signals = signals or _signals()
    audio = []
    for x, r in signals:
        data = np.stack([x, -x * 0.5], axis=1) if stereo else x
        audio.append({"bytes": _wav(data, r), "path": f"u{len(audio)}.wav"})
    ds = datasets.Dataset.from_dict(
        {
            "audio": audio,
            "file": [f"utt-{i}" for i in range(len(signals))],
            "instruction": [f"say {i}" for i in range(len(signals))],
            "label": [i % 2 for i in range(len(signals))],
            "speaker": ["s1", "s2", "s1"][: len(signals)],
        }
    )
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    ds = ds.cast_column("label", datasets.ClassLabel(names=["no", "yes"]))
    return ds, signals


OPTS = {"audio_column": "audio", "text_column": "instruction", "label_column": "label"}


def test_save_to_disk_samples_equal_written_arrays(tmp_path: Path) -> None:
    ds, signals = _dataset()
    ds.save_to_disk(str(tmp_path / "d"))
    got = read_hf_dataset(tmp_path, {**OPTS, "path": "d", "id_column": "file"})
    assert got.doc_ids() == ["utt-0", "utt-1", "utt-2"]
    for (_, audio), (x, r) in zip(got.iter_audio(), signals, strict=True):
        assert audio.sample_rate == r
        np.testing.assert_array_equal(audio.samples, x)  # FLOAT WAV: bit-exact
    assert [r.text for r in got.rows] == ["say 0", "say 1", "say 2"]
    assert [r.label for r in got.rows] == ["no", "yes", "no"]  # ClassLabel ids -> names
    assert got.rows[1].meta == {"speaker": "s2"}
    ident = got.identity
    assert ident["fingerprint"] == datasets.load_from_disk(str(tmp_path / "d"))._fingerprint
    assert ident["n_rows"] == 3 and ident["format"] == "save_to_disk"
    assert ident["path"] == str((tmp_path / "d").resolve())
    assert ident["label_names"] == ["no", "yes"]
    assert got.stats.record()["source_rates"] == {"8000": 1, "16000": 1, "22050": 1}


def test_resampling_equals_audio_resample_and_is_counted(tmp_path: Path) -> None:
    ds, signals = _dataset()
    ds.save_to_disk(str(tmp_path / "d"))
    got = read_hf_dataset(tmp_path, {**OPTS, "path": "d", "sample_rate": 16000})
    for (_, audio), (x, r) in zip(got.iter_audio(), signals, strict=True):
        want = Audio(x, r).resample(16000)
        assert audio.sample_rate == 16000
        np.testing.assert_array_equal(audio.samples, want.samples)
    rec = got.stats.record()
    assert rec["resampled"] == 2 and rec["decoded"] == 3  # the 16 kHz row is left alone
    assert got.identity["sample_rate"] == 16000


def test_pcm16_rows_decode_like_soundfile(tmp_path: Path) -> None:
    x = (RNG.standard_normal(500) * 0.2).astype(np.float32)
    ds = datasets.Dataset.from_dict({"audio": [{"bytes": _wav(x, 16000, "PCM_16"), "path": None}]})
    ds.cast_column("audio", datasets.Audio(decode=False)).save_to_disk(str(tmp_path / "d"))
    got = read_hf_dataset(tmp_path, {"path": "d"})
    want, _ = sf.read(io.BytesIO(_wav(x, 16000, "PCM_16")), dtype="float32")
    np.testing.assert_array_equal(got.audio["000000"].load().samples, want)
    assert np.max(np.abs(want - x)) < 1e-4  # and PCM_16 is close to what was written


def test_empty_audio_cell_and_wrong_config(tmp_path: Path) -> None:
    ds = datasets.Dataset.from_dict(
        {"audio": [{"bytes": _wav(np.zeros(10, np.float32), 8000), "path": "a.wav"}, None]}
    )
    ds.cast_column("audio", datasets.Audio(decode=False)).save_to_disk(str(tmp_path / "d"))
    got = read_hf_dataset(tmp_path, {"path": "d"})
    assert got.audio["000000"].load().samples.size == 10
    with pytest.raises(DataError, match=r"d split 'test' row 1: column 'audio' is empty"):
        got.audio["000001"].load()
    with pytest.raises(DataError, match=r"is configuration None, the task asks for 'fr'"):
        read_hf_dataset(tmp_path, {"path": "d", "config": "fr"})


def test_dataset_dict_splits(tmp_path: Path) -> None:
    ds, _ = _dataset()
    datasets.DatasetDict({"test": ds, "dev": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    dev = read_hf_dataset(tmp_path, {"path": "dd", "split": "dev"})
    assert dev.doc_ids() == ["000000"]
    with pytest.raises(
        DataError, match=r"split 'train' does not exist; the dataset has: dev, test"
    ):
        read_hf_dataset(tmp_path, {"path": "dd", "split": "train"})


@pytest.mark.parametrize("as_file", [False, True])
def test_parquet_folder_and_file(tmp_path: Path, as_file: bool) -> None:
    ds, signals = _dataset()
    (tmp_path / "pq").mkdir()
    ds.to_parquet(str(tmp_path / "pq" / "test-00000-of-00001.parquet"))
    path = "pq/test-00000-of-00001.parquet" if as_file else "pq"
    got = read_hf_dataset(
        tmp_path, {**OPTS, "path": path, "cache_dir": str(tmp_path / "cache"), "id_column": "file"}
    )
    assert got.identity["format"] == "parquet" and got.identity["n_rows"] == 3
    assert isinstance(got.identity["fingerprint"], str) and got.identity["fingerprint"]
    for (_, audio), (x, _) in zip(got.iter_audio(), signals, strict=True):
        np.testing.assert_array_equal(audio.samples, x)
    assert [r.label for r in got.rows] == ["no", "yes", "no"]  # features survive parquet
    if not as_file:
        with pytest.raises(DataError, match="split 'dev'"):
            read_hf_dataset(
                tmp_path, {"path": "pq", "split": "dev", "cache_dir": str(tmp_path / "cache")}
            )


def test_hub_dataset_read_from_cache_only(tmp_path: Path) -> None:
    """A hub id found in a cache laid out as datasets lays it out (<owner>___<name>/...)."""
    ds, signals = _dataset()
    (tmp_path / "pq").mkdir()
    ds.to_parquet(str(tmp_path / "pq" / "test-00000.parquet"))
    build = tmp_path / "build"
    datasets.load_dataset(str(tmp_path / "pq"), split="test", cache_dir=str(build))
    made = next(p for p in (build / "pq").glob("*/*/*") if p.is_dir())  # <config>/<ver>/<hash>
    cache = tmp_path / "hf_cache"
    dest = cache / "someone___tiny_set" / made.relative_to(build / "pq")
    shutil.copytree(made, dest)
    for f in dest.glob("pq-*.arrow"):  # cached split files are named <dataset name>-<split>
        f.rename(dest / f.name.replace("pq-", "tiny_set-", 1))
    got = read_hf_dataset(
        tmp_path / "unused", {"hub_id": "someone/tiny_set", "cache_dir": str(cache)}
    )
    assert got.identity["format"] == "hub_cache" and got.identity["hub_id"] == "someone/tiny_set"
    assert got.identity["cached_revision"] == made.name
    np.testing.assert_array_equal(got.audio["000002"].load().samples, signals[2][0])
    same = read_hf_dataset(
        tmp_path, {"hub_id": "someone/tiny_set", "cache_dir": str(cache), "revision": made.name}
    )
    assert same.identity["revision"] == made.name
    with pytest.raises(DataError, match=r"holds revision '[0-9a-f]+', the task asks for 'main'"):
        read_hf_dataset(
            tmp_path, {"hub_id": "someone/tiny_set", "cache_dir": str(cache), "revision": "main"}
        )
    with pytest.raises(DataNotFoundError, match=r"Couldn't find cache.*for config 'other'"):
        read_hf_dataset(
            tmp_path, {"hub_id": "someone/tiny_set", "cache_dir": str(cache), "config": "other"}
        )


def test_hub_id_not_cached_is_a_clear_error_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[object] = []

    def no_connect(self, address):  # any connection attempt is recorded, then refused
        attempts.append(address)
        raise OSError("network disabled in this test")

    def no_lookup(*args, **kwargs):  # name resolution comes first on a machine without DNS
        attempts.append(args[:2])
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    import datasets.config as dconfig

    before = dconfig.HF_HUB_OFFLINE
    with pytest.raises(DataNotFoundError) as e:
        read_hf_dataset(tmp_path, {"hub_id": "nobody/absent", "cache_dir": str(tmp_path / "c")})
    msg = str(e.value)
    assert "'nobody/absent'" in msg and str(tmp_path / "c") in msg and "save_to_disk" in msg
    assert "\n" not in msg
    assert attempts == []
    # The offline switches are restored afterwards.
    assert "HF_HUB_OFFLINE" not in os.environ and "HF_DATASETS_OFFLINE" not in os.environ
    assert before == dconfig.HF_HUB_OFFLINE


def test_missing_column_and_non_audio_column(tmp_path: Path) -> None:
    ds, _ = _dataset()
    ds.save_to_disk(str(tmp_path / "d"))
    with pytest.raises(DataError, match=r"no column 'transcript' \(option text_column\); the "):
        read_hf_dataset(tmp_path, {"path": "d", "text_column": "transcript"})
    with pytest.raises(DataError, match=r"columns are: audio, file, instruction, label, speaker"):
        read_hf_dataset(tmp_path, {"path": "d", "audio_column": "wav"})
    with pytest.raises(DataError, match=r"column 'instruction' is not audio"):
        read_hf_dataset(tmp_path, {"path": "d", "audio_column": "instruction"})


def test_stereo_refused_unless_downmixed(tmp_path: Path) -> None:
    ds, signals = _dataset(stereo=True)
    ds.save_to_disk(str(tmp_path / "d"))
    got = read_hf_dataset(tmp_path, {"path": "d"})
    with pytest.raises(DataError, match=r"row 0.*2 channels, expected mono.*downmix: mean"):
        got.audio["000000"].load()
    mixed = read_hf_dataset(tmp_path, {"path": "d", "downmix": "mean"})
    x = signals[0][0]
    want = ((x.astype(np.float64) + (-x * 0.5).astype(np.float32)) / 2).astype(np.float32)
    np.testing.assert_allclose(mixed.audio["000000"].load().samples, want, atol=1e-7)
    assert mixed.stats.record()["downmixed"] == 1


def test_not_found_duplicates_limit_and_options(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"nowhere: not found; expected a folder"):
        read_hf_dataset(tmp_path, {"path": "nowhere"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a save_to_disk folder"):
        read_hf_dataset(tmp_path, {"path": "empty"})
    with pytest.raises(ConfigError, match="speling"):
        read_hf_dataset(tmp_path, {"speling": 1})
    ds, _ = _dataset()
    ds.save_to_disk(str(tmp_path / "d"))
    with pytest.raises(DataError, match=r"row 2: duplicated id 's1' \(first at row 0\)"):
        read_hf_dataset(tmp_path, {"path": "d", "id_column": "speaker"})
    got = read_hf_dataset(tmp_path, {"path": "d"}).limited(2)
    assert got.doc_ids() == ["000000", "000001"] and set(got.audio) == {"000000", "000001"}
    ref = got.audio["000001"]
    assert ref.seconds(ref.info()) == pytest.approx(0.1)
