"""Default system prompts of model assistants, one per env."""

from __future__ import annotations

MATH_SYSTEM_PROMPT = (
    "You are a helpful math assistant. The user may give the problem in pieces; ask for what is missing. "
    "When you can solve it, end with: The answer is <number>."
)
CODE_SYSTEM_PROMPT = (
    "You are a helpful Python programming assistant. The user may describe the function in pieces; ask for "
    "what is missing. When you can write it, reply with the complete function in one ```python code block."
)
SYSTEM_PROMPTS = {"UserLM-Math-v0": MATH_SYSTEM_PROMPT, "UserLM-Code-v0": CODE_SYSTEM_PROMPT}


def default_system_prompt(env_id: str) -> str:
    """The default assistant system prompt for an env id (``"UserLM-Code-v0"``, ``"code"``, ...)."""
    from userlm_env.envs import resolve_env_id

    return SYSTEM_PROMPTS[resolve_env_id(env_id)]
