"""Generation on OpenAI-compatible HTTP servers (vLLM, SGLang, llama.cpp), with the local backend's interface.

:class:`HTTPBackend` duck-types :class:`~userlm_env.backends.TransformersBackend` (``tokenizer``,
``render``, ``token_id``, ``generate``), so :class:`~userlm_env.users.UserLMUser`,
:class:`~userlm_env.users.PromptedUser` and :class:`agents.TransformersAssistant` run on it unchanged.

Two modes:

- ``completions`` (``POST {base}/completions``): the prompt is rendered **client-side** with the
  model's own chat template (a tokenizer loaded locally with ``transformers.AutoTokenizer``). Needed
  for UserLM: a generic chat endpoint always opens an *assistant* turn, UserLM's template opens a
  *user* turn. Stop strings are the stop token ids' texts (plus ``stop_token_ids``, which vLLM and
  SGLang honour).
- ``chat`` (``POST {base}/chat/completions``): for assistant models; the messages go as they are
  and the server applies its template. :meth:`HTTPBackend.render` then returns a
  :class:`RenderedPrompt`, a tuple of token ids (empty without a local tokenizer) that also carries
  the messages, so callers that put ``render(...)`` into ``GenerationRequest.prompt_ids`` work as is.

Message contents never become control tokens (an assistant reply holding ``<|eot_id|>`` must not
forge a turn in the simulated user's prompt; see :mod:`userlm_env.backends.rendering`):

- completions, ``prompt_format="ids"``: the prompt goes as its token ids (``"prompt": [ids]``), which
  vLLM, SGLang and llama.cpp's own ``llama-server`` take as they are, so the server sees exactly the
  local tokens (contents' control-token strings encoded as text, no BOS added again).
- completions, ``prompt_format="text"``: the prompt goes as text; servers parse control-token
  strings in text prompts as control tokens, so a control-token string that came from a content gets
  a zero-width space (U+200B) after its first character (the model reads ``<``, U+200B,
  ``|eot_id|>``: the same visible characters, no control token). Prompts without one are sent
  exactly as before. A leading BOS is dropped when the tokenizer itself adds one when encoding text
  (the server adds it again).
- ``prompt_format="auto"`` (default): ids; if a server answers the first token-id prompt with an
  error status and takes the same prompt as text, that server gets text from then on.
  llama-cpp-python's server (``python -m llama_cpp.server``) only takes text prompts
  (``prompt: str | list[str]``; token ids get HTTP 500 with a validation error): it is used in text form.
- chat: the messages' control-token strings get the same zero-width space (those of the local
  tokenizer; without one, the common shapes ``<|...|>``, ``[INST]``, ``<s>``, ``<start_of_turn>``...).

Per request: ``seed`` (llama.cpp, vLLM and SGLang honour it; folded into 31 bits), ``temperature``,
``top_p``, ``max_tokens``. Banned tokens go as ``logit_bias`` ``{id: -100}``. Limits: -100 is a
very large penalty rather than a hard mask on some servers; the OpenAI API itself caps ``logit_bias``
at 300 entries; tokens banned only as the *first* token (UserLM's guardrail) cannot be expressed in
one OpenAI request, so in completions mode the first token is requested separately (``max_tokens=1``
with the first-token ban) and the rest continues from prompt + that token (one extra request per
generation; the token's text is re-tokenized, locally for an ids prompt, by the server for a text
prompt, which can split differently at the seam). In
chat mode first-token bans are ignored (a warning says so once).

Several base URLs share the load (``least_busy``: fewest requests in flight, ties round-robin;
or ``round_robin``); a thread pool runs a batch's requests concurrently (``concurrency`` per URL)
so N requests keep all servers busy. Each request has a total deadline, ``timeout`` seconds for the
whole exchange (connect, send, the response's headers and its whole body: a server trickling bytes is
cut off at the deadline, not at each read), and a response body larger than ``max_response_bytes``
is refused without being buffered (:class:`ServerResponseError`, not retried). A request is retried
with exponential backoff (``backoff * 2**k`` seconds, at most ``max_backoff``) on connection errors,
timeouts (so a call waits at most about ``(retries + 1) * timeout`` plus the backoffs), 429 and 5xx,
on another URL when there is one; a URL that failed is avoided for a short cool-down.
Errors (all :class:`~userlm_env.backends.errors.BackendError`):
server down or too slow after every retry (:class:`ServerUnavailableError`, URL and cause in the
message), 4xx with the server's own message, e.g. an unknown model name, or a non-JSON / malformed
body: not JSON, not an object, no ``choices``, a choice without a string ``text`` (completions) or
``message`` (chat; a null ``content`` reads as ""), a non-string ``finish_reason``, a ``usage`` that
is not an object of non-negative integers (:class:`ServerResponseError`, see :func:`parse_response`).

llama.cpp's server applies its own sampling defaults (``top_k=40``, ``min_p=0.05``,
``repeat_penalty=1.1``) unless told otherwise; ``plain_sampling=True`` sends ``top_k=0, min_p=0,
repeat_penalty=1`` so sampling is plain temperature/top-p like the local backend (vLLM versions that
reject ``top_k=0`` need ``extra_body={"top_k": -1}``). Stop identification: vLLM reports
``stop_reason`` and SGLang ``matched_stop``; servers that report neither (llama.cpp) are assumed to
have stopped on the *first* stop token, so a stop on a secondary one (UserLM's
``<|endconversation|>``) is only seen on vLLM/SGLang.

Spec strings (``make_user("userlm:SPEC")``, ``make_user("prompted:SPEC")``, ``make_assistant(SPEC)``)::

    http://HOST:PORT/v1[,http://HOST2:PORT2/v1...][?key=value&...]

keys: ``model`` (served model name; default: the first of ``GET /models``), ``tokenizer`` (hub
id, local dir, ``.gguf`` file or ``smollm2-135m``), ``mode`` (``completions`` | ``chat``; default
completions when a tokenizer is given, else chat), ``prompt_format`` (``auto`` | ``ids`` | ``text``),
``timeout``, ``retries``, ``backoff``, ``concurrency``, ``policy``, ``plain_sampling`` (0/1),
``max_response_bytes``. The API key, if any, comes from ``$USERLM_ENV_API_KEY``.
"""

from __future__ import annotations

import functools
import http.client
import io
import itertools
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from userlm_env.backends.base import Generation, GenerationRequest, SamplingParams, chat_completer
from userlm_env.backends.errors import BackendError, ServerResponseError, ServerUnavailableError  # noqa: F401
from userlm_env.backends.models import BUNDLED_SMOLLM2, ModelLoadError, bundled_smollm2_gguf, cache_dir
from userlm_env.backends.rendering import (
    control_tokens,
    encode_continuation,
    escape_messages,
    prompt_text_for_server,
    render_chat_ids,
)

MODES = ("completions", "chat")
POLICIES = ("least_busy", "round_robin")
PROMPT_FORMATS = ("auto", "ids", "text")
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
PLAIN_SAMPLING = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_SEED_MASK = 0x7FFFFFFF


def is_http_spec(spec: object) -> bool:
    """Whether ``spec`` names HTTP server(s) (starts with ``http://`` or ``https://``)."""
    return isinstance(spec, str) and spec.startswith(("http://", "https://"))


class RenderedPrompt(tuple):
    """Token ids of a rendered prompt that also carry the chat messages (for chat mode).

    Compares and hashes as ``(ids, messages)``; ``tuple(prompt)`` gives the plain ids.
    """

    messages: tuple[dict[str, str], ...]

    def __new__(cls, ids: Sequence[int] = (), messages: Sequence[Mapping[str, str]] = ()):
        """Ids ``ids`` carrying ``messages``."""
        self = super().__new__(cls, (int(i) for i in ids))
        self.messages = tuple(dict(m) for m in messages)
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RenderedPrompt):
            return tuple(self) == tuple(other) and self.messages == other.messages
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        """Negation of ``==``."""
        return not self == other

    def __hash__(self) -> int:
        return hash((tuple(self), tuple(tuple(sorted(m.items())) for m in self.messages)))

    def __reduce__(self):
        return (RenderedPrompt, (tuple(self), self.messages))


class _NoTokenizer:
    """Stands in for a tokenizer in chat mode without one: no special tokens, no stop ids."""

    eos_token_id = None
    bos_token_id = None
    unk_token_id = None
    pad_token_id = None
    chat_template = None

    def convert_tokens_to_ids(self, token):
        return None

    def encode(self, text, add_special_tokens=True):
        return []

    def decode(self, ids, skip_special_tokens=False):
        return ""


@functools.lru_cache(maxsize=8)
def _load_tokenizer_cached(spec: str):
    from transformers import AutoTokenizer

    path = Path(spec).expanduser()
    try:
        if spec == BUNDLED_SMOLLM2:
            converted = cache_dir() / "models" / "smollm2-135m-instruct"
            if (converted / "tokenizer_config.json").is_file():
                return AutoTokenizer.from_pretrained(converted)
            gguf = bundled_smollm2_gguf()
            return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelLoadError(f"GGUF file not found: {path}")
            return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        return AutoTokenizer.from_pretrained(spec)
    except ModelLoadError:
        raise
    except (OSError, ValueError, ImportError) as err:
        raise ModelLoadError(f"could not load tokenizer {spec!r}: {err}") from err


def load_tokenizer(spec: Any):
    """A tokenizer from a spec (hub id, local dir, ``.gguf`` file, ``smollm2-135m``) or object; None stays None."""
    if spec is None or not isinstance(spec, (str, Path)):
        return spec
    return _load_tokenizer_cached(str(spec))


@dataclass
class _Server:
    url: str
    scheme: str
    host: str
    port: int | None
    prefix: str
    in_flight: int = 0
    failures: int = 0
    avoid_until: float = 0.0
    last_pick: int = 0
    model: str | None = None
    model_resolved: bool = False
    token_prompts: bool | None = None  # takes token-id prompts (None: not known yet)


def _parse_base(url: str) -> _Server:
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) base URL: {url!r} (expected e.g. http://127.0.0.1:8000/v1)")
    return _Server(url=url.rstrip("/"), scheme=parts.scheme, host=parts.hostname, port=parts.port, prefix=parts.path)


def _server_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return text[:300] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)[:500]
    return text[:300]


def _malformed(what: str, raw: bytes | str, url: str | None, path: str, status: int | None) -> ServerResponseError:
    snippet = (raw[:200].decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)[:200]) if raw else ""
    where = f"{url or 'the server'}{path}"
    return ServerResponseError(
        f"{where} answered HTTP {status} with a malformed body ({what}): {snippet!r}", url=url, status=status
    )


def _count(usage: Mapping, key: str) -> int:
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"usage.{key} is {value!r}, not a non-negative integer")
    return value


def parse_response(
    raw: bytes | str, path: str = "/completions", *, url: str | None = None, status: int | None = 200
) -> tuple[str, str | None, dict, dict[str, int]]:
    """Validate an OpenAI-style completion response body.

    Args:
        raw: the body (bytes or text).
        path: ``/completions`` (``choices[0].text``) or ``/chat/completions`` (``choices[0].message.content``).
        url: the server, for the error message.
        status: the HTTP status, for the error message.

    Returns:
        ``(text, finish_reason, choice, usage)``: the first choice's text (chat: a null ``content`` is
        ""), its ``finish_reason`` (a string or None), the choice object, and
        ``{"prompt_tokens": n, "completion_tokens": m}`` (0 where ``usage`` does not say).

    Raises:
        ServerResponseError: anything else (not UTF-8 JSON, not an object, no non-empty ``choices``
            list, a choice that is not an object, a text that is not a string, a non-string
            ``finish_reason``, a ``usage`` that is not an object of non-negative integers), with what
            was wrong and the start of the body. Never another exception type.
    """
    try:
        data = json.loads(raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw)
    except (ValueError, RecursionError, TypeError) as err:
        raise _malformed(f"not JSON: {type(err).__name__}", raw, url, path, status) from None
    try:
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            error = data.get("error")
            if error is not None:
                raise ValueError(f"no choices; the server says: {_server_message(json.dumps(data).encode())}")
            kind = type(choices).__name__ if choices is not None else "missing"
            raise ValueError(f"'choices' is {kind}, not a non-empty list")
        choice = choices[0]
        if not isinstance(choice, dict):
            raise ValueError(f"choices[0] is {type(choice).__name__}, not an object")
        if path.endswith("/chat/completions"):
            message = choice.get("message")
            if not isinstance(message, dict):
                raise ValueError(f"choices[0].message is {type(message).__name__}, not an object")
            text = message.get("content")
            if text is None:  # the OpenAI spec allows null content (refusals, tool calls)
                text = ""
            if not isinstance(text, str):
                raise ValueError(f"choices[0].message.content is {type(text).__name__}, not a string")
        else:
            text = choice.get("text")
            if not isinstance(text, str):
                raise ValueError(f"choices[0].text is {'null' if text is None else type(text).__name__}, not a string")
        finish = choice.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            raise ValueError(f"finish_reason is {type(finish).__name__}, not a string")
        usage = data.get("usage")
        if usage is None:
            usage = {}
        if not isinstance(usage, dict):
            raise ValueError(f"usage is {type(usage).__name__}, not an object")
        counts = {key: _count(usage, key) for key in ("prompt_tokens", "completion_tokens")}
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as err:
        raise _malformed(str(err), raw, url, path, status) from None
    return text, finish, choice, counts


class _DeadlineExceeded(TimeoutError):
    """The request's total deadline passed."""


class _DeadlineReader(io.RawIOBase):
    """A socket's read side where every read is bounded by one total deadline (not a per-read timeout)."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlineExceeded("deadline passed")
        self._sock.settimeout(remaining)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """An ``HTTPResponse`` whose status line, headers and body must all arrive before ``deadline``."""

    def __init__(self, sock, debuglevel=0, method=None, url=None, *, deadline: float):
        super().__init__(sock, debuglevel=debuglevel, method=method, url=url)
        self.fp.close()  # the plain socket file: replaced by one that enforces the deadline
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline))


class _Prompt:
    """A completions prompt (token ids, plus text generated since) in the form each server takes."""

    def __init__(self, backend: HTTPBackend, ids: Sequence[int], suffix: str = ""):
        self.backend, self.ids, self.suffix = backend, [int(i) for i in ids], suffix
        self._text: str | None = None

    def extended(self, text: str) -> _Prompt:
        """The prompt followed by ``text`` (what the model generated so far)."""
        return _Prompt(self.backend, self.ids, self.suffix + text)

    def as_ids(self) -> list[int]:
        """Token ids: the rendered prompt, then the generated text re-encoded."""
        if not self.suffix:
            return list(self.ids)
        with self.backend._tok_lock:
            return self.ids + encode_continuation(self.backend._tokenizer, self.suffix)

    def as_text(self) -> str:
        """Text whose server-side tokenization has the prompt's control tokens and no other."""
        if self._text is None:
            self._text = self.backend._prompt_text(self.ids) + self.suffix
        return self._text


class HTTPBackend:
    """Batched generation on OpenAI-compatible servers, load-balanced, with retries and clear errors.

    Args:
        base_urls: one base URL (``http://host:port/v1``) or several (a list, or comma-separated).
        model: the served model name sent as ``model``; None asks ``GET /models`` once per server.
        tokenizer: tokenizer object or spec (hub id, dir, ``.gguf``, ``smollm2-135m``). Required in
            completions mode; in chat mode it only provides stop ids, token counts and ``token_id``.
        mode: ``"completions"`` or ``"chat"``; default completions with a tokenizer, else chat.
        timeout: seconds for a whole request (connect, send, response headers and body): a total deadline.
        max_retries: retries after the first attempt (connection errors, timeouts, 429, 5xx).
        backoff: first retry delay in seconds; doubles each retry, capped at ``max_backoff``.
        concurrency: requests in flight per base URL (thread pool size = concurrency x URLs).
        policy: ``"least_busy"`` or ``"round_robin"``.
        plain_sampling: send :data:`PLAIN_SAMPLING` (turns off llama.cpp's top-k/min-p/repeat penalty).
        extra_body: fields merged into every request body (server-specific options).
        send_stop_token_ids: also send ``stop_token_ids`` (vLLM, SGLang; ignored by llama.cpp).
        api_key: bearer token; default ``$USERLM_ENV_API_KEY``.
        prompt_format: completions prompts as token ``ids``, as ``text`` (control-token strings from
            contents neutralized), or ``auto`` (ids; text on a server that refuses ids but takes text).
        max_response_bytes: a longer response body is refused (:class:`ServerResponseError`).
    """

    engine = "http"

    def __init__(
        self,
        base_urls: str | Sequence[str],
        *,
        model: str | None = None,
        tokenizer: Any = None,
        mode: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        concurrency: int = 8,
        policy: str = "least_busy",
        plain_sampling: bool = False,
        extra_body: Mapping[str, Any] | None = None,
        send_stop_token_ids: bool = True,
        api_key: str | None = None,
        prompt_format: str = "auto",
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ):
        urls = [u.strip() for u in base_urls.split(",")] if isinstance(base_urls, str) else [str(u) for u in base_urls]
        urls = [u for u in urls if u]
        if not urls:
            raise ValueError("HTTPBackend needs at least one base URL")
        self.servers = [_parse_base(u) for u in urls]
        self._tokenizer = load_tokenizer(tokenizer)
        self.mode = mode or ("completions" if self._tokenizer is not None else "chat")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "completions" and self._tokenizer is None:
            raise ValueError(
                "completions mode renders prompts client-side and needs a tokenizer: pass tokenizer= "
                "(hub id, local dir, .gguf file or 'smollm2-135m'), or use mode='chat'"
            )
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if timeout <= 0 or max_retries < 0 or concurrency < 1:
            raise ValueError("need timeout > 0, max_retries >= 0 and concurrency >= 1")
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be >= 1, got {max_response_bytes}")
        for server in self.servers:
            server.model, server.model_resolved = model, model is not None
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.concurrency = int(concurrency)
        self.policy = policy
        self.extra_body = {**(PLAIN_SAMPLING if plain_sampling else {}), **dict(extra_body or {})}
        self.send_stop_token_ids = send_stop_token_ids
        self.prompt_format = prompt_format
        self.max_response_bytes = int(max_response_bytes)
        self.api_key = api_key if api_key is not None else os.environ.get("USERLM_ENV_API_KEY")
        self.stats: dict[str, int] = {
            "calls": 0,
            "requests": 0,
            "prompt_tokens": 0,
            "generated_tokens": 0,
            "retries": 0,
            "errors": 0,
        }
        self._lock = threading.Lock()
        self._tok_lock = threading.Lock()  # a fast tokenizer shared by worker threads: no concurrent borrows
        self._stop_cache: dict[tuple[int, ...], dict[str, int]] = {}
        self._picks = itertools.count(1)
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._warned_first_ban = False
        self._bos_added = self._tokenizer_adds_bos()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_spec(cls, spec: str, **overrides: Any) -> HTTPBackend:
        """Build from ``http://h:p/v1[,http://h2:p2/v1][?model=..&tokenizer=..&mode=..&timeout=..]``."""
        if not is_http_spec(spec):
            raise ValueError(f"not an HTTP backend spec: {spec!r} (expected http://HOST:PORT/v1[?tokenizer=...])")
        urls, _, query = spec.partition("?")
        kwargs: dict[str, Any] = {}
        casts = {
            "model": str,
            "tokenizer": str,
            "mode": str,
            "policy": str,
            "timeout": float,
            "retries": int,
            "concurrency": int,
            "backoff": float,
            "plain_sampling": lambda v: v.lower() in ("1", "true", "yes"),
            "prompt_format": str,
            "max_response_bytes": int,
        }
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in casts:
                raise ValueError(f"unknown HTTP backend option {key!r} in {spec!r}; valid: {sorted(casts)}")
            kwargs["max_retries" if key == "retries" else key] = casts[key](value)
        kwargs.update(overrides)
        return cls(urls, **kwargs)

    @property
    def base_urls(self) -> list[str]:
        """The servers' base URLs."""
        return [s.url for s in self.servers]

    def __repr__(self) -> str:
        return f"HTTPBackend({','.join(self.base_urls)!r}, mode={self.mode!r}, model={self.model!r})"

    # ------------------------------------------------------------------ TransformersBackend interface
    @property
    def tokenizer(self):
        """The local tokenizer (a stand-in without special tokens in chat mode without one)."""
        return self._tokenizer if self._tokenizer is not None else _NoTokenizer()

    def token_id(self, token: str) -> int | None:
        """Id of a single special/added token, or None when the vocabulary lacks it (or no tokenizer)."""
        if self._tokenizer is None:
            return None
        tid = self._tokenizer.convert_tokens_to_ids(token)
        return None if tid is None or tid == self._tokenizer.unk_token_id else int(tid)

    def render(self, messages: list[dict[str, str]], chat_template: str | None = None) -> RenderedPrompt:
        """Render a conversation: token ids (with the chat template, opening a turn) plus the messages.

        Message contents never become control tokens (as :meth:`TransformersBackend.render`).

        Raises:
            ValueError: a custom ``chat_template`` in chat mode (the server applies its own template).
        """
        if self.mode == "chat" and chat_template is not None:
            raise ValueError(
                "chat mode cannot apply a custom chat template (the server applies its own); "
                "use mode='completions' with the model's tokenizer"
            )
        ids: Sequence[int] = ()
        if self._tokenizer is not None:
            with self._tok_lock:  # contents never become control tokens (see userlm_env.backends.rendering)
                ids = render_chat_ids(self._tokenizer, messages, chat_template=chat_template)
        return RenderedPrompt(ids, messages)

    def generate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams, stop_token_ids: Sequence[int]
    ) -> list[Generation]:
        """Complete every request concurrently across the servers; results in request order.

        Raises:
            BackendError: a request failed after its retries (the other requests are finished first).
        """
        if not requests:
            return []
        stops = [int(s) for s in stop_token_ids]
        with self._lock:
            self.stats["calls"] += 1
        if len(requests) == 1:
            return [self._one(requests[0], params, stops)]
        pool = self._executor()
        futures = [pool.submit(self._one, r, params, stops) for r in requests]
        wait_futures(futures)
        for future in futures:
            if future.exception() is not None:
                raise future.exception()
        return [f.result() for f in futures]

    def chat_completer(self, params: SamplingParams | None = None, seed: int = 0):
        """A ``complete(prompts) -> texts`` callable on this backend (see ``transformers_backend.chat_completer``)."""
        return chat_completer(self, params, seed)

    def close(self) -> None:
        """Stop the worker threads (connections close with them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ one request
    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=self.concurrency * len(self.servers), thread_name_prefix="userlm-http"
                    )
        return self._pool

    def _tokenizer_adds_bos(self) -> bool:
        tok = self._tokenizer
        if tok is None or getattr(tok, "bos_token_id", None) is None:
            return False
        try:
            ids = tok("a", add_special_tokens=True)["input_ids"]
        except Exception:  # noqa: BLE001 - an odd tokenizer: assume no BOS
            return False
        return bool(ids) and ids[0] == tok.bos_token_id

    def _stop_strings(self, stops: Sequence[int]) -> dict[str, int]:
        key = tuple(stops)
        if self._tokenizer is None:
            return {}
        if key not in self._stop_cache:
            out: dict[str, int] = {}
            with self._tok_lock:
                for sid in stops:
                    text = self._tokenizer.decode([sid], skip_special_tokens=False)
                    if text:
                        out.setdefault(text, sid)
            self._stop_cache[key] = out
        return self._stop_cache[key]

    def _prompt_text(self, prompt_ids: Sequence[int]) -> str:
        """The text form of a rendered prompt (see :func:`~userlm_env.backends.rendering.prompt_text_for_server`)."""
        ids = list(prompt_ids)
        if self._bos_added and ids and ids[0] == self._tokenizer.bos_token_id:
            ids = ids[1:]
        with self._tok_lock:
            return prompt_text_for_server(self._tokenizer, ids)

    def _chat_messages(self, messages: Sequence[Mapping[str, Any]]) -> list[dict]:
        """Messages for the chat endpoint, control-token strings in their contents neutralized."""
        if self._tokenizer is None:
            return escape_messages(messages, generic=True)
        with self._tok_lock:
            tokens = control_tokens(self._tokenizer)
        return escape_messages(messages, tokens, generic=False)

    def _one(self, request: GenerationRequest, params: SamplingParams, stops: list[int]) -> Generation:
        stop_strings = self._stop_strings(stops)
        body: dict[str, Any] = {
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": int(request.seed) & _SEED_MASK,
        }
        if stop_strings:
            body["stop"] = list(stop_strings)
        if stops and self.send_stop_token_ids:
            body["stop_token_ids"] = stops
        banned = sorted(set(request.banned_token_ids))
        if banned:
            body["logit_bias"] = {str(i): -100 for i in banned}
        first_ban = sorted(set(request.banned_first_token_ids) - set(banned))
        if self.mode == "chat":
            messages = getattr(request.prompt_ids, "messages", None)
            if not messages:
                raise ValueError("chat mode needs prompts made by HTTPBackend.render (they carry the messages)")
            body["messages"] = self._chat_messages(messages)
            if first_ban and not self._warned_first_ban:
                self._warned_first_ban = True
                warnings.warn(
                    "HTTPBackend chat mode cannot ban first tokens; banned_first_token_ids ignored", stacklevel=2
                )
            text, finish, choice = self._complete("/chat/completions", body)
        else:
            prompt = _Prompt(self, request.prompt_ids)
            if first_ban:
                head = {
                    **body,
                    "max_tokens": 1,
                    "logit_bias": {**body.get("logit_bias", {}), **{str(i): -100 for i in first_ban}},
                }
                text, finish, choice = self._complete("/completions", head, prompt)
                if finish == "length" and params.max_new_tokens > 1 and not self._stop_in(text, stop_strings):
                    rest = {
                        **body,
                        "max_tokens": params.max_new_tokens - 1,
                        "seed": (int(request.seed) + 1) & _SEED_MASK,
                    }
                    more, finish, choice = self._complete("/completions", rest, prompt.extended(text))
                    text += more
            else:
                text, finish, choice = self._complete("/completions", body, prompt)
        return self._generation(text, finish, choice, stops, stop_strings)

    @staticmethod
    def _stop_in(text: str, stop_strings: Mapping[str, int]) -> bool:
        return any(s in text for s in stop_strings)

    def _generation(self, text: str, finish: str | None, choice: dict, stops: list[int], stop_strings) -> Generation:
        stop_id = None
        cut = min(((text.find(s), sid) for s, sid in stop_strings.items() if s in text), default=None)
        if cut is not None:  # the server did not cut at a stop string (e.g. special tokens kept in the text)
            text, stop_id = text[: cut[0]], cut[1]
        elif finish not in (None, "length") and stops:
            reason = choice.get("stop_reason", choice.get("matched_stop"))
            if isinstance(reason, int) and not isinstance(reason, bool) and reason in stops:
                stop_id = reason
            elif isinstance(reason, str) and reason in stop_strings:
                stop_id = stop_strings[reason]
            else:
                stop_id = stops[0]
        if self._tokenizer is None:
            return Generation(token_ids=(), text=text.strip(), stop_token_id=stop_id)
        with self._tok_lock:
            ids = [int(i) for i in self._tokenizer.encode(text, add_special_tokens=False)]
            clean = self._tokenizer.decode(ids, skip_special_tokens=True).strip()
        if stop_id is not None:
            ids.append(stop_id)
        return Generation(token_ids=tuple(ids), text=clean, stop_token_id=stop_id)

    # ------------------------------------------------------------------ transport
    def _complete(self, path: str, body: dict[str, Any], prompt: _Prompt | None = None) -> tuple[str, str | None, dict]:
        """POST with load balancing and retries; return (text, finish_reason, choice).

        ``prompt`` (completions) is sent as token ids or as text, whichever the server takes.
        """
        tried: list[str] = []
        last_error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
            server = self._pick(avoid=tried)
            tried.append(server.url)
            try:
                payload = {**body, **self.extra_body}
                model = self._model(server)
                if model is not None:
                    payload.setdefault("model", model)
                status, raw = self._post_prompt(server, path, payload, prompt)
            except ServerResponseError:
                self._release(server, ok=False)
                self._count_error()
                raise
            except (OSError, http.client.HTTPException) as err:
                last_error = self._describe(err)
                self._release(server, ok=False)
                continue
            if status in _RETRY_STATUS:
                last_error = f"HTTP {status}: {_server_message(raw)}"
                self._release(server, ok=False)
                continue
            self._release(server, ok=True)
            if status >= 400:
                self._count_error()
                raise ServerResponseError(
                    f"{server.url}{path} answered HTTP {status}: {_server_message(raw)}", url=server.url, status=status
                )
            return self._parse(server, path, status, raw)
        self._count_error()
        where = ", ".join(dict.fromkeys(tried))
        raise ServerUnavailableError(
            f"{path} failed after {self.max_retries + 1} attempts on {where}: {last_error}. "
            f"Is the server running and reachable (timeout={self.timeout:g}s per request)?",
            url=tried[-1],
        )

    def _post_prompt(
        self, server: _Server, path: str, payload: dict[str, Any], prompt: _Prompt | None
    ) -> tuple[int, bytes]:
        """POST ``payload`` with ``prompt`` as ids or text; in auto mode learn which the server takes."""
        if prompt is None:
            return self._post(server, path, payload)
        fmt = self.prompt_format
        use_ids = fmt == "ids" or (fmt == "auto" and server.token_prompts is not False)
        if not use_ids:
            return self._post(server, path, {**payload, "prompt": prompt.as_text()})
        status, raw = self._post(server, path, {**payload, "prompt": prompt.as_ids()})
        if fmt != "auto" or server.token_prompts is not None:
            return status, raw
        if status < 400:
            server.token_prompts = True
            return status, raw
        # Refused: maybe token ids are not a valid prompt there (llama-cpp-python answers HTTP 500 with a
        # validation error). The text form right away; if that one is taken, the server gets text from now on.
        text_status, text_raw = self._post(server, path, {**payload, "prompt": prompt.as_text()})
        if text_status < 400:
            server.token_prompts = False
        return text_status, text_raw

    def _parse(self, server: _Server, path: str, status: int, raw: bytes) -> tuple[str, str | None, dict]:
        try:
            text, finish, choice, usage = parse_response(raw, path, url=server.url, status=status)
        except ServerResponseError:
            self._count_error()
            raise
        with self._lock:
            self.stats["requests"] += 1
            self.stats["prompt_tokens"] += usage["prompt_tokens"]
            self.stats["generated_tokens"] += usage["completion_tokens"]
        return text, finish, choice

    def _count_error(self) -> None:
        with self._lock:
            self.stats["errors"] += 1

    def _describe(self, err: BaseException) -> str:
        if isinstance(err, (socket.timeout, TimeoutError)):
            return f"timed out after {self.timeout:g}s (deadline for the whole request, response body included)"
        if isinstance(err, ConnectionRefusedError):
            return "connection refused (server down?)"
        return f"{type(err).__name__}: {err}"

    def _pick(self, avoid: Sequence[str] = ()) -> _Server:
        with self._lock:
            now = time.monotonic()
            fresh = [s for s in self.servers if s.url not in avoid] or self.servers
            healthy = [s for s in fresh if s.avoid_until <= now] or fresh
            if self.policy == "round_robin":
                server = min(healthy, key=lambda s: s.last_pick)
            else:
                server = min(healthy, key=lambda s: (s.in_flight, s.last_pick))
            server.in_flight += 1
            server.last_pick = next(self._picks)
            return server

    def _release(self, server: _Server, ok: bool) -> None:
        with self._lock:
            server.in_flight -= 1
            if ok:
                server.failures, server.avoid_until = 0, 0.0
            else:
                server.failures += 1
                server.avoid_until = time.monotonic() + min(30.0, self.backoff * 2**server.failures)

    def _connection(self, server: _Server) -> http.client.HTTPConnection:
        """This thread's kept-alive connection to ``server``."""
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(server.url)
        if conn is None:
            cls = http.client.HTTPSConnection if server.scheme == "https" else http.client.HTTPConnection
            conn = conns[server.url] = cls(server.host, server.port, timeout=self.timeout)
        return conn

    def _drop_connection(self, server: _Server) -> None:
        conn = getattr(self._local, "conns", {}).pop(server.url, None)
        if conn is not None:
            conn.close()

    def _request(self, server: _Server, method: str, path: str, payload: dict | None) -> tuple[int, bytes]:
        """One HTTP exchange under a total deadline of ``timeout`` seconds; the body is read up to the size cap.

        Raises:
            TimeoutError: the deadline passed (connect, send, headers or body).
            OSError, http.client.HTTPException: connection-level failures.
            ServerResponseError: the body is larger than ``max_response_bytes``.
        """
        deadline = time.monotonic() + self.timeout
        headers = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for fresh_retry in (False, True):
            conn = self._connection(server)
            reused = conn.sock is not None
            try:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _DeadlineExceeded("deadline passed")
                conn.timeout = remaining  # connecting
                if conn.sock is not None:
                    conn.sock.settimeout(remaining)  # sending
                conn.response_class = functools.partial(_DeadlineResponse, deadline=deadline)  # receiving
                conn.request(method, server.prefix + path, body=data, headers=headers)
                response = conn.getresponse()
                raw = self._read_body(response, server, path)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop_connection(server)
                if reused and not fresh_retry:  # a kept-alive connection the server closed: reconnect once
                    continue
                raise
            except BaseException:
                self._drop_connection(server)
                raise
            if response.will_close:
                self._drop_connection(server)
            return response.status, raw
        raise AssertionError("unreachable")

    def _read_body(self, response: http.client.HTTPResponse, server: _Server, path: str) -> bytes:
        """The whole body, read in chunks (each under the deadline), refused past ``max_response_bytes``."""
        cap = self.max_response_bytes
        if response.length is not None and response.length > cap:
            raise ServerResponseError(
                f"{server.url}{path} announced a {response.length}-byte response, more than "
                f"max_response_bytes={cap}; not read",
                url=server.url,
                status=response.status,
            )
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = response.read(min(1 << 16, cap + 1 - total))
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > cap:
                raise ServerResponseError(
                    f"{server.url}{path} sent a response larger than max_response_bytes={cap}; cut off",
                    url=server.url,
                    status=response.status,
                )
            chunks.append(chunk)

    def _post(self, server: _Server, path: str, payload: dict) -> tuple[int, bytes]:
        return self._request(server, "POST", path, payload)

    def _model(self, server: _Server) -> str | None:
        if server.model_resolved:
            return server.model
        try:
            status, raw = self._request(server, "GET", "/models", None)
            server.model = None
            if status == 200:
                data = json.loads(raw.decode("utf-8"))
                listed = data.get("data") if isinstance(data, dict) else None
                first = listed[0] if isinstance(listed, list) and listed else None
                name = first.get("id") if isinstance(first, dict) else None
                server.model = name if isinstance(name, str) and name else None
        except (ValueError, RecursionError, ServerResponseError):
            server.model = None
        server.model_resolved = True  # a connection error above propagates and is retried
        return server.model
