"""The reward-ablation runner: the training grid's table and plots, and the recomputation from logs."""

from __future__ import annotations

import csv
import json

import pytest

from training.ablate import AblateArgs, ablate, ablate_from_logs, bootstrap_ci, episode_return, parse_args
from userlm_env.rewards import COMPONENTS, RewardConfig


def _components(**values: float) -> dict[str, float]:
    return {name: float(values.get(name, 0.0)) for name in COMPONENTS}


# Two hand-made episode records in userlm_env's rollout-log format (steps[*]["reward_components"], unweighted).
EPISODE_A = {
    "episode": 0,
    "seed": 0,
    "score": 1.0,
    "return": 1.0,
    "steps": [
        {"reward_components": _components(clarification=1.0, turn=1.0, length=0.1)},
        {"reward_components": _components(premature_answer=1.0, turn=1.0, length=0.2)},
        {"reward_components": _components(correctness=1.0, turn=1.0, length=0.3)},
    ],
}
EPISODE_B = {
    "episode": 1,
    "seed": 1,
    "score": 0.0,
    "return": 0.0,
    "steps": [
        {"reward_components": _components(hedge=1.0, turn=1.0, length=0.5)},
        {"reward_components": _components(turn=1.0, length=0.5, no_attempt=1.0)},
    ],
}
# A GRPO evaluation record (component totals only, tagged with its training step).
EPISODE_C = {
    "step": 30,
    "score": 0.0,
    "return": 3.0,
    "component_totals": _components(clarification=3.0, turn=3.0, length=0.2),
}


def test_episode_return_by_hand():
    """Returns recomputed under several weightings match hand computation."""
    assert episode_return(EPISODE_A, RewardConfig.from_spec("lic")) == pytest.approx(1.0)
    # shaped: correctness 1, premature -0.2, clarification 0.05, hedge -0.2, turn -0.02, length -0.01
    assert episode_return(EPISODE_A, RewardConfig.from_spec("shaped")) == pytest.approx(
        1 - 0.2 + 0.05 - 3 * 0.02 - 0.6 * 0.01
    )
    assert episode_return(EPISODE_B, RewardConfig.from_spec("shaped")) == pytest.approx(-0.2 - 2 * 0.02 - 1.0 * 0.01)
    assert episode_return(
        EPISODE_A, RewardConfig.from_spec("lic:clarification=1,premature_answer=-1")
    ) == pytest.approx(1.0)
    assert episode_return(EPISODE_B, RewardConfig.from_spec("lic:no_attempt=-0.5,turn=-1")) == pytest.approx(-2.5)
    assert episode_return(EPISODE_C, RewardConfig.from_spec("lic:clarification=1")) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="component_totals"):
        episode_return({"score": 1.0}, RewardConfig())


def test_from_logs_recomputes_table(tmp_path):
    """``--from_logs`` writes a table whose returns are the hand-computed means under each configuration."""
    log = tmp_path / "rollouts.jsonl"
    log.write_text(
        "\n".join(json.dumps(r) for r in (EPISODE_A, EPISODE_B))
        + "\n"
        + json.dumps({"kind": "train", "step": 1})
        + "\n"
    )
    grpo_log = tmp_path / "run" / "eval_episodes.jsonl"
    grpo_log.parent.mkdir()
    grpo_log.write_text(json.dumps(EPISODE_C) + "\n")
    rewards = ["lic", "shaped", "lic:turn=-1"]
    rows = ablate_from_logs([log, tmp_path / "run"], rewards, tmp_path / "out", bootstrap=200)

    by_key = {(r["source"], r["reward"]): r for r in rows}
    a_shaped = 1 - 0.2 + 0.05 - 3 * 0.02 - 0.6 * 0.01
    b_shaped = -0.2 - 2 * 0.02 - 1.0 * 0.01
    assert by_key[(str(log), "lic")]["return_mean"] == pytest.approx(0.5)
    assert by_key[(str(log), "shaped")]["return_mean"] == pytest.approx((a_shaped + b_shaped) / 2)
    assert by_key[(str(log), "lic:turn=-1")]["return_mean"] == pytest.approx((1 - 3 + 0 - 2) / 2)
    assert by_key[(str(log), "lic")]["success_mean"] == pytest.approx(0.5)
    assert by_key[(str(log), "lic")]["episodes"] == 2  # the metrics line is not an episode
    assert by_key[(f"{grpo_log}@step=30", "lic:turn=-1")]["return_mean"] == pytest.approx(-3.0)
    with (tmp_path / "out" / "from_logs.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2 * len(rewards)
    assert "shaped" in (tmp_path / "out" / "from_logs.md").read_text()
    assert (tmp_path / "out" / "from_logs.png").stat().st_size > 1000
    with pytest.raises(FileNotFoundError):
        ablate_from_logs([tmp_path / "missing.jsonl"], rewards, tmp_path / "out")


def test_bootstrap_ci():
    """The CI contains the mean, is degenerate for constant data and narrows with more data."""
    assert bootstrap_ci([[1.0, 1.0, 1.0]], 100) == (1.0, 1.0, 1.0)
    mean, low, high = bootstrap_ci([[0, 1] * 5, [1, 1, 0, 1]], 500)
    assert low <= mean <= high and low < high
    wide = bootstrap_ci([[0, 1] * 3], 500)
    narrow = bootstrap_ci([[0, 1] * 300], 500)
    assert narrow[2] - narrow[1] < wide[2] - wide[1]


def test_ablation_grid_writes_table_and_plots(tmp_path):
    """Two reward configurations x two seeds on the tiny preset, tiny budgets: table rows, CSV/Markdown, plots."""
    args = AblateArgs(
        rewards=["lic:clarification=1,premature_answer=-1", "lic"],
        seeds=[1, 2],
        preset="tiny",
        max_steps=2,
        eval_episodes=2,
        output_dir=str(tmp_path / "abl"),
        bootstrap=100,
    )
    rows = ablate(args, num_train_tasks=8)
    assert [r["reward"] for r in rows] == args.rewards
    assert all(r["seeds"] == 2 and r["eval_episodes"] == 4 for r in rows)
    out = tmp_path / "abl"
    with (out / "ablation.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 and {"own_return_start", "own_return_end", "success_end", "metric_return_end"} <= set(
        table[0]
    )
    assert "lic:clarification=1,premature_answer=-1" in (out / "ablation.md").read_text()
    for name in ("curves.png", "final.png"):
        assert (out / name).stat().st_size > 5000
    runs = json.loads((out / "runs.json").read_text())
    assert len(runs) == 4 and all(len([h for h in r["history"] if h["kind"] == "train"]) == 2 for r in runs)
    # --runs: the same table from the finished run folders, without training again
    again = ablate(AblateArgs(runs=[r["run_dir"] for r in runs], output_dir=str(tmp_path / "again"), bootstrap=100))
    assert again == rows


def test_parse_args_lists():
    """Reward specs with commas survive the command line (one spec per argument)."""
    args = parse_args(["--rewards", "lic", "shaped:turn=0,length=0", "--seeds", "4", "5"])
    assert args.rewards == ["lic", "shaped:turn=0,length=0"] and args.seeds == [4, 5]


def test_from_logs_matches_real_rollout_returns(tmp_path):
    """On a real ``run_episodes`` log, recomputing under the env's own reward gives the logged returns."""
    import functools

    from agents import make_assistant
    from userlm_env.envs.math_env import UserLMMathEnv
    from userlm_env.episode_log import EpisodeLog
    from userlm_env.rollout import run_episodes

    make_env = functools.partial(UserLMMathEnv, user="replay", reward="shaped", max_turns=4)
    log = EpisodeLog(tmp_path / "rollouts.jsonl", overwrite=True)
    records = run_episodes(make_env, make_assistant("scripted:oracle"), range(4), log=log)
    shaped = RewardConfig.from_spec("shaped")
    for record in records:
        assert episode_return(record, shaped) == pytest.approx(record["return"])
    rows = ablate_from_logs([tmp_path / "rollouts.jsonl"], ["shaped"], tmp_path / "out", bootstrap=50)
    assert rows[0]["return_mean"] == pytest.approx(sum(r["return"] for r in records) / len(records))


def test_from_logs_skips_damaged_lines_and_duplicates(tmp_path):
    """A crash-damaged log (cut line, invalid UTF-8, a JSON array) and a duplicated key do not break or bias it."""
    from training.ablate import read_records

    a = {**EPISODE_A, "episode_key": "seed=0"}
    b = {**EPISODE_B, "episode_key": "seed=1"}
    log = tmp_path / "rollouts.jsonl"
    log.write_bytes(
        (json.dumps(a) + "\n").encode() + b"\xff\xfe not utf-8\n" + b"[1, 2]\n"
        + (json.dumps(b) + "\n").encode() + (json.dumps(a) + "\n").encode() + json.dumps(b).encode()[:40]
    )
    with pytest.warns(UserWarning, match="skipped 2 damaged"):
        records = read_records([log])
    assert [r["episode_key"] for r in records[str(log)]] == ["seed=0", "seed=1"]
