"""verifiers plugin module of UserLM-Code-v0: ``vf-eval UserLM-Code-v0`` imports it by that id.

verifiers resolves a taskset id to a top-level module (``UserLM-Code-v0`` -> ``userlm_code_v0``)
exporting the taskset, and here also the env that plays it and its default harness.
"""

from userlm_env.integrations.verifiers import ChatHarness, UserLMCodeTaskset, UserLMEnv

__all__ = ["ChatHarness", "UserLMCodeTaskset", "UserLMEnv"]
