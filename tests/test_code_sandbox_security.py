"""Hostile code in the sandbox: every attack must be contained and reported as a failed run.

Each attack runs twice: with the Python-level guard (the default) and without it
(``python_guard=False``), to show the OS-level layers (rlimits, unprivileged uid, process group,
network namespace) contain it on their own.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from userlm_env.code.sandbox import Sandbox, SandboxConfig, TestCase, network_isolation

TIMEOUT = 1.5
LAYERS = {"guarded": True, "os_only": False}


@pytest.fixture(scope="module", params=list(LAYERS), ids=list(LAYERS))
def sandbox(request):
    box = Sandbox(SandboxConfig(timeout_s=TIMEOUT, memory_mb=256, workers=2, python_guard=LAYERS[request.param]))
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
    assert network_isolation() is not None and sandbox.network == "namespace"


def test_infinite_loop_is_killed_at_the_timeout(sandbox):
    """A busy loop ends as a timeout, within the wall-clock limit plus cleanup."""
    started = time.perf_counter()
    result = sandbox.run_calls("def f(x):\n    while True:\n        pass", "f", [TestCase((1,), 1)])
    assert time.perf_counter() - started < TIMEOUT + 2
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


def test_huge_output_is_capped_and_truncated(sandbox):
    """Printing gigabytes hits the file-size limit; the host reads back only a bounded prefix."""
    started = time.perf_counter()
    result = sandbox.run_program("import sys\nwhile True:\n    sys.stdout.write('x' * 1000000)")
    assert time.perf_counter() - started < TIMEOUT + 2
    assert not result.passed and result.error_type in ("output_limit", "timeout")
    assert len(result.stdout) <= sandbox.config.max_output_chars + 20
    assert result.stdout.endswith("[truncated]")


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
            assert not result.passed and result.error_type == "forbidden", result
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
    assert result.stdout.count("PermissionError") + result.stdout.count("SandboxViolation") == 3, result.stdout


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
    assert result.error_type in ("forbidden", "killed")
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
