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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from userlm_env.backends.rendering import encode_marked_text, render_chat_ids, render_marked_text
from userlm_env.backends.transformers_backend import GenerationRequest, SamplingParams, SeededSampler
from userlm_env.envs.base import ShardedChatEnv
from userlm_env.seeding import derive_seed


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


def render_ids(tokenizer, messages: Sequence[dict[str, str]], *, open_turn: bool) -> list[int]:
    """Token ids of ``messages`` under the tokenizer's chat template (contents never become control tokens)."""
    return render_chat_ids(tokenizer, list(messages), add_generation_prompt=open_turn)


def env_turn_ids(
    tokenizer, before: Sequence[dict[str, str]], after: Sequence[dict[str, str]], end_of_reply: str
) -> list[int]:
    """Tokens the environment adds after the policy's reply: the rendering of ``after`` beyond ``before``.

    ``before`` ends with the assistant's reply; the text after that reply's ``end_of_reply`` token
    (e.g. ``<|im_end|>``, which the policy generated itself) up to the next open assistant turn is
    what the env contributes. Control-token strings inside the user's words stay plain text.
    """
    full = render_marked_text(tokenizer, list(after), add_generation_prompt=True)
    prefix = render_marked_text(tokenizer, list(before), add_generation_prompt=False)
    cut = prefix.rfind(end_of_reply)
    if cut < 0 or not full.startswith(prefix[: cut + len(end_of_reply)]):
        raise ValueError(
            "the chat template does not render the conversation as a growing prefix; cannot split env tokens"
        )
    return encode_marked_text(tokenizer, full[cut + len(end_of_reply) :])


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
) -> list[EpisodeTokens]:
    """Play one episode per (env seed, policy seed) pair, all in lockstep, and return their tokens.

    Args:
        model: the policy (a causal LM; put it in eval mode or not, generation runs without grad).
        tokenizer: its tokenizer (a chat template that opens an assistant turn).
        make_env: builds one unwrapped env; called once per episode.
        env_seeds: ``env.reset`` seed of each episode (same seed = same task and user).
        policy_seeds: sampling seed of each episode's policy (GRPO: differs inside a group).
        sampling: the policy's sampling settings (temperature 1 for on-policy RL).
        max_completion_tokens: an episode whose completion would exceed this is cut (no further turns).
        system_prompt: prepended to the policy's view when given (the env never sees it).
    """
    if len(env_seeds) != len(policy_seeds):
        raise ValueError(f"{len(env_seeds)} env seeds but {len(policy_seeds)} policy seeds")
    stop_id = tokenizer.eos_token_id
    end_of_reply = tokenizer.convert_ids_to_tokens(stop_id)
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    envs, episodes, views, observations = [], [], [], []
    for seed in env_seeds:
        env = make_env()
        obs, _ = env.reset(seed=int(seed))
        envs.append(env)
        observations.append(obs)
        views.append(render_ids(tokenizer, head + obs, open_turn=True))
        episodes.append(EpisodeTokens(prompt_ids=list(views[-1]), transcript=obs))
    active = [i for i, env in enumerate(envs) if not env.episode.done]
    turn = 0
    while active:
        sampled = _sample(
            model,
            tokenizer,
            [views[i] for i in active],
            [derive_seed("assistant-turn", int(policy_seeds[i]), turn) for i in active],  # as rollout.py
            sampling,
            stop_id,
        )
        still = []
        for i, (ids, logps) in zip(active, sampled):
            episode = episodes[i]
            mask = [1] * len(ids)
            episode.reply_ends.append(len(episode.completion_ids) + len(ids) - 1)  # last token the policy wrote
            if not ids or ids[-1] != stop_id:  # a reply cut by max_new_tokens: the env closes the turn
                ids, logps, mask = ids + [stop_id], logps + [0.0], mask + [0]
            reply = tokenizer.decode(ids, skip_special_tokens=True).strip()
            episode.completion_ids += ids
            episode.env_mask += mask
            episode.logprobs += logps
            views[i] = views[i] + ids
            before = head + observations[i] + [{"role": "assistant", "content": reply}]
            obs, reward, terminated, truncated, info = envs[i].step(reply)
            episode.reward += reward
            episode.step_rewards.append(float(reward))
            episode.turns += 1
            for name, value in info["reward_components"].items():
                episode.components[name] = episode.components.get(name, 0.0) + value
            episode.score = info["score"]
            episode.transcript = obs
            observations[i] = obs
            if terminated or truncated:
                continue
            env_ids = env_turn_ids(tokenizer, before, head + obs, end_of_reply)
            if len(episode.completion_ids) + len(env_ids) + sampling.max_new_tokens > max_completion_tokens:
                episode.truncated_by_length = True
                continue
            episode.completion_ids += env_ids
            episode.env_mask += [0] * len(env_ids)
            episode.logprobs += [0.0] * len(env_ids)
            views[i] = views[i] + env_ids
            still.append(i)
        active = still
        turn += 1
    return episodes


def episode_summary(episodes: Sequence[EpisodeTokens]) -> dict[str, Any]:
    """Mean reward, score, turns and policy tokens of a batch of episodes (for logs)."""
    n = max(1, len(episodes))
    return {
        "reward": sum(e.reward for e in episodes) / n,
        "score": sum(e.score for e in episodes) / n,
        "turns": sum(e.turns for e in episodes) / n,
        "policy_tokens": sum(sum(e.env_mask) for e in episodes) / n,
    }
