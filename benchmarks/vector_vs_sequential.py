"""Batched vector env vs N sequential single envs vs raw batched ``generate``, same model and tokens.

For each N (default 1, 4, 8; ``--n 1 4 8 16`` for more) it runs, side by side in one process:

* **sequential**: N single ``gym.make`` envs, reset with seeds ``seed+i`` and stepped one after the
  other (one user call, one ``generate``, per sub-env turn);
* **vector**: ``gym.make_vec("UserLM-Math-v0", num_envs=N)`` reset with ``seed`` (sub-env i gets
  ``seed+i``), so every step's pending user turns go to the user in one batched call;
* **raw**: the exact ``TransformersBackend.generate`` calls the vector run made (same requests,
  seeds, sampling), replayed directly: the ceiling for the vector env.

The user is the prompted user on the bundled SmolLM2-135M (shared by all three); the assistant
always sends the same clarifying reply, so only the user generates and every run makes the same
user turns (checked: the transcripts of sequential and vector runs are compared). Throughput is
user turns per second (opening turns of resets included). Targets at N=8: vector >= 3x
sequential, vector >= 85% of raw.

Two more columns help read noisy machines: "in-run generate time" is the share of the vector run's
own wall time spent inside ``backend.generate`` (the vector/raw ratio without a second, separately
timed run; the rest is env + user overhead), and "batching ceiling" is what batching can give on
this hardware at all: N one-row ``generate`` calls vs one N-row call on the same prompts, same
fixed number of tokens. Vector/sequential cannot beat the ceiling by much (it can only lose more:
a batched call runs until its longest row stops, and resampled rows form smaller batches).

    python benchmarks/vector_vs_sequential.py                  # N = 1 4 8, a few minutes on 2 cores
    python benchmarks/vector_vs_sequential.py --n 1 4 8 16 --max-turns 4 --repeats 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import gymnasium as gym
from _common import CLARIFY, machine, set_threads

import userlm_env  # noqa: F401  (registers UserLM-Math-v0)
from userlm_env.users import make_user

warnings.filterwarnings("ignore", message=".*episodes will be truncated.*")


class Recorder:
    """Wraps ``backend.generate``: records each call's arguments and the time spent inside it."""

    def __init__(self, backend):
        self.backend = backend
        self.original = backend.generate
        self.calls: list[tuple] = []
        self.seconds = 0.0
        backend.generate = self.generate

    def generate(self, requests, params, stop_token_ids):
        """Record and time one call, then run it."""
        self.calls.append((list(requests), params, list(stop_token_ids)))
        start = time.perf_counter()
        try:
            return self.original(requests, params, stop_token_ids)
        finally:
            self.seconds += time.perf_counter() - start

    def take(self) -> tuple[list[tuple], float]:
        """The calls and seconds recorded since the last ``take``."""
        calls, seconds, self.calls, self.seconds = self.calls, self.seconds, [], 0.0
        return calls, seconds


class TurnCounter:
    """Wraps ``user.respond_batch`` to count user turns."""

    def __init__(self, user):
        self.turns = 0
        original = user.respond_batch

        def respond_batch(requests):
            self.turns += len(requests)
            return original(requests)

        user.respond_batch = respond_batch


def run_sequential(user, counter, n, max_turns, seed):
    """N single envs one after the other: (seconds, user turns, final observations)."""
    envs = [gym.make("UserLM-Math-v0", user=user, max_turns=max_turns) for _ in range(n)]
    turns0 = counter.turns
    start = time.perf_counter()
    finals = []
    for i, env in enumerate(envs):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(CLARIFY)
            done = terminated or truncated
        finals.append(obs)
    return time.perf_counter() - start, counter.turns - turns0, finals


def run_vector(user, counter, n, max_turns, seed):
    """One N-env vector env: (seconds, user turns, final observations)."""
    venv = gym.make_vec("UserLM-Math-v0", num_envs=n, user=user, max_turns=max_turns)
    turns0 = counter.turns
    start = time.perf_counter()
    venv.reset(seed=seed)
    for _ in range(max_turns):  # every episode lasts exactly max_turns steps (never an answer attempt)
        obs, _, terminated, truncated, _ = venv.step([CLARIFY] * n)
    elapsed = time.perf_counter() - start
    assert all(terminated | truncated), "expected every episode to end at max_turns"
    return elapsed, counter.turns - turns0, list(obs)


def run_raw(backend_generate, calls):
    """Replay recorded generate calls: seconds."""
    start = time.perf_counter()
    for requests, params, stops in calls:
        backend_generate(requests, params, stops)
    return time.perf_counter() - start


def batching_ceiling(backend, calls, n: int, tokens: int) -> float:
    """Hardware ceiling of batching: N single-request generates vs one N-row generate, fixed length.

    Same N prompts (the first ones the vector run sent), ``tokens`` new tokens each, no stop token, so
    both sides compute exactly the same tokens; no env, no resampling, no early-stopping rows.
    """
    from userlm_env.backends.transformers_backend import SamplingParams

    requests = [r for batch, _, _ in calls for r in batch][:n]
    if len(requests) < n:
        return float("nan")
    params = SamplingParams(max_new_tokens=tokens, temperature=0.7, top_p=0.9)
    start = time.perf_counter()
    for request in requests:
        backend(([request]), params, [])
    single = time.perf_counter() - start
    start = time.perf_counter()
    backend(requests, params, [])
    return single / (time.perf_counter() - start)


def main() -> None:
    """Parse the flags and measure every N."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="model of the prompted user")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 8], help="numbers of envs")
    parser.add_argument("--max-turns", type=int, default=2, help="assistant replies per episode")
    parser.add_argument(
        "--repeats", type=int, default=1, help="repeat each measurement (alternating the order), keep the fastest"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ceiling-tokens", type=int, default=16, help="tokens of the batching-ceiling measurement (0 skips it)"
    )
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"machine: {machine()}")
    user = make_user(f"prompted:{args.model}")
    backend = user.backend
    recorder = Recorder(backend)
    counter = TurnCounter(user)
    run_vector(user, counter, 2, 1, seed=12345)  # warm-up
    recorder.take()
    rows, best_in_gen = [], 0.0
    for n in args.n:
        best = {"seq": float("inf"), "vec": float("inf"), "raw": float("inf")}
        for repeat in range(args.repeats):
            # Alternate the order between repeats so that a load change does not always favour one side.
            if repeat % 2 == 0:
                seq_s, seq_turns, seq_finals = run_sequential(user, counter, n, args.max_turns, args.seed)
                recorder.take()
                vec_s, vec_turns, vec_finals = run_vector(user, counter, n, args.max_turns, args.seed)
                calls, in_gen = recorder.take()
                raw_s = run_raw(recorder.original, calls)
            else:
                raw_s = run_raw(recorder.original, calls)
                vec_s, vec_turns, vec_finals = run_vector(user, counter, n, args.max_turns, args.seed)
                _, in_gen = recorder.take()
                seq_s, seq_turns, seq_finals = run_sequential(user, counter, n, args.max_turns, args.seed)
                recorder.take()
            if vec_s < best["vec"]:
                best_in_gen = in_gen
            best = {"seq": min(best["seq"], seq_s), "vec": min(best["vec"], vec_s), "raw": min(best["raw"], raw_s)}
        assert seq_turns == vec_turns, (seq_turns, vec_turns)
        same = seq_finals == vec_finals
        seq_tps, vec_tps, raw_tps = seq_turns / best["seq"], vec_turns / best["vec"], vec_turns / best["raw"]
        ceiling = (
            batching_ceiling(recorder.original, calls, n, args.ceiling_tokens) if args.ceiling_tokens else float("nan")
        )
        inside = best_in_gen / best["vec"]  # share of the vector run's wall time inside backend.generate
        rows.append((n, vec_turns, len(calls), seq_tps, vec_tps, raw_tps, same, ceiling, inside))
        print(
            f"N={n:3d}: {vec_turns} user turns ({len(calls)} batched generate calls); "
            f"turns/s sequential {seq_tps:.3f}, vector {vec_tps:.3f}, raw {raw_tps:.3f}; "
            f"vector/sequential {vec_tps / seq_tps:.2f}x, vector/raw {100 * vec_tps / raw_tps:.1f}% (replayed), "
            f"{100 * inside:.1f}% (time inside generate during the vector run); same transcripts: {same}; "
            f"batching ceiling (N x 1-row vs one N-row generate, {args.ceiling_tokens} tokens) {ceiling:.2f}x "
            f"  [{machine()}]",
            flush=True,
        )
    print()
    print(
        "| N | user turns | sequential turns/s | vector turns/s | raw generate turns/s | vector / sequential "
        "| vector / raw (replayed) | vector / raw (in-run generate time) | same transcripts | batching ceiling |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, turns, _, seq_tps, vec_tps, raw_tps, same, ceiling, inside in rows:
        print(
            f"| {n} | {turns} | {seq_tps:.3f} | {vec_tps:.3f} | {raw_tps:.3f} | {vec_tps / seq_tps:.2f}x | "
            f"{100 * vec_tps / raw_tps:.1f}% | {100 * inside:.1f}% | {same} | {ceiling:.2f}x |"
        )
    print("targets at N=8: vector/sequential >= 3x, vector/raw >= 85%")
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
