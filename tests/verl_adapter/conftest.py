"""The verl adapter's tests run only where verl is installed (``.venv-verl``, scripts/install_verl_env.sh).

The main venv cannot hold verl (it pins ``transformers<5.11``), so there these modules are not collected
at all (not skipped: a skip fails under ``USERLM_ENV_STRICT_SKIPS=1``); ``tests/test_verl_adapter.py``
runs them in ``.venv-verl`` instead.

The helpers (verl's real config and ``AgentLoopWorker``, the server stand-in) are in ``verl_harness.py``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


def verl_installed() -> bool:
    """verl the package (a namespace package, e.g. some folder named ``verl`` on sys.path, does not count)."""
    spec = importlib.util.find_spec("verl")
    return spec is not None and spec.origin is not None


collect_ignore_glob = [] if verl_installed() else ["test_*.py"]


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory) -> Path:
    """An untrained tiny Llama chat model (the policy): random but seeded replies."""
    from userlm_env.testing import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("verl_tiny_policy"), seed=0)


@pytest.fixture(scope="session")
def tiny_policy(tiny_policy_dir):
    """(model, tokenizer) of the tiny policy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_policy_dir)


@pytest.fixture(autouse=True)
def _fresh_shared_users():
    """Every test starts with no cached users (the adapter caches them per process)."""
    from userlm_env.integrations.verl import clear_shared

    clear_shared()
    yield
    clear_shared()


@pytest.fixture(scope="session", autouse=True)
def _quiet_verl():
    os.environ.setdefault("VERL_LOGGING_LEVEL", "WARN")
    yield
