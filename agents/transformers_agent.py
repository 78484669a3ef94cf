"""An assistant policy on a local transformers model (the policy trained in ``training/``)."""

from __future__ import annotations

from collections.abc import Sequence

from agents.base import Assistant, Message
from userlm_env.backends.base import Backend, GenerationRequest, SamplingParams

DEFAULT_SAMPLING = SamplingParams(max_new_tokens=160, temperature=0.7, top_p=0.9)


class TransformersAssistant(Assistant):
    """Replies with a local chat model, batched, each conversation with its own sampling seed.

    Args:
        backend: the model (its own chat template opens the assistant turn).
        system_prompt: prepended as a system message when given.
        sampling: temperature / top-p / reply length in tokens.
        name: label for logs.
    """

    def __init__(
        self,
        backend: Backend,
        system_prompt: str | None = None,
        sampling: SamplingParams = DEFAULT_SAMPLING,
        name: str = "transformers",
    ):
        self.backend = backend
        self.system_prompt = system_prompt
        self.sampling = sampling
        self.name = name
        eos = backend.tokenizer.eos_token_id
        self._stops = [eos] if isinstance(eos, int) else list(eos or [])
        extra = backend.token_id("<|eot_id|>")
        if extra is not None and extra not in self._stops:
            self._stops.append(extra)

    def messages(self, conversation: Sequence[Message]) -> list[Message]:
        """The chat as the model sees it (system prompt first when set)."""
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return head + [dict(m) for m in conversation]

    def act_batch(self, conversations, seeds, infos):
        """Generate all replies in one batched call."""
        requests = [
            GenerationRequest(self.backend.render(self.messages(c)), seed=int(s)) for c, s in zip(conversations, seeds)
        ]
        return [g.text for g in self.backend.generate(requests, self.sampling, self._stops)]
