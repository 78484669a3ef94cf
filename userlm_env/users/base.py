"""The small interface every simulated user implements.

The env asks its user for one turn at a time with a :class:`UserRequest` (the hidden task, the
conversation so far, which shards are already revealed, a sampling seed) and gets a
:class:`UserTurn` back. Users answer in batches (:meth:`UserSimulator.respond_batch`) so that a
vector env can put the pending turns of all its episodes into one model call.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from userlm_env.tasks.task import ShardedTask

Message = dict[str, str]


@dataclass(frozen=True)
class UserRequest:
    """What a user simulator sees when it must write the next user turn.

    Attributes:
        task: the hidden sharded task the user wants solved.
        conversation: the chat so far (``user``/``assistant`` messages); empty for the opening turn.
        revealed: shard ids already conveyed to the assistant, in order of revelation.
        turn: index of the user turn to write (0 = the opening message).
        seed: seed for this turn's sampling; the same request and seed give the same turn.
    """

    task: ShardedTask
    conversation: tuple[Message, ...]
    revealed: tuple[int, ...]
    turn: int
    seed: int

    @property
    def next_shard_id(self) -> int | None:
        """The lowest-numbered shard not yet revealed, or None when all are."""
        for shard in self.task.shards:
            if shard.shard_id not in self.revealed:
                return shard.shard_id
        return None


@dataclass(frozen=True)
class UserTurn:
    """One user turn.

    Attributes:
        text: the message shown to the assistant (empty only when the user ends the chat silently).
        ended: the user ends the conversation (UserLM's ``<|endconversation|>``).
        revealed: shard ids this turn conveys, when the simulator knows them; None lets the env
            detect them from the text (see :mod:`userlm_env.shard_detection`).
        meta: simulator details for logs (resamples, guardrail failures, fallbacks).
    """

    text: str
    ended: bool = False
    revealed: tuple[int, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class UserSimulator(abc.ABC):
    """A simulated user.

    Subclasses implement :meth:`respond_batch`. ``deterministic`` says whether the same request
    (same seed) always yields the same turn (true for the replay user and for seeded local models).
    """

    name: str = "user"
    deterministic: bool = True

    @abc.abstractmethod
    def respond_batch(self, requests: Sequence[UserRequest]) -> list[UserTurn]:
        """Write one user turn per request, in order."""

    def respond(self, request: UserRequest) -> UserTurn:
        """Write one user turn."""
        return self.respond_batch([request])[0]

    def close(self) -> None:
        """Release resources (servers, terminals). Models stay in the process cache."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
