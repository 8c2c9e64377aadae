"""The sentiment judges ``text-sentiment`` and ``speech-sentiment`` (STSP).

VADER is checked against vaderSentiment called directly; the transformers backends run on tiny
randomly initialised classifiers built and saved here (a RoBERTa with a word-level tokenizer, a
wav2vec2) and are checked against a forward pass written in the test; ``asr+text`` runs on a
fake ASR judge and once on the packaged faster-whisper with a Piper clip. Until pyproject names
the judges, the tests register them (and the fake ASR) in the judge registry themselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from speechlm_eval import registry
from speechlm_eval.audio import Audio
from speechlm_eval.cache import ResultCache
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.execute import ExecStats
from speechlm_eval.judges import ASRJudge, clear_loaded, judge_key, load_judge, path_sha256
from speechlm_eval.judges.sentiment import (
    EXPRESSO_EMOTION_2_SENTIMENT,
    LABELS,
    SpeechSentimentJudge,
    TextSentimentJudge,
    parse_label_map,
)

SR = 16000
TEXTS = [
    "i love this wonderful day",
    "the meeting is at noon",
    "what a terrible mistake",
    "sad news",
    "i love this wonderful day",
    "noon",
]
WORDS = sorted({w for t in TEXTS for w in t.split()})


class FakeASR(ASRJudge):
    """Transcript = ``SCRIPT[number of samples]``; records the sizes of every batch."""

    SCRIPT: ClassVar[dict[int, str]] = {
        8000: "I love this wonderful day!",
        12000: "This is a terrible mistake.",
        4000: "The meeting is at noon.",
    }
    OPTIONS: ClassVar[dict[str, tuple[type, Any]]] = {"batch_size": (int, 2), "tag": (str, "v1")}

    def __init__(self, name: str = "fake-asr", **options: Any) -> None:
        super().__init__(name, **options)
        self.batches: list[list[int]] = []

    def _transcribe_batch(self, samples: list[np.ndarray]) -> list[str]:
        self.batches.append([s.size for s in samples])
        return [self.SCRIPT[s.size] for s in samples]

    def identity(self) -> dict[str, Any]:
        return {"judge": self.name, "tag": self.options["tag"], "input": self._input_identity()}


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """The two judges and the fake ASR in the judge registry, as entry points would put them."""
    eps = registry._entry_points("judges")
    for name, cls in (
        ("text-sentiment", TextSentimentJudge),
        ("speech-sentiment", SpeechSentimentJudge),
        ("fake-asr", FakeASR),
    ):
        monkeypatch.setitem(eps, name, SimpleNamespace(load=lambda cls=cls: cls, dist=None))
    clear_loaded()
    yield
    clear_loaded()


def noise(n: int, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio((0.1 * rng.standard_normal(n)).astype(np.float32), SR)


# --- VADER -------------------------------------------------------------------------------------


def test_vader_hand_picked_sentences_and_equal_to_vader_itself() -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    judge = load_judge("text-sentiment")
    assert isinstance(judge, TextSentimentJudge) and judge.kind == "sentiment"
    assert judge is load_judge("text-sentiment", backend="vader", positive_threshold="0.05")
    known = {
        "I love this wonderful day!": "positive",
        "What a great and happy surprise.": "positive",
        "This is a terrible, awful mistake.": "negative",
        "I hate it and I am very sad.": "negative",
        "The meeting is at noon.": "neutral",
        "The train leaves from platform four.": "neutral",
    }
    rows = judge.classify(list(known))
    assert [r["label"] for r in rows] == list(known.values())
    direct = SentimentIntensityAnalyzer()
    for text, row in zip(known, rows, strict=True):
        raw = direct.polarity_scores(text)
        assert row["compound"] == raw["compound"]
        assert row["scores"] == {
            "positive": raw["pos"],
            "negative": raw["neg"],
            "neutral": raw["neu"],
        }
        c = raw["compound"]
        want = "positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral"
        assert row["label"] == want
        assert set(row["scores"]) == set(LABELS)


def test_vader_threshold_boundaries_are_inclusive() -> None:
    """The README's rule: positive at compound >= +t, negative at compound <= -t."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    direct = SentimentIntensityAnalyzer()
    pos, neg = direct.polarity_scores("ok")["compound"], direct.polarity_scores("no")["compound"]
    assert pos > 0.05 and neg < -0.05  # both positive/negative at the default thresholds

    def label(text: str, **opts: Any) -> str:
        return load_judge("text-sentiment", **opts).classify([text])[0]["label"]

    assert label("ok") == "positive" and label("no") == "negative"
    assert label("ok", positive_threshold=pos) == "positive"  # equal: still positive
    assert label("ok", positive_threshold=pos + 1e-4) == "neutral"  # just above: neutral
    assert label("no", negative_threshold=neg) == "negative"
    assert label("no", negative_threshold=neg - 1e-4) == "neutral"
    assert label("the meeting is at noon") == "neutral"  # compound exactly 0
    assert label("the meeting is at noon", positive_threshold=0.0) == "positive"
    ident = load_judge("text-sentiment", positive_threshold=0.3).identity()
    assert ident["thresholds"] == {"positive": 0.3, "negative": -0.05}
    assert ident["package"] == "vaderSentiment" and ident["version"]
    assert judge_key(load_judge("text-sentiment", positive_threshold=0.3)) != judge_key(
        load_judge("text-sentiment")
    )


def test_vader_identity_hashes_the_shipped_lexicon() -> None:
    import vaderSentiment

    ident = load_judge("text-sentiment").identity()
    lex = Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"
    assert ident["lexicon"]["vader_lexicon.txt"] == path_sha256(lex)
    assert ident["backend"] == "vader"
    json.dumps(ident)


def test_text_classify_caches_and_dedupes(tmp_path: Path) -> None:
    judge = load_judge("text-sentiment", batch_size=2)
    stats = ExecStats()
    first = judge.classify(TEXTS, stats, ResultCache(tmp_path / "c.sqlite"))
    assert stats.computed == 5 and first[0] == first[4]  # the repeated text is judged once
    again = ExecStats()
    assert judge.classify(TEXTS, again, ResultCache(tmp_path / "c.sqlite")) == first
    assert again.computed == 0 and again.cache_hits == len(TEXTS)
    with pytest.raises(TypeError, match="input 1 is int"):
        judge.classify(["fine", 3])  # type: ignore[list-item]


def test_one_line_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    cases = [
        ("text-sentiment", {"backend": "bert"}, "backend"),
        ("text-sentiment", {"backend": "transformers"}, "'model'.*required"),
        ("text-sentiment", {"backend": "transformers", "model": str(missing)}, "not a local"),
        ("text-sentiment", {"backend": "transformers", "model": str(tmp_path)}, "config.json"),
        ("text-sentiment", {"model": str(tmp_path)}, "applies to backend=transformers only"),
        ("text-sentiment", {"positive_threshold": -0.1}, "must be below"),
        ("text-sentiment", {"positive_threshold": 2}, "positive_threshold"),
        ("text-sentiment", {"label_map": "a:good"}, "labels must be positive"),
        ("text-sentiment", {"label_map": "a=b"}, "class:label pairs"),
        ("text-sentiment", {"batch_size": 0}, "batch_size"),
        ("speech-sentiment", {"backend": "transformers", "model": str(missing)}, "not a local"),
        ("speech-sentiment", {"backend": "transformers"}, "'model'.*required"),
        ("speech-sentiment", {"model": str(missing)}, "applies to backend=transformers only"),
        ("speech-sentiment", {"backend": "transformers", "asr": "x"}, "backend=asr\\+text only"),
        ("speech-sentiment", {"asr": "text-sentiment", "asr_args": {}}, "not an ASR judge"),
        ("speech-sentiment", {"asr": "fake-asr", "text": "fake-asr"}, "not a text sentiment"),
        ("speech-sentiment", {"classes": "some"}, "classes"),
        ("speech-sentiment", {"asr_args": "beam_size"}, "'asr_args': expected k=v;k=v"),
        ("speech-sentiment", {"asr": "fake-asr", "asr_args": "tag=v1;batch_size=0"}, "batch_size"),
    ]
    for name, options, match in cases:
        with pytest.raises(ConfigError, match=match) as e:
            load_judge(name, **options)
        assert "\n" not in str(e.value), (name, options)
        assert name in str(e.value)


def test_label_map_spellings() -> None:
    want = {"label_0": "negative", "label_1": "neutral", "label_2": "positive"}
    assert parse_label_map("LABEL_0:negative/label_1:Neutral;label_2:positive") == want
    assert parse_label_map("label_2:positive label_0:negative label_1:neutral") == want
    assert (
        parse_label_map({"LABEL_1": "neutral", "label_0": "NEGATIVE", "label_2": "positive"})
        == want
    )
    with pytest.raises(ValueError, match="twice"):
        parse_label_map("a:positive/A:negative")


# --- transformers text classifier: a tiny random RoBERTa ---------------------------------------


def _save_tiny_roberta(path: Path, id2label: dict[int, str], seed: int) -> None:
    """A 1-layer RoBERTa sequence classifier and a word-level tokenizer (<s> text </s>)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        PreTrainedTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=32,
    )
    tok.save_pretrained(path)
    cfg = RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        initializer_range=1.0,  # large random weights: the argmax class differs between texts
    )
    torch.manual_seed(seed)
    RobertaForSequenceClassification(cfg).save_pretrained(path)


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("roberta")
    _save_tiny_roberta(d, {0: "NEGATIVE", 1: "Neutral", 2: "positive"}, seed=0)
    return d


@pytest.fixture(scope="module")
def roberta_labels_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("roberta_labels")
    _save_tiny_roberta(d, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2", 3: "LABEL_3"}, seed=1)
    return d


def _direct_text(path: Path, text: str) -> tuple[str, np.ndarray]:
    """Argmax class (lower-cased) and softmax of one text, no padding, straight from the folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
    model.eval()
    with torch.no_grad():
        logits = model(**tok([text], return_tensors="pt")).logits[0]
    probs = torch.softmax(logits, -1).numpy()
    return model.config.id2label[int(torch.argmax(logits))].lower(), probs


def test_text_transformers_equals_a_direct_forward_pass(roberta_dir: Path) -> None:
    judge = load_judge(
        "text-sentiment", backend="transformers", model=str(roberta_dir), batch_size=4
    )
    rows = judge.classify(TEXTS)
    classes = []
    for text, row in zip(TEXTS, rows, strict=True):
        cls, probs = _direct_text(roberta_dir, text)
        classes.append(cls)
        assert row["class"] == cls and row["label"] == cls  # identity map on the 3 labels
        got = [row["classes"][c] for c in ("negative", "neutral", "positive")]
        np.testing.assert_allclose(got, probs, rtol=1e-5, atol=1e-6)
        assert row["scores"] == pytest.approx(row["classes"], abs=0)
    assert len(set(classes)) >= 2  # the random model does not give every text one class
    single = load_judge(
        "text-sentiment", backend="transformers", model=str(roberta_dir), batch_size=1
    )
    one_by_one = single.classify(TEXTS)
    assert [r["label"] for r in one_by_one] == [r["label"] for r in rows]
    for a, b in zip(rows, one_by_one, strict=True):  # padding in a batch changes nothing
        assert a["classes"] == pytest.approx(b["classes"], abs=1e-6)


def test_text_transformers_label_map_and_unmapped_class(roberta_labels_dir: Path) -> None:
    d = str(roberta_labels_dir)
    with pytest.raises(ConfigError, match=f"{d} has class 'label_0'.*label_map") as e:
        load_judge("text-sentiment", backend="transformers", model=d)
    assert "\n" not in str(e.value)
    lmap = "label_0:negative/label_1:neutral/label_2:positive"
    with pytest.raises(ConfigError, match="class 'label_3'"):
        load_judge("text-sentiment", backend="transformers", model=d, label_map=lmap)
    four = {
        "label_0": "negative",
        "label_1": "neutral",
        "label_2": "positive",
        "label_3": "positive",
    }
    judge = load_judge("text-sentiment", backend="transformers", model=d, label_map=four)
    rows = judge.classify(TEXTS)
    for text, row in zip(TEXTS, rows, strict=True):
        cls, probs = _direct_text(roberta_labels_dir, text)
        assert row["class"] == cls and row["label"] == four[cls]
        assert row["scores"]["positive"] == pytest.approx(probs[2] + probs[3], abs=1e-6)
        assert row["scores"]["negative"] == pytest.approx(probs[0], abs=1e-6)
        assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-6)


def test_text_transformers_identity_and_cache(roberta_dir: Path, tmp_path: Path) -> None:
    judge = load_judge("text-sentiment", backend="transformers", model=str(roberta_dir))
    ident = judge.identity()
    assert ident["backend"] == "transformers" and ident["package"] == "transformers"
    assert ident["model"]["weights_hash"] == path_sha256(roberta_dir / "model.safetensors")
    assert ident["model"]["architecture"] == "RobertaForSequenceClassification"
    assert ident["classes"] == ["negative", "neutral", "positive"]
    assert ident["label_map"] == {k: k for k in LABELS}
    assert ident["max_length"] == 32  # the option's 512, capped by the tokenizer's 32
    json.dumps(ident)
    # A text longer than the model's positions is truncated, not an error.
    long_text = " ".join(TEXTS * 10)
    (row,) = judge.classify([long_text])
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(roberta_dir), local_files_only=True)
    enc = tok([long_text], truncation=True, max_length=32, return_tensors="pt")
    assert enc["input_ids"].shape[1] == 32 and len(long_text.split()) > 32
    model = AutoModelForSequenceClassification.from_pretrained(str(roberta_dir)).eval()
    with torch.no_grad():
        probs = torch.softmax(model(**enc).logits[0], -1).numpy()
    got = [row["classes"][c] for c in ("negative", "neutral", "positive")]
    np.testing.assert_allclose(got, probs, rtol=1e-5, atol=1e-6)
    assert judge_key(judge) != judge_key(load_judge("text-sentiment"))
    first = judge.classify(TEXTS, ExecStats(), ResultCache(tmp_path / "c.sqlite"))
    again = ExecStats()
    assert judge.classify(TEXTS, again, ResultCache(tmp_path / "c.sqlite")) == first
    assert again.cache_hits == len(TEXTS) and again.computed == 0


# --- transformers speech classifier: a tiny random wav2vec2 ------------------------------------

CLIPS = [noise(n, i) for i, n in enumerate((8000, 16000, 4000, 12000, 6000, 9000))]
STYLES = {0: "Default", 1: "happy", 2: "sad", 3: "angry", 4: "whisper"}


def _save_tiny_wav2vec2(path: Path, masked: bool, seed: int) -> None:
    import transformers as T

    T.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SR, do_normalize=True, return_attention_mask=masked
    ).save_pretrained(path)
    cfg = T.Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer" if masked else "group",
        do_stable_layer_norm=masked,
        classifier_proj_size=8,
        num_labels=len(STYLES),
        id2label=STYLES,
        label2id={v: k for k, v in STYLES.items()},
    )
    torch.manual_seed(seed)
    model = T.Wav2Vec2ForSequenceClassification(cfg).eval()
    # Mean pooling makes a random model's pooled features alike for every clip: centre the
    # classifier on the test clips' mean and enlarge it, so that the argmax class varies.
    fe = T.Wav2Vec2FeatureExtractor.from_pretrained(path)
    pooled = []
    hook = model.projector.register_forward_hook(lambda m, i, o: pooled.append(o.mean(dim=1)[0]))
    with torch.no_grad():
        for a in CLIPS:
            model(input_values=fe(a.samples, sampling_rate=SR, return_tensors="pt").input_values)
        hook.remove()
        w = 50.0 * torch.randn_like(model.classifier.weight)
        model.classifier.weight.copy_(w)
        model.classifier.bias.copy_(-w @ torch.stack(pooled).mean(dim=0))
    model.save_pretrained(path)


@pytest.fixture(scope="module")
def w2v_dirs(tmp_path_factory) -> dict[bool, Path]:
    out = {}
    for masked in (True, False):
        d = tmp_path_factory.mktemp(f"w2v_{'masked' if masked else 'plain'}")
        _save_tiny_wav2vec2(d, masked, seed=3)
        out[masked] = d
    return out


def _direct_audio(
    path: Path, audio: Audio, keep: list[int] | None = None
) -> tuple[str, np.ndarray]:
    import transformers as T

    fe = T.AutoFeatureExtractor.from_pretrained(str(path), local_files_only=True)
    model = T.AutoModelForAudioClassification.from_pretrained(str(path), local_files_only=True)
    model.eval()
    x = fe(audio.samples, sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        logits = model(input_values=x["input_values"]).logits[0]
    names = [model.config.id2label[i].lower() for i in range(model.config.num_labels)]
    if keep is not None:
        logits, names = logits[keep], [names[i] for i in keep]
    return names[int(torch.argmax(logits))], torch.softmax(logits, -1).numpy()


# The Expresso map plus 'whisper' (so that every class the random model picks is mapped).
FULL_MAP = {**EXPRESSO_EMOTION_2_SENTIMENT, "whisper": "neutral"}


@pytest.mark.parametrize("masked", [True, False])
def test_speech_transformers_equals_a_direct_forward_pass(w2v_dirs, masked: bool) -> None:
    d = w2v_dirs[masked]
    emap = FULL_MAP
    opts = {"backend": "transformers", "model": str(d), "emotion_map": emap}
    judge = load_judge("speech-sentiment", batch_size=4, **opts)
    assert judge.masked is masked
    rows = judge.classify(CLIPS)
    classes = []
    for audio, row in zip(CLIPS, rows, strict=True):
        cls, probs = _direct_audio(d, audio)
        classes.append(cls)
        assert row["class"] == cls and row["label"] == emap[cls]
        got = [row["classes"][STYLES[i].lower()] for i in range(len(STYLES))]
        np.testing.assert_allclose(got, probs, rtol=1e-4, atol=1e-5)
        assert row["scores"]["negative"] == pytest.approx(probs[2] + probs[3], abs=1e-5)
    assert len(set(classes)) >= 2
    single = load_judge("speech-sentiment", batch_size=1, **opts).classify(CLIPS)
    assert [r["class"] for r in single] == classes
    for a, b in zip(rows, single, strict=True):
        assert a["classes"] == pytest.approx(b["classes"], abs=1e-5)


def test_speech_transformers_unmapped_class_and_classes_mapped(w2v_dirs) -> None:
    d = w2v_dirs[True]
    cls0, _ = _direct_audio(d, CLIPS[0])
    # A map without the class clip 0 gets: a one-line DataError naming the class and the folder.
    partial = {k: v for k, v in FULL_MAP.items() if k != cls0}
    judge = load_judge(
        "speech-sentiment", backend="transformers", model=str(d), emotion_map=partial
    )
    with pytest.raises(DataError, match=f"model {d} predicted class '{cls0}'") as e:
        judge.classify(CLIPS[:1])
    assert "\n" not in str(e.value)
    # classes=mapped: softmax and argmax over the mapped classes only (SPIRIT-LM's
    # emotions_to_predict); here the default Expresso map, without 'whisper' (index 4).
    mapped = load_judge("speech-sentiment", backend="transformers", model=str(d), classes="mapped")
    rows = mapped.classify(CLIPS)
    for audio, row in zip(CLIPS, rows, strict=True):
        cls, probs = _direct_audio(d, audio, keep=[0, 1, 2, 3])
        assert row["class"] == cls and row["label"] == EXPRESSO_EMOTION_2_SENTIMENT[cls]
        assert set(row["classes"]) == set(EXPRESSO_EMOTION_2_SENTIMENT)
        assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(
            [row["classes"][STYLES[i].lower()] for i in range(4)], probs, rtol=1e-4, atol=1e-5
        )
    with pytest.raises(ConfigError, match="no class 'calm'"):
        load_judge(
            "speech-sentiment",
            backend="transformers",
            model=str(d),
            classes="mapped",
            emotion_map="happy:positive/calm:neutral",
        )


def test_speech_transformers_resamples_identity_and_cache(w2v_dirs, tmp_path: Path) -> None:
    d = w2v_dirs[True]
    judge = load_judge(
        "speech-sentiment", backend="transformers", model=str(d), emotion_map=FULL_MAP
    )
    ident = judge.identity()
    assert ident["model"]["weights_hash"] == path_sha256(d / "model.safetensors")
    assert ident["model"]["architecture"] == "Wav2Vec2ForSequenceClassification"
    assert (
        ident["emotion_map"]["happy"] == "positive" and ident["emotion_map"]["whisper"] == "neutral"
    )
    assert ident["input"]["sample_rate"] == SR
    json.dumps(ident)
    stats = ExecStats()
    at_8k = Audio(CLIPS[1].samples[::2].copy(), 8000)
    first = judge.classify([*CLIPS, CLIPS[0], at_8k], stats, ResultCache(tmp_path / "c.sqlite"))
    assert stats.computed == len(CLIPS) + 1 and first[0] == first[len(CLIPS)]
    assert stats.resampled == {"8000->16000": 1}
    again = ExecStats()
    assert (
        judge.classify([*CLIPS, CLIPS[0], at_8k], again, ResultCache(tmp_path / "c.sqlite"))
        == first
    )
    assert again.computed == 0 and again.cache_hits == len(CLIPS) + 2


# --- asr+text ------------------------------------------------------------------------------------


def test_asr_text_composes_asr_and_text_judges(tmp_path: Path) -> None:
    judge = load_judge("speech-sentiment", asr="fake-asr", asr_args="tag=v2;batch_size=2")
    assert judge.backend == "asr+text"
    assert isinstance(judge.asr, FakeASR) and judge.asr.options["tag"] == "v2"
    assert judge.text is load_judge("text-sentiment")  # the nested judges are the shared ones
    audios = [noise(8000, 0), noise(12000, 1), noise(4000, 2), noise(8000, 0)]
    stats = ExecStats()
    rows = judge.classify(audios, stats, ResultCache(tmp_path / "c.sqlite"))
    texts = [FakeASR.SCRIPT[a.samples.size] for a in audios]
    assert [r["transcript"] for r in rows] == texts
    assert [r["label"] for r in rows] == ["positive", "negative", "neutral", "positive"]
    direct = load_judge("text-sentiment").classify(texts)
    assert [{k: v for k, v in r.items() if k != "transcript"} for r in rows] == direct
    assert judge.asr.batches == [[12000, 8000], [4000]]  # longest first, deduplicated
    # Repeat: every step comes from the cache (ASR and text), nothing is transcribed again.
    again = ExecStats()
    assert judge.classify(audios, again, ResultCache(tmp_path / "c.sqlite")) == rows
    assert again.computed == 0 and again.cache_hits == 2 * len(audios)
    assert len(judge.asr.batches) == 2
    ident = judge.identity()
    assert ident["backend"] == "asr+text" and ident["method"].startswith("ASR transcript")
    assert ident["asr"]["tag"] == "v2" and ident["text"]["backend"] == "vader"
    assert "code" in ident["asr"] and "code" in ident["text"]
    other = load_judge("speech-sentiment", asr="fake-asr", asr_args={"tag": "v3"})
    assert judge_key(other) != judge_key(judge)
    # text_args reach the text judge: a positive threshold above the first text's compound.
    assert 0.05 < direct[0]["compound"] < 0.95
    strict = load_judge(
        "speech-sentiment", asr="fake-asr", asr_args="tag=v2", text_args="positive_threshold=0.95"
    )
    assert strict.text is load_judge("text-sentiment", positive_threshold=0.95)
    assert [r["label"] for r in strict.classify(audios)] == [
        "neutral",
        "negative",
        "neutral",
        "neutral",
    ]
    assert judge_key(strict) != judge_key(judge)


def test_asr_text_default_on_packaged_whisper_and_a_piper_clip() -> None:
    """The offline default end to end: Piper speaks, the packaged Whisper tiny.en listens, VADER
    judges the words."""
    from speechlm_eval.builtin.voices import PiperJoe

    voice = PiperJoe()
    audios = [
        Audio(voice.text(t), SR)
        for t in ("I love this wonderful day.", "This is a terrible mistake.")
    ]
    judge = load_judge("speech-sentiment", asr_args="beam_size=1")
    assert judge.asr.name == "faster-whisper" and judge.text.name == "text-sentiment"
    rows = judge.classify(audios)
    words = [" ".join(r["transcript"].lower().strip(".").split()) for r in rows]
    assert words == ["i love this wonderful day", "this is a terrible mistake"]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert judge.identity()["asr"]["judge"] == "faster-whisper"
