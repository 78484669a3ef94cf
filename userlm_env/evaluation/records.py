"""Helpers that read episode records (the JSONL lines written by :mod:`userlm_env.rollout`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def opening_shards(record: Mapping[str, Any]) -> list[int]:
    """Shard ids revealed by the user's opening message (logged, or derived from the first step)."""
    if record.get("opening_shards") is not None:
        return list(record["opening_shards"])
    steps = record.get("steps") or []
    if not steps:
        return list(range(1, int(record.get("shards_revealed") or 0) + 1))
    new = set(steps[0].get("new_shards") or [])
    return [s for s in steps[0].get("shards_revealed") or [] if s not in new]


def user_turns(transcript: Sequence[Mapping[str, str]]) -> list[str]:
    """The user messages of a chat, in order."""
    return [m["content"] for m in transcript if m.get("role") == "user"]
