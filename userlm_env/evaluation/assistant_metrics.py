"""Lost-in-Conversation scores of an assistant, with bootstrap confidence intervals.

Per task, over its N simulations (LiC: N = 10) with scores in [0, 1]:

- performance ``P`` = mean score x 100,
- aptitude ``A90`` = 90th percentile of the scores x 100,
- unreliability ``U90_10`` = (90th - 10th percentile) x 100,

each then averaged over tasks. Confidence intervals resample *tasks* with replacement (the unit
that varies between benchmarks), keeping each task's N runs. The FULL -> SHARDED drop is the
relative change of P, with a paired bootstrap over the tasks both settings ran.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from userlm_env.evaluation.records import opening_shards

BOOTSTRAP_SAMPLES = 1000
ScoresByTask = Mapping[str, Sequence[float]]


def scores_by_task(records: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """The LiC score of every finished episode, grouped by task id (error records are left out)."""
    grouped: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if not record.get("error"):
            grouped[str(record["task_id"])].append(float(record["score"]))
    return dict(grouped)


def task_metrics(scores: Sequence[float]) -> tuple[float, float, float]:
    """(P, A90, U90_10) of one task's runs, in points (x 100)."""
    values = np.asarray(scores, dtype=float)
    p10, p90 = np.percentile(values, [10, 90])
    return 100 * float(values.mean()), 100 * float(p90), 100 * float(p90 - p10)


def lic_metrics(by_task: ScoresByTask) -> dict[str, float]:
    """P, A90 and U90_10 averaged over tasks (NaN when there are no tasks)."""
    per_task = np.array([task_metrics(s) for s in by_task.values() if len(s)], dtype=float)
    if not len(per_task):
        return {"P": math.nan, "A90": math.nan, "U90_10": math.nan}
    p, a90, u90 = per_task.mean(axis=0)
    return {"P": float(p), "A90": float(a90), "U90_10": float(u90)}


def bootstrap_ci(
    by_task: ScoresByTask,
    statistic: Callable[[ScoresByTask], float],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over tasks resampled with replacement."""
    tasks = [t for t, s in by_task.items() if len(s)]
    if not tasks:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        picked = rng.integers(len(tasks), size=len(tasks))
        resampled = {f"{i}:{tasks[j]}": by_task[tasks[j]] for i, j in enumerate(picked)}
        values.append(statistic(resampled))
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def lic_metrics_with_ci(by_task: ScoresByTask, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """:func:`lic_metrics` plus a 95% bootstrap interval for each (keys ``P_ci``, ``A90_ci``, ``U90_10_ci``)."""
    result: dict[str, Any] = lic_metrics(by_task)
    for name in ("P", "A90", "U90_10"):
        result[f"{name}_ci"] = bootstrap_ci(by_task, lambda b, n=name: lic_metrics(b)[n], samples=samples, seed=seed)
    result["tasks"] = sum(1 for s in by_task.values() if len(s))
    result["runs"] = sum(len(s) for s in by_task.values())
    return result


def relative_drop(
    full: ScoresByTask, sharded: ScoresByTask, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> dict[str, Any]:
    """Relative change of P from FULL to SHARDED in % (LiC's headline: about -39%), paired over shared tasks.

    Returns ``drop_pct`` (negative = SHARDED is worse), its 95% interval ``drop_ci``, and the number
    of shared ``tasks``. NaN when FULL's P is 0 (nothing to lose).
    """
    shared = sorted(set(full) & set(sharded))

    def change(pairs: Sequence[str]) -> float:
        p_full = np.mean([np.mean(full[t]) for t in pairs])
        p_sharded = np.mean([np.mean(sharded[t]) for t in pairs])
        return math.nan if p_full == 0 else float(100 * (p_sharded - p_full) / p_full)

    if not shared:
        return {"drop_pct": math.nan, "drop_ci": (math.nan, math.nan), "tasks": 0}
    rng = np.random.default_rng(seed)
    draws = [change([shared[j] for j in rng.integers(len(shared), size=len(shared))]) for _ in range(samples)]
    draws = [d for d in draws if not math.isnan(d)]
    tail = 2.5
    ci = tuple(float(x) for x in np.percentile(draws, [tail, 100 - tail])) if draws else (math.nan, math.nan)
    return {"drop_pct": change(shared), "drop_ci": ci, "tasks": len(shared)}


def attempt_stats(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """How the assistant answers: first attempt turn, premature and total attempts, share with none.

    ``first_attempt_turn`` is averaged over episodes with an attempt; ``premature_attempts`` counts
    answer attempts made while shards were still hidden (right or wrong); ``no_attempt_share`` is
    the share of episodes without any answer attempt (LiC scores them 0).
    """
    first_turns, attempts, premature, none, turns = [], [], [], [], []
    for record in records:
        if record.get("error"):
            continue
        num_shards = int(record.get("num_shards") or 0)
        revealed_before = len(opening_shards(record))
        first, count, early = None, 0, 0
        for step in record.get("steps") or []:
            if step.get("answer_attempt"):
                count += 1
                first = step["turn"] if first is None else first
                early += revealed_before < num_shards
            revealed_before = len(step.get("shards_revealed") or [])
        attempts.append(count)
        premature.append(early)
        none.append(count == 0)
        turns.append(record.get("turns", 0))
        if first is not None:
            first_turns.append(first)
    mean = lambda xs: float(np.mean(xs)) if xs else math.nan  # noqa: E731
    return {
        "episodes": float(len(attempts)),
        "first_attempt_turn": mean(first_turns),
        "attempts_per_episode": mean(attempts),
        "premature_attempts": mean(premature),
        "no_attempt_share": mean(none),
        "mean_turns": mean(turns),
    }
