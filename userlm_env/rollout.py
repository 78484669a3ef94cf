"""Run episodes of an assistant against an env, in lockstep batches, and summarise them.

:func:`run_episodes` steps ``batch_size`` episodes together: one batched assistant call for all
their replies, then one batched user call for all pending user turns (the env's ``act`` /
``observe_user`` / ``step_result`` split). Each finished episode becomes one JSON record with
its full transcript and every step's info; an episode that raises is recorded with its error and
the run goes on.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium.error import ResetNeeded

from userlm_env.backends.errors import BackendError
from userlm_env.envs.math_env import UserLMMathEnv
from userlm_env.episode_log import RECORD_FIELDS, EpisodeLog, unique_by_key
from userlm_env.episode_types import EndReason, EpisodeRecord
from userlm_env.rewards import COMPONENTS
from userlm_env.seeding import derive_seed

__all__ = ["RECORD_FIELDS", "run_episodes", "summarize"]


@dataclass
class _Running:
    env: UserLMMathEnv
    episode: int
    seed: int
    key: str
    obs: list
    info: dict
    started: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    total_reward: float = 0.0
    reply: str | None = None
    opening_shards: list[int] | None = None


def _record(run: _Running, *, terminated: bool, truncated: bool, error: str | None, meta: dict) -> EpisodeRecord:
    try:
        state = run.env.episode
    except ResetNeeded:  # the reset itself failed
        state = None
    totals = {name: float(sum(s["reward_components"][name] for s in run.steps)) for name in COMPONENTS}
    task = state.task if state else None
    return {
        "episode_key": run.key,
        "episode": run.episode,
        "seed": run.seed,
        **meta,
        "task_id": task.task_id if task else None,
        "num_shards": task.num_shards if task else None,
        "instruction": task.instruction if task else None,
        "shards": [{"shard_id": s.shard_id, "text": s.text} for s in task.shards] if task else None,
        "opening_shards": run.opening_shards,
        "transcript": run.obs,
        "steps": run.steps,
        "return": run.total_reward,
        "score": state.score if state else 0.0,
        "turns": len(run.steps),
        "shards_revealed": len(state.revealed) if state else 0,
        "end_reason": state.end_reason.value if state and state.end_reason else None,
        "terminated": terminated,
        "truncated": truncated,
        "component_totals": totals,
        "seconds": round(time.perf_counter() - run.started, 3),
        "error": error,
    }


def run_episodes(
    make_env: Callable[[], UserLMMathEnv],
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
) -> list[dict[str, Any]]:
    """Run one episode per seed (skipping episodes already in ``log``) and return their records.

    Args:
        make_env: builds an unwrapped env; called ``min(batch_size, len(seeds))`` times.
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
    """
    meta = dict(meta or {})
    if options is not None and len(options) != len(seeds):
        raise ValueError(f"options must align with seeds: {len(options)} options for {len(seeds)} seeds")
    todo = [
        (i, s, f"{key_prefix}seed={s}")
        for i, s in enumerate(seeds)
        if log is None or f"{key_prefix}seed={s}" not in log.done_keys
    ]
    envs = [make_env() for _ in range(min(batch_size, len(todo)))]
    records: list[dict[str, Any]] = []
    queue = iter(todo)
    running: list[_Running] = []

    def finish(run: _Running, *, terminated=False, truncated=False, error=None) -> None:
        record = _record(run, terminated=terminated, truncated=truncated, error=error, meta=meta)
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

    def start(env: UserLMMathEnv) -> None:
        for episode, seed, key in queue:
            run = _Running(env, episode, seed, key, [], {}, time.perf_counter())
            try:
                run.obs, run.info = env.reset(seed=int(seed), options=options[episode] if options else None)
                run.opening_shards = list(env.episode.revealed)
            except Exception:
                finish(run, error=traceback.format_exc(limit=5))
                continue
            if env.episode.done:  # the user ended the chat before it began (or its model failed)
                failed = env.episode.end_reason is EndReason.USER_ERROR
                finish(run, terminated=not failed, truncated=failed)
                continue
            running.append(run)
            return

    for env in envs:
        start(env)
    while running:
        finished = _assistant_turns(assistant, running)
        failed_assistant = {id(run) for run, _ in finished}
        requests, waiting = [], []
        for run in running:
            if id(run) in failed_assistant:
                continue
            try:
                request = run.env.act(run.reply)
            except Exception:
                finished.append((run, traceback.format_exc(limit=5)))
                continue
            if request is not None:
                requests.append(request)
                waiting.append(run)
        if requests:
            try:
                turns = envs[0].user.respond_batch(requests)
            except BackendError as err:  # a server fault: these episodes end truncated (info["error"])
                for run in waiting:
                    run.env.fail_user(err)
                waiting, turns = [], []
            except Exception:
                error = traceback.format_exc(limit=5)
                finished += [(run, error) for run in waiting]
                waiting, turns = [], []
            for run, turn in zip(waiting, turns):
                run.env.observe_user(turn)
        failed = {id(run) for run, _ in finished}
        still = []
        for run in running:
            if id(run) in failed:
                continue
            obs, reward, terminated, truncated, info = run.env.step_result()
            run.obs, run.info = obs, info
            run.total_reward += reward
            run.steps.append({"reply": run.reply, "reward": reward, **info})
            if terminated or truncated:
                finish(run, terminated=terminated, truncated=truncated)
            else:
                still.append(run)
        for run, error in finished:
            finish(run, error=error)
        kept = {id(run) for run in still}
        ended_envs = [run.env for run in running if id(run) not in kept]
        running = still
        for env in ended_envs:
            start(env)
    return records


def _assistant_turns(assistant, running: list[_Running]) -> list[tuple[_Running, str]]:
    """Ask the assistant for every running episode's reply in one batch; return the episodes that failed.

    When the batched call raises, each episode is retried alone so one bad episode cannot sink the rest.
    """
    infos = []
    for run in running:
        info = dict(run.info)
        if assistant.needs_oracle:
            info["oracle_answer"] = run.env.task.answer
        infos.append(info)
    seeds = [derive_seed("assistant-turn", run.seed, len(run.steps)) for run in running]
    try:
        replies = assistant.act_batch([run.obs for run in running], seeds, infos)
        for run, reply in zip(running, replies, strict=True):
            run.reply = reply
        return []
    except Exception:
        if len(running) == 1:
            return [(running[0], traceback.format_exc(limit=5))]
    failed = []
    for run, seed, info in zip(running, seeds, infos):
        try:
            run.reply = assistant.act_batch([run.obs], [seed], [info])[0]
        except Exception:
            failed.append((run, traceback.format_exc(limit=5)))
    return failed


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate episode records: success rate, returns, turns, shards, end reasons, components.

    Each ``episode_key`` counts once (the first record of a key is kept, as :class:`EpisodeLog` does);
    ``duplicates`` says how many records were left out for that.
    """
    records, duplicates = unique_by_key(records)
    ok = [r for r in records if not r.get("error")]
    summary: dict[str, Any] = {"episodes": len(records), "errors": len(records) - len(ok), "duplicates": duplicates}
    if not ok:
        return summary
    frac = [r["shards_revealed"] / max(1, r["num_shards"]) for r in ok]
    summary.update(
        success_rate=float(np.mean([r["score"] for r in ok])),
        mean_return=float(np.mean([r["return"] for r in ok])),
        mean_turns=float(np.mean([r["turns"] for r in ok])),
        mean_shards_revealed=float(np.mean(frac)),
        seconds_per_episode=float(np.mean([r["seconds"] for r in ok])),
        end_reasons=dict(Counter(r["end_reason"] for r in ok)),
        components={name: float(np.mean([r["component_totals"][name] for r in ok])) for name in COMPONENTS},
    )
    return summary
