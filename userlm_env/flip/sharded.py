"""Flipped training conversations made from the env's own sharded tasks (train and test match).

Real chats (ShareGPT) teach a User LM to sound like a person; they do not teach it the job the env
gives it at run time: read a math problem in the system message (:func:`userlm_env.users.userlm.task_intent`,
the "You want the assistant to answer this question: ..." form), say the question, then one detail
per turn, and end the chat once the assistant has given the right answer. This module writes such
conversations from any math task source (procedural problems, GSM8K, LiC), to be flipped like real ones:

- the **intent** is exactly ``task_intent(task)``, the system message :class:`~userlm_env.users.userlm.UserLMUser`
  builds in the env, so the model is trained on the prompt it will see;
- **user turns**: turn 0 is the question (shard 1), each later turn the next shard, phrased with the
  replay user's templates (:data:`userlm_env.users.replay.FOLLOW_UP_TEMPLATES`); once every shard is
  out, a request for the answer (:data:`~userlm_env.users.replay.ALL_REVEALED_MESSAGES`) or, after a wrong
  answer, a short push-back;
- **assistant turns** (context only, never trained) are scripted and varied: clarifying questions,
  partial work, premature wrong guesses while details are missing, and finally the correct answer in
  one of several forms; some conversations get a wrong final answer first, then the right one;
- the conversation **ends right after the correct answer**, so :func:`~userlm_env.flip.flipping.flip_conversation`
  puts the ``<|endconversation|>`` target exactly there (and nowhere after a wrong answer).

Everything is a pure function of the task and a seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np

from userlm_env.flip.data import Conversation
from userlm_env.tasks.task import ShardedTask
from userlm_env.users.replay import ALL_REVEALED_MESSAGES, FOLLOW_UP_TEMPLATES, _lower_first
from userlm_env.users.userlm import task_intent

SHARDED_INTENT_METHOD = "task"
"""``meta["intent_method"]`` of sharded conversations: the env's own task intent."""

ASK_TEMPLATES = (
    "Sure, I can help. What else do you know about the problem?",
    "Could you give me more details about the problem?",
    "What else should I know about the problem?",
    "I need a bit more information to solve this. What are the numbers involved?",
    "Happy to help! Can you tell me the rest of the details?",
    "Okay. Is there anything else I should know?",
    "To answer that I need more information. What do we know so far?",
    "Got it. What other details are there?",
    "Thanks. Could you share the remaining facts?",
    "Let's work it out step by step. What happens next in the problem?",
)
NOTED_TEMPLATES = (
    "Got it, {shard_lc} Anything else?",
    "Okay, noted. What else?",
    "Thanks, that helps. Is there more information?",
    "Understood. Do you know anything else about it?",
    "Good to know. What's the next detail?",
)
GUESS_TEMPLATES = (
    "The answer is {wrong}.",
    "Based on what you said, the answer would be {wrong}.",
    "I think it's {wrong}.",
    "So far that gives {wrong}. Is that what you need?",
)
CORRECT_TEMPLATES = (
    "The answer is {answer}.",
    "Putting it all together, the answer is {answer}.",
    "Let me compute that. Combining all the details, we get {answer}. So the answer is {answer}.",
    "Great, now I have everything. The final answer is {answer}.",
    "Working through it step by step gives a total of {answer}. The answer is \\boxed{{{answer}}}.",
    "That comes to {answer}.",
    "So the answer is {answer}.",
)
WRONG_FINAL_TEMPLATES = (
    "The answer is {wrong}.",
    "Putting it all together, the answer is {wrong}.",
    "After the calculation I get {wrong}.",
)
PUSH_BACK_MESSAGES = (
    "Hmm, that doesn't look right. Can you check it again?",
    "Are you sure? Please double check the calculation.",
    "I don't think that's correct. Could you try again?",
    "That seems off. Can you recompute it with all the details?",
)
OPENING_TEMPLATES = ("{q}", "{q}", "{q}", "Hi! {q}", "Can you help me with a math problem? {q}", "Quick question: {q}")


def _wrong_answer(answer: str, rng: random.Random) -> str:
    """A plausible wrong number (never equal to ``answer``)."""
    try:
        value = float(answer.replace(",", ""))
    except ValueError:
        return str(rng.randint(2, 99))
    for _ in range(20):
        delta = rng.choice([-10, -3, -2, -1, 1, 2, 5, 10, 12]) if value == int(value) else rng.uniform(-5, 5)
        wrong = value + delta if rng.random() < 0.7 else value * rng.choice([2, 0.5, 3])
        if wrong != value and wrong > 0:
            return f"{wrong:g}"
    return f"{value + 1:g}"


def sharded_conversation(
    task: ShardedTask,
    seed: int,
    *,
    wrong_guess_prob: float = 0.25,
    wrong_final_prob: float = 0.2,
    ask_again_prob: float = 0.15,
    intent_template: str | None = None,
) -> Conversation:
    """A scripted conversation in which the user reveals ``task`` one shard per turn.

    Args:
        task: a math task (shard 1 the question).
        seed: all choices (templates, wrong guesses) follow from it.
        wrong_guess_prob: chance that an assistant reply while details are missing is a wrong answer
            attempt (the user then simply goes on with the next detail: no end).
        wrong_final_prob: chance of one wrong answer after every detail is out (the user pushes back).
        ask_again_prob: chance that the assistant asks for more after every detail is out (the user
            says that is all and asks for the answer).
        intent_template: passed to :func:`task_intent` (None = the env's template for the task's kind).

    Returns:
        A :class:`Conversation` with ``meta["intent"]`` (the env's intent), ``meta["intent_method"] = "task"``,
        ``meta["task_id"]`` and ``meta["answer"]``; it ends with the correct answer.
    """
    rng = random.Random(f"{task.task_id}|{seed}")
    answer = task.answer
    messages: list[dict] = [
        {"role": "user", "content": rng.choice(OPENING_TEMPLATES).format(q=task.shards[0].text)},
    ]
    for previous, shard in zip(task.shards, task.shards[1:]):
        if rng.random() < wrong_guess_prob:
            reply = rng.choice(GUESS_TEMPLATES).format(wrong=_wrong_answer(answer, rng))
        elif previous.shard_id > 1 and rng.random() < 0.3:
            reply = rng.choice(NOTED_TEMPLATES).format(shard_lc=_lower_first(previous.text).rstrip(".") + ".")
        else:
            reply = rng.choice(ASK_TEMPLATES)
        template = rng.choice(FOLLOW_UP_TEMPLATES)
        messages += [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": template.format(shard=shard.text, shard_lc=_lower_first(shard.text))},
        ]
    if rng.random() < ask_again_prob:
        messages += [
            {"role": "assistant", "content": rng.choice(ASK_TEMPLATES)},
            {"role": "user", "content": rng.choice(ALL_REVEALED_MESSAGES)},
        ]
    if rng.random() < wrong_final_prob:
        wrong = _wrong_answer(answer, rng)
        messages += [
            {"role": "assistant", "content": rng.choice(WRONG_FINAL_TEMPLATES).format(wrong=wrong)},
            {"role": "user", "content": rng.choice(PUSH_BACK_MESSAGES)},
        ]
    messages.append({"role": "assistant", "content": rng.choice(CORRECT_TEMPLATES).format(answer=answer)})
    intent = task_intent(task, intent_template)
    return Conversation(
        id=f"sharded:{task.task_id}|{seed}",
        messages=messages,
        source=f"sharded:{task.task_id.split('/')[0]}",
        meta={"intent": intent, "intent_method": SHARDED_INTENT_METHOD, "task_id": task.task_id, "answer": answer},
    )


def sharded_conversations(
    spec: str, count: int, seed: int = 0, *, env_id: str = "UserLM-Math-v0", **kwargs
) -> list[Conversation]:
    """``count`` conversations from the task source ``spec`` (any math spec the env takes), seeded.

    Tasks are drawn with ``numpy.random.default_rng([seed, 15])`` (the env draws its tasks from its own
    seed stream, so a training draw and an evaluation draw of ``procedural`` do not share tasks except by a
    2**-31 chance); a task drawn twice is kept once, so fewer than ``count`` can come back from a small source.
    """
    from userlm_env.envs import make_env_task_source

    source = make_env_task_source(env_id, spec)
    rng = np.random.default_rng([seed, 15])
    out, seen = [], set()
    for attempt in range(count * 3):
        if len(out) >= count:
            break
        task = source.sample(rng)
        if task.task_id in seen:
            continue
        seen.add(task.task_id)
        out.append(sharded_conversation(task, seed * 1_000_003 + attempt, **kwargs))
    return out


def parse_mix(mix: str) -> list[tuple[str, int]]:
    """``"sharegpt:400,procedural:400,gsm8k:PATH:200"`` -> ``[("sharegpt", 400), ("procedural", 400), ...]``.

    The count is after the last colon; ``sharegpt`` stands for the real conversations of ``--data``.

    Raises:
        ValueError: an entry without a non-negative integer count, or an empty mix.
    """
    out = []
    for part in (p.strip() for p in mix.split(",")):
        if not part:
            continue
        name, sep, count = part.rpartition(":")
        if not sep or not name or not count.strip().isdigit():
            raise ValueError(f"mix entry {part!r}: use SOURCE:COUNT (e.g. sharegpt:400, procedural:400)")
        out.append((name.strip(), int(count)))
    if not out:
        raise ValueError("empty --mix")
    return out


def iter_mix_tasks(mix: Sequence[tuple[str, int]]) -> Iterator[tuple[str, int]]:
    """The task-source entries of a parsed mix (everything except ``sharegpt``)."""
    for name, count in mix:
        if name not in ("sharegpt", "data"):
            yield name, count
