"""End to end on UserLM-Code-v0 with the real bundled model as assistant and as (prompted) user."""

import pytest
import torch

from agents import make_assistant
from userlm_env.backends import SamplingParams
from userlm_env.code.sandbox import ERROR_TYPES
from userlm_env.envs import make_unwrapped_env
from userlm_env.judge import ReplyKind
from userlm_env.rewards import COMPONENTS
from userlm_env.rollout import run_episodes, summarize
from userlm_env.users import make_user

pytestmark = pytest.mark.slow
CODE_KEYS = {"tests_passed", "tests_failed", "tests_total", "error_type", "execution_error", "execution_seconds"}


def test_two_code_episodes_with_smollm2_assistant_and_prompted_user():
    """run_episodes on procedural code tasks: real replies judged, code run in the sandbox, records complete."""
    torch.set_num_threads(1)
    assistant = make_assistant(
        "smollm2-135m",
        device="cpu",
        system_prompt="You are a helpful assistant. Answer with a Python function in a ```python code block.",
        sampling=SamplingParams(max_new_tokens=64, temperature=0.7, top_p=0.9),
    )
    user = make_user("prompted:smollm2-135m", device="cpu")
    records = run_episodes(
        lambda: make_unwrapped_env("UserLM-Code-v0", user=user, tasks="code:procedural", max_turns=2),
        assistant,
        seeds=[0, 1],
        batch_size=2,
    )
    assert len(records) == 2 and [r["error"] for r in records] == [None, None]
    kinds = {k.value for k in ReplyKind}
    for record in records:
        assert record["task_id"].startswith("code-procedural/")
        users = [m["content"] for m in record["transcript"] if m["role"] == "user"]
        assert users and all(u.strip() for u in users)
        assert record["transcript"][0]["role"] == "user" and record["shards_revealed"] >= 1
        assert 1 <= record["turns"] <= 2 and record["score"] in (0.0, 1.0)
        for step in record["steps"]:
            assert CODE_KEYS <= set(step) and set(step["reward_components"]) == set(COMPONENTS)
            assert step["reply_kind"] in kinds
            if step["answer_attempt"] and step["error_type"] != "syntax":
                assert step["tests_total"] == step["tests_passed"] + step["tests_failed"]
                assert step["error_type"] is None or step["error_type"] in ERROR_TYPES
            if not step["answer_attempt"]:
                assert step["tests_total"] is None and step["error_type"] is None
    summary = summarize(records)
    assert summary["episodes"] == 2 and summary["errors"] == 0
