"""Chat spaces (Conversation, Reply), Gymnasium's env checker, and the sync vector env."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import userlm_env  # noqa: F401  (registers the env)
from userlm_env import UserLMMathEnv
from userlm_env.spaces import ROLES, Conversation, Reply
from userlm_env.users import ReplayUser

# Warnings check_env emits about the checker itself (not about the env) when the env has no spec.
CHECKER_NOTES = ("Not able to test alternative render modes",)


def _own_warnings(caught) -> list[str]:
    """Warnings raised from userlm_env code, or gymnasium warnings about the env (checker notes excluded)."""
    bad = []
    for w in caught:
        message = str(w.message)
        if "userlm_env" in (w.filename or "") or (
            "gymnasium" in (w.filename or "") and not any(note in message for note in CHECKER_NOTES)
        ):
            bad.append(f"{w.category.__name__}: {message} ({w.filename}:{w.lineno})")
    return bad


# --------------------------------------------------------------------------- env checker


@pytest.mark.parametrize("family", ["procedural", "lic", "gsm8k"])
@pytest.mark.parametrize("via_make", [True, False], ids=["gym.make", "direct"])
def test_check_env_passes(family, via_make, task_sources):
    """``check_env(env.unwrapped)`` passes for the replay user on every task family, with no unexpected warnings."""
    tasks = task_sources[family]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = (
            gym.make("UserLM-Math-v0", user="replay", tasks=tasks)
            if via_make
            else UserLMMathEnv(user="replay", tasks=tasks)
        )
        check_env(env.unwrapped)
    assert _own_warnings(caught) == []


def test_check_env_with_spec_strings(lic_spec, gsm8k_spec):
    """The env built from the LiC and GSM8K spec strings also passes check_env."""
    for spec in (lic_spec, gsm8k_spec):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(gym.make("UserLM-Math-v0", user="replay", tasks=spec).unwrapped)
        assert _own_warnings(caught) == []


def test_passive_checker_quiet_on_a_full_episode():
    """Through gym.make (passive env checker on), reset and steps of a whole episode raise no warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("UserLM-Math-v0", user="replay")
        obs, info = env.reset(seed=0)
        task = env.unwrapped.task
        for _ in range(task.num_shards - 1):
            env.step("Could you tell me more?")
        obs, reward, terminated, truncated, info = env.step(f"The answer is {task.answer}.")
    assert terminated and reward == 1.0


def test_env_spaces():
    """The env declares a Reply action space and a Conversation observation space sized by max_turns."""
    env = UserLMMathEnv(user="replay", max_turns=5, max_reply_chars=123)
    assert env.action_space == Reply(123)
    assert isinstance(env.observation_space, Conversation)
    assert env.observation_space.max_messages >= 2 * 5 + 1


def test_full_episode_obs_in_space():
    """Every observation of a max_turns-long episode is in the observation space."""
    env = UserLMMathEnv(user="replay", tasks="procedural:easy", max_turns=6)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    truncated = False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step("What else?")
        assert env.observation_space.contains(obs)
    assert len(obs) == 2 * 6  # opening + 6 replies + 5 user answers


# --------------------------------------------------------------------------- Reply


@pytest.mark.parametrize("text", ["", "The answer is 5.", "東京 🙂 ∑x² \t\n", "x" * 100])
def test_reply_contains_any_str_up_to_max(text):
    """Reply contains any str (empty, Unicode, control chars) up to max_length."""
    assert Reply(100).contains(text)
    assert text in Reply(100)


@pytest.mark.parametrize("value", ["x" * 101, None, 5, b"bytes", ["a"]])
def test_reply_rejects(value):
    """Reply rejects longer strings and non-strings."""
    assert not Reply(100).contains(value)


def test_reply_sample_and_seed():
    """Reply samples are contained strings, reproducible from the seed."""
    a, b = Reply(50, seed=3), Reply(50, seed=3)
    samples = [a.sample() for _ in range(20)]
    assert samples == [b.sample() for _ in range(20)]
    assert all(isinstance(s, str) and a.contains(s) for s in samples)
    assert len(set(samples)) > 1


def test_reply_equality():
    """Replies compare equal by max_length only."""
    assert Reply(10) == Reply(10)
    assert Reply(10) != Reply(11)
    assert Reply(10) != Conversation(10)
    assert Reply(10, seed=1) == Reply(10, seed=2)


def test_reply_validation():
    """A non-positive max_length raises ValueError."""
    with pytest.raises(ValueError):
        Reply(0)


# --------------------------------------------------------------------------- Conversation


@pytest.mark.parametrize(
    "chat",
    [
        [],
        [{"role": "user", "content": "hi ☺"}],
        [{"role": "system", "content": ""}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
    ],
)
def test_conversation_contains_chats(chat):
    """Conversation contains lists of role/content dicts with known roles (empty content allowed)."""
    assert Conversation(10).contains(chat)


@pytest.mark.parametrize(
    "value",
    [
        ({"role": "user", "content": "a"},),  # tuple, not list
        [{"role": "tool", "content": "a"}],
        [{"role": "user", "content": 3}],
        [{"role": "user"}],
        [{"role": "user", "content": "a", "name": "x"}],
        ["hello"],
        "hello",
        None,
        [{"role": "user", "content": "a"}] * 11,
    ],
    ids=["tuple", "role", "content-type", "missing-key", "extra-key", "str-item", "str", "none", "too-long"],
)
def test_conversation_rejects(value):
    """Conversation rejects non-lists, unknown roles, wrong keys or types, and too many messages."""
    assert not Conversation(10).contains(value)


@pytest.mark.parametrize("max_messages", [1, 2, 3, 5, 6, 256])
def test_conversation_sample_is_contained(max_messages):
    """Samples are contained, start and end with the user, alternate roles, and follow the seed."""
    space, twin = Conversation(max_messages, seed=0), Conversation(max_messages, seed=0)
    for _ in range(20):
        chat = space.sample()
        assert chat == twin.sample()
        assert space.contains(chat)
        assert chat and chat[0]["role"] == "user" and chat[-1]["role"] == "user"
        assert all(m["role"] == ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(chat))
        assert all(m["role"] in ROLES for m in chat)


def test_conversation_equality():
    """Conversations compare equal by max_messages only."""
    assert Conversation(10) == Conversation(10, seed=5)
    assert Conversation(10) != Conversation(12)
    assert Conversation(10) != Reply(10)
    with pytest.raises(ValueError):
        Conversation(0)


def test_spaces_not_flattenable():
    """Chat spaces say they cannot be flattened to numpy arrays."""
    assert not Reply().is_np_flattenable and not Conversation().is_np_flattenable


# --------------------------------------------------------------------------- vector env


def test_make_vec_sync():
    """``gym.make_vec(..., vectorization_mode="sync")`` runs 2 replay envs like 2 single envs with the same seeds."""
    envs = gym.make_vec("UserLM-Math-v0", num_envs=2, vectorization_mode="sync", user="replay")
    try:
        obs, infos = envs.reset(seed=[10, 11])
        assert len(obs) == 2 and all(o[-1]["role"] == "user" for o in obs)
        singles = [gym.make("UserLM-Math-v0", user="replay") for _ in range(2)]
        single_obs = [env.reset(seed=s)[0] for env, s in zip(singles, [10, 11], strict=True)]
        assert list(obs) == single_obs
        for _ in range(2):
            obs, rewards, terminated, truncated, infos = envs.step(["Could you tell me more?"] * 2)
            single = [env.step("Could you tell me more?") for env in singles]
            assert list(obs) == [s[0] for s in single]
            assert np.array_equal(rewards, [s[1] for s in single])
            assert not terminated.any() and not truncated.any()
        assert list(infos["shards_revealed"]) == [[1, 2, 3], [1, 2, 3]]
    finally:
        envs.close()


class CountingReplay(ReplayUser):
    """The replay user, counting its batched calls and their sizes."""

    def __init__(self):
        super().__init__()
        self.batch_sizes = []

    def respond_batch(self, requests):
        """Record the batch size, then replay."""
        self.batch_sizes.append(len(requests))
        return super().respond_batch(requests)


def _drive(envs, steps, num_envs):
    """Reset with seed 20 and step with clarifications then wrong answers (episodes end and autoreset)."""
    obs, infos = envs.reset(seed=20)
    trace = [(list(obs), [list(x) for x in infos["shards_revealed"]])]
    for step in range(steps):
        actions = ["What else?" if (step + i) % 4 else "The answer is 0." for i in range(num_envs)]
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        trace.append((list(obs), rewards.tolist(), terminated.tolist(), truncated.tolist()))
    return trace


def test_make_vec_default_matches_sync_and_batches_user_calls():
    """The default make_vec (vector entry point) replays the sync vector env, with one user call per step."""
    num_envs, steps = 3, 9
    counting = CountingReplay()
    default = gym.make_vec("UserLM-Math-v0", num_envs=num_envs, user=counting, tasks="procedural:easy")
    sync = gym.make_vec(
        "UserLM-Math-v0", num_envs=num_envs, vectorization_mode="sync", user="replay", tasks="procedural:easy"
    )
    try:
        fast, reference = _drive(default, steps, num_envs), _drive(sync, steps, num_envs)
        assert fast == reference
        assert any(any(t) for _, _, t, _ in fast[1:])  # some episode ended (and was auto-reset)
        assert len(counting.batch_sizes) <= steps + 1 and max(counting.batch_sizes) == num_envs
    finally:
        default.close()
        sync.close()
