"""Engines selected by the model spec: in-process llama.cpp and the managed llama.cpp server (real, bundled SmolLM2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import pytest

import userlm_env  # noqa: F401
from userlm_env.backends.base import GenerationRequest, SamplingParams
from userlm_env.backends.engines import make_backend, resolve_engine, split_options
from userlm_env.backends.managed_server import ManagedServer, ServerStartError
from userlm_env.backends.models import ModelLoadError

pytest.importorskip("llama_cpp", reason="needs llama-cpp-python: bash scripts/install_llama_server.sh")

SAMPLED = SamplingParams(max_new_tokens=24, temperature=0.8, top_p=0.9)


def _prompt(backend, text: str) -> tuple[int, ...]:
    return backend.render([{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}])


def test_spec_options_and_errors():
    assert split_options("smollm2-135m?engine=llama.cpp&threads=2") == (
        "smollm2-135m",
        {"engine": "llama.cpp", "threads": "2"},
    )
    assert split_options("http://127.0.0.1:1/v1?tokenizer=x") == ("http://127.0.0.1:1/v1?tokenizer=x", {})
    with pytest.raises(ValueError, match="Did you mean 'llama.cpp'"):
        split_options("smollm2-135m?engine=llama.cp")
    with pytest.raises(ValueError, match="Did you mean 'threads'"):
        split_options("smollm2-135m?thread=2")
    with pytest.raises(ModelLoadError, match="GGUF"):
        make_backend("microsoft/UserLM-8b?engine=llama.cpp")
    with pytest.raises(ValueError, match="0 or 1"):
        make_backend("smollm2-135m?engine=llama.cpp&prefix_cache=maybe")
    assert resolve_engine("microsoft/UserLM-8b") == "transformers"
    assert resolve_engine("smollm2-135m", "transformers") == "transformers"


@pytest.fixture(scope="module")
def llama_backends():
    cached = make_backend("smollm2-135m?engine=llama.cpp&threads=1")
    cold = make_backend("smollm2-135m?engine=llama.cpp&threads=1&prefix_cache=0")
    yield cached, cold
    cached.close()
    cold.close()


def test_llama_cpp_requests_depend_only_on_their_seed_when_cold(llama_backends):
    _, cold = llama_backends
    stops = [cold.tokenizer.eos_token_id]
    a, b = _prompt(cold, "Name a fruit."), _prompt(cold, "Name a colour, then a number.")
    first = cold.generate([GenerationRequest(a, seed=1), GenerationRequest(b, seed=2)], SAMPLED, stops)
    # other order, other neighbours: same tokens per request
    again = cold.generate([GenerationRequest(b, seed=2), GenerationRequest(a, seed=1)], SAMPLED, stops)
    assert first == again[::-1]
    other_seed = cold.generate([GenerationRequest(a, seed=3)], SAMPLED, stops)[0]
    assert other_seed != first[0]
    assert cold.stats["cached_tokens"] == 0


def test_llama_cpp_reuses_the_shared_prefix_and_honours_bans_and_stops(llama_backends):
    cached, _ = llama_backends
    stops = [cached.tokenizer.eos_token_id]
    a, b = _prompt(cached, "Name a fruit."), _prompt(cached, "Name a vegetable.")
    greedy = SamplingParams(max_new_tokens=16, temperature=0.0)
    cached.generate([GenerationRequest(a)], greedy, stops)
    before = dict(cached.stats)
    out = cached.generate([GenerationRequest(b)], greedy, stops)[0]
    shared = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    assert cached.stats["cached_tokens"] - before["cached_tokens"] == shared
    assert cached.stats["prefill_tokens"] - before["prefill_tokens"] == len(b) - shared
    assert cached.stats["decode_slots"] == cached.stats["generated_tokens"]
    banned = GenerationRequest(b, banned_first_token_ids=(out.token_ids[0],), banned_token_ids=(out.token_ids[1],))
    other = cached.generate([banned], greedy, stops)[0]
    assert other.token_ids[0] != out.token_ids[0] and out.token_ids[1] not in other.token_ids
    for generation in (out, other):
        assert generation.stop_token_id is None or generation.token_ids[-1] == generation.stop_token_id
    with pytest.raises(ValueError, match="context"):
        cached.generate([GenerationRequest(a)], SamplingParams(max_new_tokens=5000), stops)


def test_prompted_user_episode_on_llama_cpp(llama_backends):
    from userlm_env.users import PromptedUser

    user = PromptedUser(llama_backends[0])
    env = gym.make("UserLM-Math-v0", user=user, max_turns=3)
    env.reset(seed=0)
    assert env.unwrapped.episode.conversation[-1]["content"]
    env.step("Could you tell me more?")
    episode = env.unwrapped.episode
    assert episode.user_turns == 2 and episode.end_reason is None and len(episode.revealed) == 2


def test_managed_server_is_shared_restarted_after_a_crash_and_stopped():
    first = make_backend("smollm2-135m?engine=llama-server&threads=1&parallel=2")
    second = make_backend("smollm2-135m?engine=llama-server&threads=1&parallel=2")
    try:
        assert first.server is second.server and first.server.users == 2  # one server per model and options
        server = first.server
        prompt = _prompt(first, "Say hi.")
        greedy = SamplingParams(max_new_tokens=8, temperature=0.0)
        expected = first.generate([GenerationRequest(prompt)], greedy, [])[0]
        os.kill(server.proc.pid, signal.SIGKILL)  # the engine crashes
        server.proc.wait()
        assert second.generate([GenerationRequest(prompt)], greedy, [])[0].text == expected.text  # restarted
        assert server.healthy()
        first.close()
        assert server.proc.poll() is None  # still used by `second`
    finally:
        second.close()
    assert server.proc.poll() is not None  # the last release stopped it
    assert not ManagedServer._shared


def test_managed_server_start_failure_is_clear(tmp_path):
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ServerStartError, match="exited with code") as err:
        ManagedServer(bogus, startup_timeout=60)
    assert "broken.gguf" in str(err.value)


def test_managed_servers_are_stopped_at_exit():
    code = (
        "from userlm_env.backends.engines import make_backend\n"
        "b = make_backend('smollm2-135m?engine=llama-server&threads=1')\n"
        "print(b.server.proc.pid, flush=True)\n"
    )  # exits without close()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    pid = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the managed server outlived its process")
