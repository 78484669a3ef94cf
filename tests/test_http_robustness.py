"""The HTTP backend against hostile servers: trickling bytes, huge bodies, malformed JSON.

A server may not keep a run alive past its deadline (one total deadline per request, not a
per-read timeout), may not make the client buffer a gigabyte, and may not crash the client with
a ``KeyError``/``TypeError``: every failure is the backend's own error, which the env turns into a
truncated episode (``end_reason == "user_error"``).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from userlm_env.backends import GenerationRequest, HTTPBackend, SamplingParams, ServerResponseError
from userlm_env.backends.errors import BackendError, ServerUnavailableError
from userlm_env.backends.http_backend import DEFAULT_MAX_RESPONSE_BYTES, parse_response
from userlm_env.envs.math_env import UserLMMathEnv
from userlm_env.users import UserLMConfig, make_user

PARAMS = SamplingParams(max_new_tokens=8, temperature=0.7, top_p=0.9)
HELLO = [{"role": "user", "content": "hello"}]
MARGIN = 1.5  # seconds of slack on a loaded 2-core machine


class RawServer:
    """A loopback TCP server: each connection's request is read, then ``respond(server, conn)`` writes anything.

    ``sent`` counts the bytes written; ``stop`` is set on close so that trickling handlers end.
    """

    def __init__(self, respond):
        self.respond = respond
        self.hits = 0
        self.sent = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                body += conn.recv(65536)
            with self.lock:
                self.hits += 1
            self.respond(self, conn)
        except OSError:
            pass
        finally:
            conn.close()

    def send(self, conn, data: bytes):
        conn.sendall(data)
        with self.lock:
            self.sent += len(data)

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def raw_server():
    servers = []

    def make(respond):
        servers.append(RawServer(respond))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def json_response(payload, status=200) -> bytes:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )


def answering(payload, status=200):
    """A respond function that sends one fixed response."""

    def respond(server, conn):
        server.send(conn, json_response(payload, status))

    return respond


def trickle_body(server, conn):
    """Headers at once, then one byte every 0.2 s: each read is quick, the whole never ends."""
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    while not server.stop.wait(0.2):
        server.send(conn, b" ")


def trickle_headers(server, conn):
    """The status line and headers themselves, one byte every 0.2 s."""
    for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100000:
        if server.stop.wait(0.2):
            return
        server.send(conn, bytes([byte]))


def chat_backend(url, **kwargs) -> HTTPBackend:
    return HTTPBackend(url, model="m", mode="chat", **kwargs)


def chat_call(backend):
    return backend.generate([GenerationRequest(backend.render(HELLO))], PARAMS, [])


# --------------------------------------------------------------------------- total deadline


@pytest.mark.timeout(60)
@pytest.mark.parametrize("respond", [trickle_body, trickle_headers], ids=["body", "headers"])
def test_a_trickling_server_is_cut_off_at_the_deadline(raw_server, respond):
    """A byte every 0.2 s never trips a per-read timeout of 1 s; the total deadline ends it after 1 s."""
    server = raw_server(respond)
    backend = chat_backend(server.url, timeout=1.0, max_retries=0)
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match=r"timed out after 1s") as err:
        chat_call(backend)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 1.0 + MARGIN, elapsed
    assert server.url in str(err.value) and "1 attempts" in str(err.value)


@pytest.mark.timeout(60)
def test_a_trickling_server_with_retries_takes_retries_times_the_deadline(raw_server):
    server = raw_server(trickle_body)
    backend = chat_backend(server.url, timeout=0.8, max_retries=2, backoff=0.1)
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="3 attempts"):
        chat_call(backend)
    elapsed = time.monotonic() - start
    budget = 3 * 0.8 + (0.1 + 0.2)  # every attempt's deadline plus the backoffs
    assert 3 * 0.8 <= elapsed < budget + MARGIN, elapsed
    assert server.hits == 3 and backend.stats["retries"] == 2


@pytest.mark.timeout(60)
def test_the_deadline_covers_model_discovery(raw_server):
    """``GET /models`` (no model given) is bounded the same way."""
    server = raw_server(trickle_body)
    backend = HTTPBackend(server.url, mode="chat", timeout=0.8, max_retries=0)
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="timed out"):
        chat_call(backend)
    assert time.monotonic() - start < 0.8 + MARGIN


@pytest.mark.timeout(60)
def test_a_fast_server_is_not_affected(raw_server):
    server = raw_server(answering({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}))
    backend = chat_backend(server.url, timeout=0.5)
    for _ in range(3):
        assert chat_call(backend)[0].text == "hi"


# --------------------------------------------------------------------------- bounded bodies


def endless(header: bytes, chunked: bool = False):
    """Headers, then zeros as fast as the client takes them, until it hangs up (or 1 GB)."""

    def respond(server, conn):
        server.send(conn, header)
        block = b"0" * 65536
        frame = f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
        for _ in range(2**30 // len(block)):
            if server.stop.is_set():
                return
            server.send(conn, frame)

    return respond


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "header,chunked",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", True),
    ],
    ids=["announced-1GB", "until-close", "chunked"],
)
def test_a_huge_response_is_refused_without_buffering_it(raw_server, header, chunked):
    server = raw_server(endless(header, chunked))
    backend = chat_backend(server.url, timeout=20, max_retries=2, max_response_bytes=1_000_000)
    start = time.monotonic()
    with pytest.raises(ServerResponseError, match="max_response_bytes=1000000"):
        chat_call(backend)
    assert time.monotonic() - start < 10
    assert server.hits == 1  # not retried: a server that sends too much is broken, not busy
    time.sleep(0.3)
    assert server.sent < 64 * 2**20  # the client hung up long before 1 GB


def test_response_size_cap_default_and_spec():
    assert HTTPBackend("http://127.0.0.1:1/v1").max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 8 * 2**20
    assert HTTPBackend.from_spec("http://127.0.0.1:1/v1?max_response_bytes=1234").max_response_bytes == 1234
    with pytest.raises(ValueError, match="max_response_bytes"):
        HTTPBackend("http://127.0.0.1:1/v1", max_response_bytes=0)


# --------------------------------------------------------------------------- malformed bodies

COMPLETIONS_MALFORMED = {
    "usage-is-a-string": {"choices": [{"text": "ok", "finish_reason": "stop"}], "usage": "x"},
    "usage-count-is-a-word": {"choices": [{"text": "ok"}], "usage": {"completion_tokens": "many"}},
    "usage-count-negative": {"choices": [{"text": "ok"}], "usage": {"prompt_tokens": -1}},
    "usage-count-bool": {"choices": [{"text": "ok"}], "usage": {"prompt_tokens": True}},
    "usage-count-float": {"choices": [{"text": "ok"}], "usage": {"completion_tokens": 1.5}},
    "usage-is-a-list": {"choices": [{"text": "ok"}], "usage": [1, 2]},
    "missing-choices": {"usage": {"prompt_tokens": 1}},
    "empty-choices": {"choices": []},
    "choices-is-a-string": {"choices": "ok"},
    "choices-is-an-object": {"choices": {"0": {"text": "ok"}}},
    "empty-choice": {"choices": [{}]},
    "null-choice": {"choices": [None]},
    "text-null": {"choices": [{"text": None}]},
    "text-number": {"choices": [{"text": 5}]},
    "text-object": {"choices": [{"text": {"a": 1}}]},
    "finish-reason-number": {"choices": [{"text": "ok", "finish_reason": 3}]},
    "top-level-list": [1, 2, 3],
    "top-level-string": "ok",
    "top-level-number": 42,
    "top-level-null": None,
    "error-with-200": {"error": {"message": "model overloaded", "code": 503}},
    "not-json": b"<html>oops</html>",
    "not-utf8": b"\xff\xfe\xfd",
    "empty-body": b"",
    "nan": b'{"choices": [{"text": "ok"}], "usage": {"prompt_tokens": NaN}}',
    "deeply-nested": b"[" * 100000 + b"]" * 100000,
}
CHAT_MALFORMED = {
    "message-is-a-string": {"choices": [{"message": "hi"}]},
    "message-missing": {"choices": [{"text": "hi"}]},
    "content-number": {"choices": [{"message": {"content": 5}}]},
    "content-list": {"choices": [{"message": {"content": ["a"]}}]},
    "usage-is-a-string": {"choices": [{"message": {"content": "hi"}}], "usage": "x"},
}


@pytest.fixture
def completions_backend(raw_server, tiny_userlm_untrained):
    def make(payload):
        server = raw_server(answering(payload))
        backend = HTTPBackend(server.url, model="m", tokenizer=str(tiny_userlm_untrained), max_retries=3, timeout=5)
        return server, backend

    return make


@pytest.mark.parametrize("name", COMPLETIONS_MALFORMED)
def test_malformed_completions_bodies_raise_the_backend_error(completions_backend, name):
    server, backend = completions_backend(COMPLETIONS_MALFORMED[name])
    with pytest.raises(ServerResponseError, match="malformed body") as err:
        backend.generate([GenerationRequest(backend.render(HELLO))], PARAMS, [])
    assert server.url in str(err.value) and err.value.status == 200
    assert server.hits == 1  # not retried
    if name == "error-with-200":
        assert "model overloaded" in str(err.value)
    if name == "text-null":
        assert "choices[0].text is null" in str(err.value)
    if name == "usage-count-is-a-word":
        assert "usage.completion_tokens" in str(err.value)


@pytest.mark.parametrize("name", CHAT_MALFORMED)
def test_malformed_chat_bodies_raise_the_backend_error(raw_server, name):
    server = raw_server(answering(CHAT_MALFORMED[name]))
    with pytest.raises(ServerResponseError, match="malformed body"):
        chat_call(chat_backend(server.url, max_retries=3))
    assert server.hits == 1


def test_well_formed_edge_cases_are_accepted():
    assert parse_response(b'{"choices": [{"text": "ok"}], "usage": null}')[0] == "ok"
    assert parse_response('{"choices": [{"text": ""}]}')[:2] == ("", None)
    text, finish, choice, usage = parse_response(
        b'{"choices": [{"message": {"content": null}, "finish_reason": "length"}]}', "/chat/completions"
    )
    assert (text, finish, usage) == ("", "length", {"prompt_tokens": 0, "completion_tokens": 0})
    usage = parse_response(b'{"choices": [{"text": "x"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}')[3]
    assert usage == {"prompt_tokens": 3, "completion_tokens": 2}


def test_a_garbage_model_list_does_not_break_requests(raw_server):
    """``GET /models`` answering nonsense: the model stays unnamed and generation goes on."""

    def respond(server, conn):
        if server.hits == 1:  # the GET
            server.send(conn, json_response({"data": [{"id": 5}]}))
        else:
            server.send(conn, json_response({"choices": [{"message": {"content": "fine"}}]}))

    server = raw_server(respond)
    backend = HTTPBackend(server.url, mode="chat")
    assert chat_call(backend)[0].text == "fine" and backend.servers[0].model is None


# --------------------------------------------------------------------------- through the env


def _user_spec(kind, url, tiny_userlm_untrained, extra=""):
    if kind == "userlm":
        return f"userlm:{url}?model=m&tokenizer={tiny_userlm_untrained}{extra}"
    return f"prompted:{url}?model=m&mode=chat{extra}"


@pytest.mark.parametrize("kind", ["userlm", "prompted"])
@pytest.mark.parametrize("name", ["usage-is-a-string", "missing-choices", "text-null", "top-level-list"])
def test_env_truncates_on_a_malformed_user_server(raw_server, tiny_userlm_untrained, kind, name):
    payload = COMPLETIONS_MALFORMED[name] if kind == "userlm" else CHAT_MALFORMED.get(name, COMPLETIONS_MALFORMED[name])
    server = raw_server(answering(payload))
    env = UserLMMathEnv(user=_user_spec(kind, server.url, tiny_userlm_untrained), max_turns=8)
    obs, info = env.reset(seed=0)
    assert obs == [] and info["end_reason"] == "user_error"
    assert "ServerResponseError" in info["error"] and "malformed body" in info["error"] and server.url in info["error"]


@pytest.mark.parametrize("kind", ["userlm", "prompted"])
def test_env_truncates_mid_episode_when_the_server_turns_malformed(raw_server, tiny_userlm_untrained, kind):
    good_text = {"choices": [{"text": "how many eggs are left", "finish_reason": "stop"}]}
    good_chat = {"choices": [{"message": {"content": "how many cans are there?"}, "finish_reason": "stop"}]}
    bad = {"choices": [{"text": "x", "message": {"content": "x"}}], "usage": {"completion_tokens": "many"}}
    state = {"broken": False}

    def respond(server, conn):
        payload = bad if state["broken"] else (good_text if kind == "userlm" else good_chat)
        server.send(conn, json_response(payload))

    server = raw_server(respond)
    config = UserLMConfig(max_attempts=1, banned_first_words=()) if kind == "userlm" else None
    user = make_user(_user_spec(kind, server.url, tiny_userlm_untrained), config=config)
    env = UserLMMathEnv(user=user, max_turns=8)
    obs, info = env.reset(seed=0)
    assert info["end_reason"] is None and obs[-1]["role"] == "user"
    state["broken"] = True
    obs, reward, terminated, truncated, info = env.step("Could you tell me more?")
    assert truncated and not terminated and info["end_reason"] == "user_error"
    assert "usage.completion_tokens" in info["error"] and server.url in info["error"]


@pytest.mark.timeout(60)
def test_env_truncates_when_the_user_server_trickles(raw_server, tiny_userlm_untrained):
    server = raw_server(trickle_body)
    env = UserLMMathEnv(user=_user_spec("userlm", server.url, tiny_userlm_untrained, "&timeout=1&retries=1"))
    start = time.monotonic()
    obs, info = env.reset(seed=0)
    elapsed = time.monotonic() - start
    assert info["end_reason"] == "user_error" and "timed out after 1s" in info["error"]
    assert elapsed < 2 * 1.0 + 0.5 + MARGIN, elapsed  # two attempts and one backoff (0.5 s)


# --------------------------------------------------------------------------- fuzzing the parser

KEYS = ["choices", "text", "message", "content", "usage", "prompt_tokens", "completion_tokens", "finish_reason"]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


def response_like():
    """Mostly well-formed responses with any field replaced by anything."""
    choice = st.fixed_dictionaries(
        {},
        optional={
            "text": JSONISH,
            "message": st.fixed_dictionaries({}, optional={"content": JSONISH}) | JSONISH,
            "finish_reason": JSONISH,
            "stop_reason": JSONISH,
        },
    )
    usage = st.fixed_dictionaries({}, optional={"prompt_tokens": JSONISH, "completion_tokens": JSONISH}) | JSONISH
    return st.fixed_dictionaries(
        {}, optional={"choices": st.lists(choice | JSONISH, max_size=3) | JSONISH, "usage": usage}
    )


def check_parse(raw, path):
    try:
        text, finish, choice, usage = parse_response(raw, path)
    except ServerResponseError as err:
        assert "malformed body" in str(err)
        return
    assert isinstance(text, str) and (finish is None or isinstance(finish, str)) and isinstance(choice, dict)
    assert set(usage) == {"prompt_tokens", "completion_tokens"}
    assert all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in usage.values())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSONISH | response_like(), path=st.sampled_from(["/completions", "/chat/completions"]))
def test_fuzz_parse_response_json_values(value, path):
    raw = json.dumps(value, allow_nan=True).encode()
    check_parse(raw, path)


@settings(max_examples=200, deadline=None)
@given(
    raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode),
    path=st.sampled_from(["/completions", "/chat/completions"]),
)
def test_fuzz_parse_response_raw_bytes(raw, path):
    check_parse(raw, path)


def test_backend_errors_are_backend_errors():
    """What the env catches: both error kinds are BackendErrors."""
    assert issubclass(ServerResponseError, BackendError) and issubclass(ServerUnavailableError, BackendError)
