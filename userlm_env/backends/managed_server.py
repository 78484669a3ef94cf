"""OpenAI-compatible llama.cpp servers that the package starts, shares and stops itself.

``engine=llama-server`` in a model spec (``prompted:smollm2-135m?engine=llama-server``) runs the
model in a llama.cpp server process on a free loopback port and talks to it with the HTTP backend
(prompts rendered client-side, as for any server). The server is:

- the C++ ``llama-server`` when one is on ``PATH`` (or named by ``$USERLM_ENV_LLAMA_SERVER``):
  parallel slots with continuous batching (``--parallel``, ``--cont-batching``);
- else llama-cpp-python's ``python -m llama_cpp.server`` (``scripts/install_llama_server.sh``),
  which serves one request at a time.

One server per (model, options) per process, shared by every backend that names it (reference
counted: :meth:`ManagedServer.release` stops it when the last user lets go); every server still
running is stopped at interpreter exit. Start-up waits until ``GET /v1/models`` answers; a server
that exits or does not answer in time raises :class:`ServerStartError` with the tail of its log.
A server that dies later shows up as :class:`~userlm_env.backends.errors.ServerUnavailableError`
from the HTTP backend (after its retries), which the episode driver turns into ``user_error``
truncations; :meth:`ManagedServer.ensure_running` restarts it on the same port.

Why a server when the in-process engine is faster on a CPU (``benchmarks/engines.py``)? One server
is shared by several processes (``accelerate launch`` workers, evaluation jobs), its slots decode
concurrent requests together, and on a GPU the same client code talks to vLLM or SGLang instead.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from userlm_env.backends.errors import BackendError

__all__ = ["ManagedServer", "ServerStartError", "free_port", "server_command"]


class ServerStartError(BackendError):
    """A managed server could not be started; the message holds its command and the end of its log."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(gguf: Path, port: int, *, threads: int, n_ctx: int, parallel: int) -> list[str]:
    """The command line serving ``gguf`` on ``127.0.0.1:port``: C++ ``llama-server`` if found, else llama_cpp.server."""
    binary = os.environ.get("USERLM_ENV_LLAMA_SERVER") or shutil.which("llama-server")
    if binary:
        return [
            binary, "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
            "--ctx-size", str(n_ctx * parallel), "--parallel", str(parallel), "--cont-batching",
            "--threads", str(threads), "--threads-batch", str(threads),
        ]  # fmt: skip
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
    ]  # fmt: skip


@dataclass
class ManagedServer:
    """A llama.cpp server process on a free loopback port (see the module docstring).

    Args:
        gguf: the GGUF model file.
        threads: generation and prompt-processing threads.
        n_ctx: context length per request.
        parallel: concurrent slots (C++ ``llama-server`` only).
        startup_timeout: seconds to wait for the server to answer.

    Use :meth:`acquire` to share one server per configuration; the constructor starts a private one.
    """

    gguf: Path
    threads: int = 1
    n_ctx: int = 4096
    parallel: int = 4
    startup_timeout: float = 120.0
    port: int = field(default_factory=free_port)
    users: int = field(default=0, init=False)
    proc: subprocess.Popen | None = field(default=None, init=False, repr=False)

    _shared: ClassVar[dict] = {}  # registry: (gguf, threads, n_ctx, parallel) -> ManagedServer
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __post_init__(self) -> None:
        self.gguf = Path(self.gguf)
        self._log = None
        self.start()

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def command(self) -> list[str]:
        """The server's command line."""
        return server_command(self.gguf, self.port, threads=self.threads, n_ctx=self.n_ctx, parallel=self.parallel)

    def start(self) -> None:
        """Start the process and wait until it answers ``GET /v1/models``.

        Raises:
            ServerStartError: it exited, or did not answer within ``startup_timeout`` (then it is killed).
        """
        if not self.gguf.is_file():
            raise ServerStartError(f"model file not found: {self.gguf}")
        self._log = tempfile.TemporaryFile()  # servers log a lot: a pipe would fill up and block them
        try:
            self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        except OSError as err:
            raise ServerStartError(f"could not run {self.command[0]}: {err}") from err
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"the llama.cpp server exited with code {self.proc.returncode}.\n"
                    f"command: {' '.join(self.command)}\nlog:\n{self.log_tail()}\n"
                    "(llama_cpp.server needs `bash scripts/install_llama_server.sh`)"
                )
            if self.healthy(timeout=2):
                return
            time.sleep(0.2)
        self.stop()
        raise ServerStartError(
            f"the llama.cpp server did not answer within {self.startup_timeout:.0f} s.\n"
            f"command: {' '.join(self.command)}\nlog:\n{self.log_tail()}"
        )

    def healthy(self, timeout: float = 2.0) -> bool:
        """Whether the process runs and answers ``GET /v1/models``."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(self.url + "/models", timeout=timeout) as response:
                return response.status == 200
        except OSError:
            return False

    def ensure_running(self) -> None:
        """Restart the server on the same port if its process has exited."""
        if self.proc is None or self.proc.poll() is not None:
            self._close_log()
            self.start()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output."""
        if self._log is None or self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit within 10 s); safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None and not self._log.closed:
            self._log.close()

    @classmethod
    def acquire(cls, gguf: Path, *, threads: int = 1, n_ctx: int = 4096, parallel: int = 4) -> ManagedServer:
        """The shared server for this configuration, started on first use; pair with :meth:`release`."""
        key = (str(Path(gguf).resolve()), threads, n_ctx, parallel)
        with cls._registry_lock:
            server = cls._shared.get(key)
            if server is None:
                server = cls._shared[key] = cls(Path(gguf), threads=threads, n_ctx=n_ctx, parallel=parallel)
            else:
                server.ensure_running()
            server.users += 1
            return server

    def release(self) -> None:
        """Let go of a server from :meth:`acquire`; the last release stops it."""
        with self._registry_lock:
            self.users = max(0, self.users - 1)
            if self.users == 0:
                for key, server in list(self._shared.items()):
                    if server is self:
                        del self._shared[key]
                self.stop()

    @classmethod
    def stop_all(cls) -> None:
        """Stop every shared server (run at interpreter exit)."""
        with cls._registry_lock:
            servers, cls._shared = list(cls._shared.values()), {}
        for server in servers:
            server.stop()


atexit.register(ManagedServer.stop_all)
