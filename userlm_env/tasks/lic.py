"""Loader for Lost-in-Conversation (LiC) sharded instructions.

The file is a JSON list of records::

    {"task_id": "sharded-GSM8K/17", "task": "math",
     "shards": [{"shard_id": 1, "shard": "How many ...?"}, {"shard_id": 2, "shard": "..."}],
     "question": "<the fully specified problem>",
     "answer": "<a GSM8K solution ending with '#### N', or a bare number>"}

The shard text may be under ``shard`` (as in the shared sample) or ``shard_text`` (as in the
released dataset card); the full instruction under ``question``, ``fully_specified_question``,
``instruction`` or ``prompt`` (if none is present, the shards are joined, conditions first and
the request last). Shards are sorted by ``shard_id``, which must then read 1..k.

Only ``math`` records become tasks by default; records of other kinds (``code``, ``database``,
...) are skipped and counted in ``stats`` as ``skipped:task=<kind>``, unless ``kinds`` asks for
them (their ``answer`` is then kept verbatim, as text).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from userlm_env.tasks.gsm8k import gsm8k_gold
from userlm_env.tasks.source import TaskList
from userlm_env.tasks.task import Shard, ShardedTask

__all__ = ["load_lic_json"]

_TEXT_KEYS = ("shard", "shard_text", "text")
_INSTRUCTION_KEYS = ("question", "fully_specified_question", "instruction", "prompt")


def read_lic_records(path: str | Path) -> list:
    """The records of a LiC JSON file: a list, or ``{"data": [...]}``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: invalid JSON (line and column named) or a top level that is not a list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LiC JSON file not found: {str(path)!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _shards(record: dict[str, Any], where: str) -> tuple[Shard, ...]:
    raw = record.get("shards")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: 'shards' must be a non-empty list, got {raw!r:.80}")
    shards = []
    for j, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"{where}: shard {j} must be an object, got {item!r:.80}")
        shard_id = item.get("shard_id")
        if isinstance(shard_id, bool) or not isinstance(shard_id, int):
            raise ValueError(f"{where}: shard {j} has no integer 'shard_id' (got {shard_id!r})")
        text = next((item[k] for k in _TEXT_KEYS if k in item), None)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: shard {shard_id} has no text under {' / '.join(_TEXT_KEYS)}")
        shards.append(Shard(shard_id, " ".join(text.split())))
    shards.sort(key=lambda s: s.shard_id)
    ids = [s.shard_id for s in shards]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(f"{where}: shard ids must be 1..{len(ids)} once each, got {ids}")
    return tuple(shards)


def _instruction(record: dict[str, Any], shards: tuple[Shard, ...]) -> str:
    for key in _INSTRUCTION_KEYS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return " ".join(s.text for s in shards[1:] + shards[:1])


def _record_to_task(record: Any, index: int, path: Path) -> ShardedTask:
    """Validate one record and build its task; errors name the file, index and task id."""
    if not isinstance(record, dict):
        raise ValueError(f"{path}: record {index}: expected an object, got {type(record).__name__}")
    task_id = record.get("task_id")
    where = f"{path}: record {index} (task_id {task_id!r})"
    if not isinstance(task_id, (str, int)) or isinstance(task_id, bool) or str(task_id).strip() == "":
        raise ValueError(f"{where}: missing or invalid 'task_id'")
    kind = record.get("task", "math")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{where}: 'task' must be a non-empty string, got {kind!r}")
    shards = _shards(record, where)
    if "answer" not in record:
        raise ValueError(f"{where}: missing 'answer' (keys: {sorted(record)})")
    solution = record["answer"]
    if kind == "math":
        try:
            answer = gsm8k_gold(solution)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
    else:
        answer = solution if isinstance(solution, str) else json.dumps(solution)
    return ShardedTask(
        task_id=str(task_id),
        instruction=_instruction(record, shards),
        shards=shards,
        answer=answer,
        kind=kind,
        metadata={
            "source": "lic",
            "file": str(path),
            "record_index": index,
            "solution": solution,
            "record": record,
        },
    )


def load_lic_json(path: str | Path, *, kinds: Iterable[str] = ("math",)) -> TaskList:
    """Load a Lost-in-Conversation sharded JSON file.

    Args:
        path: the JSON file (a list of records, see the module docstring).
        kinds: the task kinds to keep (default only ``math``); other records are counted in
            ``stats`` as ``skipped`` and ``skipped:task=<kind>``.

    Returns:
        A TaskList named ``lic-<file stem>``.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: on invalid JSON, a top level that is not a list, a malformed record (the
            message names the file, the record index and its task id), a duplicate task id,
            or when no record is kept.
    """
    path = Path(path)
    data = read_lic_records(path)
    wanted = set(kinds)
    stats: Counter[str] = Counter()
    tasks = []
    seen: dict[str, int] = {}
    for index, record in enumerate(data):
        stats["records"] += 1
        kind = record.get("task", "math") if isinstance(record, dict) else None
        if isinstance(kind, str) and kind not in wanted:
            stats["skipped"] += 1
            stats[f"skipped:task={kind}"] += 1
            continue
        task = _record_to_task(record, index, path)
        if task.task_id in seen:
            raise ValueError(
                f"{path}: record {index}: duplicate task_id {task.task_id!r} (first at record {seen[task.task_id]})"
            )
        seen[task.task_id] = index
        tasks.append(task)
        stats["loaded"] += 1
    if not tasks:
        raise ValueError(f"{path}: no records of kind {sorted(wanted)} (stats: {dict(stats)})")
    return TaskList(tasks, name=f"lic-{path.stem}", stats=dict(stats))
