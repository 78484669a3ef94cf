"""A real OpenAI-compatible server for the HTTP backend's tests and benchmarks (test infrastructure).

The bundled SmolLM2-135M GGUF served by llama.cpp on a free loopback port, started and stopped by
:class:`~userlm_env.backends.managed_server.ManagedServer` (``python -m llama_cpp.server``, built by
``scripts/install_llama_server.sh``, or a C++ ``llama-server`` on ``PATH``). Used by ``tests/`` and
``benchmarks/http_throughput.py``.
"""

from __future__ import annotations

from userlm_env.backends.managed_server import ManagedServer, free_port
from userlm_env.backends.models import bundled_smollm2_gguf

__all__ = ["LlamaServer", "free_port"]


class LlamaServer(ManagedServer):
    """The bundled SmolLM2-135M on a private llama.cpp server: started in the constructor, :meth:`stop` ends it.

    Args:
        threads: llama.cpp threads for generation and prompt processing.
        n_ctx: context length.
        startup_timeout: seconds to wait for the server to answer.
    """

    def __init__(self, threads: int = 1, n_ctx: int = 2048, startup_timeout: float = 90.0):
        super().__init__(
            bundled_smollm2_gguf(), threads=threads, n_ctx=n_ctx, parallel=1, startup_timeout=startup_timeout
        )
