"""The shard-replay user: deterministic, no model. Reveals shard k at user turn k."""

from __future__ import annotations

import random
from collections.abc import Sequence

from userlm_env.shard_detection import STOP_WORDS
from userlm_env.users.base import UserRequest, UserSimulator, UserTurn

FOLLOW_UP_TEMPLATES = (
    "{shard}",
    "Oh, and {shard_lc}",
    "Also, {shard_lc}",
    "Forgot to mention: {shard_lc}",
    "One more thing: {shard_lc}",
    "btw {shard_lc}",
)
ALL_REVEALED_MESSAGES = (
    "That's everything I know. What's the answer?",
    "That's all the info I have, can you give me the final answer?",
    "I think you have everything now. So what is it?",
)


_LOWERABLE = STOP_WORDS | {"after", "next", "finally", "later", "meanwhile", "during", "yesterday", "today"}


def _lower_first(text: str) -> str:
    """Lower-case the first word when it is a function word ("He rides" -> "he rides"), not a name."""
    first = text.split(" ", 1)[0].strip(",:;").lower()
    return text[:1].lower() + text[1:] if first in _LOWERABLE else text


class ReplayUser(UserSimulator):
    """Reveals the task's shards in order, one per turn, with templated phrasing.

    Turn 0 says shard 1 verbatim. Each later turn says the next unrevealed shard, wrapped in a
    template drawn from the request seed. Once every shard is revealed it asks for the answer.
    It never ends the conversation itself. Useful for protocol tests, curricula (a perfectly
    cooperative user) and for measuring env overhead without a model.

    Args:
        plain: say every shard verbatim (no templates).
    """

    name = "replay"
    deterministic = True

    def __init__(self, plain: bool = False):
        self.plain = plain

    def phrase(self, request: UserRequest) -> UserTurn:
        """The turn for one request (pure function of the request)."""
        rng = random.Random(request.seed)
        shard_id = request.next_shard_id
        if shard_id is None:
            return UserTurn(text=rng.choice(ALL_REVEALED_MESSAGES), revealed=())
        shard = request.task.shard(shard_id).text
        if request.turn == 0 or self.plain:
            return UserTurn(text=shard, revealed=(shard_id,))
        template = rng.choice(FOLLOW_UP_TEMPLATES)
        return UserTurn(text=template.format(shard=shard, shard_lc=_lower_first(shard)), revealed=(shard_id,))

    def respond_batch(self, requests: Sequence[UserRequest]) -> list[UserTurn]:
        """One templated turn per request."""
        return [self.phrase(r) for r in requests]
