"""HumanEval-format code tasks: loading, automatic sharding of the docstring, test instrumentation.

A HumanEval record has ``task_id``, ``prompt`` (imports, the signature and a docstring),
``canonical_solution`` (the body), ``test`` (defines ``check(candidate)`` with asserts) and
``entry_point``. :func:`shard_humaneval_prompt` turns the prompt into shards, LiC style:

1. shard 1: the high-level purpose: ``Write a Python function `name(params)` that <first sentence>``;
2. then each further sentence of the description (requirements, details), one per shard;
3. then each example (``>>> f(x)`` followed by its output line, or a line like ``f(x) == y`` /
   ``f(x) ➞ y``), one per shard: ``For example, f(x) should return y.``

Sentences beyond :data:`MAX_DETAIL_SHARDS` and examples beyond :data:`MAX_EXAMPLE_SHARDS` are
merged into the last shard of their group, so no fact is lost.

Tests: when every assert of ``check`` has a plain form such as ``assert candidate(args) == value``,
the asserts become host-graded call tests at load time (:mod:`userlm_env.code.assert_tests`) and the
task is RL-safe (``metadata["rl_safe"] = True``); otherwise the whole ``check`` runs in the
candidate's process (``{"type": "script"}``, ``metadata["rl_safe"] = False``, the reasons in
``metadata["rl_unsafe_reasons"]``), where a hostile solution can forge a pass.

A record whose ``test`` does not parse or defines no ``check``, or whose ``entry_point`` is not
defined in its ``prompt``, is rejected at load time (it would fail every attempt).
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from userlm_env.code.assert_tests import check_function, tests_from_check
from userlm_env.tasks.source import TaskList
from userlm_env.tasks.task import Shard, ShardedTask

__all__ = [
    "HUMANEVAL_FIELDS",
    "MalformedRecord",
    "defines_function",
    "humaneval_task",
    "instrument_check",
    "prompt_preamble",
    "load_humaneval_hub",
    "load_humaneval_jsonl",
    "shard_humaneval_prompt",
]

HUMANEVAL_FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
MAX_DETAIL_SHARDS = 4
MAX_EXAMPLE_SHARDS = 3
HUB_DATASET = "openai/openai_humaneval"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"])")
_ARROW = re.compile(r"^(?P<call>.+?)\s*(?:==|➞|=>|->|returns?|should return|→)\s*(?P<out>.+)$")


def _docstring_and_signature(prompt: str, entry_point: str) -> tuple[str, str]:
    try:
        tree = ast.parse(prompt + "\n    pass\n" if not prompt.rstrip().endswith("pass") else prompt)
    except SyntaxError:
        tree = None
    if tree is not None:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == entry_point:
                args = ast.unparse(node.args)
                returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
                return ast.get_docstring(node) or "", f"{node.name}({args}){returns}"
    match = re.search(r"def\s+" + re.escape(entry_point) + r"\s*\(([^)]*)\)", prompt)
    signature = f"{entry_point}({match.group(1).strip()})" if match else f"{entry_point}(...)"
    doc = re.search(r'("""|\'\'\')(.*?)(\1|$)', prompt, re.DOTALL)
    return (doc.group(2).strip() if doc else ""), signature


def _split_docstring(doc: str, entry_point: str) -> tuple[list[str], list[str]]:
    """(description sentences, example sentences) of a docstring."""
    lines = [line.strip() for line in doc.splitlines()]
    prose: list[str] = []
    examples: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(">>>"):
            call = line[3:].strip()
            out = (
                lines[i + 1].strip()
                if i + 1 < len(lines) and lines[i + 1] and not lines[i + 1].startswith(">>>")
                else ""
            )
            i += 2 if out else 1
            examples.append(f"For example, `{call}` should return `{out}`." if out else f"For example: `{call}`.")
            continue
        arrow = _ARROW.match(line) if entry_point in line else None
        if arrow and "(" in arrow.group("call"):
            call = arrow.group("call").strip().rstrip(":").strip()
            examples.append(f"For example, `{call}` should return `{arrow.group('out').strip()}`.")
        elif line.lower().rstrip(":") in ("example", "examples", "for example", "e.g.", "example input", "note"):
            pass
        else:
            prose.append(line)
        i += 1
    text = " ".join(p for p in prose if p)
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    return sentences, examples


def _merge_tail(items: list[str], limit: int) -> list[str]:
    if len(items) <= limit:
        return items
    return items[: limit - 1] + [" ".join(items[limit - 1 :])]


def shard_humaneval_prompt(prompt: str, entry_point: str) -> tuple[Shard, ...]:
    """Shard a HumanEval prompt (see the module docstring for the rules).

    Raises:
        ValueError: the prompt has no docstring text to shard.
    """
    doc, signature = _docstring_and_signature(prompt, entry_point)
    sentences, examples = _split_docstring(doc, entry_point)
    if not sentences and not examples:
        raise ValueError(f"prompt of {entry_point!r} has no docstring to shard")
    purpose = sentences[0] if sentences else "does what the examples show."
    purpose = purpose[0].lower() + purpose[1:] if purpose[:1].isupper() and not purpose[:2].isupper() else purpose
    first = f"Write a Python function `{signature}` that does the following: {purpose}"
    texts = [first] + _merge_tail(sentences[1:], MAX_DETAIL_SHARDS) + _merge_tail(examples, MAX_EXAMPLE_SHARDS)
    return tuple(Shard(i + 1, " ".join(t.split())) for i, t in enumerate(texts))


def prompt_preamble(prompt: str, entry_point: str) -> str:
    """What a HumanEval prompt gives besides the entry point: its imports and helper definitions.

    It is prepended to the assistant's code before the tests run (the assistant never saw the
    prompt, only shards; the helpers of e.g. ``make_palindrome`` come with it). The assistant's
    own definitions come after, so they win.
    """
    try:
        tree = ast.parse(prompt + "\n    pass\n")
    except SyntaxError:
        return ""
    keep = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            keep.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name != entry_point:
            keep.append(node)
    return "\n\n".join(ast.unparse(n) for n in keep)


class MalformedRecord(ValueError):
    """A HumanEval record that can never be graded (missing field, broken ``test``, undefined entry point)."""


def defines_function(prompt: str, name: str) -> bool:
    """Whether ``prompt`` (a HumanEval prompt: code ending in a docstring) defines ``def name(`` at top level."""
    for source in (prompt + "\n    pass\n", prompt):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body)
    return re.search(r"^(?:async\s+)?def\s+" + re.escape(name) + r"\s*\(", prompt, re.MULTILINE) is not None


def humaneval_task(record: Mapping[str, Any], *, source: str = "humaneval") -> ShardedTask:
    """Build one sharded code task from a HumanEval-format record.

    The asserts of ``check`` become host-graded call tests when they all can (see the module docstring).

    Raises:
        MalformedRecord: a field is missing or not a string, ``test`` does not parse or has no
            ``check(candidate)``, or ``entry_point`` is not an identifier defined in ``prompt``.
        ValueError: the prompt cannot be sharded (no docstring).
    """
    name = f"HumanEval record {record.get('task_id')!r}"
    missing = [k for k in HUMANEVAL_FIELDS if not isinstance(record.get(k), str) or not record.get(k).strip()]
    if missing:
        raise MalformedRecord(f"{name}: missing or empty fields {missing}")
    prompt, entry = record["prompt"], record["entry_point"].strip()
    if not entry.isidentifier():
        raise MalformedRecord(f"{name}: entry_point {entry!r} is not a function name")
    if not defines_function(prompt, entry):
        raise MalformedRecord(f"{name}: entry_point {entry!r} is not defined in the prompt (no 'def {entry}(')")
    try:
        check_function(record["test"])
    except ValueError as err:
        raise MalformedRecord(f"{name}: {err}") from err
    tests, rl_safe, reasons = tests_from_check(record["test"], entry)
    shards = shard_humaneval_prompt(prompt, entry)
    solution = prompt + record["canonical_solution"]
    return ShardedTask(
        task_id=str(record["task_id"]),
        instruction=prompt,
        shards=shards,
        answer=solution,
        kind="code",
        metadata={
            "source": source,
            "entry_point": entry,
            "signature": shards[0].text,
            "preamble": prompt_preamble(prompt, entry),
            "tests": tests,
            "rl_safe": rl_safe,
            "rl_unsafe_reasons": reasons,
            "record": dict(record),
        },
    )


def _tasks_from_records(
    records: Iterable[Mapping[str, Any]], name: str, where: str, lines: list[int] | None = None
) -> TaskList:
    stats: Counter[str] = Counter(rl_safe=0, not_rl_safe=0)
    tasks = []
    for index, record in enumerate(records):
        stats["records"] += 1
        try:
            task = humaneval_task(record, source=name)
        except MalformedRecord as err:
            at = f"{where}:{lines[index]}" if lines is not None else where
            raise ValueError(f"{at}: record {index}: {err}") from err
        except ValueError:
            stats["skipped"] += 1
            stats["skipped:no_docstring"] += 1
            continue
        tasks.append(task)
        stats["loaded"] += 1
        stats["rl_safe" if task.metadata["rl_safe"] else "not_rl_safe"] += 1
    if not tasks:
        raise ValueError(f"{where}: no usable HumanEval records (stats: {dict(stats)})")
    return TaskList(tasks, name=name, stats=dict(stats))


def load_humaneval_jsonl(path: str | Path) -> TaskList:
    """Load HumanEval-format records (one JSON object per line) from a local file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line is not JSON, or a record lacks a field, has a ``test`` that does not parse
            or defines no ``check``, or an ``entry_point`` its prompt does not define (the message names
            the file, line, record index and task id).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HumanEval jsonl file not found: {str(path)!r}")
    records = []
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: invalid JSON: {err.msg}") from err
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
        lines.append(number)
    return _tasks_from_records(records, f"humaneval-{path.stem}", str(path), lines)


def load_humaneval_hub(split: str = "test") -> TaskList:
    """Load ``openai/openai_humaneval`` from the Hugging Face hub (network or local cache needed).

    Raises:
        RuntimeError: the dataset cannot be loaded (the message says how to use a local jsonl instead).
    """
    try:
        from datasets import load_dataset  # noqa: PLC0415

        data = load_dataset(HUB_DATASET, split=split)
    except Exception as err:  # noqa: BLE001 - datasets raises many kinds (ConnectionError, DatasetNotFoundError...)
        raise RuntimeError(
            f"cannot load {HUB_DATASET!r} from the hub ({type(err).__name__}: {err}). Offline, download it once "
            "elsewhere and pass tasks='humaneval:PATH' (a jsonl with task_id, prompt, canonical_solution, test, "
            "entry_point), or use tasks='code:procedural'"
        ) from err
    return _tasks_from_records((dict(r) for r in data), f"humaneval-{split}", HUB_DATASET)


class _AssertRewriter(ast.NodeTransformer):
    def __init__(self) -> None:
        self.count = 0

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:  # noqa: D102, N802
        return self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> ast.AST:  # noqa: D102, N802
        call = ast.Call(
            func=ast.Name("__sbx_assert", ast.Load()),
            args=[ast.Constant(self.count), ast.Lambda(ast.arguments([], [], None, [], [], None, []), node.test)],
            keywords=[],
        )
        self.count += 1
        return ast.copy_location(ast.Expr(call), node)


def instrument_check(test_code: str) -> str:
    """Rewrite each ``assert`` inside ``check`` into a counted call, so passed/failed can be measured.

    ``assert cond, msg`` becomes ``__sbx_assert(i, lambda: cond)``; the runner records every
    evaluation (asserts inside loops count once per iteration). Code that does not parse is
    returned unchanged (the sandbox then reports its syntax error).
    """
    try:
        tree = ast.parse(test_code)
    except SyntaxError:
        return test_code
    rewriter = _AssertRewriter()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            rewriter.visit(node)
    return ast.unparse(ast.fix_missing_locations(tree))
