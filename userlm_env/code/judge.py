"""Moved: the code judge is :mod:`userlm_env.judge.code` (this module re-exports it for old imports)."""

from userlm_env.judge.code import EMPTY_CODE_INFO, CodeJudge, CodeJudgement

__all__ = ["EMPTY_CODE_INFO", "CodeJudge", "CodeJudgement"]
