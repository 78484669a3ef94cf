"""training/credit.py: per-turn advantage estimators on hand-computed cases, exact unbiasedness, token layout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from training import credit

# One group of three episodes of different lengths (the policy decided how many turns each lasted).
GROUP = [[1.0, -1.0, 1.0], [1.0, 1.0], [-1.0]]


def _as_lists(advs):
    return [a.tolist() for a in advs]


def _close(advs, expected):
    """Per-episode lists of per-turn advantages equal ``expected`` (ragged, so compared row by row)."""
    got = _as_lists(advs)
    assert len(got) == len(expected)
    for row, want in zip(got, expected, strict=True):
        assert row == pytest.approx(want)


def test_returns_to_go_by_hand():
    assert credit.returns_to_go([1, -1, 1]).tolist() == [1, 0, 1]
    # gamma 0.5: G2 = 1, G1 = -1 + 0.5 * 1 = -0.5, G0 = 1 + 0.5 * -0.5 = 0.75
    assert credit.returns_to_go([1, -1, 1], 0.5).tolist() == [0.75, -0.5, 1.0]
    assert credit.returns_to_go([]).tolist() == []


def test_episode_credit_is_grpo_by_hand():
    # returns 1, 2, -1; mean 2/3: every turn gets R_i - 2/3
    advs = credit.group_turn_advantages(GROUP, "episode")
    _close(advs, [[1 / 3] * 3, [4 / 3] * 2, [-5 / 3]])


def test_return_to_go_credit_by_hand():
    # leave-one-out mean of the others' returns: e0 (2 - 1)/2 = 0.5, e1 (1 - 1)/2 = 0, e2 (1 + 2)/2 = 1.5
    advs = credit.group_turn_advantages(GROUP, "return_to_go")
    _close(advs, [[0.5, -0.5, 0.5], [2.0, 1.0], [-2.5]])


def test_turn_baseline_credit_by_hand():
    # returns-to-go: e0 [1, 0, 1], e1 [2, 1], e2 [-1]
    # e0: t0 others (2, -1) -> b 0.5, A 0.5; t1 only e1 reached it (1) -> A -1; t2 nobody else -> b 0, A 1
    # e1: t0 others (1, -1) -> b 0, A 2; t1 only e0 (0) -> A 1
    # e2: t0 others (1, 2) -> b 1.5, A -2.5
    advs = credit.group_turn_advantages(GROUP, "turn_baseline")
    _close(advs, [[0.5, -1.0, 1.0], [2.0, 1.0], [-2.5]])
    # gamma 0.5: returns-to-go e0 [0.75, -0.5, 1], e1 [1.5, 1], e2 [-1]
    # e0: t0 b (1.5 - 1)/2 = 0.25 -> 0.5; t1 b 1 -> -1.5; t2 -> 1
    advs = credit.group_turn_advantages(GROUP, "turn_baseline", gamma=0.5)
    assert advs[0].tolist() == pytest.approx([0.5, -1.5, 1.0])


def test_turn_advantages_groups_and_scaling():
    # two groups of two; group 2 has all-equal per-turn rewards -> zero advantages, no blow-up by 1/eps
    batch = [[1.0, 0.0], [0.0, 0.0], [1.0], [1.0]]
    none = credit.turn_advantages(batch, 2, "turn_baseline", scale="none")
    # group 1: e0 G [1, 0], e1 G [0, 0] -> e0 [1 - 0, 0 - 0], e1 [0 - 1, 0 - 0]
    _close(none, [[1, 0], [-1, 0], [0], [0]])
    group = credit.turn_advantages(batch, 2, "turn_baseline", scale="group")
    std = np.std([1, 0, -1, 0], ddof=1)
    _close(group[:2], [[1 / (std + 1e-4), 0], [-1 / (std + 1e-4), 0]])
    assert _as_lists(group)[2:] == [[0.0], [0.0]]
    batch_scaled = credit.turn_advantages(batch, 2, "turn_baseline", scale="batch")
    std_all = np.std([1, 0, -1, 0, 0, 0], ddof=1)
    assert batch_scaled[0][0] == pytest.approx(1 / (std_all + 1e-4))
    with pytest.raises(ValueError, match="whole number of groups"):
        credit.turn_advantages(batch[:3], 2, "turn_baseline")
    with pytest.raises(ValueError, match="unknown credit"):
        credit.turn_advantages(batch, 2, "per_token")
    with pytest.raises(ValueError, match="gamma"):
        credit.check_credit("return_to_go", gamma=1.5)


def test_turn_ids_and_token_advantages():
    # completion: policy 2 tokens (turn 0), env 3, policy 1 (turn 1) + an env-closed stop token, env 2, policy 2
    env_mask = [1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1]
    reply_ends = [1, 5, 10]
    ids = credit.turn_ids_of(env_mask, reply_ends)
    assert ids == [0, 0, -1, -1, -1, 1, -1, -1, -1, 2, 2]
    tensor = credit.token_advantages([[0.5, -1.0, 2.0], [3.0]], [ids, [0, 0, -1]], width=12)
    assert tensor.shape == (2, 12)
    assert tensor[0].tolist() == [0.5, 0.5, 0, 0, 0, -1.0, 0, 0, 0, 2.0, 2.0, 0]
    assert tensor[1].tolist() == [3.0, 3.0] + [0.0] * 10
    with pytest.raises(ValueError, match="turn advantages"):
        credit.token_advantages([[1.0]], [[0, 1]], width=2)


# ---------------------------------------------------------------------------------------------
# Exact unbiasedness on a two-turn problem where the policy decides the episode length
# ---------------------------------------------------------------------------------------------

# Turn 0: "answer" (prob sigmoid(th0)) ends the episode with reward 0.3; "ask" pays 1 and goes on.
# Turn 1 (only if reached): "answer" (prob sigmoid(th1)) pays 2, "ask" pays -0.5; the episode ends.
THETA = np.array([0.4, -0.7])
R_ANSWER0, R_ASK0, R_ANSWER1, R_ASK1 = 0.3, 1.0, 2.0, -0.5


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _trajectories(theta):
    """(probability, step rewards, per-turn grad log pi) of every possible episode."""
    p0, p1 = _sig(theta[0]), _sig(theta[1])
    g_ans0, g_ask0 = np.array([1 - p0, 0.0]), np.array([-p0, 0.0])  # d/dtheta log pi for a Bernoulli logit
    g_ans1, g_ask1 = np.array([0.0, 1 - p1]), np.array([0.0, -p1])
    return [
        (p0, [R_ANSWER0], [g_ans0]),
        ((1 - p0) * p1, [R_ASK0, R_ANSWER1], [g_ask0, g_ans1]),
        ((1 - p0) * (1 - p1), [R_ASK0, R_ASK1], [g_ask0, g_ask1]),
    ]


def _true_gradient(theta, eps=1e-6):
    def value(th):
        return sum(p * sum(r) for p, r, _ in _trajectories(th))

    return np.array([(value(theta + eps * e) - value(theta - eps * e)) / (2 * eps) for e in np.eye(2)])


def _expected_estimate(advantages_fn, group_size):
    """E over every group of ``group_size`` independent episodes of the mean per-episode gradient estimate."""
    trajectories = _trajectories(THETA)
    total = np.zeros(2)
    for combo in itertools.product(trajectories, repeat=group_size):
        prob = np.prod([c[0] for c in combo])
        advs = advantages_fn([c[1] for c in combo])
        estimate = sum(sum(g * a for g, a in zip(c[2], adv, strict=True)) for c, adv in zip(combo, advs, strict=True))
        total += prob * estimate / group_size
    return total


@pytest.mark.parametrize("group_size", [2, 3])
@pytest.mark.parametrize("mode", ["return_to_go", "turn_baseline"])
def test_estimators_are_exactly_unbiased(mode, group_size):
    """E[sum_t grad log pi(a_t) A_t] equals grad E[return] exactly, with policy-dependent episode lengths."""
    expected = _expected_estimate(lambda rs: credit.group_turn_advantages(rs, mode), group_size)
    assert expected == pytest.approx(_true_gradient(THETA), abs=1e-6)


def test_baseline_including_the_episode_itself_would_be_biased():
    """Control: the per-turn mean *including* episode i depends on a_t, and the estimate is off (the test can fail)."""

    def self_inclusive(rewards):
        rtg = [credit.returns_to_go(r) for r in rewards]
        return [np.array([g[t] - np.mean([h[t] for h in rtg if len(h) > t]) for t in range(len(g))]) for g in rtg]

    biased = _expected_estimate(self_inclusive, 2)
    truth = _true_gradient(THETA)
    assert not np.allclose(biased, truth, atol=1e-3)
    assert not np.allclose(biased / np.linalg.norm(biased), truth / np.linalg.norm(truth), atol=1e-3)


def test_token_advantages_are_float32_tensor():
    out = credit.token_advantages([[1.0]], [[0]], width=1)
    assert out.dtype == torch.float32 and out.tolist() == [[1.0]]


# ---------------------------------------------------------------------------------------------
# GRPO (TRL) with per-turn credit: the per-token advantages reach the loss
# ---------------------------------------------------------------------------------------------

LENGTH_REWARD = "lic:length=1"  # every turn pays its reply's length: per-turn rewards that vary, whatever the policy


def _make_env():
    from userlm_env.envs.math_env import UserLMMathEnv

    return UserLMMathEnv(user="replay", tasks="procedural", reward=LENGTH_REWARD, max_turns=3)


@pytest.mark.filterwarnings("ignore:.*episodes will be truncated:UserWarning")
@pytest.mark.parametrize("mode", ["return_to_go", "turn_baseline"])
def test_grpo_per_token_advantages_reach_the_loss(mode, tmp_path):
    """One real TRL step: the loss sees (B, T) advantages that differ across the turns of a completion, equal
    to training.credit's on the rollout, 0 on env tokens; and they change the gradient (not just its scale)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from training.grpo import credit_trainer_class
    from training.rollout_func import env_reward, make_prompt_dataset, make_rollout_func
    from userlm_env.testing import build_tiny_chat_model

    path = build_tiny_chat_model(tmp_path / "policy", seed=0)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    rollouts = []
    config = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        per_device_train_batch_size=4,
        num_generations=2,
        max_steps=1,
        report_to="none",
        temperature=1.0,
        scale_rewards="none",
        max_completion_length=200,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = credit_trainer_class()(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[env_reward],
        args=config,
        train_dataset=make_prompt_dataset(_make_env, range(4)),
        rollout_func=make_rollout_func(
            _make_env, max_new_tokens=8, max_completion_tokens=200, on_episodes=lambda e, b: rollouts.append(b)
        ),
        credit=mode,
        gamma=0.9,
    )
    seen = []
    original = trainer._compute_loss

    def spy(model, inputs):
        seen.append({k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()})
        return original(model, inputs)

    trainer._compute_loss = spy
    trainer.train()
    assert len(rollouts) == 1 and seen
    batch, inputs = rollouts[0], seen[0]
    advantages = inputs["advantages"]
    completion_ids = inputs["completion_ids"]
    loss_mask = inputs["completion_mask"] * inputs["tool_mask"]
    assert advantages.shape == completion_ids.shape
    assert torch.all(advantages[loss_mask == 0] == 0)  # env tokens and padding: no advantage (and no loss)

    # the advantages are training.credit's, computed on the whole group (rows were shuffled by TRL: match by ids)
    expected_turns = credit.turn_advantages(batch["step_rewards"], 2, mode, gamma=0.9, scale="none")
    differs_across_turns = False
    for row in range(completion_ids.shape[0]):
        n = int(inputs["completion_mask"][row].sum())
        i = batch["completion_ids"].index(completion_ids[row, :n].tolist())
        want = credit.token_advantages([expected_turns[i]], [batch["turn_ids"][i]], completion_ids.shape[1])[0]
        assert torch.allclose(advantages[row], want, atol=1e-6)
        values = {round(float(a), 6) for a in advantages[row][loss_mask[row] > 0]}
        differs_across_turns |= len(values) > 1
    assert differs_across_turns, "every completion got a single advantage: per-turn credit did not reach the loss"

    # the per-token advantages drive the gradient: a row-constant advantage with the same masked sum gives the
    # same loss value on-policy but a different gradient
    def grads(adv):
        trainer.model.zero_grad(set_to_none=True)
        loss = trainer.compute_loss(trainer.model, {**inputs, "advantages": adv})
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])

    row_mean = (advantages * loss_mask).sum(1, keepdim=True) / loss_mask.sum(1, keepdim=True).clamp(min=1)
    loss_a, grad_a = grads(advantages)
    loss_b, grad_b = grads(row_mean.expand_as(advantages) * loss_mask)
    assert loss_a == pytest.approx(loss_b, abs=1e-6)
    assert not torch.allclose(grad_a, grad_b, atol=1e-7)


def test_grpo_args_credit_flags():
    from training.grpo import Args, parse_args

    args = parse_args(["--preset", "tiny", "--credit", "turn_baseline", "--gamma", "0.9", "--per_device_episodes", "2"])
    assert (args.credit, args.gamma, args.batch_size) == ("turn_baseline", 0.9, 2)
    assert parse_args(["--preset", "tiny"]).credit == "episode"
    with pytest.raises(ValueError, match="unknown credit"):
        Args(credit="token")
    with pytest.raises(ValueError, match="gamma"):
        Args(credit="return_to_go", gamma=2.0)
