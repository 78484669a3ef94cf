r"""Loader for Lost-in-Conversation (LiC) sharded **code** records.

The file is a JSON list (or ``{"data": [...]}``) of records like::

    {"task_id": "sharded-HumanEval/12", "task": "code", "source": "humaneval",
     "shards": [{"shard_id": 1, "shard": "Write a function ..."}, ...],
     "metadata": {"func_name": "longest"},
     "public_test_cases": "[{\"input\": \"[1, 2]\\n3\", \"output\": \"4\", \"testtype\": \"functional\"}]",
     "private_test_cases": "<same, as JSON, or base64(zlib(pickle(json)))>",
     "prompt": "<the original HumanEval prompt, optional>", "test": "<optional check(candidate) code>"}

- The entry point is ``entry_point``, ``metadata.func_name`` or ``name`` (first found).
- Functional tests (``testtype`` ``functional``): ``input`` holds one JSON value per line (the
  arguments), ``output`` the JSON of the expected return value; they become call tests whose
  expected values never enter the sandbox. Without them, a HumanEval ``test`` field (``check``
  code) is used: converted into call tests when every assert has a plain form (see
  :mod:`userlm_env.code.assert_tests`), else run in the candidate's process and marked not RL-safe
  (``metadata["rl_safe"] = False``); a ``test`` that does not parse or has no ``check`` is an error.
  ``stats`` counts ``rl_safe`` and ``not_rl_safe`` tasks. ``stdin`` tests and ``class Solution``
  (LeetCode-style) records are skipped and counted in ``stats`` (``skipped:stdin_tests``,
  ``skipped:class_solution``).
- Compressed private tests are decoded with a restricted unpickler that refuses every global
  (only plain strings, numbers, lists and dicts can come out), so a crafted file cannot run code.
- Shard text may be under ``shard``, ``shard_text`` or ``text``; records of other kinds are skipped
  (``skipped:task=<kind>``).
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from userlm_env.code.assert_tests import tests_from_check
from userlm_env.code.humaneval import prompt_preamble
from userlm_env.code.sandbox import TestCase
from userlm_env.tasks.lic import _shards, read_lic_records
from userlm_env.tasks.source import TaskList
from userlm_env.tasks.task import ShardedTask

__all__ = ["load_lic_code_json"]


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a test-case pickle")


def _decode_cases(raw: Any, where: str) -> list[dict[str, Any]]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, str):
        raise ValueError(f"{where}: test cases must be a JSON string or a list, got {type(raw).__name__}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        try:
            blob = zlib.decompress(base64.b64decode(raw.encode("utf-8")))
            value = _NoGlobals(io.BytesIO(blob)).load()
            value = json.loads(value) if isinstance(value, (str, bytes)) else value
        except Exception as err:  # noqa: BLE001 - any decoding failure is a malformed record
            raise ValueError(f"{where}: cannot decode test cases ({type(err).__name__}: {err})") from err
    if not isinstance(value, list):
        raise ValueError(f"{where}: test cases must decode to a list, got {type(value).__name__}")
    return value


def _call_case(case: dict[str, Any], where: str) -> TestCase:
    try:
        args = tuple(json.loads(line) for line in str(case["input"]).split("\n") if line.strip())
        expected = json.loads(str(case["output"]))
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{where}: malformed functional test case {case!r:.120} ({err})") from err
    return TestCase(args=args, expected=expected)


def _record_to_task(record: Any, index: int, path: Path, stats: Counter[str]) -> ShardedTask | None:
    if not isinstance(record, dict):
        raise ValueError(f"{path}: record {index}: expected an object, got {type(record).__name__}")
    task_id = record.get("task_id")
    where = f"{path}: record {index} (task_id {task_id!r})"
    if not isinstance(task_id, (str, int)) or isinstance(task_id, bool) or str(task_id).strip() == "":
        raise ValueError(f"{where}: missing or invalid 'task_id'")
    shards = _shards(record, where)
    meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    entry = record.get("entry_point") or meta.get("func_name") or record.get("name")
    if not isinstance(entry, str) or not entry.strip().isidentifier():
        raise ValueError(f"{where}: no function name (entry_point, metadata.func_name or name), got {entry!r}")
    starter = str(record.get("starter_code") or "")
    if "class Solution" in starter:
        stats["skipped:class_solution"] += 1
        return None
    cases = _decode_cases(record.get("public_test_cases"), where) + _decode_cases(
        record.get("private_test_cases"), where
    )
    if any(str(c.get("testtype", "functional")) == "stdin" for c in cases if isinstance(c, dict)):
        stats["skipped:stdin_tests"] += 1
        return None
    reasons: tuple[str, ...] = ()
    if cases:
        tests: dict[str, Any] = {"type": "calls", "cases": tuple(_call_case(c, where) for c in cases)}
    elif isinstance(record.get("test"), str) and record["test"].strip():
        try:
            tests, _, reasons = tests_from_check(record["test"], entry.strip())
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
    else:
        raise ValueError(f"{where}: no tests (public_test_cases, private_test_cases or test)")
    prompt = record.get("prompt") if isinstance(record.get("prompt"), str) else ""
    preamble = prompt_preamble(prompt, entry.strip()) if prompt else ""
    solution = record.get("canonical_solution") or record.get("solution") or record.get("answer") or ""
    instruction = prompt or str(record.get("question_content") or "") or " ".join(s.text for s in shards)
    return ShardedTask(
        task_id=str(task_id),
        instruction=" ".join(instruction.split()) if not prompt else prompt,
        shards=shards,
        answer=(prompt + solution)
        if prompt and solution and not str(solution).lstrip().startswith("def ")
        else str(solution),
        kind="code",
        metadata={
            "source": "lic-code",
            "lic_source": record.get("source"),
            "file": str(path),
            "record_index": index,
            "entry_point": entry.strip(),
            "signature": shards[0].text,
            "preamble": preamble,
            "tests": tests,
            "rl_safe": tests["type"] == "calls",
            "rl_unsafe_reasons": reasons,
        },
    )


def load_lic_code_json(path: str | Path) -> TaskList:
    """Load the ``code`` records of a LiC sharded JSON file (see the module docstring).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: invalid JSON, a malformed record (file, index and task id named; a ``test``
            that does not parse or has no ``check`` included), a duplicate task id, or no usable code record.
    """
    path = Path(path)
    data = read_lic_records(path)
    stats: Counter[str] = Counter(rl_safe=0, not_rl_safe=0)
    tasks: list[ShardedTask] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(data):
        stats["records"] += 1
        kind = record.get("task", "code") if isinstance(record, dict) else None
        if isinstance(kind, str) and kind != "code":
            stats["skipped"] += 1
            stats[f"skipped:task={kind}"] += 1
            continue
        task = _record_to_task(record, index, path, stats)
        if task is None:
            stats["skipped"] += 1
            continue
        if task.task_id in seen:
            raise ValueError(
                f"{path}: record {index}: duplicate task_id {task.task_id!r} (first at record {seen[task.task_id]})"
            )
        seen[task.task_id] = index
        tasks.append(task)
        stats["loaded"] += 1
        stats["rl_safe" if task.metadata["rl_safe"] else "not_rl_safe"] += 1
    if not tasks:
        raise ValueError(f"{path}: no usable code records (stats: {dict(stats)})")
    return TaskList(tasks, name=f"lic-code-{path.stem}", stats=dict(stats))
