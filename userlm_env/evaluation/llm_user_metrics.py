"""Optional LM-judged user-simulator metrics: role adherence and naturalness, on any backend.

The lexical metrics of :mod:`userlm_env.evaluation.user_metrics` are cheap and deterministic; a
judge LM reads style better. Each user turn is shown to the judge alone (no task, no chat) with a
one-word question:

- *role*: was this message written by the person or by the AI assistant? (role adherence = share
  judged USER),
- *naturalness*: does it read like a real person typing to a chatbot, or like polished machine
  text? (naturalness = share judged HUMAN).

Answers that are not one of the two words are counted as ``invalid`` and left out of the shares.
``complete`` is any ``complete(prompts) -> texts`` callable, e.g.
``TransformersBackend.from_spec(MODEL).chat_completer()`` or the same on an
:class:`~userlm_env.backends.http_backend.HTTPBackend` (a GPT-class judge behind an
OpenAI-compatible server).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

ROLE_PROMPT = (
    "Here is one message taken from a chat between a person and an AI assistant.\n\n"
    "Message:\n<<<\n{turn}\n>>>\n\n"
    "Who wrote this message: the person (USER) or the AI assistant (ASSISTANT)? "
    "Answer with exactly one word: USER or ASSISTANT."
)
NATURALNESS_PROMPT = (
    "Here is one message that someone typed to a chatbot.\n\n"
    "Message:\n<<<\n{turn}\n>>>\n\n"
    "Does it read like a real person typing (HUMAN), or like polished machine-written text (MACHINE)? "
    "Answer with exactly one word: HUMAN or MACHINE."
)
QUESTIONS = {
    "role_adherence": (ROLE_PROMPT, "USER", "ASSISTANT"),
    "naturalness": (NATURALNESS_PROMPT, "HUMAN", "MACHINE"),
}
_WORD = re.compile(r"[A-Za-z]+")
MAX_TURN_CHARS = 600


def parse_choice(text: str, positive: str, negative: str) -> bool | None:
    """True / False for the first of the two words in the judge's answer; None when neither appears."""
    for word in _WORD.findall(text.upper()):
        if word == positive:
            return True
        if word == negative:
            return False
    return None


def llm_user_metrics(
    turns: Sequence[str],
    complete: Callable[[list[str]], list[str]],
    *,
    max_turns: int = 100,
    batch_size: int = 16,
    seed: int = 0,
) -> dict[str, float]:
    """Role adherence and naturalness of user turns as judged by an LM.

    Args:
        turns: user turns (a seeded sample of ``max_turns`` is judged when there are more).
        complete: ``complete(prompts) -> texts``, batched.
        max_turns: at most this many turns are sent to the judge.
        batch_size: prompts per ``complete`` call.
        seed: seed of the sample.

    Returns:
        ``{"role_adherence", "naturalness", "judged", "role_adherence_invalid", "naturalness_invalid"}``;
        a share is NaN when every answer was invalid.
    """
    turns = [t for t in turns if t.strip()]
    if len(turns) > max_turns:
        turns = random.Random(seed).sample(list(turns), max_turns)
    result: dict[str, float] = {"judged": float(len(turns))}
    for name, (template, positive, negative) in QUESTIONS.items():
        prompts = [template.format(turn=t[:MAX_TURN_CHARS]) for t in turns]
        answers: list[str] = []
        for start in range(0, len(prompts), batch_size):
            answers += complete(prompts[start : start + batch_size])
        if len(answers) != len(prompts):
            raise ValueError(f"the judge returned {len(answers)} answers for {len(prompts)} prompts")
        choices = [parse_choice(a, positive, negative) for a in answers]
        valid = [c for c in choices if c is not None]
        result[name] = sum(valid) / len(valid) if valid else math.nan
        result[f"{name}_invalid"] = float(len(choices) - len(valid))
    return result


def judge_users(
    records: Sequence[Mapping[str, Any]],
    complete: Callable[[list[str]], list[str]],
    *,
    human_turns: Sequence[str] | None = None,
    human_name: str = "human",
    max_turns: int = 100,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """:func:`llm_user_metrics` for every user of the SHARDED episodes (and real human turns if given)."""
    turns_by_user: dict[str, list[str]] = {}
    for record in records:
        if record.get("error") or record.get("setting", "SHARDED") != "SHARDED":
            continue
        turns = [m["content"] for m in record.get("transcript") or [] if m.get("role") == "user"]
        turns_by_user.setdefault(str(record.get("user")), []).extend(turns)
    if human_turns:
        turns_by_user[human_name] = list(human_turns)
    return {
        name: llm_user_metrics(turns, complete, max_turns=max_turns, seed=seed)
        for name, turns in sorted(turns_by_user.items())
    }
