"""Training assistant policies in the userlm_env environments (GRPO, PPO, reward ablations)."""
