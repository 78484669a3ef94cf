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
      ``"0.5"``) and ``-0`` becomes ``"0"``. Anything else returns ``None``.
    * :func:`answers_match` compares two answers. When both normalise to numbers they are
      compared exactly when both are integers and otherwise with a relative tolerance of
      :data:`REL_TOL` (plus a tiny absolute tolerance for values near zero). When one of them
      is not a plain number (LaTeX such as ``\frac{1}{2}``, ``\boxed{42}``, ``\sqrt{2}``),
      the comparison falls back to ``math_verify.parse`` / ``math_verify.verify``.
    * ``math-verify`` never makes :func:`answers_match` raise: every error, including its
      ``TimeoutException`` (a ``BaseException``), is caught and counts as "no match".
      Its signal-based timeout (``signal.alarm``) only works in the main thread, so it is
      used there only; in any other thread the timeout is disabled (``parsing_timeout=None``,
      ``timeout_seconds=None``) and inputs are bounded by :data:`MAX_VERIFY_CHARS` instead.
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
    "MAX_VERIFY_CHARS",
    "REL_TOL",
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
        denominator = int(fraction.group(2))
        if denominator == 0:
            return None
        value = Fraction(int(fraction.group(1)), denominator)
        return str(value) if value.denominator != 1 else str(value.numerator)
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
    diff = abs(float(a - b))
    return diff <= ABS_TOL or diff <= REL_TOL * max(abs(float(a)), abs(float(b)))


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


def _math_verify_match(predicted: str, gold: str) -> bool:
    """``math-verify`` comparison; any error or timeout means "no match"."""
    if len(predicted) > MAX_VERIFY_CHARS or len(gold) > MAX_VERIFY_CHARS:
        return False
    try:
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - math-verify is a declared dependency
        logger.warning("math-verify is not installed; non-numeric answers never match")
        return False
    timeout = _verify_timeout()

    def _parse(text: str) -> list:
        parsed = parse(text, parsing_timeout=timeout)
        if not parsed and "$" not in text:
            parsed = parse(f"${text}$", parsing_timeout=timeout)
        return parsed

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


def answers_match(predicted: str, gold: str) -> bool:
    r"""Whether a predicted answer equals the gold answer.

    Numbers are compared numerically (exactly for integers, :data:`REL_TOL` otherwise);
    anything else goes through ``math-verify``. Never raises.

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
    return _math_verify_match(predicted, gold)
