# docs and measured results: training/README.md ("Flip the dialogue")
"""Evaluate a trained User LM against the same base model *prompted* to play the user, on held-out real chats.

Reads a run of ``train_userlm.py`` (``heldout.jsonl``: held-out ShareGPT conversations with the same
kind of intents as training, ``args.json``, the model in ``final/``) and measures, side by side for
the trained User LM, the prompted base model and the real humans of the held-out chats:

- **user-turn perplexity**: the real user turns scored under each simulator, the intent in the system
  message. Only user-content tokens count, and exactly the same token ids for both models (same
  vocabulary, same truncation); a turn counts only if both layouts contain it.
- **termination** precision / recall / F1: at every point right after an assistant reply, would the
  simulator end the chat? Greedy decision from the model's next-token distribution: the trained model's
  first token is ``<|endconversation|>``; the prompted model's greedy output starts with the stated
  end marker ``[END]`` (checked token by token). Truth: the real chat ended there.
- **first-turn diversity**, **intent decomposition**, **role adherence** (share of user turns that
  do not read like an assistant's), **intent adherence** (lexical overlap with the intent), turn
  lengths: from sampled first turns (``samples_per_intent`` per intent) and sampled second turns
  (after the real first exchange). The metric functions come from
  :mod:`userlm_env.evaluation.user_metrics`.

Outputs in ``{run_dir}/eval/``: ``eval_report.json``, ``eval_report.md`` (the table), ``samples.jsonl``
(every generated turn), ``eval_userlm.png``.

    python training/eval_userlm.py --run_dir /tmp/flip_helper/runs/userlm_sft__smollm2-135m__1
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from userlm_env.backends.rendering import render_chat_ids


@dataclass
class Args:
    """Command-line arguments of ``eval_userlm.py`` (each field's docstring is its ``--help``)."""

    run_dir: str = ""
    """a train_userlm.py run folder (heldout.jsonl, args.json, final/)"""
    trained_model: str = ""
    """the trained User LM; empty = {run_dir}/final"""
    base_model: str = ""
    """the base model prompted to play the user; empty = the run's base model"""
    out_dir: str = ""
    """where the report goes; empty = {run_dir}/eval"""
    max_length: int = 0
    """tokens per scored conversation (turns are truncated as in training); 0 = twice the training
    max_length, so that most held-out chats fit whole and their real ending can be scored"""
    num_ppl_conversations: int = 30
    """held-out conversations scored for perplexity and termination"""
    num_gen_intents: int = 8
    """held-out intents used for generated first and second turns"""
    samples_per_intent: int = 3
    """sampled first turns per intent (first-turn diversity is measured within these groups)"""
    max_new_tokens: int = 32
    """tokens per generated user turn"""
    temperature: float = 0.7
    """sampling temperature of generated turns (both simulators)"""
    top_p: float = 0.9
    """nucleus sampling mass of generated turns (both simulators)"""
    batch_size: int = 8
    """sequences per forward / generate call"""
    seed: int = 0
    """sampling seed"""
    num_threads: int = 2
    """torch intra-op threads on CPU"""
    num_sharded_conversations: int = 24
    """held-out sharded-task conversations (heldout_sharded.jsonl of a --mix run) scored for perplexity and
    termination (0 = skip)"""
    env_tasks: int = 12
    """UserLM-Math-v0 tasks (procedural, seeded) each simulator plays as the env's user: intent coverage, user end
    rate and termination F1 with probes, from userlm_env.evaluation.user_metrics (0 = skip)"""
    env_assistant: str = "scripted:oracle"
    """assistant of the env episodes (scripted:oracle asks until every shard is out, then answers right; or a model)"""
    env_users: str = "trained,prompted"
    """env users, comma separated: `trained` (the run's model), `prompted` (the base model, prompted), or any
    user spec (e.g. userlm:OTHER_RUN/final to compare with an earlier User LM)"""
    env_max_turns: int = 0
    """assistant replies per env episode (0 = the evaluation default, max(8, shards + 2))"""
    quiet: bool = False
    """no progress bars"""


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse the command line with ``transformers.HfArgumentParser`` (field docstrings as ``--help``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from training.args import parse_args as parse

    args = parse(Args, argv)
    if not args.run_dir:
        raise SystemExit("--run_dir is required (a train_userlm.py run folder)")
    return args


# ---------------------------------------------------------------------------------------------
# Scoring (perplexity and termination from one forward pass per conversation)
# ---------------------------------------------------------------------------------------------


@dataclass
class Scored:
    """One example's next-token statistics: what :func:`turn_nll` and the termination check need.

    Attributes:
        target_logprobs: ``[len-1]`` log-probability of each actual next token.
        argmax: ``[len-1]`` the greedy next token at each position.
        watch_logprobs: ``[len-1]`` log-probability of one watched token (the end marker's first token)
            at each position; empty when none is watched.
    """

    target_logprobs: torch.Tensor
    argmax: torch.Tensor
    watch_logprobs: torch.Tensor = dataclasses.field(default_factory=lambda: torch.empty(0))


@torch.inference_mode()
def score_examples(
    model, examples, pad_id: int, batch_size: int, progress=None, task=None, watch_id: int | None = None
) -> list[Scored]:
    """Next-token log-probabilities of the actual tokens, greedy tokens and a watched token's log-probability."""
    from userlm_env.flip.flipping import batch_examples

    out = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = batch_examples(chunk, pad_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        gathered = logprobs.gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
        greedy = logits[:, :-1].argmax(-1)
        watched = logprobs[..., watch_id] if watch_id is not None else None
        for row, example in enumerate(chunk):
            n = len(example.input_ids) - 1
            watch = watched[row, :n].clone() if watched is not None else torch.empty(0)
            out.append(Scored(gathered[row, :n].clone(), greedy[row, :n].clone(), watch))
        del logits, logprobs
        if progress is not None:
            progress.advance(task, len(chunk))
    return out


def turn_nll(example, scored: Scored) -> dict[int, tuple[float, int]]:
    """``{user turn index: (summed NLL, token count)}`` over each user turn's content tokens."""
    result = {}
    for turn, start, end in example.user_spans:
        if end > start:
            result[turn] = (-scored.target_logprobs[start - 1 : end - 1].sum().item(), end - start)
    return result


def decision_points(example) -> list[tuple[int, bool]]:
    """``(position, should_end)``: the positions whose next token opens a user turn after an assistant reply.

    For turns k >= 1 the position just before the turn's first content token (should_end False); for a
    conversation that ended, the position before the end marker (should_end True).
    """
    points = [(start - 1, False) for turn, start, _ in example.user_spans if turn >= 1]
    if example.ended and example.user_spans:
        last_span_end = example.user_spans[-1][2]  # the end-of-turn token after it is labelled, skip it
        marker = [i for i, lab in enumerate(example.labels) if lab != -100 and i > last_span_end]
        if marker:
            points.append((marker[0] - 1, True))
    return points


@torch.inference_mode()
def greedy_starts_with(model, prefix_ids: list[int], marker_ids: list[int]) -> bool:
    """Whether greedy decoding from ``prefix_ids`` produces exactly ``marker_ids`` first (teacher-forced check)."""
    ids = torch.tensor([prefix_ids + marker_ids[:-1]])
    logits = model(input_ids=ids).logits[0, len(prefix_ids) - 1 :]
    return bool((logits.argmax(-1) == torch.tensor(marker_ids)).all())


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


@torch.inference_mode()
def sample_turns(model, tokenizer, prompts: list[list[int]], stop_ids: list[int], args: Args, seed: int) -> list[dict]:
    """Sample one user turn per prompt (left-padded batches); returns text and whether it ended the chat."""
    results = []
    pad = tokenizer.pad_token_id
    for start in range(0, len(prompts), args.batch_size):
        chunk = prompts[start : start + args.batch_size]
        width = max(len(p) for p in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, p in enumerate(chunk):
            input_ids[row, width - len(p) :] = torch.tensor(p)
            mask[row, width - len(p) :] = 1
        torch.manual_seed(seed + start)
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=args.max_new_tokens,
            do_sample=True,
            temperature=args.temperature,
            top_p=args.top_p,
            eos_token_id=stop_ids,
            pad_token_id=pad,
        )
        for row in range(len(chunk)):
            new = out[row, width:].tolist()
            cut = next((i for i, t in enumerate(new) if t in stop_ids), len(new))
            first_stop = new[cut] if cut < len(new) else None
            results.append(
                {
                    "text": tokenizer.decode(new[:cut], skip_special_tokens=True).strip(),
                    "stop": tokenizer.convert_ids_to_tokens(first_stop) if first_stop is not None else None,
                    "tokens": new[: cut + 1],
                }
            )
    return results


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def load_run(args: Args) -> tuple[dict, list]:
    """The training run's arguments and its held-out conversations (with intents)."""
    from userlm_env.flip.data import load_conversations

    run_dir = Path(args.run_dir)
    if not (run_dir / "heldout.jsonl").is_file():
        raise SystemExit(f"{run_dir} has no heldout.jsonl: pass the folder of a train_userlm.py run")
    train_args = json.loads((run_dir / "args.json").read_text())
    heldout = list(load_conversations(run_dir / "heldout.jsonl"))
    return train_args, heldout


def evaluate(args: Args) -> dict[str, Any]:
    """Run the evaluation; returns the report (also written as JSON and Markdown)."""
    from rich.console import Console
    from rich.progress import Progress
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from userlm_env.evaluation.user_metrics import (
        first_turn_diversity,
        intent_decomposition,
        intent_overlap,
        looks_like_assistant,
        termination_scores,
        turn_length_stats,
    )
    from userlm_env.flip.data import load_conversations
    from userlm_env.flip.flipping import (
        PROMPTED_END_MARKER,
        PROMPTED_USER_SYSTEM,
        FlipConfig,
        flip_conversation,
        prompted_user_example,
    )
    from userlm_env.users.template import END_CONVERSATION, END_OF_TURN

    started = time.time()
    torch.set_num_threads(args.num_threads)
    console = Console(stderr=True, quiet=args.quiet)
    train_args, heldout = load_run(args)
    out_dir = Path(args.out_dir or Path(args.run_dir) / "eval")
    out_dir.mkdir(parents=True, exist_ok=True)
    flip = FlipConfig(
        separator=train_args["separator"],
        max_length=args.max_length or 2 * train_args["max_length"],
        max_user_tokens=train_args["max_user_tokens"],
        max_assistant_tokens=train_args["max_assistant_tokens"],
        max_intent_tokens=train_args["max_intent_tokens"],
    )
    # the prompted model gets a longer system prompt: give it the room so that both layouts hold the same turns
    prompted_flip = dataclasses.replace(flip, max_length=flip.max_length + 128)

    trained_path = args.trained_model or str(Path(args.run_dir) / "final")
    base_spec = args.base_model or train_args["base_model"]
    if base_spec == "smollm2-135m":
        from userlm_env.backends.models import BUNDLED_SMOLLM2, load_model

        base_path = load_model(BUNDLED_SMOLLM2, dtype="float32", device="cpu").model.name_or_path
        load_model.cache_clear()
    elif base_spec == "tiny":
        base_path = str(Path(train_args["output_dir"]) / "_tiny_base")
    else:
        base_path = base_spec
    trained = AutoModelForCausalLM.from_pretrained(trained_path, dtype=torch.float32).eval()
    trained_tok = AutoTokenizer.from_pretrained(trained_path)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).eval()
    base_tok = AutoTokenizer.from_pretrained(base_path)
    end_id = trained_tok.convert_tokens_to_ids(END_CONVERSATION)
    eot_id = trained_tok.convert_tokens_to_ids(END_OF_TURN)
    marker_ids = base_tok.encode(PROMPTED_END_MARKER, add_special_tokens=False)

    # 1. perplexity and termination on held-out conversations ------------------------------------
    def ppl_and_termination(convs: list, label: str) -> tuple[list, dict, dict, list]:
        pairs = []
        for conv in convs:
            a = flip_conversation(conv, conv.meta["intent"], trained_tok, flip)
            b = prompted_user_example(conv, conv.meta["intent"], base_tok, prompted_flip)
            if a is not None and b is not None:
                pairs.append((conv, a, b))
        with Progress(disable=args.quiet, transient=True) as progress:
            task = progress.add_task(f"scoring {label} user turns", total=2 * len(pairs))
            lp_trained = score_examples(
                trained, [p[1] for p in pairs], trained_tok.pad_token_id, args.batch_size, progress, task, end_id
            )
            lp_base = score_examples(
                base, [p[2] for p in pairs], base_tok.pad_token_id, args.batch_size, progress, task, marker_ids[0]
            )
        totals = {"trained": [0.0, 0], "prompted_base": [0.0, 0]}
        first = {"trained": [0.0, 0], "prompted_base": [0.0, 0]}
        pred_t, pred_b, actual = [], [], []
        p_end: dict[str, dict[bool, list[float]]] = {
            "trained": {True: [], False: []},
            "prompted_base": {True: [], False: []},
        }
        for (_conv, a, b), la, lb in zip(pairs, lp_trained, lp_base):
            ta, tb = turn_nll(a, la), turn_nll(b, lb)
            for turn in sorted(set(ta) & set(tb)):
                if ta[turn][1] != tb[turn][1]:
                    continue  # truncated differently: not the same tokens
                for name, value in (("trained", ta[turn]), ("prompted_base", tb[turn])):
                    totals[name][0] += value[0]
                    totals[name][1] += value[1]
                    if turn == 0:
                        first[name][0] += value[0]
                        first[name][1] += value[1]
            if a.ended and b.ended:  # all turns present in both: termination decisions line up
                da, db = decision_points(a), decision_points(b)
                if [x[1] for x in da] != [x[1] for x in db]:
                    continue
                for (pos_a, should), (pos_b, _) in zip(da, db):
                    actual.append(should)
                    pred_t.append(int(la.argmax[pos_a]) == end_id)
                    p_end["trained"][should].append(math.exp(la.watch_logprobs[pos_a].item()))
                    p_end["prompted_base"][should].append(math.exp(lb.watch_logprobs[pos_b].item()))
                    starts = int(lb.argmax[pos_b]) == marker_ids[0]
                    if starts:
                        starts = greedy_starts_with(base, b.input_ids[: pos_b + 1], marker_ids)
                    pred_b.append(starts)
        ppl = {
            name: {
                "user_turn_ppl": math.exp(nll / n) if n else math.nan,
                "first_turn_ppl": math.exp(first[name][0] / first[name][1]) if first[name][1] else math.nan,
                "tokens": n,
            }
            for name, (nll, n) in totals.items()
        }
        termination = {
            "trained": termination_scores(pred_t, actual),
            "prompted_base": termination_scores(pred_b, actual),
        }
        for name in termination:  # a softer view than the greedy decision: is ending likelier where the chat ended?
            termination[name]["mean_p_end_where_ended"] = _mean(p_end[name][True])
            termination[name]["mean_p_end_where_continued"] = _mean(p_end[name][False])
        console.print(
            f"[bold]perplexity[/] on {ppl['trained']['tokens']} {label} user tokens ({len(pairs)} chats): "
            f"trained {ppl['trained']['user_turn_ppl']:.2f} vs prompted base "
            f"{ppl['prompted_base']['user_turn_ppl']:.2f}; termination F1 trained "
            f"{termination['trained']['f1']:.3f} vs prompted {termination['prompted_base']['f1']:.3f} "
            f"({len(actual)} decisions, {sum(actual)} real endings)"
        )
        return pairs, ppl, termination, actual

    pairs, ppl, termination, actual = ppl_and_termination(heldout[: args.num_ppl_conversations], "held-out ShareGPT")
    sharded_path = Path(args.run_dir) / "heldout_sharded.jsonl"
    sharded_report = None
    if args.num_sharded_conversations and sharded_path.is_file():
        sharded_convs = list(load_conversations(sharded_path))[: args.num_sharded_conversations]
        if sharded_convs:
            s_pairs, s_ppl, s_term, s_actual = ppl_and_termination(sharded_convs, "held-out sharded-task")
            sharded_report = {
                "scored_conversations": len(s_pairs),
                "termination_decisions": len(s_actual),
                "termination_should_end": int(sum(s_actual)),
                "perplexity": s_ppl,
                "termination": s_term,
            }

    # 2. generated first and second turns ---------------------------------------------------------
    gen_convs = heldout[: args.num_gen_intents]
    k = args.samples_per_intent
    prompts_t, prompts_b, kinds = [], [], []
    for conv in gen_convs:
        intent = conv.meta["intent"]
        chat = [m for m in conv.messages if m["role"] != "system"]
        sys_t = [{"role": "system", "content": intent}]
        sys_b = [{"role": "system", "content": PROMPTED_USER_SYSTEM.format(intent=intent)}]
        for _ in range(k):
            prompts_t.append(render_chat_ids(trained_tok, sys_t))
            prompts_b.append(render_chat_ids(base_tok, sys_b))
            kinds.append(("first", conv))
        if len(chat) >= 3:  # a second turn after the real first exchange
            shortened = _shorten(chat[:2], base_tok, flip)
            swapped = [
                {"role": "assistant" if m["role"] == "user" else "user", "content": m["content"]} for m in shortened
            ]
            prompts_t.append(render_chat_ids(trained_tok, sys_t + shortened))
            prompts_b.append(render_chat_ids(base_tok, sys_b + swapped))
            kinds.append(("second", conv))
    console.print(f"[bold]sampling[/] {len(prompts_t)} user turns per simulator ...")
    gen_t = sample_turns(trained, trained_tok, prompts_t, [eot_id, end_id], args, args.seed)
    gen_b = sample_turns(base, base_tok, prompts_b, [base_tok.eos_token_id], args, args.seed)
    for g in gen_b:  # the prompted model's stated end marker
        g["ended"] = g["text"].startswith(PROMPTED_END_MARKER)
    for g in gen_t:
        g["ended"] = g["stop"] == END_CONVERSATION and not g["text"]

    def metrics(
        first_turns: dict[str, list[str]], intents: dict[str, str], second_turns: list[str]
    ) -> dict[str, float]:
        firsts = [t for turns in first_turns.values() for t in turns]
        every = firsts + second_turns
        div = first_turn_diversity(first_turns)
        row = {
            "unique_first_turns": div["unique_first_turns"],
            "distinct_2_within_intent": div["distinct_2"],
            "pooled_distinct_2": div["pooled_distinct_2"],
            "intent_decomposition": _mean(
                intent_decomposition(t, intents[cid]) for cid, ts in first_turns.items() for t in ts
            ),
            "role_adherence": 1.0 - float(np.mean([looks_like_assistant(t) for t in every])) if every else math.nan,
            "intent_adherence": _mean(intent_overlap(t, intents[cid]) for cid, ts in first_turns.items() for t in ts),
            **{
                f"{key}": value
                for key, value in turn_length_stats(every).items()
                if key in ("mean_words", "median_words")
            },
        }
        return row

    intents = {c.id: c.meta["intent"] for c in gen_convs}
    rows = {}
    for name, gens in (("trained", gen_t), ("prompted_base", gen_b)):
        firsts: dict[str, list[str]] = {}
        seconds = []
        for (kind, conv), g in zip(kinds, gens):
            text = g["text"] if not g["ended"] else ""
            if kind == "first":
                firsts.setdefault(conv.id, []).append(text)
            else:
                seconds.append(text)
        rows[name] = metrics(firsts, intents, seconds)
        rows[name]["ended_at_first_turn"] = float(
            np.mean([g["ended"] for (kind, _), g in zip(kinds, gens) if kind == "first"])
        )
    human_first = {c.id: [c.user_turns()[0]] for c in gen_convs}
    human_second = [c.user_turns()[1] for c in gen_convs if len(c.user_turns()) > 1]
    rows["human"] = metrics(human_first, intents, human_second)
    rows["human"]["unique_first_turns"] = math.nan  # one real first turn per intent: no within-intent diversity
    rows["human"]["distinct_2_within_intent"] = math.nan
    rows["human"]["ended_at_first_turn"] = 0.0
    for name in ("trained", "prompted_base"):
        rows[name]["user_turn_ppl"] = ppl[name]["user_turn_ppl"]
        rows[name]["first_turn_ppl"] = ppl[name]["first_turn_ppl"]
        rows[name]["termination_f1"] = termination[name]["f1"]
        rows[name]["termination_precision"] = termination[name]["precision"]
        rows[name]["termination_recall"] = termination[name]["recall"]
        rows[name]["p_end_ended"] = termination[name]["mean_p_end_where_ended"]
        rows[name]["p_end_continued"] = termination[name]["mean_p_end_where_continued"]
    rows["human"].update(
        user_turn_ppl=math.nan,
        first_turn_ppl=math.nan,
        termination_f1=1.0,
        termination_precision=1.0,
        termination_recall=1.0,
    )

    with (out_dir / "samples.jsonl").open("w") as handle:
        for name, gens in (("trained", gen_t), ("prompted_base", gen_b)):
            for (kind, conv), g in zip(kinds, gens):
                row = {
                    "simulator": name,
                    "kind": kind,
                    "id": conv.id,
                    "intent": conv.meta["intent"],
                    "text": g["text"],
                    "ended": g["ended"],
                }
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    env_report = None
    if args.env_tasks:
        specs = {}
        for item in (x.strip() for x in args.env_users.split(",")):
            if item == "trained":
                specs["trained"] = f"userlm:{trained_path}"
            elif item == "prompted":
                specs["prompted_base"] = f"prompted:{base_spec if base_spec == 'smollm2-135m' else base_path}"
            elif item:
                specs[item.rstrip("/").replace("/", "_").replace(":", "_")] = item
        env_report = env_user_metrics(specs, args, out_dir, console)

    report = {
        "run_dir": args.run_dir,
        "trained_model": trained_path,
        "base_model": base_spec,
        "heldout_conversations": len(heldout),
        "scored_conversations": len(pairs),
        "termination_decisions": len(actual),
        "termination_should_end": int(sum(actual)),
        "generated_turns_per_simulator": len(prompts_t),
        "intent_methods": sorted({c.meta.get("intent_method", "?") for c in heldout}),
        "perplexity": ppl,
        "termination": termination,
        "table": rows,
        "sharded_heldout": sharded_report,
        "env": env_report,
        "args": dataclasses.asdict(args),
        "seconds": round(time.time() - started, 1),
    }
    (out_dir / "eval_report.json").write_text(json.dumps(report, indent=1))
    (out_dir / "eval_report.md").write_text(markdown_table(rows, report) + "\n")
    _plot(rows, out_dir / "eval_userlm.png")
    console.print(markdown_table(rows, report))
    return report


def env_user_metrics(user_specs: dict[str, str], args: Args, out_dir: Path, console=None) -> dict[str, dict[str, Any]]:
    """Each simulator as the user of ``UserLM-Math-v0`` (procedural tasks): user metrics over its episodes.

    Runs ``userlm_env.evaluation.runner.run_evaluation`` (SHARDED setting, ``args.env_tasks`` seeded tasks, one
    episode each, termination probes after correct answers) with ``args.env_assistant`` for every
    ``{name: user spec}``, then :func:`userlm_env.evaluation.user_metrics.user_metrics_from_episodes`:
    ``intent_coverage`` (share of shards revealed by the end), ``user_end_rate``, ``shards_per_user_turn``,
    termination precision/recall/F1, ... plus the assistant's score and the episodes' end reasons.
    """
    from collections import Counter

    from userlm_env.evaluation.runner import EvalConfig, run_evaluation
    from userlm_env.evaluation.user_metrics import user_metrics_from_episodes

    out: dict[str, dict[str, Any]] = {}
    for name, spec in user_specs.items():
        t0 = time.time()
        config = EvalConfig(
            assistants=[args.env_assistant],
            users=[spec],
            settings=["SHARDED"],
            tasks="procedural",
            num_tasks=args.env_tasks,
            runs_per_task=1,
            seed=args.seed,
            max_turns=args.env_max_turns or None,
            batch_size=args.batch_size,
        )
        run = run_evaluation(config, out_dir / f"env_{name}", overwrite=True)
        records = [r for r in run.records if not r.get("error")]
        probes = [
            bool(r["termination_probe"])
            for r in records
            if r.get("end_reason") == "correct_answer" and r.get("termination_probe") is not None
        ]
        metrics = user_metrics_from_episodes(records, termination_probes=probes)
        keep = (
            "intent_coverage",
            "first_turn_shards",
            "shards_per_user_turn",
            "user_end_rate",
            "termination_precision",
            "termination_recall",
            "termination_f1",
            "termination_should_end",
            "role_adherence",
            "user_turns_per_chat",
            "turn_mean_words",
        )
        row: dict[str, Any] = {k: metrics.get(k) for k in keep}
        row.update(
            spec=spec,
            episodes=len(run.records),
            errors=len(run.records) - len(records),
            score=_mean(float(r.get("score") or 0.0) for r in records),
            end_reasons=dict(Counter(str(r.get("end_reason")) for r in records)),
            seconds=round(time.time() - t0, 1),
        )
        out[name] = row
        if console is not None:
            console.print(
                f"[bold]env[/] {name}: intent coverage {row['intent_coverage']:.3f}, user end rate "
                f"{row['user_end_rate']:.3f}, termination F1 {row['termination_f1']:.3f}, score {row['score']:.3f}, "
                f"end reasons {row['end_reasons']} ({row['seconds']} s)"
            )
    return out


def _shorten(messages: list[dict], tokenizer, flip) -> list[dict]:
    """Messages truncated like the training examples (user and assistant token limits)."""
    out = []
    for m in messages:
        limit = flip.max_user_tokens if m["role"] == "user" else flip.max_assistant_tokens
        ids = tokenizer.encode(m["content"].strip(), add_special_tokens=False)[:limit]
        out.append({"role": m["role"], "content": tokenizer.decode(ids)})
    return out


def _mean(values) -> float:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


METRIC_ROWS = [
    ("user_turn_ppl", "user-turn perplexity (held-out, lower = better)"),
    ("first_turn_ppl", "first-turn perplexity"),
    ("termination_f1", "termination F1"),
    ("termination_precision", "termination precision"),
    ("termination_recall", "termination recall"),
    ("p_end_ended", "mean P(end token) where the real chat ended"),
    ("p_end_continued", "mean P(end token) where it continued"),
    ("unique_first_turns", "unique first turns per intent"),
    ("distinct_2_within_intent", "distinct-2 within intent"),
    ("pooled_distinct_2", "distinct-2 over all first turns"),
    ("intent_decomposition", "intent decomposition (first turn; lower = reveals less)"),
    ("role_adherence", "role adherence (not assistant-like)"),
    ("intent_adherence", "intent adherence (lexical overlap)"),
    ("ended_at_first_turn", "ended before saying anything"),
    ("mean_words", "mean words per turn"),
]


def markdown_table(rows: dict[str, dict[str, float]], report: dict[str, Any]) -> str:
    """The side-by-side table (trained User LM, prompted base, real humans) in Markdown."""

    def fmt(value: float) -> str:
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    lines = [
        f"Held-out ShareGPT: {report['scored_conversations']} chats scored "
        f"({report['perplexity']['trained']['tokens']} user tokens), {report['termination_decisions']} termination "
        f"decisions ({report['termination_should_end']} real endings), {report['generated_turns_per_simulator']} "
        f"sampled turns per simulator; intents: {', '.join(report['intent_methods'])}.",
        "",
        "| metric | trained User LM | prompted base | real humans |",
        "|---|---:|---:|---:|",
    ]
    for key, label in METRIC_ROWS:
        values = [fmt(rows[name].get(key)) for name in ("trained", "prompted_base", "human")]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    sharded = report.get("sharded_heldout")
    if sharded:
        lines += [
            "",
            f"Held-out sharded-task chats (the env's intent, one detail per turn): {sharded['scored_conversations']} "
            f"scored ({sharded['perplexity']['trained']['tokens']} user tokens), {sharded['termination_decisions']} "
            f"termination decisions ({sharded['termination_should_end']} after the correct answer).",
            "",
            "| metric | trained User LM | prompted base |",
            "|---|---:|---:|",
        ]
        for key, label in (("user_turn_ppl", "user-turn perplexity"), ("first_turn_ppl", "first-turn perplexity")):
            lines.append(
                f"| {label} | {fmt(sharded['perplexity']['trained'][key])} | "
                f"{fmt(sharded['perplexity']['prompted_base'][key])} |"
            )
        for key in ("f1", "precision", "recall"):
            lines.append(
                f"| termination {key} | {fmt(sharded['termination']['trained'][key])} | "
                f"{fmt(sharded['termination']['prompted_base'][key])} |"
            )
    env = report.get("env")
    if env:
        names = list(env)
        first = env[names[0]]
        lines += [
            "",
            f"UserLM-Math-v0 (procedural), {first['episodes']} episodes per user, assistant "
            f"`{report['args']['env_assistant']}` (metrics: userlm_env.evaluation.user_metrics):",
            "",
            "| metric | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for key in (
            "intent_coverage",
            "first_turn_shards",
            "shards_per_user_turn",
            "user_end_rate",
            "termination_f1",
            "termination_precision",
            "termination_recall",
            "score",
            "role_adherence",
            "turn_mean_words",
        ):
            lines.append(f"| {key} | " + " | ".join(fmt(env[n].get(key)) for n in names) + " |")
        lines.append("| end reasons | " + " | ".join(str(env[n]["end_reasons"]) for n in names) + " |")
    return "\n".join(lines)


def _plot(rows: dict[str, dict[str, float]], path: Path) -> None:
    """Bar chart of the bounded [0, 1] metrics for the three rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["termination_f1", "pooled_distinct_2", "intent_decomposition", "role_adherence", "intent_adherence"]
    names = ["trained", "prompted_base", "human"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.27
    for i, name in enumerate(names):
        values = [rows[name].get(k, math.nan) for k in keys]
        ax.bar(np.arange(len(keys)) + (i - 1) * width, [0 if math.isnan(v) else v for v in values], width, label=name)
    ax.set_xticks(np.arange(len(keys)), [k.replace("_", "\n") for k in keys], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("User-simulator metrics on held-out ShareGPT (trained vs prompted base vs humans)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    evaluate(parse_args())
