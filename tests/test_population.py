"""User populations: per-episode user draws in vector and single envs, seeding, weights, info, errors, GRPO."""

from __future__ import annotations

import collections
import json
import math

import gymnasium as gym
import pytest

import userlm_env  # noqa: F401 - registers the envs
from userlm_env.envs.population import PopulationEnv, PopulationFactory, parse_population
from userlm_env.users import ReplayUser

pytestmark = pytest.mark.filterwarnings("ignore:.*episodes will be truncated before every shard")

ASK = "Could you tell me more?"
TWO = [("replay", 0.5), ("replay:plain", 0.5)]


def make_vec(population, num_envs=4, **kwargs):
    return gym.make_vec(
        "UserLM-Math-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        user_population=population,
        max_turns=kwargs.pop("max_turns", 12),
        **kwargs,
    )


def play(vec, seed, steps=1):
    """Names and conversations of a few vector steps from reset(seed)."""
    obs, info = vec.reset(seed=seed)
    names, chats = [list(info["user_name"])], [obs]
    for _ in range(steps):
        obs, _, _, _, info = vec.step([ASK] * vec.num_envs)
        names.append(list(info["user_name"]))
        chats.append(obs)
    return names, chats


def test_vector_population_is_reproducible_per_seed_and_differs_across_seeds():
    vec_a, vec_b = make_vec(TWO, num_envs=6), make_vec(TWO, num_envs=6)
    try:
        assert play(vec_a, 3) == play(vec_b, 3)
        firsts = {tuple(play(vec_a, seed, steps=0)[0][0]) for seed in range(8)}
        assert len(firsts) > 1, "the member assignment must depend on the seed"
    finally:
        vec_a.close()
        vec_b.close()


def test_different_members_really_appear_and_info_reports_them():
    vec = make_vec(TWO, num_envs=8)
    try:
        obs, info = vec.reset(seed=0)
        names = list(info["user_name"])
        assert set(names) == {"replay", "replay:plain"}, names
        assert list(info["population_member"]) == [0 if n == "replay" else 1 for n in names]
        obs, _, _, _, info = vec.step([ASK] * 8)
        assert list(info["user_name"]) == names  # same member during the episode
        # the members really are different users: plain replay says the shard verbatim, templated replay not always
        plain_slots = [i for i, n in enumerate(names) if n == "replay:plain"]
        assert all(obs[i][-1]["content"] == vec.envs[i].task.shard(2).text for i in plain_slots)
        templated = [i for i, n in enumerate(names) if n == "replay"]
        assert any(obs[i][-1]["content"] != vec.envs[i].task.shard(2).text for i in templated)
    finally:
        vec.close()


def test_member_is_redrawn_at_each_autoreset_and_reproducibly():
    def run():
        vec = make_vec(TWO, num_envs=2, max_turns=1)  # every episode ends after one reply
        try:
            _, info = vec.reset(seed=11)
            seen = [tuple(info["user_name"])]
            for _ in range(20):  # step (ends), then autoreset
                vec.step(["It is 7."] * 2)
                _, _, _, _, info = vec.step(["It is 7."] * 2)
                seen.append(tuple(info["user_name"]))
            return seen
        finally:
            vec.close()

    first = run()
    assert first == run()
    assert len(set(first)) > 1, "autoresets must re-draw the member"


def test_weights_are_respected_over_many_resets():
    factory = PopulationFactory("math", [("replay", 3), ("replay:plain", 1)], {"max_turns": 12})
    env = factory.make_env()
    n = 2000
    counts = collections.Counter(env.reset(seed=s)[1]["user_name"] for s in range(n))
    expected = 0.75 * n
    sigma = math.sqrt(n * 0.75 * 0.25)
    assert abs(counts["replay"] - expected) < 4 * sigma, counts
    zero = PopulationFactory("math", [("replay", 1), ("replay:plain", 0)], {}).make_env()
    assert {zero.reset(seed=s)[1]["user_name"] for s in range(200)} == {"replay"}


def test_member_is_a_function_of_the_reset_seed_and_single_member_matches_plain_env():
    factory = PopulationFactory("math", TWO, {"max_turns": 5})
    a, b = factory.make_env(), factory.make_env()
    for seed in (5, 1, 5, 99):
        assert a.reset(seed=seed)[1]["user_name"] == b.reset(seed=seed)[1]["user_name"]
    solo = PopulationFactory("math", ["replay:plain"], {"max_turns": 5}).make_env()
    plain = gym.make("UserLM-Math-v0", user="replay:plain", max_turns=5).unwrapped
    obs1, info1 = solo.reset(seed=42)
    obs2, info2 = plain.reset(seed=42)
    assert obs1 == obs2 and info1["task_id"] == info2["task_id"]
    assert solo.step(ASK)[0] == plain.step(ASK)[0]


def test_users_of_the_same_spec_are_shared():
    vec = make_vec([("replay", 1), ({"user": "replay", "max_reply_chars": 8000, "name": "same"}, 1)], num_envs=3)
    try:
        users = {id(env.user) for env in vec.envs}
        members = {id(member.user) for env in vec.envs for member in env.envs}
        assert len(members) == 1 and users == members
        assert len(vec.user) == 1  # the pool
    finally:
        vec.close()
    user = ReplayUser()
    factory = PopulationFactory("math", [(user, 1), ({"user": user, "name": "again"}, 1)], {})
    assert all(m.user is user for m in factory.make_env().envs)


def test_dict_entries_pass_env_kwargs_through_and_pinning():
    factory = PopulationFactory(
        "math", [({"user": "replay", "reward": "shaped"}, 1), ({"user": "replay", "reward": "lic"}, 1)], {}
    )
    env = factory.make_env()
    assert factory.labels == ["replay[reward=shaped]", "replay[reward=lic]"]
    env.reset(seed=0, options={"population_member": "replay[reward=shaped]"})
    assert env.reward_config.turn != 0  # shaped pays per turn; lic does not
    env.reset(seed=0, options={"population_member": 1})
    assert env.reward_config.turn == 0
    with pytest.raises(ValueError, match="population_member"):
        env.reset(seed=0, options={"population_member": 7})


def test_step_checkpoint_restore_is_atomic_across_members():
    env = PopulationFactory("math", TWO, {"max_turns": 6}).make_env()
    env.reset(seed=3)
    saved = env.checkpoint()
    before = (env.active, env.episode)
    env.step(ASK)
    env.reset(seed=4)
    env.restore(saved)
    assert (env.active, env.episode) == before


@pytest.mark.parametrize(
    "population, error, match",
    [
        ([], ValueError, "non-empty"),
        ([("replay", -1)], ValueError, "weight must be finite and >= 0"),
        ([("replay", float("nan"))], ValueError, "weight must be finite"),
        ([("replay", "heavy")], ValueError, "weight must be a number"),
        ([("replay", 0), ("replay:plain", 0)], ValueError, "sum to 0"),
        ([(42, 1)], TypeError, "entry is a user spec string"),
        ([("replay", 1, 2)], ValueError, "expected \\(entry, weight\\)"),
        ([("no-such-user", 1)], ValueError, "member 0 \\('no-such-user'\\): unknown user spec"),
        ([({"user": "replay", "revael": "responsive"}, 1)], ValueError, "takes no argument \\['revael'\\]"),
        ([({"user": "replay", "num_envs": 2}, 1)], ValueError, "cannot be set per member"),
        ([({"user": "replay", "max_turns": 2}, 1), ("replay", 1)], ValueError, "different spaces"),
    ],
)
def test_bad_populations_give_clear_errors(population, error, match):
    with pytest.raises(error, match=match):
        make_vec(population, num_envs=2, max_turns=4)


def test_parse_population_compact_and_json():
    assert parse_population("replay:0.5,prompted:smollm2-135m:0.5") == [
        ("replay", 0.5),
        ("prompted:smollm2-135m", 0.5),
    ]
    assert parse_population("replay, replay:plain:3") == [("replay", 1.0), ("replay:plain", 3.0)]
    text = json.dumps([["replay", 1], [{"user": "replay", "reveal": "responsive"}, 2], "replay:plain"])
    assert parse_population(text) == [
        ("replay", 1.0),
        ({"user": "replay", "reveal": "responsive"}, 2.0),
        ("replay:plain", 1.0),
    ]
    for bad, match in [("", "empty"), ("replay,,x", "empty item"), ("[1, 2", "invalid JSON"), ("replay:-1", ">= 0")]:
        with pytest.raises(ValueError, match=match):
            parse_population(bad)


def test_training_args_accept_and_check_a_population():
    from training import grpo, ppo

    args = grpo.parse_args(["--preset", "tiny", "--user-population", "replay:0.5,replay:plain:0.5"])
    assert args.user_population == "replay:0.5,replay:plain:0.5" and "population-" in args.run_name
    make_env = grpo.make_env_factory(args)
    env = make_env()
    assert isinstance(env, PopulationEnv)
    assert {make_env().reset(seed=s)[1]["user_name"] for s in range(20)} == {"replay", "replay:plain"}
    with pytest.raises(ValueError, match="weight"):
        grpo.make_args("tiny", user_population="replay:-2")
    with pytest.raises(ValueError, match="invalid JSON"):
        ppo.make_args("tiny", user_population="[oops")
    assert ppo.make_args("tiny", user_population="replay,replay:plain").user_population


def test_grpo_trains_with_a_population(tmp_path, tiny_chat_model):
    """A tiny GRPO run whose episodes come from two users: both appear in the logged episodes."""
    from training import grpo

    args = grpo.make_args(
        "tiny",
        output_dir=str(tmp_path),
        run_name="pop",
        policy=str(tiny_chat_model),
        user_population=json.dumps([["replay", 1], [{"user": "replay:plain", "name": "plain"}, 1]]),
        max_steps=2,
        num_train_tasks=8,
        prompts_per_step=2,
        num_generations=2,
        eval_episodes=6,
        save_final_model=False,
        quiet=True,
        rich=False,
    )
    result = grpo.train(args)
    assert result["summary"]["steps"] == 2
    episodes = [json.loads(line) for line in (tmp_path / "pop" / "eval_episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 12  # before and after training
    factory_env = grpo.make_env_factory(args)()
    names = {factory_env.reset(seed=e["env_seed"])[1]["user_name"] for e in episodes}
    assert names == {"replay", "plain"}
