"""Per-episode numbers and their aggregate: one definition for rollouts, evaluation, GRPO and PPO.

:func:`episode_metrics` turns one episode record (:class:`~userlm_env.episode_types.EpisodeRecord`,
or :meth:`training.episodes.EpisodeTokens.record`) into flat numbers with fixed names; :func:`aggregate`
averages them over episodes. Every report (the CLI table, GRPO's and PPO's ``eval/*`` metrics)
reads these names, so a number means the same thing everywhere.

Names: ``reward`` (the episode return), ``score`` (LiC score), ``turns``, ``shards_share`` (share of
the task's shards revealed), ``policy_tokens`` (training episodes), ``components/NAME`` (unweighted
component totals), ``cost/NAME`` (:data:`userlm_env.driver.COST_FIELDS`); :func:`aggregate` adds
``reward_std``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["aggregate", "episode_metrics"]


def episode_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The flat numbers of one episode record (see the module docstring for the names)."""
    metrics = {"reward": float(record["return"]), "score": float(record["score"]), "turns": float(record["turns"])}
    if record.get("num_shards"):
        metrics["shards_share"] = float(record["shards_revealed"]) / max(1, int(record["num_shards"]))
    if record.get("policy_tokens") is not None:
        metrics["policy_tokens"] = float(record["policy_tokens"])
    for name, value in (record.get("component_totals") or {}).items():
        metrics[f"components/{name}"] = float(value)
    cost = record.get("cost")
    for name, value in cost.items() if isinstance(cost, Mapping) else ():
        metrics[f"cost/{name}"] = float(value)
    return metrics


def aggregate(metrics: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each name over the episodes that have it, and ``reward_std`` (population std of ``reward``).

    >>> aggregate([{"reward": 1.0, "score": 1.0}, {"reward": 0.0, "score": 0.0, "cost/user_calls": 3.0}])
    {'reward': 0.5, 'score': 0.5, 'cost/user_calls': 3.0, 'reward_std': 0.5}
    """
    values: dict[str, list[float]] = {}
    for episode in metrics:
        for name, value in episode.items():
            values.setdefault(name, []).append(float(value))
    out = {name: float(np.mean(vs)) for name, vs in values.items()}
    if "reward" in values:
        out["reward_std"] = float(np.std(values["reward"]))
    return out
