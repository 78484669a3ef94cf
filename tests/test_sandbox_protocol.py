"""The host/runner protocol of the code sandbox: exact matching, strict values, bounded decoding.

See the module docstring of ``userlm_env.code.sandbox``: the host sends one test at a time, in a
random order, each with a fresh token; every answer must answer the pending request; return values
cross as plain data of exact built-in types. These tests attack that protocol knowing the current
runner's internals (the token in its frame, the result fd in ``sys.argv``) and fuzz the host's
decoder and state machine.
"""

import json
import marshal
import math
import os
import time
from collections import Counter, OrderedDict, defaultdict

import gymnasium as gym
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import userlm_env  # noqa: F401 - registers the envs
from userlm_env.code.sandbox import (
    Sandbox,
    SandboxConfig,
    TestCase,
    _Invalid,
    _jsonify,
    _Protocol,
    bubblewrap,
    decode_value,
    values_equal,
)

MODES = ["bwrap", "fallback"]


@pytest.fixture(scope="module", params=MODES)
def box(request):
    if request.param == "bwrap" and bubblewrap(uid=61000 if os.geteuid() == 0 else None) is None:
        pytest.skip("bubblewrap (bwrap) cannot run here: install it with scripts/install_bubblewrap.sh")
    sandbox = Sandbox(SandboxConfig(timeout_s=3, workers=2, isolation=request.param))
    yield sandbox
    sandbox.close()


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "code, expected",
    [
        ("class I(int):\n    pass\ndef f():\n    return I(3)", 3),
        ("class S(str):\n    pass\ndef f():\n    return S('a')", "a"),
        ("class L(list):\n    pass\ndef f():\n    return L([1])", [1]),
        ("class D(dict):\n    pass\ndef f():\n    return D(a=1)", {"a": 1}),
        ("class E:\n    def __eq__(self, other):\n        return True\ndef f():\n    return E()", 5),
        ("import collections\nP = collections.namedtuple('P', 'x y')\ndef f():\n    return P(1, 2)", (1, 2)),
        ("def f():\n    return [1, (2, object())]", [1, [2, None]]),
        ("class F(float):\n    pass\ndef f():\n    return [F(1.0)]", [1.0]),
        ("def f():\n    return 1", True),  # an int never equals a bool
        ("def f():\n    return True", 1),
    ],
)
def test_subclasses_and_foreign_objects_are_wrong_output(box, code, expected):
    result = box.run_calls(code, "f", [TestCase((), expected)])
    assert not result.passed and result.error_type == "wrong_output", result


def test_plain_values_cross_exactly(box):
    """Tuples, sets, dicts (and the collections dicts), bytes, NaN, big ints, odd strings come back equal."""
    code = (
        "import collections\n"
        "def f(k):\n"
        "    return [\n"
        "        (1, [2.5, None]), {(1, 'a'): {1, 2}}, frozenset({3}), b'\\x00\\xff', float('nan'),\n"
        "        float('-inf'), 10**400, -0.0, 'caf\\u00e9 \\ud800 \"\\\\\\n\\x00',\n"
        "        collections.Counter('aab'), collections.OrderedDict(a=1), collections.defaultdict(int, b=2),\n"
        "    ][k]\n"
    )
    cases = [
        ((1, [2.5, None]), [1, (2.5, None)]),
        ({(1, "a"): {1, 2}}, {(1, "a"): frozenset({1, 2})}),
        (frozenset({3}), {3}),
        (b"\x00\xff", b"\x00\xff"),
        (float("nan"), float("nan")),
        (float("-inf"), float("-inf")),
        (10**400, 10**400),
        (-0.0, 0.0),
        ('caf\u00e9 \ud800 "\\\n\x00', 'caf\u00e9 \ud800 "\\\n\x00'),
        (Counter("aab"), {"a": 2, "b": 1}),
        (OrderedDict(a=1), {"a": 1}),
        (defaultdict(int, b=2), {"b": 2}),
    ]
    tests = [TestCase((k,), expected) for k, (_, expected) in enumerate(cases)]
    result = box.run_calls(code, "f", tests)
    assert result.passed, result
    for value, expected in cases:
        assert values_equal(_jsonify(value), expected), value


@pytest.mark.parametrize(
    "body, expected, passes",
    [
        ("return 10**400", 1.5, False),
        ("return 10**400", 10**400 + 1, False),
        ("return 10**400", float(10**300), False),
        ("return 2**20000", 2**20000, False),  # over the int size that crosses
        ("return float('nan')", 1.0, False),
        ("return 1.0", float("nan"), False),
        ("return float('inf')", 10**400, False),
        ("return 10**20 + 1", 10**20, False),  # ints compare exactly
        ("return 0.1 + 0.2", 0.3, True),
        ("return 2", 2.0000000001, True),
        ("x = []\n    for _ in range(1000):\n        x = [x]\n    return x", [], False),
        ("x = []\n    for _ in range(60):\n        x = [x]\n    return x", "NEST60", True),
        ("x = []\n    x.append(x)\n    return x", [[]], False),
        ("return list(range(10**6))", list(range(10**6)), False),  # over max_value_bytes
        ("return 'x' * (5 * 2**20)", "x" * (5 * 2**20), False),
    ],
    ids=lambda v: repr(v)[:40] if not isinstance(v, int) or v.bit_length() < 1000 else "bigint",
)
def test_hostile_values_never_raise_in_the_host(box, body, expected, passes):
    if expected == "NEST60":
        expected = []
        for _ in range(60):
            expected = [expected]
    result = box.run_calls(f"def f():\n    {body}", "f", [TestCase((), expected)])
    assert result.passed is passes, result
    if not passes:
        assert result.error_type == "wrong_output", result


def test_values_equal_never_raises_on_odd_expected_values():
    class Raising:
        def __eq__(self, other):
            raise RuntimeError("boom")

        __hash__ = object.__hash__

    assert not values_equal(1, Raising())
    assert not values_equal({1: 2}, {Raising(): 2})
    assert not values_equal(10**400, 1e308) and values_equal(10**400, 10**400)
    assert not values_equal(_Invalid("x"), _Invalid("x"))
    deep = []
    for _ in range(5000):
        deep = [deep]
    assert not values_equal(deep, deep)


def test_hostile_values_through_the_env_keep_it_consistent(box):
    """10**400, NaN and deep nesting as replies: graded wrong, no exception, the episode goes on."""
    env = gym.make("UserLM-Code-v0", user="replay", tasks="code:procedural", sandbox=box, max_turns=10)
    env.reset(seed=7)
    task = env.unwrapped._state.task
    entry = task.metadata["entry_point"]
    for body in (
        "return 10**400",
        "return float('nan')",
        "x = []\n    for _ in range(500):\n        x = [x]\n    return x",
    ):
        _, reward, terminated, truncated, info = env.step(f"```python\ndef {entry}(*args):\n    {body}\n```")
        assert info["answer_attempt"] and info["correct"] is False and not terminated and not truncated
        assert info["error_type"] == "wrong_output" and info["tests_passed"] == 0
    _, reward, terminated, _, info = env.step(f"```python\n{task.answer}\n```")
    assert info["correct"] is True and info["tests_passed"] == info["tests_total"]
    env.close()


# --------------------------------------------------------------------------- forging against the protocol

_FORGE = """
import json, os, sys
def _res_fd():
    return int(sys.argv[2])
def _pending_token():
    fr = sys._getframe(1)
    while fr is not None:
        if isinstance(fr.f_locals.get("tok"), str):
            return fr.f_locals["tok"]
        fr = fr.f_back
def _frame(*msg):
    data = json.dumps(list(msg)).encode()
    return len(data).to_bytes(4, "big") + data
"""
TESTS = [TestCase((x,), 2 * x) for x in (1, 2, 3, 4)]


def test_a_second_answer_to_the_pending_request_fails_the_run(box):
    """Writing the (correct) answer itself and then returning it: a duplicate, so nothing passes."""
    code = _FORGE + "def f(x):\n    os.write(_res_fd(), _frame(_pending_token(), 'value', 2 * x))\n    return 2 * x\n"
    result = box.run_calls(code, "f", TESTS)
    assert not result.passed and result.tests_passed == 0 and result.error_type == "forbidden", result
    assert "protocol violation" in result.error


def test_an_answer_for_another_request_fails_the_run(box):
    code = _FORGE + "def f(x):\n    os.write(_res_fd(), _frame('0' * 32, 'value', 2 * x))\n    return 2 * x\n"
    result = box.run_calls(code, "f", TESTS)
    assert not result.passed and result.tests_passed == 0 and result.error_type == "forbidden", result


def test_an_extra_result_after_the_last_answer_fails_the_run(box):
    # the runner flushes sys.stdout after the host's "end": a replaced stdout writes one more answer
    code = (
        _FORGE
        + "LAST = []\n"
        + "class Out:\n"
        + "    def write(self, text):\n        return len(text)\n"
        + "    def flush(self):\n        os.write(_res_fd(), _frame(LAST[-1], 'value', 0))\n"
        + "sys.stdout = Out()\n"
        + "def f(x):\n    LAST.append(_pending_token())\n    return 2 * x\n"
    )
    result = box.run_calls(code, "f", TESTS)
    assert not result.passed and result.tests_passed == 0 and result.error_type == "forbidden", result


def test_a_garbage_or_oversized_frame_fails_the_run(box):
    for junk in ("b'\\x00\\x00\\x00\\x05hello'", "(2**31).to_bytes(4, 'big')", "b'\\x00\\x00\\x00\\x02{}'"):
        code = _FORGE + f"def f(x):\n    os.write(_res_fd(), {junk})\n    return 2 * x\n"
        result = box.run_calls(code, "f", TESTS)
        assert not result.passed and result.tests_passed == 0 and result.error_type == "forbidden", (junk, result)


def test_missing_answers_are_failures(box):
    """Exiting in the middle: the answered tests count, the rest fail."""
    code = "import os\nN = []\ndef f(x):\n    N.append(x)\n    if len(N) == 2:\n        os._exit(0)\n    return 2 * x\n"
    result = box.run_calls(code, "f", TESTS)
    assert not result.passed and result.tests_passed == 1 and result.tests_failed == 3
    assert result.error_type == "killed", result


def test_forging_an_exit_without_answers_passes_nothing(box):
    code = _FORGE + "os.write(_res_fd(), _frame('x' * 32, 'done'))\nos._exit(0)\ndef f(x):\n    return 2 * x\n"
    result = box.run_calls(code, "f", TESTS)
    assert not result.passed and result.tests_passed == 0


def test_tests_arrive_one_at_a_time_in_a_random_order_without_index(box):
    """During a call the request pipe is empty (no future input to read), and the order changes."""
    code = (
        "import os, sys\n"
        "def f(x):\n"
        "    fd = int(sys.argv[1])\n"
        "    os.set_blocking(fd, False)\n"
        "    try:\n"
        "        ahead = os.read(fd, 1 << 16)\n"
        "    except BlockingIOError:\n"
        "        ahead = b''\n"
        "    os.set_blocking(fd, True)\n"
        "    print(x, len(ahead), flush=True)\n"
        "    return 2 * x\n"
    )
    tests = [TestCase((x,), 2 * x) for x in range(8)]
    orders = set()
    for _ in range(3):
        result = box.run_calls(code, "f", tests)
        assert result.passed, result
        lines = [line.split() for line in result.stdout.splitlines()]
        assert all(ahead == "0" for _, ahead in lines) and len(lines) == 8
        orders.add(tuple(int(x) for x, _ in lines))
    assert len(orders) > 1  # 3 runs of 8 tests in the same order: 1 in 40320**2


# --------------------------------------------------------------------------- HumanEval scripts

CHECK = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 6\n"


def test_script_checks_still_grade(box):
    assert box.run_script("def f(x):\n    return 2 * x", "f", CHECK).passed
    wrong = box.run_script("def f(x):\n    return x", "f", CHECK)
    assert not wrong.passed and wrong.error_type == "assertion" and wrong.tests_failed == 2
    loop = "def check(candidate):\n    for x in range(5):\n        assert candidate(x) == 2 * x\n"
    result = box.run_script("def f(x):\n    return 2 * x", "f", loop)
    assert result.passed and result.tests_passed == 5
    broken = box.run_script("def f(x):\n    return 2 * x", "f", "def check(candidate):\n    raise KeyError('k')\n")
    assert not broken.passed and broken.error_type == "runtime"


def test_script_forged_done_and_exit_does_not_pass(box):
    """A forged "done" for the pending check, then os._exit: the host misses the asserts, so it fails."""
    code = _FORGE + "def f(x):\n    os.write(_res_fd(), _frame(_pending_token(), 'done'))\n    os._exit(0)\n"
    result = box.run_script(code, "f", CHECK)
    assert not result.passed and result.error_type == "assertion", result
    old_style = (
        "import gc, os\n"
        "def f(x):\n"
        "    for o in gc.get_objects():\n"
        "        if isinstance(o, dict) and 'nonce' in o and 'result_fd' in o:\n"
        "            os.write(o['result_fd'], (repr({'n': o['nonce'], 'event': 'done'}) + '\\n').encode())\n"
        "    os._exit(0)\n"
    )
    assert not box.run_script(old_style, "f", CHECK).passed


# --------------------------------------------------------------------------- the state machine, offline


def _requests(protocol):
    """Decode the frames the host wants to send: [(op, token, payload)]."""
    data, out = protocol.take_output(), []
    while data:
        size = int.from_bytes(data[:4], "big")
        out.append(marshal.loads(data[4 : 4 + size]))
        data = data[4 + size :]
    return out


def _frame(*msg):
    data = json.dumps(list(msg)).encode()
    return len(data).to_bytes(4, "big") + data


def _protocol(tests=TESTS):
    return _Protocol({"mode": "calls", "code": "", "entry_point": "f"}, list(tests), 1 << 16)


def _answer_all(protocol, answer=lambda args: 2 * args[0]):
    job = _requests(protocol)[0]
    protocol.feed(_frame(job[1], "ready"))
    while not protocol.complete:
        op, token, args = _requests(protocol)[0]
        protocol.feed(_frame(token, "value", answer(args)))
    return protocol


def test_protocol_matches_each_answer_to_its_request():
    protocol = _answer_all(_protocol())
    assert protocol.violation is None and all(o.ok for o in protocol.outcomes.values())
    assert sorted(protocol.outcomes) == [0, 1, 2, 3]
    assert _requests(protocol) == [("end", "", None)]
    wrong = _answer_all(_protocol(), answer=lambda args: 2 * args[0] if args[0] != 3 else 0)
    assert [i for i, o in wrong.outcomes.items() if not o.ok] == [2]


def test_protocol_violations():
    def started():
        protocol = _protocol()
        job = _requests(protocol)[0]
        protocol.feed(_frame(job[1], "ready"))
        return protocol, _requests(protocol)[0][1]

    protocol, token = started()
    protocol.feed(_frame(token, "value", 2) * 2)  # duplicate: the 2nd does not answer the next request
    assert protocol.violation
    protocol, token = started()
    protocol.feed(_frame("f" * 32, "value", 2))
    assert protocol.violation
    protocol, token = started()
    protocol.feed((10**7).to_bytes(4, "big") + b"x" * 100)
    assert protocol.violation and len(protocol._buf) == 0
    protocol, token = started()
    protocol.feed(_frame(token, "value", 2)[:-1])
    assert protocol.violation is None
    protocol.eof()
    assert protocol.violation
    protocol, token = started()
    protocol.feed(_frame(token, "error", "exec", "X", "y"))  # errors only before "ready"
    assert protocol.violation
    done = _answer_all(_protocol())
    done.feed(_frame("x", "value", 1))
    assert done.violation  # anything after the last answer


# --------------------------------------------------------------------------- fuzzing the host side

_plain_hashable = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=10,
)
_plain = st.recursive(
    _plain_hashable | st.floats() | st.binary(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(_plain_hashable, inner, max_size=4)
        | st.sets(_plain_hashable, max_size=4)
    ),
    max_leaves=25,
)
_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=2000))
def test_decode_value_never_raises_on_arbitrary_bytes(data):
    started = time.perf_counter()
    value = decode_value(data, deadline=time.monotonic() + 1)
    assert time.perf_counter() - started < 1.5
    if not isinstance(value, _Invalid):  # well-formed: it must re-encode to the same plain value
        assert values_equal(_jsonify(value), value) or _has_nan(value)


def _has_nan(value):
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(k) or _has_nan(v) for k, v in value.items())
    return False


@_FUZZ
@given(_plain)
def test_plain_values_roundtrip(value):
    decoded = _jsonify(value)
    assert not isinstance(decoded, _Invalid), decoded
    assert values_equal(decoded, value) or _has_nan(value)


@_FUZZ
@given(_plain, _plain)
def test_values_equal_never_raises(a, b):
    assert values_equal(a, b) in (True, False)


@_FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_protocol_feed_never_raises_and_random_bytes_pass_nothing(chunks):
    protocol = _protocol()
    job = _requests(protocol)[0]
    protocol.feed(_frame(job[1], "ready"))
    for chunk in chunks:
        protocol.feed(chunk)
    protocol.eof()
    assert not any(o.ok for o in protocol.outcomes.values())


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)


@_FUZZ
@given(st.lists(_json, max_size=5))
def test_protocol_well_framed_json_with_the_right_token_passes_only_right_values(payloads):
    protocol = _protocol([TestCase((1,), 2)])
    job = _requests(protocol)[0]
    protocol.feed(_frame(job[1], "ready"))
    token = _requests(protocol)[0][1]
    for payload in payloads:
        protocol.feed(_frame(token, *payload) if isinstance(payload, list) else _frame(token, payload))
    outcome = protocol.outcomes.get(0)
    if outcome is not None and outcome.ok:
        first = payloads[0]
        assert (
            first[:1] == ["value"] and len(first) == 2 and values_equal(decode_value(json.dumps(first[1]).encode()), 2)
        )


def test_decoding_a_hash_flooding_set_is_bounded_in_time():
    """A set of ints that all hash alike costs O(n**2) to build: the decoder stops at its deadline."""
    prime = 2**61 - 1
    data = json.dumps(["s"] + [prime * k for k in range(1, 40000)]).encode()
    started = time.perf_counter()
    value = decode_value(data, max_bytes=len(data), deadline=time.monotonic() + 0.3)
    assert time.perf_counter() - started < 1.5
    assert isinstance(value, (_Invalid, set))
