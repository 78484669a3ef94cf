"""Every env this package registers passes Gymnasium's ``check_env`` without warnings; docstring examples run."""

from __future__ import annotations

import doctest
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import userlm_env  # noqa: F401  (registers the envs)
from userlm_env.envs import base, code_env, math_env

OUR_IDS = sorted(spec.id for spec in gym.registry.values() if str(spec.entry_point).startswith("userlm_env."))


def test_every_env_class_is_registered():
    from userlm_env.envs import ENV_CLASSES

    assert OUR_IDS == sorted(ENV_CLASSES)


@pytest.mark.parametrize("env_id", OUR_IDS)
def test_check_env_without_warnings(env_id):
    """Gymnasium's own checker (spaces, seeded determinism, step API) on the unwrapped env, warnings as errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id, user="replay", max_turns=20).unwrapped
        check_env(env, skip_render_check=True)
        env.close()


@pytest.mark.parametrize("module", [base, math_env, code_env], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, module.__name__, globs={}) if t.examples]
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
    if module is not base:
        assert result.attempted > 0, f"{module.__name__} has no runnable examples"
