"""TransformersBackend's decode loop: finished rows leave the batch, outputs do not depend on it."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig

from userlm_env.backends.models import load_model
from userlm_env.backends.transformers_backend import GenerationRequest, SamplingParams, TransformersBackend

PROMPTS = ["apples and pears", "a train leaves at noon", "x", "how many legs do seven spiders have in total"]


def _requests(backend: TransformersBackend, n: int = 6) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            backend.render([{"role": "system", "content": PROMPTS[i % len(PROMPTS)] * (1 + i % 3)}]), seed=i
        )
        for i in range(n)
    ]


def _frequent_tokens(backend, requests, params) -> list[int]:
    """Stop tokens that end the rows at different steps: tokens the model emits early in some rows."""
    free = backend.generate(requests, params, [])
    return sorted({g.token_ids[k] for g in free for k in (2, 5)})[:3]


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_new_tokens=16, temperature=0.0),
        SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.95),
    ],
    ids=["greedy", "seeded-sampling"],
)
def test_batched_rows_equal_single_requests_and_finished_rows_leave(tiny_userlm_untrained, params):
    backend = TransformersBackend(load_model(str(tiny_userlm_untrained)))
    requests = _requests(backend)
    stops = _frequent_tokens(backend, requests, params)
    backend.stats["decode_slots"] = backend.stats["generated_tokens"] = 0
    batched = backend.generate(requests, params, stops)
    lengths = [len(g.token_ids) for g in batched]
    assert len(set(lengths)) > 1, "the rows should stop at different steps for this test to mean anything"
    assert any(g.stop_token_id in stops for g in batched)
    # every decode slot went to a row that was still generating: none padded after its stop
    assert backend.stats["decode_slots"] == backend.stats["generated_tokens"] == sum(lengths)
    assert sum(lengths) < len(requests) * max(lengths)
    for request, got in zip(requests, batched):
        alone = backend.generate([request], params, stops)[0]
        assert got == alone  # a row's tokens do not depend on its neighbours or on when they left
        if got.stop_token_id is not None:
            assert got.token_ids[-1] == got.stop_token_id and got.stop_token_id not in got.token_ids[:-1]
        else:
            assert len(got.token_ids) == params.max_new_tokens


def test_greedy_decode_matches_transformers_generate(tiny_userlm_untrained):
    """The reference: our loop decodes exactly what ``model.generate`` does for one greedy request."""
    loaded = load_model(str(tiny_userlm_untrained))
    backend = TransformersBackend(loaded)
    params = SamplingParams(max_new_tokens=12, temperature=0.0)
    for request in _requests(backend, 4):
        ours = backend.generate([request], params, [])[0]
        config = GenerationConfig(max_new_tokens=12, do_sample=False, pad_token_id=loaded.tokenizer.pad_token_id)
        reference = loaded.model.generate(torch.tensor([request.prompt_ids]), generation_config=config)
        assert list(ours.token_ids) == reference[0, len(request.prompt_ids) :].tolist()


def test_first_token_ban_and_global_ban_hold_in_the_batch(tiny_userlm_untrained):
    backend = TransformersBackend(load_model(str(tiny_userlm_untrained)))
    params = SamplingParams(max_new_tokens=6, temperature=0.0)
    plain = backend.generate(_requests(backend, 3), params, [])
    banned = [
        GenerationRequest(
            r.prompt_ids, r.seed, banned_first_token_ids=(g.token_ids[0],), banned_token_ids=(g.token_ids[1],)
        )
        for r, g in zip(_requests(backend, 3), plain)
    ]
    for request, got in zip(banned, backend.generate(banned, params, [])):
        assert got.token_ids[0] != request.banned_first_token_ids[0]
        assert request.banned_token_ids[0] not in got.token_ids


def test_empty_prompt_is_refused(tiny_userlm_untrained):
    backend = TransformersBackend(load_model(str(tiny_userlm_untrained)))
    with pytest.raises(ValueError, match="empty prompt"):
        backend.generate([GenerationRequest(())], SamplingParams(), [])
