"""A step either happens or it does not: an exception inside ``step`` leaves the env as it was.

A policy writes every action, so a reply that makes the judge or the user raise must never leave
the env half-updated (an assistant message with no user answer, a turn counted twice), and in a
vector env one sub-env's failure must not lose the others' episodes.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from userlm_env import UserLMMathEnv
from userlm_env.judge import RuleJudge
from userlm_env.tasks import Shard, ShardedTask
from userlm_env.users import UserSimulator, make_user

BOOM = "please crash"


class _ExplodingJudge(RuleJudge):
    """The rule judge, except that one reply makes it raise (a stand-in for any judge bug)."""

    def judge(self, reply, gold, **kwargs):
        if BOOM in reply:
            raise OverflowError("int too large to convert to float")
        return super().judge(reply, gold, **kwargs)


class _ExplodingUser(UserSimulator):
    """The replay user, except that it raises (not a BackendError) after a reply containing BOOM."""

    def __init__(self):
        self.inner = make_user("replay")

    def respond_batch(self, requests):
        for request in requests:
            if request.conversation and BOOM in request.conversation[-1]["content"]:
                raise RuntimeError("user simulator bug")
        return self.inner.respond_batch(requests)


def _snapshot(env) -> tuple:
    state = env.unwrapped._state
    return (list(map(dict, state.conversation)), list(state.revealed), state.turn, state.user_turns, state.done)


@pytest.mark.parametrize("where", ["judge", "user"])
def test_failed_step_leaves_env_unchanged(where):
    kwargs = {"judge": _ExplodingJudge()} if where == "judge" else {"user": _ExplodingUser()}
    env = UserLMMathEnv(**{"user": "replay", **kwargs}, tasks="procedural", max_turns=8)
    env.reset(seed=3)
    env.step("Could you tell me more?")
    before = _snapshot(env)
    with pytest.raises((OverflowError, RuntimeError)):
        env.step(f"{BOOM}: 10**400")
    assert _snapshot(env) == before
    obs, _, _, _, info = env.step("What else should I know?")
    roles = [m["role"] for m in obs]
    assert all(a != b for a, b in zip(roles, roles[1:])), roles  # never two assistant messages in a row
    assert info["turn"] == 2


def test_failed_step_then_same_episode_as_without_failure():
    """After a rolled-back step the episode continues exactly as if the bad call never happened."""
    replies = ["Could you tell me more?", "Anything else?", "The answer is 7."]
    clean = UserLMMathEnv(user="replay", tasks="procedural", max_turns=8)
    faulty = UserLMMathEnv(user="replay", tasks="procedural", max_turns=8, judge=_ExplodingJudge())
    clean.reset(seed=11)
    faulty.reset(seed=11)
    for reply in replies:
        with pytest.raises(OverflowError):
            faulty.step(BOOM)
        assert faulty.step(reply)[1:4] == clean.step(reply)[1:4]
    assert _snapshot(faulty) == _snapshot(clean)


def test_vector_env_failure_keeps_every_sub_env():
    kwargs = {"user": "replay", "tasks": "procedural", "max_turns": 3}
    vec = gym.make_vec("UserLM-Math-v0", num_envs=3, judge=_ExplodingJudge(), **kwargs)
    ref = gym.make_vec("UserLM-Math-v0", num_envs=3, **kwargs)
    vec.reset(seed=5)
    ref.reset(seed=5)
    plan = [["Tell me more?"] * 3, ["More?", BOOM, "More?"], ["The answer is 1."] * 3, ["More?"] * 3] * 2
    for actions in plan:
        if BOOM in actions:
            before = [_snapshot(env) for env in vec.unwrapped.envs]
            autoreset = vec.unwrapped._autoreset.copy()
            with pytest.raises(OverflowError):
                vec.step(actions)
            assert [_snapshot(env) for env in vec.unwrapped.envs] == before
            assert np.array_equal(vec.unwrapped._autoreset, autoreset)
            actions = [a.replace(BOOM, "More?") for a in actions]
        obs, rewards, terms, truncs, _ = vec.step(actions)
        obs_ref, rewards_ref, terms_ref, truncs_ref, _ = ref.step(actions)
        assert obs == obs_ref
        assert np.array_equal(rewards, rewards_ref) and np.array_equal(terms | truncs, terms_ref | truncs_ref)


def test_rolled_back_autoreset_draws_the_same_task():
    """A failed step that had autoreset a sub-env is rolled back with that sub-env's RNG: the redo draws the same."""
    tasks = [
        ShardedTask(
            task_id=f"one-shard/{i}",
            instruction=f"What is {i} + 1?",
            shards=(Shard(1, f"What is {i} + 1?"),),
            answer=str(i + 1),
        )
        for i in range(50)
    ]
    kwargs = {"user": "replay", "tasks": tasks, "max_turns": 4}
    vec = gym.make_vec("UserLM-Math-v0", num_envs=2, judge=_ExplodingJudge(), **kwargs)
    ref = gym.make_vec("UserLM-Math-v0", num_envs=2, **kwargs)
    for env in (vec, ref):
        env.reset(seed=0)
        env.step(["The answer is 1000.", "More?"])  # sub-env 0 answers after every shard: its episode ends
    with pytest.raises(OverflowError):
        vec.step(["ignored (autoreset)", BOOM])
    for env in (vec, ref):
        env.step(["ignored (autoreset)", "More?"])
    mine, theirs = vec.unwrapped.envs[0]._state, ref.unwrapped.envs[0]._state
    assert (mine.task.task_id, mine.user_seed) == (theirs.task.task_id, theirs.user_seed)


def test_options_max_turns_per_episode():
    env = UserLMMathEnv(user="replay", tasks="procedural", max_turns=6)
    env.reset(seed=1, options={"max_turns": 2})
    env.step("More?")
    *_, truncated, info = env.step("More?")
    assert truncated and info["end_reason"] == "max_turns" and info["turn"] == 2
    env.reset(seed=1)  # back to the env's limit
    for _ in range(5):
        assert not env.step("More?")[3]
    with pytest.raises(ValueError, match="max_turns"):
        env.reset(seed=1, options={"max_turns": 7})
    with pytest.raises(ValueError, match="max_turns"):
        env.reset(seed=1, options={"max_turns": 0})
