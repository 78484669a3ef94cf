"""Sandboxed execution of untrusted Python code (the assistant's solutions) against hidden tests.

Threat model: the code is written by an RL policy, an adversary that gains reward by being graded
correct. It may try to forge its grade, hang or exhaust the host, or read the hidden tests.

**What is trusted.** Only the host (this module, in the trainer's process): it chooses the tests'
order, sends the inputs, reads the answers and compares them with the expected values, which never
leave the host. **What is not.** Everything in the sandboxed process: the runner (``_runner.py``)
shares its interpreter with the candidate, which can walk frames (``sys._getframe``), scan
``gc.get_objects()``, monkeypatch the encoder, write raw bytes to any inherited fd and exit at will.

**Why a forged result cannot gain anything (call tests).** The host sends ONE test at a time, in
a random order chosen by the host, as ``(token, args)`` with a fresh random token and no test index;
it sends the next request only after it has read the answer to the current one, so a future input
is never inside the sandbox. Each answer must carry the pending request's token and is matched to
the test the host sent: an answer is thus always a function of the inputs seen so far, i.e. it is
just "a return value", whoever wrote the bytes. A frame with another token (a guessed future, a
replayed past), a second answer, an extra or malformed frame, or anything after the last answer
is a protocol violation: the whole run fails (``error_type="forbidden"``, 0 tests passed). Missing
answers (exit, crash, timeout) are failures. Return values cross as JSON of EXACT built-in types
(tagged tuples, sets, dicts; bounded depth, size and int digits) decoded by a bounded decoder that
never raises and never calls code; a subclass or any other object is ``wrong_output``, so an
always-equal object or a rewritten ``repr`` has nothing to act on. Comparisons
(:func:`values_equal`) never raise: any problem is a failed test.

HumanEval ``check(candidate)`` tests (``run_script``) must run in the candidate's process: they
are NOT safe against an adversary (it can forge every event). The host at least requires a ``done``
event, no failed assert and one event for every assert written directly in ``check``, so a forged
"done" followed by ``os._exit`` alone no longer passes. Prefer call tests for RL.

**Isolation** (``SandboxConfig.isolation``): with **bubblewrap** (``bwrap``, probed once, see
:func:`bubblewrap`), each execution gets fresh mount, pid, network, ipc and uts namespaces: the
system read-only (``/usr`` and the ``/lib*``, ``/bin`` links, ``/etc/ld.so.cache``), a private
empty size-capped ``/tmp`` (the working directory) and ``/dev/shm``, a minimal ``/dev`` and
``/proc``, no view of the project, the data or task files, ``/work``, ``/root`` or ``/home``; it
dies with its parent and runs in a new session. Everything it wrote vanishes with the namespace.
The second layer, always on and the **fallback** where bubblewrap cannot run (with a one-time
warning): a new process group, a scrubbed environment, ``python -I -B``, rlimits (CPU, address
space, file size, processes, open files, no core), as root a drop to an unprivileged uid of
``base_uid ..`` held under a machine-wide lock (``RLIMIT_NPROC`` does not bind root), a network
namespace via ``unshare -n`` where possible, the Python audit-hook guard (``python_guard``), and
after the run: the group and every process of that uid killed, the temp dir and every file that uid
left in ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/run/lock`` removed (best effort: see the README section).

**Bounded host.** The host never opens a path the sandbox can touch: the job, requests, results,
stdout and stderr all travel through pipes the host created. Every read is capped in bytes
(``max_value_bytes`` per result frame, ``max_output_chars`` kept of stdout/stderr, whose total is
capped at ``file_size_mb`` before the run is killed as ``output_limit``), all I/O is non-blocking
under one wall-clock deadline per execution (``poll``), after which the group is killed. No exception
from grading escapes :class:`Sandbox`: an internal failure is a result with ``error_type="sandbox"``.
"""

from __future__ import annotations

import ast
import errno
import fcntl
import json
import marshal
import math
import os
import queue
import random
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ERROR_TYPES",
    "ExecutionResult",
    "Sandbox",
    "SandboxConfig",
    "TestCase",
    "bubblewrap",
    "default_sandbox",
    "network_isolation",
    "values_equal",
]

RUNNER = Path(__file__).with_name("_runner.py")
BOOTSTRAP = (
    "import marshal, os, sys\n"
    "def _read(size, fd=int(sys.argv[1])):\n"
    "    data = b''\n"
    "    while len(data) < size:\n"
    "        chunk = os.read(fd, size - len(data))\n"
    "        if not chunk:\n"
    "            raise SystemExit(3)\n"
    "        data += chunk\n"
    "    return data\n"
    "exec(marshal.loads(_read(int.from_bytes(_read(4), 'big'))))\n"
)
"""The ``python -c`` program of every run: it executes the runner the host sends as the first frame."""
ERROR_TYPES = (
    "syntax",
    "missing_function",
    "assertion",
    "wrong_output",
    "runtime",
    "timeout",
    "memory",
    "output_limit",
    "forbidden",
    "killed",
    "sandbox",
)
"""Values of :attr:`ExecutionResult.error_type` (``None`` when every test passed)."""

_CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
_UID_LOCK_DIR = "/tmp/userlm-sandbox-uids"
_SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # world-writable: fallback runs are cleaned here
_BWRAP_WORKDIR = "/tmp"
_FRAME_OVERHEAD = 4096  # token, kind, error text around a result value
_MAX_DEPTH = 100  # as _runner.MAX_DEPTH
_MAX_INT_DIGITS = 4000  # _runner.MAX_INT_BITS is ~3900 digits
_CHUNK = 65536


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation options of the sandbox.

    Attributes:
        timeout_s: wall-clock limit of one execution (LiC uses 6 s), enforced by the host: the
            whole group is killed at the deadline, whatever the code does.
        cpu_time_s: CPU-seconds limit (``None``: ``ceil(timeout_s)``).
        memory_mb: address-space limit of the process (``RLIMIT_AS``).
        file_size_mb: largest file the code may write (``RLIMIT_FSIZE``), and the most bytes of
            stdout + stderr the host drains before it kills the run as ``output_limit``.
        max_processes: processes + threads of the sandbox uid (``RLIMIT_NPROC``; binds only non-root).
        max_open_files: open file descriptors (``RLIMIT_NOFILE``).
        max_output_chars: stdout/stderr characters kept in the result.
        max_value_bytes: largest encoded return value (a larger one is ``wrong_output``; a larger
            result frame from a tampered runner is a protocol violation).
        tmpfs_mb: size of the private ``/tmp`` (the working directory) and ``/dev/shm`` each
            (bubblewrap only; their pages are host memory while the run lasts).
        workers: executions that may run at once (``0``: the number of CPUs).
        isolation: ``"auto"`` (bubblewrap when it works here, else the fallback with a one-time
            warning), ``"bwrap"`` (require bubblewrap; error if it cannot run) or ``"fallback"``
            (process group, rlimits, uid drop, ``unshare -n`` and the guard only).
        network: fallback mode only (bubblewrap always unshares the network): ``"auto"``
            (namespace if the machine allows it, else the Python guard only), ``"namespace"``
            (require a network namespace; error if impossible) or ``"guard"``.
        python_guard: install the audit-hook guard (see the module docstring).
        drop_privileges: run as an unprivileged uid of ``base_uid .. base_uid + uid_range - 1``
            (``None``: when the host runs as root).
        base_uid: first uid (and gid) of the range; pick a range no one else on the machine uses.
        uid_range: how many uids the range holds. Each execution holds an exclusive file lock on
            its uid (``/tmp/userlm-sandbox-uids/<uid>.lock``), so sandboxes in other processes
            (or other ``Sandbox`` objects) never run code, or clean up, under the same uid at once.
        python: the interpreter that runs the code (``None``: with bubblewrap ``/usr/bin/python3``
            (or ``/usr/local/bin/python3``); in the fallback this one, or when privileges are
            dropped and the unprivileged uid cannot read this interpreter's files, e.g. a pyenv under
            a 0700 ``/root``, the first usable of ``python3`` on ``PATH``, ``/usr/bin/python3``,
            ``/usr/local/bin/python3``; see :func:`usable_python`).
        tmp_root: where the fallback's per-execution directories are made (``None``: the system temp dir).
    """

    timeout_s: float = 6.0
    cpu_time_s: float | None = None
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_processes: int = 32
    max_open_files: int = 64
    max_output_chars: int = 2000
    max_value_bytes: int = 1 << 20
    tmpfs_mb: int = 64
    workers: int = 0
    isolation: Literal["auto", "bwrap", "fallback"] = "auto"
    network: Literal["auto", "namespace", "guard"] = "auto"
    python_guard: bool = True
    drop_privileges: bool | None = None
    base_uid: int = 61000
    uid_range: int = 256
    python: str | None = None
    tmp_root: str | None = None

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")
        if self.cpu_time_s is not None and not self.cpu_time_s > 0:
            raise ValueError(f"cpu_time_s must be > 0 or None, got {self.cpu_time_s!r}")
        for name in (
            "memory_mb",
            "file_size_mb",
            "max_processes",
            "max_open_files",
            "max_output_chars",
            "max_value_bytes",
            "tmpfs_mb",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_open_files < 16:
            raise ValueError(f"max_open_files must be >= 16 (Python needs a few), got {self.max_open_files}")
        if self.uid_range < 1 or self.base_uid < 1000:
            raise ValueError(f"need base_uid >= 1000 and uid_range >= 1, got {self.base_uid} and {self.uid_range}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = number of CPUs), got {self.workers}")
        if self.isolation not in ("auto", "bwrap", "fallback"):
            raise ValueError(f"isolation must be 'auto', 'bwrap' or 'fallback', got {self.isolation!r}")
        if self.network not in ("auto", "namespace", "guard"):
            raise ValueError(f"network must be 'auto', 'namespace' or 'guard', got {self.network!r}")
        if self.drop_privileges and os.geteuid() != 0:
            raise ValueError("drop_privileges=True needs root (set it to None or False)")
        if self.network == "namespace" and self.isolation == "fallback" and network_isolation() is None:
            raise ValueError("network='namespace' but this machine cannot create network namespaces; use 'auto'")

    @property
    def num_workers(self) -> int:
        """Concurrent executions (``workers`` or the CPU count)."""
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class TestCase:
    """One hidden call test: ``entry_point(*args)`` must equal ``expected``.

    Attributes:
        args: positional arguments (plain values: None, bool, int, float, str, bytes, and lists,
            tuples, dicts, sets of them); each call gets fresh copies.
        expected: the expected return value (compared in the host by :func:`values_equal`).
    """

    __test__ = False  # not a pytest test class

    args: tuple
    expected: Any


@dataclass(frozen=True)
class ExecutionResult:
    """Outcome of one sandboxed execution.

    Attributes:
        passed: the code compiled, defined the entry point and every test passed.
        tests_passed: tests that passed (``None`` when not measurable, e.g. a program).
        tests_failed: tests that failed or never ran because the run was cut short.
        tests_total: tests the task has (``None`` for HumanEval scripts, counted as they run).
        error_type: one of :data:`ERROR_TYPES`, ``None`` when passed.
        error: a short message (exception type and text, signal, limit, protocol violation).
        stdout: the code's stdout, cut to ``max_output_chars``.
        stderr: the code's stderr, cut to ``max_output_chars``.
        seconds: wall time of the execution (start to cleanup).
        returncode: the exit status (negative = killed by that signal).
        network: the network isolation used (``"namespace"`` or ``"guard"`` or ``"none"``).
        isolation: ``"bwrap"`` or ``"fallback"`` (see :class:`SandboxConfig`).
        details: ``failed_tests`` (indices into the task's tests) for call tests.
    """

    passed: bool
    tests_passed: int | None = None
    tests_failed: int | None = None
    tests_total: int | None = None
    error_type: str | None = None
    error: str | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    returncode: int | None = None
    network: str = "none"
    isolation: str = "fallback"
    details: dict[str, Any] = field(default_factory=dict, compare=False)


# --------------------------------------------------------------------------- host-side values


class _Invalid:
    """The decoded form of a value that is not well-formed plain data (never equal to anything)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"<invalid value: {self.reason}>"


class _DecodeError(Exception):
    pass


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS + 1:
        raise _DecodeError("int literal too long")
    return int(text)


def _reject_constant(name: str) -> Any:
    raise _DecodeError(f"bare {name} in a result")


def _load_json(data: bytes | str) -> Any:
    """``json.loads`` with bounded ints and no NaN/Infinity tokens; raises on anything else."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, parse_int=_parse_int, parse_constant=_reject_constant)


_SCALARS = (type(None), bool, int, float, str)


def _from_wire(node: Any, deadline: float | None = None) -> Any:
    """Rebuild a plain value from its JSON wire form, or an :class:`_Invalid`; never raises."""
    try:
        counter = [0]
        return _rebuild(node, 0, counter, deadline)
    except _DecodeError as err:
        return _Invalid(str(err))
    except Exception as err:  # noqa: BLE001 - unhashable keys, MemoryError, RecursionError...
        return _Invalid(f"{type(err).__name__} while decoding")


def _rebuild(node: Any, depth: int, counter: list[int], deadline: float | None) -> Any:
    if type(node) in _SCALARS:
        return node
    if depth >= _MAX_DEPTH or type(node) is not list or not node or type(node[0]) is not str:
        raise _DecodeError("not a wire value" if depth < _MAX_DEPTH else "nested too deeply")
    counter[0] += len(node)
    if deadline is not None and counter[0] > 4096:
        counter[0] = 0
        if time.monotonic() > deadline:
            raise _DecodeError("decoding took too long")
    tag, rest = node[0], node[1:]
    if tag in ("l", "t", "s", "f"):
        items = [_rebuild(x, depth + 1, counter, deadline) for x in rest]
        if tag == "l":
            return items
        if tag == "t":
            return tuple(items)
        return _hashed(set if tag == "s" else frozenset, items, deadline)
    if tag == "d":
        if len(rest) % 2:
            raise _DecodeError("odd dict")
        keys = [_rebuild(x, depth + 1, counter, deadline) for x in rest[0::2]]
        values = [_rebuild(x, depth + 1, counter, deadline) for x in rest[1::2]]
        out: dict[Any, Any] = {}
        for i, (key, value) in enumerate(zip(keys, values)):
            if i % 256 == 255 and deadline is not None and time.monotonic() > deadline:
                raise _DecodeError("decoding took too long")
            out[key] = value
        if len(out) != len(keys):
            raise _DecodeError("duplicate dict keys")
        return out
    if tag == "x" and len(rest) == 1 and rest[0] in ("nan", "inf", "-inf"):
        return float(rest[0])
    if tag == "b" and len(rest) == 1 and type(rest[0]) is str:
        return bytes.fromhex(rest[0])
    raise _DecodeError(f"unknown tag {tag[:10]!r}")


def _hashed(kind: type, items: list[Any], deadline: float | None) -> Any:
    out: set[Any] = set()
    for i, item in enumerate(items):
        if i % 256 == 255 and deadline is not None and time.monotonic() > deadline:
            raise _DecodeError("decoding took too long")
        out.add(item)
    if len(out) != len(items):
        raise _DecodeError("duplicate set items")
    return out if kind is set else frozenset(out)


def decode_value(data: bytes, max_bytes: int = 1 << 20, deadline: float | None = None) -> Any:
    """Decode one wire value (UTF-8 JSON, see ``_runner.py``) into plain data; never raises.

    Returns:
        the value (exact built-in types only), or an invalid marker that equals nothing.
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) > max_bytes:
        return _Invalid("too large or not bytes")
    try:
        node = _load_json(bytes(data))
    except Exception as err:  # noqa: BLE001 - ValueError, RecursionError, MemoryError...
        return _Invalid(f"undecodable ({type(err).__name__})")
    return _from_wire(node, deadline)


@lru_cache(maxsize=1)
def _runner_module() -> Any:
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("_userlm_sandbox_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jsonify(value: Any, max_bytes: int = 1 << 20) -> Any:
    """What ``value`` becomes when a sandboxed function returns it: plain data, or an invalid marker.

    The runner's strict encoder, then the host's decoder (kept under this name for the tests).
    """
    try:
        text = _runner_module().encode_value(value, max_bytes)
    except Exception as err:  # noqa: BLE001 - _Reject and anything else
        return _Invalid(str(err)[:200])
    return decode_value(text.encode("utf-8"), max_bytes + _FRAME_OVERHEAD)


def values_equal(actual: Any, expected: Any) -> bool:
    """Whether a returned (decoded) value equals an expected value; never raises.

    Rules: exact built-in types only on the returned side (a subclass or an invalid value equals
    nothing); a tuple equals the list of the same items; ints compare exactly; a float and a number
    match within ``math.isclose(rel_tol=1e-6, abs_tol=1e-9)`` (NaN equals NaN; an int too large for
    a float equals no float); a bool never equals an int; dicts and sets compare by their items.
    """
    try:
        return _equal(actual, expected, 0)
    except Exception:  # noqa: BLE001 - RecursionError, MemoryError, a hostile expected value...
        return False


def _equal(a: Any, b: Any, depth: int) -> bool:
    if depth > 2 * _MAX_DEPTH:
        return False
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a is b
    if ta in (int, float) and isinstance(b, (int, float)):
        if ta is int and tb is int:
            return a == b
        return _numbers_close(a, b)
    if ta in (list, tuple):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        return all(_equal(x, y, depth + 1) for x, y in zip(a, b))
    if ta is dict:
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for key, value in b.items():
            if key not in a or not _equal(a[key], value, depth + 1):
                return False
        return True
    if ta in (set, frozenset):
        return isinstance(b, (set, frozenset)) and len(a) == len(b) and all(x in a for x in b)
    if ta in (str, bytes, type(None)):
        return isinstance(b, ta) and a == b
    return False  # an invalid marker or anything that is not plain data


def _numbers_close(a: Any, b: Any) -> bool:
    try:
        x, y = float(a), float(b)
    except (OverflowError, TypeError, ValueError):
        return False
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)


# --------------------------------------------------------------------------- probes


@lru_cache(maxsize=8)
def usable_python(uid: int | None) -> str:
    """An interpreter that ``uid`` can run with its standard library (``sys.executable`` first).

    Raises:
        RuntimeError: no candidate can import ``json`` and ``collections`` as that uid.
    """
    if uid is None:
        return sys.executable
    candidates = [sys.executable, getattr(sys, "_base_executable", ""), shutil.which("python3") or ""]
    candidates += ["/usr/bin/python3", "/usr/local/bin/python3"]
    tried = []
    for candidate in dict.fromkeys(c for c in candidates if c):
        try:
            done = subprocess.run(
                [candidate, "-I", "-B", "-c", "import json, collections, socket, math, marshal, resource"],
                user=uid,
                group=uid,
                extra_groups=[],
                capture_output=True,
                timeout=20,
                stdin=subprocess.DEVNULL,
                cwd="/",
                env={"PATH": _CLEAN_PATH},
            )
        except (OSError, subprocess.SubprocessError) as err:
            tried.append(f"{candidate}: {err}")
            continue
        if done.returncode == 0:
            return candidate
        tried.append(f"{candidate}: {done.stderr.decode(errors='replace').strip()[-120:]}")
    raise RuntimeError(
        f"no Python interpreter is usable by the sandbox uid {uid} (tried: {'; '.join(tried)}); "
        "pass SandboxConfig(python=...) with an interpreter outside private directories, or drop_privileges=False"
    )


@lru_cache(maxsize=1)
def network_isolation() -> list[str] | None:
    """The command prefix that runs a program in a fresh network namespace, or ``None``.

    Probes ``unshare -n`` (root or ``CAP_SYS_ADMIN``) and then ``unshare -r -n`` (an unprivileged
    user namespace); the first that runs ``true`` successfully wins. Cached per process.
    """
    tool = shutil.which("unshare")
    if tool is None:
        return None
    candidates = [[tool, "-n", "--"]] if os.geteuid() == 0 else []
    candidates.append([tool, "-r", "-n", "--"])
    for prefix in candidates:
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return prefix
    return None


def _bwrap_prefix(tool: str, tmpfs_bytes: int) -> list[str]:
    """The bubblewrap command line up to (not including) the program."""
    args = [
        tool,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    args += ["--dev", "/dev", "--proc", "/proc"]
    args += ["--size", str(tmpfs_bytes), "--tmpfs", "/tmp", "--size", str(tmpfs_bytes), "--tmpfs", "/dev/shm"]
    args += ["--chdir", _BWRAP_WORKDIR]
    return args


def _bwrap_python(configured: str | None) -> str | None:
    """The interpreter to run inside bubblewrap: it must live under the read-only system dirs."""
    for candidate in [configured] if configured else ["/usr/bin/python3", "/usr/local/bin/python3"]:
        real = os.path.realpath(candidate)
        if real.startswith("/usr/") and os.access(real, os.X_OK):
            return candidate
    return None


@lru_cache(maxsize=8)
def _probe_bwrap(python: str, uid: int | None) -> str | None:
    """``None`` when bubblewrap runs ``python`` here (dropping to ``uid`` inside), else why not."""
    tool = shutil.which("bwrap")
    if tool is None:
        return "bwrap is not installed (Debian package 'bubblewrap', scripts/install_bubblewrap.sh)"
    script = "import marshal, resource, os\n"
    if uid is not None:
        script += f"os.chown('/tmp', {uid}, {uid}); os.setgroups([]); os.setgid({uid}); os.setuid({uid})\n"
    script += "open('/tmp/probe', 'w').write('ok')\nassert not os.path.exists('/work') and not os.path.exists('/root')"
    try:
        done = subprocess.run(
            [*_bwrap_prefix(tool, 1 << 20), python, "-I", "-B", "-c", script],
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            env={"PATH": _CLEAN_PATH, "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.SubprocessError) as err:
        return f"bwrap failed to start: {err}"
    if done.returncode != 0:
        return f"bwrap exited with {done.returncode}: {done.stderr.decode(errors='replace').strip()[-200:]}"
    return None


def bubblewrap(python: str | None = None, uid: int | None = None) -> str | None:
    """The ``bwrap`` path when bubblewrap can run the sandbox here (probed once per interpreter/uid), else None."""
    interpreter = _bwrap_python(python)
    if interpreter is None or _probe_bwrap(interpreter, uid) is not None:
        return None
    return shutil.which("bwrap")


_FALLBACK_WARNED = False
_FALLBACK_LOCK = threading.Lock()


def _warn_fallback(reason: str) -> None:
    global _FALLBACK_WARNED
    with _FALLBACK_LOCK:
        if _FALLBACK_WARNED:
            return
        _FALLBACK_WARNED = True
    warnings.warn(
        f"code sandbox: bubblewrap is unavailable ({reason}); falling back to rlimits, uid drop and the Python "
        "guard only (weaker: the project and world-readable files are visible, /tmp and /dev/shm are shared). "
        "Install it with scripts/install_bubblewrap.sh.",
        RuntimeWarning,
        stacklevel=3,
    )


@lru_cache(maxsize=8)
def _bytecode_magic(python: str) -> bytes | None:
    """The bytecode magic number of ``python`` (``None`` if it cannot be asked)."""
    script = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    try:
        done = subprocess.run(
            [python, "-I", "-B", "-c", script],
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            env={"PATH": _CLEAN_PATH},
        )
        return bytes.fromhex(done.stdout.decode()) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


@lru_cache(maxsize=8)
def _runner_payload(python: str) -> bytes:
    """The first frame of a run: the runner compiled here when ``python`` shares our bytecode, else its source."""
    import importlib.util  # noqa: PLC0415

    source = RUNNER.read_text(encoding="utf-8")
    if _bytecode_magic(python) == importlib.util.MAGIC_NUMBER:
        return marshal.dumps(compile(source, "<sandbox runner>", "exec", dont_inherit=True, optimize=0))
    return marshal.dumps(source)


# --------------------------------------------------------------------------- the protocol (pure, no I/O)


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _required_asserts(instrumented: str) -> tuple[frozenset[int], bool]:
    """(indices of the asserts written directly in ``check``'s body, whether it has any at all)."""
    try:
        tree = ast.parse(instrumented)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset(), False

    def index_of(node: ast.AST) -> int | None:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__sbx_assert"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and type(node.args[0].value) is int
        ):
            return node.args[0].value
        return None

    direct: set[int] = set()
    anywhere = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            for stmt in node.body:
                if isinstance(stmt, ast.Expr) and index_of(stmt.value) is not None:
                    direct.add(index_of(stmt.value))
            anywhere = any(index_of(n) is not None for n in ast.walk(node))
    return frozenset(direct), anywhere


@dataclass
class _CallOutcome:
    ok: bool
    kind: str  # "value", "raised", "invalid"
    type_name: str = ""
    message: str = ""


class _Protocol:
    """The host's side of one execution's conversation with the runner (no I/O, never raises).

    The I/O loop moves bytes: :meth:`take_output` gives what to write to the request pipe,
    :meth:`feed` takes what was read from the result pipe. Every frame the runner sends must answer
    the one pending request (same token); see the module docstring.
    """

    def __init__(
        self,
        job: dict[str, Any],
        tests: list[TestCase] | None,
        max_value_bytes: int,
        test_code: str | None = None,
        rng: random.Random | None = None,
        runner: bytes | None = None,
    ):
        self.mode = job["mode"]
        self.tests = tests
        self.max_frame = max_value_bytes + _FRAME_OVERHEAD
        self.deadline: float | None = None
        self._out = bytearray()
        self._buf = bytearray()
        self._token = secrets.token_hex(16)
        self._queue: list[tuple[int | None, str, bytes]] = []  # (test index, token, frame) not yet sent
        self.state = "start"
        self.violation: str | None = None
        self.error: tuple[str, str, str] | None = None  # (stage, type, message)
        self.done = False
        self.outcomes: dict[int, _CallOutcome] = {}
        self.asserts: list[tuple[int, bool, str, str]] = []
        self.required: frozenset[int] = frozenset()
        self.any_asserts = False
        self._pending_index: int | None = None
        if runner is not None:
            self._out += _frame(runner)
        self._out += _frame(marshal.dumps(("job", self._token, {**job, "token": self._token})))
        if self.mode == "calls":
            order = list(range(len(tests or [])))
            (rng or random.SystemRandom()).shuffle(order)
            for index in order:
                token = secrets.token_hex(16)
                self._queue.append((index, token, _frame(marshal.dumps(("call", token, tuple(tests[index].args))))))
        elif self.mode == "script":
            token = secrets.token_hex(16)
            self._queue.append((None, token, _frame(marshal.dumps(("check", token, test_code or "")))))
            self.required, self.any_asserts = _required_asserts(test_code or "")

    # ------------------------------------------------------------------ bytes in and out
    def take_output(self) -> bytes:
        """Bytes to write to the request pipe, in order after those taken before (taken once)."""
        data, self._out = bytes(self._out), bytearray()
        return data

    @property
    def complete(self) -> bool:
        """Every expected frame arrived (or the run failed in a way no later frame can change)."""
        return self.state in ("complete", "violation")

    def feed(self, data: bytes) -> None:
        """Consume bytes read from the result pipe (bounded buffering; never raises)."""
        if self.state == "violation" or not data:
            return
        try:
            self._buf += data
            while self.state != "violation" and len(self._buf) >= 4:
                size = int.from_bytes(self._buf[:4], "big")
                if size == 0 or size > self.max_frame:
                    self._violate(f"a result frame of {size} bytes (limit {self.max_frame})")
                    return
                if len(self._buf) < 4 + size:
                    return
                payload = bytes(self._buf[4 : 4 + size])
                del self._buf[: 4 + size]
                self._handle(payload)
        except Exception as err:  # noqa: BLE001 - MemoryError; never let a frame raise
            self._violate(f"unreadable result ({type(err).__name__})")

    def eof(self) -> None:
        """The result pipe closed: a partial frame left in the buffer is a violation."""
        if self._buf and self.state != "violation":
            self._violate("a truncated result frame")

    # ------------------------------------------------------------------ frames
    def _violate(self, why: str) -> None:
        self.state = "violation"
        self.violation = why
        self._buf = bytearray()
        self._out = bytearray()

    def _send_next(self) -> None:
        if self._queue:
            index, token, frame = self._queue.pop(0)
            self._pending_index, self._token = index, token
            self._out += frame
        else:
            self._out += _frame(marshal.dumps(("end", "", None)))
            self.state = "complete"

    def _handle(self, payload: bytes) -> None:
        try:
            msg = _load_json(payload)
        except Exception:  # noqa: BLE001
            self._violate("a malformed result frame")
            return
        if type(msg) is not list or len(msg) < 2 or type(msg[0]) is not str or type(msg[1]) is not str:
            self._violate("a malformed result frame")
            return
        if self.state == "complete":
            self._violate("a result after the last expected one")
            return
        if msg[0] != self._token:
            self._violate("a result that does not answer the pending request")
            return
        kind, rest = msg[1], msg[2:]
        if kind == "error" and len(rest) == 3 and all(type(x) is str for x in rest):
            if self.state == "start" or (self.state == "serving" and self.mode == "script"):
                self.error = (rest[0][:20], rest[1][:100], rest[2][:500])
                self.state = "complete"
                return
        elif self.state == "start":
            if kind == "done" and self.mode == "program" and not rest:
                self.done = True
                self.state = "complete"
                return
            if kind == "ready" and self.mode in ("calls", "script") and not rest:
                self.state = "serving"
                self._send_next()  # script mode: the one "check" request stays pending until "done"
                return
        elif self.mode == "calls" and self.state == "serving":
            outcome = self._call_outcome(kind, rest)
            if outcome is not None:
                self.outcomes[self._pending_index] = outcome
                self._send_next()
                return
        elif self.mode == "script" and self.state == "serving":
            if kind == "done" and not rest:
                self.done = True
                self.state = "complete"
                return
            if (
                kind == "assert"
                and len(rest) == 4
                and type(rest[0]) is int
                and type(rest[1]) is bool
                and all(x is None or type(x) is str for x in rest[2:])
            ):
                self.asserts.append((rest[0], rest[1], (rest[2] or "")[:100], (rest[3] or "")[:300]))
                return
        self._violate(f"an unexpected {kind[:20]!r} result")

    def _call_outcome(self, kind: str, rest: list[Any]) -> _CallOutcome | None:
        expected = self.tests[self._pending_index].expected
        if kind == "value" and len(rest) == 1:
            value = _from_wire(rest[0], self.deadline)
            if isinstance(value, _Invalid):
                return _CallOutcome(False, "invalid", message=f"the return value is not plain data ({value.reason})")
            return _CallOutcome(values_equal(value, expected), "value")
        if kind == "raised" and len(rest) == 2 and all(type(x) is str for x in rest):
            return _CallOutcome(False, "raised", rest[0][:100], rest[1][:300])
        if kind == "invalid" and len(rest) == 1 and type(rest[0]) is str:
            return _CallOutcome(False, "invalid", message=rest[0][:300])
        return None


# --------------------------------------------------------------------------- host I/O helpers


def _set_nonblocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


class _Capture:
    """A bounded sink for stdout or stderr: keeps the head, counts the rest."""

    def __init__(self, keep: int):
        self.keep = keep
        self.head = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]

    def text(self, limit: int) -> str:
        text = bytes(self.head).decode("utf-8", "replace")
        if len(text) > limit or self.total > len(self.head):
            return text[:limit] + "\n...[truncated]"
        return text


def _processes_of(uid: int) -> list[tuple[int, bool]]:
    """``(pid, is_zombie)`` of every process owned by ``uid``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                with open(f"/proc/{name}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            found.append((int(name), state == b"Z"))
    return found


def _kill_uid(uid: int, rounds: int = 50, reap_wait_s: float = 5.0) -> int:
    """SIGKILL every process owned by ``uid`` and wait until their zombies are reaped.

    Several rounds, because a fork bomb forks while it dies. Orphans are reparented to init, which
    reaps them after a moment; zombies still count against ``RLIMIT_NPROC`` of the uid, so the
    slot is only handed back once they are gone (at most ``reap_wait_s``).
    """
    killed = 0
    deadline = None
    for _ in range(rounds * 100):
        procs = _processes_of(uid)
        if not procs:
            return killed
        alive = [pid for pid, zombie in procs if not zombie]
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        if not alive:
            deadline = deadline or time.monotonic() + reap_wait_s
            if time.monotonic() > deadline:
                return killed
        time.sleep(0.005 if alive else 0.02)
    return killed


def _remove_files_of(uid: int, dirs: Sequence[str] = _SHARED_DIRS) -> None:
    """Delete the entries ``uid`` owns directly in the shared world-writable ``dirs`` (fallback cleanup).

    Runs after every process of ``uid`` is dead, so nothing races it; ``rmtree`` and ``unlink``
    never follow a symlink, and only entries of the (exclusively held) sandbox uid are touched.
    """
    for top in dirs:
        try:
            names = os.listdir(top)
        except OSError:
            continue
        for name in names:
            path = os.path.join(top, name)
            try:
                info = os.lstat(path)
                if info.st_uid != uid:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                continue


def _signal_name(sig: int) -> str:
    return signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)


# --------------------------------------------------------------------------- the sandbox


class Sandbox:
    r"""Runs untrusted code with limits, in parallel worker slots (a thread pool).

    Args:
        config: limits and isolation (defaults: :class:`SandboxConfig`).

    Raises:
        ValueError: ``isolation="bwrap"`` but bubblewrap cannot run here.

    Example:
        >>> from userlm_env.code.sandbox import Sandbox, TestCase
        >>> sandbox = Sandbox()
        >>> result = sandbox.run_calls("def add(a, b):\\n    return a + b", "add", [TestCase((1, 2), 3)])
        >>> result.passed, result.tests_passed
        (True, 1)
    """

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        cfg = self.config
        drop = cfg.drop_privileges if cfg.drop_privileges is not None else os.geteuid() == 0
        self._drop = bool(drop)
        probe_uid = cfg.base_uid if self._drop else None
        self._bwrap: list[str] | None = None
        if cfg.isolation in ("auto", "bwrap"):
            python = _bwrap_python(cfg.python)
            why = "no interpreter under /usr" if python is None else _probe_bwrap(python, probe_uid)
            if why is None:
                self._bwrap = _bwrap_prefix(shutil.which("bwrap") or "bwrap", cfg.tmpfs_mb * 2**20)
                self.python = python
            elif cfg.isolation == "bwrap":
                raise ValueError(f"isolation='bwrap' but bubblewrap cannot run the sandbox here: {why}")
            else:
                _warn_fallback(why)
        self.isolation = "bwrap" if self._bwrap else "fallback"
        if self._bwrap:
            self._prefix: list[str] | None = None
            self.network = "namespace"
        else:
            if cfg.network == "namespace" and network_isolation() is None:
                raise ValueError("network='namespace' but this machine cannot create network namespaces")
            self._prefix = network_isolation() if cfg.network in ("auto", "namespace") else None
            self.network = "namespace" if self._prefix else ("guard" if cfg.python_guard else "none")
            self.python = cfg.python or usable_python(probe_uid)
        self._runner = _runner_payload(self.python)
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(cfg.num_workers):
            self._slots.put(slot)
        self._pool = ThreadPoolExecutor(max_workers=cfg.num_workers, thread_name_prefix="sandbox")
        self._home = os.path.expanduser("~")

    # ------------------------------------------------------------------ public API
    def run_program(self, code: str) -> ExecutionResult:
        """Execute ``code`` as a module (no tests); ``passed`` means it ran to the end without error."""
        return self._execute({"mode": "program", "code": code}, tests=None)

    def run_calls(self, code: str, entry_point: str, tests: Sequence[TestCase]) -> ExecutionResult:
        """Define ``code``, call ``entry_point(*test.args)`` for each test, compare outputs in the host.

        The tests are sent one at a time in a random order, each answer read before the next input
        is sent (see the module docstring); a return value that is not plain data fails its test.
        """
        tests = list(tests)
        if not tests:
            raise ValueError("run_calls needs at least one test")
        return self._execute({"mode": "calls", "code": code, "entry_point": entry_point}, tests=tests)

    def run_script(self, code: str, entry_point: str, test_code: str) -> ExecutionResult:
        """HumanEval style: ``test_code`` defines ``check(candidate)``; it is called on ``entry_point``.

        Runs in the candidate's process: NOT safe against a hostile candidate (see the module docstring).
        """
        from userlm_env.code.humaneval import instrument_check  # noqa: PLC0415

        job = {"mode": "script", "code": code, "entry_point": entry_point}
        return self._execute(job, tests=None, test_code=instrument_check(test_code))

    def submit(self, method: str, *args: Any) -> Future:
        """Run ``getattr(self, method)(*args)`` on the worker pool; returns a ``Future``."""
        if method not in ("run_program", "run_calls", "run_script"):
            raise ValueError(f"unknown sandbox method {method!r}")
        return self._pool.submit(getattr(self, method), *args)

    def close(self) -> None:
        """Stop the worker pool (running executions finish)."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ execution
    def _execute(
        self, job: dict[str, Any], tests: list[TestCase] | None, test_code: str | None = None
    ) -> ExecutionResult:
        slot = self._slots.get()
        started = time.perf_counter()
        lock_fd, uid = -1, None
        try:
            if self._drop:
                lock_fd, uid = self._lock_uid(slot)
            return self._execute_as(job, tests, test_code, uid, started)
        except Exception as err:  # noqa: BLE001 - never raise out of grading
            return self._failure(tests, "sandbox", f"sandbox error: {type(err).__name__}: {err}"[:500], started)
        finally:
            if lock_fd >= 0:
                os.close(lock_fd)  # releases the flock
            self._slots.put(slot)

    def _failure(self, tests: list[TestCase] | None, error_type: str, error: str, started: float) -> ExecutionResult:
        total = len(tests) if tests is not None else None
        return ExecutionResult(
            passed=False,
            tests_passed=0 if total is not None else None,
            tests_failed=total,
            tests_total=total,
            error_type=error_type,
            error=error,
            seconds=time.perf_counter() - started,
            network=self.network,
            isolation=self.isolation,
        )

    def _lock_uid(self, slot: int) -> tuple[int, int]:
        """Take an exclusive machine-wide lock on a free uid of the range (starting at this slot's)."""
        cfg = self.config
        os.makedirs(_UID_LOCK_DIR, mode=0o700, exist_ok=True)
        info = os.lstat(_UID_LOCK_DIR)  # it lives in /tmp: refuse one a sandbox uid could have planted
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise RuntimeError(f"{_UID_LOCK_DIR} is not a directory owned by this user and closed to others")
        order = [cfg.base_uid + (slot + i) % cfg.uid_range for i in range(cfg.uid_range)]
        for blocking in (False, True):
            for uid in order if not blocking else order[:1]:
                fd = os.open(os.path.join(_UID_LOCK_DIR, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    continue
                return fd, uid
        raise RuntimeError("unreachable: a blocking flock returned without the lock")  # pragma: no cover

    def _execute_as(
        self,
        job: dict[str, Any],
        tests: list[TestCase] | None,
        test_code: str | None,
        uid: int | None,
        started: float,
    ) -> ExecutionResult:
        cfg = self.config
        deadline = time.monotonic() + cfg.timeout_s
        workdir = None if self._bwrap else tempfile.mkdtemp(prefix="userlm-sbx-", dir=cfg.tmp_root)
        fds: list[int] = []
        proc = None
        try:
            if workdir is not None:
                if uid is not None:
                    os.chown(workdir, uid, uid)
                os.chmod(workdir, 0o700)
            job = {
                **job,
                "limits": {
                    "cpu_s": max(1, math.ceil(cfg.cpu_time_s or cfg.timeout_s)),
                    "memory_bytes": cfg.memory_mb * 2**20,
                    "file_size_bytes": cfg.file_size_mb * 2**20,
                    "max_processes": cfg.max_processes,
                    "max_open_files": cfg.max_open_files,
                },
                "uid": uid,
                "gid": uid,
                "chown": ["/tmp", "/dev/shm"] if self._bwrap and uid is not None else [],
                "workdir": workdir or _BWRAP_WORKDIR,
                "guard": cfg.python_guard,
                "private_roots": [self._home] if self._home not in ("/", "") else [],
                "max_value_bytes": cfg.max_value_bytes,
            }
            protocol = _Protocol(job, tests, cfg.max_value_bytes, test_code, runner=self._runner)
            protocol.deadline = deadline + 0.5
            req_r, req_w = os.pipe()
            fds += [req_r, req_w]
            res_r, res_w = os.pipe()
            fds += [res_r, res_w]
            out_r, out_w = os.pipe()
            fds += [out_r, out_w]
            err_r, err_w = os.pipe()
            fds += [err_r, err_w]
            home = workdir or _BWRAP_WORKDIR
            env = {"PATH": _CLEAN_PATH, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8"}
            program = [self.python, "-I", "-B", "-c", BOOTSTRAP, str(req_r), str(res_w)]
            command = [*self._bwrap, *program] if self._bwrap else [*(self._prefix or []), *program]
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                cwd=workdir or "/",
                env=env,
                start_new_session=True,
                close_fds=True,
                pass_fds=(req_r, res_w),
            )
            for fd in (req_r, res_w, out_w, err_w):
                os.close(fd)
                fds.remove(fd)
            out, err = _Capture(cfg.max_output_chars * 4 + 4), _Capture(cfg.max_output_chars * 4 + 4)
            status = self._pump(proc, protocol, req_w, res_r, out_r, err_r, out, err, deadline)
            returncode = self._stop(proc, uid)
            if self._bwrap and returncode is not None and returncode > 128:
                returncode = -(returncode - 128)  # bwrap reports a signal death of its child as 128 + signal
            return self._result(
                protocol,
                tests,
                status,
                returncode,
                out.text(cfg.max_output_chars),
                err.text(cfg.max_output_chars),
                started,
            )
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if proc is not None and proc.returncode is None:
                self._stop(proc, uid)  # kills and reaps everything of the run, uid included
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
                if uid is not None:
                    _remove_files_of(uid)

    def _pump(
        self,
        proc: subprocess.Popen,
        protocol: _Protocol,
        req_w: int,
        res_r: int,
        out_r: int,
        err_r: int,
        out: _Capture,
        err: _Capture,
        deadline: float,
    ) -> str:
        """Move bytes until the conversation ends, the process exits, or the deadline.

        Returns:
            ``"exited"`` (the process ended by itself), ``"finished"`` (nothing more was expected and
            the grace period passed), ``"timeout"``, ``"output_limit"`` or ``"violation"``.
        """
        for fd in (req_w, res_r, out_r, err_r):
            _set_nonblocking(fd)
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pidfd = -1
        output_cap = self.config.file_size_mb * 2**20
        sinks = {out_r: out, err_r: err}
        poller = select.poll()
        readable = {res_r, out_r, err_r}
        for fd in readable:
            poller.register(fd, select.POLLIN)
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        pending = b""
        writing = False
        grace: float | None = None  # once nothing more is expected: wait this long for a clean exit
        exited = False
        try:
            while True:
                if protocol.state == "violation":
                    return "violation"
                if not pending:
                    pending = protocol.take_output()
                if pending:
                    try:
                        written = os.write(req_w, pending)
                        pending = pending[written:]
                    except BlockingIOError:
                        pass
                    except OSError:  # EPIPE: the runner is gone
                        pending = b""
                if pending and not writing:
                    poller.register(req_w, select.POLLOUT)
                    writing = True
                elif not pending and writing:
                    poller.unregister(req_w)
                    writing = False
                now = time.monotonic()
                if (protocol.complete or res_r not in readable) and grace is None:
                    grace = min(deadline, now + 0.5)
                if exited:
                    return "exited"
                if grace is not None and now >= grace:
                    return "finished"
                if now >= deadline:
                    return "timeout"
                wait_s = min(deadline, grace or deadline) - now
                if pidfd < 0:
                    wait_s = min(wait_s, 0.01)
                events = poller.poll(max(1, math.ceil(wait_s * 1000)))
                if pidfd < 0 and proc.poll() is not None:
                    events.append((-1, select.POLLIN))
                for fd, _mask in events:
                    if fd == pidfd or fd == -1:
                        exited = True
                        continue
                    if fd == req_w:
                        continue
                    self._drain(fd, res_r, protocol, sinks, readable, poller)
                if exited:  # read what is left, then stop
                    for fd in list(readable):
                        self._drain(fd, res_r, protocol, sinks, readable, poller)
                if out.total + err.total > output_cap:
                    return "output_limit"
        finally:
            if pidfd >= 0:
                os.close(pidfd)

    @staticmethod
    def _drain(
        fd: int,
        res_r: int,
        protocol: _Protocol,
        sinks: dict[int, _Capture],
        readable: set[int],
        poller: select.poll,
        rounds: int = 16,
    ) -> None:
        """Read what ``fd`` has now (at most ``rounds`` chunks); unregister it at EOF."""
        for _ in range(rounds):
            try:
                data = os.read(fd, _CHUNK)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno == errno.EINTR:
                    continue
                data = b""
            if not data:
                readable.discard(fd)
                poller.unregister(fd)
                if fd == res_r:
                    protocol.eof()
                return
            if fd == res_r:
                protocol.feed(data)
                if protocol.state == "violation":
                    return
            else:
                sinks[fd].add(data)

    def _stop(self, proc: subprocess.Popen, uid: int | None) -> int | None:
        """Kill everything the execution started and reap it; -> the exit status.

        With bubblewrap the sandbox uid's processes die first, so bwrap's pid 1 reaps them and
        exits by itself (killing bwrap first would leave their zombies to the machine's init);
        in the fallback the group is killed and reaped first, then any process of the uid.
        """
        if self._bwrap and uid is not None and proc.poll() is None:
            _kill_uid(uid, reap_wait_s=1.0)
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(proc.pid)
        proc.wait()
        if uid is not None:
            _kill_uid(uid)
        return proc.returncode

    @staticmethod
    def _kill_group(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # ------------------------------------------------------------------ grading
    def _result(
        self,
        protocol: _Protocol,
        tests: list[TestCase] | None,
        status: str,
        returncode: int | None,
        stdout: str,
        stderr: str,
        started: float,
    ) -> ExecutionResult:
        passed_n: int | None = None
        failed_n: int | None = None
        total: int | None = None
        details: dict[str, Any] = {}
        error_type: str | None = None
        error: str | None = None
        if tests is not None:
            total = len(tests)
            oks = {i for i, o in protocol.outcomes.items() if o.ok} if protocol.violation is None else set()
            passed_n, failed_n = len(oks), total - len(oks)
            details["failed_tests"] = [i for i in range(total) if i not in oks]
        elif protocol.asserts:
            passed_n = sum(ok for _, ok, _, _ in protocol.asserts) if protocol.violation is None else 0
            failed_n = len(protocol.asserts) - passed_n
        if protocol.violation is not None:
            error_type, error = "forbidden", f"protocol violation: {protocol.violation}"
        elif protocol.error is not None:
            error_type, error = self._classify_error(*protocol.error)
        else:
            answered_all = (
                protocol.done
                if tests is None
                else protocol.state == "complete" and len(protocol.outcomes) == len(tests or [])
            )
            if not answered_all:
                error_type, error = self._classify_exit(status, returncode, stderr)
            if tests is not None:
                failures = sorted(i for i, o in protocol.outcomes.items() if not o.ok)
                if failures and (error_type is None or error_type == "killed"):
                    error_type, error = self._classify_call(failures[0], protocol.outcomes[failures[0]])
            elif protocol.mode == "script":
                failed = next(((i, t, m) for i, ok, t, m in protocol.asserts if not ok), None)
                seen = {i for i, ok, _, _ in protocol.asserts if ok}
                if failed is not None:
                    kind, message = failed[1], failed[2]
                    error_type, error = self._classify_error("tests", kind or "AssertionError", message)
                    if error_type == "runtime" and kind in ("", "AssertionError"):
                        error_type = "assertion"
                    error = error or f"assert {failed[0]} failed"
                elif error_type is None and (
                    not protocol.required <= seen or (protocol.any_asserts and not protocol.asserts)
                ):
                    missing = sorted(protocol.required - seen)
                    error_type, error = "assertion", f"check() ended without running every assert (missing {missing})"
        passed = error_type is None and not failed_n and (protocol.done or tests is not None)
        if passed_n is not None and failed_n is None:
            failed_n = 0
        return ExecutionResult(
            passed=passed,
            tests_passed=passed_n,
            tests_failed=failed_n,
            tests_total=total,
            error_type=None if passed else (error_type or "assertion"),
            error=None if passed else error,
            stdout=stdout,
            stderr=stderr,
            seconds=time.perf_counter() - started,
            returncode=returncode,
            network=self.network,
            isolation=self.isolation,
            details=details,
        )

    @staticmethod
    def _classify_error(stage: str, kind: str, message: str) -> tuple[str, str]:
        text = f"{kind}: {message}".strip(": ")
        if stage == "compile":
            return "syntax", text
        if stage == "entry":
            return "missing_function", text
        return Sandbox._classify_exception(kind, message, text)

    @staticmethod
    def _classify_exception(kind: str, message: str, text: str) -> tuple[str, str]:
        if kind == "MemoryError":
            return "memory", text
        if "File too large" in message or "Errno 27" in message:
            return "output_limit", text
        if kind in ("SandboxViolation", "PermissionError") or "sandbox:" in message:
            return "forbidden", text
        return "runtime", text

    @staticmethod
    def _classify_call(index: int, outcome: _CallOutcome) -> tuple[str, str]:
        if outcome.kind == "raised":
            kind, text = Sandbox._classify_exception(
                outcome.type_name, outcome.message, f"{outcome.type_name}: {outcome.message}".strip(": ")
            )
            return kind, f"test {index}: {text}"
        if outcome.kind == "invalid":
            return "wrong_output", f"test {index}: {outcome.message}"
        return "wrong_output", f"test {index}: wrong output"

    @staticmethod
    def _classify_exit(status: str, returncode: int | None, stderr: str) -> tuple[str, str]:
        if status == "timeout":
            return "timeout", "wall-clock timeout: the process group was killed"
        if status == "output_limit":
            return "output_limit", "too much output on stdout/stderr: the process group was killed"
        if status != "exited":
            return "killed", "the result channel closed before every answer: the process group was killed"
        if returncode is not None and returncode < 0:
            sig = -returncode
            if sig == signal.SIGXCPU:
                return "timeout", "CPU time limit exceeded (SIGXCPU)"
            if sig == signal.SIGXFSZ:
                return "output_limit", "file size limit exceeded (SIGXFSZ): a file too large"
            if sig == signal.SIGSEGV and "MemoryError" in stderr:
                return "memory", "memory limit exceeded"
            return "killed", f"killed by {_signal_name(sig)}"
        if "MemoryError" in stderr:
            return "memory", "memory limit exceeded"
        return "killed", f"exited with status {returncode} before finishing"


_DEFAULT: Sandbox | None = None
_DEFAULT_LOCK = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox with default limits (created on first use, shared by envs)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Sandbox()
        return _DEFAULT
