"""Robustness matrix: train one policy per training user, evaluate every policy against every test user.

:func:`run_matrix` (and ``userlm-env matrix``) trains one GRPO policy per *training user* (the CPU
``tiny`` preset of ``training/grpo.py`` by default, through its Python entry point
:func:`training.grpo.train`), then plays ``eval_episodes`` held-out episodes of every trained policy
against every *test user*, and writes under ``out_dir``:

* ``matrix.json``: every cell's metrics with 95% bootstrap intervals (over episodes), the
  in-distribution vs held-out gap, the notes (skipped test users), wall times;
* ``matrix.csv``: one row per cell (``train_user, test_user, in_distribution, episodes, errors`` and
  ``METRIC, METRIC_lo, METRIC_hi`` for each metric);
* ``report.html`` (heatmaps of score, turns and premature answers, the tables, the transcripts) and
  ``summary.md``;
* ``cells/*.jsonl``: the episodes of each cell, append-only (:class:`~userlm_env.episode_log.EpisodeLog`);
  ``train/<user>/``: each GRPO run (``final/`` is the trained policy, ``matrix_done.json`` marks it finished).

**Resumable.** A rerun with the same ``out_dir`` skips finished trainings and finished episodes: a
crash loses at most the episodes in flight and the training that was running.

**Default matrix** (CPU-sized): training users ``replay`` (LiC's user) and ``replay?profile=sharegpt`` (the
human-calibrated profile: most of the task in the first message), model-free so training costs about a minute
each; test users ``replay`` (ordered reveal), the replay user with ``reveal="responsive"`` and
``reveal="on_request"``, with each profile ``terse``, ``impatient``, ``verbose``, ``sharegpt`` (an env
without ``reveal=`` / ``user_profile=`` skips those, with a note), ``prompted:smollm2-135m?engine=auto``
(the bundled model on in-process llama.cpp when llama-cpp-python is installed and no GPU is visible, else
transformers; the engine each test user ran on is logged and recorded in ``matrix.json``), and the flipped
User LM of ``training/train_userlm.py`` when ``userlm_path`` points at a trained one. A cell is
*in-distribution* when its test user is its training user (same label), *held-out* otherwise; the gap
is the mean of the in-distribution cells minus the mean of the held-out cells, with a bootstrap interval
that resamples the episodes of every cell.

Metrics per episode: ``score`` (LiC score: grade of the last answer attempt), ``return`` (the episode
return under the training reward), ``turns`` (assistant replies), ``premature`` (wrong answer attempts
while shards were hidden, the ``premature_answer`` component), ``clarification`` (questions asked while
shards were hidden).
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from userlm_env.evaluation.assistant_metrics import BOOTSTRAP_SAMPLES, bootstrap_ci

__all__ = [
    "DEFAULT_TRAIN_OVERRIDES",
    "DEFAULT_PROFILE_TEST_USERS",
    "DEFAULT_TRAIN_USERS",
    "default_train_users",
    "METRICS",
    "MatrixConfig",
    "MatrixResult",
    "default_test_users",
    "matrix_metrics",
    "run_matrix",
    "write_matrix_outputs",
]

RESPONSIVE_REPLAY = {"user": "replay", "reveal": "responsive", "name": "replay[reveal=responsive]"}
ON_REQUEST_REPLAY = {"user": "replay", "reveal": "on_request", "name": "replay[reveal=on_request]"}
SHAREGPT_REPLAY = "replay?profile=sharegpt"
DEFAULT_TRAIN_USERS: tuple[Any, ...] = ("replay", SHAREGPT_REPLAY)
"""The default training users: LiC's user (one shard per turn, in order) and the human-calibrated one (most of
the task up front, longer turns, repeats, gives up), both model-free so training is CPU-cheap
(``replay:plain`` replaces the second one when the env takes no ``user_profile=``, see
:func:`default_train_users`); the LM users are held out."""
DEFAULT_PROFILE_TEST_USERS: tuple[str, ...] = ("terse", "impatient", "verbose", "sharegpt")
"""Profiles (:data:`userlm_env.users.profiles.PROFILES`) of the replay user among the default test users."""
DEFAULT_PROMPTED_TEST_USER = "prompted:smollm2-135m?engine=auto"
"""The default held-out LM test user: the bundled model on the fastest engine here (llama.cpp on a CPU)."""
DEFAULT_TRAIN_OVERRIDES: dict[str, Any] = {"max_steps": 20, "num_train_tasks": 32}
"""GRPO ``tiny`` preset overrides of the default matrix (few steps; few training seeds, whose opening turns
cost a user call each)."""
METRICS: dict[str, str] = {
    "score": "LiC score",
    "return": "episode return",
    "turns": "assistant turns",
    "premature": "premature answers / episode",
    "clarification": "clarifications / episode",
}
"""Metric key -> description (the keys of every cell's ``metrics``)."""
HEATMAP_METRICS = ("score", "turns", "premature")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "user"


def _label(entry: Any) -> str:
    from userlm_env.envs.population import member_label

    return member_label(entry)


def _env_takes(env: str, argument: str) -> bool:
    from userlm_env.envs import ENV_CLASSES, resolve_env_id

    return argument in inspect.signature(ENV_CLASSES[resolve_env_id(env)]).parameters


def default_train_users(env: str = "UserLM-Math-v0") -> list[Any]:
    """``replay`` and ``replay?profile=sharegpt`` (``replay:plain`` when the env takes no ``user_profile=``)."""
    return ["replay", SHAREGPT_REPLAY if _env_takes(env, "user_profile") else "replay:plain"]


def default_test_users(
    env: str = "UserLM-Math-v0", userlm_path: str | Path | None = None
) -> tuple[list[Any], list[str]]:
    """The default test users for ``env`` and the notes on the ones left out.

    ``replay`` (LiC's ordered reveal); the replay user with ``reveal="responsive"`` and ``"on_request"`` (if the
    env takes ``reveal``); with each profile of :data:`DEFAULT_PROFILE_TEST_USERS` (if it takes
    ``user_profile``); ``prompted:smollm2-135m?engine=auto``; and ``userlm:PATH`` when ``userlm_path`` holds a
    trained User LM (``PATH`` or ``PATH/final``).
    """
    from userlm_env.envs import resolve_env_id

    users: list[Any] = ["replay"]
    notes: list[str] = []
    if _env_takes(env, "reveal"):
        users += [dict(RESPONSIVE_REPLAY), dict(ON_REQUEST_REPLAY)]
    else:
        notes.append(f"reveal modes skipped: {resolve_env_id(env)} takes no reveal= argument")
    if _env_takes(env, "user_profile"):
        users += [f"replay?profile={name}" for name in DEFAULT_PROFILE_TEST_USERS]
    else:
        notes.append(f"profiles skipped: {resolve_env_id(env)} takes no user_profile= argument")
    users.append(DEFAULT_PROMPTED_TEST_USER)
    if userlm_path:
        found = _userlm_dir(Path(userlm_path))
        if found is None:
            notes.append(f"flipped User LM skipped: no trained model (config.json) at {userlm_path} or its final/")
        else:
            users.append(f"userlm:{found}")
    return users, notes


def _userlm_dir(path: Path) -> Path | None:
    for candidate in (path, path / "final"):
        if (candidate / "config.json").is_file():
            return candidate
    return None


@dataclass
class MatrixConfig:
    """What :func:`run_matrix` trains and evaluates.

    Attributes:
        out_dir: where everything is written (and resumed from).
        train_users: one policy per entry: a user spec string or a dict of env arguments (as population
            entries, :mod:`userlm_env.envs.population`); None = :func:`default_train_users`.
        test_users: entries to evaluate against; None = :func:`default_test_users`.
        userlm_path: a trained flipped User LM (``training/train_userlm.py`` run dir or its ``final/``),
            added to the default test users when it exists.
        env: env id.
        tasks: task spec ("" = the env's default).
        reward: training reward (also the evaluation's ``return``).
        max_turns: turn limit of training and evaluation episodes.
        train_preset: ``training/grpo.py`` preset.
        train_overrides: ``training/grpo.py`` argument overrides (``max_steps``, ``policy``, ...).
        eval_episodes: evaluation episodes per cell (env seeds ``eval_seed_offset + i``, the same in every cell).
        eval_seed_offset: first evaluation env seed (disjoint from the training seeds).
        seed: training seed.
        batch_size: evaluation episodes stepped together.
        bootstrap_samples: bootstrap resamples of every interval.
    """

    out_dir: str | Path
    train_users: Sequence[Any] | None = None
    test_users: Sequence[Any] | None = None
    userlm_path: str | Path | None = None
    env: str = "UserLM-Math-v0"
    tasks: str = ""
    reward: str = "lic:clarification=1,premature_answer=-1"
    max_turns: int = 3
    train_preset: str = "tiny"
    train_overrides: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_TRAIN_OVERRIDES))
    eval_episodes: int = 24
    eval_seed_offset: int = 1_000_000
    seed: int = 1
    batch_size: int = 8
    bootstrap_samples: int = BOOTSTRAP_SAMPLES

    def __post_init__(self) -> None:
        if self.train_users is None:
            self.train_users = default_train_users(self.env)
        if not self.train_users:
            raise ValueError("train_users is empty: give at least one training user")
        if self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1, got {self.eval_episodes}")
        labels = [_label(u) for u in self.train_users]
        if len(set(labels)) != len(labels):
            raise ValueError(f"training users must have distinct labels, got {labels}")


@dataclass
class MatrixResult:
    """What :func:`run_matrix` returns: the metrics (as in ``matrix.json``), the records and the paths."""

    metrics: dict[str, Any]
    records: list[dict[str, Any]]
    paths: dict[str, Path]


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def episode_values(record: Mapping[str, Any]) -> dict[str, float]:
    """The matrix metrics of one episode record (:func:`userlm_env.rollout.run_episodes` format)."""
    totals = record.get("component_totals") or {}
    return {
        "score": float(record.get("score") or 0.0),
        "return": float(record.get("return") or 0.0),
        "turns": float(record.get("turns") or 0),
        "premature": float(totals.get("premature_answer", 0.0)),
        "clarification": float(totals.get("clarification", 0.0)),
    }


def _mean_ci(values: Sequence[float], samples: int, seed: int) -> dict[str, Any]:
    if not values:
        return {"mean": math.nan, "ci": [math.nan, math.nan]}
    by_episode = {str(i): [v] for i, v in enumerate(values)}  # bootstrap_ci resamples "tasks": here episodes
    lo, hi = bootstrap_ci(by_episode, lambda b: float(np.mean([x[0] for x in b.values()])), samples=samples, seed=seed)
    return {"mean": float(np.mean(values)), "ci": [lo, hi]}


def matrix_metrics(
    records: Sequence[Mapping[str, Any]],
    train_labels: Sequence[str],
    test_labels: Sequence[str],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Cells (metric means with 95% bootstrap intervals) and the in-distribution vs held-out gap.

    Records need ``train_user``, ``test_user`` and the fields of :func:`episode_values`; records with an
    ``error`` count as errors, not as episodes.
    """
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        grouped.setdefault((record["train_user"], record["test_user"]), []).append(record)
    cells, values = [], {}
    for train in train_labels:
        for test in test_labels:
            group = grouped.get((train, test), [])
            ok = [episode_values(r) for r in group if not r.get("error")]
            values[(train, test)] = ok
            cells.append(
                {
                    "train_user": train,
                    "test_user": test,
                    "in_distribution": train == test,
                    "episodes": len(ok),
                    "errors": sum(1 for r in group if r.get("error")),
                    "metrics": {m: _mean_ci([v[m] for v in ok], samples, seed) for m in METRICS},
                }
            )
    return {"cells": cells, "gap": _gaps(values, train_labels, test_labels, samples, seed)}


def _gaps(values, train_labels, test_labels, samples: int, seed: int) -> dict[str, Any]:
    """Mean of the in-distribution cells minus mean of the held-out cells, per metric, with a bootstrap CI."""
    diagonal = [(a, b) for a in train_labels for b in test_labels if a == b and values[(a, b)]]
    held_out = [(a, b) for a in train_labels for b in test_labels if a != b and values[(a, b)]]
    out: dict[str, Any] = {"in_distribution_cells": len(diagonal), "held_out_cells": len(held_out)}
    rng = np.random.default_rng(seed)
    arrays = {cell: {m: np.array([v[m] for v in values[cell]]) for m in METRICS} for cell in diagonal + held_out}
    draws = {cell: [rng.integers(len(values[cell]), size=len(values[cell])) for _ in range(samples)] for cell in arrays}
    for metric in METRICS:
        if not diagonal or not held_out:
            out[metric] = {"in_distribution": math.nan, "held_out": math.nan, "gap": math.nan, "ci": [math.nan] * 2}
            continue

        def cell_mean(cell, k, metric=metric) -> float:
            data = arrays[cell][metric]
            return float(data.mean() if k is None else data[draws[cell][k]].mean())

        def gap(k=None) -> tuple[float, float, float]:
            ins = float(np.mean([cell_mean(c, k) for c in diagonal]))
            outs = float(np.mean([cell_mean(c, k) for c in held_out]))
            return ins, outs, ins - outs

        ins, outs, point = gap()
        boot = [gap(k)[2] for k in range(samples)]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        out[metric] = {"in_distribution": ins, "held_out": outs, "gap": point, "ci": [float(lo), float(hi)]}
    return out


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------


class _Progress:
    """Rich progress bars (a no-op when ``enabled`` is False)."""

    def __init__(self, enabled: bool, console=None):
        self.enabled = enabled
        self.console = console
        self.progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def add(self, description: str, total: int, completed: int = 0):
        return None if self.progress is None else self.progress.add_task(description, total=total, completed=completed)

    def advance(self, task, n: int = 1):
        if task is not None:
            self.progress.advance(task, n)

    def remove(self, task):
        if task is not None:
            self.progress.remove_task(task)

    def pause(self):
        """A context in which the bars are hidden (a training run shows its own)."""
        import contextlib

        @contextlib.contextmanager
        def paused():
            if self.progress is None:
                yield
                return
            self.progress.stop()
            try:
                yield
            finally:
                self.progress.start()

        return paused()

    def log(self, text: str):
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False)
        elif self.console is not None:
            self.console.print(text, markup=False, highlight=False)


def _train_args(config: MatrixConfig, entry: Any, out: Path, policy: str | None):
    from training import grpo

    overrides = {
        "env": config.env,
        "tasks": config.tasks,
        "reward": config.reward,
        "max_turns": config.max_turns,
        "seed": config.seed,
        "output_dir": str(out / "train"),
        "run_name": _slug(_label(entry)),
        "quiet": True,
        "eval_episodes": 0,  # the matrix evaluates
        "eval_seed_offset": config.eval_seed_offset,
        **({"policy": policy} if policy else {}),
        **dict(config.train_overrides),
    }
    if isinstance(entry, str):
        overrides["user"] = entry
    else:  # a dict of env arguments: a one-member population
        overrides["user_population"] = json.dumps([[_jsonable_entry(entry), 1.0]])
    return grpo.make_args(config.train_preset, **overrides)


def _jsonable_entry(entry: Any) -> Any:
    if isinstance(entry, Mapping):
        return {k: v for k, v in entry.items()}
    return entry


def _train_all(config: MatrixConfig, out: Path, bars: _Progress) -> tuple[dict[str, Path], float]:
    """Train (or find) one policy per training user; returns label -> trained model dir, and seconds spent."""
    from training import grpo

    policies: dict[str, Path] = {}
    seconds = 0.0
    policy = None
    preset_policy = {**grpo.PRESETS[config.train_preset], **dict(config.train_overrides)}.get("policy", "tiny")
    if preset_policy == "tiny":  # one initial policy for every training user (built with the replay user)
        base = _train_args(config, "replay", out, None)
        path = out / "train" / "_models" / "tiny_policy"
        grpo.build_tiny_policy(path, grpo.make_env_factory(base))
        policy = str(path)
    todo = bars.add("training policies", total=len(config.train_users))
    for entry in config.train_users:
        label = _label(entry)
        args = _train_args(config, entry, out, policy)
        run_dir = Path(args.run_dir)
        marker = run_dir / "matrix_done.json"
        if marker.is_file() and (run_dir / "final").is_dir():
            bars.log(f"training user {label}: already trained ({run_dir / 'final'})")
        else:
            bars.log(f"training user {label}: GRPO preset {config.train_preset}, {args.max_steps} steps -> {run_dir}")
            start = time.perf_counter()
            if args.save_final_model is False:
                args.save_final_model = True
            with bars.pause():  # TRL's own rich bar shows the training steps
                result = grpo.train(args)
            spent = time.perf_counter() - start
            seconds += spent
            marker.write_text(json.dumps({"user": label, "seconds": round(spent, 1), **result["summary"]}, default=str))
        policies[label] = run_dir / "final"
        bars.advance(todo)
    return policies, seconds


def _user_engines(factories: Mapping[str, Any]) -> dict[str, str]:
    """Test user label -> the engine its model runs on (``"none"`` for model-free users)."""
    engines = {}
    for label, factory in factories.items():
        found = "none"
        for user, _ in getattr(factory, "_builds", []):
            backend = getattr(user, "backend", None)
            if backend is not None:
                found = str(getattr(backend, "engine", type(backend).__name__))
        engines[label] = found
    return engines


def _test_factories(config: MatrixConfig, test_users: Sequence[Any]):
    """Test user label -> its env factory for every test user (users built once, shared by every trained policy)."""
    from userlm_env.envs import make_env_task_source
    from userlm_env.envs.population import PopulationFactory

    base: dict[str, Any] = {"reward": config.reward, "max_turns": config.max_turns}
    if config.tasks:
        base["tasks"] = make_env_task_source(config.env, config.tasks)
    return {_label(entry): PopulationFactory(config.env, [(entry, 1.0)], base) for entry in test_users}


def _cell_path(out: Path, i: int, train: str, j: int, test: str) -> Path:
    return out / "cells" / f"{i:02d}-{_slug(train)}__{j:02d}-{_slug(test)}.jsonl"


def run_matrix(
    config: MatrixConfig | None = None,
    *,
    progress: bool = True,
    console=None,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    **kwargs: Any,
) -> MatrixResult:
    """Train one policy per training user, evaluate each against every test user, write the outputs.

    Args:
        config: a :class:`MatrixConfig`; or pass its fields as keyword arguments (``out_dir=...``).
        progress: show rich progress bars.
        console: a ``rich.console.Console`` for the bars and messages.
        on_episode: called with every finished evaluation record.
        **kwargs: the :class:`MatrixConfig` fields, when ``config`` is None.

    Returns:
        The metrics (as in ``matrix.json``), every evaluation record, and the written paths.

    Raises:
        ValueError: a bad configuration (or a test user that cannot be built).
    """
    import warnings

    from agents import make_assistant
    from userlm_env.backends.transformers_backend import SamplingParams
    from userlm_env.episode_log import EpisodeLog
    from userlm_env.rollout import run_episodes

    config = config if config is not None else MatrixConfig(**kwargs)
    started = time.perf_counter()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if config.test_users is None:
        test_users, notes = default_test_users(config.env, config.userlm_path)
    else:
        test_users = list(config.test_users)
        if config.userlm_path:
            found = _userlm_dir(Path(config.userlm_path))
            if found is None:
                notes.append(f"flipped User LM skipped: no trained model at {config.userlm_path}")
            else:
                test_users.append(f"userlm:{found}")
    train_labels = [_label(u) for u in config.train_users]
    test_labels = [_label(u) for u in test_users]
    if len(set(test_labels)) != len(test_labels):
        raise ValueError(f"test users must have distinct labels, got {test_labels}")
    seeds = [config.eval_seed_offset + i for i in range(config.eval_episodes)]
    records: list[dict[str, Any]] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*episodes will be truncated before every shard.*")
        bars = _Progress(progress, console)
        with bars:
            for note in notes:
                bars.log(f"note: {note}")
            factories = _test_factories(config, test_users)
            engines = _user_engines(factories)
            for label, engine in engines.items():
                if engine != "none":
                    bars.log(f"test user {label}: engine {engine}")
            policies, train_seconds = _train_all(config, out, bars)
            targs = _train_args(config, config.train_users[0], out, None)
            sampling = SamplingParams(
                max_new_tokens=targs.max_new_tokens, temperature=targs.temperature, top_p=targs.top_p
            )
            cells = bars.add("matrix cells", total=len(train_labels) * len(test_labels))
            eval_start = time.perf_counter()
            for i, train in enumerate(train_labels):
                assistant = None
                for j, test in enumerate(test_labels):
                    path = _cell_path(out, i, train, j, test)
                    meta = {
                        "train_user": train,
                        "test_user": test,
                        "assistant": f"trained on {train}",
                        "user": test,
                        "setting": "in-distribution" if train == test else "held-out",
                        "policy": str(policies[train]),
                    }
                    with EpisodeLog(path, resume=True) as log:
                        todo = [s for s in seeds if f"seed={s}" not in log.done_keys]
                        bar = bars.add(f"{train} -> {test}", total=len(seeds), completed=len(seeds) - len(todo))
                        if todo:
                            if assistant is None:
                                assistant = make_assistant(str(policies[train]), device="cpu", sampling=sampling)
                            run_episodes(
                                factories[test].make_env,
                                assistant,
                                todo,
                                batch_size=config.batch_size,
                                log=log,
                                meta=meta,
                                on_episode=lambda r, bar=bar: (bars.advance(bar), on_episode and on_episode(r)),
                            )
                        records += [r for r in log.records if r.get("seed") in set(seeds)]
                    bars.remove(bar)
                    bars.advance(cells)
                if assistant is not None and hasattr(assistant, "close"):
                    assistant.close()
            eval_seconds = time.perf_counter() - eval_start
            for factory in factories.values():
                factory.close()
    metrics = matrix_metrics(records, train_labels, test_labels, samples=config.bootstrap_samples, seed=config.seed)
    metrics.update(
        {
            "train_users": train_labels,
            "test_users": test_labels,
            "notes": notes,
            "engines": engines,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "seconds": {
                "train_this_run": round(train_seconds, 1),
                "eval_this_run": round(eval_seconds, 1),
                "wall_this_run": round(time.perf_counter() - started, 1),
            },
        }
    )
    paths = write_matrix_outputs(out, metrics, records)
    return MatrixResult(metrics=metrics, records=records, paths=paths)


# --------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _cell_text(stat: Mapping[str, Any]) -> str:
    lo, hi = stat["ci"]
    return f"{_fmt(stat['mean'])} [{_fmt(lo)}, {_fmt(hi)}]"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def matrix_tables(metrics: Mapping[str, Any]):
    """The report tables: one train x test table per metric, the gap table, the cell sizes."""
    from userlm_env.evaluation.report import ReportTable

    trains, tests = metrics["train_users"], metrics["test_users"]
    by_cell = {(c["train_user"], c["test_user"]): c for c in metrics["cells"]}
    tables = []
    for metric in HEATMAP_METRICS + tuple(m for m in METRICS if m not in HEATMAP_METRICS):
        rows = [[f"trained on {t}"] + [_cell_text(by_cell[(t, u)]["metrics"][metric]) for u in tests] for t in trains]
        tables.append(
            ReportTable(
                title=f"{METRICS[metric]} (mean [95% CI]): train user x test user",
                columns=["policy", *tests],
                rows=rows,
                note="95% percentile bootstrap over the cell's episodes; in-distribution: test user = training user.",
            )
        )
    gap_rows = []
    for metric in METRICS:
        g = metrics["gap"][metric]
        gap_rows.append(
            [
                METRICS[metric],
                g["in_distribution"],
                g["held_out"],
                g["gap"],
                f"[{_fmt(g['ci'][0])}, {_fmt(g['ci'][1])}]",
            ]
        )
    tables.append(
        ReportTable(
            title="In-distribution (diagonal) vs held-out (off-diagonal) users",
            columns=["metric", "in-distribution", "held-out", "gap", "gap 95% CI"],
            rows=gap_rows,
            note=(
                f"gap = mean of {metrics['gap']['in_distribution_cells']} in-distribution cells - mean of "
                f"{metrics['gap']['held_out_cells']} held-out cells; bootstrap resamples every cell's episodes."
            ),
        )
    )
    tables.append(
        ReportTable(
            title="Cells",
            columns=["train user", "test user", "in-distribution", "episodes", "errors"],
            rows=[
                [c["train_user"], c["test_user"], "yes" if c["in_distribution"] else "no", c["episodes"], c["errors"]]
                for c in metrics["cells"]
            ],
        )
    )
    return tables


def matrix_figures(metrics: Mapping[str, Any]):
    """One heatmap per metric of :data:`HEATMAP_METRICS`."""
    from userlm_env.evaluation.matrix_plots import matrix_heatmap
    from userlm_env.evaluation.report import ReportFigure, figure_to_png

    trains, tests = metrics["train_users"], metrics["test_users"]
    by_cell = {(c["train_user"], c["test_user"]): c for c in metrics["cells"]}
    figures = []
    for metric in HEATMAP_METRICS:
        values = [[by_cell[(t, u)]["metrics"][metric]["mean"] for u in tests] for t in trains]
        intervals = [[tuple(by_cell[(t, u)]["metrics"][metric]["ci"]) for u in tests] for t in trains]
        fig = matrix_heatmap(
            values,
            intervals,
            rows=trains,
            columns=tests,
            title=f"{METRICS[metric]}: trained on (rows) x tested against (columns)",
            cmap="viridis" if metric != "premature" else "magma_r",
        )
        figures.append(
            ReportFigure(
                f"Heatmap: {METRICS[metric]}",
                figure_to_png(fig),
                caption="mean [95% bootstrap CI]; red outline = in-distribution cell",
            )
        )
    return figures


def write_matrix_outputs(
    out: str | Path, metrics: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
) -> dict[str, Path]:
    """Write ``matrix.json``, ``matrix.csv``, ``report.html`` and ``summary.md`` into ``out``."""
    from userlm_env.evaluation.report import write_html_report, write_markdown_summary

    out = Path(out)
    paths = {
        "json": out / "matrix.json",
        "csv": out / "matrix.csv",
        "report": out / "report.html",
        "summary": out / "summary.md",
    }
    paths["json"].write_text(json.dumps(_nan_to_none(dict(metrics)), indent=2, default=_json_default) + "\n")
    with paths["csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["train_user", "test_user", "in_distribution", "episodes", "errors"]
            + [f"{m}{suffix}" for m in METRICS for suffix in ("", "_lo", "_hi")]
        )
        for c in metrics["cells"]:
            row = [c["train_user"], c["test_user"], c["in_distribution"], c["episodes"], c["errors"]]
            for m in METRICS:
                stat = c["metrics"][m]
                row += [stat["mean"], stat["ci"][0], stat["ci"][1]]
            writer.writerow(row)
    tables = matrix_tables(metrics)
    notes = "\n\n".join(f"Note: {n}" for n in metrics.get("notes") or [])
    seconds = metrics.get("seconds") or {}
    engines = {k: v for k, v in (metrics.get("engines") or {}).items() if v != "none"}
    intro = (
        f"One GRPO policy per training user ({', '.join(metrics['train_users'])}), each evaluated against every "
        f"test user ({', '.join(metrics['test_users'])}). Rows: the user a policy was trained with; columns: "
        "the user it is tested against. Every interval is a 95% percentile bootstrap over episodes."
        + (f"\n\nWall time of this run: {seconds.get('wall_this_run')} s." if seconds else "")
        + ("\n\nEngines: " + ", ".join(f"{k}: {v}" for k, v in engines.items()) + "." if engines else "")
        + (f"\n\n{notes}" if notes else "")
    )
    write_html_report(
        paths["report"],
        title="Robustness matrix: train user x test user",
        intro=intro,
        tables=tables,
        figures=matrix_figures(metrics),
        episodes=[dict(r) for r in records],
    )
    write_markdown_summary(paths["summary"], title="Robustness matrix", tables=tables, intro=intro)
    return paths
