"""Robustness matrix: metrics and gap, a tiny end-to-end run (train, evaluate, resume) and its report in Chromium."""

from __future__ import annotations

import csv
import json
import math
import shutil

import gymnasium as gym
import pytest
from test_report import dump_dom, injection_findings

import userlm_env  # noqa: F401  (registers the envs)
from userlm_env.envs.population import member_label
from userlm_env.evaluation.matrix import (
    MatrixConfig,
    default_test_users,
    default_train_users,
    matrix_metrics,
    run_matrix,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*episodes will be truncated before every shard")


def _record(train, test, score, turns=2, premature=0.0, error=None):
    return {
        "train_user": train,
        "test_user": test,
        "score": score,
        "turns": turns,
        "return": score,
        "component_totals": {"premature_answer": premature, "clarification": 1.0},
        "error": error,
    }


def test_matrix_metrics_cells_intervals_and_gap():
    records = []
    for train in ("a", "b"):
        for test in ("a", "b", "c"):
            for k in range(10):
                diagonal = train == test
                records.append(
                    _record(train, test, 1.0 if diagonal else float(k < 3), premature=0.0 if diagonal else 1.0)
                )
    records.append(_record("a", "c", 1.0, error="boom"))
    metrics = matrix_metrics(records, ["a", "b"], ["a", "b", "c"], samples=300)
    cells = {(c["train_user"], c["test_user"]): c for c in metrics["cells"]}
    assert len(cells) == 6
    assert cells[("a", "a")]["in_distribution"] and not cells[("a", "b")]["in_distribution"]
    assert cells[("a", "c")]["episodes"] == 10 and cells[("a", "c")]["errors"] == 1
    score = cells[("a", "b")]["metrics"]["score"]
    assert score["mean"] == pytest.approx(0.3)
    lo, hi = score["ci"]
    assert 0.0 <= lo < 0.3 < hi <= 0.8
    assert cells[("a", "a")]["metrics"]["score"]["ci"] == [1.0, 1.0]
    gap = metrics["gap"]
    assert (gap["in_distribution_cells"], gap["held_out_cells"]) == (2, 4)
    assert gap["score"]["in_distribution"] == 1.0
    assert gap["score"]["held_out"] == pytest.approx(0.3)
    assert gap["score"]["gap"] == pytest.approx(0.7)
    assert gap["score"]["ci"][0] > 0.4 and gap["score"]["ci"][1] <= 1.0
    assert gap["premature"]["gap"] == pytest.approx(-1.0)
    no_diagonal = matrix_metrics(records, ["a"], ["b", "c"], samples=50)["gap"]
    assert math.isnan(no_diagonal["score"]["gap"])


def test_config_and_default_test_users_errors(tmp_path):
    with pytest.raises(ValueError, match="distinct labels"):
        MatrixConfig(out_dir=tmp_path, train_users=["replay", "replay"])
    with pytest.raises(ValueError, match="empty"):
        MatrixConfig(out_dir=tmp_path, train_users=[])
    users, notes = default_test_users("math", tmp_path / "nothing-here")
    assert users[0] == "replay" and "prompted:smollm2-135m?engine=auto" in users  # llama.cpp on a CPU
    assert any("flipped User LM skipped" in n for n in notes)
    assert not any(str(u).startswith("userlm:") for u in users)
    labels = [member_label(u) for u in users]
    for expected in ("replay[reveal=responsive]", "replay[reveal=on_request]", "replay?profile=impatient"):
        assert expected in labels
    assert len(set(labels)) == len(labels)
    assert default_train_users("math") == ["replay", "replay?profile=sharegpt"]
    for user in users[:-1]:  # every model-free default test user builds an env and plays a turn
        kwargs = dict(user) if isinstance(user, dict) else {"user": user}
        kwargs.pop("name", None)
        env = gym.make("UserLM-Math-v0", **kwargs)
        env.reset(seed=0)
        assert not env.step("What else do you know?")[2]
        env.close()


@pytest.fixture(scope="module")
def tiny_matrix(tmp_path_factory, tiny_chat_model, tiny_userlm_untrained):
    """A 2 x 3 matrix: two trained tiny policies x (replay, plain replay, a tiny flipped User LM)."""
    out = tmp_path_factory.mktemp("matrix")
    config = MatrixConfig(
        out_dir=out,
        train_users=["replay", {"user": "replay:plain", "name": "plain"}],
        test_users=["replay", {"user": "replay:plain", "name": "plain"}],
        userlm_path=tiny_userlm_untrained,
        max_turns=3,
        train_overrides={
            "max_steps": 2,
            "num_train_tasks": 4,
            "prompts_per_step": 1,
            "num_generations": 2,
            "policy": str(tiny_chat_model),
        },
        eval_episodes=4,
        batch_size=4,
        bootstrap_samples=200,
    )
    seen = []
    result = run_matrix(config, progress=False, on_episode=seen.append)
    return config, result, seen


def test_tiny_matrix_end_to_end(tiny_matrix):
    config, result, seen = tiny_matrix
    out = config.out_dir
    metrics = json.loads((out / "matrix.json").read_text())
    assert metrics["train_users"] == ["replay", "plain"]
    assert metrics["test_users"][:2] == ["replay", "plain"] and metrics["test_users"][2].startswith("userlm:")
    assert len(metrics["cells"]) == 6 and all(c["episodes"] == 4 for c in metrics["cells"])
    assert len(seen) == 24 and {(r["train_user"], r["test_user"]) for r in seen} == {
        (a, b) for a in metrics["train_users"] for b in metrics["test_users"]
    }
    assert sum(c["in_distribution"] for c in metrics["cells"]) == 2
    userlm_label = metrics["test_users"][2]
    assert metrics["engines"] == {"replay": "none", "plain": "none", userlm_label: "transformers"}
    assert f"Engines: {userlm_label}: transformers." in (out / "summary.md").read_text()
    assert metrics["gap"]["in_distribution_cells"] == 2 and metrics["gap"]["held_out_cells"] == 4
    for cell in metrics["cells"]:
        for stat in cell["metrics"].values():
            assert stat["ci"][0] <= stat["mean"] + 1e-9 <= stat["ci"][1] + 2e-9
    with (out / "matrix.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"score", "score_lo", "score_hi", "turns", "premature"} <= set(rows[0])
    assert len(list((out / "cells").glob("*.jsonl"))) == 6
    for label in ("replay", "plain"):
        assert (out / "train" / label / "final" / "config.json").is_file()
        assert (out / "train" / label / "matrix_done.json").is_file()
    # the userlm test user really is the flipped model: its episodes differ from the replay user's
    userlm_texts = {r["transcript"][0]["content"] for r in seen if r["test_user"].startswith("userlm:")}
    replay_texts = {r["transcript"][0]["content"] for r in seen if r["test_user"] == "replay"}
    assert userlm_texts != replay_texts


def test_tiny_matrix_resumes_without_redoing_work(tiny_matrix, tmp_path):
    config, result, _ = tiny_matrix
    out = tmp_path / "copy"
    shutil.copytree(config.out_dir, out)
    cell = sorted((out / "cells").glob("*.jsonl"))[0]
    lines = cell.read_bytes().splitlines(keepends=True)
    cell.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # a crash mid-line
    marker = out / "train" / "replay" / "matrix_done.json"
    before = marker.stat().st_mtime_ns
    seen = []
    config2 = MatrixConfig(**{**config.__dict__, "out_dir": out})
    again = run_matrix(config2, progress=False, on_episode=seen.append)
    assert len(seen) == 1, "only the lost episode runs again"
    assert marker.stat().st_mtime_ns == before, "finished trainings are not redone"
    assert again.metrics["seconds"]["train_this_run"] == 0
    assert [c["episodes"] for c in again.metrics["cells"]] == [4] * 6


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("headless Chromium is required for the report tests: run `bash scripts/install_chromium.sh`")
    return path


def test_matrix_report_in_chromium(tiny_matrix, chromium, tmp_path):
    config, result, _ = tiny_matrix
    dom = dump_dom(chromium, result.paths["report"], tmp_path)
    (body,) = dom.find_all("body")
    assert body.attrs.get("data-report-js") == "ready"
    assert body.attrs.get("data-images-decoded") == "3/3"  # three heatmaps, all decoded
    assert all(img.attrs["data-decoded"] == "yes" for img in dom.find_all("img"))
    assert all(int(img.attrs["data-natural-width"]) > 300 for img in dom.find_all("img"))
    tables = dom.find_all("table", cls="data")
    headers = [th.text() for th in tables[0].find_all("th")]
    assert headers[:3] == ["policy", "replay", "plain"] and headers[3].startswith("userlm:")
    rows = [[td.text() for td in tr.find_all("td")] for tr in tables[0].find_all("tbody")[0].find_all("tr")]
    assert [r[0] for r in rows] == ["trained on replay", "trained on plain"]
    assert all("[" in cell and "]" in cell for row in rows for cell in row[1:])  # every cell has its CI
    gap_table = next(t for t in tables if "gap" in [th.text() for th in t.find_all("th")])
    assert "LiC score" in gap_table.text()
    assert len(dom.find_all("details", cls="episode")) == 24
    assert injection_findings(dom) == []
    titles = [h.text() for h in dom.find_all("h3")]
    assert any("Heatmap" in t for t in titles)


def test_matrix_cli_help_lists_options():
    from typer.testing import CliRunner

    from userlm_env.cli import app

    result = CliRunner().invoke(app, ["matrix", "--help"])
    assert result.exit_code == 0
    for option in ("--train-user", "--test-user", "--userlm-path", "--episodes", "--steps"):
        assert option in result.output
