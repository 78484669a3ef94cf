"""Environment classes."""

from userlm_env.envs.math_env import UserLMMathEnv

__all__ = ["UserLMMathEnv"]
