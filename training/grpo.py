# docs and experiment results: training/README.md ("GRPO")
"""GRPO for the assistant of ``UserLM-Math-v0``, through TRL's ``GRPOTrainer(rollout_func=...)``.

Each training prompt stands for one env seed (a task and a simulated-user seed); TRL repeats it
``num_generations`` times and :func:`training.rollout_func.make_rollout_func` plays that many whole
multi-turn episodes with different policy seeds. The completion of an episode is every token after
the opening user message: the policy's replies (``env_mask`` 1, trained) and the user's turns
(``env_mask`` 0, masked out of the loss). The GRPO reward is the env's episode return under
``--reward``; the group-relative advantage compares episodes of the same task and user.

    python training/grpo.py --preset tiny                  # CPU, tiny policy, replay user, ~1 min
    python training/grpo.py --preset smollm2-cpu           # CPU, bundled SmolLM2-135M + LoRA (slow)
    python training/grpo.py --preset gpu --user 'userlm:http://127.0.0.1:8000/v1?tokenizer=microsoft/UserLM-8b'

Outputs under ``{output_dir}/{run_name}/``: ``metrics.jsonl`` (one line per step and per evaluation),
``eval_episodes.jsonl`` (evaluation episodes, component totals unweighted, for ``ablate.py
--from-logs``), ``summary.json``, TRL checkpoints (``--save_steps``) and the final model.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from training import args as args_lib

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL 1.16
# Short episodes on purpose (max_turns below the shard count): the env warns once per such task.
warnings.filterwarnings("ignore", message=".*episodes will be truncated before every shard.*")


@dataclass
class Args:
    """Command-line arguments of ``grpo.py`` (each field's docstring is its ``--help``)."""

    # Experiment and infrastructure
    preset: str = "tiny"
    """named defaults: `tiny` (CPU, tiny policy), `smollm2-cpu` (CPU, bundled SmolLM2-135M + LoRA),
    `gpu` (one GPU, real policy, UserLM user over HTTP); explicit flags override them"""
    exp_name: str = "grpo"
    """name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of everything: torch/numpy/random, TRL's data order, the policy's sampling seeds"""
    output_dir: str = "runs"
    """runs are written to {output_dir}/{run_name}"""
    run_name: str = ""
    """run folder name; empty = deterministic name from the env, policy, reward and seed"""
    report_to: str = "none"
    """TRL/transformers loggers: none, tensorboard, wandb, ... (comma separated)"""
    save_steps: int = 0
    """save a TRL checkpoint every N steps (0 = none); resume with --resume_from_checkpoint"""
    resume_from_checkpoint: str = ""
    """checkpoint folder to resume from, or `last` for the newest one in the run folder"""
    save_final_model: bool = True
    """save the trained model (or LoRA adapter) to {run_dir}/final"""
    num_threads: int = 2
    """torch intra-op threads on CPU (the CPU is shared: keep it small)"""
    use_cpu: bool = False
    """train on the CPU even if a GPU is present (forced when there is none)"""
    bf16: bool = False
    """bfloat16 mixed precision (GPU)"""
    gradient_checkpointing: bool = False
    """trade compute for memory (long episodes on a big model)"""
    rich: bool = True
    """rich progress bar (TRL's RichProgressCallback) instead of tqdm"""
    quiet: bool = False
    """no per-step metric lines on stdout (the JSONL file is still written)"""

    # Environment
    env: str = "UserLM-Math-v0"
    """any registered env id (`UserLM-Math-v0`, `UserLM-Code-v0`; or `math` / `code`)"""
    user: str = "replay"
    """user simulator spec (userlm_env.users): replay, prompted:smollm2-135m,
    userlm:http://HOST:PORT/v1?tokenizer=microsoft/UserLM-8b, ..."""
    user_population: str = ""
    """users drawn per episode (the member is a function of the env seed: a group shares it), e.g.
    `replay:0.5,prompted:smollm2-135m:0.5` or JSON `[["replay", 1], [{"user": "replay", "reveal": "responsive"}, 1]]`;
    members without a user use --user; empty = --user only (userlm_env.envs.population)"""
    tasks: str = ""
    """task source spec of the env (math: procedural, gsm8k, ...; code: code:procedural, humaneval:PATH);
    empty = the env's default"""
    reward: str = "lic:clarification=1,premature_answer=-1"
    """reward preset with optional overrides (userlm_env.rewards), e.g. `lic`, `shaped:turn=0`"""
    max_turns: int = 3
    """assistant replies per episode before truncation"""
    system_prompt: str = ""
    """system message shown to the policy (never to the env); empty = none"""

    # Policy
    policy: str = "tiny"
    """policy model: `tiny` (a tiny Llama pre-trained to mix questions and premature answers),
    `smollm2-135m` (bundled offline), or a hub id / local path"""
    use_lora: bool = False
    """train a LoRA adapter (peft) instead of all weights"""
    lora_r: int = 16
    """LoRA rank"""
    lora_alpha: int = 32
    """LoRA alpha"""
    lora_target_modules: str = "all-linear"
    """LoRA target modules (peft syntax; comma separated names or `all-linear`)"""

    # Algorithm specific arguments
    max_steps: int = 30
    """optimizer steps (one generation batch per step)"""
    prompts_per_step: int = 2
    """GRPO groups (distinct env seeds) per step and process"""
    per_device_episodes: int = 0
    """episodes per step and process; 0 = prompts_per_step * num_generations (whole groups on every process).
    With N processes a step plays N * per_device_episodes episodes (a multiple of num_generations) and a group
    may span processes, e.g. large groups over many GPUs"""
    num_generations: int = 4
    """episodes per group (same env seed, different policy seeds)"""
    learning_rate: float = 1e-3
    """AdamW learning rate"""
    beta: float = 0.0
    """KL coefficient against the initial policy (0 = no reference model, TRL's default)"""
    epsilon: float = 0.2
    """PPO-style clipping range of the importance ratio"""
    num_iterations: int = 1
    """optimization passes over each generation batch (mu in the GRPO paper)"""
    loss_type: str = "dapo"
    """TRL loss normalisation: grpo, dr_grpo, dapo, bnpo, ..."""
    scale_rewards: str = "group"
    """advantage scaling: group (GRPO), batch, none (Dr. GRPO)"""
    credit: str = "episode"
    """credit assignment (training/credit.py): `episode` (GRPO: every token gets its episode's group advantage),
    `return_to_go` (each assistant turn: its discounted return-to-go minus the group's leave-one-out mean return),
    `turn_baseline` (each turn: its return-to-go minus the leave-one-out mean return-to-go of the group's episodes
    that reached that turn)"""
    gamma: float = 1.0
    """discount per assistant turn of the per-turn credit modes"""
    temperature: float = 1.0
    """policy sampling temperature (TRL's loss uses the same value)"""
    top_p: float = 1.0
    """policy nucleus sampling mass"""
    max_new_tokens: int = 24
    """policy tokens per reply"""
    max_completion_tokens: int = 384
    """budget of a whole episode's completion (policy + user tokens)"""
    num_train_tasks: int = 256
    """training env seeds 0..N-1"""

    # Evaluation
    eval_episodes: int = 32
    """held-out evaluation episodes (same env and policy seeds at every evaluation)"""
    eval_seed_offset: int = 1_000_000
    """evaluation env seeds start here (disjoint from the training seeds)"""
    eval_every: int = 0
    """evaluate every N steps (0 = only before and after training)"""

    # to be filled in runtime
    run_dir: str = ""
    """{output_dir}/{run_name} (computed)"""
    batch_size: int = 0
    """episodes per step and process = per_device_episodes or prompts_per_step * num_generations (computed)"""

    def __post_init__(self):
        if self.num_generations < 2:
            raise ValueError(
                f"num_generations={self.num_generations}: GRPO needs at least 2 episodes per group; use 2 or more"
            )
        if self.prompts_per_step < 1:
            raise ValueError(f"prompts_per_step={self.prompts_per_step} must be >= 1")
        if self.per_device_episodes < 0:
            raise ValueError(f"per_device_episodes={self.per_device_episodes} must be >= 0 (0 = whole groups)")
        from training.credit import check_credit

        check_credit(self.credit, self.gamma, self.scale_rewards)
        if self.max_new_tokens >= self.max_completion_tokens:
            raise ValueError(
                f"max_new_tokens={self.max_new_tokens} must be smaller than "
                f"max_completion_tokens={self.max_completion_tokens}"
            )
        if self.num_train_tasks < self.prompts_per_step:
            raise ValueError(f"num_train_tasks={self.num_train_tasks} < prompts_per_step={self.prompts_per_step}")
        if self.eval_seed_offset < self.num_train_tasks:
            raise ValueError(
                f"eval_seed_offset={self.eval_seed_offset} overlaps the training seeds "
                f"0..{self.num_train_tasks - 1}; raise it"
            )
        from userlm_env.envs import check_env_specs

        check_env_specs(self.env, tasks=self.tasks, reward=self.reward)  # a typo fails here, before any model loads
        args_lib.parse_user_population(self.user_population)  # a malformed population fails here too
        self.batch_size = self.per_device_episodes or self.prompts_per_step * self.num_generations
        if not self.run_name:
            self.run_name = default_run_name(self)
        self.run_dir = str(Path(self.output_dir) / self.run_name)


PRESETS: dict[str, dict[str, Any]] = {
    # CPU, a fraction of a second per step (one thread beats two for tiny matrices): a tiny Llama that says
    # either a question or a (premature) answer, replay user.
    "tiny": dict(
        policy="tiny",
        user="replay",
        max_turns=3,
        max_new_tokens=16,
        max_steps=30,
        learning_rate=1e-3,
        prompts_per_step=2,
        num_generations=4,
        eval_episodes=32,
        num_threads=1,
    ),
    # CPU, bundled SmolLM2-135M-Instruct with LoRA: ~1 min per step on two shared cores (README experiment).
    "smollm2-cpu": dict(
        policy="smollm2-135m",
        user="replay",
        max_turns=2,
        max_new_tokens=24,
        max_steps=12,
        learning_rate=5e-4,
        temperature=0.7,
        use_lora=True,
        prompts_per_step=2,
        num_generations=4,
        eval_episodes=16,
        eval_every=6,
        max_completion_tokens=192,
        num_threads=1,
    ),
    # One GPU: a real policy, the UserLM-8b user served by vLLM (pass --user userlm:http://...).
    "gpu": dict(
        policy="Qwen/Qwen2.5-1.5B-Instruct",
        user="userlm:http://127.0.0.1:8000/v1?tokenizer=microsoft/UserLM-8b",
        tasks="gsm8k",
        reward="shaped",
        max_turns=8,
        max_new_tokens=256,
        max_completion_tokens=3072,
        max_steps=500,
        learning_rate=1e-6,
        prompts_per_step=4,
        num_generations=8,
        bf16=True,
        gradient_checkpointing=True,
        beta=0.0,
        eval_episodes=64,
        eval_every=50,
        save_steps=50,
        report_to="tensorboard",
        rich=True,
        num_threads=8,
    ),
}


def default_run_name(args: Args) -> str:
    """Deterministic run name: env, experiment, policy, reward and seed (no timestamp)."""
    from userlm_env.envs import resolve_env_id

    policy = Path(args.policy).name or args.policy
    user = args.user.split("?")[0].replace("http://", "").replace("/", "-").replace(":", "-")
    if args.user_population:  # a short stable digest of the population
        user = "population-" + hashlib.sha1(args.user_population.encode()).hexdigest()[:8]
    reward = args.reward.replace(":", "-").replace(",", "_").replace("=", "")
    return f"{resolve_env_id(args.env)}__{args.exp_name}__{policy}__{user}__{reward}__{args.seed}"


def make_args(preset: str = "tiny", **overrides: Any) -> Args:
    """``Args`` from a preset plus overrides (in-process use, e.g. ``training/ablate.py``)."""
    return args_lib.make_args(Args, PRESETS, preset, **overrides)


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse the command line with ``transformers.HfArgumentParser``; ``--preset`` sets the defaults."""
    return args_lib.parse_args(Args, argv, presets=PRESETS, derived=("run_dir", "batch_size"))


# ---------------------------------------------------------------------------------------------
# Environment and policy
# ---------------------------------------------------------------------------------------------


def make_env_factory(args: Args):
    """``make_env()`` building one unwrapped ``args.env``; the user and the task source are built once and shared."""
    from userlm_env.envs import make_env_task_source, make_unwrapped_env
    from userlm_env.users import make_user

    kwargs = {"reward": args.reward, "max_turns": args.max_turns}
    if args.tasks:
        kwargs["tasks"] = make_env_task_source(args.env, args.tasks)
    if args.user_population:  # members share users, tasks and judge; --user is the default member user
        return args_lib.population_env_factory(args.env, args.user_population, {**kwargs, "user": args.user})
    kwargs["user"] = make_user(args.user)
    return functools.partial(make_unwrapped_env, args.env, **kwargs)


TINY_QUESTIONS = ("Could you tell me more about the problem?", "What are the numbers?", "Can you give me more details?")
TINY_ANSWERS = ("The answer is 12.", "The answer is 30.", "It is 7.")


def build_tiny_policy(path: Path, make_env, *, seed: int = 0, num_tasks: int = 12, train_steps: int = 200) -> Path:
    """A tiny Llama chat policy that answers every user turn with a question or a (premature) answer.

    Pre-trained (``userlm_env.testing.build_tiny_chat_model``) on the first two turns of ``num_tasks``
    training episodes (env seeds >= 10**6 + 5000, disjoint from training and evaluation seeds), each
    with one target from :data:`TINY_QUESTIONS` and one from :data:`TINY_ANSWERS`: the sampling policy
    starts near 50/50, so asking while shards are hidden is learnable by GRPO in a few dozen steps.
    """
    from training.rollout_func import play_openings
    from userlm_env.testing import build_tiny_chat_model

    seeds = [2_000_000 + k for k in range(num_tasks)]
    replies = [[TINY_QUESTIONS[k % len(TINY_QUESTIONS)]] for k in range(num_tasks)]
    conversations = []
    for k, history in enumerate(play_openings(make_env, seeds, replies)):  # batched user calls
        for turn, obs in enumerate(history):
            conversations.append(
                obs + [{"role": "assistant", "content": TINY_QUESTIONS[(k + turn) % len(TINY_QUESTIONS)]}]
            )
            conversations.append(obs + [{"role": "assistant", "content": TINY_ANSWERS[(k + turn) % len(TINY_ANSWERS)]}])
    return build_tiny_chat_model(
        path,
        seed=seed,
        train_on=conversations,
        train_steps=train_steps,
        vocab_words=[w for text in TINY_QUESTIONS + TINY_ANSWERS for w in text.split()],
    )


def load_policy(args: Args, make_env):
    """(model, tokenizer) of the policy named by ``args.policy``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.policy == "tiny":
        from accelerate import PartialState

        with PartialState().main_process_first():  # several processes: one builds it, the others load it
            path = build_tiny_policy(Path(args.output_dir) / "_models" / "tiny_policy", make_env)
        return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    if args.policy == "smollm2-135m":
        from userlm_env.backends.models import load_model

        loaded = load_model(
            "smollm2-135m", dtype="float32" if args.use_cpu or not torch.cuda.is_available() else "auto"
        )
        return loaded.model, loaded.tokenizer
    dtype = torch.bfloat16 if args.bf16 else "auto"
    model = AutoModelForCausalLM.from_pretrained(args.policy, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(args.policy)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


# ---------------------------------------------------------------------------------------------
# Evaluation and logging
# ---------------------------------------------------------------------------------------------


def evaluate(model, tokenizer, make_env, args: Args, step: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Play ``eval_episodes`` held-out episodes with fixed env and policy seeds; (summary, episode records)."""
    from training.episodes import collect_episodes
    from userlm_env.backends.transformers_backend import SamplingParams
    from userlm_env.metrics import aggregate, episode_metrics
    from userlm_env.seeding import derive_seeds

    env_seeds = [args.eval_seed_offset + i for i in range(args.eval_episodes)]
    policy_seeds = derive_seeds(args.eval_episodes, "eval-policy", args.eval_seed_offset)
    was_training = model.training
    model.eval()
    try:
        episodes = collect_episodes(
            model,
            tokenizer,
            make_env,
            env_seeds,
            policy_seeds,
            sampling=SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p),
            max_completion_tokens=args.max_completion_tokens,
            system_prompt=args.system_prompt or None,
        )
    finally:
        model.train(was_training)
    records = [
        {"step": step, "env_seed": s, "policy_seed": p, **e.record()}
        for e, s, p in zip(episodes, env_seeds, policy_seeds, strict=True)
    ]
    means = aggregate(episode_metrics(r) for r in records)  # the names rollouts and PPO report (userlm_env.metrics)
    return {"kind": "eval", "step": step, **{f"eval/{k}": v for k, v in means.items()}}, records


TRAIN_KEYS = {  # TRL log key -> our key
    "reward": "train/reward",
    "reward_std": "train/reward_std",
    "episode/score": "train/score",
    "episode/turns": "train/turns",
    "loss": "losses/loss",
    "kl": "losses/kl",
    "entropy": "losses/entropy",
    "grad_norm": "losses/grad_norm",
    "clip_ratio/region_mean": "losses/clip_ratio",
    "completions/mean_length": "train/policy_tokens",
    "frac_reward_zero_std": "train/frac_reward_zero_std",
    "episode/component_clarification": "train/clarification",
    "episode/component_premature_answer": "train/premature_answer",
    "episode/component_correctness": "train/correctness",
    "learning_rate": "charts/learning_rate",
    "cost/user_calls": "cost/user_calls",  # what the generation batch cost (training.rollout_func.cost_metrics)
    "cost/user_requests": "cost/user_requests",
    "cost/user_tokens": "cost/user_tokens",
    "cost/user_resamples": "cost/user_resamples",
    "cost/user_seconds": "cost/user_seconds",
    "cost/policy_calls": "cost/policy_calls",
    "cost/policy_seconds": "cost/policy_seconds",
}


def make_callback(args: Args, tokenizer, make_env, metrics_path: Path, episodes_path: Path, history: list):
    """A TrainerCallback: per-step JSONL + stdout metrics, periodic held-out evaluation."""
    from transformers import TrainerCallback

    started = time.perf_counter()

    def write(record: dict[str, Any]) -> None:
        history.append(record)
        with metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if not args.quiet:
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k != "kind"}
            print(f"[{record['kind']}] " + " ".join(f"{k}={v}" for k, v in shown.items()), flush=True)

    def run_eval(model, step: int) -> None:
        summary, records = evaluate(model, tokenizer, make_env, args, step)
        with episodes_path.open("a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        write(summary)

    class GRPOLogCallback(TrainerCallback):
        def on_log(self, targs, state, control, logs=None, **kwargs):
            """Write TRL's step metrics (renamed, see ``TRAIN_KEYS``) to the JSONL file and stdout."""
            if not logs or "reward" not in logs or not state.is_world_process_zero:
                return
            record = {"kind": "train", "step": int(state.global_step)}
            record.update({ours: float(logs[theirs]) for theirs, ours in TRAIN_KEYS.items() if theirs in logs})
            record["charts/seconds"] = round(time.perf_counter() - started, 2)
            write(record)

        def on_step_end(self, targs, state, control, **kwargs):
            """Held-out evaluation every ``eval_every`` steps."""
            if args.eval_every and state.global_step % args.eval_every == 0 and state.global_step < targs.max_steps:
                if state.is_world_process_zero:
                    run_eval(kwargs["model"], int(state.global_step))

    return GRPOLogCallback(), run_eval


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@functools.cache
def credit_trainer_class():
    """``TurnCreditGRPOTrainer``: TRL's ``GRPOTrainer`` with per-token advantages for ``--credit`` (built lazily)."""
    from accelerate.utils import gather_object
    from trl import GRPOTrainer

    from training import credit as credit_lib

    class TurnCreditGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer(credit=..., gamma=...)``: each assistant turn's tokens get their own advantage.

        ``credit="episode"`` is TRL's GRPO unchanged. Otherwise, after TRL has generated, scored and computed its
        group advantages (kept for its logs), the ``(B,)`` advantages are replaced by a ``(B, T)`` tensor (TRL
        1.16's ``_compute_loss`` takes it as is: it only unsqueezes 1-d advantages). The per-turn rewards are the
        rollout's extra fields ``step_rewards``/``turn_ids`` (``training.rollout_func``), **gathered over all
        processes first** (a group may span processes; TRL gathers its rewards the same way), turned into
        advantages by :func:`training.credit.turn_advantages` with TRL's ``scale_rewards``, and sliced back to
        this process's rows. The loss mask is unchanged (``completion_mask * env_mask``): env tokens get
        advantage 0 and no loss. The per-turn rewards are the env's (``--reward``); other TRL reward functions
        then only log.
        """

        def __init__(self, *args, credit: str = "episode", gamma: float = 1.0, **kwargs):
            credit_lib.check_credit(credit, gamma)
            super().__init__(*args, **kwargs)
            self.credit, self.credit_gamma = credit, gamma

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            if self.credit == "episode":
                return output
            missing = [k for k in ("step_rewards", "turn_ids") if k not in inputs[0]]
            if missing:
                raise ValueError(
                    f"credit={self.credit!r} needs the rollout fields {missing}: "
                    "use training.rollout_func.make_rollout_func"
                )
            mode = "train" if self.model.training else "eval"
            groups = self.num_generations if mode == "train" else self.num_generations_eval
            every = gather_object([list(x["step_rewards"]) for x in inputs])  # process 0's rows, then 1's, ...
            advantages = credit_lib.turn_advantages(
                every, groups, self.credit, gamma=self.credit_gamma, scale=str(self.scale_rewards)
            )
            start = self.accelerator.process_index * len(inputs)
            mine = advantages[start : start + len(inputs)]
            width = output["completion_ids"].shape[1]
            tokens = credit_lib.token_advantages(mine, [x["turn_ids"] for x in inputs], width)
            output["advantages"] = tokens.to(output["completion_ids"].device)
            return output

    return TurnCreditGRPOTrainer


class BarOnlyProgress(ProgressCallback):
    """transformers' tqdm progress bar without its raw log-dict lines (GRPOLogCallback prints the metrics)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Print nothing (the bar still advances in ``on_step_end``)."""


def train(args: Args) -> dict[str, Any]:
    """Run one GRPO training (and its evaluations); return the metrics history and the summary."""
    from transformers import set_seed
    from trl import GRPOConfig

    from training.rollout_func import env_reward, make_prompt_dataset, make_rollout_func

    # TRY NOT TO MODIFY: seeding
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    use_cpu = args.use_cpu or not torch.cuda.is_available()
    if use_cpu:
        torch.set_num_threads(args.num_threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    set_seed(args.seed)
    (run_dir / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=2))
    resume = args.resume_from_checkpoint or None
    if resume == "last":
        from transformers.trainer_utils import get_last_checkpoint

        resume = get_last_checkpoint(str(run_dir))
    metrics_path, episodes_path = run_dir / "metrics.jsonl", run_dir / "eval_episodes.jsonl"
    if not resume and int(os.environ.get("RANK", "0")) == 0:  # a fresh run starts fresh logs (main process)
        metrics_path.unlink(missing_ok=True)
        episodes_path.unlink(missing_ok=True)

    # ENV AND POLICY
    make_env = make_env_factory(args)
    model, tokenizer = load_policy(args, make_env)
    peft_config = None
    if args.use_lora:
        from peft import LoraConfig

        targets = args.lora_target_modules
        peft_config = LoraConfig(
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            task_type="CAUSAL_LM",
            target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        )
    system_prompt = args.system_prompt or None
    dataset = make_prompt_dataset(make_env, range(args.num_train_tasks), system_prompt=system_prompt)
    rollout_func = make_rollout_func(
        make_env,
        max_new_tokens=args.max_new_tokens,
        max_completion_tokens=args.max_completion_tokens,
        system_prompt=system_prompt,
        seed=args.seed,
    )

    # TRL CONFIG: one generation batch per optimizer step, prompts_per_step groups of num_generations episodes
    config = GRPOConfig(
        output_dir=str(run_dir),
        run_name=args.run_name,
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=use_cpu,
        bf16=args.bf16 and not use_cpu,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        num_generations=args.num_generations,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        beta=args.beta,
        epsilon=args.epsilon,
        num_iterations=args.num_iterations,
        loss_type=args.loss_type,
        scale_rewards=args.scale_rewards,
        temperature=args.temperature,
        top_p=args.top_p,
        max_completion_length=args.max_completion_tokens,
        logging_steps=1,
        report_to=args.report_to.split(","),
        save_strategy="steps" if args.save_steps else "no",
        save_steps=args.save_steps or 500,
        disable_tqdm=args.rich,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
    )
    if args.gradient_checkpointing:  # transformers 5 renamed the flag; set it only when asked
        config.gradient_checkpointing = True
    history: list[dict[str, Any]] = []
    if resume and metrics_path.exists():  # keep the steps up to the checkpoint (and the untrained evaluation)
        resumed_step = (
            int(Path(resume).name.rsplit("-", 1)[-1]) if Path(resume).name.startswith("checkpoint-") else 10**12
        )
        history += [
            r
            for r in map(json.loads, filter(str.strip, metrics_path.read_text().splitlines()))
            if r["step"] <= resumed_step
        ]
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in history))
    trainer = credit_trainer_class()(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[env_reward],
        args=config,
        train_dataset=dataset,
        rollout_func=rollout_func,
        peft_config=peft_config,
        credit=args.credit,
        gamma=args.gamma,
    )
    callback, run_eval = make_callback(args, tokenizer, make_env, metrics_path, episodes_path, history)
    trainer.add_callback(callback)
    trainer.remove_callback(PrinterCallback)  # our callback prints the metrics, once and compactly
    trainer.remove_callback(ProgressCallback)
    if args.rich:
        from trl.trainer.callbacks import RichProgressCallback

        trainer.add_callback(RichProgressCallback())
    else:
        trainer.add_callback(BarOnlyProgress())

    # EVALUATE the untrained policy (held-out env seeds, fixed policy seeds)
    # (main process only: with DeepSpeed ZeRO-3 use --eval_episodes 0 and evaluate the saved model separately)
    main_process = trainer.accelerator.is_main_process
    if not resume and args.eval_episodes and main_process:
        run_eval(trainer.model, 0)

    # ROLLOUT + ADVANTAGES + UPDATE: TRL's loop (rollout_func -> env_reward -> group advantages -> masked loss)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start

    # EVALUATE the trained policy with the same seeds
    if args.eval_episodes and main_process:
        run_eval(trainer.model, int(trainer.state.global_step))
    if args.save_final_model:
        trainer.save_model(str(run_dir / "final"))

    # LOGGING: summary
    evals = [h for h in history if h["kind"] == "eval"]
    train_rows = [h for h in history if h["kind"] == "train"]
    summary = {
        "run_name": args.run_name,
        "run_dir": str(run_dir),
        "seed": args.seed,
        "reward": args.reward,
        "steps": int(trainer.state.global_step),
        "train_seconds": round(seconds, 1),
        "eval_start": evals[0] if evals else None,
        "eval_end": evals[-1] if evals else None,
        "train_reward_first": train_rows[0]["train/reward"] if train_rows else None,
        "train_reward_last": train_rows[-1]["train/reward"] if train_rows else None,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return {"args": dataclasses.asdict(args), "history": history, "summary": summary, "trainer": trainer}


if __name__ == "__main__":
    args = parse_args()
    result = train(args)
    s = result["summary"]
    if s["eval_start"] and s["eval_end"]:
        print(
            f"eval reward {s['eval_start']['eval/reward']:.3f} -> {s['eval_end']['eval/reward']:.3f}, "
            f"score {s['eval_start']['eval/score']:.3f} -> {s['eval_end']['eval/score']:.3f} ({s['run_dir']})"
        )
