"""Whole multi-turn episodes as token sequences for policy-gradient training.

:func:`collect_episodes` plays episodes of a local transformers *policy* (the assistant) in the
env, in lockstep batches, and keeps the exact token ids the policy saw and wrote:

- ``prompt_ids``: the chat template rendering of the user's opening message, up to the open
  assistant turn;
- ``completion_ids``: everything after it: the policy's replies (``env_mask`` 1, with their
  sampling ``logprobs``) interleaved with the tokens the environment wrote, i.e. each user turn
  and the template's headers around it (``env_mask`` 0, logprob 0.0).

The policy continues from the token ids it actually produced (never a re-tokenization of its own
text), so ``prompt_ids + completion_ids`` is exactly what it conditioned on at every turn; only the
env's tokens are rendered, as the template's text between the end of the reply and the next open
assistant turn. These are the shapes TRL's ``GRPOTrainer`` ``rollout_func`` returns and what the
PPO script trains on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from userlm_env.backends.rendering import env_turn_ids, render_chat_ids
from userlm_env.backends.transformers_backend import GenerationRequest, SamplingParams, SeededSampler
from userlm_env.driver import EpisodeDriver, EpisodeSpec, LiveEpisode
from userlm_env.envs.base import ShardedChatEnv
from userlm_env.metrics import aggregate, episode_metrics


@dataclass
class EpisodeTokens:
    """One episode as token ids, with the mask of the policy's own tokens.

    Attributes:
        prompt_ids: the opening observation rendered with the chat template (assistant turn open).
        completion_ids: policy and environment tokens after the prompt.
        env_mask: 1 for each policy token, 0 for each environment token (aligned with ``completion_ids``).
        logprobs: log-probability of each completion token under the sampling policy (0.0 on env tokens).
        reward: the episode return (sum of the env's step rewards).
        components: per-component totals of the episode (unweighted).
        score: the LiC score (grade of the last answer attempt).
        turns: assistant replies made.
        transcript: the final conversation.
        truncated_by_length: the episode was cut because the completion reached ``max_completion_tokens``.
        step_rewards: the env's reward of each step (one per assistant reply; they sum to ``reward``).
        reply_ends: for each reply, the index in ``completion_ids`` of its last policy token
            (``env_mask`` 1): where a token-level learner (PPO) places that step's reward.
        cost: the episode's share of the user's and the policy's work (:data:`userlm_env.driver.COST_FIELDS`).
    """

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    reward: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    turns: int = 0
    transcript: list[dict[str, str]] = field(default_factory=list)
    truncated_by_length: bool = False
    step_rewards: list[float] = field(default_factory=list)
    reply_ends: list[int] = field(default_factory=list)
    cost: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The episode as a log record with the fields :func:`userlm_env.metrics.episode_metrics` reads."""
        return {
            "return": self.reward,
            "score": self.score,
            "turns": self.turns,
            "policy_tokens": sum(self.env_mask),
            "component_totals": dict(self.components),
            "cost": dict(self.cost),
            "truncated_by_length": self.truncated_by_length,
            "transcript": self.transcript,
        }


def render_ids(tokenizer, messages: Sequence[dict[str, str]], *, open_turn: bool) -> list[int]:
    """Token ids of ``messages`` under the tokenizer's chat template (contents never become control tokens)."""
    return render_chat_ids(tokenizer, list(messages), add_generation_prompt=open_turn)


@torch.no_grad()
def _sample(model, tokenizer, sequences: list[list[int]], seeds: list[int], params: SamplingParams, stop_id: int):
    """One batched, seeded generation from token sequences; returns new ids and their logprobs."""
    from transformers import GenerationConfig, LogitsProcessorList

    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_id
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, seq in enumerate(sequences):
        input_ids[row, width - len(seq) :] = torch.tensor(seq)
        attention[row, width - len(seq) :] = 1
    requests = [GenerationRequest(tuple(s), seed=seed) for s, seed in zip(sequences, seeds)]
    config = GenerationConfig(
        max_new_tokens=params.max_new_tokens,
        do_sample=False,
        eos_token_id=stop_id,
        pad_token_id=pad,
        output_logits=True,
        return_dict_in_generate=True,
    )
    out = model.generate(
        input_ids=input_ids.to(model.device),
        attention_mask=attention.to(model.device),
        generation_config=config,
        logits_processor=LogitsProcessorList([SeededSampler(requests, width, params)]),
    )
    new = out.sequences[:, width:]
    temperature = params.temperature or 1.0
    logits = torch.stack(out.logits, dim=1).float() / temperature  # (batch, steps, vocab): raw model logits
    logps = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    results = []
    for row in range(len(sequences)):
        ids = new[row].tolist()
        end = ids.index(stop_id) + 1 if stop_id in ids else len(ids)
        results.append((ids[:end], logps[row, :end].tolist()))
    return results


class CollectedEpisodes(list):
    """The :class:`EpisodeTokens` of one :func:`collect_episodes` call (a list), plus what the call cost.

    Attributes:
        cost: the call's totals (:attr:`userlm_env.driver.EpisodeDriver.stats`): ``user_calls`` and
            ``policy_calls`` (distinct batched calls), ``user_requests``, ``user_prompt_tokens``,
            ``user_generated_tokens``, ``user_resamples``, ``user_seconds``, ``policy_seconds``.
    """

    cost: dict[str, float]

    def __init__(self, episodes: Iterable[EpisodeTokens] = (), cost: dict[str, float] | None = None):
        super().__init__(episodes)
        self.cost = dict(cost or {})


def collect_episodes(
    model,
    tokenizer,
    make_env: Callable[[], ShardedChatEnv],
    env_seeds: Sequence[int],
    policy_seeds: Sequence[int],
    *,
    sampling: SamplingParams = SamplingParams(max_new_tokens=48, temperature=1.0, top_p=1.0),
    max_completion_tokens: int = 512,
    system_prompt: str | None = None,
) -> CollectedEpisodes:
    """Play one episode per (env seed, policy seed) pair, all in lockstep, and return their tokens.

    The episodes run through :class:`~userlm_env.driver.EpisodeDriver` (``errors="raise"``): each round
    one batched ``generate`` for every live episode's reply and one batched user call for every
    pending user turn (the opening turns are the first round), so a call with G episodes of T turns
    makes about T + 1 user calls, not G x T. The reply of turn ``t`` is sampled with
    ``derive_seed("assistant-turn", policy_seed, t)``, as :func:`userlm_env.rollout.run_episodes` does
    with the env seed: with the same seeds, a training episode is the rollout episode.

    Args:
        model: the policy (a causal LM; put it in eval mode or not, generation runs without grad).
        tokenizer: its tokenizer (a chat template that opens an assistant turn).
        make_env: builds one unwrapped env; called once per episode. Share one user object among the
            envs (``make_env`` closing over it) for one batched user call per round.
        env_seeds: ``env.reset`` seed of each episode (same seed = same task and user).
        policy_seeds: sampling seed of each episode's policy (GRPO: differs inside a group).
        sampling: the policy's sampling settings (temperature 1 for on-policy RL).
        max_completion_tokens: an episode whose completion would exceed this is cut (no further turns).
        system_prompt: prepended to the policy's view when given (the env never sees it).

    Returns:
        The episodes in the order of the seeds, with ``.cost``: what the call cost in all.
    """
    if len(env_seeds) != len(policy_seeds):
        raise ValueError(f"{len(env_seeds)} env seeds but {len(policy_seeds)} policy seeds")
    stop_id = tokenizer.eos_token_id
    end_of_reply = tokenizer.convert_ids_to_tokens(stop_id)
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    tokens: dict[int, EpisodeTokens] = {}  # episode index -> its tokens so far
    views: dict[int, list[int]] = {}  # episode index -> the ids the policy conditions on next

    def start(episode: LiveEpisode) -> EpisodeTokens:
        """The episode's tokens, begun from its opening observation on first use."""
        index = episode.spec.key
        if index not in tokens:
            views[index] = render_ids(tokenizer, head + episode.obs, open_turn=True)
            tokens[index] = EpisodeTokens(prompt_ids=list(views[index]), transcript=episode.obs)
        return tokens[index]

    def policy(live: list[LiveEpisode]) -> list[str]:
        """One batched, seeded generation for every live episode; token ids are kept on the side."""
        for episode in live:
            start(episode)
        sampled = _sample(
            model,
            tokenizer,
            [views[e.spec.key] for e in live],
            [e.assistant_seed for e in live],  # derive_seed("assistant-turn", policy seed, turn), as rollouts
            sampling,
            stop_id,
        )
        replies = []
        for episode, (ids, logps) in zip(live, sampled):
            record = tokens[episode.spec.key]
            mask = [1] * len(ids)
            record.reply_ends.append(len(record.completion_ids) + len(ids) - 1)  # last token the policy wrote
            if not ids or ids[-1] != stop_id:  # a reply cut by max_new_tokens: the env closes the turn
                ids, logps, mask = ids + [stop_id], logps + [0.0], mask + [0]
            reply = tokenizer.decode(ids, skip_special_tokens=True).strip()
            record.completion_ids += ids
            record.env_mask += mask
            record.logprobs += logps
            views[episode.spec.key] += ids
            episode.data["before"] = head + episode.obs + [{"role": "assistant", "content": reply}]
            replies.append(reply)
        return replies

    def on_step(episode: LiveEpisode) -> None:
        """After a step of an episode that goes on: add the env's tokens, or cut it at the token budget."""
        record = tokens[episode.spec.key]
        env_ids = env_turn_ids(tokenizer, episode.data["before"], head + episode.obs, end_of_reply)
        if len(record.completion_ids) + len(env_ids) + sampling.max_new_tokens > max_completion_tokens:
            record.truncated_by_length = True
            episode.stop()
            return
        record.completion_ids += env_ids
        record.env_mask += [0] * len(env_ids)
        record.logprobs += [0.0] * len(env_ids)
        views[episode.spec.key] += env_ids

    specs = [EpisodeSpec(int(e), policy_seed=int(p), key=i) for i, (e, p) in enumerate(zip(env_seeds, policy_seeds))]
    driver = EpisodeDriver([make_env() for _ in specs], errors="raise")
    for episode in driver.run(specs, policy, on_step=on_step):
        record = start(episode)  # an episode over at its reset never reached the policy
        for step in episode.steps:
            record.step_rewards.append(float(step["reward"]))
            for name, value in step["reward_components"].items():
                record.components[name] = record.components.get(name, 0.0) + value
        record.reward = episode.total_reward
        record.turns = len(episode.steps)
        record.score = episode.steps[-1]["score"] if episode.steps else 0.0
        record.transcript = episode.obs
        record.cost = dict(episode.cost)
    return CollectedEpisodes((tokens[i] for i in range(len(specs))), cost=driver.stats)


def episode_summary(episodes: Sequence[EpisodeTokens]) -> dict[str, float]:
    """The :func:`userlm_env.metrics.aggregate` of a batch of episodes (reward, score, turns, policy tokens, ...)."""
    return aggregate(episode_metrics(e.record()) for e in episodes)
