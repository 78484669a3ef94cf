"""The CLI drives both envs: ``--env math`` (default) and ``--env code``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from userlm_env.cli import app


def test_rollout_on_the_code_env(tmp_path):
    """`userlm-env rollout --env code` runs code episodes and logs the env and code task ids."""
    out = tmp_path / "code.jsonl"
    args = ["rollout", "--env", "code", "--assistant", "scripted:clarify", "--user", "replay"]
    result = CliRunner().invoke(app, [*args, "--episodes", "2", "--max-turns", "6", "--out", str(out), "--show", "0"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["env"] for r in records] == ["UserLM-Code-v0"] * 2
    assert all(r["task_id"].startswith("code-procedural/") and r["error"] is None for r in records)
    assert all(s["reply_kind"] == "clarification" and "tests_total" in s for r in records for s in r["steps"])


def test_evaluate_on_the_code_env_and_bad_env(tmp_path):
    """`evaluate --env code` writes the reports; an unknown env is a clear error."""
    args = ["evaluate", "--env", "code", "--assistant", "scripted:clarify", "--user", "replay", "--num-tasks", "2"]
    args += ["--runs-per-task", "2", "--human-reference", "0", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {r["label"] for r in metrics["runs"]} == {"FULL", "CONCAT", "SHARDED:replay"}
    assert all(r["P"] == 0.0 and r["no_attempt_share"] == 1.0 for r in metrics["runs"])
    bad = CliRunner().invoke(app, ["rollout", "--env", "cod", "--out", str(tmp_path / "x.jsonl")])
    assert bad.exit_code != 0 and "Did you mean 'code'" in bad.output
