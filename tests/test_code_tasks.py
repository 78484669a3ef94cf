"""Code task sources: procedural generator, HumanEval-format jsonl, LiC code JSON, spec strings."""

import base64
import copy
import json
import os
import pickle
import subprocess
import sys
import zlib
from collections import Counter

import numpy as np
import pytest

from userlm_env.code.humaneval import instrument_check, load_humaneval_jsonl, shard_humaneval_prompt
from userlm_env.code.judge import CodeJudge
from userlm_env.code.lic_code import load_lic_code_json
from userlm_env.code.procedural import TEMPLATES, ProceduralCodeTasks
from userlm_env.code.sandbox import Sandbox, SandboxConfig, _jsonify, values_equal
from userlm_env.code.tasks import make_code_task_source
from userlm_env.tasks import ShardedTask

# Hand-written records in the HumanEval format (not taken from the dataset).
HUMANEVAL_RECORDS = [
    {
        "task_id": "Fixture/0",
        "prompt": (
            "from typing import List\n\n\n"
            "def count_evens(values: List[int]) -> int:\n"
            '    """Count how many values in the list are even. Negative even numbers count as well.\n'
            "    An empty list has no even values.\n"
            "    >>> count_evens([1, 2, 4])\n"
            "    2\n"
            "    >>> count_evens([])\n"
            "    0\n"
            '    """\n'
        ),
        "canonical_solution": "    return sum(1 for v in values if v % 2 == 0)\n",
        "test": (
            "METADATA = {'author': 'fixture'}\n\n\n"
            "def check(candidate):\n"
            "    assert candidate([1, 2, 4]) == 2\n"
            "    assert candidate([]) == 0\n"
            "    assert candidate([-2, 3]) == 1\n"
            "    for n in range(3):\n"
            "        assert candidate([2] * n) == n\n"
        ),
        "entry_point": "count_evens",
    },
    {
        "task_id": "Fixture/1",
        "prompt": (
            "def shout(word):\n"
            "    '''Return the word in upper case followed by an exclamation mark.\n"
            "    Spaces are kept as they are.\n"
            "    shout('hi') == 'HI!'\n"
            "    '''\n"
        ),
        "canonical_solution": "    return word.upper() + '!'\n",
        "test": "def check(candidate):\n    assert candidate('hi') == 'HI!'\n    assert candidate('a b') == 'A B!'\n",
        "entry_point": "shout",
    },
    {
        "task_id": "Fixture/2",
        "prompt": (
            "def middle(a, b, c):\n"
            '    """Given three different numbers, return the one that is neither the smallest nor the largest.\n'
            '    """\n'
        ),
        "canonical_solution": "    return sorted([a, b, c])[1]\n",
        "test": "def check(candidate):\n    assert candidate(1, 3, 2) == 2\n    assert candidate(9, -1, 0) == 0\n",
        "entry_point": "middle",
    },
    {
        "task_id": "Fixture/3",
        "prompt": (
            "def is_vowel(ch):\n"
            "    return ch in 'aeiou'\n\n\n"
            "def vowel_count(word):\n"
            '    """Count the vowels of a lowercase word with the is_vowel helper.\n'
            "    >>> vowel_count('banana')\n"
            "    3\n"
            '    """\n'
        ),
        "canonical_solution": "    return sum(1 for c in word if is_vowel(c))\n",
        "test": "def check(candidate):\n    assert candidate('banana') == 3\n    assert candidate('xyz') == 0\n",
        "entry_point": "vowel_count",
    },
]


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(SandboxConfig(timeout_s=5, workers=2))
    yield box
    box.close()


def test_canonical_solutions_pass_their_own_tests_for_thousands_of_seeds():
    """Every template's canonical source agrees with the independent reference on 3000 seeds."""
    source = ProceduralCodeTasks()
    used = Counter()
    for seed in range(3000):
        task = source.task_for_seed(seed)
        used[task.metadata["template"]] += 1
        namespace = {}
        exec(task.answer, namespace)  # our own canonical code, not untrusted input
        fn = namespace[task.metadata["entry_point"]]
        for case in task.metadata["tests"]["cases"]:
            out = fn(*copy.deepcopy(case.args))
            assert values_equal(_jsonify(out), case.expected), (task.task_id, case, out)
    assert set(used) == set(TEMPLATES) and min(used.values()) > 60


def test_canonical_solutions_pass_in_the_sandbox(sandbox):
    """Through the real sandbox and worker pool: canonical code passes, a constant function fails."""
    source = ProceduralCodeTasks()
    tasks = [source.task_for_seed(seed) for seed in range(36)]
    good = [
        sandbox.submit("run_calls", t.answer, t.metadata["entry_point"], t.metadata["tests"]["cases"]) for t in tasks
    ]
    bad = []
    for t in tasks[:6]:
        entry = t.metadata["entry_point"]
        bad.append(
            sandbox.submit("run_calls", f"def {entry}(*a):\n    return 'nope'", entry, t.metadata["tests"]["cases"])
        )
    for task, future in zip(tasks, good):
        result = future.result()
        assert result.passed, (task.task_id, result)
        assert result.tests_passed == result.tests_total == len(task.metadata["tests"]["cases"])
    for future in bad:
        result = future.result()
        assert not result.passed and result.error_type == "wrong_output" and result.tests_passed == 0


def test_procedural_tasks_are_seeded_varied_and_sharded():
    """Same seed, same task; shard 1 is the purpose without the constants; tests stay in metadata."""
    source = ProceduralCodeTasks()
    first = source.sample(np.random.default_rng(7))
    again = source.sample(np.random.default_rng(7))
    assert first == again and first.metadata["tests"] == again.metadata["tests"]
    tasks = [source.task_for_seed(s) for s in range(200)]
    assert len({t.instruction for t in tasks}) > 190  # names, constants and examples drawn from the seed
    for task in tasks:
        assert task.kind == "code" and 3 <= task.num_shards <= 6
        assert task.shards[0].text.startswith(f"Write a Python function `{task.metadata['entry_point']}(")
        assert task.shards[-1].text.startswith("For example")
        assert not any(ch.isdigit() for ch in task.shards[0].text.split("`")[-1])


def test_humaneval_jsonl_is_parsed_sharded_and_graded(tmp_path, sandbox):
    """HumanEval-format records: purpose first, then one requirement or example per shard; tests run."""
    path = tmp_path / "he.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in HUMANEVAL_RECORDS) + "\n")
    source = load_humaneval_jsonl(path)
    assert len(source) == 4 and source.stats["loaded"] == 4
    assert source.stats["rl_safe"] == 3 and source.stats["not_rl_safe"] == 1  # Fixture/0 has a loop
    assert [t.metadata["tests"]["type"] for t in source] == ["script", "calls", "calls", "calls"]
    evens = source[0]
    texts = [s.text for s in evens.shards]
    assert texts[0] == (
        "Write a Python function `count_evens(values: List[int]) -> int` that does the following: "
        "count how many values in the list are even."
    )
    assert texts[1] == "Negative even numbers count as well."
    assert texts[2] == "An empty list has no even values."
    assert texts[3:] == [
        "For example, `count_evens([1, 2, 4])` should return `2`.",
        "For example, `count_evens([])` should return `0`.",
    ]
    assert source[1].shards[-1].text == "For example, `shout('hi')` should return `'HI!'`."
    assert source[2].num_shards == 1
    assert evens.metadata["preamble"] == "from typing import List"
    result = sandbox.run_script(evens.answer, "count_evens", evens.metadata["tests"]["code"])
    assert result.passed and result.tests_passed == 6 and result.tests_failed == 0
    wrong = "from typing import List\ndef count_evens(values):\n    return len(values)\n"
    result = sandbox.run_script(wrong, "count_evens", evens.metadata["tests"]["code"])
    assert not result.passed and result.error_type == "assertion"
    assert result.tests_passed == 4 and result.tests_failed == 2  # [1, 2, 4] and [-2, 3] fail


def test_humaneval_prompt_helpers_are_available_to_the_solution(tmp_path, sandbox):
    """A solution may call a helper the HumanEval prompt defines (the preamble is prepended)."""
    path = tmp_path / "he.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in HUMANEVAL_RECORDS))
    task = load_humaneval_jsonl(path)[3]
    assert task.metadata["preamble"].startswith("def is_vowel(ch):")
    judge = CodeJudge(sandbox)
    verdict = judge.judge_task(
        "```python\ndef vowel_count(word):\n    return sum(is_vowel(c) for c in word)\n```", task
    )
    assert verdict.correct is True and verdict.execution.tests_passed == 2
    verdict = judge.judge_task("```python\ndef vowel_count(word):\n    return len(word)\n```", task)
    assert task.metadata["tests"]["type"] == "calls"  # its asserts were converted: host-graded
    assert verdict.correct is False and verdict.code_info()["error_type"] == "wrong_output"


def test_humaneval_bad_input_is_reported(tmp_path):
    """A missing field or a broken line names the file and line."""
    path = tmp_path / "bad.jsonl"
    record = dict(HUMANEVAL_RECORDS[0])
    del record["test"]
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r"record 0: .*missing or empty fields \['test'\]"):
        load_humaneval_jsonl(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: invalid JSON"):
        load_humaneval_jsonl(path)
    with pytest.raises(ValueError, match="no docstring"):
        shard_humaneval_prompt("def f(x):\n", "f")


def test_instrumented_check_counts_every_assert():
    """Asserts in check become counted calls; asserts elsewhere are untouched."""
    code = instrument_check(
        "X = 1\nassert X\ndef check(candidate):\n    assert candidate(1)\n    for i in range(2):\n        assert i\n"
    )
    assert code.count("__sbx_assert(") == 2 and "assert X" in code


def _pack(cases):
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def test_lic_code_json(tmp_path, sandbox):
    """LiC code records: functional tests (plain and compressed) become hidden call tests."""
    records = [
        {
            "task_id": "sharded-fixture/add",
            "task": "code",
            "source": "humaneval",
            "shards": [
                {"shard_id": 2, "shard": "Both inputs are integers."},
                {"shard_id": 1, "shard": "Write a function add_up that adds two numbers."},
            ],
            "metadata": {"func_name": "add_up"},
            "public_test_cases": json.dumps([{"input": "1\n2", "output": "3", "testtype": "functional"}]),
            "private_test_cases": _pack([{"input": "-1\n1", "output": "0", "testtype": "functional"}]),
        },
        {"task_id": "m1", "task": "math", "shards": [{"shard_id": 1, "shard": "How much?"}], "answer": "#### 3"},
        {
            "task_id": "sharded-fixture/stdin",
            "task": "code",
            "shards": [{"shard_id": 1, "shard": "Read a number."}],
            "metadata": {"func_name": "main"},
            "public_test_cases": json.dumps([{"input": "1", "output": "1", "testtype": "stdin"}]),
        },
    ]
    path = tmp_path / "lic.json"
    path.write_text(json.dumps(records))
    source = make_code_task_source(f"lic-code:{path}")
    assert len(source) == 1
    assert source.stats["skipped:task=math"] == 1 and source.stats["skipped:stdin_tests"] == 1
    task = source[0]
    assert [s.text for s in task.shards] == [
        "Write a function add_up that adds two numbers.",
        "Both inputs are integers.",
    ]
    cases = task.metadata["tests"]["cases"]
    assert [(c.args, c.expected) for c in cases] == [((1, 2), 3), ((-1, 1), 0)]
    assert sandbox.run_calls("def add_up(a, b):\n    return a + b", "add_up", cases).passed
    assert not sandbox.run_calls("def add_up(a, b):\n    return a * b", "add_up", cases).passed


def test_lic_code_refuses_pickled_globals(tmp_path):
    """A compressed test blob that would import something is rejected, not executed."""

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    blob = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    record = {
        "task_id": "evil",
        "task": "code",
        "shards": [{"shard_id": 1, "shard": "x"}],
        "metadata": {"func_name": "f"},
        "private_test_cases": blob,
    }
    path = tmp_path / "evil.json"
    path.write_text(json.dumps([record]))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_lic_code_json(path)


def test_code_specs_and_errors(tmp_path):
    """Spec strings build the right sources; unknown ones suggest close matches."""
    assert isinstance(make_code_task_source("code:procedural"), ProceduralCodeTasks)
    only = make_code_task_source("code:procedural:caesar,chunks")
    assert {only.task_for_seed(s).metadata["template"] for s in range(40)} == {"caesar", "chunks"}
    with pytest.raises(ValueError, match="unknown code templates"):
        make_code_task_source("code:procedural:nope")
    with pytest.raises(ValueError, match="Did you mean 'humaneval'"):
        make_code_task_source("humaneva")
    with pytest.raises(ValueError, match="lic-code"):
        make_code_task_source("lic-cod:/x.json")
    with pytest.raises(FileNotFoundError):
        make_code_task_source(f"humaneval:{tmp_path / 'missing.jsonl'}")
    task = ProceduralCodeTasks().task_for_seed(1)
    assert make_code_task_source([task])[0] is task
    assert isinstance(make_code_task_source(None).sample(np.random.default_rng(0)), ShardedTask)


def test_humaneval_hub_loader_offline_says_what_to_do():
    """The real hub loader: offline it raises a RuntimeError naming the local alternatives (or loads 164 tasks)."""
    script = (
        "from userlm_env.code.tasks import make_code_task_source\n"
        "try:\n"
        "    print('loaded', len(make_code_task_source('humaneval')))\n"
        "except RuntimeError as err:\n"
        "    print('error', err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    out = done.stdout.strip()
    assert out == "loaded 164" or (
        out.startswith("error cannot load 'openai/openai_humaneval'") and "humaneval:PATH" in out
    ), done.stdout + done.stderr


def test_code_in_backticks_must_survive_a_rephrasing():
    """A user turn that garbles an example's expected value does not convey that shard (prompted users resample)."""
    from userlm_env.shard_detection import fact_is_kept

    shard = "For example, `stutter('guzv')` should return `'gggguuuuzzzzvvvv'`."
    assert fact_is_kept(shard, "so stutter('guzv') should return 'gggguuuuzzzzvvvv', ok?")
    assert not fact_is_kept(shard, "stutter('guzv') should return `'gahhhhzzzzzzzzzgggahhhh'`.")
    assert not fact_is_kept(shard, "it should return 'gggguuuuzzzzvvvv'")  # the call itself is missing
