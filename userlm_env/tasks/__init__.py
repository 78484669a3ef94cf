"""Sharded tasks and their sources (procedural, GSM8K, Lost in Conversation).

Task spec strings of both env families are parsed by :func:`parse_task_spec` (the rules are in
:mod:`userlm_env.tasks.spec`) and built by :func:`make_task_source`:

>>> from userlm_env.tasks import make_task_source, parse_task_spec
>>> import numpy as np
>>> task = make_task_source("procedural").sample(np.random.default_rng(0))
>>> task.shards[0].shard_id
1
>>> parse_task_spec("procedural", family="code")
TaskSpec(family='code', kind='procedural', arg='')
"""

from userlm_env.tasks.gsm8k import gsm8k_gold, load_gsm8k_hub, load_gsm8k_jsonl, shard_gsm8k_question
from userlm_env.tasks.lic import load_lic_json
from userlm_env.tasks.procedural import ProceduralMathTasks
from userlm_env.tasks.source import TaskList, TaskSource, make_task_source
from userlm_env.tasks.spec import DEFAULT_TASK_SPECS, FAMILY_ENV_IDS, TaskSpec, parse_task_spec
from userlm_env.tasks.task import Shard, ShardedTask

__all__ = [
    "DEFAULT_TASK_SPECS",
    "FAMILY_ENV_IDS",
    "ProceduralMathTasks",
    "Shard",
    "ShardedTask",
    "TaskList",
    "TaskSource",
    "TaskSpec",
    "gsm8k_gold",
    "load_gsm8k_hub",
    "load_gsm8k_jsonl",
    "load_lic_json",
    "make_task_source",
    "parse_task_spec",
    "shard_gsm8k_question",
]
