"""UserLM-Code-v0: an assistant writes a Python function that a simulated user describes bit by bit."""

from __future__ import annotations

import warnings
import weakref
from typing import Any

from userlm_env.code.sandbox import Sandbox, SandboxConfig
from userlm_env.code.tasks import (
    NotRLSafeWarning,
    check_code_task,
    count_not_rl_safe,
    make_code_task_source,
    task_is_rl_safe,
)
from userlm_env.envs.base import DEFAULT_MAX_REPLY_CHARS, DEFAULT_MAX_TURNS, ShardedChatEnv, ShardedChatVectorEnv
from userlm_env.judge import EMPTY_CODE_INFO, CodeJudge, CodeJudgement, Judge, Judgement
from userlm_env.rewards import RewardConfig
from userlm_env.tasks import DEFAULT_TASK_SPECS, ShardedTask, TaskSource
from userlm_env.users import UserSimulator
from userlm_env.users.profiles import UserProfile

__all__ = ["UserLMCodeEnv", "UserLMCodeVectorEnv", "make_code_judge", "warn_if_not_rl_safe"]


def make_code_judge(judge: str | Judge | None = "rule", sandbox: Sandbox | SandboxConfig | None = None) -> Judge:
    """Build the code judge from the env's ``judge=`` and ``sandbox=`` arguments.

    Args:
        judge: ``"rule"``/``None`` (a :class:`CodeJudge`) or any :class:`Judge`: an object with
            ``judge(reply, task)``, returned unchanged.
        sandbox: a :class:`Sandbox`, a :class:`SandboxConfig` (a new sandbox), or ``None`` (the shared default).

    Raises:
        ValueError: an unknown judge string.
        TypeError: a judge object without ``judge(reply, task)`` or a bad ``sandbox``.
    """
    if isinstance(sandbox, SandboxConfig):
        sandbox = Sandbox(sandbox)
    elif sandbox is not None and not isinstance(sandbox, Sandbox):
        raise TypeError(f"sandbox must be a Sandbox, a SandboxConfig or None, got {type(sandbox).__name__}")
    if judge is None or (isinstance(judge, str) and judge.strip().lower() in ("rule", "rules", "rule_based")):
        return CodeJudge(sandbox)
    if isinstance(judge, str):
        raise ValueError(f"unknown code judge {judge!r}; expected 'rule' or an object with judge(reply, task)")
    if not callable(getattr(judge, "judge", None)):
        raise TypeError(f"a code judge needs a judge(reply, task) method, got {type(judge).__name__}")
    return judge


_WARNED_SOURCES: weakref.WeakSet = weakref.WeakSet()


def warn_if_not_rl_safe(source: TaskSource) -> None:
    """Warn (:class:`NotRLSafeWarning`), once per task source, when it holds tasks that are not RL-safe."""
    try:
        if source in _WARNED_SOURCES:
            return
        _WARNED_SOURCES.add(source)
    except TypeError:  # a source that cannot be weakly referenced: warn every time it is built into an env
        pass
    counts = count_not_rl_safe(source)
    if counts is None or counts[0] == 0:
        return
    unsafe, total = counts
    warnings.warn(
        f"code task source {source.name!r}: {unsafe} of {total} tasks are not RL-safe: their HumanEval "
        "check(candidate) tests run inside the candidate's process, where a policy can forge a pass "
        "(an always-equal return value, forged result events). Use them for evaluation, or keep only "
        "tasks with metadata['rl_safe'] (info['rl_safe']) for RL.",
        NotRLSafeWarning,
        stacklevel=3,
    )


class UserLMCodeEnv(ShardedChatEnv):
    """An assistant writes a Python function that a simulated user describes one shard at a time.

    ## Description
    The code counterpart of `UserLM-Math-v0` (same protocol, users, reward components and info
    schema). The user wants a function written; shard 1 names it and says what it is for, later
    shards add one requirement or example each (Lost in Conversation's sharded code tasks). Each
    `step` takes the assistant's reply; the env extracts the last complete Python function (or the
    named entry point) and runs the task's **hidden tests** on it in a sandbox (separate process
    group, resource limits, unprivileged uid, no network; see `userlm_env.code.sandbox`).

    ## Action Space
    `Reply(max_reply_chars)`: the assistant's reply as a `str`; code may be fenced (```python) or
    bare. Longer replies are truncated (`info["reply_truncated"]`); a non-`str` raises `TypeError`.

    ## Observation Space
    `Conversation()`: the chat so far as `{"role", "content"}` dicts. The hidden tests, the
    canonical solution and the unrevealed shards are never part of it.

    ## Rewards
    The components of the math env, unweighted in `info["reward_components"]`, weighted by `reward`:
    `correctness` (last step: the last answer attempt passed every hidden test), `premature_answer`
    (code that fails while shards are hidden), `clarification`, `hedge` (never for code),
    `turn`, `length`, `no_attempt`. Presets `lic`, `shaped`, `efficient` (see `userlm_env.rewards`).

    ## Starting State
    `reset(seed=s)` draws the task from `tasks` and the user seed from `self.np_random`;
    `options={"task": ShardedTask}` or `options={"task_index": i}` pins the task.

    ## Episode End
    1. Termination: an answer attempt passes every hidden test.
    2. Termination: every shard was revealed before the reply and the reply is an answer attempt.
    3. Termination: the user ends the conversation.
    4. Truncation: `max_turns` replies; or the user's model failed (`end_reason == "user_error"`).
    Replies are classified as in `userlm_env.judge.code`: a reply with a function is an answer attempt;
    without code it is a clarification/interrogation/refusal/discussion (never an attempt).

    ## Arguments
    | argument          | type                                  | default                 | meaning                               |
    |-------------------|---------------------------------------|-------------------------|---------------------------------------|
    | `user`            | spec str or `UserSimulator`           | `"microsoft/UserLM-8b"` | who plays the user (`userlm_env.users`) |
    | `tasks`           | spec str, `TaskSource` or task list   | `"code:procedural"`     | `code:procedural`, `humaneval`, `humaneval:PATH`, `lic-code:PATH` |
    | `reward`          | preset, mapping or `RewardConfig`     | `"lic"`                 | component weights                     |
    | `max_turns`       | int                                   | 12                      | assistant replies before truncation   |
    | `judge`           | `"rule"` or a `Judge`                 | `"rule"`                | classification + grading: `judge(reply, task)` |
    | `sandbox`         | `Sandbox`, `SandboxConfig` or None    | None (shared default)   | where the hidden tests run            |
    | `max_reply_chars` | int                                   | 8000                    | longer replies are truncated          |
    | `user_device`     | str or None                           | None                    | device of a local user model          |
    | `render_mode`     | `"human"`, `"ansi"` or None           | None                    | `render()` prints / returns the chat  |
    | `reveal`          | `"ordered"`, `"responsive"`, `"on_request"` or None | None (= `"ordered"`) | which shard an env-controlled user reveals (`userlm_env.users.reveal`) |
    | `user_profile`    | preset name or `UserProfile`          | None (= `"lic"`)        | how an env-controlled user behaves (`userlm_env.users.profiles`) |

    >>> import gymnasium as gym, userlm_env
    >>> env = gym.make("UserLM-Code-v0", user="replay", tasks="code:procedural")
    >>> obs, info = env.reset(seed=0)
    >>> obs[-1]["content"].startswith("Write a Python function")
    True

    ## Info
    Every key of the math env (`task_id`, `turn`, `reward_components`, `reply_kind`, `answer_attempt`,
    `extracted_answer` (the extracted code), `correct`, `score`, `shards_revealed`, `num_shards`,
    `new_shards`, `user_ended`, `end_reason`, `reply_truncated`, `judge_reason`, `user_meta`) plus
    `tests_passed`, `tests_failed`, `tests_total` (None where not measurable), `error_type` (one of
    `userlm_env.code.sandbox.ERROR_TYPES`, `"syntax"` for unparsable code, None when passed or no
    attempt), `execution_error`, `execution_seconds` and `rl_safe` (the task is graded by
    host-compared call tests only; False for HumanEval `check` code run in the candidate's process,
    which a policy can forge: a `NotRLSafeWarning` is issued once per task source holding such tasks).

    ## Vectorized environment
    `gym.make_vec("UserLM-Code-v0", num_envs=N)` gives a `UserLMCodeVectorEnv` (one batched user
    call per step; the sub-envs share the user, task source and sandbox).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "ansi"], "render_fps": 1}
    judge: Judge

    def __init__(
        self,
        user: str | UserSimulator | None = None,
        tasks: str | TaskSource | list[ShardedTask] | None = DEFAULT_TASK_SPECS["code"],
        reward: str | dict[str, float] | RewardConfig | None = "lic",
        max_turns: int = DEFAULT_MAX_TURNS,
        judge: str | Judge | None = "rule",
        sandbox: Sandbox | SandboxConfig | None = None,
        max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
        user_device: str | None = None,
        render_mode: str | None = None,
        reveal: str | None = None,
        user_profile: str | UserProfile | None = None,
    ):
        super().__init__(
            user=user,
            tasks=make_code_task_source(tasks),
            reward=reward,
            max_turns=max_turns,
            judge=make_code_judge(judge, sandbox),
            max_reply_chars=max_reply_chars,
            user_device=user_device,
            render_mode=render_mode,
            reveal=reveal,
            user_profile=user_profile,
        )

    @classmethod
    def build_shared(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Pop ``tasks``, ``judge`` and ``sandbox`` from ``kwargs``; return the built task source and judge."""
        tasks = kwargs.pop("tasks", DEFAULT_TASK_SPECS["code"])
        judge = kwargs.pop("judge", "rule")
        sandbox = kwargs.pop("sandbox", None)
        source = make_code_task_source(tasks)
        warn_if_not_rl_safe(source)
        return {"tasks": source, "judge": make_code_judge(judge, sandbox)}

    def check_task(self, task: ShardedTask) -> None:
        """Raise ``ValueError`` unless ``task`` is a code task with an entry point and hidden tests."""
        check_code_task(task)

    def judge_reply(self, reply: str, task: ShardedTask) -> Judgement:
        """Extract the function and run the hidden tests (see :class:`userlm_env.judge.code.CodeJudge`)."""
        return self.judge.judge(reply, task)

    def extra_info(self, judgement: Judgement | None) -> dict[str, Any]:
        """``tests_passed``/``failed``/``total``, ``error_type``, ``execution_error``/``seconds``, ``rl_safe``."""
        info = judgement.code_info() if isinstance(judgement, CodeJudgement) else dict(EMPTY_CODE_INFO)
        info["rl_safe"] = task_is_rl_safe(self.task)
        return info


class UserLMCodeVectorEnv(ShardedChatVectorEnv):
    """N ``UserLMCodeEnv`` stepped together, one batched user call per step (see ``ShardedChatVectorEnv``).

    Args:
        num_envs: number of sub-envs.
        **kwargs: ``UserLMCodeEnv`` arguments; the user, task source and judge (with its sandbox)
            are built once and shared.
    """

    env_class = UserLMCodeEnv
