"""Shared helpers of the benchmark scripts: timing hooks, load average, RSS."""

from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager

CLARIFY = "Could you give me more details about the problem?"
"""The fixed scripted assistant reply: never an answer attempt, so only the user generates."""


def set_threads(threads: int) -> None:
    """Set torch's intra-op threads (0 keeps torch's default).

    On a shared, loaded machine 1 thread is often much faster: with more threads than free cores,
    OpenMP workers spin-wait on each other (measured 10x slower on 2 cores at load average 9).
    """
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def machine() -> str:
    """One line naming the machine and its current load."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        import torch

        threads = f", torch threads {torch.get_num_threads()}"
    except ImportError:
        threads = ""
    return f"{platform.machine()}, {os.cpu_count()} cores{threads}, loadavg (1/5/15 min) {load}"


class Timer:
    """Accumulates wall time spent inside wrapped callables."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn):
        """``fn`` with its wall time added to this timer."""

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed


@contextmanager
def hooked(obj, name: str, timer: Timer):
    """Time every call of ``obj.name`` (an instance attribute shadowing the method) inside the block."""
    original = getattr(obj, name)
    setattr(obj, name, timer.wrap(original))
    try:
        yield timer
    finally:
        try:
            delattr(obj, name)
        except AttributeError:
            setattr(obj, name, original)


def rss_mb() -> float:
    """Current resident set size in MB (``VmRSS`` of ``/proc/self/status``; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """Peak resident set size in MB (``ru_maxrss``, KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prompted_user_requests(model: str, n: int, seed: int = 0):
    """``(user, requests)``: a prompted user on ``model`` and ``n`` of its real generation requests.

    The requests rephrase shards of the default math tasks (``n`` tasks, seeds ``seed..``), with the
    prompts, seeds and sampling the user itself would use.
    """
    import gymnasium as gym

    import userlm_env  # noqa: F401  (registers UserLM-Math-v0)
    from userlm_env.backends.base import GenerationRequest
    from userlm_env.users import make_user

    user = make_user(f"prompted:{model}")
    env = gym.make("UserLM-Math-v0", user="replay").unwrapped
    requests = []
    while len(requests) < n:
        env.reset(seed=seed + len(requests))
        shard = env.task.shards[len(requests) % len(env.task.shards)]
        requests.append(GenerationRequest(user._prompt(shard.text), seed=seed + len(requests)))
    return user, requests
