"""Run a Lost-in-Conversation evaluation: settings x assistants x users, N simulations per task.

Settings (LiC, on the same tasks and seeds):

- ``FULL``: the fully specified instruction in one user turn, one assistant reply.
- ``CONCAT``: every shard in one user turn, as a list, one assistant reply.
- ``SHARDED``: the multi-turn env with a simulated user who reveals the task bit by bit.

FULL and CONCAT do not depend on the user, so they run once per assistant; SHARDED runs once per
(assistant, user). Every episode is one line of ``episodes.jsonl`` whose ``episode_key`` is
``"{setting}|{assistant}|{user}|seed={seed}"``: an interrupted evaluation resumes where it
stopped, an episode that fails is recorded with its error and counted, and the run goes on.

SHARDED episodes get ``max(8, num_shards + 2)`` assistant replies per task by default
(:func:`sharded_max_turns`): a reply can reveal at most one shard, so a task with k shards needs at
least k replies before it can be answered with every shard out (LiC lets a conversation run until
every shard is revealed), plus a margin for users who do not reveal a shard every turn. An explicit
``max_turns`` caps every task instead; the reports count and mark the episodes that were cut before
every shard was revealed.

For termination metrics (does the user end the chat when the task is solved?), each SHARDED
episode that ends with a correct answer is followed by one *probe* turn: the user is asked for one
more message and ``termination_probe`` records whether it ended the conversation. The probe's request
carries the judge's verdicts of the episode (the last one: the correct answer), as the env's requests do,
so a user profile's satisfied ending (``end_when_satisfied``, e.g. ``replay?profile=sharegpt``) is measured.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from userlm_env.backends.errors import BackendError
from userlm_env.episode_log import RECORD_FIELDS, EpisodeLog, EpisodeLogWarning, LogProblem
from userlm_env.episode_types import EndReason
from userlm_env.judge.types import Judgement, ReplyKind
from userlm_env.seeding import derive_seed
from userlm_env.tasks import ShardedTask, TaskSource
from userlm_env.users import UserRequest, UserSimulator

SETTINGS = ("FULL", "CONCAT", "SHARDED")
SINGLE_TURN_USERS = {"FULL": "full", "CONCAT": "concat"}
EVAL_RECORD_FIELDS = (*RECORD_FIELDS, "setting", "assistant", "user")
"""Fields every evaluation record has; a log line without them is skipped, reported, and its episode run again."""
MIN_MAX_TURNS = 8
"""Default SHARDED turn budget of a task with few shards (LiC-style, see :func:`sharded_max_turns`)."""
TURN_MARGIN = 2
"""Replies a SHARDED episode gets beyond one per shard by default."""


def sharded_max_turns(task: ShardedTask, cap: int | None = None) -> int:
    """Assistant replies a SHARDED episode of ``task`` gets: ``cap`` if given, else ``max(8, num_shards + 2)``.

    The user reveals at most one shard per reply, so ``num_shards`` replies are the least in which
    a task can be answered after all its shards are out; the default adds a margin of 2 so that
    every task can be completed.
    """
    return int(cap) if cap is not None else max(MIN_MAX_TURNS, task.num_shards + TURN_MARGIN)


@dataclass
class EvalConfig:
    """What to evaluate. Field docstrings double as ``userlm-env evaluate --help``."""

    assistants: list[Any] = field(default_factory=lambda: ["smollm2-135m"])
    """assistant specs (models, http://..., scripted:NAME) or Assistant objects"""
    users: list[Any] = field(default_factory=lambda: ["replay", "prompted:smollm2-135m"])
    """user simulator specs for the SHARDED setting, or UserSimulator objects"""
    settings: list[str] = field(default_factory=lambda: list(SETTINGS))
    """any of FULL, CONCAT, SHARDED"""
    env: str = "UserLM-Math-v0"
    """env id: UserLM-Math-v0 / UserLM-Code-v0 (or math / code)"""
    tasks: str = "procedural"
    """task spec of the env (math: procedural, gsm8k, gsm8k:PATH, lic:PATH; code: code:procedural, humaneval...)"""
    num_tasks: int = 5
    """tasks drawn from the source (seeded)"""
    runs_per_task: int = 10
    """simulations per task and setting (LiC: 10)"""
    seed: int = 0
    """seed of the task draw and of every episode"""
    max_turns: int | None = None
    """assistant replies per SHARDED episode (None: per task, max(8, shards + 2); a number caps every task)"""
    batch_size: int = 8
    """episodes stepped together (batched model calls)"""
    reward: str = "lic"
    """reward preset logged with each step (scores do not depend on it)"""
    system_prompt: str | None = None
    """system prompt of model assistants (None: the env's default, agents.prompts; '' for none)"""
    max_new_tokens: int = 160
    """assistant reply length limit in tokens"""
    temperature: float = 0.7
    """assistant sampling temperature (LiC samples; 0 = greedy)"""
    device: str | None = None
    """device of local models"""
    termination_probe: bool = True
    """after a correct answer, ask the user for one more turn (termination metrics)"""

    def __post_init__(self) -> None:
        unknown = [s for s in self.settings if s not in SETTINGS]
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; choose from {list(SETTINGS)}")
        if "SHARDED" in self.settings and not self.users:
            raise ValueError("the SHARDED setting needs at least one user spec")
        if not self.assistants:
            raise ValueError("give at least one assistant spec")
        for name in ("num_tasks", "runs_per_task", "max_turns", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class RunSpec:
    """One (setting, assistant, user) combination: a block of num_tasks x runs_per_task episodes."""

    setting: str
    assistant: str
    user: str

    @property
    def key_prefix(self) -> str:
        """Prefix of its episodes' keys in the shared log."""
        return f"{self.setting}|{self.assistant}|{self.user}|"

    @property
    def label(self) -> str:
        """Short name for tables: ``FULL`` / ``CONCAT`` / ``SHARDED:user``."""
        return self.setting if self.setting != "SHARDED" else f"SHARDED:{self.user}"


def spec_name(spec: Any) -> str:
    """The name a spec is logged under: the string itself, or an object's ``name``."""
    return spec if isinstance(spec, str) else str(getattr(spec, "name", type(spec).__name__))


def plan_runs(config: EvalConfig) -> list[RunSpec]:
    """Every run of an evaluation, in order (the settings in the order given, per assistant)."""
    runs = []
    for assistant in map(spec_name, config.assistants):
        for setting in config.settings:
            users = [SINGLE_TURN_USERS[setting]] if setting in SINGLE_TURN_USERS else map(spec_name, config.users)
            runs += [RunSpec(setting, assistant, user) for user in users]
    names = [(r.setting, r.assistant, r.user) for r in runs]
    if len(set(names)) != len(names):
        raise ValueError("two assistants or two users share a name; give each a distinct spec or .name")
    return runs


def choose_tasks(source: TaskSource, num_tasks: int, seed: int) -> list[ShardedTask]:
    """``num_tasks`` distinct tasks: a seeded sample of a finite source, seeded draws from an infinite one."""
    rng = np.random.default_rng(seed)
    try:
        size = len(source)  # type: ignore[arg-type]
    except TypeError:
        size = None
    if size is not None:
        if num_tasks > size:
            raise ValueError(f"num_tasks={num_tasks} but the task source {source.name!r} holds {size} tasks")
        return [source[int(i)] for i in sorted(rng.choice(size, size=num_tasks, replace=False))]
    tasks: dict[str, ShardedTask] = {}
    for _ in range(100 * num_tasks):
        task = source.sample(rng)
        tasks.setdefault(task.task_id, task)
        if len(tasks) == num_tasks:
            return list(tasks.values())
    raise ValueError(f"could not draw {num_tasks} distinct tasks from {source.name!r}")


def episode_plan(tasks: Sequence[ShardedTask], runs_per_task: int, seed: int) -> tuple[list[int], list[dict]]:
    """Seeds and reset options for every episode of one run: task i, simulation j -> one unique seed.

    The same (task, simulation) gets the same seed in every setting, so FULL and SHARDED episodes
    of a task are paired.
    """
    seeds, options = [], []
    for i, task in enumerate(tasks):
        for j in range(runs_per_task):
            seeds.append(seed + i * runs_per_task + j)
            options.append({"task": task})
    return seeds, options


def step_judgements(steps: Sequence[dict[str, Any]]) -> tuple[Judgement, ...]:
    """The env judge's verdict on each assistant reply, rebuilt from the episode record's steps (``info`` fields)."""
    judgements = []
    for step in steps:
        kind = step.get("reply_kind")
        if kind is None:
            continue
        judgements.append(
            Judgement(
                kind=ReplyKind(kind),
                answer_attempt=bool(step.get("answer_attempt")),
                extracted_answer=step.get("extracted_answer"),
                correct=step.get("correct"),
                reason=step.get("judge_reason") or "",
            )
        )
    return tuple(judgements)


def termination_probe(user: UserSimulator, tasks: dict[str, ShardedTask], record: dict[str, Any]) -> bool | None:
    """Ask the user for one more turn after the episode's correct answer; did it end the chat?

    The request carries the judge's verdicts of the episode (:func:`step_judgements`; the last one is the
    correct answer), as the env's would, so a profile's ``end_when_satisfied`` can end the chat here.
    """
    if record.get("end_reason") != EndReason.CORRECT_ANSWER or record.get("error"):
        return None
    steps = record["steps"]
    request = UserRequest(
        task=tasks[record["task_id"]],
        conversation=tuple(dict(m) for m in record["transcript"]),
        revealed=tuple(steps[-1]["shards_revealed"]) if steps else (),
        turn=sum(1 for m in record["transcript"] if m["role"] == "user"),
        seed=derive_seed("termination-probe", int(record["seed"])),
        judgements=step_judgements(steps),
    )
    try:
        return bool(user.respond(request).ended)
    except BackendError:
        return None


@dataclass
class EvalRun:
    """What :func:`run_evaluation` returns: the records of this evaluation and where they are."""

    config: EvalConfig
    runs: list[RunSpec]
    records: list[dict[str, Any]]
    log_path: Path
    seconds: float
    resumed_episodes: int = 0
    log_problems: list[LogProblem] = field(default_factory=list)
    """lines of the log that were skipped when it was opened (cut off, garbled, duplicates)"""


def run_evaluation(
    config: EvalConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    make_env: Callable[..., Any] | None = None,
    on_run_start: Callable[[RunSpec, int], None] | None = None,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    on_log_problems: Callable[[Path, list[LogProblem]], None] | None = None,
) -> EvalRun:
    """Run (or resume) every episode of the evaluation; append each to ``out_dir/episodes.jsonl``.

    Args:
        config: what to run.
        out_dir: output folder (created).
        resume: continue an existing log: episodes already in it are not run again.
        overwrite: start the log over.
        make_env: ``make_env(user=..., tasks=..., reward=..., max_turns=...)`` -> an unwrapped env
            (default: ``make_unwrapped_env(config.env, ...)``).
        on_run_start: called with each run and its number of episodes still to do.
        on_episode: called with each finished record.
        on_log_problems: called with the log's path and the lines it skipped when opened (cut off,
            garbled, duplicates); without it they are reported as an ``EpisodeLogWarning``.

    Raises:
        LogLockedError: another process is writing to ``out_dir/episodes.jsonl``.
        FileExistsError: the log holds episodes and neither ``resume`` nor ``overwrite`` is set.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        if on_log_problems is not None:
            warnings.simplefilter("ignore", EpisodeLogWarning)
        log = EpisodeLog(out_dir / "episodes.jsonl", resume=resume, overwrite=overwrite, required=EVAL_RECORD_FIELDS)
    with log:  # holds the lock until every episode is written
        if on_log_problems is not None and log.problems:
            on_log_problems(log.path, log.problems)
        return _run(config, out_dir, log, make_env, on_run_start, on_episode)


def _run(config: EvalConfig, out_dir: Path, log: EpisodeLog, make_env, on_run_start, on_episode) -> EvalRun:
    from agents import make_assistant
    from agents.prompts import default_system_prompt
    from userlm_env.backends.transformers_backend import SamplingParams
    from userlm_env.envs import make_env_task_source, make_unwrapped_env
    from userlm_env.rollout import run_episodes
    from userlm_env.users import make_user

    make_env = make_env or functools.partial(make_unwrapped_env, config.env)
    source = make_env_task_source(config.env, config.tasks)
    system_prompt = default_system_prompt(config.env) if config.system_prompt is None else config.system_prompt
    tasks = choose_tasks(source, config.num_tasks, config.seed)
    by_id = {t.task_id: t for t in tasks}
    seeds, options = episode_plan(tasks, config.runs_per_task, config.seed)
    runs = plan_runs(config)
    wanted = {f"{run.key_prefix}seed={s}" for run in runs for s in seeds}
    already_done = len(wanted & log.done_keys)
    sampling = SamplingParams(
        max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=0.95 if config.temperature else 1.0
    )
    (out_dir / "config.json").write_text(json.dumps(asdict(config), indent=2, default=spec_name) + "\n")
    started = time.perf_counter()
    assistant_specs = {spec_name(a): a for a in config.assistants}
    user_specs = {spec_name(u): u for u in config.users} | {u: u for u in SINGLE_TURN_USERS.values()}
    assistants: dict[str, Any] = {}
    for run in runs:
        todo = sum(1 for s in seeds if f"{run.key_prefix}seed={s}" not in log.done_keys)
        if on_run_start is not None:
            on_run_start(run, todo)
        if not todo:
            continue
        if run.assistant not in assistants:
            assistants[run.assistant] = make_assistant(
                assistant_specs[run.assistant],
                device=config.device,
                system_prompt=system_prompt or None,
                sampling=sampling,
            )
        user = make_user(user_specs[run.user], device=config.device)
        single_turn = run.setting in SINGLE_TURN_USERS
        # the turn budget of each episode: 1 for FULL / CONCAT, per task for SHARDED (sharded_max_turns),
        # passed to the env's reset as options["max_turns"] (at most the env's max_turns: the largest budget)
        budgets = [1 if single_turn else sharded_max_turns(o["task"], config.max_turns) for o in options]
        budget_of_seed = dict(zip(seeds, budgets))
        env_max_turns = max(budgets)

        def before_log(
            record: dict[str, Any], user=user, single_turn=single_turn, budget_of_seed=budget_of_seed
        ) -> None:
            record["max_turns"] = budget_of_seed.get(record.get("seed"), record.get("max_turns"))
            if config.termination_probe and not single_turn and record.get("end_reason") == EndReason.CORRECT_ANSWER:
                record["termination_probe"] = termination_probe(user, by_id, record)

        with warnings.catch_warnings(), contextlib.closing(user):
            # single-turn settings reveal every shard at once: "more shards than max_turns" is expected
            warnings.filterwarnings("ignore", message=".*shards but max_turns=1.*")
            run_episodes(
                lambda user=user, max_turns=env_max_turns: make_env(
                    user=user, tasks=source, reward=config.reward, max_turns=max_turns
                ),
                assistants[run.assistant],
                seeds,
                batch_size=config.batch_size,
                log=log,
                meta={
                    "env": config.env,
                    "setting": run.setting,
                    "assistant": run.assistant,
                    "user": run.user,
                    "tasks": config.tasks,
                    "reward": config.reward,
                    "max_turns": env_max_turns,  # each record's own budget is set in before_log
                },
                options=[{**o, "max_turns": b} for o, b in zip(options, budgets)],
                key_prefix=run.key_prefix,
                before_log=before_log,
                on_episode=on_episode,
            )
    records = [r for r in log.records if r.get("episode_key") in wanted]
    return EvalRun(
        config,
        runs,
        records,
        log.path,
        time.perf_counter() - started,
        resumed_episodes=already_done,
        log_problems=list(log.problems),
    )
