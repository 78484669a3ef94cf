"""verifiers plugin module of UserLM-Math-v0: ``vf-eval UserLM-Math-v0`` imports it by that id.

verifiers resolves a taskset id to a top-level module (``UserLM-Math-v0`` -> ``userlm_math_v0``)
exporting the taskset, and here also the env that plays it and its default harness.
"""

from userlm_env.integrations.verifiers import ChatHarness, UserLMEnv, UserLMMathTaskset

__all__ = ["ChatHarness", "UserLMEnv", "UserLMMathTaskset"]
