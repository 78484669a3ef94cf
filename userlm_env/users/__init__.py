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

Env-controlled users (``replay``, ``replay:plain``, ``prompted:MODEL``) take *user options* after ``?``:
``profile=PRESET`` (:data:`~userlm_env.users.profiles.PROFILES`: ``lic``, ``terse``, ``impatient``,
``verbose``, ``sharegpt``) and ``reveal=MODE`` (``ordered``, ``responsive``, ``on_request``), e.g.
``replay?profile=sharegpt``, ``replay:plain?reveal=responsive&profile=terse`` or
``prompted:smollm2-135m?engine=auto&profile=terse``. For ``prompted:MODEL`` the two keys are taken out
and every other option goes on to the model spec (``engine``, ``threads``...; an HTTP spec's
``tokenizer``, ``mode``...). They are the user's *defaults*: an env given no ``reveal=`` /
``user_profile=`` uses them; the env's arguments, when given, override them. Other users (UserLM,
human, single-turn) decide for themselves and reject the options; an unknown option is an error that
lists the valid ones. The spec string (options included) is the user's name in logs and reports, so
``userlm-env evaluate --user replay --user 'replay?profile=sharegpt'`` gives two user columns.

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
from urllib.parse import unquote_plus

from userlm_env.backends.models import OFFLINE_HINT, ModelLoadError
from userlm_env.users.base import UserRequest, UserSimulator, UserTurn
from userlm_env.users.fully_specified import FullySpecifiedUser
from userlm_env.users.human import HumanUser
from userlm_env.users.profiles import resolve_profile
from userlm_env.users.prompted import PromptedUser, PromptedUserConfig
from userlm_env.users.replay import ReplayUser
from userlm_env.users.reveal import check_reveal
from userlm_env.users.userlm import DEFAULT_USERLM, UserLMConfig, UserLMUser, task_intent

USER_KINDS = ("userlm", "prompted", "replay", "human", "full", "concat")
USER_OPTIONS = ("profile", "reveal")
"""Options of env-controlled user specs (``replay?profile=sharegpt``, ``prompted:MODEL?...&reveal=responsive``)."""
USER_SPEC_HELP = (
    "valid user specs: 'microsoft/UserLM-8b' (default), 'userlm:MODEL', 'prompted:MODEL', 'replay', "
    "'replay:plain', 'human', 'full', 'concat', or a UserSimulator object; "
    "MODEL = hub id, local dir, .gguf file, 'smollm2-135m' "
    "or http://HOST:PORT/v1?tokenizer=... (OpenAI-compatible server); "
    "replay, replay:plain and prompted:MODEL take ?profile=PRESET&reveal=MODE"
)


def split_user_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Take the user options (``profile``, ``reveal``) out of a spec's ``?`` query.

    Returns ``(rest, options)``: ``rest`` is the spec with every other option kept as written (for
    ``prompted:MODEL``, the model spec's own options), ``options`` the user options found.
    ``split_user_spec("prompted:smollm2-135m?engine=auto&profile=terse")`` is
    ``("prompted:smollm2-135m?engine=auto", {"profile": "terse"})``.

    Raises:
        ValueError: a user option given twice.
    """
    head, sep, query = spec.partition("?")
    if not sep:
        return spec, {}
    kept: list[str] = []
    options: dict[str, str] = {}
    for piece in query.split("&"):
        key, _, value = piece.partition("=")
        if key in USER_OPTIONS:
            if key in options:
                raise ValueError(f"user option {key!r} given twice in {spec!r}")
            options[key] = unquote_plus(value)
        elif piece:
            kept.append(piece)
    return head + ("?" + "&".join(kept) if kept else ""), options


def _user_defaults(spec: str, options: dict[str, str]) -> dict[str, str]:
    """Validate a spec's ``profile`` / ``reveal`` options; returns them as ``ReplayUser`` / ``PromptedUser`` kwargs."""
    try:
        if "profile" in options:
            resolve_profile(options["profile"])
        if "reveal" in options:
            check_reveal(options["reveal"])
    except ValueError as err:
        raise ValueError(f"user={spec!r}: {err}") from err
    return dict(options)


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
        spec: a spec string, a :class:`UserSimulator` (returned as is), or None for UserLM-8b. Env-controlled
            users take ``?profile=PRESET&reveal=MODE`` (their defaults; see the module docstring).
        device: device of a local model.
        dtype: dtype of a local model (``"auto"``, ``"bfloat16"``...).
        config: :class:`UserLMConfig` or :class:`PromptedUserConfig` for model users.

    Raises:
        ValueError: unknown spec, user option, profile preset or reveal mode (the message lists the valid ones).
        ModelLoadError: the model cannot be loaded (the message says how to use the offline model).
    """
    if isinstance(spec, UserSimulator):
        return spec
    spec = DEFAULT_USERLM if spec is None else spec
    if not isinstance(spec, str):
        raise TypeError(f"user must be a spec string or a UserSimulator, got {type(spec).__name__}: {spec!r}")
    full_spec = spec
    spec, options = split_user_spec(spec)
    kind, _, model = spec.partition(":")
    if options and not (spec.partition("?")[0] in ("replay", "replay:plain") or (kind == "prompted" and model)):
        raise ValueError(
            f"user={full_spec!r}: the user options {sorted(options)} apply to env-controlled users only "
            "('replay', 'replay:plain', 'prompted:MODEL'); this user decides for itself what to reveal and when to end"
        )
    defaults = _user_defaults(full_spec, options)
    if spec.partition("?")[0] in ("replay", "replay:plain", "human", "full", "concat") and "?" in spec:
        unknown = sorted(piece.partition("=")[0] for piece in spec.partition("?")[2].split("&"))
        raise ValueError(
            f"unknown user option(s) {unknown} in {full_spec!r}; "
            f"user options: {', '.join(USER_OPTIONS)} (replay, replay:plain and prompted:MODEL only)"
        )
    if spec == "replay" or spec == "replay:plain":
        return ReplayUser(plain=spec.endswith(":plain"), name=full_spec if options else None, **defaults)
    if spec == "human":
        return HumanUser()
    if spec in ("full", "concat"):
        return FullySpecifiedUser(spec)
    if kind in ("userlm", "prompted") and model:
        try:
            backend = _backend(model, spec, device, dtype)
        except ValueError as err:
            if kind == "prompted" and "unknown model option" in str(err):
                raise ValueError(f"{err}; user options (prompted:MODEL): {', '.join(USER_OPTIONS)}") from err
            raise
        if kind == "userlm" and getattr(backend, "mode", None) == "chat":
            raise ValueError(
                f"user={spec!r}: a UserLM over HTTP needs completions mode (a chat endpoint opens an assistant "
                "turn); add ?tokenizer=TOKENIZER (e.g. microsoft/UserLM-8b) and drop mode=chat"
            )
        if kind == "userlm":
            return UserLMUser(backend, config if isinstance(config, UserLMConfig) else None, name=spec)
        return PromptedUser(
            backend, config if isinstance(config, PromptedUserConfig) else None, name=full_spec, **defaults
        )
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
    "USER_OPTIONS",
    "UserTurn",
    "make_user",
    "split_user_spec",
    "task_intent",
]
