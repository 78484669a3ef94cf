"""One high-level intent per conversation: the system message a User LM is conditioned on.

"Flipping the Dialogue" has an LLM read each conversation and write the user's overall goal in a
sentence or two, in the second person, without the turn-by-turn details (so the User LM learns to
*decompose* the intent over turns instead of copying it). Three sources, each recorded with the
intent (:attr:`Intent.method`) so a report can say which one it used:

- ``lm``: written by a language model on any userlm_env backend (a local transformers model such
  as ``smollm2-135m``, or an OpenAI-compatible server ``http://...``); cached on disk as JSONL keyed
  by conversation id, so an interrupted run resumes where it stopped (:func:`write_intents`).
- ``data``: taken from the record (``meta["intent"]``) when the dataset carries one.
- ``first-sentence`` / ``keywords``: cheap offline fallbacks, no model. ``first-sentence`` is the
  first sentence of the first user turn (it leaks that turn's wording into the intent);
  ``keywords`` lists the most frequent content words of all user turns (less leakage, less fluent).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from userlm_env.flip.data import _ENGLISH_STOPWORDS, Conversation

INTENT_METHODS = ("lm", "data", "first-sentence", "keywords")
INTENT_PROMPT = (
    "Below is a chat between a person and an AI assistant. In one or two sentences, describe what the "
    "person wants from the whole chat, addressed to them as 'You want ...'. Describe the goal, not each "
    "message; do not quote them.\n\n{transcript}\n\nWhat the person wants:"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")


@dataclass(frozen=True)
class Intent:
    """An intent and where it came from.

    Attributes:
        id: the conversation's id.
        text: the intent (the system message).
        method: one of :data:`INTENT_METHODS`.
        model: the model that wrote it (``lm`` only).
    """

    id: str
    text: str
    method: str
    model: str = ""


def first_sentence_intent(conv: Conversation, max_words: int = 30) -> str:
    """``You want help with: <first sentence of the first user turn>`` (cut to ``max_words``)."""
    users = conv.user_turns()
    first = users[0].strip() if users else ""
    sentence = _SENTENCE_END.split(first, maxsplit=1)[0] if first else ""
    words = sentence.split()
    text = " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")
    return f"You want help with: {text}"


def keywords_intent(conv: Conversation, k: int = 8) -> str:
    """``You want help with a topic involving: w1, w2, ...``: the ``k`` most frequent user-turn content words."""
    counts: Counter[str] = Counter()
    for turn in conv.user_turns():
        counts.update(w.lower() for w in _WORD.findall(turn) if w.lower() not in _ENGLISH_STOPWORDS)
    words = [w for w, _ in counts.most_common(k)]
    return "You want help with a topic involving: " + (", ".join(words) if words else "a question")


def cheap_intent(conv: Conversation, method: str = "first-sentence") -> Intent:
    """An offline intent (``first-sentence`` or ``keywords``), or the record's own (``data``).

    Raises:
        ValueError: unknown method, or ``data`` for a record without ``meta["intent"]``.
    """
    if method == "first-sentence":
        return Intent(conv.id, first_sentence_intent(conv), method)
    if method == "keywords":
        return Intent(conv.id, keywords_intent(conv), method)
    if method == "data":
        intent = conv.meta.get("intent")
        if not isinstance(intent, str) or not intent.strip():
            raise ValueError(f"conversation {conv.id} has no 'intent' field; use method='first-sentence' or 'lm'")
        return Intent(conv.id, intent.strip(), method)
    raise ValueError(f"unknown intent method {method!r}; use one of {INTENT_METHODS}")


def transcript(conv: Conversation, max_chars_per_turn: int = 300, max_turns: int = 6) -> str:
    """A short plain-text transcript for the intent writer (``Person:`` / ``Assistant:`` lines)."""
    lines = []
    for message in [m for m in conv.messages if m["role"] != "system"][:max_turns]:
        who = "Person" if message["role"] == "user" else "Assistant"
        text = " ".join(message["content"].split())
        lines.append(f"{who}: {text[:max_chars_per_turn]}{'...' if len(text) > max_chars_per_turn else ''}")
    return "\n".join(lines)


def clean_intent(text: str) -> str:
    """Normalise an LM-written intent: first paragraph, labels and quotes stripped, "The person wants" -> "You want"."""
    text = text.strip().split("\n\n")[0].strip()
    text = re.sub(r"^(intent|goal|answer|what the person wants)\s*:\s*", "", text, flags=re.I)
    text = re.sub(r"^(the |this )?(person|user)\s+wants\b", "You want", text, flags=re.I)
    return " ".join(text.strip().strip('"').split())


class IntentCache:
    """Intents on disk as JSONL (one :class:`Intent` per line, keyed by id; later lines win).

    Args:
        path: the JSONL file (created on the first :meth:`add`).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.items: dict[str, Intent] = {}
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as handle:
                for lineno, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        self.items[row["id"]] = Intent(row["id"], row["text"], row["method"], row.get("model", ""))
                    except (json.JSONDecodeError, KeyError):
                        if lineno > 1 and not line.endswith("\n"):
                            continue  # a line cut by an interrupted write: rewritten on resume
                        raise ValueError(f"{self.path}:{lineno}: not an intent record: {line[:80]!r}") from None

    def __contains__(self, conv_id: str) -> bool:
        return conv_id in self.items

    def __len__(self) -> int:
        return len(self.items)

    def get(self, conv_id: str) -> Intent | None:
        """The cached intent of ``conv_id``, if any."""
        return self.items.get(conv_id)

    def add(self, intents: Iterable[Intent]) -> None:
        """Append intents to the file (flushed, so an interruption loses at most the current batch)."""
        intents = list(intents)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for intent in intents:
                handle.write(json.dumps(intent.__dict__, ensure_ascii=False) + "\n")
                self.items[intent.id] = intent


def make_intent_writer(
    spec: str, max_new_tokens: int = 60, device: str | None = None
) -> Callable[[list[str]], list[str]]:
    """A ``complete(prompts) -> texts`` function on the model named by ``spec`` (greedy decoding).

    Args:
        spec: ``smollm2-135m``, a local model dir or hub id (transformers), or an OpenAI-compatible
            server URL ``http://host:port/v1?model=NAME`` (see :mod:`userlm_env.backends.http_backend`).
        max_new_tokens: length budget of one intent.
        device: device of a local model.
    """
    from userlm_env.backends import SamplingParams
    from userlm_env.backends.engines import make_backend

    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
    backend = make_backend(spec, device=device)
    return backend.chat_completer(params)


def write_intents(
    conversations: Sequence[Conversation],
    complete: Callable[[list[str]], list[str]],
    cache: IntentCache,
    *,
    model: str = "",
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Intent]:
    """LM-written intents for ``conversations``, reusing and extending ``cache`` (resumable).

    Args:
        conversations: the conversations to describe.
        complete: a ``prompts -> texts`` function (:func:`make_intent_writer`).
        cache: where intents are stored; conversations already in it are not sent again.
        model: recorded in each :class:`Intent`.
        batch_size: prompts per ``complete`` call.
        progress: show a rich progress bar.

    Returns:
        ``{conversation id: Intent}`` for every conversation. An empty generation falls back to the
        ``first-sentence`` intent (recorded as such, and not cached, so a rerun retries it).
    """
    from rich.progress import Progress

    todo = [c for c in conversations if c.id not in cache]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"writing intents ({model or 'lm'})", total=len(todo))
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            texts = complete([INTENT_PROMPT.format(transcript=transcript(c)) for c in batch])
            cache.add(Intent(c.id, clean_intent(t), "lm", model) for c, t in zip(batch, texts) if clean_intent(t))
            bar.advance(task, len(batch))
    out = {}
    for conv in conversations:
        out[conv.id] = cache.get(conv.id) or cheap_intent(conv, "first-sentence")
    return out


def get_intents(
    conversations: Sequence[Conversation],
    method: str = "first-sentence",
    *,
    cache_path: str | Path | None = None,
    writer_spec: str = "smollm2-135m",
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Intent]:
    """Intents for every conversation by ``method`` (see :data:`INTENT_METHODS`).

    ``lm`` needs ``cache_path`` (resumable JSONL) and loads ``writer_spec``; ``data`` falls back to
    ``first-sentence`` for records without an intent (recorded in :attr:`Intent.method`).

    Raises:
        ValueError: unknown method, or ``lm`` without ``cache_path``.
    """
    if method == "lm":
        if cache_path is None:
            raise ValueError("method='lm' needs cache_path (a JSONL file that makes the run resumable)")
        complete = make_intent_writer(writer_spec)
        return write_intents(
            conversations,
            complete,
            IntentCache(cache_path),
            model=writer_spec,
            batch_size=batch_size,
            progress=progress,
        )
    if method == "data":
        return {
            c.id: cheap_intent(c, "data") if isinstance(c.meta.get("intent"), str) else cheap_intent(c)
            for c in conversations
        }
    if method not in INTENT_METHODS:
        raise ValueError(f"unknown intent method {method!r}; use one of {INTENT_METHODS}")
    return {c.id: cheap_intent(c, method) for c in conversations}
