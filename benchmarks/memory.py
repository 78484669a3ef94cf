"""Memory growth over many episodes: RSS after 10,000 replay-user episodes minus RSS after 100.

Runs episodes with the model-free replay user and a fixed clarifying assistant reply (each
episode lasts ``--max-turns`` steps), in a single ``gym.make`` env and in a ``gym.make_vec`` env,
and prints the resident set size (``VmRSS`` from ``/proc/self/status``, after ``gc.collect()``)
at checkpoints. Leaks of per-episode state (conversations, infos, RNGs, caches) show up as growth
between the 100-episode and the final checkpoint. Target: no growth beyond a few MB.

    python benchmarks/memory.py                        # 10,000 episodes per mode, ~1 min
    python benchmarks/memory.py --episodes 100000 --mode single
"""

from __future__ import annotations

import argparse
import gc
import time
import warnings

import gymnasium as gym
from _common import CLARIFY, machine, peak_rss_mb, rss_mb

import userlm_env  # noqa: F401  (registers UserLM-Math-v0)

warnings.filterwarnings("ignore", message=".*episodes will be truncated.*")


def checkpoints(total: int) -> list[int]:
    """Episode counts at which RSS is read."""
    points = [p for p in (100, 1000, 3000) if p < total]
    return [*points, total]


def single(args) -> dict[int, float]:
    """Episodes in one ``gym.make`` env; RSS (MB) per checkpoint."""
    env = gym.make("UserLM-Math-v0", user="replay", max_turns=args.max_turns)
    marks, rss = checkpoints(args.episodes), {}
    for episode in range(1, args.episodes + 1):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(CLARIFY)
            done = terminated or truncated
        if episode in marks:
            gc.collect()
            rss[episode] = rss_mb()
    env.close()
    return rss


def vector(args) -> dict[int, float]:
    """Episodes in a ``gym.make_vec`` env (autoreset); RSS (MB) per checkpoint."""
    venv = gym.make_vec("UserLM-Math-v0", num_envs=args.num_envs, user="replay", max_turns=args.max_turns)
    venv.reset(seed=0)
    marks, rss, finished = checkpoints(args.episodes), {}, 0
    while finished < args.episodes:
        _, _, terminated, truncated, _ = venv.step([CLARIFY] * args.num_envs)
        before = finished
        finished += int((terminated | truncated).sum())
        for mark in marks:
            if before < mark <= finished:
                gc.collect()
                rss[mark] = rss_mb()
    venv.close()
    return rss


def report(name: str, rss: dict[int, float], seconds: float) -> float:
    """Print the checkpoints and the growth; return the growth in MB."""
    marks = sorted(rss)
    line = ", ".join(f"{m}: {rss[m]:.1f} MB" for m in marks)
    growth = rss[marks[-1]] - rss[marks[0]]
    print(f"{name}: RSS after episodes {line}  ({seconds:.1f} s)")
    print(f"  growth {marks[-1]} - {marks[0]} episodes: {growth:+.2f} MB   [target: a few MB at most]")
    return growth


def main() -> None:
    """Parse the flags and run the chosen modes."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--max-turns", type=int, default=12, help="steps per episode (the env's default)")
    parser.add_argument("--num-envs", type=int, default=8, help="sub-envs of the vector mode")
    parser.add_argument("--mode", choices=["single", "vector", "both"], default="both")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"RSS at start (gymnasium + torch imported): {rss_mb():.1f} MB")
    if args.mode in ("single", "both"):
        start = time.perf_counter()
        rss = single(args)
        report("single env", rss, time.perf_counter() - start)
    if args.mode in ("vector", "both"):
        start = time.perf_counter()
        rss = vector(args)
        report(f"vector env (num_envs={args.num_envs})", rss, time.perf_counter() - start)
    print(f"peak RSS (ru_maxrss): {peak_rss_mb():.1f} MB")
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
