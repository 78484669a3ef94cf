"""The shard-replay user: deterministic, no model. Reveals shard k at user turn k (by default)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from userlm_env.shard_detection import STOP_WORDS
from userlm_env.users.base import UserRequest, UserSimulator, UserTurn
from userlm_env.users.profiles import (
    UserProfile,
    earlier_user_turns,
    plan_turn,
    profile_rng,
    resolve_profile,
    style_text,
)
from userlm_env.users.reveal import check_reveal

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
    """Reveals the task's shards one per turn, with templated phrasing; no model.

    With the defaults (``reveal="ordered"``, profile ``lic``) turn 0 says shard 1 verbatim, each later
    turn the next unrevealed shard wrapped in a template drawn from the request seed, and once every
    shard is revealed it asks for the answer. ``reveal=`` (:mod:`userlm_env.users.reveal`) picks
    which shard a turn reveals, ``profile`` (:mod:`userlm_env.users.profiles`) how the user behaves
    (shards up front, length and style, repeated demands, patience); the env's ``reveal=`` and
    ``user_profile=`` arguments override them per episode (``UserRequest.reveal`` / ``.profile``).
    Useful for protocol tests, curricula (a cooperative user) and measuring env overhead.

    Args:
        plain: say every shard verbatim (no templates).
        reveal: default reveal mode (``"ordered"``, ``"responsive"``, ``"on_request"``).
        profile: default behaviour profile (a preset name or a ``UserProfile``; None = ``lic``).
        name: the user's name in logs (default ``replay``, or ``replay+PROFILE`` with a profile).
    """

    deterministic = True
    env_controlled = True

    def __init__(
        self,
        plain: bool = False,
        reveal: str | None = None,
        profile: str | UserProfile | None = None,
        name: str | None = None,
    ):
        self.plain = plain
        self.reveal = check_reveal(reveal)
        self.profile = resolve_profile(profile)
        self.name = name or ("replay" if profile is None else f"replay+{self.profile.name}")

    def settings(self, request: UserRequest) -> tuple[str, UserProfile]:
        """The reveal mode and profile of a request (the env's, else this user's)."""
        reveal = check_reveal(request.reveal) if request.reveal is not None else self.reveal
        profile = resolve_profile(request.profile) if request.profile is not None else self.profile
        return reveal, profile

    def phrase(self, request: UserRequest) -> UserTurn:
        """The turn for one request (pure function of the request)."""
        rng = random.Random(request.seed)
        reveal, profile = self.settings(request)
        style_rng = profile_rng(request)
        plan = plan_turn(request, reveal, profile, style_rng)
        meta = plan.meta(reveal, profile)
        if plan.ended:
            return UserTurn(text=plan.text or "", ended=True, revealed=(), meta=meta)
        if not plan.shards:
            text = plan.text or rng.choice(ALL_REVEALED_MESSAGES)
            pad = plan.reason != "repeat"
            return UserTurn(
                text=style_text(text, profile, style_rng, earlier_user_turns(request), pad=pad), revealed=(), meta=meta
            )
        shards = [request.task.shard(i).text for i in plan.shards]
        if request.turn == 0 or self.plain or not profile.templates:
            text = " ".join(shards)
        else:
            template = rng.choice(FOLLOW_UP_TEMPLATES)
            text = template.format(shard=shards[0], shard_lc=_lower_first(shards[0]))
        text = style_text(text, profile, style_rng, earlier_user_turns(request), opening=request.turn == 0)
        return UserTurn(text=text, revealed=plan.shards, meta=meta)

    def respond_batch(self, requests: Sequence[UserRequest]) -> list[UserTurn]:
        """One templated turn per request."""
        return [self.phrase(r) for r in requests]
