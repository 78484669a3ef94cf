"""Plot PPO learning curves from runs/<run>/metrics.jsonl files (training reward per iteration + held-out evals).

Usage::

    python -m training.ppo_curves runs/UserLM-Math-v0__ppo__tiny__{1,2,3} --out training/ppo_tiny.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    """Read the runs' metrics and write the PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories holding metrics.jsonl")
    parser.add_argument("--out", default="ppo_curve.png", help="PNG to write")
    parser.add_argument("--title", default="PPO on UserLM-Math-v0")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, run in enumerate(args.runs):
        records = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in records if "charts/reward" in r]
        evals = [r for r in records if "eval/reward" in r]
        label = Path(run).name
        axes[0].plot([r["iteration"] for r in train], [r["charts/reward"] for r in train], color=f"C{i}", label=label)
        axes[0].plot([r["iteration"] for r in evals], [r["eval/reward"] for r in evals], "o--", color=f"C{i}")
        axes[1].plot([r["iteration"] for r in train], [r["losses/kl_ref"] for r in train], color=f"C{i}", label=label)
    title = "reward (line: training batch; dots: held-out eval)"
    axes[0].set(xlabel="iteration", ylabel="mean episode reward", title=title)
    axes[1].set(xlabel="iteration", ylabel="KL to reference (per policy token)", title="KL to the reference")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
