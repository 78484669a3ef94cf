"""The program that runs inside the sandbox (stdlib only, started with ``python -I -B -c BOOT REQ RES``).

The host starts a tiny bootstrap (:data:`userlm_env.code.sandbox.BOOTSTRAP`) with two pipe file
descriptors: ``REQ`` (host -> runner requests) and ``RES`` (runner -> host results). The first
frame on ``REQ`` is this module, compiled by the host (``marshal``; its source text when the
sandbox's interpreter has another bytecode version), so nothing of the project has to be visible
inside and no run pays for compiling it.
This file is NOT trusted by the host once the candidate's code has run: the candidate shares
this process and can read or rewrite anything here (frames, ``gc``, module globals, the fds).
The host's grading therefore never relies on it; see the protocol in ``sandbox.py``. In order:

1. reads the job (the first request: code, mode, limits, uid, a token) from ``REQ``;
2. lowers its resource limits (CPU time, address space, file size, processes, open files, core);
3. as root: hands the private ``/tmp`` and ``/dev/shm`` (bubblewrap) to the job's uid, then drops
   to that uid/gid (``RLIMIT_NPROC`` does not bind root);
4. installs an audit hook (the Python-level guard) unless the job turns it off;
5. compiles and executes the candidate code, then serves the host's requests one at a time: each
   ``call`` request carries one test's arguments and a fresh token; the answer is written before
   the next request is read. Nothing tells the runner (or the candidate) which test a request is.

Frames in both directions: a 4-byte big-endian length, then the payload. Requests are ``marshal``
tuples ``(op, token, payload)`` (the host is trusted; ``marshal`` is cheap to import). Results are
UTF-8 JSON arrays ``[token, kind, ...]`` written by the strict encoder below: a return value
crosses as plain data of EXACT built-in types (``type(x) is int``, never a subclass), tagged
where JSON is ambiguous (``["t", ...]`` tuple, ``["s", ...]`` set, ``["d", k, v, ...]`` dict...),
bounded in depth, size and int digits. Anything else is answered as ``invalid``. The runner
leaves with ``os._exit`` (no atexit handlers or finalizers of the candidate run).
It is a script: the package only loads it (without running ``main``) to reuse
:func:`encode_value` in the host's tests.
"""

import builtins
import marshal
import os
import resource
import sys

MAX_DEPTH = 100
"""Deepest nesting of a return value (the host rejects deeper ones too)."""
MAX_INT_BITS = 13000
"""Largest int magnitude that crosses (~3900 decimal digits; the host refuses longer literals)."""

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
_FS_WRITE_EVENTS = {
    "os.remove",
    "os.rmdir",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.mkdir",
    "os.utime",
    "os.chflags",
    "os.lchflags",
    "os.setxattr",
    "os.removexattr",
    "shutil.rmtree",
}
_FS_TWO_PATH_EVENTS = {"os.rename", "os.link", "os.symlink"}
_FS_LIST_EVENTS = {"os.listdir", "os.scandir"}


class SandboxViolation(PermissionError):
    """Raised by the guard when the code tries something the sandbox forbids."""


class _Reject(Exception):
    """A return value that cannot cross the boundary (wrong type, too large, too deep)."""


# --------------------------------------------------------------------------- frames


def _read_exact(fd, size):
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_request(fd):
    """The next request ``(op, token, payload)``, or ``None`` when the host closed the pipe."""
    header = _read_exact(fd, 4)
    if header is None:
        return None
    body = _read_exact(fd, int.from_bytes(header, "big"))
    return None if body is None else marshal.loads(body)


def _writer(fd):
    write = os.write

    def send(text):
        data = text.encode("utf-8")
        data = len(data).to_bytes(4, "big") + data
        view = memoryview(data)
        while view:
            view = view[write(fd, view) :]

    return send


# --------------------------------------------------------------------------- strict encoder

_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def _jstr(text):
    """A JSON string literal for an exact ``str`` (lone surrogates escaped, so UTF-8 always works)."""
    out = text.translate(_ESCAPES)
    if not out.isascii():
        try:
            out.encode("utf-8")
        except UnicodeEncodeError:
            out = "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in out)
    return '"' + out + '"'


def _dict_like(kind):
    """Exact ``collections`` dict types that cross as a dict (read through ``dict.items``)."""
    col = sys.modules.get("collections")
    if col is None:
        return False
    return (
        kind is getattr(col, "OrderedDict", None)
        or kind is getattr(col, "defaultdict", None)
        or (kind is getattr(col, "Counter", None))
    )


def encode_value(value, max_bytes):
    """JSON text of ``value`` in the wire format (see the module docstring).

    Raises:
        _Reject: a type other than the exact built-ins, deeper than MAX_DEPTH, over ``max_bytes``,
            or an int beyond MAX_INT_BITS.
    """
    parts = []
    size = [0]

    def put(text):
        size[0] += len(text) + 1
        if size[0] > max_bytes:
            raise _Reject(f"return value too large (over {max_bytes} bytes encoded)")
        parts.append(text)

    def items(tag, values, depth):
        put('["' + tag + '"')
        for item in values:
            put(",")
            enc(item, depth + 1)
        put("]")

    def enc(x, depth):
        if depth > MAX_DEPTH:
            raise _Reject(f"return value nested deeper than {MAX_DEPTH}")
        kind = type(x)
        if x is None:
            put("null")
        elif kind is bool:
            put("true" if x else "false")
        elif kind is int:
            if x.bit_length() > MAX_INT_BITS:
                raise _Reject(f"int with more than {MAX_INT_BITS} bits")
            put(int.__repr__(x))
        elif kind is float:
            if x != x:
                put('["x","nan"]')
            elif x in (float("inf"), float("-inf")):
                put('["x","inf"]' if x > 0 else '["x","-inf"]')
            else:
                put(float.__repr__(x))
        elif kind is str:
            if len(x) > max_bytes:
                raise _Reject(f"return value too large (a string of {len(x)} characters)")
            put(_jstr(x))
        elif kind is bytes:
            put('["b","' + x.hex() + '"]')
        elif kind is list:
            items("l", x, depth)
        elif kind is tuple:
            items("t", x, depth)
        elif kind is set:
            items("s", x, depth)
        elif kind is frozenset:
            items("f", x, depth)
        elif kind is dict or _dict_like(kind):
            put('["d"')
            for key, val in dict.items(x):
                put(",")
                enc(key, depth + 1)
                put(",")
                enc(val, depth + 1)
            put("]")
        else:
            raise _Reject(f"returned a {_type_name(x)}, not a plain built-in value")

    enc(value, 0)
    return "".join(parts)


def _type_name(value):
    try:
        name = type(value).__name__
    except BaseException:  # noqa: BLE001
        return "?"
    return name[:80] if isinstance(name, str) else "?"


def _text(err, limit=300):
    try:
        text = str(err)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return ""
    return text[:limit] if type(text) is str else ""


# --------------------------------------------------------------------------- limits and guard


def _set_limits(limits):
    def cap(which, value):
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))

    cpu = int(limits["cpu_s"])
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
        elif event in _FS_TWO_PATH_EVENTS:
            if len(args) < 2 or not inside(args[1], [work]) or (event != "os.symlink" and not inside(args[0], [work])):
                raise SandboxViolation(f"sandbox: links and renames outside the sandbox are blocked ({event})")
        elif event in _FS_LIST_EVENTS:
            target = args[0] if args and args[0] is not None else "."
            if private and inside(target, private) and not inside(target, interpreter):
                raise SandboxViolation(f"sandbox: listing private directories is blocked ({event})")

    sys.addaudithook(hook)


# --------------------------------------------------------------------------- main


def main():
    """Serve the host's requests on the fds named in ``sys.argv[1:3]``."""
    req_fd, res_fd = int(sys.argv[1]), int(sys.argv[2])
    job = _read_request(req_fd)
    if job is None:
        return
    job = job[2]
    token, max_bytes = job["token"], int(job["max_value_bytes"])
    send = _writer(res_fd)

    def error(stage, err, tok=token):
        send(f'[{_jstr(tok)},"error",{_jstr(stage)},{_jstr(_type_name(err))},{_jstr(_text(err))}]')

    _set_limits(job["limits"])
    uid = job.get("uid")
    if uid is not None:
        for path in job.get("chown", ()):
            os.chown(path, int(uid), int(job["gid"]))
            os.chmod(path, 0o700)
        os.setgroups([])
        os.setgid(int(job["gid"]))
        os.setuid(int(uid))
    workdir = job["workdir"]
    os.chdir(workdir)
    os.umask(0o077)
    if job.get("guard", True):
        _install_guard(workdir, job.get("private_roots", []))
    mode = job["mode"]
    namespace = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        compiled = compile(job["code"], "<candidate>", "exec")
    except BaseException as err:  # noqa: BLE001 - SyntaxError, ValueError (null bytes), MemoryError...
        error("compile", err)
        return
    try:
        exec(compiled, namespace)
    except BaseException as err:  # noqa: BLE001 - report anything, SystemExit included
        error("exec", err)
        return
    if mode == "program":
        send(f'[{_jstr(token)},"done"]')
        return
    entry = job.get("entry_point")
    fn = namespace.get(entry) if entry else None
    if not callable(fn):
        error("entry", NameError(f"no function named {entry!r} was defined"))
        return
    send(f'[{_jstr(token)},"ready"]')
    while True:
        request = _read_request(req_fd)
        if request is None or request[0] == "end":
            return
        op, tok, payload = request
        head = "[" + _jstr(tok) + ","
        if op == "call":
            try:
                value = fn(*payload)
            except BaseException as err:  # noqa: BLE001 - the host records it as that test's failure
                send(head + '"raised",' + _jstr(_type_name(err)) + "," + _jstr(_text(err)) + "]")
                continue
            try:
                text = head + '"value",' + encode_value(value, max_bytes) + "]"
            except _Reject as err:
                text = head + '"invalid",' + _jstr(str(err)) + "]"
            except BaseException as err:  # noqa: BLE001 - MemoryError, RecursionError while encoding
                text = head + '"invalid",' + _jstr("cannot encode the return value: " + _type_name(err)) + "]"
            send(text)
        elif op == "check":
            # HumanEval style: the test code defines check(candidate); each top-level assert of check
            # was rewritten by the host into a call of __sbx_assert(index, thunk).
            def record(index, thunk, head=head):
                try:
                    ok = bool(thunk())
                    send(f'{head}"assert",{int(index)},{"true" if ok else "false"},null,null]')
                except BaseException as err:  # noqa: BLE001
                    kind, text = _jstr(_type_name(err)), _jstr(_text(err, 200))
                    send(f'{head}"assert",{int(index)},false,{kind},{text}]')
                    if isinstance(err, (KeyboardInterrupt, SystemExit)):
                        raise

            test_ns = dict(namespace)
            test_ns["__sbx_assert"] = record
            try:
                exec(compile(payload, "<tests>", "exec"), test_ns)
                test_ns["check"](fn)
            except BaseException as err:  # noqa: BLE001
                error("tests", err, tok)
                return
            send(head + '"done"]')
            return


if __name__ == "__main__":
    _status = 0
    try:
        main()
    except BaseException:  # noqa: BLE001 - the runner itself failed (a closed pipe...): say so on stderr
        _status = 1
        try:
            import traceback

            traceback.print_exc()
        except BaseException:  # noqa: BLE001, S110
            pass
    # leave at once: no atexit handlers or finalizers of the candidate, and ~5 ms less per run
    for _stream in (sys.stdout, sys.stderr):
        try:
            _stream.flush()
        except BaseException:  # noqa: BLE001, S110 - a closed or replaced stream
            pass
    os._exit(_status)
