"""What every backend speaks: generation requests and results, the :class:`Backend` protocol.

Light on purpose (no torch, no transformers): the envs, users and the HTTP backend import these
names without loading a local model stack. :class:`~userlm_env.backends.TransformersBackend`
(local) and :class:`~userlm_env.backends.HTTPBackend` (OpenAI-compatible servers) both satisfy
:class:`Backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Backend", "Generation", "GenerationRequest", "SamplingParams", "chat_completer"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature=0`` means greedy decoding.

    Attributes:
        max_new_tokens: generation length limit per request.
        temperature: softmax temperature; 0 for greedy.
        top_p: nucleus sampling mass (1.0 disables it).
    """

    max_new_tokens: int = 64
    temperature: float = 0.6
    top_p: float = 0.9

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete.

    Attributes:
        prompt_ids: the tokenized prompt (chat template already applied).
        seed: seed of this request's sampling stream.
        banned_first_token_ids: tokens forbidden as the first generated token.
        banned_token_ids: tokens forbidden everywhere.
    """

    prompt_ids: tuple[int, ...]
    seed: int = 0
    banned_first_token_ids: tuple[int, ...] = ()
    banned_token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Generation:
    """The result of one request.

    Attributes:
        token_ids: generated tokens, including the stop token when one ended the generation.
        text: the decoded text, special tokens removed, stripped.
        stop_token_id: the stop token that ended it, or None when ``max_new_tokens`` was reached.
    """

    token_ids: tuple[int, ...]
    text: str
    stop_token_id: int | None = None


@runtime_checkable
class Backend(Protocol):
    """A text generator the users, judges and assistants can run on (local or behind a server).

    Attributes:
        tokenizer: the model's tokenizer (renders prompts, knows the stop tokens).
    """

    tokenizer: Any

    def render(self, messages: list[dict[str, str]], chat_template: str | None = None) -> Sequence[int]:
        """Token ids of ``messages`` under the chat template, opening a turn (contents never become control tokens)."""
        ...

    def generate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams, stop_token_ids: Sequence[int]
    ) -> list[Generation]:
        """Complete every request (one batched call where the engine batches); one result per request."""
        ...

    def chat_completer(self, params: SamplingParams | None = None, seed: int = 0):
        """A ``complete(prompts) -> texts`` callable on this backend (:func:`chat_completer`)."""
        ...

    def close(self) -> None:
        """Release the model or the connections."""
        ...


def chat_completer(backend, params: SamplingParams | None = None, seed: int = 0):
    """A ``complete(prompts) -> texts`` callable: each prompt is sent to ``backend`` as one user message.

    Lets components that only need text in, text out (the LLM judge) run on any backend with
    ``tokenizer``, ``render`` and ``generate`` (local or HTTP). Greedy, 64 tokens unless ``params`` says otherwise.
    """
    params = params or SamplingParams(max_new_tokens=64, temperature=0.0)
    eos = backend.tokenizer.eos_token_id
    stops = [eos] if isinstance(eos, int) else list(eos or [])

    def complete(prompts: Sequence[str]) -> list[str]:
        requests = [GenerationRequest(backend.render([{"role": "user", "content": p}]), seed=seed) for p in prompts]
        return [g.text for g in backend.generate(requests, params, stops)]

    return complete
