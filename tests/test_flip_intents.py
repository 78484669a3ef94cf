"""Intents: the cheap offline ones, the resumable JSONL cache, and a real LM writing them (slow)."""

from __future__ import annotations

import json

import pytest

from userlm_env.flip.data import Conversation
from userlm_env.flip.intents import (
    Intent,
    IntentCache,
    cheap_intent,
    clean_intent,
    get_intents,
    transcript,
    write_intents,
)


def conv(cid, *texts, meta=None):
    roles = ["user", "assistant"]
    msgs = [{"role": roles[i % 2], "content": t} for i, t in enumerate(texts)]
    return Conversation(id=cid, messages=msgs, source="test", meta=dict(meta or {}))


CONVS = [
    conv(
        "a",
        "How do I bake sourdough bread? My starter is weak.",
        "Feed it twice a day.",
        "What flour for bread?",
        "Bread flour.",
    ),
    conv("b", "Write a haiku about autumn leaves", "Leaves drift..."),
    conv("c", "fix my python code: def f(x) return x", "Add a colon.", meta={"intent": "You want your Python fixed."}),
]


def test_cheap_intents():
    """first-sentence takes the first sentence of the first user turn; keywords the frequent content words."""
    assert cheap_intent(CONVS[0], "first-sentence").text == "You want help with: How do I bake sourdough bread?"
    keywords = cheap_intent(CONVS[0], "keywords")
    assert keywords.method == "keywords" and "bread" in keywords.text.split(": ")[1].split(", ")[0]
    assert "How do I" not in keywords.text
    assert cheap_intent(CONVS[2], "data").text == "You want your Python fixed."
    with pytest.raises(ValueError, match="no 'intent' field"):
        cheap_intent(CONVS[1], "data")
    with pytest.raises(ValueError, match="unknown intent method"):
        cheap_intent(CONVS[1], "telepathy")
    data = get_intents(CONVS, "data")
    assert data["c"].method == "data" and data["a"].method == "first-sentence"
    with pytest.raises(ValueError, match="cache_path"):
        get_intents(CONVS, "lm")


def test_transcript_and_cleaning():
    """The writer sees Person/Assistant lines; its answer is reduced to one clean paragraph."""
    text = transcript(CONVS[0], max_chars_per_turn=20)
    assert text.splitlines()[0] == "Person: How do I bake sourdo..." and text.splitlines()[1].startswith("Assistant:")
    assert clean_intent('Intent: "You want to bake bread."\n\nExtra words') == "You want to bake bread."
    assert clean_intent("The person wants to know what AI is.") == "You want to know what AI is."


def test_cache_is_resumable(tmp_path):
    """Intents written once are reused: a second run sends only the missing conversations to the model."""
    calls: list[list[str]] = []

    def writer(prompts):
        calls.append(prompts)
        return [f"You want item {len(calls)}-{i}." for i in range(len(prompts))]

    path = tmp_path / "intents.jsonl"
    first = write_intents(CONVS[:2], writer, IntentCache(path), model="w", batch_size=1, progress=False)
    assert [len(c) for c in calls] == [1, 1] and first["a"].text == "You want item 1-0." and first["a"].method == "lm"
    cache = IntentCache(path)
    assert len(cache) == 2 and cache.get("b") == Intent("b", "You want item 2-0.", "lm", "w")
    again = write_intents(CONVS, writer, cache, model="w", batch_size=8, progress=False)
    assert len(calls) == 3 and len(calls[-1]) == 1  # only "c" was new
    assert again["a"] == first["a"] and again["c"].text == "You want item 3-0."
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["id"] for row in lines] == ["a", "b", "c"]
    # an empty generation falls back to the first sentence and is not cached (retried next time)
    fallback = write_intents(
        [conv("d", "Plan a trip to Rome. Cheap please.", "ok")], lambda p: [""], cache, progress=False
    )
    assert fallback["d"].method == "first-sentence" and "d" not in IntentCache(path)
    # a line cut by an interrupted write is skipped, not fatal
    with path.open("a") as handle:
        handle.write('{"id": "e", "text": "You wa')
    assert len(IntentCache(path)) == 3
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="not an intent record"):
        IntentCache(path)


@pytest.mark.slow
def test_smollm2_writes_intents_and_the_cache_resumes(tmp_path):
    """The bundled SmolLM2-135M writes an intent per conversation through the backend; a rerun reuses them."""
    path = tmp_path / "lm.jsonl"
    intents = get_intents(CONVS[:2], "lm", cache_path=path, writer_spec="smollm2-135m", progress=False)
    assert {i.method for i in intents.values()} <= {"lm", "first-sentence"}
    written = IntentCache(path)
    assert len(written) >= 1 and all(i.model == "smollm2-135m" and i.text for i in written.items.values())
    before = path.read_text()
    again = get_intents(CONVS[:2], "lm", cache_path=path, writer_spec="smollm2-135m", progress=False)
    assert path.read_text() == before and all(again[k] == intents[k] for k in written.items)
