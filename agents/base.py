"""The small interface every assistant policy implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

Message = dict[str, str]


class Assistant(abc.ABC):
    """An assistant policy: reads the conversation, writes the next assistant reply.

    Subclasses implement :meth:`act_batch`. ``needs_oracle`` marks scripted baselines that read
    the reference answer from ``info["oracle_answer"]`` (the rollout loop provides it to them only).
    """

    name: str = "assistant"
    needs_oracle: bool = False

    @abc.abstractmethod
    def act_batch(
        self, conversations: Sequence[list[Message]], seeds: Sequence[int], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        """One reply per conversation. ``seeds`` fix sampling; ``infos`` are the env's latest infos."""

    def act(self, conversation: list[Message], seed: int = 0, info: dict[str, Any] | None = None) -> str:
        """One reply."""
        return self.act_batch([conversation], [seed], [info or {}])[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
