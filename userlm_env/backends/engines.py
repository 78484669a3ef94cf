"""One place that turns a model spec into a backend, with the engine it names.

Model specs (wherever a model is named: ``prompted:MODEL``, ``userlm:MODEL``, an assistant, the LLM
judge) take options after ``?``::

    smollm2-135m?engine=llama.cpp&threads=2
    /models/UserLM-8b-Q4_K_M.gguf?engine=llama-server&parallel=8
    http://127.0.0.1:8000/v1?tokenizer=microsoft/UserLM-8b      (a server you run: the HTTP backend)

=================  ===========================================================================
engine             what runs the model
=================  ===========================================================================
``transformers``   :class:`~userlm_env.backends.TransformersBackend` (default): any model, CPU or
                   GPU, batched with eviction, per-request seeded sampling that batch composition
                   never changes
``llama.cpp``      :class:`~userlm_env.backends.llama_cpp_backend.LlamaCppBackend`: GGUF files
                   in-process, the fastest engine on a CPU (``benchmarks/engines.py``)
``llama-server``   a llama.cpp server the package starts, shares and stops
                   (:mod:`~userlm_env.backends.managed_server`), through the HTTP backend
``auto``           ``llama.cpp`` for a GGUF model (``smollm2-135m`` included) when llama-cpp-python
                   is installed and no GPU is visible, else ``transformers``
=================  ===========================================================================

Options: ``engine``; ``threads`` (llama.cpp engines); ``n_ctx`` (llama.cpp engines);
``prefix_cache`` (0/1: llama.cpp's reuse of the previous prompt's prefix, default 1; the
transformers engine's KV reuse, default 0); ``parallel`` (llama-server slots, default 4). Unknown
options and engines are errors that list the valid ones.

Determinism by engine: *transformers*: a request's tokens depend only on its seed (batching and
eviction never change them, tested), up to float rounding between batch shapes. *llama.cpp*: the
same request gives the same tokens on the same build and threads when it is evaluated cold
(``prefix_cache=0``); with the prefix cache, a prompt's cached part was computed in other chunks,
which can change rounding and, rarely, a sampled token. *llama-server*: as llama.cpp per request,
plus the server's own slot scheduling (requests decoded together share batches), so only
``parallel=1`` replays exactly. Engines never produce the same tokens as each other.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path
from urllib.parse import parse_qsl

from userlm_env.backends.errors import ServerUnavailableError
from userlm_env.backends.http_backend import HTTPBackend, is_http_spec
from userlm_env.backends.models import BUNDLED_SMOLLM2

ENGINES = ("auto", "transformers", "llama.cpp", "llama-server")
OPTIONS = ("engine", "threads", "n_ctx", "prefix_cache", "parallel")

__all__ = ["ENGINES", "ManagedHTTPBackend", "make_backend", "resolve_engine", "split_options"]


def split_options(spec: str) -> tuple[str, dict[str, str]]:
    """``("MODEL", {option: value})`` from ``MODEL?key=value&...`` (HTTP specs are returned whole).

    Raises:
        ValueError: an unknown option or engine (the message lists the valid ones).
    """
    if is_http_spec(spec) or "?" not in spec:
        return spec, {}
    model, _, query = spec.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    for key in options:
        if key not in OPTIONS:
            close = difflib.get_close_matches(key, OPTIONS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown model option {key!r} in {spec!r}.{hint} Valid options: {', '.join(OPTIONS)}")
    engine = options.get("engine", "transformers")
    if engine not in ENGINES:
        close = difflib.get_close_matches(engine, ENGINES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown engine {engine!r} in {spec!r}.{hint} Engines: {', '.join(ENGINES)}")
    return model, options


def _is_gguf(model: str) -> bool:
    return model == BUNDLED_SMOLLM2 or Path(model).suffix == ".gguf"


def resolve_engine(model: str, engine: str = "auto") -> str:
    """The engine ``auto`` stands for with this model on this machine (other engines are returned as is)."""
    if engine != "auto":
        return engine
    if not _is_gguf(model) or importlib.util.find_spec("llama_cpp") is None:
        return "transformers"
    try:
        import torch

        if torch.cuda.is_available():
            return "transformers"
    except ImportError:
        pass
    return "llama.cpp"


class ManagedHTTPBackend(HTTPBackend):
    """The HTTP backend on a :class:`~userlm_env.backends.managed_server.ManagedServer`; ``close()`` releases it."""

    engine = "llama-server"

    def __init__(self, server, **kwargs):
        super().__init__(server.url, **kwargs)
        self.server = server

    def generate(self, requests, params, stop_token_ids):
        """As :meth:`HTTPBackend.generate`; a server that crashed is restarted (same port) and the call retried once."""
        try:
            return super().generate(requests, params, stop_token_ids)
        except ServerUnavailableError:
            if self.server is None or self.server.healthy():
                raise
            self.server.ensure_running()
            return super().generate(requests, params, stop_token_ids)

    def close(self) -> None:
        """Close the connections and release the server (the last backend on it stops it)."""
        super().close()
        server, self.server = self.server, None
        if server is not None:
            server.release()


def _flag(value: str, name: str) -> bool:
    if value not in ("0", "1", "true", "false"):
        raise ValueError(f"model option {name} must be 0 or 1, got {value!r}")
    return value in ("1", "true")


def make_backend(spec: str, *, device: str | None = None, dtype: str = "auto"):
    """The backend running ``spec`` (see the module docstring for the spec's options).

    Args:
        spec: ``MODEL[?engine=...&...]`` or an HTTP spec.
        device: device of a transformers model.
        dtype: dtype of a transformers model.

    Raises:
        ValueError: unknown option or engine.
        userlm_env.backends.ModelLoadError: the model cannot be loaded by that engine.
        userlm_env.backends.managed_server.ServerStartError: a managed server did not start.
    """
    if is_http_spec(spec):
        return HTTPBackend.from_spec(spec)
    model, options = split_options(spec)
    engine = resolve_engine(model, options.get("engine", "transformers"))
    threads = int(options["threads"]) if "threads" in options else None
    n_ctx = int(options.get("n_ctx", 4096))
    if engine == "llama.cpp":
        from userlm_env.backends.llama_cpp_backend import LlamaCppBackend

        prefix_cache = _flag(options.get("prefix_cache", "1"), "prefix_cache")
        return LlamaCppBackend.from_spec(model, threads=threads, n_ctx=n_ctx, prefix_cache=prefix_cache)
    if engine == "llama-server":
        from userlm_env.backends.llama_cpp_backend import gguf_path
        from userlm_env.backends.managed_server import ManagedServer

        path = gguf_path(model)
        parallel = int(options.get("parallel", 4))
        server = ManagedServer.acquire(path, threads=threads or 1, n_ctx=n_ctx, parallel=parallel)
        try:
            return ManagedHTTPBackend(server, tokenizer=model, plain_sampling=True, concurrency=server.parallel)
        except Exception:
            server.release()
            raise
    from userlm_env.backends.transformers_backend import TransformersBackend  # torch: only for local models

    prefix_cache = _flag(options.get("prefix_cache", "0"), "prefix_cache")
    return TransformersBackend.from_spec(model, device=device, dtype=dtype, prefix_cache=prefix_cache)
