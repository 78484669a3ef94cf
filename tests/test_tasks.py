"""Tests for userlm_env.tasks: procedural generator, GSM8K sharding/loading, LiC loading, specs."""

from __future__ import annotations

import ast
import json
import operator
import pathlib
import re
import sys
import types
from fractions import Fraction

import numpy as np
import pytest

from userlm_env.tasks import (
    ProceduralMathTasks,
    Shard,
    ShardedTask,
    TaskList,
    TaskSource,
    gsm8k_gold,
    load_gsm8k_jsonl,
    load_lic_json,
    make_task_source,
    shard_gsm8k_question,
)

NUM = re.compile(r"-?\d[\d,]*\.?\d*")


def numbers(text: str) -> set[str]:
    """Numbers in a text, as the external contract check reads them."""
    return {n.replace(",", "").rstrip(".") for n in NUM.findall(text)}


@pytest.fixture(scope="module")
def shared_data() -> pathlib.Path:
    """The shared data folder next to the repo root (skip when absent)."""
    path = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data folder not found: {path}")
    return path


@pytest.fixture(scope="module")
def procedural_tasks() -> list[ShardedTask]:
    """Tasks for seeds 0..399."""
    gen = ProceduralMathTasks()
    return [gen.generate(seed) for seed in range(400)]


def _task(task_id: str = "t/0", answer: str = "5") -> ShardedTask:
    return ShardedTask(task_id, "A has 5. How many?", (Shard(1, "How many?"), Shard(2, "A has 5.")), answer)


# --------------------------------------------------------------------------- procedural


def test_procedural_same_seed_same_task():
    """generate is a pure function of the seed, across instances."""
    a, b = ProceduralMathTasks(), ProceduralMathTasks()
    for seed in (0, 1, 12345, 2**31 - 1):
        ta, tb = a.generate(seed), b.generate(seed)
        assert ta == tb
        assert ta.metadata == tb.metadata
        assert ta.task_id == f"procedural/{seed}"


def test_procedural_different_seeds_differ(procedural_tasks):
    """Different seeds give different problems (almost always)."""
    instructions = {t.instruction for t in procedural_tasks}
    assert len(instructions) >= 0.98 * len(procedural_tasks)


def test_procedural_sample_uses_only_rng():
    """sample() is deterministic given the generator state and advances it."""
    gen = ProceduralMathTasks()
    first = [gen.sample(np.random.default_rng(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = np.random.default_rng(7)
    assert gen.sample(rng) == first[0]
    assert gen.sample(rng) != first[0]


def test_procedural_shard_counts(procedural_tasks):
    """Every task has 3..6 shards with ids 1..k, and every count occurs."""
    counts = {t.num_shards for t in procedural_tasks}
    assert counts == {3, 4, 5, 6}
    for t in procedural_tasks:
        assert [s.shard_id for s in t.shards] == list(range(1, t.num_shards + 1))
        assert t.kind == "math"
        assert all(0 < len(s.text.split()) <= 25 for s in t.shards), t.shards


@pytest.mark.parametrize(("spec", "low", "high"), [("procedural:easy", 3, 4), ("procedural:hard", 5, 6)])
def test_procedural_difficulty(spec, low, high):
    """The easy and hard specs keep the shard count in range."""
    source = make_task_source(spec)
    rng = np.random.default_rng(0)
    counts = {source.sample(rng).num_shards for _ in range(100)}
    assert counts == set(range(low, high + 1))


def test_procedural_question_first_and_no_leaks(procedural_tasks):
    """Shard 1 is a question without numbers; later numbers and the answer are not in it."""
    for t in procedural_tasks:
        first = t.shards[0].text
        assert first.endswith("?"), first
        later = set().union(*(numbers(s.text) for s in t.shards[1:]))
        assert later, t
        assert not numbers(first) & later, t
        assert t.answer not in numbers(first), t
        assert t.instruction.endswith(first)
        for s in t.shards[1:]:
            assert s.text in t.instruction
            assert numbers(s.text), f"condition shard without a number: {s.text!r}"


def test_procedural_numbers_distinct(procedural_tasks):
    """Numbers of different shards differ from each other and from the answer."""
    for t in procedural_tasks:
        found = [n for s in t.shards[1:] for n in re.findall(r"\d+", s.text)]
        assert len(found) == len(set(found)), t
        assert t.answer not in found, t


def _eval(expression: str) -> Fraction:
    """Independent exact evaluator for + - * / over integer literals."""
    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

    def ev(node):
        if isinstance(node, ast.BinOp):
            return ops[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Constant):
            return Fraction(node.value)
        raise AssertionError(f"unexpected node {ast.dump(node)}")

    return ev(ast.parse(expression, mode="eval").body)


def test_procedural_answer_recomputed_from_metadata(procedural_tasks):
    """The metadata expression uses only later-shard numbers and evaluates to the answer."""
    for t in procedural_tasks[:150]:
        expr = t.metadata["expression"]
        later = [n for s in t.shards[1:] for n in re.findall(r"\d+", s.text)]
        used = re.findall(r"\d+", expr)
        assert sorted(used) == sorted(later), (expr, t.shards)
        value = _eval(expr)
        assert value.denominator == 1 and value > 0
        assert str(value.numerator) == t.answer
        assert t.answer in t.metadata["solution"]


def test_procedural_templates_varied(procedural_tasks):
    """At least 8 templates and many people appear over 200 seeds."""
    templates = {t.metadata["template"] for t in procedural_tasks[:200]}
    assert len(templates) >= 8, templates
    names = {t.shards[1].text.split()[0] for t in procedural_tasks[:200]}
    assert len(names) >= 20
    questions = {re.sub(r"[A-Z][a-z]+", "X", t.shards[0].text) for t in procedural_tasks[:200]}
    assert len(questions) >= 20


def test_procedural_bad_range():
    """A shard range outside 3..6 is refused."""
    with pytest.raises(ValueError, match="min_shards"):
        ProceduralMathTasks(min_shards=2)
    with pytest.raises(ValueError, match="max_shards=7"):
        ProceduralMathTasks(max_shards=7)


# --------------------------------------------------------------------------- gold answers


@pytest.mark.parametrize(
    ("raw", "gold"),
    [
        ("so 3 + 4 = 7\n#### 72", "72"),
        ("#### 1,000", "1000"),
        ("#### $5.50", "5.5"),
        ("#### 7.0", "7"),
        ("#### -3", "-3"),
        ("#### 012", "12"),
        ("18.", "18"),
        (42, "42"),
        (2.25, "2.25"),
    ],
)
def test_gsm8k_gold(raw, gold):
    """The gold number is normalised for clean comparison."""
    assert gsm8k_gold(raw) == gold


def test_gsm8k_gold_rejects_non_numbers():
    """A missing number is an error that quotes the text."""
    with pytest.raises(ValueError, match="seven"):
        gsm8k_gold("#### seven")


# --------------------------------------------------------------------------- gsm8k sharding


def test_shard_decimals_and_question_first():
    """Decimals do not split; the question comes first, conditions in order."""
    shards = shard_gsm8k_question("A pen costs $1.50. A book costs $12.25 more. How much do both cost?")
    assert shards == ["How much do both cost?", "A pen costs $1.50.", "A book costs $12.25 more."]


def test_shard_titles_and_times():
    """Mr./Dr. never end a sentence; a.m. ends one only before a capitalised word."""
    shards = shard_gsm8k_question(
        "Mr. Lee meets Dr. Cho at 8 a.m. on Monday. They talk until 10 a.m. Then Mr. Lee works 3 hours. "
        "When does he finish?"
    )
    assert shards == [
        "When does he finish?",
        "Mr. Lee meets Dr. Cho at 8 a.m. on Monday.",
        "They talk until 10 a.m.",
        "Then Mr. Lee works 3 hours.",
    ]


def test_shard_condition_question_kept_whole():
    """'If ..., how ...?' stays one question shard."""
    shards = shard_gsm8k_question("Tina makes $18 an hour. If she works 10 hours, how much does she make?")
    assert shards == ["If she works 10 hours, how much does she make?", "Tina makes $18 an hour."]


def test_shard_notes_after_question_and_imperative():
    """A note after the question becomes the last shard; 'calculate ...' counts as the question."""
    shards = shard_gsm8k_question(
        "Jeff has 16 GB of storage. A song takes 30 MB. How many songs fit? (There are 1000 MB in a GB.)"
    )
    assert shards == [
        "How many songs fit?",
        "Jeff has 16 GB of storage.",
        "A song takes 30 MB.",
        "There are 1000 MB in a GB.",
    ]
    shards = shard_gsm8k_question("A pen costs $9. If a pencil costs $2, calculate the total cost of both items.")
    assert shards == ["If a pencil costs $2, calculate the total cost of both items.", "A pen costs $9."]


def test_shard_quoted_question_mark_does_not_split():
    """A '?' inside a title followed by lower case does not end the sentence."""
    shards = shard_gsm8k_question(
        'There are 15 "Where\'s Waldo?" books. Each has 30 puzzles. How many puzzles are there?'
    )
    assert shards == ["How many puzzles are there?", 'There are 15 "Where\'s Waldo?" books.', "Each has 30 puzzles."]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "How many apples are there if Sam has 3 bags of 4 apples?",  # one sentence
        "Sam has 3 apples. He buys 4 more.",  # no question
        " ".join(f"Box {i} has {i} balls." for i in range(12)) + " How many balls are there?",  # too long
    ],
)
def test_shard_skips(text):
    """Unshardable problems give None."""
    assert shard_gsm8k_question(text) is None


def test_gsm8k_train_yield(shared_data):
    """At least 90% of the GSM8K train split shards into >= 2 shards; skips are counted."""
    tasks = load_gsm8k_jsonl(shared_data / "gsm8k" / "train.jsonl")
    stats = tasks.stats
    assert stats["records"] == 7473
    assert stats["loaded"] == len(tasks) >= 0.9 * 7473
    assert stats["loaded"] + stats.get("skipped", 0) == stats["records"]
    assert sum(v for k, v in stats.items() if k.startswith("skipped:")) == stats.get("skipped", 0)
    first = tasks[0]
    assert first.task_id == "gsm8k-train/0"
    assert first.answer == "72"
    assert first.shards[0].text.endswith("?")
    assert all(t.num_shards >= 2 for t in tasks)
    assert first.metadata["question"].startswith("Natalia")
    assert "####" in first.metadata["solution"]


def test_gsm8k_jsonl_ids_and_skips(tmp_path):
    """Ids use the file stem (or split_name) and line index; unshardable lines are counted."""
    path = tmp_path / "mini.jsonl"
    lines = [
        {"question": "Sam has 3 bags. Each bag has 4 apples. How many apples?", "answer": "3*4=12\n#### 12"},
        {"question": "What is 2 plus 2?", "answer": "#### 4"},
        {"question": "Ann has $1,200. She spends $200. How much is left?", "answer": "#### 1,000"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    tasks = load_gsm8k_jsonl(path)
    assert [t.task_id for t in tasks] == ["gsm8k-mini/0", "gsm8k-mini/2"]
    assert tasks[1].answer == "1000"
    assert tasks.stats["skipped:too_few_shards"] == 1
    assert load_gsm8k_jsonl(path, split_name="dev")[0].task_id == "gsm8k-dev/0"


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ('{"question": "A? B.", "answer": "#### 1"}\n{not json\n', r"line 2.*invalid JSON"),
        ('{"question": "A. How many?", "answer": "#### 1"}\n{"question": "B. How?"}\n', r"line 2.*'answer'"),
        ('["a list"]\n', r"line 1.*JSON object"),
    ],
)
def test_gsm8k_jsonl_malformed(tmp_path, content, pattern):
    """Malformed lines raise ValueError naming the file and the line."""
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=pattern) as info:
        load_gsm8k_jsonl(path)
    assert str(path) in str(info.value)


def test_gsm8k_jsonl_missing_file(tmp_path):
    """A missing file is reported with its path."""
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_gsm8k_jsonl(tmp_path / "nope.jsonl")


def _fake_datasets(monkeypatch, load_dataset):
    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)


def test_gsm8k_hub_offline_error_says_how_to_use_a_local_file(monkeypatch):
    """A hub failure is wrapped in an error that points to 'gsm8k:PATH'."""

    def fail(*args, **kwargs):
        raise ConnectionError("no network")

    _fake_datasets(monkeypatch, fail)
    with pytest.raises(RuntimeError, match=r"(?s)'test'.*no network.*gsm8k:/path/to/train\.jsonl"):
        make_task_source("gsm8k:test")


def test_gsm8k_hub_rows_become_tasks(monkeypatch):
    """Hub rows are sharded like local lines, with ids gsm8k-<split>/<row>."""
    calls = []

    def load(repo, config, split):
        calls.append((repo, config, split))
        return [
            {"question": "Sam has 3 bags. Each has 4 apples. How many apples?", "answer": "#### 12"},
            {"question": "Ann has 5 pens. She buys 2. How many pens now?", "answer": "#### 7"},
        ]

    _fake_datasets(monkeypatch, load)
    source = make_task_source("gsm8k")
    assert calls == [("openai/gsm8k", "main", "train")]
    assert [t.task_id for t in source] == ["gsm8k-train/0", "gsm8k-train/1"]
    assert source[1].answer == "7" and source.name == "gsm8k-train"


# --------------------------------------------------------------------------- LiC


def test_lic_sample(shared_data):
    """The shared LiC sample loads with sorted shards, gold numbers and full instructions."""
    path = shared_data / "lic_format_sample.json"
    tasks = load_lic_json(path)
    raw = json.loads(path.read_text())
    assert len(tasks) == len(raw) == tasks.stats["loaded"]
    for task, record in zip(tasks, raw, strict=True):
        assert task.task_id == record["task_id"]
        assert task.answer == gsm8k_gold(record["answer"])
        assert task.instruction == " ".join(record["question"].split())
        assert [s.text for s in task.shards] == [
            s["shard"] for s in sorted(record["shards"], key=lambda s: s["shard_id"])
        ]
    assert make_task_source(f"lic:{path}").stats == tasks.stats


def _lic_record(**overrides):
    record = {
        "task_id": "x/1",
        "task": "math",
        "shards": [{"shard_id": 2, "shard_text": "Sam has 3 bags of 4."}, {"shard_id": 1, "shard_text": "How many?"}],
        "answer": 12,
    }
    record.update(overrides)
    return record


def test_lic_sorts_shards_and_skips_other_kinds(tmp_path):
    """Shards are sorted by id; non-math records are skipped and counted; instruction is rebuilt."""
    path = tmp_path / "lic.json"
    path.write_text(json.dumps([_lic_record(), _lic_record(task_id="c/1", task="code", answer="def f(): pass")]))
    tasks = load_lic_json(path)
    assert len(tasks) == 1
    task = tasks[0]
    assert [s.text for s in task.shards] == ["How many?", "Sam has 3 bags of 4."]
    assert task.answer == "12"
    assert task.instruction == "Sam has 3 bags of 4. How many?"
    assert tasks.stats["skipped:task=code"] == 1
    both = load_lic_json(path, kinds=("math", "code"))
    assert [t.kind for t in both] == ["math", "code"]


@pytest.mark.parametrize(
    ("records", "pattern"),
    [
        (
            [_lic_record(shards=[{"shard_id": 1, "shard": "How many?"}, {"shard_id": 3, "shard": "X has 3."}])],
            r"record 0 \(task_id 'x/1'\).*1\.\.2",
        ),
        ([_lic_record(), _lic_record(task_id="x/2", answer="no number here")], r"record 1 \(task_id 'x/2'\)"),
        ([_lic_record(), {"task": "math", "shards": []}], r"record 1.*task_id"),
        ([_lic_record(shards=[{"shard_id": 1}])], r"record 0.*no text"),
        ([_lic_record(), _lic_record()], r"record 1.*duplicate task_id 'x/1'"),
        ({"task_id": "x"}, r"JSON list"),
    ],
)
def test_lic_malformed(tmp_path, records, pattern):
    """Bad LiC records raise ValueError naming the file and the record."""
    path = tmp_path / "bad_lic.json"
    path.write_text(json.dumps(records))
    with pytest.raises(ValueError, match=pattern) as info:
        load_lic_json(path)
    assert str(path) in str(info.value)


def test_lic_invalid_json(tmp_path):
    """Invalid JSON is reported with file and line."""
    path = tmp_path / "broken.json"
    path.write_text('[\n{"task_id": 1,\n')
    with pytest.raises(ValueError, match=r"broken\.json: invalid JSON at line \d"):
        load_lic_json(path)


# --------------------------------------------------------------------------- sources and specs


def test_task_list_basics():
    """TaskList is a sequence with a name and stats, sampled by rng.integers."""
    tasks = [_task(f"t/{i}") for i in range(5)]
    source = TaskList(tasks, name="mine", stats={"skipped": 2})
    assert isinstance(source, TaskSource)
    assert len(source) == 5 and source[2] is tasks[2] and list(source) == tasks
    assert source.stats == {"loaded": 5, "skipped": 2}
    rng = np.random.default_rng(3)
    expected = tasks[int(np.random.default_rng(3).integers(5))]
    assert source.sample(rng) is expected


def test_task_list_errors():
    """Empty lists, duplicates and non-tasks are refused with the source named."""
    with pytest.raises(ValueError, match="'empty-one'"):
        TaskList([], name="empty-one")
    with pytest.raises(ValueError, match="duplicate task_id 't/0'"):
        TaskList([_task(), _task()])
    with pytest.raises(TypeError, match="item 0"):
        TaskList(["not a task"])  # type: ignore[list-item]


def test_make_task_source_specs(shared_data, tmp_path):
    """Every spec form builds the right source; sources pass through; lists become TaskLists."""
    assert isinstance(make_task_source(None), ProceduralMathTasks)
    assert make_task_source("procedural").name == "procedural"
    source = make_task_source("procedural:hard")
    assert make_task_source(source) is source
    gsm = make_task_source(f"gsm8k:{shared_data / 'gsm8k' / 'train.jsonl'}")
    assert isinstance(gsm, TaskList) and gsm.name == "gsm8k-train"
    listed = make_task_source([_task("a/1"), _task("a/2")])
    assert isinstance(listed, TaskList) and len(listed) == 2
    with pytest.raises(ValueError, match="no tasks"):
        make_task_source([])
    with pytest.raises(FileNotFoundError):
        make_task_source(f"gsm8k:{tmp_path / 'missing.jsonl'}")
    with pytest.raises(TypeError, match="int"):
        make_task_source(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "suggestion"),
    [("procedurl", "procedural"), ("gsm8", "gsm8k"), ("lic", "lic:PATH"), ("procedural:medium", "procedural:easy")],
)
def test_make_task_source_unknown(spec, suggestion):
    """Unknown specs list the valid forms and suggest a close match."""
    with pytest.raises(ValueError) as info:
        make_task_source(spec)
    message = str(info.value)
    assert repr(spec) in message
    assert f"'{suggestion}'" in message
    assert "Valid forms:" in message and "lic:PATH" in message and "gsm8k:PATH" in message


def test_make_task_source_unknown_no_match():
    """A spec with no close match still lists the valid forms."""
    with pytest.raises(ValueError, match="Valid forms: procedural"):
        make_task_source("zzzz-nothing")
