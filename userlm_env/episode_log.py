r"""Append-only JSONL episode logs that survive crashes, refuse a second writer and resume without duplicates.

One line per finished episode, written and made durable (``fsync``) as soon as the episode ends, so
an interrupted run keeps every finished episode. Lines are pure ASCII JSON (``ensure_ascii``): any
text, lone surrogates included, is written as ``\uXXXX`` escapes and read back as it was, and no
character inside a record can split its line. A value JSON cannot encode (an object in a custom
info field, a tuple dict key, a cycle) is written as its ``str``, never an error.

While an :class:`EpisodeLog` is open it holds an exclusive lock (``flock``) on the file: a second
writer, in this or another process, fails at once with an error naming the file, instead of running
every episode a second time.

Reading (:func:`read_log`) never raises on content: the file is decoded line by line, and a line
that is not a complete record (cut off by a crash, invalid UTF-8, JSON that is not an object, an
object without the required fields, a second record for a key already read) is skipped and
reported with its line number (:class:`LogProblem`). Of two records with one ``episode_key`` the
**first** is kept, the one resuming already relied on, so no reader counts an episode twice.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere logs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "EpisodeLog",
    "EpisodeLogWarning",
    "LogContents",
    "LogLockedError",
    "LogProblem",
    "RECORD_FIELDS",
    "encode_record",
    "read_log",
    "unique_by_key",
]

KEY = "episode_key"
RECORD_FIELDS = (
    "episode_key", "seed", "task_id", "num_shards", "transcript", "steps", "return", "score", "turns",
    "shards_revealed", "end_reason", "component_totals", "seconds", "error",
)  # fmt: skip
"""Fields every episode record of :func:`userlm_env.rollout.run_episodes` has (since the first version of the
log): ``EpisodeLog(path, required=RECORD_FIELDS)`` skips and reports a line without them, and its episode runs
again instead of crashing a summary."""
_MAX_DEPTH = 100


class LogLockedError(OSError):
    """Another writer (this process or another one) has the episode log open."""


class EpisodeLogWarning(UserWarning):
    """Lines of an episode log were skipped (see :attr:`EpisodeLog.problems`)."""


@dataclass(frozen=True)
class LogProblem:
    """A line of the log that was skipped, and why."""

    line: int
    """1-based line number in the file"""
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class LogContents:
    """What :func:`read_log` found: the records (one per key, in file order) and the skipped lines."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[LogProblem] = field(default_factory=list)
    cut_tail_offset: int | None = None
    """where a cut-off last line (no newline, not parseable) starts, else None"""


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _stringify(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the record
        return f"<unprintable {type(value).__name__}>"


def _default(value: Any) -> Any:
    """JSON for what ``json`` cannot encode: numpy scalars / arrays as numbers / lists, anything else its ``str``."""
    if type(value).__module__ == "numpy":
        try:
            return value.tolist()
        except Exception:  # noqa: BLE001
            pass
    return _stringify(value)


def _jsonable(value: Any, depth: int = 0, active: frozenset[int] = frozenset()) -> Any:
    """A copy of ``value`` that ``json.dumps`` accepts: str keys, no cycles, bounded depth."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if depth >= _MAX_DEPTH or id(value) in active:
        return "<circular reference>" if id(value) in active else _stringify(value)
    inner = active | {id(value)}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not (key is None or isinstance(key, (str, int, float, bool))):
                key = _stringify(key)
            out[key] = _jsonable(item, depth + 1, inner)
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, depth + 1, inner) for item in value]
    converted = _default(value)
    return converted if isinstance(converted, str) else _jsonable(converted, depth + 1, inner)


def encode_record(record: dict[str, Any]) -> bytes:
    """One record as one ASCII JSON line (without the newline); never fails on content.

    Any text is escaped (``ensure_ascii``), so lone surrogates and line separators are safe;
    values JSON cannot encode are written as their ``str`` (numpy values as numbers).
    """
    try:
        text = json.dumps(record, ensure_ascii=True, default=_default)
    except (TypeError, ValueError, RecursionError):  # tuple keys, cycles, absurd nesting
        text = json.dumps(_jsonable(record), ensure_ascii=True, default=_stringify)
    return text.encode("ascii")


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _check(value: Any, required: Sequence[str]) -> str | None:
    """Why ``value`` is not a record (None if it is one)."""
    if not isinstance(value, dict):
        return f"a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}, not an object"
    if not isinstance(value.get(KEY), str):
        return f"no string {KEY!r}" + (f" (got {value[KEY]!r:.40})" if KEY in value else "")
    missing = [name for name in required if name not in value]
    if missing:
        return f"missing field(s) {', '.join(map(repr, missing))} (episode_key {value[KEY]!r:.60})"
    return None


def _parse_line(raw: bytes, required: Sequence[str]) -> tuple[dict[str, Any] | None, str | None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"not valid JSON: {err.msg} (column {err.colno})"
    except (ValueError, RecursionError) as err:
        return None, f"not valid JSON: {type(err).__name__}"
    reason = _check(value, required)
    return (value, None) if reason is None else (None, reason)


def _iter_lines(handle) -> Iterator[tuple[int, int, bytes]]:
    """(line number, start offset, bytes with the newline) of each line of a binary file."""
    offset = 0
    for number, raw in enumerate(handle, start=1):
        yield number, offset, raw
        offset += len(raw)


def read_log(path: str | Path, *, required: Sequence[str] = (KEY,)) -> LogContents:
    """Read an episode log; never raises on its content.

    Args:
        path: the JSONL file (a missing file reads as empty).
        required: fields every record must have (besides a string ``episode_key``).

    Returns:
        The valid records, the first one of each ``episode_key``, in file order, and a
        :class:`LogProblem` for every other non-blank line.
    """
    contents = LogContents()
    path = Path(path)
    if not path.exists():
        return contents
    first_line: dict[str, int] = {}
    with path.open("rb") as handle:
        for number, offset, raw in _iter_lines(handle):
            if not raw.strip():
                continue
            complete = raw.endswith(b"\n")
            record, reason = _parse_line(raw, required)
            if record is None:
                if not complete and reason.startswith("not valid"):
                    contents.cut_tail_offset = offset
                    reason = f"cut off (the last line has no newline and is {reason})"
                contents.problems.append(LogProblem(number, reason))
                continue
            key = record[KEY]
            if key in first_line:
                contents.problems.append(
                    LogProblem(number, f"duplicate episode_key {key!r:.80} (first on line {first_line[key]}): skipped")
                )
                continue
            first_line[key] = number
            contents.records.append(record)
    return contents


def unique_by_key(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Drop records whose ``episode_key`` came before: return the first of each key, and how many were dropped.

    Records without a key are all kept.
    """
    seen: set[Any] = set()
    kept, dropped = [], 0
    for record in records:
        key = record.get(KEY) if isinstance(record, dict) else None
        if key is not None:
            try:
                if key in seen:
                    dropped += 1
                    continue
                seen.add(key)
            except TypeError:  # an unhashable key: keep the record
                pass
        kept.append(record)
    return kept, dropped


# --------------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------------


class EpisodeLog:
    """A JSONL file of episode records, keyed by ``record["episode_key"]``, open for appending.

    Use it as a context manager (or call :meth:`close`): while open it holds an exclusive lock on
    the file, so a second writer gets :class:`LogLockedError`.

    Args:
        path: the file (parent folders are created).
        resume: keep existing records and skip their keys; if False an existing non-empty file is
            an error (pass ``overwrite=True`` to start over).
        overwrite: empty an existing file.
        required: fields a line must have to count as a record (besides a string ``episode_key``);
            lines without them are skipped and reported, and their episodes run again.
        warn: issue an :class:`EpisodeLogWarning` listing the skipped lines.

    Attributes:
        records: the records read at opening (one per key) plus those appended since, as written.
        done_keys: their keys.
        problems: the lines skipped at opening (:class:`LogProblem`), reported in the warning.

    Raises:
        LogLockedError: another writer has the file open.
        FileExistsError: the file has records and neither ``resume`` nor ``overwrite`` is set.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        required: Sequence[str] = (KEY,),
        warn: bool = True,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - held (and locked) until close()
        try:
            self._lock()
            size = os.fstat(self._file.fileno()).st_size
            if size > 0 and not (resume or overwrite):
                raise FileExistsError(
                    f"{self.path} already holds episodes: pass --resume to continue it or --overwrite"
                )
            if overwrite:
                self._file.truncate(0)
            contents = read_log(self.path, required=required)
            if contents.cut_tail_offset is not None:  # a crash mid-line: new records start on a clean line
                self._file.truncate(contents.cut_tail_offset)
                os.fsync(self._file.fileno())
        except BaseException:
            self.close()
            raise
        self.records: list[dict[str, Any]] = contents.records
        self.done_keys: set[str] = {r[KEY] for r in self.records}
        self.problems: list[LogProblem] = contents.problems
        if warn and self.problems:
            warnings.warn(self.describe_problems(), EpisodeLogWarning, stacklevel=2)

    @property
    def corrupt_lines(self) -> int:
        """How many lines were skipped at opening."""
        return len(self.problems)

    def describe_problems(self, limit: int = 10) -> str:
        """One message naming the skipped lines (at most ``limit``, then a count)."""
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        return f"{self.path}: skipped {len(self.problems)} line(s):\n  " + "\n  ".join(lines)

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogLockedError(
                f"{self.path} is locked: another process is writing to it (or another open EpisodeLog of this "
                "one); two writers would run and log every episode twice: wait for it to finish, stop it, or "
                "write to another file"
            ) from None

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line (append-only) and make it durable before returning."""
        if self._file is None:
            raise ValueError(f"{self.path}: the episode log is closed")
        line = encode_record(record) + b"\n"
        end = self._file.seek(0, os.SEEK_END)
        if end > 0:  # a crash between a record and its newline: start on a new line
            self._file.seek(end - 1)
            if self._file.read(1) != b"\n":
                line = b"\n" + line
        view = memoryview(line)
        while view:  # O_APPEND: every write lands at the end
            view = view[self._file.write(view) :]
        os.fsync(self._file.fileno())
        written = json.loads(line)
        self.records.append(written)
        self.done_keys.add(written.get(KEY))

    def close(self) -> None:
        """Release the lock and close the file (idempotent)."""
        handle, self._file = getattr(self, "_file", None), None
        if handle is not None:
            handle.close()

    def __enter__(self) -> EpisodeLog:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
