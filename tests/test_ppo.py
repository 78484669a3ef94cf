"""training/ppo.py: GAE with masks, the loss has no terms at env (user) tokens, end-to-end iterations, resume."""

from __future__ import annotations

import json

import pytest
import torch

from training import ppo
from training.episodes import EpisodeTokens
from userlm_env.testing import build_tiny_chat_model

pytestmark = pytest.mark.filterwarnings("ignore:.*episodes will be truncated:UserWarning")


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("ppo_tiny_chat"))


def tiny_args(tmp_path, model, **overrides) -> ppo.Args:
    settings = dict(
        policy=str(model),
        output_dir=str(tmp_path),
        num_iterations=2,
        episodes_per_iteration=4,
        num_minibatches=2,
        update_epochs=2,
        max_turns=2,
        max_new_tokens=8,
        max_completion_tokens=96,
        eval_episodes=0,
        learning_rate=1e-3,
    )
    settings.update(overrides)
    return ppo.Args(**settings)


# --------------------------------------------------------------------------- GAE


def test_gae_skips_env_tokens_by_hand():
    # positions: p0 p1 [env env] p2 [env], reward 1 on p1 (end of turn 1) and 2 on p2 (end of episode)
    mask = torch.tensor([[1.0, 1, 0, 0, 1, 0]])
    values = torch.tensor([[0.5, 0.4, 9.0, 9.0, 0.2, 9.0]])  # values at env positions must be ignored
    rewards = torch.tensor([[0.0, 1.0, 0, 0, 2.0, 0]])
    gamma, lam = 0.9, 0.5
    adv, ret = ppo.compute_gae(rewards, values * mask, mask, gamma, lam)
    # by hand: p2 is last: delta2 = 2 - 0.2 = 1.8, A2 = 1.8
    # p1 bootstraps from p2 (skipping the env tokens): delta1 = 1 + 0.9*0.2 - 0.4 = 0.78; A1 = 0.78 + 0.45*1.8 = 1.59
    # p0: delta0 = 0 + 0.9*0.4 - 0.5 = -0.14; A0 = -0.14 + 0.45*1.59 = 0.5755
    expected = torch.tensor([[0.5755, 1.59, 0, 0, 1.8, 0]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[1.0755, 1.99, 0, 0, 2.0, 0]]), atol=1e-6)


def test_gae_with_lambda_one_gamma_one_is_return_to_go_minus_value():
    mask = torch.tensor([[0.0, 1, 1, 0, 0, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0]])
    rewards = torch.zeros(2, 8)
    rewards[0, 2], rewards[0, 6], rewards[1, 3] = 1.0, -0.5, 3.0
    values = torch.rand(2, 8) * mask
    adv, ret = ppo.compute_gae(rewards, values, mask, 1.0, 1.0)
    to_go = torch.tensor([[0, 0.5, 0.5, 0, 0, -0.5, -0.5, 0], [3.0, 3, 3, 3, 0, 0, 0, 0]])
    assert torch.allclose(ret, to_go, atol=1e-6)
    assert torch.allclose(adv, (to_go - values) * mask, atol=1e-6)


# --------------------------------------------------------------------------- batches and masking


def fake_episodes():
    # prompt of 3 tokens; completion: policy 2 tokens, env 3 tokens, policy 2 tokens
    a = EpisodeTokens(
        prompt_ids=[1, 5, 6],
        completion_ids=[7, 8, 9, 10, 11, 12, 13],
        env_mask=[1, 1, 0, 0, 0, 1, 1],
        logprobs=[-1.0, -2.0, 0, 0, 0, -0.5, -0.7],
        reward=1.5,
        step_rewards=[0.5, 1.0],
        reply_ends=[1, 6],
    )
    b = EpisodeTokens(
        prompt_ids=[1, 5],
        completion_ids=[7, 8, 9],
        env_mask=[1, 0, 1],
        logprobs=[-0.1, 0, -0.2],
        reward=-1.0,
        step_rewards=[0.0, -1.0],
        reply_ends=[0, 2],
    )
    return [a, b]


def test_make_batch_aligns_targets_masks_and_step_rewards():
    batch = ppo.make_batch(fake_episodes(), pad_id=0)
    assert batch["input_ids"][0].tolist() == [1, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    # prediction column t predicts token t+1: the completion starts at column len(prompt) - 1
    assert batch["targets"][0, 2:].tolist() == [7, 8, 9, 10, 11, 12, 13]
    assert batch["mask"][0].tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 1]
    assert batch["rewards"][0].tolist() == [0, 0, 0, 0.5, 0, 0, 0, 0, 1.0]
    assert batch["old_logprobs"][0, 2:].tolist() == pytest.approx([-1.0, -2.0, 0, 0, 0, -0.5, -0.7])
    assert batch["mask"][1].tolist() == [0, 1, 0, 1, 0, 0, 0, 0, 0]
    assert batch["rewards"][1].tolist() == [0, 0, 0, -1.0, 0, 0, 0, 0, 0]
    assert batch["attention_mask"][1].tolist() == [1] * 5 + [0] * 5
    # rewards only ever sit on policy tokens, and they add up to the episode return
    assert torch.all(batch["rewards"][batch["mask"] == 0] == 0)
    assert batch["rewards"].sum(1).tolist() == [1.5, -1.0]


def policy_loss_and_logit_grad(logits, targets, batch, advantages, old):
    logits = logits.detach().clone().requires_grad_(True)
    new = ppo.token_logprobs(logits, targets)
    per_token, _ = ppo.ppo_token_losses(new, old, advantages, batch["mask"], clip_coef=0.2)
    loss = per_token.sum() / batch["mask"].sum()
    loss.backward()
    return per_token.detach(), loss.detach(), logits.grad


def test_policy_loss_has_no_terms_at_env_tokens():
    torch.manual_seed(0)
    batch = ppo.make_batch(fake_episodes(), pad_id=0)
    logits = torch.randn(*batch["targets"].shape, 20)
    advantages = torch.randn(batch["mask"].shape)  # deliberately nonzero everywhere, env positions included
    env = batch["mask"] == 0
    # sampling logprobs near the current ones (ratios 0.9-1.1, mostly inside the clip range)
    old = ppo.token_logprobs(logits, batch["targets"]) + 0.1 * torch.rand(batch["mask"].shape) - 0.05
    per_token, loss, grad = policy_loss_and_logit_grad(logits, batch["targets"], batch, advantages, old)
    assert torch.all(per_token[env] == 0)
    assert torch.all(grad[env] == 0) and grad[~env].abs().sum() > 0

    # what would be predicted at env positions (the user's tokens as targets) does not matter ...
    perturbed = batch["targets"].clone()
    perturbed[env] = (perturbed[env] + 7) % 20
    _, loss2, grad2 = policy_loss_and_logit_grad(logits, perturbed, batch, advantages, old)
    assert loss2 == loss and torch.equal(grad2, grad)
    # ... and neither do the logits there (even non-finite ones) ...
    garbage = logits.clone()
    garbage[env] = 1e30
    _, loss3, grad3 = policy_loss_and_logit_grad(garbage, batch["targets"], batch, advantages, old)
    assert loss3 == loss and torch.equal(grad3[~env], grad[~env])
    # ... while a policy token's target does
    changed = batch["targets"].clone()
    row, col = (batch["mask"] > 0).nonzero()[0].tolist()
    changed[row, col] = (changed[row, col] + 3) % 20
    _, loss4, grad4 = policy_loss_and_logit_grad(logits, changed, batch, advantages, old)
    assert loss4 != loss and not torch.equal(grad4, grad)


def test_kl_estimators():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    assert torch.allclose(ppo.kl_penalty(logp, ref, "k1"), logp - ref)
    k3 = ppo.kl_penalty(logp, ref, "k3")
    assert torch.all(k3 >= 0) and torch.allclose(k3, torch.exp(ref - logp) - 1 - (ref - logp))
    assert torch.all(ppo.kl_penalty(logp, logp, "k3") == 0)


def test_args_validation_and_cli(tmp_path):
    with pytest.raises(ValueError, match="num_minibatches"):
        ppo.Args(episodes_per_iteration=6, num_minibatches=4)
    with pytest.raises(ValueError, match="kl_estimator"):
        ppo.Args(kl_estimator="k2")
    args = ppo.parse_args(["--seed", "3", "--kl_estimator", "k3", "--no_norm_adv", "--output_dir", str(tmp_path)])
    assert (args.seed, args.kl_estimator, args.norm_adv, args.run_name) == (
        3,
        "k3",
        False,
        "UserLM-Math-v0__ppo__tiny__3",
    )
    assert args.minibatch_size == args.episodes_per_iteration // args.num_minibatches


# --------------------------------------------------------------------------- end to end


def test_two_iterations_end_to_end_change_params(tmp_path, tiny_chat):
    args = tiny_args(tmp_path, tiny_chat, kl_estimator="k3")
    before = {n: p.detach().clone() for n, p in ppo.load_policy(args)[0].named_parameters()}
    ppo.main(args)
    run_dir = tmp_path / args.run_name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2]
    for r in records:
        for key in ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl", "charts/reward"):
            assert torch.isfinite(torch.tensor(r[key])), (key, r[key])
        assert r["charts/turns"] > 0 and r["charts/SPS"] > 0
    assert records[1]["global_step"] > records[0]["global_step"] > 0
    state = torch.load(run_dir / "checkpoint" / "state.pt", weights_only=False)
    assert state["iteration"] == 2
    changed = [n for n, p in state["policy"].items() if not torch.equal(p, before[n])]
    assert len(changed) == len(state["policy"]) > 0  # every trained tensor moved
    assert state["value_head"]["weight"].abs().sum() > 0  # the value head (zero-initialised) learned


def test_lora_policy_trains_only_adapters(tmp_path, tiny_chat):
    args = tiny_args(tmp_path, tiny_chat, num_iterations=1, lora_r=4)
    record = ppo.main(args)
    assert torch.isfinite(torch.tensor(record["losses/policy_loss"]))
    state = torch.load(tmp_path / args.run_name / "checkpoint" / "state.pt", weights_only=False)
    assert state["policy"] and all("lora_" in n for n in state["policy"])
    # the reference (adapters disabled) starts equal to the policy: zero KL on the first rollout
    assert abs(record["losses/kl_ref"]) < 1e-4


def test_resume_continues_the_iteration_counter(tmp_path, tiny_chat):
    args = tiny_args(tmp_path, tiny_chat, num_iterations=1)
    ppo.main(args)
    first = torch.load(tmp_path / args.run_name / "checkpoint" / "state.pt", weights_only=False)
    resumed = ppo.main(tiny_args(tmp_path, tiny_chat, num_iterations=2))
    assert resumed["iteration"] == 2
    lines = [json.loads(x) for x in (tmp_path / args.run_name / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == [1, 2]  # iteration 1 is not redone
    assert lines[1]["global_step"] > lines[0]["global_step"]
    second = torch.load(tmp_path / args.run_name / "checkpoint" / "state.pt", weights_only=False)
    assert second["iteration"] == 2
    assert any(not torch.equal(first["policy"][n], second["policy"][n]) for n in first["policy"])
    # a run that is already finished does nothing more
    assert ppo.main(tiny_args(tmp_path, tiny_chat, num_iterations=2)) == {}


def test_resume_matches_an_uninterrupted_run(tmp_path, tiny_chat):
    straight = ppo.main(tiny_args(tmp_path / "a", tiny_chat, num_iterations=2))
    ppo.main(tiny_args(tmp_path / "b", tiny_chat, num_iterations=1))
    resumed = ppo.main(tiny_args(tmp_path / "b", tiny_chat, num_iterations=2))
    for key in ("charts/reward", "charts/policy_tokens", "losses/policy_loss", "losses/value_loss"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-4, abs=1e-6), key


def test_collected_episodes_carry_step_rewards_on_policy_tokens(tiny_chat):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.episodes import collect_episodes
    from userlm_env.backends.transformers_backend import SamplingParams
    from userlm_env.envs.math_env import UserLMMathEnv

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_chat), AutoTokenizer.from_pretrained(tiny_chat)
    episodes = collect_episodes(
        model,
        tokenizer,
        lambda: UserLMMathEnv(user="replay", reward="shaped", max_turns=3),
        [0, 1, 2],
        [0, 1, 2],
        sampling=SamplingParams(max_new_tokens=6, temperature=1.0, top_p=1.0),
        max_completion_tokens=200,
    )
    for e in episodes:
        assert len(e.step_rewards) == len(e.reply_ends) == e.turns > 0
        assert sum(e.step_rewards) == pytest.approx(e.reward)
        assert all(e.env_mask[i] == 1 for i in e.reply_ends)
        assert e.reply_ends == sorted(e.reply_ends)
        # each reply's last policy token is followed by an env token or ends the episode
        assert all(i + 1 == len(e.env_mask) or e.env_mask[i + 1] == 0 for i in e.reply_ends)


def test_eval_only_scores_the_checkpoint_without_training(tmp_path, tiny_chat):
    ppo.main(tiny_args(tmp_path, tiny_chat, num_iterations=1))
    record = ppo.main(tiny_args(tmp_path, tiny_chat, num_iterations=5, eval_only=True, eval_episodes=2))
    assert record["iteration"] == 1 and record["eval/turns"] > 0
    state = torch.load(
        tmp_path / f"UserLM-Math-v0__ppo__{tiny_chat.name}__1" / "checkpoint" / "state.pt", weights_only=False
    )
    assert state["iteration"] == 1


def test_trains_on_any_registered_env(tmp_path, tiny_chat):
    """``--env code`` trains in UserLM-Code-v0 (its default task source) with the same script."""
    record = ppo.main(tiny_args(tmp_path, tiny_chat, env="code", num_iterations=1))
    assert record["iteration"] == 1
    assert (tmp_path / f"UserLM-Code-v0__ppo__{tiny_chat.name}__1" / "metrics.jsonl").exists()


def test_presets_and_parser_shared_with_grpo():
    args = ppo.parse_args(["--preset", "smollm2-cpu", "--env", "code", "--max_turns", "3"])
    assert (args.policy, args.lora_r, args.max_turns, args.env) == ("smollm2-135m", 16, 3, "code")
    assert args.run_name.startswith("UserLM-Code-v0__ppo__smollm2-135m")
    with pytest.raises(SystemExit, match="unknown --preset"):
        ppo.parse_args(["--preset", "nope"])
