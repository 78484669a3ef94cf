"""Run episodes of an assistant against an env, in lockstep batches, and summarise them.

:func:`run_episodes` plays ``batch_size`` episodes at a time through
:class:`~userlm_env.driver.EpisodeDriver`: one batched assistant call for all their replies, then one
batched user call for all pending user turns (the openings of episodes that take a freed slot
included); episodes finish and the queue refills their slot independently. Each finished episode
becomes one JSON record with its full transcript, every step's info and its cost; an episode that
raises is recorded with its error and the run goes on.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from userlm_env.driver import COST_FIELDS, EpisodeDriver, EpisodeSpec, LiveEpisode, Policy
from userlm_env.envs.base import ShardedChatEnv
from userlm_env.episode_log import RECORD_FIELDS, EpisodeLog, unique_by_key
from userlm_env.episode_types import EpisodeRecord
from userlm_env.metrics import aggregate, episode_metrics
from userlm_env.rewards import COMPONENTS

__all__ = ["RECORD_FIELDS", "assistant_policy", "run_episodes", "summarize"]


def _cost(episode: LiveEpisode) -> dict[str, float]:
    """The episode's cost for its record: counts as ints, token shares to 0.01, seconds to the microsecond."""
    cost = episode.cost
    return {
        "user_calls": int(cost["user_calls"]),
        "user_requests": int(cost["user_requests"]),
        "user_prompt_tokens": round(cost["user_prompt_tokens"], 2),
        "user_generated_tokens": round(cost["user_generated_tokens"], 2),
        "user_resamples": int(cost["user_resamples"]),
        "user_seconds": round(cost["user_seconds"], 6),
        "policy_seconds": round(cost["policy_seconds"], 6),
    }


def _record(episode: LiveEpisode, meta: dict) -> EpisodeRecord:
    view = episode.view
    task = view.task if view else None
    totals = {name: float(sum(s["reward_components"][name] for s in episode.steps)) for name in COMPONENTS}
    index, key = episode.spec.key
    return {
        "episode_key": key,
        "episode": index,
        "seed": episode.seed,
        **meta,
        "task_id": task.task_id if task else None,
        "num_shards": task.num_shards if task else None,
        "instruction": task.instruction if task else None,
        "shards": [{"shard_id": s.shard_id, "text": s.text} for s in task.shards] if task else None,
        "opening_shards": episode.opening_shards,
        "transcript": episode.obs,
        "steps": episode.steps,
        "return": episode.total_reward,
        "score": view.score if view else 0.0,
        "turns": len(episode.steps),
        "shards_revealed": len(view.revealed) if view else 0,
        "end_reason": view.end_reason.value if view and view.end_reason else None,
        "terminated": episode.terminated,
        "truncated": episode.truncated,
        "component_totals": totals,
        "seconds": round(time.perf_counter() - episode.started_at, 3),
        "cost": _cost(episode),
        "error": episode.error,
    }


def assistant_policy(assistant) -> Policy:
    """The driver's policy for an :class:`agents.Assistant`: one ``act_batch`` for every live episode.

    Each episode's reply is seeded with :attr:`~userlm_env.driver.LiveEpisode.assistant_seed`; scripted
    baselines that need the reference answer (``needs_oracle``) get it in ``info["oracle_answer"]``.
    """

    def policy(episodes: list[LiveEpisode]) -> list[str]:
        infos = []
        for episode in episodes:
            info = dict(episode.info)
            if assistant.needs_oracle:
                info["oracle_answer"] = episode.task.answer
            infos.append(info)
        seeds = [episode.assistant_seed for episode in episodes]
        return assistant.act_batch([episode.obs for episode in episodes], seeds, infos)

    return policy


def run_episodes(
    make_env: Callable[[], ShardedChatEnv],
    assistant,
    seeds: Sequence[int],
    *,
    batch_size: int = 8,
    log: EpisodeLog | None = None,
    meta: dict[str, Any] | None = None,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    options: Sequence[dict[str, Any] | None] | None = None,
    key_prefix: str = "",
    before_log: Callable[[dict[str, Any]], None] | None = None,
    overlap: bool = False,
) -> list[dict[str, Any]]:
    """Run one episode per seed (skipping episodes already in ``log``) and return their records.

    Args:
        make_env: builds an unwrapped env; called ``min(batch_size, len(seeds))`` times. Share one user
            object among the envs (``make_env`` closing over it) for one batched user call per round.
        assistant: an :class:`agents.Assistant`.
        seeds: one episode per seed (the seed of ``env.reset``).
        batch_size: episodes stepped together (batched model calls).
        log: where finished episodes are appended; seeds it already holds are skipped.
        meta: extra fields written into every record (model names, specs).
        on_episode: called with each finished record (progress bars).
        options: per-episode ``reset`` options, aligned with ``seeds`` (e.g. ``{"task": task}``).
        key_prefix: prepended to each record's ``episode_key`` (``f"{key_prefix}seed={seed}"``), so that
            several runs (settings, users) can share one log and resume independently.
        before_log: called with each finished record before it is written (may add fields).
        overlap: generate one half of the episodes' replies while the user answers the other half
            (:meth:`EpisodeDriver.run`); same records, finished in another order.
    """
    meta = dict(meta or {})
    if options is not None and len(options) != len(seeds):
        raise ValueError(f"options must align with seeds: {len(options)} options for {len(seeds)} seeds")
    todo = [
        EpisodeSpec(int(s), options[i] if options else None, key=(i, f"{key_prefix}seed={s}"))
        for i, s in enumerate(seeds)
        if log is None or f"{key_prefix}seed={s}" not in log.done_keys
    ]
    if not todo:
        return []
    driver = EpisodeDriver([make_env() for _ in range(min(batch_size, len(todo)))], errors="record")
    records: list[dict[str, Any]] = []
    for episode in driver.run(todo, assistant_policy(assistant), overlap=overlap):
        record = _record(episode, meta)
        if before_log is not None:
            try:
                before_log(record)
            except Exception:
                record["error"] = record["error"] or traceback.format_exc(limit=5)
        records.append(record)
        if log is not None:
            log.append(record)
        if on_episode is not None:
            on_episode(record)
    return records


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate episode records: success rate, returns, turns, shards, end reasons, components, cost.

    ``cost`` holds the mean per episode of each cost field (:data:`~userlm_env.driver.COST_FIELDS`) and
    ``cost_total`` their sums, over the error-free records that have a cost.

    Each ``episode_key`` counts once (the first record of a key is kept, as :class:`EpisodeLog` does);
    ``duplicates`` says how many records were left out for that.
    """
    records, duplicates = unique_by_key(records)
    ok = [r for r in records if not r.get("error")]
    summary: dict[str, Any] = {"episodes": len(records), "errors": len(records) - len(ok), "duplicates": duplicates}
    if not ok:
        return summary
    means = aggregate(episode_metrics(r) for r in ok)  # the numbers GRPO and PPO report too
    summary.update(
        success_rate=means["score"],
        mean_return=means["reward"],
        mean_turns=means["turns"],
        mean_shards_revealed=means.get("shards_share", 0.0),
        seconds_per_episode=float(np.mean([r["seconds"] for r in ok])),
        end_reasons=dict(Counter(r["end_reason"] for r in ok)),
        components={name: means.get(f"components/{name}", 0.0) for name in COMPONENTS},
    )
    costs = [r["cost"] for r in ok if isinstance(r.get("cost"), dict)]  # logs written before costs have none
    if costs:
        summary["cost"] = {name: means.get(f"cost/{name}", 0.0) for name in COST_FIELDS}
        summary["cost_total"] = {name: float(np.sum([c.get(name, 0) for c in costs])) for name in COST_FIELDS}
    return summary
