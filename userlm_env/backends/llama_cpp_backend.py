"""Generation with llama.cpp in-process (``llama-cpp-python``) on a GGUF model: the fast CPU engine.

Selected with ``engine=llama.cpp`` in a model spec (``prompted:smollm2-135m?engine=llama.cpp``, see
:func:`userlm_env.backends.engines.make_backend`). Prompts are rendered with the model's Hugging Face
tokenizer exactly as :class:`~userlm_env.backends.TransformersBackend` renders them (same token ids,
control-token strings in contents stay text) and go to llama.cpp as token ids, never as text.

Why this engine (measured on 2 CPU cores, see ``benchmarks/engines.py``): llama.cpp runs the
quantized model several times faster per stream than transformers in fp32, and it keeps the KV cache
of its last sequence, so a prompt sharing a prefix with the previous one (every prompted-user prompt
starts with the same instructions and examples) only prefills its new suffix. It decodes one sequence
at a time: requests of a batch run one after the other (on a CPU the engine's single-stream speed
beats transformers' batching; on a GPU use a server engine such as vLLM through the HTTP backend).

Sampling is llama.cpp's own (temperature, top-p; top-k, min-p and repetition penalties switched off)
seeded per request with the request's seed, and banned tokens are masked before sampling. Determinism:
the same request on the same build, thread count and cache state gives the same tokens, and batch
composition never matters (requests run alone). Two caveats, documented rather than hidden: a prompt
whose prefix was cached is prefilled in different chunks than a cold one, which can change float
rounding and, rarely, a sampled token; and tokens are not those of the transformers engine (different
kernels and weights' precision: Q4_1 here vs de-quantized fp32 there).
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from userlm_env.backends.base import Generation, GenerationRequest, SamplingParams, chat_completer
from userlm_env.backends.http_backend import load_tokenizer
from userlm_env.backends.models import BUNDLED_SMOLLM2, ModelLoadError, bundled_smollm2_gguf
from userlm_env.backends.rendering import render_chat_ids

_SEED_MASK = 0xFFFFFFFF


def gguf_path(spec: str) -> Path:
    """The GGUF file named by ``spec`` (``smollm2-135m`` or a ``.gguf`` path).

    Raises:
        ModelLoadError: the spec is not a GGUF model (llama.cpp runs GGUF files only).
    """
    if spec == BUNDLED_SMOLLM2:
        return bundled_smollm2_gguf()
    path = Path(spec).expanduser()
    if path.suffix != ".gguf":
        raise ModelLoadError(
            f"engine=llama.cpp runs GGUF files; {spec!r} is not one. Pass a .gguf file or 'smollm2-135m', "
            "convert the model with llama.cpp's convert_hf_to_gguf.py, or use engine=transformers."
        )
    if not path.is_file():
        raise ModelLoadError(f"GGUF file not found: {path}")
    return path


def _close_if_alive(ref: weakref.ref) -> None:
    backend = ref()
    if backend is not None:
        backend.close()


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class LlamaCppBackend:
    """In-process llama.cpp generation on a GGUF model (see the module docstring).

    Args:
        llama: a ``llama_cpp.Llama`` (see :meth:`from_spec`).
        tokenizer: the model's Hugging Face tokenizer (renders prompts, names stop tokens).
        spec: the model spec it was loaded from.
        prefix_cache: reuse llama.cpp's KV cache of the previous prompt's shared prefix (the speed-up
            above). ``False`` evaluates every prompt from scratch: slower, and a request's tokens then
            no longer depend on which request ran before it (bitwise reproducible replays).

    ``stats``: ``calls``, ``prompt_tokens``, ``prefill_tokens`` (prompt tokens llama.cpp evaluated),
    ``cached_tokens`` (prompt tokens taken from its KV cache), ``cache_hits``, ``generated_tokens``,
    ``decode_slots`` (one per generated token: one sequence at a time).
    """

    llama: Any
    tokenizer: Any
    spec: str = ""
    prefix_cache: bool = True
    stats: dict[str, int] = field(
        default_factory=lambda: (
            dict.fromkeys(
                ("calls", "prompt_tokens", "prefill_tokens", "cached_tokens", "cache_hits", "generated_tokens"), 0
            )
            | {"decode_slots": 0}
        )
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    engine = "llama.cpp"

    @classmethod
    def from_spec(
        cls, spec: str, *, threads: int | None = None, n_ctx: int = 4096, prefix_cache: bool = True
    ) -> LlamaCppBackend:
        """Load the GGUF model named by ``spec`` (``smollm2-135m`` or a ``.gguf`` path).

        Args:
            spec: the model.
            threads: llama.cpp threads (default: the CPUs this process may use; on a machine
                shared with other jobs, fewer threads than cores is often faster).
            n_ctx: context length (prompt + generated tokens).
            prefix_cache: see the class.

        Raises:
            ModelLoadError: not a GGUF model, file missing, or ``llama-cpp-python`` not installed.
        """
        path = gguf_path(spec)
        try:
            from llama_cpp import Llama
        except ImportError as err:
            raise ModelLoadError(
                "engine=llama.cpp needs llama-cpp-python: `bash scripts/install_llama_server.sh` builds it "
                f"portably (a plain `pip install llama-cpp-python` builds for the local CPU) ({err})"
            ) from err
        threads = threads or _default_threads()
        llama = Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False, seed=0
        )
        tokenizer = load_tokenizer(spec if spec == BUNDLED_SMOLLM2 else str(path))
        backend = cls(llama=llama, tokenizer=tokenizer, spec=spec, prefix_cache=prefix_cache)
        # llama-cpp-python's own finalizer fails at interpreter exit (its C bindings are gone by then)
        atexit.register(_close_if_alive, weakref.ref(backend))
        return backend

    def token_id(self, token: str) -> int | None:
        """Id of a single special/added token, or None when the vocabulary lacks it."""
        tid = self.tokenizer.convert_tokens_to_ids(token)
        return None if tid is None or tid == self.tokenizer.unk_token_id else int(tid)

    def render(self, messages: list[dict[str, str]], chat_template: str | None = None) -> tuple[int, ...]:
        """Token ids of ``messages`` under the chat template, opening a turn (as the transformers engine)."""
        return tuple(render_chat_ids(self.tokenizer, messages, chat_template=chat_template))

    def generate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams, stop_token_ids: Sequence[int]
    ) -> list[Generation]:
        """Complete every request, one after the other (llama.cpp decodes one sequence at a time)."""
        stops = {int(s) for s in stop_token_ids}
        with self._lock:  # one Llama context: one sequence at a time
            return [self._generate_one(request, params, stops) for request in requests]

    def _generate_one(self, request: GenerationRequest, params: SamplingParams, stops: set[int]) -> Generation:
        prompt = [int(t) for t in request.prompt_ids]
        if not prompt:
            raise ValueError("empty prompt: a generation request needs at least one token")
        n_ctx = self.llama.n_ctx()
        if len(prompt) + params.max_new_tokens > n_ctx:
            raise ValueError(
                f"prompt of {len(prompt)} tokens + max_new_tokens={params.max_new_tokens} exceeds the llama.cpp "
                f"context of {n_ctx} tokens; load the backend with a larger n_ctx"
            )
        if not self.prefix_cache:
            self.llama.reset()
        cached = self._cached_prefix(prompt)
        self.llama.set_seed(request.seed & _SEED_MASK)
        tokens: list[int] = []
        stop = None
        for token in self.llama.generate(
            prompt,
            temp=params.temperature,
            top_p=params.top_p,
            top_k=0,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            logits_processor=self._ban_processor(request, len(prompt)),
        ):
            tokens.append(int(token))
            if token in stops:
                stop = int(token)
                break
            if len(tokens) >= params.max_new_tokens:
                break
        self.stats["calls"] += 1
        self.stats["prompt_tokens"] += len(prompt)
        self.stats["prefill_tokens"] += len(prompt) - cached
        self.stats["cached_tokens"] += cached
        self.stats["cache_hits"] += int(cached > 0)
        self.stats["generated_tokens"] += len(tokens)
        self.stats["decode_slots"] += len(tokens)
        return Generation(tuple(tokens), self.tokenizer.decode(tokens, skip_special_tokens=True).strip(), stop)

    def _cached_prefix(self, prompt: list[int]) -> int:
        """Prompt tokens llama.cpp will take from its KV cache.

        Its own rule: the prefix shared with the tokens it holds, minus one token when the whole prompt
        is held (so that the last position's logits are computed again).
        """
        held = self.llama.input_ids[: self.llama.n_tokens]
        n = 0
        for a, b in zip(held, prompt):
            if int(a) != b:
                break
            n += 1
        return min(n, len(prompt) - 1)

    @staticmethod
    def _ban_processor(request: GenerationRequest, prompt_length: int):
        """A llama.cpp logits processor masking the request's banned tokens, or None without bans."""
        banned, banned_first = list(request.banned_token_ids), list(request.banned_first_token_ids)
        if not banned and not banned_first:
            return None

        def ban(input_ids, scores):
            if banned:
                scores[banned] = -float("inf")
            if banned_first and len(input_ids) == prompt_length:
                scores[banned_first] = -float("inf")
            return scores

        return [ban]

    def chat_completer(self, params: SamplingParams | None = None, seed: int = 0):
        """A ``complete(prompts) -> texts`` callable on this backend (see :func:`chat_completer`)."""
        return chat_completer(self, params, seed)

    def close(self) -> None:
        """Free the llama.cpp context and model (safe to call twice)."""
        llama, self.llama = self.llama, None
        if llama is not None and hasattr(llama, "close"):
            llama.close()
