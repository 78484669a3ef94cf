# docs: training/README.md ("Reward ablations")
"""Reward ablations: GRPO under a grid of reward configurations x seeds, or recomputed from episode logs.

Training mode (in process, through ``training.grpo.train``)::

    python training/ablate.py --preset tiny --rewards 'lic:clarification=1,premature_answer=-1' \
        'lic:clarification=1' 'lic:premature_answer=-1' --seeds 1 2 3 --output_dir runs/ablate

writes to ``output_dir``: ``ablation.csv`` / ``ablation.md`` (one row per reward configuration: held-out
evaluation before and after training, own return and return under the common ``--metric_reward``,
LiC success, 95% bootstrap confidence intervals that resample seeds then episodes), ``curves.png``
(training reward and success per step, mean over seeds with a min-max band), ``final.png`` (final
success and common-metric return per configuration with 95% CIs) and ``runs.json``.

``--runs DIR ...`` summarizes finished ``grpo.py`` run folders the same way, without training.

``--from_logs`` mode (no training): reads episode records (JSONL) from files or folders, e.g. the
``eval_episodes.jsonl`` of GRPO runs or ``userlm_env`` rollout logs, and recomputes every episode's
return under each ``--rewards`` configuration from its unweighted components (``steps[*]
["reward_components"]`` when present, else ``component_totals``): any weighting, no re-run. Writes
``from_logs.csv`` / ``from_logs.md`` / ``from_logs.png``.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from userlm_env.rewards import COMPONENTS, RewardConfig

DEFAULT_REWARDS = ("lic:clarification=1,premature_answer=-1", "lic:clarification=1", "lic:premature_answer=-1")


@dataclass
class AblateArgs:
    """Command-line arguments of ``ablate.py`` (each field's docstring is its ``--help``)."""

    rewards: list[str] = field(default_factory=lambda: list(DEFAULT_REWARDS))
    """reward configurations (userlm_env.rewards specs), one GRPO run per configuration and seed"""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    """training seeds of every configuration"""
    preset: str = "tiny"
    """training/grpo.py preset of every run"""
    max_steps: int = 0
    """steps per run (0 = the preset's)"""
    eval_episodes: int = 0
    """held-out evaluation episodes per evaluation (0 = the preset's)"""
    eval_every: int = 0
    """evaluate every N steps as well (0 = before and after training only)"""
    metric_reward: str = ""
    """common reward all runs are compared under (recomputed from components); empty = the first of --rewards"""
    output_dir: str = "runs/ablate"
    """where the table, plots and runs go"""
    from_logs: list[str] = field(default_factory=list)
    """episode JSONL files or folders: recompute the ablation from logs instead of training"""
    bootstrap: int = 2000
    """bootstrap resamples for the 95% confidence intervals"""
    smooth: int = 5
    """moving-average window of the training curves in the plots (1 = none)"""
    num_threads: int = 1
    """torch threads of every run (one is fastest for tiny models on a busy CPU)"""
    runs: list[str] = field(default_factory=list)
    """existing GRPO run folders to summarize (table + plots) instead of training new ones"""


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def bootstrap_ci(groups: Sequence[Sequence[float]], n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap CI of values grouped by seed (resample seeds, then values within each).

    With a single group this is the ordinary bootstrap over its values.
    """
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.mean(np.concatenate(groups)))
    rng = np.random.default_rng(seed)
    stats = np.empty(n)
    for b in range(n):
        picked = [groups[i] for i in rng.integers(0, len(groups), len(groups))] if len(groups) > 1 else groups
        stats[b] = np.mean(np.concatenate([g[rng.integers(0, len(g), len(g))] for g in picked]))
    low, high = np.percentile(stats, [2.5, 97.5])
    return mean, float(low), float(high)


def episode_return(record: dict[str, Any], config: RewardConfig) -> float:
    """An episode's return under ``config``, from its unweighted components (per step if logged, else totals)."""
    steps = record.get("steps")
    if steps:
        return float(sum(config.weighted(step["reward_components"]) for step in steps))
    totals = record.get("component_totals")
    if totals is None:
        raise ValueError(
            f"episode record has neither steps[*]['reward_components'] nor component_totals: keys {sorted(record)}"
        )
    return config.weighted(totals)


def episode_components(record: dict[str, Any]) -> dict[str, float]:
    """Per-component totals of an episode record."""
    steps = record.get("steps")
    if steps:
        return {name: float(sum(s["reward_components"].get(name, 0.0) for s in steps)) for name in COMPONENTS}
    return {name: float(record.get("component_totals", {}).get(name, 0.0)) for name in COMPONENTS}


def _score(record: dict[str, Any]) -> float:
    return float(record.get("score", 0.0))


def _fmt(mean: float, low: float, high: float) -> str:
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _write_table(rows: list[dict[str, Any]], csv_path: Path, md_path: Path, title: str) -> None:
    import csv

    if not rows:
        return
    columns = list(rows[0])
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    md_path.write_text("\n".join(lines) + "\n")


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


# ---------------------------------------------------------------------------------------------
# --from_logs: recompute from episode records
# ---------------------------------------------------------------------------------------------


def read_records(paths: Iterable[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """Episode records by source: ``file`` or ``file@step=N`` when records carry a ``step`` (GRPO evaluations)."""
    sources: dict[str, list[dict[str, Any]]] = defaultdict(list)
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*.jsonl"))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"--from_logs path {str(p)!r} does not exist")
    skipped = 0
    for path in files:
        seen: set[str] = set()
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):  # a line cut by a crash, invalid UTF-8, garbage
                skipped += bool(line.strip())
                continue
            if not isinstance(record, dict) or ("steps" not in record and "component_totals" not in record):
                continue  # not an episode record (e.g. a metrics line)
            key = record.get("episode_key")
            if record.get("error") or (isinstance(key, str) and key in seen):
                continue  # failed episodes and second copies of a key (as userlm_env.episode_log) do not count
            if isinstance(key, str):
                seen.add(key)
            label = str(path) if "step" not in record else f"{path}@step={record['step']}"
            sources[label].append(record)
    if skipped:
        warnings.warn(f"--from_logs: skipped {skipped} damaged line(s) that are not JSON", stacklevel=2)
    return dict(sources)


def ablate_from_logs(
    paths: Sequence[str | Path], rewards: Sequence[str], output_dir: str | Path, *, bootstrap: int = 2000
) -> list[dict[str, Any]]:
    """Recompute every source's mean return under each reward configuration; write CSV, Markdown and a plot."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sources = read_records(paths)
    if not sources:
        raise ValueError(f"no episode records found in {list(map(str, paths))}")
    configs = {spec: RewardConfig.from_spec(spec) for spec in rewards}
    rows = []
    for label, records in sources.items():
        success = bootstrap_ci([[float(r.get("score", 0.0)) for r in records]], bootstrap)
        for spec, config in configs.items():
            ret = bootstrap_ci([[episode_return(r, config) for r in records]], bootstrap)
            rows.append(
                {
                    "source": label,
                    "reward": spec,
                    "episodes": len(records),
                    "return_mean": ret[0],
                    "return_ci95": f"[{ret[1]:.3f}, {ret[2]:.3f}]",
                    "success_mean": success[0],
                    "success_ci95": f"[{success[1]:.3f}, {success[2]:.3f}]",
                }
            )
    _write_table(
        rows, output_dir / "from_logs.csv", output_dir / "from_logs.md", "Evaluation ablation recomputed from logs"
    )
    _plot_from_logs(rows, output_dir / "from_logs.png")
    return rows


def _plot_from_logs(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = list(dict.fromkeys(r["source"] for r in rows))
    rewards = list(dict.fromkeys(r["reward"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(sources) * len(rewards) / 2), 4))
    width = 0.8 / max(1, len(rewards))
    for k, reward in enumerate(rewards):
        xs, ys, errs = [], [], []
        for i, source in enumerate(sources):
            row = next(r for r in rows if r["source"] == source and r["reward"] == reward)
            low, high = (float(v) for v in row["return_ci95"].strip("[]").split(","))
            xs.append(i + k * width)
            ys.append(row["return_mean"])
            errs.append([row["return_mean"] - low, high - row["return_mean"]])
        ax.bar(xs, ys, width, yerr=np.clip(np.array(errs).T, 0, None), capsize=3, label=reward)
    ax.set_xticks([i + width * (len(rewards) - 1) / 2 for i in range(len(sources))])
    ax.set_xticklabels(
        [Path(s.split("@")[0]).parent.name[-40:] + ("@" + s.split("@")[1] if "@" in s else "") for s in sources],
        rotation=20,
        ha="right",
        fontsize=7,
    )
    ax.set_ylabel("mean episode return (95% CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Training grid
# ---------------------------------------------------------------------------------------------


def run_grid(args: AblateArgs, **grpo_overrides: Any) -> list[dict[str, Any]]:
    """Train GRPO for every (reward, seed) pair in process; return one record per run."""
    from training.grpo import make_args, train

    out = Path(args.output_dir)
    runs = []
    for spec in args.rewards:
        for seed in args.seeds:
            overrides: dict[str, Any] = dict(
                reward=spec,
                seed=seed,
                output_dir=str(out / "runs"),
                exp_name="ablate",
                rich=False,
                quiet=True,
                save_final_model=False,
                eval_every=args.eval_every,
                num_threads=args.num_threads,
            )
            if args.max_steps:
                overrides["max_steps"] = args.max_steps
            if args.eval_episodes:
                overrides["eval_episodes"] = args.eval_episodes
            overrides.update(grpo_overrides)
            grpo_args = make_args(args.preset, **overrides)
            print(f"[ablate] reward={spec!r} seed={seed} -> {grpo_args.run_dir}", flush=True)
            result = train(grpo_args)
            result.pop("trainer", None)
            episodes = [
                json.loads(line)
                for line in (Path(grpo_args.run_dir) / "eval_episodes.jsonl").read_text().splitlines()
                if line
            ]
            runs.append(
                {
                    "reward": spec,
                    "seed": seed,
                    "run_dir": grpo_args.run_dir,
                    "history": result["history"],
                    "summary": result["summary"],
                    "eval_episodes": episodes,
                }
            )
            s = result["summary"]
            if s["eval_start"] and s["eval_end"]:
                start, end = s["eval_start"]["eval/reward"], s["eval_end"]["eval/reward"]
                print(f"[ablate]   eval reward {start:.3f} -> {end:.3f}", flush=True)
    return runs


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_runs(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Run records (reward, seed, history, evaluation episodes) of finished ``grpo.py`` run folders."""
    runs = []
    for run_dir in map(Path, run_dirs):
        args = json.loads((run_dir / "args.json").read_text())
        runs.append(
            {
                "reward": args["reward"],
                "seed": args["seed"],
                "run_dir": str(run_dir),
                "history": _jsonl(run_dir / "metrics.jsonl"),
                "eval_episodes": _jsonl(run_dir / "eval_episodes.jsonl"),
            }
        )
    return runs


def summarize_grid(runs: list[dict[str, Any]], metric_reward: str, bootstrap: int = 2000) -> list[dict[str, Any]]:
    """One table row per reward configuration (CIs resample seeds, then episodes)."""
    metric = RewardConfig.from_spec(metric_reward)
    rows = []
    for spec in dict.fromkeys(r["reward"] for r in runs):
        own = RewardConfig.from_spec(spec)
        group = [r for r in runs if r["reward"] == spec]
        first = [
            [e for e in r["eval_episodes"] if e["step"] == min(x["step"] for x in r["eval_episodes"])] for r in group
        ]
        last = [
            [e for e in r["eval_episodes"] if e["step"] == max(x["step"] for x in r["eval_episodes"])] for r in group
        ]
        row: dict[str, Any] = {"reward": spec, "seeds": len(group), "eval_episodes": sum(len(x) for x in last)}
        for tag, eps in (("start", first), ("end", last)):
            row[f"own_return_{tag}"] = _fmt(
                *bootstrap_ci([[episode_return(e, own) for e in g] for g in eps], bootstrap)
            )
        for tag, eps in (("start", first), ("end", last)):
            row[f"metric_return_{tag}"] = _fmt(
                *bootstrap_ci([[episode_return(e, metric) for e in g] for g in eps], bootstrap)
            )
        row["success_start"] = _fmt(*bootstrap_ci([[float(e["score"]) for e in g] for g in first], bootstrap))
        row["success_end"] = _fmt(*bootstrap_ci([[float(e["score"]) for e in g] for g in last], bootstrap))
        for name in ("clarification", "premature_answer"):
            row[f"{name}_start"] = float(np.mean([episode_components(e)[name] for g in first for e in g]))
            row[f"{name}_end"] = float(np.mean([episode_components(e)[name] for g in last for e in g]))
        trains = [[h["train/reward"] for h in r["history"] if h["kind"] == "train"] for r in group]
        row["train_reward_first5"] = float(np.mean([np.mean(t[:5]) for t in trains if t]))
        row["train_reward_last5"] = float(np.mean([np.mean(t[-5:]) for t in trains if t]))
        rows.append(row)
    return rows


def plot_grid(
    runs: list[dict[str, Any]], metric_reward: str, output_dir: Path, *, smooth: int = 5, bootstrap: int = 2000
) -> None:
    """``curves.png`` (reward and success per step, seeds as bands) and ``final.png`` (final values with 95% CIs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = list(dict.fromkeys(r["reward"] for r in runs))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for k, spec in enumerate(specs):
        group = [r for r in runs if r["reward"] == spec]
        for ax, key in ((axes[0], "train/reward"), (axes[1], "train/score")):
            curves = [
                np.array([h.get(key, np.nan) for h in r["history"] if h["kind"] == "train"], dtype=float) for r in group
            ]
            length = min(len(c) for c in curves)
            if length == 0:
                continue
            stack = np.stack([_smooth(c[:length], smooth) for c in curves])
            steps = np.arange(1, length + 1)
            ax.plot(steps, stack.mean(0), color=colors[k % len(colors)], label=spec)
            ax.fill_between(steps, stack.min(0), stack.max(0), color=colors[k % len(colors)], alpha=0.2)
        evals = defaultdict(list)
        for r in group:
            for h in r["history"]:
                if h["kind"] == "eval":
                    evals[h["step"]].append(h["eval/reward"])
        steps = sorted(evals)
        means = np.array([np.mean(evals[s]) for s in steps])
        axes[2].plot(steps, means, "o-", color=colors[k % len(colors)], label=spec)
        axes[2].fill_between(
            steps,
            [min(evals[s]) for s in steps],
            [max(evals[s]) for s in steps],
            color=colors[k % len(colors)],
            alpha=0.2,
        )
    axes[0].set_title(f"training reward (own config; mean over seeds, band = min-max, smoothed {smooth})", fontsize=9)
    axes[1].set_title("training success (LiC score)", fontsize=9)
    axes[2].set_title("held-out evaluation reward (own config)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output_dir / "curves.png", dpi=120)
    plt.close(fig)

    metric = RewardConfig.from_spec(metric_reward)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for ax, title, value_for in (
        (
            axes[0],
            "final success (LiC score), 95% bootstrap CI (x = untrained)",
            lambda spec: _score,
        ),
        (
            axes[1],
            "final return under its own reward, 95% CI (x = untrained)",
            lambda spec: functools.partial(episode_return, config=RewardConfig.from_spec(spec)),
        ),
        (
            axes[2],
            f"final return under\n{metric_reward!r}, 95% CI (x = untrained)",
            lambda spec: functools.partial(episode_return, config=metric),
        ),
    ):
        for k, spec in enumerate(specs):
            value = value_for(spec)
            group = [r for r in runs if r["reward"] == spec]
            last = [
                [value(e) for e in r["eval_episodes"] if e["step"] == max(x["step"] for x in r["eval_episodes"])]
                for r in group
            ]
            first = [[value(e) for e in r["eval_episodes"] if e["step"] == 0] for r in group]
            mean, low, high = bootstrap_ci(last, bootstrap)
            ax.bar(
                k,
                mean,
                color=colors[k % len(colors)],
                yerr=[[max(0.0, mean - low)], [max(0.0, high - mean)]],
                capsize=4,
            )
            if any(first):
                ax.plot(k, bootstrap_ci(first, 200)[0], "kx", markersize=9)
        ax.set_xticks(range(len(specs)))
        ax.set_xticklabels(specs, rotation=15, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(output_dir / "final.png", dpi=120)
    plt.close(fig)


def ablate(args: AblateArgs, **grpo_overrides: Any) -> list[dict[str, Any]]:
    """Training mode: run the grid, write the table, plots and ``runs.json``; return the table rows."""
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(args.runs) if args.runs else run_grid(args, **grpo_overrides)
    metric_reward = args.metric_reward or (runs[0]["reward"] if args.runs else args.rewards[0])
    rows = summarize_grid(runs, metric_reward, args.bootstrap)
    _write_table(
        rows,
        out / "ablation.csv",
        out / "ablation.md",
        f"GRPO reward ablation ({'runs ' + ', '.join(args.runs) if args.runs else args.preset}; "
        f"metric reward {metric_reward!r}; seeds {sorted({r['seed'] for r in runs})})",
    )
    plot_grid(runs, metric_reward, out, smooth=args.smooth, bootstrap=args.bootstrap)
    light = [{k: v for k, v in r.items() if k != "eval_episodes"} for r in runs]
    (out / "runs.json").write_text(json.dumps(light, indent=1))
    return rows


def parse_args(argv: list[str] | None = None) -> AblateArgs:
    """Parse the command line (``HfArgumentParser``; field docstrings become ``--help``)."""
    from training.args import parse_args as parse

    return parse(AblateArgs, argv)


if __name__ == "__main__":
    args = parse_args()
    if args.from_logs:
        rows = ablate_from_logs(args.from_logs, args.rewards, args.output_dir, bootstrap=args.bootstrap)
        print((Path(args.output_dir) / "from_logs.md").read_text())
    else:
        rows = ablate(args)
        print((Path(args.output_dir) / "ablation.md").read_text())
