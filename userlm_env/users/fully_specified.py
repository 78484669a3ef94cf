"""The single-turn settings of Lost in Conversation as users: FULL and CONCAT.

LiC compares the multi-turn SHARDED simulation with two single-turn baselines on the same tasks:
FULL gives the assistant the original, fully specified instruction; CONCAT gives it every shard at
once, as a bullet list. Both are users whose opening message reveals every shard, so the env's
own end rule (the episode ends once the assistant answered after the last shard) and its judge,
rewards and logs apply unchanged; run them with ``max_turns=1`` for LiC's single reply.
"""

from __future__ import annotations

from collections.abc import Sequence

from userlm_env.users.base import UserRequest, UserSimulator, UserTurn

CONCAT_PREFIX = "Please solve the following problem, using all of the information below:"
FOLLOW_UP = "That's the whole problem. What's the answer?"


class FullySpecifiedUser(UserSimulator):
    """Opens with the whole task in one message; asks for the answer if the chat goes on.

    Args:
        mode: ``"full"`` (the task's original instruction) or ``"concat"`` (its shards as a list).
    """

    deterministic = True

    def __init__(self, mode: str = "full"):
        if mode not in ("full", "concat"):
            raise ValueError(f"mode must be 'full' or 'concat', got {mode!r}")
        self.mode = mode
        self.name = mode

    def opening(self, request: UserRequest) -> str:
        """The single message that states the whole task."""
        task = request.task
        if self.mode == "full":
            return task.instruction
        return "\n".join([CONCAT_PREFIX, *(f"- {shard.text}" for shard in task.shards)])

    def respond_batch(self, requests: Sequence[UserRequest]) -> list[UserTurn]:
        """The whole task on turn 0 (every shard revealed), a request for the answer afterwards."""
        turns = []
        for request in requests:
            if request.turn == 0:
                every_shard = tuple(shard.shard_id for shard in request.task.shards)
                turns.append(UserTurn(text=self.opening(request), revealed=every_shard))
            else:
                turns.append(UserTurn(text=FOLLOW_UP, revealed=()))
        return turns
