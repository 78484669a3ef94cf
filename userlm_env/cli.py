"""``userlm-env``: the command line.

``userlm-env rollout`` runs N episodes of an assistant against a simulated user, shows a progress
bar, prints a results table and appends every episode to a JSONL file (``--resume`` continues it).
Its defaults are fully offline: the bundled SmolLM2-135M as assistant *and* as prompted user, on
procedural tasks.

The env's own arguments (``--tasks``, ``--reward``, ``--max-turns``) default to the env
constructor's defaults (:func:`userlm_env.envs.env_defaults`; ``--tasks`` per env: math
``procedural``, code ``code:procedural``). The one deliberate difference is ``--user``: the env's
default user is UserLM-8b from the hub; the CLI's is the bundled offline model (``OFFLINE_USER``).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from userlm_env.envs import check_env_specs, env_defaults, resolve_env_id
from userlm_env.evaluation.records import printable
from userlm_env.tasks.spec import FAMILY_ENV_IDS, SPEC_SYNTAX

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Train and evaluate assistants against simulated users."
)
console = Console()

DEFAULT_ENV = "math"
"""``--env`` default (UserLM-Math-v0)."""
ENV_DEFAULTS = env_defaults(DEFAULT_ENV)
"""The env constructor's defaults behind ``rollout --reward`` and ``--max-turns`` (same in every env; tested)."""
OFFLINE_USER = "prompted:smollm2-135m?engine=auto"
"""``rollout --user`` default: the bundled model as a prompted user (the env's default, UserLM-8b, needs the hub), on
the fastest engine available (``engine=auto``: llama.cpp on a CPU when installed; see userlm_env.backends.engines)."""
OFFLINE_ASSISTANT = "smollm2-135m?engine=auto"
"""``rollout --assistant`` default: the bundled model, on the fastest engine available."""
ENV_HELP = f"env: {' or '.join(f'{short} ({env_id})' for short, env_id in FAMILY_ENV_IDS.items())}"
TASKS_HELP = (
    "task spec; default: the env's ("
    + ", ".join(f"{short}: {env_defaults(env_id)['tasks']}" for short, env_id in FAMILY_ENV_IDS.items())
    + "); "
    + "; ".join(f"{short}: {SPEC_SYNTAX[short]}" for short in FAMILY_ENV_IDS)
    + " (bare 'procedural' is the env's own generator)"
)


def default_tasks(env: str) -> str:
    """The task spec ``--tasks`` stands for when it is not given: the env's ``tasks`` default."""
    return env_defaults(env)["tasks"]


@app.callback()
def main() -> None:
    """userlm_env command line."""


@app.command()
def rollout(
    assistant: str = typer.Option(
        OFFLINE_ASSISTANT,
        help="assistant: a model (hub id, dir, .gguf, smollm2-135m; ?engine=transformers|llama.cpp|llama-server|auto) "
        "or scripted:NAME",
    ),
    user: str = typer.Option(
        OFFLINE_USER,
        help="user spec: prompted:MODEL (default: the bundled model, offline), userlm:MODEL, replay, human, "
        "microsoft/UserLM-8b (the env's own default; needs the hub)",
    ),
    env: str = typer.Option(DEFAULT_ENV, help=ENV_HELP),
    tasks: str = typer.Option(None, help=TASKS_HELP),
    reward: str = typer.Option(
        ENV_DEFAULTS["reward"],
        help="reward preset (lic, shaped, efficient), optionally with overrides: shaped:turn=-0.05; default: the env's",
    ),
    episodes: int = typer.Option(3, min=1, help="number of episodes (seeds seed..seed+episodes-1)"),
    seed: int = typer.Option(0, help="first episode seed"),
    max_turns: int = typer.Option(
        ENV_DEFAULTS["max_turns"], min=1, help="assistant replies before truncation; default: the env's"
    ),
    batch_size: int = typer.Option(3, min=1, help="episodes stepped together (batched model calls)"),
    overlap: bool = typer.Option(
        False, help="generate half the replies while the user answers the other half (both engines busy at once)"
    ),
    out: Path = typer.Option(Path("runs/rollout.jsonl"), help="JSONL file, one line per episode"),
    resume: bool = typer.Option(False, help="continue an existing log, skipping finished episodes"),
    overwrite: bool = typer.Option(False, help="start the log over"),
    system_prompt: str = typer.Option(
        None, help="system prompt for a model assistant (default: the env's, agents/prompts.py; '' for none)"
    ),
    max_new_tokens: int = typer.Option(96, min=1, help="assistant reply length limit in tokens"),
    device: str = typer.Option(None, help="device for local models (default: cuda if available, else cpu)"),
    show: int = typer.Option(1, min=0, help="print this many transcripts at the end"),
) -> None:
    """Run episodes, print a results table, append each episode to a JSONL log."""
    from agents import make_assistant
    from agents.prompts import default_system_prompt
    from userlm_env.backends.models import ModelLoadError
    from userlm_env.backends.transformers_backend import SamplingParams
    from userlm_env.envs import make_env_task_source, make_unwrapped_env
    from userlm_env.rollout import RECORD_FIELDS, run_episodes, summarize
    from userlm_env.users import make_user

    if out.exists() and out.stat().st_size > 0 and not (resume or overwrite):
        raise typer.BadParameter(
            f"{out} already holds episodes: pass --resume to continue it or --overwrite", param_hint="--out"
        )
    # opened (and locked) first: a second writer on the same file stops here, before any model loads
    with _open_log(out, resume=resume, overwrite=overwrite, required=RECORD_FIELDS) as log:
        started = time.perf_counter()
        try:
            with console.status("loading models..."):
                env = check_env_specs(env, tasks=tasks, reward=reward)  # typos fail before any model loads
                tasks = tasks or default_tasks(env)
                task_source = make_env_task_source(env, tasks)
                agent = make_assistant(
                    assistant,
                    device=device,
                    system_prompt=(default_system_prompt(env) if system_prompt is None else system_prompt) or None,
                    sampling=SamplingParams(max_new_tokens=max_new_tokens, temperature=0.7, top_p=0.9),
                )
                user_sim = make_user(user, device=device)
        except (ValueError, ModelLoadError, OSError) as err:
            console.print(f"[red]error:[/] {escape(printable(err))}")
            raise typer.Exit(code=2) from err
        load_seconds = time.perf_counter() - started
        console.print(f"engines: assistant {engine_name(agent)}, user {engine_name(user_sim)}", markup=False)
        seeds = list(range(seed, seed + episodes))
        todo = [s for s in seeds if f"seed={s}" not in log.done_keys]
        if resume and len(todo) < len(seeds):
            console.print(
                f"resuming {escape(printable(log.path))}: "
                f"{len(seeds) - len(todo)} of {len(seeds)} episodes already done"
            )

        def make_env():
            return make_unwrapped_env(env, user=user_sim, tasks=task_source, reward=reward, max_turns=max_turns)

        meta = {"env": env, "assistant": assistant, "user": user, "tasks": tasks, "reward": reward,
                "max_turns": max_turns}  # fmt: skip
        columns = (
            TextColumn("[bold]rollout"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        started = time.perf_counter()
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("episodes", total=len(todo))
            run_episodes(
                make_env,
                agent,
                seeds,
                batch_size=batch_size,
                log=log,
                meta=meta,
                on_episode=lambda record: progress.advance(bar),
                overlap=overlap,
            )
        wall = time.perf_counter() - started
        wanted = set(seeds)
        records = sorted(
            (r for r in log.records if isinstance(r["seed"], int) and r["seed"] in wanted), key=lambda r: r["seed"]
        )
        summary = summarize(records)
        _print_summary(summary, meta, wall, len(todo), load_seconds)
        for record in [r for r in records if not r.get("error")][:show]:
            _print_transcript(record)
        console.print(f"episodes appended to [bold]{escape(printable(log.path))}[/] ({len(log.records)} in the file)")
        if summary.get("errors"):
            console.print(
                f"[red]{summary['errors']} episode(s) failed; their tracebacks are in the log's 'error' field[/]"
            )


def engine_name(component) -> str:
    """The engine running an assistant's or a user's model (``transformers``, ``llama.cpp``...), or ``none``."""
    return getattr(getattr(component, "backend", None), "engine", "none")


def spec_engine(spec: str) -> str:
    """The engine a model spec runs on (``engine=auto`` resolved), ``http`` for a server, ``none`` without a model."""
    from userlm_env.backends.engines import resolve_engine, split_options
    from userlm_env.users import split_user_spec

    spec = split_user_spec(spec)[0]  # without the user's own options (profile=, reveal=)
    kind, _, rest = spec.partition(":")
    model = rest if kind in ("prompted", "userlm", "hf") and rest else spec
    if model.startswith(("http://", "https://")):
        return "http"
    if kind in ("replay", "human", "full", "concat", "scripted"):
        return "none"
    try:
        model, options = split_options(model)
    except ValueError:
        return "?"
    return resolve_engine(model, options.get("engine", "transformers"))


def _open_log(path: Path, **kwargs):
    """Open (and lock) an episode log, print the lines it skipped; exit 2 if another process writes to it."""
    from userlm_env.episode_log import EpisodeLog, EpisodeLogWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EpisodeLogWarning)  # printed below, in the console's style
            log = EpisodeLog(path, **kwargs)
    except OSError as err:  # LogLockedError (another writer), FileExistsError
        console.print(f"[red]error:[/] {escape(printable(err))}")
        raise typer.Exit(code=2) from err
    _print_log_problems(log.path, log.problems)
    return log


def _print_log_problems(path: Path, problems: list, limit: int = 10) -> None:
    """Warn about the lines of a log that were skipped (cut off, garbled, not records, duplicates)."""
    if not problems:
        return
    console.print(
        f"[yellow]warning:[/] {escape(printable(path))}: skipped {len(problems)} line(s) that are not complete "
        "episode records (their episodes count as not done; a duplicate key counts once, its first record):"
    )
    for problem in problems[:limit]:
        console.print(f"  [yellow]{escape(printable(problem))}[/]", highlight=False)
    if len(problems) > limit:
        console.print(f"  [yellow]... and {len(problems) - limit} more[/]")


@app.command()
def evaluate(
    assistant: list[str] = typer.Option(
        [OFFLINE_ASSISTANT], help="assistant spec (repeat the option for several; ?engine=... picks the engine)"
    ),
    user: list[str] = typer.Option(
        ["replay", OFFLINE_USER], help="user spec for the SHARDED setting (repeat for several)"
    ),
    setting: list[str] = typer.Option(["FULL", "CONCAT", "SHARDED"], help="FULL, CONCAT and/or SHARDED"),
    env: str = typer.Option(DEFAULT_ENV, help=ENV_HELP),
    tasks: str = typer.Option(None, help=TASKS_HELP),
    num_tasks: int = typer.Option(5, min=1, help="tasks drawn from the source (seeded)"),
    runs_per_task: int = typer.Option(10, min=1, help="simulations per task and setting (LiC: 10)"),
    seed: int = typer.Option(0, help="seed of the task draw and of every episode"),
    max_turns: int = typer.Option(
        None,
        min=1,
        help="assistant replies per SHARDED episode; default per task: max(8, shards + 2), so every task can be "
        "completed; a number caps every task (episodes cut before all shards are flagged in the report)",
    ),
    batch_size: int = typer.Option(8, min=1, help="episodes stepped together (batched model calls)"),
    max_new_tokens: int = typer.Option(160, min=1, help="assistant reply length limit in tokens"),
    temperature: float = typer.Option(0.7, min=0.0, help="assistant sampling temperature (0 = greedy)"),
    system_prompt: str = typer.Option(
        None, help="system prompt for model assistants (default: the env's, agents/prompts.py; '' for none)"
    ),
    human_reference: int = typer.Option(
        2000, min=0, help="ShareGPT conversations in the human reference row (0 = none)"
    ),
    probe: bool = typer.Option(True, help="after a correct answer, ask the user for one more turn (termination F1)"),
    user_judge: str = typer.Option(
        None, help="LM judge for role adherence / naturalness of user turns (MODEL or http://...); off by default"
    ),
    out: Path = typer.Option(Path("runs/eval"), help="output folder: episodes.jsonl, metrics.json, report.html"),
    resume: bool = typer.Option(False, help="continue an interrupted evaluation in --out"),
    overwrite: bool = typer.Option(False, help="start --out over"),
    device: str = typer.Option(None, help="device for local models (default: cuda if available, else cpu)"),
) -> None:
    """Lost-in-Conversation evaluation: FULL / CONCAT / SHARDED x assistants x users, then reports."""
    from userlm_env.backends.models import ModelLoadError
    from userlm_env.evaluation.runner import EvalConfig, run_evaluation

    log_path = out / "episodes.jsonl"
    if log_path.exists() and log_path.stat().st_size > 0 and not (resume or overwrite):
        raise typer.BadParameter(
            f"{log_path} already holds episodes: pass --resume to continue it or --overwrite", param_hint="--out"
        )
    try:
        env = resolve_env_id(env)
        config = EvalConfig(
            env=env,
            tasks=tasks or default_tasks(env),
            assistants=list(assistant),
            users=list(user),
            settings=[s.upper() for s in setting],
            num_tasks=num_tasks,
            runs_per_task=runs_per_task,
            seed=seed,
            max_turns=max_turns,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            system_prompt=system_prompt,
            device=device,
            termination_probe=probe,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    engines = ", ".join(f"{spec}: {spec_engine(spec)}" for spec in [*assistant, *user])
    console.print(f"engines: {escape(printable(engines))}")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        bars: dict = {}

        def on_run_start(run, todo: int) -> None:
            bars["current"] = progress.add_task(escape(printable(f"{run.assistant} | {run.label}")), total=todo)

        try:
            result = run_evaluation(
                config,
                out,
                resume=resume,
                overwrite=overwrite,
                on_run_start=on_run_start,
                on_episode=lambda record: progress.advance(bars["current"]),
                on_log_problems=_print_log_problems,
            )
        except (ValueError, ModelLoadError, OSError) as err:  # OSError: LogLockedError (another writer) too
            console.print(f"[red]error:[/] {escape(printable(err))}")
            raise typer.Exit(code=2) from err
    if result.resumed_episodes:
        console.print(f"resumed: {result.resumed_episodes} episode(s) were already in {result.log_path}")
    _write_evaluation_reports(out, result.records, human_reference, seed, user_judge)


@app.command()
def report(
    out: Path = typer.Argument(..., help="an evaluation folder (holding episodes.jsonl)"),
    human_reference: int = typer.Option(2000, min=0, help="ShareGPT conversations in the human reference row"),
    seed: int = typer.Option(0, help="seed of the bootstrap and of the human sample"),
    user_judge: str = typer.Option(None, help="LM judge for user turns (MODEL or http://...); off by default"),
) -> None:
    """Recompute metrics and rewrite report.html / summary.md from an evaluation's episodes.jsonl."""
    from userlm_env.episode_log import read_log
    from userlm_env.evaluation.runner import EVAL_RECORD_FIELDS

    path = out / "episodes.jsonl"
    if not path.exists():
        raise typer.BadParameter(f"{path} not found", param_hint="OUT")
    contents = read_log(path, required=EVAL_RECORD_FIELDS)  # read-only: no lock, works while a run writes
    _print_log_problems(path, contents.problems)
    _write_evaluation_reports(out, contents.records, human_reference, seed, user_judge)


@app.command()
def matrix(
    out: Path = typer.Option(Path("runs/matrix"), help="output folder (rerun with the same folder to resume)"),
    train_user: list[str] = typer.Option(
        None,
        help="training user (repeat; spec or JSON object of env arguments); default: replay, replay?profile=sharegpt",
    ),
    test_user: list[str] = typer.Option(
        None,
        help="test user (repeat; spec or JSON object); default: replay, its reveal modes responsive and on_request, "
        "its profiles terse, impatient, verbose and sharegpt, prompted:smollm2-135m, and the flipped User LM of "
        "--userlm-path",
    ),
    userlm_path: Path = typer.Option(
        None, help="a trained flipped User LM (training/train_userlm.py run dir or its final/): added as a test user"
    ),
    env: str = typer.Option(DEFAULT_ENV, help=ENV_HELP),
    tasks: str = typer.Option("", help="task spec (default: the env's)"),
    steps: int = typer.Option(20, min=1, help="GRPO steps per training user (tiny preset)"),
    train_tasks: int = typer.Option(32, min=1, help="training env seeds per training user"),
    episodes: int = typer.Option(24, min=1, help="evaluation episodes per cell"),
    max_turns: int = typer.Option(3, min=1, help="turn limit of training and evaluation episodes"),
    policy: str = typer.Option("tiny", help="initial policy: tiny (CPU), smollm2-135m, or a model path / hub id"),
    seed: int = typer.Option(1, help="training seed (and bootstrap seed)"),
) -> None:
    """Robustness matrix: train one GRPO policy per training user, evaluate each against every test user.

    Writes matrix.json, matrix.csv, report.html (heatmaps with 95% CIs, in-distribution vs held-out gap)
    and summary.md; per-cell episodes are appended to cells/*.jsonl, so a rerun resumes.
    """
    from userlm_env.evaluation.matrix import MatrixConfig, matrix_tables, run_matrix
    from userlm_env.evaluation.report import format_cell

    def entry(text: str):
        text = text.strip()
        if text.startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError as err:
                raise typer.BadParameter(f"invalid JSON user {text!r}: {err.msg}") from None
        return text

    try:
        config = MatrixConfig(
            out_dir=out,
            train_users=[entry(u) for u in train_user] if train_user else None,
            test_users=[entry(u) for u in test_user] if test_user else None,
            userlm_path=userlm_path,
            env=resolve_env_id(env),
            tasks=tasks,
            max_turns=max_turns,
            train_overrides={"max_steps": steps, "num_train_tasks": train_tasks, "policy": policy},
            eval_episodes=episodes,
            seed=seed,
        )
        result = run_matrix(config, console=console)
    except (ValueError, TypeError, OSError) as err:
        console.print(f"[red]error:[/] {escape(printable(err))}")
        raise typer.Exit(code=2) from err
    tables = matrix_tables(result.metrics)
    for table in [*tables[:3], tables[-2]]:  # score, turns, premature answers, the gap
        rich_table = Table(title=table.title, title_justify="left")
        for column in table.columns:
            rich_table.add_column(column, overflow="fold")
        for row in table.rows:
            rich_table.add_row(*(Text(printable(format_cell(c))) for c in row))
        console.print(rich_table)
    for note in result.metrics["notes"]:
        console.print(Text(printable(f"note: {note}")))
    console.print(Text(printable(f"report: {result.paths['report']}  table: {result.paths['csv']}")))


# columns of the report tables left out of the terminal print (they are in summary.md and report.html)
TERMINAL_HIDDEN_COLUMNS = {
    "tasks", "A90", "U90_10 95% CI", "attempts / episode", "turns", "P CONCAT", "U90_10 FULL", "max turns",
}  # fmt: skip


def _write_evaluation_reports(
    out: Path, records: list, human_reference: int, seed: int, user_judge: str | None = None
) -> None:
    from userlm_env.evaluation.analysis import evaluation_metrics, report_tables, write_reports
    from userlm_env.evaluation.human_reference import cached_sharegpt_reference
    from userlm_env.evaluation.report import format_cell

    human = None
    if human_reference:
        with console.status("human reference: streaming ShareGPT conversations..."):
            human = cached_sharegpt_reference(out / "human_reference.json", human_reference, seed=seed)
    llm_judged = None
    if user_judge:
        llm_judged = _judge_user_turns(out, records, user_judge, human["sample_turns"] if human else None, seed)
    with console.status("metrics and reports (bootstrap, plots)..."):
        metrics = evaluation_metrics(records, human_reference=human, llm_judged=llm_judged, seed=seed)
        paths = write_reports(out, records, metrics)
    for table in report_tables(metrics):
        keep = [i for i, c in enumerate(table.columns) if c not in TERMINAL_HIDDEN_COLUMNS]
        rich_table = Table(title=table.title, title_justify="left")
        for i in keep:
            rich_table.add_column(table.columns[i], overflow="fold")
        for row in table.rows:  # Text: cells are data (model names, errors), never rich markup
            rich_table.add_row(*(Text(printable(format_cell(row[i]))) for i in keep))
        console.print(rich_table)
    failures = metrics["failures"]
    if failures:
        console.print(
            f"[red]{len(failures)} of {metrics['episodes']} episode(s) failed[/] (tracebacks: 'error' in the log)"
        )
    else:
        console.print(f"{metrics['episodes']} episodes, no failures")
    if metrics.get("cut_before_all_shards"):
        console.print(
            f"[yellow]warning:[/] {metrics['cut_before_all_shards']} episode(s) were cut at max turns before every "
            "shard was revealed: their task could not be completed (column 'cut before all shards'; raise or drop "
            "--max-turns)"
        )
    console.print(
        Text(printable(f"report: {paths['report']}  summary: {paths['summary']}  metrics: {paths['metrics']}"))
    )


def _judge_user_turns(out: Path, records: list, spec: str, human_turns: list | None, seed: int) -> dict:
    """LM-judged user metrics, cached in ``out/llm_user_metrics.json`` per judge and episode count."""
    from userlm_env.backends.base import SamplingParams
    from userlm_env.backends.engines import make_backend
    from userlm_env.evaluation.analysis import HUMAN_ROW
    from userlm_env.evaluation.llm_user_metrics import judge_users

    cache = out / "llm_user_metrics.json"
    key = f"{spec}|episodes={len(records)}|human={len(human_turns or [])}|seed={seed}"
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    if key not in cached:
        backend = make_backend(spec)
        complete = backend.chat_completer(SamplingParams(max_new_tokens=4, temperature=0.0))
        with console.status(f"LM judge {spec}: role adherence and naturalness of user turns..."):
            cached[key] = judge_users(records, complete, human_turns=human_turns, human_name=HUMAN_ROW, seed=seed)
        cache.write_text(json.dumps(cached, indent=2) + "\n")
    return cached[key]


def _print_summary(summary: dict, meta: dict, wall: float, ran: int, load_seconds: float) -> None:
    title = f"assistant={meta['assistant']}  user={meta['user']}  tasks={meta['tasks']}  reward={meta['reward']}"
    table = Table(title=Text(printable(title)))
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("episodes (errors)", f"{summary['episodes']} ({summary['errors']})"),
        *([("duplicate records ignored", str(summary["duplicates"]))] if summary.get("duplicates") else []),
        ("success rate (LiC score)", f"{summary.get('success_rate', 0):.3f}"),
        ("mean return", f"{summary.get('mean_return', 0):.3f}"),
        ("mean turns", f"{summary.get('mean_turns', 0):.2f}"),
        ("shards revealed (share)", f"{summary.get('mean_shards_revealed', 0):.2f}"),
        ("end reasons", json.dumps(summary.get("end_reasons", {}))),
    ]
    rows += [(f"component {k} (mean per episode)", f"{v:.3f}") for k, v in summary.get("components", {}).items()]
    rows += [(f"cost {k} (mean per episode)", f"{v:.4g}") for k, v in summary.get("cost", {}).items()]
    if ran:
        rows.append(("wall seconds per episode (this run, batched)", f"{wall / ran:.2f}"))
    rows.append(("model loading seconds", f"{load_seconds:.1f}"))
    for name, value in rows:
        table.add_row(name, Text(printable(value)))
    console.print(table)


def _print_transcript(record: dict) -> None:
    """Print one episode's chat; model text is shown as it is (escaped, never read as rich markup)."""
    console.rule(
        Text(
            printable(
                f"episode seed={record['seed']} task={record['task_id']} score={record['score']:g} "
                f"end={record['end_reason']}"
            )
        )
    )
    for message in record["transcript"]:
        role = printable(message.get("role"))
        line = Text(f"{role:>9}", style="cyan" if role == "user" else "green")
        line.append(": " + printable(message.get("content")))
        console.print(line, highlight=False)


if __name__ == "__main__":
    app()
