"""A verl agent loop that plays userlm_env episodes: :class:`UserLMAgentLoop`, registered as ``"userlm_agent"``.

verl (0.9.x, ``pip install userlm_env[verl]``) runs multi-turn rollouts through *agent loops*
(``verl.experimental.agent_loop``; verl 0.9 removed ``verl.interactions``). For each dataset row an
``AgentLoopWorker`` builds the loop named by the row's ``agent_name`` and awaits
``loop.run(sampling_params, **row)``, which talks to the policy's inference servers through
``self.server_manager.generate(request_id=..., prompt_ids=..., sampling_params=...)`` (a
``TokenOutput``: ``token_ids``, ``log_probs``) and returns an ``AgentLoopOutput``.

What :meth:`UserLMAgentLoop.run` does, per row (rows come from :mod:`userlm_env.integrations.verl_data`):

1. builds the row's env (``extra_info``: ``env_id``, ``env_kwargs``: user / tasks / reward / ...
   specs) and resets it with ``env_seed`` (and ``task_index``); the user object, the task source and
   the judge are built once per process and shared by every loop (:func:`shared_user`);
2. renders the opening observation with the policy's chat template (``prompt_ids``; system messages
   at the head of the row's ``prompt`` are kept, the env never sees them);
3. alternates policy generations (the server's exact token ids, never re-tokenized; ``response_mask``
   1, with their ``log_probs``) and env steps: the reply is decoded for the env, and the user's answer
   is appended as the template's text between the end of the reply and the next open assistant turn
   (``response_mask`` 0, log-prob 0.0), tokenized exactly as :mod:`training.episodes` does for TRL
   (message contents never become control tokens);
4. stops when the episode ends or the response budget (``rollout.response_length``) would be
   exceeded, and reports the return as ``reward_score`` (verl puts it on the last response token as
   ``rm_scores``) and every reward component in ``extra_fields["reward_extra_info"]`` (verl logs them
   per sample): ``score``, ``turns``, ``component_<name>`` (episode totals, unweighted),
   ``truncated_by_length``, ``user_error``, ``failed``. ``extra_fields`` also carries
   ``turn_scores`` (the env's reward of each step), ``conversation``, ``task_id``, ``end_reason``,
   ``shards_revealed`` and ``cost`` (:data:`userlm_env.driver.COST_FIELDS`).

**User turns are batched across concurrent loops.** verl runs the loops of one worker as coroutines on
one event loop. Their env moves (resets and replies) go to a per-event-loop :class:`UserTurnBatcher`
that gathers the moves that arrive together (and every move that arrives while the previous batch is
still with the user) into one :meth:`userlm_env.driver.EpisodeDriver.round`, played in a worker thread
so that the event loop never blocks: one ``respond_batch`` call per user object for the whole batch,
with the driver's atomic steps, error policy (``errors="record"``: a failing episode ends alone; a
user ``BackendError`` truncates its episodes, ``end_reason == "user_error"``) and cost accounting.

**Seeds.** The env is reset with the row's ``env_seed`` (same seed = same task and user). The policy's
sampling is the server's; when a row carries ``policy_seed`` the reply of turn ``t`` is requested with
``seed = derive_seed("assistant-turn", policy_seed, t)``, as :mod:`userlm_env.rollout` and
:mod:`training.episodes` seed their policies (leave it unset for training: verl repeats a row
``rollout.n`` times and the samples of a group must differ).

Use it: write the data with :func:`userlm_env.integrations.verl_data.write_verl_dataset`, point
``actor_rollout_ref.rollout.agent.agent_loop_config_path`` at a YAML list naming this class (see
``examples/verl/``), set ``actor_rollout_ref.rollout.mode=async`` and
``actor_rollout_ref.rollout.multi_turn.enable=True``. The config's entry may set
:class:`UserLMAgentLoop`'s keyword arguments (``max_new_tokens``, ``env_defaults``, ...).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop import agent_loop as _verl_agent_loop
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register

from userlm_env.backends.rendering import env_turn_ids, render_chat_ids
from userlm_env.driver import COST_FIELDS, EpisodeDriver, Move, Outcome, empty_cost
from userlm_env.envs import ENV_CLASSES, ShardedChatEnv, resolve_env_id
from userlm_env.episode_types import EndReason
from userlm_env.rewards import COMPONENTS
from userlm_env.seeding import derive_seed
from userlm_env.users import UserSimulator, make_user

__all__ = [
    "AGENT_NAME",
    "EpisodeRow",
    "UserLMAgentLoop",
    "UserTurnBatcher",
    "clear_shared",
    "env_turn_ids",
    "make_env",
    "shared_user",
]

logger = logging.getLogger(__name__)

AGENT_NAME = "userlm_agent"
"""The name :class:`UserLMAgentLoop` is registered under (the rows' ``agent_name``)."""

REWARD_EXTRA_KEYS = (
    "score",
    "turns",
    "env_return",
    *(f"component_{name}" for name in COMPONENTS),
    "truncated_by_length",
    "user_error",
    "failed",
)
"""The keys of ``extra_fields["reward_extra_info"]`` (the same for every sample: verl stacks them)."""


# ---------------------------------------------------------------------------------------------
# The dataset row
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EpisodeRow:
    """What one dataset row asks for (read from its ``extra_info``; see :mod:`userlm_env.integrations.verl_data`).

    Attributes:
        env_id: the registered env id (``"UserLM-Math-v0"``, ``"UserLM-Code-v0"``, or ``"math"`` / ``"code"``).
        env_kwargs: the env's constructor arguments (``user``, ``tasks``, ``reward``, ``max_turns``, ...).
        env_seed: the ``env.reset`` seed.
        task_index: ``options["task_index"]`` of the reset (None: the seed draws the task).
        policy_seed: seed of the policy's replies (None: the server's own sampling).
        max_new_tokens: per-reply token cap for this row (None: the loop's).
    """

    env_id: str
    env_kwargs: dict[str, Any]
    env_seed: int
    task_index: int | None = None
    policy_seed: int | None = None
    max_new_tokens: int | None = None

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> EpisodeRow:
        """The row of ``run``'s keyword arguments (its ``extra_info``), over the loop's ``env_defaults``.

        Raises:
            ValueError: no ``extra_info`` with an ``env_seed`` (the message says how to build the data).
        """
        info = _plain(kwargs.get("extra_info")) or {}
        if not isinstance(info, Mapping) or info.get("env_seed") is None:
            raise ValueError(
                f"{AGENT_NAME}: the row's extra_info has no env_seed (got {info!r:.200}); build the data with "
                "userlm_env.integrations.verl_data.write_verl_dataset()"
            )
        env_kwargs = info.get("env_kwargs") or {}
        if isinstance(env_kwargs, str):
            env_kwargs = json.loads(env_kwargs)
        merged = {**dict(_plain(defaults) or {}), **dict(_plain(env_kwargs))}
        env_id = info.get("env_id") or merged.pop("env_id", None) or "UserLM-Math-v0"
        merged.pop("env_id", None)
        return cls(
            env_id=resolve_env_id(str(env_id)),
            env_kwargs=merged,
            env_seed=int(info["env_seed"]),
            task_index=_optional_int(info.get("task_index")),
            policy_seed=_optional_int(info.get("policy_seed")),
            max_new_tokens=_optional_int(info.get("max_new_tokens")),
        )

    @property
    def reset_options(self) -> dict[str, Any] | None:
        """The ``env.reset`` options (the task index, when given)."""
        return None if self.task_index is None else {"task_index": self.task_index}


def _optional_int(value: Any) -> int | None:
    """``int(value)``, or None for a missing value (None, or the NaN pandas writes for a missing int)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def _plain(value: Any) -> Any:
    """``value`` as plain Python (OmegaConf containers, numpy scalars and arrays unwrapped)."""
    if value is None:
        return None
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# Per-process shared objects: users, task sources, judges
# ---------------------------------------------------------------------------------------------

_LOCK = threading.Lock()
_USERS: dict[str, UserSimulator] = {}
_SHARED: dict[str, dict[str, Any]] = {}


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=repr)


def shared_user(spec: Any = None, device: str | None = None) -> UserSimulator:
    """The process's user simulator for ``spec`` (built on first use, then shared by every loop).

    A :class:`~userlm_env.users.UserSimulator` object is returned as is.
    """
    if isinstance(spec, UserSimulator):
        return spec
    key = _key(spec, device)
    with _LOCK:  # one load per spec, even when many loops start at once
        if key not in _USERS:
            _USERS[key] = make_user(spec, device=device)
        return _USERS[key]


def _shared_parts(env_class: type[ShardedChatEnv], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The env family's task source and judge (``build_shared``), built once per spec; pops them from ``kwargs``."""
    specs = {name: kwargs.pop(name) for name in ("tasks", "judge") if name in kwargs}
    key = _key(env_class.__name__, specs)
    with _LOCK:
        if key not in _SHARED:
            _SHARED[key] = env_class.build_shared(dict(specs))
        return _SHARED[key]


def make_env(env_id: str, env_kwargs: Mapping[str, Any]) -> ShardedChatEnv:
    """A fresh unwrapped env of ``env_id`` whose user, task source and judge are the process's shared ones."""
    env_class = ENV_CLASSES[resolve_env_id(env_id)]
    kwargs = dict(env_kwargs)
    user = shared_user(kwargs.pop("user", None), kwargs.pop("user_device", None))
    shared = _shared_parts(env_class, kwargs)
    return env_class(user=user, **shared, **kwargs)


def clear_shared() -> None:
    """Close and forget the process's shared users, task sources and judges (tests, re-configuration)."""
    with _LOCK:
        users = list(_USERS.values())
        _USERS.clear()
        _SHARED.clear()
    for user in users:
        try:
            user.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            logger.warning("closing user %r failed", user, exc_info=True)


# ---------------------------------------------------------------------------------------------
# Batching the env moves (user turns) of concurrent loops
# ---------------------------------------------------------------------------------------------


class UserTurnBatcher:
    """Plays the env moves of concurrent agent loops together: one ``EpisodeDriver.round`` per batch.

    Bound to one event loop. :meth:`play` queues a move (a reset or a reply) of one env and awaits its
    :class:`~userlm_env.driver.Outcome`. A batch leaves ``wait_s`` after its first move, at once when it
    holds ``max_batch`` moves, and never while the previous batch is still running: moves that arrive
    meanwhile wait and leave together as soon as it is done. Each batch is one
    :meth:`~userlm_env.driver.EpisodeDriver.round` (``errors="record"``) over the batch's envs, in a
    single worker thread (user models are not shared across threads, and the event loop never blocks),
    so each user object gets one ``respond_batch`` call per batch.

    Attributes:
        stats: totals over the batches (the driver's ``stats`` summed, plus ``batches`` and ``moves``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, wait_s: float = 0.005, max_batch: int = 256):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.loop = loop
        self.wait_s = wait_s
        self.max_batch = max_batch
        self.stats: dict[str, float] = {**empty_cost(), "policy_calls": 0, "batches": 0, "moves": 0}
        self._pending: list[tuple[ShardedChatEnv, Move, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="userlm-user")

    async def play(self, env: ShardedChatEnv, move: Move) -> Outcome:
        """Play ``move`` (its ``slot`` is ignored) on ``env`` in the next batch; its outcome."""
        future = self.loop.create_future()
        self._pending.append((env, move, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None and not self._running:
            self._timer = self.loop.call_later(self.wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running or not self._pending:
            return
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._running = True
        self.loop.create_task(self._run(batch))

    async def _run(self, batch: list[tuple[ShardedChatEnv, Move, asyncio.Future]]) -> None:
        envs = [env for env, _, _ in batch]
        moves = [dataclasses.replace(move, slot=slot) for slot, (_, move, _) in enumerate(batch)]
        driver = EpisodeDriver(envs, errors="record")
        try:
            outcomes = await self.loop.run_in_executor(self._executor, driver.round, moves)
        except BaseException as err:  # noqa: BLE001 - handed to every waiting loop
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(err)
        else:
            for (_, _, future), outcome in zip(batch, outcomes):
                if not future.done():
                    future.set_result(outcome)
            for name, value in driver.stats.items():
                self.stats[name] = self.stats.get(name, 0) + value
            self.stats["batches"] += 1
            self.stats["moves"] += len(batch)
        finally:
            self._running = False
            if self._pending:  # what arrived while this batch ran leaves now
                self._flush()

    def close(self) -> None:
        """Stop the worker thread (pending moves are not played)."""
        self._executor.shutdown(wait=False)


_BATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, UserTurnBatcher] = weakref.WeakKeyDictionary()


def batcher_for(loop: asyncio.AbstractEventLoop, **kwargs: Any) -> UserTurnBatcher:
    """The :class:`UserTurnBatcher` of ``loop`` (one per event loop, made on first use with ``kwargs``)."""
    batcher = _BATCHERS.get(loop)
    if batcher is None:
        batcher = _BATCHERS[loop] = UserTurnBatcher(loop, **kwargs)
    return batcher


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# The agent loop
# ---------------------------------------------------------------------------------------------


def _register_once(cls: type[AgentLoopBase]) -> type[AgentLoopBase]:
    """``@register(AGENT_NAME)``, unless an ``agent_loop_config_path`` entry already holds the name.

    verl's worker reads that YAML first and instantiates the entry's ``_target_`` (this class) with the
    entry's keys as arguments; a plain ``@register`` running on that first import would replace the
    entry with a bare ``{"_target_": ...}``, so every later episode would lose the configured arguments.
    """
    registry = getattr(_verl_agent_loop, "_agent_loop_registry", None)
    if registry is not None and AGENT_NAME in registry:
        return cls
    return register(AGENT_NAME)(cls)


@_register_once
class UserLMAgentLoop(AgentLoopBase):
    """verl agent loop: one userlm_env episode per dataset row (see the module docstring).

    Args:
        *args: ``AgentLoopBase``'s (verl passes ``trainer_config``, ``server_manager``, ``tokenizer``,
            ``processor``, ``dataset_cls``, ``data_config``, ``hf_model_type``).
        max_new_tokens: cap on each reply's tokens (None: whatever is left of ``rollout.response_length``).
            An episode stops (``truncated_by_length``) when the next user turn plus a full reply would
            not fit in the response budget, exactly as ``training.episodes.collect_episodes`` does
            with ``max_completion_tokens=response_length``.
        env_defaults: env constructor arguments under every row's ``env_kwargs`` (e.g. the user's
            server: ``{"user": "userlm:http://host:8000/v1?tokenizer=microsoft/UserLM-8b"}``).
        user_batch_wait_s: how long a batch of env moves waits for more (:class:`UserTurnBatcher`).
        user_max_batch: the largest batch of env moves.
        **kwargs: passed to ``AgentLoopBase`` (verl also passes ``tools``; the YAML entry's ``name``).
    """

    def __init__(
        self,
        *args: Any,
        max_new_tokens: int | None = None,
        env_defaults: Mapping[str, Any] | None = None,
        user_batch_wait_s: float = 0.005,
        user_max_batch: int = 256,
        **kwargs: Any,
    ):
        kwargs.pop("name", None)  # the agent_loop_config_path entry's own name
        kwargs.pop("tools", None)  # verl's tool list: this loop has none
        super().__init__(*args, **kwargs)
        self.max_new_tokens = None if max_new_tokens is None else int(max_new_tokens)
        self.env_defaults = dict(_plain(env_defaults) or {})
        self.user_batch_wait_s = float(user_batch_wait_s)
        self.user_max_batch = int(user_max_batch)
        self.response_length = int(self.rollout_config.response_length)
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.end_id = self.tokenizer.eos_token_id
        if self.end_id is None:
            raise ValueError(f"{AGENT_NAME}: the policy's tokenizer has no eos_token_id to end its replies")
        self.end_of_reply = self.tokenizer.convert_ids_to_tokens(self.end_id)
        self.seed_key = "sampling_seed" if self.rollout_config.get("name", None) == "sglang" else "seed"

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Play one episode of the row in ``kwargs``; its tokens, mask, log-probs and reward."""
        loop = asyncio.get_running_loop()
        row = EpisodeRow.from_kwargs(kwargs, self.env_defaults)
        head = [dict(m) for m in (_plain(kwargs.get("raw_prompt")) or []) if m.get("role") == "system"]
        batcher = batcher_for(loop, wait_s=self.user_batch_wait_s, max_batch=self.user_max_batch)
        # a fresh env per episode (never closed: its user is the process's shared one); the first use loads models
        env = await loop.run_in_executor(None, make_env, row.env_id, row.env_kwargs)
        return await self._play(env, row, head, batcher, sampling_params, _Episode())

    async def _play(self, env, row: EpisodeRow, head, batcher, sampling_params, episode: _Episode) -> AgentLoopOutput:
        tokenizer = self.tokenizer
        outcome = await batcher.play(env, Move.start(0, row.env_seed, row.reset_options))
        episode.add_cost(outcome)
        if outcome.error is not None:
            raise RuntimeError(
                f"{AGENT_NAME}: resetting {row.env_id} with seed {row.env_seed} failed:\n{outcome.error}"
            )
        view = outcome.view
        obs = outcome.obs or []
        prompt_ids = render_chat_ids(tokenizer, head + obs, add_generation_prompt=True)
        if len(prompt_ids) > self.prompt_length:
            raise ValueError(
                f"{AGENT_NAME}: the opening prompt has {len(prompt_ids)} tokens, more than "
                f"rollout.prompt_length={self.prompt_length}; raise data.max_prompt_length / rollout.prompt_length"
            )
        if view.done:  # the user's model failed (or the user left) before the chat began
            episode.user_error = view.end_reason is EndReason.USER_ERROR
            episode.info = outcome.info or {}
            return self._output(prompt_ids, episode, obs, view)
        context = list(prompt_ids)  # what the policy conditions on next: prompt + response so far
        request_id = uuid4().hex
        per_turn = row.max_new_tokens if row.max_new_tokens is not None else self.max_new_tokens
        stop_ids = sorted({*(sampling_params.get("stop_token_ids") or []), self.end_id})
        while True:
            remaining = self.response_length - len(episode.response_ids)
            params = {
                **sampling_params,
                "stop_token_ids": stop_ids,
                "max_tokens": min(per_turn or remaining, remaining),
            }
            if row.policy_seed is not None:  # vLLM's per-request seed (SGLang calls it sampling_seed)
                params[self.seed_key] = derive_seed("assistant-turn", row.policy_seed, episode.turns)
            start = time.perf_counter()
            output = await self.server_manager.generate(
                request_id=request_id, prompt_ids=context, sampling_params=params
            )
            episode.generate_seconds += time.perf_counter() - start
            episode.server_fields(output)
            ids = list(output.token_ids)
            logprobs = list(output.log_probs) if output.log_probs else None
            if logprobs is None or len(logprobs) != len(ids):
                episode.have_logprobs = False
                logprobs = [0.0] * len(ids)
            mask = [1] * len(ids)
            if not ids or ids[-1] != self.end_id:  # a reply cut by its token cap: the env closes the turn
                ids, logprobs, mask = ids + [self.end_id], logprobs + [0.0], mask + [0]
            if len(episode.response_ids) + len(ids) > self.response_length:  # no room for the closing token
                ids, logprobs, mask = ids[:-1], logprobs[:-1], mask[:-1]
            reply = tokenizer.decode(ids, skip_special_tokens=True).strip()
            episode.append(ids, mask, logprobs)
            context += ids
            episode.turns += 1
            before_obs = obs
            outcome = await batcher.play(env, Move.act(0, reply))
            episode.add_cost(outcome)
            if outcome.error is not None:  # a judge or user bug: this episode ends, the others go on
                logger.warning("%s: an env step failed; the episode ends there:\n%s", AGENT_NAME, outcome.error)
                episode.error = outcome.error
                return self._output(prompt_ids, episode, obs, outcome.view)
            obs, view = outcome.obs, outcome.view
            episode.step(outcome)
            if view.done:
                episode.user_error = view.end_reason is EndReason.USER_ERROR
                return self._output(prompt_ids, episode, obs, view)
            recorded = obs[: len(before_obs) + 1]  # the chat up to the reply as the env recorded it
            env_ids = env_turn_ids(tokenizer, head + recorded, head + obs, self.end_of_reply)
            if len(episode.response_ids) + len(env_ids) + (per_turn or 1) > self.response_length:
                episode.truncated_by_length = True
                return self._output(prompt_ids, episode, obs, view)
            episode.append(env_ids, [0] * len(env_ids), [0.0] * len(env_ids))
            context += env_ids

    def _output(self, prompt_ids: list[int], episode: _Episode, obs, view) -> AgentLoopOutput:
        if not episode.response_ids:  # no reply at all (the user's model failed at once): one env token
            episode.append([self.end_id], [0], [0.0])
        components = {name: episode.components.get(name, 0.0) for name in COMPONENTS}
        episode.cost["policy_seconds"] = episode.generate_seconds
        extra_info = {
            "score": float(episode.score),
            "turns": float(episode.turns),
            "env_return": float(episode.total_reward),
            **{f"component_{name}": float(value) for name, value in components.items()},
            "truncated_by_length": float(episode.truncated_by_length),
            "user_error": float(episode.user_error),
            "failed": float(episode.error is not None),
        }
        conversation = [dict(m) for m in (obs or [])]
        extra_fields = {
            "reward_extra_info": extra_info,
            "turn_scores": list(episode.step_rewards),
            "tool_rewards": [],
            "conversation": conversation,
            "task_id": None if view is None else view.task.task_id,
            "end_reason": None if view is None or view.end_reason is None else view.end_reason.value,
            "shards_revealed": [] if view is None else list(view.revealed),
            "cost": dict(episode.cost),
        }
        if episode.error is not None:
            extra_fields["error"] = episode.error
        return AgentLoopOutput(
            prompt_ids=list(prompt_ids),
            response_ids=episode.response_ids,
            response_mask=episode.response_mask,
            response_logprobs=episode.logprobs if episode.have_logprobs else None,
            reward_score=float(episode.total_reward),
            num_turns=len(conversation),
            metrics={"generate_sequences": episode.generate_seconds, "num_preempted": episode.num_preempted},
            extra_fields={**episode.server_extra, **extra_fields},
        )


@dataclasses.dataclass
class _Episode:
    """The running episode's tokens and rewards (one per :meth:`UserLMAgentLoop.run`)."""

    response_ids: list[int] = dataclasses.field(default_factory=list)
    response_mask: list[int] = dataclasses.field(default_factory=list)
    logprobs: list[float] = dataclasses.field(default_factory=list)
    have_logprobs: bool = True
    turns: int = 0
    step_rewards: list[float] = dataclasses.field(default_factory=list)
    components: dict[str, float] = dataclasses.field(default_factory=dict)
    total_reward: float = 0.0
    score: float = 0.0
    truncated_by_length: bool = False
    user_error: bool = False
    error: str | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    cost: dict[str, float] = dataclasses.field(default_factory=empty_cost)
    generate_seconds: float = 0.0
    num_preempted: int = -1
    server_extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def server_fields(self, output: Any) -> None:
        """Keep what the server reports per generation (weights' global steps, preemptions), as verl's loops do."""
        fields = dict(getattr(output, "extra_fields", None) or {})
        if not self.server_extra:
            self.server_extra.update(fields)
        elif fields.get("max_global_steps") is not None:
            self.server_extra["max_global_steps"] = fields["max_global_steps"]
        preempted = getattr(output, "num_preempted", None)
        if preempted is not None:
            self.num_preempted = max(self.num_preempted, 0) + int(preempted)

    def append(self, ids: list[int], mask: list[int], logprobs: list[float]) -> None:
        self.response_ids += ids
        self.response_mask += mask
        self.logprobs += logprobs

    def step(self, outcome: Outcome) -> None:
        self.step_rewards.append(float(outcome.reward))
        self.total_reward += float(outcome.reward)
        for name, value in outcome.info["reward_components"].items():
            self.components[name] = self.components.get(name, 0.0) + float(value)
        self.score = float(outcome.info.get("score", 0.0))
        self.info = outcome.info

    def add_cost(self, outcome: Outcome) -> None:
        for name in COST_FIELDS:
            self.cost[name] += float(outcome.cost.get(name, 0.0))
