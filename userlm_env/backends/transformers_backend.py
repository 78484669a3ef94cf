"""Batched, per-request-seeded text generation on a local transformers model.

One :meth:`TransformersBackend.generate` call prefills its requests in one left-padded forward pass
and decodes them together, one forward pass per token, over a ``DynamicCache``. A request that stops
(a stop token or ``max_new_tokens``) leaves the batch at once: its row is dropped from the cache,
the attention mask and the positions, so every row of every decode step is a token someone asked for
(``stats["decode_slots"] == stats["generated_tokens"]``), where ``model.generate`` keeps decoding
finished rows until the longest one stops. (transformers' continuous-batching API is not used: it
samples from one global generator, so a request's tokens would depend on its batch neighbours.)
Sampling (temperature, top-p) happens in :class:`SeededSampler`, a logits processor that draws
each row's token from that row's own ``torch.Generator``: a request's output depends on its own
seed only, not on which other requests share the batch, so a vector env batching N episodes
reproduces N single envs with the same seeds. The processor also bans tokens per request
(UserLM's guardrails: forbidden first tokens, ``<|endconversation|>`` before a minimum turn).
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, LogitsProcessor

from userlm_env.backends.base import Generation, GenerationRequest, SamplingParams, chat_completer
from userlm_env.backends.models import LoadedModel, load_model
from userlm_env.backends.rendering import render_chat_ids


class SeededSampler(LogitsProcessor):
    """Samples every row from its own seeded generator; greedy ``generate`` then takes that token.

    Args:
        requests: the batch's requests (their seeds and banned tokens).
        prompt_length: padded prompt length (to know the generation step).
        params: temperature and top-p.
    """

    def __init__(self, requests: Sequence[GenerationRequest], prompt_length: int, params: SamplingParams):
        self.prompt_length = prompt_length
        self.params = params
        self.generators = [torch.Generator().manual_seed(r.seed) for r in requests]
        self.banned_first = [list(r.banned_first_token_ids) for r in requests]
        self.banned = [list(r.banned_token_ids) for r in requests]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Ban tokens, then replace each row's scores by a one-hot of its seeded sample (``generate``'s hook)."""
        rows, first_step = range(len(self.generators)), input_ids.shape[1] == self.prompt_length
        chosen = self.pick(scores, rows, first_step)
        if chosen is None:
            return self._banned_scores(scores, rows, first_step)
        picked = torch.full_like(scores, -float("inf"), dtype=torch.float)
        picked[torch.arange(len(chosen)), chosen.to(scores.device)] = 0.0
        return picked

    def _banned_scores(self, scores: torch.Tensor, rows, first_step: bool) -> torch.Tensor:
        scores = scores.float().clone()
        for i, row in enumerate(rows):
            if self.banned[row]:
                scores[i, self.banned[row]] = -float("inf")
            if first_step and self.banned_first[row]:
                scores[i, self.banned_first[row]] = -float("inf")
        return scores

    def pick(self, scores: torch.Tensor, rows, first_step: bool) -> torch.Tensor | None:
        """Token of each row of ``scores`` (row ``i`` is request ``rows[i]``); None when greedy.

        Greedy (``temperature == 0``) returns None: the caller takes the argmax of the banned scores.
        """
        rows = list(rows)
        scores = self._banned_scores(scores, rows, first_step)
        if self.params.temperature == 0:
            return None
        probs = torch.softmax(scores / self.params.temperature, dim=-1)
        if self.params.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(dim=-1) - sorted_probs > self.params.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
        chosen = torch.empty(len(rows), dtype=torch.long)
        for i, row in enumerate(rows):
            uniform = torch.rand(1, generator=self.generators[row], dtype=torch.float64)
            cdf = probs[i].double().cumsum(0)
            chosen[i] = min(int(torch.searchsorted(cdf, uniform * cdf[-1])), probs.shape[-1] - 1)
        return chosen

    def next_tokens(self, scores: torch.Tensor, rows, first_step: bool) -> torch.Tensor:
        """The next token of every row: its seeded sample, or the argmax of its banned scores when greedy."""
        chosen = self.pick(scores, rows, first_step)
        if chosen is None:
            chosen = self._banned_scores(scores, list(rows), first_step).argmax(dim=-1)
        return chosen.cpu()


def _forward_kwargs(model, cache, last_only: bool) -> dict:
    """Keyword arguments of one forward pass: the cache and, for a prefill, ``logits_to_keep=1``.

    The cache goes under the name ``model.forward`` takes (transformers 5 renames ``past_key_values`` to
    ``cache``); ``logits_to_keep=1`` (only the last position's logits) where the model accepts it.
    """
    parameters = inspect.signature(model.forward).parameters
    kwargs = {"cache" if "cache" in parameters else "past_key_values": cache}
    if last_only and "logits_to_keep" in parameters:
        kwargs["logits_to_keep"] = 1
    return kwargs


@dataclass
class TransformersBackend:
    """Batched generation on a local transformers model.

    Args:
        loaded: the model and tokenizer (see :func:`userlm_env.backends.models.load_model`).
        max_batch_size: requests per ``generate`` call; larger batches are split.
        prefix_cache: opt-in KV-cache reuse. The backend keeps the ``DynamicCache`` of the last
            ``prefix_cache_size`` single-request generations (keyed by the tokens they cover: prompt
            plus generated tokens). A later *single-request* call whose prompt shares a prefix with
            one of them takes that cache out, crops it to the shared prefix and starts ``generate``
            from it, so only the new suffix is prefilled (a user turn at turn k re-encodes only what
            was added since turn k-1); the new generation's cache replaces the entry, so there is
            one entry per live conversation (memory: one KV cache of a whole conversation each).
            Batched calls (several requests) are left-padded and never use or fill the cache.
            Outputs equal those without reuse up to float rounding of the attention over a cached
            prefix vs a full prefill (tests check token equality, greedy and seeded sampling).
        prefix_cache_size: cached conversations kept (least recently used dropped first).
        min_prefix_tokens: shortest shared prefix worth reusing.

    ``stats``: ``calls``; ``decode_slots`` (rows run through decode steps: with eviction, one per
    generated token); ``prompt_tokens`` (prompt tokens of all requests, padding excluded);
    ``prefill_tokens`` (prompt tokens actually run through the model: ``prompt_tokens`` minus the
    ones taken from the prefix cache); ``cached_tokens``; ``cache_hits``; ``generated_tokens``.
    """

    loaded: LoadedModel
    max_batch_size: int = 32
    stats: dict[str, int] = field(
        default_factory=lambda: {
            "calls": 0,
            "prompt_tokens": 0,
            "prefill_tokens": 0,
            "cached_tokens": 0,
            "cache_hits": 0,
            "generated_tokens": 0,
            "decode_slots": 0,
        }
    )
    prefix_cache: bool = False
    prefix_cache_size: int = 16
    min_prefix_tokens: int = 1
    _caches: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    engine = "transformers"
    # Not thread-safe: one backend must not run generate from several threads when prefix_cache is on.

    def clear_prefix_cache(self) -> None:
        """Drop every cached prefix."""
        self._caches.clear()

    def _cached_prefix(self, prompt: tuple[int, ...]):
        """``(length, cache cropped to length)`` of the longest cached prefix of ``prompt``, or (0, None)."""
        best_len, best_key = 0, None
        for key in self._caches:
            limit = min(len(key), len(prompt) - 1)  # keep >= 1 prompt token to prefill (its logits start decoding)
            n = 0
            while n < limit and key[n] == prompt[n]:
                n += 1
            if n > best_len:
                best_len, best_key = n, key
        if best_key is None or best_len < self.min_prefix_tokens:
            return 0, None
        # The new generation's cache will cover this whole prefix: drop the old entry (one entry per
        # live conversation) and take its cache as is, cropped, instead of copying it.
        cache = self._caches.pop(best_key)
        surplus = cache.get_seq_length() - best_len
        if surplus > 0:
            cache.crop(-surplus)  # negative: tokens to drop (the form every transformers version accepts)
        return best_len, cache

    def _store_prefix(self, ids: tuple[int, ...], cache) -> None:
        self._caches[ids] = cache
        self._caches.move_to_end(ids)
        while len(self._caches) > self.prefix_cache_size:
            self._caches.popitem(last=False)

    @classmethod
    def from_spec(cls, spec: str, *, dtype: str = "auto", device: str | None = None, **kwargs) -> TransformersBackend:
        """Load (or reuse) the model named by ``spec`` and wrap it."""
        return cls(load_model(spec, dtype=dtype, device=device), **kwargs)

    @property
    def tokenizer(self):
        """The model's tokenizer."""
        return self.loaded.tokenizer

    def token_id(self, token: str) -> int | None:
        """Id of a single special/added token, or None when the vocabulary lacks it."""
        tid = self.tokenizer.convert_tokens_to_ids(token)
        return None if tid is None or tid == self.tokenizer.unk_token_id else int(tid)

    def render(self, messages: list[dict[str, str]], chat_template: str | None = None) -> tuple[int, ...]:
        """Tokenize a conversation with the chat template (the tokenizer's own unless given), opening a turn.

        Message contents never become control tokens: a reply holding the string ``<|eot_id|>`` is
        encoded as that text, not as the token (:func:`~userlm_env.backends.rendering.render_chat_ids`);
        ids are those of ``apply_chat_template(..., tokenize=True)`` for every other conversation.
        """
        return tuple(render_chat_ids(self.tokenizer, messages, chat_template=chat_template))

    @torch.inference_mode()
    def generate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams, stop_token_ids: Sequence[int]
    ) -> list[Generation]:
        """Complete every request; one batched decode per ``max_batch_size`` requests."""
        results: list[Generation] = []
        for start in range(0, len(requests), self.max_batch_size):
            results.extend(self._generate_batch(requests[start : start + self.max_batch_size], params, stop_token_ids))
        return results

    def _generate_batch(self, requests, params, stop_token_ids) -> list[Generation]:
        """Prefill the batch left-padded, then decode; a row leaves the batch (and its cache) when it stops."""
        if not requests:
            return []
        if any(not r.prompt_ids for r in requests):
            raise ValueError("empty prompt: a generation request needs at least one token")
        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        device, stops = model.device, {int(s) for s in stop_token_ids}
        reuse = self.prefix_cache and len(requests) == 1
        cached_len, cache = self._cached_prefix(requests[0].prompt_ids) if reuse else (0, None)
        cache = DynamicCache() if cache is None else cache
        suffixes = [r.prompt_ids[cached_len:] for r in requests]
        width = max(len(x) for x in suffixes)
        input_ids = torch.full((len(requests), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(requests), cached_len + width), dtype=torch.long)
        mask[:, :cached_len] = 1  # cached_len > 0 only for a single request
        for row, suffix in enumerate(suffixes):
            input_ids[row, width - len(suffix) :] = torch.tensor(suffix)
            mask[row, cached_len + width - len(suffix) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, cached_len:]
        logits = self._forward(input_ids, mask, positions, cache, last_only=True)
        next_position = positions[:, -1] + 1
        sampler = SeededSampler(requests, width, params)
        rows = list(range(len(requests)))  # requests still decoding, in batch order
        generated: list[list[int]] = [[] for _ in requests]
        stopped_by: list[int | None] = [None] * len(requests)
        for step in range(params.max_new_tokens):
            tokens = sampler.next_tokens(logits, rows, first_step=step == 0)
            self.stats["decode_slots"] += len(rows)
            keep = []
            for i, row in enumerate(rows):
                generated[row].append(int(tokens[i]))
                if int(tokens[i]) in stops:
                    stopped_by[row] = int(tokens[i])
                elif len(generated[row]) < params.max_new_tokens:
                    keep.append(i)
            if not keep:
                break
            if len(keep) < len(rows):  # evict finished rows: the next forward runs only live ones
                index = torch.tensor(keep)
                cache.batch_select_indices(index.to(device))
                mask, next_position, tokens = mask[index], next_position[index], tokens[index]
                rows = [rows[i] for i in keep]
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            logits = self._forward(tokens[:, None], mask, next_position[:, None], cache, last_only=False)
            next_position = next_position + 1
        if reuse:
            covered = cache.get_seq_length()  # prompt + generated tokens but the last one
            self._store_prefix((tuple(requests[0].prompt_ids) + tuple(generated[0]))[:covered], cache)
        prompt_tokens = sum(len(r.prompt_ids) for r in requests)
        self.stats["calls"] += 1
        self.stats["prompt_tokens"] += prompt_tokens
        self.stats["prefill_tokens"] += prompt_tokens - cached_len
        self.stats["cached_tokens"] += cached_len
        self.stats["cache_hits"] += int(cached_len > 0)
        self.stats["generated_tokens"] += sum(len(g) for g in generated)
        return [
            Generation(
                token_ids=tuple(g), text=tokenizer.decode(g, skip_special_tokens=True).strip(), stop_token_id=stop
            )
            for g, stop in zip(generated, stopped_by)
        ]

    def _forward(self, input_ids, attention_mask, position_ids, cache, *, last_only: bool) -> torch.Tensor:
        """Logits of the last position of every row, after running ``input_ids`` through the model into ``cache``."""
        model = self.loaded.model
        output = model(
            input_ids=input_ids.to(model.device),
            attention_mask=attention_mask.to(model.device),
            position_ids=position_ids.to(model.device),
            use_cache=True,
            **_forward_kwargs(model, cache, last_only),
        )
        return output.logits[:, -1, :]

    def chat_completer(self, params: SamplingParams | None = None, seed: int = 0):
        """A ``complete(prompts) -> texts`` callable on this backend (see :func:`chat_completer`)."""
        return chat_completer(self, params, seed)

    def close(self) -> None:
        """Drop the cached KV prefix (the model itself is shared through ``load_model``'s cache)."""
        self.clear_prefix_cache()
