"""The program that runs inside the sandbox (stdlib only, started with ``python -I -B``).

It is started as the invoking user (root in our containers) inside a fresh working directory,
in its own session and process group, possibly inside a new network namespace. In order it:

1. reads and deletes ``job.marshal`` (code, test inputs, limits, a nonce that marks genuine result
   lines; ``marshal`` because importing ``json`` costs ~9 ms of every run's start-up);
2. lowers its resource limits (CPU time, address space, file size, processes, open files, core);
3. drops privileges to the job's uid/gid when started as root (RLIMIT_NPROC does not bind root);
4. installs an audit hook (the Python-level guard) unless the job turns it off;
5. executes the candidate code in a fresh namespace and runs the tests, writing one JSON line per
   event to the result file descriptor.

Result lines are Python literals (``repr`` of plain dicts, read back by the host with
``ast.literal_eval``): ``{"n": nonce, "event": "compiled" | "call" | "assert" | "done" | "error", ...}``.
Never import this module from the package: it is a script.
"""

import builtins
import copy
import marshal
import math
import os
import resource
import sys

_SPAWN_EVENTS = {
    "os.fork",
    "os.forkpty",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "subprocess.Popen",
    "pty.spawn",
}
_NETWORK_EVENTS = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto"}
_FS_WRITE_EVENTS = {"os.remove", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.chown", "shutil.rmtree"}
_FS_LIST_EVENTS = {"os.listdir", "os.scandir"}


class SandboxViolation(PermissionError):
    """Raised by the guard when the code tries something the sandbox forbids."""


def _set_limits(limits):
    def cap(which, value):
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))

    cpu = int(limits["cpu_s"])
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at cpu s, SIGKILL a second later
    cap(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    cap(resource.RLIMIT_FSIZE, int(limits["file_size_bytes"]))
    cap(resource.RLIMIT_NPROC, int(limits["max_processes"]))
    cap(resource.RLIMIT_NOFILE, int(limits["max_open_files"]))
    cap(resource.RLIMIT_CORE, 0)


def _install_guard(workdir, private_roots):
    """A Python-level guard: no network, no new processes, no signals to others, no ctypes, no writes outside."""
    own_pid = os.getpid()
    work = os.path.realpath(workdir)
    private = [os.path.realpath(p) for p in private_roots if p]
    interpreter = [os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}]
    realpath, fspath, isinstance_, str_, bytes_ = os.path.realpath, os.fspath, isinstance, str, bytes

    def inside(path, roots):
        try:
            p = fspath(path)
            if isinstance_(p, bytes_):
                p = p.decode("utf-8", "replace")
            if not isinstance_(p, str_):
                return False
            p = realpath(p)
        except Exception:
            return False
        return any(p == r or p.startswith(r + os.sep) for r in roots)

    def hook(event, args):
        if event in _NETWORK_EVENTS:
            raise SandboxViolation(f"sandbox: network access is blocked ({event})")
        if event in _SPAWN_EVENTS:
            raise SandboxViolation(f"sandbox: starting processes is blocked ({event})")
        if event.startswith("ctypes."):
            raise SandboxViolation(f"sandbox: ctypes is blocked ({event})")
        if event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            if event != "os.kill" or args[0] != own_pid:
                raise SandboxViolation(f"sandbox: sending signals is blocked ({event})")
        elif event == "open":
            path, mode, flags = args
            if isinstance_(path, int):
                return
            writing = (isinstance_(mode, str_) and any(c in mode for c in "wax+")) or (
                isinstance_(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC)
            )
            if writing and not inside(path, [work, "/dev/null"]):
                raise SandboxViolation(f"sandbox: writing outside the sandbox is blocked ({path!r})")
            if private and inside(path, private) and not inside(path, interpreter):
                raise SandboxViolation(f"sandbox: reading private files is blocked ({path!r})")
        elif event in _FS_WRITE_EVENTS:
            if args and not inside(args[0], [work]):
                raise SandboxViolation(f"sandbox: changing files outside the sandbox is blocked ({event})")
        elif event in _FS_LIST_EVENTS:
            target = args[0] if args and args[0] is not None else "."
            if private and inside(target, private) and not inside(target, interpreter):
                raise SandboxViolation(f"sandbox: listing private directories is blocked ({event})")

    sys.addaudithook(hook)


def _jsonable(value, depth=0):
    if depth > 50:
        raise ValueError("value nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return {"__float__": "nan"}
        if math.isinf(value):
            return {"__float__": "inf" if value > 0 else "-inf"}
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[_jsonable(k, depth + 1), _jsonable(v, depth + 1)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted((_jsonable(v, depth + 1) for v in value), key=repr)}
    return {"__repr__": repr(value)[:200]}


def main():
    """Run the job in ``sys.argv[1]`` (a directory holding ``job.json``)."""
    workdir = sys.argv[1]
    job_path = os.path.join(workdir, "job.marshal")
    with open(job_path, "rb") as f:
        job = marshal.load(f)
    os.remove(job_path)
    nonce = job["nonce"]
    out = os.fdopen(int(job["result_fd"]), "w", buffering=1, encoding="utf-8")

    def emit(**event):
        out.write(repr({"n": nonce, **event}) + "\n")  # only plain values (see _jsonable)
        out.flush()

    _set_limits(job["limits"])
    if job.get("uid") is not None:
        os.setgroups([])
        os.setgid(int(job["gid"]))
        os.setuid(int(job["uid"]))
    os.chdir(workdir)
    os.umask(0o077)
    if job.get("guard", True):
        _install_guard(workdir, job.get("private_roots", []))
    del job_path
    code, mode = job["code"], job["mode"]
    namespace = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        compiled = compile(code, "<candidate>", "exec")
    except (SyntaxError, ValueError) as err:
        emit(event="error", stage="compile", type=type(err).__name__, message=str(err)[:500])
        return
    emit(event="compiled")
    try:
        exec(compiled, namespace)
    except BaseException as err:  # noqa: BLE001 - report anything, SystemExit included
        emit(event="error", stage="exec", type=type(err).__name__, message=str(err)[:500])
        return
    if mode == "program":
        emit(event="done")
        return
    entry = job.get("entry_point")
    fn = namespace.get(entry) if entry else None
    if not callable(fn):
        emit(event="error", stage="entry", type="NameError", message=f"no function named {entry!r} was defined")
        return
    if mode == "calls":
        for index, args in enumerate(job["inputs"]):
            try:
                value = fn(*copy.deepcopy(args))
                emit(event="call", i=index, value=_jsonable(value))
            except BaseException as err:  # noqa: BLE001
                emit(event="call", i=index, error=type(err).__name__, message=str(err)[:200])
                if isinstance(err, (KeyboardInterrupt, SystemExit)):
                    return
    elif mode == "script":
        # HumanEval style: the test code defines check(candidate); each top-level assert of check
        # was rewritten by the host into a call of __sbx_assert(index, thunk).
        def record(index, thunk):
            try:
                ok = bool(thunk())
                emit(event="assert", i=index, ok=ok)
            except BaseException as err:  # noqa: BLE001
                emit(event="assert", i=index, ok=False, error=type(err).__name__, message=str(err)[:200])
                if isinstance(err, (KeyboardInterrupt, SystemExit)):
                    raise

        test_ns = dict(namespace)
        test_ns["__sbx_assert"] = record
        try:
            exec(compile(job["test_code"], "<tests>", "exec"), test_ns)
            test_ns["check"](fn)
        except BaseException as err:  # noqa: BLE001
            emit(event="error", stage="tests", type=type(err).__name__, message=str(err)[:500])
            return
    emit(event="done")


if __name__ == "__main__":
    main()
