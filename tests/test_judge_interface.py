"""One judge interface for every task family: ``judge(reply, task) -> Judgement`` (userlm_env.judge)."""

from __future__ import annotations

import numpy as np
import pytest

from userlm_env.code.procedural import ProceduralCodeTasks
from userlm_env.code.sandbox import Sandbox, SandboxConfig
from userlm_env.envs import UserLMCodeEnv, UserLMMathEnv
from userlm_env.envs.code_env import make_code_judge
from userlm_env.judge import CodeJudge, Judge, Judgement, LLMJudge, ReplyKind, RuleJudge, make_judge
from userlm_env.tasks import Shard, ShardedTask

APPLES = ShardedTask(
    task_id="toy/apples",
    instruction="Mia has 10 apples. She gives 5 of them to Tom. How many apples does Mia have left?",
    shards=(
        Shard(1, "How many apples does Mia have left?"),
        Shard(2, "Mia has 10 apples."),
        Shard(3, "She gives 5 of them to Tom."),
    ),
    answer="5",
)
"""A math task whose answer (5) is also a number the user gives."""


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(SandboxConfig(timeout_s=3, workers=1))
    yield box
    box.close()


@pytest.fixture(scope="module")
def code_task() -> ShardedTask:
    return ProceduralCodeTasks().sample(np.random.default_rng(0))


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


class RecordingJudge:
    """A custom judge with nothing but ``judge(reply, task)``: every reply is a correct answer."""

    def __init__(self):
        self.calls: list[tuple[str, ShardedTask]] = []

    def judge(self, reply: str, task: ShardedTask) -> Judgement:
        self.calls.append((reply, task))
        return Judgement(ReplyKind.ANSWER_ATTEMPT, True, reply, True, reason="custom")


def llm_judge(*outputs: str) -> LLMJudge:
    queue = list(outputs)
    return LLMJudge(lambda prompts: [queue.pop(0) for _ in prompts])


def test_old_imports_still_work():
    """Today's names import from where they always did, and are the new package's objects."""
    from userlm_env.code import CodeJudge as FromCode
    from userlm_env.code.judge import EMPTY_CODE_INFO, CodeJudgement
    from userlm_env.code.judge import CodeJudge as FromCodeJudge
    from userlm_env.judge import HEAD_CHARS, SCAN_CHARS, Judge, Judgement, LLMJudge, ReplyKind, RuleJudge, make_judge
    from userlm_env.judge.code import CodeJudge as Moved
    from userlm_env.judge.llm import LLMJudge as LLMModule
    from userlm_env.judge.rule import RuleJudge as RuleModule
    from userlm_env.judge.types import Judge as Protocol

    assert FromCode is FromCodeJudge is Moved is CodeJudge
    assert RuleJudge is RuleModule and LLMJudge is LLMModule and Judge is Protocol
    assert issubclass(CodeJudgement, Judgement) and EMPTY_CODE_INFO["tests_passed"] is None
    assert SCAN_CHARS > HEAD_CHARS > 0 and callable(make_judge) and ReplyKind("hedge") is ReplyKind.HEDGE


@pytest.mark.parametrize("make", [RuleJudge, lambda: llm_judge(), lambda: CodeJudge(), RecordingJudge])
def test_every_judge_satisfies_the_protocol(make):
    assert isinstance(make(), Judge)
    assert not isinstance(object(), Judge)


def test_rule_judge_takes_the_task():
    """``judge(reply, task)`` grades against ``task.answer``; the older ``judge(reply, gold)`` agrees."""
    judge = RuleJudge()
    new = judge.judge("She gives away 5, so she has 10 - 5 = 5 apples left.", APPLES)
    assert new.kind is ReplyKind.ANSWER_ATTEMPT and new.extracted_answer == "5" and new.correct is True
    assert judge.judge("She gives away 5, so she has 10 - 5 = 5 apples left.", "5") == new
    assert judge.judge("The answer is 6.", APPLES).correct is False
    assert judge.judge("How many did she have?", APPLES).kind is ReplyKind.CLARIFICATION


def test_llm_judge_takes_the_task():
    judge = llm_judge('{"kind": "answer_attempt", "answer": "5"}', '{"kind": "clarification", "answer": null}')
    results = judge.judge_batch(["She has 5 left.", "How many did she start with?"], [APPLES, APPLES])
    assert [r.kind for r in results] == [ReplyKind.ANSWER_ATTEMPT, ReplyKind.CLARIFICATION]
    assert results[0].correct is True
    fallback = llm_judge("not json").judge("The answer is 5.", APPLES)  # the rule fallback gets the task too
    assert fallback.correct is True and fallback.reason.startswith("rule fallback")


@pytest.mark.parametrize("make", [RuleJudge, lambda: llm_judge()])
def test_math_judges_refuse_code_tasks(make, code_task):
    with pytest.raises(ValueError, match="'code'"):
        make().judge(fenced(code_task.answer), code_task)


def test_code_judge_takes_the_task(sandbox, code_task):
    """``CodeJudge.judge(reply, task)`` runs the hidden tests; ``judge_task`` is the same call."""
    judge = CodeJudge(sandbox)
    verdict = judge.judge(fenced(code_task.answer), code_task)
    assert verdict.kind is ReplyKind.ANSWER_ATTEMPT and verdict.correct is True
    assert verdict.execution.tests_passed == verdict.execution.tests_total > 0
    assert judge.judge_task(fenced(code_task.answer), code_task).correct is True
    assert judge.judge("Which inputs should it accept?", code_task).kind is ReplyKind.CLARIFICATION
    with pytest.raises(TypeError, match="ShardedTask"):
        judge.judge(fenced(code_task.answer), code_task.answer)


def test_a_custom_judge_works_in_the_math_env():
    """An object with only ``judge(reply, task)`` is the env's judge: it gets the hidden task."""
    custom = RecordingJudge()
    assert make_judge(custom) is custom
    env = UserLMMathEnv(user="replay", tasks=[APPLES], judge=custom)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("anything at all")
    assert custom.calls == [("anything at all", APPLES)]
    assert terminated and reward == 1.0 and info["correct"] is True and info["judge_reason"] == "custom"


def test_a_custom_judge_works_in_the_code_env(sandbox):
    custom = RecordingJudge()
    env = UserLMCodeEnv(user="replay", judge=custom, sandbox=sandbox)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("anything at all")
    assert custom.calls == [("anything at all", env.task)]
    assert terminated and reward == 1.0 and info["tests_passed"] is None  # no CodeJudgement, no test counts


def test_make_code_judge_needs_the_judge_method(sandbox):
    custom = RecordingJudge()
    assert make_code_judge(custom) is custom
    assert isinstance(make_code_judge("rule", sandbox), CodeJudge)

    class OldStyle:
        def judge_task(self, reply, task):
            return Judgement(ReplyKind.DISCUSSION, False, None, None)

    with pytest.raises(TypeError, match=r"judge\(reply, task\)"):
        make_code_judge(OldStyle())


def test_a_terse_answer_that_is_one_of_the_users_numbers_is_graded():
    """The judge does not compare an answer with the numbers the user gave: "She has 5 left." is graded
    correct although the user said 5 (on GSM8K the gold is one of the user's numbers in 5% of tasks)."""
    env = UserLMMathEnv(user="replay", tasks=[APPLES])
    env.reset(seed=0)
    env.step("What else should I know?")
    _, _, terminated, _, info = env.step("Go on.")
    assert info["shards_revealed"] == [1, 2, 3] and not terminated
    assert any("5" in m["content"] for m in env.episode.conversation if m["role"] == "user")
    _, reward, terminated, _, info = env.step("Mia has 5 apples left.")
    assert info["reply_kind"] == "answer_attempt" and info["correct"] is True
    assert terminated and reward == 1.0 and info["end_reason"] == "correct_answer"


def test_the_rule_judge_has_no_given_numbers_option():
    with pytest.raises(TypeError, match="given_numbers"):
        RuleJudge().judge("She sold 48 clips.", "48", given_numbers=["48"])  # type: ignore[call-arg]
