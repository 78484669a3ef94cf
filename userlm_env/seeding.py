"""Deriving seeds: every seed the package makes from other seeds comes from :func:`derive_seed`.

A derived seed is a pure function of a named stream and integer keys (NumPy's ``SeedSequence``
hashes them), so streams never collide by accident (``user_seed + 104729 * turn`` and
``seed * 7919 + attempt`` could) and a seed does not depend on anything but its keys: an episode's
tokens depend only on its own seeds, whichever batch or process it runs in.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["SEED_SPACE", "derive_seed", "derive_seeds"]

SEED_SPACE = 2**31 - 1
"""Seeds are ints in ``[0, SEED_SPACE)`` (what ``torch.Generator`` and every backend accept)."""


def _entropy(stream: str, keys: tuple[int, ...]) -> list[int]:
    return [zlib.crc32(stream.encode()), *(int(k) % 2**64 for k in keys)]


def derive_seeds(n: int, stream: str, *keys: int) -> list[int]:
    """``n`` seeds of the stream ``stream`` for ``keys`` (e.g. ``derive_seeds(8, "ppo-iteration", seed, it)``)."""
    state = np.random.SeedSequence(_entropy(stream, keys)).generate_state(n, dtype=np.uint64)
    return [int(s) % SEED_SPACE for s in state]


def derive_seed(stream: str, *keys: int) -> int:
    """One seed of the stream ``stream`` for ``keys`` (e.g. ``derive_seed("user-turn", user_seed, turn)``).

    >>> derive_seed("user-turn", 7, 2) == derive_seed("user-turn", 7, 2) != derive_seed("user-turn", 7, 3)
    True
    """
    return derive_seeds(1, stream, *keys)[0]
