"""User simulators: replay, make_user specs, UserLM (tiny trained models), prompted (fake backend), human."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import pytest

import userlm_env  # noqa: F401  (registers the env)
from userlm_env.backends import Generation, SamplingParams, TransformersBackend
from userlm_env.shard_detection import fact_is_kept
from userlm_env.tasks import Shard, ShardedTask
from userlm_env.users import (
    HumanUser,
    PromptedUser,
    PromptedUserConfig,
    ReplayUser,
    UserLMConfig,
    UserLMUser,
    UserRequest,
    UserSimulator,
    UserTurn,
    make_user,
)
from userlm_env.users.replay import ALL_REVEALED_MESSAGES
from userlm_env.users.template import END_CONVERSATION, END_HEADER, START_HEADER, userlm_chat_template

FIVE = ShardedTask(
    task_id="toy/five",
    instruction="A box holds 6 cans. We have 7 boxes. We drink 5 cans. We buy 4 more cans. How many cans are there?",
    shards=(
        Shard(1, "How many cans are there?"),
        Shard(2, "A box holds 6 cans."),
        Shard(3, "We have 7 boxes."),
        Shard(4, "We drink 5 cans."),
        Shard(5, "We buy 4 more cans."),
    ),
    answer="41",
)


def request(task, conversation=(), revealed=(), turn=None, seed=0) -> UserRequest:
    """A user request; ``turn`` defaults to the number of user messages so far."""
    conversation = tuple(conversation)
    if turn is None:
        turn = sum(m["role"] == "user" for m in conversation)
    return UserRequest(task=task, conversation=conversation, revealed=tuple(revealed), turn=turn, seed=seed)


def user(text):
    """A user message."""
    return {"role": "user", "content": text}


def assistant(text):
    """An assistant message."""
    return {"role": "assistant", "content": text}


class GenerateSpy:
    """Wraps ``backend.generate`` to record every batch of requests and generations."""

    def __init__(self, backend):
        self.original = backend.generate
        self.calls = []

    def __call__(self, requests, params, stops):
        """Generate and record."""
        generations = self.original(requests, params, stops)
        self.calls.append((list(requests), generations))
        return generations

    @property
    def requests(self):
        """Every generation request, in order."""
        return [r for reqs, _ in self.calls for r in reqs]

    @property
    def generations(self):
        """Every generation, in order."""
        return [g for _, gens in self.calls for g in gens]


def spy_on(backend, monkeypatch) -> GenerateSpy:
    """Install a GenerateSpy on this backend instance."""
    spy = GenerateSpy(backend)
    monkeypatch.setattr(backend, "generate", spy)
    return spy


def backend_for(path) -> TransformersBackend:
    """A transformers backend of a tiny model directory (the model is loaded once per process)."""
    return TransformersBackend.from_spec(str(path))


# --------------------------------------------------------------------------- replay user


def test_replay_opening_is_shard_one_verbatim():
    """Turn 0 of the replay user is shard 1, verbatim, reported as revealing shard 1."""
    turn = ReplayUser().respond(request(FIVE, seed=123))
    assert turn == UserTurn(text="How many cans are there?", revealed=(1,))


def test_replay_phrasing_is_deterministic_per_seed():
    """The same request and seed always give the same phrasing; different seeds give varied phrasings."""
    conversation = [user(FIVE.shard(1).text), assistant("Tell me more?")]
    replay = ReplayUser()
    texts = []
    for seed in range(30):
        req = request(FIVE, conversation, revealed=(1,), seed=seed)
        first, second = replay.respond(req), ReplayUser().respond(req)
        assert first == second
        texts.append(first.text)
    assert len(set(texts)) >= 3


@pytest.mark.parametrize("revealed", [(1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), (1, 3)])
def test_replay_reveals_next_shard(revealed):
    """Each later turn conveys the lowest unrevealed shard, and only that one."""
    nxt = min(set(range(1, 6)) - set(revealed))
    for seed in range(8):
        turn = ReplayUser().respond(request(FIVE, [user("x"), assistant("y")], revealed=revealed, seed=seed))
        assert turn.revealed == (nxt,)
        assert fact_is_kept(FIVE.shard(nxt).text, turn.text)
        assert not turn.ended
        others = [s for s in FIVE.shards if s.shard_id not in (*revealed, nxt)]
        assert not any(fact_is_kept(s.text, turn.text) for s in others)


def test_replay_asks_for_answer_when_all_revealed():
    """With every shard revealed the replay user asks for the answer and reveals nothing."""
    for seed in range(6):
        turn = ReplayUser().respond(request(FIVE, [user("x"), assistant("y")], revealed=(1, 2, 3, 4, 5), seed=seed))
        assert turn.text in ALL_REVEALED_MESSAGES and turn.revealed == () and not turn.ended


def test_replay_plain_says_shards_verbatim():
    """``replay:plain`` says every shard verbatim."""
    plain = make_user("replay:plain")
    for k in range(2, 6):
        turn = plain.respond(request(FIVE, [user("x"), assistant("y")], revealed=range(1, k), seed=k))
        assert turn.text == FIVE.shard(k).text


# --------------------------------------------------------------------------- make_user


def test_make_user_specs():
    """make_user builds replay, replay:plain and human users and returns simulator objects as they are."""
    assert isinstance(make_user("replay"), ReplayUser) and not make_user("replay").plain
    assert make_user("replay:plain").plain
    assert isinstance(make_user("human"), HumanUser)
    replay = ReplayUser()
    assert make_user(replay) is replay


@pytest.mark.parametrize(("spec", "hint"), [("replai", "replay"), ("humna", "human"), ("usrlm:x", "userlm")])
def test_make_user_unknown_spec_hints(spec, hint):
    """An unknown spec raises ValueError with a close-match hint and the list of valid specs."""
    with pytest.raises(ValueError) as err:
        make_user(spec)
    message = str(err.value)
    assert f"Did you mean '{hint}'" in message
    assert "prompted:MODEL" in message and "replay" in message


@pytest.mark.parametrize("spec", [123, b"replay", ["replay"], 1.5])
def test_make_user_non_str_raises_type_error(spec):
    """A spec that is neither a str nor a UserSimulator raises TypeError."""
    with pytest.raises(TypeError):
        make_user(spec)


def test_make_user_model_specs(conversational_userlm, tiny_chat_model):
    """``userlm:PATH``, a path naming a UserLM, and ``prompted:PATH`` build the model users."""
    assert isinstance(make_user(f"userlm:{conversational_userlm}"), UserLMUser)
    assert "userlm" in str(conversational_userlm).lower()
    assert isinstance(make_user(str(conversational_userlm)), UserLMUser)
    assert isinstance(make_user(f"prompted:{tiny_chat_model}"), PromptedUser)


# --------------------------------------------------------------------------- UserLM: template


def test_userlm_uses_tokenizer_own_template(tiny_userlm_sep1, toy, monkeypatch):
    """A tokenizer with a UserLM template renders the prompt itself (its one-newline separator is kept)."""
    backend = backend_for(tiny_userlm_sep1)
    spy = spy_on(backend, monkeypatch)
    simulator = UserLMUser(backend, UserLMConfig(max_attempts=1, sampling=SamplingParams(max_new_tokens=4)))
    assert simulator.chat_template is None
    req = request(toy.task, [user(toy.opening), assistant(toy.ask)], revealed=(1,), seed=3)
    simulator.respond(req)
    prompt = backend.tokenizer.decode(spy.requests[0].prompt_ids)
    expected = backend.tokenizer.apply_chat_template(
        simulator.messages(req), tokenize=False, add_generation_prompt=True
    )
    assert prompt == expected
    assert prompt.endswith(f"{START_HEADER}user{END_HEADER}\n") and not prompt.endswith("\n\n")
    assert f"{START_HEADER}system{END_HEADER}\nYou are a user" in prompt
    for shard in toy.task.shards:  # the whole task is the intent
        assert shard.text in prompt
    assert f"{START_HEADER}assistant{END_HEADER}\n{toy.ask}" in prompt


@pytest.mark.parametrize("separator", ["\n\n", "\n"])
def test_userlm_fallback_template_for_other_tokenizers(tiny_chat_model, toy, separator, monkeypatch):
    """Without a UserLM template the built-in one is used: it opens a user turn with the configured separator."""
    backend = backend_for(tiny_chat_model)
    spy = spy_on(backend, monkeypatch)
    config = UserLMConfig(max_attempts=1, separator=separator, sampling=SamplingParams(max_new_tokens=4))
    simulator = UserLMUser(backend, config)
    assert simulator.chat_template == userlm_chat_template(separator)
    simulator.respond(request(toy.task, [user(toy.opening), assistant(toy.ask)], revealed=(1,)))
    prompt = backend.tokenizer.decode(spy.requests[0].prompt_ids)
    assert prompt.endswith(f"{START_HEADER}user{END_HEADER}{separator}")
    assert f"{START_HEADER}assistant{END_HEADER}{separator}{toy.ask}" in prompt


# --------------------------------------------------------------------------- UserLM: guardrails


def test_banned_first_word_is_never_the_opener(opener_i_userlm, toy, monkeypatch):
    """A model trained to open with "I ...": with "I" banned no turn starts with the "I" token; unbanned it does."""
    backend = backend_for(opener_i_userlm)
    spy = spy_on(backend, monkeypatch)
    free = UserLMUser(backend, UserLMConfig(banned_first_words=(), max_attempts=1))
    banned = UserLMUser(backend, UserLMConfig(banned_first_words=("I",), max_attempts=1))
    i_ids = {backend.tokenizer.encode(w, add_special_tokens=False)[0] for w in ("I", " I")}
    assert set(banned.banned_first) == i_ids and free.banned_first == ()
    seeds = range(5)
    unbanned = free.respond_batch([request(toy.task, seed=s) for s in seeds])
    assert [t.text for t in unbanned] == [toy.opener_i] * len(seeds)
    assert all(g.token_ids[0] in i_ids for g in spy.generations)
    spy.calls.clear()
    turns = banned.respond_batch([request(toy.task, seed=s) for s in seeds])
    assert spy.generations and all(g.token_ids[0] not in i_ids for g in spy.generations)
    assert all(not t.text.startswith("I ") for t in turns)


def test_end_token_ends_turn(conversational_userlm, toy):
    """A model trained to emit <|endconversation|> gives UserTurn.ended True (empty text)."""
    simulator = UserLMUser(backend_for(conversational_userlm))
    conversation = [user(toy.opening), assistant(toy.ask), user(toy.second), assistant(toy.ask)]
    for seed in range(3):
        turn = simulator.respond(request(toy.task, conversation, revealed=(1, 2), seed=seed))
        assert turn.ended is True and turn.text == ""
        assert END_CONVERSATION not in turn.text


def test_end_token_banned_before_min_turns(conversational_userlm, toy, monkeypatch):
    """With min_turns_before_end above the turn index, <|endconversation|> is banned and the turn does not end."""
    backend = backend_for(conversational_userlm)
    spy = spy_on(backend, monkeypatch)
    simulator = UserLMUser(backend, UserLMConfig(min_turns_before_end=5, max_attempts=1))
    conversation = [user(toy.opening), assistant(toy.ask), user(toy.second), assistant(toy.ask)]
    turn = simulator.respond(request(toy.task, conversation, revealed=(1, 2), seed=0))
    assert turn.ended is False
    end_id = backend.token_id(END_CONVERSATION)
    assert all(end_id in r.banned_token_ids for r in spy.requests)
    assert all(end_id not in g.token_ids for g in spy.generations)


def test_userlm_env_episode_ends_when_user_ends(conversational_userlm, toy):
    """In the env, the trained UserLM opens, reveals shard 2 (detected from text), then ends: end_reason user_ended."""
    simulator = UserLMUser(backend_for(conversational_userlm))
    env = gym.make("UserLM-Math-v0", user=simulator, tasks=[toy.task], reward="shaped")
    obs, info = env.reset(seed=0)
    assert obs == [user(toy.opening)]
    assert info["shards_revealed"] == [1] and info["user_meta"]["accepted"] is True
    obs, reward, terminated, truncated, info = env.step(toy.ask)
    assert obs[-1] == user(toy.second)
    assert info["shards_revealed"] == [1, 2] and info["new_shards"] == [2]
    assert not (terminated or truncated)
    obs, reward, terminated, truncated, info = env.step(toy.ask)
    assert terminated and not truncated
    assert info["user_ended"] is True and info["end_reason"] == "user_ended"
    assert obs[-1] == assistant(toy.ask)
    assert info["reward_components"]["no_attempt"] == 1.0


def test_shard_detection_fills_revealed_from_text(conversational_userlm, toy):
    """UserLM turns carry no shard ids; the env detects them from the text (shard 3 never said, never revealed)."""
    simulator = UserLMUser(backend_for(conversational_userlm))
    turn = simulator.respond(request(toy.task, seed=0))
    assert turn.revealed is None and turn.text == toy.opening
    env = gym.make("UserLM-Math-v0", user=simulator, tasks=[toy.task])
    env.reset(seed=5)
    *_, info = env.step(toy.ask)
    assert info["shards_revealed"] == [1, 2] and 3 not in info["shards_revealed"]


def test_too_short_turn_is_resampled_then_kept(bad_turns_userlm, toy, monkeypatch):
    """A model emitting a 1-word turn fails the length guardrail on every sample: max_attempts samples."""
    backend = backend_for(bad_turns_userlm)
    spy = spy_on(backend, monkeypatch)
    max_attempts = 3
    simulator = UserLMUser(backend, UserLMConfig(max_attempts=max_attempts))
    turn = simulator.respond(request(toy.task, seed=0))
    assert turn.text == "ok"
    assert turn.meta["attempts"] == max_attempts and turn.meta["accepted"] is False
    assert len(turn.meta["guardrail_failures"]) == max_attempts
    assert all("too short" in f for f in turn.meta["guardrail_failures"])
    seeds = [r.seed for r in spy.requests]
    assert len(seeds) == max_attempts and len(set(seeds)) == len(seeds)  # a fresh seed per resample


def test_max_resamples_is_a_deprecated_alias():
    with pytest.warns(FutureWarning, match="max_attempts"):
        assert UserLMConfig(max_resamples=2).max_attempts == 3


def test_verbatim_repeat_is_resampled(bad_turns_userlm, toy):
    """A turn repeating an earlier user turn verbatim is flagged "repeats" and resampled."""
    simulator = UserLMUser(backend_for(bad_turns_userlm), UserLMConfig(max_attempts=2))
    turn = simulator.respond(request(toy.task, [user(toy.opening), assistant(toy.ask)], revealed=(1,), seed=0))
    assert turn.text == toy.opening
    assert turn.meta["accepted"] is False and turn.meta["attempts"] == 2
    assert any("repeats" in f for f in turn.meta["guardrail_failures"])


def test_accepted_turn_meta(conversational_userlm, toy):
    """A turn passing every guardrail is accepted at the first attempt with no failures."""
    turn = UserLMUser(backend_for(conversational_userlm)).respond(request(toy.task, seed=1))
    assert turn.meta == {"attempts": 1, "guardrail_failures": [], "accepted": True}


def test_userlm_config_validation():
    """Inconsistent guardrail settings raise ValueError."""
    with pytest.raises(ValueError):
        UserLMConfig(min_words=10, max_words=5)
    with pytest.raises(ValueError):
        UserLMConfig(max_attempts=0)
    with pytest.raises(ValueError):
        UserLMConfig(max_intent_similarity=0)


# --------------------------------------------------------------------------- UserLM: batching


def test_respond_batch_equals_single_requests(tiny_userlm_untrained, toy):
    """Batched respond_batch gives each request the same turn as responding to it alone (per-row seeding)."""
    simulator = UserLMUser(backend_for(tiny_userlm_untrained), UserLMConfig(sampling=SamplingParams(max_new_tokens=12)))
    long_chat = [user(toy.opening), assistant("x " * 40), user(toy.second), assistant(toy.ask)]
    requests = [
        request(toy.task, seed=11),
        request(toy.task, [user(toy.opening), assistant(toy.ask)], revealed=(1,), seed=12),
        request(toy.task, long_chat, revealed=(1, 2), seed=13),
        request(toy.task, seed=14),
        request(FIVE, seed=11),
    ]
    batched = simulator.respond_batch(requests)
    single = [simulator.respond(r) for r in requests]
    assert batched == single
    # the seeds matter (otherwise the comparison above would be vacuous)
    assert batched[0] != batched[3]
    assert len({t.text for t in simulator.respond_batch([request(toy.task, seed=s) for s in range(6)])}) > 1


def test_respond_is_deterministic_per_seed(tiny_userlm_untrained, toy):
    """The same request and seed give the same UserLM turn every time."""
    simulator = UserLMUser(backend_for(tiny_userlm_untrained), UserLMConfig(sampling=SamplingParams(max_new_tokens=12)))
    req = request(toy.task, [user(toy.opening), assistant(toy.ask)], revealed=(1,), seed=99)
    assert simulator.respond(req) == simulator.respond(req)


# --------------------------------------------------------------------------- prompted user (fake backend)


class FakeBackend:
    """A stand-in backend: renders prompts to their text, answers from a script per attempt."""

    def __init__(self, script):
        self.tokenizer = SimpleNamespace(eos_token_id=0)
        self.script = script
        self.rendered = []
        self.batches = []

    def render(self, messages, chat_template=None):
        """Remember the messages; return a dummy prompt."""
        self.rendered.append(messages)
        return (len(self.rendered),)

    def generate(self, requests, params, stops):
        """Reply with ``script(attempt)`` for every request of the batch."""
        attempt = len(self.batches)
        self.batches.append(list(requests))
        return [Generation(token_ids=(1, 0), text=self.script(attempt), stop_token_id=0) for _ in requests]


def follow_up_request(seed=0):
    """A prompted-user request for FIVE's shard 2 after the opening."""
    return request(FIVE, [user(FIVE.shard(1).text), assistant("What is in the box?")], revealed=(1,), seed=seed)


def test_prompted_accepts_phrasing_that_keeps_the_fact():
    """A phrasing that keeps the shard's numbers and words is accepted at once and reveals that shard."""
    backend = FakeBackend(lambda attempt: '"oh and each box holds 6 cans"')
    turn = PromptedUser(backend).respond(follow_up_request())
    assert turn.text == "oh and each box holds 6 cans"
    assert turn.revealed == (2,)
    assert turn.meta == {"attempts": 1, "fallback": False, "rejections": []}
    instruction = backend.rendered[0][-1]["content"]
    prompt_text = " ".join(m["content"] for m in backend.rendered[0])
    assert FIVE.shard(2).text in instruction
    assert all(FIVE.shard(k).text not in prompt_text for k in (3, 4, 5))  # the model never sees hidden shards
    assert "41" not in prompt_text


@pytest.mark.parametrize(
    ("leaky", "leaked"),
    [
        ("a box holds 6 cans and we have 7 boxes", "7"),
        ("box holds 6 cans, so 41 total", "41"),
        ("a box has 6 cans, we drink five", "5"),
    ],
    ids=["next-shard", "answer", "number-word"],
)
def test_prompted_rejects_leaks(leaky, leaked):
    """A phrasing that leaks a hidden shard's number or the answer is rejected and resampled."""
    texts = [leaky, "a box holds 6 cans"]
    turn = PromptedUser(FakeBackend(lambda attempt: texts[min(attempt, 1)])).respond(follow_up_request())
    assert turn.text == "a box holds 6 cans" and turn.meta["attempts"] == 2 and turn.meta["fallback"] is False
    assert len(turn.meta["rejections"]) == 1 and "leaks" in turn.meta["rejections"][0]
    assert leaked in turn.meta["rejections"][0]


def test_prompted_falls_back_to_plain_shard():
    """After max_attempts rejected phrasings the shard is said plainly and meta["fallback"] is True."""
    backend = FakeBackend(lambda attempt: "sure, what else would you like to know about it?")
    simulator = PromptedUser(backend, PromptedUserConfig(max_attempts=3))
    turn = simulator.respond(follow_up_request())
    assert turn.text == FIVE.shard(2).text and turn.revealed == (2,)
    assert turn.meta["fallback"] is True and turn.meta["attempts"] == 3
    assert len(turn.meta["rejections"]) == 3 and len(backend.batches) == 3
    assert len({r.seed for batch in backend.batches for r in batch}) == 3


def test_prompted_asks_for_answer_when_all_revealed():
    """With every shard revealed the prompted user asks for the answer without calling the model."""
    backend = FakeBackend(lambda attempt: "unused")
    turn = PromptedUser(backend).respond(request(FIVE, [user("x"), assistant("y")], revealed=range(1, 6), seed=4))
    assert turn.text in ALL_REVEALED_MESSAGES and turn.revealed == () and backend.batches == []


def test_prompted_batch_mixes_accepts_and_fallbacks():
    """In one batch, each request is resampled on its own: accepted ones stop, rejected ones go on."""

    from userlm_env.seeding import derive_seed

    first = {derive_seed("user-resample", follow_up_request(0).seed, attempt) for attempt in range(2)}

    class PerSeed(FakeBackend):  # the first request's sampling seeds phrase the shard well, the second's do not
        def generate(self, requests, params, stops):
            self.batches.append(list(requests))
            return [Generation((1,), "a box holds 6 cans" if r.seed in first else "nope nope") for r in requests]

    backend = PerSeed(None)
    turns = PromptedUser(backend, PromptedUserConfig(max_attempts=2)).respond_batch(
        [follow_up_request(0), follow_up_request(1)]
    )
    assert turns[0].meta["fallback"] is False and turns[0].text == "a box holds 6 cans"
    assert turns[1].meta["fallback"] is True and turns[1].text == FIVE.shard(2).text
    assert [len(b) for b in backend.batches] == [2, 1]


def test_prompted_user_with_tiny_chat_model_in_env(tiny_chat_model):
    """``prompted:PATH`` with an untrained tiny chat model runs in the env; bad phrasings fall back to the shard."""
    env = gym.make("UserLM-Math-v0", user=f"prompted:{tiny_chat_model}", tasks=[FIVE])
    obs, info = env.reset(seed=0)
    assert info["shards_revealed"] == [1]
    assert fact_is_kept(FIVE.shard(1).text, obs[-1]["content"])
    obs, reward, terminated, truncated, info = env.step("What else?")
    assert info["shards_revealed"] == [1, 2] and fact_is_kept(FIVE.shard(2).text, obs[-1]["content"])
    assert "fallback" in info["user_meta"]


# --------------------------------------------------------------------------- human user


def scripted_input(lines):
    """An input function returning ``lines`` one by one, then raising EOFError."""
    it = iter(lines)

    def read(prompt=""):
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return read


def test_human_user_text_end_and_eof():
    """A human's typed text is the turn; ``/end`` and end of input end the conversation."""
    printed = []
    human = HumanUser(input_fn=scripted_input(["  how many cans?  ", "/end"]), print_fn=printed.append)
    first = human.respond(request(FIVE, seed=0))
    assert first == UserTurn(text="how many cans?")
    assert all(s.text in printed[0] for s in FIVE.shards)  # the person sees the hidden task
    second = human.respond(request(FIVE, [user("how many cans?"), assistant("Which cans?")], revealed=(1,)))
    assert second.ended is True and second.text == ""
    assert "Which cans?" in printed[-1]
    third = human.respond(request(FIVE, [user("a"), assistant("b")], revealed=(1,)))
    assert third.ended is True


def test_human_user_in_env():
    """In the env, a human's turns are shard-detected and ``/quit`` ends the episode as user_ended."""
    human = HumanUser(
        input_fn=scripted_input(["how many cans are there", "each box holds 6 cans", "/quit"]), print_fn=lambda s: None
    )
    env = gym.make("UserLM-Math-v0", user=human, tasks=[FIVE])
    obs, info = env.reset(seed=0)
    assert info["shards_revealed"] == [1]
    *_, info = env.step("Tell me more?")
    assert info["shards_revealed"] == [1, 2]
    obs, reward, terminated, truncated, info = env.step("And?")
    assert terminated and info["end_reason"] == "user_ended"


def test_user_simulator_interface():
    """A subclass implementing respond_batch gets respond for free; the base class is abstract."""

    class Echo(UserSimulator):
        def respond_batch(self, requests):
            return [UserTurn(text=f"turn {r.turn}") for r in requests]

    assert Echo().respond(request(FIVE, turn=3)).text == "turn 3"
    with pytest.raises(TypeError):
        UserSimulator()
