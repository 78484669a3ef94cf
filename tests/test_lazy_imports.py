"""A model-free env imports and steps without torch or transformers (they cost seconds to import)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_model_free_envs_do_not_import_torch():
    code = textwrap.dedent(
        """
        import sys
        import gymnasium as gym
        import userlm_env
        from agents import make_assistant
        for env_id, reply in (("UserLM-Math-v0", "Which numbers?"), ("UserLM-Code-v0", "def f(x):\\n    return x")):
            env = gym.make(env_id, user="replay")
            env.reset(seed=0)
            env.step(reply)
        make_assistant("scripted:oracle")
        heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
        print("HEAVY", heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_local_engine_still_reachable_from_the_package():
    from userlm_env.backends import Backend, HTTPBackend, TransformersBackend

    assert TransformersBackend.__module__ == "userlm_env.backends.transformers_backend"
    assert all(callable(getattr(cls, name, None)) for cls in (TransformersBackend, HTTPBackend)
               for name in ("render", "generate", "chat_completer", "close"))
    assert Backend.__module__ == "userlm_env.backends.base"
