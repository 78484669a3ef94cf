"""Shared fixtures: the shared data directory, task sources, a fixed toy task, tiny UserLM models.

The tiny models come from :func:`userlm_env.testing.build_tiny_userlm`; each is built (and, when
it has to emit given user turns, trained for ~1 s) once per test session into
``tmp_path_factory``. The training conversations use the exact system message the
:class:`~userlm_env.users.UserLMUser` renders for :data:`EGGS_TASK`, so the trained models answer
the env's real prompts.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from userlm_env.tasks import Shard, ShardedTask, make_task_source
from userlm_env.testing import build_tiny_chat_model, build_tiny_userlm
from userlm_env.users import task_intent
from userlm_env.users.template import END_CONVERSATION

STRICT_SKIPS = os.environ.get("USERLM_ENV_STRICT_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With USERLM_ENV_STRICT_SKIPS=1 (scripts/test.sh, CI) a skipped test fails: nothing the suite
    needs (bundled model, llama.cpp server, shared data) may go missing silently."""
    outcome = yield
    report = outcome.get_result()
    if STRICT_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under USERLM_ENV_STRICT_SKIPS=1: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at collection (``pytest.skip(allow_module_level=True)``)."""
    outcome = yield
    report = outcome.get_result()
    if STRICT_SKIPS and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped under USERLM_ENV_STRICT_SKIPS=1: {report.longrepr}"


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LIC_SAMPLE = SHARED_DATA / "lic_format_sample.json"
GSM8K_TRAIN = SHARED_DATA / "gsm8k" / "train.jsonl"

EGGS_TASK = ShardedTask(
    task_id="toy/eggs",
    instruction="Janet has 16 eggs. She eats 3 eggs for breakfast. How many eggs are left?",
    shards=(
        Shard(1, "How many eggs are left?"),
        Shard(2, "Janet has 16 eggs."),
        Shard(3, "She eats 3 eggs for breakfast."),
    ),
    answer="13",
)
"""A 3-shard toy task; the trained tiny UserLMs know its intent."""

OPENING = "how many eggs are left?"
"""The opening user turn the conversational tiny UserLM was trained to write (conveys shard 1)."""
SECOND = "janet has 16 eggs"
"""Its second user turn (conveys shard 2)."""
ASK = "Could you tell me more?"
"""The assistant reply the trained conversations use."""
OPENER_I = "I need help with the eggs"
"""The opening turn of the model trained to start with "I"."""


def _system() -> dict[str, str]:
    return {"role": "system", "content": task_intent(EGGS_TASK)}


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Run torch on one intra-op thread: tiny models are many times faster without threading overhead."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy() -> SimpleNamespace:
    """The toy task and the turns the trained tiny UserLMs know: task, opening, second, ask, opener_i."""
    return SimpleNamespace(task=EGGS_TASK, opening=OPENING, second=SECOND, ask=ASK, opener_i=OPENER_I)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data directory (skip when it is missing)."""
    if not LIC_SAMPLE.is_file() or not GSM8K_TRAIN.is_file():
        pytest.skip(f"shared data not found under {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def lic_spec(shared_data) -> str:
    """The task spec of the LiC-format sample."""
    return f"lic:{shared_data / 'lic_format_sample.json'}"


@pytest.fixture(scope="session")
def gsm8k_spec(shared_data) -> str:
    """The task spec of the local GSM8K train split."""
    return f"gsm8k:{shared_data / 'gsm8k' / 'train.jsonl'}"


@pytest.fixture(scope="session")
def gsm8k_source(gsm8k_spec):
    """The GSM8K train split, loaded and sharded once per session (~1.5 s)."""
    return make_task_source(gsm8k_spec)


@pytest.fixture(scope="session")
def lic_source(lic_spec):
    """The LiC-format sample as a task source."""
    return make_task_source(lic_spec)


@pytest.fixture(scope="session")
def task_sources(lic_source, gsm8k_source):
    """The three task families by name: procedural, LiC and GSM8K."""
    return {"procedural": make_task_source("procedural"), "lic": lic_source, "gsm8k": gsm8k_source}


# --------------------------------------------------------------------------- tiny models


@pytest.fixture(scope="session")
def tiny_userlm_sep1(tmp_path_factory) -> Path:
    """An untrained tiny UserLM whose own template uses ONE newline after the role header."""
    return build_tiny_userlm(tmp_path_factory.mktemp("tiny_userlm_sep1"), separator="\n")


@pytest.fixture(scope="session")
def tiny_userlm_untrained(tmp_path_factory) -> Path:
    """An untrained tiny UserLM (default template): random but seeded output."""
    return build_tiny_userlm(tmp_path_factory.mktemp("tiny_userlm_untrained"), seed=1)


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory) -> Path:
    """An untrained tiny assistant-style chat model (Llama-3 template opening an assistant turn)."""
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat"))


@pytest.fixture(scope="session")
def conversational_userlm(tmp_path_factory) -> Path:
    """Tiny UserLM for EGGS_TASK: turn 0 -> OPENING, turn 1 -> SECOND, turn 2 -> <|endconversation|>."""
    convs = [
        [_system(), _user(OPENING)],
        [_system(), _user(OPENING), _assistant(ASK), _user(SECOND)],
        [_system(), _user(OPENING), _assistant(ASK), _user(SECOND), _assistant(ASK), _user(END_CONVERSATION)],
    ]
    return build_tiny_userlm(tmp_path_factory.mktemp("tiny_userlm_conv"), train_on=convs, train_steps=150)


@pytest.fixture(scope="session")
def opener_i_userlm(tmp_path_factory) -> Path:
    """Tiny UserLM for EGGS_TASK that always opens with "I ..." (OPENER_I)."""
    convs = [[_system(), _user(OPENER_I)]]
    return build_tiny_userlm(tmp_path_factory.mktemp("tiny_userlm_opener_i"), train_on=convs, train_steps=150)


@pytest.fixture(scope="session")
def bad_turns_userlm(tmp_path_factory) -> Path:
    """Tiny UserLM for EGGS_TASK: turn 0 -> the 1-word "ok", turn 1 -> repeats OPENING verbatim."""
    convs = [
        [_system(), _user("ok")],
        [_system(), _user(OPENING), _assistant(ASK), _user(OPENING)],
    ]
    return build_tiny_userlm(tmp_path_factory.mktemp("tiny_userlm_bad"), train_on=convs, train_steps=150)
