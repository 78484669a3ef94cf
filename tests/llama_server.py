"""A real OpenAI-compatible server for the HTTP backend's tests and benchmarks (test infrastructure).

``python -m llama_cpp.server`` (``scripts/install_llama_server.sh`` builds it) on the bundled
SmolLM2-135M GGUF, on a free loopback port. Used by ``tests/`` and ``benchmarks/http_throughput.py``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

__all__ = ["LlamaServer", "free_port"]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` on the bundled SmolLM2-135M GGUF, on a free loopback port.

    A real OpenAI-compatible server for tests and benchmarks of the HTTP backend (needs
    ``scripts/install_llama_server.sh``). Starts in the constructor and waits until ``/v1/models``
    answers; :meth:`stop` terminates it (safe to call twice).

    Args:
        threads: llama.cpp threads for generation and prompt processing.
        n_ctx: context length.
        startup_timeout: seconds to wait for the server to answer.
    """

    def __init__(self, threads: int = 1, n_ctx: int = 2048, startup_timeout: float = 90.0):
        from userlm_env.backends.models import bundled_smollm2_gguf

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_smollm2_gguf()),
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx),
            "--n_threads", str(threads), "--n_threads_batch", str(threads),
        ]  # fmt: skip
        self.log = tempfile.TemporaryFile()  # the server logs a lot: a pipe would fill up and block it
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not come up within {startup_timeout:.0f} s")

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit within 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
