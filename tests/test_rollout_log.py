"""Episode logs (append, resume, crash recovery), batched rollouts, and the ``userlm-env rollout`` CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agents import make_assistant
from agents.base import Assistant
from userlm_env.cli import app
from userlm_env.envs.math_env import UserLMMathEnv
from userlm_env.episode_log import EpisodeLog
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
    log = EpisodeLog(path)
    log.append({"episode_key": "seed=0", "score": 1.0, "text": "東京"})
    log.append({"episode_key": "seed=1", "score": 0.0})
    assert [json.loads(line)["episode_key"] for line in lines(path)] == ["seed=0", "seed=1"]
    resumed = EpisodeLog(path, resume=True)
    assert resumed.done_keys == {"seed=0", "seed=1"} and resumed.corrupt_lines == 0
    assert resumed.records[0]["text"] == "東京"
    resumed.append({"episode_key": "seed=2"})
    assert len(lines(path)) == 3


def test_log_existing_file_without_resume_raises(tmp_path):
    """Opening a non-empty log without resume or overwrite raises FileExistsError mentioning --resume."""
    path = tmp_path / "log.jsonl"
    EpisodeLog(path).append({"episode_key": "a"})
    with pytest.raises(FileExistsError, match="--resume"):
        EpisodeLog(path)
    fresh = EpisodeLog(path, overwrite=True)
    assert fresh.records == [] and not path.exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert EpisodeLog(empty).records == []  # an empty file is no obstacle


def test_log_drops_cut_off_last_line(tmp_path):
    """A last line cut off by a crash is dropped and counted; the next record starts on a clean line."""
    path = tmp_path / "log.jsonl"
    good = [json.dumps({"episode_key": f"seed={i}", "score": 1.0}) for i in range(2)]
    path.write_text("\n".join(good) + "\n" + '{"episode_key": "seed=2", "sco')
    log = EpisodeLog(path, resume=True)
    assert log.corrupt_lines == 1
    assert log.done_keys == {"seed=0", "seed=1"}
    log.append({"episode_key": "seed=2", "score": 0.0})
    again = EpisodeLog(path, resume=True)
    assert again.corrupt_lines == 0
    assert [r["episode_key"] for r in again.records] == ["seed=0", "seed=1", "seed=2"]


def test_log_resume_after_line_missing_only_its_newline(tmp_path):
    """A complete last record whose newline was cut off survives a resume and a new append."""
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps({"episode_key": "seed=0"}) + "\n" + json.dumps({"episode_key": "seed=1"}))
    log = EpisodeLog(path, resume=True)
    assert log.done_keys == {"seed=0", "seed=1"}
    log.append({"episode_key": "seed=2"})
    again = EpisodeLog(path, resume=True)
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
    first = run_episodes(make_env, oracle, SEEDS[:4], batch_size=3, log=EpisodeLog(path))
    assert len(first) == 4 and len(lines(path)) == 4
    second = run_episodes(make_env, oracle, SEEDS, batch_size=3, log=EpisodeLog(path, resume=True))
    assert sorted(r["seed"] for r in second) == SEEDS[4:]
    keys = [json.loads(line)["episode_key"] for line in lines(path)]
    assert sorted(keys) == sorted(f"seed={s}" for s in SEEDS) and len(keys) == len(set(keys))
    third = run_episodes(make_env, oracle, SEEDS, batch_size=3, log=EpisodeLog(path, resume=True))
    assert third == [] and len(lines(path)) == len(SEEDS)
    fresh = run_episodes(make_env, oracle, SEEDS, batch_size=1)
    assert by_seed(EpisodeLog(path, resume=True).records) == by_seed(fresh)


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
