"""GSM8K as sharded tasks: automatic sharding, a local jsonl loader and a hub loader.

Sharding rules (``shard_gsm8k_question``), applied to the problem text only:

1. **Sentences.** Whitespace is collapsed, then the text is split after ``.``, ``!`` or ``?``
   (optionally followed by closing quotes or brackets) when whitespace and then a character
   that can start a sentence follow (an upper-case letter, a digit, ``$``, a quote or an
   opening bracket). So decimals (``$1.50``, ``.5``) never split, and a full stop before a
   lower-case word (``5 ft. tall``, ``Ph.D. program``) never splits. Titles (``Mr.``, ``Mrs.``,
   ``Ms.``, ``Dr.``, ``Prof.``, ``St.``, ``Jr.``, ...) never end a sentence, nor do ``e.g.``,
   ``i.e.``, ``vs.`` and ``No.`` before a digit. Other dotted abbreviations (``a.m.``,
   ``p.m.``) end a sentence only when a capitalised word follows (``at 8 a.m. She left``).
   A sentence wholly in brackets, like ``(There are 128 ounces in a gallon.)``, loses its
   brackets.
2. **Question.** The question is the *last* sentence ending with ``?`` (ignoring closing
   quotes or brackets). If none does, the last sentence that asks with an imperative or a
   question word, at its start or after a leading clause (``If ..., calculate ...``,
   ``In 8 years, what will ... be.``), is the question. A sentence that holds a condition and
   the question (``If she works 10 hours, how much does she earn?``) stays whole.
3. **Shards.** Shard 1 is the question; every other sentence is one shard, in the original
   order (notes after the question, such as unit conversions, come last).
4. **Skips** (``None`` is returned, and the loaders count the reason): the text is empty
   (``empty``); no question is found (``no_question``); fewer than ``min_shards`` shards
   (``too_few_shards``, i.e. one-sentence problems); more than ``max_shards`` shards
   (``too_many_shards``); a shard with fewer than ``min_words`` words, a sign of a bad split
   (``fragment``).

On the GSM8K train split (7473 problems) these rules keep about 97% of the problems.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from userlm_env.tasks.source import TaskList
from userlm_env.tasks.task import Shard, ShardedTask

__all__ = [
    "MAX_SHARDS",
    "MIN_WORDS",
    "gsm8k_gold",
    "load_gsm8k_hub",
    "load_gsm8k_jsonl",
    "shard_gsm8k_question",
    "sharding_skip_reason",
    "split_sentences",
]

MAX_SHARDS = 10
"""Problems with more shards than this are skipped (too long to reveal one piece per turn)."""

MIN_WORDS = 2
"""A shard shorter than this (in words) signals a bad sentence split; the problem is skipped."""

_TITLES = frozenset("mr mrs ms messrs mme mlle dr prof st jr sr mt gen col capt lt sgt rev hon fr".split())
_NEVER_END = frozenset({"e.g", "i.e", "vs", "cf", "viz", "approx"})
_CLOSERS = "\"')]\u201d\u2019"
_CANDIDATE = re.compile(r"[.!?]+[" + re.escape(_CLOSERS) + r"]*(?=\s|$)")
_STARTS_SENTENCE = re.compile(r"[A-Z0-9$\"'(\[\u201c\u2018£€]")
_DOTTED = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")
_ASKS = re.compile(
    r"(?:^|[,;:]\s*(?:then\s+|and\s+)?)"
    r"(?:calculate|find|determine|compute|work out|figure out|estimate|express|"
    r"what|how|which|who|whom|whose|when|where|why)\b",
    re.IGNORECASE,
)
_GOLD_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")


def _last_word(text: str) -> str:
    """The word right before a candidate boundary, without opening punctuation."""
    match = re.search(r"(\S+)$", text)
    return match.group(1).lstrip("(\"'[\u201c\u2018") if match else ""


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    """Whether the candidate punctuation ``match`` really ends a sentence."""
    rest = text[match.end() :].lstrip()
    if not rest:
        return True
    if not _STARTS_SENTENCE.match(rest):
        return False  # e.g. "5 ft. tall", a quoted "Why?" followed by lower case
    if not match.group(0).startswith("."):
        return True
    word = _last_word(text[: match.start()])
    lower = word.lower()
    if lower in _TITLES or lower in _NEVER_END:
        return False
    if lower == "no" and rest[0].isdigit():
        return False
    if _DOTTED.match(word):  # a.m., p.m., U.S.: only before a capitalised word
        return rest[0].isupper()
    return True


def _unbracket(sentence: str) -> str:
    """Drop brackets around a whole sentence: ``(There are 8 ounces in a cup.)``."""
    for body in (sentence, sentence[:-1] if sentence.endswith(".") else sentence):
        if body.startswith("(") and body.endswith(")") and "(" not in body[1:-1]:
            inner = body[1:-1].strip()
            if inner and inner[-1] not in ".!?":
                inner += "."
            return inner
    return sentence


def split_sentences(text: str) -> list[str]:
    """Split a word problem into sentences (rule 1 of the module docstring).

    Args:
        text: the problem text.

    Returns:
        The sentences, whitespace-normalised, in order; empty pieces are dropped.
    """
    text = " ".join(text.split())
    sentences: list[str] = []
    start = 0
    for match in _CANDIDATE.finditer(text):
        if _is_boundary(text, match):
            piece = text[start : match.end()].strip()
            if piece:
                sentences.append(_unbracket(piece))
            start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(_unbracket(tail))
    return [s for s in sentences if s]


def _is_question(sentence: str) -> bool:
    return sentence.rstrip(_CLOSERS).endswith("?")


def _find_question(sentences: list[str]) -> int | None:
    """Index of the question sentence (rule 2), or None."""
    marked = [i for i, s in enumerate(sentences) if _is_question(s)]
    if marked:
        return marked[-1]
    asking = [i for i, s in enumerate(sentences) if _ASKS.search(s)]
    return asking[-1] if asking else None


def sharding_skip_reason(
    question: str, *, max_shards: int = MAX_SHARDS, min_shards: int = 2, min_words: int = MIN_WORDS
) -> tuple[list[str] | None, str | None]:
    """Shard a problem, or say why it cannot be sharded.

    Args:
        question: the problem text (all conditions and the question).
        max_shards: the most shards a usable problem may have.
        min_shards: the fewest shards a usable problem may have.
        min_words: the fewest words any shard may have.

    Returns:
        ``(shards, None)`` when it shards, else ``(None, reason)`` with reason one of
        ``empty``, ``no_question``, ``too_few_shards``, ``too_many_shards``, ``fragment``.
    """
    sentences = split_sentences(question)
    if not sentences:
        return None, "empty"
    q_index = _find_question(sentences)
    if q_index is None:
        return None, "no_question"
    shards = [sentences[q_index]] + [s for i, s in enumerate(sentences) if i != q_index]
    if len(shards) < min_shards:
        return None, "too_few_shards"
    if len(shards) > max_shards:
        return None, "too_many_shards"
    if any(len(s.split()) < min_words for s in shards):
        return None, "fragment"
    return shards, None


def shard_gsm8k_question(question: str, *, max_shards: int = MAX_SHARDS) -> list[str] | None:
    """Split a GSM8K problem into shards, question first (rules in the module docstring).

    Args:
        question: the problem text.
        max_shards: the most shards a usable problem may have.

    Returns:
        The shard texts (shard 1 = the question, then the conditions in order), or None when
        the problem cannot be sharded sensibly.

    Example:
        >>> shard_gsm8k_question("Tina makes $18.50 an hour. If she works 10 hours, how much does she make?")
        ['If she works 10 hours, how much does she make?', 'Tina makes $18.50 an hour.']
    """
    shards, _ = sharding_skip_reason(question, max_shards=max_shards)
    return shards


def gsm8k_gold(answer: str | int | float) -> str:
    """The normalised gold number of a GSM8K answer.

    Takes the text after the last ``####`` (or the whole text when there is none, so a bare
    number works too), strips ``,``, ``$``, spaces and a trailing ``.``, and writes the number
    canonically: no leading zeros or ``+``, no trailing zeros after a decimal point
    (``"1,000"`` -> ``"1000"``, ``"5.50"`` -> ``"5.5"``, ``"7.0"`` -> ``"7"``).

    Args:
        answer: a GSM8K solution ending with ``#### N``, or a bare number.

    Returns:
        The number as a string.

    Raises:
        ValueError: when no number can be read.
    """
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise ValueError(f"gold answer must be a string or a number, got {answer!r}")
    text = str(answer).rsplit("####", 1)[-1]
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").strip().rstrip(".")
    if not _GOLD_NUMBER.fullmatch(cleaned):
        raise ValueError(f"no numeric gold answer after '####' in {str(answer)[-80:]!r}")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as err:  # pragma: no cover - the regex already checked
        raise ValueError(f"bad gold number {cleaned!r}") from err
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _make_task(task_id: str, question: str, solution: str, shards: list[str], extra: dict[str, Any]) -> ShardedTask:
    return ShardedTask(
        task_id=task_id,
        instruction=" ".join(question.split()),
        shards=tuple(Shard(i, text) for i, text in enumerate(shards, start=1)),
        answer=gsm8k_gold(solution),
        kind="math",
        metadata={"question": question, "solution": solution, **extra},
    )


def _collect(
    records: list[tuple[int, str, str]],
    *,
    source: str,
    prefix: str,
    max_shards: int,
    stats: Counter[str],
    extra: dict[str, Any],
) -> list[ShardedTask]:
    """Shard (index, question, solution) records into tasks, counting skips in ``stats``."""
    tasks = []
    for index, question, solution in records:
        stats["records"] += 1
        shards, reason = sharding_skip_reason(question, max_shards=max_shards)
        if shards is not None:
            try:
                gsm8k_gold(solution)
            except ValueError:
                reason = "no_gold_answer"
        if reason is not None:
            stats["skipped"] += 1
            stats[f"skipped:{reason}"] += 1
            continue
        assert shards is not None
        tasks.append(
            _make_task(f"{prefix}/{index}", question, solution, shards, {"index": index, "source": source, **extra})
        )
        stats["loaded"] += 1
    return tasks


def load_gsm8k_jsonl(path: str | Path, split_name: str | None = None, *, max_shards: int = MAX_SHARDS) -> TaskList:
    """Load GSM8K-style problems from a jsonl file and shard them.

    Each non-blank line is a JSON object with ``question`` and ``answer`` (a solution ending
    with ``#### N``). Problems that cannot be sharded, or whose answer has no number, are
    skipped and counted in ``stats`` (``skipped`` and ``skipped:<reason>``).

    Args:
        path: the jsonl file.
        split_name: used in task ids ``gsm8k-<split_name>/<line index>`` (0-based line index,
            the row index of the dataset); defaults to the file stem.
        max_shards: the most shards a usable problem may have.

    Returns:
        A TaskList named ``gsm8k-<split_name>``.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: on a line that is not a JSON object with string ``question`` and
            ``answer`` (the message names the file and the 1-based line number), or when no
            problem could be used.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GSM8K jsonl file not found: {str(path)!r}")
    split = split_name if split_name is not None else path.stem
    records = []
    with path.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if not line.strip():
                continue
            where = f"{path}: line {index + 1}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: invalid JSON ({err.msg}): {line.strip()[:80]!r}") from err
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            for key in ("question", "answer"):
                if not isinstance(record.get(key), str):
                    raise ValueError(f"{where}: missing or non-string key {key!r} (keys: {sorted(record)})")
            records.append((index, record["question"], record["answer"]))
    stats: Counter[str] = Counter()
    tasks = _collect(
        records,
        source=str(path),
        prefix=f"gsm8k-{split}",
        max_shards=max_shards,
        stats=stats,
        extra={"file": str(path)},
    )
    if not tasks:
        raise ValueError(f"{path}: no usable GSM8K problems (stats: {dict(stats)})")
    return TaskList(tasks, name=f"gsm8k-{split}", stats=dict(stats))


def load_gsm8k_hub(split: str = "train", *, repo_id: str = "openai/gsm8k", max_shards: int = MAX_SHARDS) -> TaskList:
    """Load a GSM8K split from the Hugging Face hub (``openai/gsm8k``, config ``main``).

    Args:
        split: ``"train"`` or ``"test"``.
        repo_id: the dataset repository.
        max_shards: the most shards a usable problem may have.

    Returns:
        A TaskList named ``gsm8k-<split>``; ids ``gsm8k-<split>/<row index>``, the same as
        ``load_gsm8k_jsonl`` gives for a local copy named ``<split>.jsonl``.

    Raises:
        RuntimeError: when the dataset cannot be loaded (no ``datasets`` package, no network
            and no cache); the message says how to use a local jsonl file instead.
    """
    hint = (
        "To work offline use a local copy: tasks='gsm8k:/path/to/train.jsonl' (one JSON object "
        "per line with 'question' and 'answer', as in github.com/openai/grade-school-math)."
    )
    try:
        import datasets  # noqa: PLC0415 - optional, heavy dependency
    except ImportError as err:
        raise RuntimeError(f"loading GSM8K from the hub needs the 'datasets' package. {hint}") from err
    try:
        data = datasets.load_dataset(repo_id, "main", split=split)
    except Exception as err:  # network, cache, auth: all end the same way
        raise RuntimeError(
            f"could not load GSM8K split {split!r} from the hub ({repo_id}, config 'main'): "
            f"{type(err).__name__}: {err}. {hint}"
        ) from err
    records = [(i, row["question"], row["answer"]) for i, row in enumerate(data)]
    stats: Counter[str] = Counter()
    tasks = _collect(
        records,
        source=f"hf:{repo_id}:{split}",
        prefix=f"gsm8k-{split}",
        max_shards=max_shards,
        stats=stats,
        extra={"split": split},
    )
    if not tasks:
        raise ValueError(f"GSM8K split {split!r}: no usable problems (stats: {dict(stats)})")
    return TaskList(tasks, name=f"gsm8k-{split}", stats=dict(stats))
