"""User tokens per second by engine and batch size: the table behind ``engine=auto``.

The requests are the prompted user's real prompts (the bundled SmolLM2-135M rephrasing shards of the
default math tasks, its own sampling settings). For each engine and each N, one ``generate`` call
with N requests, timed; printed as generated tokens per second, in one table, with the machine's load
before and after. Engines (``userlm_env.backends.engines``):

* ``transformers``: fp32, batched with eviction (``TransformersBackend``);
* ``llama.cpp``: in-process llama.cpp on the Q4_1 GGUF, one sequence at a time, prefix reuse
  (the prompted user's prompts share their instructions and examples);
* ``llama.cpp (cold)``: the same without prefix reuse (``prefix_cache=0``);
* ``llama-server``: the managed llama.cpp server (``python -m llama_cpp.server`` unless a C++
  ``llama-server`` is on PATH) through the HTTP backend, N requests in flight.

Threads: ``--threads`` for every engine (torch intra-op threads and llama.cpp threads alike).

    python benchmarks/engines.py                    # N = 1 8 32, ~5 minutes on 2 idle cores
    python benchmarks/engines.py --n 1 8 --engines transformers llama.cpp --threads 2
"""

from __future__ import annotations

import argparse
import time

from _common import machine, prompted_user_requests, set_threads

from userlm_env.backends.engines import make_backend

ENGINES = {
    "transformers": "smollm2-135m?engine=transformers",
    "llama.cpp": "smollm2-135m?engine=llama.cpp&threads={threads}",
    "llama.cpp (cold)": "smollm2-135m?engine=llama.cpp&threads={threads}&prefix_cache=0",
    "llama-server": "smollm2-135m?engine=llama-server&threads={threads}&parallel={parallel}",
}


def main() -> None:
    """Measure every engine at every N and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"machine before: {machine()}")
    user, requests = prompted_user_requests("smollm2-135m", max(args.n), args.seed)
    params, stops = user.config.sampling, [user.backend.tokenizer.eos_token_id]
    table: dict[str, dict[int, float]] = {}
    for name in args.engines:
        spec = ENGINES[name].format(threads=args.threads, parallel=min(8, max(args.n)))
        backend = make_backend(spec)
        try:
            backend.generate(requests[:1], params, stops)  # warm-up (and the shared prefix for llama.cpp)
            for n in args.n:
                start = time.perf_counter()
                out = backend.generate(requests[:n], params, stops)
                seconds = time.perf_counter() - start
                table.setdefault(name, {})[n] = sum(len(g.token_ids) for g in out) / seconds
                print(f"  {name:>17} N={n:<3} {table[name][n]:7.1f} tok/s  ({seconds:.1f} s)", flush=True)
        finally:
            backend.close()
    print(f"\nuser tokens/s (prompted SmolLM2-135M user, {args.threads} thread(s) per engine)")
    print(f"{'engine':>17} " + " ".join(f"{'N=' + str(n):>8}" for n in args.n) + "   vs transformers at the same N")
    base = table.get("transformers", {})
    for name, row in table.items():
        ratios = " ".join(f"{row[n] / base[n]:5.2f}x" if n in base else "" for n in args.n)
        print(f"{name:>17} " + " ".join(f"{row[n]:8.1f}" for n in args.n) + f"   {ratios}")
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
