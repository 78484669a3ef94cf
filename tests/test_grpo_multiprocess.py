"""GRPO under ``accelerate launch`` with two CPU processes (gloo): split groups, gathered rewards, reproducibility.

TRL 1.16's layout (read in ``trl/trainer/grpo_trainer.py`` and checked here): ``RepeatSampler`` repeats each
prompt ``num_generations`` times consecutively; accelerate shards the generation batch so that process ``k``
gets the contiguous rows ``k*n .. k*n+n-1``; rewards are gathered over the processes before the group
advantages are computed, then sliced back by process. With 6 episodes per process and groups of 4, the middle
group of every step is split 2 + 2 across the processes.

CPU note: ``accelerate launch --cpu --num_processes 2`` starts a *single* process in accelerate 1.16 (its
"simple" launcher only runs several CPU processes through ``mpirun``); ``--multi_gpu`` starts the processes
(torchrun) and the script's ``use_cpu`` makes accelerate pick the gloo backend (``MULTI_CPU``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import credit

REPO = Path(__file__).resolve().parents[1]
PER_DEVICE, GROUP, STEPS = 6, 4, 2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available"),
]

# Runs training/grpo.py unchanged, recording on each process what the rollout function played and what advantages
# the trainer computed (rows in the order of the generation batch, before TRL shuffles them).
DRIVER = r"""
import json, os, sys
sys.path.insert(0, os.environ["REPO"])
from training import grpo, rollout_func as rf

rank = int(os.environ.get("RANK", "0"))
out_dir = os.environ["RECORD_DIR"]
original_rollout, original_class = rf.make_rollout_func, grpo.credit_trainer_class

def write(record):
    with open(os.path.join(out_dir, f"rank{rank}.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")

def make_rollout_func(*args, **kwargs):
    inner = original_rollout(*args, **kwargs)
    def rollout(prompts, trainer):
        batch = inner(prompts, trainer)
        write({"kind": "rollout", "step": trainer.state.global_step, "process": trainer.accelerator.process_index,
               "num_processes": trainer.accelerator.num_processes,
               **{k: batch[k] for k in ("env_seed", "policy_seed", "step_rewards", "turn_ids", "completion_ids",
                                        "env_reward")}})
        return batch
    return rollout

def credit_trainer_class():
    class Recording(original_class()):
        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            write({"kind": "advantages", "step": self.state.global_step,
                   "advantages": output["advantages"].tolist()})
            return output
    return Recording

rf.make_rollout_func = make_rollout_func
grpo.credit_trainer_class = credit_trainer_class
grpo.train(grpo.parse_args(sys.argv[1:]))
"""


def launch(tmp_path: Path, name: str, credit_mode: str, seed: int = 3) -> dict:
    """One 2-process run of training/grpo.py; returns its records by rank, metrics and final weights."""
    records = tmp_path / f"records_{name}"
    records.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    cmd = [
        *(sys.executable, "-m", "accelerate.commands.launch"),
        *("--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"),
        *("--dynamo_backend", "no", "--main_process_port", str(29500 + os.getpid() % 1000)),
        str(driver),
        *("--preset", "tiny", "--use_cpu", "--no_rich", "--quiet", "--num_threads", "1"),
        *("--max_steps", str(STEPS), "--num_generations", str(GROUP), "--per_device_episodes", str(PER_DEVICE)),
        *("--num_train_tasks", "16", "--eval_episodes", "0", "--seed", str(seed), "--credit", credit_mode),
        *("--reward", "lic:clarification=1,premature_answer=-1,length=1"),
        *("--output_dir", str(tmp_path), "--run_name", name),
    ]
    env = {**os.environ, "REPO": str(REPO), "RECORD_DIR": str(records), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    by_rank = {
        rank: [json.loads(line) for line in (records / f"rank{rank}.jsonl").read_text().splitlines()] for rank in (0, 1)
    }
    metrics = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / name / "final" / "model.safetensors"))
    return {"records": by_rank, "metrics": metrics, "weights": weights}


def _deterministic(metrics: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if "seconds" not in k} for m in metrics]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpo_mp")
    return {
        "a": launch(tmp, "a", "turn_baseline"),
        "b": launch(tmp, "b", "turn_baseline"),  # same seed: must reproduce "a" exactly
    }


def test_groups_split_across_processes_share_the_env_seed(runs):
    records = runs["a"]["records"]
    for step in range(STEPS):
        rollouts = [next(r for r in records[rank] if r["kind"] == "rollout" and r["step"] == step) for rank in (0, 1)]
        assert [r["process"] for r in rollouts] == [0, 1] and rollouts[0]["num_processes"] == 2
        assert all(len(r["env_seed"]) == PER_DEVICE for r in rollouts)
        env_seeds = rollouts[0]["env_seed"] + rollouts[1]["env_seed"]  # the global batch, process order
        policy_seeds = rollouts[0]["policy_seed"] + rollouts[1]["policy_seed"]
        groups = [env_seeds[i : i + GROUP] for i in range(0, len(env_seeds), GROUP)]
        assert all(len(set(g)) == 1 for g in groups), env_seeds  # one env seed per group ...
        assert len({g[0] for g in groups}) == len(groups)  # ... distinct groups
        # the middle group is split 2 + 2: both processes play the same task and user seed
        assert rollouts[0]["env_seed"][-2:] == rollouts[1]["env_seed"][:2]
        assert len(set(policy_seeds)) == len(policy_seeds)  # distinct policy seeds, also across processes
        # the same episodes as one process playing the whole batch (seeds from the global position, not the rank)
        from training.rollout_func import policy_seeds_for

        assert policy_seeds == policy_seeds_for(3, step, 0, 1, 2 * PER_DEVICE)


def test_rewards_are_gathered_before_the_turn_advantages(runs):
    records = runs["a"]["records"]
    for step in range(STEPS):
        rollouts = [next(r for r in records[k] if r["kind"] == "rollout" and r["step"] == step) for k in (0, 1)]
        advantages = [next(r for r in records[k] if r["kind"] == "advantages" and r["step"] == step) for k in (0, 1)]
        every = rollouts[0]["step_rewards"] + rollouts[1]["step_rewards"]
        expected = credit.turn_advantages(every, GROUP, "turn_baseline", scale="group")
        # each process holds only part of the split group: computed locally, the baseline would not even exist
        with pytest.raises(ValueError, match="whole number of groups"):
            credit.turn_advantages(rollouts[0]["step_rewards"], GROUP, "turn_baseline")
        nonzero = 0
        for k in (0, 1):
            got = torch.tensor(advantages[k]["advantages"])
            mine = expected[k * PER_DEVICE : (k + 1) * PER_DEVICE]
            want = credit.token_advantages(mine, rollouts[k]["turn_ids"], got.shape[1])
            assert torch.allclose(got, want, atol=1e-5)
            nonzero += int((got != 0).sum())
        assert nonzero > 0


def test_two_runs_with_the_same_seed_are_identical(runs):
    a, b = runs["a"], runs["b"]
    assert _deterministic(a["metrics"]) == _deterministic(b["metrics"])
    assert [m["step"] for m in a["metrics"] if m["kind"] == "train"] == list(range(1, STEPS + 1))
    for rank in (0, 1):
        assert a["records"][rank] == b["records"][rank]
    assert a["weights"].keys() == b["weights"].keys()
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])


def test_ppo_refuses_several_processes(tmp_path):
    """PPO is single-process: under accelerate launch every process fails at once with the reason."""
    cmd = [
        *(sys.executable, "-m", "accelerate.commands.launch"),
        *("--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"),
        *("--dynamo_backend", "no", "--main_process_port", str(30600 + os.getpid() % 1000)),
        *("-m", "training.ppo", "--preset", "tiny", "--output_dir", str(tmp_path)),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "training/ppo.py is single-process" in proc.stderr and "WORLD_SIZE=2" in proc.stderr
    assert not (tmp_path / "tiny_policy").exists()  # it stopped before loading anything


def test_ppo_single_process_check(monkeypatch):
    from training import ppo

    monkeypatch.setenv("WORLD_SIZE", "1")
    ppo.check_single_process()
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(RuntimeError, match="single-process.*WORLD_SIZE=4"):
        ppo.check_single_process()
