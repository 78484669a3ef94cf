"""verl training data for :class:`userlm_env.integrations.verl.UserLMAgentLoop`: one parquet row per episode.

Needs no verl (only ``datasets``, a core dependency), so the data can be written anywhere. Each row has
verl's columns (``RLHFDataset``):

* ``prompt``: the episode's opening messages (an optional system prompt, then the user's opening turn
  as ``env.reset(seed)`` gives it): what the policy sees at turn 1; verl uses it for length filtering
  and logs, the loop itself resets the env again and renders the same opening;
* ``agent_name``: ``"userlm_agent"``, so verl's agent loop worker runs the episode with the loop;
* ``data_source`` (``"userlm_env/<env id>"``), ``ability`` (``"math"`` / ``"code"``), ``reward_model``
  (``{"style": "userlm_env", "ground_truth": ""}``: the reward is the env's, the answer stays hidden);
* ``extra_info``: ``index``, ``env_id``, ``env_seed`` (the reset seed), ``task_index`` (the task, or
  None: the seed draws it), ``policy_seed`` (None for training; set it to seed the policy's replies),
  ``max_new_tokens`` (per-reply cap, or None) and ``env_kwargs``: the env's constructor arguments
  (``user``, ``tasks``, ``reward``, ``max_turns``, ...) as a JSON string (parquet needs one schema for
  every row, and specs may be strings or dicts).

From the command line::

    python -m userlm_env.integrations.verl_data --out data/train.parquet --env UserLM-Math-v0
        --episodes 1024 --user replay --tasks procedural --reward lic --max-turns 8
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["AGENT_NAME", "main", "verl_rows", "write_verl_dataset"]

AGENT_NAME = "userlm_agent"
"""The agent loop's registered name (``userlm_env.integrations.verl.AGENT_NAME``)."""


def verl_rows(
    env_id: str = "UserLM-Math-v0",
    seeds: Iterable[int] = range(8),
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    task_indices: Sequence[int | None] | None = None,
    policy_seeds: Sequence[int | None] | None = None,
    system_prompt: str | None = None,
    max_new_tokens: int | None = None,
    render_opening: bool = True,
) -> list[dict[str, Any]]:
    """The rows of a verl dataset, one per env seed.

    Args:
        env_id: the env (a registered id, or ``"math"`` / ``"code"``).
        seeds: the ``env.reset`` seed of each episode.
        env_kwargs: the env's constructor arguments, JSON-serialisable (spec strings and dicts).
        task_indices: ``options["task_index"]`` per row (None: the seed draws the task).
        policy_seeds: the policy seed per row (None: the server samples freely; the right choice for
            training, where verl repeats each row ``rollout.n`` times).
        system_prompt: a system message for the policy, first in ``prompt`` (the env never sees it).
        max_new_tokens: per-reply token cap stored in each row (None: the agent loop's).
        render_opening: reset an env per row to store the real opening turn (costs one user turn per
            row); False stores a placeholder (the loop renders the real opening itself either way).

    Raises:
        TypeError: ``env_kwargs`` cannot be written as JSON.
        ValueError: unknown env id, or ``task_indices`` / ``policy_seeds`` of another length than ``seeds``.
    """
    from userlm_env.envs import env_task_family, make_unwrapped_env, resolve_env_id

    env_id = resolve_env_id(env_id)
    seeds = [int(s) for s in seeds]
    kwargs = dict(env_kwargs or {})
    try:
        kwargs_json = json.dumps(kwargs, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"env_kwargs must be JSON-serialisable specs (strings, numbers, dicts): {err}") from None
    for name, values in (("task_indices", task_indices), ("policy_seeds", policy_seeds)):
        if values is not None and len(values) != len(seeds):
            raise ValueError(f"{name} has {len(values)} values for {len(seeds)} seeds")
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    env = make_unwrapped_env(env_id, **kwargs) if render_opening else None
    rows = []
    try:
        for i, seed in enumerate(seeds):
            task_index = None if task_indices is None or task_indices[i] is None else int(task_indices[i])
            policy_seed = None if policy_seeds is None or policy_seeds[i] is None else int(policy_seeds[i])
            if env is not None:
                options = None if task_index is None else {"task_index": task_index}
                obs, _ = env.reset(seed=seed, options=options)
                opening = [{"role": m["role"], "content": m["content"]} for m in obs]
            else:
                opening = [{"role": "user", "content": f"(userlm_env episode, env_seed={seed})"}]
            rows.append(
                {
                    "data_source": f"userlm_env/{env_id}",
                    "agent_name": AGENT_NAME,
                    "prompt": head + opening,
                    "ability": env_task_family(env_id),
                    "reward_model": {"style": "userlm_env", "ground_truth": ""},
                    "extra_info": {
                        "index": i,
                        "env_id": env_id,
                        "env_seed": seed,
                        "task_index": task_index,
                        "policy_seed": policy_seed,
                        "max_new_tokens": None if max_new_tokens is None else int(max_new_tokens),
                        "env_kwargs": kwargs_json,
                    },
                }
            )
    finally:
        if env is not None:
            env.close()
    return rows


def write_verl_dataset(
    path: str | Path, env_id: str = "UserLM-Math-v0", seeds: Iterable[int] = range(8), **kwargs
) -> Path:
    """Write :func:`verl_rows` as a parquet file for verl's ``data.train_files`` / ``data.val_files``; its path."""
    from datasets import Dataset

    rows = verl_rows(env_id, seeds, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(path))
    return path


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: write a verl parquet dataset of userlm_env episodes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="parquet file to write")
    parser.add_argument("--env", default="UserLM-Math-v0", help="env id (or math / code)")
    parser.add_argument("--episodes", type=int, default=256, help="rows (env seeds first-seed .. first-seed+N-1)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--user", default=None, help="user spec (default: the env's)")
    parser.add_argument("--tasks", default=None, help="task spec (default: the env's)")
    parser.add_argument("--reward", default=None, help="reward spec (default: the env's)")
    parser.add_argument("--max-turns", type=int, default=None)
    parser.add_argument("--env-kwargs", default=None, help="more env kwargs as a JSON object")
    parser.add_argument("--system-prompt", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="per-reply token cap stored per row")
    parser.add_argument("--no-render-opening", action="store_true", help="store a placeholder prompt (no env reset)")
    parser.add_argument(
        "--task-index-from-seed",
        action="store_true",
        help="row with seed s plays task s of an indexable source (gsm8k, lic) instead of a task drawn by the seed",
    )
    args = parser.parse_args(argv)
    env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else {}
    for name, value in (("user", args.user), ("tasks", args.tasks), ("reward", args.reward)):
        if value is not None:
            env_kwargs[name] = value
    if args.max_turns is not None:
        env_kwargs["max_turns"] = args.max_turns
    seeds = range(args.first_seed, args.first_seed + args.episodes)
    path = write_verl_dataset(
        args.out,
        args.env,
        seeds,
        task_indices=list(seeds) if args.task_index_from_seed else None,
        env_kwargs=env_kwargs,
        system_prompt=args.system_prompt,
        max_new_tokens=args.max_new_tokens,
        render_opening=not args.no_render_opening,
    )
    print(f"wrote {args.episodes} rows to {path}")
    return path


if __name__ == "__main__":
    main()
