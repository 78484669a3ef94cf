"""Task sources: where an environment draws its sharded tasks from.

A ``TaskSource`` draws one ``ShardedTask`` per episode from a numpy ``Generator`` (the env's
``np_random``), so the same seed gives the same task. ``make_task_source`` turns the
``tasks=`` argument of an environment (a spec string, a source, or a list of tasks) into a
source; the spec strings of both families (math: ``procedural[:easy|hard]``,
``gsm8k[:train|test|PATH]``, ``lic:PATH``; code: ``code:procedural[:T1,T2]``,
``humaneval[:test|PATH]``, ``lic-code:PATH``) are defined and parsed in :mod:`userlm_env.tasks.spec`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import overload

import numpy as np

from userlm_env.tasks.spec import (
    DEFAULT_TASK_SPECS,
    MATH_SPEC_FORMS,
    TaskFamily,
    TaskSpec,
    build_task_source,
    parse_task_spec,
)
from userlm_env.tasks.task import ShardedTask

__all__ = ["SPEC_FORMS", "TaskList", "TaskSource", "make_task_source"]

SPEC_FORMS = MATH_SPEC_FORMS
"""The accepted forms of a math task spec string (PATH = a local file); see :mod:`userlm_env.tasks.spec`."""


class TaskSource(abc.ABC):
    """A source of sharded tasks.

    Attributes:
        name: a short name for logs and task ids (e.g. ``"procedural"``, ``"gsm8k-train"``).
    """

    name: str = "tasks"

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> ShardedTask:
        """Draw one task.

        Args:
            rng: the only source of randomness; the same generator state gives the same task.

        Returns:
            The task.
        """

    @property
    def stats(self) -> dict[str, int]:
        """Loading statistics (e.g. ``loaded``, ``skipped`` and ``skipped:<reason>`` counts)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class TaskList(TaskSource):
    """A finite list of tasks; ``sample`` picks one uniformly.

    Args:
        tasks: the tasks (at least one; task ids must be unique).
        name: the source's name, used in error messages.
        stats: loading statistics to report (copied).

    Raises:
        ValueError: when ``tasks`` is empty or two tasks share an id.
        TypeError: when an element is not a ``ShardedTask``.
    """

    def __init__(
        self, tasks: Sequence[ShardedTask], name: str = "tasks", stats: Mapping[str, int] | None = None
    ) -> None:
        self.name = name
        self._tasks: tuple[ShardedTask, ...] = tuple(tasks)
        if not self._tasks:
            raise ValueError(f"task source {name!r} has no tasks (stats: {dict(stats or {})})")
        seen: set[str] = set()
        for i, task in enumerate(self._tasks):
            if not isinstance(task, ShardedTask):
                raise TypeError(f"task source {name!r}: item {i} is a {type(task).__name__}, not a ShardedTask")
            if task.task_id in seen:
                raise ValueError(f"task source {name!r}: duplicate task_id {task.task_id!r}")
            seen.add(task.task_id)
        self._stats = {"loaded": len(self._tasks), **dict(stats or {})}

    @property
    def stats(self) -> dict[str, int]:
        """Loading statistics; always has ``loaded`` (the number of tasks)."""
        return dict(self._stats)

    def sample(self, rng: np.random.Generator) -> ShardedTask:
        """Pick one task with ``rng.integers(len(self))``."""
        return self._tasks[int(rng.integers(len(self._tasks)))]

    def __len__(self) -> int:
        return len(self._tasks)

    @overload
    def __getitem__(self, index: int) -> ShardedTask: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[ShardedTask, ...]: ...

    def __getitem__(self, index: int | slice) -> ShardedTask | tuple[ShardedTask, ...]:
        return self._tasks[index]

    def __iter__(self) -> Iterator[ShardedTask]:
        return iter(self._tasks)

    def __repr__(self) -> str:
        return f"TaskList(name={self.name!r}, n={len(self._tasks)})"


def make_task_source(
    spec: str | TaskSpec | TaskSource | Sequence[ShardedTask] | ShardedTask | None, family: TaskFamily = "math"
) -> TaskSource:
    """Build a task source from an env's ``tasks=`` argument: the one builder behind every env.

    ``make_code_task_source(spec)`` is ``make_task_source(spec, family="code")`` and
    ``make_env_task_source(env_id, spec)`` picks the family of ``env_id``.

    Args:
        spec: ``None`` (the family's default, :data:`~userlm_env.tasks.spec.DEFAULT_TASK_SPECS`),
            a spec string or :class:`~userlm_env.tasks.spec.TaskSpec` (see :mod:`userlm_env.tasks.spec`),
            a ``TaskSource`` (returned as is) or a sequence of ``ShardedTask`` (wrapped in a ``TaskList``).
        family: the family of the env reading the spec (``"math"`` or ``"code"``): it resolves bare
            ``"procedural"``, and a spec of the other family is an error naming its env.

    Returns:
        The task source.

    Raises:
        ValueError: an unknown spec string (the message lists the valid forms and suggests a
            close match), a spec of the other family, or an empty list.
        TypeError: for any other type.
    """
    if spec is None:
        spec = DEFAULT_TASK_SPECS[family]
    if isinstance(spec, TaskSource):
        return spec
    if isinstance(spec, (str, TaskSpec)):
        return build_task_source(parse_task_spec(spec, family))
    if isinstance(spec, ShardedTask):
        return TaskList([spec], name="list")
    if isinstance(spec, Sequence):
        return TaskList(spec, name="list")
    raise TypeError(
        f"tasks must be a spec string, a TaskSource or a sequence of ShardedTask, got {type(spec).__name__}: {spec!r}"
    )
