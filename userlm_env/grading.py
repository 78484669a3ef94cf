r"""Math answer comparison (GSM8K rules first, ``math-verify`` as the fallback).

Rules:
    * :func:`normalize_number` turns one number as people write it into a canonical
      string. It removes thousands separators ``,`` (the GSM8K rule strips every comma),
      currency symbols (``$ € £ ¥``), surrounding whitespace, a trailing ``.``, and a trailing
      ``%``: a percentage keeps its number, so ``"12.5%"`` becomes ``"12.5"`` (GSM8K gold
      answers are already expressed in the unit the question asks for, so ``"12.5%"`` must
      match the gold ``"12.5"``). The Unicode minus ``−`` counts as ``-``. Simple fractions
      ``a/b`` are reduced (``"6/8"`` -> ``"3/4"``, ``"4/2"`` -> ``"2"``). Decimals lose
      trailing zeros (``"1,000.00"`` -> ``"1000"``, ``"0.50"`` -> ``"0.5"``, ``".5"`` ->
      ``"0.5"``) and ``-0`` becomes ``"0"``. Anything else returns ``None`` (so does a fraction
      past ``int()``'s digit limit); it never raises.
    * :func:`answers_match` compares two answers. When both normalise to numbers they are
      compared exactly when both are integers and otherwise with a relative tolerance of
      :data:`REL_TOL` (plus a tiny absolute tolerance for values near zero), in exact
      arithmetic (no float overflow on huge numbers). When one of them is not a plain number
      (LaTeX such as ``\frac{1}{2}``, ``\boxed{42}``, ``\sqrt{2}``), the comparison falls back
      to ``math_verify.parse`` / ``math_verify.verify``, the answer parsed as one LaTeX
      expression first (unwrapped, math-verify would pick a number out of ``2^{3}``).
    * :func:`answer_hedge` is a structural check on one answer expression: a relation
      (``x \geq 42``, ``\approx``, ``<``), ``\pm``, a set or interval (``\{3, 42\}``,
      ``[40, 42]``, ``\in``, ``\cup``, ``\infty``), a disjunction (``or``, ``\lor``, ``\vee``),
      a bound or approximation word (``at least``, ``about`` ...), a range (``40-45``, ``40 \ldots
      45``, ``\to``), a dangling ``42+``, or more than one distinct value (``3, 42``, ``3 \quad 42``,
      ``\begin{cases}3\\42\end{cases}``, ``x = 3, y = 42``) make it a *hedge*: not one value.
      Numbers joined by arithmetic (``3\sqrt{2}``, ``1.5 \times 10^{3}``, ``6 \cdot 7 = 42``) are
      one value; after an ``=`` only what follows the last ``=`` counts. :func:`answers_match`
      never matches a hedged prediction unless the gold is itself such an expression, because
      ``math-verify`` is lenient with them (it matches ``x \geq 42``, ``[40, 42]``, ``\{3, 42\}``,
      ``3 \lor 42`` and ``\approx 42`` with the gold ``42``).
    * ``math-verify`` never makes :func:`answers_match` raise: every error, including its
      ``TimeoutException`` (a ``BaseException``), is caught and counts as "no match".
      Its signal-based timeout (``signal.alarm``) only works in the main thread, so it is
      used there only; in any other thread the timeout is disabled (``parsing_timeout=None``,
      ``timeout_seconds=None``) and inputs are bounded by :data:`MAX_VERIFY_CHARS` instead.
      Expressions whose exact value sympy would spend minutes or gigabytes on (``9^{9^{9}}``,
      ``(10^{100})!``, an exponent past :data:`MAX_EXPONENT_DIGITS` digits, big binomials,
      sums, integrals) never reach it: they run in C, where no timeout can stop them.
    * :data:`GSM8K_NUMBER` and :func:`last_number` implement the GSM8K extraction rule:
      the last match of ``-?[$0-9.,]{2,}|-?[0-9]+`` that normalises to a number.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from fractions import Fraction

__all__ = [
    "GSM8K_NUMBER",
    "MATH_VERIFY_TIMEOUT_S",
    "MAX_ANSWER_CHARS",
    "MAX_EXPONENT_DIGITS",
    "MAX_VERIFY_CHARS",
    "REL_TOL",
    "answer_hedge",
    "answers_match",
    "last_number",
    "normalize_number",
    "to_fraction",
]

logger = logging.getLogger(__name__)

GSM8K_NUMBER = re.compile(r"-?[$0-9.,]{2,}|-?[0-9]+")
"""The GSM8K "flexible extract" number pattern (as used by lm-evaluation-harness)."""

REL_TOL = 1e-6
"""Relative tolerance for comparing non-integer numbers."""

ABS_TOL = 1e-9
"""Absolute tolerance, so that values near zero (``0`` vs ``1e-12``) still compare equal."""

MATH_VERIFY_TIMEOUT_S = 2
"""Seconds allowed to each ``math-verify`` parse/verify call (main thread only)."""

MAX_VERIFY_CHARS = 512
"""Longest answer string handed to ``math-verify`` (longer ones do not match)."""

_REL_TOL, _ABS_TOL = Fraction(REL_TOL), Fraction(ABS_TOL)

MAX_EXPONENT_DIGITS = 4
"""Most digits in an exponent handed to ``math-verify`` (``2^{9999}`` is fine, ``9^{9^{9}}`` is not)."""

CURRENCY_SYMBOLS = "$€£¥"
MINUS_SIGNS = "−"  # U+2212, normalised to "-"

_NUMBER_BODY = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_FRACTION_BODY = re.compile(r"([+-]?\d+)/(\d+)")
_LATEX_COMMANDS = re.compile(r"\\[a-zA-Z]+|[{}^_]")


def normalize_number(text: str) -> str | None:
    """Canonicalise one written number (GSM8K style).

    Args:
        text: a number as written, e.g. ``"$1,200"``, ``"12.5%"``, ``"-3."``, ``"3/4"``.

    Returns:
        The canonical string (``"1200"``, ``"12.5"``, ``"-3"``, ``"3/4"``), or ``None`` when
        ``text`` is not a single number.
    """
    if not isinstance(text, str):
        return None
    s = text.strip()
    for minus in MINUS_SIGNS:
        s = s.replace(minus, "-")
    s = s.replace(",", "")
    for symbol in CURRENCY_SYMBOLS:
        s = s.replace(symbol, "")
    s = s.replace(" ", "")
    s = s.rstrip(".")
    if s.endswith("%"):
        s = s[:-1]
    if not s:
        return None
    fraction = _FRACTION_BODY.fullmatch(s)
    if fraction:
        try:
            denominator = int(fraction.group(2))
            if denominator == 0:
                return None
            value = Fraction(int(fraction.group(1)), denominator)
            return str(value) if value.denominator != 1 else str(value.numerator)
        except ValueError:  # beyond int()'s digit limit (sys.get_int_max_str_digits)
            return None
    if not _NUMBER_BODY.fullmatch(s):
        return None
    # Pure string arithmetic: Decimal.normalize() would round to 28 significant digits.
    sign = "-" if s.startswith("-") else ""
    integer, _, decimals = s.lstrip("+-").partition(".")
    integer = integer.lstrip("0") or "0"
    decimals = decimals.rstrip("0")
    canonical = f"{integer}.{decimals}" if decimals else integer
    if canonical == "0":
        return "0"
    return sign + canonical


def to_fraction(canonical: str | None) -> Fraction | None:
    """Exact value of a string produced by :func:`normalize_number` (``None`` passes through)."""
    if canonical is None:
        return None
    try:
        return Fraction(canonical)
    except (ValueError, ZeroDivisionError):
        return None


def last_number(text: str) -> str | None:
    """The GSM8K rule: the last :data:`GSM8K_NUMBER` match that normalises, normalised.

    Args:
        text: any text (e.g. a model's whole reply).

    Returns:
        The canonical number, or ``None`` when ``text`` contains no number.
    """
    if not text:
        return None
    for match in reversed(GSM8K_NUMBER.findall(text)):
        normalised = normalize_number(match)
        if normalised is not None:
            return normalised
    return None


def _numbers_close(a: Fraction, b: Fraction) -> bool:
    if a.denominator == 1 and b.denominator == 1:
        return a == b
    diff = abs(a - b)  # exact: a float of a 400-digit number would overflow
    return diff <= _ABS_TOL or diff <= _REL_TOL * max(abs(a), abs(b))


def _strip_latex_number(text: str) -> str | None:
    r"""Plain number hidden in light LaTeX (``\$42``, ``42\%``, ``\text{42}``), if any."""
    simplified = text.strip().strip("$").strip()
    boxed = re.fullmatch(r"\\boxed\{(.*)\}", simplified, flags=re.DOTALL)
    if boxed:
        simplified = boxed.group(1)
    simplified = simplified.replace("\\%", "%").replace("\\$", "$").replace("\\,", "").replace("{,}", ",")
    simplified = re.sub(r"\\(?:text|mathrm|textbf|mathbf)\{([^{}]*)\}", r"\1", simplified)
    simplified = re.sub(r"\\[dt]?frac\{(\s*-?\d+\s*)\}\{(\s*\d+\s*)\}", r"\1/\2", simplified)
    if _LATEX_COMMANDS.search(simplified):
        return None
    return normalize_number(simplified)


def _verify_timeout() -> int | None:
    """``math-verify``'s timeout here, or ``None`` where its ``signal.alarm`` cannot be used.

    Signals only work in the main thread; and when the caller already has a real-time timer
    pending (e.g. ``pytest-timeout``), ``math-verify``'s ``alarm(0)`` would cancel it.
    """
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        return None
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        return None
    return MATH_VERIFY_TIMEOUT_S


_POWER = re.compile(r"\^|\*\*|\\uparrow")
_HEAVY_COMMAND = re.compile(
    r"\\(?:[dt]?binom|choose|Gamma|operatorname|int|iint|iiint|oint|sum|prod|lim|mathrm\s*\{\s*fact)(?![a-zA-Z])|"
    r"factorial|gamma",
    re.IGNORECASE,
)


def _too_costly(text: str) -> bool:
    r"""Whether ``math-verify`` could spend minutes or gigabytes on ``text``.

    sympy evaluates exact integers, so ``9^{9^{9}}`` (a 370-million-digit number), ``(10^{100})!``
    or ``inom{10^9}{5 \cdot 10^8}`` run in C without returning to Python: the main-thread
    timeout cannot interrupt them, and worker threads have none. Refused: power towers, an
    exponent of more than :data:`MAX_EXPONENT_DIGITS` digits, a factorial of more than three
    digits or of a bracket, and sums, products, integrals, limits, binomials and Gamma next to a
    power or a number of four digits or more.
    """
    for match in _POWER.finditer(text):
        index = match.end()
        while index < len(text) and text[index].isspace():
            index += 1
        if index < len(text) and text[index] == "{":
            exponent, end = _brace_group(text, index)
            if exponent is None:
                return True  # unbalanced: let nothing guess
        else:
            run = re.match(r"[-+]?(?:\\[a-zA-Z]+|[\w.]+)", text[index:])
            exponent = run.group() if run else ""
            end = index + len(exponent)
        if _POWER.search(exponent) or "!" in exponent or sum(c.isdigit() for c in exponent) > MAX_EXPONENT_DIGITS:
            return True
        if _POWER.match(text[end:].lstrip(" }")):
            return True  # 9^9^9
    for match in re.finditer(r"!", text):
        before = text[: match.start()].rstrip()
        digits = re.search(r"\d+$", before)
        if (digits and len(digits.group()) > 3) or before.endswith((")", "}", "]")):
            return True
    return bool(_HEAVY_COMMAND.search(text) and (re.search(r"\d{4}", text) or _POWER.search(text)))


def _math_verify_match(predicted: str, gold: str) -> bool:
    """``math-verify`` comparison; any error or timeout means "no match"."""
    if len(predicted) > MAX_VERIFY_CHARS or len(gold) > MAX_VERIFY_CHARS:
        return False
    if _too_costly(predicted) or _too_costly(gold):
        return False
    try:
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - math-verify is a declared dependency
        logger.warning("math-verify is not installed; non-numeric answers never match")
        return False
    timeout = _verify_timeout()

    def _parse(text: str) -> list:
        # The whole answer as one LaTeX expression first: without delimiters math-verify picks
        # a number out of the text ("2^{3}" would be read as 2).
        parsed = parse(f"${text}$", parsing_timeout=timeout) if "$" not in text else []
        return parsed or parse(text, parsing_timeout=timeout)

    try:
        gold_parsed = _parse(gold)
        predicted_parsed = _parse(predicted)
        if not gold_parsed or not predicted_parsed:
            return False
        return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=timeout))
    except Exception as error:  # noqa: BLE001 - a grader must never crash the env
        logger.debug("math-verify failed on %r vs %r: %s", predicted, gold, error)
        return False
    except BaseException as error:  # math_verify.errors.TimeoutException is a BaseException
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        logger.debug("math-verify timed out on %r vs %r", predicted, gold)
        return False


# --------------------------------------------------------------------------- one value or a hedge

MAX_ANSWER_CHARS = 1000
"""Longest answer expression :func:`answer_hedge` analyses; a longer one is not one value."""

_ANSWER_NUMBER = re.compile(
    r"(?<![\w.])(?:[-−+](?=[$€£¥]?\.?\d))?[$€£¥]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:/\d+)?(?!\d)%?"
)
_FRAC_COMMAND = re.compile(r"\\(?:[dtc]?frac|[dt]?binom)(?![a-zA-Z])\s*")
_SPACE_COMMANDS = frozenset("quad qquad enspace enskip thinspace medspace thickspace space hfill nobreakspace".split())
_NEUTRAL_COMMANDS = frozenset(
    "text textbf textit textrm textsf texttt textnormal mathrm mathbf mathit mathsf mathtt mathbb mathcal "
    "mbox hbox operatorname emph boxed fbox left right big Big bigg Bigg bigl bigr Bigl Bigr biggl biggr "
    "displaystyle textstyle scriptstyle limits nolimits underline overline color textcolor".split()
)
_ROW_COMMANDS = frozenset("newline cr linebreak par break hline".split())
_COMMAND_SYMBOLS = {
    **dict.fromkeys("le leq leqslant leqq lt nless nleq lneq lneqq".split(), "≤"),
    **dict.fromkeys("ge geq geqslant geqq gt ngtr ngeq gneq gneqq".split(), "≥"),
    **dict.fromkeys("ne neq".split(), "≠"),
    **dict.fromkeys(
        "approx approxeq sim simeq cong thickapprox thicksim asymp doteq lesssim gtrsim ll gg propto".split(), "≈"
    ),
    **dict.fromkeys("pm mp".split(), "±"),
    **dict.fromkeys(
        "in notin ni owns subset subseteq subsetneq supset supseteq supsetneq cup cap bigcup bigcap setminus "
        "emptyset varnothing infty lbrace rbrace".split(),
        "∈",
    ),
    **dict.fromkeys("lor vee bigvee land wedge bigwedge lnot neg mid oplus veebar".split(), "∨"),
    **dict.fromkeys("ldots dots cdots dotsc dotsb dotsm dotso vdots ddots".split(), "…"),
    **dict.fromkeys(
        "to rightarrow longrightarrow Rightarrow Longrightarrow implies mapsto leftarrow longleftarrow "
        "Leftarrow gets leftrightarrow Leftrightarrow iff".split(),
        "→",
    ),
    **dict.fromkeys("times cdot ast star".split(), "*"),
    **dict.fromkeys("div over".split(), "/"),
    **dict.fromkeys("vert lvert rvert Vert lVert rVert".split(), "|"),
    "sqrt": "√",
    "%": "%",
    "$": "$",
    "&": " ",
    "#": " ",
    "_": " ",
    "{": " ∈ ",
    "}": " ∈ ",
    "\\": " ; ",
    "|": "|",
}
_COMMAND = re.compile(r"\\([a-zA-Z]+|.)")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}(?:\s*\{[^{}]*\})?")
_SQRT_INDEX = re.compile(r"\\sqrt\s*\[[^\[\]]*\]")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]{0,80})?/?>")
_HEDGE_SYMBOLS = (
    ("≤≥<>≠≈≅≃∼≲≳≪≫⩽⩾≶", "a relation"),
    ("±∓", "plus or minus"),
    ("∈∉∋⊂⊆⊃⊇∪∩∅∞", "a set or an interval"),
    ("∨∧¬⊕", "a disjunction"),
    ("→←↔⇒⇔⟶", "an arrow"),
)
_TILDE_NUMBER = re.compile(r"~\s*[-−+$€£¥.]?\d")
_PLUS_MINUS_TEXT = re.compile(r"\+\s*/?\s*-(?!\s*\d)|\+/-")
_ALTERNATIVE_WORDS = re.compile(
    r"\b(?:or|either|versus|vs|otherwise|alternatively|unless|else|nor|maybe|perhaps|possibly|probably)\b",
    re.IGNORECASE,
)
_BOUND_WORDS = re.compile(
    r"\b(?:at\s+(?:least|most)|(?:more|less|fewer|greater|smaller|larger|bigger|higher|lower)\s+than|"
    r"up\s+to|upwards\s+of|over|under|above|below|beyond|between|within|minimum|maximum|max|"
    r"approximately|approx|about|around|roughly|nearly|almost|close\s+to|circa|ish|"
    r"give\s+or\s+take|more\s+or\s+less|range|ranging|somewhere|"
    r"(?:and|&)\s+(?:up|more|above|over|higher|beyond|less|below|under|lower|fewer))\b|(?<=\d)\s*-?ish\b",
    re.IGNORECASE,
)
_ARITHMETIC_GAP = re.compile(r"[\s()\[\]]*(?:[-+*/^×÷·√⊙!]+[\s()\[\]]*)+")
_DANGLING_PLUS = re.compile(r"\d%?\s*\+(?=\s*(?:$|[)\]},;:.!?]|[^\W\d_]{2,}))")  # 42+, 42+ apples, not 2 + x
_VARIABLE = re.compile(r"(?<![^\W\d_])[^\W\d_](?![^\W\d_])")
_DASH_GAP = re.compile(r"\s*(?:-{1,3}|[–—])\s*")
_EXPONENT_GAP = re.compile(r"\^[\s(\[]*$")
_SPACED_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d,]|\.\d)")
_OPERATORS = re.compile(r"[+*/^×÷·√⊙]")


def _brace_group(text: str, index: int) -> tuple[str | None, int]:
    """The ``{..}`` group (or single character) starting at ``index`` and where it ends."""
    while index < len(text) and text[index].isspace():
        index += 1
    if index >= len(text):
        return None, index
    if text[index] != "{":
        return (text[index], index + 1) if text[index].isalnum() else (None, index)
    depth, end = 0, index
    while end < len(text):
        if text[end] == "{":
            depth += 1
        elif text[end] == "}":
            depth -= 1
            if depth == 0:
                return text[index + 1 : end], end + 1
        end += 1
    return None, index


def _replace_fractions(text: str) -> str:
    r"""``\frac{a}{b}`` -> ``a/b`` (plain integers) or ``(a)/(b)``; ``\binom{a}{b}`` -> ``(a)⊙(b)``."""
    for _ in range(32):
        match = _FRAC_COMMAND.search(text)
        if match is None:
            break
        numerator, middle = _brace_group(text, match.end())
        denominator, end = _brace_group(text, middle) if numerator is not None else (None, middle)
        if numerator is None or denominator is None:
            text = text[: match.start()] + " ⊙ " + text[match.end() :]
            continue
        if "binom" in match.group():
            replacement = f"({numerator})⊙({denominator})"
        elif numerator.strip().lstrip("-").isdigit() and denominator.strip().isdigit():
            replacement = f"{numerator.strip()}/{denominator.strip()}"
        else:
            replacement = f"({numerator})/({denominator})"
        text = text[: match.start()] + replacement + text[end:]
    return text


def _answer_text(expression: str) -> str:
    """An answer expression with its LaTeX reduced to numbers, operators and marker symbols."""
    text = _HTML_TAG.sub(" ", expression).replace("**", " ").replace("`", " ")
    text = text.replace("{,}", ",").replace("\\,", "").replace("\\!", "")
    text = _DEGREES.sub("", text)
    text = _ENVIRONMENT.sub(" ; ", text)
    text = _SQRT_INDEX.sub("\\\\sqrt", text)
    text = _replace_fractions(text)

    def command(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _COMMAND_SYMBOLS:
            return f" {_COMMAND_SYMBOLS[name]} "
        if name in _SPACE_COMMANDS or name in ";: ":
            return " "
        if name in _ROW_COMMANDS:
            return " ; "
        if name in _NEUTRAL_COMMANDS or name in "()[]":
            return " "
        return " ⊙ "  # \pi, \log, \binom ...: part of an arithmetic expression

    text = _COMMAND.sub(command, text).replace("&", " ")
    text = re.sub(r"\.{2,}", " … ", text)
    text = _SPACED_THOUSANDS.sub(lambda m: re.sub(r"\s", "", m.group()), text)  # 1 200
    text = _TILDE_NUMBER.sub(lambda m: "∼" + m.group()[1:], text)
    return text.replace("~", " ").replace("{", " ").replace("}", " ").replace("−", "-")


def answer_hedge(expression: str) -> str | None:
    r"""Why an answer expression is not one value (a hedge), or ``None`` when it is one.

    See the module docstring: relations, ``\pm``, sets and intervals, disjunctions, bounds,
    ranges and several distinct values are hedges; numbers joined by arithmetic are one value.

    Args:
        expression: an answer as written (LaTeX or plain text), e.g. a ``\boxed{..}`` content.

    Returns:
        A short reason (``"a relation"``, ``"several values 3, 42"`` ...), or ``None``.
    """
    if not isinstance(expression, str) or not expression.strip():
        return None
    if len(expression) > MAX_ANSWER_CHARS:
        return "too long to be one value"
    text = _answer_text(expression)
    for symbols, reason in _HEDGE_SYMBOLS:
        if any(symbol in text for symbol in symbols):
            return reason
    if _PLUS_MINUS_TEXT.search(text):
        return "plus or minus"
    word = _ALTERNATIVE_WORDS.search(text)
    if word:
        return f"alternatives ({word.group().lower()!r})"
    word = _BOUND_WORDS.search(text)
    if word:
        return f"a bound or an approximation ({word.group().lower()!r})"
    numbers = list(_ANSWER_NUMBER.finditer(text))
    if not numbers:
        return None
    if _DANGLING_PLUS.search(text):
        return "a lower bound (N+)"
    statements: list[list[re.Match[str]]] = [[numbers[0]]]
    ranged = False
    plain_arithmetic = bool(_OPERATORS.search(text)) or "=" in text
    for previous, current in zip(numbers, numbers[1:], strict=False):
        gap = text[previous.end() : current.start()]
        if "=" in gap:
            before = gap[: gap.rfind("=")]
            if re.search(r"[,;|]", before) and re.search(r"[^\s,;|]", before):
                statements.append([current])
            else:
                statements[-1] = [current]  # a derivation: what follows the last "=" counts
        elif ".." in gap or "…" in gap:
            ranged = True
            statements.append([current])
        elif _EXPONENT_GAP.search(gap):
            statements[-1].append(current)  # "42 cm^2": an exponent, not another value
        elif _DASH_GAP.fullmatch(gap) and (gap.strip() != "-" or not plain_arithmetic):
            ranged = True
            statements.append([current])
        elif _ARITHMETIC_GAP.fullmatch(_VARIABLE.sub("*", gap)):  # 6 * 7, 3x + 2, 2^{10}
            statements[-1].append(current)
        else:
            statements.append([current])
    values: list[str] = []
    for statement in statements:
        if len(statement) == 1:
            value = normalize_number(statement[0].group()) or statement[0].group()
        else:
            value = re.sub(r"\s+", "", text[statement[0].start() : statement[-1].end()])
        if value not in values:
            values.append(value)
    if len(values) > 1:
        shown = ", ".join(values[:4]) + (" ..." if len(values) > 4 else "")
        return f"a range {shown}" if ranged else f"several values {shown}"
    return None


def answers_match(predicted: str, gold: str) -> bool:
    r"""Whether a predicted answer equals the gold answer.

    Numbers are compared numerically (exactly for integers, :data:`REL_TOL` otherwise);
    anything else goes through ``math-verify``, except that a prediction that is not one value
    (:func:`answer_hedge`: ``x \geq 42``, ``\{3, 42\}``, ``3 \lor 42`` ...) never matches a
    gold that is one value. Never raises.

    Args:
        predicted: the extracted answer (``"1,200"``, ``"\frac{1}{2}"``, ``"\boxed{42}"``).
        gold: the reference answer.

    Returns:
        ``True`` when the two denote the same value.
    """
    if not isinstance(predicted, str) or not isinstance(gold, str):
        return False
    predicted, gold = predicted.strip(), gold.strip()
    if not predicted or not gold:
        return False
    predicted_value = to_fraction(normalize_number(predicted) or _strip_latex_number(predicted))
    gold_value = to_fraction(normalize_number(gold) or _strip_latex_number(gold))
    if predicted_value is not None and gold_value is not None:
        return _numbers_close(predicted_value, gold_value)
    if predicted_value is None and answer_hedge(predicted) is not None and answer_hedge(gold) is None:
        return False  # a set, range, relation or several values is never one gold value
    return _math_verify_match(predicted, gold)
