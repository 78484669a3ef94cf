"""The one batched episode driver (userlm_env/driver.py) behind the vector env, rollouts and training.

What is checked: an episode's tokens depend only on its seeds (vector env == single envs, batch size 1 ==
batch size 4, training episodes == rollout episodes); one user call per round carrying every pending
request (openings of refilled slots included); slots refill in the round their episode ends; the error
policy (a user BackendError truncates that call's episodes, any other exception ends only its episode);
the cost fields of episodes, summaries and training steps.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from agents import make_assistant
from agents.base import Assistant
from userlm_env.backends.errors import ServerUnavailableError
from userlm_env.backends.transformers_backend import SamplingParams
from userlm_env.cli import app
from userlm_env.driver import COST_FIELDS, EpisodeDriver, EpisodeSpec, Move
from userlm_env.envs.math_env import UserLMMathEnv, UserLMMathVectorEnv
from userlm_env.rollout import run_episodes, summarize
from userlm_env.users import UserLMConfig, UserSimulator, make_user

SEEDS = list(range(7))
# record fields that depend only on the episode's seeds (not on batching, timing or cost)
STABLE = (
    "episode_key", "seed", "task_id", "num_shards", "opening_shards", "transcript", "steps", "return", "score",
    "turns", "shards_revealed", "end_reason", "terminated", "truncated", "component_totals", "error",
)  # fmt: skip
REPLIES = ("Could you tell me more?", "What else should I know?", "The answer is 12.")


class CountingUser(UserSimulator):
    """Wraps a user: records every ``respond_batch`` call (its requests, its turns) in ``calls``."""

    def __init__(self, inner: UserSimulator, events: list | None = None):
        self.inner, self.name = inner, inner.name
        self.backend = getattr(inner, "backend", None)  # so the driver still reads the token counts
        self.calls: list[list] = []
        self.turns: list = []
        self.events = events if events is not None else []

    def respond_batch(self, requests):
        self.calls.append(list(requests))
        self.events.append(("user", list(requests)))
        turns = self.inner.respond_batch(requests)
        self.turns += turns
        return turns


class FailingUser(CountingUser):
    """A counting replay user whose ``fail_on``-th call raises ``error`` (1-based)."""

    def __init__(self, fail_on: int, error: Exception):
        super().__init__(make_user("replay"))
        self.fail_on, self.error, self.failed = fail_on, error, []

    def respond_batch(self, requests):
        if len(self.calls) + 1 == self.fail_on:
            self.calls.append(list(requests))
            self.failed = [r.task.task_id for r in requests]
            raise self.error
        return super().respond_batch(requests)


class SeededScript(Assistant):
    """Replies ``REPLIES[seed % 3]``: a deterministic policy whose transcripts show its seeds."""

    name = "seeded-script"

    def act_batch(self, conversations, seeds, infos):
        return [REPLIES[s % len(REPLIES)] for s in seeds]


class TracingOracle(Assistant):
    """The scripted oracle, recording each batched call in ``events``."""

    needs_oracle = True

    def __init__(self, events: list):
        self.inner, self.events = make_assistant("scripted:oracle"), events

    def act_batch(self, conversations, seeds, infos):
        self.events.append(("policy", [dict(i) for i in infos]))
        return self.inner.act_batch(conversations, seeds, infos)


def env_factory(user, **kwargs):
    """``make_env`` sharing one user object (what the CLI, evaluation and training do)."""
    kwargs = {"tasks": "procedural", "max_turns": 8, **kwargs}
    return lambda: UserLMMathEnv(user=user, **kwargs)


def stable(records):
    return {r["seed"]: {k: r[k] for k in STABLE} for r in records}


@pytest.fixture(scope="module")
def lm_user(tiny_userlm_untrained):
    """A tiny untrained UserLM (random but seeded turns, guardrail resamples) with short turns."""
    config = UserLMConfig(sampling=SamplingParams(max_new_tokens=10, temperature=1.0, top_p=1.0), min_words=2)
    return make_user(f"userlm:{tiny_userlm_untrained}", config=config)


# --------------------------------------------------------------------------- equivalence


def _action(obs) -> str:
    """A deterministic reply from the observation only: ask twice, then answer."""
    return "The answer is 12." if len(obs) >= 5 else "Could you tell me more?"


def _sub_info(info: dict, i: int | None = None) -> tuple:
    keys = ("task_id", "turn", "score", "end_reason", "shards_revealed", "new_shards", "user_ended")
    values = [info.get(k) for k in keys] if i is None else [info[k][i] if info[f"_{k}"][i] else None for k in keys]
    return tuple(json.dumps(v, sort_keys=True, default=lambda o: o.item()) for v in values)  # numpy scalars


@pytest.mark.parametrize("which", ["replay", "lm"])
def test_vector_env_equals_single_envs(which, request):
    """Sub-env i of a 3-env vector env replays a single env reset with seed + i, autoresets included."""
    user = make_user("replay") if which == "replay" else request.getfixturevalue("lm_user")
    counting = CountingUser(user)
    kwargs = {"tasks": "procedural", "max_turns": 4}
    venv = UserLMMathVectorEnv(num_envs=3, user=counting, **kwargs)
    steps = 10
    obs, infos = venv.reset(seed=21)
    vec = [[(obs[i], _sub_info(infos, i))] for i in range(3)]
    assert [len(c) for c in counting.calls] == [3]  # the openings in one call
    autoreset = np.zeros(3, dtype=bool)
    for _ in range(steps):
        calls = len(counting.calls)
        obs, rewards, terms, truncs, infos = venv.step([_action(o) for o in obs])
        for i in range(3):
            vec[i].append((obs[i], float(rewards[i]), bool(terms[i]), bool(truncs[i]), _sub_info(infos, i)))
        # at most one user call per step, holding every pending turn: autoreset openings and going-on episodes
        by_user = np.array([infos["end_reason"][i] in ("user_ended", "user_error") for i in range(3)])
        pending = int(autoreset.sum() + (~autoreset & (~terms & ~truncs | by_user)).sum())
        assert [len(c) for c in counting.calls[calls:]] == ([pending] if pending else [])
        autoreset = terms | truncs
    assert venv.driver.stats["user_calls"] == len(counting.calls)
    for i in range(3):
        env = UserLMMathEnv(user=user, **kwargs)
        obs_i, info = env.reset(seed=21 + i)
        single, done = [(obs_i, _sub_info(info))], False
        for _ in range(steps):
            if done:  # next-step autoreset: reward 0, the env's RNG goes on
                obs_i, info = env.reset()
                single.append((obs_i, 0.0, False, False, _sub_info(info)))
                done = False
                continue
            obs_i, reward, term, trunc, info = env.step(_action(obs_i))
            single.append((obs_i, float(reward), term, trunc, _sub_info(info)))
            done = term or trunc
        assert vec[i] == single, f"sub-env {i}"
    ends = [entry[2] or entry[3] for entries in vec for entry in entries[1:]]
    assert sum(ends) >= 3  # episodes ended (and were autoreset) along the way


@pytest.mark.parametrize("which", ["replay", "lm"])
def test_batch_size_does_not_change_episodes(which, request):
    """run_episodes with batch_size 1 and 4 gives the same records (per seed), with an LM user too."""
    user = make_user("replay") if which == "replay" else request.getfixturevalue("lm_user")
    assistant = make_assistant("scripted:oracle" if which == "replay" else "scripted:clarify")
    make_env = env_factory(user, max_turns=8 if which == "replay" else 3)
    one = run_episodes(make_env, assistant, SEEDS, batch_size=1)
    four = run_episodes(make_env, assistant, SEEDS, batch_size=4)
    assert stable(one) == stable(four)
    assert len({json.dumps(r["transcript"]) for r in one}) == len(SEEDS)
    if which == "replay":
        assert len({r["turns"] for r in one}) > 1  # episodes of different lengths


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_chat_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_chat_model)


@pytest.fixture
def scripted_sampler(monkeypatch):
    """Replace the training collector's model call by the SeededScript policy at token level."""
    import training.episodes as episodes_module

    monkeypatch.setattr(episodes_module, "_sample", _script_sampler(lambda seed: REPLIES[seed % len(REPLIES)]))


def test_training_episodes_equal_rollout_episodes(chat_tokenizer, scripted_sampler):
    """collect_episodes (GRPO/PPO) and run_episodes play the same episodes for the same seeds."""
    from training.episodes import collect_episodes

    make_env = env_factory(make_user("replay"), reward="shaped", max_turns=6)
    records = {r["seed"]: r for r in run_episodes(make_env, SeededScript(), SEEDS, batch_size=3)}
    sampling = SamplingParams(max_new_tokens=16, temperature=1.0, top_p=1.0)
    episodes = collect_episodes(None, chat_tokenizer, make_env, SEEDS, SEEDS, sampling=sampling,
                                max_completion_tokens=10_000)  # fmt: skip
    for seed, episode in zip(SEEDS, episodes, strict=True):
        record = records[seed]
        assert episode.transcript == record["transcript"], seed
        assert episode.step_rewards == [s["reward"] for s in record["steps"]]
        assert (episode.turns, episode.score, episode.reward) == (record["turns"], record["score"], record["return"])
    assert len({tuple(m["content"] for m in e.transcript if m["role"] == "assistant") for e in episodes}) > 1
    # control: other policy seeds give other episodes (the comparison above can fail)
    shifted = collect_episodes(None, chat_tokenizer, make_env, SEEDS, [s + 1000 for s in SEEDS], sampling=sampling,
                               max_completion_tokens=10_000)  # fmt: skip
    assert [e.transcript for e in shifted] != [e.transcript for e in episodes]


# --------------------------------------------------------------------------- batching and refill


def test_one_user_call_per_round_with_every_pending_request():
    """Each round: one policy call, then one user call holding every pending turn and the refilled openings."""
    events: list = []
    user = CountingUser(make_user("replay"), events)
    records = run_episodes(env_factory(user), TracingOracle(events), SEEDS, batch_size=3)
    assert sorted(r["seed"] for r in records) == SEEDS and all(r["score"] == 1.0 for r in records)
    assert len({r["task_id"] for r in records}) == len(SEEDS) and len({r["turns"] for r in records}) > 1
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "user" and all(a != b for a, b in zip(kinds, kinds[1:]))  # user, policy, user, policy...
    rounds = [(events[k][1], events[k + 1][1] if k + 1 < len(events) else []) for k in range(1, len(events), 2)]
    openings, finished = len(events[0][1]), 0
    assert openings == 3 and all(r.turn == 0 for r in events[0][1])
    for infos, requests in rounds:
        live = {i["task_id"] for i in infos}
        ended = {i["task_id"] for i in infos if len(i["shards_revealed"]) == i["num_shards"]}  # the oracle answers
        assert len(live) == min(3, len(SEEDS) - finished)  # the batch stays full while episodes are queued
        # every live episode that goes on is in the round's one user call ...
        assert {r.task.task_id for r in requests if r.turn > 0} == live - ended
        # ... with the openings of the episodes that took the slots freed in this very round
        assert sum(r.turn == 0 for r in requests) == min(len(ended), len(SEEDS) - openings)
        finished += len(ended)
        openings += sum(r.turn == 0 for r in requests)
    assert openings == finished == len(SEEDS)
    assert sum(len(requests) for kind, requests in events if kind == "user") == sum(
        r["cost"]["user_requests"] for r in records
    )


def _script_sampler(choose):
    """A stand-in for the training collector's ``_sample``: the reply ``choose(seed)`` as token ids."""

    def sample(model, tokenizer, sequences, seeds, params, stop_id):
        out = []
        for seed in seeds:
            ids = tokenizer.encode(choose(seed), add_special_tokens=False) + [stop_id]
            out.append((ids, [-0.5] * len(ids)))
        return out

    return sample


def test_training_collector_makes_one_user_call_per_round(chat_tokenizer, monkeypatch):
    """G episodes of T turns: T user calls (openings + T - 1 turns), not G x T; GRPO logs the cost."""
    import training.episodes as episodes_module
    from training.episodes import collect_episodes
    from training.rollout_func import cost_metrics, env_reward, make_rollout_func

    monkeypatch.setattr(episodes_module, "_sample", _script_sampler(lambda seed: REPLIES[0]))  # never answers
    user = CountingUser(make_user("replay"))
    make_env = env_factory(user, max_turns=3)
    sampling = SamplingParams(max_new_tokens=16, temperature=1.0, top_p=1.0)
    env_seeds = [5, 5, 5, 9, 9, 9]
    episodes = collect_episodes(None, chat_tokenizer, make_env, env_seeds, [1, 2, 3, 4, 5, 6], sampling=sampling)
    assert [e.turns for e in episodes] == [3] * 6
    assert [len(c) for c in user.calls] == [6, 6, 6]  # openings, then one call per turn (the last reply ends it)
    assert episodes.cost["user_calls"] == 3 and episodes.cost["user_requests"] == 18
    assert episodes.cost["policy_calls"] == 3
    assert all(e.cost["user_calls"] == e.cost["user_requests"] == 3 for e in episodes)

    trainer = SimpleNamespace(
        model=None,
        processing_class=chat_tokenizer,
        state=SimpleNamespace(global_step=0),
        args=SimpleNamespace(temperature=1.0, top_p=1.0),
        accelerator=None,
    )
    out = make_rollout_func(make_env, max_new_tokens=16)([f"env_seed={s}" for s in env_seeds], trainer)
    metrics = cost_metrics(out)
    assert metrics["cost/user_calls"] == 3 and metrics["cost/user_requests"] == 18
    assert metrics["cost/user_seconds"] >= 0 and metrics["cost/policy_seconds"] >= 0
    logged = {}
    columns = {k: v for k, v in out.items() if k.startswith(("cost_", "step_"))}
    env_reward(None, env_reward=out["env_reward"], log_metric=logged.__setitem__, **columns)
    assert logged["cost/user_calls"] == 3 and logged["cost/user_requests"] == 18


def test_driver_round_refills_a_slot_whose_episode_ended_in_the_act():
    """Driver level: an act that ends its episode frees the slot; the refill's opening joins the same call."""
    user = CountingUser(make_user("replay"))
    envs = [UserLMMathEnv(user=user, max_turns=1), UserLMMathEnv(user=user, max_turns=1)]
    driver = EpisodeDriver(envs)
    outcomes = driver.round([Move.start(0, 1), Move.start(1, 2)])
    assert [o.move.reset for o in outcomes] == [True, True] and len(user.calls) == 1
    outcomes = driver.round(
        [Move.act(0, "More?"), Move.act(1, "More?")],
        refill=lambda slot: Move.start(slot, 10 + slot) if slot == 0 else None,
    )
    assert [(o.move.slot, o.move.reset, o.ended) for o in outcomes] == [(0, False, True), (1, False, True),
                                                                        (0, True, False)]  # fmt: skip
    assert len(user.calls) == 2 and [r.turn for r in user.calls[-1]] == [0]  # one call: the refilled opening
    single = UserLMMathEnv(user="replay", max_turns=1)
    assert outcomes[2].obs == single.reset(seed=10)[0]


# --------------------------------------------------------------------------- error policy


@pytest.mark.parametrize("batch_size", [1, 3])
def test_user_backend_error_truncates_only_that_call(batch_size):
    """A BackendError in one user call ends that call's episodes as user_error; the others are unchanged."""
    clean = stable(run_episodes(env_factory(make_user("replay")), make_assistant("scripted:oracle"), SEEDS,
                                batch_size=batch_size))  # fmt: skip
    user = FailingUser(4, ServerUnavailableError("http://127.0.0.1:9/v1: connection refused"))
    records = run_episodes(env_factory(user), make_assistant("scripted:oracle"), SEEDS, batch_size=batch_size)
    failed = {r["seed"] for r in records if r["task_id"] in user.failed}
    assert len(failed) == len(user.failed) >= 1
    for r in records:
        if r["seed"] in failed:
            assert r["end_reason"] == "user_error" and r["truncated"] and not r["error"]
            assert r["turns"] == 0 or "connection refused" in r["steps"][-1]["error"]
        else:
            assert {k: r[k] for k in STABLE} == clean[r["seed"]]


class _JudgeFailsOnOneTask(UserLMMathEnv):
    """The math env, except that judging the final answer of one task raises (a stand-in for a judge bug)."""

    bad_task = None

    def judge_reply(self, reply, task):
        if task.task_id == self.bad_task and "Putting it all together" in reply:
            raise OverflowError("int too large to convert to float")
        return super().judge_reply(reply, task)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_judge_error_ends_only_its_episode(batch_size, monkeypatch):
    """An exception from one episode's judge is that episode's error; the others finish as without it."""
    user = make_user("replay")
    clean = stable(run_episodes(env_factory(user), make_assistant("scripted:oracle"), SEEDS, batch_size=batch_size))
    bad_seed = 2
    monkeypatch.setattr(_JudgeFailsOnOneTask, "bad_task", clean[bad_seed]["task_id"])
    records = run_episodes(lambda: _JudgeFailsOnOneTask(user=user, max_turns=8), make_assistant("scripted:oracle"),
                           SEEDS, batch_size=batch_size)  # fmt: skip
    by_seed = {r["seed"]: r for r in records}
    bad = by_seed.pop(bad_seed)
    assert "OverflowError" in bad["error"] and bad["task_id"] == clean[bad_seed]["task_id"]
    assert bad["turns"] == clean[bad_seed]["turns"] - 1  # the failed step never happened ...
    assert bad["transcript"][-1]["role"] == "user"  # ... and left no dangling assistant message
    assert summarize(records)["errors"] == 1
    for seed, record in by_seed.items():
        assert {k: record[k] for k in STABLE} == clean[seed]


def test_other_user_exception_fails_that_calls_episodes():
    """A user bug (not a BackendError) ends the episodes of its call with the traceback; the run goes on."""
    user = FailingUser(3, RuntimeError("user simulator bug"))
    records = run_episodes(env_factory(user), make_assistant("scripted:oracle"), SEEDS, batch_size=3)
    assert sorted(r["seed"] for r in records) == SEEDS
    errors = [r for r in records if r["error"]]
    assert len(errors) == len(user.failed) >= 1 and all("user simulator bug" in r["error"] for r in errors)
    assert all(r["score"] == 1.0 for r in records if not r["error"])


def test_vector_env_raises_and_rolls_back_where_rollouts_record():
    """errors="raise" (vector env, training) undoes the whole round and re-raises."""
    user = FailingUser(2, RuntimeError("user simulator bug"))
    envs = [UserLMMathEnv(user=user), UserLMMathEnv(user=user)]
    driver = EpisodeDriver(envs, errors="raise")
    driver.round([Move.start(0, 1), Move.start(1, 2)])
    before = [e.episode for e in envs]
    with pytest.raises(RuntimeError, match="user simulator bug"):
        driver.round([Move.act(0, "More?"), Move.act(1, "More?")])
    assert [e.episode for e in envs] == before


# --------------------------------------------------------------------------- cost accounting


def test_cost_fields_replay_user(tmp_path):
    """Per-episode cost: user requests == user turns (opening included), seconds >= 0; summary and CLI table."""
    user = CountingUser(make_user("replay"))
    records = run_episodes(env_factory(user), make_assistant("scripted:oracle"), SEEDS, batch_size=3)
    for r in records:
        cost = r["cost"]
        assert set(cost) == set(COST_FIELDS)
        user_turns = sum(m["role"] == "user" for m in r["transcript"])
        assert cost["user_requests"] == cost["user_calls"] == user_turns
        assert cost["user_seconds"] >= 0 and cost["policy_seconds"] >= 0
        assert cost["user_prompt_tokens"] == cost["user_generated_tokens"] == cost["user_resamples"] == 0
    summary = summarize(records)
    assert summary["cost"]["user_requests"] == pytest.approx(np.mean([r["cost"]["user_requests"] for r in records]))
    assert summary["cost_total"]["user_requests"] == sum(len(c) for c in user.calls)
    out = tmp_path / "r.jsonl"
    args = ["rollout", "--assistant", "scripted:oracle", "--user", "replay", "--episodes", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cost user_requests (mean per episode)" in " ".join(result.output.split())


def test_cost_fields_lm_user(lm_user):
    """With an LM user: tokens > 0, resamples from the user's meta, shares adding up to the backend's counts."""
    user = CountingUser(lm_user)
    stats_before = dict(lm_user.backend.stats)
    records = run_episodes(env_factory(user, max_turns=3), make_assistant("scripted:clarify"), SEEDS[:4],
                           batch_size=2)  # fmt: skip
    prompt = lm_user.backend.stats["prompt_tokens"] - stats_before["prompt_tokens"]
    generated = lm_user.backend.stats["generated_tokens"] - stats_before["generated_tokens"]
    for r in records:
        assert not r["error"]
        assert r["cost"]["user_prompt_tokens"] > 0 and r["cost"]["user_generated_tokens"] > 0
        assert r["cost"]["user_requests"] >= sum(m["role"] == "user" for m in r["transcript"])
        assert r["cost"]["user_seconds"] > 0
    assert sum(r["cost"]["user_prompt_tokens"] for r in records) == pytest.approx(prompt, abs=0.1)
    assert sum(r["cost"]["user_generated_tokens"] for r in records) == pytest.approx(generated, abs=0.1)
    assert sum(r["cost"]["user_requests"] for r in records) == len(user.turns)
    assert sum(r["cost"]["user_resamples"] for r in records) == sum(t.meta["attempts"] - 1 for t in user.turns)


def test_episode_spec_policy_seed_drives_the_reply_seed():
    """LiveEpisode.assistant_seed = derive_seed("assistant-turn", policy seed, turn); policy seed defaults to seed."""
    from userlm_env.seeding import derive_seed

    seen = []

    def policy(episodes):
        seen.extend((e.spec.key, e.turn, e.assistant_seed) for e in episodes)
        return ["More?"] * len(episodes)

    driver = EpisodeDriver([UserLMMathEnv(user="replay", max_turns=2)])
    list(driver.run([EpisodeSpec(3, key="a"), EpisodeSpec(3, policy_seed=8, key="b")], policy))
    assert seen == [
        ("a", 0, derive_seed("assistant-turn", 3, 0)),
        ("a", 1, derive_seed("assistant-turn", 3, 1)),
        ("b", 0, derive_seed("assistant-turn", 8, 0)),
        ("b", 1, derive_seed("assistant-turn", 8, 1)),
    ]


# --------------------------------------------------------------------------- overlap


@pytest.mark.parametrize("which", ["replay", "lm"])
def test_overlap_plays_the_same_episodes(which, request):
    """run(overlap=True): two cohorts in turn, the same records per seed as without overlap."""
    user = make_user("replay") if which == "replay" else request.getfixturevalue("lm_user")
    make_env = env_factory(user, max_turns=8 if which == "replay" else 3)
    assistant = make_assistant("scripted:oracle" if which == "replay" else "scripted:clarify")
    plain = run_episodes(make_env, assistant, SEEDS, batch_size=4)
    overlapped = run_episodes(make_env, assistant, SEEDS, batch_size=4, overlap=True)
    assert stable(plain) == stable(overlapped)
    assert all(not r["error"] for r in overlapped)


class SlowUser(CountingUser):
    """A replay user that takes ``delay`` seconds per request (a one-at-a-time engine) and says when it is busy."""

    def __init__(self, delay: float):
        super().__init__(make_user("replay"))
        self.delay, self.busy = delay, threading.Event()

    def respond_batch(self, requests):
        self.busy.set()
        try:
            time.sleep(self.delay * len(requests))
            return super().respond_batch(requests)
        finally:
            self.busy.clear()


def test_overlap_runs_the_policy_while_the_user_answers():
    """With overlap, one cohort's replies are generated during the other cohort's user call, never the same cohort's."""
    user = SlowUser(0.05)
    seen = []  # (slots of the policy call, user busy at that moment, slots of episodes the user is answering)

    def policy(episodes):
        time.sleep(0.03 * len(episodes))
        seen.append(({e.slot for e in episodes}, user.busy.is_set()))
        return ["Could you tell me more?"] * len(episodes)

    envs = [env_factory(user, max_turns=3)() for _ in range(4)]
    driver = EpisodeDriver(envs)
    specs = [EpisodeSpec(seed) for seed in range(8)]
    done = list(driver.run(specs, policy, overlap=True))
    assert sorted(e.seed for e in done) == list(range(8)) and all(e.error is None for e in done)
    assert all(slots <= {0, 2} or slots <= {1, 3} for slots, _ in seen)  # one cohort per policy call
    assert sum(busy for _, busy in seen) >= len(seen) // 2  # most policy calls ran during a user call
    seen.clear()
    list(EpisodeDriver([env_factory(user, max_turns=3)() for _ in range(4)]).run(specs, policy))
    assert not any(busy for _, busy in seen)  # without overlap the policy never runs during a user call


def test_overlap_with_errors_raise_propagates_a_user_failure():
    user = FailingUser(fail_on=3, error=RuntimeError("user exploded"))
    envs = [env_factory(user, max_turns=4)() for _ in range(2)]
    with pytest.raises(RuntimeError, match="user exploded"):
        list(
            EpisodeDriver(envs, errors="raise").run(
                [EpisodeSpec(s) for s in range(4)], lambda eps: ["Hm?"] * len(eps), overlap=True
            )
        )


def test_training_openings_are_batched_and_equal_single_env_resets(lm_user):
    """play_openings (GRPO's prompt dataset, the tiny policy's data): batched user calls, same observations."""
    from training.rollout_func import opening_observations, play_openings

    counting = CountingUser(lm_user)
    make_env = env_factory(counting, max_turns=3)
    seeds = list(range(40, 47))
    replies = [[REPLIES[k % 3], REPLIES[(k + 1) % 3]] for k in range(len(seeds))]
    histories = play_openings(make_env, seeds, replies, batch=3)
    assert len(counting.calls) <= 3 * 3  # 3 chunks x (opening + 2 replies), whatever the number of seeds per chunk
    env = make_env()
    for seed, reply_list, history in zip(seeds, replies, histories):
        obs, _ = env.reset(seed=seed)
        expected = [obs]
        for reply in reply_list:
            if expected[-1] is not None and not env.episode.done:
                obs, *_ = env.step(reply)
            expected.append(obs)
        assert history == expected, f"seed {seed}"
    assert opening_observations(make_env, seeds) == [h[0] for h in histories]
