"""A person types the user turns in the terminal."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from userlm_env.users.base import UserRequest, UserSimulator, UserTurn

END_COMMANDS = ("/end", "/quit", "/q")


class HumanUser(UserSimulator):
    """Asks a person for every user turn.

    The person sees the hidden task (so they know what to reveal), the assistant's last reply, and
    types the next message. ``/end`` (or end of input) ends the conversation. Which shards a turn
    conveyed is detected from the text, as for UserLM.

    Args:
        input_fn: reads one line (default :func:`input`); injectable for tests.
        print_fn: shows text to the person (default :func:`print`).
    """

    name = "human"
    deterministic = False

    def __init__(self, input_fn: Callable[[str], str] = input, print_fn: Callable[[str], None] = print):
        self.input_fn = input_fn
        self.print_fn = print_fn

    def respond_batch(self, requests: Sequence[UserRequest]) -> list[UserTurn]:
        """Ask the person for each turn, one after the other."""
        return [self._ask(r) for r in requests]

    def _ask(self, request: UserRequest) -> UserTurn:
        if request.turn == 0:
            shards = "\n".join(f"  [{s.shard_id}] {s.text}" for s in request.task.shards)
            self.print_fn(f"\nYour task (reveal it bit by bit; type /end to stop):\n{shards}\n")
        elif request.conversation:
            self.print_fn(f"\nassistant> {request.conversation[-1]['content']}\n")
        try:
            text = self.input_fn("you> ").strip()
        except EOFError:
            return UserTurn(text="", ended=True)
        if text.lower() in END_COMMANDS:
            return UserTurn(text="", ended=True)
        return UserTurn(text=text)
