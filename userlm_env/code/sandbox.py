"""Sandboxed execution of untrusted Python code (the assistant's solutions) against hidden tests.

Every execution:

- runs ``python -I -B`` on a small stdlib-only runner (``_runner.py``) in a **fresh temporary
  directory**, in a **new session / process group**, with **no stdin**, a **scrubbed environment**
  (``PATH``, ``HOME`` = the sandbox dir, ``LANG``) and stdout/stderr written to files in that dir
  (only the first ``max_output_chars`` are read back);
- lowers **resource limits**: CPU seconds, address space (memory), file size (this also caps stdout
  and stderr), number of processes/threads, open files, no core dumps;
- when the host runs as **root**, drops to an **unprivileged uid/gid** (a uid of the range
  ``base_uid ..`` held under an exclusive machine-wide file lock for the run), because
  ``RLIMIT_NPROC`` is not enforced for root: fork bombs are then capped, the host's files (mode
  0700 homes, pytest dirs) are unreadable and the parent cannot be signalled;
- gets **no network**: a fresh network namespace (``unshare -n``: only a downed loopback) where the
  machine allows it (probed once, see :func:`network_isolation`); otherwise, and in addition, the
  Python-level guard below blocks sockets;
- installs a **Python-level guard** (an audit hook; ``SandboxConfig.python_guard``): no sockets,
  no ``fork``/``exec``/``subprocess``, no signals to other processes, no ``ctypes``, no writes or
  deletions outside the sandbox dir, no reading the invoking user's home;
- is bounded by a **wall-clock timeout** that kills the whole process group, after which every
  process left running under the run's uid (escaped via ``setsid``) is killed too, and the
  directory is deleted: the next execution never sees leftovers.

Hidden tests stay hidden: for call tests (procedural, LiC functional) only the *inputs* enter the
sandbox; the outputs come back as plain literals and are compared with the expected values in the host.
HumanEval ``check(candidate)`` tests have to run inside (like the original harness): an
adversarial solution could read or tamper with them there.

See the README section "Code sandbox" for what this does and does not protect against.
"""

from __future__ import annotations

import ast
import fcntl
import json
import marshal
import math
import os
import queue
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
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
    "default_sandbox",
    "network_isolation",
    "values_equal",
]

RUNNER = Path(__file__).with_name("_runner.py")
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


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation options of the sandbox.

    Attributes:
        timeout_s: wall-clock limit of one execution (LiC uses 6 s); the whole group is killed.
        cpu_time_s: CPU-seconds limit (``None``: ``ceil(timeout_s)``).
        memory_mb: address-space limit of the process (``RLIMIT_AS``).
        file_size_mb: largest file the code may write, stdout and stderr included (``RLIMIT_FSIZE``).
        max_processes: processes + threads of the sandbox uid (``RLIMIT_NPROC``; binds only non-root).
        max_open_files: open file descriptors (``RLIMIT_NOFILE``).
        max_output_chars: stdout/stderr characters kept in the result.
        workers: executions that may run at once (``0``: the number of CPUs).
        network: ``"auto"`` (namespace if the machine allows it, else the Python guard only),
            ``"namespace"`` (require a network namespace; error if impossible) or ``"guard"``.
        python_guard: install the audit-hook guard (see the module docstring).
        drop_privileges: run as an unprivileged uid of ``base_uid .. base_uid + uid_range - 1``
            (``None``: when the host runs as root).
        base_uid: first uid (and gid) of the range; pick a range no one else on the machine uses.
        uid_range: how many uids the range holds. Each execution holds an exclusive file lock on
            its uid (``/tmp/userlm-sandbox-uids/<uid>.lock``), so sandboxes in other processes
            (or other ``Sandbox`` objects) never run code, or clean up, under the same uid at once.
        python: the interpreter that runs the code (``None``: this one, or when privileges are dropped
            and the unprivileged uid cannot read this interpreter's files, e.g. a pyenv under a 0700
            ``/root``, the first of ``python3`` on ``PATH``, ``/usr/bin/python3``, ``/usr/local/bin/python3``
            that it can run; see :func:`usable_python`).
        tmp_root: where the per-execution directories are made (``None``: the system temp dir).
    """

    timeout_s: float = 6.0
    cpu_time_s: float | None = None
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_processes: int = 32
    max_open_files: int = 64
    max_output_chars: int = 2000
    workers: int = 0
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
        for name in ("memory_mb", "file_size_mb", "max_processes", "max_open_files", "max_output_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_open_files < 16:
            raise ValueError(f"max_open_files must be >= 16 (Python needs a few), got {self.max_open_files}")
        if self.uid_range < 1 or self.base_uid < 1000:
            raise ValueError(f"need base_uid >= 1000 and uid_range >= 1, got {self.base_uid} and {self.uid_range}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = number of CPUs), got {self.workers}")
        if self.network not in ("auto", "namespace", "guard"):
            raise ValueError(f"network must be 'auto', 'namespace' or 'guard', got {self.network!r}")
        if self.drop_privileges and os.geteuid() != 0:
            raise ValueError("drop_privileges=True needs root (set it to None or False)")
        if self.network == "namespace" and network_isolation() is None:
            raise ValueError("network='namespace' but this machine cannot create network namespaces; use 'auto'")

    @property
    def num_workers(self) -> int:
        """Concurrent executions (``workers`` or the CPU count)."""
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class TestCase:
    """One hidden call test: ``entry_point(*args)`` must equal ``expected``.

    Attributes:
        args: positional arguments (JSON-like values; copied before each call).
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
        tests_passed: tests that passed (``None`` when not measurable, e.g. killed before any test).
        tests_failed: tests that failed or never ran because the run was cut short.
        tests_total: tests the task has (``None`` for HumanEval scripts, counted as they run).
        error_type: one of :data:`ERROR_TYPES`, ``None`` when passed.
        error: a short message (exception type and text, signal, limit).
        stdout: the code's stdout, cut to ``max_output_chars``.
        stderr: the code's stderr, cut to ``max_output_chars``.
        seconds: wall time of the execution (start to cleanup).
        returncode: the runner's exit status (negative = killed by that signal).
        network: the network isolation used (``"namespace"`` or ``"guard"`` or ``"none"``).
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
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_info(self) -> dict[str, Any]:
        """A compact dict for ``info`` and logs."""
        return {
            "passed": self.passed,
            "tests_passed": self.tests_passed,
            "tests_failed": self.tests_failed,
            "tests_total": self.tests_total,
            "error_type": self.error_type,
            "error": self.error,
            "seconds": round(self.seconds, 4),
        }


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
                [candidate, "-I", "-B", "-c", "import json, collections, socket, math"],
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


def values_equal(actual: Any, expected: Any) -> bool:
    """Test equality of a returned (JSON-decoded) value and an expected value.

    Tuples equal lists, floats are compared with ``math.isclose(rel_tol=1e-6, abs_tol=1e-9)``, an int
    never equals a bool, dicts and sets come back tagged by the runner.
    """
    expected = _jsonify(expected)
    return _equal(actual, expected)


def _jsonify(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonify(v) for v in value]
    if isinstance(value, list):
        return [_jsonify(v) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[_jsonify(k), _jsonify(v)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted((_jsonify(v) for v in value), key=repr)}
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    return value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return False
        if "__dict__" in a:
            pairs_a = {json.dumps(k, sort_keys=True): v for k, v in a["__dict__"]}
            pairs_b = {json.dumps(k, sort_keys=True): v for k, v in b["__dict__"]}
            return set(pairs_a) == set(pairs_b) and all(_equal(pairs_a[k], pairs_b[k]) for k in pairs_a)
        return all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _wait_exit(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until ``proc`` exits or ``timeout`` passes; True if it exited (it is not reaped yet).

    Uses a pidfd (Linux >= 5.3) so the wait wakes up the moment the process exits;
    ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, which dominated short executions.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    finally:
        os.close(pidfd)


def _read_head(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(limit * 4 + 4)
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if len(text) > limit or path.stat().st_size > len(data):
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


class Sandbox:
    r"""Runs untrusted code with limits, in parallel worker slots (a thread pool).

    Args:
        config: limits and isolation (defaults: :class:`SandboxConfig`).

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
        self._prefix = network_isolation() if cfg.network in ("auto", "namespace") else None
        self.network = "namespace" if self._prefix else ("guard" if cfg.python_guard else "none")
        self.python = cfg.python or usable_python(cfg.base_uid if self._drop else None)
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(cfg.num_workers):
            self._slots.put(slot)
        self._pool = ThreadPoolExecutor(max_workers=cfg.num_workers, thread_name_prefix="sandbox")
        self._home = os.path.expanduser("~")
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public API
    def run_program(self, code: str) -> ExecutionResult:
        """Execute ``code`` as a module (no tests); ``passed`` means it ran to the end without error."""
        return self._execute({"mode": "program", "code": code}, tests=None)

    def run_calls(self, code: str, entry_point: str, tests: Sequence[TestCase]) -> ExecutionResult:
        """Define ``code``, call ``entry_point(*test.args)`` for each test, compare outputs in the host."""
        tests = list(tests)
        if not tests:
            raise ValueError("run_calls needs at least one test")
        job = {"mode": "calls", "code": code, "entry_point": entry_point, "inputs": [tuple(t.args) for t in tests]}
        return self._execute(job, tests=tests)

    def run_script(self, code: str, entry_point: str, test_code: str) -> ExecutionResult:
        """HumanEval style: ``test_code`` defines ``check(candidate)``; it is called on ``entry_point``."""
        from userlm_env.code.humaneval import instrument_check  # noqa: PLC0415

        job = {"mode": "script", "code": code, "entry_point": entry_point, "test_code": instrument_check(test_code)}
        return self._execute(job, tests=None)

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
    def _execute(self, job: dict[str, Any], tests: list[TestCase] | None) -> ExecutionResult:
        slot = self._slots.get()
        lock_fd, uid = -1, None
        try:
            if self._drop:
                lock_fd, uid = self._lock_uid(slot)
            return self._execute_as(job, tests, uid)
        finally:
            if lock_fd >= 0:
                os.close(lock_fd)  # releases the flock
            self._slots.put(slot)

    def _lock_uid(self, slot: int) -> tuple[int, int]:
        """Take an exclusive machine-wide lock on a free uid of the range (starting at this slot's)."""
        cfg = self.config
        os.makedirs(_UID_LOCK_DIR, mode=0o700, exist_ok=True)
        order = [cfg.base_uid + (slot + i) % cfg.uid_range for i in range(cfg.uid_range)]
        for blocking in (False, True):
            for uid in order if not blocking else order[:1]:
                fd = os.open(os.path.join(_UID_LOCK_DIR, f"{uid}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    continue
                return fd, uid
        raise RuntimeError("unreachable: a blocking flock returned without the lock")  # pragma: no cover

    def _execute_as(self, job: dict[str, Any], tests: list[TestCase] | None, uid: int | None) -> ExecutionResult:
        cfg = self.config
        started = time.perf_counter()
        workdir = Path(tempfile.mkdtemp(prefix="userlm-sbx-", dir=cfg.tmp_root))
        nonce = secrets.token_hex(16)
        result_r, result_w = os.pipe()
        try:
            if uid is not None:
                os.chown(workdir, uid, uid)
            os.chmod(workdir, 0o700)
            stdout_path, stderr_path = workdir / ".stdout", workdir / ".stderr"
            limits = {
                "cpu_s": max(1, math.ceil(cfg.cpu_time_s or cfg.timeout_s)),
                "memory_bytes": cfg.memory_mb * 2**20,
                "file_size_bytes": cfg.file_size_mb * 2**20,
                "max_processes": cfg.max_processes,
                "max_open_files": cfg.max_open_files,
            }
            job = {
                **job,
                "nonce": nonce,
                "result_fd": result_w,
                "limits": limits,
                "uid": uid,
                "gid": uid,
                "guard": cfg.python_guard,
                "private_roots": [self._home] if self._home not in ("/", "") else [],
            }
            job_path = workdir / "job.marshal"
            job_path.write_bytes(marshal.dumps(job))
            os.chmod(job_path, 0o600)
            env = {"PATH": _CLEAN_PATH, "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8"}
            command = [*(self._prefix or []), self.python, "-I", "-B", str(RUNNER), str(workdir)]
            events: list[dict[str, Any]] = []
            reader = threading.Thread(target=self._read_events, args=(result_r, nonce, events), daemon=True)
            with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=workdir,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=(result_w,),
                )
            os.close(result_w)
            result_w = -1
            reader.start()
            timed_out = not _wait_exit(proc, cfg.timeout_s)
            self._kill_group(proc.pid)
            proc.wait()
            if uid is not None:
                _kill_uid(uid)
            reader.join(timeout=2.0)
            stdout = _read_head(stdout_path, cfg.max_output_chars)
            stderr = _read_head(stderr_path, cfg.max_output_chars)
            return self._result(
                events, tests, proc.returncode, timed_out, stdout, stderr, time.perf_counter() - started
            )
        finally:
            if result_w >= 0:
                os.close(result_w)
            if uid is not None:
                _kill_uid(uid)
            shutil.rmtree(workdir, ignore_errors=True)

    @staticmethod
    def _kill_group(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def _read_events(fd: int, nonce: str, events: list[dict[str, Any]], max_bytes: int = 16 * 2**20) -> None:
        """Collect the runner's genuine result lines (those carrying the nonce) from the pipe."""
        total = 0
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                total += len(line)
                if total > max_bytes:
                    break
                try:
                    event = ast.literal_eval(line.decode("utf-8"))
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError):
                    continue
                if isinstance(event, dict) and event.get("n") == nonce:
                    events.append(event)

    def _result(
        self,
        events: list[dict[str, Any]],
        tests: list[TestCase] | None,
        returncode: int | None,
        timed_out: bool,
        stdout: str,
        stderr: str,
        seconds: float,
    ) -> ExecutionResult:
        done = any(e.get("event") == "done" for e in events)
        error_event = next((e for e in events if e.get("event") == "error"), None)
        calls = [e for e in events if e.get("event") == "call"]
        asserts = [e for e in events if e.get("event") == "assert"]
        passed_n: int | None = None
        failed_n: int | None = None
        total: int | None = None
        first_failure: dict[str, Any] | None = None
        if tests is not None:
            total = len(tests)
            passed_n = 0
            for event in calls:
                index = event.get("i")
                if not isinstance(index, int) or not 0 <= index < total:
                    continue
                ok = "error" not in event and values_equal(event.get("value"), tests[index].expected)
                passed_n += ok
                if not ok and first_failure is None:
                    first_failure = event
            failed_n = total - passed_n
        elif asserts:
            passed_n = sum(bool(e.get("ok")) for e in asserts)
            failed_n = len(asserts) - passed_n
            first_failure = next((e for e in asserts if not e.get("ok")), None)
        error_type, error = self._classify(
            events, error_event, first_failure, returncode, timed_out, stderr, done, tests is not None
        )
        if tests is None and error_type is None and failed_n is None and error_event is None and not done:
            error_type, error = "killed", f"exited with status {returncode} before finishing"
        passed = done and error_type is None and not failed_n
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
            seconds=seconds,
            returncode=returncode,
            network=self.network,
        )

    @staticmethod
    def _classify(
        events: list[dict[str, Any]],
        error_event: dict[str, Any] | None,
        failure: dict[str, Any] | None,
        returncode: int | None,
        timed_out: bool,
        stderr: str,
        done: bool,
        call_tests: bool,
    ) -> tuple[str | None, str | None]:
        if timed_out:
            return "timeout", "wall-clock timeout: the process group was killed"
        if returncode is not None and returncode < 0:
            sig = -returncode
            if sig == signal.SIGXCPU:
                return "timeout", "CPU time limit exceeded (SIGXCPU)"
            if sig == signal.SIGXFSZ:
                return "output_limit", "file size limit exceeded (SIGXFSZ): too much output or a file too large"
            if sig == signal.SIGSEGV and "MemoryError" in stderr:
                return "memory", "memory limit exceeded"
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            return "killed", f"killed by {name}"
        candidates = [e for e in ([error_event] if error_event else []) + ([failure] if failure else [])]
        for event in candidates:
            kind = str(event.get("type") or event.get("error") or "")
            message = f"{kind}: {event.get('message', '')}".strip(": ")
            stage = event.get("stage")
            if stage == "compile":
                return "syntax", message
            if stage == "entry":
                return "missing_function", message
            if kind == "MemoryError":
                return "memory", message
            if "File too large" in message or "Errno 27" in message:
                return "output_limit", message
            if kind in ("SandboxViolation", "PermissionError") or "sandbox:" in str(event.get("message", "")):
                return "forbidden", message
            if kind in ("RecursionError",):
                return "runtime", message
            if kind == "AssertionError" or (event is failure and not kind):
                return ("wrong_output" if call_tests else "assertion"), (message or f"test {event.get('i')} failed")
            if event.get("event") == "call" and "error" not in event:
                return "wrong_output", f"test {event.get('i')}: wrong output"
            return "runtime", message
        if "MemoryError" in stderr:
            return "memory", "memory limit exceeded"
        if returncode not in (0, None) and not done:
            return "killed", f"exited with status {returncode}"
        return None, None


_DEFAULT: Sandbox | None = None
_DEFAULT_LOCK = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox with default limits (created on first use, shared by envs)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Sandbox()
        return _DEFAULT
