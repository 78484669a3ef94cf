"""Batched, per-request-seeded text generation on a local transformers model.

One :meth:`TransformersBackend.generate` call runs one left-padded batched ``model.generate``.
Sampling (temperature, top-p) happens in :class:`SeededSampler`, a logits processor that draws
each row's token from that row's own ``torch.Generator``: a request's output depends on its own
seed only, not on which other requests share the batch, so a vector env batching N episodes
reproduces N single envs with the same seeds. The processor also bans tokens per request
(UserLM's guardrails: forbidden first tokens, ``<|endconversation|>`` before a minimum turn).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

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
        """Ban tokens, then replace each row's scores by a one-hot of its seeded sample."""
        scores = scores.float().clone()
        first_step = input_ids.shape[1] == self.prompt_length
        for row, (banned, banned_first) in enumerate(zip(self.banned, self.banned_first)):
            if banned:
                scores[row, banned] = -float("inf")
            if first_step and banned_first:
                scores[row, banned_first] = -float("inf")
        if self.params.temperature == 0:
            return scores
        probs = torch.softmax(scores / self.params.temperature, dim=-1)
        if self.params.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(dim=-1) - sorted_probs > self.params.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
        chosen = torch.empty(len(self.generators), dtype=torch.long)
        for row, generator in enumerate(self.generators):
            uniform = torch.rand(1, generator=generator, dtype=torch.float64)
            cdf = probs[row].double().cumsum(0)
            chosen[row] = min(int(torch.searchsorted(cdf, uniform * cdf[-1])), probs.shape[-1] - 1)
        picked = torch.full_like(scores, -float("inf"))
        picked[torch.arange(len(chosen)), chosen.to(scores.device)] = 0.0
        return picked


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

    ``stats``: ``calls``; ``prompt_tokens`` (prompt tokens of all requests, padding excluded);
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
        }
    )
    prefix_cache: bool = False
    prefix_cache_size: int = 16
    min_prefix_tokens: int = 1
    _caches: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
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
        """Complete every request; one batched ``generate`` per ``max_batch_size`` requests."""
        results: list[Generation] = []
        for start in range(0, len(requests), self.max_batch_size):
            results.extend(self._generate_batch(requests[start : start + self.max_batch_size], params, stop_token_ids))
        return results

    def _generate_batch(self, requests, params, stop_token_ids) -> list[Generation]:
        if not requests:
            return []
        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        pad_id = tokenizer.pad_token_id
        width = max(len(r.prompt_ids) for r in requests)
        input_ids = torch.full((len(requests), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(requests), width), dtype=torch.long)
        for row, request in enumerate(requests):
            if not request.prompt_ids:
                raise ValueError("empty prompt: a generation request needs at least one token")
            input_ids[row, width - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids)
            attention_mask[row, width - len(request.prompt_ids) :] = 1
        stops = [int(s) for s in stop_token_ids]
        reuse = self.prefix_cache and len(requests) == 1
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=False,
            eos_token_id=stops or None,
            pad_token_id=pad_id,
            **({"return_dict_in_generate": True} if reuse else {}),
        )
        cached_len, past = self._cached_prefix(requests[0].prompt_ids) if reuse else (0, None)
        with warnings.catch_warnings():
            # transformers 5 renames generate's `past_key_values` to `cache`; the old name works until 6.0
            warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
            output = model.generate(
                input_ids=input_ids.to(model.device),
                attention_mask=attention_mask.to(model.device),
                generation_config=config,
                logits_processor=LogitsProcessorList([SeededSampler(requests, width, params)]),
                **({"past_key_values": past} if past is not None else {}),
            )
        if reuse:
            cache = getattr(output, "cache", None)  # transformers >= 5 names it `cache`
            cache = getattr(output, "past_key_values", None) if cache is None else cache
            output = output.sequences
            if cache is not None:
                covered = cache.get_seq_length()  # prompt + generated tokens but the last one
                self._store_prefix(tuple(output[0, :covered].tolist()), cache)
        new_tokens = output[:, width:].tolist()
        self.stats["calls"] += 1
        self.stats["prompt_tokens"] += int(attention_mask.sum())
        self.stats["prefill_tokens"] += int(attention_mask.sum()) - cached_len
        self.stats["cached_tokens"] += cached_len
        self.stats["cache_hits"] += int(cached_len > 0)
        generations = []
        for tokens in new_tokens:
            stop = None
            for i, tok in enumerate(tokens):
                if tok in stops:
                    tokens, stop = tokens[: i + 1], tok
                    break
            else:
                tokens = [t for t in tokens if t != pad_id] if pad_id not in stops else tokens
            self.stats["generated_tokens"] += len(tokens)
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            generations.append(Generation(token_ids=tuple(tokens), text=text, stop_token_id=stop))
        return generations

    def chat_completer(self, params: SamplingParams | None = None, seed: int = 0):
        """A ``complete(prompts) -> texts`` callable on this backend (see :func:`chat_completer`)."""
        return chat_completer(self, params, seed)

    def close(self) -> None:
        """Drop the cached KV prefix (the model itself is shared through ``load_model``'s cache)."""
        self.clear_prefix_cache()
