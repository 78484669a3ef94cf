"""Reward components, presets, spec parsing, and the env's reward = weighted sum of its components."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

import userlm_env  # noqa: F401  (registers the env)
from userlm_env.judge import Judgement, ReplyKind
from userlm_env.rewards import COMPONENTS, PRESETS, RewardConfig, step_components


def judgement(kind: ReplyKind, correct: bool | None = None) -> Judgement:
    """A judgement of the given kind (an answer attempt when ``correct`` is not None)."""
    attempt = kind == ReplyKind.ANSWER_ATTEMPT
    return Judgement(kind=kind, answer_attempt=attempt, extracted_answer="5" if attempt else None, correct=correct)


def components(j: Judgement, *, words=10, hidden=True, over=False, score=0.0, any_attempt=False) -> dict[str, float]:
    """step_components with readable defaults."""
    return step_components(
        j, reply_words=words, shards_hidden=hidden, episode_over=over, final_score=score, any_attempt=any_attempt
    )


# --------------------------------------------------------------------------- presets and specs


def test_presets():
    """lic is correctness only; shaped and efficient add the documented shaping weights."""
    assert RewardConfig.from_spec("lic") == RewardConfig() == RewardConfig.from_spec(None)
    assert RewardConfig.from_spec("lic").as_dict() == {c: (1.0 if c == "correctness" else 0.0) for c in COMPONENTS}
    shaped = RewardConfig.from_spec("shaped")
    assert shaped == PRESETS["shaped"]
    assert (shaped.correctness, shaped.premature_answer, shaped.clarification, shaped.hedge) == (1.0, -0.2, 0.05, -0.2)
    assert (shaped.turn, shaped.length, shaped.no_attempt) == (-0.02, -0.01, 0.0)
    efficient = RewardConfig.from_spec("efficient")
    assert (efficient.correctness, efficient.turn, efficient.length) == (1.0, -0.05, -0.02)
    assert set(RewardConfig().as_dict()) == set(COMPONENTS)


def test_spec_overrides():
    """``preset:comp=w,...`` overrides only the named weights."""
    config = RewardConfig.from_spec("shaped:turn=-0.05")
    assert config == dataclasses.replace(PRESETS["shaped"], turn=-0.05)
    config = RewardConfig.from_spec("shaped: turn = -0.05 , length=0,no_attempt=-1")
    assert (config.turn, config.length, config.no_attempt, config.hedge) == (-0.05, 0.0, -1.0, -0.2)
    assert RewardConfig.from_spec("lic:") == PRESETS["lic"]


def test_spec_mapping_and_config():
    """A mapping sets the named weights (others keep their defaults); a RewardConfig passes through."""
    config = RewardConfig.from_spec({"correctness": 2, "turn": -0.1})
    assert (config.correctness, config.turn, config.hedge) == (2.0, -0.1, 0.0)
    assert isinstance(config.correctness, float)
    given = RewardConfig(hedge=-1.0)
    assert RewardConfig.from_spec(given) is given


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("shapd", "shaped"),
        ("nonsense", "Presets"),
        ("shaped:bogus=1", "correctness"),
        ("shaped:turn", "component=number"),
        ("shaped:turn=abc", "component=number"),
        ({"correctnes": 1.0}, "correctness"),
    ],
)
def test_spec_errors(spec, needle):
    """Unknown presets/components and malformed overrides raise ValueError naming the valid choices."""
    with pytest.raises(ValueError) as err:
        RewardConfig.from_spec(spec)
    assert needle in str(err.value)


def test_spec_wrong_type():
    """A spec that is not a str, mapping or RewardConfig raises TypeError."""
    with pytest.raises(TypeError):
        RewardConfig.from_spec(1.0)


def test_weighted_sum():
    """weighted() is the sum of weight x component over every component (missing components count 0)."""
    config = RewardConfig(
        correctness=1, premature_answer=-0.2, clarification=0.05, hedge=-0.3, turn=-0.02, length=-0.01, no_attempt=-0.5
    )
    values = {
        "correctness": 1.0,
        "premature_answer": 1.0,
        "clarification": 1.0,
        "hedge": 1.0,
        "turn": 1.0,
        "length": 2.5,
        "no_attempt": 1.0,
    }
    assert config.weighted(values) == pytest.approx(1 - 0.2 + 0.05 - 0.3 - 0.02 - 0.025 - 0.5)
    assert config.weighted({"turn": 1.0}) == pytest.approx(-0.02)
    assert config.weighted({}) == 0.0
    assert isinstance(config.weighted(values), float)


# --------------------------------------------------------------------------- step_components table


def test_components_cover_every_name():
    """step_components always reports every component."""
    assert set(components(judgement(ReplyKind.DISCUSSION))) == set(COMPONENTS)


@pytest.mark.parametrize(
    ("correct", "hidden", "expected"),
    [(False, True, 1.0), (False, False, 0.0), (True, True, 0.0), (True, False, 0.0)],
)
def test_premature_answer(correct, hidden, expected):
    """premature_answer is 1 only for a wrong attempt made while shards are hidden."""
    values = components(judgement(ReplyKind.ANSWER_ATTEMPT, correct=correct), hidden=hidden)
    assert values["premature_answer"] == expected


@pytest.mark.parametrize(
    ("kind", "hidden", "expected"),
    [
        (ReplyKind.CLARIFICATION, True, 1.0),
        (ReplyKind.INTERROGATION, True, 1.0),
        (ReplyKind.CLARIFICATION, False, 0.0),
        (ReplyKind.DISCUSSION, True, 0.0),
        (ReplyKind.HEDGE, True, 0.0),
        (ReplyKind.MISSING, True, 0.0),
    ],
)
def test_clarification_only_while_shards_hidden(kind, hidden, expected):
    """clarification is 1 for questions to the user while shards are hidden, 0 otherwise."""
    assert components(judgement(kind), hidden=hidden)["clarification"] == expected


@pytest.mark.parametrize("hidden", [True, False])
def test_hedge(hidden):
    """hedge is 1 for a hedging reply whether or not shards are hidden, and 0 for other kinds."""
    assert components(judgement(ReplyKind.HEDGE), hidden=hidden)["hedge"] == 1.0
    assert components(judgement(ReplyKind.ANSWER_ATTEMPT, correct=False), hidden=hidden)["hedge"] == 0.0


@pytest.mark.parametrize(
    ("over", "any_attempt", "expected"),
    [(True, False, 1.0), (True, True, 0.0), (False, False, 0.0)],
)
def test_no_attempt_only_at_end(over, any_attempt, expected):
    """no_attempt is 1 only on the last step of an episode without any answer attempt."""
    assert components(judgement(ReplyKind.CLARIFICATION), over=over, any_attempt=any_attempt)["no_attempt"] == expected


@pytest.mark.parametrize(("over", "score", "expected"), [(True, 1.0, 1.0), (True, 0.0, 0.0), (False, 1.0, 0.0)])
def test_correctness_only_at_end(over, score, expected):
    """correctness is the final score on the last step and 0 before."""
    values = components(judgement(ReplyKind.ANSWER_ATTEMPT, correct=True), over=over, score=score, any_attempt=True)
    assert values["correctness"] == expected


@pytest.mark.parametrize(("words", "expected"), [(0, 0.0), (50, 0.5), (100, 1.0), (250, 2.5)])
def test_length_and_turn(words, expected):
    """length is reply words / 100 and turn is 1 on every step."""
    values = components(judgement(ReplyKind.DISCUSSION), words=words)
    assert values["length"] == pytest.approx(expected) and values["turn"] == 1.0


# --------------------------------------------------------------------------- env rewards


SCRIPT = [
    "Could you tell me more?",  # clarification while hidden
    "It could be 3 or 5.",  # hedge
    "WRONG",  # premature wrong answer
    " ".join(["word"] * 150) + ".",  # long discussion
    "What else should I know?",
]


def _reply(step: int, env) -> str:
    task = env.unwrapped.task
    if step < len(SCRIPT):
        reply = SCRIPT[step]
        return f"The answer is {int(task.answer) + 3}." if reply == "WRONG" else reply
    return f"The answer is {task.answer}."


@pytest.mark.parametrize("reward", ["shaped", "efficient", "shaped:no_attempt=-1,clarification=0.3"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_env_reward_is_weighted_sum_of_components(reward, seed):
    """At every step the env's reward equals the config's weighted sum of info["reward_components"]."""
    config = RewardConfig.from_spec(reward)
    env = gym.make("UserLM-Math-v0", user="replay", tasks="procedural:hard", reward=reward, max_turns=12)
    env.reset(seed=seed)
    seen = {name: 0.0 for name in COMPONENTS}
    for step in range(12):
        obs, reward_value, terminated, truncated, info = env.step(_reply(step, env))
        values = info["reward_components"]
        expected = sum(getattr(config, name) * values[name] for name in COMPONENTS)
        assert reward_value == pytest.approx(expected, abs=1e-12)
        assert reward_value == pytest.approx(config.weighted(values), abs=1e-12)
        for name in COMPONENTS:
            seen[name] = max(seen[name], values[name])
        if terminated or truncated:
            break
    assert terminated and info["correct"] is True and values["correctness"] == 1.0
    # the script exercised the shaping components
    assert seen["clarification"] == seen["hedge"] == seen["premature_answer"] == 1.0
    assert seen["length"] >= 1.5


def test_env_step_components_match_script():
    """The env reports the expected component values for a scripted sequence of reply kinds."""
    env = gym.make("UserLM-Math-v0", user="replay", tasks="procedural:hard", reward="shaped")
    env.reset(seed=0)
    rows = []
    for step in range(len(SCRIPT)):
        *_, info = env.step(_reply(step, env))
        rows.append(info["reward_components"])
    assert rows[0]["clarification"] == 1.0 and rows[0]["premature_answer"] == 0.0
    assert rows[1]["hedge"] == 1.0 and rows[1]["clarification"] == 0.0
    assert rows[2]["premature_answer"] == 1.0
    assert rows[3]["length"] == pytest.approx(1.5)
    assert all(r["turn"] == 1.0 and r["correctness"] == 0.0 and r["no_attempt"] == 0.0 for r in rows)


def test_env_lic_reward_is_sparse():
    """Under lic the reward is 0 on every step but the last, which is the LiC score."""
    env = gym.make("UserLM-Math-v0", user="replay", tasks="procedural:hard", reward="lic")
    env.reset(seed=3)
    rewards = []
    for step in range(12):
        *_, reward_value, terminated, truncated, info = env.step(_reply(step, env))
        rewards.append(reward_value)
        if terminated or truncated:
            break
    assert rewards[:-1] == [0.0] * (len(rewards) - 1) and rewards[-1] == 1.0
