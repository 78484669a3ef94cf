r"""UserLM-Math-v0 / UserLM-Code-v0 as `verifiers <https://github.com/PrimeIntellect-ai/verifiers>`_ v1 environments.

verifiers 0.4 (``verifiers.v1``, extra ``[verifiers]``) splits an environment into a **taskset**
(rows), **agents** (a harness x model x runtime each) and an **env** whose ``run(task, agents)`` is
plain control flow between them. This module maps userlm_env onto it:

====================  ================================================================================
verifiers             userlm_env
====================  ================================================================================
``Taskset``           :class:`UserLMMathTaskset` / :class:`UserLMCodeTaskset`: the env's sharded tasks
                      (``--env.taskset.tasks`` = the env's ``tasks=`` spec); the hidden task rides on
                      :class:`UserLMTaskData` (``prompt=None``: the user opens the chat)
``Env``               :class:`UserLMEnv`: one ``assistant`` seat. ``run`` builds the Gymnasium env with
                      its *own* simulated user (``--env.user replay`` / ``prompted:...`` / a UserLM,
                      with its reveal rules), feeds each user turn to the assistant through
                      ``agents.assistant.interaction(task)`` and each reply back to ``env.step``
``Harness``           :class:`ChatHarness`: a tool-less chat turn run in-process (one chat completion
                      per user turn through the rollout's interception endpoint, so the trace and
                      tokens are recorded as for any harness); no uv/sandbox program
rewards / metrics     every reward component of the episode (``info["reward_components"]`` summed over
                      steps), recorded with its weight from ``--env.reward``, so ``trace.reward`` is the
                      env's return; LiC score, turns, shards revealed... as metrics; the per-step
                      judgements in ``trace.info["userlm"]``
====================  ================================================================================

verifiers resolves a taskset id by importing a **top-level** module named after it
(``verifiers/v1/utils/loaders.py``, ``_import_plugin``: ``UserLM-Math-v0`` -> ``userlm_math_v0``),
which must export its ``Taskset`` (and here also its ``Env`` and default ``Harness``) via
``__all__``. Those two modules ship in ``examples/verifiers/`` (``pip install -e examples/verifiers``);
:func:`register_plugin_modules` provides them in-process when they are not installed. Then::

    vf-eval UserLM-Math-v0 -m MODEL --client.base-url http://127.0.0.1:8000/v1 --env.user replay \
        -n 2 --no-push --no-rich

or from Python ``env = load_environment("UserLM-Math-v0", user="replay")`` (a ``verifiers.v1.Env``).

Importing this module imports verifiers; ``import userlm_env`` never does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import verifiers.v1 as vf
from pydantic import Field
from verifiers.v1.dialects.chat import message_to_wire

from userlm_env.envs import make_env_task_source, make_unwrapped_env, resolve_env_id
from userlm_env.rewards import COMPONENTS
from userlm_env.seeding import derive_seed
from userlm_env.tasks import Shard, ShardedTask, TaskSource
from userlm_env.users import UserSimulator, make_user

__all__ = [
    "PLUGIN_MODULES",
    "ChatHarness",
    "ChatHarnessConfig",
    "UserLMCodeTaskset",
    "UserLMEnv",
    "UserLMEnvConfig",
    "UserLMMathTaskset",
    "UserLMTask",
    "UserLMTaskData",
    "UserLMTaskset",
    "UserLMTasksetConfig",
    "load_environment",
    "plugin_module_name",
    "register_plugin_modules",
]


# --------------------------------------------------------------------------- tasks


class UserLMTaskData(vf.TaskData):
    """One sharded task as a verifiers row (``prompt`` stays None: the simulated user opens the chat).

    The hidden fields never reach the assistant: harnesses read only ``prompt`` and ``system_prompt``.
    ``source_index`` / ``source_seed`` locate the task in the taskset's source, so a task that crossed
    a process boundary (verifiers' env server sends ``TaskData`` only) is rebuilt exactly, code tests
    included.
    """

    gym_id: str = ""
    task_id: str = ""
    kind: str = "math"
    instruction: str = ""
    shards: list[str] = Field(default_factory=list)
    answer: str = ""
    source_index: int | None = None
    """Position in a finite task source."""
    source_seed: int | None = None
    """Seed of ``np.random.default_rng`` that drew the task from an unlimited source."""


class UserLMTask(vf.Task[UserLMTaskData]):
    """A sharded task; :class:`UserLMEnv` scores it (the task itself declares no reward hooks)."""

    sharded: ShardedTask | None = None
    """The live task when it was built in this process (``with_data`` copies keep it)."""

    @classmethod
    def from_sharded(
        cls, task: ShardedTask, gym_id: str, *, index: int | None = None, seed: int | None = None
    ) -> UserLMTask:
        """Wrap a :class:`~userlm_env.tasks.ShardedTask` of env ``gym_id``."""
        data = UserLMTaskData(
            id=task.task_id,
            name=task.task_id,
            prompt=None,
            gym_id=gym_id,
            task_id=task.task_id,
            kind=task.kind,
            instruction=task.instruction,
            shards=[s.text for s in task.shards],
            answer=task.answer,
            source_index=index,
            source_seed=seed,
        )
        out = cls(data)
        out.sharded = task
        return out


class UserLMTasksetConfig(vf.TasksetConfig):
    """``--env.taskset.*``: which sharded tasks the rows are."""

    tasks: str | None = None
    """The env's ``tasks=`` spec (None: the env's default, ``procedural`` / ``code:procedural``);
    e.g. ``gsm8k:PATH``, ``lic:PATH``, ``humaneval:PATH``."""
    num_tasks: int | None = None
    """Rows: the first ``num_tasks`` of a finite source (None: all); an unlimited (procedural) source
    yields that many seeded draws, or without limit when None (bound the run with ``-n``)."""
    seed: int = 0
    """Seed of the draws from an unlimited source."""


class UserLMTaskset(vf.Taskset[UserLMTask, UserLMTasksetConfig]):
    """The sharded tasks of :attr:`GYM_ID` (built once per taskset; finite sources index, others draw)."""

    GYM_ID = "UserLM-Math-v0"

    def __init__(self, config: UserLMTasksetConfig) -> None:
        super().__init__(config)
        self.gym_id = resolve_env_id(self.GYM_ID)
        self.source: TaskSource = make_env_task_source(self.gym_id, config.tasks)
        self._finite = _is_finite(self.source)
        if not self._finite and config.num_tasks is None:
            self.INFINITE = True

    def load(self) -> Iterator[UserLMTask]:
        """Yield the rows in source order (finite) or as seeded draws (unlimited)."""
        limit = self.config.num_tasks
        if self._finite:
            count = len(self.source) if limit is None else min(limit, len(self.source))
            for index in range(count):
                yield UserLMTask.from_sharded(self.source[index], self.gym_id, index=index)
            return
        for i in itertools.count() if limit is None else range(limit):
            seed = derive_seed("verifiers-taskset", self.config.seed, i)
            yield UserLMTask.from_sharded(self.task_for(seed=seed), self.gym_id, seed=seed)

    def task_for(self, *, index: int | None = None, seed: int | None = None) -> ShardedTask:
        """The task at ``index`` of a finite source, or drawn with ``seed`` from an unlimited one."""
        if index is not None:
            return self.source[index]
        if seed is None:
            raise ValueError("need a source index or a draw seed to rebuild a task")
        return self.source.sample(np.random.default_rng(seed))

    def rebuild(self, data: vf.TaskData) -> ShardedTask:
        """The :class:`ShardedTask` a row stands for (from the source, else from the row's fields)."""
        fields = data.model_dump()
        index, seed = fields.get("source_index"), fields.get("source_seed")
        if index is not None or seed is not None:
            task = self.task_for(index=index, seed=seed)
            if task.task_id == fields.get("task_id"):
                return task
        shards = fields.get("shards") or []
        if not shards:
            raise ValueError(f"row {data.idx} is not a userlm_env task (no shards)")
        return ShardedTask(
            task_id=fields.get("task_id") or str(data.id),
            instruction=fields.get("instruction", ""),
            shards=tuple(Shard(i + 1, text) for i, text in enumerate(shards)),
            answer=fields.get("answer", ""),
            kind=fields.get("kind", "math"),
        )


def _is_finite(source: TaskSource) -> bool:
    try:
        len(source)  # type: ignore[arg-type]
        source[0]  # type: ignore[index]
    except (TypeError, AttributeError, NotImplementedError):
        return False
    return True


class UserLMMathTaskset(UserLMTaskset):
    """UserLM-Math-v0's sharded math tasks (``vf-eval UserLM-Math-v0``)."""

    GYM_ID = "UserLM-Math-v0"


class UserLMCodeTaskset(UserLMTaskset):
    """UserLM-Code-v0's sharded coding tasks (``vf-eval UserLM-Code-v0``)."""

    GYM_ID = "UserLM-Code-v0"


# --------------------------------------------------------------------------- harness


class ChatHarnessConfig(vf.HarnessConfig):
    """The in-process chat harness has no knobs beyond the base config."""


class ChatHarness(vf.Harness[ChatHarnessConfig]):
    """A tool-less assistant: each segment is one chat completion on the conversation so far.

    Runs in-process (``Harness.launch``'s documented alternative to a program): the call goes to the
    rollout's interception ``endpoint`` with its ``secret``, so verifiers records the model call,
    tokens and sampling on the trace exactly as for its own ``null`` harness, which instead launches
    a PEP 723 script through ``uv`` (``verifiers/v1/harnesses/null/harness.py``).
    """

    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(
        self,
        ctx: vf.ModelContext,
        trace: vf.Trace,
        runtime: vf.Runtime,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: vf.TaskData,
        tool_interception_url: str | None = None,
    ) -> vf.ProgramResult:
        """One chat completion on ``data``'s conversation; the reply is the program's stdout."""
        from openai import AsyncOpenAI

        system, prompt = self.resolve_prompt(data)
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        if isinstance(prompt, str):
            messages.append({"role": "user", "content": prompt})
        elif prompt:
            messages += [message_to_wire(m) for m in prompt]
        async with AsyncOpenAI(base_url=endpoint, api_key=secret) as client:
            completion = await client.chat.completions.create(model=ctx.model, messages=messages)
        text = completion.choices[0].message.content if completion.choices else ""
        return vf.ProgramResult(exit_code=0, stdout=text or "", stderr="")


# --------------------------------------------------------------------------- env


class UserLMEnvConfig(vf.EnvConfig):
    """``--env.*``: the assistant seat and the Gymnasium env's own arguments."""

    assistant: vf.AgentConfig = vf.AgentConfig(runtime=vf.SubprocessConfig())
    """The policy under evaluation/training (``--env.assistant.*``); its harness defaults to the
    taskset's :class:`ChatHarness`, its runtime to a local subprocess box."""
    user: str | None = None
    """The env's ``user=`` spec: ``replay``, ``prompted:MODEL``, ``userlm:MODEL``... (None: the env's
    default, ``microsoft/UserLM-8b``)."""
    reward: str = "lic"
    """The env's ``reward=`` preset (``lic``, ``shaped``, ``efficient``, ``shaped:turn=-0.05``...)."""
    max_turns: int | None = None
    """The env's ``max_turns`` (None: its default)."""
    judge: str | None = None
    """The env's ``judge=`` (None: its default, ``rule``)."""
    user_device: str | None = None
    """Device of a local user model."""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Any other constructor argument of the Gymnasium env (e.g. a code env's ``sandbox``)."""
    seed: int = 0
    """Base of the episodes' reset seeds (``derive_seed(seed, task idx, rollout k)``)."""


class UserLMEnv(vf.Env[UserLMEnvConfig]):
    """The Gymnasium env drives the conversation: its user speaks, the ``assistant`` seat replies.

    Each episode builds the env named by the taskset (``UserLM-Math-v0`` / ``UserLM-Code-v0``) with
    one shared user simulator, resets it on the row's task, then relays: the env's user turn goes
    to ``interaction.turn(...)``, the assistant's reply to ``env.step(...)``, until the env ends the
    episode (correct answer, all shards revealed and answered, the user ends it, ``max_turns``).
    ``env.reset`` / ``env.step`` (where the user model runs) run in a worker thread, one at a time.
    """

    def __init__(self, config: UserLMEnvConfig) -> None:
        super().__init__(config)
        if not isinstance(self.taskset, UserLMTaskset):
            raise TypeError(
                f"UserLMEnv plays userlm_env tasksets (UserLM-Math-v0 / UserLM-Code-v0), got "
                f"{type(self.taskset).__name__} for --env.taskset.id {config.taskset.id!r}"
            )
        self._user: UserSimulator | None = None
        self._lock = threading.Lock()
        self._rollouts: dict[int | None, itertools.count] = {}

    # ------------------------------------------------------------------ building
    def _user_simulator(self) -> UserSimulator:
        if self._user is None:
            self._user = make_user(self.config.user, device=self.config.user_device)
        return self._user

    def make_gym_env(self):
        """A fresh unwrapped env of the taskset's id, sharing this env's user and task source."""
        kwargs: dict[str, Any] = {"reward": self.config.reward, **self.config.env_kwargs}
        if self.config.max_turns is not None:
            kwargs["max_turns"] = self.config.max_turns
        if self.config.judge is not None:
            kwargs["judge"] = self.config.judge
        return make_unwrapped_env(self.taskset.gym_id, user=self._user_simulator(), tasks=self.taskset.source, **kwargs)

    def _episode_seed(self, task: vf.Task) -> int:
        counter = self._rollouts.setdefault(task.data.idx, itertools.count())
        return derive_seed("verifiers-episode", self.config.seed, task.data.idx or 0, next(counter))

    def _locked(self, fn, *args, **kwargs):
        with self._lock:
            return fn(*args, **kwargs)

    async def _call(self, fn, *args, **kwargs):
        return await asyncio.to_thread(self._locked, fn, *args, **kwargs)

    async def stop(self) -> None:
        """Release the user simulator (servers, terminals) when verifiers stops serving the env."""
        if self._user is not None:
            user, self._user = self._user, None
            await asyncio.to_thread(user.close)

    # ------------------------------------------------------------------ the episode
    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        """One episode: the env's user and the assistant seat take turns until the env ends it."""
        sharded = getattr(task, "sharded", None) or self.taskset.rebuild(task.data)
        seed = self._episode_seed(task)
        gym_env = await self._call(self.make_gym_env)
        obs, info = await self._call(gym_env.reset, seed=seed, options={"task": sharded})
        if info.get("end_reason") == "user_error" or not obs:
            raise RuntimeError(f"the simulated user failed to open the conversation: {info.get('error')}")
        assistant_task = task.with_data(prompt=None)  # the user opens: the assistant gets no seed prompt
        steps: list[dict[str, Any]] = []
        stopped = "env"
        async with agents.assistant.interaction(assistant_task) as chat:
            while True:
                segment = await chat.turn(obs[-1]["content"])
                if segment.terminated:
                    stopped = "assistant_run_ended"  # a verifiers limit (--env.assistant.max-turns...) or error
                    break
                obs, reward, terminated, truncated, info = await self._call(gym_env.step, _reply_text(segment))
                steps.append(_step_record(reward, info))
                if terminated or truncated:
                    break
            _record(chat.trace, self.taskset.gym_id, gym_env, sharded, seed, steps, info, stopped)


def _reply_text(segment: Any) -> str:
    """The assistant's reply as sent (unstripped), else verifiers' ``last_reply``."""
    for message in reversed(segment.messages):
        if isinstance(message, vf.AssistantMessage) and message.content is not None:
            return message.content
    return segment.last_reply


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _step_record(reward: float, info: dict[str, Any]) -> dict[str, Any]:
    keys = ("turn", "reply_kind", "answer_attempt", "extracted_answer", "correct", "score", "new_shards",
            "shards_revealed", "user_ended", "end_reason", "reward_components")  # fmt: skip
    return _jsonable({"reward": float(reward), **{k: info.get(k) for k in keys}})


def _record(
    trace: vf.Trace, gym_id: str, gym_env: Any, task: ShardedTask, seed: int, steps: list, info: dict, stopped: str
) -> None:
    """Rewards (each component with its weight), metrics and the step log on the assistant's trace."""
    weights = gym_env.reward_config.as_dict()
    for name in COMPONENTS:
        total = sum(step["reward_components"].get(name, 0.0) for step in steps)
        trace.record_reward(name, total, weights[name])
    episode = gym_env.episode
    user_turns = [m["content"] for m in episode.conversation if m["role"] == "user"]
    trace.record_metrics(
        {
            "lic_score": float(episode.score),
            "turns": float(episode.turn),
            "user_turns": float(episode.user_turns),
            "shards_revealed": float(len(episode.revealed)),
            "num_shards": float(task.num_shards),
            "intent_coverage": len(episode.revealed) / task.num_shards,
            "answer_attempts": float(sum(bool(s["answer_attempt"]) for s in steps)),
            "user_ended": float(bool(info.get("user_ended"))),
            "env_done": float(episode.done),
            "return": float(sum(s["reward"] for s in steps)),
        }
    )
    trace.info["userlm"] = _jsonable(
        {
            "gym_id": gym_id,
            "task_id": task.task_id,
            "reset_seed": seed,
            "end_reason": None if episode.end_reason is None else episode.end_reason.value,
            "stopped_by": stopped,
            "user_turns": user_turns,
            "shards_revealed": list(episode.revealed),
            "steps": steps,
        }
    )


# --------------------------------------------------------------------------- plugin modules

_TASKSETS: dict[str, type[UserLMTaskset]] = {
    "UserLM-Math-v0": UserLMMathTaskset,
    "UserLM-Code-v0": UserLMCodeTaskset,
}


def plugin_module_name(env_id: str) -> str:
    """The top-level module verifiers imports for taskset id ``env_id`` (``UserLM-Math-v0`` -> ``userlm_math_v0``)."""
    return env_id.rsplit("/", 1)[-1].split("@", 1)[0].replace("-", "_").lower()


PLUGIN_MODULES: dict[str, str] = {plugin_module_name(k): k for k in _TASKSETS}
"""Plugin module name -> env id (``examples/verifiers/`` ships these modules)."""


def plugin_exports(env_id: str) -> dict[str, type]:
    """What the plugin module of ``env_id`` exports: its taskset, :class:`UserLMEnv`, :class:`ChatHarness`."""
    taskset = _TASKSETS[resolve_env_id(env_id)]
    return {taskset.__name__: taskset, "UserLMEnv": UserLMEnv, "ChatHarness": ChatHarness}


def register_plugin_modules() -> list[str]:
    """Make ``userlm_math_v0`` / ``userlm_code_v0`` importable in this process when not installed.

    verifiers only resolves top-level modules by id; ``pip install -e examples/verifiers`` installs
    them for good (needed by ``vf-eval`` in a fresh process). Returns the module names registered here.
    """
    registered = []
    for name, env_id in PLUGIN_MODULES.items():
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        module = types.ModuleType(name, f"verifiers plugin module of {env_id} (registered in-process).")
        exports = plugin_exports(env_id)
        module.__dict__.update(exports)
        module.__all__ = list(exports)
        sys.modules[name] = module
        registered.append(name)
    return registered


def load_environment(env_id: str = "UserLM-Math-v0", **config: Any) -> UserLMEnv:
    """Build the verifiers env of ``env_id`` from :class:`UserLMEnvConfig` fields.

    Args:
        env_id: ``"UserLM-Math-v0"`` or ``"UserLM-Code-v0"`` (or ``"math"`` / ``"code"``).
        **config: ``UserLMEnvConfig`` fields (``user``, ``reward``, ``max_turns``, ``assistant``...);
            ``taskset`` may be a dict of :class:`UserLMTasksetConfig` fields (``tasks``, ``num_tasks``).

    Example:
        >>> env = load_environment("UserLM-Math-v0", user="replay", taskset={"num_tasks": 2})  # doctest: +SKIP
        >>> [t.data.task_id for t in env.taskset]  # doctest: +SKIP
    """
    register_plugin_modules()
    taskset = dict(config.pop("taskset", None) or {})
    taskset["id"] = resolve_env_id(env_id)
    return vf.load_environment(vf.resolve_env_config({**config, "taskset": taskset}))
