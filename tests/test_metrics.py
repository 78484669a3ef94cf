"""One definition of per-episode metrics for rollouts, evaluation, GRPO and PPO (userlm_env.metrics)."""

from __future__ import annotations

import pytest

from training.episodes import EpisodeTokens, episode_summary
from userlm_env.metrics import aggregate, episode_metrics
from userlm_env.rollout import summarize

RECORD = {
    "episode_key": "seed=0", "return": 1.5, "score": 1.0, "turns": 3, "shards_revealed": 2, "num_shards": 4,
    "component_totals": {"correctness": 1.0, "turn": 3.0}, "cost": {"user_calls": 4, "user_seconds": 0.5},
    "seconds": 2.0, "end_reason": "correct_answer", "error": None,
}  # fmt: skip


def test_episode_metrics_by_hand():
    assert episode_metrics(RECORD) == {
        "reward": 1.5, "score": 1.0, "turns": 3.0, "shards_share": 0.5, "components/correctness": 1.0,
        "components/turn": 3.0, "cost/user_calls": 4.0, "cost/user_seconds": 0.5,
    }  # fmt: skip


def test_aggregate_means_over_episodes_that_have_the_name():
    other = {**RECORD, "episode_key": "seed=1", "return": -0.5, "score": 0.0, "cost": None}
    means = aggregate(map(episode_metrics, [RECORD, other]))
    assert means["reward"] == pytest.approx(0.5) and means["reward_std"] == pytest.approx(1.0)
    assert means["cost/user_calls"] == 4.0  # only the first episode has a cost


def test_rollout_summary_and_training_summary_use_the_same_numbers():
    other = {**RECORD, "episode_key": "seed=1", "return": -0.5, "score": 0.0}
    summary = summarize([RECORD, other])
    means = aggregate(map(episode_metrics, [RECORD, other]))
    assert (summary["success_rate"], summary["mean_return"], summary["mean_turns"]) == (
        means["score"], means["reward"], means["turns"]
    )
    tokens = [
        EpisodeTokens(prompt_ids=[1], env_mask=[1, 1, 0], reward=r["return"], score=r["score"], turns=r["turns"],
                      components=r["component_totals"], cost=r["cost"])
        for r in (RECORD, other)
    ]  # fmt: skip
    training = episode_summary(tokens)
    assert training["policy_tokens"] == 2.0
    assert {k: v for k, v in training.items() if k != "policy_tokens"} == {
        k: v for k, v in means.items() if k != "shards_share"
    }
