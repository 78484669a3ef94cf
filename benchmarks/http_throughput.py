"""Throughput of the HTTP backend vs client concurrency, against local llama.cpp server(s).

Starts ``python -m llama_cpp.server`` on the bundled SmolLM2-135M (one server per ``--servers``
count, loopback only), or uses ``--url`` servers you already run (vLLM, SGLang, llama.cpp). For each
server set and each concurrency level it sends ``--requests`` completions (``--max-tokens`` each,
seeded sampling) with that many in flight, and prints requests/s, generated tokens/s and the ratio
to concurrency 1 on the same servers, all measured side by side in one run.

A llama.cpp-python server runs one request at a time, so on one server concurrency mostly hides
client/HTTP latency; the gain comes from several servers (``--servers 1 2``) or from servers that
batch (vLLM, SGLang). On a shared machine the numbers move with the load (printed as loadavg).

    python benchmarks/http_throughput.py                         # 1 and 2 local servers, c = 1 2 4 8
    python benchmarks/http_throughput.py --url http://127.0.0.1:8000/v1 --tokenizer microsoft/UserLM-8b
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from userlm_env.backends import GenerationRequest, HTTPBackend, SamplingParams

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from llama_server import LlamaServer  # noqa: E402  (test infrastructure, in tests/)

PROMPT = [{"role": "user", "content": "Write a short story about a cat who learns to count."}]


def measure(backend: HTTPBackend, concurrency: int, n: int, params: SamplingParams) -> dict[str, float]:
    """Send ``n`` requests, ``concurrency`` in flight; return wall time, req/s and tok/s."""
    prompt = backend.render(PROMPT)
    eos = backend.tokenizer.eos_token_id
    stops = [eos] if isinstance(eos, int) else []
    requests = [GenerationRequest(prompt, seed=1000 + i) for i in range(n)]
    before = backend.stats["generated_tokens"]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda r: backend.generate([r], params, stops), requests))
    wall = time.perf_counter() - start
    tokens = backend.stats["generated_tokens"] - before
    return {"wall": wall, "rps": n / wall, "tps": tokens / wall, "tokens": tokens}


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="comma-separated base URLs of running servers (default: start local ones)")
    parser.add_argument("--tokenizer", default="smollm2-135m", help="tokenizer spec for completions mode")
    parser.add_argument("--servers", type=int, nargs="+", default=[1, 2], help="local server counts to compare")
    parser.add_argument("--threads", type=int, default=1, help="threads per local server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--requests", type=int, default=16, help="requests per measurement")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    params = SamplingParams(max_new_tokens=args.max_tokens, temperature=0.7, top_p=0.9)

    servers: list[LlamaServer] = []
    try:
        if args.url:
            setups = [(f"{len(args.url.split(','))} given", args.url.split(","))]
        else:
            urls = []
            for _ in range(max(args.servers)):
                servers.append(LlamaServer(threads=args.threads))
                urls.append(servers[-1].url)
            setups = [(f"{k} llama.cpp", urls[:k]) for k in args.servers]
        print(
            f"cpus={os.cpu_count()} loadavg={os.getloadavg()[0]:.2f} requests={args.requests} "
            f"max_tokens={args.max_tokens}"
        )
        print(f"{'servers':>12} {'conc':>5} {'wall s':>8} {'req/s':>8} {'tok/s':>8} {'x c=1':>7} {'x base':>7}")
        base = None
        for label, urls in setups:
            backend = HTTPBackend(urls, tokenizer=args.tokenizer, concurrency=max(args.concurrency))
            measure(backend, len(urls), len(urls), params)  # warm-up: connections, model name, caches
            first = None
            for c in args.concurrency:
                m = measure(backend, c, args.requests, params)
                first = first or m
                base = base or m
                print(
                    f"{label:>12} {c:>5} {m['wall']:>8.2f} {m['rps']:>8.2f} {m['tps']:>8.1f} "
                    f"{m['tps'] / first['tps']:>7.2f} {m['tps'] / base['tps']:>7.2f}"
                )
            backend.close()
        print(
            f"loadavg at end={os.getloadavg()[0]:.2f}  (x c=1: vs concurrency 1 on the same servers; "
            "x base: vs the first row)"
        )
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
