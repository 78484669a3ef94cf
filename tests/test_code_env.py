"""UserLM-Code-v0: protocol, info schema, rewards, vector env, rollout runner, CLI hook."""

import json
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import userlm_env  # noqa: F401 - registers the envs
from agents.base import Assistant
from userlm_env.code.procedural import ProceduralCodeTasks
from userlm_env.code.sandbox import Sandbox, SandboxConfig
from userlm_env.envs import UserLMCodeEnv, UserLMCodeVectorEnv, UserLMMathEnv, make_unwrapped_env
from userlm_env.rewards import COMPONENTS
from userlm_env.rollout import run_episodes
from userlm_env.tasks import make_task_source

MATH_INFO_KEYS = {
    "task_id", "turn", "reward_components", "reply_kind", "answer_attempt", "extracted_answer", "correct",
    "judge_reason", "score", "shards_revealed", "num_shards", "new_shards", "user_ended", "end_reason", "user_meta",
    "revealed_shard", "reveal_reason",
}  # fmt: skip
CODE_INFO_KEYS = {
    "tests_passed", "tests_failed", "tests_total", "error_type", "execution_error", "execution_seconds", "rl_safe",
}  # fmt: skip


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(SandboxConfig(timeout_s=3, workers=2))
    yield box
    box.close()


def fenced(code):
    return f"Here you go:\n```python\n{code}```"


def test_make_and_full_episode_with_the_replay_user(sandbox):
    """Clarify until every shard is out, then the canonical code: correct, terminated, reward 1."""
    env = gym.make("UserLM-Code-v0", user="replay", sandbox=sandbox, max_turns=10)
    obs, info = env.reset(seed=3)
    assert set(info) == MATH_INFO_KEYS | CODE_INFO_KEYS and info["tests_passed"] is None
    task = env.unwrapped.task
    while len(info["shards_revealed"]) < task.num_shards:
        obs, reward, terminated, truncated, info = env.step("Could you tell me more about what it should do?")
        assert info["reply_kind"] == "clarification" and reward == 0 and not terminated
    obs, reward, terminated, truncated, info = env.step(fenced(task.answer))
    assert set(info) == MATH_INFO_KEYS | CODE_INFO_KEYS | {"reply_truncated"}
    assert terminated and not truncated and reward == 1.0 and info["correct"] is True
    assert info["end_reason"] == "correct_answer" and info["error_type"] is None
    assert info["tests_passed"] == info["tests_total"] == len(task.metadata["tests"]["cases"])
    assert set(info["reward_components"]) == set(COMPONENTS)


def test_hidden_tests_and_solution_never_reach_the_observation(sandbox):
    """The obs holds the revealed shards only: no canonical code, no hidden test values."""
    env = UserLMCodeEnv(user="replay", sandbox=sandbox, max_turns=10)
    obs, info = env.reset(seed=11)
    task = env.task
    for _ in range(task.num_shards + 1):
        obs, *_ = env.step("What else?")
    text = json.dumps(obs)
    assert task.answer.strip() not in text and "cases" not in text
    visible = task.shards[-1].text
    hidden = [c for c in task.metadata["tests"]["cases"] if repr(c.expected) not in visible]
    assert hidden and all(json.dumps(list(c.args)) not in text for c in hidden if len(json.dumps(list(c.args))) > 6)


def test_wrong_code_is_premature_and_last_attempt_scores(sandbox):
    """Under 'shaped', wrong code while shards are hidden is penalised; the episode score is the last attempt."""
    env = UserLMCodeEnv(user="replay", sandbox=sandbox, reward="shaped", max_turns=10)
    obs, info = env.reset(seed=5)
    task = env.task
    entry = task.metadata["entry_point"]
    obs, reward, terminated, truncated, info = env.step(fenced(f"def {entry}(*args):\n    return None\n"))
    assert info["answer_attempt"] and info["correct"] is False and not terminated
    assert info["reward_components"]["premature_answer"] == 1.0 and info["error_type"] == "wrong_output"
    assert info["tests_failed"] == info["tests_total"] and reward < 0
    obs, reward, terminated, truncated, info = env.step(f"```python\ndef {entry}(x):\n    return (\n```")
    assert info["answer_attempt"] and info["error_type"] == "syntax" and info["tests_passed"] == 0
    obs, reward, terminated, truncated, info = env.step("I am not sure what you mean.")
    assert info["reply_kind"] == "discussion" and not info["answer_attempt"] and info["error_type"] is None


def test_truncation_scores_the_last_attempt(sandbox):
    """At max_turns, correctness is the grade of the last attempt (0 if none)."""
    env = UserLMCodeEnv(user="replay", sandbox=sandbox, max_turns=2)
    with pytest.warns(UserWarning, match="max_turns=2"):
        env.reset(seed=1)
    env.step("Hmm?")
    obs, reward, terminated, truncated, info = env.step("Still thinking.")
    assert truncated and not terminated and info["reward_components"]["no_attempt"] == 1.0 and reward == 0


def test_check_env_passes(sandbox):
    """Gymnasium's checker on the unwrapped env (deterministic replay user)."""
    check_env(UserLMCodeEnv(user="replay", sandbox=sandbox), skip_render_check=True)


def test_math_tasks_are_rejected():
    """A math task pinned through options is refused with a clear error."""
    env = UserLMCodeEnv(user="replay")
    math_task = make_task_source("procedural").sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="code env needs kind='code'"):
        env.reset(seed=0, options={"task": math_task})


def test_vector_env_matches_single_envs(sandbox):
    """make_vec gives the batched vector env; sub-env i replays a single env reset with seed + i."""
    vec = gym.make_vec("UserLM-Code-v0", num_envs=3, user="replay", sandbox=sandbox)
    assert isinstance(vec.unwrapped, UserLMCodeVectorEnv)
    obs, infos = vec.reset(seed=20)
    replies = ["What inputs?", "```python\ndef f(x):\n    return x\n```", "ok"]
    vobs, rewards, terms, truncs, vinfos = vec.step(replies)
    for i in range(3):
        env = UserLMCodeEnv(user="replay", sandbox=sandbox)
        single_obs, _ = env.reset(seed=20 + i)
        assert single_obs == obs[i]
        sobs, sreward, *_, sinfo = env.step(replies[i])
        assert sobs == vobs[i] and sreward == rewards[i]
        assert sinfo["reply_kind"] == vinfos["reply_kind"][i] and sinfo["error_type"] == vinfos["error_type"][i]
    vec.close()


class _ClarifyThenOracle(Assistant):
    """Asks until every shard is revealed, then writes the reference solution (test helper)."""

    name = "clarify-then-oracle"
    needs_oracle = True

    def act_batch(self, conversations: Sequence[list], seeds: Sequence[int], infos: Sequence[dict]) -> list[str]:
        replies = []
        for info in infos:
            done = info.get("num_shards") and len(info.get("shards_revealed", [])) >= info["num_shards"]
            replies.append(fenced(info["oracle_answer"]) if done else "What else should it do?")
        return replies


def test_run_episodes_on_the_code_env(sandbox):
    """The rollout runner works unchanged on code envs built by make_unwrapped_env."""
    tasks = ProceduralCodeTasks()
    records = run_episodes(
        lambda: make_unwrapped_env("UserLM-Code-v0", user="replay", tasks=tasks, sandbox=sandbox, max_turns=8),
        _ClarifyThenOracle(),
        seeds=[0, 1, 2, 3],
        batch_size=2,
    )
    assert [r["error"] for r in records] == [None] * 4
    assert json.loads(json.dumps(records)) == records  # episode logs are plain JSON
    assert all(r["score"] == 1.0 and r["end_reason"] == "correct_answer" for r in records)
    assert all(r["steps"][-1]["tests_passed"] == r["steps"][-1]["tests_total"] for r in records)


def test_make_unwrapped_env_ids():
    """Known ids and aliases build the right classes; unknown ids suggest a close match."""
    assert type(make_unwrapped_env("UserLM-Math-v0", user="replay")) is UserLMMathEnv
    assert type(make_unwrapped_env("code", user="replay")) is UserLMCodeEnv
    with pytest.raises(ValueError, match="Did you mean 'UserLM-Code-v0'"):
        make_unwrapped_env("UserLM-Cod-v0")
    with pytest.raises(ValueError, match="unknown code judge"):
        UserLMCodeEnv(user="replay", judge="llm")
