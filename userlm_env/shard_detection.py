"""Which shards of a task does a free-form user turn convey?

A user simulator that decides for itself what to say (UserLM) does not report which shard it
revealed, so the env detects it from the text. Rules (cheap and deterministic):

- A shard's *key numbers* are the numbers written in it (digits, or number words up to twenty and
  the tens, "half", "twice", "double", "triple"). A shard with key numbers is conveyed when every
  one of them appears in the turn and at least one of its content words does too.
- A shard without numbers is conveyed when at least :data:`WORD_COVERAGE` of its content words
  (lower-cased, stop words removed, plural ``s`` stripped) appear in the turn.
- Code in backticks (a signature, an example call and its expected value) must appear verbatim:
  "`stutter('guzv')` should return `'gggguuuuzzzzvvvv'`" is not conveyed by a turn that garbles
  the expected string.

:func:`fact_is_kept` is the same check used the other way round: does a rephrasing keep the fact?
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from userlm_env.tasks.task import ShardedTask

WORD_COVERAGE = 0.6
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[a-z]+")
_CODE = re.compile(r"`([^`]+)`")
NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "half": "0.5", "twice": "2", "double": "2", "triple": "3", "thrice": "3", "dozen": "12",
}  # fmt: skip
STOP_WORDS = frozenset(
    "a an the and or but if of to in on at for from by with as is are was were be been being has have had "
    "do does did it its it's he she they them their his her him i you we our my your me this that these those "
    "there here so then than also just only very much many more most some any each every how what which who "
    "whom when where why will would can could should may might must not no yes about into over after before "
    "up down out off again each per all both few other such own same too s t now".split()
)


def numbers_in(text: str) -> set[str]:
    """Canonical numbers written in ``text`` (digits and number words)."""
    found = set()
    for raw in _NUMBER.findall(text):
        value = raw.replace(",", "")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        found.add(value)
    for word in _WORD.findall(text.lower()):
        if word in NUMBER_WORDS:
            found.add(NUMBER_WORDS[word])
    return found


def content_words(text: str) -> set[str]:
    """Lower-cased words minus stop words and number words, plural ``s`` stripped."""
    words = set()
    for word in _WORD.findall(text.lower()):
        if word in STOP_WORDS or word in NUMBER_WORDS or len(word) < 2:
            continue
        words.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return words


def fact_is_kept(fact: str, text: str) -> bool:
    """Whether ``text`` conveys ``fact`` (see the module rules)."""
    if not all(code in text for code in _CODE.findall(fact)):
        return False
    key_numbers = numbers_in(fact)
    fact_words = content_words(fact)
    text_words = content_words(text)
    if key_numbers:
        return key_numbers <= numbers_in(text) and (not fact_words or bool(fact_words & text_words))
    if not fact_words:
        return False
    return len(fact_words & text_words) / len(fact_words) >= WORD_COVERAGE


def detect_revealed_shards(text: str, task: ShardedTask, already: Iterable[int] = ()) -> tuple[int, ...]:
    """Ids of the shards of ``task`` that ``text`` conveys and that were not revealed before."""
    seen = set(already)
    return tuple(s.shard_id for s in task.shards if s.shard_id not in seen and fact_is_kept(s.text, text))
