"""Extracting the Python solution from an assistant reply.

Rules, in order:

1. **Code blocks.** Fenced blocks (three or more backticks or tildes, any tag or none; an unclosed
   last fence runs to the end of the reply) are tried from the last to the first. A block counts
   when it parses (trailing lines are dropped one by one until it does, so a reply cut off by the
   token limit still yields its complete functions) and defines a top-level function.
2. **Bare code.** Without a usable block, the reply is scanned for runs of lines that start at
   a ``def``/``async def``/``class``/``import``/``from``/``@`` line and continue with indented,
   blank or further top-level code lines; the last run that parses and defines a function wins.
3. **Choosing the function.** The named entry point if the code defines it at top level, else the
   last top-level function (then renamed: an ``entry_point = that_function`` alias is appended,
   as LiC does by renaming).
4. **What is kept.** The chosen block's imports, top-level functions, classes and simple constant
   assignments (helpers the solution needs); top-level calls, prints, asserts, tests and
   ``if __name__ == "__main__":`` blocks are dropped, so running the code only defines things.

A reply with no function is not an answer attempt (:func:`extract_solution` returns ``None``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = ["ExtractedCode", "extract_solution", "has_code"]

MAX_SCAN_CHARS = 40_000
"""Only the last ``MAX_SCAN_CHARS`` characters of a reply are searched (bounded cost)."""

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)
_CODE_START = re.compile(r"^(?:async\s+def|def|class|import|from|@)\b")
_TOP_CODE = re.compile(r"^(?:async\s+def|def|class|import|from|@|[A-Za-z_]\w*\s*(?::[^=]+)?=(?!=))")
_NON_PYTHON_TAGS = {"bash", "sh", "shell", "console", "text", "txt", "json", "yaml", "output", "js", "javascript"}


@dataclass(frozen=True)
class ExtractedCode:
    """The solution found in a reply.

    Attributes:
        code: the source to execute (imports, helpers, the function, maybe an alias line).
        function: the name of the chosen function as written in the reply.
        entry_point: the name the tests call (``function`` unless renamed).
        renamed: the chosen function was not called ``entry_point`` and got an alias.
        source: ``"block"`` (fenced code) or ``"bare"`` (code in the prose).
    """

    code: str
    function: str
    entry_point: str
    renamed: bool
    source: str


def _blocks(text: str) -> list[str]:
    """Contents of the fenced blocks, in order (an unclosed last fence runs to the end)."""
    blocks = []
    fences = list(_FENCE.finditer(text))
    i = 0
    while i < len(fences):
        opening = fences[i]
        tag = opening.group(2).lower()
        closing = next(
            (f for f in fences[i + 1 :] if f.group(1)[0] == opening.group(1)[0] and not f.group(2)),
            None,
        )
        end = closing.start() if closing else len(text)
        if tag not in _NON_PYTHON_TAGS:
            blocks.append(text[opening.end() + 1 : end])
        if closing is None:
            break
        i = fences.index(closing) + 1
    return blocks


def _parse_prefix(code: str) -> ast.Module | None:
    """Parse ``code``, dropping trailing lines until it parses (a reply cut mid-function)."""
    lines = code.rstrip().split("\n")
    for end in range(len(lines), 0, -1):
        if end < len(lines) and not lines[end - 1].strip():
            continue
        try:
            return ast.parse("\n".join(lines[:end]))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        value = node.value
        return value is not None and not any(isinstance(n, (ast.Call, ast.Await)) for n in ast.walk(value))
    return False


def _from_module(tree: ast.Module, entry_point: str | None, source: str) -> ExtractedCode | None:
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        return None
    chosen = next((f for f in reversed(functions) if f.name == entry_point), None) if entry_point else None
    renamed = False
    if chosen is None:
        chosen = functions[-1]
        renamed = bool(entry_point) and chosen.name != entry_point
    kept = [n for n in tree.body if _keep(n)]
    try:
        code = "\n\n".join(ast.unparse(n) for n in kept)
    except (ValueError, RecursionError):  # pragma: no cover - ast.unparse of a parsed tree
        return None
    name = entry_point if entry_point else chosen.name
    if renamed:
        code += f"\n\n{entry_point} = {chosen.name}"
    return ExtractedCode(code=code + "\n", function=chosen.name, entry_point=name, renamed=renamed, source=source)


def _bare_runs(text: str) -> list[str]:
    lines = text.split("\n")
    runs, i = [], 0
    while i < len(lines):
        if not _CODE_START.match(lines[i]):
            i += 1
            continue
        j = i + 1
        while j < len(lines):
            line = lines[j]
            if not line.strip() or line[:1] in (" ", "\t") or _TOP_CODE.match(line) or line.startswith(("#", ")")):
                j += 1
                continue
            break
        runs.append("\n".join(lines[i:j]))
        i = j
    return runs


def extract_solution(reply: str, entry_point: str | None = None) -> ExtractedCode | None:
    """The solution code in ``reply`` (see the module rules), or ``None`` if it has no function.

    Args:
        reply: the assistant's reply.
        entry_point: the function the tests call, if known.

    Returns:
        The extracted code, or ``None``.
    """
    if not isinstance(reply, str) or "def" not in reply:
        return None
    text = reply[-MAX_SCAN_CHARS:].replace("\r\n", "\n")
    for block in reversed(_blocks(text)):
        tree = _parse_prefix(block)
        found = _from_module(tree, entry_point, "block") if tree is not None else None
        if found is not None:
            return found
    for run in reversed(_bare_runs(text)):
        tree = _parse_prefix(run)
        found = _from_module(tree, entry_point, "bare") if tree is not None else None
        if found is not None:
            return found
    return None


def has_code(reply: str) -> bool:
    """Whether the reply contains a fenced block or a ``def`` line (code-like, even if broken)."""
    return bool(_FENCE.search(reply) or re.search(r"^\s*(?:async\s+)?def\s+\w+\s*\(", reply, re.MULTILINE))


def strip_code(reply: str) -> str:
    """The reply without its fenced blocks (the prose, for classifying questions and refusals)."""
    text = reply
    for block in _blocks(reply):
        if block:
            text = text.replace(block, " ")
    return _FENCE.sub(" ", text)
