"""UserLM-Math-v0: an assistant solves a math word problem that a simulated user reveals bit by bit."""

from __future__ import annotations

from typing import Any

from userlm_env.envs.base import ShardedChatEnv, ShardedChatVectorEnv
from userlm_env.judge import Judge, Judgement, make_judge
from userlm_env.tasks import DEFAULT_TASK_SPECS, ShardedTask, make_task_source

__all__ = ["UserLMMathEnv", "UserLMMathVectorEnv"]


class UserLMMathEnv(ShardedChatEnv):
    """An assistant solves a math word problem that a simulated user reveals one shard at a time.

    ## Description
    The world is a simulated user (by default `microsoft/UserLM-8b`) who wants a sharded math task
    solved, as in *Lost in Conversation* and *Flipping the Dialogue*. At reset the user opens the
    chat with the task's request (shard 1). Each `step` takes the assistant's reply; the env judges
    it (answer attempt? which answer? correct?), then the user answers: it reveals the next shard,
    asks for the answer, or ends the conversation.

    ## Action Space
    `Reply(max_reply_chars)`: the assistant's reply as a `str` (any Unicode). A reply longer than
    `max_reply_chars` is truncated to that length (`info["reply_truncated"]`) before it is judged and
    added to the chat. An empty reply is judged `missing`: never an answer, never rewarded.
    A non-`str` action raises `TypeError`.

    ## Observation Space
    `Conversation()`: the chat so far as a list of `{"role", "content"}` dicts (OpenAI format, usable
    by `tokenizer.apply_chat_template`), always ending with the user's latest message (except after
    the user ended the chat). The hidden task, its shards and answer are never part of it.

    ## Rewards
    Every step reports all components unweighted in `info["reward_components"]`; the reward is their
    weighted sum under `reward` (see `userlm_env.rewards`):

    | component          | meaning                                                             | `lic` | `shaped` |
    |--------------------|---------------------------------------------------------------------|-------|----------|
    | `correctness`      | last step only: 1 if the last answer attempt is correct (LiC score) | 1     | 1        |
    | `premature_answer` | wrong answer attempt while shards are still hidden                  | 0     | -0.2     |
    | `clarification`    | asks the user while shards are still hidden                         | 0     | 0.05     |
    | `hedge`            | hedges between several candidate answers                            | 0     | -0.2     |
    | `turn`             | 1 per step                                                          | 0     | -0.02    |
    | `length`           | reply words / 100                                                   | 0     | -0.01    |
    | `no_attempt`       | last step only: no answer attempt in the whole episode              | 0     | 0        |

    ## Starting State
    `reset(seed=s)` draws the task from `tasks` and the user's sampling seed from `self.np_random`,
    then asks the user for its opening message. `options={"task": ShardedTask}` or
    `options={"task_index": i}` (finite task sources) pins the task; `options={"max_turns": k}`
    (`k <= max_turns`) shortens this episode's turn limit (the evaluation gives each task its own).

    ## Episode End
    1. Termination: an answer attempt is graded correct (the first correct answer ends the chat).
    2. Termination: every shard was revealed before the assistant's reply and that reply is an answer
       attempt (its grade is the score).
    3. Termination: the user ends the conversation (`<|endconversation|>`, or `/end` for a human);
       `end_reason` `"user_gave_up"` when a profile's patience ran out.
    4. Truncation: `max_turns` assistant replies were made without any of the above.
    5. Truncation: the user's model failed (a `BackendError`: server down, timeouts, garbage answers);
       `info["end_reason"] == "user_error"` and `info["error"]` holds the cause. The run goes on.
    The LiC score (reported as `correctness` on the last step) is the grade of the last answer
    attempt, 0 if there was none. `step` after the episode ended, or before `reset`, raises
    `gymnasium.error.ResetNeeded`.

    ## Arguments
    | argument          | type                                  | default                 | meaning                               |
    |-------------------|---------------------------------------|-------------------------|---------------------------------------|
    | `user`            | spec str or `UserSimulator`           | `"microsoft/UserLM-8b"` | who plays the user (`userlm_env.users`) |
    | `tasks`           | spec str, `TaskSource` or task list   | `"procedural"`          | where tasks come from (`userlm_env.tasks`) |
    | `reward`          | preset, mapping or `RewardConfig`     | `"lic"`                 | component weights                     |
    | `max_turns`       | int                                   | 12                      | assistant replies before truncation   |
    | `judge`           | `"rule"`, `"llm:MODEL"` or a `Judge`  | `"rule"`                | how replies are judged: `judge(reply, task)` |
    | `max_reply_chars` | int                                   | 8000                    | longer replies are truncated          |
    | `user_device`     | str or None                           | None (CUDA if present)  | device of a local user model          |
    | `render_mode`     | `"human"`, `"ansi"` or None           | None                    | `render()` prints / returns the chat  |
    | `reveal`          | `"ordered"`, `"responsive"`, `"on_request"` or None | None (= `"ordered"`) | which shard an env-controlled user reveals (`userlm_env.users.reveal`) |
    | `user_profile`    | preset name or `UserProfile`          | None (= `"lic"`)        | how an env-controlled user behaves (`userlm_env.users.profiles`) |

    >>> import gymnasium as gym, userlm_env
    >>> env = gym.make("UserLM-Math-v0", user="replay", tasks="procedural")
    >>> obs, info = env.reset(seed=0)
    >>> obs[-1]["role"], info["shards_revealed"]
    ('user', [1])
    >>> obs, reward, terminated, truncated, info = env.step("Could you tell me more?")
    >>> info["shards_revealed"]
    [1, 2]

    ## Info
    `task_id`, `turn` (assistant replies so far), `reward_components`, `reply_kind`, `answer_attempt`,
    `extracted_answer`, `correct` (this reply's grade; None if not an attempt), `score` (LiC score so
    far), `shards_revealed`, `num_shards`, `new_shards` (revealed by the latest user turn), `revealed_shard` / `reveal_reason` (env-controlled users:
    which shard and why, `userlm_env.users.reveal.REVEAL_REASONS`), `user_ended`,
    `end_reason`, `reply_truncated`, `judge_reason`, `user_meta`.

    ## Vectorized environment
    `gym.make_vec("UserLM-Math-v0", num_envs=N)` returns a `UserLMMathVectorEnv`: the N sub-envs share
    one user simulator and all their pending user turns (opening turns of resets included) go to it
    in **one batched call** per step. Same seeds give the same episodes as N single envs.
    `vectorization_mode="sync"` gives Gymnasium's `SyncVectorEnv` instead (one user call per sub-env).
    `user_population=[(entry, weight), ...]` (entries: user specs or dicts of env arguments) re-draws each
    sub-env's user at every reset from the reset seed, reported as `info["user_name"]` and
    `info["population_member"]` (see `userlm_env.envs.population`; vector entry point only).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "ansi"], "render_fps": 1}
    judge: Judge

    @classmethod
    def build_shared(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Math task source (``tasks=``) and judge (``judge=``: rule, LLM or any ``Judge``), popped from ``kwargs``."""
        return {
            "tasks": make_task_source(kwargs.pop("tasks", DEFAULT_TASK_SPECS["math"])),
            "judge": make_judge(kwargs.pop("judge", "rule")),
        }

    def judge_reply(self, reply: str, task: ShardedTask) -> Judgement:
        """Classify the reply and grade its answer against the task's gold number (``task.answer``)."""
        return self.judge.judge(reply, task)


class UserLMMathVectorEnv(ShardedChatVectorEnv):
    """N ``UserLMMathEnv`` stepped together, with one batched user call per step (see ``ShardedChatVectorEnv``).

    Args:
        num_envs: number of sub-envs.
        **kwargs: ``UserLMMathEnv`` arguments; the user, task source and judge are built once and shared.
    """

    env_class = UserLMMathEnv
