"""Append-only JSONL episode logs that survive crashes and resume without duplicates.

One line per finished episode, written and flushed (``fsync``) as soon as the episode ends, so an
interrupted run keeps every finished episode. On resume the keys of the logged episodes are read
back and skipped. A last line cut off by a crash is ignored (and reported), never fatal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class EpisodeLog:
    """A JSONL file of episode records, keyed by ``record["episode_key"]``.

    Args:
        path: the file (parent folders are created).
        resume: keep existing records and skip their keys; if False an existing non-empty file is
            an error (pass ``overwrite=True`` to start over).
        overwrite: truncate an existing file.

    Raises:
        FileExistsError: the file has records and neither ``resume`` nor ``overwrite`` is set.
    """

    def __init__(self, path: str | Path, *, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.corrupt_lines = 0
        if self.path.exists() and self.path.stat().st_size > 0 and not (resume or overwrite):
            raise FileExistsError(f"{self.path} already holds episodes: pass --resume to continue it or --overwrite")
        if overwrite and self.path.exists():
            self.path.unlink()
        self.records = list(self.read()) if self.path.exists() else []
        self.done_keys = {r.get("episode_key") for r in self.records}
        if self.corrupt_lines:
            self._drop_partial_tail()

    def read(self) -> Iterator[dict[str, Any]]:
        """The complete records in the file (a cut-off or garbled line is counted and skipped)."""
        self.corrupt_lines = 0
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    self.corrupt_lines += 1

    def _drop_partial_tail(self) -> None:
        """Rewrite the file without unparsable lines so new records start on a clean line."""
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for record in self.records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line and make it durable before returning."""
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self.path.open("a+b") as handle:
            if handle.tell() > 0:  # a crash between a record and its newline: start on a new line
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = "\n" + line
            handle.write((line + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        self.records.append(record)
        self.done_keys.add(record.get("episode_key"))
