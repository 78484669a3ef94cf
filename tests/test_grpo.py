"""GRPO through TRL: the rollout function's contract, a real two-step run, and the env-token loss mask."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from training.rollout_func import (
    component_reward,
    env_reward,
    env_seed_of,
    make_prompt_dataset,
    make_rollout_func,
)
from userlm_env.envs.math_env import UserLMMathEnv
from userlm_env.rewards import COMPONENTS
from userlm_env.testing import build_tiny_chat_model

REPO = Path(__file__).resolve().parents[1]
REWARD = "lic:clarification=1,premature_answer=-1"
REQUIRED = ("prompt_ids", "completion_ids", "logprobs", "env_mask")


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    """(model, tokenizer) of an untrained tiny Llama chat model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_chat_model(tmp_path_factory.mktemp("tiny_policy"), seed=0)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def make_env():
    return UserLMMathEnv(user="replay", tasks="procedural", reward=REWARD, max_turns=3)


def fake_trainer(model, tokenizer, rollout_func=None, global_step=0):
    """A GRPOTrainer without __init__ (TRL's TestGRPORolloutDispatch style): only what _generate reads."""
    from trl import GRPOTrainer

    trainer = object.__new__(GRPOTrainer)
    trainer.__dict__.update(
        model=model,
        processing_class=tokenizer,
        _tokenizer=tokenizer,
        rollout_func=rollout_func,
        args=SimpleNamespace(temperature=1.0, top_p=1.0),
        state=SimpleNamespace(global_step=global_step, num_input_tokens_seen=0),
        accelerator=SimpleNamespace(device=torch.device("cpu"), gather=lambda t: t, process_index=0),
        use_vllm=False,
        tools=None,
        environment_factories=None,
        eos_token_ids=[tokenizer.eos_token_id],
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )
    return trainer


def grouped_prompts(env_seeds, num_generations):
    """What TRL's RepeatSampler hands the rollout function: each dataset prompt repeated, consecutively."""
    dataset = make_prompt_dataset(make_env, env_seeds)
    return [row["prompt"] for row in dataset for _ in range(num_generations)]


def test_prompt_dataset_carries_env_seed():
    """Each prompt is the episode's real opening conversation, and the env seed is recoverable from it."""
    dataset = make_prompt_dataset(make_env, [5, 9])
    assert dataset["env_seed"] == [5, 9]
    for row, seed in zip(dataset, [5, 9], strict=True):
        obs, _ = make_env().reset(seed=seed)
        assert [m["content"] for m in row["prompt"]] == [m["content"] for m in obs]
        assert env_seed_of(row["prompt"]) == seed
    assert env_seed_of("env_seed=17") == 17
    with pytest.raises(ValueError, match="env seed"):
        env_seed_of([{"role": "user", "content": "hi"}])


def test_rollout_func_contract(tiny_policy):
    """Keys, lengths, env_mask alignment, group seeds: checked directly and through TRL's own ``_generate``."""
    model, tokenizer = tiny_policy
    seen = []
    rollout = make_rollout_func(
        make_env,
        max_new_tokens=8,
        max_completion_tokens=200,
        seed=3,
        on_episodes=lambda episodes, batch: seen.append((episodes, batch)),
    )
    prompts = grouped_prompts([11, 12], num_generations=3)
    trainer = fake_trainer(model, tokenizer, rollout)
    out = rollout(prompts, trainer)
    episodes = seen[-1][0]

    n = len(prompts)
    for key in (
        *REQUIRED,
        "env_reward",
        "score",
        "turns",
        "env_seed",
        "policy_seed",
        *[f"component_{c}" for c in COMPONENTS],
    ):
        assert key in out and len(out[key]) == n, key
    assert out["env_seed"] == [11, 11, 11, 12, 12, 12]  # a group replays one env seed ...
    assert (
        len(set(out["policy_seed"][:3])) == 3 and len(set(out["policy_seed"][3:])) == 3
    )  # ... with distinct policy seeds
    eos = tokenizer.eos_token_id
    for i in range(n):
        ids, mask, logps = out["completion_ids"][i], out["env_mask"][i], out["logprobs"][i]
        assert len(ids) == len(mask) == len(logps) > 0
        assert set(mask) <= {0, 1} and mask[0] == 1  # the policy speaks first
        assert all(lp == 0.0 for lp, m in zip(logps, mask, strict=True) if m == 0)
        assert all(lp <= 0.0 for lp in logps)
        assert ids[-1] == eos  # ends with the policy's closed reply: never "truncated" for TRL
        # the prompt is the opening user message of this env seed
        obs, _ = make_env().reset(seed=out["env_seed"][i])
        assert obs[-1]["content"] in tokenizer.decode(out["prompt_ids"][i])
        # env_mask 0 spans are exactly the user's later turns (plus template headers), in order
        spans, current = [], []
        for t, m in zip(ids, mask, strict=True):
            if m == 0:
                current.append(t)
            elif current:
                spans.append(tokenizer.decode(current, skip_special_tokens=True))
                current = []
        later_user_turns = [m["content"] for m in episodes[i].transcript if m["role"] == "user"][1:]
        assert len(spans) == len([s for s in spans if s.strip()]) >= len(later_user_turns) - 1
        for text, span in zip(later_user_turns, spans, strict=False):
            assert text.strip() in span
        # the policy tokens decode to the assistant replies
        replies = [m["content"] for m in episodes[i].transcript if m["role"] == "assistant"]
        assert len(replies) == out["turns"][i]
        # the reward is the weighted sum of the component totals under the env's config
        totals = {c: out[f"component_{c}"][i] for c in COMPONENTS}
        assert out["env_reward"][i] == pytest.approx(make_env().reward_config.weighted(totals))
    # another call (next step) -> different policy seeds, same env seeds
    trainer.state.global_step = 1
    again = rollout(prompts, trainer)
    assert again["env_seed"] == out["env_seed"] and again["policy_seed"] != out["policy_seed"]

    # TRL's _generate accepts the dict: env_mask becomes the tool mask, extras go to the reward functions
    prompt_ids, completion_ids, tool_mask, completions, logprobs, extra, _, _ = trainer._generate(prompts)
    batch = seen[-1][1]
    assert (
        tool_mask == batch["env_mask"]
        and completion_ids == batch["completion_ids"]
        and prompt_ids == batch["prompt_ids"]
    )
    assert "env_mask" not in extra and {"env_reward", "score", "component_clarification"} <= set(extra)
    mode = "train" if model.training else "eval"
    assert trainer._metrics[mode]["completions/mean_length"][-1] == pytest.approx(sum(map(sum, tool_mask)) / n)
    assert env_reward(completions, **{k: extra[k] for k in ("env_reward", "score", "turns")}) == extra["env_reward"]
    assert component_reward("clarification", 2.0)(completions, **extra) == [
        2.0 * v for v in extra["component_clarification"]
    ]


def test_rollout_func_same_seed_same_group_is_reproducible(tiny_policy):
    """Same run seed and step -> identical episodes (deterministic policy seeds)."""
    model, tokenizer = tiny_policy
    prompts = grouped_prompts([4], num_generations=2)
    a = make_rollout_func(make_env, max_new_tokens=6, seed=1)(prompts, fake_trainer(model, tokenizer))
    b = make_rollout_func(make_env, max_new_tokens=6, seed=1)(prompts, fake_trainer(model, tokenizer))
    assert a["completion_ids"] == b["completion_ids"] and a["policy_seed"] == b["policy_seed"]


def test_grpo_two_steps_end_to_end(tmp_path):
    """``training/grpo.py`` runs two real GRPO steps on the tiny policy with the replay user and changes the weights."""
    from transformers import AutoModelForCausalLM

    cmd = [
        sys.executable,
        str(REPO / "training" / "grpo.py"),
        "--preset",
        "tiny",
        "--max_steps",
        "2",
        "--eval_episodes",
        "2",
        "--num_train_tasks",
        "8",
        "--output_dir",
        str(tmp_path),
        "--no_rich",
        "--run_name",
        "e2e",
        "--num_threads",
        "1",
    ]
    subprocess.run(cmd, check=True, cwd=REPO, timeout=600)
    run = tmp_path / "e2e"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if x["kind"] == "train"]
    assert [x["step"] for x in train] == [1, 2]
    assert {"train/reward", "train/score", "train/turns", "losses/loss"} <= set(train[0])
    assert [x["step"] for x in lines if x["kind"] == "eval"] == [0, 2]
    before = AutoModelForCausalLM.from_pretrained(tmp_path / "_models" / "tiny_policy").state_dict()
    after = AutoModelForCausalLM.from_pretrained(run / "final").state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "GRPO did not change any parameter"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["eval_start"]["step"] == 0


def test_parse_args_presets_and_validation():
    """--preset sets defaults, explicit flags win, impossible combinations raise."""
    from training.grpo import Args, parse_args

    args = parse_args(["--preset", "smollm2-cpu", "--max_steps", "3"])
    assert args.policy == "smollm2-135m" and args.use_lora and args.max_steps == 3
    assert args.run_name == parse_args(["--preset", "smollm2-cpu", "--max_steps", "3"]).run_name  # deterministic
    assert args.batch_size == args.prompts_per_step * args.num_generations
    with pytest.raises(ValueError, match="num_generations"):
        Args(num_generations=1)
    with pytest.raises(ValueError, match="eval_seed_offset"):
        Args(num_train_tasks=10, eval_seed_offset=5)


# ---------------------------------------------------------------------------------------------
# The loss mask: user tokens in the completion get no gradient, policy tokens do
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grpo_trainer(tiny_policy, tmp_path_factory):
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = tiny_policy
    config = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo_mask")),
        use_cpu=True,
        per_device_train_batch_size=2,
        num_generations=2,
        report_to="none",
        max_steps=1,
        temperature=1.0,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[env_reward],
        args=config,
        train_dataset=make_prompt_dataset(make_env, range(2)),
        rollout_func=make_rollout_func(make_env, max_new_tokens=8),
    )
    trainer.current_gradient_accumulation_steps = 1  # set by train(); compute_loss reads it
    return trainer


def _episode_ending_with_user_turn(trainer):
    """A real episode cut right after its last user turn: (prompt_ids, completion_ids, env_mask, trailing env span)."""
    rollout = make_rollout_func(make_env, max_new_tokens=8, max_completion_tokens=300, seed=5)
    out = rollout(grouped_prompts([21], 1), fake_trainer(trainer.model, trainer.processing_class))
    ids, mask = out["completion_ids"][0], out["env_mask"][0]
    starts = [j for j in range(1, len(mask)) if mask[j - 1] == 0 and mask[j] == 1]
    assert starts, "the episode needs at least two assistant turns"
    end = starts[-1]  # start of the last policy reply: cut there, the completion now ends with the user's turn
    begin = max(j for j in range(end) if mask[j] == 1) + 1
    assert all(m == 0 for m in mask[begin:end]) and end - begin > 3
    return out["prompt_ids"][0], ids[:end], mask[:end], (begin, end)


def _loss_grads(trainer, prompt_ids, completion_ids, env_mask):
    """Gradient of TRL's GRPO loss (advantage 1, on-policy) w.r.t. every parameter."""
    model = trainer.model
    model.zero_grad(set_to_none=True)
    model.train()
    mask = torch.tensor([env_mask])
    inputs = {
        "prompt_ids": torch.tensor([prompt_ids]),
        "prompt_mask": torch.ones(1, len(prompt_ids), dtype=torch.long),
        "completion_ids": torch.tensor([completion_ids]),
        "completion_mask": torch.ones(1, len(completion_ids), dtype=torch.long),
        "tool_mask": mask,
        "advantages": torch.tensor([1.0]),
        "num_items_in_batch": mask.sum(),
    }
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()


def test_env_tokens_get_no_gradient(grpo_trainer):
    """Perturbing the user's tokens (env_mask 0) leaves the loss gradient unchanged; a policy token changes it."""
    prompt_ids, ids, mask, (begin, end) = _episode_ending_with_user_turn(grpo_trainer)
    vocab = grpo_trainer.model.config.vocab_size
    reference = _loss_grads(grpo_trainer, prompt_ids, ids, mask)
    assert reference.abs().sum() > 0

    perturbed = list(ids)
    for j in range(begin, end):  # every token of the trailing user turn replaced by another id
        perturbed[j] = (perturbed[j] + 7) % vocab
    assert perturbed != ids
    assert torch.allclose(_loss_grads(grpo_trainer, prompt_ids, perturbed, mask), reference, atol=1e-7, rtol=0)

    policy_positions = [j for j, m in enumerate(mask) if m == 1]
    changed_policy = list(ids)
    changed_policy[policy_positions[-2]] = (changed_policy[policy_positions[-2]] + 7) % vocab
    assert not torch.allclose(_loss_grads(grpo_trainer, prompt_ids, changed_policy, mask), reference, atol=1e-6)

    # control: without the mask the same user-token perturbation does change the gradient (the test can fail)
    unmasked = [1] * len(mask)
    assert not torch.allclose(
        _loss_grads(grpo_trainer, prompt_ids, perturbed, unmasked),
        _loss_grads(grpo_trainer, prompt_ids, ids, unmasked),
        atol=1e-6,
    )


def test_env_factory_builds_any_registered_env():
    from training.grpo import make_args, make_env_factory
    from userlm_env import UserLMCodeEnv, UserLMMathEnv

    assert isinstance(make_env_factory(make_args("tiny"))(), UserLMMathEnv)
    code_args = make_args("tiny", env="code", tasks="code:procedural")
    env = make_env_factory(code_args)()
    assert isinstance(env, UserLMCodeEnv) and code_args.run_name.startswith("UserLM-Code-v0__grpo__")
    obs, _ = env.reset(seed=0)
    assert obs[-1]["role"] == "user"
