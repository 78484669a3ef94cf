"""A real (tiny) SFT run of training/train_userlm.py whose output loads as ``userlm:PATH`` in the env."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import userlm_env  # noqa: F401  (registers the envs)
from training.train_userlm import make_args, parse_args, train
from userlm_env.users import UserLMUser, make_user
from userlm_env.users.template import END_CONVERSATION, END_OF_TURN, has_userlm_template


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The `test` preset: tiny random Llama, 600 ShareGPT records, 12 SFT steps (a few seconds)."""
    out = tmp_path_factory.mktemp("flip_runs")
    torch.set_num_threads(1)
    summary = train(make_args("test", output_dir=str(out), quiet=True))
    return summary


def test_sft_loss_decreases_and_artifacts_are_written(tiny_run):
    """The user-turn loss goes down; data report, held-out split and metrics are on disk."""
    summary = tiny_run
    assert summary["mean_last3_loss"] < summary["mean_first3_loss"] - 0.3
    run_dir = summary["run_dir"]
    report = json.loads(open(f"{run_dir}/data_report.json").read())
    assert report["filter"]["seen"] == 600 and 0 < report["filter"]["kept"] < 600
    assert report["train_conversations"] + report["heldout_conversations"] == report["filter"]["kept"]
    assert report["intent_methods"] == {"keywords": report["filter"]["kept"]}
    heldout = [json.loads(line) for line in open(f"{run_dir}/heldout.jsonl")]
    train_ids = {json.loads(line)["id"] for line in open(f"{run_dir}/train.jsonl")}
    assert heldout and not train_ids & {h["id"] for h in heldout}
    assert all(h["meta"]["intent"].startswith("You want help") for h in heldout)


def test_trained_model_has_userlm_tokens_and_template(tiny_run):
    """The saved tokenizer carries the UserLM chat template; generation stops at eot or end-of-conversation."""
    path = tiny_run["final_model"]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert has_userlm_template(tok)
    end_id = tok.convert_tokens_to_ids(END_CONVERSATION)
    assert len(tok.encode(END_CONVERSATION, add_special_tokens=False)) == 1
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    assert set(model.generation_config.eos_token_id) == {tok.convert_tokens_to_ids(END_OF_TURN), end_id}


def test_trained_model_loads_as_userlm_user_in_the_env(tiny_run):
    """``gym.make("UserLM-Math-v0", user="userlm:PATH", tasks="procedural")`` runs with the trained model."""
    spec = f"userlm:{tiny_run['final_model']}"
    user = make_user(spec, device="cpu")
    assert isinstance(user, UserLMUser) and user.end_id is not None and user.chat_template is None
    env = gym.make("UserLM-Math-v0", user=spec, tasks="procedural", max_turns=5)
    obs, info = env.reset(seed=0)
    assert obs[-1]["role"] == "user" and isinstance(obs[-1]["content"], str)
    obs, reward, terminated, truncated, info = env.step("Could you tell me a bit more about the problem?")
    assert isinstance(reward, float) and info["turn"] == 1
    env.close()


def test_lora_run_merges_into_a_loadable_model(tmp_path):
    """--use_lora trains an adapter (new token embeddings trainable) and saves a merged model."""
    summary = train(
        make_args("test", output_dir=str(tmp_path), quiet=True, use_lora=True, max_steps=3, learning_rate=1e-2)
    )
    model = AutoModelForCausalLM.from_pretrained(summary["final_model"])
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert make_user(f"userlm:{summary['final_model']}", device="cpu").end_id is not None


def test_cli_presets_and_bad_arguments():
    """--preset sets defaults that flags override; impossible settings fail with a clear message."""
    args = parse_args(["--preset", "test", "--max_steps", "5", "--output_dir", "/tmp/flip_x"])
    assert args.base_model == "tiny" and args.max_steps == 5 and args.run_dir.startswith("/tmp/flip_x/")
    with pytest.raises(SystemExit, match="unknown --preset"):
        parse_args(["--preset", "nope"])
    with pytest.raises(ValueError, match="intent_method"):
        make_args("test", intent_method="magic")
    with pytest.raises(ValueError, match="new_token_init"):
        make_args("test", new_token_init="zeros")
    with pytest.raises(ValueError, match="max_steps=0"):
        make_args("test", max_steps=0)
