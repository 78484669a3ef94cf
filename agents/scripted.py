"""Scripted assistant baselines: reference points for evaluation and fixtures for tests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agents.base import Assistant, Message

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _numbers(conversation: Sequence[Message]) -> list[str]:
    return [n.replace(",", "") for m in conversation if m["role"] == "user" for n in _NUMBER.findall(m["content"])]


def _all_revealed(info: dict[str, Any]) -> bool:
    return len(info.get("shards_revealed", [])) >= info.get("num_shards", 1)


class AnswerImmediately(Assistant):
    """Commits to an answer every turn: the sum of the numbers the user has given so far."""

    name = "scripted:immediate"

    def act_batch(self, conversations, seeds, infos):
        """Answer with the sum of the numbers seen (a plausible but usually wrong guess)."""
        replies = []
        for conversation in conversations:
            total = sum(float(n) for n in _numbers(conversation))
            replies.append(f"The answer is {total:g}.")
        return replies


class AlwaysClarify(Assistant):
    """Never answers; always asks the user for more details."""

    name = "scripted:clarify"

    def act_batch(self, conversations, seeds, infos):
        """Ask for more details."""
        return ["Could you give me more details about the problem?" for _ in conversations]


class WaitThenOracle(Assistant):
    """Asks until every shard is revealed, then gives the reference answer (an upper bound)."""

    name = "scripted:oracle"
    needs_oracle = True

    def act_batch(self, conversations, seeds, infos):
        """Ask, or answer with ``info["oracle_answer"]`` once all shards are out."""
        return [
            f"Putting it all together, the answer is {info['oracle_answer']}."
            if _all_revealed(info)
            else "What else should I know about the problem?"
            for info in infos
        ]


class EagerOracle(Assistant):
    """Gives the reference answer at once, before the task is fully revealed."""

    name = "scripted:eager-oracle"
    needs_oracle = True

    def act_batch(self, conversations, seeds, infos):
        """Answer with ``info["oracle_answer"]`` immediately."""
        return [f"The answer is {info['oracle_answer']}." for info in infos]


class Shotgun(Assistant):
    """Reward hack: lists every number seen plus the oracle answer as candidates, never committing."""

    name = "scripted:shotgun"
    needs_oracle = True

    def act_batch(self, conversations, seeds, infos):
        """List candidates, e.g. ``It could be 3, 17 or 42.``."""
        replies = []
        for conversation, info in zip(conversations, infos):
            candidates = [*dict.fromkeys(_numbers(conversation))][:4] + [str(info["oracle_answer"])]
            head = ", ".join(candidates[:-1]) or "0"
            replies.append(f"It could be {head} or {candidates[-1]}.")
        return replies


SCRIPTED = {
    cls.name.split(":", 1)[1]: cls for cls in (AnswerImmediately, AlwaysClarify, WaitThenOracle, EagerOracle, Shotgun)
}
