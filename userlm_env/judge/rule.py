r"""The rule judge for math: what kind of reply it is, and whether its answer is right.

The categories are those of Lost in Conversation (see ``DESIGN.md`` section 1):
``answer_attempt``, ``clarification``, ``interrogation``, ``discussion``, ``hedge``,
``refuse`` and ``missing``. Only answer attempts are graded; grading always goes through
:func:`userlm_env.grading.answers_match`.

Rules of :class:`RuleJudge` (math), in the order they are applied:

1. **Missing.** An empty or whitespace-only reply (or a non-string) is ``missing``.
2. **Scan window.** Only the last :data:`~userlm_env.judge.text.SCAN_CHARS` characters are analysed for answers and
   questions, and the first :data:`~userlm_env.judge.text.HEAD_CHARS` as well for refusals, so a 100k-character reply
   costs the same as a short one (every regex below is linear and works on bounded text).
   Light LaTeX is simplified first (``\frac{a}{b}`` -> ``a/b``, ``\text{..}``, ``\$``, ``\%``,
   ``\(``, ``\times`` ...). Numbers are tokens like ``-3``, ``$1,200``, ``12.5%``, ``3/4``,
   ``0.5``; ordinals (``2nd``) and digits glued to words (``COVID19``) are not numbers.
3. **Strong answer markers** define an *answer span* (text after the marker up to the end of
   its sentence, or the next line when the marker ends its line):

   * class 3: ``\boxed{..}`` / ``\fbox{..}`` (span = the box content), ``####``,
     ``final answer``;
   * class 2: ``answer is/was/would be/:/=``, ``the answer to the question is``,
     ``solution is``.

   The last marker of the highest class present is used. The extracted answer is the number
   the marker points at: the number after the last ``=`` of the span if there is one (an
   ``=`` inside parentheses, ``42 (= 6 * 7)``, does not count), else the first number of the
   span, which must follow the marker within :data:`MAX_POINTER_WORDS` words
   (``The answer is as follows: ... 60`` is *not* pointed). Negated numbers are skipped
   (``not 3 but 42`` -> 42; ``The answer is not 3.`` commits to nothing). A box whose content
   is not a plain number is kept as LaTeX and graded with math-verify.
   Several markers of the top class with *different* values (``3/4`` and ``0.75`` are the same)
   and no correction cue (``wait``, ``actually``, ``mistake`` ...) between them are a shotgun:
   ``hedge``; so is a weaker marker after the chosen one with another value
   (``\boxed{42}. The answer is 3.``), which is the committed answer after a correction cue.
   A strong answer outranks questions (``The answer is 42. Want a breakdown?`` is an attempt).
4. **Hedges: the committed answer must be one value.** Hedges are not answer attempts and are
   never graded (``correct`` is ``None``), whichever of their numbers is the gold:

   * a box whose content is not one value (:func:`userlm_env.grading.answer_hedge`, a structural
     check on the LaTeX): a relation (``x \geq 42``, ``40 \leq x \leq 42``, ``\approx``, ``<``),
     ``\pm``, a set or interval (``\{3, 42\}``, ``[40, 42]``, ``\in``, ``\cup``), a disjunction
     (``\lor``, ``\vee``, ``\text{or}``), a bound or approximation word, a range (``40-45``,
     ``40 \ldots 45``, ``\to``), ``42+``, or several distinct values (``3, 42``, ``3 \quad 42``,
     ``\begin{cases}3\\42\end{cases}``, ``x = 3, y = 42``); numbers joined by arithmetic
     (``3\sqrt{2}``, ``6 \times 7 = 42``, ``42 \text{ cm}^2``) are one value;
   * a span that starts with several distinct numbers joined by ``or``/``either``/``versus``/
     ``|``/``∨``/``/`` (``$3/$42``; a fraction ``3/4`` is one number), a range (``between 40 and
     45``, ``40-45``, ``40 to 45``, ``40..45``, ``40~45``), or a list of numbers (three or more,
     or two that end the span: ``3 and 42.``, ``42 (37).``);
   * a bound, approximation or relation attached to the answer: ``at least``, ``at most``,
     ``more than``, ``under``, ``up to``, ``about``, ``approximately``, ``~``, ``≈``, ``≥``, ``±``
     right before it; ``+``, ``or more``, ``or so``, ``-ish``, ``give or take`` right after it;
   * another number offered after the answer: in the rest of its sentence with ``or``, ``maybe``,
     ``could be``, ``unless``, ``between`` ... or an ``if`` concluding with another number
     (``42 (37 if rounded)``); in a later sentence that opens with such a cue (``Or maybe 37.``,
     ``Alternatively, 37.``, ``If not, 37.``, ``Unless it's 37.``) or says ``37 is also
     possible`` / ``another option``, a guess question (``Is it 37?``), a bare number (``42. 37.``)
     or ``If ..., 37.``. A worked explanation after the answer (``If she sold 48 in April, ...``)
     is not a hedge;
   * hedging words in the answer sentence (``maybe``, ``perhaps``, ``possibly``, ``probably``,
     ``might``, ``could be``, ``likely``), an answer ending with ``?``, or an answer followed or
     preceded by doubt (``not sure``, ``I guess``, ``could be wrong``);
   * lines that are bare numbers one after the other (``3\n17\n42``): a shotgun list.
5. **Conditional answers.** An answer sentence starting with ``if``/``assuming``/
   ``suppose``/``case N`` ... is conditional: with another conditional answer of a different
   value it is a ``hedge`` (case analysis); with an information question it is a
   ``clarification``/``interrogation``; otherwise an answer attempt.
6. **Final statement** (no strong marker). The last sentence that contains a number is the
   candidate (a sentence opening with an alternative cue, ``Unless it's 37.``, after another
   value is a hedge). It commits to a value when it is not a question, does not restate the problem
   (``you said``, ``given that``, ``we know`` ...), and either has an ``=`` (number
   after the last one), a bold ``**N**``, a clause marker (``so``, ``therefore``, ``thus``,
   ``hence``, ``in total``, ``altogether``, ``overall``) whose verb points at a number
   (``So she earned $10 from 5 hours`` -> 10), or a single distinct number
   (``She earned $10.``). An information question *after* that sentence turns the reply into
   a clarification (``She earns $12 an hour. How many hours did she work?``); questions
   before it are treated as self-answered reasoning steps.
7. **No commitment.** Information questions: one -> ``clarification``, several ->
   ``interrogation`` (offers such as ``anything else?`` / ``does that help?`` are not
   information questions). Then multi-number hedges or guess questions (``Is it 42?``) ->
   ``hedge``; refusal phrases (``I can't help with that``; not ``I can't answer without
   the price``) -> ``refuse``; success claims without a number (``I have solved it and my
   answer is correct.``, ``The answer is: ``) -> ``answer_attempt`` with
   ``extracted_answer=None`` and ``correct=False`` (a failed extraction, so that a bare claim
   is never rewarded and still overrides an earlier attempt's score); anything else ->
   ``discussion``.

Spelled-out numbers (``seventy-two``) are not recognised. A final statement that only repeats
what the user said (``Got it. She sold 48 clips.``) is read as an answer unless a restatement cue
marks it: its numbers alone cannot tell it from a terse answer (``She has 5 left.``) whose value
is one of the user's numbers (5% of GSM8K tasks), so the judge does not compare them with the
user's. :class:`~userlm_env.judge.llm.LLMJudge` lets a language model classify and extract
instead; its answers are grounded in the reply and graded by
:func:`~userlm_env.grading.answers_match` too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from userlm_env.grading import answer_hedge, normalize_number
from userlm_env.judge.patterns import (
    ALTERNATIVE_ANYWHERE,
    ALTERNATIVE_CUE,
    ALTERNATIVE_OPENING,
    BENIGN_LATEX,
    BOUND_AFTER,
    BOUND_BEFORE,
    BOX_CLOSE,
    BOX_OPEN,
    BOXED_SPAN,
    CLAUSE_BREAK,
    CLAUSE_MARKER,
    CONDITIONAL,
    CONDITIONAL_CUE,
    CONDITIONAL_OPENING,
    CORRECTION,
    ENUMERATOR,
    FILLER_WORDS,
    GUESS_QUESTION,
    HEDGE_WORDS,
    LIST_GAP,
    NEGATED_NUMBER,
    NEGATED_SPAN,
    NOT_RESULT,
    NUMBER_TOKEN,
    OFFER_QUESTION,
    OR_GAP,
    PARENTHESES,
    POINTER,
    RANGE_CONNECTORS,
    RANGE_INTRO,
    REAL_LATEX,
    REFUSAL,
    REFUSAL_EXCUSE,
    REQUEST,
    RESTATEMENT,
    STRONG_MARKERS,
    SUCCESS_CLAIM,
    UNCERTAIN,
)
from userlm_env.judge.text import Analysis, Sentence, Token, distinct_values, number_tokens, same_value, words_of
from userlm_env.judge.types import MATH_KINDS, Judgement, ReplyKind, attempt, math_gold, not_attempt, short
from userlm_env.tasks.task import ShardedTask

__all__ = ["RuleJudge"]

MAX_POINTER_WORDS = 4
"""Most words allowed between an answer marker (or pointing verb) and the number it points at."""

MAX_CONNECTOR_CHARS = 40
"""Longest text between two numbers that can still join them as alternatives."""

WORD = re.compile(r"[^\W\d_]{2,}")
"""A word of two letters or more: a question must have one to ask anything."""

CLARIFICATION_MAX_QUESTIONS = 1
"""More information questions than this make an interrogation."""

SUPPORTED_KINDS = MATH_KINDS
"""The task kinds :class:`RuleJudge` grades."""


@dataclass
class _Marker:
    """A candidate answer: where its marker is, what it points at, and any hedge found."""

    strength: int
    name: str
    start: int
    end: int
    value: str | None = None
    span_tokens: list[Token] = field(default_factory=list)
    hedge: str | None = None
    pointed: bool = False
    raw_box: str | None = None
    token: Token | None = None


def _span_hedge(text: str, tokens: Sequence[Token], span_end: int, *, has_equals: bool) -> str | None:
    """Why the numbers at the start of a span are alternatives rather than one answer."""
    if len(tokens) < 2:
        return None
    run = [tokens[0]]
    kinds: list[str] = []
    for previous, current in zip(tokens, tokens[1:], strict=False):
        gap = text[previous.end : current.start]
        if len(gap) > MAX_CONNECTOR_CHARS:
            break
        before = text[max(0, previous.start - 20) : previous.start]
        connector = gap.strip().lower()
        if OR_GAP.search(gap) or (connector == "/" and not has_equals):
            kinds.append("or")  # "3 or 42", "3 | 42", "$3/$42" (a fraction 3/42 is one token)
        elif connector in RANGE_CONNECTORS or (connector == "-" and not has_equals):
            kinds.append("range")
        elif connector in {"and", "to", "-", "–"} and RANGE_INTRO.search(before):
            kinds.append("range")
        elif LIST_GAP.match(gap) or (connector == "(" and re.match(r"[^\S\n]*\)", text[current.end : current.end + 4])):
            kinds.append("list")  # "3, 42", "3 and 42", "42 (37)"
        else:
            break
        run.append(current)
    values = distinct_values(run)
    if len(values) < 2:
        return None
    if "or" in kinds:
        return f"alternative answers {short(values)}"
    if "range" in kinds:
        return f"a range {short(values[0])}..{short(values[-1])}"
    rest = text[run[-1].end : span_end]
    if len(run) >= 3 or len(words_of(rest)) <= 1:
        return f"a list of candidate answers {short(values)}"
    return None


def _point_in_span(text: str, tokens: Sequence[Token], start: int) -> tuple[Token | None, bool]:
    """The number a marker ending at ``start`` points at, and whether it is pointed."""
    if not tokens:
        return None, False
    segment_end = tokens[-1].end
    segment = PARENTHESES.sub(lambda m: " " * len(m.group()), text[start:segment_end])  # "42 (= 6 * 7)"
    equals = segment.rfind("=")
    if equals >= 0:
        after = [token for token in tokens if token.start >= start + equals]
        if after:
            return after[0], True
    first = tokens[0]
    between = text[start : first.start]
    pointed = len(words_of(between)) <= MAX_POINTER_WORDS and not CLAUSE_BREAK.search(between)
    return first, pointed


def _bare_numbers(text: str) -> bool:
    """Whether ``text`` is only numbers (list marks and filler words aside), without arithmetic."""
    rest = NUMBER_TOKEN.sub(" ", ENUMERATOR.sub("", text))
    if not NUMBER_TOKEN.search(text) or re.search(r"[=+*×÷/^]", rest):
        return False
    return len([w for w in words_of(rest) if w.lower() not in FILLER_WORDS]) == 0


def _mostly_numbers(sentence: Sentence) -> bool:
    words = [w.lower() for w in words_of(ENUMERATOR.sub("", sentence.text))]
    return bool(sentence.tokens) and len([w for w in words if w not in FILLER_WORDS]) <= 1


def _is_conditional(sentence: Sentence) -> bool:
    text = sentence.text.replace(BOX_OPEN, " ").replace(BOX_CLOSE, " ")
    bare = text.lstrip(" \t*_#>-•+")
    return bool(CONDITIONAL.match(bare) or CONDITIONAL.match(ENUMERATOR.sub("", text).strip(" *_")))


def _question_kind(sentence: Sentence) -> str | None:
    """``"offer"``, ``"guess"`` or ``"info"`` for a question or request, else ``None``."""
    body = ENUMERATOR.sub("", sentence.text).strip().strip("*_")
    if not sentence.is_question:
        return "info" if REQUEST.search(body) else None
    if OFFER_QUESTION.search(body):
        return "offer"
    if sentence.tokens and (GUESS_QUESTION.search(body) or HEDGE_WORDS.search(body) or _mostly_numbers(sentence)):
        return "guess"
    return "info" if WORD.search(body) else None  # "?", "...?": punctuation alone asks nothing


# --------------------------------------------------------------------------- the judge


class RuleJudge:
    """Rule-based judge for math replies; see the module docstring for the rules."""

    def judge(self, reply: str, task: ShardedTask | str | None, *, kind: str | None = None) -> Judgement:
        """Classify one assistant reply and grade its answer.

        Args:
            reply: the assistant's reply.
            task: the hidden task, graded against ``task.answer`` (the :class:`Judge` interface).
                The older form, the gold answer itself (``judge(reply, "72")``, or ``None`` to
                classify without grading), still works.
            kind: the task family (default: ``task.kind``, ``"math"`` for a gold answer); only
                ``"math"`` is supported.

        Returns:
            The :class:`Judgement`.

        Raises:
            ValueError: the task is not a math task.
        """
        gold = math_gold(task, kind=kind, judge="RuleJudge")
        if not isinstance(reply, str) or not reply.strip():
            return not_attempt(ReplyKind.MISSING, "empty reply")
        analysis = Analysis(reply)
        questions = [(s, _question_kind(s)) for s in analysis.sentences]
        info_questions = [s for s, q in questions if q == "info"]

        strong = self._strong_marker(analysis)
        if strong is not None and strong.value is not None:
            return self._judge_commitment(analysis, strong, gold, info_questions, strong.name)

        final = self._final_statement(analysis)
        if final is not None and final.hedge is not None:
            if not info_questions:
                return not_attempt(ReplyKind.HEDGE, f"hedge: {final.hedge}", distinct_values(final.span_tokens))
        elif final is not None and final.value is not None:
            later_info = [s for s in info_questions if s.start >= final.end]
            if not later_info:
                return self._judge_commitment(analysis, final, gold, info_questions, final.name)

        if info_questions:
            return self._questions(info_questions)
        if final is not None and final.hedge is not None:
            return not_attempt(ReplyKind.HEDGE, f"hedge: {final.hedge}", distinct_values(final.span_tokens))
        guesses = [s for s, q in questions if q == "guess"]
        if guesses:
            return not_attempt(ReplyKind.HEDGE, "hedge: guesses in a question", distinct_values(guesses[-1].tokens))
        if self._refuses(analysis):
            return not_attempt(ReplyKind.REFUSE, "refusal phrase")
        if self._claims_success(analysis, strong):
            return attempt(None, gold, "claims an answer but states no number")
        reason = final.name if final is not None and final.name.startswith("no answer") else "no committed answer"
        return not_attempt(ReplyKind.DISCUSSION, reason)

    # ------------------------------------------------------------------ pieces

    @staticmethod
    def _questions(info_questions: Sequence[Sentence]) -> Judgement:
        count = len(info_questions)
        if count <= CLARIFICATION_MAX_QUESTIONS:
            return not_attempt(ReplyKind.CLARIFICATION, "asks the user one question")
        return not_attempt(ReplyKind.INTERROGATION, f"asks the user {count} questions")

    def _judge_commitment(
        self,
        analysis: Analysis,
        marker: _Marker,
        gold: str | None,
        info_questions: Sequence[Sentence],
        name: str,
    ) -> Judgement:
        candidates = distinct_values(marker.span_tokens) or ((marker.value,) if marker.value else ())
        if marker.hedge is not None:
            return not_attempt(ReplyKind.HEDGE, f"hedge: {marker.hedge}", candidates)
        index = analysis.sentence_index(marker.start)
        sentence = analysis.sentences[index]
        doubt = self._doubt(analysis, index)
        if doubt is not None:
            return not_attempt(ReplyKind.HEDGE, f"hedge: {doubt}", candidates)
        bound = self._bound(analysis, marker, sentence)
        if bound is not None:
            return not_attempt(ReplyKind.HEDGE, f"hedge: {bound}", candidates)
        alternative = self._alternative_after(analysis, marker, index)
        if alternative is not None:
            return not_attempt(ReplyKind.HEDGE, f"hedge: {alternative}", candidates)
        if _is_conditional(sentence):
            for other in analysis.sentences:
                if other is sentence or not other.tokens or not _is_conditional(other):
                    continue
                if other.tokens[-1].value != marker.value:
                    return not_attempt(ReplyKind.HEDGE, "hedge: case analysis with different answers", candidates)
            if info_questions:
                return self._questions(info_questions)
        return attempt(marker.value, gold, f"{name} -> {short(marker.value or '')}", candidates)

    @staticmethod
    def _doubt(analysis: Analysis, index: int) -> str | None:
        """Hedging language in the answer sentence, or doubt right before/after it."""
        sentence = analysis.sentences[index]
        text = sentence.text.replace(BOX_OPEN, " ").replace(BOX_CLOSE, " ")
        if sentence.is_question:
            return "the answer is asked as a question"
        match = HEDGE_WORDS.search(text) or UNCERTAIN.search(text)
        if match:
            return f"hedging word {match.group()!r}"
        for neighbour in analysis.sentences[max(0, index - 1) : index] + analysis.sentences[index + 1 : index + 3]:
            match = UNCERTAIN.search(neighbour.text)
            if match:
                return f"doubt {match.group()!r}"
        return None

    @staticmethod
    def _answer_region(marker: _Marker) -> tuple[int, int]:
        """Where the committed answer is written: the box, or the number the marker points at."""
        if marker.name == "boxed" or marker.token is None:
            return marker.start, marker.end
        return marker.token.start, marker.token.end

    def _bound(self, analysis: Analysis, marker: _Marker, sentence: Sentence) -> str | None:
        """A bound, approximation or relation attached to the answer (``at least 42``, ``42+``)."""
        start, end = self._answer_region(marker)
        text = analysis.text
        before = text[max(sentence.start, start - 40) : start].replace(BOX_OPEN, " ").replace(BOX_CLOSE, " ")
        after = text[end : min(max(sentence.end, end), end + 60)].replace(BOX_OPEN, " ").replace(BOX_CLOSE, " ")
        match = BOUND_BEFORE.search(before) or BOUND_AFTER.search(after)
        if match is None:
            return None
        return f"a bound or an approximation, not one value ({match.group().strip(' :=*_')!r})"

    def _alternative_after(self, analysis: Analysis, marker: _Marker, index: int) -> str | None:
        """Another number offered after the answer (``42. Or maybe 37.``, ``42 (37 if rounded)``).

        In the rest of the answer sentence, a different number with an alternative cue (``or``,
        ``maybe``, ``could be``, ``unless`` ...), or before a conditional (``42 (37 if
        rounded)``), makes the answer a hedge. A later sentence does when it *opens* with such a
        cue (``Or maybe 37.``, ``Alternatively, 37.``, ``If not, 37.``, ``It could also be 37.``)
        and holds a different number, is a guess question with one (``Is it 37?``), a bare
        number (``37.``) or ``If ..., 37.``. A computation ending with the answer
        (``Alternatively, 48 + 24 = 72.``) and a worked explanation (``If she sold 48 in April,
        ...``) are not hedges.
        """
        text = analysis.text
        _, end = self._answer_region(marker)
        sentence = analysis.sentences[index]
        pieces = [(end, max(end, sentence.end), True)]
        pieces += [(s.start, s.end, False) for s in analysis.sentences[index + 1 :] if s.start >= end]
        for start, stop, same_sentence in pieces:
            tokens = analysis.tokens_between(start, stop)
            others = [t for t in tokens if not same_value(t.value, marker.value)]
            if not others:
                continue
            piece = text[start:stop].replace(BOX_OPEN, " ").replace(BOX_CLOSE, " ")
            if same_sentence:
                cue = ALTERNATIVE_CUE.search(piece)
            else:
                cue = ALTERNATIVE_OPENING.search(piece) or ALTERNATIVE_ANYWHERE.search(piece)
            confirms = "=" in piece and same_value(tokens[-1].value, marker.value)  # "Or: 48 + 24 = 72."
            if cue is not None and not confirms:
                word = cue.group().strip(" ,.;:-*_#>").lower()
                return f"another answer offered after it ({word!r} {short(others[0].value)})"
            conditions = list(CONDITIONAL_CUE.finditer(piece)) if same_sentence else []
            before_if = [t for t in others if conditions and t.start < start + conditions[-1].start()]
            if before_if:  # "42 (37 if rounded)"; not "4 days if she writes 10 notes a day"
                return f"a conditional different answer ({short(before_if[-1].value)} if ...)"
            if same_sentence:
                continue
            sentence_after = analysis.sentences[analysis.sentence_index(start)]
            if sentence_after.is_question and _question_kind(sentence_after) == "guess":
                return f"another answer asked as a question ({short(others[0].value)})"
            if _bare_numbers(piece) and not same_value(tokens[-1].value, marker.value):
                return f"another bare number after it ({short(tokens[-1].value)})"
            commas = list(re.finditer(r",(?!\d)", piece))
            comma = commas[-1].start() if commas else -1
            if CONDITIONAL_OPENING.search(piece) and comma > 0 and _bare_numbers(piece[comma + 1 :]):
                consequence = number_tokens(piece[comma + 1 :])
                if consequence and not same_value(consequence[-1].value, marker.value):
                    return f"a conditional different answer ({short(consequence[-1].value)})"
        return None

    def _strong_marker(self, analysis: Analysis) -> _Marker | None:
        """The last marker of the highest class, with its answer (or a hedge verdict)."""
        text = analysis.text
        markers: list[_Marker] = []
        for box_index, match in enumerate(BOXED_SPAN.finditer(text)):
            markers.append(_Marker(3, "boxed", match.start(), match.end(), raw_box=analysis.raw_boxes[box_index]))
        for strength, name, pattern in STRONG_MARKERS:
            for match in pattern.finditer(text):
                if not any(m.start <= match.start() < m.end for m in markers):
                    markers.append(_Marker(strength, name, match.start(), match.end()))
        if not markers:
            return None
        top = max(m.strength for m in markers)
        chosen = sorted((m for m in markers if m.strength == top), key=lambda m: m.start)
        for marker in chosen:
            self._resolve_marker(analysis, marker)
        last = chosen[-1]
        if last.hedge is None and last.value is not None:
            previous = [m for m in chosen[:-1] if m.value is not None and m.hedge is None]
            different = [m for m in previous if not same_value(m.value, last.value)]
            if different and not CORRECTION.search(text, different[-1].end, last.start):
                values = tuple(dict.fromkeys([*(m.value for m in different), last.value]))
                last.hedge = f"several different final answers {short(values)}"
                last.span_tokens = [Token(0, 0, v) for v in values if v]
        return self._later_answers(analysis, markers, last)

    def _later_answers(self, analysis: Analysis, markers: Sequence[_Marker], chosen: _Marker) -> _Marker:
        r"""A weaker answer marker after the chosen one, with another value: a correction or a hedge.

        Only the last sentence with a number counts (an explanation after the box may say ``the
        third answer was 1400``): ``\boxed{42}. The answer is 3.`` is a hedge; after a correction
        cue (``wait``, ``actually`` ...) the later answer is the committed one.
        """
        if chosen.hedge is not None or chosen.value is None:
            return chosen
        numbered = [s for s in analysis.sentences if s.tokens]
        last_start = numbered[-1].start if numbered else len(analysis.text)
        weaker = [m for m in markers if m.start >= max(chosen.end, last_start) and m.strength < chosen.strength]
        for later in sorted(weaker, key=lambda m: m.start):
            self._resolve_marker(analysis, later)
            if later.value is None or same_value(later.value, chosen.value):
                continue
            if CORRECTION.search(analysis.text, chosen.end, later.start):
                chosen = later
                continue
            values = (chosen.value, later.value)
            chosen.hedge = f"several different final answers {short(values)}"
            chosen.span_tokens = [Token(0, 0, v) for v in values if v]
            return chosen
        return chosen

    @staticmethod
    def _resolve_marker(analysis: Analysis, marker: _Marker) -> None:
        text = analysis.text
        if marker.name == "boxed":
            RuleJudge._resolve_box(analysis, marker)
            return
        index = analysis.sentence_index(marker.start)
        end = analysis.sentences[index].end
        between = text[marker.end : end]
        if not number_tokens(between) and not words_of(between) and index + 1 < len(analysis.sentences):
            end = analysis.sentences[index + 1].end  # "Final answer:\n42"
        tokens = [
            t
            for t in analysis.tokens_between(marker.end, end)
            if not NEGATED_NUMBER.search(text, max(marker.end, t.start - 24), t.start)
        ]  # "not 3 but 42", "42, not 3"
        marker.span_tokens = tokens
        if not tokens:
            return
        token, pointed = _point_in_span(text, tokens, marker.end)
        if not pointed or token is None:
            return
        has_equals = "=" in text[marker.end : end]
        after = [t for t in tokens if t.start >= token.start]
        marker.hedge = _span_hedge(text, tokens, end, has_equals=has_equals) or _span_hedge(
            text, after, end, has_equals="=" in text[token.end : end]
        )
        marker.value = token.value
        marker.token = token
        marker.pointed = True

    @staticmethod
    def _resolve_box(analysis: Analysis, marker: _Marker) -> None:
        r"""Value and hedge verdict of a ``\boxed{..}`` marker."""
        text = analysis.text
        content = text[marker.start + 1 : marker.end - 1]
        raw = marker.raw_box or ""
        tokens = number_tokens(content, marker.start + 1)
        marker.span_tokens = tokens
        structure = answer_hedge(raw)  # relations, sets, disjunctions, several values ...
        hedge = f"the box holds {structure}" if structure is not None else None
        before = analysis.tokens_before(marker.start)
        if hedge is None and before and tokens and not same_value(before[-1].value, tokens[0].value):
            gap = text[before[-1].end : marker.start]
            if len(gap) <= MAX_CONNECTOR_CHARS and OR_GAP.search(gap):  # "\boxed{3} or \boxed{42}"
                hedge = f"alternative answers {short([before[-1].value, tokens[0].value])}"
                marker.span_tokens = [before[-1], *tokens]
        marker.hedge = hedge
        value: str | None = None
        if REAL_LATEX.search(BENIGN_LATEX.sub("", raw)):
            value = raw  # \sqrt{2}, \pi ...: graded by math-verify on the raw LaTeX
        else:
            value = normalize_number(content.strip())
            if value is None and "=" in content and tokens:
                value = _point_in_span(text, tokens, marker.start + 1)[0].value
            elif value is None and len(tokens) == 1:
                leftover = NUMBER_TOKEN.sub(" ", content)
                if not re.search(r"[\d+*/^÷=<>-]", leftover) and len(words_of(leftover)) <= MAX_POINTER_WORDS:
                    value = tokens[0].value  # "18 dollars", "$42"
        marker.value = value if value is not None else (raw or None)
        marker.pointed = marker.value is not None

    def _final_statement(self, analysis: Analysis) -> _Marker | None:
        """The last sentence with a number, resolved to a committed value, a hedge, or neither."""
        numbered = [i for i, s in enumerate(analysis.sentences) if s.tokens]
        if not numbered:
            return None
        index = numbered[-1]
        sentence = analysis.sentences[index]
        text = analysis.text
        marker = _Marker(1, "final statement", sentence.start, sentence.end, span_tokens=list(sentence.tokens))
        if sentence.is_question:
            marker.name = "no answer: the last number is in a question"
            return marker
        body = ENUMERATOR.sub("", sentence.text)
        if len(numbered) >= 2 and _mostly_numbers(sentence):
            bare = [sentence]
            for previous_index in reversed(numbered[:-1]):
                previous = analysis.sentences[previous_index]
                if not _mostly_numbers(previous):
                    break
                bare.insert(0, previous)
            values = tuple(dict.fromkeys(t.value for b in bare for t in b.tokens))
            if len(values) >= 2:
                marker.hedge = f"a list of bare numbers {short(values)}"
                marker.span_tokens = [t for b in bare for t in b.tokens]
                return marker
        if RESTATEMENT.search(body):
            marker.name = "no answer: restates the problem"
            return marker
        tokens = [
            t for t in sentence.tokens if not NEGATED_NUMBER.search(text, max(sentence.start, t.start - 24), t.start)
        ]  # "It is not 3." commits to nothing; "not 3 but 42" to 42
        if not tokens:
            marker.name = "no answer: the numbers are negated"
            return marker
        opening = ALTERNATIVE_OPENING.search(body)
        if opening is not None and len(numbered) >= 2:
            previous = analysis.sentences[numbered[-2]].tokens[-1].value
            if not any(same_value(previous, t.value) for t in tokens):
                cue = opening.group().strip(" ,.").lower()
                marker.hedge = f"another answer offered after {short(previous)} ({cue!r})"
                return marker
        equals = text.rfind("=", sentence.start, sentence.end)
        clause = CLAUSE_MARKER.search(body)
        conditional = _is_conditional(sentence)
        chosen: Token | None = None
        span_start = sentence.start
        if equals >= 0 and any(t.start > equals for t in tokens):
            chosen = next(t for t in tokens if t.start > equals)
            span_start, marker.name = equals + 1, "'=' in the final statement"
        else:
            bold = list(re.finditer(r"\*\*([^*]{1,80})\*\*", sentence.text))
            bold_tokens = [t for m in bold for t in number_tokens(m.group(1), sentence.start + m.start(1))]
            if bold_tokens:
                if len(distinct_values(bold_tokens)) > 1:
                    marker.hedge = f"several bold numbers {short(distinct_values(bold_tokens))}"
                    return marker
                chosen = bold_tokens[-1]
                span_start, marker.name = bold[-1].start() + sentence.start, "bold number"
            elif clause or conditional:
                chosen, span_start = self._clause_pointer(analysis, sentence)
                if chosen is not None:
                    cue = clause.group().lower() if clause else "conditional"
                    marker.name = f"clause marker {cue!r}"
                else:
                    span_start = sentence.start
        if chosen is None and not clause:
            if NOT_RESULT.search(body):
                marker.name = "no answer: a plan, not a result"
                return marker
        span_tokens = [t for t in tokens if t.start >= span_start]
        hedge = _span_hedge(text, span_tokens, sentence.end, has_equals=equals >= 0)
        if hedge is not None:
            marker.hedge = hedge
            marker.span_tokens = span_tokens
            return marker
        if chosen is None:
            values = distinct_values(tokens)
            if len(values) == 1:
                chosen = tokens[-1]
                marker.name = "single number in the final statement"
            elif _mostly_numbers(sentence) or HEDGE_WORDS.search(body):
                marker.hedge = f"several candidate numbers {short(values)}"
                return marker
            else:
                marker.name = "no answer: several numbers without a commitment"
                return marker
        marker.value = chosen.value
        marker.token = chosen
        marker.pointed = True
        return marker

    @staticmethod
    def _clause_pointer(analysis: Analysis, sentence: Sentence) -> tuple[Token | None, int]:
        """The number a conclusion points at, and where its span starts.

        For each clause marker (``so``, ``in total`` ...), last first: the number after the
        last pointing verb that follows it, else the number right after the marker
        (``so 7 fruits``); failing that, the number after the last pointing verb of the whole
        sentence (``She earned $10 in total``).
        """
        text, tokens = analysis.text, sentence.tokens
        clauses = list(CLAUSE_MARKER.finditer(text, sentence.start, sentence.end))

        def near(start: int) -> Token | None:
            after = [t for t in tokens if t.start >= start]
            if after and len(words_of(text[start : after[0].start])) <= MAX_POINTER_WORDS:
                return after[0]
            return None

        def after_pointer(start: int) -> tuple[Token | None, int]:
            for pointer in reversed(list(POINTER.finditer(text, start, sentence.end))):
                token = near(pointer.end())
                if token is not None:
                    return token, pointer.end()
            return None, start

        for clause in reversed(clauses):
            token, start = after_pointer(clause.end())
            if token is None:
                token, start = near(clause.end()), clause.end()
            if token is not None:
                return token, start
        token, start = after_pointer(sentence.start)
        if token is not None:
            return token, start
        return None, sentence.start

    @staticmethod
    def _refuses(analysis: Analysis) -> bool:
        for text in (analysis.head, analysis.text):
            for match in REFUSAL.finditer(text):
                end = text.find("\n", match.end())
                sentence_end = min(x for x in (text.find(".", match.end()), end, len(text)) if x >= 0)
                if not REFUSAL_EXCUSE.search(text, match.end(), sentence_end):
                    return True
        return False

    @staticmethod
    def _claims_success(analysis: Analysis, strong: _Marker | None) -> bool:
        if SUCCESS_CLAIM.search(analysis.text):
            return True
        if strong is None or strong.span_tokens:
            return False
        index = analysis.sentence_index(strong.start)
        rest = analysis.text[strong.end : analysis.sentences[index].end]
        return not NEGATED_SPAN.search(rest)
