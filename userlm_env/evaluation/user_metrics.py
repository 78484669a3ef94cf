"""How realistic is a user simulator? Cheap, deterministic metrics computed from transcripts.

The metrics follow *Flipping the Dialogue* (first-turn diversity, intent decomposition, dialogue
termination, role adherence, intent adherence) and *Lost in Conversation* (shards revealed per
turn, intent coverage), in lexical versions that need no model:

- :func:`first_turn_diversity`: across runs of the same task (a *group*), how many first turns
  are unique, and distinct-n (unique n-grams / all n-grams) of the first turns.
- :func:`intent_decomposition`: share of the hidden intent's content words (and numbers) that the
  first turn already says. A user who pastes the whole task scores 1; a real user ~0.2-0.5.
- :func:`first_turn_share`: the same against everything the user says over the whole chat
  (usable for real human conversations, which have no written intent).
- :func:`looks_like_assistant`: a user turn that reads like an assistant (offers help, solves,
  explains step by step). Role adherence = share of user turns where it is False.
- :func:`termination_scores`: precision / recall / F1 of "the user ends the conversation" against
  the ground truth "the task is done".
- :func:`is_repeated_demand`, :func:`added_numbers`: a user turn that says again what an earlier one
  said, or that brings numbers the task does not contain (invented constraints).
- :func:`intent_overlap`: share of a turn's content words found in the intent (intent adherence).
- :func:`turn_length_stats`: words per turn.
- :func:`closes_conversation`: the user's last turn closes the chat (thanks, bye, never mind); its
  share over chats (``closing_share``) is "who ends" for real chats, where the user just stops.

:func:`user_metrics_from_episodes` aggregates all of them over env episode records (the JSONL
lines of :mod:`userlm_env.rollout`); :func:`user_metrics_from_conversations` over plain chats
(e.g. real ShareGPT conversations: the human reference row).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from userlm_env.episode_types import EndReason
from userlm_env.evaluation.records import opening_shards, user_turns
from userlm_env.shard_detection import content_words, numbers_in

_TOKEN = re.compile(r"\w+|[^\w\s]")
_DIGITS = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d*[1-9])?")

ASSISTANT_OPENERS = (
    "sure",
    "certainly",
    "of course",
    "absolutely",
    "great question",
    "here is",
    "here's",
    "here are",
    "i'd be happy",
    "i would be happy",
    "i can help",
    "i'm happy to help",
    "as an ai",
    "hello! how can i",
    "hi! how can i",
    "to solve",
    "let's solve",
    "let's break",
    "let me solve",
    "let me help",
)
ASSISTANT_PHRASES = (
    "how can i help",
    "how can i assist",
    "let me know if you",
    "feel free to ask",
    "i hope this helps",
    "hope this helps",
    "is there anything else",
    "as an ai",
    "as a language model",
    "the answer is",
    "step 1:",
    "step 1.",
    "\\boxed",
    "therefore, the",
    "in conclusion",
)
_USER_SPOKE = (None, EndReason.USER_ENDED, EndReason.USER_GAVE_UP)  # steps the user answered
CLOSING = re.compile(
    r"\b(thanks?|thank you|thx|ty|bye|goodbye|that'?s all|that is all|never ?mind|nvm|forget it"
    r"|perfect|great|awesome)\b"
)
CLOSING_MAX_WORDS = 12
_EQUATION = re.compile(r"\d\s*[-+*/x×÷]\s*\d[\d.,]*\s*=\s*\$?\d")


def tokens(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens (for n-gram statistics)."""
    return _TOKEN.findall(text.lower())


def _ngrams(toks: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Unique n-grams / all n-grams over ``texts`` (NaN when there are no n-grams)."""
    grams = [g for text in texts for g in _ngrams(tokens(text), n)]
    return len(set(grams)) / len(grams) if grams else math.nan


def first_turn_diversity(first_turns_by_group: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Diversity of first turns: per group (runs of one task), then averaged over groups.

    Returns ``unique_first_turns`` (share of distinct first turns among a group's runs: 1/N when
    the simulator always opens the same way), ``distinct_1/2/3`` within groups, and
    ``pooled_distinct_2`` over every first turn of every group (diversity across tasks too).
    Groups with a single first turn count for the pooled value only.
    """
    per_group: dict[str, list[float]] = defaultdict(list)
    for turns in first_turns_by_group.values():
        turns = [t.strip() for t in turns]
        if len(turns) < 2:
            continue
        per_group["unique_first_turns"].append(len(set(turns)) / len(turns))
        for n in (1, 2, 3):
            value = distinct_n(turns, n)
            if not math.isnan(value):
                per_group[f"distinct_{n}"].append(value)
    everything = [t for turns in first_turns_by_group.values() for t in turns]
    result = {
        key: float(np.mean(per_group[key])) if per_group[key] else math.nan
        for key in ("unique_first_turns", "distinct_1", "distinct_2", "distinct_3")
    }
    result["pooled_distinct_2"] = distinct_n(everything, 2)
    result["groups"] = float(sum(1 for turns in first_turns_by_group.values() if len(turns) >= 2))
    return result


def _facts(text: str) -> set[str]:
    """Content words and numbers of a text: the units of information the lexical metrics count."""
    return content_words(text) | {f"#{n}" for n in numbers_in(text)}


def intent_decomposition(first_turn: str, intent: str) -> float:
    """Share of the intent's content words and numbers already present in the first turn (0..1).

    High = the user states the whole task at once (little decomposition); NaN for an empty intent.
    """
    wanted = _facts(intent)
    if not wanted:
        return math.nan
    return len(wanted & _facts(first_turn)) / len(wanted)


def first_turn_share(user_turns: Sequence[str]) -> float:
    """Share of everything the user says over the chat (content words, numbers) said in the first turn."""
    if not user_turns:
        return math.nan
    return intent_decomposition(user_turns[0], " ".join(user_turns))


def intent_overlap(text: str, intent: str) -> float:
    """Share of the text's content words and numbers that come from the intent (NaN for an empty text)."""
    said = _facts(text)
    if not said:
        return math.nan
    return len(said & _facts(intent)) / len(said)


def looks_like_assistant(turn: str) -> bool:
    """Whether a *user* turn reads like an assistant's: it offers help, explains, or solves the task."""
    text = " ".join(turn.lower().split())
    if not text:
        return False
    if text.startswith(ASSISTANT_OPENERS) or any(p in text for p in ASSISTANT_PHRASES):
        return True
    if len(_EQUATION.findall(text)) >= 2:  # works the problem out
        return True
    lowered = turn.lower()
    numbered_steps = re.search(r"(^|\n)\s*(1\.|first,)", lowered) and re.search(r"(^|\n)\s*(2\.|then,|next,)", lowered)
    return bool(numbered_steps)


def closes_conversation(turn: str) -> bool:
    """Whether a user turn closes the chat: short (<= 12 words) and thanks / says bye / gives up."""
    text = turn.lower()
    return len(text.split()) <= CLOSING_MAX_WORDS and bool(CLOSING.search(text))


def termination_scores(predicted: Sequence[bool], actual: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of ending the conversation (positive class: "end now").

    ``predicted[i]``: the user ended at decision point i; ``actual[i]``: it should have (the task
    was done). Undefined ratios (no predicted or no actual endings) are 0, as in scikit-learn's
    ``zero_division=0``; the counts are returned too so that such cases can be told apart.
    """
    if len(predicted) != len(actual):
        raise ValueError(f"predicted and actual differ in length: {len(predicted)} vs {len(actual)}")
    tp = sum(1 for p, a in zip(predicted, actual) if p and a)
    fp = sum(1 for p, a in zip(predicted, actual) if p and not a)
    fn = sum(1 for p, a in zip(predicted, actual) if a and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "decisions": float(len(predicted)),
        "should_end": float(tp + fn),
        "ended": float(tp + fp),
    }


def is_repeated_demand(turn: str, earlier_turns: Sequence[str], threshold: float = 0.8) -> bool:
    """Whether a turn mostly says again what one earlier user turn said (>= ``threshold`` of its facts)."""
    facts = _facts(turn)
    if not facts:
        return False
    return any(len(facts & _facts(earlier)) / len(facts) >= threshold for earlier in earlier_turns)


def added_numbers(turn: str, intent: str) -> set[str]:
    """Numbers written with digits in a user turn that the intent does not contain (an invented value).

    Number words are left out: "one more thing" is not a demand.
    """
    return {n.replace(",", "") for n in _DIGITS.findall(turn)} - numbers_in(intent)


def turn_length_stats(turns: Sequence[str]) -> dict[str, float]:
    """Words per turn: mean, median, 90th percentile, and the share of empty turns."""
    if not turns:
        return {"mean_words": math.nan, "median_words": math.nan, "p90_words": math.nan, "empty_share": math.nan}
    words = np.array([len(t.split()) for t in turns], dtype=float)
    return {
        "mean_words": float(words.mean()),
        "median_words": float(np.median(words)),
        "p90_words": float(np.percentile(words, 90)),
        "empty_share": float(np.mean(words == 0)),
    }


def _mean(values: Iterable[float]) -> float:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def user_metrics_from_conversations(
    conversations: Sequence[Sequence[Mapping[str, str]]],
    *,
    groups: Sequence[str] | None = None,
    intents: Sequence[str | None] | None = None,
) -> dict[str, float]:
    """Metrics that need nothing but the chats (the human reference row uses these).

    Args:
        conversations: chats as lists of ``{"role", "content"}`` messages.
        groups: a group name per chat (runs of the same task share one); default: one group.
        intents: the user's intent per chat when known (intent decomposition / adherence).
    """
    groups = list(groups) if groups is not None else ["all"] * len(conversations)
    intents = list(intents) if intents is not None else [None] * len(conversations)
    first_by_group: dict[str, list[str]] = defaultdict(list)
    all_turns: list[str] = []
    decomposition, share, adherence, repeated, assistant_like, turns_per_chat = [], [], [], [], [], []
    closing = []
    for chat, group, intent in zip(conversations, groups, intents):
        turns = user_turns(chat)
        if not turns:
            continue
        first_by_group[group].append(turns[0])
        all_turns += turns
        turns_per_chat.append(len(turns))
        share.append(first_turn_share(turns))
        closing.append(len(turns) > 1 and closes_conversation(turns[-1]))
        assistant_like += [looks_like_assistant(t) for t in turns]
        repeated += [is_repeated_demand(t, turns[:i]) for i, t in enumerate(turns) if i > 0]
        if intent:
            decomposition.append(intent_decomposition(turns[0], intent))
            adherence += [intent_overlap(t, intent) for t in turns]
    diversity = first_turn_diversity(first_by_group)
    return {
        "conversations": float(len(turns_per_chat)),
        "user_turns_per_chat": _mean(turns_per_chat),
        "first_turn_unique": diversity["unique_first_turns"],
        "first_turn_distinct_2": diversity["distinct_2"],
        "first_turn_pooled_distinct_2": diversity["pooled_distinct_2"],
        "intent_decomposition": _mean(decomposition),
        "first_turn_share": _mean(share),
        "intent_adherence": _mean(adherence),
        "role_adherence": 1.0 - _mean(assistant_like) if assistant_like else math.nan,
        "repeated_demands": _mean(repeated),
        "closing_share": _mean(closing),
        **{f"turn_{k}": v for k, v in turn_length_stats(all_turns).items()},
    }


def user_metrics_from_episodes(
    records: Sequence[Mapping[str, Any]], *, termination_probes: Sequence[bool] | None = None
) -> dict[str, float]:
    """All user-simulator metrics over env episode records (errors are skipped).

    On top of :func:`user_metrics_from_conversations` (groups = task ids, intent = the task's full
    instruction when the record has it): ``first_turn_shards`` (share of shards the opening reveals),
    ``shards_per_user_turn``, ``intent_coverage`` (share revealed by the end), ``added_number_turns``
    (share of user turns with numbers not in the task), ``user_end_rate``, and termination
    precision/recall/F1. Decision points for termination: every user turn after an assistant reply
    (should end = that reply was correct). The env ends the episode on a correct answer before the
    user speaks, so the positive decisions come from ``termination_probes``: for each episode that
    ended with a correct answer (in record order), whether the user, asked for one more turn, ended.
    """
    ok = [r for r in records if not r.get("error") and r.get("transcript")]
    base = user_metrics_from_conversations(
        [r["transcript"] for r in ok],
        groups=[str(r.get("task_id")) for r in ok],
        intents=[r.get("instruction") for r in ok],
    )
    first_shards, per_turn, coverage, added, ended = [], [], [], [], []
    predicted: list[bool] = []
    actual: list[bool] = []
    probes = iter(termination_probes or ())
    for r in ok:
        num_shards = max(1, int(r.get("num_shards") or 1))
        opening = opening_shards(r)
        first_shards.append(len(opening) / num_shards)
        steps = r.get("steps") or []
        user_said = [len(opening)] + [
            len(s.get("new_shards") or []) for s in steps if s.get("end_reason") in _USER_SPOKE
        ]
        per_turn.append(float(np.mean(user_said)))
        coverage.append(r.get("shards_revealed", 0) / num_shards)
        intent = r.get("instruction")
        if intent:
            added += [bool(added_numbers(t, intent)) for t in user_turns(r["transcript"])]
        ended.append(bool(steps and steps[-1].get("user_ended")))
        for step in steps:
            if step.get("end_reason") in _USER_SPOKE:  # the user answered this reply
                predicted.append(bool(step.get("user_ended")))
                actual.append(bool(step.get("correct")))
        if r.get("end_reason") == EndReason.CORRECT_ANSWER and termination_probes is not None:
            probe = next(probes, None)
            if probe is not None:
                predicted.append(bool(probe))
                actual.append(True)
    termination = termination_scores(predicted, actual)
    return {
        **base,
        "first_turn_shards": _mean(first_shards),
        "shards_per_user_turn": _mean(per_turn),
        "intent_coverage": _mean(coverage),
        "added_number_turns": _mean(added),
        "user_end_rate": _mean(ended),
        "termination_precision": termination["precision"],
        "termination_recall": termination["recall"],
        "termination_f1": termination["f1"],
        "termination_should_end": termination["should_end"],
    }
