"""Sharded tasks and their sources (procedural, GSM8K, Lost in Conversation).

>>> from userlm_env.tasks import make_task_source
>>> import numpy as np
>>> task = make_task_source("procedural").sample(np.random.default_rng(0))
>>> task.shards[0].shard_id
1
"""

from userlm_env.tasks.gsm8k import gsm8k_gold, load_gsm8k_hub, load_gsm8k_jsonl, shard_gsm8k_question
from userlm_env.tasks.lic import load_lic_json
from userlm_env.tasks.procedural import ProceduralMathTasks
from userlm_env.tasks.source import TaskList, TaskSource, make_task_source
from userlm_env.tasks.task import Shard, ShardedTask

__all__ = [
    "ProceduralMathTasks",
    "Shard",
    "ShardedTask",
    "TaskList",
    "TaskSource",
    "gsm8k_gold",
    "load_gsm8k_hub",
    "load_gsm8k_jsonl",
    "load_lic_json",
    "make_task_source",
    "shard_gsm8k_question",
]
