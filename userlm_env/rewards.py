"""Reward components and their weights.

Every step reports *every* component, unweighted, in ``info["reward_components"]``; the step's
reward is their weighted sum under a :class:`RewardConfig`. Because the raw components are logged,
any other weighting can be recomputed from episode logs without re-running (ablations).

==================  =========================================================================
component           value on a step
==================  =========================================================================
correctness         at the episode's last step: 1.0 if the last answer attempt was correct
                    (the Lost-in-Conversation score), else 0.0; 0.0 on earlier steps
premature_answer    1.0 if this reply is a *wrong* answer attempt made while shards were
                    still hidden from the assistant
clarification       1.0 if this reply asks the user for information (clarification or
                    interrogation) while shards are still hidden
hedge               1.0 if this reply hedges between several candidate answers
turn                1.0 on every step (a cost per assistant turn when weighted negatively)
length              the reply's length in hundreds of words (0.5 = 50 words)
no_attempt          at the episode's last step: 1.0 if the assistant never attempted an answer
==================  =========================================================================

Presets (``reward="..."``): ``lic`` (binary correctness only, as in LiC), ``shaped`` (correctness
plus small shaping terms), ``efficient`` (correctness with turn and length costs). A spec may
override weights: ``"shaped:turn=-0.05,length=0"``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from userlm_env.judge import Judgement, ReplyKind

COMPONENTS = ("correctness", "premature_answer", "clarification", "hedge", "turn", "length", "no_attempt")
WORDS_PER_LENGTH_UNIT = 100.0
ASKING_KINDS = (ReplyKind.CLARIFICATION, ReplyKind.INTERROGATION)


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward components (see the module table for what each one measures).

    Attributes:
        correctness: weight of the final LiC score (1 if the last answer attempt is correct).
        premature_answer: weight of a wrong answer attempt while shards are still hidden.
        clarification: weight of asking the user while shards are still hidden.
        hedge: weight of hedging between several candidate answers.
        turn: weight of every assistant turn.
        length: weight per hundred words of reply.
        no_attempt: weight of ending an episode without any answer attempt.
    """

    correctness: float = 1.0
    premature_answer: float = 0.0
    clarification: float = 0.0
    hedge: float = 0.0
    turn: float = 0.0
    length: float = 0.0
    no_attempt: float = 0.0

    def weighted(self, components: Mapping[str, float]) -> float:
        """The reward: the weighted sum of the components."""
        return float(sum(getattr(self, name) * float(components.get(name, 0.0)) for name in COMPONENTS))

    def as_dict(self) -> dict[str, float]:
        """The weights by component name."""
        return dataclasses.asdict(self)

    @classmethod
    def from_spec(cls, spec: str | Mapping[str, float] | RewardConfig | None) -> RewardConfig:
        """Build a config from a preset name (optionally ``name:comp=w,...``), a mapping or a config.

        Raises:
            ValueError: unknown preset or component (the message lists the valid ones).
        """
        if spec is None:
            return PRESETS["lic"]
        if isinstance(spec, RewardConfig):
            return spec
        if isinstance(spec, Mapping):
            return cls(**_checked_weights(spec))
        if not isinstance(spec, str):
            raise TypeError(f"reward must be a preset name, a mapping or a RewardConfig, got {spec!r}")
        name, _, overrides = spec.partition(":")
        if name not in PRESETS:
            close = difflib.get_close_matches(name, PRESETS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown reward preset {name!r}.{hint} Presets: {sorted(PRESETS)}")
        weights = {}
        for item in filter(None, (part.strip() for part in overrides.split(","))):
            key, eq, value = item.partition("=")
            try:
                weights[key.strip()] = float(value)
            except ValueError:
                raise ValueError(f"bad reward override {item!r} in {spec!r}: expected component=number") from None
            if not eq:
                raise ValueError(f"bad reward override {item!r} in {spec!r}: expected component=number")
        return dataclasses.replace(PRESETS[name], **_checked_weights(weights))


def _checked_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"unknown reward components {unknown}; components: {list(COMPONENTS)}")
    return {k: float(v) for k, v in weights.items()}


PRESETS: dict[str, RewardConfig] = {
    "lic": RewardConfig(),
    "shaped": RewardConfig(premature_answer=-0.2, clarification=0.05, hedge=-0.2, turn=-0.02, length=-0.01),
    "efficient": RewardConfig(turn=-0.05, length=-0.02),
}


def step_components(
    judgement: Judgement,
    *,
    reply_words: int,
    shards_hidden: bool,
    episode_over: bool,
    final_score: float,
    any_attempt: bool,
) -> dict[str, float]:
    """Every component for one step, unweighted.

    Args:
        judgement: the judge's verdict on this reply.
        reply_words: words in the reply.
        shards_hidden: some shards were still hidden from the assistant when it replied.
        episode_over: this is the episode's last step (terminated or truncated).
        final_score: the LiC score (grade of the last answer attempt) if the episode is over.
        any_attempt: the assistant attempted an answer at some point in the episode (this step included).
    """
    wrong_attempt = judgement.answer_attempt and not judgement.correct
    return {
        "correctness": float(final_score) if episode_over else 0.0,
        "premature_answer": float(wrong_attempt and shards_hidden),
        "clarification": float(judgement.kind in ASKING_KINDS and shards_hidden),
        "hedge": float(judgement.kind == ReplyKind.HEDGE),
        "turn": 1.0,
        "length": reply_words / WORDS_PER_LENGTH_UNIT,
        "no_attempt": float(episode_over and not any_attempt),
    }
