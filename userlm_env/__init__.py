"""userlm_env: Gymnasium environments in which assistant LLMs talk to realistic simulated users.

Importing the package registers the environments, so ``gym.make("UserLM-Math-v0")`` works after
``import userlm_env``; ``gym.make("userlm_env:UserLM-Math-v0")`` imports it for you.
"""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

# Math ---------------------------------------------------------------------------------------
if "UserLM-Math-v0" not in registry:
    register(
        id="UserLM-Math-v0",
        entry_point="userlm_env.envs.math_env:UserLMMathEnv",
        vector_entry_point="userlm_env.envs.math_env:UserLMMathVectorEnv",
        nondeterministic=True,  # the default user is a sampled LM; the replay user is deterministic
    )

# Code ---------------------------------------------------------------------------------------
if "UserLM-Code-v0" not in registry:
    register(
        id="UserLM-Code-v0",
        entry_point="userlm_env.envs.code_env:UserLMCodeEnv",
        vector_entry_point="userlm_env.envs.code_env:UserLMCodeVectorEnv",
        nondeterministic=True,  # the default user is a sampled LM; the replay user is deterministic
    )

from userlm_env.envs import (  # noqa: E402
    UserLMCodeEnv,
    UserLMCodeVectorEnv,
    UserLMMathEnv,
    UserLMMathVectorEnv,
    make_unwrapped_env,
)

__all__ = [
    "UserLMCodeEnv",
    "UserLMCodeVectorEnv",
    "UserLMMathEnv",
    "UserLMMathVectorEnv",
    "__version__",
    "make_unwrapped_env",
]
