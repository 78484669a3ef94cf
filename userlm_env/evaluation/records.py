"""Helpers that read episode records (the JSONL lines written by :mod:`userlm_env.rollout`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from userlm_env.episode_types import EndReason


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


def printable(text: Any) -> str:
    r"""``str(text)`` that any UTF-8 stream can write: lone surrogates become visible ``\udXXX`` escapes.

    JSON logs can hold lone surrogates (a policy or a server produced one); terminals, HTML and
    Markdown files cannot encode them.
    """
    text = text if isinstance(text, str) else str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def cut_before_all_shards(record: Mapping[str, Any]) -> bool:
    """Whether the episode hit its turn limit (``max_turns``) while shards were still hidden.

    Such an episode could not be completed: its task was never fully stated. The default turn budget
    of an evaluation (:func:`userlm_env.evaluation.runner.sharded_max_turns`) avoids it; an explicit
    ``--max-turns`` below a task's shard count causes it, and the reports count and mark it.
    """
    if record.get("error") or record.get("end_reason") != EndReason.MAX_TURNS:
        return False
    num_shards, revealed = record.get("num_shards"), record.get("shards_revealed")
    return isinstance(num_shards, int) and isinstance(revealed, int) and revealed < num_shards
