"""Responsive reveal (``reveal=``) of the env-controlled users: selection rules, env wiring, adversarial replies."""

from __future__ import annotations

import gymnasium as gym
import pytest

import userlm_env  # noqa: F401  (registers the envs)
from userlm_env.tasks import Shard, ShardedTask
from userlm_env.users import ReplayUser, UserRequest
from userlm_env.users.reveal import REVEAL_MODES, asks_for_information, choose_shard, questions_in

CARDS = ShardedTask(
    "cards",
    "Liam has 47 baseball cards. He buys 3 packs of baseball cards. Each pack has 4 baseball cards. "
    "How many baseball cards are in Liam's collection at the end?",
    (
        Shard(1, "How many baseball cards are in Liam's collection at the end?"),
        Shard(2, "Liam has 47 baseball cards."),
        Shard(3, "He buys 3 packs of baseball cards."),
        Shard(4, "Each pack has 4 baseball cards."),
    ),
    "59",
)
TRIP = ShardedTask(
    "trip",
    "Tariq rides the bus for 2 hours at 45 miles per hour. He bikes for 4 hours. He walks the last 9 miles. "
    "How far does Tariq go?",
    (
        Shard(1, "How far does Tariq go altogether, in miles?"),
        Shard(2, "Tariq rides the bus for 2 hours at 45 miles per hour."),
        Shard(3, "After a break, he bikes at 10 miles per hour for 4 hours."),
        Shard(4, "Finally, he walks the last 9 miles."),
        Shard(5, "The ticket cost $12."),
    ),
    "139",
)


def make_env(reveal, **kwargs):
    return gym.make("UserLM-Math-v0", user="replay", reveal=reveal, **kwargs)


# --------------------------------------------------------------------------- pure selection rules


def test_question_detector():
    assert questions_in("Ok. How many packs did he buy? Thanks.") == ["How many packs did he buy?"]
    assert asks_for_information("Could you tell me the price")  # request without a question mark
    assert asks_for_information("What is the speed")  # question word first
    assert not asks_for_information("The answer is 59.")
    assert not asks_for_information("Let's add them up: 47 + 12 = 59.")
    assert not asks_for_information("")


def test_responsive_picks_the_shard_asked_about():
    """Ordered would give shard 2; the question is about packs: shard 3 (buys packs) beats shard 4."""
    choice = choose_shard(CARDS, (1,), "How many packs does he buy?", "responsive")
    assert (choice.shard_id, choice.reason) == (3, "asked")
    assert choose_shard(CARDS, (1, 3), "How many cards are in each pack?", "responsive").shard_id == 4
    assert choose_shard(CARDS, (1,), "How many packs does he buy?", "ordered").shard_id == 2


def test_question_words_hint_at_facts():
    assert choose_shard(TRIP, (1,), "How much did the ticket cost?", "responsive").shard_id == 5
    assert choose_shard(TRIP, (1, 2), "How fast does he bike?", "responsive").shard_id == 3
    assert choose_shard(TRIP, (1,), "Does he walk at all?", "responsive").shard_id == 4  # "walk"


def test_numbers_in_the_question_match():
    assert choose_shard(TRIP, (1,), "Is it 9 of them?", "responsive").shard_id == 4


def test_no_match_falls_back_to_next_and_ties_go_to_the_earliest():
    assert choose_shard(CARDS, (1,), "What's the weather like?", "responsive").reason == "next"
    assert choose_shard(CARDS, (1,), "What's the weather like?", "responsive").shard_id == 2
    # "baseball cards" is in every hidden shard: a tie between 2, 3 and 4 goes to 2
    assert choose_shard(CARDS, (1,), "Anything about the baseball cards?", "responsive").shard_id == 2
    assert choose_shard(CARDS, (1,), "I think it is 50.", "responsive").reason == "next"  # no question


def test_on_request_reveals_nothing_without_a_question():
    choice = choose_shard(CARDS, (1,), "The answer is 47.", "on_request")
    assert (choice.shard_id, choice.reason) == (None, "nudge")
    assert choose_shard(CARDS, (1,), "How many packs does he buy?", "on_request").shard_id == 3
    assert choose_shard(CARDS, (1,), "Could you share more details?", "on_request").shard_id == 2  # asked, no match
    assert choose_shard(CARDS, (1, 2, 3, 4), "How many packs?", "on_request").reason == "all_revealed"


def test_bad_reveal_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="ordered.*responsive.*on_request"):
        choose_shard(CARDS, (1,), "?", "random")
    with pytest.raises(ValueError, match="reveal must be one of"):
        make_env("asked")
    assert REVEAL_MODES == ("ordered", "responsive", "on_request")


# --------------------------------------------------------------------------- the env


def test_responsive_user_reveals_the_asked_shard_in_the_env():
    env = make_env("responsive")
    _, info = env.reset(seed=0, options={"task": CARDS})
    assert (info["shards_revealed"], info["reveal_reason"], info["revealed_shard"]) == ([1], "opening", 1)
    obs, _, _, _, info = env.step("Is it 4 cards in a pack?")
    assert info["new_shards"] == [4] and info["revealed_shard"] == 4 and info["reveal_reason"] == "asked"
    assert "4 baseball cards" in obs[-1]["content"]
    _, _, _, _, info = env.step("Alright, noted.")  # no question: the next in order
    assert (info["new_shards"], info["reveal_reason"]) == ([2], "next")


def test_on_request_user_nudges_until_asked():
    env = make_env("on_request")
    env.reset(seed=0, options={"task": CARDS})
    for _ in range(3):
        obs, _, terminated, truncated, info = env.step("Let me think about it.")
        assert info["new_shards"] == [] and info["reveal_reason"] == "nudge" and info["revealed_shard"] == -1
        assert obs[-1]["role"] == "user" and not (terminated or truncated)
    assert info["shards_revealed"] == [1]
    _, _, _, _, info = env.step("How many packs does he buy?")
    assert info["new_shards"] == [3] and info["reveal_reason"] == "asked"


def test_ordered_is_the_default_and_unchanged():
    """reveal='ordered' gives exactly the transcript of an env without the argument."""
    replies = ["How many packs?", "The answer is 3.", "Tell me more.", "ok"]
    transcripts = []
    for kwargs in ({}, {"reveal": "ordered", "user_profile": "lic"}):
        env = gym.make("UserLM-Math-v0", user="replay", **kwargs)
        obs, _ = env.reset(seed=3)
        for reply in replies:
            obs, _, terminated, truncated, info = env.step(reply)
            if terminated or truncated:
                break
        transcripts.append(obs)
    assert transcripts[0] == transcripts[1]
    assert info["reveal_reason"] in ("ordered", "all_revealed")


def test_user_that_decides_for_itself_rejects_reveal():
    with pytest.raises(ValueError, match="env-controlled"):
        gym.make("UserLM-Math-v0", user="full", reveal="responsive")
    with pytest.raises(ValueError, match="env-controlled"):
        gym.make("UserLM-Math-v0", user="full", user_profile="impatient")
    gym.make("UserLM-Math-v0", user="full", reveal="ordered", user_profile="lic")  # the defaults are fine


def test_user_object_carries_its_own_default_and_the_env_overrides_it():
    user = ReplayUser(reveal="on_request")
    request = UserRequest(CARDS, ({"role": "user", "content": "x"}, {"role": "assistant", "content": "ok"}), (1,), 1, 0)
    assert user.respond(request).meta["reveal_reason"] == "nudge"
    env = gym.make("UserLM-Math-v0", user=user, reveal="ordered")
    env.reset(seed=0, options={"task": CARDS})
    assert env.step("ok")[4]["new_shards"] == [2]


# --------------------------------------------------------------------------- adversarial replies


KEYWORD_SOUP = "Liam baseball cards collection packs pack buys each has 47 3 4 59 miles hours? " + " ".join(
    f"Question {i}: how many packs, cards, what price, how fast, how far?" for i in range(50)
)


@pytest.mark.parametrize("reveal", REVEAL_MODES)
def test_keyword_soup_gets_one_shard_per_turn(reveal):
    """A reply that lists every key word and asks 50 questions still gets at most one new shard."""
    env = make_env(reveal)
    _, info = env.reset(seed=0, options={"task": TRIP})
    revealed = len(info["shards_revealed"])
    for _ in range(6):
        _, _, terminated, truncated, info = env.step(KEYWORD_SOUP)
        assert len(info["new_shards"]) <= 1
        assert len(info["shards_revealed"]) <= revealed + 1
        revealed = len(info["shards_revealed"])
        assert "139" not in env.unwrapped.episode.conversation[-1]["content"]  # the answer never leaks
        if terminated or truncated:
            break


def test_soup_with_the_opening_profile_of_several_shards_is_still_one_per_later_turn():
    env = make_env("responsive", user_profile="verbose")
    _, info = env.reset(seed=0, options={"task": TRIP})
    before = len(info["shards_revealed"])
    _, _, _, _, info = env.step(KEYWORD_SOUP)
    assert len(info["shards_revealed"]) - before <= 1


def test_vector_env_batches_revealed_shard_after_every_shard_is_out():
    """Sub-envs with and without a new shard in one step: ``revealed_shard`` stays an int (-1 for none)."""
    env = gym.make_vec(
        "UserLM-Math-v0", num_envs=4, vectorization_mode="vector_entry_point", user="replay", max_turns=12
    )
    env.reset(seed=3)
    seen = set()
    for _ in range(8):
        _, _, _, _, info = env.step(["Could you tell me more about the problem?"] * 4)
        seen.update(int(x) for x in info["revealed_shard"])
    assert -1 in seen and len(seen) > 1
