"""``userlm-env evaluate``: settings, pairing, resumable logs, recorded failures, reports, human reference."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import EGGS_TASK
from typer.testing import CliRunner

from agents import Assistant, make_assistant
from userlm_env.cli import app
from userlm_env.envs.math_env import UserLMMathEnv
from userlm_env.evaluation.analysis import evaluation_metrics, report_tables, write_reports
from userlm_env.evaluation.human_reference import cached_sharegpt_reference
from userlm_env.evaluation.runner import EvalConfig, choose_tasks, plan_runs, run_evaluation
from userlm_env.tasks import make_task_source
from userlm_env.users import FullySpecifiedUser, make_user


def _config(**overrides) -> EvalConfig:
    base = dict(assistants=["scripted:oracle"], users=["replay"], num_tasks=2, runs_per_task=3, batch_size=4)
    return EvalConfig(**(base | overrides))


@pytest.mark.filterwarnings("ignore:.*shards but max_turns=1")
def test_full_and_concat_users_state_the_whole_task():
    """FULL opens with the instruction, CONCAT with every shard as a list; both reveal every shard."""
    eggs_task = EGGS_TASK
    for mode in ("full", "concat"):
        env = UserLMMathEnv(user=make_user(mode), tasks=[eggs_task], max_turns=1, reward="lic")
        obs, info = env.reset(seed=0)
        assert info["shards_revealed"] == [1, 2, 3]
        text = obs[0]["content"]
        assert all(s.text in text for s in eggs_task.shards) if mode == "concat" else text == eggs_task.instruction
        *_, terminated, truncated, info = env.step("16 - 3 = 13. The answer is 13.")
        assert terminated and info["correct"] and info["score"] == 1.0
    env = UserLMMathEnv(user=FullySpecifiedUser("full"), tasks=[eggs_task], max_turns=1)
    env.reset(seed=0)
    *_, terminated, truncated, info = env.step("Could you tell me more?")
    assert truncated and info["score"] == 0.0  # single turn: a question is a lost conversation
    with pytest.raises(ValueError, match="full"):
        FullySpecifiedUser("sharded")


def test_plan_and_task_choice():
    """FULL/CONCAT once per assistant, SHARDED once per user; seeded distinct tasks; bad configs rejected."""
    runs = plan_runs(_config(assistants=["scripted:oracle", "scripted:clarify"], users=["replay", "replay:plain"]))
    assert [(r.setting, r.user) for r in runs[:4]] == [
        ("FULL", "full"),
        ("CONCAT", "concat"),
        ("SHARDED", "replay"),
        ("SHARDED", "replay:plain"),
    ]
    assert len(runs) == 8
    source = make_task_source("procedural")
    tasks = choose_tasks(source, 5, seed=1)
    assert len({t.task_id for t in tasks}) == 5 and tasks == choose_tasks(source, 5, seed=1)
    with pytest.raises(ValueError, match="setting"):
        _config(settings=["FULL", "MULTI"])
    with pytest.raises(ValueError, match="runs_per_task"):
        _config(runs_per_task=0)


def test_evaluation_pairs_settings_and_scores_known_assistants(tmp_path):
    """Every (setting, task, run) is one record; FULL and SHARDED share seeds; oracle scores 100, clarify 0."""
    result = run_evaluation(_config(assistants=["scripted:oracle", "scripted:clarify"]), tmp_path)
    assert len(result.records) == 2 * 3 * 2 * 3  # assistants x settings x tasks x runs
    keys = [r["episode_key"] for r in result.records]
    assert len(set(keys)) == len(keys)
    by_setting = {s: sorted((r["seed"], r["task_id"]) for r in result.records if r["setting"] == s and
                            r["assistant"] == "scripted:oracle") for s in ("FULL", "SHARDED")}  # fmt: skip
    assert by_setting["FULL"] == by_setting["SHARDED"]
    metrics = evaluation_metrics(result.records)
    p = {(r["assistant"], r["label"]): r["P"] for r in metrics["runs"]}
    assert p[("scripted:oracle", "FULL")] == p[("scripted:oracle", "SHARDED:replay")] == 100.0
    assert p[("scripted:clarify", "CONCAT")] == 0.0
    sharded = [r for r in result.records if r["setting"] == "SHARDED" and r["assistant"] == "scripted:oracle"]
    assert all(r["termination_probe"] is False for r in sharded)  # replay never ends the chat
    assert metrics["users"]["replay"]["termination_should_end"] == len(sharded)
    assert json.loads((tmp_path / "config.json").read_text())["runs_per_task"] == 3


class _Interrupt(Exception):
    pass


def test_interrupted_evaluation_resumes_without_duplicates(tmp_path):
    """Stopped after 5 episodes, a resumed run does only the rest; the log has each episode once."""
    seen = []

    def stop_after_five(record):
        seen.append(record["episode_key"])
        if len(seen) == 5:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        run_evaluation(_config(), tmp_path, on_episode=stop_after_five)
    assert len((tmp_path / "episodes.jsonl").read_text().splitlines()) == 5
    again = []
    result = run_evaluation(_config(), tmp_path, resume=True, on_episode=lambda r: again.append(r["episode_key"]))
    assert result.resumed_episodes == 5 and len(again) == 18 - 5
    assert not set(again) & set(seen)
    lines = [json.loads(x)["episode_key"] for x in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert len(lines) == len(set(lines)) == 18
    with pytest.raises(FileExistsError):
        run_evaluation(_config(), tmp_path)  # neither resume nor overwrite


class _FailsOnSomeTasks(Assistant):
    """Answers like the oracle, but raises on every episode of one task (a broken model call)."""

    name = "flaky"
    needs_oracle = True

    def __init__(self, bad_task_id: str):
        self.bad_task_id = bad_task_id
        self.oracle = make_assistant("scripted:oracle")

    def act_batch(self, conversations, seeds, infos):
        if any(info.get("task_id") == self.bad_task_id for info in infos):
            raise RuntimeError("model server exploded")
        return self.oracle.act_batch(conversations, seeds, infos)


def test_failures_are_recorded_counted_and_reported(tmp_path):
    """Episodes that raise become error records; the rest of the run finishes; the report lists them."""
    bad = choose_tasks(make_task_source("procedural"), 2, seed=0)[0].task_id
    config = _config(assistants=[_FailsOnSomeTasks(bad)], settings=["FULL", "SHARDED"])
    result = run_evaluation(config, tmp_path)
    errors = Counter(r["setting"] for r in result.records if r["error"])
    assert errors == {"FULL": 3, "SHARDED": 3}
    assert all("model server exploded" in r["error"] for r in result.records if r["error"])
    metrics = evaluation_metrics(result.records)
    assert len(metrics["failures"]) == 6
    assert {r["label"]: r["errors"] for r in metrics["runs"]} == {"FULL": 3, "SHARDED:replay": 3}
    assert all(r["P"] == 100.0 for r in metrics["runs"])  # the healthy task
    titles = [t.title for t in report_tables(metrics)]
    assert "Failed episodes" in titles
    paths = write_reports(tmp_path, result.records, metrics)
    assert "model server exploded" in paths["summary"].read_text()


def test_human_reference_from_sharegpt(tmp_path):
    """The human row streams the truncated ShareGPT file, counts what was usable, and is cached."""
    reference = cached_sharegpt_reference(tmp_path / "human.json", sample=200, seed=0)
    assert reference["parse"]["truncated"] is True
    assert reference["parse"]["records"] > 17_000 and 5_000 < reference["usable"] < reference["parse"]["records"]
    assert reference["sampled"] == 200 and reference["metrics"]["conversations"] == 200
    assert reference["metrics"]["role_adherence"] > 0.9  # people rarely talk like an assistant
    assert (tmp_path / "human.json").exists()
    assert cached_sharegpt_reference(tmp_path / "human.json", sample=200, seed=0) == json.loads(
        (tmp_path / "human.json").read_text()
    )


def test_evaluate_cli_writes_reports_and_refuses_to_clobber(tmp_path):
    """The CLI runs, prints the tables, writes report.html / summary.md / metrics.json; then asks for --resume."""
    runner = CliRunner()
    args = ["evaluate", "--assistant", "scripted:oracle", "--user", "replay", "--num-tasks", "2"]
    args += ["--runs-per-task", "2", "--human-reference", "100", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Assistant scores" in result.output and "no failures" in result.output
    for name in ("report.html", "summary.md", "metrics.json", "episodes.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    assert "human (ShareGPT)" in (tmp_path / "summary.md").read_text()
    assert "What the evaluation cost" in (tmp_path / "summary.md").read_text()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    sharded = next(r for r in metrics["runs"] if r["setting"] == "SHARDED")
    # the replay user: one request per user turn (opening included), no tokens, every episode costed
    assert sharded["cost"]["episodes"] == 4 and sharded["cost"]["user_requests"] >= 4 * 2
    assert sharded["cost"]["user_generated_tokens"] == 0
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "--resume" in again.output
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0 and "resumed: 12 episode(s)" in resumed.output
    bad = runner.invoke(app, [*args, "--overwrite", "--setting", "MULTI"])
    assert bad.exit_code != 0 and "unknown setting" in bad.output


# --------------------------------------------------------------------------- every task can be completed


def _lic_file(tmp_path, shard_counts=(10, 3)):
    """A LiC-format JSON file with one task per shard count (shard 1 asks, the others each add marbles)."""
    records = []
    for count in shard_counts:
        adds = list(range(1, count))
        shards = [{"shard_id": 1, "shard": "How many marbles does Ann have in total?"}]
        shards += [{"shard_id": i + 2, "shard": f"Ann gets {n} {'marble' if n == 1 else 'marbles'}."}
                   for i, n in enumerate(adds)]  # fmt: skip
        records.append(
            {
                "task_id": f"marbles/{count}-shards",
                "task": "math",
                "shards": shards,
                "question": " ".join(s["shard"] for s in shards[1:] + shards[:1]),
                "answer": f"#### {sum(adds)}",
            }
        )
    path = tmp_path / "lic.json"
    path.write_text(json.dumps(records))
    return path


def test_default_max_turns_lets_every_task_be_completed(tmp_path):
    """A 10-shard task gets max(8, shards + 2) replies by default: the oracle scores P = 100, nothing is cut."""
    path = _lic_file(tmp_path)
    config = _config(
        tasks=f"lic:{path}", num_tasks=2, runs_per_task=2, assistants=["scripted:oracle", "scripted:clarify"]
    )
    result = run_evaluation(config, tmp_path / "eval")
    sharded = [r for r in result.records if r["setting"] == "SHARDED"]
    oracle = [r for r in sharded if r["assistant"] == "scripted:oracle"]
    assert {r["num_shards"]: r["max_turns"] for r in sharded} == {10: 12, 3: 8}
    assert all(r["score"] == 1.0 and r["shards_revealed"] == r["num_shards"] for r in oracle)
    # the budget is enforced per episode: an assistant that never answers gets exactly max(8, shards + 2) replies
    clarify = [r for r in sharded if r["assistant"] == "scripted:clarify"]
    assert {(r["num_shards"], r["turns"], r["end_reason"]) for r in clarify} == {
        (10, 12, "max_turns"),
        (3, 8, "max_turns"),
    }
    assert sorted(r["episode"] for r in oracle) == [0, 1, 2, 3]
    metrics = evaluation_metrics(result.records)
    p = {(r["assistant"], r["label"]): r["P"] for r in metrics["runs"]}
    assert [v for (a, _), v in p.items() if a == "scripted:oracle"] == [100.0, 100.0, 100.0]
    assert {r["label"]: r["max_turns"] for r in metrics["runs"]}["SHARDED:replay"] == "8-12"
    assert all(r["cut_before_all_shards"] == 0 for r in metrics["runs"]) and metrics["cut_before_all_shards"] == 0


@pytest.mark.filterwarnings("ignore:.*has 10 shards but max_turns=5")
def test_explicit_max_turns_caps_and_the_report_flags_cut_episodes(tmp_path):
    """``--max-turns 5`` caps every task; episodes cut before all shards are counted and marked in the report."""
    path = _lic_file(tmp_path)
    out = tmp_path / "eval"
    args = ["evaluate", "--assistant", "scripted:oracle", "--user", "replay", "--tasks", f"lic:{path}"]
    args += ["--num-tasks", "2", "--runs-per-task", "2", "--human-reference", "0", "--max-turns", "5"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 episode(s) were cut" in " ".join(result.output.split())
    metrics = json.loads((out / "metrics.json").read_text())
    cut = {r["label"]: r["cut_before_all_shards"] for r in metrics["runs"]}
    assert cut == {"FULL": 0, "CONCAT": 0, "SHARDED:replay": 2} and metrics["cut_before_all_shards"] == 2
    sharded = {r["label"]: r for r in metrics["runs"]}["SHARDED:replay"]
    assert sharded["P"] == 50.0 and sharded["max_turns"] == "5"
    summary = (out / "summary.md").read_text()
    assert "cut before all shards" in summary
    header, _, *rows = [line for line in summary.splitlines() if line.startswith("| ")][:5]
    column = [c.strip() for c in header.split("|")].index("cut before all shards")
    assert [[c.strip() for c in row.split("|")][column] for row in rows] == ["0", "0", "2"]
    page = (out / "report.html").read_text()
    assert page.count('data-cut="1"') == 2 and "cut at max turns" in page
    config = json.loads((out / "config.json").read_text())
    assert config["max_turns"] == 5
    default = CliRunner().invoke(app, [*args[:-2], "--out", str(tmp_path / "default")])
    assert default.exit_code == 0, default.output
    assert json.loads((tmp_path / "default" / "config.json").read_text())["max_turns"] is None
    assert "were cut" not in " ".join(default.output.split())


def test_evaluate_cli_reports_any_reply_text(tmp_path, monkeypatch):
    """Replies and an assistant name with a lone surrogate and rich markup: logged, in the tables, plots,
    report.html and summary.md; exit 0."""
    from test_rollout_log import SURROGATE, _OddTextOracle

    import agents

    monkeypatch.setattr(agents, "make_assistant", lambda spec, **kwargs: _OddTextOracle())
    name = f"odd{SURROGATE}[/]"
    args = ["evaluate", "--assistant", name, "--user", "replay", "--num-tasks", "1", "--runs-per-task", "1"]
    result = CliRunner().invoke(app, [*args, "--human-reference", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "odd\\ud800[/]" in result.output and "no failures" in result.output
    records = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert any(SURROGATE in m["content"] for r in records for m in r["transcript"])
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "What else? \\ud800 [/] [bold]x \U0001f600" in page and "odd\\ud800[/]" in page
    assert "| odd\\ud800[/] | SHARDED:replay |" in (tmp_path / "summary.md").read_text(encoding="utf-8")


def test_evaluation_second_writer_refused_and_duplicates_counted_once(tmp_path):
    """A second evaluation on a folder being written fails clearly; a log holding every episode twice
    (two writers, before the lock) is reported once per episode."""
    from userlm_env.episode_log import EpisodeLog

    result = run_evaluation(_config(settings=["FULL"]), tmp_path)
    assert len(result.records) == 6
    with EpisodeLog(tmp_path / "episodes.jsonl", resume=True), pytest.raises(OSError, match="another process"):
        run_evaluation(_config(settings=["FULL"]), tmp_path, resume=True)
    log = tmp_path / "episodes.jsonl"
    log.write_text(log.read_text() * 2)
    metrics = evaluation_metrics([json.loads(x) for x in log.read_text().splitlines()])
    assert metrics["episodes"] == 6 and metrics["runs"][0]["episodes"] == 6
    report = CliRunner().invoke(app, ["report", str(tmp_path), "--human-reference", "0"])
    assert report.exit_code == 0, report.output
    assert "duplicate" in report.output and json.loads((tmp_path / "metrics.json").read_text())["episodes"] == 6
