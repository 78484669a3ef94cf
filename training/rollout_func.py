"""Whole multi-turn UserLM episodes as a TRL ``GRPOTrainer`` ``rollout_func``, plus its reward functions.

TRL's contract (TRL 1.16, ``trl/trainer/grpo_trainer.py``, ``GRPOTrainer._generate``; checked against the
installed source and by ``tests/test_grpo.py``):

* ``rollout_func(prompts, trainer) -> dict`` is called once per *generation batch* on each process, in
  place of TRL's own generation. ``prompts`` is this process's slice of the batch, the dataset's
  ``"prompt"`` column as stored (structured chat messages are passed through untouched, no chat
  template is applied). TRL's ``RepeatSampler`` has **already repeated** each dataset row
  ``num_generations`` times, consecutively, so a GRPO group is a run of identical consecutive prompts
  (with ``per_device_train_batch_size=4``, ``num_generations=4``, one process: 4 prompts per call, all
  the same row). The trainer does not duplicate them again: return exactly one completion per prompt.
  On several processes one group may be split across processes (the global batch is cut into
  contiguous per-process slices, process 0 first; verified under ``accelerate launch`` by
  ``tests/test_grpo_multiprocess.py``). The env seed comes from the prompt, so every episode of a group
  replays the same task and user whichever process plays it; the policy seeds come from the episode's
  position in the global batch (:func:`policy_seeds_for`), so they differ inside a group and do not
  depend on how the batch is split.
* Required keys: ``prompt_ids``, ``completion_ids``, ``logprobs`` (lists of per-prompt lists).
  Optional ``env_mask`` (same shape as ``completion_ids``; 1 = token written by the policy, gets loss;
  0 = token written by the environment, here the user's turns and the template around them): TRL
  pops it and uses it as ``tool_mask``, so the loss mask is ``completion_mask * env_mask`` and the
  logged completion length counts only ``env_mask == 1`` tokens.
* Every other key is an *extra field*: value ``i`` of each list is written into input row ``i`` and
  reaches every reward function as a keyword argument (a list over the batch). The dataset's other
  columns reach reward functions too, but **not** the rollout function: it only sees ``prompts``.
* ``logprobs`` (the sampling log-probs) are only used by TRL for vLLM importance-sampling correction;
  the loss recomputes log-probs with the training model, dividing logits by ``args.temperature``, so
  the rollout samples with ``args.temperature`` (and ``args.top_p``) unless told otherwise.

How an episode is recovered from a prompt: the dataset built by :func:`make_prompt_dataset` stores, as
the prompt, the episode's real opening conversation (what the policy sees at turn 1, handy in TRL's
completion logs) whose last message carries an extra ``"env_seed"`` key (chat templates ignore unknown
keys). A plain string prompt ``"env_seed=17"`` works as well. Each group therefore replays the **same
env seed** (same task, same simulated user seed) with **different policy seeds**.

Keys returned besides the required ones (all lists over the batch, one value per episode):
``env_mask``, ``env_reward`` (the episode return under the env's reward config), ``score`` (LiC score:
grade of the last answer attempt), ``turns``, ``policy_tokens``, ``env_seed``, ``policy_seed``,
``truncated_by_length``, ``step_rewards`` (the env's reward of each assistant turn) and ``turn_ids`` (per
completion token, its assistant turn, -1 on env tokens) for turn-level credit (:mod:`training.credit`),
``component_<name>`` for every reward component (episode totals,
unweighted), so reward functions can pay for single components (ablations), ``cost_<field>`` for
every cost field of :data:`userlm_env.driver.COST_FIELDS` (the episode's share of the user's and the
policy's work) and ``step_user_calls`` / ``step_policy_calls`` (the batched calls of the whole
``rollout_func`` call, the same in every row; :func:`cost_metrics` turns them into ``cost/*`` metrics).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from training.credit import turn_ids_of
from training.episodes import EpisodeTokens, collect_episodes
from userlm_env.backends.transformers_backend import SamplingParams
from userlm_env.driver import COST_FIELDS
from userlm_env.envs.math_env import UserLMMathEnv
from userlm_env.rewards import COMPONENTS
from userlm_env.seeding import derive_seeds

RolloutFunc = Callable[[list[Any], Any], dict[str, list]]
_SEED_TEXT = re.compile(r"env_seed\s*=\s*(-?\d+)")


# ---------------------------------------------------------------------------------------------
# Prompts <-> env seeds
# ---------------------------------------------------------------------------------------------


def env_seed_of(prompt: Any) -> int:
    """The env seed a dataset prompt stands for.

    Accepts the chat prompts of :func:`make_prompt_dataset` (the last message with an ``"env_seed"``
    key), a string containing ``env_seed=N``, or a dict with an ``"env_seed"`` key.

    Raises:
        ValueError: the prompt carries no env seed (the message shows the prompt).
    """
    if isinstance(prompt, dict) and prompt.get("env_seed") is not None:
        return int(prompt["env_seed"])
    if isinstance(prompt, (list, tuple)):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("env_seed") is not None:
                return int(message["env_seed"])
    if isinstance(prompt, str):
        match = _SEED_TEXT.search(prompt)
        if match:
            return int(match.group(1))
    raise ValueError(
        f"cannot find the env seed in prompt {prompt!r}: build the dataset with make_prompt_dataset(), "
        "or use prompts like 'env_seed=17'"
    )


def play_openings(
    make_env: Callable[[], UserLMMathEnv],
    env_seeds: Sequence[int],
    replies: Sequence[Sequence[str]] | None = None,
    *,
    batch: int = 32,
) -> list[list[list[dict[str, str]]]]:
    """Observations of each env seed's episode: after its opening, then after each of its replies.

    ``replies[i]`` (optional) are the assistant replies sent to seed ``i``'s episode, one per turn (an
    episode that ends earlier repeats its last observation). Up to ``batch`` episodes at a time go
    through one :class:`~userlm_env.driver.EpisodeDriver`, so each round is one batched user call (an
    LM user answers ``batch`` openings at once, not one by one); the observations equal those of
    ``env.reset(seed)`` / ``env.step(reply)`` on a single env.
    """
    from userlm_env.driver import EpisodeDriver, Move

    seeds = [int(s) for s in env_seeds]
    replies = [list(r) for r in replies] if replies is not None else [[] for _ in seeds]
    if len(replies) != len(seeds):
        raise ValueError(f"replies must align with env_seeds: {len(replies)} for {len(seeds)} seeds")
    envs = [make_env() for _ in range(min(batch, len(seeds)))]
    driver = EpisodeDriver(envs, errors="raise")
    out: list[list[list[dict[str, str]]]] = []
    try:
        for start in range(0, len(seeds), len(envs)):
            chunk = range(start, min(start + len(envs), len(seeds)))
            outcomes = driver.round([Move.start(slot, seeds[i]) for slot, i in enumerate(chunk)])
            history = [[o.obs] for o in outcomes]
            live = [not (o.terminated or o.truncated) for o in outcomes]
            for turn in range(max((len(replies[i]) for i in chunk), default=0)):
                moves = [
                    Move.act(slot, replies[i][turn])
                    for slot, i in enumerate(chunk)
                    if live[slot] and turn < len(replies[i])
                ]
                results = {o.move.slot: o for o in driver.round(moves)} if moves else {}
                for slot, i in enumerate(chunk):
                    outcome = results.get(slot)
                    if outcome is None:
                        if turn < len(replies[i]):
                            history[slot].append(history[slot][-1])
                        continue
                    history[slot].append(outcome.obs)
                    live[slot] = not (outcome.terminated or outcome.truncated)
            out += history
    finally:
        for env in envs:
            env.close()
    return out


def opening_observations(make_env: Callable[[], UserLMMathEnv], env_seeds: Sequence[int]) -> list:
    """``env.reset(seed)``'s observation for every seed, with batched user calls (:func:`play_openings`)."""
    return [history[0] for history in play_openings(make_env, env_seeds)]


def make_prompt_dataset(
    make_env: Callable[[], UserLMMathEnv], env_seeds: Sequence[int], *, system_prompt: str | None = None
):
    """A ``datasets.Dataset`` with one row per env seed for ``GRPOTrainer(train_dataset=...)``.

    Column ``prompt``: the opening conversation of the episode (``env.reset(seed)``'s observation,
    after the optional system prompt), its last message carrying ``"env_seed"``; column ``env_seed``
    (an int, forwarded by TRL to the reward functions). The openings are played in batches
    (:func:`opening_observations`): one batched user call per 32 seeds.
    """
    from datasets import Dataset

    rows = []
    for seed, obs in zip(env_seeds, opening_observations(make_env, env_seeds)):
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": m["role"], "content": m["content"]} for m in obs
        ]
        for m in messages:
            m["env_seed"] = None
        messages[-1]["env_seed"] = int(seed)
        rows.append({"prompt": messages, "env_seed": int(seed)})
    return Dataset.from_list(rows)


# ---------------------------------------------------------------------------------------------
# The rollout function
# ---------------------------------------------------------------------------------------------


def policy_seeds_for(
    base_seed: int, global_step: int, process_index: int, call: int, n: int, num_processes: int = 1
) -> list[int]:
    """``n`` distinct 31-bit policy seeds for process ``process_index``'s slice of the generation batch.

    A pure function of the run seed, the step, the call and each episode's position in the *global* batch
    (process ``k`` holds rows ``k*n .. k*n+n-1``, TRL's layout), not of the rank as such: a generation batch
    plays the same episodes on 1 process x 8 rows as on 2 processes x 4 rows, and the episodes of a group
    that spans two processes get distinct seeds. (The key's constant 0 stands where the process index used to
    be: one-process runs keep their seeds.)
    """
    seeds = derive_seeds(n * num_processes, "grpo-policy", base_seed, global_step, 0, call)
    return seeds[process_index * n : (process_index + 1) * n]


def episodes_to_batch(
    episodes: Sequence[EpisodeTokens],
    env_seeds: Sequence[int],
    policy_seeds: Sequence[int],
    cost: dict[str, float] | None = None,
) -> dict[str, list]:
    """The ``rollout_func`` output dict for a list of episodes (see the module docstring for the keys).

    ``cost`` is the collection's totals (default: ``episodes.cost`` of :func:`collect_episodes`).
    """
    out: dict[str, list] = {
        "prompt_ids": [list(e.prompt_ids) for e in episodes],
        "completion_ids": [list(e.completion_ids) for e in episodes],
        "logprobs": [list(e.logprobs) for e in episodes],
        "env_mask": [list(e.env_mask) for e in episodes],
        "env_reward": [float(e.reward) for e in episodes],
        "score": [float(e.score) for e in episodes],
        "turns": [int(e.turns) for e in episodes],
        "policy_tokens": [int(sum(e.env_mask)) for e in episodes],
        "env_seed": [int(s) for s in env_seeds],
        "policy_seed": [int(s) for s in policy_seeds],
        "truncated_by_length": [bool(e.truncated_by_length) for e in episodes],
        "step_rewards": [[float(r) for r in e.step_rewards] for e in episodes],  # per-turn credit (training.credit)
        "turn_ids": [turn_ids_of(e.env_mask, e.reply_ends) for e in episodes],
    }
    for name in COMPONENTS:
        out[f"component_{name}"] = [float(e.components.get(name, 0.0)) for e in episodes]
    for name in COST_FIELDS:
        out[f"cost_{name}"] = [float(e.cost.get(name, 0.0)) for e in episodes]
    if cost is None:
        cost = getattr(episodes, "cost", None) or {}
    out["step_user_calls"] = [int(cost.get("user_calls", 0))] * len(episodes)
    out["step_policy_calls"] = [int(cost.get("policy_calls", 0))] * len(episodes)
    return out


def cost_metrics(columns: dict[str, Any]) -> dict[str, float]:
    """What a generation batch cost, from the ``rollout_func`` columns: the ``cost/*`` training metrics.

    ``cost/user_calls`` and ``cost/policy_calls`` count batched calls; ``cost/user_requests``,
    ``cost/user_tokens`` (prompt + generated), ``cost/user_resamples``, ``cost/user_seconds`` and
    ``cost/policy_seconds`` sum the episodes' shares (per process). Empty when the columns lack them.
    """
    if "step_user_calls" not in columns:
        return {}

    def total(name: str) -> float:
        return float(sum(columns.get(f"cost_{name}") or []))

    calls = columns["step_user_calls"] or [0]
    policy_calls = columns.get("step_policy_calls") or [0]
    return {
        "cost/user_calls": float(np.mean(calls)),
        "cost/user_requests": total("user_requests"),
        "cost/user_tokens": total("user_prompt_tokens") + total("user_generated_tokens"),
        "cost/user_resamples": total("user_resamples"),
        "cost/user_seconds": total("user_seconds"),
        "cost/policy_calls": float(np.mean(policy_calls)),
        "cost/policy_seconds": total("policy_seconds"),
    }


def make_rollout_func(
    make_env: Callable[[], UserLMMathEnv],
    *,
    max_new_tokens: int = 32,
    max_completion_tokens: int = 512,
    system_prompt: str | None = None,
    sampling: SamplingParams | None = None,
    seed: int = 0,
    on_episodes: Callable[[list[EpisodeTokens], dict[str, list]], None] | None = None,
) -> RolloutFunc:
    """Build ``f(prompts, trainer)`` for ``GRPOTrainer(rollout_func=f)``: whole episodes, one per prompt.

    Args:
        make_env: builds one unwrapped ``UserLMMathEnv`` (its reward config decides ``env_reward``).
        max_new_tokens: the policy's token budget per reply (per turn).
        max_completion_tokens: budget of a whole episode's completion (policy + user tokens); an
            episode that would exceed it stops early (``truncated_by_length``).
        system_prompt: prepended to the policy's view (the env never sees it). Use the same one as
            :func:`make_prompt_dataset` so the logged prompts match what the policy saw.
        sampling: fixed sampling settings; by default ``temperature``/``top_p`` come from the
            trainer's ``args`` at each call (the loss divides logits by ``args.temperature``, so they
            must agree for the policy gradient to be on-policy).
        seed: base of the policy seeds (mixed with global step, call number and position in the global batch).
        on_episodes: optional callback ``(episodes, batch)`` after each call (logging, JSONL dumps).

    Returns:
        The rollout function; see the module docstring for its contract and output keys.
    """
    calls: dict[int, int] = {}

    def rollout_func(prompts: list[Any], trainer) -> dict[str, list]:
        env_seeds = [env_seed_of(p) for p in prompts]
        step = int(getattr(getattr(trainer, "state", None), "global_step", 0) or 0)
        calls[step] = calls.get(step, 0) + 1
        accelerator = getattr(trainer, "accelerator", None)
        process = int(getattr(accelerator, "process_index", 0) or 0)
        processes = int(getattr(accelerator, "num_processes", 1) or 1)
        policy_seeds = policy_seeds_for(seed, step, process, calls[step], len(prompts), processes)
        args = getattr(trainer, "args", None)
        params = sampling or SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=float(getattr(args, "temperature", 1.0) or 1.0),
            top_p=float(getattr(args, "top_p", 1.0) or 1.0),
        )
        tokenizer = trainer.processing_class
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps its tokenizer
        with _generation_model(trainer) as model:
            episodes = collect_episodes(
                model,
                tokenizer,
                make_env,
                env_seeds,
                policy_seeds,
                sampling=params,
                max_completion_tokens=max_completion_tokens,
                system_prompt=system_prompt,
            )
        batch = episodes_to_batch(episodes, env_seeds, policy_seeds)
        if on_episodes is not None:
            on_episodes(episodes, batch)
        return batch

    return rollout_func


@contextlib.contextmanager
def _generation_model(trainer):
    """The trainer's model ready for ``generate`` (DDP/DeepSpeed/FSDP unwrapped), like TRL's own generation."""
    from accelerate import Accelerator

    accelerator = getattr(trainer, "accelerator", None)
    wrapped = getattr(trainer, "model_wrapped", None) or trainer.model
    if not isinstance(accelerator, Accelerator):  # a bare model on a fake trainer (unit tests)
        with torch.no_grad():
            yield trainer.model
        return
    from trl.models.utils import unwrap_model_for_generation

    args = trainer.args
    dist = getattr(trainer, "_dist", None)
    summon = dist.summon_full_params(wrapped, recurse=False) if dist is not None else contextlib.nullcontext()
    with (
        unwrap_model_for_generation(
            wrapped,
            accelerator,
            gather_deepspeed3_params=getattr(args, "ds3_gather_for_generation", True),
            gradient_checkpointing_kwargs=getattr(args, "gradient_checkpointing_kwargs", None),
        ) as model,
        torch.no_grad(),
        summon,
    ):
        yield model


# ---------------------------------------------------------------------------------------------
# Reward functions (TRL signature: f(prompts, completions, completion_ids, **columns) -> list[float])
# ---------------------------------------------------------------------------------------------


def env_reward(completions, env_reward=None, score=None, turns=None, log_metric=None, **kwargs) -> list[float]:
    """GRPO reward = the env's episode return (already weighted by the env's ``RewardConfig``).

    Also logs ``episode/score`` and ``episode/turns`` (and each ``component_*`` mean), and what the
    generation batch cost (:func:`cost_metrics`: ``cost/user_calls``, ``cost/user_requests``,
    ``cost/user_tokens``, ``cost/user_seconds``, ``cost/policy_seconds``, ...) through TRL's
    ``log_metric`` hook when the trainer provides it.
    """
    if env_reward is None:
        raise ValueError(
            "env_reward missing from the reward kwargs: use make_rollout_func() as the trainer's rollout_func"
        )
    if log_metric is not None:
        if score is not None:
            log_metric("episode/score", float(np.mean(score)))
        if turns is not None:
            log_metric("episode/turns", float(np.mean(turns)))
        for key, values in kwargs.items():
            if key.startswith("component_") and isinstance(values, list) and values:
                log_metric(f"episode/{key}", float(np.mean(values)))
        for key, value in cost_metrics(kwargs).items():
            log_metric(key, value)
    return [float(r) for r in env_reward]


def component_reward(name: str, weight: float = 1.0) -> Callable[..., list[float]]:
    """A reward function paying ``weight`` x one component's episode total (``name`` in ``COMPONENTS``).

    Use several with ``GRPOConfig(reward_weights=...)`` to reweight components without touching the
    env; with weight 0 in ``reward_weights`` it only logs (``rewards/<name>/mean``).
    """
    if name not in COMPONENTS:
        raise ValueError(f"unknown reward component {name!r}; components: {list(COMPONENTS)}")
    key = f"component_{name}"

    def reward(completions, **kwargs) -> list[float]:
        if key not in kwargs:
            raise ValueError(
                f"{key} missing from the reward kwargs: use make_rollout_func() as the trainer's rollout_func"
            )
        return [weight * float(v) for v in kwargs[key]]

    reward.__name__ = name
    return reward
