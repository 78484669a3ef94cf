"""Environment classes."""

from userlm_env.envs.math_env import UserLMMathEnv, UserLMMathVectorEnv

__all__ = ["UserLMMathEnv", "UserLMMathVectorEnv"]
