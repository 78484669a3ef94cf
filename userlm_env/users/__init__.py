"""Simulated users, selectable by spec string.

===============================  ==========================================================
spec                             user
===============================  ==========================================================
``microsoft/UserLM-8b``          UserLM-8b (default); any hub id or path named ``*UserLM*``
``userlm:MODEL``                 any model trained the UserLM way (:class:`UserLMUser`)
``prompted:MODEL``               an assistant model prompted to rephrase one shard per turn
``replay`` / ``replay:plain``    deterministic shard replay, no model (:class:`ReplayUser`)
``human``                        a person at the terminal (:class:`HumanUser`)
``full`` / ``concat``            LiC's single-turn settings: the whole task in the opening message
===============================  ==========================================================

``MODEL`` is a hub id, a local directory, a ``.gguf`` file, or ``smollm2-135m`` (bundled offline),
optionally with an engine (``prompted:smollm2-135m?engine=llama.cpp``; see :mod:`userlm_env.backends.engines`),
or OpenAI-compatible server(s) (vLLM, SGLang, llama.cpp; see :mod:`userlm_env.backends.http_backend`):
``http://HOST:PORT/v1[,http://HOST2:PORT2/v1][?tokenizer=TOK&model=NAME&mode=completions|chat]``, e.g.
``userlm:http://127.0.0.1:8000/v1?tokenizer=microsoft/UserLM-8b`` (UserLM needs completions mode,
i.e. a tokenizer: the prompt is rendered client-side so that it opens a *user* turn) or
``prompted:http://127.0.0.1:8000/v1?mode=chat``.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from userlm_env.backends.models import OFFLINE_HINT, ModelLoadError
from userlm_env.users.base import UserRequest, UserSimulator, UserTurn
from userlm_env.users.fully_specified import FullySpecifiedUser
from userlm_env.users.human import HumanUser
from userlm_env.users.prompted import PromptedUser, PromptedUserConfig
from userlm_env.users.replay import ReplayUser
from userlm_env.users.userlm import DEFAULT_USERLM, UserLMConfig, UserLMUser, task_intent

USER_KINDS = ("userlm", "prompted", "replay", "human", "full", "concat")
USER_SPEC_HELP = (
    "valid user specs: 'microsoft/UserLM-8b' (default), 'userlm:MODEL', 'prompted:MODEL', 'replay', "
    "'replay:plain', 'human', 'full', 'concat', or a UserSimulator object; "
    "MODEL = hub id, local dir, .gguf file, 'smollm2-135m' "
    "or http://HOST:PORT/v1?tokenizer=... (OpenAI-compatible server)"
)


def _backend(model: str, spec: str, device: str | None, dtype: str):
    from userlm_env.backends.engines import make_backend

    try:
        return make_backend(model, device=device, dtype=dtype)
    except ModelLoadError as err:
        raise ModelLoadError(
            f"user={spec!r}: {err}" + ("" if OFFLINE_HINT in str(err) else f"\n{OFFLINE_HINT}")
        ) from err


def make_user(
    spec: str | UserSimulator | None = None,
    *,
    device: str | None = None,
    dtype: str = "auto",
    config: UserLMConfig | PromptedUserConfig | None = None,
) -> UserSimulator:
    """Build the user simulator named by ``spec`` (see the module table).

    Args:
        spec: a spec string, a :class:`UserSimulator` (returned as is), or None for UserLM-8b.
        device: device of a local model.
        dtype: dtype of a local model (``"auto"``, ``"bfloat16"``...).
        config: :class:`UserLMConfig` or :class:`PromptedUserConfig` for model users.

    Raises:
        ValueError: unknown spec (the message lists the valid ones).
        ModelLoadError: the model cannot be loaded (the message says how to use the offline model).
    """
    if isinstance(spec, UserSimulator):
        return spec
    spec = DEFAULT_USERLM if spec is None else spec
    if not isinstance(spec, str):
        raise TypeError(f"user must be a spec string or a UserSimulator, got {type(spec).__name__}: {spec!r}")
    kind, _, model = spec.partition(":")
    if spec == "replay" or spec == "replay:plain":
        return ReplayUser(plain=spec.endswith(":plain"))
    if spec == "human":
        return HumanUser()
    if spec in ("full", "concat"):
        return FullySpecifiedUser(spec)
    if kind in ("userlm", "prompted") and model:
        backend = _backend(model, spec, device, dtype)
        if kind == "userlm" and getattr(backend, "mode", None) == "chat":
            raise ValueError(
                f"user={spec!r}: a UserLM over HTTP needs completions mode (a chat endpoint opens an assistant "
                "turn); add ?tokenizer=TOKENIZER (e.g. microsoft/UserLM-8b) and drop mode=chat"
            )
        if kind == "userlm":
            return UserLMUser(backend, config if isinstance(config, UserLMConfig) else None, name=spec)
        return PromptedUser(backend, config if isinstance(config, PromptedUserConfig) else None, name=spec)
    if ":" not in spec and ("userlm" in spec.lower() and ("/" in spec or Path(spec).exists())):
        return make_user(f"userlm:{spec}", device=device, dtype=dtype, config=config)
    close = difflib.get_close_matches(kind, USER_KINDS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ValueError(f"unknown user spec {spec!r}.{hint} {USER_SPEC_HELP}")


__all__ = [
    "DEFAULT_USERLM",
    "FullySpecifiedUser",
    "HumanUser",
    "PromptedUser",
    "PromptedUserConfig",
    "ReplayUser",
    "UserLMConfig",
    "UserLMUser",
    "UserRequest",
    "UserSimulator",
    "UserTurn",
    "make_user",
    "task_intent",
]
