"""Task spec strings: the one parser behind every ``tasks=`` argument (envs, CLI, training scripts).

A spec string names where an env's tasks come from. Each spec belongs to one task *family*, and
each family is read by one env:

==========  ==================  =================================  ==========================================
family      env                 spec                               meaning
==========  ==================  =================================  ==========================================
``math``    ``UserLM-Math-v0``  ``procedural`` (default)           offline arithmetic word problems, 3-6 shards
                                ``procedural:easy`` / ``:hard``    the same with 3-4 / 5-6 shards
                                ``gsm8k`` / ``gsm8k:train|test``   GSM8K from the hub (``train`` by default)
                                ``gsm8k:PATH``                     a local GSM8K jsonl (``question``/``answer``)
                                ``lic:PATH``                       Lost-in-Conversation sharded JSON (math records)
``code``    ``UserLM-Code-v0``  ``code:procedural`` (default)      offline function-writing tasks
                                ``code:procedural:T1,T2``          the same, only templates T1, T2
                                ``humaneval`` / ``humaneval:test``  HumanEval from the hub
                                ``humaneval:PATH``                 a local HumanEval jsonl
                                ``lic-code:PATH``                  Lost-in-Conversation sharded JSON (code records)
==========  ==================  =================================  ==========================================

Rules:

- The kind (before the first ``:``) is case-insensitive; so is the ``procedural`` difficulty.
  ``lic_code`` and ``liccode`` are accepted for ``lic-code``.
- Bare ``procedural`` is read by the env it is given to: the math env reads it as ``procedural``,
  the code env as ``code:procedural``. Without an env (``family=None``) it is math, the package's
  default env.
- ``gsm8k:train`` / ``gsm8k:test`` / ``humaneval:test`` name a hub split unless a file of that name
  exists (then it is that file): :meth:`TaskSpec.hub_split` decides when the source is built.
- A spec of the other family is an error that names the env it belongs to, e.g.
  ``gym.make("UserLM-Math-v0", tasks="humaneval")`` -> ``'humaneval' is a code task spec: use UserLM-Code-v0``.

:func:`parse_task_spec` turns a string into a :class:`TaskSpec` (no file or network access);
:func:`build_task_source` loads it. :func:`userlm_env.tasks.make_task_source` does both (plus
``None``, task lists and ready sources) and is what every env, the CLI and the training scripts use.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from userlm_env.tasks.source import TaskSource

__all__ = [
    "CODE_SPEC_FORMS",
    "DEFAULT_TASK_SPECS",
    "FAMILY_ENV_IDS",
    "MATH_SPEC_FORMS",
    "FAMILY_SPEC_FORMS",
    "SPEC_SYNTAX",
    "TaskFamily",
    "TaskSpec",
    "build_task_source",
    "parse_task_spec",
]

TaskFamily = Literal["math", "code"]

FAMILY_ENV_IDS: dict[str, str] = {"math": "UserLM-Math-v0", "code": "UserLM-Code-v0"}
"""Task family -> the env that reads its specs (the family names double as short env ids)."""

DEFAULT_TASK_SPECS: dict[str, str] = {"math": "procedural", "code": "code:procedural"}
"""Task family -> the spec used for ``tasks=None`` (equal to each env's ``tasks`` default; tested)."""

MATH_SPEC_FORMS = (
    "procedural",
    "procedural:easy",
    "procedural:hard",
    "gsm8k",
    "gsm8k:train",
    "gsm8k:test",
    "gsm8k:PATH",
    "lic:PATH",
)
"""The accepted forms of a math task spec (PATH = a local file)."""

CODE_SPEC_FORMS = (
    "code:procedural",
    "code:procedural:T1,T2",
    "humaneval",
    "humaneval:test",
    "humaneval:PATH",
    "lic-code:PATH",
)
"""The accepted forms of a code task spec (PATH = a local file; T1,T2 = code template names)."""

FAMILY_SPEC_FORMS: dict[str, tuple[str, ...]] = {"math": MATH_SPEC_FORMS, "code": CODE_SPEC_FORMS}
"""Task family -> its accepted spec forms (the lists error messages show)."""

SPEC_SYNTAX: dict[str, str] = {
    "math": "procedural[:easy|hard], gsm8k[:train|test|PATH], lic:PATH",
    "code": "code:procedural[:T1,T2], humaneval[:test|PATH], lic-code:PATH",
}
"""Task family -> its spec forms in one short line (for ``--help`` texts)."""

_DIFFICULTIES = {"": (3, 6), "easy": (3, 4), "hard": (5, 6)}
"""Procedural math difficulty -> (min_shards, max_shards)."""

_HUB_SPLITS = {"gsm8k": ("train", "test"), "humaneval": ("test",)}
"""Hub-backed kinds -> their splits (the first is the default)."""

_CODE_LIC_ALIASES = ("lic-code", "lic_code", "liccode")


@dataclass(frozen=True)
class TaskSpec:
    """A parsed task spec: ``str(spec)`` gives its canonical string back.

    Attributes:
        family: ``"math"`` or ``"code"``: the env family that reads it (:data:`FAMILY_ENV_IDS`).
        kind: ``"procedural"``, ``"gsm8k"``, ``"lic"`` (math) or ``"procedural"``, ``"humaneval"``,
            ``"lic-code"`` (code).
        arg: what follows the kind: the difficulty (``""``, ``"easy"``, ``"hard"``) of math
            ``procedural``; the comma-separated template names (or ``""``) of code ``procedural``;
            a split or PATH (``""`` = the default split) of ``gsm8k`` / ``humaneval``; the PATH of
            ``lic`` / ``lic-code``.
    """

    family: TaskFamily
    kind: str
    arg: str = ""

    @property
    def env_id(self) -> str:
        """The env that reads this spec (``UserLM-Math-v0`` or ``UserLM-Code-v0``)."""
        return FAMILY_ENV_IDS[self.family]

    @property
    def templates(self) -> tuple[str, ...]:
        """The template names of ``code:procedural:T1,T2`` (empty = all templates)."""
        return tuple(self.arg.split(",")) if self.arg and (self.family, self.kind) == ("code", "procedural") else ()

    def hub_split(self) -> str | None:
        """The hub split this spec loads, or None when it names a local file (or is not hub-backed).

        ``gsm8k`` -> ``"train"``, ``humaneval`` -> ``"test"``; an explicit split name is a split
        unless a file of that name exists in the working directory.
        """
        splits = _HUB_SPLITS.get(self.kind, ())
        if not splits:
            return None
        if not self.arg:
            return splits[0]
        return self.arg if self.arg in splits and not Path(self.arg).is_file() else None

    def __str__(self) -> str:
        prefix = "code:procedural" if (self.family, self.kind) == ("code", "procedural") else self.kind
        return f"{prefix}:{self.arg}" if self.arg else prefix


def parse_task_spec(spec: str | TaskSpec, family: TaskFamily | None = None) -> TaskSpec:
    """Parse a task spec string (see the module docstring for the forms and rules).

    Args:
        spec: the spec string (surrounding spaces are ignored), or a ``TaskSpec`` (checked against
            ``family`` and returned).
        family: the family of the env reading the spec; it resolves bare ``procedural`` and a spec
            of the other family is an error. None: any family (bare ``procedural`` is math).

    Returns:
        The parsed spec. Parsing reads no file and no network.

    Raises:
        ValueError: an unknown spec (the message suggests close matches and lists the valid
            forms), a missing PATH, an unknown procedural difficulty, or a spec of the other
            family (the message names the env it belongs to).
        TypeError: ``spec`` is not a string.
    """
    if family is not None and family not in FAMILY_ENV_IDS:
        raise ValueError(f"unknown task family {family!r}; families: {sorted(FAMILY_ENV_IDS)}")
    if isinstance(spec, TaskSpec):
        return _check_family(spec, str(spec), family)
    if not isinstance(spec, str):
        raise TypeError(f"a task spec must be a string, got {type(spec).__name__}: {spec!r}")
    text = spec.strip()
    head, _, arg = text.partition(":")
    kind = head.lower()
    if kind == "procedural":  # the one kind both families have
        level = arg.lower()
        if family == "code" and not arg:
            return TaskSpec("code", "procedural")
        if family == "code" and level not in _DIFFICULTIES:
            raise _unknown(text, "code")
        if level not in _DIFFICULTIES:
            raise _unknown(text, "math", "unknown procedural difficulty (use easy or hard)")
        return _check_family(TaskSpec("math", "procedural", level), text, family)
    if kind == "code":
        sub, _, names = arg.partition(":")
        if sub.lower() != "procedural":
            raise _unknown(text, family or "code")
        templates = ",".join(name.strip() for name in names.split(",") if name.strip())
        return _check_family(TaskSpec("code", "procedural", templates), text, family)
    if kind in ("gsm8k", "humaneval"):
        return _check_family(TaskSpec("math" if kind == "gsm8k" else "code", kind, arg), text, family)
    if kind == "lic" or kind in _CODE_LIC_ALIASES:
        parsed = TaskSpec("math", "lic", arg) if kind == "lic" else TaskSpec("code", "lic-code", arg)
        _check_family(parsed, text, family)
        if not arg:
            raise _unknown(
                text, parsed.family, f"the {parsed.kind!r} task spec needs a file path ('{parsed.kind}:PATH')"
            )
        return parsed
    raise _unknown(text, family)


def build_task_source(spec: TaskSpec) -> TaskSource:
    """Build the task source a parsed spec names (loads files or the hub; see the module docstring).

    Raises:
        ValueError: bad file content, unknown code templates.
        FileNotFoundError: a PATH spec whose file does not exist.
        RuntimeError: a hub data set that cannot be loaded (offline); the message says how to use a local file.
    """
    from userlm_env.code.humaneval import load_humaneval_hub, load_humaneval_jsonl  # noqa: PLC0415
    from userlm_env.code.lic_code import load_lic_code_json  # noqa: PLC0415
    from userlm_env.code.procedural import ProceduralCodeTasks  # noqa: PLC0415
    from userlm_env.tasks.gsm8k import load_gsm8k_hub, load_gsm8k_jsonl  # noqa: PLC0415
    from userlm_env.tasks.lic import load_lic_json  # noqa: PLC0415
    from userlm_env.tasks.procedural import ProceduralMathTasks  # noqa: PLC0415

    split = spec.hub_split()
    match (spec.family, spec.kind):
        case ("math", "procedural"):
            low, high = _DIFFICULTIES[spec.arg]
            return ProceduralMathTasks(min_shards=low, max_shards=high, name=str(spec) if spec.arg else None)
        case ("math", "gsm8k"):
            return load_gsm8k_hub(split) if split else load_gsm8k_jsonl(spec.arg)
        case ("math", "lic"):
            return load_lic_json(spec.arg)
        case ("code", "procedural"):
            names = spec.templates
            return ProceduralCodeTasks(names or None, name="-".join(("code-procedural", *names)))
        case ("code", "humaneval"):
            return load_humaneval_hub(split) if split else load_humaneval_jsonl(spec.arg)
        case ("code", "lic-code"):
            return load_lic_code_json(spec.arg)
    raise ValueError(f"no task source for {spec!r}")  # only a hand-made TaskSpec gets here


def _check_family(parsed: TaskSpec, text: str, family: str | None) -> TaskSpec:
    """``parsed`` if the reader's ``family`` can read it, else the error naming the env it belongs to."""
    if family is None or parsed.family == family:
        return parsed
    raise ValueError(
        f"{text!r} is a {parsed.family} task spec: use {parsed.env_id} "
        f"({FAMILY_ENV_IDS[family]} reads {family} specs: {', '.join(FAMILY_SPEC_FORMS[family])})"
    )


def _close_matches(text: str, forms: tuple[str, ...]) -> list[str]:
    """Up to two forms close to ``text``, or failing that, whose kind is close to the kind of ``text``."""
    guesses = difflib.get_close_matches(text, forms, n=2, cutoff=0.5)
    if not guesses and ":" in text:
        by_kind: dict[str, str] = {}
        for form in forms:  # a kind stands for its first form ("lic" -> "lic:PATH")
            by_kind.setdefault(form, form)
            by_kind.setdefault(form.split(":")[0], form)
        kinds = difflib.get_close_matches(text.split(":", 1)[0], by_kind, n=2, cutoff=0.5)
        guesses = [by_kind[kind] for kind in kinds]
    return list(dict.fromkeys(guesses))


def _unknown(text: str, family: str | None, why: str | None = None) -> ValueError:
    """An unknown-spec error: close matches (of the reader's family, else of the other one) and the valid forms."""
    families = [family] if family else list(FAMILY_SPEC_FORMS)
    why = why or ("unknown code task spec" if family == "code" else "unknown task spec")
    guesses = [guess for f in families for guess in _close_matches(text, FAMILY_SPEC_FORMS[f])][:2]
    hint = f" Did you mean {' or '.join(repr(g) for g in guesses)}?" if guesses else ""
    if family and not guesses:
        other = next(f for f in FAMILY_SPEC_FORMS if f != family)
        other_guesses = _close_matches(text, FAMILY_SPEC_FORMS[other])
        if other_guesses:
            hint = f" Did you mean {other_guesses[0]!r} (a {other} task spec: use {FAMILY_ENV_IDS[other]})?"
    if family:
        valid = ", ".join(FAMILY_SPEC_FORMS[family])
    else:
        valid = "; ".join(f"{', '.join(FAMILY_SPEC_FORMS[f])} ({FAMILY_ENV_IDS[f]})" for f in FAMILY_SPEC_FORMS)
    return ValueError(f"{why}: {text!r}.{hint} Valid forms: {valid}.")
