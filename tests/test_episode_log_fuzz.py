"""Property tests of the episode-log reader: whatever a crash, a stray writer or a bad disk leaves in
the file, reading never raises, every complete valid record comes back exactly once, every other
non-blank line is reported by its line number, and a resumed log loses nothing valid."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from userlm_env.episode_log import EpisodeLog, read_log

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# JSON values a record may hold: any text (lone surrogates and U+2028 included), numbers, nesting.
_chars = st.characters(exclude_categories=()) | st.sampled_from("\ud800\udfff\u2028\x85\r\n\x00é東")
_text = st.text(_chars, max_size=30)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_records = st.dictionaries(st.text(_chars, max_size=8), _values, max_size=5)


def _roundtrip(record: dict) -> dict:
    """What JSON gives back for a record (a high + low surrogate written apart read back as one character)."""
    return json.loads(json.dumps(record))


def _is_record(line: bytes) -> bool:
    """Whether a line (without its newline) is a complete valid record: an object with a str episode_key."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and isinstance(value.get("episode_key"), str)


# Garbage: random bytes, truncated records, non-object JSON, key-less objects (never a valid record, never blank).
_garbage = (
    st.one_of(
        st.binary(min_size=1, max_size=60),
        _records.map(lambda r: json.dumps({"episode_key": "k", **r}).encode()[:-1]),
        _values.map(lambda v: json.dumps(v).encode()),
        _records.map(lambda r: json.dumps({k: v for k, v in r.items() if k != "episode_key"}).encode()),
        _text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
    .map(lambda b: b.replace(b"\n", b" "))
    .filter(lambda b: b.strip() != b"" and not _is_record(b))
)


@st.composite
def _log_files(draw):
    """(file bytes, the valid records in order, the line numbers of the garbage lines)."""
    items = draw(st.lists(st.one_of(_records.map(lambda r: ("record", r)), _garbage.map(lambda g: ("garbage", g)))))
    lines, records, garbage = [], [], []
    for number, (kind, item) in enumerate(items, start=1):
        if kind == "record":
            record = {**item, "episode_key": f"key-{number}"}
            lines.append(json.dumps(record, ensure_ascii=True).encode())
            records.append(_roundtrip(record))
        else:
            lines.append(item)
            garbage.append(number)
    data = b"\n".join(lines)
    if lines and (kind == "record" or draw(st.booleans())):
        data += b"\n"
    return data, records, garbage


@FUZZ
@given(data=st.binary(max_size=400))
def test_reading_arbitrary_bytes_never_raises(tmp_path, data):
    path = tmp_path / "log.jsonl"
    path.write_bytes(data)
    contents = read_log(path)
    lines = data.split(b"\n")
    valid = [i for i, line in enumerate(lines, start=1) if _is_record(line)]
    assert len(contents.records) + len(contents.problems) == sum(1 for line in lines if line.strip())
    assert len(contents.records) == len({json.loads(lines[i - 1])["episode_key"] for i in valid})
    assert all(1 <= p.line <= len(lines) for p in contents.problems)


@FUZZ
@given(log=_log_files())
def test_valid_records_come_back_once_and_garbage_is_reported(tmp_path, log):
    data, records, garbage = log
    path = tmp_path / "log.jsonl"
    path.write_bytes(data)
    contents = read_log(path)
    assert contents.records == records
    assert [p.line for p in contents.problems] == garbage


@FUZZ
@given(log=_log_files(), new=_records)
def test_resume_then_append_loses_nothing_valid(tmp_path, log, new):
    data, records, _ = log
    path = tmp_path / "log.jsonl"
    path.write_bytes(data)
    record = {**new, "episode_key": "new"}
    with EpisodeLog(path, resume=True, warn=False) as resumed:
        assert resumed.records == records
        resumed.append(record)
    again = read_log(path)
    assert again.records == [*records, _roundtrip(record)]
    assert path.read_bytes().startswith(data[: data.rfind(b"\n") + 1])  # append-only: complete lines untouched
