"""Share of env wall time spent outside model generation, per step.

Two measurements in one run:

1. **Replay user** (no model): pure env overhead, microseconds per ``env.step`` and per
   ``env.reset`` (judging, reward, shard bookkeeping, obs/info copies, Gymnasium wrappers).
2. **Prompted user on the bundled SmolLM2-135M**: wall time of ``env.step``/``env.reset`` split
   into time inside ``TransformersBackend.generate`` (and, within it, inside the HF
   ``model.generate``) and everything else. The "outside generation" share is
   ``1 - generate / total``. Target: under 2%.

The assistant always sends the same clarifying reply, so only the user generates.

    python benchmarks/env_overhead.py                       # small defaults, ~1-2 min on 2 cores
    python benchmarks/env_overhead.py --episodes 10 --max-turns 8 --replay-steps 50000
"""

from __future__ import annotations

import argparse
import time
import warnings

import gymnasium as gym
from _common import CLARIFY, Timer, hooked, machine, set_threads

import userlm_env  # noqa: F401  (registers UserLM-Math-v0)

warnings.filterwarnings("ignore", message=".*episodes will be truncated.*")


def run_episodes(env, episodes: int, seed: int) -> tuple[float, float, int, int]:
    """Run ``episodes`` episodes; return (reset seconds, step seconds, resets, steps)."""
    reset_s = step_s = 0.0
    steps = 0
    for episode in range(episodes):
        start = time.perf_counter()
        env.reset(seed=seed + episode)
        reset_s += time.perf_counter() - start
        done = False
        while not done:
            start = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(CLARIFY)
            step_s += time.perf_counter() - start
            steps += 1
            done = terminated or truncated
    return reset_s, step_s, episodes, steps


def replay_overhead(args) -> None:
    """Print microseconds per step/reset with the model-free replay user."""
    env = gym.make("UserLM-Math-v0", user="replay", max_turns=args.max_turns)
    run_episodes(env, 20, seed=10_000)  # warm-up
    reset_s = step_s = 0.0
    resets = steps = 0
    while steps < args.replay_steps:
        r, s, n_r, n_s = run_episodes(env, 50, seed=resets)
        reset_s, step_s, resets, steps = reset_s + r, step_s + s, resets + n_r, steps + n_s
    raw = env.unwrapped
    raw_reset_s, raw_step_s, raw_resets, raw_steps = run_episodes(raw, resets, seed=0)
    print(f"replay user, {steps} steps / {resets} episodes (max_turns={args.max_turns}):")
    print(
        f"  gym.make env (with wrappers): {1e6 * step_s / steps:8.1f} us/step  {1e6 * reset_s / resets:8.1f} us/reset"
    )
    print(
        f"  unwrapped UserLMMathEnv     : {1e6 * raw_step_s / raw_steps:8.1f} us/step  "
        f"{1e6 * raw_reset_s / raw_resets:8.1f} us/reset"
    )


def prompted_overhead(args) -> float:
    """Print the split of env wall time inside/outside generation; return the outside share."""
    env = gym.make("UserLM-Math-v0", user=f"prompted:{args.model}", max_turns=args.max_turns)
    user = env.unwrapped.user
    backend = user.backend
    model = backend.loaded.model
    run_episodes(env, 1, seed=999)  # warm-up (first generate call, allocator)
    backend_timer, model_timer = Timer(), Timer()
    stats_before = dict(backend.stats)
    with hooked(backend, "generate", backend_timer), hooked(model, "generate", model_timer):
        reset_s, step_s, resets, steps = run_episodes(env, args.episodes, seed=args.seed)
    total = reset_s + step_s
    calls = backend.stats["calls"] - stats_before["calls"]
    generated = backend.stats["generated_tokens"] - stats_before["generated_tokens"]
    prompt = backend.stats["prompt_tokens"] - stats_before["prompt_tokens"]
    outside_backend = total - backend_timer.seconds
    outside_model = total - model_timer.seconds
    print(
        f"prompted user {args.model!r}, {args.episodes} episodes: {resets} resets + {steps} steps, "
        f"{calls} generate calls, {prompt} prompt + {generated} generated tokens"
    )
    print(
        f"  wall time in reset+step          : {total:8.3f} s  ({1e3 * total / (resets + steps):.1f} ms per reset/step)"
    )
    print(f"  inside backend.generate          : {backend_timer.seconds:8.3f} s")
    print(f"  inside HF model.generate         : {model_timer.seconds:8.3f} s")
    print(
        f"  outside backend.generate         : {outside_backend:8.3f} s = {100 * outside_backend / total:.2f}% "
        f"({1e3 * outside_backend / (resets + steps):.2f} ms per reset/step)   [target < 2%]"
    )
    print(
        f"  outside model.generate           : {outside_model:8.3f} s = {100 * outside_model / total:.2f}% "
        "(adds the backend's padding/decoding)"
    )
    return outside_backend / total


def main() -> None:
    """Parse the flags and run both measurements."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="model of the prompted user")
    parser.add_argument("--episodes", type=int, default=2, help="prompted-user episodes")
    parser.add_argument("--max-turns", type=int, default=4, help="assistant replies per episode")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--replay-steps", type=int, default=20_000, help="replay-user steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-model", action="store_true", help="replay user only")
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"machine: {machine()}")
    replay_overhead(args)
    if not args.skip_model:
        prompted_overhead(args)
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
