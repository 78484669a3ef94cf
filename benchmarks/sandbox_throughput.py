"""Throughput and per-execution cost of the code sandbox, side by side with a bare subprocess.

Measured in one run, interleaved in rounds (so a change of the machine's load hits every
measurement alike), on the same small jobs (procedural tasks' canonical solutions and their hidden
tests, 7-9 calls each):

1. **bare**: ``subprocess.run([python, "-c", CODE])`` (the sandbox's interpreter, no isolation),
   the floor any process-based sandbox pays;
2. **sandbox (bwrap)**: ``Sandbox.run_calls`` with bubblewrap (mount/pid/net/ipc/uts namespaces,
   private /tmp and /dev/shm), uid drop, rlimits, audit hook, one request per test over pipes;
3. **sandbox (fallback)**: the same without bubblewrap (temp dir, ``unshare -n``, uid drop...);

each **sequential** (one after another) and **pool** (submitted to the worker pool). It prints
executions per second, milliseconds per execution, the cost ratio to bare python, and the load
average before and after.

    python benchmarks/sandbox_throughput.py                 # ~1 min on 2 busy cores
    python benchmarks/sandbox_throughput.py --runs 200 --workers 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from _common import machine

from userlm_env.code.procedural import ProceduralCodeTasks
from userlm_env.code.sandbox import Sandbox, SandboxConfig


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    """Run the measurements in interleaved rounds and print a table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="executions per measurement (split in rounds)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--workers", type=int, default=0, help="sandbox pool size (0 = CPU count)")
    args = parser.parse_args()

    boxes = {
        "bwrap": Sandbox(SandboxConfig(workers=args.workers, isolation="bwrap")),
        "fallback": Sandbox(SandboxConfig(workers=args.workers, isolation="fallback")),
    }
    python = boxes["bwrap"].python
    per_round = max(1, args.runs // args.rounds)
    tasks = [ProceduralCodeTasks().task_for_seed(seed) for seed in range(per_round)]
    jobs = [(t.answer, t.metadata["entry_point"], t.metadata["tests"]["cases"]) for t in tasks]
    bare_code = [
        f"{code}\nfor args in {[list(c.args) for c in cases]!r}:\n    {entry}(*args)\n" for code, entry, cases in jobs
    ]
    print(f"machine: {machine()}")
    for name, box in boxes.items():
        print(
            f"sandbox ({name}): isolation {box.isolation}, python {box.python}, network {box.network}, "
            f"uid drop {box._drop}, workers {box.config.num_workers}"
        )
    print(f"{per_round} executions x {args.rounds} rounds per measurement; load before: {_load()}")
    for box in boxes.values():  # warm the page cache and the probes
        assert box.run_calls(*jobs[0]).passed
    subprocess.run([python, "-c", "pass"], check=True)

    def bare() -> None:
        for code in bare_code:
            subprocess.run([python, "-c", code], check=True, stdin=subprocess.DEVNULL)

    def sequential(box: Sandbox):
        def run() -> None:
            outcomes = [box.run_calls(*job) for job in jobs]
            assert all(o.passed for o in outcomes), [o for o in outcomes if not o.passed][:1]

        return run

    def pool(box: Sandbox):
        def run() -> None:
            outcomes = [f.result() for f in [box.submit("run_calls", *job) for job in jobs]]
            assert all(o.passed for o in outcomes), [o for o in outcomes if not o.passed][:1]

        return run

    workers = boxes["bwrap"].config.num_workers
    measurements = {
        "bare python -c": bare,
        "sandbox (bwrap), sequential": sequential(boxes["bwrap"]),
        "sandbox (fallback), sequential": sequential(boxes["fallback"]),
        f"sandbox (bwrap), pool of {workers}": pool(boxes["bwrap"]),
        f"sandbox (fallback), pool of {workers}": pool(boxes["fallback"]),
    }
    times: dict[str, list[float]] = {name: [] for name in measurements}
    loads = []
    for _ in range(args.rounds):
        for name, run in measurements.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / per_round)
        loads.append(os.getloadavg()[0])
    for box in boxes.values():
        box.close()

    ms = {name: 1000 * statistics.median(values) for name, values in times.items()}
    base = ms["bare python -c"]
    spreads = {name: " ".join(f"{1000 * t:.1f}" for t in values) for name, values in times.items()}
    width = max(len("rounds (ms)"), *(len(v) for v in spreads.values()))
    print(f"\n| {'measurement':<32} | exec/s | ms/exec | vs bare | {'rounds (ms)':<{width}} |")
    print(f"|{'-' * 34}|--------|---------|---------|{'-' * (width + 2)}|")
    for name, value in ms.items():
        print(f"| {name:<32} | {1000 / value:6.1f} | {value:7.1f} | {value / base:6.2f}x | {spreads[name]:<{width}} |")
    print(
        f"\nper-execution cost vs bare python: bwrap {ms['sandbox (bwrap), sequential'] / base:.2f}x "
        f"(+{ms['sandbox (bwrap), sequential'] - base:.1f} ms), fallback "
        f"{ms['sandbox (fallback), sequential'] / base:.2f}x (+{ms['sandbox (fallback), sequential'] - base:.1f} ms)"
    )
    print(f"1-min load average per round: {', '.join(f'{x:.2f}' for x in loads)}; after: {_load()}")
    print(f"python: {sys.version.split()[0]} (host), sandbox interpreter {python}")


if __name__ == "__main__":
    main()
