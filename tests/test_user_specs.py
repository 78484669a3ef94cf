"""User spec options: ``replay?profile=sharegpt``, ``prompted:MODEL?engine=auto&profile=terse`` (make_user),
how the env takes a spec's defaults, the evaluation's user columns and its termination probe."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import userlm_env.users as users_module
from userlm_env.cli import app
from userlm_env.envs.math_env import UserLMMathEnv
from userlm_env.evaluation.runner import EvalConfig, run_evaluation, step_judgements, termination_probe
from userlm_env.judge.types import Judgement, ReplyKind
from userlm_env.users import PromptedUser, ReplayUser, make_user, split_user_spec
from userlm_env.users.profiles import PROFILES

# ------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("spec", "rest", "options"),
    [
        ("replay", "replay", {}),
        ("replay?profile=sharegpt", "replay", {"profile": "sharegpt"}),
        ("replay:plain?reveal=responsive&profile=terse", "replay:plain", {"reveal": "responsive", "profile": "terse"}),
        ("prompted:smollm2-135m?engine=auto&profile=terse", "prompted:smollm2-135m?engine=auto", {"profile": "terse"}),
        ("prompted:smollm2-135m?engine=llama.cpp&threads=2", "prompted:smollm2-135m?engine=llama.cpp&threads=2", {}),
        (
            "prompted:http://127.0.0.1:8000/v1?tokenizer=a/b&reveal=on_request&mode=chat",
            "prompted:http://127.0.0.1:8000/v1?tokenizer=a/b&mode=chat",
            {"reveal": "on_request"},
        ),
    ],
)
def test_split_user_spec_takes_out_only_the_user_options(spec, rest, options):
    """profile / reveal leave the spec; every other option stays, as written, for the model spec."""
    assert split_user_spec(spec) == (rest, options)


def test_replay_specs_carry_profile_and_reveal_defaults():
    """The options become the user's defaults; the spec string (options included) is its name; old specs unchanged."""
    user = make_user("replay?profile=sharegpt")
    assert isinstance(user, ReplayUser) and user.name == "replay?profile=sharegpt"
    assert user.profile == PROFILES["sharegpt"] and user.reveal == "ordered" and not user.plain
    plain = make_user("replay:plain?reveal=responsive&profile=terse")
    assert plain.plain and plain.reveal == "responsive" and plain.profile == PROFILES["terse"]
    for spec, is_plain in (("replay", False), ("replay:plain", True)):
        old = make_user(spec)
        assert (old.name, old.plain, old.reveal, old.profile) == ("replay", is_plain, "ordered", PROFILES["lic"])


def test_prompted_spec_passes_model_options_on_and_keeps_user_options(monkeypatch):
    """prompted:MODEL?engine=auto&profile=terse: the backend gets MODEL?engine=auto, the user gets profile=terse."""
    seen = []
    fake = SimpleNamespace(tokenizer=SimpleNamespace(eos_token_id=0), engine="fake")
    monkeypatch.setattr(users_module, "_backend", lambda model, spec, device, dtype: seen.append(model) or fake)
    spec = "prompted:smollm2-135m?engine=auto&profile=terse&reveal=responsive"
    user = make_user(spec)
    assert seen == ["smollm2-135m?engine=auto"]
    assert isinstance(user, PromptedUser) and user.name == spec
    assert user.profile == PROFILES["terse"] and user.reveal == "responsive" and user.backend is fake
    make_user("prompted:smollm2-135m")
    assert seen[-1] == "smollm2-135m"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("replay?profile=nope", "user_profile must be one of"),
        ("replay?reveal=sideways", "reveal must be one of"),
        ("replay?tone=rude", "unknown user option(s) ['tone']"),
        ("replay?profile=terse&profile=lic", "given twice"),
        ("human?profile=terse", "env-controlled users only"),
        ("full?reveal=responsive", "env-controlled users only"),
        ("userlm:microsoft/UserLM-8b?profile=terse", "env-controlled users only"),
        ("microsoft/UserLM-8b?profile=sharegpt", "env-controlled users only"),
        ("prompted:smollm2-135m?engin=auto&profile=terse", "user options (prompted:MODEL): profile, reveal"),
    ],
)
def test_bad_user_options_are_clear_errors(spec, message):
    """Unknown keys, presets and modes, and options on users that decide for themselves, are errors (no model load)."""
    with pytest.raises(ValueError) as err:
        make_user(spec)
    assert message in str(err.value)


# ------------------------------------------------------------------------------------------- the env


def _first_user_turns(user, *, seed=3, **env_kwargs):
    env = UserLMMathEnv(user=user, max_turns=8, **env_kwargs)
    obs, info = env.reset(seed=seed)
    turns = [obs[-1]["content"]]
    for _ in range(2):
        obs, _, terminated, truncated, info = env.step("Could you tell me more details?")
        if terminated or truncated:
            break
        turns.append(obs[-1]["content"])
    env.close()
    return turns, info


def test_env_uses_the_specs_defaults_unless_given_its_own():
    """An env without reveal= / user_profile= plays the spec's profile; the env's arguments override it."""
    terse, info = _first_user_turns("replay?profile=terse")
    assert all(t == t.lower() for t in terse) and info["user_meta"]["profile"] == "terse"
    same = _first_user_turns(ReplayUser(profile="terse"))[0]
    assert terse == same
    overridden, info = _first_user_turns("replay?profile=terse", user_profile="lic")
    assert overridden == _first_user_turns("replay")[0] and "profile" not in info["user_meta"]
    on_request, info = _first_user_turns("replay?reveal=on_request")
    assert info["user_meta"]["reveal"] == "on_request"
    assert _first_user_turns("replay?reveal=on_request", reveal="ordered")[1]["user_meta"] == {}


# ------------------------------------------------------------------------------------------- evaluation


def test_step_judgements_rebuild_the_verdicts():
    """The probe's verdicts come from the record's step info, one per assistant reply, in order."""
    steps = [
        {"reply_kind": "clarification", "answer_attempt": False, "extracted_answer": None, "correct": None},
        {"reply_kind": "answer_attempt", "answer_attempt": True, "extracted_answer": "18", "correct": True,
         "judge_reason": "matches"},
    ]  # fmt: skip
    first, last = step_judgements(steps)
    assert first.kind is ReplyKind.CLARIFICATION and not first.answer_attempt
    assert last == Judgement(ReplyKind.ANSWER_ATTEMPT, True, "18", True, reason="matches")
    assert step_judgements([{"reply_kind": None}]) == ()


def _config(**overrides) -> EvalConfig:
    base = dict(assistants=["scripted:oracle"], users=["replay"], num_tasks=2, runs_per_task=2, batch_size=4)
    return EvalConfig(**(base | {"settings": ["SHARDED"]} | overrides))


def test_termination_probe_measures_a_satisfied_ending(tmp_path):
    """The probe passes the episode's verdicts: a profile that ends when satisfied ends the chat; replay does not."""
    result = run_evaluation(_config(users=["replay", "replay?profile=impatient"]), tmp_path)
    probes = {}
    for record in result.records:
        probes.setdefault(record["user"], []).append(record.get("termination_probe"))
    assert probes["replay"] and all(p is False for p in probes["replay"])
    assert probes["replay?profile=impatient"] and all(p is True for p in probes["replay?profile=impatient"])
    # without the verdicts (as before) the impatient user would not know it was answered
    record = next(r for r in result.records if r["user"] == "replay?profile=impatient")
    tasks = {record["task_id"]: _task_of(result, record)}
    stripped = {**record, "steps": [{**s, "reply_kind": None} for s in record["steps"]]}
    assert termination_probe(make_user("replay?profile=impatient"), tasks, stripped) is False
    assert termination_probe(make_user("replay?profile=impatient"), tasks, record) is True


def _task_of(result, record):
    from userlm_env.envs import make_env_task_source
    from userlm_env.evaluation.runner import choose_tasks

    source = make_env_task_source(result.config.env, result.config.tasks)
    return {t.task_id: t for t in choose_tasks(source, result.config.num_tasks, result.config.seed)}[record["task_id"]]


def test_evaluate_cli_shows_a_profile_user_next_to_the_human_reference(tmp_path):
    """--user replay --user 'replay?profile=sharegpt': both are user columns beside the ShareGPT human column."""
    args = ["evaluate", "--assistant", "scripted:oracle", "--user", "replay", "--user", "replay?profile=sharegpt"]
    args += ["--setting", "SHARDED", "--num-tasks", "2", "--runs-per-task", "2", "--human-reference", "100"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "summary.md").read_text()
    header = next(line for line in summary.splitlines() if line.startswith("| metric"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "metric", "replay", "replay?profile=sharegpt", "human (ShareGPT)"
    ]  # fmt: skip
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["users"]) == {"replay", "replay?profile=sharegpt"}
    replay, sharegpt = metrics["users"]["replay"], metrics["users"]["replay?profile=sharegpt"]
    assert sharegpt["first_turn_share"] > replay["first_turn_share"]  # sharegpt puts most shards up front
    assert "replay?profile=sharegpt" in (tmp_path / "report.html").read_text()
