"""Rollouts with the bundled prompted user: the default engine vs transformers vs a naive loop.

Part 1, user turns only (the assistant always sends the same clarifying reply, so only the user
generates), N episodes stepped together, side by side in one process:

* **default**: ``run_episodes`` with ``prompted:smollm2-135m?engine=auto`` (what the CLI uses);
* **transformers**: the same with ``engine=transformers`` (batched with eviction);
* **naive loop**: every generation request the default run made (resampled phrasings included), sent
  one at a time to transformers' ``model.generate`` (fp32, no batching, no cache): a plain sequential
  transformers loop doing the same user turns.

Part 2, the quickstart's job (``scripts/quickstart.sh``: SmolLM2 as assistant *and* user, 3 episodes,
6 turns; models already loaded): both on transformers (the defaults before engines) vs both on
``engine=auto``, with and without ``--overlap``.

Targets: part 1 default >= 5x the naive loop; part 2 >= 3x the transformers quickstart.

    python benchmarks/rollout_speed.py               # ~6 minutes on 2 idle cores
    python benchmarks/rollout_speed.py --n 8 --max-turns 3 --skip-quickstart
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from _common import CLARIFY, machine, set_threads
from transformers import GenerationConfig

from agents import make_assistant
from agents.base import Assistant
from userlm_env.backends.base import SamplingParams
from userlm_env.envs import make_unwrapped_env
from userlm_env.rollout import run_episodes
from userlm_env.users import make_user

warnings.filterwarnings("ignore", message=".*episodes will be truncated.*")


class Clarify(Assistant):
    """Always the same clarifying reply: only the user generates."""

    name = "clarify"

    def act_batch(self, conversations, seeds, infos):
        """The clarifying reply for every conversation."""
        return [CLARIFY] * len(conversations)


def record_requests(backend) -> list:
    """Wrap ``backend.generate`` to record every request with its parameters; returns the list."""
    calls, original = [], backend.generate

    def generate(requests, params, stops):
        calls.extend((r, params, list(stops)) for r in requests)
        return original(requests, params, stops)

    backend.generate = generate
    return calls


def rollout(user, assistant, n: int, max_turns: int, seed: int, overlap: bool = False) -> tuple[float, list]:
    """Seconds of ``run_episodes`` over ``n`` seeds, batch ``n``; and the records."""

    def make_env():
        return make_unwrapped_env("UserLM-Math-v0", user=user, tasks="procedural", max_turns=max_turns)

    start = time.perf_counter()
    records = run_episodes(make_env, assistant, list(range(seed, seed + n)), batch_size=n, overlap=overlap)
    return time.perf_counter() - start, records


@torch.inference_mode()
def naive_loop(model, pad_id: int, requests: list) -> float:
    """Seconds to run every request alone through ``model.generate`` (greedy-free plain sampling)."""
    start = time.perf_counter()
    for request, params, stops in requests:
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=params.temperature > 0,
            temperature=params.temperature or None,
            top_p=params.top_p,
            eos_token_id=stops,
            pad_token_id=pad_id,
        )
        torch.manual_seed(request.seed)
        model.generate(torch.tensor([request.prompt_ids]), generation_config=config)
    return time.perf_counter() - start


def main() -> None:
    """Run both parts and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8, help="episodes (stepped together)")
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch and llama.cpp threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-quickstart", action="store_true")
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"machine before: {machine()}")

    default_user = make_user(f"prompted:smollm2-135m?engine=auto&threads={args.threads}")
    hf_user = make_user("prompted:smollm2-135m?engine=transformers")
    requests = record_requests(default_user.backend)
    rollout(default_user, Clarify(), 2, 1, seed=10_000)  # warm-up
    requests.clear()
    default_s, records = rollout(default_user, Clarify(), args.n, args.max_turns, args.seed)
    turns = sum(r["cost"]["user_requests"] for r in records)
    hf_s, _ = rollout(hf_user, Clarify(), args.n, args.max_turns, args.seed)
    loaded = hf_user.backend.loaded
    naive_s = naive_loop(loaded.model, loaded.tokenizer.pad_token_id, requests)
    engine = default_user.backend.engine
    print(f"\npart 1: {args.n} episodes x {args.max_turns} turns, {turns:.0f} user turns, {len(requests)} requests")
    print(f"  naive transformers loop  {naive_s:7.1f} s   1.00x")
    print(f"  transformers (batched)   {hf_s:7.1f} s   {naive_s / hf_s:.2f}x")
    print(f"  default ({engine:>9})     {default_s:7.1f} s   {naive_s / default_s:.2f}x   [{machine()}]", flush=True)

    if not args.skip_quickstart:
        sampling = SamplingParams(max_new_tokens=96, temperature=0.7, top_p=0.9)
        runs = {
            "transformers + transformers": ("smollm2-135m?engine=transformers", hf_user, False),
            "auto + auto": (f"smollm2-135m?engine=auto&threads={args.threads}", default_user, False),
            "auto + auto, --overlap": (f"smollm2-135m?engine=auto&threads={args.threads}", default_user, True),
        }
        print("\npart 2: the quickstart's job (3 episodes, 6 turns, SmolLM2 assistant and prompted user)")
        base = None
        for name, (assistant_spec, user, overlap) in runs.items():
            assistant = make_assistant(assistant_spec, sampling=sampling)
            seconds, _ = rollout(user, assistant, 3, 6, args.seed, overlap=overlap)
            base = base or seconds
            print(f"  {name:<28} {seconds:7.1f} s   {base / seconds:.2f}x   [{machine()}]", flush=True)
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
