"""One batched episode driver for every loop that plays episodes: vector env, rollouts, training.

:class:`EpisodeDriver` steps a list of unwrapped envs (one *slot* each) through the env's stepping
protocol (``begin_reset`` / ``act`` / ``observe_user`` / ``fail_user`` / ``step_result`` /
``reset_result``, see :mod:`userlm_env.envs.base`) so that **every pending user turn of a round goes to
the user in one** ``respond_batch`` **call** (envs that share one :class:`~userlm_env.users.UserSimulator`
object, the normal case, are one call; envs with distinct user objects get one call per user).

Two ways to use it:

* :meth:`EpisodeDriver.round` -- the caller gives the moves (:class:`Move`: act with a reply, or reset),
  at most one per slot, and gets one :class:`Outcome` per move. The vector env steps this way.
* :meth:`EpisodeDriver.run` -- the driver plays a queue of episodes (:class:`EpisodeSpec`) to the end,
  ``len(envs)`` at a time. Each round: (a) one call of the caller's *policy* for every live episode's
  reply (``policy(episodes: list[LiveEpisode]) -> list[str]``; rollouts wrap an assistant's
  ``act_batch``, the training collectors their token sampler and keep token ids on the side), (b)
  ``act`` on each, (c) free slots take the next queued episode (its ``begin_reset``), including slots
  whose episode just ended in (b), (d) one user call for every pending request, openings included,
  (e) ``observe_user`` / ``fail_user`` and ``step_result`` / ``reset_result``; finished episodes are
  yielded as they end.

**Error policy** (here only). A :class:`~userlm_env.backends.errors.BackendError` from the user
truncates the episodes of that batched call (``end_reason == "user_error"``), always. Any other
exception depends on ``errors``: ``"raise"`` (vector env, training) puts every env of the round back
to its state before the round (:meth:`~userlm_env.envs.base.ShardedChatEnv.checkpoint` /
``restore``) and re-raises, so a round happens or it does not; ``"record"`` (rollouts) ends only the
episode concerned, with its traceback in :attr:`LiveEpisode.error` (its env restored to before the
failed call), and the others go on; a failing batched policy call is retried one episode at a time so
that one bad episode cannot sink the rest, and a non-``BackendError`` from the user fails the
episodes of that call.

**Seeds.** An episode's tokens depend only on its own seeds: its reset seed, and its policy seed,
from which the reply of turn ``t`` is sampled with ``derive_seed("assistant-turn", policy_seed, t)``
(:attr:`LiveEpisode.assistant_seed`); the user seeds each request itself. Batch composition, slot
and order never enter, so a vector env replays single envs and training episodes replay rollouts.

**Cost accounting.** Every episode carries :attr:`LiveEpisode.cost` (:data:`COST_FIELDS`): the
batched user calls it took part in and its user requests (the opening one included; an episode has
one request per call it is in, so the two are equal per episode and differ only in totals), user prompt and
generated tokens (read from the user backend's ``stats`` around each call, shared equally among the
call's requests: users do not report tokens per request), user resamples (``UserTurn.meta["attempts"]
- 1`` where a user reports attempts), and seconds in the user and in the policy (each batched call's
time shared equally among its requests / episodes). :attr:`EpisodeDriver.stats` holds the totals,
with ``user_calls`` and ``policy_calls`` counting distinct batched calls.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from userlm_env.backends.errors import BackendError
from userlm_env.episode_types import EndReason
from userlm_env.seeding import derive_seed

if TYPE_CHECKING:
    from userlm_env.envs.base import EpisodeView, ShardedChatEnv
    from userlm_env.users import UserRequest, UserTurn

__all__ = ["COST_FIELDS", "EpisodeDriver", "EpisodeSpec", "LiveEpisode", "Move", "Outcome", "Policy", "empty_cost"]

COST_FIELDS = (
    "user_calls",
    "user_requests",
    "user_prompt_tokens",
    "user_generated_tokens",
    "user_resamples",
    "user_seconds",
    "policy_seconds",
)
"""The per-episode cost fields (:attr:`LiveEpisode.cost`, ``record["cost"]`` of rollouts)."""


def empty_cost() -> dict[str, float]:
    """A zero cost (every field of :data:`COST_FIELDS`)."""
    return dict.fromkeys(COST_FIELDS, 0)


@dataclass(frozen=True)
class Move:
    """What one slot does in a round: ``act`` (judge ``reply``) or ``reset`` (start an episode).

    Attributes:
        slot: index of the env in :attr:`EpisodeDriver.envs`.
        reset: a reset (``seed``, ``options``) rather than an act (``reply``).
        reply: the assistant's reply of an act (validated by the env: a non-``str`` raises there).
        seed: the reset seed (None: continue the env's RNG, Gymnasium's autoreset).
        options: the reset options.
        episode: the caller's handle, handed back on the :class:`Outcome`.
    """

    slot: int
    reset: bool = False
    reply: Any = None
    seed: int | None = None
    options: dict[str, Any] | None = None
    episode: Any = None

    @classmethod
    def act(cls, slot: int, reply: Any, episode: Any = None) -> Move:
        """The move that sends ``reply`` to the episode in ``slot``."""
        return cls(slot, reply=reply, episode=episode)

    @classmethod
    def start(cls, slot: int, seed: int | None = None, options: dict | None = None, episode: Any = None) -> Move:
        """The move that resets the env of ``slot`` (``env.reset(seed=seed, options=options)``)."""
        return cls(slot, reset=True, seed=seed, options=options, episode=episode)


@dataclass
class Outcome:
    """The result of one :class:`Move`.

    Attributes:
        move: the move.
        obs: the observation (a reset's or a step's); None when the move failed.
        info: the info dict; None when the move failed.
        reward: the step's reward (0 for a reset).
        terminated: the step ended the episode by the task (Gymnasium's ``terminated``).
        truncated: the step cut the episode short.
        view: the env's :class:`~userlm_env.envs.base.EpisodeView` right after the move (None after a
            failed reset): read it rather than the env, which may already run the slot's next episode.
        error: the traceback when the move failed (``errors="record"``).
        cost: this move's share of the round's user call (:data:`COST_FIELDS`).
    """

    move: Move
    obs: list[dict[str, str]] | None = None
    info: dict[str, Any] | None = None
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    view: EpisodeView | None = None
    error: str | None = None
    cost: dict[str, float] = field(default_factory=empty_cost)

    @property
    def ended(self) -> bool:
        """The move ended its episode (failed, a final step, or a reset whose episode is already over)."""
        if self.error is not None:
            return True
        if self.move.reset:
            return self.view is not None and self.view.done
        return self.terminated or self.truncated


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to play: its reset seed and options, its policy seed, and a handle for the caller.

    Attributes:
        seed: the ``env.reset`` seed (task and user).
        options: ``env.reset`` options (e.g. ``{"task": task, "max_turns": 8}``).
        policy_seed: the seed of the policy's replies (default: ``seed``); see
            :attr:`LiveEpisode.assistant_seed`.
        key: anything the caller wants back on the :class:`LiveEpisode` (an index, a log key).
    """

    seed: int
    options: dict[str, Any] | None = None
    policy_seed: int | None = None
    key: Any = None


@dataclass
class LiveEpisode:
    """An episode played by :meth:`EpisodeDriver.run`, from its reset to its end.

    Attributes:
        spec: what was asked for.
        env: the env it runs in (shared with later episodes of its slot: read :attr:`view`, not ``env``).
        slot: the env's index.
        obs: the latest observation (the chat so far).
        info: the latest info.
        steps: one dict per assistant reply: ``{"reply", "reward", **info}``.
        total_reward: the sum of the step rewards.
        view: the episode's latest :class:`~userlm_env.envs.base.EpisodeView` (None before its reset).
        opening_shards: shard ids the opening user turn revealed.
        reply: the reply of the current round (set from the policy).
        terminated: ended by the task (Gymnasium's ``terminated``).
        truncated: cut short (turn limit, user error).
        stopped: ended by the caller (:meth:`stop`, e.g. a token budget).
        error: the traceback when it failed (``errors="record"``).
        cost: its share of the user's and the policy's work (:data:`COST_FIELDS`).
        started_at: ``time.perf_counter()`` when it took its slot.
        data: free room for the caller (e.g. token ids).
    """

    spec: EpisodeSpec
    env: ShardedChatEnv
    slot: int
    obs: list[dict[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    total_reward: float = 0.0
    view: EpisodeView | None = None
    opening_shards: list[int] | None = None
    reply: Any = None
    terminated: bool = False
    truncated: bool = False
    stopped: bool = False
    error: str | None = None
    cost: dict[str, float] = field(default_factory=empty_cost)
    started_at: float = field(default_factory=time.perf_counter)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        """The reset seed."""
        return self.spec.seed

    @property
    def policy_seed(self) -> int:
        """The seed of the policy's replies (the reset seed unless the spec says otherwise)."""
        return self.spec.seed if self.spec.policy_seed is None else self.spec.policy_seed

    @property
    def turn(self) -> int:
        """Assistant replies so far."""
        return len(self.steps)

    @property
    def assistant_seed(self) -> int:
        """The sampling seed of this turn's reply: ``derive_seed("assistant-turn", policy_seed, turn)``."""
        return derive_seed("assistant-turn", self.policy_seed, self.turn)

    @property
    def task(self):
        """The episode's hidden task (for scripted oracles and loggers; never for a real policy)."""
        return self.view.task

    @property
    def done(self) -> bool:
        """The episode is over (ended, failed or stopped)."""
        return self.terminated or self.truncated or self.stopped or self.error is not None

    def stop(self) -> None:
        """End the episode now (from the ``on_step`` hook); it leaves at the end of the round."""
        self.stopped = True

    def _apply(self, outcome: Outcome) -> None:
        for name, value in outcome.cost.items():
            self.cost[name] += value
        if outcome.error is not None:
            self.error = outcome.error
            self.view = outcome.view or self.view
            return
        self.obs, self.info, self.view = outcome.obs, outcome.info, outcome.view
        if outcome.move.reset:
            self.opening_shards = list(outcome.view.revealed)
            if outcome.view.done:  # the user ended the chat before it began, or its model failed
                failed = outcome.view.end_reason is EndReason.USER_ERROR
                self.terminated, self.truncated = not failed, failed
            return
        self.total_reward += outcome.reward
        self.steps.append({"reply": outcome.move.reply, "reward": outcome.reward, **outcome.info})
        self.terminated, self.truncated = outcome.terminated, outcome.truncated


Policy = Callable[[list[LiveEpisode]], Sequence[str]]
"""``policy(episodes) -> replies``: one batched call for every live episode's next reply."""


def _traceback() -> str:
    return traceback.format_exc(limit=5)


def _resamples(turn: UserTurn) -> int:
    attempts = turn.meta.get("attempts") if isinstance(turn.meta, dict) else None
    return max(0, attempts - 1) if isinstance(attempts, int) and not isinstance(attempts, bool) else 0


def _token_counts(user: Any) -> tuple[int, int] | None:
    """(prompt, generated) tokens the user's backend has counted so far, if it counts (``backend.stats``)."""
    stats = getattr(getattr(user, "backend", None), "stats", None)
    if not isinstance(stats, dict):
        return None
    return int(stats.get("prompt_tokens", 0)), int(stats.get("generated_tokens", 0))


class EpisodeDriver:
    """Plays episodes in a fixed set of envs, batching the user's and the policy's work per round.

    Args:
        envs: unwrapped envs, one slot each; they should share one user simulator object.
        errors: ``"record"`` (an exception ends only its episode) or ``"raise"`` (the round is undone
            and the exception propagates); a user ``BackendError`` truncates its episodes either way.
    """

    def __init__(self, envs: Sequence[ShardedChatEnv], *, errors: str = "record"):
        if errors not in ("record", "raise"):
            raise ValueError(f"errors must be 'record' or 'raise', got {errors!r}")
        self.envs = list(envs)
        self.errors = errors
        self._stats_lock = threading.Lock()
        self.stats: dict[str, float] = {**empty_cost(), "policy_calls": 0}
        """Totals since the driver was built; ``user_calls`` / ``policy_calls`` count distinct batched calls."""

    # ------------------------------------------------------------------ one round, moves given
    def round(self, moves: Sequence[Move], refill: Callable[[int], Move | None] | None = None) -> list[Outcome]:
        """Play one move per listed slot, with one user call for all their user turns; one :class:`Outcome` per move.

        ``refill(slot)``, when given, is asked for a new move (a reset) for every slot whose move ended
        its episode before the user call (an act that ended it, a failure); that reset joins the same
        user call. Outcomes come in the order of ``moves``, then of the refill moves.
        """
        slots = [m.slot for m in moves]
        if len(set(slots)) != len(slots) or not all(0 <= s < len(self.envs) for s in slots):
            raise ValueError(f"at most one move per slot of 0..{len(self.envs) - 1}, got slots {slots}")
        moves = list(moves)
        checkpoints: list[Any] = []  # one per move, taken just before it
        before_round: dict[int, Any] = {}  # slot -> its env before the round (restored if the round raises)
        try:
            outcomes: list[Outcome | None] = []
            pending: dict[int, UserRequest] = {}  # move index -> its user request
            k = 0
            while k < len(moves):  # refill moves are appended as we go
                move, env = moves[k], self.envs[moves[k].slot]
                checkpoints.append(env.checkpoint())
                before_round.setdefault(move.slot, checkpoints[k])
                outcome = None
                try:
                    request = (
                        env.begin_reset(seed=move.seed, options=move.options) if move.reset else env.act(move.reply)
                    )
                    if request is None:  # the act ended the episode: no user turn
                        outcome = self._result(move)
                    else:
                        pending[k] = request
                except Exception:
                    if self.errors == "raise":
                        raise
                    outcome = self._failed(move, checkpoints[k], _traceback())
                outcomes.append(outcome)
                if outcome is not None and outcome.ended and refill is not None:
                    new = refill(move.slot)
                    if new is not None:
                        moves.append(new)
                k += 1
            costs = self._ask_user(moves, pending, outcomes, checkpoints)
            for k, move in enumerate(moves):
                if outcomes[k] is None:
                    try:
                        outcomes[k] = self._result(move)
                    except Exception:
                        if self.errors == "raise":
                            raise
                        outcomes[k] = self._failed(move, checkpoints[k], _traceback())
                if k in costs:
                    outcomes[k].cost = costs[k]
            return outcomes
        except BaseException:
            for slot, checkpoint in before_round.items():
                self.envs[slot].restore(checkpoint)
            raise

    def _ask_user(self, moves, pending, outcomes, checkpoints) -> dict[int, dict[str, float]]:
        """One ``respond_batch`` per user object for the pending requests; returns each move's cost."""
        groups: dict[int, tuple[Any, list[int]]] = {}
        for k in pending:
            user = self.envs[moves[k].slot].user
            groups.setdefault(id(user), (user, []))[1].append(k)
        costs = {}
        for user, ks in groups.values():
            requests = [pending[k] for k in ks]
            tokens_before, start = _token_counts(user), time.perf_counter()
            turns, backend_error, error = None, None, None
            try:
                turns = list(user.respond_batch(requests))
                if len(turns) != len(requests):
                    raise RuntimeError(f"{user!r} returned {len(turns)} turns for {len(requests)} requests")
            except BackendError as err:  # a model-server fault: these episodes end truncated
                turns, backend_error = None, err
            except Exception:
                if self.errors == "raise":
                    raise
                turns, error = None, _traceback()
            seconds, tokens_after = time.perf_counter() - start, _token_counts(user)
            prompt_tokens = generated_tokens = 0
            if tokens_before is not None and tokens_after is not None:
                prompt_tokens = tokens_after[0] - tokens_before[0]
                generated_tokens = tokens_after[1] - tokens_before[1]
            self._count("user_calls", 1)
            self._count("user_requests", len(ks))
            self._count("user_seconds", seconds)
            self._count("user_prompt_tokens", prompt_tokens)
            self._count("user_generated_tokens", generated_tokens)
            for k, turn in zip(ks, turns or [None] * len(ks)):
                resamples = 0 if turn is None else _resamples(turn)
                self._count("user_resamples", resamples)
                cost = {
                    **empty_cost(),
                    "user_calls": 1,
                    "user_requests": 1,
                    "user_prompt_tokens": prompt_tokens / len(ks),
                    "user_generated_tokens": generated_tokens / len(ks),
                    "user_resamples": resamples,
                    "user_seconds": seconds / len(ks),
                }
                costs[k] = cost
                env = self.envs[moves[k].slot]
                if backend_error is not None:
                    env.fail_user(backend_error)
                elif error is not None:
                    outcomes[k] = self._failed(moves[k], checkpoints[k], error)
                else:
                    try:
                        env.observe_user(turn)
                    except Exception:
                        if self.errors == "raise":
                            raise
                        outcomes[k] = self._failed(moves[k], checkpoints[k], _traceback())
        return costs

    def _result(self, move: Move) -> Outcome:
        env = self.envs[move.slot]
        if move.reset:
            obs, info = env.reset_result()
            return Outcome(move, obs, info, view=env.episode)
        obs, reward, terminated, truncated, info = env.step_result()
        return Outcome(move, obs, info, reward, terminated, truncated, view=env.episode)

    def _failed(self, move: Move, checkpoint: Any, error: str) -> Outcome:
        """The outcome of a move that raised; its env goes back to before the move."""
        env = self.envs[move.slot]
        env.restore(checkpoint)
        view = None
        if not move.reset:  # the episode as it was before the failed act
            try:
                view = env.episode
            except Exception:  # ResetNeeded: the env never had an episode
                view = None
        return Outcome(move, view=view, error=error)

    def _count(self, name: str, value: float) -> None:
        with self._stats_lock:  # the overlapped run counts from two threads
            self.stats[name] = self.stats.get(name, 0) + value

    # ------------------------------------------------------------------ whole episodes, replies from a policy
    def run(
        self,
        episodes: Iterable[EpisodeSpec],
        policy: Policy,
        *,
        on_step: Callable[[LiveEpisode], None] | None = None,
        overlap: bool = False,
    ) -> Iterator[LiveEpisode]:
        """Play every episode to its end, ``len(envs)`` at a time; yield each one as it finishes.

        Args:
            episodes: the queue (one :class:`EpisodeSpec` per episode); free slots take the next one.
            policy: ``policy(live_episodes) -> replies``, called once per round for every live episode
                (of a cohort, with ``overlap``).
            on_step: called after each step of an episode that goes on (``episode.stop()`` ends it).
            overlap: keep the user and the policy busy at the same time. The slots form two cohorts
                (even and odd slots) played in turn: while one cohort's user call runs (in a worker
                thread), the other cohort's replies are generated. Worth it when the user and the policy
                run on different engines or devices (a server, a GPU, llama.cpp next to torch on separate
                cores); each call batches half as many episodes. Episodes are the same as without
                overlap (an episode's tokens depend only on its seeds); only the order in which they
                finish changes. Needs at least two envs (with one, it is ignored).
        """
        queue = deque(episodes)
        slots: list[LiveEpisode | None] = [None] * len(self.envs)
        cohorts = [list(range(0, len(self.envs), 2)), list(range(1, len(self.envs), 2))]
        if not overlap or len(self.envs) < 2:
            cohorts = [list(range(len(self.envs)))]

        def refill(slot: int) -> Move | None:
            slots[slot] = None
            if not queue:
                return None
            episode = LiveEpisode(queue.popleft(), self.envs[slot], slot)
            slots[slot] = episode
            return Move.start(slot, episode.seed, episode.spec.options, episode)

        def prepare(cohort: list[int]) -> tuple[list[Move], list[LiveEpisode]]:
            """The cohort's policy call: its moves for the next round, and the episodes whose reply failed."""
            live = [slots[slot] for slot in cohort if slots[slot] is not None]
            finished = self._ask_policy(policy, live)
            for episode in finished:
                slots[episode.slot] = None
            moves = [Move.act(e.slot, e.reply, e) for e in live if e.error is None]
            moves += [move for slot in cohort if slots[slot] is None and (move := refill(slot))]
            return moves, finished

        def settle(outcomes: list[Outcome], finished: list[LiveEpisode]) -> list[LiveEpisode]:
            for outcome in outcomes:
                episode = outcome.move.episode
                episode._apply(outcome)
                if on_step is not None and not outcome.move.reset and not episode.done:
                    on_step(episode)
                if episode.done:
                    if slots[episode.slot] is episode:
                        slots[episode.slot] = None
                    finished.append(episode)
            return finished

        if len(cohorts) == 1:
            while True:
                moves, finished = prepare(cohorts[0])
                if not moves:
                    yield from finished
                    return
                yield from settle(self.round(moves, refill), finished)

        # Two cohorts: cohort c's round (its user call) runs in the worker while cohort 1-c's policy runs here.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="episode-driver-user") as worker:
            in_flight: list = [None, None]  # per cohort: (future of its round, episodes that failed their reply)
            idle = [False, False]
            c = 0
            while not all(idle):
                moves, finished = prepare(cohorts[c])  # overlaps the other cohort's round, if one is in flight
                if moves:
                    in_flight[c] = (worker.submit(self.round, moves, refill), finished)
                else:
                    idle[c] = not queue
                    yield from finished
                other = 1 - c
                if in_flight[other] is not None:
                    future, other_finished = in_flight[other]
                    in_flight[other] = None
                    yield from settle(future.result(), other_finished)
                    idle[other] = False
                c = other
            for pending in in_flight:
                if pending is not None:
                    yield from settle(pending[0].result(), pending[1])

    def _ask_policy(self, policy: Policy, live: list[LiveEpisode]) -> list[LiveEpisode]:
        """Set every live episode's ``reply`` with one policy call; return the episodes whose reply failed.

        With ``errors="record"`` a failing batched call is retried one episode at a time, so one bad
        episode cannot sink the rest.
        """
        if not live:
            return []
        start = time.perf_counter()
        try:
            replies = list(policy(live))
            if len(replies) != len(live):
                raise ValueError(f"the policy returned {len(replies)} replies for {len(live)} episodes")
        except Exception:
            if self.errors == "raise":
                raise
            error = _traceback()
        else:
            self._charge_policy(live, time.perf_counter() - start)
            for episode, reply in zip(live, replies):
                episode.reply = reply
            return []
        self._charge_policy(live, time.perf_counter() - start)
        if len(live) == 1:
            live[0].error = error
            return live
        failed = []
        for episode in live:
            start = time.perf_counter()
            try:
                replies = list(policy([episode]))
                if len(replies) != 1:
                    raise ValueError(f"the policy returned {len(replies)} replies for 1 episode")
                episode.reply = replies[0]
            except Exception:
                episode.error = _traceback()
                failed.append(episode)
            self._charge_policy([episode], time.perf_counter() - start)
        return failed

    def _charge_policy(self, episodes: list[LiveEpisode], seconds: float) -> None:
        self._count("policy_calls", 1)
        self._count("policy_seconds", seconds)
        for episode in episodes:
            episode.cost["policy_seconds"] += seconds / len(episodes)
