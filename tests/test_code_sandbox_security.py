"""Hostile code in the sandbox: every attack must be contained and reported as a failed run.

Each attack runs in both isolation modes (``bwrap``: bubblewrap namespaces; ``fallback``: rlimits,
uid drop, ``unshare -n`` only) and with the Python-level guard on (``guarded``) and off
(``os_only``), to show the OS-level layers contain it on their own. Guarantees that hold only
with bubblewrap (the project, task files and ``/work`` invisible; ``/tmp`` private) are tested
in the ``bwrap`` mode only; with ``USERLM_ENV_STRICT_SKIPS=1`` a missing ``bwrap`` fails the run.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import gymnasium as gym
import pytest

import userlm_env  # noqa: F401 - registers the envs
from userlm_env.code.procedural import ProceduralCodeTasks, _call_text
from userlm_env.code.sandbox import Sandbox, SandboxConfig, TestCase, bubblewrap, network_isolation

TIMEOUT = 1.5
MODES = {
    "bwrap-guarded": ("bwrap", True),
    "bwrap-os_only": ("bwrap", False),
    "fallback-guarded": ("fallback", True),
    "fallback-os_only": ("fallback", False),
}


def _require_bwrap():
    if bubblewrap(uid=61000 if os.geteuid() == 0 else None) is None:
        pytest.skip("bubblewrap (bwrap) cannot run here: install it with scripts/install_bubblewrap.sh")


@pytest.fixture(scope="module", params=list(MODES), ids=list(MODES))
def sandbox(request):
    isolation, guard = MODES[request.param]
    if isolation == "bwrap":
        _require_bwrap()
    box = Sandbox(SandboxConfig(timeout_s=TIMEOUT, memory_mb=256, workers=2, python_guard=guard, isolation=isolation))
    yield box
    box.close()


@pytest.fixture(scope="module")
def bwrap_sandbox():
    _require_bwrap()
    box = Sandbox(SandboxConfig(timeout_s=TIMEOUT, memory_mb=256, workers=2, isolation="bwrap", python_guard=False))
    yield box
    box.close()


def _slot_processes(box):
    uids = set(range(box.config.base_uid, box.config.base_uid + box.config.uid_range))
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid in uids:
                    found.append(int(name))
            except OSError:
                pass
    return found


def test_isolation_layers_are_active_here(sandbox):
    """This machine runs the sandbox as root: uid drop and a network namespace must be in use."""
    assert os.geteuid() == 0, "the security guarantees tested here need the host to run as root (see README)"
    assert sandbox._drop
    assert sandbox.network == "namespace"
    if sandbox.config.isolation == "fallback":
        assert network_isolation() is not None and sandbox.isolation == "fallback"
    else:
        assert sandbox.isolation == "bwrap"
    result = sandbox.run_program("import os\nprint(os.getuid())")
    assert result.passed and result.isolation == sandbox.isolation
    assert int(result.stdout) >= sandbox.config.base_uid


def test_infinite_loop_is_killed_at_the_timeout(sandbox):
    """A busy loop ends as a timeout, within the wall-clock limit plus cleanup."""
    started = time.perf_counter()
    result = sandbox.run_calls("def f(x):\n    while True:\n        pass", "f", [TestCase((1,), 1)])
    assert time.perf_counter() - started < TIMEOUT + 1.5
    assert not result.passed and result.error_type == "timeout"
    assert result.tests_passed == 0 and result.tests_failed == 1


def test_fork_bomb_is_contained(sandbox):
    """A fork bomb is capped (RLIMIT_NPROC for the unprivileged uid) and nothing of it survives."""
    code = (
        "import os\n"
        "def f(x):\n"
        "    while True:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except Exception:\n"
        "            pass\n"
    )
    result = sandbox.run_calls(code, "f", [TestCase((1,), 1)])
    assert not result.passed and result.error_type in ("timeout", "forbidden", "killed")
    assert _slot_processes(sandbox) == []
    assert subprocess.run([sys.executable, "-c", "pass"], timeout=30).returncode == 0  # the host can still fork


def test_memory_bomb_fails_with_memory_error(sandbox):
    """Allocating far beyond the address-space limit fails inside the sandbox only."""
    result = sandbox.run_program("blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))")
    assert not result.passed and result.error_type in ("memory", "killed")
    result = sandbox.run_program("x = bytearray(2**34)")
    assert result.error_type == "memory"


class _PeakRss:
    """Samples this process's resident memory (VmRSS) in a thread: the harm of a flood is in the host."""

    def __init__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth_mb(self):
        return (self.peak - self.base) / 2**20


def test_huge_output_is_capped_and_truncated(sandbox):
    """Printing without end is killed at the output cap; the host keeps only a bounded prefix."""
    started = time.perf_counter()
    with _PeakRss() as rss:
        result = sandbox.run_program("import sys\nwhile True:\n    sys.stdout.write('x' * 1000000)")
    assert time.perf_counter() - started < TIMEOUT + 1.5
    assert not result.passed and result.error_type in ("output_limit", "timeout")
    assert len(result.stdout) <= sandbox.config.max_output_chars + 20
    assert result.stdout.endswith("[truncated]")
    assert rss.growth_mb < 8, rss.growth_mb


FLOOD = (
    "import os, sys, time\n"
    "fds = [int(a) for a in sys.argv[1:] if a.isdigit()] + [1, 2]\n"
    "for name in os.listdir('/proc/self/fd'):\n"
    "    fds.append(int(name))\n"
    "line = b'x' * 8_000_000 + b'\\n'\n"
    "for fd in set(fds):\n"
    "    try:\n"
    "        os.write(fd, line)\n"
    "    except OSError:\n"
    "        pass\n"
    "time.sleep(30)\n"
)


def test_an_8mb_line_on_every_pipe_neither_bloats_nor_delays_the_host(sandbox):
    """8 MB written to the result pipe (and stdout, stderr, every fd): bounded memory, no overrun."""
    started = time.perf_counter()
    with _PeakRss() as rss:
        result = sandbox.run_calls(f"{FLOOD}\ndef f(x):\n    return x", "f", [TestCase((1,), 1)])
    elapsed = time.perf_counter() - started
    assert not result.passed and result.tests_passed == 0
    assert elapsed < TIMEOUT + 1.5, elapsed
    assert rss.growth_mb < 8, rss.growth_mb
    assert len(result.stdout) <= sandbox.config.max_output_chars + 20


def test_files_outside_the_sandbox_cannot_be_written_deleted_or_read(sandbox, tmp_path):
    """Canaries in a pytest tmp dir and in the invoking user's home survive and stay unread."""
    canary = tmp_path / "canary.txt"
    canary.write_text("tmp-canary-secret")
    home_canary = Path.home() / f".userlm_sandbox_canary_{os.getpid()}"
    home_canary.write_text("home-canary-secret")
    try:
        for target in (canary, home_canary):
            code = (
                "import os, shutil\n"
                f"p = {str(target)!r}\n"
                "for attempt in (lambda: print(open(p).read()), lambda: open(p, 'w').write('pwned'),\n"
                "                lambda: open(p, 'a').write('pwned'), lambda: os.remove(p),\n"
                "                lambda: os.rename(p, p + '.x'), lambda: shutil.rmtree(os.path.dirname(p)),\n"
                "                lambda: open(os.path.join(os.path.dirname(p), 'new.txt'), 'w').write('x'),\n"
                "                lambda: print(os.listdir(os.path.dirname(p)))):\n"
                "    try:\n"
                "        attempt()\n"
                "    except Exception as err:\n"
                "        print(type(err).__name__)\n"
                "open(p).read()\n"
            )
            result = sandbox.run_program(code)
            # with bubblewrap the paths do not even exist inside (FileNotFoundError: "runtime")
            expected = ("forbidden", "runtime") if sandbox.isolation == "bwrap" else ("forbidden",)
            assert not result.passed and result.error_type in expected, result
            assert "secret" not in result.stdout and "canary" not in result.stdout
            assert target.read_text().endswith("-canary-secret") and "pwned" not in target.read_text()
            assert not (target.parent / "new.txt").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt"]
    finally:
        home_canary.unlink(missing_ok=True)


def test_host_environment_and_home_are_invisible(sandbox, monkeypatch):
    """A secret env var of the parent is absent; /proc/<parent>/environ and the home dir are unreadable."""
    monkeypatch.setenv("USERLM_SANDBOX_SECRET", "s3cr3t-value-42")
    code = (
        "import os\n"
        "print(dict(os.environ))\n"
        "for attempt in (lambda: open(f'/proc/{os.getppid()}/environ', 'rb').read(),\n"
        "                lambda: open('/proc/1/environ', 'rb').read(),\n"
        "                lambda: os.listdir(os.path.expanduser('~' + 'root'))):\n"
        "    try:\n"
        "        print(attempt())\n"
        "    except Exception as err:\n"
        "        print(type(err).__name__)\n"
        "assert 'USERLM_SANDBOX_SECRET' not in os.environ\n"
    )
    result = sandbox.run_program(code)
    assert "s3cr3t" not in result.stdout and "USERLM_SANDBOX_SECRET" not in result.stdout
    assert Path.home().name not in result.stdout.replace("'HOME'", "")
    errors = ("PermissionError", "SandboxViolation", "FileNotFoundError")
    assert sum(result.stdout.count(e) for e in errors) == 3, result.stdout


@pytest.fixture
def listener():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    connections = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                connections.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_listener_fixture_sees_host_connections(listener):
    """Control: the listener does record a connection made from the host."""
    port, connections = listener
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    time.sleep(0.4)
    assert len(connections) == 1


def test_no_network_connection_reaches_a_local_server(sandbox, listener):
    """Connecting to a real listening socket on 127.0.0.1 fails; no connection arrives."""
    port, connections = listener
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'exfiltrate')\n"
    result = sandbox.run_program(code)
    time.sleep(0.4)
    assert not result.passed and result.error_type in ("forbidden", "runtime")
    assert connections == []


def test_killing_the_parent_fails(sandbox):
    """os.kill(getppid()), os.killpg on the parent's group and kill(-1) leave the host alive."""
    code = (
        "import os, signal\n"
        "for attempt in (lambda: os.kill(os.getppid(), signal.SIGKILL),\n"
        "                lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL),\n"
        "                lambda: os.kill(-1, signal.SIGKILL)):\n"
        "    try:\n"
        "        attempt()\n"
        "    except Exception as err:\n"
        "        print(type(err).__name__)\n"
        "os.killpg(os.getpgid(os.getppid()), signal.SIGTERM)\n"
    )
    result = sandbox.run_program(code)
    assert not result.passed
    # inside bubblewrap the parent is the namespace's pid 1, whose group is not even visible (runtime)
    assert result.error_type in ("forbidden", "killed") + (("runtime",) if sandbox.isolation == "bwrap" else ())
    assert os.getpid() > 0 and signal.getsignal(signal.SIGTERM) is not None  # we are still here


def test_ctypes_tricks_are_contained(sandbox, listener, tmp_path):
    """Going around Python with libc (kill, socket+connect, open for writing) achieves nothing."""
    port, connections = listener
    canary = tmp_path / "ctypes_canary.txt"
    canary.write_text("intact")
    code = (
        "import ctypes, os, struct\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('kill', libc.kill(os.getppid(), 9))\n"
        "fd = libc.socket(2, 1, 0)\n"
        f"addr = struct.pack('<HH4s8x', 2, ({port} >> 8) | (({port} & 255) << 8), bytes([127, 0, 0, 1]))\n"
        "print('connect', libc.connect(fd, addr, len(addr)))\n"
        f"print('open', libc.open({str(canary).encode()!r}, 1 | 64 | 512, 0o666))\n"
        "raise SystemExit(1)\n"
    )
    result = sandbox.run_program(code)
    time.sleep(0.4)
    assert not result.passed
    assert connections == []
    assert canary.read_text() == "intact"
    if sandbox.config.python_guard:
        assert result.error_type == "forbidden"
    else:  # libc calls ran and failed at the OS level
        assert "kill -1" in result.stdout and "connect -1" in result.stdout and "open -1" in result.stdout


def test_no_leftovers_between_runs(sandbox):
    """A daemon escaping the process group is killed; files written in one run are gone in the next."""
    sandbox.run_program("open('leftover.txt', 'w').write('x')")
    daemon = (
        "import os, time\n"
        "try:\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        time.sleep(30)\n"
        "except Exception as err:\n"
        "    print(type(err).__name__)\n"
    )
    sandbox.run_program(daemon)
    assert _slot_processes(sandbox) == []
    result = sandbox.run_program("import os\nassert 'leftover.txt' not in os.listdir('.'), os.listdir('.')")
    assert result.passed, result


def test_concurrent_sandboxes_never_share_a_uid():
    """Two Sandbox objects (as two processes would) get different uids; one's cleanup spares the other."""
    first = Sandbox(SandboxConfig(timeout_s=5, workers=1))
    second = Sandbox(SandboxConfig(timeout_s=5, workers=1))
    slow = first.submit("run_program", "import os, time\ntime.sleep(1.0)\nprint(os.getuid())")
    time.sleep(0.3)
    quick = [second.run_program("import os\nprint(os.getuid())") for _ in range(3)]
    result = slow.result()
    assert result.passed, result
    assert all(q.passed for q in quick)
    assert {q.stdout.strip() for q in quick}.isdisjoint({result.stdout.strip()})
    first.close()
    second.close()


# --------------------------------------------------------------------------- forging the grade
# The attacks an outside review ran against the previous sandbox (all graded correct there). They
# know the one example the user shows and try to be graded correct on the hidden tests anyway. Each
# adapts to both the previous runner (a ``job`` dict with nonce/result_fd, repr lines) and the
# current one (tokens, the result fd in ``sys.argv``): whatever they find, they forge with it.

_ATTACK_PRELUDE = """
import sys, os, gc, json
EX_ARGS = {args!r}
EX = {expected!r}
def _is_example(args):
    return list(args) == list(EX_ARGS)
def _frame(tok, value):
    data = json.dumps([tok, "value", value]).encode()
    return len(data).to_bytes(4, "big") + data
def _forge_new(tok):
    # the current runner: answer the pending request (the token is in the caller's frame) twice
    for fd in (int(a) for a in sys.argv[1:] if a.isdigit()):
        try:
            os.write(fd, _frame(tok, EX) * 3)
        except OSError:
            pass
def _forge_old(job):
    # the previous runner: every line claims the example's index, then a "done", then exit
    k = [list(a) for a in job["inputs"]].index(list(EX_ARGS))
    for _ in job["inputs"]:
        os.write(job["result_fd"], (repr({{"n": job["nonce"], "event": "call", "i": k, "value": EX}}) + "\\n").encode())
    os.write(job["result_fd"], (repr({{"n": job["nonce"], "event": "done"}}) + "\\n").encode())
    os._exit(0)
"""

REPR_ATTACK = (
    _ATTACK_PRELUDE
    + """
def _index():
    fr = sys._getframe(0)
    while fr is not None:
        job = fr.f_locals.get("job")
        if isinstance(job, dict) and "inputs" in job:
            return [list(a) for a in job["inputs"]].index(list(EX_ARGS))
        fr = fr.f_back
    return 0
class Evil(int):
    def __repr__(self):
        return repr(EX) + ", 'i': " + str(_index())
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
def {name}(*args):
    return Evil(0)
"""
)

FRAME_ATTACK = (
    _ATTACK_PRELUDE
    + """
def {name}(*args):
    fr = sys._getframe(1)
    while fr is not None:
        job = fr.f_locals.get("job")
        if isinstance(job, dict) and "nonce" in job and "inputs" in job:
            _forge_old(job)
        tok = fr.f_locals.get("tok")
        if isinstance(tok, str):
            _forge_new(tok)
        fr = fr.f_back
    return EX if _is_example(args) else None
"""
)

GC_ATTACK = (
    _ATTACK_PRELUDE
    + """
def {name}(*args):
    for o in gc.get_objects():
        if isinstance(o, dict) and "nonce" in o and "result_fd" in o and "inputs" in o:
            _forge_old(o)
    for o in gc.get_objects():
        if type(o) is tuple and len(o) == 3 and o[0] == "call" and isinstance(o[1], str):
            _forge_new(o[1])  # the request tuple the runner unmarshalled
    return EX if _is_example(args) else None
"""
)

ATTACKS = {"repr_subclass": REPR_ATTACK, "stack_walk": FRAME_ATTACK, "gc_scan": GC_ATTACK}


def _example(task):
    """The hidden test the user shows (the last shard's example), as an attacker reads it."""
    name = task.metadata["entry_point"]
    text = task.shards[-1].text
    for case in task.metadata["tests"]["cases"]:
        if f"`{_call_text(name, case.args)}` should return `{case.expected!r}`" in text:
            return case
    raise AssertionError(f"no example in {text!r}")


def _attack_code(attack, task):
    example = _example(task)
    return ATTACKS[attack].format(args=list(example.args), expected=example.expected, name=task.metadata["entry_point"])


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_forging_attacks_through_the_env_are_not_correct(sandbox, attack):
    """A reply right only on the shown example, plus a forging trick, is never graded correct."""
    env = gym.make("UserLM-Code-v0", user="replay", tasks="code:procedural", sandbox=sandbox)
    for seed in range(2):
        env.reset(seed=seed)
        task = env.unwrapped._state.task
        _, reward, terminated, _, info = env.step(f"```python\n{_attack_code(attack, task)}\n```")
        assert info["answer_attempt"] and info["correct"] is False, (attack, info)
        assert info["tests_passed"] < info["tests_total"] and reward <= 0 and not terminated
    env.close()


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_forging_attacks_through_the_sandbox_fail(sandbox, attack):
    """The same attacks on Sandbox.run_calls, also with the example as the first test (LiC: public first)."""
    for seed in (3, 4):
        task = ProceduralCodeTasks().task_for_seed(seed)
        cases = list(task.metadata["tests"]["cases"])
        example = _example(task)
        for order in (cases, [example] + [c for c in cases if c is not example]):
            result = sandbox.run_calls(_attack_code(attack, task), task.metadata["entry_point"], order)
            assert not result.passed and result.tests_passed <= 1, (attack, result)
            assert result.error_type in ("wrong_output", "forbidden"), result


# --------------------------------------------------------------------------- files the host reads


def test_replacing_output_files_by_a_fifo_or_a_symlink_neither_hangs_nor_leaks(sandbox, tmp_path):
    """The host reads no file: FIFOs and symlinks named like the old output files change nothing."""
    secret = tmp_path / "root_only.txt"
    secret.write_text("ROOT-ONLY-CANARY")
    secret.chmod(0o600)
    code = (
        "import os\n"
        "for name in ('.stdout', '.stderr', 'stdout', 'result', 'job.marshal'):\n"
        f"    for make in (lambda: os.mkfifo(name), lambda: os.symlink({str(secret)!r}, name + '.l')):\n"
        "        try:\n"
        "            make()\n"
        "        except Exception as err:\n"
        "            print(type(err).__name__)\n"
        "for fd in (1, 2):\n"
        "    try:\n"
        "        os.dup2(os.open('.stdout', os.O_RDWR), fd)\n"
        "    except Exception as err:\n"
        "        pass\n"
        "def f(x):\n"
        "    return x\n"
    )
    started = time.perf_counter()
    result = sandbox.run_calls(code, "f", [TestCase((1,), 1)])
    assert time.perf_counter() - started < TIMEOUT + 1.5
    assert "ROOT-ONLY-CANARY" not in repr(result)
    assert result.passed  # nothing it did touched the grading


def test_filesystem_escapes_leave_nothing_behind(sandbox):
    """Renames, hard links, mkdir, /dev/shm and /tmp files, POSIX shm: nothing outlives the run."""
    tag = f"sbxescape{os.getpid()}"
    code = (
        "import os\n"
        "open('f', 'w').write('x')\n"
        "for attempt in (\n"
        f"    lambda: os.rename('f', '/tmp/{tag}_renamed'),\n"
        f"    lambda: os.mkdir('/tmp/{tag}_dir'),\n"
        f"    lambda: os.link('/tmp/{tag}_renamed', '/tmp/{tag}_link'),\n"
        f"    lambda: os.link('g', '/tmp/{tag}_link2') if open('g', 'w').write('y') else None,\n"
        f"    lambda: open('/dev/shm/{tag}_shm', 'w').write('y' * 100000),\n"
        f"    lambda: open('/tmp/{tag}_tmp', 'w').write('y'),\n"
        f"    lambda: open('/var/tmp/{tag}_vartmp', 'w').write('y'),\n"
        f"    lambda: open('/run/lock/{tag}_lock', 'w').write('y'),\n"
        f"    lambda: os.symlink('/etc/passwd', '/tmp/{tag}_sym'),\n"
        f"    lambda: os.mkfifo('/tmp/{tag}_fifo'),\n"
        f"    lambda: __import__('_posixshmem').shm_open('/{tag}_posix', os.O_CREAT | os.O_RDWR, 0o600),\n"
        "):\n"
        "    try:\n"
        "        attempt()\n"
        "    except Exception as err:\n"
        "        print(type(err).__name__)\n"
    )
    sandbox.run_program(code)
    left = [
        os.path.join(d, p) for d in ("/tmp", "/dev/shm", "/var/tmp", "/run/lock") for p in os.listdir(d) if tag in p
    ]
    for path in left:  # clean up before failing
        subprocess.run(["rm", "-rf", path], check=False)
    assert left == []


# --------------------------------------------------------------------------- bubblewrap-only guarantees


def test_bwrap_hides_the_project_data_homes_and_task_files(bwrap_sandbox, tmp_path):
    """/work, the project, /root, /home and a world-readable task file do not exist inside."""
    task_file = tmp_path / "lic_task.json"
    task_file.write_text('{"private_test_cases": "HIDDEN-TEST-CANARY"}')
    task_file.chmod(0o644)
    project = Path(__file__).resolve().parents[1]
    paths = [str(task_file), str(tmp_path), str(project), str(project / "README.md"), "/work", "/root", "/home"]
    code = (
        "import os\n"
        f"for p in {paths!r}:\n"
        "    print(p, os.path.exists(p))\n"
        "    try:\n"
        "        print(open(p).read())\n"
        "    except Exception as err:\n"
        "        print(type(err).__name__)\n"
        "print(sorted(os.listdir('/')))\n"
    )
    result = bwrap_sandbox.run_program(code)
    assert result.passed, result
    assert "HIDDEN-TEST-CANARY" not in result.stdout and "userlm" not in result.stdout.lower().replace(
        str(project).lower(), ""
    )
    assert all(f"{p} False" in result.stdout for p in paths), result.stdout
    listing = result.stdout.strip().splitlines()[-1]
    assert "work" not in listing and "root" not in listing and "home" not in listing


def test_bwrap_tmp_and_shm_are_private_and_capped(bwrap_sandbox):
    """/tmp and /dev/shm are fresh, empty and size-capped (tmpfs_mb); what is written there stays inside."""
    tag = f"sbxprivate{os.getpid()}"
    code = (
        "import os\n"
        "print(sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')))\n"
        "for where in ('/dev/shm', '/tmp'):\n"
        "    try:\n"
        "        for i in range(40):\n"
        f"            open(f'{{where}}/{tag}{{i}}', 'wb').write(b'x' * 8 * 2**20)\n"
        "    except OSError as err:\n"
        "        print(where, err.errno, i)\n"
    )
    result = bwrap_sandbox.run_program(code)
    assert result.passed, result
    assert result.stdout.startswith("[] []")
    assert "/dev/shm 28" in result.stdout and "/tmp 28" in result.stdout, result.stdout  # ENOSPC at 64 MiB
    assert not [p for d in ("/tmp", "/dev/shm") for p in os.listdir(d) if tag in p]


def test_bwrap_mode_is_required_when_asked(monkeypatch):
    """isolation='bwrap' where bubblewrap cannot run is an error, 'auto' falls back with one warning."""
    import userlm_env.code.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "_bwrap_python", lambda configured: None)
    monkeypatch.setattr(sandbox_module, "_FALLBACK_WARNED", False)
    with pytest.raises(ValueError, match="bubblewrap"):
        Sandbox(SandboxConfig(isolation="bwrap", workers=1))
    with pytest.warns(RuntimeWarning, match="bubblewrap is unavailable"):
        box = Sandbox(SandboxConfig(isolation="auto", workers=1))
    assert box.isolation == "fallback" and box.run_program("pass").isolation == "fallback"
    box.close()


def test_rss_sampler_sees_an_allocation():
    """Control for the memory measurements above: a 64 MB allocation is visible to the sampler."""
    with _PeakRss() as rss:
        blob = b"x" * (64 * 2**20)
        time.sleep(0.05)
    del blob
    assert rss.growth_mb > 32
