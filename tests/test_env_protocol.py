"""The UserLM-Math-v0 protocol: registration, reset/step, shard order, episode end, errors, info.

All episodes here use the deterministic shard-replay user, so every expectation is exact.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest
from conftest import EGGS_TASK
from gymnasium.error import ResetNeeded

import userlm_env
from agents import make_assistant
from userlm_env import UserLMMathEnv
from userlm_env.backends import ModelLoadError
from userlm_env.rewards import COMPONENTS
from userlm_env.shard_detection import numbers_in
from userlm_env.users import UserSimulator, UserTurn
from userlm_env.users.replay import ALL_REVEALED_MESSAGES

ENV_ID = "UserLM-Math-v0"
ASK = "Could you tell me more?"
REQUIRED_INFO_KEYS = {
    "task_id",
    "turn",
    "reward_components",
    "answer_attempt",
    "extracted_answer",
    "correct",
    "shards_revealed",
    "user_ended",
}
FAMILIES = ["procedural", "lic", "gsm8k"]


def make(tasks="procedural", **kwargs):
    """``gym.make`` of the env with the replay user."""
    return gym.make(ENV_ID, user="replay", tasks=tasks, **kwargs)


def task_of(env):
    """The hidden task of the running episode."""
    return env.unwrapped.task


def wrong(task) -> str:
    """A number that is not the task's answer."""
    return str(int(float(task.answer)) + 7)


def answer(value) -> str:
    """An unambiguous answer attempt."""
    return f"The answer is {value}."


def hidden_numbers(task, revealed) -> set[str]:
    """Numbers of still-hidden shards and of the answer that no revealed shard mentions."""
    shown = set().union(*(numbers_in(task.shard(i).text) for i in revealed))
    hidden = set().union(*(numbers_in(s.text) for s in task.shards if s.shard_id not in revealed))
    return (hidden | numbers_in(task.answer)) - shown


def chat_text(obs) -> str:
    """Every message of an observation, joined."""
    return "\n".join(m["content"] for m in obs)


def reveal_all(env, reply: str = ASK):
    """Step with ``reply`` until every shard is revealed; return the last step's tuple."""
    task = task_of(env)
    out = None
    while len(env.unwrapped.episode.revealed) < task.num_shards:
        out = env.step(reply)
        assert not (out[2] or out[3]), "episode ended before all shards were revealed"
    return out


class ScriptedUser(UserSimulator):
    """Says shard 1, then follows a list of turns (a turn None ends the chat silently)."""

    name = "scripted-user"

    def __init__(self, later_turns):
        self.later_turns = list(later_turns)

    def respond_batch(self, requests):
        """Shard 1 first, then the scripted turns."""
        turns = []
        for request in requests:
            if request.turn == 0:
                turns.append(UserTurn(text=request.task.shard(1).text, revealed=(1,)))
            else:
                text = self.later_turns[request.turn - 1]
                turns.append(UserTurn(text="", ended=True) if text is None else UserTurn(text=text))
        return turns


class SilentUser(UserSimulator):
    """Ends the conversation before saying anything."""

    def respond_batch(self, requests):
        """Always end."""
        return [UserTurn(text="", ended=True) for _ in requests]


@pytest.fixture(params=FAMILIES)
def family_tasks(request, task_sources):
    """A task source of each family (procedural, LiC sample, GSM8K)."""
    return task_sources[request.param]


# --------------------------------------------------------------------------- registration


def test_make_after_import():
    """``gym.make("UserLM-Math-v0")`` works once ``userlm_env`` is imported, giving the env class."""
    assert ENV_ID in gym.registry
    env = make()
    assert isinstance(env.unwrapped, UserLMMathEnv)
    assert env.spec.id == ENV_ID
    obs, info = env.reset(seed=0)
    assert obs[-1]["role"] == "user" and info["shards_revealed"] == [1]


def test_module_prefixed_id_in_fresh_process():
    """``gym.make("userlm_env:UserLM-Math-v0")`` works in a process that imported only gymnasium."""
    code = textwrap.dedent(
        """
        import sys
        import gymnasium as gym
        assert "userlm_env" not in sys.modules
        env = gym.make("userlm_env:UserLM-Math-v0", user="replay")
        obs, info = env.reset(seed=0)
        print("OK", type(env.unwrapped).__name__, obs[-1]["role"], info["shards_revealed"])
        """
    )
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK UserLMMathEnv user [1]" in result.stdout


# --------------------------------------------------------------------------- reset / shard order


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reset_obs_is_shard_one_only(family_tasks, seed):
    """After reset the chat is one user message, shard 1, with no number of later shards or the answer."""
    env = make(tasks=family_tasks)
    obs, info = env.reset(seed=seed)
    task = task_of(env)
    assert obs == [{"role": "user", "content": task.shard(1).text}]
    assert env.observation_space.contains(obs)
    assert info["shards_revealed"] == [1] and info["turn"] == 0 and info["task_id"] == task.task_id
    assert not numbers_in(chat_text(obs)) & hidden_numbers(task, [1])
    if task.num_shards > 1:
        assert task.instruction not in chat_text(obs)


@pytest.mark.parametrize("seed", [0, 3])
def test_one_new_shard_per_step_in_order(family_tasks, seed):
    """Each step reveals exactly the next shard, in order, never leaking hidden numbers; then asks for the answer."""
    env = make(tasks=family_tasks, max_turns=40)
    obs, info = env.reset(seed=seed)
    task = task_of(env)
    for k in range(2, task.num_shards + 1):
        obs, reward, terminated, truncated, info = env.step(ASK)
        assert not (terminated or truncated)
        assert info["shards_revealed"] == list(range(1, k + 1))
        assert info["new_shards"] == [k]
        assert obs[-1]["role"] == "user"
        assert task.shard(k).text[1:].rstrip(".?") in obs[-1]["content"]
        assert not numbers_in(chat_text(obs)) & hidden_numbers(task, range(1, k + 1))
    obs, reward, terminated, truncated, info = env.step(ASK)
    assert info["new_shards"] == [] and info["shards_revealed"] == list(range(1, task.num_shards + 1))
    assert obs[-1]["content"] in ALL_REVEALED_MESSAGES
    assert not (terminated or truncated)


def test_obs_is_a_copy():
    """Mutating a returned observation does not change the env's conversation."""
    env = make()
    obs, _ = env.reset(seed=0)
    first = obs[0]["content"]
    obs[0]["content"] = "tampered"
    obs.append({"role": "assistant", "content": "injected"})
    obs, *_ = env.step(ASK)
    assert obs[0]["content"] == first and "injected" not in chat_text(obs)


# --------------------------------------------------------------------------- episode end and score


def test_first_correct_answer_terminates_before_all_shards(family_tasks):
    """A correct answer at turn 1 ends the episode at once (end_reason correct_answer, reward 1)."""
    env = make(tasks=family_tasks)
    env.reset(seed=0)
    task = task_of(env)
    obs, reward, terminated, truncated, info = env.step(answer(task.answer))
    assert terminated and not truncated
    assert info["end_reason"] == "correct_answer"
    assert info["correct"] is True and info["answer_attempt"] is True
    assert reward == 1.0 and info["reward_components"]["correctness"] == 1.0
    if task.num_shards > 1:
        assert len(info["shards_revealed"]) < task.num_shards
    assert obs[-1] == {"role": "assistant", "content": answer(task.answer)}


def test_wrong_answer_after_all_shards_terminates_with_zero(family_tasks):
    """Once every shard is revealed, a wrong answer ends the episode: correct False, reward 0 under lic."""
    env = make(tasks=family_tasks, max_turns=40, reward="lic")
    env.reset(seed=1)
    task = task_of(env)
    reveal_all(env)
    obs, reward, terminated, truncated, info = env.step(answer(wrong(task)))
    assert terminated and not truncated
    assert info["correct"] is False and info["answer_attempt"] is True
    assert info["end_reason"] == "answered_all_shards"
    assert reward == 0.0 and info["score"] == 0.0


def test_premature_wrong_answer_does_not_terminate():
    """A wrong answer while shards are still hidden keeps the chat going and the user reveals the next shard."""
    env = make(tasks="procedural:hard")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(answer(wrong(task_of(env))))
    assert not (terminated or truncated)
    assert info["correct"] is False and info["score"] == 0.0 and reward == 0.0
    assert info["shards_revealed"] == [1, 2]


def test_wrong_then_right_right_is_terminal():
    """A wrong premature answer followed by the right one: the right one ends the episode with reward 1."""
    env = make(tasks="procedural:hard")
    env.reset(seed=2)
    task = task_of(env)
    env.step(answer(wrong(task)))
    obs, reward, terminated, truncated, info = env.step(answer(task.answer))
    assert terminated and info["end_reason"] == "correct_answer"
    assert reward == 1.0 and info["score"] == 1.0


def test_score_is_last_attempt_premature_wrong_then_correct_after_all_shards():
    """Premature wrong answer, clarifications until everything is revealed, then correct: score 1."""
    env = make(tasks="procedural:hard", max_turns=20)
    env.reset(seed=3)
    task = task_of(env)
    env.step(answer(wrong(task)))
    reveal_all(env)
    obs, reward, terminated, truncated, info = env.step(answer(task.answer))
    assert terminated and info["correct"] is True
    assert info["score"] == 1.0 and reward == 1.0


def test_success_claim_after_all_shards_scores_zero():
    """A bare success claim after all shards is an attempt graded wrong: the episode ends with score 0."""
    env = make(max_turns=20)
    env.reset(seed=4)
    reveal_all(env)
    obs, reward, terminated, truncated, info = env.step("I have solved it and my answer is correct.")
    assert terminated and info["answer_attempt"] and info["correct"] is False
    assert reward == 0.0 and info["score"] == 0.0


@pytest.mark.parametrize(
    ("replies", "expected_score"),
    [
        ([ASK, ASK, ASK], 0.0),
        (["WRONG", ASK, ASK], 0.0),
        ([ASK, "WRONG", ASK], 0.0),
    ],
    ids=["no-attempt", "wrong-first", "wrong-middle"],
)
def test_truncation_at_max_turns(replies, expected_score):
    """After max_turns replies without an end, truncated=True, terminated=False, correctness = last attempt grade."""
    env = make(tasks="procedural:hard", max_turns=3)
    with pytest.warns(UserWarning, match="max_turns"):
        env.reset(seed=0)
    task = task_of(env)
    for i, reply in enumerate(replies):
        reply = answer(wrong(task)) if reply == "WRONG" else reply
        obs, reward, terminated, truncated, info = env.step(reply)
        last = i == len(replies) - 1
        assert truncated is last and terminated is False
    assert info["end_reason"] == "max_turns"
    assert info["reward_components"]["correctness"] == expected_score == info["score"]
    assert info["reward_components"]["no_attempt"] == float(all(r == ASK for r in replies))
    assert obs[-1]["role"] == "assistant"  # no user turn after the last reply
    with pytest.raises(ResetNeeded):
        env.step(ASK)


def test_user_ended_terminates():
    """A simulator returning ended=True terminates the episode with end_reason user_ended."""
    env = make_env_with_user(ScriptedUser(["Janet has 16 eggs.", None]))
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(ASK)
    assert not (terminated or truncated) and info["shards_revealed"] == [1, 2]
    obs, reward, terminated, truncated, info = env.step("Thanks, let me think.")
    assert terminated and not truncated
    assert info["user_ended"] is True and info["end_reason"] == "user_ended"
    assert info["reward_components"]["correctness"] == 0.0 and info["reward_components"]["no_attempt"] == 1.0
    assert obs[-1] == {"role": "assistant", "content": "Thanks, let me think."}
    with pytest.raises(ResetNeeded):
        env.step(ASK)


def test_user_ending_before_first_message():
    """A user that ends before saying anything: reset reports user_ended and step needs a new reset."""
    env = make_env_with_user(SilentUser())
    obs, info = env.reset(seed=0)
    assert obs == [] and info["user_ended"] is True and info["end_reason"] == "user_ended"
    with pytest.raises(ResetNeeded):
        env.step(ASK)


def make_env_with_user(user, **kwargs):
    """``gym.make`` with a simulator object on the toy eggs task."""
    return gym.make(ENV_ID, user=user, tasks=[EGGS_TASK], **kwargs)


# --------------------------------------------------------------------------- seeding and options


def transcript(env, seed, replies, options=None):
    """The observations and infos of an episode driven by fixed replies."""
    obs, info = env.reset(seed=seed, options=options)
    out = [(obs, info["shards_revealed"], info["task_id"])]
    for reply in replies:
        obs, reward, terminated, truncated, info = env.step(reply)
        out.append((obs, reward, info["shards_revealed"]))
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize("tasks", ["procedural", "gsm8k"])
def test_same_seed_same_transcript(tasks, gsm8k_source):
    """Two envs with the same seed produce the same episode; different seeds produce different ones."""
    source = gsm8k_source if tasks == "gsm8k" else tasks
    replies = [ASK] * 4 + ["The answer is 5."]
    env_a, env_b = make(tasks=source), make(tasks=source)
    assert transcript(env_a, 11, replies) == transcript(env_b, 11, replies)
    distinct = {str(transcript(env_a, seed, replies)) for seed in range(5)}
    assert len(distinct) == 5


def test_reset_with_same_seed_twice_on_same_env():
    """``env.reset(seed=s)`` twice on one env gives the same task and the same episode."""
    env = make()
    replies = [ASK] * 6
    first = transcript(env, 7, replies)
    transcript(env, 8, replies)  # a different episode in between
    assert transcript(env, 7, replies) == first


def test_user_phrasing_depends_on_seed():
    """With the task pinned, the replay user's follow-up phrasing still varies with the seed."""
    env = make()
    phrasings = {transcript(env, seed, [ASK], options={"task": EGGS_TASK})[1][0][-1]["content"] for seed in range(12)}
    assert len(phrasings) > 1
    assert all("16 eggs" in p for p in phrasings)


def test_options_task_pins_task():
    """``options={"task": task}`` plays exactly that task."""
    env = make()
    obs, info = env.reset(seed=0, options={"task": EGGS_TASK})
    assert info["task_id"] == "toy/eggs" and info["num_shards"] == 3
    assert obs == [{"role": "user", "content": "How many eggs are left?"}]
    with pytest.raises(TypeError):
        env.reset(seed=0, options={"task": "How many eggs?"})


def test_options_task_index(lic_source):
    """``options={"task_index": i}`` picks task i of a finite source; procedural tasks are not indexable."""
    env = make(tasks=lic_source)
    for i in range(len(lic_source)):
        obs, info = env.reset(seed=0, options={"task_index": i})
        assert info["task_id"] == lic_source[i].task_id
        assert obs[0]["content"] == lic_source[i].shard(1).text
    with pytest.raises(TypeError, match="not indexable"):
        make().reset(seed=0, options={"task_index": 0})


# --------------------------------------------------------------------------- errors and odd actions


def test_step_before_reset_raises():
    """step before reset raises ResetNeeded, both on the unwrapped env and through gym.make."""
    with pytest.raises(ResetNeeded):
        UserLMMathEnv(user="replay").step(ASK)
    with pytest.raises(ResetNeeded):
        make().step(ASK)


def test_step_after_end_raises():
    """step after the episode ended raises ResetNeeded until the next reset."""
    env = make()
    env.reset(seed=0)
    *_, terminated, truncated, info = env.step(answer(task_of(env).answer))
    assert terminated
    with pytest.raises(ResetNeeded):
        env.step(ASK)
    with pytest.raises(ResetNeeded):
        env.unwrapped.step(ASK)
    env.reset(seed=1)
    env.step(ASK)


@pytest.mark.parametrize("action", [None, 42, 3.5, b"The answer is 5.", ["The answer is 5."], {"content": "hi"}])
def test_non_str_action_raises_type_error(action):
    """A non-str action raises TypeError and leaves the episode untouched."""
    env = make()
    obs0, _ = env.reset(seed=0)
    with pytest.raises(TypeError):
        env.step(action)
    obs, reward, terminated, truncated, info = env.step(ASK)
    assert info["turn"] == 1 and obs[: len(obs0)] == obs0 and len(obs) == len(obs0) + 2


def test_very_long_reply_is_truncated():
    """A 1,000,000-char reply is cut to max_reply_chars, flagged in info, and the episode goes on."""
    env = make()
    env.reset(seed=0)
    limit = env.unwrapped.max_reply_chars
    obs, reward, terminated, truncated, info = env.step("x" * 1_000_000)
    assert info["reply_truncated"] is True
    assert obs[-2] == {"role": "assistant", "content": "x" * limit}
    assert env.action_space.contains(obs[-2]["content"])
    obs, reward, terminated, truncated, info = env.step(ASK)
    assert info["reply_truncated"] is False


def test_custom_max_reply_chars():
    """max_reply_chars sets the cut; the kept prefix is what gets judged (an answer after the cut is ignored)."""
    env = make(max_reply_chars=50)
    env.reset(seed=0)
    task = task_of(env)
    reply = "a" * 60 + answer(task.answer)
    obs, reward, terminated, truncated, info = env.step(reply)
    assert obs[-2]["content"] == reply[:50] and info["reply_truncated"] is True
    assert not terminated and info["answer_attempt"] is False


@pytest.mark.parametrize("reply", ["", "   \n\t"])
def test_empty_reply_is_missing_and_unrewarded(reply):
    """An empty reply is judged missing: no attempt, no positive reward, and it never ends the episode."""
    env = make(reward="shaped", max_turns=20)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(reply)
    assert info["reply_kind"] == "missing" and info["answer_attempt"] is False and info["correct"] is None
    assert reward <= 0.0 and info["reward_components"]["clarification"] == 0.0
    reveal_all(env)
    obs, reward, terminated, truncated, info = env.step(reply)
    assert not terminated and reward <= 0.0 and info["reply_kind"] == "missing"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"user": "replai"}, "replay"),
        ({"user": "humn"}, "human"),
        ({"user": "gpt-4o"}, "prompted:MODEL"),
        ({"user": "replay", "tasks": "procedurall"}, "procedural"),
        ({"user": "replay", "tasks": "gsm9k:foo"}, "gsm8k"),
        ({"user": "replay", "reward": "shapd"}, "shaped"),
        ({"user": "replay", "reward": "shaped:bogus=1"}, "correctness"),
    ],
)
def test_unknown_specs_raise_helpful_value_error(kwargs, needle):
    """Unknown user/task/reward specs raise ValueError naming the valid choices."""
    with pytest.raises(ValueError) as err:
        gym.make(ENV_ID, **kwargs)
    assert needle in str(err.value)


def test_unloadable_local_model_raises_model_load_error():
    """``user="userlm:/nonexistent/dir"`` raises ModelLoadError pointing at the bundled smollm2-135m."""
    with pytest.raises(ModelLoadError) as err:
        gym.make(ENV_ID, user="userlm:/nonexistent/dir")
    assert "smollm2-135m" in str(err.value)


@pytest.mark.parametrize("spec", ["someorg/UserLM-does-not-exist", "userlm:someorg/no-such-model"])
def test_unloadable_hub_model_offline_raises_model_load_error(spec, monkeypatch):
    """A hub id that cannot be fetched (HF_HUB_OFFLINE=1) raises ModelLoadError mentioning smollm2-135m."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once at import time; mirror it so no network retry happens.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as err:
        gym.make(ENV_ID, user=spec)
    assert "smollm2-135m" in str(err.value)


def test_invalid_constructor_arguments():
    """Bad max_turns or render_mode raise ValueError."""
    with pytest.raises(ValueError, match="max_turns"):
        UserLMMathEnv(user="replay", max_turns=0)
    with pytest.raises(ValueError, match="render_mode"):
        UserLMMathEnv(user="replay", render_mode="rgb_array")


# --------------------------------------------------------------------------- scripted assistants


def play(env, assistant, seed, max_steps=50):
    """Run one episode of a scripted assistant (oracle answer provided); return the last info and total reward."""
    obs, info = env.reset(seed=seed)
    total = 0.0
    for step in range(max_steps):
        extra = {"oracle_answer": task_of(env).answer} if assistant.needs_oracle else {}
        reply = assistant.act(obs, seed=seed * 100 + step, info={**info, **extra})
        obs, reward, terminated, truncated, info = env.step(reply)
        total += reward
        if terminated or truncated:
            return info, total
    raise AssertionError("episode did not end")


class Claimer:
    """Claims success without ever stating a number."""

    needs_oracle = False

    def act(self, obs, seed=0, info=None):
        """A success claim."""
        return "I have solved it and my answer is correct."


@pytest.mark.parametrize("spec", ["scripted:shotgun", "claim"])
def test_reward_hacking_assistants_never_score(spec, family_tasks):
    """Shotgun candidate lists and bare success claims never get correctness 1."""
    assistant = Claimer() if spec == "claim" else make_assistant(spec)
    env = make(tasks=family_tasks, max_turns=10)
    for seed in range(4):
        info, total = play(env, assistant, seed)
        assert info["reward_components"]["correctness"] == 0.0
        assert info["score"] == 0.0 and total == 0.0


@pytest.mark.parametrize(
    ("spec", "end_reason"),
    [
        ("scripted:oracle", "correct_answer"),
        ("scripted:eager-oracle", "correct_answer"),
        ("scripted:clarify", "max_turns"),
    ],
)
def test_scripted_baselines(spec, end_reason, family_tasks):
    """Oracles always score 1 (eager one at turn 1); the clarifier is truncated with score 0."""
    env = make(tasks=family_tasks, max_turns=40)
    for seed in range(3):
        info, total = play(env, make_assistant(spec), seed)
        assert info["end_reason"] == end_reason
        assert total == info["score"] == (0.0 if end_reason == "max_turns" else 1.0)
        if spec == "scripted:eager-oracle":
            assert info["turn"] == 1
        if spec == "scripted:oracle":
            assert info["shards_revealed"] == list(range(1, info["num_shards"] + 1))


# --------------------------------------------------------------------------- render and info


def test_render_ansi_contains_transcript():
    """render() in ansi mode returns text holding every message of the chat and the end marker."""
    env = make(render_mode="ansi")
    env.reset(seed=0)
    task = task_of(env)
    env.step(ASK)
    obs, *_ = env.step(answer(task.answer))
    text = env.render()
    assert isinstance(text, str)
    for message in obs:
        assert message["content"] in text
    assert "correct_answer" in text


def test_render_human_prints(capsys):
    """render_mode="human" prints the chat on every step and render() returns None."""
    env = make(render_mode="human")
    obs, _ = env.reset(seed=0)
    env.step(ASK)
    assert env.render() is None
    printed = capsys.readouterr().out
    assert obs[0]["content"] in printed and ASK in printed


def test_info_keys():
    """info after reset and after each step carries the contract's keys, all components, and consistent values."""
    env = make()
    obs, info = env.reset(seed=0)
    assert REQUIRED_INFO_KEYS <= set(info)
    assert set(info["reward_components"]) == set(COMPONENTS)
    assert info["answer_attempt"] is False and info["correct"] is None and info["user_ended"] is False
    task = task_of(env)
    obs, reward, terminated, truncated, info = env.step(answer(wrong(task)))
    assert REQUIRED_INFO_KEYS <= set(info) and set(info["reward_components"]) == set(COMPONENTS)
    assert info["task_id"] == task.task_id and info["turn"] == 1
    assert info["answer_attempt"] is True and info["extracted_answer"] == wrong(task) and info["correct"] is False
    assert isinstance(info["shards_revealed"], list) and info["user_ended"] is False


def test_version_attribute():
    """The package exposes a version string."""
    assert isinstance(userlm_env.__version__, str) and userlm_env.__version__


def test_render_human_shows_opening_message_at_reset(capsys):
    """render_mode="human" prints the user's opening message during reset, as Gymnasium envs render in reset."""
    env = make(render_mode="human")
    obs, _ = env.reset(seed=0)
    assert obs[0]["content"] in capsys.readouterr().out


class RepeatingRevealUser(UserSimulator):
    """Says shard 1, then reports shard 2 twice and a non-existent shard 9 in one turn (a sloppy simulator)."""

    def respond_batch(self, requests):
        """Shard 1 first, then shard 2 reported twice plus shard 9."""
        return [
            UserTurn(text=r.task.shard(1).text, revealed=(1,))
            if r.turn == 0
            else UserTurn(text=r.task.shard(2).text, revealed=(2, 2, 9))
            for r in requests
        ]


def test_duplicate_revealed_ids_do_not_fake_full_reveal():
    """Duplicate or unknown shard ids count once / not at all: a wrong answer with shard 3 hidden stays premature."""
    env = make_env_with_user(RepeatingRevealUser())
    env.reset(seed=0)
    *_, info = env.step(ASK)
    assert info["shards_revealed"] == [1, 2]
    obs, reward, terminated, truncated, info = env.step(answer(wrong(EGGS_TASK)))
    assert not terminated and info["reward_components"]["premature_answer"] == 1.0
