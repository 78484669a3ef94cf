# docs: training/README.md ("Turn-level credit")
"""Turn-level credit assignment for GRPO: per-turn advantages from the env's per-turn rewards.

The env pays a reward at every assistant turn (``userlm_env.rewards``: e.g. +1 for a question while shards
are hidden, -1 for a premature wrong answer, the correctness score at the last turn). TRL's GRPO credits the
*episode return* to every token of the episode. The estimators below give each assistant turn its own
advantage; :func:`token_advantages` spreads them over the turn's tokens (the env's tokens get 0, and the
loss masks them anyway). Pure numpy/torch, no TRL: ``training/grpo.py`` plugs them into ``GRPOTrainer``.

Notation, for one GRPO group of ``G`` episodes of the same env seed: episode ``i`` has ``T_i`` assistant
turns (the policy decides ``T_i``: an episode ends at the first correct answer, when the user ends it, or at
``max_turns``), step rewards ``r_{i,0..T_i-1}``, return-to-go (discount ``gamma`` per assistant turn)

    G_{i,t} = sum_{k=t}^{T_i-1} gamma^(k-t) r_{i,k}          (G_{i,0} = the discounted episode return R_i)

``credit=`` (advantage ``A_{i,t}`` of every policy token of turn ``t`` of episode ``i``):

* ``episode`` (GRPO, TRL's own): ``A_{i,t} = R_i - mean_j R_j`` for every turn ``t``.
* ``return_to_go``: ``A_{i,t} = G_{i,t} - mean_{j != i} R_j`` (reward-to-go with the leave-one-out group
  mean of the episode returns as baseline, RLOO-style). A turn is no longer credited with the rewards of
  earlier turns, but every turn of an episode is compared with the same whole-episode baseline.
* ``turn_baseline``: ``A_{i,t} = G_{i,t} - b_{i,t}`` with the per-turn-index leave-one-out baseline

      b_{i,t} = mean_{j in N_{i,t}} G_{j,t},   N_{i,t} = {j != i : T_j > t}  (the group's *other* episodes
                                                                            that reached turn t)

  and ``b_{i,t} = 0`` when no other episode reached turn ``t``.

Why ``turn_baseline`` is unbiased even though the policy decides how many turns an episode lasts: the policy
gradient is ``E[sum_t grad log pi(a_{i,t} | s_{i,t}) G_{i,t}]`` summed over the turns the episode actually
reaches (a random, policy-dependent set: that is already inside the expectation, nothing to correct). A
baseline ``b`` may be subtracted from turn ``t``'s return without bias iff ``E[grad log pi(a_{i,t}|s_{i,t})
b | s_{i,t}] = 0``, which holds whenever ``b`` does not depend on ``a_{i,t}`` (then ``b`` comes out of the
conditional expectation and ``E[grad log pi] = grad sum_a pi = 0``). ``b_{i,t}`` is computed only from the
other episodes of the group, which are sampled independently of episode ``i`` given the shared env seed:
neither their returns nor *which of them reached turn t* depend on ``a_{i,t}`` (nor on how long episode ``i``
lasts). Hence every term is unbiased, for every ``t`` and any length distribution; the fallback ``b = 0``
is trivially unbiased too. What would *not* be: including episode ``i`` itself in the mean (``b`` then
contains ``G_{i,t}``, which depends on ``a_{i,t}``: the estimate shrinks by ``1 - 1/n_t`` with ``n_t`` the
number of episodes at turn ``t``, a state-dependent reweighting that zeroes the signal when ``n_t = 1``), or a
baseline pooled over all turns of the group (it contains this episode's own later turns, whose number is
decided by its actions). ``return_to_go``'s baseline is unbiased for the same reason (other episodes only);
``turn_baseline`` is the lower-variance one when the return-to-go shrinks or grows with the turn index
(per-turn rewards of one sign), because ``b_{i,t}`` tracks ``E[G_t | episode alive at t]``.

Scaling (``scale="group" | "batch" | "none"``, TRL's ``scale_rewards``): the advantages of a group (or of the
whole batch) are divided by the standard deviation of their pooled per-turn values (+1e-4, as TRL). Like
GRPO's own std scaling this is a per-group step size, not part of the estimator: ``none`` (Dr. GRPO) keeps
the estimate exactly unbiased.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

CREDIT_MODES = ("episode", "return_to_go", "turn_baseline")
SCALES = ("group", "batch", "none")
EPS = 1e-4  # TRL's epsilon in (r - mean) / (std + eps)


def check_credit(credit: str, gamma: float = 1.0, scale: str = "none") -> None:
    """Raise ``ValueError`` naming the valid choices when a credit setting is wrong."""
    if credit not in CREDIT_MODES:
        raise ValueError(f"unknown credit {credit!r}; choose one of {list(CREDIT_MODES)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma={gamma} must be in [0, 1]")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {list(SCALES)}")


def returns_to_go(step_rewards: Sequence[float], gamma: float = 1.0) -> np.ndarray:
    """``G_t = sum_{k >= t} gamma^(k-t) r_k`` for every turn ``t`` (empty for an episode without turns)."""
    out = np.zeros(len(step_rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(step_rewards) - 1, -1, -1):
        running = float(step_rewards[t]) + gamma * running
        out[t] = running
    return out


def group_turn_advantages(step_rewards: Sequence[Sequence[float]], credit: str, gamma: float = 1.0) -> list[np.ndarray]:
    """Unscaled per-turn advantages of the episodes of **one** group (see the module docstring for formulas).

    Args:
        step_rewards: per episode of the group, the env's reward of each assistant turn.
        credit: ``episode``, ``return_to_go`` or ``turn_baseline``.
        gamma: discount per assistant turn.

    Returns:
        One array per episode, one advantage per turn.
    """
    check_credit(credit, gamma)
    rtg = [returns_to_go(r, gamma) for r in step_rewards]
    n = len(rtg)
    first = np.array([g[0] if len(g) else 0.0 for g in rtg])  # R_i = G_{i,0} (0 for an episode without turns)
    if credit == "episode":
        mean = first.mean() if n else 0.0
        return [np.full(len(g), first[i] - mean) for i, g in enumerate(rtg)]
    if credit == "return_to_go":
        loo = [(first.sum() - first[i]) / (n - 1) if n > 1 else 0.0 for i in range(n)]
        return [g - loo[i] for i, g in enumerate(rtg)]
    out = []
    for i, g in enumerate(rtg):
        adv = np.empty(len(g))
        for t in range(len(g)):
            others = [rtg[j][t] for j in range(n) if j != i and len(rtg[j]) > t]
            adv[t] = g[t] - (float(np.mean(others)) if others else 0.0)
        out.append(adv)
    return out


def _std(values: list[np.ndarray]) -> float:
    flat = np.concatenate(values) if values else np.zeros(0)
    return float(flat.std(ddof=1)) if flat.size > 1 else 0.0


def turn_advantages(
    step_rewards: Sequence[Sequence[float]],
    num_generations: int,
    credit: str,
    *,
    gamma: float = 1.0,
    scale: str = "group",
) -> list[np.ndarray]:
    """Per-turn advantages of a whole batch whose groups are ``num_generations`` consecutive episodes.

    This is the layout of TRL's generation batch *gathered over all processes* (process 0's rows, then
    process 1's, ...; a group may span two processes): call it on the gathered batch, then slice.

    Args:
        step_rewards: per episode, the env's reward of each assistant turn.
        num_generations: episodes per group.
        credit: see :data:`CREDIT_MODES`.
        gamma: discount per assistant turn.
        scale: ``group`` (divide each group by the std of its pooled per-turn advantages + 1e-4), ``batch``
            (the same with the std over the batch) or ``none``.

    Raises:
        ValueError: the batch is not a whole number of groups, or an unknown mode.
    """
    check_credit(credit, gamma, scale)
    if num_generations < 1 or len(step_rewards) % num_generations:
        raise ValueError(f"{len(step_rewards)} episodes are not a whole number of groups of {num_generations}")
    out: list[np.ndarray] = []
    for start in range(0, len(step_rewards), num_generations):
        group = group_turn_advantages(step_rewards[start : start + num_generations], credit, gamma)
        if scale == "group":
            std = _std(group)
            group = [a / (std + EPS) for a in group]
        out += group
    if scale == "batch":
        std = _std(out)
        out = [a / (std + EPS) for a in out]
    return out


def turn_ids_of(env_mask: Sequence[int], reply_ends: Sequence[int]) -> list[int]:
    """The assistant turn (0-based) of each completion token; -1 on the environment's tokens (``env_mask`` 0).

    ``reply_ends[t]`` is the index of the last policy token of turn ``t`` (``EpisodeTokens.reply_ends``).
    """
    ids, turn = [], 0
    for pos, m in enumerate(env_mask):
        while turn < len(reply_ends) and pos > reply_ends[turn]:
            turn += 1
        ids.append(turn if m else -1)
    return ids


def token_advantages(
    turn_advs: Sequence[Sequence[float]], turn_ids: Sequence[Sequence[int]], width: int
) -> torch.Tensor:
    """A ``(batch, width)`` tensor: each token gets its turn's advantage; env tokens (-1) and padding get 0.

    Raises:
        ValueError: a token names a turn the episode does not have.
    """
    out = torch.zeros(len(turn_ids), width, dtype=torch.float32)
    for row, (advs, ids) in enumerate(zip(turn_advs, turn_ids, strict=True)):
        index = torch.as_tensor(list(ids)[:width], dtype=torch.long)
        if index.numel() and int(index.max()) >= len(advs):
            raise ValueError(f"row {row}: token of turn {int(index.max())} but only {len(advs)} turn advantages")
        values = torch.as_tensor(np.asarray(advs, dtype=np.float32))
        policy = index >= 0
        out[row, : index.numel()][policy] = values[index[policy]]
    return out
