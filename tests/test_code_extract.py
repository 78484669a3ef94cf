"""Extracting solutions from replies and classifying code replies."""

import numpy as np
import pytest

from userlm_env.code.extract import extract_solution, has_code
from userlm_env.code.judge import CodeJudge
from userlm_env.code.procedural import ProceduralCodeTasks
from userlm_env.code.sandbox import Sandbox, SandboxConfig
from userlm_env.judge import ReplyKind


def test_fenced_block_last_function_and_helpers_kept():
    """The last block wins; its imports and helpers are kept; prints and tests are dropped."""
    reply = (
        "First try:\n```python\ndef add(a, b):\n    return a - b\n```\n"
        "Fixed:\n```python\nimport math\n\nSCALE = 2\n\ndef helper(x):\n    return x * SCALE\n\n"
        "def add(a, b):\n    return helper(a) + b\n\nprint(add(1, 2))\nassert add(1, 1) == 3\n"
        "if __name__ == '__main__':\n    add(3, 4)\n```\nHope this helps!"
    )
    found = extract_solution(reply, "add")
    assert found is not None and found.source == "block" and found.function == "add" and not found.renamed
    assert "import math" in found.code and "SCALE = 2" in found.code and "def helper" in found.code
    assert "print(" not in found.code and "assert" not in found.code and "__main__" not in found.code
    namespace = {}
    exec(found.code, namespace)
    assert namespace["add"](1, 2) == 4


def test_entry_point_preferred_over_last_function():
    """When the entry point is defined, it is chosen even if another function comes after it."""
    reply = "```py\ndef solve(x):\n    return x + 1\n\ndef other(y):\n    return y\n```"
    found = extract_solution(reply, "solve")
    assert found.function == "solve" and not found.renamed


def test_wrong_name_is_aliased_to_the_entry_point():
    """The last function under another name gets an alias, as LiC renames it."""
    found = extract_solution("```python\ndef my_func(x):\n    return 2 * x\n```", "double")
    assert found.renamed and found.function == "my_func" and found.entry_point == "double"
    namespace = {}
    exec(found.code, namespace)
    assert namespace["double"](4) == 8


def test_bare_code_without_fences():
    """Code written straight into the prose is found."""
    reply = "Sure, here it is:\n\ndef square(n):\n    # square it\n    return n * n\n\nThat returns n squared."
    found = extract_solution(reply, "square")
    assert found is not None and found.source == "bare"
    namespace = {}
    exec(found.code, namespace)
    assert namespace["square"](3) == 9


def test_reply_cut_mid_function_keeps_complete_functions_only():
    """An unclosed fence is read to the end; an incomplete last function is dropped."""
    reply = "```python\ndef ok(x):\n    return x\n\ndef broken(y):\n    return (y +"
    found = extract_solution(reply, None)
    assert found is not None and found.function == "ok"
    assert extract_solution("```python\ndef broken(y):\n    return (y +", None) is None


def test_no_code_means_no_solution():
    """Prose, numbers and non-Python blocks give nothing."""
    assert extract_solution("The answer is 42.", "f") is None
    assert extract_solution("Run this:\n```bash\ndef f(): echo hi\n```", "f") is None
    assert extract_solution("I would define a function that loops over the list.", "f") is None
    assert not has_code("Just words here.")


@pytest.fixture(scope="module")
def judge():
    box = Sandbox(SandboxConfig(timeout_s=3, workers=2))
    yield CodeJudge(box)
    box.close()


@pytest.fixture(scope="module")
def task():
    return ProceduralCodeTasks(("chunks",)).sample(np.random.default_rng(1))


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("", ReplyKind.MISSING),
        ("What should happen with an empty list?", ReplyKind.CLARIFICATION),
        ("What size are the groups? And is the order kept?", ReplyKind.INTERROGATION),
        ("I can't help with that.", ReplyKind.REFUSE),
        ("The answer is 42.", ReplyKind.DISCUSSION),
        ("It is either 3 or 4.", ReplyKind.DISCUSSION),
        ("We could slice the list in a loop.", ReplyKind.DISCUSSION),
    ],
)
def test_replies_without_code_are_never_attempts(judge, task, reply, kind):
    """Without code, questions/refusals keep their kind and numbers are not answers."""
    verdict = judge.judge_task(reply, task)
    assert verdict.kind == kind and not verdict.answer_attempt and verdict.correct is None
    assert verdict.execution is None


def test_code_with_question_is_an_attempt_and_is_graded(judge, task):
    """Code is the answer even when the reply also asks something; the canonical solution passes."""
    reply = f"Here is a version:\n```python\n{task.answer}```\nShould empty lists be handled differently?"
    verdict = judge.judge_task(reply, task)
    assert verdict.kind == ReplyKind.ANSWER_ATTEMPT and verdict.correct
    info = verdict.code_info()
    assert info["tests_passed"] == info["tests_total"] == len(task.metadata["tests"]["cases"])
    assert info["error_type"] is None


def test_wrong_and_broken_code(judge, task):
    """Wrong code fails with counts; unparsable code is a failed attempt with error_type syntax."""
    entry = task.metadata["entry_point"]
    wrong = judge.judge_task(f"```python\ndef {entry}(items):\n    return [items]\n```", task)
    assert wrong.answer_attempt and wrong.correct is False
    assert wrong.code_info()["error_type"] == "wrong_output" and wrong.code_info()["tests_failed"] >= 1
    broken = judge.judge_task(f"```python\ndef {entry}(items):\n    return [items[\n```", task)
    assert broken.answer_attempt and broken.correct is False and broken.execution is None
    assert broken.code_info()["error_type"] == "syntax"
