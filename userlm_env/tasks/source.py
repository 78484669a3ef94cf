"""Task sources: where an environment draws its sharded tasks from.

A ``TaskSource`` draws one ``ShardedTask`` per episode from a numpy ``Generator`` (the env's
``np_random``), so the same seed gives the same task. ``make_task_source`` turns the
``tasks=`` argument of the environment (a spec string, a source, or a list of tasks) into a
source.

Spec strings:

- ``None`` or ``"procedural"``: the offline generator of arithmetic word problems (3-6 shards);
  ``"procedural:easy"`` (3-4 shards) and ``"procedural:hard"`` (5-6 shards).
- ``"gsm8k"`` / ``"gsm8k:train"`` / ``"gsm8k:test"``: GSM8K from the Hugging Face hub
  (``openai/gsm8k``, needs the network or a cache), sharded automatically.
- ``"gsm8k:PATH"``: a local GSM8K jsonl file (``question``/``answer`` per line).
- ``"lic:PATH"``: a Lost-in-Conversation sharded JSON file (math records).
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from userlm_env.tasks.task import ShardedTask

__all__ = ["SPEC_FORMS", "TaskList", "TaskSource", "make_task_source"]

SPEC_FORMS = (
    "procedural",
    "procedural:easy",
    "procedural:hard",
    "gsm8k",
    "gsm8k:train",
    "gsm8k:test",
    "gsm8k:PATH",
    "lic:PATH",
)
"""The accepted forms of a task spec string (PATH = a local file)."""


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


def _unknown_spec(spec: str, why: str = "unknown task spec") -> ValueError:
    guesses = difflib.get_close_matches(spec, SPEC_FORMS, n=2, cutoff=0.5)
    if not guesses and ":" in spec:
        guesses = difflib.get_close_matches(spec.split(":", 1)[0], SPEC_FORMS, n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(g) for g in guesses)}?" if guesses else ""
    return ValueError(f"{why}: {spec!r}.{hint} Valid forms: {', '.join(SPEC_FORMS)}.")


def _from_string(spec: str) -> TaskSource:
    from userlm_env.tasks.gsm8k import load_gsm8k_hub, load_gsm8k_jsonl  # noqa: PLC0415
    from userlm_env.tasks.lic import load_lic_json  # noqa: PLC0415
    from userlm_env.tasks.procedural import ProceduralMathTasks  # noqa: PLC0415

    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "procedural":
        levels = {"": (3, 6), "easy": (3, 4), "hard": (5, 6)}
        if arg.lower() not in levels:
            raise _unknown_spec(spec, "unknown procedural difficulty (use easy or hard)")
        low, high = levels[arg.lower()]
        return ProceduralMathTasks(min_shards=low, max_shards=high, name=f"procedural:{arg.lower()}" if arg else None)
    if kind == "gsm8k":
        if not arg:
            return load_gsm8k_hub("train")
        if arg in ("train", "test") and not Path(arg).is_file():
            return load_gsm8k_hub(arg)
        return load_gsm8k_jsonl(arg)
    if kind == "lic":
        if not arg:
            raise _unknown_spec(spec, "the 'lic' task spec needs a file path ('lic:PATH')")
        return load_lic_json(arg)
    raise _unknown_spec(spec)


def make_task_source(spec: str | TaskSource | Sequence[ShardedTask] | None) -> TaskSource:
    """Build a task source from the env's ``tasks=`` argument.

    Args:
        spec: ``None`` (procedural), a spec string (see the module docstring), a
            ``TaskSource`` (returned as is) or a sequence of ``ShardedTask`` (wrapped in a
            ``TaskList``).

    Returns:
        The task source.

    Raises:
        ValueError: for an unknown spec string (the message lists the valid forms and
            suggests a close match) or an empty list.
        TypeError: for any other type.
    """
    if spec is None:
        return _from_string("procedural")
    if isinstance(spec, TaskSource):
        return spec
    if isinstance(spec, str):
        return _from_string(spec)
    if isinstance(spec, ShardedTask):
        return TaskList([spec], name="list")
    if isinstance(spec, Sequence):
        return TaskList(spec, name="list")
    raise TypeError(
        f"tasks must be a spec string, a TaskSource or a sequence of ShardedTask, got {type(spec).__name__}: {spec!r}"
    )
