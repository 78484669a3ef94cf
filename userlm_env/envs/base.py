"""The env core shared by every UserLM env: a simulated user reveals a sharded task, the assistant replies.

:class:`ShardedChatEnv` is the abstract env; a task family (math, code) subclasses it and fills in
four hooks (:meth:`~ShardedChatEnv.build_shared`, :meth:`~ShardedChatEnv.check_task`,
:meth:`~ShardedChatEnv.judge_reply`, :meth:`~ShardedChatEnv.extra_info`).
:class:`ShardedChatVectorEnv` steps N of them with one batched user call per step, through
:class:`userlm_env.driver.EpisodeDriver`, the one driver of the package (vector env, rollouts, training).

## The stepping protocol

``reset`` and ``step`` are each split in parts so that a driver (the vector env, the rollout and
training loops) can collect the user requests of many envs and send them to the user in one
batched call. ``env.step(reply)`` is exactly::

    request = env.act(reply)              # judge and record the reply; None if the episode ended
    if request is not None:
        try:
            env.observe_user(user.respond(request))   # add the user's answer
        except BackendError as err:
            env.fail_user(err)            # a model-server fault truncates the episode
    return env.step_result()              # (obs, reward, terminated, truncated, info)

and ``env.reset(seed=s)`` is ``begin_reset`` (draws the task and the user seed, returns the opening
request), then ``observe_user`` / ``fail_user``, then ``reset_result`` (``(obs, info)``). Between
``act`` and ``step_result`` the env holds one :class:`PendingStep`. A driver that calls the parts
itself takes a :meth:`~ShardedChatEnv.checkpoint` first and :meth:`~ShardedChatEnv.restore` s it if
anything raises, so a step either happens or it does not (:class:`~userlm_env.driver.EpisodeDriver`
does all of this).

Drivers read the episode through the read-only views :attr:`ShardedChatEnv.task` and
:attr:`ShardedChatEnv.episode` (an :class:`EpisodeView`), never through private state.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from userlm_env.backends.errors import BackendError
from userlm_env.driver import EpisodeDriver, Move
from userlm_env.episode_types import EndReason, StepInfo
from userlm_env.judge import Judgement
from userlm_env.rewards import COMPONENTS, RewardConfig, step_components
from userlm_env.seeding import SEED_SPACE, derive_seed
from userlm_env.shard_detection import detect_revealed_shards
from userlm_env.spaces import Conversation, Reply
from userlm_env.tasks import ShardedTask, TaskSource
from userlm_env.users import UserRequest, UserSimulator, UserTurn, make_user
from userlm_env.users.profiles import UserProfile, resolve_profile
from userlm_env.users.reveal import check_reveal

__all__ = [
    "DEFAULT_MAX_REPLY_CHARS",
    "DEFAULT_MAX_TURNS",
    "EndReason",
    "EpisodeState",
    "EpisodeView",
    "PendingStep",
    "ShardedChatEnv",
    "ShardedChatVectorEnv",
]

DEFAULT_MAX_TURNS = 12
DEFAULT_MAX_REPLY_CHARS = 8000


@dataclass
class EpisodeState:
    """Everything the env tracks about the running episode (the hidden part never reaches ``obs``)."""

    task: ShardedTask
    user_seed: int
    max_turns: int
    conversation: list[dict[str, str]] = field(default_factory=list)
    revealed: list[int] = field(default_factory=list)
    turn: int = 0
    user_turns: int = 0
    score: float = 0.0
    any_attempt: bool = False
    last_attempt_turn: int | None = None
    user_ended: bool = False
    done: bool = False
    end_reason: EndReason | None = None
    error: str | None = None
    reveal: str | None = None
    profile: Any = None
    judgements: list[Judgement] = field(default_factory=list)

    @property
    def all_revealed(self) -> bool:
        """Every shard has been conveyed to the assistant."""
        return len(self.revealed) >= self.task.num_shards

    def user_request(self) -> UserRequest:
        """The request for the next user turn."""
        return UserRequest(
            task=self.task,
            conversation=tuple(dict(m) for m in self.conversation),
            revealed=tuple(self.revealed),
            turn=self.user_turns,
            seed=derive_seed("user-turn", self.user_seed, self.user_turns),
            reveal=self.reveal,
            profile=self.profile,
            judgements=tuple(self.judgements),
        )


@dataclass(frozen=True)
class PendingStep:
    """What ``act`` hands to ``step_result``: the judged reply and what was true before it."""

    judgement: Judgement
    reply: str
    shards_hidden: bool
    reply_truncated: bool


@dataclass(frozen=True)
class EpisodeView:
    """A read-only snapshot of the running episode, for drivers and loggers (``env.episode``).

    Attributes:
        task: the hidden task (never shown to the assistant).
        conversation: the chat so far.
        revealed: shard ids conveyed so far, in order.
        turn: assistant replies so far.
        user_turns: user turns so far (the opening one included).
        max_turns: this episode's turn limit.
        score: the LiC score so far (grade of the last answer attempt).
        done: the episode has ended.
        end_reason: why it ended (``None`` while it runs).
        error: the user's model error after ``EndReason.USER_ERROR``.
    """

    task: ShardedTask
    conversation: tuple[dict[str, str], ...]
    revealed: tuple[int, ...]
    turn: int
    user_turns: int
    max_turns: int
    score: float
    done: bool
    end_reason: EndReason | None
    error: str | None


def _copy_state(state: EpisodeState | None) -> EpisodeState | None:
    """A copy that shares nothing mutable with ``state`` (the task itself is never mutated)."""
    if state is None:
        return None
    return dataclasses.replace(
        state,
        conversation=[dict(m) for m in state.conversation],
        revealed=list(state.revealed),
        judgements=list(state.judgements),
    )


def _check_user_behaviour(
    user: UserSimulator, reveal: str | None, user_profile: str | UserProfile | None
) -> tuple[str | None, UserProfile | None]:
    """Validate ``reveal=`` / ``user_profile=`` (None: the user's own settings).

    Raises:
        ValueError: an unknown mode or preset (the message lists the valid ones), or a non-default
            setting for a user that decides for itself (UserLM, human, single-turn users).
    """
    mode = None if reveal is None else check_reveal(reveal)
    profile = None if user_profile is None else resolve_profile(user_profile)
    if not getattr(user, "env_controlled", False) and (
        mode not in (None, "ordered") or profile not in (None, resolve_profile("lic"))
    ):
        raise ValueError(
            f"reveal={reveal!r} / user_profile={user_profile!r} apply to env-controlled users only "
            f"('replay', 'prompted:MODEL'); {user!r} decides for itself what to reveal and when to end"
        )
    return mode, profile


class ShardedChatEnv(gym.Env[list, str]):
    """The abstract UserLM env: a simulated user reveals a sharded task, the assistant replies.

    Subclasses pick the task family through four hooks: :meth:`build_shared` (task source and
    judge from the constructor arguments), :meth:`check_task` (reject tasks of another family),
    :meth:`judge_reply` (classify and grade one reply) and :meth:`extra_info` (family-specific
    ``info`` fields). Everything else (the episode protocol, the reward components, the stepping
    protocol of the module docstring) is common. See :class:`~userlm_env.envs.math_env.UserLMMathEnv`
    for the full documentation of an env.
    """

    metadata = {"render_modes": ["human", "ansi"], "render_fps": 1}

    def __init__(
        self,
        user: str | UserSimulator | None = None,
        tasks: str | TaskSource | list[ShardedTask] | None = "procedural",
        reward: str | dict[str, float] | RewardConfig | None = "lic",
        max_turns: int = DEFAULT_MAX_TURNS,
        judge: Any = "rule",
        max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
        user_device: str | None = None,
        render_mode: str | None = None,
        reveal: str | None = None,
        user_profile: str | UserProfile | None = None,
    ):
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be a positive int, got {max_turns!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        shared = self.build_shared({"tasks": tasks, "judge": judge})
        self.tasks = shared["tasks"]
        self.judge = shared["judge"]
        self.reward_config = RewardConfig.from_spec(reward)
        self.user = make_user(user, device=user_device)
        self.reveal, self.user_profile = _check_user_behaviour(self.user, reveal, user_profile)
        self.max_turns = max_turns
        self.max_reply_chars = max_reply_chars
        self.render_mode = render_mode
        self.action_space = Reply(max_reply_chars)
        self.observation_space = Conversation(max_messages=2 * max_turns + 2)
        self._state: EpisodeState | None = None
        self._pending: PendingStep | None = None
        self._last_user: tuple[UserTurn, list[int]] = (UserTurn(text=""), [])
        self._warned_turns = False

    # ------------------------------------------------------------------ family hooks
    @classmethod
    def build_shared(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Build the objects sub-envs can share from constructor kwargs, popping the ones consumed.

        Returns ``{"tasks": TaskSource, "judge": judge}``; a vector env builds them once and passes
        the built objects to every sub-env (building from built objects returns them unchanged).
        """
        raise NotImplementedError

    def check_task(self, task: ShardedTask) -> None:
        """Raise ``ValueError`` if ``task`` is of the wrong family for this env (default: anything goes)."""

    def judge_reply(self, reply: str, task: ShardedTask) -> Judgement:
        """Classify and grade one assistant reply against the hidden task."""
        raise NotImplementedError

    def extra_info(self, judgement: Judgement | None) -> dict[str, Any]:
        """Family-specific ``info`` fields (default: none); ``judgement`` is None at reset."""
        return {}

    # ------------------------------------------------------------------ read-only views
    @property
    def task(self) -> ShardedTask:
        """The running episode's hidden task.

        Raises:
            ResetNeeded: before the first ``reset``.
        """
        return self._require_state().task

    @property
    def episode(self) -> EpisodeView:
        """A read-only snapshot of the running (or just ended) episode.

        Raises:
            ResetNeeded: before the first ``reset``.
        """
        state = self._require_state()
        return EpisodeView(
            task=state.task,
            conversation=tuple(dict(m) for m in state.conversation),
            revealed=tuple(state.revealed),
            turn=state.turn,
            user_turns=state.user_turns,
            max_turns=state.max_turns,
            score=state.score,
            done=state.done,
            end_reason=state.end_reason,
            error=state.error,
        )

    def _require_state(self) -> EpisodeState:
        if self._state is None:
            raise ResetNeeded("No episode yet: call env.reset(seed=...) first.")
        return self._state

    # ------------------------------------------------------------------ reset
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: draw a task and a user seed, get the user's opening message."""
        self._let_user_answer(self.begin_reset(seed=seed, options=options))
        return self.reset_result()

    def _let_user_answer(self, request: UserRequest) -> None:
        """One user turn for this env alone (drivers batch the requests of many envs instead)."""
        try:
            turn = self.user.respond(request)
        except BackendError as err:
            self.fail_user(err)
        else:
            self.observe_user(turn)

    def begin_reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> UserRequest:
        """First half of ``reset``: draw the task and the user seed; return the request for the opening turn."""
        super().reset(seed=seed)
        options = options or {}
        task = self._choose_task(options)
        self.check_task(task)
        max_turns = self._episode_max_turns(options)
        user_seed = int(self.np_random.integers(SEED_SPACE))
        self._state = EpisodeState(
            task=task, user_seed=user_seed, max_turns=max_turns, reveal=self.reveal, profile=self.user_profile
        )
        self._pending = None
        if task.num_shards > max_turns and not self._warned_turns:
            warnings.warn(
                f"task {task.task_id!r} has {task.num_shards} shards but max_turns={max_turns}: "
                "episodes will be truncated before every shard can be revealed",
                stacklevel=3,
            )
            self._warned_turns = True
        return self._state.user_request()

    def reset_result(self) -> tuple[list[dict[str, str]], StepInfo]:
        """Second half of ``reset`` (after ``observe_user``): the (obs, info) pair."""
        if self.render_mode == "human":
            self.render()
        return self._obs(), self._info(judgement=None, components=dict.fromkeys(COMPONENTS, 0.0))

    def _episode_max_turns(self, options: dict[str, Any]) -> int:
        """``options["max_turns"]`` (at most the env's ``max_turns``, which sizes the observation space)."""
        if "max_turns" not in options:
            return self.max_turns
        value = options["max_turns"]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= self.max_turns:
            raise ValueError(
                f"options['max_turns'] must be an int in 1..{self.max_turns} (the env's max_turns), got {value!r}"
            )
        return int(value)

    def _choose_task(self, options: dict[str, Any]) -> ShardedTask:
        if "task" in options:
            task = options["task"]
            if not isinstance(task, ShardedTask):
                raise TypeError(f"options['task'] must be a ShardedTask, got {type(task).__name__}")
            return task
        if "task_index" in options:
            try:
                return self.tasks[int(options["task_index"])]
            except TypeError:
                raise TypeError(f"task source {self.tasks.name!r} is not indexable; pass options['task']") from None
        return self.tasks.sample(self.np_random)

    # ------------------------------------------------------------------ step
    def step(self, action: str):
        """Judge the assistant's reply, score it, and let the user answer unless the episode ends.

        A step is atomic: if anything in it raises (a judge or user bug; model-server faults do not
        raise, they truncate the episode), the env is left as it was before the call.
        """
        checkpoint = self.checkpoint()
        try:
            pending = self.act(action)
            if pending is not None:
                self._let_user_answer(pending)
            return self.step_result()
        except BaseException:
            self.restore(checkpoint)
            raise

    def checkpoint(self) -> Any:
        """An opaque copy of the episode's state, for :meth:`restore` when a step fails half-way."""
        rng = (copy.deepcopy(self._np_random), self._np_random_seed)  # a vector env's autoreset draws from it
        return _copy_state(self._state), self._pending, self._last_user, rng

    def restore(self, checkpoint: Any) -> None:
        """Put the episode back to a :meth:`checkpoint` (the env is then exactly as it was)."""
        state, self._pending, self._last_user, (rng, self._np_random_seed) = checkpoint
        self._state = _copy_state(state)  # the checkpoint stays valid for another restore
        self._np_random = copy.deepcopy(rng)

    def act(self, action: str) -> UserRequest | None:
        """First half of ``step``: record and judge the reply; return the user request if the chat goes on.

        Vector envs call ``act`` on every sub-env, batch the returned requests into one user call,
        then call ``observe_user`` and ``step_result`` on each.
        """
        state = self._state
        if state is None:
            raise ResetNeeded("Cannot call step() before reset(): call env.reset(seed=...) first.")
        if state.done:
            raise ResetNeeded(f"The episode has ended ({state.end_reason}); call env.reset() before step().")
        if not isinstance(action, str):
            raise TypeError(
                f"the action must be the assistant's reply as a str, got {type(action).__name__}: {action!r:.80}"
            )
        truncated_reply = len(action) > self.max_reply_chars
        reply = action[: self.max_reply_chars]
        shards_hidden = not state.all_revealed
        judgement: Judgement = self.judge_reply(reply, state.task)  # before any change: a judge error changes nothing
        state.conversation.append({"role": "assistant", "content": reply})
        state.judgements.append(judgement)
        state.turn += 1
        if judgement.answer_attempt:
            state.any_attempt = True
            state.last_attempt_turn = state.turn
            state.score = 1.0 if judgement.correct else 0.0
        if judgement.answer_attempt and judgement.correct:
            state.done, state.end_reason = True, EndReason.CORRECT_ANSWER
        elif judgement.answer_attempt and not shards_hidden:
            state.done, state.end_reason = True, EndReason.ANSWERED_ALL_SHARDS
        elif state.turn >= state.max_turns:
            state.done, state.end_reason = True, EndReason.MAX_TURNS
        self._pending = PendingStep(judgement, reply, shards_hidden, truncated_reply)
        return None if state.done else state.user_request()

    def observe_user(self, turn: UserTurn) -> None:
        """Second half of ``step`` (and of ``reset``): add the user's turn to the chat."""
        self._apply_user_turn(turn)
        if self._state.user_ended:
            gave_up = turn.meta.get("end") == "gave_up"
            self._state.done = True
            self._state.end_reason = EndReason.USER_GAVE_UP if gave_up else EndReason.USER_ENDED

    def fail_user(self, error: BaseException) -> None:
        """Instead of ``observe_user`` when the user's turn failed (a model server fault, ``BackendError``).

        The episode ends as truncated with ``info["end_reason"] == "user_error"`` and the cause in
        ``info["error"]``. After a failed ``reset`` the episode is over at once (like a user who ends the
        chat before it begins): ``obs`` is the empty chat and the env needs another ``reset``.
        """
        state = self._state
        state.done, state.end_reason, state.error = True, EndReason.USER_ERROR, f"{type(error).__name__}: {error}"
        self._last_user = (UserTurn(text="", meta={"error": state.error}), [])

    def step_result(self) -> tuple[list[dict[str, str]], float, bool, bool, StepInfo]:
        """Third part of ``step``: the (obs, reward, terminated, truncated, info) tuple."""
        state = self._state
        pending = self._pending
        components = step_components(
            pending.judgement,
            reply_words=len(pending.reply.split()),
            shards_hidden=pending.shards_hidden,
            episode_over=state.done,
            final_score=state.score,
            any_attempt=state.any_attempt,
        )
        reward = self.reward_config.weighted(components)
        truncated = state.end_reason is not None and state.end_reason.truncates
        terminated = state.done and not truncated
        info = self._info(judgement=pending.judgement, components=components)
        info["reply_truncated"] = pending.reply_truncated
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward, terminated, truncated, info

    # ------------------------------------------------------------------ helpers
    def _apply_user_turn(self, turn: UserTurn) -> None:
        state = self._state
        if turn.revealed is None:
            new = detect_revealed_shards(turn.text, state.task, state.revealed)
        else:
            valid = range(1, state.task.num_shards + 1)
            new = tuple(i for i in dict.fromkeys(turn.revealed) if i in valid and i not in state.revealed)
        state.revealed.extend(new)
        state.user_turns += 1
        state.user_ended = bool(turn.ended)
        self._last_user = (turn, list(new))
        if turn.text or not turn.ended:
            state.conversation.append({"role": "user", "content": turn.text})

    def _obs(self) -> list[dict[str, str]]:
        return [dict(m) for m in self._state.conversation]

    def _info(self, judgement: Judgement | None, components: dict[str, float]) -> StepInfo:
        state = self._state
        turn, new = self._last_user
        info: StepInfo = {
            "task_id": state.task.task_id,
            "turn": state.turn,
            "reward_components": components,
            "reply_kind": None if judgement is None else judgement.kind.value,
            "answer_attempt": False if judgement is None else judgement.answer_attempt,
            "extracted_answer": None if judgement is None else judgement.extracted_answer,
            "correct": None if judgement is None or not judgement.answer_attempt else bool(judgement.correct),
            "judge_reason": None if judgement is None else judgement.reason,
            "score": state.score,
            "shards_revealed": list(state.revealed),
            "num_shards": state.task.num_shards,
            "new_shards": new,
            "revealed_shard": _shard_or_none(turn.meta.get("revealed_shard", new[0] if new else None)),
            "reveal_reason": turn.meta.get("reveal_reason", self._default_reveal_reason(turn, new)),
            "user_ended": state.user_ended,
            "end_reason": None if state.end_reason is None else state.end_reason.value,
            "user_meta": dict(turn.meta),
        }
        info.update(self.extra_info(judgement))
        if state.error is not None:
            info["error"] = state.error
        return info

    def _default_reveal_reason(self, turn: UserTurn, new: list[int]) -> str | None:
        """``info["reveal_reason"]`` of a LiC turn of a user that says what it reveals (its meta says nothing)."""
        if turn.revealed is None or not turn.text:
            return None
        return "opening" if self._state.user_turns == 1 else ("ordered" if new else "all_revealed")

    def render(self) -> str | None:
        """Print (``human``) or return (``ansi``) the transcript."""
        if self._state is None:
            return None
        lines = [f"[task {self._state.task.task_id}] turn {self._state.turn}, shards {self._state.revealed}"]
        lines += [f"{m['role']:>9}: {m['content']}" for m in self._state.conversation]
        if self._state.done:
            lines.append(f"[end: {self._state.end_reason}, score {self._state.score:g}]")
        text = "\n".join(lines)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Release the user simulator's resources."""
        self.user.close()
        super().close()


def _shard_or_none(shard: int | None) -> int:
    """``info["revealed_shard"]``: the shard id, or -1 for none (ints only: vector envs batch it as an array)."""
    return -1 if shard is None else int(shard)


class ShardedChatVectorEnv(gym.vector.VectorEnv):
    """N sub-envs of ``env_class`` stepped together, with one batched user call per step.

    Observations are a tuple of N conversations, actions a sequence of N reply strings, rewards,
    terminations and truncations numpy arrays; infos are batched Gymnasium-style (``info[key]``
    arrays with ``info["_key"]`` masks). Autoreset follows Gymnasium's ``NEXT_STEP`` mode: the step
    after a sub-env's episode ended resets it (its action is ignored, reward 0).

    ``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``, as ``SyncVectorEnv`` does, so sub-env ``i``
    replays exactly the episode of a single env reset with ``s + i`` (given a deterministic user).

    Args:
        num_envs: number of sub-envs.
        **kwargs: ``env_class`` arguments; the user, task source and judge are built once and shared.
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
    env_class: type[ShardedChatEnv]
    """The sub-env class (set by each family's vector env)."""

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        kwargs.pop("render_mode", None)
        population = kwargs.pop("user_population", None)
        if population is not None:  # a user drawn per episode (userlm_env.envs.population)
            from userlm_env.envs.population import PopulationFactory

            factory = PopulationFactory(self.env_class, population, kwargs)
            self.user = factory.users  # a UserPool: close() releases every member's user
            self.envs = [factory.make_env() for _ in range(num_envs)]
        else:
            self.user = make_user(kwargs.pop("user", None), device=kwargs.pop("user_device", None))
            shared = self.env_class.build_shared(kwargs)
            self.envs = [self.env_class(user=self.user, **shared, **kwargs) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self.driver = EpisodeDriver(self.envs, errors="raise")
        """Steps the sub-envs (one user call per step); ``driver.stats`` holds the user's cost so far."""

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every sub-env (opening user turns in one batched call)."""
        seeds = (
            [None if seed is None else seed + i for i in range(self.num_envs)] if not isinstance(seed, list) else seed
        )
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} sub-envs")
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seeds[0])
        # a failed batch ends every sub-env's episode at once (user_error); the next step resets them
        outcomes = self.driver.round([Move.start(i, s, options) for i, s in enumerate(seeds)])
        infos: dict[str, Any] = {}
        for i, outcome in enumerate(outcomes):
            infos = self._add_info(infos, outcome.info, i)
        self._autoreset = np.array([o.view.end_reason is EndReason.USER_ERROR for o in outcomes], dtype=bool)
        return tuple(o.obs for o in outcomes), infos

    def step(self, actions):
        """Step every sub-env (reset the ones that ended last step), with one batched user call.

        Atomic: if any sub-env raises, every sub-env is left as it was (the driver's ``errors="raise"``).
        """
        if len(actions) != self.num_envs:
            raise ValueError(f"step got {len(actions)} actions for {self.num_envs} sub-envs")
        moves = [Move.start(i) if self._autoreset[i] else Move.act(i, a) for i, a in enumerate(actions)]
        outcomes = self.driver.round(moves)
        infos: dict[str, Any] = {}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        failed_resets = np.zeros(self.num_envs, dtype=bool)
        for i, outcome in enumerate(outcomes):
            if outcome.move.reset:
                failed_resets[i] = outcome.view.end_reason is EndReason.USER_ERROR
            else:
                rewards[i], terminations[i], truncations[i] = outcome.reward, outcome.terminated, outcome.truncated
            infos = self._add_info(infos, outcome.info, i)
        self._autoreset = terminations | truncations | failed_resets
        return tuple(o.obs for o in outcomes), rewards, terminations, truncations, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Release the shared user simulator."""
        self.user.close()
