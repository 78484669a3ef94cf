"""The UserLM user: a model post-trained to write user turns (microsoft/UserLM-8b and kin).

The hidden task goes into the system message as the user's *intent*; the model's chat template
opens a ``user`` turn after the conversation; generation stops at ``<|eot_id|>``; a turn made of
``<|endconversation|>`` ends the episode. The model decides how and when to reveal the task, and
the env detects which shards each turn conveyed (:mod:`userlm_env.shard_detection`).

Guardrails from the paper's evaluations, each configurable in :class:`UserLMConfig`:

- banned first tokens (``"I"``, ``"You"``, ``"Here"``: assistant-like openers);
- ``<|endconversation|>`` forbidden before ``min_turns_before_end`` user turns;
- resample a turn that is too short or too long (in words);
- resample a turn that repeats an earlier user turn verbatim or copies the intent.

After ``max_resamples`` failed samples the last one is kept and the failure is recorded in
``UserTurn.meta["guardrail_failures"]``.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from userlm_env.backends.base import Backend, Generation, GenerationRequest, SamplingParams
from userlm_env.tasks.task import ShardedTask
from userlm_env.users.base import UserRequest, UserSimulator, UserTurn, sample_until_accepted
from userlm_env.users.template import (
    DEFAULT_SEPARATOR,
    END_CONVERSATION,
    END_OF_TURN,
    has_userlm_template,
    userlm_chat_template,
)

DEFAULT_USERLM = "microsoft/UserLM-8b"
INTENT_TEMPLATE = (
    "You are a user chatting with an AI assistant to get help with a math word problem. "
    "You want the assistant to answer this question: {question}\n"
    "The details you know, which you share bit by bit as the conversation goes:\n{details}\n"
    "You do not know the answer yourself. End the conversation once the assistant has given you an answer."
)
CODE_INTENT_TEMPLATE = (
    "You are a user chatting with an AI assistant to get a Python function written. "
    "What you want: {question}\n"
    "The requirements you know, which you share bit by bit as the conversation goes:\n{details}\n"
    "You do not write the code yourself. End the conversation once the assistant has given you the function."
)
INTENT_TEMPLATES = {"math": INTENT_TEMPLATE, "code": CODE_INTENT_TEMPLATE}


def task_intent(task: ShardedTask, template: str | None = None) -> str:
    """The intent (system message) for ``task``: its question and every detail as a list.

    ``template`` defaults to the one for the task's kind (:data:`INTENT_TEMPLATES`: math, code).
    """
    template = template or INTENT_TEMPLATES.get(task.kind, INTENT_TEMPLATE)
    details = "\n".join(f"- {s.text}" for s in task.shards[1:]) or "- (none)"
    return template.format(question=task.shards[0].text, details=details, instruction=task.instruction)


@dataclass(frozen=True)
class UserLMConfig:
    """Settings of :class:`UserLMUser` (the paper's guardrails, all optional).

    Attributes:
        sampling: UserLM-8b's generation config: temperature 0.6, top-p 0.9.
        banned_first_words: words whose first token may not start a turn (None or () disables).
        min_turns_before_end: user turns that must be written before ``<|endconversation|>`` is allowed.
        min_words: shorter turns are resampled (an end-of-conversation turn is exempt).
        max_words: longer turns are resampled.
        max_attempts: samples per turn (the first and the resamples when a guardrail fails); the last
            sample is kept when every one fails (``meta["accepted"]`` is False).
        max_resamples: deprecated: ``max_attempts - 1``.
        block_repeats: resample a turn equal to an earlier user turn.
        max_intent_similarity: resample a turn this similar (difflib ratio) to the intent; 1 disables.
        separator: header/content separator of the fallback template (used when the tokenizer has no
            UserLM template of its own).
        intent_template: how a task becomes the intent (``{question}``, ``{details}``, ``{instruction}``);
            None = the template for the task's kind (:data:`INTENT_TEMPLATES`).
    """

    sampling: SamplingParams = SamplingParams(max_new_tokens=96, temperature=0.6, top_p=0.9)
    banned_first_words: tuple[str, ...] = ("I", "You", "Here")
    min_turns_before_end: int = 1
    min_words: int = 3
    max_words: int = 25
    max_attempts: int = 4
    block_repeats: bool = True
    max_intent_similarity: float = 0.8
    separator: str = DEFAULT_SEPARATOR
    intent_template: str | None = None
    max_resamples: int | None = None

    def __post_init__(self) -> None:
        if self.max_resamples is not None:
            warnings.warn(
                "UserLMConfig(max_resamples=k) is deprecated: use max_attempts=k + 1 (as PromptedUserConfig)",
                FutureWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "max_attempts", self.max_resamples + 1)
        if not 0 < self.min_words <= self.max_words:
            raise ValueError(f"need 0 < min_words <= max_words, got {self.min_words} and {self.max_words}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 < self.max_intent_similarity <= 1:
            raise ValueError(f"max_intent_similarity must be in (0, 1], got {self.max_intent_similarity}")


class UserLMUser(UserSimulator):
    """A User LM writing user turns from the task given as its intent.

    Args:
        backend: generation backend of the User LM. Its tokenizer must know ``<|eot_id|>``;
            ``<|endconversation|>`` is optional (without it the user never ends the chat).
        config: guardrails and sampling.
        name: label for logs.

    Raises:
        ValueError: the tokenizer has no ``<|eot_id|>`` token (not a Llama-3-style User LM).
    """

    deterministic = True

    def __init__(self, backend: Backend, config: UserLMConfig | None = None, name: str = DEFAULT_USERLM):
        self.backend = backend
        self.config = config or UserLMConfig()
        self.name = name
        tokenizer = backend.tokenizer
        self.eot_id = backend.token_id(END_OF_TURN)
        if self.eot_id is None:
            raise ValueError(
                f"{name}: the tokenizer has no {END_OF_TURN} token, so it is not a UserLM-style model; "
                "use user='prompted:MODEL' for ordinary chat models"
            )
        self.end_id = backend.token_id(END_CONVERSATION)
        self.chat_template = None if has_userlm_template(tokenizer) else userlm_chat_template(self.config.separator)
        self.banned_first = self._first_token_ids(self.config.banned_first_words or ())

    def _first_token_ids(self, words: Sequence[str]) -> tuple[int, ...]:
        """Ids of the banned opening words.

        A word that is not a single token (with or without a leading space) is skipped, since banning
        its first sub-token would ban many other words too.
        """
        ids = set()
        for word in words:
            for variant in (word, " " + word):
                encoded = self.backend.tokenizer.encode(variant, add_special_tokens=False)
                if len(encoded) == 1:
                    ids.add(int(encoded[0]))
        return tuple(sorted(ids))

    def messages(self, request: UserRequest) -> list[dict[str, str]]:
        """The conversation as the User LM sees it: the intent as system message, then the chat."""
        intent = task_intent(request.task, self.config.intent_template)
        return [{"role": "system", "content": intent}, *request.conversation]

    def _violation(self, request: UserRequest, generation: Generation, text: str, ended: bool) -> str | None:
        if ended:
            return None
        words = len(text.split())
        if words < self.config.min_words:
            return f"too short ({words} words)"
        if words > self.config.max_words:
            return f"too long ({words} words)"
        if self.config.block_repeats:
            earlier = {m["content"].strip().lower() for m in request.conversation if m["role"] == "user"}
            if text.strip().lower() in earlier:
                return "repeats an earlier user turn"
        if self.config.max_intent_similarity < 1:
            intent = task_intent(request.task, self.config.intent_template)
            if difflib.SequenceMatcher(None, text.lower(), intent.lower()).ratio() >= self.config.max_intent_similarity:
                return "copies the intent"
        return None

    def _parse(self, generation: Generation) -> tuple[str, bool]:
        ended = self.end_id is not None and self.end_id in generation.token_ids
        text = generation.text.replace(END_CONVERSATION, "").strip()
        return text, ended

    def respond_batch(self, requests: Sequence[UserRequest]) -> list[UserTurn]:
        """Sample each request's turn, resampling (batched) the ones that fail a guardrail."""
        stops = [self.eot_id] + ([self.end_id] if self.end_id is not None else [])
        prompts = [self.backend.render(self.messages(r), chat_template=self.chat_template) for r in requests]

        def make_request(i: int, seed: int) -> GenerationRequest:
            may_end = requests[i].turn >= self.config.min_turns_before_end or self.end_id is None
            banned = () if may_end else (self.end_id,)
            return GenerationRequest(
                prompts[i], seed, banned_first_token_ids=self.banned_first, banned_token_ids=banned
            )

        sampled = sample_until_accepted(
            self.backend,
            requests,
            make_request,
            lambda i, generation: self._violation(requests[i], generation, *self._parse(generation)),
            max_attempts=self.config.max_attempts,
            params=self.config.sampling,
            stop_token_ids=stops,
        )
        turns = []
        for outcome in sampled:  # after max_attempts failures the last sample is kept (accepted: False)
            text, ended = self._parse(outcome.generation)
            meta = {
                "attempts": outcome.attempts,
                "guardrail_failures": outcome.rejections,
                "accepted": outcome.accepted,
            }
            turns.append(UserTurn(text=text, ended=ended, revealed=None, meta=meta))
        return turns
