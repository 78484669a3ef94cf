"""Decode slots spent on tokens someone asked for: eviction vs ``model.generate``'s padded batch.

The requests are the prompted user's real prompts (the bundled SmolLM2-135M rephrasing the shards
of the default math tasks, the user's own sampling settings). Side by side in one process, on the
same requests, seeds and model:

* **generate**: one left-padded ``model.generate`` per batch with the same seeded sampler (what
  ``TransformersBackend`` did before): every row keeps decoding until the longest row stops;
* **eviction**: ``TransformersBackend.generate``: a row leaves the batch (and the KV cache) when it stops;
* **one by one**: the same backend, one request per call (no batching at all).

Printed per batch size N: useful tokens / decode slots (slot = one row in one decode step),
seconds, tokens/s and the speed ratios. Targets: useful share >= 90%; eviction >= generate.

    python benchmarks/decode_slots.py            # N = 8 and 16, ~2 minutes on 2 idle cores
    python benchmarks/decode_slots.py --n 4 8 16 32 --repeats 2
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import machine, prompted_user_requests, set_threads
from transformers import GenerationConfig, LogitsProcessorList

from userlm_env.backends.transformers_backend import SeededSampler, TransformersBackend


@torch.inference_mode()
def padded_generate(backend: TransformersBackend, requests, params, stops) -> tuple[int, int]:
    """One padded ``model.generate`` call: (useful tokens, decode slots)."""
    model, pad = backend.loaded.model, backend.tokenizer.pad_token_id
    width = max(len(r.prompt_ids) for r in requests)
    ids = torch.full((len(requests), width), pad)
    mask = torch.zeros_like(ids)
    for row, request in enumerate(requests):
        ids[row, width - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids)
        mask[row, width - len(request.prompt_ids) :] = 1
    config = GenerationConfig(
        max_new_tokens=params.max_new_tokens, do_sample=False, eos_token_id=stops, pad_token_id=pad
    )
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        generation_config=config,
        logits_processor=LogitsProcessorList([SeededSampler(requests, width, params)]),
    )[:, width:]
    useful = 0
    for row in out.tolist():
        stop_at = next((i for i, t in enumerate(row) if t in stops), None)
        useful += len(row) if stop_at is None else stop_at + 1
    return useful, out.shape[0] * out.shape[1]


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"machine: {machine()}")
    print(f"{'N':>3} {'method':>10} {'useful/slots':>14} {'share':>6} {'seconds':>8} {'tok/s':>7} {'vs generate':>12}")
    for n in args.n:
        user, requests = prompted_user_requests("smollm2-135m", n, args.seed)
        backend, params = user.backend, user.config.sampling
        stops = [backend.tokenizer.eos_token_id]
        rows = {}
        for _ in range(args.repeats):
            start = time.perf_counter()
            useful, slots = padded_generate(backend, requests, params, stops)
            rows.setdefault("generate", []).append((useful, slots, time.perf_counter() - start))
            before = dict(backend.stats)
            start = time.perf_counter()
            out = backend.generate(requests, params, stops)
            seconds = time.perf_counter() - start
            slots = backend.stats["decode_slots"] - before["decode_slots"]
            rows.setdefault("eviction", []).append((sum(len(g.token_ids) for g in out), slots, seconds))
            start = time.perf_counter()
            single = [backend.generate([r], params, stops)[0] for r in requests]
            rows.setdefault("one by one", []).append(
                (
                    sum(len(g.token_ids) for g in single),
                    sum(len(g.token_ids) for g in single),
                    time.perf_counter() - start,
                )
            )
        base = min(r[2] for r in rows["generate"])
        for method, runs in rows.items():
            useful, slots, _ = runs[0]
            seconds = min(r[2] for r in runs)
            print(
                f"{n:>3} {method:>10} {f'{useful}/{slots}':>14} {useful / slots:>6.0%} {seconds:>8.2f} "
                f"{useful / seconds:>7.1f} {base / seconds:>11.2f}x"
            )
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
