"""The small interface every simulated user implements.

The env asks its user for one turn at a time with a :class:`UserRequest` (the hidden task, the
conversation so far, which shards are already revealed, a sampling seed) and gets a
:class:`UserTurn` back. Users answer in batches (:meth:`UserSimulator.respond_batch`) so that a
vector env can put the pending turns of all its episodes into one model call.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from userlm_env.seeding import derive_seed
from userlm_env.tasks.task import ShardedTask

if TYPE_CHECKING:
    from userlm_env.backends.base import Backend, Generation, GenerationRequest, SamplingParams

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
        reveal: the env's ``reveal=`` mode for env-controlled users (None: the user's own, ``"ordered"``
            for the built-in users; see :mod:`userlm_env.users.reveal`).
        profile: the env's ``user_profile=`` (a preset name or ``UserProfile``; None: the user's own).
        judgements: the env judge's verdict (``Judgement``) on each assistant reply so far, in order
            (empty when the request is built outside an env); profiles read them (patience, satisfaction).
    """

    task: ShardedTask
    conversation: tuple[Message, ...]
    revealed: tuple[int, ...]
    turn: int
    seed: int
    reveal: str | None = None
    profile: Any = None
    judgements: tuple[Any, ...] = ()

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
    env_controlled: bool = False
    """The env decides what it reveals: it honours the env's ``reveal=`` and ``user_profile=`` (replay, prompted)."""

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


@dataclass(frozen=True)
class Sampled:
    """The outcome of :func:`sample_until_accepted` for one request.

    Attributes:
        generation: the accepted generation, or the last one when none was accepted.
        accepted: a sample passed the check.
        attempts: samples drawn.
        rejections: the check's reason for each rejected sample, in order.
    """

    generation: Generation
    accepted: bool
    attempts: int
    rejections: list[str]


def sample_until_accepted(
    backend: Backend,
    requests: Sequence[UserRequest],
    make_request: Callable[[int, int], GenerationRequest],
    check: Callable[[int, Generation], str | None],
    *,
    max_attempts: int,
    params: SamplingParams,
    stop_token_ids: Sequence[int],
) -> list[Sampled]:
    """The guardrail loop of LM users: sample every request, resample the rejected ones (batched).

    Each round sends every still-rejected request to ``backend`` in one batched call; a request's
    attempt ``a`` is sampled with ``derive_seed("user-resample", request.seed, a)``, so a turn does
    not depend on which other requests share the batch.

    Args:
        backend: where the samples come from.
        requests: the user requests (only their ``seed`` is read here).
        make_request: ``(index, seed) -> GenerationRequest`` for request ``index``.
        check: ``(index, generation) -> None`` to accept, or the reason to reject.
        max_attempts: samples per request at most.
        params: sampling parameters.
        stop_token_ids: tokens that end a sample.

    Returns:
        One :class:`Sampled` per request, in order.
    """
    results: dict[int, Sampled] = {}
    rejections: dict[int, list[str]] = {i: [] for i in range(len(requests))}
    pending = list(range(len(requests)))
    for attempt in range(max_attempts):
        if not pending:
            break
        batch = [make_request(i, derive_seed("user-resample", requests[i].seed, attempt)) for i in pending]
        still = []
        for i, generation in zip(pending, backend.generate(batch, params, stop_token_ids)):
            reason = check(i, generation)
            if reason is not None:
                rejections[i].append(reason)
            if reason is None or attempt == max_attempts - 1:
                results[i] = Sampled(generation, reason is None, attempt + 1, rejections[i])
            else:
                still.append(i)
        pending = still
    return [results[i] for i in range(len(requests))]
