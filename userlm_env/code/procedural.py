"""An offline, seeded generator of small sharded function-writing tasks with hidden tests.

Each template describes a family of functions (on lists, strings or numbers) whose constants
are drawn from the seed (a divisor, a threshold, a shift, a chunk size, words to use...), and
the function name is drawn from a few synonyms. A task has:

- shards: shard 1 names the function and its high-level purpose (without the constants); the
  next shards give one requirement each (the constants, edge cases); the last gives an example;
- a canonical solution (source text) and, independently written, a reference implementation in
  this module that computes the expected outputs of the hidden tests (the test suite checks the
  two agree for thousands of seeds);
- hidden call tests (:class:`~userlm_env.code.sandbox.TestCase`): edge cases plus random inputs.

>>> import numpy as np
>>> task = ProceduralCodeTasks().sample(np.random.default_rng(0))
>>> task.kind, task.shards[0].text.startswith("Write a Python function")
('code', True)
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from userlm_env.code.sandbox import TestCase
from userlm_env.tasks.source import TaskSource
from userlm_env.tasks.task import Shard, ShardedTask

__all__ = ["TEMPLATES", "ProceduralCodeTasks"]


class _Draw:
    """Small helpers over a numpy Generator (the only randomness)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def int(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))

    def choice(self, items: list | tuple) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def ints(self, n: int, low: int, high: int) -> list[int]:
        return [self.int(low, high) for _ in range(n)]

    def word(self, low: int = 2, high: int = 7, letters: str = string.ascii_lowercase) -> str:
        return "".join(self.choice(letters) for _ in range(self.int(low, high)))

    def text(self, words: int) -> str:
        return " ".join(self.word(1, 8) for _ in range(words))


@dataclass(frozen=True)
class _Spec:
    name: str
    params: str
    purpose: str
    requirements: tuple[str, ...]
    solution: str
    reference: Callable[..., Any]
    inputs: tuple[tuple, ...]


def _count_multiples(d: _Draw) -> _Spec:
    k = d.int(2, 9)
    name = d.choice(["count_multiples", "count_divisible", "how_many_divisible"])
    inputs = [([],), ([k, 2 * k, 1],), ([0, -k, k + 1],)] + [(d.ints(d.int(1, 9), -30, 60),) for _ in range(6)]
    return _Spec(
        name,
        "numbers",
        "counts how many numbers in a list are divisible by a certain number",
        (f"The number to divide by is {k}.", "Zero and negative multiples count too; an empty list gives 0."),
        f"def {name}(numbers):\n    return sum(1 for x in numbers if x % {k} == 0)\n",
        lambda numbers: len([x for x in numbers if x % k == 0]),
        tuple(inputs),
    )


def _sum_above(d: _Draw) -> _Spec:
    t = d.int(-5, 20)
    name = d.choice(["sum_above", "total_over_threshold", "sum_big_values"])
    inputs = [([],), ([t],), ([t + 1, t - 1],)] + [(d.ints(d.int(1, 8), -20, 40),) for _ in range(6)]
    return _Spec(
        name,
        "values",
        "adds up the values of a list that are larger than a threshold",
        (f"The threshold is {t}, and values equal to it are not counted.", "If nothing qualifies it returns 0."),
        f"def {name}(values):\n    return sum(v for v in values if v > {t})\n",
        lambda values: sum(v for v in values if v > t),
        tuple(inputs),
    )


def _clip(d: _Draw) -> _Spec:
    lo = d.int(-10, 5)
    hi = lo + d.int(3, 20)
    name = d.choice(["clip_values", "clamp_all", "limit_range"])
    inputs = [([],), ([lo - 1, hi + 1, lo],)] + [(d.ints(d.int(1, 8), -30, 40),) for _ in range(6)]
    return _Spec(
        name,
        "numbers",
        "returns a new list where every number is forced into a range",
        (f"The smallest allowed value is {lo}.", f"The largest allowed value is {hi}.", "The order stays the same."),
        f"def {name}(numbers):\n    return [min(max(x, {lo}), {hi}) for x in numbers]\n",
        lambda numbers: [lo if x < lo else hi if x > hi else x for x in numbers],
        tuple(inputs),
    )


def _rotate(d: _Draw) -> _Spec:
    k = d.int(1, 6)
    direction = d.choice(["left", "right"])
    name = d.choice(["rotate_list", "shift_items", "cycle_list"])
    inputs = [([],), ([1],)] + [(d.ints(d.int(1, 9), 0, 50),) for _ in range(6)]

    def reference(items):
        if not items:
            return []
        s = k % len(items)
        return items[s:] + items[:s] if direction == "left" else items[len(items) - s :] + items[: len(items) - s]

    body = (
        f"    s = {k} % len(items)\n    return items[s:] + items[:s]\n"
        if direction == "left"
        else f"    s = {k} % len(items)\n    return items[len(items) - s:] + items[:len(items) - s]\n"
    )
    return _Spec(
        name,
        "items",
        "rotates a list by a fixed number of positions",
        (
            f"It rotates to the {direction} by {k} positions, wrapping around.",
            "An empty list gives an empty list, and a shift longer than the list wraps around.",
        ),
        f"def {name}(items):\n    if not items:\n        return []\n{body}",
        reference,
        tuple(inputs),
    )


def _caesar(d: _Draw) -> _Spec:
    k = d.int(1, 25)
    name = d.choice(["shift_letters", "caesar", "encode_message"])
    inputs = [("",), ("xyz",), ("Hello, World!",)] + [(d.text(d.int(1, 4)),) for _ in range(5)]

    def reference(text):
        out = []
        for ch in text:
            if "a" <= ch <= "z":
                out.append(string.ascii_lowercase[(string.ascii_lowercase.index(ch) + k) % 26])
            else:
                out.append(ch)
        return "".join(out)

    return _Spec(
        name,
        "text",
        "encodes a string by shifting letters along the alphabet",
        (
            f"Each lowercase letter moves {k} places forward, wrapping from z back to a.",
            "Every other character (uppercase, digits, spaces, punctuation) stays unchanged.",
        ),
        f"def {name}(text):\n    result = ''\n    for ch in text:\n        if 'a' <= ch <= 'z':\n"
        f"            result += chr((ord(ch) - ord('a') + {k}) % 26 + ord('a'))\n        else:\n"
        "            result += ch\n    return result\n",
        reference,
        tuple(inputs),
    )


def _count_letters(d: _Draw) -> _Spec:
    letters = "".join(sorted(set(d.choice(["aeiou", "aeiouy", "xyz", "rstln", "bcd"]))))
    name = d.choice(["count_special", "letter_count", "count_chosen_letters"])
    inputs = [("",), (letters.upper(),), (letters,)] + [(d.text(d.int(1, 4)),) for _ in range(5)]
    listed = ", ".join(letters)
    return _Spec(
        name,
        "text",
        "counts certain letters in a string",
        (f"The letters to count are {listed}.", "Uppercase and lowercase both count."),
        f"def {name}(text):\n    return sum(1 for ch in text.lower() if ch in {letters!r})\n",
        lambda text: len([ch for ch in text if ch.lower() in set(letters)]),
        tuple(inputs),
    )


def _repeat_chars(d: _Draw) -> _Spec:
    k = d.int(2, 4)
    name = d.choice(["stretch_text", "repeat_each_char", "stutter"])
    inputs = [("",), ("ab",)] + [(d.word(1, 6),) for _ in range(5)]
    return _Spec(
        name,
        "text",
        "repeats every character of a string",
        (f"Each character appears {k} times in a row.", "An empty string gives an empty string."),
        f"def {name}(text):\n    return ''.join(ch * {k} for ch in text)\n",
        lambda text: "".join(c for ch in text for c in [ch] * k),
        tuple(inputs),
    )


def _sequence(d: _Draw) -> _Spec:
    a, b = d.int(0, 5), d.int(1, 6)
    name = d.choice(["nth_term", "sequence_value", "custom_fib"])
    inputs = [(0,), (1,), (2,)] + [(d.int(3, 25),) for _ in range(5)]

    def reference(n):
        seq = [a, b]
        while len(seq) <= n:
            seq.append(seq[-1] + seq[-2])
        return seq[n]

    return _Spec(
        name,
        "n",
        "returns the n-th term of a Fibonacci-like sequence",
        (
            f"Term 0 is {a}.",
            f"Term 1 is {b}.",
            "Every later term is the sum of the two terms before it.",
        ),
        f"def {name}(n):\n    x, y = {a}, {b}\n    for _ in range(n):\n        x, y = y, x + y\n    return x\n",
        reference,
        tuple(inputs),
    )


def _digit_power(d: _Draw) -> _Spec:
    p = d.int(1, 4)
    name = d.choice(["digit_power_sum", "sum_digit_powers", "powered_digits"])
    inputs = [(0,), (7,), (-123,)] + [(d.int(10, 99999),) for _ in range(5)]
    return _Spec(
        name,
        "n",
        "adds up the digits of an integer after raising each one to a power",
        (f"Every digit is raised to the power {p}.", "For a negative number the sign is ignored."),
        f"def {name}(n):\n    return sum(int(c) ** {p} for c in str(abs(n)))\n",
        lambda n: sum(pow(int(c), p) for c in str(n).lstrip("-")),
        tuple(inputs),
    )


def _long_words(d: _Draw) -> _Spec:
    n = d.int(2, 6)
    name = d.choice(["long_words", "filter_words", "words_at_least"])
    inputs = [("",), ("a bb ccc dddd eeeee ffffff",)] + [(d.text(d.int(1, 7)),) for _ in range(5)]
    return _Spec(
        name,
        "sentence",
        "picks the long words out of a sentence",
        (
            f"A word is long when it has at least {n} characters.",
            "Words are separated by spaces, and the result is a list of them in their original order.",
        ),
        f"def {name}(sentence):\n    return [w for w in sentence.split() if len(w) >= {n}]\n",
        lambda sentence: [w for w in sentence.split(" ") if w and len(w) >= n],
        tuple(inputs),
    )


def _chunks(d: _Draw) -> _Spec:
    k = d.int(2, 5)
    name = d.choice(["chunk_list", "split_into_groups", "batches"])
    inputs = [([],), ([1],)] + [(d.ints(d.int(1, 11), 0, 9),) for _ in range(5)]
    return _Spec(
        name,
        "items",
        "splits a list into consecutive groups",
        (f"Each group has {k} items.", "The last group may be shorter, and an empty list gives an empty list."),
        f"def {name}(items):\n    return [items[i:i + {k}] for i in range(0, len(items), {k})]\n",
        lambda items: [list(items[i : i + k]) for i in range(0, len(items), k)],
        tuple(inputs),
    )


def _replace_nth(d: _Draw) -> _Spec:
    k = d.int(2, 4)
    mark = d.choice(["*", "#", "_", "-"])
    name = d.choice(["mask_every_nth", "replace_nth_char", "blot_positions"])
    inputs = [("",), ("abcdefgh",)] + [(d.word(1, 10),) for _ in range(5)]
    return _Spec(
        name,
        "text",
        "hides some characters of a string",
        (
            f"Every {k}th character (counting from 1) is replaced.",
            f"The replacement character is '{mark}'.",
        ),
        f"def {name}(text):\n    return ''.join({mark!r} if (i + 1) % {k} == 0 else ch for i, ch in enumerate(text))\n",
        lambda text: "".join(mark if i % k == k - 1 else ch for i, ch in enumerate(text)),
        tuple(inputs),
    )


def _differences(d: _Draw) -> _Spec:
    absolute = d.choice([True, False])
    name = d.choice(["differences", "gaps", "step_changes"])
    inputs = [([],), ([5],), ([3, 1],)] + [(d.ints(d.int(2, 8), -20, 20),) for _ in range(5)]
    return _Spec(
        name,
        "numbers",
        "lists the differences between consecutive numbers",
        (
            "Each difference is the next number minus the current one.",
            "The differences are made positive (absolute values)." if absolute else "Negative differences stay.",
            "A list with fewer than 2 numbers gives an empty list.",
        ),
        f"def {name}(numbers):\n"
        f"    return [{'abs(b - a)' if absolute else 'b - a'} for a, b in zip(numbers, numbers[1:])]\n",
        lambda numbers: [
            (numbers[i + 1] - numbers[i]) if not absolute else abs(numbers[i] - numbers[i + 1])
            for i in range(len(numbers) - 1)
        ],
        tuple(inputs),
    )


def _fizzbuzz(d: _Draw) -> _Spec:
    a = d.int(2, 5)
    b = d.choice([x for x in range(3, 8) if x != a])
    wa, wb = d.choice([("Fizz", "Buzz"), ("Foo", "Bar"), ("Ping", "Pong")])
    name = d.choice(["fizzbuzz", "word_counter", "say_numbers"])
    inputs = [(0,), (1,), (a * b,)] + [(d.int(2, 30),) for _ in range(4)]

    def reference(n):
        out = []
        for i in range(1, n + 1):
            word = (wa if i % a == 0 else "") + (wb if i % b == 0 else "")
            out.append(word or str(i))
        return out

    return _Spec(
        name,
        "n",
        "returns a list of strings, one for each number from one up to n",
        (
            f"Multiples of {a} become '{wa}'.",
            f"Multiples of {b} become '{wb}'.",
            f"Multiples of both become '{wa}{wb}', and other numbers stay as their digits.",
        ),
        f"def {name}(n):\n    out = []\n    for i in range(1, n + 1):\n        s = ''\n"
        f"        if i % {a} == 0:\n            s += {wa!r}\n        if i % {b} == 0:\n            s += {wb!r}\n"
        "        out.append(s or str(i))\n    return out\n",
        reference,
        tuple(inputs),
    )


def _second_largest(d: _Draw) -> _Spec:
    default = d.choice([None, -1, 0])
    name = d.choice(["second_largest", "runner_up", "second_best"])
    inputs = [([],), ([4, 4],), ([1, 2],)] + [(d.ints(d.int(1, 8), -10, 10),) for _ in range(5)]

    def reference(numbers):
        distinct = sorted(set(numbers))
        return distinct[-2] if len(distinct) >= 2 else default

    return _Spec(
        name,
        "numbers",
        "finds the second largest value in a list",
        (
            "Duplicates count once, so the answer is the second largest distinct value.",
            f"If there are fewer than 2 distinct values it returns {default}.",
        ),
        f"def {name}(numbers):\n    values = sorted(set(numbers), reverse=True)\n"
        f"    return values[1] if len(values) > 1 else {default!r}\n",
        reference,
        tuple(inputs),
    )


def _runs(d: _Draw) -> _Spec:
    k = d.int(2, 3)
    name = d.choice(["count_runs", "long_streaks", "repeated_blocks"])
    inputs = [("",), ("aabbbc",)] + [(d.word(3, 12, "ab"),) for _ in range(5)]

    def reference(text):
        count, i = 0, 0
        while i < len(text):
            j = i
            while j < len(text) and text[j] == text[i]:
                j += 1
            count += (j - i) >= k
            i = j
        return count

    return _Spec(
        name,
        "text",
        "counts the streaks of a repeated character in a string",
        (
            "A streak is a maximal block of the same character in a row.",
            f"Only streaks of length {k} or more are counted.",
        ),
        f"def {name}(text):\n    import itertools\n"
        f"    return sum(1 for _, g in itertools.groupby(text) if len(list(g)) >= {k})\n",
        reference,
        tuple(inputs),
    )


def _word_score(d: _Draw) -> _Spec:
    w = d.int(1, 5)
    name = d.choice(["word_score", "letter_value_sum", "score_text"])
    inputs = [("",), ("abc",), ("Zz!",)] + [(d.text(d.int(1, 3)),) for _ in range(4)]
    return _Spec(
        name,
        "text",
        "scores a string by its letters",
        (
            "Each letter is worth its position in the alphabet (a is 1, z is 26), ignoring case.",
            f"The total is multiplied by {w}, and non-letters are worth nothing.",
        ),
        f"def {name}(text):\n    return {w} * sum(ord(c) - 96 for c in text.lower() if 'a' <= c <= 'z')\n",
        lambda text: sum(string.ascii_lowercase.index(c) + 1 for c in text.lower() if c in string.ascii_lowercase) * w,
        tuple(inputs),
    )


def _running_total(d: _Draw) -> _Spec:
    cap = d.int(10, 60)
    name = d.choice(["running_total", "capped_prefix_sums", "cumulative"])
    inputs = [([],), ([cap, 1],)] + [(d.ints(d.int(1, 8), 0, 25),) for _ in range(5)]

    def reference(numbers):
        out, total = [], 0
        for x in numbers:
            total = total + x
            if total > cap:
                total = cap
            out.append(total)
        return out

    return _Spec(
        name,
        "numbers",
        "returns the running totals of a list",
        (
            "Position i holds the sum of the numbers up to and including position i.",
            f"The running total never goes above {cap}: when it would, it stays at {cap}.",
        ),
        f"def {name}(numbers):\n    out, total = [], 0\n    for x in numbers:\n"
        f"        total = min(total + x, {cap})\n        out.append(total)\n    return out\n",
        reference,
        tuple(inputs),
    )


TEMPLATES: dict[str, Callable[[_Draw], _Spec]] = {
    "count_multiples": _count_multiples,
    "sum_above": _sum_above,
    "clip": _clip,
    "rotate": _rotate,
    "caesar": _caesar,
    "count_letters": _count_letters,
    "repeat_chars": _repeat_chars,
    "sequence": _sequence,
    "digit_power": _digit_power,
    "long_words": _long_words,
    "chunks": _chunks,
    "replace_nth": _replace_nth,
    "differences": _differences,
    "fizzbuzz": _fizzbuzz,
    "second_largest": _second_largest,
    "runs": _runs,
    "word_score": _word_score,
    "running_total": _running_total,
}
"""Template name -> builder. Each draws its constants and inputs from the generator."""


def _call_text(name: str, args: tuple) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


class ProceduralCodeTasks(TaskSource):
    """Seeded generator of sharded function-writing tasks (see the module docstring).

    Args:
        templates: names of the templates to draw from (default: all of :data:`TEMPLATES`).
        name: the source name used in task ids.

    Raises:
        ValueError: an unknown template name.
    """

    def __init__(self, templates: tuple[str, ...] | None = None, name: str = "code-procedural"):
        chosen = tuple(templates) if templates else tuple(TEMPLATES)
        unknown = [t for t in chosen if t not in TEMPLATES]
        if unknown:
            raise ValueError(f"unknown code templates {unknown}; available: {sorted(TEMPLATES)}")
        self.templates = chosen
        self.name = name

    def sample(self, rng: np.random.Generator) -> ShardedTask:
        """Draw a template, its constants and its tests from ``rng``; build the task."""
        seed = int(rng.integers(2**31 - 1))
        return self.task_for_seed(seed)

    def task_for_seed(self, seed: int) -> ShardedTask:
        """The task of one integer seed (deterministic)."""
        draw = _Draw(np.random.default_rng(seed))
        template = draw.choice(self.templates)
        spec = TEMPLATES[template](draw)
        tests = tuple(TestCase(args=tuple(args), expected=spec.reference(*args)) for args in spec.inputs)
        example = tests[min(len(tests) - 1, 2 + seed % max(1, len(tests) - 2))]
        shards = [f"Write a Python function `{spec.name}({spec.params})` that {spec.purpose}."]
        shards += list(spec.requirements)
        shards.append(f"For example, `{_call_text(spec.name, example.args)}` should return `{example.expected!r}`.")
        instruction = " ".join(shards)
        return ShardedTask(
            task_id=f"{self.name}/{template}/{seed}",
            instruction=instruction,
            shards=tuple(Shard(i + 1, text) for i, text in enumerate(shards)),
            answer=spec.solution,
            kind="code",
            metadata={
                "source": self.name,
                "template": template,
                "seed": seed,
                "entry_point": spec.name,
                "signature": f"{spec.name}({spec.params})",
                "tests": {"type": "calls", "cases": tests},
            },
        )
