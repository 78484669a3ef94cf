"""Environment classes, and :func:`make_unwrapped_env` to build one by its id without wrappers."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from userlm_env.envs.base import EndReason, EpisodeView, ShardedChatEnv, ShardedChatVectorEnv
from userlm_env.envs.code_env import UserLMCodeEnv, UserLMCodeVectorEnv
from userlm_env.envs.math_env import UserLMMathEnv, UserLMMathVectorEnv
from userlm_env.rewards import RewardConfig
from userlm_env.tasks import FAMILY_ENV_IDS, TaskSource, make_task_source, parse_task_spec
from userlm_env.tasks.spec import TaskFamily

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
    "check_env_specs",
    "env_defaults",
    "env_task_family",
    "make_env_task_source",
    "make_unwrapped_env",
    "resolve_env_id",
]

ENV_CLASSES: dict[str, type[ShardedChatEnv]] = {
    "UserLM-Math-v0": UserLMMathEnv,
    "UserLM-Code-v0": UserLMCodeEnv,
}
"""Registered env id -> class (the unwrapped env ``gym.make`` builds)."""

_ALIASES = FAMILY_ENV_IDS  # the task family names double as short env ids ("math", "code")


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


def env_task_family(env_id: str) -> TaskFamily:
    """The task family (``"math"`` or ``"code"``) whose spec strings ``env_id`` reads.

    Raises:
        ValueError: unknown id.
    """
    key = resolve_env_id(env_id)
    return next(family for family, registered in FAMILY_ENV_IDS.items() if registered == key)


def env_defaults(env_id: str) -> dict[str, Any]:
    """The constructor defaults of env ``env_id`` (``tasks``, ``reward``, ``max_turns``, ``user``, ...).

    Read from the class's signature, the one place they are written; the CLI takes its defaults
    from here.

    Raises:
        ValueError: unknown id.
    """
    parameters = inspect.signature(ENV_CLASSES[resolve_env_id(env_id)]).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def check_env_specs(env_id: str, *, tasks: str | None = None, reward: Any = None) -> str:
    """Check an env id and its ``tasks`` / ``reward`` specs without building anything (no file, model or network).

    For scripts that should fail on a typo before loading models; empty ``tasks`` / None ``reward``
    (the env's defaults) are not checked.

    Returns:
        The registered env id.

    Raises:
        ValueError: unknown env id, a bad task spec (or one of the other family), a bad reward spec.
    """
    key = resolve_env_id(env_id)
    if tasks:
        parse_task_spec(tasks, env_task_family(key))
    if reward is not None:
        RewardConfig.from_spec(reward)
    return key


def make_env_task_source(env_id: str, spec: Any) -> TaskSource:
    """The task source env ``env_id`` builds from ``spec``: ``make_task_source(spec, family=env_task_family(env_id))``.

    Bare ``"procedural"`` is the env's own procedural generator (math or code); a spec of the other
    family is a ``ValueError`` that names the env it belongs to. Build the source once and pass it
    as ``tasks=`` to many envs so that a data set is loaded only once.
    """
    return make_task_source(spec, family=env_task_family(env_id))


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
