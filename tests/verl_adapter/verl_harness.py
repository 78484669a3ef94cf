"""Helpers for the verl adapter's tests: verl's real config and ``AgentLoopWorker``, and a server stand-in.

* :func:`verl_config`: verl's default PPO trainer config (its generated ``ppo_trainer.yaml``) for a
  policy at a model path, with an ``agent_loop_config_path`` YAML (:func:`agent_yaml`) naming
  :class:`~userlm_env.integrations.verl.UserLMAgentLoop`;
* :class:`TokenServer`: the stand-in for verl's LLM server client, a real local transformers model that
  returns the token ids it sampled (verl's ``TokenOutput``);
* :class:`Harness`: verl's real ``AgentLoopWorker`` built from that config over a :class:`TokenServer`.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any


class TokenServer:
    """verl's ``LLMServerClient`` stood in by a local transformers model: ``generate`` returns a ``TokenOutput``.

    It samples with the same seeded sampler as ``training.episodes.collect_episodes`` (one sequence at a
    time, no padding), honouring ``max_tokens``, ``temperature``, ``top_p`` and ``seed`` of the
    sampling params (no seed: a fresh one per call), and stops at the tokenizer's eos, which must be
    among ``stop_token_ids``. Generation runs in a thread (one at a time), so the event loop stays free.

    Attributes:
        calls: ``(request_id, prompt_ids, sampling_params)`` of every call.
        outputs: the token ids returned by every call, in order.
    """

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.calls: list[tuple[str, list[int], dict[str, Any]]] = []
        self.outputs: list[list[int]] = []
        self._lock = threading.Lock()

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        self.calls.append((request_id, list(prompt_ids), dict(sampling_params)))
        stop_id = self.tokenizer.eos_token_id
        assert stop_id in sampling_params.get("stop_token_ids", []), sampling_params
        seed = sampling_params.get("seed")
        seed = 1000 + len(self.calls) if seed is None else int(seed)
        ids, logprobs = await asyncio.to_thread(self._sample, list(prompt_ids), seed, sampling_params)
        self.outputs.append(list(ids))
        return TokenOutput(
            token_ids=ids,
            log_probs=logprobs if sampling_params.get("logprobs") else None,
            stop_reason="completed",
        )

    def _sample(self, prompt_ids, seed, sampling_params):
        from training.episodes import _sample
        from userlm_env.backends.transformers_backend import SamplingParams

        params = SamplingParams(
            max_new_tokens=int(sampling_params["max_tokens"]),
            temperature=float(sampling_params.get("temperature", 1.0)),
            top_p=float(sampling_params.get("top_p", 1.0)),
        )
        with self._lock:
            ((ids, logprobs),) = _sample(
                self.model, self.tokenizer, [prompt_ids], [seed], params, self.tokenizer.eos_token_id
            )
        return ids, logprobs


def verl_config(model_path: str | Path, agent_yaml: Path, *, prompt_length: int = 256, response_length: int = 256):
    """verl's default PPO trainer config for a policy at ``model_path``, with our agent loop YAML."""
    import verl
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(verl.__file__).parent / "trainer" / "config" / "_generated_ppo_trainer.yaml")
    cfg.actor_rollout_ref.model.path = str(model_path)
    cfg.actor_rollout_ref.rollout.name = "vllm"  # only names the server kind; nothing is started
    cfg.data.max_prompt_length = prompt_length
    cfg.data.max_response_length = response_length
    cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path = str(agent_yaml)
    return cfg


def agent_yaml(path: Path, **kwargs: Any) -> Path:
    """An ``agent_loop_config_path`` file naming UserLMAgentLoop, with ``kwargs`` as its arguments."""
    import yaml

    entry = {"name": "userlm_agent", "_target_": "userlm_env.integrations.verl.UserLMAgentLoop", **kwargs}
    path.write_text(yaml.safe_dump([entry]))
    return path


class Harness:
    """verl's real ``AgentLoopWorker`` over a :class:`TokenServer`, and ways to feed it dataset rows."""

    def __init__(self, cfg, server: TokenServer):
        from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

        self.cfg = cfg
        self.server = server
        self.worker = AgentLoopWorker(cfg, server)
        self.tokenizer = self.worker.tokenizer

    def dataset(self, parquet: Path):
        """verl's ``RLHFDataset`` over our parquet (what the trainer's dataloader reads)."""
        from verl.utils.dataset.rl_dataset import RLHFDataset

        return RLHFDataset(data_files=[str(parquet)], tokenizer=self.tokenizer, config=self.cfg.data)

    def sampling_params(self) -> dict[str, Any]:
        """The sampling params ``AgentLoopWorker.generate_sequences`` hands every loop (training mode)."""
        rollout = self.cfg.actor_rollout_ref.rollout
        return dict(
            temperature=rollout.temperature,
            top_p=rollout.top_p,
            top_k=rollout.top_k,
            repetition_penalty=1.0,
            logprobs=rollout.calculate_log_probs,
        )

    def make_loop(self):
        """One agent loop, built exactly as ``AgentLoopWorker._run_agent_loop`` builds it (hydra, registry)."""
        import hydra
        from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry

        return hydra.utils.instantiate(
            config=_agent_loop_registry["userlm_agent"],
            trainer_config=DictConfigWrap(config=self.cfg),
            server_manager=self.server,
            tokenizer=self.tokenizer,
            processor=None,
            hf_model_type=None,
            dataset_cls=self.worker.dataset_cls,
            data_config=DictConfigWrap(self.cfg.data),
            tools=ToolListWrap([]),
        )

    async def run_rows(self, rows: list[dict[str, Any]]):
        """Run one loop per dataset row concurrently; their raw ``AgentLoopOutput`` s."""
        loops = [self.make_loop() for _ in rows]
        params = self.sampling_params()
        return await asyncio.gather(*(loop.run(dict(params), **_loop_kwargs(row)) for loop, row in zip(loops, rows)))

    def generate_sequences(self, parquet: Path):
        """The whole verl path: dataset rows -> collate -> DataProto -> ``AgentLoopWorker.generate_sequences``."""
        from verl.protocol import DataProto
        from verl.utils.dataset.rl_dataset import collate_fn

        dataset = self.dataset(parquet)
        batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
        return asyncio.run(self.worker.generate_sequences(batch))


def _loop_kwargs(row: dict[str, Any]) -> dict[str, Any]:
    """What ``AgentLoopWorker`` passes ``run`` for a dataset row: its non-tensor fields, less ``agent_name``."""
    import torch

    return {k: v for k, v in row.items() if k != "agent_name" and not isinstance(v, torch.Tensor)}
