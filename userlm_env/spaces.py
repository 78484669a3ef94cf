"""Gymnasium spaces for chat environments: a conversation (observation) and a reply (action).

Gymnasium's built-in ``Text`` accepts only characters from a fixed charset and ``Sequence``/``Dict``
reject a list of chat dicts, so these two small spaces describe what LLM envs really exchange.
Both compare equal by their parameters (``SyncVectorEnv`` requires equal sub-env spaces).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Space

ROLES = ("system", "user", "assistant")
SAMPLE_REPLIES = (
    "Could you tell me a bit more about the problem?",
    "What numbers are involved?",
    "Let me think about it step by step.",
    "The answer is 42.",
    "I need more information to solve this.",
)


class Reply(Space[str]):
    """An assistant reply: any ``str`` (Unicode, empty included) of at most ``max_length`` characters.

    Longer strings are still *accepted* by the env (it truncates them, see the env docs); ``contains``
    reports whether a string is within the declared bound.

    Args:
        max_length: the declared maximum length in characters.
        seed: seed of ``sample``.

    Example:
        >>> Reply(100).contains("The answer is 5.")
        True
    """

    def __init__(self, max_length: int = 8000, seed: int | np.random.Generator | None = None):
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.max_length = max_length
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Text is not flattenable to a numpy array."""
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A short canned reply (question, hedge or answer)."""
        return SAMPLE_REPLIES[int(self.np_random.integers(len(SAMPLE_REPLIES)))]

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a string of at most ``max_length`` characters."""
        return isinstance(x, str) and len(x) <= self.max_length

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reply) and other.max_length == self.max_length

    def __repr__(self) -> str:
        return f"Reply(max_length={self.max_length})"


class Conversation(Space[list]):
    """A chat: a list of ``{"role", "content"}`` dicts (OpenAI format), roles in :data:`ROLES`.

    Args:
        max_messages: the most messages a conversation may hold.
        seed: seed of ``sample``.

    Example:
        >>> Conversation(10).contains([{"role": "user", "content": "hi ☺"}])
        True
    """

    def __init__(self, max_messages: int = 256, seed: int | np.random.Generator | None = None):
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        self.max_messages = max_messages
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """A conversation is not flattenable to a numpy array."""
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, str]]:
        """A short alternating user/assistant chat that starts and ends with the user."""
        turns = 2 * int(self.np_random.integers(0, min(3, (self.max_messages - 1) // 2 + 1))) + 1
        return [
            {"role": "user" if i % 2 == 0 else "assistant", "content": SAMPLE_REPLIES[i % len(SAMPLE_REPLIES)]}
            for i in range(turns)
        ]

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a list of role/content string dicts with known roles."""
        return (
            isinstance(x, list)
            and len(x) <= self.max_messages
            and all(
                isinstance(m, dict)
                and set(m) == {"role", "content"}
                and m["role"] in ROLES
                and isinstance(m["content"], str)
                for m in x
            )
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Conversation) and other.max_messages == self.max_messages

    def __repr__(self) -> str:
        return f"Conversation(max_messages={self.max_messages})"
