# docs and experiment results: training/PPO.md
"""PPO for an LLM assistant policy in UserLM-Math-v0, in one file (CleanRL style).

Each iteration plays whole multi-turn episodes with :func:`training.episodes.collect_episodes`,
scores every policy token with a value head and a frozen reference model, runs GAE across the
assistant tokens of each episode (the user's tokens are context only: no loss, and GAE skips
them), and takes several epochs of clipped PPO minibatch steps.

    python -m training.ppo --preset tiny                 # CPU, tiny policy, replay user (seconds an iteration)
    python -m training.ppo --preset smollm2-cpu          # CPU, bundled SmolLM2-135M + LoRA (minutes an iteration)
    python -m training.ppo --policy HuggingFaceTB/SmolLM2-1.7B-Instruct --lora_r 32 --device cuda --env code
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from training import args as args_lib
from training.episodes import EpisodeTokens, collect_episodes, episode_summary
from userlm_env.backends.transformers_backend import SamplingParams
from userlm_env.envs import check_env_specs, make_env_task_source, make_unwrapped_env
from userlm_env.envs.math_env import UserLMMathEnv
from userlm_env.seeding import derive_seeds


@dataclass
class Args:
    """Command-line arguments (every field is a flag: `--name value`)."""

    preset: str = "tiny"
    """named defaults: `tiny` (CPU, warm-started tiny policy), `smollm2-cpu` (CPU, bundled SmolLM2-135M +
    LoRA); explicit flags override them"""
    exp_name: str = "ppo"
    """name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of python, numpy, torch and of the episodes' env/policy seeds"""
    torch_deterministic: bool = True
    """use deterministic torch algorithms"""
    threads: int = 1
    """torch intra-op threads (1 suits small CPU runs on a shared machine)"""
    device: str = "cpu"
    """torch device of the policy, reference model and value head"""
    output_dir: str = "runs"
    """where runs/<run_name>/ (metrics.jsonl, checkpoint/, events) go"""
    run_name: str | None = None
    """default: <env>__<exp_name>__<policy>__<seed>; a run with the same name resumes from its checkpoint"""
    resume: bool = True
    """continue from <output_dir>/<run_name>/checkpoint when it exists"""
    track: bool = False
    """also write TensorBoard events (needs the `tensorboard` package)"""
    save_every: int = 1
    """save a checkpoint every this many iterations (and at the end)"""

    # Model
    policy: str = "tiny"
    """policy: "tiny" (a warm-started tiny Llama, see build_tiny_policy), "smollm2-135m", a path or hub id"""
    lora_r: int = 0
    """LoRA rank on the policy (0 = train all weights); with LoRA the reference is the base model"""
    lora_alpha: int = 32
    """LoRA alpha"""

    # Environment
    env: str = "UserLM-Math-v0"
    """any registered env id (`UserLM-Math-v0`, `UserLM-Code-v0`; or `math` / `code`)"""
    user: str = "replay"
    """who plays the user (see userlm_env.users)"""
    user_population: str = ""
    """users drawn per episode (the member is a function of the env seed), e.g. `replay:0.5,prompted:smollm2-135m:0.5`
    or JSON `[["replay", 1], [{"user": "replay", "reveal": "responsive"}, 1]]`; members without a user use --user;
    empty = --user only (userlm_env.envs.population)"""
    tasks: str = ""
    """task source spec of the env (see userlm_env.tasks, userlm_env.code.tasks); empty = the env's default"""
    reward: str = "lic:clarification=1,premature_answer=-1"
    """reward preset with overrides (see userlm_env.rewards)"""
    max_turns: int = 3
    """assistant replies per episode before truncation"""
    system_prompt: str | None = None
    """system message shown to the policy only"""

    # Algorithm specific arguments
    num_iterations: int = 12
    """PPO iterations (rollout + update)"""
    episodes_per_iteration: int = 16
    """episodes collected per iteration (the batch)"""
    max_new_tokens: int = 24
    """token limit of one assistant reply"""
    max_completion_tokens: int = 256
    """token limit of a whole episode after the prompt"""
    temperature: float = 1.0
    """sampling temperature; the training logits are divided by it as well"""
    learning_rate: float = 1e-4
    """Adam learning rate of the policy"""
    value_learning_rate: float = 1e-3
    """Adam learning rate of the value head (fresh, so larger)"""
    update_epochs: int = 4
    """epochs over the batch per iteration"""
    num_minibatches: int = 4
    """minibatches per epoch (of whole episodes)"""
    gamma: float = 1.0
    """discount per policy token"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    norm_adv: bool = True
    """whiten advantages over the batch's policy tokens"""
    clip_coef: float = 0.2
    """policy ratio clip"""
    clip_vloss: bool = True
    """clip the value loss around the rollout values"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    ent_coef: float = 0.0
    """entropy bonus coefficient"""
    kl_coef: float = 0.05
    """per-token KL penalty coefficient (against the frozen reference)"""
    kl_estimator: str = "k1"
    """per-token KL estimator: k1 (logp - ref) or k3 ((r - 1) - log r, r = ref/p)"""
    max_grad_norm: float = 1.0
    """global gradient-norm clip"""
    target_kl: float | None = None
    """stop the epochs early when approx_kl exceeds this"""
    eval_episodes: int = 32
    """held-out episodes evaluated before training and after the last iteration (0 = none)"""
    eval_every: int = 0
    """also evaluate every this many iterations (0 = only start and end)"""
    eval_only: bool = False
    """evaluate the checkpoint (or the untrained policy) on the held-out episodes, log it, and exit"""

    # to be filled in runtime
    minibatch_size: int = 0
    """episodes per minibatch (computed)"""

    def __post_init__(self):
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {self.kl_estimator!r}")
        if self.episodes_per_iteration % self.num_minibatches:
            raise ValueError(
                f"episodes_per_iteration={self.episodes_per_iteration} is not divisible by "
                f"num_minibatches={self.num_minibatches}; pick values that divide"
            )
        if self.max_completion_tokens < self.max_new_tokens:
            raise ValueError(
                f"max_completion_tokens={self.max_completion_tokens} < max_new_tokens={self.max_new_tokens}"
            )
        self.minibatch_size = self.episodes_per_iteration // self.num_minibatches
        env_id = check_env_specs(self.env, tasks=self.tasks, reward=self.reward)  # typos fail before models load
        args_lib.parse_user_population(self.user_population)  # a malformed population fails here too
        self.run_name = self.run_name or f"{env_id}__{self.exp_name}__{Path(self.policy).name}__{self.seed}"


PRESETS: dict[str, dict] = {
    "tiny": dict(policy="tiny"),
    "smollm2-cpu": dict(
        policy="smollm2-135m",
        lora_r=16,
        threads=2,
        episodes_per_iteration=8,
        num_minibatches=2,
        update_epochs=2,
        max_turns=2,
        max_new_tokens=24,
        temperature=0.8,
        learning_rate=3e-4,
        eval_episodes=32,
        max_completion_tokens=160,
    ),
}
"""Named defaults (``--preset NAME``); explicit flags override them."""


def make_args(preset: str = "tiny", **overrides) -> Args:
    """``Args`` from a preset plus overrides (in-process use: tests, ablations)."""
    return args_lib.make_args(Args, PRESETS, preset, **overrides)


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse the command line (``training/args.py``, as grpo.py): ``--preset`` sets the defaults."""
    return args_lib.parse_args(Args, argv, presets=PRESETS, derived=("minibatch_size",))


TINY_REPLIES = {  # the warm start of the tiny preset: a mixed policy that PPO can sharpen
    "ask": ["Could you tell me the numbers?", "What are the details?", "How many are there?"],
    "answer": ["The answer is 12.", "The answer is 30.", "The answer is 7."],
    "chat": ["Let me think about it.", "Sure, I can help.", "Okay."],
}


def build_tiny_policy(path: str | Path, seed: int = 0) -> Path:
    """A tiny Llama chat model fitted (seconds) to reply with a mix of questions, guesses and chatter.

    Not a language model of any competence: a small, fast, honest stand-in whose initial policy asks
    a clarifying question on about a quarter of its turns, so that the reward for asking is
    learnable in minutes on a CPU.
    """
    from userlm_env.testing import build_tiny_chat_model

    env = UserLMMathEnv(user="replay", tasks="procedural", max_turns=8)
    replies = [r for kind in TINY_REPLIES.values() for r in kind]
    conversations = []
    for s in range(24):
        obs, _ = env.reset(seed=100_000 + s)
        for turn in range(2):
            reply = replies[(s + 4 * turn) % len(replies)]
            conversations.append([*obs, {"role": "assistant", "content": reply}])
            obs, *_ = env.step(reply)
    return build_tiny_chat_model(path, seed=seed, train_on=conversations, train_steps=150, vocab_words=replies)


def load_policy(args: Args):
    """(policy, tokenizer): the causal LM to train, with LoRA adapters when lora_r > 0."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = args.policy
    if args.policy == "tiny":
        source = build_tiny_policy(Path(args.output_dir) / "tiny_policy")
    if args.policy == "smollm2-135m":
        from userlm_env.backends.models import load_model

        loaded = load_model("smollm2-135m", dtype="float32", device="cpu")
        model, tokenizer = copy.deepcopy(loaded.model), loaded.tokenizer
    else:
        model, tokenizer = AutoModelForCausalLM.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if args.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, target_modules="all-linear", lora_dropout=0.0)
        model = get_peft_model(model, config)
    return model.to(args.device), tokenizer


def make_batch(episodes: list[EpisodeTokens], pad_id: int, device="cpu") -> dict[str, torch.Tensor]:
    """Right-padded token tensors of whole episodes, in *prediction* coordinates.

    Column ``t`` of ``targets``/``mask``/``rewards``/``old_logprobs`` is the token at sequence position
    ``t + 1``, predicted from the logits and hidden state at position ``t``. ``mask`` is 1 exactly at
    the policy's own tokens; the env's step reward sits on the last policy token of each reply.
    """
    width = max(len(e.prompt_ids) + len(e.completion_ids) for e in episodes)
    shape = (len(episodes), width)
    input_ids, attention = torch.full(shape, pad_id, dtype=torch.long), torch.zeros(shape, dtype=torch.long)
    mask, rewards, old_logprobs = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape)
    for row, e in enumerate(episodes):
        ids, start = e.prompt_ids + e.completion_ids, len(e.prompt_ids) - 1
        input_ids[row, : len(ids)], attention[row, : len(ids)] = torch.tensor(ids), 1
        n = len(e.completion_ids)
        mask[row, start : start + n] = torch.tensor(e.env_mask, dtype=torch.float)
        old_logprobs[row, start : start + n] = torch.tensor(e.logprobs)
        for end, r in zip(e.reply_ends, e.step_rewards, strict=True):
            rewards[row, start + end] += r
    cut = slice(0, width - 1)
    tensors = {"input_ids": input_ids, "attention_mask": attention, "targets": input_ids[:, 1:],
               "mask": mask[:, cut], "rewards": rewards[:, cut], "old_logprobs": old_logprobs[:, cut]}
    return {k: v.to(device) for k, v in tensors.items()}


def forward(model, value_head: nn.Module | None, input_ids, attention_mask, temperature: float = 1.0):
    """(logits / temperature, values) at every prediction position (sequence length - 1)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=value_head is not None)
    logits = out.logits[:, :-1].float() / temperature
    values = value_head(out.hidden_states[-1][:, :-1].float()).squeeze(-1) if value_head is not None else None
    return logits, values


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probability of each target token under ``logits``."""
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def compute_gae(rewards, values, mask, gamma: float, lam: float):
    """GAE over the masked (policy) positions of each row, skipping env positions.

    The bootstrap of a policy token is the value of the *next policy token* of the same row (0 after
    the last one: the episode ends). Env positions get advantage and return 0 and carry nothing.
    Returns (advantages, returns).
    """
    advantages = torch.zeros_like(values)
    next_value, next_adv = torch.zeros_like(values[:, 0]), torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        m = mask[:, t] > 0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = torch.where(m, adv, torch.zeros_like(adv))
        next_value = torch.where(m, values[:, t], next_value)
        next_adv = torch.where(m, adv, next_adv)
    return advantages, (advantages + values) * mask


def masked_mean(x, mask):
    """Mean of ``x`` over the positions where ``mask`` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def ppo_token_losses(new_logprobs, old_logprobs, advantages, mask, clip_coef: float):
    """Per-token clipped policy loss, exactly 0 at env positions (masked with ``where``, not a product)."""
    ratio = torch.exp(torch.where(mask > 0, new_logprobs - old_logprobs, torch.zeros_like(new_logprobs)))
    loss = torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef))
    return torch.where(mask > 0, loss, torch.zeros_like(loss)), ratio


def kl_penalty(logprobs, ref_logprobs, estimator: str):
    """Per-token KL(policy || reference) estimate from sampled tokens (k1 or k3)."""
    log_ratio = ref_logprobs - logprobs
    return -log_ratio if estimator == "k1" else torch.expm1(log_ratio) - log_ratio


def save_checkpoint(path: Path, model, value_head, optimizer, iteration: int, global_step: int):
    """Write trainable policy weights, value head, optimizer, counters and RNG states to ``path/state.pt``."""
    path.mkdir(parents=True, exist_ok=True)
    trainable = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
    state = {"iteration": iteration, "global_step": global_step, "python_rng": random.getstate(),
             "numpy_rng": np.random.get_state(), "torch_rng": torch.get_rng_state()}
    weights = {"policy": trainable, "value_head": value_head.state_dict(), "optimizer": optimizer.state_dict()}
    torch.save({**weights, **state}, path / "tmp.pt")
    os.replace(path / "tmp.pt", path / "state.pt")  # atomic: an interrupted save leaves the previous one


def load_checkpoint(path: Path, model, value_head, optimizer) -> tuple[int, int]:
    """Restore what :func:`save_checkpoint` wrote; returns (iteration, global_step)."""
    state = torch.load(path / "state.pt", weights_only=False)
    unexpected = model.load_state_dict(state["policy"], strict=False).unexpected_keys  # only trainable ones saved
    if unexpected or not state["policy"]:
        raise ValueError(f"{path} does not fit this policy (unexpected {unexpected[:3]}): same --model and --lora_r?")
    value_head.load_state_dict(state["value_head"])
    optimizer.load_state_dict(state["optimizer"])
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    return state["iteration"], state["global_step"]


def check_single_process() -> None:
    """Refuse to run under several processes (``accelerate launch``/``torchrun`` set ``WORLD_SIZE``).

    Raises:
        RuntimeError: ``WORLD_SIZE`` > 1, with the reason and what to do instead.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:
        raise RuntimeError(
            f"training/ppo.py is single-process but was started as one of WORLD_SIZE={world} processes "
            "(accelerate launch / torchrun): it has no data sharding and no gradient all-reduce, so every process "
            "would train its own copy on the same episodes and write the same run folder. Run it as one process "
            "(python -m training.ppo; one run per seed/GPU with --device cuda:N), or use training/grpo.py, "
            "which scales out with accelerate launch."
        )


def main(args: Args) -> dict:
    """Train (or resume, or only evaluate); returns the last iteration's logged record."""
    check_single_process()
    from rich.console import Console
    from rich.progress import Progress

    console = Console()
    run_dir = Path(args.output_dir) / args.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", message=".*episodes will be truncated.*")

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(args.torch_deterministic, warn_only=True)

    # MODELS: policy (+ LoRA), value head on its last hidden layer, frozen reference
    policy, tokenizer = load_policy(args)
    hidden = policy.config.hidden_size if not args.lora_r else policy.get_base_model().config.hidden_size
    value_head = nn.Linear(hidden, 1).to(args.device)
    nn.init.zeros_(value_head.weight), nn.init.zeros_(value_head.bias)
    reference = None if args.lora_r else copy.deepcopy(policy).eval().requires_grad_(False)
    optimizer = torch.optim.Adam([
        {"params": [p for p in policy.parameters() if p.requires_grad], "lr": args.learning_rate},
        {"params": value_head.parameters(), "lr": args.value_learning_rate},
    ], eps=1e-5)
    sampling = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=1.0)

    from userlm_env.users import make_user

    env_kwargs = {"user": make_user(args.user), "reward": args.reward, "max_turns": args.max_turns}
    if args.tasks:
        env_kwargs["tasks"] = make_env_task_source(args.env, args.tasks)

    def make_env():
        return make_unwrapped_env(args.env, **env_kwargs)

    if args.user_population:  # users drawn per episode; members share users, tasks and judge
        make_env = args_lib.population_env_factory(args.env, args.user_population, env_kwargs)

    def play(env_seeds, policy_seeds):
        policy.eval()
        return collect_episodes(policy, tokenizer, make_env, env_seeds, policy_seeds, sampling=sampling,
                                max_completion_tokens=args.max_completion_tokens, system_prompt=args.system_prompt)

    def evaluate():  # held-out env seeds (disjoint from training), fixed policy seeds
        if not args.eval_episodes:
            return {}
        seeds = [10**9 + i for i in range(args.eval_episodes)]
        return episode_summary(play(seeds, seeds))  # reward, score, turns, components/*, cost/* (userlm_env.metrics)

    start_iteration, global_step = 0, 0
    if args.resume and (run_dir / "checkpoint" / "state.pt").is_file():
        start_iteration, global_step = load_checkpoint(run_dir / "checkpoint", policy, value_head, optimizer)
        console.print(f"[bold]resumed[/bold] {run_dir} at iteration {start_iteration}")
    writer = None
    if args.track:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise SystemExit(f"--track writes TensorBoard events and needs `pip install tensorboard` ({err})") from err

        writer = SummaryWriter(str(run_dir))
        table = "\n".join(f"|{k}|{v}|" for k, v in asdict(args).items())
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")
    log_file = open(run_dir / "metrics.jsonl", "a")

    def log(record: dict):
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        if writer:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("iteration", "global_step"):
                    writer.add_scalar(key, value, record["global_step"])

    if args.eval_only:
        record = {"iteration": start_iteration, "global_step": global_step}
        record.update({f"eval/{k}": v for k, v in evaluate().items()})
        log(record)
        console.print(record)
        return record
    if start_iteration == 0 and args.eval_episodes:
        log({"iteration": 0, "global_step": 0, **{f"eval/{k}": v for k, v in evaluate().items()}})
    result = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("PPO", total=args.num_iterations, completed=start_iteration)
        for iteration in range(start_iteration + 1, args.num_iterations + 1):
            t0 = time.time()
            # ROLLOUT: whole episodes, then score every token with the value head and the reference
            seeds = derive_seeds(args.episodes_per_iteration, "ppo-iteration", args.seed, iteration)
            episodes = play(seeds, seeds)
            batch = make_batch(episodes, tokenizer.pad_token_id, args.device)
            mask = batch["mask"]
            with torch.no_grad():
                inputs = (batch["input_ids"], batch["attention_mask"], args.temperature)
                _, values = forward(policy, value_head, *inputs)
                if reference is not None:
                    ref_logits, _ = forward(reference, None, *inputs)
                else:  # LoRA: the reference is the base model
                    with policy.disable_adapter():
                        ref_logits, _ = forward(policy, None, *inputs)
                ref_logprobs = token_logprobs(ref_logits, batch["targets"])
                del ref_logits
            values = values * mask
            kl = kl_penalty(batch["old_logprobs"], ref_logprobs, args.kl_estimator) * mask
            rewards = batch["rewards"] - args.kl_coef * kl

            # ADVANTAGES: GAE across the policy tokens of each episode
            advantages, returns = compute_gae(rewards, values, mask, args.gamma, args.gae_lambda)
            if args.norm_adv:
                mean = masked_mean(advantages, mask)
                std = masked_mean((advantages - mean) ** 2, mask).sqrt()
                advantages = (advantages - mean) / (std + 1e-8) * mask

            # UPDATE: several epochs of minibatches of whole episodes
            # the policy stays in eval mode: dropout off, so the ratio at the first step is exactly 1
            clipfracs, approx_kls, stats = [], [], {}
            for _epoch in range(args.update_epochs):
                order = torch.randperm(len(episodes))
                for start in range(0, len(episodes), args.minibatch_size):
                    mb = order[start : start + args.minibatch_size]
                    width = int(batch["attention_mask"][mb].sum(1).max())  # drop shared right padding
                    mb_mask = mask[mb, : width - 1]
                    logits, new_values = forward(policy, value_head, batch["input_ids"][mb, :width],
                                                 batch["attention_mask"][mb, :width], args.temperature)
                    new_logprobs = token_logprobs(logits, batch["targets"][mb, : width - 1])
                    mb_old = batch["old_logprobs"][mb, : width - 1]
                    mb_adv = advantages[mb, : width - 1]
                    pg_tokens, ratio = ppo_token_losses(new_logprobs, mb_old, mb_adv, mb_mask, args.clip_coef)
                    pg_loss = pg_tokens.sum() / mb_mask.sum().clamp(min=1)
                    with torch.no_grad():
                        log_ratio = (new_logprobs - mb_old) * mb_mask
                        approx_kls.append(float(masked_mean((ratio - 1) - log_ratio, mb_mask)))
                        clipfracs.append(float(masked_mean(((ratio - 1).abs() > args.clip_coef).float(), mb_mask)))
                    mb_values, mb_returns = values[mb, : width - 1], returns[mb, : width - 1]
                    v_unclipped = (new_values - mb_returns) ** 2
                    if args.clip_vloss:
                        v_clipped = mb_values + torch.clamp(new_values - mb_values, -args.clip_coef, args.clip_coef)
                        v_loss = 0.5 * masked_mean(torch.max(v_unclipped, (v_clipped - mb_returns) ** 2), mb_mask)
                    else:
                        v_loss = 0.5 * masked_mean(v_unclipped, mb_mask)
                    probs = torch.softmax(logits, dim=-1)
                    entropy = masked_mean(-(probs * torch.log_softmax(logits, dim=-1)).sum(-1), mb_mask)
                    loss = pg_loss - args.ent_coef * entropy + args.vf_coef * v_loss
                    optimizer.zero_grad()
                    loss.backward()
                    params = [p for group in optimizer.param_groups for p in group["params"]]
                    nn.utils.clip_grad_norm_(params, args.max_grad_norm)
                    optimizer.step()
                    stats = {"losses/policy_loss": pg_loss.item(), "losses/value_loss": v_loss.item(),
                             "losses/entropy": entropy.item()}
                if args.target_kl is not None and np.mean(approx_kls[-args.num_minibatches:]) > args.target_kl:
                    break

            # LOGGING
            global_step += int(mask.sum())
            summary = episode_summary(episodes)
            flat_v, flat_r = values[mask > 0], returns[mask > 0]
            var_r = float(flat_r.var()) if flat_r.numel() > 1 else 0.0
            record = {
                "iteration": iteration, "global_step": global_step,
                **{f"charts/{k}": v for k, v in summary.items()},
                "charts/clarification": float(np.mean([e.components.get("clarification", 0) for e in episodes])),
                "charts/premature_answer": float(np.mean([e.components.get("premature_answer", 0) for e in episodes])),
                "charts/SPS": float(mask.sum()) / (time.time() - t0), "charts/seconds": time.time() - t0,
                **stats, "losses/approx_kl": float(np.mean(approx_kls)), "losses/clipfrac": float(np.mean(clipfracs)),
                "losses/kl_ref": float(masked_mean(kl, mask)),
                "losses/explained_variance": float("nan") if var_r == 0 else 1 - float((flat_r - flat_v).var()) / var_r,
                **{f"cost/{k}": float(v) for k, v in episodes.cost.items()},  # user/policy calls, tokens, seconds
            }
            if args.eval_every and iteration % args.eval_every == 0 and iteration != args.num_iterations:
                record.update({f"eval/{k}": v for k, v in evaluate().items()})
            if iteration == args.num_iterations and args.eval_episodes:
                record.update({f"eval/{k}": v for k, v in evaluate().items()})
            log(record)
            console.print(f"iter {iteration:3d}  reward {summary['reward']:+.3f}  score {summary['score']:.2f}  "
                          f"turns {summary['turns']:.2f}  kl_ref {record['losses/kl_ref']:.4f}  "
                          f"approx_kl {record['losses/approx_kl']:.4f}  clipfrac {record['losses/clipfrac']:.3f}  "
                          f"ev {record['losses/explained_variance']:.2f}  SPS {record['charts/SPS']:.1f}")
            if iteration % args.save_every == 0 or iteration == args.num_iterations:
                save_checkpoint(run_dir / "checkpoint", policy, value_head, optimizer, iteration, global_step)
            progress.advance(task)
            result = record
    log_file.close()
    if writer:
        writer.close()
    return result


if __name__ == "__main__":
    main(parse_args())
