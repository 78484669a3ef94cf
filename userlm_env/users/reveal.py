"""Which hidden shard an env-controlled user reveals next (``reveal=`` of the envs): pure functions.

Modes (:data:`REVEAL_MODES`):

- ``"ordered"`` (default): LiC's order, the lowest-numbered hidden shard every turn.
- ``"responsive"``: when the assistant's last reply *asks* about something a hidden shard covers,
  that shard; otherwise the next in order.
- ``"on_request"``: a shard only when the last reply asks for information (the one it asks about,
  else the next in order); otherwise the user nudges without new information.

**Question detector** (:func:`questions_in`, :func:`asks_for_information`): the reply is cut into
sentences (at ``. ! ?`` and line breaks); a sentence is a question when it ends with ``?``, starts
with a question word (:data:`QUESTION_WORDS`: what, how, which, ... could, would, is, are ...), or
contains a request phrase (:data:`REQUEST_PHRASES`: "tell me", "let me know", "please provide",
"need more", ...). Only the first :data:`MAX_QUESTIONS` questions count.

**Relevance match** (:func:`shard_relevance`, :func:`choose_shard`): each hidden shard is scored
against the text of those questions: every number the shard and the questions share counts 2;
every content word they share (:func:`userlm_env.shard_detection.content_words`: lower case, stop
words out, plural ``s`` stripped) counts ``1 / (hidden shards containing it)`` (a word every hidden
shard has, like the subject of the task, tells nothing); a question word that hints at a kind of
fact (:data:`QUESTION_HINTS`: "how fast" -> per hour, speed; "how much"/"cost" -> ``$``, dollars; ...)
counts 1 for a shard with one of its hint words. The best score above 0 wins; ties go to the
earliest shard.

Whatever the reply says, **at most one shard per turn** is revealed: a reply that lists every key
word or asks fifty questions gets one shard (the best match), never more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from userlm_env.shard_detection import content_words, numbers_in
from userlm_env.tasks.task import ShardedTask

__all__ = [
    "MAX_QUESTIONS",
    "QUESTION_HINTS",
    "QUESTION_WORDS",
    "REQUEST_PHRASES",
    "REVEAL_MODES",
    "REVEAL_REASONS",
    "RevealChoice",
    "asks_for_information",
    "check_reveal",
    "choose_shard",
    "questions_in",
    "shard_relevance",
]

REVEAL_MODES = ("ordered", "responsive", "on_request")
"""Valid values of ``reveal=``."""

REVEAL_REASONS = {
    "opening": "the opening message (shard 1, and any shards the profile says up front)",
    "ordered": "the next shard in LiC's order (reveal='ordered')",
    "asked": "the hidden shard the assistant's last reply asked about",
    "next": "the next shard in order: the reply asked nothing a hidden shard covers (responsive/on_request)",
    "nudge": "no new information: the reply asked for none (reveal='on_request')",
    "all_revealed": "every shard is out; the user asks for the answer",
    "repeat": "the user repeats its unmet demand (profile repeat_demand) instead of adding information",
    "gave_up": "the user ends the conversation after too many unhelpful replies (profile patience)",
    "satisfied": "the user ends the conversation after a correct answer (profile end_when_satisfied)",
}
"""Values of ``info["reveal_reason"]`` for the env-controlled users, with their meaning."""

MAX_QUESTIONS = 3
"""Questions of one reply that are matched against the hidden shards (the first ones)."""

QUESTION_WORDS = (
    "what", "whats", "what's", "how", "which", "who", "whom", "whose", "when", "where", "why",
    "is", "are", "was", "were", "do", "does", "did", "can", "could", "would", "will", "should", "may",
    "shall", "have", "has",
)  # fmt: skip
"""A sentence that starts with one of these is a question."""

REQUEST_PHRASES = (
    "tell me", "let me know", "please provide", "please share", "please specify", "please clarify",
    "please give", "give me", "i'd need", "i would need", "need to know", "need more",
    "more details", "more information", "more info", "can you", "could you", "would you",
)  # fmt: skip
"""A sentence that contains one of these asks for information."""

QUESTION_HINTS: dict[str, frozenset[str]] = {
    "fast": frozenset({"hour", "mph", "speed", "minute"}),
    "speed": frozenset({"hour", "mph", "speed", "minute"}),
    "long": frozenset({"hour", "minute", "day", "week", "month", "year", "second", "long"}),
    "far": frozenset({"mile", "kilometer", "km", "meter", "feet", "foot", "distance"}),
    "distance": frozenset({"mile", "kilometer", "km", "meter", "feet", "foot", "distance"}),
    "much": frozenset({"$", "dollar", "cent", "cost", "price", "pay", "earn"}),
    "cost": frozenset({"$", "dollar", "cent", "cost", "price", "pay"}),
    "price": frozenset({"$", "dollar", "cent", "cost", "price", "pay"}),
    "old": frozenset({"year", "age", "old"}),
    "age": frozenset({"year", "age", "old"}),
    "input": frozenset({"input", "argument", "parameter", "take", "given"}),
    "return": frozenset({"return", "output", "result"}),
    "output": frozenset({"return", "output", "result"}),
}
"""Question words that hint at a kind of fact, and the shard words (or ``$``) that show it."""

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_FIRST_WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class RevealChoice:
    """What a user turn reveals: ``shard_id`` (None = no new information) and ``reason`` (:data:`REVEAL_REASONS`)."""

    shard_id: int | None
    reason: str


def check_reveal(mode: str | None) -> str:
    """``mode`` if valid (None -> ``"ordered"``).

    Raises:
        ValueError: an unknown mode (the message lists the valid ones).
    """
    if mode is None:
        return "ordered"
    if not isinstance(mode, str) or mode not in REVEAL_MODES:
        raise ValueError(f"reveal must be one of {list(REVEAL_MODES)}, got {mode!r}")
    return mode


def questions_in(reply: str) -> list[str]:
    """The sentences of ``reply`` that ask something (question detector of the module docstring)."""
    found = []
    for match in _SENTENCE.finditer(reply or ""):
        sentence = match.group(0).strip()
        if not sentence:
            continue
        lowered = sentence.lower()
        first = _FIRST_WORD.search(lowered)
        if (
            sentence.endswith("?")
            or (first is not None and first.start() == 0 and first.group(0) in QUESTION_WORDS)
            or any(re.search(rf"\b{re.escape(p)}\b", lowered) for p in REQUEST_PHRASES)
        ):
            found.append(sentence)
    return found


def asks_for_information(reply: str) -> bool:
    """Whether the reply asks the user something (at least one question or request sentence)."""
    return bool(questions_in(reply))


def _facts(text: str) -> set[str]:
    words = content_words(text)
    if "$" in text:
        words.add("$")
    return words


def shard_relevance(query: str, shard_text: str, word_weights: dict[str, float] | None = None) -> float:
    """How much the question text ``query`` asks about ``shard_text`` (0 = nothing in common).

    Args:
        query: the questions of the assistant's reply.
        shard_text: one hidden shard.
        word_weights: weight of each content word (default 1); :func:`choose_shard` passes
            ``1 / (hidden shards containing the word)``.
    """
    weights = word_weights or {}
    shard_words = _facts(shard_text)
    query_words = _facts(query)
    score = 2.0 * len(numbers_in(query) & numbers_in(shard_text))
    score += sum(weights.get(w, 1.0) for w in query_words & shard_words)
    lowered = set(_FIRST_WORD.findall(query.lower()))
    for word, hints in QUESTION_HINTS.items():
        if word in lowered and shard_words & hints:
            score += 1.0
    return score


def choose_shard(
    task: ShardedTask, revealed: tuple[int, ...] | list[int], last_reply: str | None, mode: str
) -> RevealChoice:
    """The shard a later user turn reveals under ``mode`` (the opening turn is the profile's business).

    Args:
        task: the hidden task.
        revealed: shard ids already revealed.
        last_reply: the assistant's last reply (None or empty: no question).
        mode: one of :data:`REVEAL_MODES`.

    Returns:
        A :class:`RevealChoice`: one shard at most, whatever the reply.
    """
    mode = check_reveal(mode)
    hidden = [s for s in task.shards if s.shard_id not in set(revealed)]
    if not hidden:
        return RevealChoice(None, "all_revealed")
    if mode == "ordered":
        return RevealChoice(hidden[0].shard_id, "ordered")
    questions = questions_in(last_reply or "")[:MAX_QUESTIONS]
    if mode == "on_request" and not questions:
        return RevealChoice(None, "nudge")
    if questions:
        query = " ".join(questions)
        counts: dict[str, int] = {}
        for shard in hidden:
            for word in _facts(shard.text):
                counts[word] = counts.get(word, 0) + 1
        weights = {w: 1.0 / n for w, n in counts.items()}
        best, best_score = None, 0.0
        for shard in hidden:  # in order: ties stay with the earliest
            score = shard_relevance(query, shard.text, weights)
            if score > best_score + 1e-9:
                best, best_score = shard.shard_id, score
        if best is not None:
            return RevealChoice(best, "asked")
    return RevealChoice(hidden[0].shard_id, "next")
