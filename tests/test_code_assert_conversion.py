"""HumanEval check(candidate) asserts become host-graded call tests at load time (an RL policy cannot forge them).

Records here are hand-written in the HumanEval format, modelled on the styles of the real test
code (single asserts, ``METADATA``, ``assert True, "This prints if ..."``, loops, random inputs,
float tolerances, computed expected values); none is taken from the dataset.
"""

import ast
import json
import math
import warnings

import gymnasium as gym
import pytest

import userlm_env  # noqa: F401 - registers the envs
from userlm_env.code.assert_tests import convert_check
from userlm_env.code.lic_code import load_lic_code_json
from userlm_env.code.sandbox import Sandbox, SandboxConfig, TestCase
from userlm_env.code.tasks import NotRLSafeWarning, make_code_task_source, task_is_rl_safe


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(SandboxConfig(timeout_s=5, workers=2))
    yield box
    box.close()


def _check(*lines, module=""):
    return module + "def check(candidate):\n" + "".join(f"    {line}\n" for line in lines)


# ---------------------------------------------------------------------- the rule table
CONVERTED = [
    ("assert candidate([1, 2, 3]) == 6", ([1, 2, 3],), 6),
    ("assert candidate('a', 2) == 'aa', 'message'", ("a", 2), "aa"),
    ("assert 'x' == candidate(1)", (1,), "x"),
    ("assert f(1, 2) == 3", (1, 2), 3),  # the entry point's own name
    ("assert candidate([1, 2]) is True", ([1, 2],), True),
    ("assert candidate(0) is False", (0,), False),
    ("assert candidate(0) is None", (0,), None),
    ("assert candidate('racecar')", ("racecar",), True),
    ("assert not candidate('ab')", ("ab",), False),
    ("assert candidate(3.5) == 0.5", (3.5,), 0.5),
    ("assert candidate(-1, +2) == -3.25", (-1, 2), -3.25),
    ("assert candidate([]) == (0, 1)", ([],), (0, 1)),
    ("assert candidate('a b') == {'a': 1, 'b': 1}", ("a b",), {"a": 1, "b": 1}),
    ("assert candidate({1, 2}) == set()", ({1, 2},), set()),
    ("assert candidate([3, 5]) == (3 + 5, 3 * 5)", ([3, 5],), (8, 15)),
    ("assert candidate(2 ** 10) == 2.0 / 4", (1024,), 0.5),
    ("assert candidate('ab' * 3) == ['a'] * 2 + ['b']", ("ababab",), ["a", "a", "b"]),
    ("assert (candidate(1) == [[1], {'k': (None, True)}])", (1,), [[1], {"k": (None, True)}]),
    ("assert tuple(candidate([3, 1])) == tuple([1, 3])", ([3, 1],), (1, 3)),  # HumanEval/37 style
    ("assert list(candidate('ab')) == ['a', 'b']", ("ab",), ["a", "b"]),
]

NOT_CONVERTED = [
    ("assert abs(candidate(1.0) - 2.0 / 3.0) < 1e-6", "float tolerance"),
    ("assert math.isclose(candidate(1.0), 0.5, rel_tol=1e-9)", "float tolerance"),
    ("assert candidate(1.0) == pytest.approx(0.5)", "float tolerance"),
    ("assert candidate(1) != 2", "'NotEq' comparison"),
    ("assert candidate(1) < 2", "'Lt' comparison"),
    ("assert candidate(1) in (1, 2)", "'In' comparison"),
    ("assert candidate(1) == 1 == 1", "chained comparison"),
    ("assert candidate(1) is 1", "'is' with something other than"),
    ("assert candidate(x=1) == 2", "keyword arguments"),
    ("assert candidate(*[1, 2]) == 3", "starred"),
    ("assert sorted(candidate([3, 1])) == [1, 3]", "post-processed"),
    ("assert sorted(candidate([1])) == sorted([1])", "post-processed"),
    ("assert set(candidate([1])) == {1}", "post-processed"),
    ("assert tuple(candidate('ab')) == 'ab'", "not a list or tuple"),
    ("assert candidate('ab')[0] == 'a'", "post-processed"),
    ("assert candidate(candidate(1)) == 1", "computed, not a literal"),
    ("assert candidate(1) == candidate(2)", "computed with the function"),
    ("assert candidate([3, 1]) == sorted([3, 1])", "computed, not a literal"),
    ("assert candidate(b'x') == 1", "bytes, not a plain value"),
    ("assert candidate(1) == 1j", "complex, not a plain value"),
    ("assert candidate(1 / 0) == 1", "ZeroDivisionError"),
    ("assert candidate(10 ** 100000) == 1", "too large"),
    ("assert candidate('a' * 10 ** 9) == 1", "too long"),
    ("assert candidate(undefined_name) == 1", "not a literal constant"),
    ("assert False", "always fails"),
    ("assert len('abc') == 3", "does not call the function"),
    ("for x in [1, 2]: assert candidate(x) == x", "for loop"),
    ("x = candidate(1)", "assignment"),
    ("print(candidate(1))", "expression statement"),
    ("if True: assert candidate(1) == 1", "if statement"),
]


@pytest.mark.parametrize(("line", "args", "expected"), CONVERTED, ids=[c[0] for c in CONVERTED])
def test_assert_forms_that_convert(line, args, expected):
    debug = "assert True, 'This prints if this assert fails (good for debugging!)'"
    conversion = convert_check(_check(line, debug), "f")
    assert conversion.converted and conversion.reasons == ()
    assert conversion.cases == (TestCase(args, expected),) and conversion.asserts == 1
    assert type(conversion.cases[0].expected) is type(expected)


@pytest.mark.parametrize(("line", "reason"), NOT_CONVERTED, ids=[c[0] for c in NOT_CONVERTED])
def test_assert_forms_that_stay_in_process(line, reason):
    # one convertible assert before it: the check is still not converted at all (no partial conversion)
    conversion = convert_check(_check("assert candidate(0) == 0", line), "f")
    assert conversion.cases is None and not conversion.converted
    assert len(conversion.reasons) == 1 and reason in conversion.reasons[0], conversion.reasons
    assert conversion.reasons[0].startswith("line 3: ")


MODULE_CASES = [
    # (module code, check lines, converted cases or a reason)
    ("METADATA = {'author': 'jt', 'dataset': 'test'}\n\n\n", ["assert candidate(1) == 2"], [((1,), 2)]),
    ("import math\nfrom typing import List\n'''doc'''\n", ["import math", "assert candidate(1) == 2"], [((1,), 2)]),
    (
        "X = [1, 2]\nY = 'ab'\n",
        ["assert candidate(X) == 3", "assert candidate(Y) == Y"],
        [(([1, 2],), 3), (("ab",), "ab")],
    ),
    ("X = [1, 2]\n", ["assert candidate(X) == 3", "assert candidate(X) == 3"], "mutable constant 'X' is used 2 times"),
    ("X = 1\nX = 2\n", ["assert candidate(X) == 3"], "not a literal constant"),
    ("X = list(range(3))\n", ["assert candidate(1) == 3"], "module-level X = ... is computed"),
    ("def helper(x):\n    return x\n", ["assert candidate(1) == 2"], [((1,), 2)]),  # unused plain helper
    ("def helper(x):\n    return x\n", ["assert candidate(1) == helper(2)"], "uses the helper 'helper'"),
    ("def f(x):\n    return x\n", ["assert f(1) == 2"], "uses the helper 'f'"),  # shadows the entry point
    ("def helper(x=print('hi')):\n    return x\n", ["assert candidate(1) == 2"], "runs code when defined"),
    ("print('side effect')\n", ["assert candidate(1) == 2"], "module-level code"),
    ("class Helper:\n    pass\n", ["assert candidate(1) == 2"], "module-level code (a class definition)"),
    ("", ["'''docstring'''", "pass", "assert True"], "no assert that calls the function"),
    ("", ["from os import path as candidate", "assert candidate(1) == 2"], "rebinds 'candidate'"),
    ("", ["print", "assert candidate(1) == 2"], [((1,), 2)]),  # HumanEval/129 has a bare `print` line
    ("print = 1\n", ["print", "assert candidate(1) == 2"], "expression statement"),
]


@pytest.mark.parametrize(("module", "lines", "outcome"), MODULE_CASES)
def test_module_level_code_constants_and_helpers(module, lines, outcome):
    conversion = convert_check(_check(*lines, module=module), "f")
    if isinstance(outcome, str):
        assert conversion.cases is None and any(outcome in r for r in conversion.reasons), conversion.reasons
    else:
        assert conversion.reasons == () and conversion.cases == tuple(TestCase(a, e) for a, e in outcome)


def test_invalid_test_code_is_an_error():
    with pytest.raises(ValueError, match="does not parse: .*line 2"):
        convert_check("def check(candidate):\n    assert candidate(1) ==\n", "f")
    with pytest.raises(ValueError, match="no top-level check"):
        convert_check("def test(candidate):\n    assert candidate(1) == 1\n", "f")
    with pytest.raises(ValueError, match="takes no argument"):
        convert_check("def check():\n    assert f(1) == 1\n", "f")


# ---------------------------------------------------------------------- records through the env
def _record(task_id, prompt, solution, test, entry):
    return {"task_id": task_id, "prompt": prompt, "canonical_solution": solution, "test": test, "entry_point": entry}


ADD = _record(
    "Env/add",
    'def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n    >>> add(1, 2)\n    3\n    """\n',
    "    return a + b\n",
    "METADATA = {'author': 'fixture', 'dataset': 'test'}\n\n\n"
    "def check(candidate):\n"
    "    assert candidate(1, 2) == 3\n"
    "    assert candidate(-4, 4) == 0\n"
    "    assert add(10, 5) == 15\n"
    "    assert 7 == candidate(3, 4)\n"
    "    assert True, 'This prints if this assert fails 2 (also good for debugging!)'\n",
    "add",
)
EVENS = _record(
    "Env/evens",
    'def count_evens(values: list) -> int:\n    """Count the even numbers of the list.\n    >>> count_evens([1, 2])\n'
    '    1\n    """\n',
    "    return sum(1 for v in values if v % 2 == 0)\n",
    "def check(candidate):\n    assert candidate([1, 2]) == 1\n"
    "    for n in range(4):\n        assert candidate([2] * n) == n\n",
    "count_evens",
)


def _write(path, *records, blank_after_first=False):
    lines = [json.dumps(r) for r in records]
    if blank_after_first:
        lines.insert(1, "")
    path.write_text("\n".join(lines) + "\n")
    return f"humaneval:{path}"


def test_converted_and_in_process_tasks_through_the_env(tmp_path, sandbox):
    spec = _write(tmp_path / "he.jsonl", ADD, EVENS)
    with pytest.warns(NotRLSafeWarning, match=r"'humaneval-he': 1 of 2 tasks are not RL-safe"):
        env = gym.make("UserLM-Code-v0", user="replay", tasks=spec, sandbox=sandbox)
    source = env.unwrapped.tasks
    assert source.stats["rl_safe"] == 1 and source.stats["not_rl_safe"] == 1
    add, evens = source[0], source[1]
    assert add.metadata["tests"] == {
        "type": "calls",
        "cases": (TestCase((1, 2), 3), TestCase((-4, 4), 0), TestCase((10, 5), 15), TestCase((3, 4), 7)),
    }
    assert add.metadata["rl_safe"] is True and add.metadata["rl_unsafe_reasons"] == ()
    assert evens.metadata["tests"] == {"type": "script", "code": EVENS["test"]}  # all of check, not a part
    assert evens.metadata["rl_safe"] is False and "for loop" in evens.metadata["rl_unsafe_reasons"][0]
    assert task_is_rl_safe(add) and not task_is_rl_safe(evens)

    _, info = env.reset(seed=0, options={"task_index": 0})
    assert info["rl_safe"] is True
    _, _, terminated, _, info = env.step(f"```python\n{ADD['prompt']}{ADD['canonical_solution']}```")
    assert terminated and info["correct"] is True and info["rl_safe"] is True
    assert info["tests_passed"] == info["tests_total"] == 4 and info["error_type"] is None
    _, info = env.reset(seed=0, options={"task_index": 1})
    assert info["rl_safe"] is False
    _, _, _, _, info = env.step("```python\ndef count_evens(values):\n    return len(values)\n```")
    assert info["correct"] is False and info["rl_safe"] is False and info["error_type"] == "assertion"


def test_the_warning_comes_once_per_task_source(tmp_path, sandbox):
    spec = _write(tmp_path / "he.jsonl", ADD, EVENS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make("UserLM-Code-v0", user="replay", tasks=spec, sandbox=sandbox)
        for seed in range(3):
            env.reset(seed=seed)
            env.step("What should it return?")
        vec = gym.make_vec("UserLM-Code-v0", num_envs=3, user="replay", tasks=spec, sandbox=sandbox)
        vec.reset(seed=0)
        vec.step(["Any edge cases?"] * 3)
        vec.close()
        gym.make("UserLM-Code-v0", user="replay", tasks=_write(tmp_path / "safe.jsonl", ADD), sandbox=sandbox)
        gym.make("UserLM-Code-v0", user="replay", tasks="code:procedural", sandbox=sandbox)
    messages = [str(w.message) for w in caught if issubclass(w.category, NotRLSafeWarning)]
    assert len(messages) == 2, messages  # the env's source, the vector env's (shared by its 3 sub-envs)
    assert all("1 of 2 tasks are not RL-safe" in m and "metadata['rl_safe']" in m for m in messages)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(ADD, task_id="Bad/syntax", test="def check(candidate):\n    assert candidate(1, 2) ==\n"),
         "does not parse"),
        (dict(ADD, task_id="Bad/nocheck", test="def test_add(candidate):\n    assert candidate(1, 2) == 3\n"),
         "no top-level check"),
        (dict(ADD, task_id="Bad/entry", entry_point="subtract"), "entry_point 'subtract' is not defined in the prompt"),
        (dict(ADD, task_id="Bad/name", entry_point="add()"), "not a function name"),
    ],
)  # fmt: skip
def test_bad_records_are_rejected_at_load_time(tmp_path, bad, message):
    path = tmp_path / "bad.jsonl"
    spec = _write(path, ADD, bad, blank_after_first=True)  # the bad record is on line 3, record index 1
    pattern = rf"bad\.jsonl:3: record 1: HumanEval record '{bad['task_id']}': .*{message}"
    with pytest.raises(ValueError, match=pattern):
        gym.make("UserLM-Code-v0", user="replay", tasks=spec)


# ---------------------------------------------------------------------- attacks on converted tasks
ALWAYS_EQUAL = [
    "class Anything:\n"
    "        def __eq__(self, other):\n            return True\n"
    "        def __ne__(self, other):\n            return False\n"
    "        __hash__ = object.__hash__\n"
    "    return Anything()\n",
    "class Anything(int):\n"
    "        def __eq__(self, other):\n            return True\n"
    "        __hash__ = int.__hash__\n"
    "    return Anything(0)\n",
    "class Anything(str):\n"
    "        def __eq__(self, other):\n            return True\n"
    "        __hash__ = str.__hash__\n"
    "    return Anything('')\n",
]

# The attack that passed every in-process check(): find the runner's result channel in the calling frames
# (the nonce-tagged stream of the protocol it was written against), report passing results, exit at once.
# Whatever the protocol, the process then ends before the host has a single genuine result.
FORGE = (
    "import os, sys\n"
    "    frame = sys._getframe()\n"
    "    while frame is not None and 'nonce' not in frame.f_locals:\n"
    "        frame = frame.f_back\n"
    "    if frame is not None:\n"
    "        nonce, out = frame.f_locals['nonce'], frame.f_locals['out']\n"
    "        for i in range(50):\n"
    "            out.write(repr({'n': nonce, 'event': 'assert', 'i': i, 'ok': True}) + '\\n')\n"
    "{extra}"
    "        out.write(repr({'n': nonce, 'event': 'done'}) + '\\n')\n"
    "        out.flush()\n"
    "    os._exit(0)\n"
)


def _attack(body):
    return f"```python\ndef add(a, b):\n    {body}```"


@pytest.mark.parametrize("body", ALWAYS_EQUAL, ids=["object", "int-subclass", "str-subclass"])
def test_an_always_equal_value_does_not_pass_a_converted_task(tmp_path, sandbox, body):
    """Host-graded: the value comes back as plain data and is compared in the host (no __eq__ of the policy's)."""
    env = gym.make("UserLM-Code-v0", user="replay", tasks=_write(tmp_path / "he.jsonl", ADD), sandbox=sandbox)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(_attack(body))
    assert info["answer_attempt"] is True and info["correct"] is False and reward <= 0
    assert info["tests_passed"] < info["tests_total"] == 4


def test_forged_done_and_assert_events_do_not_pass_a_converted_task(tmp_path, sandbox):
    """The attack that passes every in-process check(): forged 'assert ok' + 'done' events, then os._exit."""
    env = gym.make("UserLM-Code-v0", user="replay", tasks=_write(tmp_path / "he.jsonl", ADD), sandbox=sandbox)
    env.reset(seed=0)
    _, _, _, _, info = env.step(_attack(FORGE.replace("{extra}", "")))
    assert info["correct"] is False and info["tests_passed"] == 0


def test_forged_duplicate_call_events_do_not_pass_a_converted_task(tmp_path, sandbox):
    """A policy that knows one example (add(1, 2) == 3, a shard) reports it once per hidden test and exits.

    Needs the host to count at most one genuine result per call test (the sandbox protocol).
    """
    call = "repr({'n': nonce, 'event': 'call', 'i': 0, 'value': 3})"
    extra = f"        for _ in range(4):\n            out.write({call} + '\\n')\n"
    env = gym.make("UserLM-Code-v0", user="replay", tasks=_write(tmp_path / "he.jsonl", ADD), sandbox=sandbox)
    env.reset(seed=0)
    _, _, _, _, info = env.step(_attack(FORGE.replace("{extra}", extra)))
    assert info["correct"] is False


# ---------------------------------------------------------------------- a realistic sample
SAMPLE = [
    _record(  # has_close_elements style: == True / == False, METADATA
        "Sample/0",
        "from typing import List\n\n\ndef any_close(numbers: List[float], gap: float) -> bool:\n"
        '    """ Check whether any two numbers of the list are closer to each other than the given gap.\n'
        "    >>> any_close([1.0, 2.0, 3.0], 0.5)\n    False\n"
        "    >>> any_close([1.0, 2.8, 3.0, 4.0], 0.3)\n    True\n"
        '    """\n',
        "    for i, a in enumerate(numbers):\n        for j, b in enumerate(numbers):\n"
        "            if i != j and abs(a - b) < gap:\n                return True\n    return False\n",
        "\n\nMETADATA = {\n    'author': 'fixture',\n    'dataset': 'test'\n}\n\n\ndef check(candidate):\n"
        "    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True\n"
        "    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False\n"
        "    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True\n"
        "    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True\n"
        "    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False\n\n",
        "any_close",
    ),
    _record(  # mean absolute deviation style: abs(...) < 1e-6
        "Sample/1",
        "from typing import List\n\n\ndef mean_abs_dev(values: List[float]) -> float:\n"
        '    """ Return the mean absolute deviation of the values around their mean.\n'
        "    >>> mean_abs_dev([1.0, 2.0, 3.0, 4.0])\n    1.0\n"
        '    """\n',
        "    mean = sum(values) / len(values)\n    return sum(abs(x - mean) for x in values) / len(values)\n",
        "def check(candidate):\n"
        "    assert abs(candidate([1.0, 2.0, 3.0]) - 2.0/3.0) < 1e-6\n"
        "    assert abs(candidate([1.0, 2.0, 3.0, 4.0]) - 1.0) < 1e-6\n"
        "    assert abs(candidate([1.0, 2.0, 3.0, 4.0, 5.0]) - 6.0/5.0) < 1e-6\n",
        "mean_abs_dev",
    ),
    _record(  # truncate_number style: one exact assert, then tolerances
        "Sample/2",
        'def decimal_part(number: float) -> float:\n    """ Return the decimal part of a positive number.\n'
        "    >>> decimal_part(3.5)\n    0.5\n"
        '    """\n',
        "    return number % 1.0\n",
        "def check(candidate):\n    assert candidate(3.5) == 0.5\n"
        "    assert abs(candidate(1.33) - 0.33) < 1e-6\n    assert abs(candidate(123.456) - 0.456) < 1e-6\n",
        "decimal_part",
    ),
    _record(  # string transformation with METADATA
        "Sample/3",
        'def squeeze_spaces(text: str) -> str:\n    """ Replace every run of spaces in the text by a single space.\n'
        "    >>> squeeze_spaces('a  b')\n    'a b'\n"
        '    """\n',
        "    out = []\n    for ch in text:\n        if ch == ' ' and out and out[-1] == ' ':\n            continue\n"
        "        out.append(ch)\n    return ''.join(out)\n",
        "METADATA = {'author': 'fixture', 'dataset': 'test'}\n\n\ndef check(candidate):\n"
        "    assert candidate('') == ''\n    assert candidate('a  b') == 'a b'\n"
        "    assert candidate('   x   y ') == ' x y '\n    assert candidate('no_spaces') == 'no_spaces'\n",
        "squeeze_spaces",
    ),
    _record(  # a loop
        "Sample/4",
        'def repeat_char(ch: str, n: int) -> str:\n    """ Return the character repeated n times.\n'
        "    >>> repeat_char('a', 3)\n    'aaa'\n"
        '    """\n',
        "    return ch * n\n",
        "def check(candidate):\n    assert candidate('a', 0) == ''\n"
        "    for n in range(1, 6):\n        assert candidate('z', n) == 'z' * n\n",
        "repeat_char",
    ),
    _record(  # decode_cyclic style: random inputs, the prompt's helper computes the input
        "Sample/5",
        'def rotate_word(s: str) -> str:\n    """Move the first character of s to the end."""\n'
        "    return s[1:] + s[:1]\n\n\n"
        'def unrotate_word(s: str) -> str:\n    """\n    Take a string made by rotate_word and return the original.\n'
        '    """\n',
        "    return s[-1:] + s[:-1]\n",
        "import random\nimport string\n\n\ndef check(candidate):\n    rng = random.Random(7)\n"
        "    for _ in range(20):\n"
        "        word = ''.join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 9)))\n"
        "        assert candidate(rotate_word(word)) == word\n",
        "unrotate_word",
    ),
    _record(  # triangle_area style: messages, comments, assert True
        "Sample/6",
        "def triangle_area(a, b, c):\n"
        '    """\n    Given the lengths of the three sides of a triangle, return its area rounded to 2 decimal\n'
        "    points if the sides form a valid triangle. Otherwise return -1.\n"
        "    Example:\n    triangle_area(3, 4, 5) == 6.00\n"
        '    """\n',
        "    if a + b <= c or a + c <= b or b + c <= a:\n        return -1\n    s = (a + b + c) / 2\n"
        "    area = (s * (s - a) * (s - b) * (s - c)) ** 0.5\n    return round(area, 2)\n",
        "def check(candidate):\n\n    # Check some simple cases\n"
        '    assert candidate(3, 4, 5) == 6.00, "This prints if this assert fails 1 (good for debugging!)"\n'
        "    assert candidate(1, 2, 10) == -1\n    assert candidate(4, 8, 5) == 8.18\n"
        "    assert candidate(2, 2, 2) == 1.73\n    assert candidate(1, 2, 3) == -1\n\n"
        "    # Check some edge cases that are easy to work out by hand.\n"
        '    assert True, "This prints if this assert fails 2 (also good for debugging!)"\n\n',
        "triangle_area",
    ),
    _record(  # a predicate: is True / not / bare
        "Sample/7",
        "def strictly_increasing(values: list) -> bool:\n"
        '    """ Return True if every value is larger than the one before.\n'
        "    >>> strictly_increasing([1, 2, 3])\n    True\n"
        '    """\n',
        "    return all(a < b for a, b in zip(values, values[1:]))\n",
        "def check(candidate):\n    assert candidate([1, 2, 3]) is True\n    assert not candidate([1, 1, 2])\n"
        '    assert candidate([]), "an empty list is increasing"\n    assert candidate([5]) is True\n'
        "    assert candidate([3, 2]) is False\n",
        "strictly_increasing",
    ),
    _record(  # add style: a few asserts, then random inputs in a loop
        "Sample/8",
        'def add_numbers(x: int, y: int) -> int:\n    """Add two numbers x and y.\n    >>> add_numbers(2, 3)\n    5\n'
        '    """\n',
        "    return x + y\n",
        "METADATA = {}\n\n\ndef check(candidate):\n    import random\n\n    assert candidate(0, 1) == 1\n"
        "    assert candidate(5, 7) == 12\n\n    for i in range(50):\n"
        "        x, y = random.randint(0, 1000), random.randint(0, 1000)\n        assert candidate(x, y) == x + y\n",
        "add_numbers",
    ),
    _record(  # histogram style: dict results, reversed ==
        "Sample/9",
        'def letter_counts(text: str) -> dict:\n    """ Given lowercase letters separated by spaces, return how often\n'
        "    each letter occurs.\n    >>> letter_counts('a b b a')\n    {'a': 2, 'b': 2}\n"
        '    """\n',
        "    counts = {}\n    for letter in text.split():\n        counts[letter] = counts.get(letter, 0) + 1\n"
        "    return counts\n",
        "def check(candidate):\n    assert candidate('a b b a') == {'a': 2, 'b': 2}\n"
        "    assert candidate('c') == {'c': 1}\n"
        "    assert candidate('') == {}\n    assert {'x': 3} == candidate('x x x')\n",
        "letter_counts",
    ),
    _record(  # sum_product style: tuples, arithmetic in the expected value
        "Sample/10",
        "from typing import List, Tuple\n\n\ndef sum_product(numbers: List[int]) -> Tuple[int, int]:\n"
        '    """ Return the sum and the product of the numbers. An empty sum is 0, an empty product 1.\n'
        "    >>> sum_product([1, 2, 3, 4])\n    (10, 24)\n"
        '    """\n',
        "    total, product = 0, 1\n    for n in numbers:\n        total += n\n        product *= n\n"
        "    return total, product\n",
        "def check(candidate):\n    assert candidate([]) == (0, 1)\n    assert candidate([1, 1, 1]) == (3, 1)\n"
        "    assert candidate([100, 0]) == (100, 0)\n    assert candidate([3, 5, 7]) == (3 + 5 + 7, 3 * 5 * 7)\n"
        "    assert candidate([10]) == (10, 10)\n",
        "sum_product",
    ),
    _record(  # sort_even style: tuple(candidate(...)) == tuple([...])
        "Sample/11",
        'def sort_thirds(l: list):\n    """ Return a copy of l whose values at indices divisible by three are sorted.\n'
        "    >>> sort_thirds([1, 2, 3])\n    [1, 2, 3]\n"
        '    """\n',
        "    l = list(l)\n    l[::3] = sorted(l[::3])\n    return l\n",
        "def check(candidate):\n    assert tuple(candidate([1, 2, 3])) == tuple([1, 2, 3])\n"
        "    assert tuple(candidate([5, 6, 3, 4, 8, 9, 2])) == tuple([2, 6, 3, 4, 8, 9, 5])\n",
        "sort_thirds",
    ),
    _record(  # any order accepted: the result is sorted before ==
        "Sample/12",
        'def distinct_letters(word: str) -> list:\n    """ Return the distinct letters of the word, in any order.\n'
        "    >>> sorted(distinct_letters('banana'))\n    ['a', 'b', 'n']\n"
        '    """\n',
        "    return list(set(word))\n",
        "def check(candidate):\n    assert sorted(candidate('banana')) == ['a', 'b', 'n']\n"
        "    assert candidate('') == []\n",
        "distinct_letters",
    ),
]
SAMPLE_CONVERTED = {"Sample/0", "Sample/3", "Sample/6", "Sample/7", "Sample/9", "Sample/10", "Sample/11"}


def _counted_asserts(test_code):
    """Asserts of check that test something (what a converted task must have one call test for each)."""
    check = next(n for n in ast.parse(test_code).body if isinstance(n, ast.FunctionDef) and n.name == "check")
    asserts = [n for n in ast.walk(check) if isinstance(n, ast.Assert)]
    trivial = [a for a in asserts if isinstance(a.test, ast.Constant) and a.test.value]
    return len(asserts) - len(trivial), len(trivial)


def test_realistic_sample_conversion_and_canonical_solutions(tmp_path, sandbox):
    """7 of 13 convert; on each, the canonical solution passes with one call test per assert, as in process."""
    path = tmp_path / "sample.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in SAMPLE) + "\n")
    with pytest.warns(NotRLSafeWarning, match="6 of 13 tasks"):
        source = make_code_task_source(f"humaneval:{path}")
        gym.make("UserLM-Code-v0", user="replay", tasks=source, sandbox=sandbox)
    converted = {t.task_id for t in source if t.metadata["rl_safe"]}
    assert converted == SAMPLE_CONVERTED and source.stats["rl_safe"] == 7 and source.stats["not_rl_safe"] == 6
    for task in source:
        record = task.metadata["record"]
        entry = task.metadata["entry_point"]
        code = task.metadata["preamble"] + "\n\n" + task.answer
        script = sandbox.run_script(code, entry, record["test"])
        assert script.passed, (task.task_id, script)  # the canonical solution passes the original check
        if task.task_id not in SAMPLE_CONVERTED:
            assert task.metadata["tests"]["type"] == "script" and task.metadata["rl_unsafe_reasons"]
            continue
        cases = task.metadata["tests"]["cases"]
        counted, trivial = _counted_asserts(record["test"])
        assert len(cases) == counted and script.tests_passed == counted + trivial
        calls = sandbox.run_calls(code, entry, cases)
        assert calls.passed and calls.tests_passed == calls.tests_total == len(cases), (task.task_id, calls)
        # every other call returns None: the host fails exactly those (and the in-process check fails too)
        flaky = f"{code}\n\n_impl = {entry}\n_n = [0]\n\ndef {entry}(*args):\n    _n[0] += 1\n"
        flaky += "    return _impl(*args) if _n[0] % 2 else None\n"
        calls = sandbox.run_calls(flaky, entry, cases)
        assert not calls.passed and calls.tests_passed == math.ceil(len(cases) / 2), (task.task_id, calls)
        assert not sandbox.run_script(flaky, entry, record["test"]).passed


# ---------------------------------------------------------------------- LiC records with a test field
def test_lic_records_with_check_code_are_converted_or_marked(tmp_path):
    def lic(task_id, test, **extra):
        shards = [{"shard_id": 1, "shard": "Write a function add that adds two numbers."}]
        meta = {"func_name": "add"}
        return {"task_id": task_id, "task": "code", "shards": shards, "metadata": meta, "test": test, **extra}

    functional = json.dumps([{"input": "1\n2", "output": "3", "testtype": "functional"}])
    records = [
        lic("lic/conv", ADD["test"]),
        lic("lic/loop", "def check(candidate):\n    for i in range(3):\n        assert candidate(i, i) == 2 * i\n"),
        lic("lic/functional", "", public_test_cases=functional),
    ]
    path = tmp_path / "lic.json"
    path.write_text(json.dumps(records))
    source = load_lic_code_json(path)
    conv, loop, functional_task = source
    assert conv.metadata["tests"]["type"] == "calls" and len(conv.metadata["tests"]["cases"]) == 4
    assert [t.metadata["rl_safe"] for t in source] == [True, False, True]
    assert loop.metadata["tests"]["type"] == "script" and "for loop" in loop.metadata["rl_unsafe_reasons"][0]
    assert source.stats["rl_safe"] == 2 and source.stats["not_rl_safe"] == 1
    path.write_text(json.dumps([records[0], lic("lic/broken", "def check(candidate):\n    assert (\n")]))
    with pytest.raises(ValueError, match=r"lic\.json: record 1 \(task_id 'lic/broken'\): test code does not parse"):
        load_lic_code_json(path)
