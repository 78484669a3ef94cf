# docs and results: training/README.md ("Turn-level credit")
"""Does per-turn credit learn faster than episode credit? GRPO ``--credit`` modes x seeds on the CPU preset.

    python training/credit_experiment.py                       # 3 modes x 3 seeds, tiny preset (~10-20 min CPU)
    python training/credit_experiment.py --report_only         # table + plot from the finished runs

Every (mode, seed) run is ``training.grpo.train`` in process with the same settings except ``credit``; a
finished run appends one line to ``{output_dir}/results.jsonl`` (training reward per step, held-out evaluation
returns per evaluation step), so an interrupted experiment resumes with the runs it has not finished. Then it
writes ``credit.md`` (table) and ``credit.png`` (learning curves): held-out evaluation reward with 95% bootstrap
CIs that resample seeds, then episodes (``training.ablate.bootstrap_ci``), and the training reward per step
(mean over seeds, min-max band).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training import args as args_lib


@dataclass
class Args:
    """Command-line arguments of ``credit_experiment.py``."""

    preset: str = "tiny"
    """grpo.py preset of every run"""
    modes: list[str] = field(default_factory=lambda: ["episode", "return_to_go", "turn_baseline"])
    """credit modes to compare (training/credit.py)"""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    """seeds of every mode"""
    reward: str = "lic:clarification=1,premature_answer=-1"
    """env reward (per-turn components) of every run"""
    gamma: float = 1.0
    """discount per assistant turn of the per-turn modes"""
    max_steps: int = 20
    """GRPO steps per run"""
    eval_every: int = 4
    """held-out evaluation every N steps (plus before and after training)"""
    eval_episodes: int = 32
    """held-out episodes per evaluation (same env and policy seeds in every run)"""
    output_dir: str = "runs/credit_experiment"
    """runs, results.jsonl, credit.md and credit.png go here"""
    bootstrap: int = 2000
    """bootstrap resamples of the confidence intervals"""
    report_only: bool = False
    """only write the table and the plot from results.jsonl"""


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse the command line (``training/args.py``)."""
    return args_lib.parse_args(Args, argv)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def run_one(args: Args, mode: str, seed: int) -> dict[str, Any]:
    """Train one GRPO run; return its result line (training curve, evaluation returns per step)."""
    from training import grpo

    grpo_args = grpo.make_args(
        args.preset,
        credit=mode,
        gamma=args.gamma,
        seed=seed,
        reward=args.reward,
        max_steps=args.max_steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        exp_name=f"credit-{mode}",
        output_dir=str(Path(args.output_dir) / "runs"),
        rich=False,
        quiet=True,
        save_final_model=False,
    )
    start = time.perf_counter()
    result = grpo.train(grpo_args)
    train = [h for h in result["history"] if h["kind"] == "train"]
    evals: dict[str, list[float]] = {}
    for record in _jsonl(Path(grpo_args.run_dir) / "eval_episodes.jsonl"):
        evals.setdefault(str(record["step"]), []).append(float(record["return"]))
    return {
        "mode": mode,
        "seed": seed,
        "reward": args.reward,
        "gamma": args.gamma,
        "run_dir": grpo_args.run_dir,
        "seconds": round(time.perf_counter() - start, 1),
        "train_steps": [int(h["step"]) for h in train],
        "train_reward": [float(h["train/reward"]) for h in train],
        "eval_returns": evals,
    }


def run_all(args: Args) -> list[dict[str, Any]]:
    """Every (mode, seed) run not yet in ``results.jsonl`` (resumable); returns all result lines."""
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    done = {(r["mode"], r["seed"]) for r in _jsonl(path) if r["reward"] == args.reward and r["gamma"] == args.gamma}
    for seed in args.seeds:
        for mode in args.modes:
            if (mode, seed) in done:
                print(f"[credit] {mode} seed {seed}: done, skipped", flush=True)
                continue
            line = run_one(args, mode, seed)
            with path.open("a") as f:
                f.write(json.dumps(line) + "\n")
            final = line["eval_returns"][max(line["eval_returns"], key=int)]
            print(f"[credit] {mode} seed {seed}: final eval {np.mean(final):.3f} ({line['seconds']} s)", flush=True)
    return [r for r in _jsonl(path) if r["reward"] == args.reward and r["gamma"] == args.gamma]


def summarize(results: list[dict[str, Any]], modes: list[str], n_boot: int) -> dict[str, dict[str, Any]]:
    """Per mode: evaluation curve (mean and 95% CI per step), per-seed values, training curve, AUC."""
    from training.ablate import bootstrap_ci

    summary = {}
    for mode in modes:
        runs = sorted((r for r in results if r["mode"] == mode), key=lambda r: r["seed"])
        if not runs:
            continue
        steps = sorted({int(s) for r in runs for s in r["eval_returns"]})
        curve = {s: bootstrap_ci([r["eval_returns"][str(s)] for r in runs], n_boot) for s in steps}
        # area under the evaluation curve (mean eval reward over the evaluations after step 0), CI over seeds x eps
        after = [[x for s in steps[1:] for x in r["eval_returns"][str(s)]] for r in runs]
        train = np.array([r["train_reward"] for r in runs])
        summary[mode] = {
            "seeds": [r["seed"] for r in runs],
            "steps": steps,
            "eval": curve,
            "per_seed_final": [float(np.mean(r["eval_returns"][str(steps[-1])])) for r in runs],
            "auc": bootstrap_ci(after, n_boot),
            "train_steps": runs[0]["train_steps"],
            "train": train,
            "seconds": float(np.mean([r["seconds"] for r in runs])),
        }
    return summary


def _fmt(ci: tuple[float, float, float]) -> str:
    return f"{ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]"


def write_report(summary: dict[str, dict[str, Any]], out: Path, args: Args) -> str:
    """``credit.md``: the table (returned as text too)."""
    steps = next(iter(summary.values()))["steps"]
    head = (
        ["credit"]
        + [f"eval step {s}" for s in steps]
        + ["mean eval after step 0", "final, per seed", "train first 5 -> last 5"]
    )
    lines = [
        f"GRPO credit modes, preset `{args.preset}`, reward `{args.reward}`, gamma {args.gamma}, "
        f"{args.max_steps} steps, {args.eval_episodes} held-out episodes per evaluation; "
        "pooled mean [95% bootstrap CI, seeds then episodes]",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for mode, s in summary.items():
        train = s["train"].mean(0)
        cells = [f"`{mode}`"] + [_fmt(s["eval"][step]) for step in steps] + [_fmt(s["auc"])]
        cells.append(
            " / ".join(f"{v:.3f}" for v in s["per_seed_final"]) + f" (seeds {', '.join(map(str, s['seeds']))})"
        )
        cells.append(f"{train[:5].mean():.2f} -> {train[-5:].mean():.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (out / "credit.md").write_text(text)
    return text


def plot(summary: dict[str, dict[str, Any]], path: Path, args: Args) -> None:
    """``credit.png``: evaluation reward (95% CI band) and training reward (mean, min-max band) per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_eval, ax_train) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, s in summary.items():
        steps = s["steps"]
        mean = [s["eval"][k][0] for k in steps]
        (line,) = ax_eval.plot(steps, mean, marker="o", label=mode)
        ax_eval.fill_between(
            steps, [s["eval"][k][1] for k in steps], [s["eval"][k][2] for k in steps], color=line.get_color(), alpha=0.2
        )
        train = s["train"]
        ax_train.plot(s["train_steps"], train.mean(0), color=line.get_color(), label=mode)
        ax_train.fill_between(s["train_steps"], train.min(0), train.max(0), color=line.get_color(), alpha=0.15)
    n = len(next(iter(summary.values()))["seeds"])
    ax_eval.set(xlabel="GRPO step", ylabel="held-out reward", title=f"evaluation ({n} seeds, 95% CI)")
    ax_train.set(xlabel="GRPO step", ylabel="training reward", title=f"training (mean over {n} seeds, min-max)")
    for ax in (ax_eval, ax_train):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"GRPO credit assignment, preset {args.preset}, reward {args.reward}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: Args) -> str:
    """Run what is missing, then write the table and the plot; returns the table."""
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = [r for r in _jsonl(out / "results.jsonl") if r["reward"] == args.reward and r["gamma"] == args.gamma]
    else:
        results = run_all(args)
    summary = summarize(results, args.modes, args.bootstrap)
    if not summary:
        raise SystemExit(f"no finished runs in {out / 'results.jsonl'}")
    text = write_report(summary, out, args)
    plot(summary, out / "credit.png", args)
    print(text)
    return text


if __name__ == "__main__":
    main(parse_args())
