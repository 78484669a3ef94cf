#!/usr/bin/env bash
# GRPO with verl on one 8-GPU node: the assistant policy on vLLM (verl's async rollout), whole multi-turn
# episodes played by userlm_env's agent loop against UserLM-8b served on its own vLLM server.
# Documented, not run by the test suite (it needs GPUs, vLLM and the hub); tests/verl_adapter/ checks that every
# verl override below exists in verl's config and that the agent loop works in verl's own worker on CPU.
#
#   pip install -e ".[verl]" "verl[vllm]==0.9.1"        # on the GPU machine (verl's CUDA stack)
#   CUDA_VISIBLE_DEVICES=7 vllm serve microsoft/UserLM-8b --port 8001 &      # the simulated user
#   bash examples/verl/run_grpo_userlm.sh
#
# Env knobs: MODEL (the policy), USER_URL (the UserLM server), DATA (where the parquet files go),
# N_GPUS (GPUs for verl: the user server keeps the 8th), TASKS / VAL_TASKS (task specs: gsm8k, gsm8k:test,
# gsm8k:PATH, lic:PATH, procedural).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
USER_URL=${USER_URL:-http://127.0.0.1:8001/v1}
DATA=${DATA:-$HOME/data/userlm_verl}
N_GPUS=${N_GPUS:-7}
TASKS=${TASKS:-gsm8k}
VAL_TASKS=${VAL_TASKS:-gsm8k:test}
export USERLM_USER="userlm:${USER_URL}?tokenizer=microsoft/UserLM-8b"  # read by agent_loop.yaml (env_defaults)

# 1) The data: one row per episode (env seed). The user comes from agent_loop.yaml, so the rows need no
#    server; --no-render-opening stores a placeholder prompt (the loop resets the env and renders the
#    real opening itself). --task-index-from-seed: row k plays task k of the source (each GSM8K problem
#    once per epoch) rather than a task drawn by its seed.
python -m userlm_env.integrations.verl_data --out "$DATA/train.parquet" --env UserLM-Math-v0 \
    --episodes 7000 --tasks "$TASKS" --reward lic --max-turns 8 --no-render-opening --task-index-from-seed
python -m userlm_env.integrations.verl_data --out "$DATA/val.parquet" --env UserLM-Math-v0 \
    --episodes 256 --tasks "$VAL_TASKS" --reward lic --max-turns 8 --no-render-opening --task-index-from-seed

# 2) GRPO: 16 episodes per env seed; the reward is the env's episode return (the loop's reward_score),
#    every reward component is logged per sample (reward_extra_info).
python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    algorithm.use_kl_in_reward=False \
    data.train_files="$DATA/train.parquet" \
    data.val_files="$DATA/val.parquet" \
    data.train_batch_size=128 \
    data.max_prompt_length=1024 \
    data.max_response_length=4096 \
    data.filter_overlong_prompts=True \
    data.truncation=error \
    data.return_raw_chat=True \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=True \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=128 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8 \
    actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef=0.001 \
    actor_rollout_ref.actor.kl_loss_type=low_var_kl \
    actor_rollout_ref.actor.entropy_coeff=0 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.mode=async \
    actor_rollout_ref.rollout.n=16 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16 \
    actor_rollout_ref.rollout.calculate_log_probs=True \
    actor_rollout_ref.rollout.multi_turn.enable=True \
    actor_rollout_ref.rollout.agent.num_workers=8 \
    actor_rollout_ref.rollout.agent.agent_loop_config_path="$PWD/examples/verl/agent_loop.yaml" \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16 \
    trainer.critic_warmup=0 \
    trainer.logger='["console"]' \
    trainer.project_name=userlm_env \
    trainer.experiment_name=grpo_userlm8b_gsm8k \
    trainer.n_gpus_per_node="$N_GPUS" \
    trainer.nnodes=1 \
    trainer.val_before_train=True \
    trainer.save_freq=50 \
    trainer.test_freq=10 \
    trainer.total_epochs=3 "$@"
