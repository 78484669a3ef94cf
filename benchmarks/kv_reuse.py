"""KV-cache prefix reuse (``TransformersBackend(prefix_cache=True)``): prefill tokens and latency per turn.

A UserLM-style multi-turn conversation on the bundled SmolLM2-135M: a system intent, then at
each turn the model writes the next message from the whole conversation so far, a fixed reply is
appended, and so on for ``--turns`` turns. Every turn's prompt is run, side by side, on a plain
backend and on a prefix-caching one (same model, same request, same seed); the outputs are checked
equal. Printed per turn: prompt tokens, prefill tokens without / with reuse, turn latency without /
with reuse. Then time-to-first-token (``max_new_tokens=1``) of turn 1 and of the last turn, with a
cache holding only the previous turn (what a running episode has), to isolate the prefill cost.

    python benchmarks/kv_reuse.py                       # 10 turns, ~2-3 min on 2 loaded cores
    python benchmarks/kv_reuse.py --turns 20 --max-new-tokens 48 --reply-words 60

Only single-request calls reuse the cache (batched, left-padded calls run as before), so this is
the single-env path (``gym.make``), not ``gym.make_vec``.
"""

from __future__ import annotations

import argparse
import time

from _common import machine, set_threads

from userlm_env.backends.models import load_model
from userlm_env.backends.transformers_backend import GenerationRequest, SamplingParams, TransformersBackend

INTENT = (
    "You are a user chatting with an AI assistant to get help with a math word problem. You want the assistant "
    "to answer: how much money does Betty still need for the wallet? The details you know, which you share bit by "
    "bit: the wallet costs $100; Betty has half of the money; her parents give her $15; her grandparents give her "
    "twice as much as her parents. Write only your next short message."
)
REPLY = "Thanks, I see. Could you tell me a bit more about the problem so I can work it out? " * 2


def timed(backend, request, params, stops):
    """One single-request generate: (generation, seconds)."""
    start = time.perf_counter()
    out = backend.generate([request], params, stops)[0]
    return out, time.perf_counter() - start


def main() -> None:
    """Parse the flags, run the conversation with and without reuse, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--temperature", type=float, default=0.7, help="0 for greedy")
    parser.add_argument(
        "--reply-words", type=int, default=0, help="pad the fixed reply to this many words (longer prompts)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"machine: {machine()}")
    loaded = load_model(args.model)
    plain = TransformersBackend(loaded)
    cached = TransformersBackend(loaded, prefix_cache=True)
    eos = loaded.tokenizer.eos_token_id
    stops = [eos] if isinstance(eos, int) else list(eos or [])
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=0.9)
    reply = REPLY
    while len(reply.split()) < args.reply_words:
        reply += REPLY
    plain.generate([GenerationRequest(plain.render([{"role": "user", "content": "hi"}]))], params, stops)  # warm-up

    conversation = [
        {"role": "system", "content": INTENT},
        {"role": "user", "content": "Hi, I need help with a problem."},
    ]
    prompts, rows, mismatches = [], [], 0
    print(
        "| turn | prompt tokens | prefill tokens (no reuse) | prefill tokens (reuse) "
        "| latency no reuse (s) | latency reuse (s) |"
    )
    print("|---|---|---|---|---|---|")
    for turn in range(1, args.turns + 1):
        request = GenerationRequest(plain.render(conversation), seed=1000 + turn)
        prompts.append(request)
        before_plain, before_cached = plain.stats["prefill_tokens"], cached.stats["prefill_tokens"]
        out_plain, t_plain = timed(plain, request, params, stops)
        out_cached, t_cached = timed(cached, request, params, stops)
        mismatches += out_plain != out_cached
        pre_plain = plain.stats["prefill_tokens"] - before_plain
        pre_cached = cached.stats["prefill_tokens"] - before_cached
        rows.append((turn, len(request.prompt_ids), pre_plain, pre_cached, t_plain, t_cached))
        print(
            f"| {turn} | {len(request.prompt_ids)} | {pre_plain} | {pre_cached} | {t_plain:.3f} | {t_cached:.3f} |",
            flush=True,
        )
        conversation += [
            {"role": "assistant", "content": out_plain.text or "ok"},
            {"role": "user", "content": reply},
        ]
    print(f"outputs with reuse == without: {mismatches == 0} ({mismatches} mismatching turns of {args.turns})")
    first, last = rows[0], rows[-1]
    print(
        f"turn {last[0]} vs turn 1 latency: no reuse {last[4] / first[4]:.2f}x, reuse {last[5] / first[5]:.2f}x; "
        f"turn {last[0]} prefill tokens: {last[2]} without, {last[3]} with reuse"
    )
    total_plain = sum(r[2] for r in rows)
    total_cached = sum(r[3] for r in rows)
    print(
        f"prefill tokens over {args.turns} turns: {total_plain} without, {total_cached} with reuse "
        f"({total_cached / total_plain:.1%})"
    )

    # Time to first token: the prefill alone, turn 1 vs the last turn, cache holding only the previous turn.
    one = SamplingParams(max_new_tokens=1, temperature=args.temperature, top_p=0.9)
    print("time to first token (prefill), best of 3:")
    for index in (0, len(prompts) - 1):
        request = prompts[index]
        no_reuse = min(timed(plain, request, one, stops)[1] for _ in range(3))
        reuse = []
        for _ in range(3):
            fresh = TransformersBackend(loaded, prefix_cache=True)
            if index > 0:
                fresh.generate([prompts[index - 1]], params, stops)
            before = fresh.stats["prefill_tokens"]
            reuse.append(timed(fresh, request, one, stops)[1])
            prefilled = fresh.stats["prefill_tokens"] - before
        print(
            f"  turn {index + 1}: {len(request.prompt_ids)} prompt tokens; no reuse {no_reuse:.3f} s, "
            f"reuse {min(reuse):.3f} s ({prefilled} tokens prefilled)"
        )
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
