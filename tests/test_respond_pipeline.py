"""The instruction pipeline (capability ``respond``), its scorer and reader, the added filter
steps, and the downstream tasks end to end (a stub model answering known strings, and the
``cascade`` reference model on a few built-in items).

Accuracy counts an unparsed answer as wrong and reports the parse-failure rate over every
item (``shared/reference/downstream-quality-human.md`` section 1.2: AIR-Bench drops parse
failures from the denominator, VoiceBench draws an unseeded random letter).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest
import yaml
from helpers import write_wav

from speechlm_eval import registry
from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.model import RespondResult, SpeechLM
from speechlm_eval.pipelines import PIPELINES
from speechlm_eval.pipelines.respond import check_templates, choose_template, instruction_text
from speechlm_eval.readers.instruction import read_instruction
from speechlm_eval.runner import RunOptions, evaluate
from speechlm_eval.scorers.extract import parse_filters
from speechlm_eval.scorers.instruction import InstructionScorer
from speechlm_eval.scorers.normalizers import get_normalizer

TASKS = Path(__file__).resolve().parents[1] / "tasks"

# --- registration -------------------------------------------------------------------------------
# The reader and the scorer register through pyproject.toml entry points. Where the installed
# metadata is older than the source tree's pyproject.toml (or lacks these two), a throw-away
# distribution on sys.path registers what is missing, as a third-party package would: the
# task index checks every task's reader and scorer, so all of them must be known.

OURS = {
    "readers": {"instruction": "speechlm_eval.readers.instruction:read_instruction"},
    "scorers": {"instruction": "speechlm_eval.scorers.instruction:InstructionScorer"},
}


def _clear_registry() -> None:
    registry._entry_points.cache_clear()
    registry._load.cache_clear()


def _missing_entry_points() -> dict[str, dict[str, str]]:
    import tomllib

    project = tomllib.loads((TASKS.parent / "pyproject.toml").read_text())["project"]
    declared = project.get("entry-points", {})
    out: dict[str, dict[str, str]] = {}
    for kind in ("readers", "scorers"):
        want = {**declared.get(f"speechlm_eval.{kind}", {}), **OURS[kind]}
        have = set(registry.names(kind))
        out[kind] = {k: v for k, v in want.items() if k not in have}
    return out


@pytest.fixture(scope="session")
def registered(tmp_path_factory):
    missing = _missing_entry_points()
    site = None
    if any(missing.values()):
        site = tmp_path_factory.mktemp("site")
        dist = site / "slm_eval_respond_test-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: slm-eval-respond-test\n")
        (dist / "entry_points.txt").write_text(
            "".join(
                f"[speechlm_eval.{kind}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
                for kind, eps in missing.items()
            )
        )
        sys.path.append(str(site))
        _clear_registry()
    yield
    if site is not None:
        sys.path.remove(str(site))
        _clear_registry()


# --- the added filter steps -------------------------------------------------------------------


def chain(steps: list) -> object:
    (c,) = parse_filters([{"name": "f", "steps": steps}])
    return c


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("The answer is seven.", "7"),
        ("Twenty-one!", "21"),
        ("twenty one", "21"),
        ("It is 1,234.5 in total", "1234.5"),  # digits are left alone
        ("minus three", "-3"),
        ("Seven or eight?", None),  # two numbers: ambiguous, never a guess
        ("I have no idea", None),
        ("mp3", None),  # not a number inside a word
    ],
)
def test_number_words_then_number(reply, expected):
    assert chain(["number_words", "number"]).extract(reply).answer == expected


@pytest.mark.parametrize("words", ["seven", "twenty one", "forty two", "ninety nine", "zero"])
def test_number_words_agree_with_word2number(words):
    from word2number import w2n  # an independent implementation

    got = chain(["number_words", "number"]).extract(f"It is {words}.").answer
    assert got == str(w2n.word_to_num(words))


def test_reject_drops_refusals_and_is_case_insensitive_by_default():
    c = chain([{"reject": r"\b(?:sorry|cannot)\b"}, {"choice_letter": "ABC"}])
    assert c.extract("B").answer == "B"
    assert c.extract("Sorry, I CANNOT tell. Answer: B").answer is None
    assert c.extract("Sorry, I CANNOT tell. Answer: B").explanation == "no match at step 1 (reject)"
    strict = chain([{"reject": {"pattern": "sorry", "ignore_case": False}}, "strip"])
    assert strict.extract("Sorry, no").answer == "Sorry, no"
    with pytest.raises(ConfigError, match=r"step 1 \(reject\).*does not compile"):
        chain([{"reject": "("}])


# --- the task's chains on adversarial answers --------------------------------------------------


def _task(name: str) -> dict:
    return yaml.safe_load((TASKS / f"{name}.yaml").read_text())


@pytest.fixture(scope="module")
def qa_scorer():
    return InstructionScorer(_task("downstream_spoken_qa")["scoring"]["options"])


@pytest.mark.parametrize(
    "group, reply, strict, flexible",
    [
        ("arithmetic", "7", "7", "7"),
        ("arithmetic", " 12. ", "12", "12"),
        ("arithmetic", "The answer is seven.", None, "7"),
        ("arithmetic", "Three plus four is seven.", None, "7"),  # the last number
        ("arithmetic", "I'm sorry, I cannot compute three plus four.", None, None),
        ("yes_no", "Yes.", "yes", "yes"),
        ("yes_no", "NO", "no", "no"),
        ("yes_no", "Yes, it is.", None, "yes"),
        ("yes_no", "Nobody knows.", None, None),  # "no" inside a word
        ("yes_no", "Yes and no.", None, None),  # both: ambiguous
        ("yes_no", "Sorry, I can't answer that.", None, None),  # a refusal
        ("choice", "B", "B", "B"),
        ("choice", "(C)", "C", "C"),
        ("choice", "The answer is A.", None, "A"),
        ("choice", "Option C, a hammer.", None, "C"),
        ("choice", "Banana.", None, None),  # a letter inside a word
        ("choice", "A or B", None, None),  # two letters, no statement
        ("choice", "The answer is A or B.", None, None),  # two letters: ambiguous
        ("choice", "A dog is an animal.", None, None),  # the article is not a choice
        ("choice", "Sorry, I cannot choose; maybe B.", None, None),
        ("choice", "", None, None),
    ],
)
def test_spoken_qa_chains_on_adversarial_answers(qa_scorer, group, reply, strict, flexible):
    assert qa_scorer.chain("strict", group).extract(reply).answer == strict
    assert qa_scorer.chain("flexible", group).extract(reply).answer == flexible


def test_asr_clean_chain_strips_labels_and_quotes():
    s = InstructionScorer(_task("downstream_asr")["scoring"]["options"])
    clean = s.chain("clean", None)
    assert clean.extract('Transcription: "The cat sat."').answer == "The cat sat."
    assert clean.extract("The transcript is: hello there").answer == "hello there"
    assert clean.extract("hello\nthere").answer == "hello\nthere"  # several lines kept
    assert clean.extract("the text of the book").answer == "the text of the book"


# --- the scorer --------------------------------------------------------------------------------

CHOICE = {"filters": [{"name": "letter", "steps": [{"choice_letter": "ABC"}]}]}


def test_accuracy_hand_computed_unparsed_is_wrong_and_counted():
    s = InstructionScorer(CHOICE)
    responses = {"a": "B", "b": "The answer is C.", "c": "I do not know", "d": "A", "e": None}
    answers = {"a": ["B"], "b": ["A"], "c": ["A"], "d": ["A", "C"], "e": ["B"]}
    groups = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "y"}
    ((name, (samples, rep)),) = s.score_responses(responses, answers, groups).items()
    assert name == "letter"
    # a right, b wrong, c unparsed, d right (one of two accepted answers), e no text
    points = [1, 0, 0, 1, 0]
    assert [x.values["acc"] for x in samples] == points
    assert rep.metrics["acc"].value == pytest.approx(2 / 5)  # the denominator is every item
    assert rep.metrics["acc"].n == 5
    assert rep.metrics["acc"].stderr == pytest.approx(statistics.stdev(points) / math.sqrt(5))
    assert rep.metrics["parse_failure"].value == pytest.approx(2 / 5)
    assert rep.metrics["parse_failure"].higher_is_better is False
    assert rep.metrics["acc_x"].value == pytest.approx(1 / 2)
    assert rep.metrics["acc_y"].value == pytest.approx(1 / 3)
    assert rep.info == {"n_items": 5, "n_parse_failures": 2}
    assert samples[2].explanation == "no match at step 1 (choice_letter)"
    assert samples[4].explanation == "empty response"


def test_wer_mode_agrees_with_jiwer_and_unparsed_is_all_deletions():
    opts = {
        "metric": "wer",
        "bootstrap_resamples": 0,
        "filters": [{"name": "quoted", "steps": [{"regex": '"(.*)"'}]}],
    }
    s = InstructionScorer(opts)
    refs = {"u1": ["The cat sat on the mat."], "u2": ["Hello there."], "u3": ["Good night."]}
    responses = {"u1": 'It says "the cat sat on a mat"', "u2": "no quotes here", "u3": '"good"'}
    ((_, (samples, rep)),) = s.score_responses(responses, refs).items()
    # Hand count: u1 one substitution of 6 words, u2 unparsed -> 2 deletions, u3 one deletion.
    assert rep.metrics["wer"].value == pytest.approx((1 + 2 + 1) / (6 + 2 + 2))
    norm = get_normalizer("whisper_english")
    hyps = ["the cat sat on a mat", "", "good"]
    want = jiwer.process_words([norm(r[0]) for r in refs.values()], [norm(h) for h in hyps]).wer
    assert rep.metrics["wer"].value == pytest.approx(want)
    assert rep.metrics["parse_failure"].value == pytest.approx(1 / 3)
    assert [x.values["parse_failure"] for x in samples] == [0.0, 1.0, 0.0]
    assert "cer" in rep.metrics and rep.info["n_parse_failures"] == 1


def test_scorer_option_errors():
    with pytest.raises(ConfigError, match="exactly one of 'filters' and 'filters_by_subgroup'"):
        InstructionScorer({})
    two = {
        "filters_by_subgroup": {
            "x": [{"name": "a", "steps": ["strip"]}],
            "y": [{"name": "b", "steps": ["strip"]}],
        }
    }
    with pytest.raises(ConfigError, match="must name the same chains"):
        InstructionScorer(two)
    with pytest.raises(ConfigError, match="primary_filter 'z'"):
        InstructionScorer({**CHOICE, "primary_filter": "z"})
    with pytest.raises(ConfigError, match="metric"):
        InstructionScorer({**CHOICE, "metric": "bleu"})
    by = {"filters_by_subgroup": {"x": [{"name": "a", "steps": ["strip"]}]}}
    with pytest.raises(DataError, match="subgroup 'y' has no filters"):
        InstructionScorer(by).score_responses({"q": "hi"}, {"q": ["hi"]}, {"q": "y"})


# --- templates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, input_kind, message",
    [
        ("Answer this.", "text", r"templates\[0\] \('Answer this.'\): lacks the placeholder"),
        ("Q: {question}", "text", r"unknown placeholder \{question\}"),
        ("Q: {text", "text", "does not format"),
        ("Say {text}", "audio", "gives the question as audio"),
    ],
)
def test_bad_templates_are_one_config_error_naming_task_and_template(template, input_kind, message):
    with pytest.raises(ConfigError, match=r"task 'demo': generation\.templates\[0\]") as e:
        check_templates("demo", [template], input_kind)
    assert len(str(e.value).splitlines()) == 1
    assert e.match(message)


def test_templates_format_text_choices_letters():
    check_templates("demo", ["{text}\n{choices}\nAnswer {letters}. {{literal}}"], "text")
    got = instruction_text(
        "{text}\n{choices}\nAnswer {letters}.", "Which is an animal?", ["a table", "a horse"]
    )
    assert got == "Which is an animal?\nA. a table\nB. a horse\nAnswer A or B."
    assert instruction_text("Say it.", None, None) == "Say it."


def test_template_choice_is_seeded_per_item():
    ids = [f"q{i}" for i in range(60)]
    a = [choose_template(0, d, 3) for d in ids]
    assert a == [choose_template(0, d, 3) for d in ids]  # same seed, same draws
    assert a[10:] == [choose_template(0, d, 3) for d in ids[10:]]  # independent of --limit
    assert set(a) == {0, 1, 2}
    assert a != [choose_template(1, d, 3) for d in ids]


# --- the reader ---------------------------------------------------------------------------------


def manifest(root: Path, rows: list[dict], name: str = "instruction.jsonl") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_reader_reads_audio_text_choices_and_subgroups(tmp_path):
    write_wav(tmp_path / "q1.wav", [0.1] * 1600)
    root = manifest(
        tmp_path,
        [
            {"id": "q1", "audio": "q1.wav", "answer": "7", "subgroup": "math", "voice": "v"},
            {"id": 2, "text": "Is ice cold?", "answer": ["yes", "y"]},
            {"id": "q3", "text": "Pick", "choices": ["x", "y", "z"], "answer": "C"},
        ],
    )
    ds = read_instruction(root, {})
    assert ds.doc_ids() == ["q1", "2", "q3"]
    assert set(ds.files) == {"q1"} and ds.texts["2"] == "Is ice cold?"
    assert ds.answers["2"] == ("yes", "y") and ds.choices["q3"] == ["x", "y", "z"]
    assert ds.subgroups == {"q1": "math"} and ds.meta["q1"] == {"voice": "v"}
    assert ds.identity["n_items"] == 3 and ds.identity["subgroups"] == {"math": 1}
    assert ds.limited(1).doc_ids() == ["q1"] and ds.limited(1).files == {"q1": ds.files["q1"]}


LABELS = {"labels": ["yes", "no"]}
T = {"id": "a", "text": "t"}


@pytest.mark.parametrize(
    "row, options, message",
    [
        ({**T, "answer": "maybe"}, LABELS, "'maybe' is not one of the declared labels"),
        ({"id": "a", "audio": "gone.wav", "answer": "x"}, {}, r"audio file .*gone\.wav does not"),
        ({"id": "a", "audio": "../x.wav", "answer": "x"}, {}, "leaves the folder"),
        ({"id": "a", "answer": "x"}, {}, "neither 'audio' nor 'text'"),
        ({**T, "choices": ["x", "y"], "answer": "C"}, {}, "'C' is not a choice letter"),
        ({**T, "choices": ["x"], "answer": "A"}, {}, "field 'choices'"),
        ({**T, "answer": ""}, {}, "field 'answer'"),
        ({**T, "answer": "x", "subgroup": 3}, {}, "field 'subgroup'"),
    ],
)
def test_reader_bad_rows_are_one_line_naming_file_line_field(tmp_path, row, options, message):
    root = manifest(tmp_path, [{"id": "ok", "text": "t", "answer": "yes"}, row])
    with pytest.raises(DataError, match=message) as e:
        read_instruction(root, options)
    assert "instruction.jsonl: line 2" in str(e.value) and len(str(e.value).splitlines()) == 1


def test_reader_duplicate_id_and_missing_manifest(tmp_path):
    root = manifest(tmp_path, [{"id": "a", "text": "t", "answer": "x"}] * 2)
    with pytest.raises(DataError, match="'a' repeats instruction.jsonl: line 1"):
        read_instruction(root, {})
    with pytest.raises(DataError, match="other.jsonl: the instruction manifest does not exist"):
        read_instruction(root, {"file": "other.jsonl"})
    with pytest.raises(ConfigError, match="labels"):
        read_instruction(root, {"labels": "yes"})


# --- end to end with a stub model ---------------------------------------------------------------


class Oracle(SpeechLM):
    """Answers each request from a table by its key (the item id): known strings."""

    capabilities = frozenset({"respond"})

    def __init__(self, answers: dict[str, str | None], **kw) -> None:
        super().__init__(**kw)
        self.answers = answers
        self.requests: list = []

    def respond(self, requests):
        self.requests += requests
        # None: a speech-only answer (one second of silence), which has no text to parse.
        silence = Audio(np.zeros(16000, dtype=np.float32), 16000)
        return [
            RespondResult(text=t)
            if (t := self.answers[r.key]) is not None
            else RespondResult(audio=silence)
            for r in requests
        ]


TASK_YAML = """\
task: demo_respond
version: 1
capability: respond
dataset: {reader: instruction, subdirs: [demo]}
generation:
  input: text
  templates: ["Q: {text}\\n{choices}\\nReply {letters}.", "Question: {text}\\n{choices}"]
scoring:
  scorer: instruction
  options:
    filters:
      - name: letter
        steps: [{choice_letter: ABC}]
"""


def _demo(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    rows = [
        {"id": f"q{i}", "text": f"question {i}", "choices": ["x", "y", "z"], "answer": "ABC"[i % 3]}
        for i in range(6)
    ]
    manifest(data / "demo", rows)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "demo_respond.yaml").write_text(TASK_YAML)
    return data, tasks


def test_stub_model_end_to_end_hand_computed(tmp_path, registered):
    data, tasks = _demo(tmp_path)
    answers = {
        "q0": "A",
        "q1": "B",
        "q2": "The answer is A.",
        "q3": "no idea",
        "q4": "B",
        "q5": None,
    }
    model = Oracle(answers)
    opts = RunOptions(
        tasks="demo_respond",
        data_dir=str(data),
        include_path=[str(tasks)],
        no_cache=True,
        log_samples=True,
    )
    res = evaluate("oracle", {}, opts, model=model)
    r = res["results"]["demo_respond"]
    # gold A B C A B C: q0 right, q1 right, q2 wrong, q3 unparsed, q4 right, q5 no text
    assert r["acc,letter"] == pytest.approx(3 / 6)
    assert r["parse_failure,letter"] == pytest.approx(2 / 6)
    sent = {q.key: q for q in model.requests}
    assert sent["q0"].audio is None and "question 0\nA. x\nB. y\nC. z" in sent["q0"].text
    sc = res["scoring"]["demo_respond"]
    assert sc["primary_metric"] == "acc,letter" and sc["n_no_text_response"] == 1


def _rows(res_dir: Path, task: str) -> list[dict]:
    (f,) = res_dir.rglob(f"samples_{task}_*.jsonl")
    return [json.loads(x) for x in f.read_text().splitlines()]


def test_stub_model_same_seed_same_rows(tmp_path, registered):
    data, tasks = _demo(tmp_path)
    answers = {f"q{i}": "ABC"[i % 2] for i in range(6)}
    rows = []
    for run, seed in enumerate((3, 3, 4)):
        out = tmp_path / f"out{run}"
        opts = RunOptions(
            tasks="demo_respond",
            data_dir=str(data),
            include_path=[str(tasks)],
            no_cache=True,
            log_samples=True,
            output_path=str(out),
            seed=seed,
        )
        evaluate("oracle", {}, opts, model=Oracle(answers))
        rows.append(_rows(out, "demo_respond"))
    assert rows[0] == rows[1]
    assert [r["template"] for r in rows[0]] != [r["template"] for r in rows[2]]
    first = rows[0][0]
    assert first["instruction"].startswith(("Q: question 0", "Question: question 0"))
    assert {"acc,letter", "parse_failure,letter", "answer,letter", "target"} <= set(first)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from helpers import build_tiny

    out = tmp_path_factory.mktemp("downstream_tiny")
    build_tiny(out, ["spoken_qa", "asr"])
    return out


def test_oracle_on_builtin_downstream_group_scores_perfectly(built, tmp_path, registered):
    qa = read_instruction(built / "spoken_qa/dev", {"file": "spoken_qa.jsonl"})
    from speechlm_eval.readers.transcribed import read_librispeech

    asr = read_librispeech(built / "librispeech/dev-clean", {})
    answers = {d: qa.answers[d][0] for d in qa.doc_ids()} | dict(asr.texts)
    opts = RunOptions(tasks="downstream", data_dir=str(built), no_cache=True)
    res = evaluate("oracle", {}, opts, model=Oracle(answers))
    qa_r, asr_r = res["results"]["downstream_spoken_qa"], res["results"]["downstream_asr"]
    assert qa_r["acc,strict"] == 1.0 and qa_r["acc,flexible"] == 1.0
    assert qa_r["parse_failure,flexible"] == 0.0
    assert {"acc_arithmetic,flexible", "acc_yes_no,flexible", "acc_choice,flexible"} <= set(qa_r)
    assert asr_r["wer,clean"] == 0.0 and asr_r["cer,raw"] == 0.0
    assert res["scoring"]["downstream_asr"]["primary_metric"] == "wer,clean"


def test_respond_is_registered():
    assert "respond" in PIPELINES


# --- the cascade reference model, a few items -----------------------------------------------------


def test_cascade_end_to_end_on_builtin_with_limit(built, tmp_path, registered):
    from speechlm_eval.cli import main

    res_dir = tmp_path / "results"
    t0 = time.perf_counter()
    rc = main(
        [
            "run",
            "--model",
            "cascade",
            "--model_args",
            "asr_args=beam_size=1",
            "--tasks",
            "downstream",
            "--limit",
            "2",
            "--data_dir",
            str(built),
            "--output_path",
            str(res_dir),
            "--no_cache",
            "--log_samples",
        ]
    )
    ran = time.perf_counter() - t0
    assert rc == 0
    res = json.loads(next(res_dir.rglob("results_*.json")).read_text())
    qa, asr = res["results"]["downstream_spoken_qa"], res["results"]["downstream_asr"]
    assert 0.0 <= qa["acc,flexible"] <= 1.0 and 0.0 <= qa["parse_failure,flexible"] <= 1.0
    assert asr["wer,clean"] >= 0.0
    assert res["n-samples"]["downstream_spoken_qa"]["effective"] == 2
    rows = _rows(res_dir, "downstream_spoken_qa")
    assert all(isinstance(r["response"], str) and r["output_audio"] for r in rows)
    print(f"cascade downstream tiny --limit 2: {ran:.1f} s", qa, asr)


# --- AIR-Bench foundation layout ------------------------------------------------------------------


def _air(root: Path, items: list[dict]) -> Path:
    for it in items:
        write_wav(root / f"{it['task_name']}_{it['dataset_name']}" / it["path"], [0.1] * 1600)
    (root / "Foundation_meta.json").write_text(json.dumps(items))
    return root


AIR_ITEM = {
    "path": "a.wav",
    "task_name": "Speaker_Gender_Recognition",
    "dataset_name": "VoxCeleb1",
    "question": "What is the gender of the speaker?",
    "choice_a": "male",
    "choice_b": "female",
    "answer_gt": "female",
    "uniq_id": 17,
}


def test_air_bench_layout(tmp_path):
    item2 = {**AIR_ITEM, "path": "b.wav", "choice_c": "child", "choice_d": "robot"}
    root = _air(tmp_path, [AIR_ITEM, {**item2, "answer_gt": "robot", "uniq_id": 18}])
    ds = read_instruction(root, {"layout": "air-bench", "file": "Foundation_meta.json"})
    assert ds.doc_ids() == ["17", "18"]
    assert ds.answers == {"17": ("B",), "18": ("D",)}
    assert ds.choices["18"] == ["male", "female", "child", "robot"]
    assert ds.files["17"].name == "a.wav" and ds.files["17"].parent.name.endswith("_VoxCeleb1")
    assert ds.subgroups["17"] == "Speaker_Gender_Recognition"
    assert ds.texts["17"] == "What is the gender of the speaker?"


def test_air_bench_answer_must_be_one_choice(tmp_path):
    root = _air(tmp_path, [{**AIR_ITEM, "answer_gt": "Female"}])
    with pytest.raises(DataError, match=r"item 1 \(uniq_id 17\): field 'answer_gt' 'Female'"):
        read_instruction(root, {"layout": "air-bench", "file": "Foundation_meta.json"})


# --- a Hugging Face dataset (Dynamic-SUPERB's columns) --------------------------------------------

HF_TASK = """\
task: demo_hf
version: 1
capability: respond
dataset:
  reader: hf_dataset
  subdirs: [dsuperb]
  options: {audio_column: audio, text_column: instruction, label_column: label, id_column: file}
generation:
  input: audio+text
  templates: ["{text}"]
scoring:
  scorer: instruction
  options:
    filters:
      - name: label
        steps: [{label: ["yes", "no"]}]
"""


def test_hf_dataset_rows_are_instructions(tmp_path, registered):
    datasets = pytest.importorskip("datasets")
    import io

    import soundfile as sf

    def wav(i: int) -> bytes:
        b = io.BytesIO()
        sf.write(b, np.full(800 + 100 * i, 0.05, dtype=np.float32), 16000, format="WAV")
        return b.getvalue()

    n = 4
    ds = datasets.Dataset.from_dict(
        {
            "audio": [{"bytes": wav(i), "path": f"u{i}.wav"} for i in range(n)],
            "file": [f"utt-{i}" for i in range(n)],
            "instruction": [f"Is the speaker saying {i}? Answer yes or no." for i in range(n)],
            "label": ["yes", "no", "yes", "no"],
        }
    ).cast_column("audio", datasets.Audio(decode=False))
    ds.save_to_disk(str(tmp_path / "data" / "dsuperb"))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "demo_hf.yaml").write_text(HF_TASK)
    answers = {"utt-0": "Yes.", "utt-1": "Yes", "utt-2": "I think yes", "utt-3": "no idea"}
    model = Oracle(answers)
    opts = RunOptions(
        tasks="demo_hf", data_dir=str(tmp_path / "data"), include_path=[str(tasks)], no_cache=True
    )
    res = evaluate("oracle", {}, opts, model=model)
    r = res["results"]["demo_hf"]
    # utt-0 right, utt-1 wrong, utt-2 right, utt-3 "no idea" -> "no": right (a label rule's
    # known weakness, see extract.py: negation is not understood)
    assert r["acc,label"] == pytest.approx(3 / 4) and r["parse_failure,label"] == 0.0
    sent = {q.key: q for q in model.requests}
    assert sent["utt-1"].text == "Is the speaker saying 1? Answer yes or no."
    assert sent["utt-1"].audio.samples.size == 900
