"""One task spec parser for every reader (envs, CLI, training scripts), and the CLI's defaults from the env."""

from __future__ import annotations

import inspect

import gymnasium as gym
import pytest
import typer

import userlm_env  # noqa: F401  (registers the envs)
from userlm_env import cli
from userlm_env.code.procedural import ProceduralCodeTasks
from userlm_env.code.tasks import make_code_task_source
from userlm_env.envs import (
    ENV_CLASSES,
    check_env_specs,
    env_defaults,
    env_task_family,
    make_env_task_source,
    make_unwrapped_env,
)
from userlm_env.tasks import (
    DEFAULT_TASK_SPECS,
    FAMILY_ENV_IDS,
    ProceduralMathTasks,
    TaskSpec,
    make_task_source,
    parse_task_spec,
)

# --------------------------------------------------------------------------- the parser table

PARSED = [
    # (spec, family of the reader, parsed)
    ("procedural", None, TaskSpec("math", "procedural")),
    ("procedural", "math", TaskSpec("math", "procedural")),
    ("procedural", "code", TaskSpec("code", "procedural")),  # the code env reads it as code:procedural
    ("  Procedural:EASY ", "math", TaskSpec("math", "procedural", "easy")),
    ("procedural:hard", None, TaskSpec("math", "procedural", "hard")),
    ("gsm8k", "math", TaskSpec("math", "gsm8k")),
    ("gsm8k:train", "math", TaskSpec("math", "gsm8k", "train")),
    ("GSM8K:test", None, TaskSpec("math", "gsm8k", "test")),
    ("gsm8k:data/Train.jsonl", "math", TaskSpec("math", "gsm8k", "data/Train.jsonl")),  # a PATH keeps its case
    ("lic:shards.json", "math", TaskSpec("math", "lic", "shards.json")),
    ("code:procedural", "code", TaskSpec("code", "procedural")),
    ("code:procedural", None, TaskSpec("code", "procedural")),
    ("CODE:Procedural:", "code", TaskSpec("code", "procedural")),
    ("code:procedural: caesar , chunks", "code", TaskSpec("code", "procedural", "caesar,chunks")),
    ("humaneval", "code", TaskSpec("code", "humaneval")),
    ("humaneval:test", None, TaskSpec("code", "humaneval", "test")),
    ("humaneval:/data/he.jsonl", "code", TaskSpec("code", "humaneval", "/data/he.jsonl")),
    ("lic-code:x.json", "code", TaskSpec("code", "lic-code", "x.json")),
    ("lic_code:x.json", "code", TaskSpec("code", "lic-code", "x.json")),
    ("LicCode:x.json", None, TaskSpec("code", "lic-code", "x.json")),
]


@pytest.mark.parametrize(("spec", "family", "expected"), PARSED)
def test_parse_task_spec_table(spec, family, expected):
    """Every spec form parses to its TaskSpec; the canonical string parses back to the same spec."""
    parsed = parse_task_spec(spec, family)
    assert parsed == expected
    assert parse_task_spec(str(parsed), parsed.family) == parsed
    assert parsed.env_id == FAMILY_ENV_IDS[parsed.family]


ERRORS = [
    # (spec, family, message pattern)
    ("humaneval", "math", r"^'humaneval' is a code task spec: use UserLM-Code-v0"),
    ("code:procedural", "math", r"^'code:procedural' is a code task spec: use UserLM-Code-v0"),
    ("lic-code:x.json", "math", r"is a code task spec: use UserLM-Code-v0"),
    ("gsm8k", "code", r"^'gsm8k' is a math task spec: use UserLM-Math-v0"),
    ("procedural:easy", "code", r"^'procedural:easy' is a math task spec: use UserLM-Math-v0"),
    ("lic:x.json", "code", r"is a math task spec: use UserLM-Math-v0 \(UserLM-Code-v0 reads code specs: code:proc"),
    ("procedural:medium", "math", r"unknown procedural difficulty \(use easy or hard\).*'procedural:easy'"),
    ("procedural:medium", "code", r"^unknown code task spec: 'procedural:medium'"),
    ("lic", "math", r"the 'lic' task spec needs a file path \('lic:PATH'\)"),
    ("lic-code", "code", r"the 'lic-code' task spec needs a file path \('lic-code:PATH'\)"),
    ("code:humaneval", "code", r"unknown code task spec: 'code:humaneval'"),
    ("procedurl", "math", r"Did you mean 'procedural'"),
    ("humaneva", "code", r"Did you mean 'humaneval'"),
    ("humanevl", "math", r"Did you mean 'humaneval' \(a code task spec: use UserLM-Code-v0\)\?"),
    ("gsm8:x", "code", r"Did you mean 'gsm8k' \(a math task spec: use UserLM-Math-v0\)\?"),
    ("zzzz", "math", r"^unknown task spec: 'zzzz'\. Valid forms: procedural, .*lic:PATH\.$"),
    ("zzzz", "code", r"^unknown code task spec: 'zzzz'\. Valid forms: code:procedural, .*lic-code:PATH\.$"),
    ("zzzz", None, r"Valid forms: procedural, .*\(UserLM-Math-v0\); code:procedural, .*\(UserLM-Code-v0\)\.$"),
]


@pytest.mark.parametrize(("spec", "family", "pattern"), ERRORS)
def test_parse_task_spec_errors(spec, family, pattern):
    """Unknown specs suggest close matches (of the other family too); a spec of the other family names its env."""
    with pytest.raises(ValueError, match=pattern):
        parse_task_spec(spec, family)


def test_parse_task_spec_bad_arguments():
    """A non-string spec and an unknown family are refused; a TaskSpec is checked against the family."""
    with pytest.raises(TypeError, match="int"):
        parse_task_spec(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown task family 'text'"):
        parse_task_spec("procedural", "text")  # type: ignore[arg-type]
    spec = TaskSpec("code", "humaneval", "test")
    assert parse_task_spec(spec, "code") is spec
    with pytest.raises(ValueError, match="'humaneval:test' is a code task spec"):
        parse_task_spec(spec, "math")


def test_hub_split_or_file(tmp_path, monkeypatch):
    """gsm8k/humaneval name a hub split (train/test by default) unless a file of that name exists."""
    assert parse_task_spec("gsm8k").hub_split() == "train"
    assert parse_task_spec("gsm8k:test").hub_split() == "test"
    assert parse_task_spec("gsm8k:x.jsonl").hub_split() is None
    assert parse_task_spec("humaneval").hub_split() == "test"
    assert parse_task_spec("humaneval:train").hub_split() is None  # HumanEval has no train split: a PATH
    assert parse_task_spec("procedural").hub_split() is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test").write_text("")
    assert parse_task_spec("gsm8k:test").hub_split() is None


# --------------------------------------------------------------------------- every reader goes through it


@pytest.mark.parametrize(
    ("env_id", "spec", "owner"),
    [
        ("UserLM-Math-v0", "humaneval", "UserLM-Code-v0"),
        ("UserLM-Math-v0", "code:procedural", "UserLM-Code-v0"),
        ("UserLM-Code-v0", "gsm8k", "UserLM-Math-v0"),
        ("UserLM-Code-v0", "procedural:hard", "UserLM-Math-v0"),
    ],
)
def test_cross_family_specs_through_gym_make(env_id, spec, owner):
    """gym.make, make_vec, make_unwrapped_env and make_env_task_source all say which env a spec belongs to."""
    family = "code" if owner == "UserLM-Code-v0" else "math"
    message = f"^'{spec}' is a {family} task spec: use {owner}"
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, user="replay", tasks=spec)
    with pytest.raises(ValueError, match=message):
        gym.make_vec(env_id, num_envs=2, user="replay", tasks=spec)
    with pytest.raises(ValueError, match=message):
        make_unwrapped_env(env_id, user="replay", tasks=spec)
    with pytest.raises(ValueError, match=message):
        make_env_task_source(env_id, spec)


def test_procedural_is_resolved_by_the_env():
    """Bare 'procedural' is the math generator for the math env, code:procedural for the code env."""
    math_env = gym.make("UserLM-Math-v0", user="replay", tasks="procedural").unwrapped
    code_env = gym.make("UserLM-Code-v0", user="replay", tasks="procedural").unwrapped
    assert isinstance(math_env.tasks, ProceduralMathTasks) and math_env.tasks.name == "procedural"
    assert isinstance(code_env.tasks, ProceduralCodeTasks) and code_env.tasks.name == "code-procedural"
    assert isinstance(make_env_task_source("math", "procedural"), ProceduralMathTasks)
    assert isinstance(make_env_task_source("code", "procedural"), ProceduralCodeTasks)
    assert isinstance(make_task_source("procedural"), ProceduralMathTasks)
    assert isinstance(make_code_task_source("procedural"), ProceduralCodeTasks)
    assert (env_task_family("UserLM-Math-v0"), env_task_family("code")) == ("math", "code")


def test_the_three_builders_agree():
    """make_task_source, make_code_task_source and make_env_task_source build the same sources from specs."""
    easy = make_env_task_source("UserLM-Math-v0", "procedural:easy")
    assert (easy.name, easy.min_shards, easy.max_shards) == ("procedural:easy", 3, 4)
    assert make_task_source(parse_task_spec("procedural:easy")).name == "procedural:easy"
    only = make_env_task_source("code", "code:procedural:caesar,chunks")
    assert only.name == make_code_task_source("code:procedural:caesar,chunks").name == "code-procedural-caesar-chunks"
    assert only.templates == ("caesar", "chunks")
    assert make_task_source(None, family="code").name == "code-procedural"
    with pytest.raises(ValueError, match="'gsm8k' is a math task spec: use UserLM-Math-v0"):
        make_code_task_source("gsm8k")


def test_default_task_specs_are_the_env_defaults():
    """tasks=None and an omitted tasks= give the same source: DEFAULT_TASK_SPECS equals each env's signature."""
    for family, env_id in FAMILY_ENV_IDS.items():
        signature = inspect.signature(ENV_CLASSES[env_id])
        assert DEFAULT_TASK_SPECS[family] == signature.parameters["tasks"].default
        assert parse_task_spec(DEFAULT_TASK_SPECS[family]).family == family


def test_check_env_specs_fails_fast_without_loading():
    """Scripts check env, task and reward specs without loading anything (a PATH need not exist)."""
    assert check_env_specs("code", tasks="humaneval:/nowhere.jsonl", reward="shaped:turn=0") == "UserLM-Code-v0"
    assert check_env_specs("math", tasks="", reward=None) == "UserLM-Math-v0"
    with pytest.raises(ValueError, match="is a code task spec"):
        check_env_specs("math", tasks="humaneval")
    with pytest.raises(ValueError, match="unknown reward preset"):
        check_env_specs("math", reward="shapd")
    with pytest.raises(ValueError, match="unknown env id"):
        check_env_specs("maths")


# --------------------------------------------------------------------------- the CLI's defaults are the env's


def _option_defaults(command: str) -> dict:
    click_command = typer.main.get_command(cli.app).commands[command]
    return {param.name: param.default for param in click_command.params}


@pytest.mark.parametrize("env_id", sorted(ENV_CLASSES))
def test_cli_defaults_are_the_env_defaults(env_id):
    """rollout's --reward / --max-turns defaults and --tasks (per env) are the env constructor's defaults."""
    signature = inspect.signature(ENV_CLASSES[env_id]).parameters
    rollout = _option_defaults("rollout")
    assert rollout["max_turns"] == signature["max_turns"].default
    assert rollout["reward"] == signature["reward"].default
    assert rollout["tasks"] is None and _option_defaults("evaluate")["tasks"] is None  # None = the env's
    assert cli.default_tasks(env_id) == signature["tasks"].default
    assert env_defaults(env_id) == {n: p.default for n, p in signature.items() if p.default is not p.empty}
    # the one deliberate difference: the CLI's user is offline, the env's is UserLM-8b from the hub
    assert signature["user"].default is None and rollout["user"] == cli.OFFLINE_USER


def test_cli_help_lists_every_env_default():
    """--help names each env's default task spec and the env's max turns."""
    assert "math: procedural" in cli.TASKS_HELP and "code: code:procedural" in cli.TASKS_HELP
    assert all(env_id in cli.ENV_HELP for env_id in ENV_CLASSES)


def test_cli_rollout_resolves_procedural_per_env_and_rejects_the_other_family(tmp_path):
    """`--env code --tasks procedural` runs code tasks; `--tasks humaneval` on the math env says to use the code env."""
    from typer.testing import CliRunner

    out = tmp_path / "r.jsonl"
    args = ["rollout", "--assistant", "scripted:clarify", "--user", "replay", "--episodes", "1", "--show", "0"]
    result = CliRunner().invoke(cli.app, [*args, "--env", "code", "--tasks", "procedural", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert '"task_id": "code-procedural/' in out.read_text()
    bad = CliRunner().invoke(cli.app, [*args, "--tasks", "humaneval", "--out", str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 2 and "is a code task spec: use UserLM-Code-v0" in " ".join(bad.output.split())
