"""Issue 15: flipped sharded-task conversations, the --mix training run (LoRA, resume, time limit) and its eval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from training.eval_userlm import Args as EvalArgs
from training.eval_userlm import evaluate
from training.train_userlm import ROWS_FILE, make_args, parse_args, train, train_token_rows
from userlm_env.backends.models import BUNDLED_SMOLLM2, load_model
from userlm_env.flip.data import load_conversations
from userlm_env.flip.flipping import IGNORE_INDEX, flip_conversation, prepare_tokenizer
from userlm_env.flip.sharded import (
    CORRECT_TEMPLATES,
    SHARDED_INTENT_METHOD,
    parse_mix,
    sharded_conversation,
    sharded_conversations,
)
from userlm_env.tasks.procedural import ProceduralMathTasks
from userlm_env.users.base import UserRequest
from userlm_env.users.template import END_CONVERSATION
from userlm_env.users.userlm import UserLMConfig, UserLMUser, task_intent


def test_sharded_conversation_uses_the_env_intent_and_reveals_one_shard_per_turn():
    """Intent = the system message UserLMUser builds in the env; turn k says shard k+1; it ends on the right answer."""
    source = ProceduralMathTasks()
    for seed in range(30):
        task = source.generate(seed)
        conv = sharded_conversation(task, seed)
        assert conv.meta["intent"] == task_intent(task) and conv.meta["intent_method"] == SHARDED_INTENT_METHOD
        request = UserRequest(task=task, conversation=(), revealed=(), turn=0, seed=0)
        user = UserLMUser.__new__(UserLMUser)  # no backend needed: messages() only renders the intent
        user.config = UserLMConfig()
        assert user.messages(request)[0]["content"] == conv.meta["intent"]
        users = conv.user_turns()
        assert task.shards[0].text in users[0]
        for k, shard in enumerate(task.shards[1:], start=1):  # one shard per turn, in order
            said = users[k].lower()
            assert shard.text[1:].lower() in said
            assert all(other.text[1:].lower() not in said for other in task.shards if other is not shard)
        assert len(users) >= task.num_shards
        last = conv.messages[-1]
        assert last["role"] == "assistant" and task.answer in last["content"]
        assert any(last["content"] == t.format(answer=task.answer) for t in CORRECT_TEMPLATES)


def test_wrong_answers_are_never_followed_by_the_end():
    """Wrong guesses occur (mid-chat and final), the user always goes on after them; answers differ from the truth."""
    convs = sharded_conversations("procedural", 80, seed=3)
    wrong_seen = 0
    for conv in convs:
        answer = conv.meta["answer"]
        for i, m in enumerate(conv.messages[:-1]):
            if m["role"] == "assistant" and any(ch.isdigit() for ch in m["content"]):
                wrong_seen += 1
                assert not m["content"].endswith(f" {answer}.")
                assert conv.messages[i + 1]["role"] == "user"
    assert wrong_seen >= 10
    assert len({c.meta["task_id"] for c in convs}) == 80


def test_flipped_sharded_example_ends_exactly_after_the_correct_answer():
    """The only <|endconversation|> target follows the last (correct) assistant reply; user turns are the targets."""
    path = load_model(BUNDLED_SMOLLM2, dtype="float32", device="cpu").model.name_or_path
    tok = AutoTokenizer.from_pretrained(path)
    prepare_tokenizer(tok)
    end_id = tok.convert_tokens_to_ids(END_CONVERSATION)
    conv = sharded_conversation(ProceduralMathTasks().generate(5), 0)
    example = flip_conversation(conv, conv.meta["intent"], tok)
    assert example.ended and example.user_turns == len(conv.user_turns())
    targets = [x for x in example.labels if x != IGNORE_INDEX]
    assert targets.count(end_id) == 1 and example.labels[-1] == end_id == example.input_ids[-1]


def test_parse_mix():
    assert parse_mix("sharegpt:40, procedural:10,gsm8k:/d/train.jsonl:5") == [
        ("sharegpt", 40),
        ("procedural", 10),
        ("gsm8k:/d/train.jsonl", 5),
    ]
    for bad in ("procedural", "procedural:x", ":3", ""):
        with pytest.raises(ValueError):
            parse_mix(bad)
    with pytest.raises(ValueError, match="SOURCE:COUNT"):
        make_args("test", mix="procedural")
    args = parse_args(["--preset", "mix", "--output_dir", "/tmp/flip_x"])
    assert args.use_lora and args.mix.startswith("sharegpt:") and "procedural:" in args.mix


@pytest.fixture(scope="module")
def mix_run(tmp_path_factory):
    """A LoRA run of the tiny model on 30 real + 30 sharded conversations, checkpoints every 2 steps."""
    out = tmp_path_factory.mktemp("flip_mix")
    torch.set_num_threads(1)
    kwargs = dict(
        output_dir=str(out),
        quiet=True,
        mix="sharegpt:30,procedural:30",
        heldout_sharded=6,
        use_lora=True,
        lora_layers=1,
        max_intent_tokens=200,
        max_length=384,
        max_real_length=96,
        save_steps=2,
        max_steps=4,
        learning_rate=1e-2,
    )
    first = train(make_args("test", **kwargs))
    return kwargs, first


def test_mix_run_data_and_lora_keeps_old_embedding_rows(mix_run):
    """Mix counts, held-out sharded chats disjoint from training tasks; LoRA moved only the added tokens' rows."""
    kwargs, summary = mix_run
    report = summary["data"]
    assert report["train_real_conversations"] == 30 and report["train_sharded_conversations"] == 30
    assert summary["train_sharded_examples"] == 30
    run_dir = summary["run_dir"]
    held = list(load_conversations(f"{run_dir}/heldout_sharded.jsonl"))
    train_ids = {json.loads(line)["meta"].get("task_id") for line in open(f"{run_dir}/train.jsonl")}
    assert held and not {c.meta["task_id"] for c in held} & train_ids
    assert all(c.meta["intent"].startswith("You are a user chatting") for c in held)
    final = load_file(f"{summary['final_model']}/model.safetensors")
    assert any("q_proj" in k for k in final) and not any("lora" in k for k in final)  # merged
    assert summary["steps"] == 4 and summary["examples_seen"] == 4 * 8


def test_train_token_rows_moves_only_the_added_rows():
    """With LoRA, the embedding matrix trains through a row mask: AdamW changes the given rows and no other."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    )
    before = model.get_input_embeddings().weight.detach().clone()
    params = train_token_rows(model, [3, 7])
    optimizer = torch.optim.AdamW(params, lr=0.1, weight_decay=0.0)
    ids = torch.tensor([[1, 3, 5, 7, 9, 3]])
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    after = model.get_input_embeddings().weight.detach()
    changed = sorted({int(i) for i in torch.nonzero((after - before).abs().sum(-1)).flatten()})
    assert changed == [3, 7]


def test_mix_run_resumes_from_its_last_checkpoint(mix_run):
    """--resume continues at the newest checkpoint (its embedding rows restored) and trains the remaining steps."""
    kwargs, first = mix_run
    ckpt = f"{first['run_dir']}/trainer/checkpoint-4"
    assert json.load(open(f"{ckpt}/trainer_state.json"))["global_step"] == 4
    assert not (Path(ckpt) / ROWS_FILE).exists()  # the tiny tokenizer already has the UserLM tokens: no rows
    resumed = train(make_args("test", **{**kwargs, "max_steps": 6, "resume": True}))
    assert resumed["resumed_from"].endswith("checkpoint-4") and resumed["steps"] == 6
    steps = [json.loads(line)["step"] for line in open(f"{first['run_dir']}/metrics.jsonl")]
    assert steps[:4] == [1, 2, 3, 4] and 6 in steps


def test_time_limit_stops_training(tmp_path):
    torch.set_num_threads(1)
    summary = train(make_args("test", output_dir=str(tmp_path), quiet=True, max_train_minutes=1e-6, max_steps=50))
    assert summary["steps"] == 1


def test_eval_scores_sharded_heldout_and_runs_the_env(mix_run):
    """eval_userlm: sharded held-out perplexity/termination and env user metrics (intent coverage) for each user."""
    torch.set_num_threads(1)
    _, summary = mix_run
    report = evaluate(
        EvalArgs(
            run_dir=summary["run_dir"],
            num_ppl_conversations=4,
            num_gen_intents=2,
            samples_per_intent=1,
            max_new_tokens=4,
            num_sharded_conversations=4,
            env_tasks=2,
            env_max_turns=3,
            num_threads=1,
            quiet=True,
        )
    )
    sharded = report["sharded_heldout"]
    assert sharded["scored_conversations"] == 4 and sharded["termination_should_end"] == 4
    assert sharded["perplexity"]["trained"]["tokens"] == sharded["perplexity"]["prompted_base"]["tokens"] > 0
    env = report["env"]
    assert set(env) == {"trained", "prompted_base"}
    for row in env.values():
        assert row["episodes"] == 2 and 0 <= row["intent_coverage"] <= 1 and math.isfinite(row["intent_coverage"])
        assert np.isfinite(row["user_end_rate"])
    md = open(f"{summary['run_dir']}/eval/eval_report.md").read()
    assert "intent_coverage" in md and "Held-out sharded-task chats" in md
