"""UserLM-Math-v0: an assistant solves a math word problem that a simulated user reveals bit by bit."""

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
from userlm_env.judge import Judgement, make_judge
from userlm_env.rewards import COMPONENTS, RewardConfig, step_components
from userlm_env.shard_detection import detect_revealed_shards
from userlm_env.spaces import Conversation, Reply
from userlm_env.tasks import ShardedTask, TaskSource, make_task_source
from userlm_env.users import UserRequest, UserSimulator, UserTurn, make_user

DEFAULT_MAX_TURNS = 12
DEFAULT_MAX_REPLY_CHARS = 8000
SEED_SPACE = 2**31 - 1


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
    end_reason: str | None = None
    error: str | None = None

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
            seed=(self.user_seed + 104729 * self.user_turns) % SEED_SPACE,
        )


def _copy_state(state: EpisodeState | None) -> EpisodeState | None:
    """A copy that shares nothing mutable with ``state`` (the task itself is never mutated)."""
    if state is None:
        return None
    return dataclasses.replace(state, conversation=[dict(m) for m in state.conversation], revealed=list(state.revealed))


class ShardedChatEnv(gym.Env[list, str]):
    """Shared machinery of the UserLM envs: a simulated user reveals a sharded task, the assistant replies.

    Subclasses pick the task family through four hooks: :meth:`build_shared` (task source and
    judge from the constructor arguments), :meth:`check_task` (reject tasks of another family),
    :meth:`judge_reply` (classify and grade one reply) and :meth:`extra_info` (family-specific
    ``info`` fields). Everything else (the episode protocol, the
    reward components, the split ``begin_reset``/``act``/``observe_user``/``step_result`` API used by
    vector envs and :func:`userlm_env.rollout.run_episodes`) is common. See :class:`UserLMMathEnv`
    for the full documentation of the protocol.
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
        self.max_turns = max_turns
        self.max_reply_chars = max_reply_chars
        self.render_mode = render_mode
        self.action_space = Reply(max_reply_chars)
        self.observation_space = Conversation(max_messages=2 * max_turns + 2)
        self._state: EpisodeState | None = None
        self._pending: tuple | None = None
        self._last_user: tuple[UserTurn, list[int]] = (UserTurn(text=""), [])
        self._warned_turns = False

    # ------------------------------------------------------------------ family hooks
    @classmethod
    def build_shared(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Build the objects sub-envs can share from constructor kwargs, popping the ones consumed.

        Returns ``{"tasks": TaskSource, "judge": judge}``; a vector env builds them once and passes
        the built objects to every sub-env (building from built objects returns them unchanged).
        """
        return {
            "tasks": make_task_source(kwargs.pop("tasks", "procedural")),
            "judge": make_judge(kwargs.pop("judge", "rule")),
        }

    def check_task(self, task: ShardedTask) -> None:
        """Raise ``ValueError`` if ``task`` is of the wrong family for this env (math: anything goes)."""

    def judge_reply(self, reply: str, task: ShardedTask) -> Judgement:
        """Classify and grade one assistant reply (math: the judge against the gold number)."""
        return self.judge.judge(reply, task.answer)

    def extra_info(self, judgement: Judgement | None) -> dict[str, Any]:
        """Family-specific ``info`` fields (none for math); ``judgement`` is None at reset."""
        return {}

    # ------------------------------------------------------------------ reset
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: draw a task and a user seed, get the user's opening message."""
        request = self.begin_reset(seed=seed, options=options)
        try:
            turn = self.user.respond(request)
        except BackendError as err:
            self.fail_user(err)
        else:
            self.observe_user(turn)
        return self.reset_result()

    def begin_reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> UserRequest:
        """First half of ``reset``: draw the task and the user seed; return the request for the opening turn."""
        super().reset(seed=seed)
        options = options or {}
        task = self._choose_task(options)
        self.check_task(task)
        max_turns = self._episode_max_turns(options)
        user_seed = int(self.np_random.integers(SEED_SPACE))
        self._state = EpisodeState(task=task, user_seed=user_seed, max_turns=max_turns)
        self._pending = None
        if task.num_shards > max_turns and not self._warned_turns:
            warnings.warn(
                f"task {task.task_id!r} has {task.num_shards} shards but max_turns={max_turns}: "
                "episodes will be truncated before every shard can be revealed",
                stacklevel=3,
            )
            self._warned_turns = True
        return self._state.user_request()

    def reset_result(self) -> tuple[list[dict[str, str]], dict[str, Any]]:
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
                try:
                    turn = self.user.respond(pending)
                except BackendError as err:
                    self.fail_user(err)
                else:
                    self.observe_user(turn)
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
        state.turn += 1
        if judgement.answer_attempt:
            state.any_attempt = True
            state.last_attempt_turn = state.turn
            state.score = 1.0 if judgement.correct else 0.0
        if judgement.answer_attempt and judgement.correct:
            state.done, state.end_reason = True, "correct_answer"
        elif judgement.answer_attempt and not shards_hidden:
            state.done, state.end_reason = True, "answered_all_shards"
        elif state.turn >= state.max_turns:
            state.done, state.end_reason = True, "max_turns"
        self._pending = (judgement, reply, shards_hidden, truncated_reply)
        return None if state.done else state.user_request()

    def observe_user(self, turn: UserTurn) -> None:
        """Second half of ``step`` (and of ``reset``): add the user's turn to the chat."""
        self._apply_user_turn(turn)
        if self._state.user_ended:
            self._state.done, self._state.end_reason = True, "user_ended"

    def fail_user(self, error: BaseException) -> None:
        """Instead of ``observe_user`` when the user's turn failed (a model server fault, ``BackendError``).

        The episode ends as truncated with ``info["end_reason"] == "user_error"`` and the cause in
        ``info["error"]``. After a failed ``reset`` the episode is over at once (like a user who ends the
        chat before it begins): ``obs`` is the empty chat and the env needs another ``reset``.
        """
        state = self._state
        state.done, state.end_reason, state.error = True, "user_error", f"{type(error).__name__}: {error}"
        self._last_user = (UserTurn(text="", meta={"error": state.error}), [])

    def step_result(self):
        """Third part of ``step``: the (obs, reward, terminated, truncated, info) tuple."""
        state = self._state
        judgement, reply, shards_hidden, truncated_reply = self._pending
        components = step_components(
            judgement,
            reply_words=len(reply.split()),
            shards_hidden=shards_hidden,
            episode_over=state.done,
            final_score=state.score,
            any_attempt=state.any_attempt,
        )
        reward = self.reward_config.weighted(components)
        truncated = state.end_reason in ("max_turns", "user_error")
        terminated = state.done and not truncated
        info = self._info(judgement=judgement, components=components)
        info["reply_truncated"] = truncated_reply
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

    def _info(self, judgement: Judgement | None, components: dict[str, float]) -> dict[str, Any]:
        state = self._state
        turn, new = self._last_user
        info = {
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
            "user_ended": state.user_ended,
            "end_reason": state.end_reason,
            "user_meta": dict(turn.meta),
        }
        info.update(self.extra_info(judgement))
        if state.error is not None:
            info["error"] = state.error
        return info

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


class UserLMMathEnv(ShardedChatEnv):
    """An assistant solves a math word problem that a simulated user reveals one shard at a time.

    ## Description
    The world is a simulated user (by default `microsoft/UserLM-8b`) who wants a sharded math task
    solved, as in *Lost in Conversation* and *Flipping the Dialogue*. At reset the user opens the
    chat with the task's request (shard 1). Each `step` takes the assistant's reply; the env judges
    it (answer attempt? which answer? correct?), then the user answers: it reveals the next shard,
    asks for the answer, or ends the conversation.

    ## Action Space
    `Reply(max_reply_chars)`: the assistant's reply as a `str` (any Unicode). A reply longer than
    `max_reply_chars` is truncated to that length (`info["reply_truncated"]`) before it is judged and
    added to the chat. An empty reply is judged `missing`: never an answer, never rewarded.
    A non-`str` action raises `TypeError`.

    ## Observation Space
    `Conversation()`: the chat so far as a list of `{"role", "content"}` dicts (OpenAI format, usable
    by `tokenizer.apply_chat_template`), always ending with the user's latest message (except after
    the user ended the chat). The hidden task, its shards and answer are never part of it.

    ## Rewards
    Every step reports all components unweighted in `info["reward_components"]`; the reward is their
    weighted sum under `reward` (see `userlm_env.rewards`):

    | component          | meaning                                                             | `lic` | `shaped` |
    |--------------------|---------------------------------------------------------------------|-------|----------|
    | `correctness`      | last step only: 1 if the last answer attempt is correct (LiC score) | 1     | 1        |
    | `premature_answer` | wrong answer attempt while shards are still hidden                  | 0     | -0.2     |
    | `clarification`    | asks the user while shards are still hidden                         | 0     | 0.05     |
    | `hedge`            | hedges between several candidate answers                            | 0     | -0.2     |
    | `turn`             | 1 per step                                                          | 0     | -0.02    |
    | `length`           | reply words / 100                                                   | 0     | -0.01    |
    | `no_attempt`       | last step only: no answer attempt in the whole episode              | 0     | 0        |

    ## Starting State
    `reset(seed=s)` draws the task from `tasks` and the user's sampling seed from `self.np_random`,
    then asks the user for its opening message. `options={"task": ShardedTask}` or
    `options={"task_index": i}` (finite task sources) pins the task; `options={"max_turns": k}`
    (`k <= max_turns`) shortens this episode's turn limit (the evaluation gives each task its own).

    ## Episode End
    1. Termination: an answer attempt is graded correct (the first correct answer ends the chat).
    2. Termination: every shard was revealed before the assistant's reply and that reply is an answer
       attempt (its grade is the score).
    3. Termination: the user ends the conversation (`<|endconversation|>`, or `/end` for a human).
    4. Truncation: `max_turns` assistant replies were made without any of the above.
    5. Truncation: the user's model failed (a `BackendError`: server down, timeouts, garbage answers);
       `info["end_reason"] == "user_error"` and `info["error"]` holds the cause. The run goes on.
    The LiC score (reported as `correctness` on the last step) is the grade of the last answer
    attempt, 0 if there was none. `step` after the episode ended, or before `reset`, raises
    `gymnasium.error.ResetNeeded`.

    ## Arguments
    | argument          | type                                  | default                 | meaning                               |
    |-------------------|---------------------------------------|-------------------------|---------------------------------------|
    | `user`            | spec str or `UserSimulator`           | `"microsoft/UserLM-8b"` | who plays the user (`userlm_env.users`) |
    | `tasks`           | spec str, `TaskSource` or task list   | `"procedural"`          | where tasks come from (`userlm_env.tasks`) |
    | `reward`          | preset, mapping or `RewardConfig`     | `"lic"`                 | component weights                     |
    | `max_turns`       | int                                   | 12                      | assistant replies before truncation   |
    | `judge`           | `"rule"` or a judge object            | `"rule"`                | how replies are judged                |
    | `max_reply_chars` | int                                   | 8000                    | longer replies are truncated          |
    | `user_device`     | str or None                           | None (CUDA if present)  | device of a local user model          |
    | `render_mode`     | `"human"`, `"ansi"` or None           | None                    | `render()` prints / returns the chat  |

    >>> import gymnasium as gym, userlm_env
    >>> env = gym.make("UserLM-Math-v0", user="replay", tasks="procedural")
    >>> obs, info = env.reset(seed=0)
    >>> obs[-1]["role"], info["shards_revealed"]
    ('user', [1])
    >>> obs, reward, terminated, truncated, info = env.step("Could you tell me more?")
    >>> info["shards_revealed"]
    [1, 2]

    ## Info
    `task_id`, `turn` (assistant replies so far), `reward_components`, `reply_kind`, `answer_attempt`,
    `extracted_answer`, `correct` (this reply's grade; None if not an attempt), `score` (LiC score so
    far), `shards_revealed`, `num_shards`, `new_shards` (revealed by the latest user turn), `user_ended`,
    `end_reason`, `reply_truncated`, `judge_reason`, `user_meta`.

    ## Vectorized environment
    `gym.make_vec("UserLM-Math-v0", num_envs=N)` returns a `UserLMMathVectorEnv`: the N sub-envs share
    one user simulator and all their pending user turns (opening turns of resets included) go to it
    in **one batched call** per step. Same seeds give the same episodes as N single envs.
    `vectorization_mode="sync"` gives Gymnasium's `SyncVectorEnv` instead (one user call per sub-env).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "ansi"], "render_fps": 1}


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
    env_class: type[ShardedChatEnv] = ShardedChatEnv

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        kwargs.pop("render_mode", None)
        self.user = make_user(kwargs.pop("user", None), device=kwargs.pop("user_device", None))
        shared = self.env_class.build_shared(kwargs)
        self.envs = [self.env_class(user=self.user, **shared, **kwargs) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every sub-env (opening user turns in one batched call)."""
        seeds = (
            [None if seed is None else seed + i for i in range(self.num_envs)] if not isinstance(seed, list) else seed
        )
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} sub-envs")
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seeds[0])
        requests = [env.begin_reset(seed=s, options=options) for env, s in zip(self.envs, seeds)]
        try:
            turns = self.user.respond_batch(requests)
        except BackendError as err:  # every sub-env's episode ends at once; the next step resets them
            for env in self.envs:
                env.fail_user(err)
        else:
            for env, turn in zip(self.envs, turns):
                env.observe_user(turn)
        infos: dict[str, Any] = {}
        observations = []
        for i, env in enumerate(self.envs):
            obs, info = env.reset_result()
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        self._autoreset = np.array([env._state.end_reason == "user_error" for env in self.envs], dtype=bool)
        return tuple(observations), infos

    def step(self, actions):
        """Step every sub-env (reset the ones that ended last step), with one batched user call."""
        if len(actions) != self.num_envs:
            raise ValueError(f"step got {len(actions)} actions for {self.num_envs} sub-envs")
        checkpoints = [env.checkpoint() for env in self.envs]
        try:
            return self._step(actions)
        except BaseException:  # atomic: one sub-env's failure leaves every sub-env as it was
            for env, checkpoint in zip(self.envs, checkpoints):
                env.restore(checkpoint)
            raise

    def _step(self, actions):
        pending: list[tuple[int, UserRequest]] = []
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            request = env.begin_reset() if self._autoreset[i] else env.act(action)
            if request is not None:
                pending.append((i, request))
        try:
            turns = self.user.respond_batch([request for _, request in pending]) if pending else []
        except BackendError as err:  # a failed batch ends every sub-env in it as truncated
            for i, _ in pending:
                self.envs[i].fail_user(err)
            pending, turns = [], []
        failed_resets = np.zeros(self.num_envs, dtype=bool)
        for (i, _), turn in zip(pending, turns):
            self.envs[i].observe_user(turn)
        observations, infos = [], {}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        for i, env in enumerate(self.envs):
            if self._autoreset[i]:
                obs, info = env.reset_result()
                failed_resets[i] = env._state.end_reason == "user_error"
            else:
                obs, rewards[i], terminations[i], truncations[i], info = env.step_result()
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        self._autoreset = terminations | truncations | failed_resets
        return tuple(observations), rewards, terminations, truncations, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Release the shared user simulator."""
        self.user.close()


class UserLMMathVectorEnv(ShardedChatVectorEnv):
    """N ``UserLMMathEnv`` stepped together, with one batched user call per step (see ``ShardedChatVectorEnv``).

    Args:
        num_envs: number of sub-envs.
        **kwargs: ``UserLMMathEnv`` arguments; the user, task source and judge are built once and shared.
    """

    env_class = UserLMMathEnv
