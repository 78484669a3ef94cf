"""A prompted user: an ordinary instruction-tuned assistant model asked to play a lazy user.

Small models cannot role-play a Lost-in-Conversation user on their own (they answer the
question themselves), so the env keeps control of *what* is revealed and the model only decides
*how* it is said (README, "Design notes"):

1. The shard to reveal is chosen by the env's ``reveal=`` mode and ``user_profile=`` (default: shard 1
   at the opening turn, then in order; :mod:`userlm_env.users.reveal`, :mod:`userlm_env.users.profiles`).
2. The model is asked (with a few examples) to rephrase that one fact as a short, casual message
   to the assistant. It does not see the assistant's reply: a 135M model asked to answer the
   assistant and reveal a fact at once mostly answers the question itself.
3. A cheap check accepts the message: every number and most key words of the fact are kept
   (:func:`userlm_env.shard_detection.fact_is_kept`), the length is within bounds, and no
   number of an unrevealed shard or of the answer leaks. Otherwise it resamples with a new seed.
4. After ``max_attempts`` failures the fact is said plainly (counted in ``meta["fallback"]``).

Once every shard is revealed the user asks for the final answer. The prompted user never ends the
conversation (the paper's finding about prompted simulators); the env ends it by its rules.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass

from userlm_env.backends.base import Backend, GenerationRequest, SamplingParams
from userlm_env.seeding import derive_seed
from userlm_env.shard_detection import fact_is_kept, numbers_in
from userlm_env.users.base import UserRequest, UserSimulator, UserTurn, sample_until_accepted
from userlm_env.users.profiles import (
    TurnPlan,
    UserProfile,
    earlier_user_turns,
    plan_turn,
    profile_rng,
    resolve_profile,
    style_text,
)
from userlm_env.users.replay import ALL_REVEALED_MESSAGES
from userlm_env.users.reveal import check_reveal

SYSTEM_PROMPT = (
    "You rewrite a fact as a short, casual chat message that a lazy person sends to an AI assistant. "
    "Keep every number and name. Do not solve anything. Write only the message."
)
FEW_SHOT = (
    ("Betty has only half of the money she needs.", "oh and betty only has half of the money she needs"),
    ("How much did Weng earn?", "how much did weng earn?"),
    ("Her parents give her $15 for that purpose.", "also her parents are giving her $15 for it"),
    ("Yesterday, she did 50 minutes of babysitting.", "she did 50 minutes of babysitting yesterday btw"),
)


@dataclass(frozen=True)
class PromptedUserConfig:
    """Settings of :class:`PromptedUser`.

    Attributes:
        max_attempts: samples per turn before saying the fact plainly.
        min_words: shortest accepted message.
        max_words: longest accepted message.
        sampling: temperature / top-p / token limit for the model.
    """

    max_attempts: int = 3
    min_words: int = 2
    max_words: int = 40
    sampling: SamplingParams = SamplingParams(max_new_tokens=48, temperature=0.7, top_p=0.9)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 < self.min_words <= self.max_words:
            raise ValueError(f"need 0 < min_words <= max_words, got {self.min_words} and {self.max_words}")


def _clean(text: str) -> str:
    text = text.strip().strip('"').strip()
    for prefix in ("Person:", "User:", "Message:", "Chat message:"):
        if text.lower().startswith(prefix.lower()):
            text = text[len(prefix) :].strip()
    return text.strip('"').strip()


class PromptedUser(UserSimulator):
    """An assistant model prompted to rephrase one shard per turn as a lazy user.

    ``reveal`` / ``profile`` (defaults; the env's ``reveal=`` / ``user_profile=`` override them) choose
    the shard(s) of each turn and the user's behaviour exactly as for :class:`ReplayUser`; the model
    phrases each revealed shard (one prompt per shard), nudges, repeats and endings are templated.

    Args:
        backend: the generation backend of the model (any instruction-tuned chat model).
        config: attempts, length bounds and sampling.
        name: the user's name in logs.
        reveal: default reveal mode (``"ordered"``, ``"responsive"``, ``"on_request"``).
        profile: default behaviour profile (a preset name or a ``UserProfile``; None = ``lic``).
    """

    deterministic = True
    env_controlled = True

    def __init__(
        self,
        backend: Backend,
        config: PromptedUserConfig | None = None,
        name: str = "prompted",
        reveal: str | None = None,
        profile: str | UserProfile | None = None,
    ):
        self.reveal = check_reveal(reveal)
        self.profile = resolve_profile(profile)
        self.backend = backend
        self.config = config or PromptedUserConfig()
        self.name = name
        eos = backend.tokenizer.eos_token_id
        self._stops = [eos] if isinstance(eos, int) else list(eos or [])

    def _prompt(self, fact: str) -> tuple[int, ...]:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for example, message in FEW_SHOT:
            messages += [{"role": "user", "content": f"Fact: {example}"}, {"role": "assistant", "content": message}]
        messages.append({"role": "user", "content": f"Fact: {fact}"})
        return self.backend.render(messages)

    def accepts(self, request: UserRequest, shard_id: int, text: str) -> str | None:
        """Why ``text`` is rejected as the phrasing of shard ``shard_id``, or None if it is accepted."""
        fact = request.task.shard(shard_id).text
        words = len(text.split())
        if not self.config.min_words <= words <= self.config.max_words:
            return f"length {words} words"
        if "\n" in text.strip():
            return "several lines"
        if not fact_is_kept(fact, text):
            return "fact not kept"
        allowed = numbers_in(fact) | set().union(*(numbers_in(request.task.shard(i).text) for i in request.revealed))
        hidden = set().union(*(numbers_in(s.text) for s in request.task.shards)) | numbers_in(request.task.answer)
        leaked = (numbers_in(text) & hidden) - allowed
        if leaked:
            return f"leaks {sorted(leaked)}"
        return None

    def settings(self, request: UserRequest) -> tuple[str, UserProfile]:
        """The reveal mode and profile of a request (the env's, else this user's)."""
        reveal = check_reveal(request.reveal) if request.reveal is not None else self.reveal
        profile = resolve_profile(request.profile) if request.profile is not None else self.profile
        return reveal, profile

    def respond_batch(self, requests: Sequence[UserRequest]) -> list[UserTurn]:
        """Rephrase the shard(s) each request's turn reveals; resample rejected phrasings in batches."""
        results: dict[int, UserTurn] = {}
        plans: dict[int, tuple[TurnPlan, str, UserProfile, random.Random]] = {}
        facts: list[tuple[int, int]] = []  # (request index, shard id) to rephrase
        for index, request in enumerate(requests):
            reveal, profile = self.settings(request)
            rng = profile_rng(request)
            plan = plan_turn(request, reveal, profile, rng)
            meta = plan.meta(reveal, profile)
            if plan.ended:
                results[index] = UserTurn(text=plan.text or "", ended=True, revealed=(), meta=meta)
            elif not plan.shards:
                text = plan.text or ALL_REVEALED_MESSAGES[request.seed % len(ALL_REVEALED_MESSAGES)]
                text = style_text(text, profile, rng, earlier_user_turns(request), pad=plan.reason != "repeat")
                results[index] = UserTurn(text=text, revealed=(), meta=meta)
            else:
                plans[index] = (plan, reveal, profile, rng)
                facts += [(index, shard) for shard in plan.shards]
        fact_requests = [
            requests[i]
            if n == 0
            else dataclasses.replace(requests[i], seed=derive_seed("prompted-fact", requests[i].seed, n))
            for i, n in _numbered(facts)
        ]
        sampled = sample_until_accepted(
            self.backend,
            fact_requests,
            lambda k, seed: GenerationRequest(self._prompt(requests[facts[k][0]].task.shard(facts[k][1]).text), seed),
            lambda k, generation: self.accepts(requests[facts[k][0]], facts[k][1], _clean(generation.text)),
            max_attempts=self.config.max_attempts,
            params=self.config.sampling,
            stop_token_ids=self._stops,
        )
        texts: dict[int, list[str]] = {}
        stats: dict[int, dict] = {}
        for (index, shard), outcome in zip(facts, sampled):
            # after max_attempts rejected phrasings the fact is said plainly
            text = _clean(outcome.generation.text) if outcome.accepted else requests[index].task.shard(shard).text
            texts.setdefault(index, []).append(text)
            entry = stats.setdefault(index, {"attempts": 0, "fallback": False, "rejections": []})
            entry["attempts"] += outcome.attempts
            entry["fallback"] = entry["fallback"] or not outcome.accepted
            entry["rejections"] += outcome.rejections
        for index, (plan, reveal, profile, rng) in plans.items():
            text = style_text(
                " ".join(texts[index]),
                profile,
                rng,
                earlier_user_turns(requests[index]),
                opening=requests[index].turn == 0,
            )
            meta = {**stats[index], **plan.meta(reveal, profile)}
            results[index] = UserTurn(text=text, revealed=plan.shards, meta=meta)
        return [results[i] for i in range(len(requests))]


def _numbered(facts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(request index, n)``: the n-th fact of its request (n = 0 keeps the request's own seed)."""
    seen: dict[int, int] = {}
    numbered = []
    for index, _ in facts:
        numbered.append((index, seen.get(index, 0)))
        seen[index] = seen.get(index, 0) + 1
    return numbered
