"""Command-line parsing shared by the training scripts: cleanrl-style ``Args`` dataclasses.

Each script declares ``@dataclass class Args`` with a string literal under every field (its help
text, as in cleanrl) and, optionally, named presets (dicts of field defaults). These helpers turn
that into ``transformers.HfArgumentParser`` parsing with ``--help`` texts and ``--preset NAME``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string literal on the line after it), for ``--help``."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(nxt, ast.Expr)
            and isinstance(getattr(nxt, "value", None), ast.Constant)
        ):
            docs[node.target.id] = str(nxt.value.value)
    return docs


def documented(cls: type) -> type:
    """A copy of the dataclass whose fields carry their docstrings as ``metadata["help"]``."""
    docs = field_docs(cls)

    def copy(f: dataclasses.Field) -> tuple[str, Any, dataclasses.Field]:
        meta = {"help": docs.get(f.name, "").replace("%", "%%")}  # argparse formats help with %
        if f.default_factory is not dataclasses.MISSING:
            return f.name, f.type, dataclasses.field(default_factory=f.default_factory, metadata=meta)
        return f.name, f.type, dataclasses.field(default=f.default, metadata=meta)

    return dataclasses.make_dataclass(cls.__name__, [copy(f) for f in dataclasses.fields(cls)])


def _preset_in(argv: Sequence[str], default: str) -> str:
    preset = default
    for i, token in enumerate(argv):
        if token == "--preset" and i + 1 < len(argv):
            preset = argv[i + 1]
        elif token.startswith("--preset="):
            preset = token.split("=", 1)[1]
    return preset


def parse_args(
    cls: type[T],
    argv: Sequence[str] | None = None,
    *,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    derived: Sequence[str] = (),
) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into ``cls`` with ``HfArgumentParser``.

    Args:
        cls: the ``Args`` dataclass.
        argv: command-line tokens.
        presets: preset name -> field defaults; ``--preset NAME`` (field ``preset``) applies one
            before the explicit options.
        derived: fields computed in ``__post_init__`` (not passed back to ``cls``).

    Raises:
        SystemExit: an unknown preset (with the list), or what the parser rejects.
    """
    from transformers import HfArgumentParser

    parser = HfArgumentParser(documented(cls))
    argv = list(sys.argv[1:] if argv is None else argv)
    if presets is not None:
        preset = _preset_in(argv, cls.preset)  # type: ignore[attr-defined]
        if preset not in presets:
            raise SystemExit(f"unknown --preset {preset!r}; presets: {sorted(presets)}")
        parser.set_defaults(**presets[preset])
    (parsed,) = parser.parse_args_into_dataclasses(args=argv)
    return cls(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(cls) if f.name not in derived})


def make_args(cls: type[T], presets: Mapping[str, Mapping[str, Any]], preset: str, **overrides: Any) -> T:
    """``cls`` from a preset plus overrides (in-process use: tests, ablations)."""
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; presets: {sorted(presets)}")
    return cls(**{"preset": preset, **presets[preset], **overrides})


USER_POPULATION_HELP = """users drawn per episode instead of --user: `replay:0.5,prompted:smollm2-135m:0.5`
    (specs with optional :WEIGHT) or JSON `[["replay", 1], [{"user": "replay", "reveal": "responsive"}, 1]]`
    (entries: spec strings or objects of env arguments); the member is a function of the env seed
    (a GRPO group shares it); empty = --user only (see userlm_env.envs.population)"""


def parse_user_population(text: str) -> list[tuple[Any, float]] | None:
    """The ``--user_population`` value as ``(entry, weight)`` pairs; None when empty.

    Raises:
        ValueError: a malformed population (checked before any model loads).
    """
    if not text or not text.strip():
        return None
    from userlm_env.envs.population import parse_population

    return parse_population(text)


def population_env_factory(env_id: str, text: str, env_kwargs: dict[str, Any]):
    """``make_env()`` for a user population: envs that share the members' users, tasks and judge."""
    from userlm_env.envs.population import PopulationFactory

    return PopulationFactory(env_id, parse_user_population(text), env_kwargs).make_env
