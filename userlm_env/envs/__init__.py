"""Environment classes, and :func:`make_unwrapped_env` to build one by its id without wrappers."""

from __future__ import annotations

import difflib
from typing import Any

from userlm_env.code.tasks import make_code_task_source
from userlm_env.envs.base import EndReason, EpisodeView, ShardedChatEnv, ShardedChatVectorEnv
from userlm_env.envs.code_env import UserLMCodeEnv, UserLMCodeVectorEnv
from userlm_env.envs.math_env import UserLMMathEnv, UserLMMathVectorEnv
from userlm_env.tasks import TaskSource, make_task_source

__all__ = [
    "ENV_CLASSES",
    "EndReason",
    "EpisodeView",
    "ShardedChatEnv",
    "ShardedChatVectorEnv",
    "UserLMCodeEnv",
    "UserLMCodeVectorEnv",
    "UserLMMathEnv",
    "UserLMMathVectorEnv",
    "make_env_task_source",
    "make_unwrapped_env",
    "resolve_env_id",
]

ENV_CLASSES: dict[str, type[ShardedChatEnv]] = {
    "UserLM-Math-v0": UserLMMathEnv,
    "UserLM-Code-v0": UserLMCodeEnv,
}
"""Registered env id -> class (the unwrapped env ``gym.make`` builds)."""

_ALIASES = {"math": "UserLM-Math-v0", "code": "UserLM-Code-v0"}


def resolve_env_id(env_id: str) -> str:
    """The registered id for ``env_id`` (an id, or the short ``"math"`` / ``"code"``).

    Raises:
        ValueError: unknown id (with the closest match and the list of ids).
    """
    key = _ALIASES.get(env_id.strip().lower(), env_id.strip()) if isinstance(env_id, str) else env_id
    if key not in ENV_CLASSES:
        close = difflib.get_close_matches(str(env_id), [*ENV_CLASSES, *_ALIASES], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown env id {env_id!r}.{hint} Known: {sorted(ENV_CLASSES)} (or 'math' / 'code')")
    return key


def make_env_task_source(env_id: str, spec: Any) -> TaskSource:
    """The task source an env builds from ``spec`` (math specs for the math env, code specs for the code env).

    Build it once and pass it as ``tasks=`` to many envs so that a data set is loaded only once.
    """
    if resolve_env_id(env_id) == "UserLM-Code-v0":
        return make_code_task_source(spec)
    return make_task_source(spec)


def make_unwrapped_env(env_id: str, **kwargs: Any) -> ShardedChatEnv:
    """Build the unwrapped env named ``env_id`` (what ``run_episodes`` and the CLI need).

    Args:
        env_id: ``"UserLM-Math-v0"``, ``"UserLM-Code-v0"`` (or the short ``"math"`` / ``"code"``).
        **kwargs: the env's constructor arguments (``user``, ``tasks``, ``reward``, ``max_turns``, ...).

    Returns:
        The env, without Gymnasium's checker, order and time-limit wrappers.

    Raises:
        ValueError: unknown id (with the closest match and the list of ids).
    """
    return ENV_CLASSES[resolve_env_id(env_id)](**kwargs)
