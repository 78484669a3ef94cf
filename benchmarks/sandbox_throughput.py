"""Throughput and per-execution overhead of the code sandbox, side by side with a bare subprocess.

Measured in one run, on the same small job (a procedural task's canonical solution and its hidden
tests, or a trivial program):

1. **bare**: ``subprocess.run([python, "-c", CODE])``, the floor any process-based sandbox pays;
2. **bare -I -B**: the same with the flags the sandbox uses;
3. **sandbox, sequential**: ``Sandbox.run_calls`` one after another (fresh temp dir, limits, uid
   drop, network namespace, audit hook, JSON results, cleanup);
4. **sandbox, pool**: the same executions submitted to the worker pool (``--workers``).

It prints executions per second, milliseconds per execution, and the ratios sandbox / bare.

    python benchmarks/sandbox_throughput.py                 # ~30 s on 2 cores
    python benchmarks/sandbox_throughput.py --runs 200 --workers 8
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import machine

from userlm_env.code.procedural import ProceduralCodeTasks
from userlm_env.code.sandbox import Sandbox, SandboxConfig, network_isolation


def _rate(label: str, seconds: float, runs: int) -> dict:
    return {"label": label, "seconds": seconds, "runs": runs, "per_s": runs / seconds, "ms": 1000 * seconds / runs}


def main() -> None:
    """Run the four measurements and print a table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="executions per measurement")
    parser.add_argument("--workers", type=int, default=0, help="sandbox pool size (0 = CPU count)")
    args = parser.parse_args()

    box = Sandbox(SandboxConfig(workers=args.workers))
    tasks = [ProceduralCodeTasks().task_for_seed(seed) for seed in range(args.runs)]
    jobs = [(t.answer, t.metadata["entry_point"], t.metadata["tests"]["cases"]) for t in tasks]
    # the bare baseline runs the same solution and calls, without any isolation
    bare_code = [
        f"{code}\nfor args in {[list(c.args) for c in cases]!r}:\n    {entry}(*args)\n" for code, entry, cases in jobs
    ]
    print(f"machine: {machine()}")
    print(
        f"sandbox: python {box.python}, network isolation {box.network} "
        f"({'unshare -n' if network_isolation() else 'none'}), uid drop {box._drop}, "
        f"workers {box.config.num_workers}, runs {args.runs}"
    )
    box.run_calls(*jobs[0])  # warm the page cache
    subprocess.run([box.python, "-c", "pass"], check=True)

    results = []
    start = time.perf_counter()
    for code in bare_code:
        subprocess.run([box.python, "-c", code], check=True, stdin=subprocess.DEVNULL)
    results.append(_rate("bare python -c", time.perf_counter() - start, args.runs))

    start = time.perf_counter()
    for code in bare_code:
        subprocess.run([box.python, "-I", "-B", "-c", code], check=True, stdin=subprocess.DEVNULL)
    results.append(_rate("bare python -I -B -c", time.perf_counter() - start, args.runs))

    start = time.perf_counter()
    outcomes = [box.run_calls(*job) for job in jobs]
    results.append(_rate("sandbox sequential", time.perf_counter() - start, args.runs))
    assert all(o.passed for o in outcomes), [o for o in outcomes if not o.passed][:1]

    start = time.perf_counter()
    futures = [box.submit("run_calls", *job) for job in jobs]
    outcomes = [f.result() for f in futures]
    results.append(_rate(f"sandbox pool ({box.config.num_workers} workers)", time.perf_counter() - start, args.runs))
    assert all(o.passed for o in outcomes)
    box.close()

    print(f"\n| {'measurement':<32} | exec/s | ms/exec |")
    print(f"|{'-' * 34}|--------|---------|")
    for r in results:
        print(f"| {r['label']:<32} | {r['per_s']:6.1f} | {r['ms']:7.1f} |")
    bare, sequential, pool = results[0], results[2], results[3]
    print(
        f"\nsandbox sequential / bare: {sequential['ms'] / bare['ms']:.2f}x time per execution "
        f"(+{sequential['ms'] - bare['ms']:.1f} ms overhead each)"
    )
    print(f"pool / sequential throughput: {pool['per_s'] / sequential['per_s']:.2f}x")
    print(f"pool throughput / bare sequential: {pool['per_s'] / bare['per_s']:.2f}x")
    print(f"python: {sys.version.split()[0]} (host), sandbox interpreter {box.python}")


if __name__ == "__main__":
    main()
