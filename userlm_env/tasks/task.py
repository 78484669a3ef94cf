"""The sharded task model shared by every task source, user simulator and judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Shard:
    """One piece of information of a sharded task.

    Attributes:
        shard_id: 1-based position; shard 1 is the high-level request (the question).
        text: the information, as one short self-contained sentence.
    """

    shard_id: int
    text: str


@dataclass(frozen=True)
class ShardedTask:
    """A task split into shards, as in Lost in Conversation.

    Attributes:
        task_id: stable identifier, unique within its source (e.g. ``"gsm8k-train/17"``).
        instruction: the fully specified instruction (all shards together, natural order).
        shards: ordered shards; ``shards[0]`` is the request, later shards add the conditions.
        answer: the reference answer, normalised (for math: the gold number as a string, e.g. ``"72"``).
        kind: task family, ``"math"`` (later ``"code"``).
        metadata: free-form source details (original record, solution text, generator parameters).
    """

    task_id: str
    instruction: str
    shards: tuple[Shard, ...]
    answer: str
    kind: str = "math"
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.shards:
            raise ValueError(f"task {self.task_id!r} has no shards")
        ids = [s.shard_id for s in self.shards]
        if ids != list(range(1, len(ids) + 1)):
            raise ValueError(f"task {self.task_id!r}: shard ids must be 1..k in order, got {ids}")

    @property
    def num_shards(self) -> int:
        """Number of shards (k)."""
        return len(self.shards)

    def shard(self, shard_id: int) -> Shard:
        """The shard with the given 1-based id."""
        return self.shards[shard_id - 1]
