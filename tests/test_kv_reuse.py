"""KV-cache prefix reuse in TransformersBackend(prefix_cache=True): same outputs, fewer prefill tokens."""

from __future__ import annotations

import gymnasium as gym
import pytest

import userlm_env  # noqa: F401
from userlm_env.backends.models import load_model
from userlm_env.backends.transformers_backend import GenerationRequest, SamplingParams, TransformersBackend
from userlm_env.users import PromptedUser, UserLMConfig, UserLMUser

GREEDY = SamplingParams(max_new_tokens=12, temperature=0.0)
SAMPLED = SamplingParams(max_new_tokens=12, temperature=0.8, top_p=0.9)


def backends(path) -> tuple[TransformersBackend, TransformersBackend]:
    """A plain backend and a prefix-caching one on the same (process-cached) model."""
    loaded = load_model(str(path))
    return TransformersBackend(loaded), TransformersBackend(loaded, prefix_cache=True)


def stops(backend) -> list[int]:
    return [backend.token_id("<|eot_id|>")]


@pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "seeded-sampling"])
def test_growing_conversation_reuses_cache_with_equal_outputs(tiny_userlm_untrained, params):
    plain, cached = backends(tiny_userlm_untrained)
    conversation = [{"role": "system", "content": "You want help with a math problem about apples."}]
    for turn in range(6):
        request = GenerationRequest(plain.render(conversation), seed=100 + turn)
        expected = plain.generate([request], params, stops(plain))[0]
        got = cached.generate([request], params, stops(cached))[0]
        assert got == expected, f"turn {turn}"
        assert len(cached._caches) == 1  # one entry per live conversation, replaced each turn
        conversation += [
            {"role": "user", "content": expected.text or "hm"},
            {"role": "assistant", "content": f"Reply number {turn}."},
        ]
    assert cached.stats["prompt_tokens"] == plain.stats["prompt_tokens"]
    assert plain.stats["prefill_tokens"] == plain.stats["prompt_tokens"] and plain.stats["cached_tokens"] == 0
    assert cached.stats["cache_hits"] == 5
    assert cached.stats["prefill_tokens"] + cached.stats["cached_tokens"] == cached.stats["prompt_tokens"]
    assert cached.stats["prefill_tokens"] < cached.stats["prompt_tokens"] / 2


def test_diverging_and_repeated_prompts_crop_the_cache(tiny_userlm_untrained):
    plain, cached = backends(tiny_userlm_untrained)
    base = [{"role": "system", "content": "You want help with a math problem about pears."}]
    first = plain.render([*base, {"role": "user", "content": "hello there"}])
    other = plain.render([*base, {"role": "user", "content": "something else entirely"}])
    for ids in (first, first, other, first[:-3], other):  # repeat, branch, strict prefix, repeat
        request = GenerationRequest(ids, seed=5)
        for params in (GREEDY, SAMPLED):
            assert cached.generate([request], params, stops(cached)) == plain.generate([request], params, stops(plain))
    assert cached.stats["cache_hits"] >= 8


def test_batched_calls_neither_use_nor_fill_the_cache(tiny_userlm_untrained):
    plain, cached = backends(tiny_userlm_untrained)
    prompt = plain.render([{"role": "system", "content": "Ask about the bus."}])
    requests = [GenerationRequest(prompt, seed=1), GenerationRequest(prompt[:-2], seed=2)]
    assert cached.generate(requests, SAMPLED, stops(cached)) == plain.generate(requests, SAMPLED, stops(plain))
    assert cached.stats["cached_tokens"] == 0 and not cached._caches


def test_cache_is_bounded_lru(tiny_userlm_untrained):
    _, cached = backends(tiny_userlm_untrained)
    cached.prefix_cache_size = 2
    cached.min_prefix_tokens = 10_000  # no reuse: each call adds an entry
    for topic in ("cats", "dogs", "fish"):
        prompt = cached.render([{"role": "system", "content": f"Ask about {topic}."}])
        cached.generate([GenerationRequest(prompt, seed=0)], GREEDY, stops(cached))
    assert len(cached._caches) == 2
    cached.clear_prefix_cache()
    assert not cached._caches


def test_userlm_env_episodes_identical_with_reuse(conversational_userlm, toy):
    def transcript(prefix_cache: bool):
        backend = TransformersBackend(load_model(str(conversational_userlm)), prefix_cache=prefix_cache)
        user = UserLMUser(backend, UserLMConfig(sampling=SamplingParams(max_new_tokens=16)))
        env = gym.make("UserLM-Math-v0", user=user, tasks=[toy.task], max_turns=4)
        obs, _ = env.reset(seed=3)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(toy.ask)
            done = terminated or truncated
        return obs, backend.stats

    plain_obs, plain_stats = transcript(False)
    cached_obs, cached_stats = transcript(True)
    assert cached_obs == plain_obs
    assert cached_stats["cache_hits"] >= 1
    assert cached_stats["prefill_tokens"] < plain_stats["prefill_tokens"]


def test_prompted_user_shares_the_few_shot_prefix(tiny_chat_model, toy):
    plain, cached = backends(tiny_chat_model)
    turns = {}
    for name, backend in (("plain", plain), ("cached", cached)):
        env = gym.make("UserLM-Math-v0", user=PromptedUser(backend), tasks=[toy.task], max_turns=3)
        env.reset(seed=0)
        turns[name] = [env.step(toy.ask)[0] for _ in range(2)]
    assert turns["cached"] == turns["plain"]
    assert cached.stats["cache_hits"] > 0
    assert cached.stats["prefill_tokens"] < plain.stats["prefill_tokens"]
