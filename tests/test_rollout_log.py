"""Episode logs (append, resume, crash recovery), batched rollouts, and the ``userlm-env rollout`` CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agents import make_assistant
from agents.base import Assistant
from userlm_env.cli import app
from userlm_env.envs.math_env import UserLMMathEnv
from userlm_env.episode_log import EpisodeLog, EpisodeLogWarning
from userlm_env.rewards import COMPONENTS
from userlm_env.rollout import run_episodes, summarize

SEEDS = [0, 1, 2, 3, 4, 5]
# Fields of a record that must not depend on batching (everything but wall-clock time).
STABLE_FIELDS = (
    "episode_key", "episode", "seed", "task_id", "num_shards", "transcript", "steps", "return", "score", "turns",
    "shards_revealed", "end_reason", "terminated", "truncated", "component_totals", "error",
)  # fmt: skip


def make_env() -> UserLMMathEnv:
    """A replay-user env on procedural tasks."""
    return UserLMMathEnv(user="replay", tasks="procedural", max_turns=10)


def by_seed(records):
    """Records keyed by seed, with only the batching-independent fields."""
    return {r["seed"]: {k: r[k] for k in STABLE_FIELDS} for r in records}


def flat(text: str) -> str:
    """Text with all whitespace runs collapsed (rich wraps long lines at the terminal width)."""
    return " ".join(text.split())


def lines(path):
    """The non-empty lines of a file."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------- EpisodeLog


def test_log_append_and_resume(tmp_path):
    """Appended records are one JSON line each; a resumed log reads them back and knows their keys."""
    path = tmp_path / "sub" / "log.jsonl"
    with EpisodeLog(path) as log:
        log.append({"episode_key": "seed=0", "score": 1.0, "text": "東京"})
        log.append({"episode_key": "seed=1", "score": 0.0})
    assert [json.loads(line)["episode_key"] for line in lines(path)] == ["seed=0", "seed=1"]
    with EpisodeLog(path, resume=True) as resumed:
        assert resumed.done_keys == {"seed=0", "seed=1"} and resumed.corrupt_lines == 0
        assert resumed.records[0]["text"] == "東京"
        resumed.append({"episode_key": "seed=2"})
    assert len(lines(path)) == 3


def test_log_existing_file_without_resume_raises(tmp_path):
    """Opening a non-empty log without resume or overwrite raises FileExistsError mentioning --resume."""
    path = tmp_path / "log.jsonl"
    with EpisodeLog(path) as log:
        log.append({"episode_key": "a"})
    with pytest.raises(FileExistsError, match="--resume"):
        EpisodeLog(path)
    with EpisodeLog(path, overwrite=True) as fresh:
        assert fresh.records == [] and path.read_bytes() == b""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with EpisodeLog(empty) as log:
        assert log.records == []  # an empty file is no obstacle


def test_log_drops_cut_off_last_line(tmp_path):
    """A last line cut off by a crash is dropped and counted; the next record starts on a clean line."""
    path = tmp_path / "log.jsonl"
    good = [json.dumps({"episode_key": f"seed={i}", "score": 1.0}) for i in range(2)]
    path.write_text("\n".join(good) + "\n" + '{"episode_key": "seed=2", "sco')
    with pytest.warns(EpisodeLogWarning, match="line 3: cut off"), EpisodeLog(path, resume=True) as log:
        assert log.corrupt_lines == 1
        assert log.done_keys == {"seed=0", "seed=1"}
        log.append({"episode_key": "seed=2", "score": 0.0})
    with EpisodeLog(path, resume=True) as again:
        assert again.corrupt_lines == 0
        assert [r["episode_key"] for r in again.records] == ["seed=0", "seed=1", "seed=2"]


def test_log_resume_after_line_missing_only_its_newline(tmp_path):
    """A complete last record whose newline was cut off survives a resume and a new append."""
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps({"episode_key": "seed=0"}) + "\n" + json.dumps({"episode_key": "seed=1"}))
    with EpisodeLog(path, resume=True) as log:
        assert log.done_keys == {"seed=0", "seed=1"}
        log.append({"episode_key": "seed=2"})
    with EpisodeLog(path, resume=True) as again:
        assert again.corrupt_lines == 0
        assert again.done_keys == {"seed=0", "seed=1", "seed=2"}


# --------------------------------------------------------------------------- run_episodes


@pytest.fixture(scope="module")
def oracle():
    """The scripted oracle (asks until all shards are out, then answers)."""
    return make_assistant("scripted:oracle")


def test_batched_rollout_equals_unbatched(oracle):
    """batch_size 3 gives the same per-seed records (transcript, steps, score) as batch_size 1."""
    one = run_episodes(make_env, oracle, SEEDS, batch_size=1)
    three = run_episodes(make_env, oracle, SEEDS, batch_size=3)
    assert sorted(r["seed"] for r in three) == SEEDS
    assert by_seed(one) == by_seed(three)
    assert all(r["score"] == 1.0 and r["error"] is None for r in one)
    assert len({json.dumps(r["transcript"]) for r in one}) == len(SEEDS)


def test_rollout_records(oracle):
    """Each record holds the transcript, every step's info, totals per component and the end of the episode."""
    (record,) = run_episodes(make_env, oracle, [7], batch_size=2, meta={"assistant": "scripted:oracle"})
    assert record["assistant"] == "scripted:oracle" and record["episode_key"] == "seed=7"
    assert record["transcript"][0]["role"] == "user" and record["transcript"][-1]["role"] == "assistant"
    assert record["turns"] == len(record["steps"]) == record["num_shards"]
    assert record["end_reason"] == "correct_answer" and record["terminated"] and not record["truncated"]
    assert record["return"] == pytest.approx(sum(s["reward"] for s in record["steps"]))
    assert set(record["component_totals"]) == set(COMPONENTS)
    assert record["component_totals"]["turn"] == record["turns"]
    json.dumps(record)  # serialisable
    env = make_env()
    obs, _ = env.reset(seed=7)
    assert record["transcript"][0] == obs[0]


def test_rollout_resume_skips_finished_seeds(tmp_path, oracle):
    """A resumed run only plays the missing seeds and the log ends with one line per seed."""
    path = tmp_path / "log.jsonl"
    with EpisodeLog(path) as log:
        first = run_episodes(make_env, oracle, SEEDS[:4], batch_size=3, log=log)
    assert len(first) == 4 and len(lines(path)) == 4
    with EpisodeLog(path, resume=True) as log:
        second = run_episodes(make_env, oracle, SEEDS, batch_size=3, log=log)
    assert sorted(r["seed"] for r in second) == SEEDS[4:]
    keys = [json.loads(line)["episode_key"] for line in lines(path)]
    assert sorted(keys) == sorted(f"seed={s}" for s in SEEDS) and len(keys) == len(set(keys))
    with EpisodeLog(path, resume=True) as log:
        third = run_episodes(make_env, oracle, SEEDS, batch_size=3, log=log)
    assert third == [] and len(lines(path)) == len(SEEDS)
    fresh = run_episodes(make_env, oracle, SEEDS, batch_size=1)
    with EpisodeLog(path, resume=True) as log:
        assert by_seed(log.records) == by_seed(fresh)


class _FailsOnTask(Assistant):
    """Oracle-like assistant that misbehaves on one task: ``mode`` raise (exception) or ``none`` (non-str reply)."""

    needs_oracle = True

    def __init__(self, bad_task_id: str, mode: str):
        self.bad_task_id = bad_task_id
        self.mode = mode

    def act_batch(self, conversations, seeds, infos):
        """Answer like the oracle, except on the bad task."""
        replies = []
        for info in infos:
            if info["task_id"] == self.bad_task_id:
                if self.mode == "raise":
                    raise RuntimeError("assistant exploded")
                replies.append(None)
            elif len(info["shards_revealed"]) >= info["num_shards"]:
                replies.append(f"The answer is {info['oracle_answer']}.")
            else:
                replies.append("What else?")
        return replies


def _task_id(seed: int) -> str:
    env = make_env()
    env.reset(seed=seed)
    return env._state.task.task_id


@pytest.mark.parametrize("batch_size", [1, 3])
def test_bad_reply_on_one_episode_is_recorded(batch_size):
    """An assistant replying a non-str on one episode gets an error record there; the others finish."""
    records = run_episodes(make_env, _FailsOnTask(_task_id(2), "none"), SEEDS, batch_size=batch_size)
    errors = {r["seed"]: r["error"] for r in records}
    assert sorted(errors) == SEEDS
    assert errors[2] is not None and "TypeError" in errors[2]
    assert all(errors[s] is None for s in SEEDS if s != 2)
    assert summarize(records)["errors"] == 1


@pytest.mark.parametrize("batch_size", [1, 3])
def test_assistant_exception_on_one_episode_is_recorded(batch_size):
    """An assistant raising on one episode gets an error record there while the other episodes finish."""
    records = run_episodes(make_env, _FailsOnTask(_task_id(2), "raise"), SEEDS, batch_size=batch_size)
    errors = {r["seed"]: r["error"] for r in records}
    assert sorted(errors) == SEEDS
    assert errors[2] is not None and "assistant exploded" in errors[2]
    assert all(errors[s] is None for s in SEEDS if s != 2)


def test_summarize(oracle):
    """summarize reports success rate, turns, end reasons and component means over the error-free records."""
    records = run_episodes(make_env, oracle, SEEDS[:3], batch_size=3)
    summary = summarize(records + [{"error": "boom"}])
    assert summary["episodes"] == 4 and summary["errors"] == 1
    assert summary["success_rate"] == 1.0 and summary["mean_shards_revealed"] == 1.0
    assert summary["end_reasons"] == {"correct_answer": 3}
    assert set(summary["components"]) == set(COMPONENTS)


# --------------------------------------------------------------------------- CLI


def test_cli_rollout_table_log_resume(tmp_path):
    """``userlm-env rollout`` prints a table and writes 3 lines; --resume adds none; a rerun without it fails."""
    out = tmp_path / "runs" / "x.jsonl"
    args = ["rollout", "--assistant", "scripted:oracle", "--user", "replay", "--episodes", "3", "--out", str(out)]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "success rate" in flat(result.output) and "1.000" in result.output
    records = [json.loads(line) for line in lines(out)]
    assert [r["seed"] for r in sorted(records, key=lambda r: r["seed"])] == [0, 1, 2]
    assert all(r["assistant"] == "scripted:oracle" and r["user"] == "replay" for r in records)

    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert len(lines(out)) == 3
    assert "3 of 3 episodes already done" in flat(result.output)

    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "--resume" in result.output and "already holds episodes" in flat(result.output).replace("│ ", "")
    assert len(lines(out)) == 3


def test_cli_bad_specs_fail(tmp_path):
    """Unknown assistant or user specs make the CLI exit non-zero with the spec in the error."""
    out = tmp_path / "y.jsonl"
    result = CliRunner().invoke(
        app, ["rollout", "--assistant", "scripted:orcle", "--user", "replay", "--out", str(out)]
    )
    assert result.exit_code != 0
    assert "scripted:oracle" in str(result.exception) + result.output


# --------------------------------------------------------------------------- hardening: nothing logged is lost

SURROGATE = "\ud800"  # a lone surrogate: a custom policy or an HTTP server can produce one
MARKUP = "[/] [bold]x"  # rich markup in a reply must be printed as text, not parsed


class _OddTextOracle(Assistant):
    """The oracle, but every question carries a lone surrogate, rich markup and a non-BMP character."""

    name = "odd-text"
    needs_oracle = True

    def act_batch(self, conversations, seeds, infos):
        """Ask with odd text until every shard is out, then answer."""
        return [
            f"The answer is {info['oracle_answer']}."
            if len(info["shards_revealed"]) >= info["num_shards"]
            else f"What else? {SURROGATE} {MARKUP} \U0001f600"
            for info in infos
        ]


def test_log_writes_any_text_and_unserialisable_values(tmp_path):
    """A lone surrogate is escaped (the line is ASCII), and values JSON cannot encode are stringified."""
    path = tmp_path / "log.jsonl"
    cycle: list = []
    cycle.append(cycle)

    class Unprintable:
        def __str__(self):
            raise RuntimeError("no str")

    with EpisodeLog(path) as log:
        log.append({"episode_key": "seed=0", "reply": f"a{SURROGATE}b", "cjk": "東京"})
        log.append({"episode_key": "seed=1", "obj": object(), "keys": {(1, 2): 3}, "cycle": cycle, "u": Unprintable()})
        log.append({"episode_key": "seed=2", "set": {1}, "bytes": b"\xff"})
    raw = path.read_bytes()
    assert raw.isascii() and raw.count(b"\n") == 3
    with EpisodeLog(path, resume=True) as resumed:
        records = resumed.records
    assert resumed.problems == [] and [r["episode_key"] for r in records] == ["seed=0", "seed=1", "seed=2"]
    assert records[0]["reply"] == f"a{SURROGATE}b" and records[0]["cjk"] == "東京"
    assert isinstance(records[1]["obj"], str) and records[1]["keys"] == {"(1, 2)": 3}
    assert "Unprintable" in records[1]["u"]
    assert records[2]["bytes"] == "b'\\xff'"


def test_cli_rollout_logs_and_prints_any_reply_text(tmp_path, monkeypatch):
    """Replies with a lone surrogate and rich markup are logged, summarised and printed; the run goes on."""
    import agents

    monkeypatch.setattr(agents, "make_assistant", lambda spec, **kwargs: _OddTextOracle())
    out = tmp_path / "odd.jsonl"
    args = ["rollout", "--assistant", "odd", "--user", "replay", "--episodes", "3", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in lines(out)]
    assert len(records) == 3 and all(r["error"] is None and r["score"] == 1.0 for r in records)
    assert SURROGATE in records[0]["transcript"][1]["content"]
    assert "\\ud800" in result.output and MARKUP in result.output  # shown escaped / as text
    assert "1.000" in result.output
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "3 of 3 episodes already done" in flat(resumed.output)


def _good(seed: int) -> bytes:
    return (json.dumps({"episode_key": f"seed={seed}", "score": 1.0}) + "\n").encode()


# Logs that a crash (or a stray writer) can leave: (bytes, valid keys, line numbers of the problems)
DAMAGED_LOGS = {
    "tail cut inside a multi-byte character": (
        _good(0) + _good(1) + '{"episode_key": "seed=2", "text": "é'.encode()[:-1],
        ["seed=0", "seed=1"],
        [3],
    ),
    "non-object JSON lines": (
        _good(0) + b"[1, 2]\n" + b'"x"\n' + b"3\n" + b"null\n" + _good(1),
        ["seed=0", "seed=1"],
        [2, 3, 4, 5],
    ),  # fmt: skip
    "invalid UTF-8 mid-file": (
        _good(0) + b'{"episode_key": "seed=9", "t": "\xff\xfe"}\n' + _good(1),
        ["seed=0", "seed=1"],
        [2],
    ),  # fmt: skip
    "valid JSON without the key field": (
        _good(0) + b'{"score": 1.0}\n' + b'{"episode_key": 7}\n' + _good(1),
        ["seed=0", "seed=1"],
        [2, 3],
    ),  # fmt: skip
    "cut-off ASCII line mid-file": (_good(0) + b'{"episode_key": "se\n' + _good(1), ["seed=0", "seed=1"], [2]),
}


@pytest.mark.parametrize("name", list(DAMAGED_LOGS))
def test_resume_reports_and_skips_damaged_lines(tmp_path, name):
    """Each damaged line is reported with its line number and skipped; every valid record survives an append."""
    data, keys, bad_lines = DAMAGED_LOGS[name]
    path = tmp_path / "log.jsonl"
    path.write_bytes(data)
    with pytest.warns(EpisodeLogWarning, match=f"line {bad_lines[0]}:"), EpisodeLog(path, resume=True) as log:
        assert [r["episode_key"] for r in log.records] == keys
        assert [p.line for p in log.problems] == bad_lines
        assert log.corrupt_lines == len(bad_lines)
        assert all(f"line {p.line}:" in str(p) for p in log.problems)
        log.append({"episode_key": "seed=5", "score": 0.0})
    with EpisodeLog(path, resume=True, warn=False) as again:  # garbage mid-file stays (reported), the tail went
        assert [r["episode_key"] for r in again.records] == [*keys, "seed=5"]


def test_resume_problem_messages_say_what_was_wrong(tmp_path):
    """The warnings name the line and the kind of damage."""
    path = tmp_path / "log.jsonl"
    path.write_bytes(_good(0) + b"[1]\n" + b"\xff\n" + b'{"a": 1}\n' + b"{nope\n" + _good(0) + b'{"episode_key": "x')
    with pytest.warns(EpisodeLogWarning, match="line 2"), EpisodeLog(path, resume=True) as log:
        reasons = {p.line: p.reason for p in log.problems}
    assert "array" in reasons[2] and "UTF-8" in reasons[3] and "episode_key" in reasons[4]
    assert "JSON" in reasons[5] and "duplicate" in reasons[6] and "line 1" in reasons[6]
    assert "cut off" in reasons[7]


def test_cli_resume_survives_damaged_log(tmp_path):
    """``rollout --resume`` on a damaged log warns about each bad line, runs the missing seeds, loses nothing."""
    out = tmp_path / "log.jsonl"
    args = ["rollout", "--assistant", "scripted:oracle", "--user", "replay", "--episodes", "3", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    good = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(good[0] + b"[1, 2]\n" + b"\xff\xfe garbage\n" + b'{"no": "key"}\n' + good[1] + good[2][:-9])
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    for line in (2, 3, 4, 6):
        assert f"line {line}:" in text
    assert "2 of 3 episodes already done" in text and "3 (0)" in text
    with EpisodeLog(out, resume=True, warn=False) as log:
        assert sorted(r["seed"] for r in log.records) == [0, 1, 2]


def test_second_writer_is_refused(tmp_path):
    """While one EpisodeLog writes a file, another writer (any process) gets a clear error."""
    import subprocess
    import sys

    path = tmp_path / "log.jsonl"
    with EpisodeLog(path) as first:
        first.append({"episode_key": "seed=0"})
        with pytest.raises(OSError, match="another process is writing to it") as err:
            EpisodeLog(path, resume=True)
        assert str(path) in str(err.value)
        code = f"from userlm_env.episode_log import EpisodeLog; EpisodeLog({str(path)!r}, resume=True)"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "another process is writing to it" in proc.stderr
        args = ["rollout", "--assistant", "scripted:oracle", "--user", "replay", "--episodes", "2", "--out", str(path)]
        result = CliRunner().invoke(app, [*args, "--resume"])
        assert result.exit_code == 2 and "another process is writing to it" in flat(result.output)
        first.append({"episode_key": "seed=1"})
    assert [json.loads(line)["episode_key"] for line in lines(path)] == ["seed=0", "seed=1"]
    with EpisodeLog(path, resume=True) as again:  # the lock is released on close
        assert again.done_keys == {"seed=0", "seed=1"}


def test_duplicated_keys_count_once(tmp_path, oracle):
    """A log where two writers both logged every episode: readers and summaries keep the first of each key."""
    path = tmp_path / "dup.jsonl"
    records = sorted(run_episodes(make_env, oracle, SEEDS[:3], batch_size=3), key=lambda r: r["seed"])
    records[0]["score"] = 0.0  # the first copy of seed=0 differs: the first one is kept
    second = run_episodes(make_env, oracle, SEEDS[:3], batch_size=3)
    path.write_text("".join(json.dumps(r) + "\n" for r in records + second))
    summary = summarize(records + second)
    assert summary["episodes"] == 3 and summary["duplicates"] == 3
    assert summary["success_rate"] == pytest.approx(2 / 3)
    with pytest.warns(EpisodeLogWarning, match="duplicate"), EpisodeLog(path, resume=True) as log:
        assert [r["episode_key"] for r in log.records] == ["seed=0", "seed=1", "seed=2"]
        assert log.records[0]["score"] == 0.0
        assert [p.line for p in log.problems] == [4, 5, 6]
    args = ["rollout", "--assistant", "scripted:oracle", "--user", "replay", "--episodes", "3", "--out", str(path)]
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert "3 (0)" in flat(result.output) and "0.667" in result.output
