"""The typed records that cross module boundaries: why an episode ended, a step's ``info``, an episode record.

Kept free of heavy imports (no torch, no transformers) so that log readers, metrics and reports can
use them on their own.
"""

from __future__ import annotations

import enum
from typing import Any, TypedDict

__all__ = ["EndReason", "EpisodeRecord", "StepInfo"]


class EndReason(str, enum.Enum):
    """Why an episode ended (``info["end_reason"]`` holds the value; members compare equal to it)."""

    CORRECT_ANSWER = "correct_answer"
    """Termination: an answer attempt was graded correct."""
    ANSWERED_ALL_SHARDS = "answered_all_shards"
    """Termination: an answer attempt after every shard was revealed."""
    USER_ENDED = "user_ended"
    """Termination: the user ended the conversation."""
    USER_GAVE_UP = "user_gave_up"
    """Termination: the user ended the conversation after too many unhelpful replies (profile ``patience``)."""
    MAX_TURNS = "max_turns"
    """Truncation: the episode's turn limit."""
    USER_ERROR = "user_error"
    """Truncation: the user's model failed (a ``BackendError``); ``info["error"]`` says why."""

    def __str__(self) -> str:
        return self.value

    @property
    def truncates(self) -> bool:
        """The episode was cut short (Gymnasium's ``truncated``) rather than ended by the task."""
        return self in (EndReason.MAX_TURNS, EndReason.USER_ERROR)


class StepInfo(TypedDict, total=False):
    """The ``info`` dict of ``reset`` and ``step`` (every env; the code env adds the keys at the end).

    ``reward_components`` holds every component of :data:`userlm_env.rewards.COMPONENTS`, unweighted.
    ``end_reason`` is an :class:`EndReason` value or ``None`` while the episode runs.
    ``revealed_shard`` is the shard the latest user turn revealed, ``-1`` when it revealed none (an int
    always, so that a vector env can batch it; ``reveal_reason`` says why).
    """

    task_id: str
    turn: int
    reward_components: dict[str, float]
    reply_kind: str | None
    answer_attempt: bool
    extracted_answer: str | None
    correct: bool | None
    judge_reason: str | None
    score: float
    shards_revealed: list[int]
    num_shards: int
    new_shards: list[int]
    revealed_shard: int
    reveal_reason: str | None
    user_ended: bool
    end_reason: str | None
    user_meta: dict[str, Any]
    reply_truncated: bool
    error: str
    # UserLM-Code-v0
    tests_passed: int | None
    tests_failed: int | None
    tests_total: int | None
    error_type: str | None
    execution_error: str | None
    execution_seconds: float | None
    rl_safe: bool


class EpisodeRecord(TypedDict, total=False):
    """One line of an episode log (:func:`userlm_env.rollout.run_episodes`, the evaluation suite).

    The fields of :data:`userlm_env.episode_log.RECORD_FIELDS` are always present; run metadata
    (``env``, ``assistant``, ``user``, ``tasks``, ``reward``, ``max_turns``, evaluation ``setting``) is
    added by the caller. ``record["return"]`` (the summed reward) is not declared here: ``return`` is a
    Python keyword.
    """

    episode_key: str
    episode: int
    seed: int
    task_id: str | None
    num_shards: int | None
    instruction: str | None
    shards: list[dict[str, Any]] | None
    opening_shards: list[int] | None
    transcript: list[dict[str, str]]
    steps: list[dict[str, Any]]
    score: float
    turns: int
    shards_revealed: int
    end_reason: str | None
    terminated: bool
    truncated: bool
    component_totals: dict[str, float]
    seconds: float
    error: str | None
