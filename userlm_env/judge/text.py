"""Reading a reply: the scan window, LaTeX clean-up, its numbers and its sentences.

Shared by the rule judge (which applies its rules to an :class:`Analysis`) and the LLM judge
(which checks that an extracted answer is one of the reply's numbers).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass

from userlm_env.grading import normalize_number, to_fraction
from userlm_env.judge.patterns import (
    BOX_CLOSE,
    BOX_OPEN,
    BOXED,
    ENUMERATION_AFTER,
    LABEL_BEFORE,
    LABEL_LOOKBACK,
    LATEX_SUBSTITUTIONS,
    LINE_START,
    NUMBER_TOKEN,
    SENTENCE_BOUNDARY,
)

SCAN_CHARS = 4000
"""Only the last ``SCAN_CHARS`` characters of a reply are scanned for answers and questions."""

HEAD_CHARS = 1000
"""The first ``HEAD_CHARS`` characters are scanned for refusals as well."""

MAX_BOX_CHARS = 500
"""Longest ``\\boxed{...}`` content considered (longer boxes are cut there)."""


@dataclass(frozen=True)
class Token:
    """A number of the reply: its span in the cleaned text and its canonical value."""

    start: int
    end: int
    value: str


@dataclass
class Sentence:
    """A sentence (or line) of the cleaned text, with the numbers it holds."""

    start: int
    end: int
    text: str
    tokens: list[Token]

    @property
    def is_question(self) -> bool:
        """Whether the sentence ends with a question mark."""
        return self.text.rstrip(" \t\"'”’)]*_").endswith("?")


def find_boxes(text: str) -> list[tuple[int, int, str]]:
    r"""``(start, end, content)`` of every ``\boxed{..}``, braces matched in one linear pass."""
    boxes: list[tuple[int, int, str]] = []
    position = 0
    while True:
        match = BOXED.search(text, position)
        if match is None:
            return boxes
        depth, index, limit = 1, match.end(), min(len(text), match.end() + MAX_BOX_CHARS)
        while index < limit and depth:
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                depth -= 1
            index += 1
        content_end = index - 1 if depth == 0 else index
        boxes.append((match.start(), index, text[match.end() : content_end]))
        position = index


def clean_latex(text: str) -> str:
    """Simplify the LaTeX a math reply typically contains into plain text."""
    for pattern, replacement in LATEX_SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return text


def number_tokens(text: str, offset: int = 0) -> list[Token]:
    """Numbers of ``text`` (positions shifted by ``offset``), without labels and list numbering."""
    found = []
    for match in NUMBER_TOKEN.finditer(text):
        value = normalize_number(match.group())
        if value is None:
            continue
        before = text[max(0, match.start() - LABEL_LOOKBACK) : match.start()]
        if LABEL_BEFORE.search(before):
            continue  # "Step 2", "Case 1", "#3"
        if LINE_START.search(before) and ENUMERATION_AFTER.match(text, match.end()):
            continue  # "1. She earns ..." / "2) How many ..."
        found.append(Token(match.start() + offset, match.end() + offset, value))
    return found


def distinct_values(tokens: Iterable[Token]) -> tuple[str, ...]:
    """The tokens' values, each once, in order."""
    return tuple(dict.fromkeys(token.value for token in tokens))


def same_value(a: str | None, b: str | None) -> bool:
    """Whether two extracted answers are the same value (``3/4`` and ``0.75`` are)."""
    if a is None or b is None:
        return a is b
    if a == b:
        return True
    fa, fb = to_fraction(normalize_number(a)), to_fraction(normalize_number(b))
    return fa is not None and fa == fb


def words_of(text: str) -> list[str]:
    """The words of ``text`` (runs of letters)."""
    return re.findall(r"[^\W\d_]+", text)


class Analysis:
    """The scan window of a reply, cleaned, split into sentences, with its numbers."""

    def __init__(self, reply: str) -> None:
        window = reply[-SCAN_CHARS:]
        if len(reply) > SCAN_CHARS:
            cut = re.search(r"\s", window[:100])
            window = window[cut.end() :] if cut else window
        window = window.replace(BOX_OPEN, "").replace(BOX_CLOSE, "")
        self.head = reply[:HEAD_CHARS]
        self.raw_boxes: list[str] = []
        pieces, position = [], 0
        for start, end, content in find_boxes(window):
            pieces.append(clean_latex(window[position:start]))
            pieces.append(BOX_OPEN + clean_latex(content) + BOX_CLOSE)
            self.raw_boxes.append(content.strip())
            position = end
        pieces.append(clean_latex(window[position:]))
        self.text = "".join(pieces)
        self.tokens = number_tokens(self.text)
        self.sentences = self._split()
        self._token_starts = [token.start for token in self.tokens]
        self._sentence_starts = [sentence.start for sentence in self.sentences]

    def _split(self) -> list[Sentence]:
        sentences, start, token_index = [], 0, 0
        bounds = [(m.start(), m.end()) for m in SENTENCE_BOUNDARY.finditer(self.text)]
        bounds.append((len(self.text), len(self.text)))
        for end, next_start in bounds:
            piece = self.text[start:end]
            if piece.strip():
                inside = []
                while token_index < len(self.tokens) and self.tokens[token_index].start < end:
                    if self.tokens[token_index].start >= start:
                        inside.append(self.tokens[token_index])
                    token_index += 1
                sentences.append(Sentence(start, end, piece, inside))
            start = next_start
        return sentences

    def sentence_index(self, position: int) -> int:
        """Index of the sentence containing ``position`` (the last one before it otherwise)."""
        return max(0, bisect.bisect_right(self._sentence_starts, position) - 1)

    def tokens_before(self, position: int) -> list[Token]:
        """The numbers ending at or before ``position`` (at most the last two)."""
        index = bisect.bisect_left(self._token_starts, position)
        return [t for t in self.tokens[max(0, index - 2) : index] if t.end <= position]

    def tokens_between(self, start: int, end: int) -> list[Token]:
        """The numbers lying within ``[start, end)`` (binary search: replies can hold thousands)."""
        found = []
        for token in self.tokens[bisect.bisect_left(self._token_starts, start) :]:
            if token.start >= end:
                break
            if token.end <= end:
                found.append(token)
        return found
