"""User populations: sub-envs whose user is drawn, per episode, from a weighted list of users.

A *population* is a list of ``(entry, weight)`` pairs. An entry is

* a user spec string (``"replay"``, ``"prompted:smollm2-135m"``, ``"userlm:PATH"``, ...),
* a dict of env keyword arguments that define a user, passed through to the env unchanged, e.g.
  ``{"user": "replay", "reveal": "responsive", "user_profile": "terse"}`` (any env argument;
  ``"name"`` is an optional label, not passed on; a dict without ``"user"`` uses the env's ``user=``),
* or a :class:`~userlm_env.users.UserSimulator` object.

A bare entry (no weight) has weight 1; weights are normalised. Use it through the vector env::

    gym.make_vec("UserLM-Math-v0", num_envs=8, vectorization_mode="vector_entry_point",
                 user_population=[("replay", 0.5), ("prompted:smollm2-135m", 0.5)])

or for single envs (the training collectors) through :class:`PopulationFactory`::

    factory = PopulationFactory("UserLM-Math-v0", [("replay", 1), ("replay:plain", 1)], {"max_turns": 3})
    env = factory.make_env()

**Seeding.** The member is re-drawn at *every* episode reset (more useful for training than a member
fixed per sub-env: every sub-env sees every user). ``reset(seed=s)`` draws it from
``derive_seed("user-population", s)`` (a stream independent of the task draw) and resets that
member's env with the same seed ``s``; so the member of an episode is a pure function of its reset
seed (in a vector env, sub-env ``i`` reset with ``s + i``), and within a one-member population an
episode is exactly the plain env's episode with that seed. A reset without a seed (a vector env's
autoreset) continues the population's own generator and gives the member env a seed drawn from it,
so whole runs are reproducible from the first seed. ``options={"population_member": i}`` (an index
or a label) pins the member of one reset.

**Sharing.** Users built from the same spec (and ``user_device``) are one object, shared by every
member and every env of a factory (one model load), and the driver sends each user's pending turns
in one batched call. Task sources and judges are shared too unless a member overrides them.

**Info.** Every ``info`` carries ``user_name`` (the member's label) and ``population_member`` (its index).
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from userlm_env.envs.base import ShardedChatEnv
from userlm_env.seeding import SEED_SPACE, derive_seed
from userlm_env.users import UserSimulator, make_user

__all__ = [
    "PopulationEnv",
    "PopulationFactory",
    "PopulationMember",
    "UserPool",
    "member_label",
    "normalize_population",
    "parse_population",
]

SHARED_KEYS = ("tasks", "judge", "sandbox")
"""Env arguments that ``build_shared`` turns into objects shared by sub-envs (a member overriding one gets its own)."""
RESERVED_KEYS = ("num_envs", "user_population", "render_mode", "vectorization_mode")


@dataclass(frozen=True)
class PopulationMember:
    """One member of a population: its label, weight and the env kwargs that define its user."""

    label: str
    weight: float
    kwargs: dict[str, Any] = field(default_factory=dict)


def member_label(entry: Any) -> str:
    """A short readable label for a population entry (``"replay"``, ``"replay[reveal=responsive]"``)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, UserSimulator):
        return str(getattr(entry, "name", None) or type(entry).__name__)
    if isinstance(entry, Mapping):
        if entry.get("name"):
            return str(entry["name"])
        user = entry.get("user")
        base = member_label(user) if user is not None else "default"
        extra = ",".join(f"{k}={entry[k]}" for k in sorted(entry) if k not in ("user", "name"))
        return f"{base}[{extra}]" if extra else base
    return repr(entry)


def parse_population(text: str) -> list[tuple[Any, float]]:
    """Parse a population from the command line.

    Two forms:

    * compact: ``"replay:0.5,prompted:smollm2-135m:0.5"``: comma-separated user specs, each with an
      optional ``:WEIGHT`` suffix (a number; default 1). Specs containing commas (several server
      URLs) need the JSON form.
    * JSON (starts with ``[``): a list whose items are ``[entry, weight]`` pairs or bare entries; an
      entry is a spec string or an object of env arguments, e.g.
      ``'[["replay", 1], [{"user": "replay", "reveal": "responsive"}, 1]]'``.

    Raises:
        ValueError: empty text, bad JSON, or a bad weight.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("user population is empty: give e.g. 'replay:0.5,prompted:smollm2-135m:0.5'")
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"user population: invalid JSON ({err.msg} at char {err.pos}): {text!r}") from None
        return normalize_population(items)
    pairs: list[tuple[Any, float]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"user population {text!r}: empty item (two commas in a row?)")
        spec, sep, last = item.rpartition(":")
        weight = 1.0
        if sep:
            try:
                weight = float(last)
            except ValueError:
                spec = item  # the last part is part of the spec ("prompted:smollm2-135m")
        else:
            spec = item
        pairs.append((spec, weight))
    return normalize_population(pairs)


def _check_weight(weight: Any, index: int) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        raise ValueError(f"user population item {index}: weight must be a number, got {weight!r}")
    weight = float(weight)
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"user population item {index}: weight must be finite and >= 0, got {weight!r}")
    return weight


def normalize_population(population: Any) -> list[tuple[Any, float]]:
    """``(entry, weight)`` pairs from a population (pairs, bare entries, a mapping label -> weight, or a string).

    Raises:
        ValueError: empty population, bad weights (negative, NaN, all zero).
        TypeError: an entry that is not a spec string, a dict of env arguments or a ``UserSimulator``.
    """
    if isinstance(population, str):
        return parse_population(population)
    if isinstance(population, Mapping):  # {"replay": 0.5, "prompted:smollm2-135m": 0.5}
        population = list(population.items())
    if not isinstance(population, Sequence) or not population:
        raise ValueError(f"user_population must be a non-empty list of (entry, weight) pairs, got {population!r}")
    pairs = []
    for index, item in enumerate(population):
        if isinstance(item, (list, tuple)):
            if len(item) != 2:
                raise ValueError(f"user population item {index}: expected (entry, weight), got {item!r}")
            entry, weight = item
        else:
            entry, weight = item, 1.0
        if not isinstance(entry, (str, Mapping, UserSimulator)):
            raise TypeError(
                f"user population item {index}: an entry is a user spec string, a dict of env arguments "
                f"or a UserSimulator, got {type(entry).__name__}: {entry!r}"
            )
        if isinstance(entry, str) and not entry.strip():
            raise ValueError(f"user population item {index}: empty user spec")
        if isinstance(entry, Mapping):
            bad = [k for k in entry if not isinstance(k, str) or k in RESERVED_KEYS]
            if bad:
                raise ValueError(f"user population item {index}: {bad} cannot be set per member")
        pairs.append((entry, _check_weight(weight, index)))
    if sum(w for _, w in pairs) <= 0:
        raise ValueError("user population: the weights sum to 0")
    return pairs


class UserPool:
    """The users of a population, built once per distinct ``(spec, user_device)`` (one model load each)."""

    def __init__(self) -> None:
        self._users: dict[Any, UserSimulator] = {}

    def get(self, spec: Any, device: str | None = None) -> UserSimulator:
        """The shared user for ``spec`` (a ``UserSimulator`` is used as is)."""
        if isinstance(spec, UserSimulator):
            self._users.setdefault(("object", id(spec)), spec)
            return spec
        key = (spec, device)
        if key not in self._users:
            self._users[key] = make_user(spec, device=device)
        return self._users[key]

    def __iter__(self):
        seen: set[int] = set()
        for user in self._users.values():
            if id(user) not in seen:
                seen.add(id(user))
                yield user

    def __len__(self) -> int:
        return len(list(iter(self)))

    def close(self) -> None:
        """Release every user once."""
        for user in self:
            user.close()


def _env_class(env: Any) -> type:
    if isinstance(env, str):
        from userlm_env.envs import ENV_CLASSES, resolve_env_id

        return ENV_CLASSES[resolve_env_id(env)]
    return env


class PopulationFactory:
    """Builds :class:`PopulationEnv` s that share the population's users, task sources and judges.

    Args:
        env: the env class (or a registered id / ``"math"`` / ``"code"``).
        population: ``(entry, weight)`` pairs (see the module docstring), or a string for :func:`parse_population`.
        env_kwargs: the env arguments common to every member (``tasks``, ``reward``, ``max_turns``, the
            default ``user``, ...); a member's dict overrides them.

    Raises:
        ValueError / TypeError: a bad population, an env argument the env does not take (the message
            names the member), or a user spec that does not exist.
    """

    def __init__(self, env: Any, population: Any, env_kwargs: Mapping[str, Any] | None = None):
        self.env_class = _env_class(env)
        self.pairs = normalize_population(population)
        base = dict(env_kwargs or {})
        base.pop("render_mode", None)
        total = sum(w for _, w in self.pairs)
        accepted = set(inspect.signature(self.env_class).parameters)
        self.users = UserPool()
        self.members: list[PopulationMember] = []
        probe = dict(base)
        base_shared = self.env_class.build_shared(probe)  # tasks and judge built once for all members
        base_rest = probe  # what build_shared did not consume
        self._builds: list[tuple[UserSimulator, dict[str, Any]]] = []
        labels: dict[str, int] = {}
        for index, (entry, weight) in enumerate(self.pairs):
            own = dict(entry) if isinstance(entry, Mapping) else {"user": entry}
            label = member_label(entry)
            own.pop("name", None)
            unknown = sorted(set(own) - accepted)
            if unknown:
                raise ValueError(
                    f"user population member {index} ({label!r}): {self.env_class.__name__} takes no argument "
                    f"{unknown}; it takes {sorted(accepted - {'render_mode'})}"
                )
            if label in labels:
                label = f"{label}#{index}"
            labels[label] = index
            merged = {**base, **own}
            try:
                user = self.users.get(merged.get("user"), merged.get("user_device"))
            except (ValueError, TypeError) as err:
                raise type(err)(f"user population member {index} ({label!r}): {err}") from err
            if any(k in own for k in SHARED_KEYS):
                rest = {k: v for k, v in merged.items() if k not in ("user", "user_device")}
                shared = self.env_class.build_shared(rest)
            else:
                rest = {k: v for k, v in {**base_rest, **own}.items() if k not in ("user", "user_device")}
                shared = base_shared
            self._builds.append((user, {**shared, **rest}))
            self.members.append(PopulationMember(label=label, weight=weight / total, kwargs=own))
        self.probabilities = np.array([m.weight for m in self.members], dtype=float)
        self.probabilities /= self.probabilities.sum()

    @property
    def labels(self) -> list[str]:
        """The members' labels, in order (``info["user_name"]``)."""
        return [m.label for m in self.members]

    def make_member_env(self, index: int):
        """A plain env of member ``index`` (sharing the population's user, tasks and judge)."""
        user, kwargs = self._builds[index]
        return self.env_class(user=user, **kwargs)

    def make_env(self) -> PopulationEnv:
        """A new :class:`PopulationEnv` (one member env each, all sharing the factory's objects)."""
        return PopulationEnv(self)

    def close(self) -> None:
        """Release the population's users."""
        self.users.close()


class PopulationEnv(ShardedChatEnv):
    """An env whose user is re-drawn from a population at every reset (see the module docstring).

    It holds one env per member and plays the drawn member's env: the stepping protocol
    (``begin_reset`` / ``act`` / ``observe_user`` / ``step_result`` ...), ``user``, ``task``,
    ``episode`` and ``checkpoint`` / ``restore`` are those of the active member, so drivers and
    vector envs use it as any :class:`~userlm_env.envs.base.ShardedChatEnv`.
    """

    def __init__(self, factory: PopulationFactory):  # noqa: D107 - no ShardedChatEnv.__init__: members do that
        self.factory = factory
        self.members = factory.members
        self.envs = [factory.make_member_env(i) for i in range(len(factory.members))]
        first = self.envs[0]
        for index, env in enumerate(self.envs[1:], start=1):
            if env.observation_space != first.observation_space or env.action_space != first.action_space:
                raise ValueError(
                    f"user population members {self.members[0].label!r} and {self.members[index].label!r} "
                    "have different spaces: members must agree on max_turns and max_reply_chars"
                )
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self.metadata = dict(first.metadata)
        self.render_mode = None
        self.active = 0
        self._rng: np.random.Generator | None = None

    # ------------------------------------------------------------------ the active member's objects
    @property
    def active_env(self):
        """The env of the member drawn at the last reset."""
        return self.envs[self.active]

    @property
    def user_name(self) -> str:
        """The active member's label."""
        return self.members[self.active].label

    def __getattr__(self, name: str) -> Any:
        # user, tasks, judge, reward_config, max_turns, max_reply_chars, ...: those of the active member
        if name.startswith("_") or name in ("envs", "members", "factory", "active"):
            raise AttributeError(name)
        return getattr(self.envs[self.__dict__.get("active", 0)], name)

    @property
    def user(self):
        """The active member's user (the driver groups pending requests by this object)."""
        return self.active_env.user

    @property
    def task(self):
        """The active member's hidden task."""
        return self.active_env.task

    @property
    def episode(self):
        """The active member's :class:`~userlm_env.envs.base.EpisodeView`."""
        return self.active_env.episode

    # ------------------------------------------------------------------ the stepping protocol
    def _draw(self, seed: int | None, options: dict[str, Any]) -> tuple[int, int | None]:
        if seed is not None:
            self._rng = np.random.default_rng(derive_seed("user-population", int(seed)))
        elif self._rng is None:
            self._rng = np.random.default_rng()
        index = int(self._rng.choice(len(self.members), p=self.factory.probabilities))
        if "population_member" in options:
            pinned = options["population_member"]
            labels = self.factory.labels
            if isinstance(pinned, str) and pinned in labels:
                index = labels.index(pinned)
            elif isinstance(pinned, (int, np.integer)) and not isinstance(pinned, bool) and 0 <= pinned < len(labels):
                index = int(pinned)
            else:
                raise ValueError(f"options['population_member'] must be an index or one of {labels}, got {pinned!r}")
        member_seed = int(seed) if seed is not None else int(self._rng.integers(SEED_SPACE))
        return index, member_seed

    def begin_reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Draw the member (from the reset seed), then the member env's ``begin_reset``."""
        options = dict(options or {})
        index, member_seed = self._draw(seed, options)
        options.pop("population_member", None)
        self.active = index
        return self.active_env.begin_reset(seed=member_seed, options=options or None)

    def _tag(self, info: dict[str, Any]) -> dict[str, Any]:
        info["user_name"] = self.user_name
        info["population_member"] = self.active
        return info

    def reset_result(self):
        """The member's ``(obs, info)``, ``info`` tagged with ``user_name`` and ``population_member``."""
        obs, info = self.active_env.reset_result()
        return obs, self._tag(info)

    def act(self, action: str):
        """The active member's ``act``."""
        return self.active_env.act(action)

    def observe_user(self, turn) -> None:
        """The active member's ``observe_user``."""
        self.active_env.observe_user(turn)

    def fail_user(self, error: BaseException) -> None:
        """The active member's ``fail_user``."""
        self.active_env.fail_user(error)

    def step_result(self):
        """The member's step tuple, ``info`` tagged with ``user_name`` and ``population_member``."""
        obs, reward, terminated, truncated, info = self.active_env.step_result()
        return obs, reward, terminated, truncated, self._tag(info)

    def _let_user_answer(self, request) -> None:
        self.active_env._let_user_answer(request)

    def checkpoint(self) -> Any:
        """The active member, the population's generator and every member env's checkpoint."""
        return self.active, copy.deepcopy(self._rng), [env.checkpoint() for env in self.envs]

    def restore(self, checkpoint: Any) -> None:
        """Put the population env back to a :meth:`checkpoint`."""
        self.active, rng, members = checkpoint
        self._rng = copy.deepcopy(rng)
        for env, saved in zip(self.envs, members):
            env.restore(saved)

    def render(self):
        """The active member's ``render``."""
        return self.active_env.render()

    def close(self) -> None:
        """Release the population's users (shared with the factory's other envs, as a shared user is)."""
        self.factory.users.close()
