"""What the rule judge looks for: the regular expressions and word lists, and the LaTeX clean-up.

Every pattern here is linear in its input and runs on bounded text (see
:data:`userlm_env.judge.text.SCAN_CHARS`). The rules that use them are in
:mod:`userlm_env.judge.rule`; the reply is read (LaTeX cleaned, numbers and sentences found) in
:mod:`userlm_env.judge.text`.
"""

from __future__ import annotations

import re

BOX_OPEN, BOX_CLOSE = "\x01", "\x02"
"""Stand-ins for the braces of a ``\\boxed{..}`` once the reply is cleaned (see ``text.Analysis``)."""

# ----------------------------- numbers and sentences

NUMBER_TOKEN = re.compile(
    r"(?<![\w.])"  # not glued to a word or to a decimal point
    r"(?:[-−+](?=[$€£¥]?\.?\d))?"  # sign
    r"[$€£¥]?"  # currency
    r"(?:\d+[^\S\n]?/[^\S\n]?\d+(?!\d|\.\d)"  # simple fraction 3/4 (or 3 / 4)
    r"|(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"  # 1,200.50 / 42 / .5
    r"(?!\d)"
    r"(?!(?:st|nd|rd|th)\b)"  # not an ordinal
    r"%?"
)
"""A number as written in a reply (``-3``, ``$1,200``, ``12.5%``, ``3/4``, ``0.5``)."""

LABEL_LOOKBACK = 16
LABEL_BEFORE = re.compile(
    r"(?:\b(?:step|part|case|option|scenario|question|problem|item|point|stage|phase|method|"
    r"approach|example)[^\S\n]*|(?<!#)#)$",
    re.IGNORECASE,
)
LINE_START = re.compile(r"(?:^|\n)[^\S\n]*[#*>]*[^\S\n]*$")
ENUMERATION_AFTER = re.compile(r"[.)][^\S\n]+\S")

SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]*_]*\s+|\n+")

ENUMERATOR = re.compile(
    r"^\s*(?:[-*•+>]+|\d{1,2}[.)](?=\s+\S)|\(?[a-zA-Z][.)](?=\s+\S)|"
    r"(?:option|case|candidate|guess|possibility|choice|scenario)\s*#?\d*\s*[:.)-])\s*",
    re.IGNORECASE,
)

# ----------------------------- answer markers (rule 3)

STRONG_MARKERS: tuple[tuple[int, str, re.Pattern[str]], ...] = (
    (
        3,
        "####",
        re.compile(
            r"(?<!#)####+[^\S\n]*(?=[-−+]?[$€£¥]?\d[\d,.]*(?:/\d+)?%?[^\S\n]*[^\W\d_]*[^\S\n]*\.?[^\S\n]*$)",
            re.MULTILINE,
        ),
    ),
    (
        3,
        "final answer",
        re.compile(
            r"\bfinal\s+(?:answer|result)\b\**\s*(?:is|was|would be|will be|should be|equals|=|:)?\**\s*:?",
            re.IGNORECASE,
        ),
    ),
    (
        2,
        "answer is",
        re.compile(
            r"\b(?:answer|solution)(?:\s+to\s+(?:the|your|this|that)\s+(?:question|problem))?\**\s*"
            r"(?:(?:is|was|would be|will be|should be|equals)(?![\w'’])|=|:)\**\s*:?",
            re.IGNORECASE,
        ),
    ),
)
BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
BENIGN_LATEX = re.compile(r"\\(?:[dt]?frac|text|mathrm|textbf|mathbf|textrm|mbox|left|right|displaystyle|\$|%|,|;|!|:)")
REAL_LATEX = re.compile(r"\\[a-zA-Z]+")
BOXED_SPAN = re.compile(f"{BOX_OPEN}([^{BOX_OPEN}{BOX_CLOSE}]*){BOX_CLOSE}")

# ----------------------------- conclusions, doubt, questions, refusals (rules 4-7)

CLAUSE_MARKER = re.compile(
    r"\b(?:so(?!\s+(?:far|that|much|many|long|we need|I need|let'?s))|therefore|thus|hence|"
    r"in total|altogether|all together|in all|overall|all in all|total(?:ly)?|which means|"
    r"this means|that means|consequently)\b",
    re.IGNORECASE,
)
POINTER = re.compile(
    r"(?:\b(?:is|are|was|were|be|been|equals?|equal to|makes?|made|gets?|got|earns?|earned|"
    r"costs?|has|have|had|needs?|needed|pays?|paid|spends?|spent|comes? to|came to|totals?|"
    r"totaled|totalled|gives?|gave|leaves?|left|remains?|sold|bought|saved|saves|collected|"
    r"owes|of|amounts? to)\b|'s\b|’s\b|:)",
    re.IGNORECASE,
)
HEDGE_WORDS = re.compile(
    r"\b(?:maybe|perhaps|possibly|probably|presumably|might|could be|could also be|may be|"
    r"likely|roughly|somewhere)\b",
    re.IGNORECASE,
)
UNCERTAIN = re.compile(
    r"\b(?:not (?:entirely |completely |totally |100% |quite |fully |really )?"
    r"(?:sure|certain|confident)|unsure|uncertain|I guess|just a guess|my best guess|"
    r"could be wrong|might be wrong|may be wrong|don'?t quote me)\b",
    re.IGNORECASE,
)
CORRECTION = re.compile(
    r"\b(?:wait|actually|correction|mistake|sorry|oops|recalculat\w*|recomput\w*|re-?check\w*|"
    r"let me (?:redo|fix|correct)|instead|on second thought|error)\b",
    re.IGNORECASE,
)
CONDITIONAL = re.compile(
    r"^(?:and\s+|but\s+|so\s+|or\s+)?(?:if|assuming|suppose|supposing|in case|provided|"
    r"case\s*\d*|scenario\s*\d*|otherwise|alternatively|on the other hand)\b",
    re.IGNORECASE,
)
REQUEST = re.compile(
    r"\b(?:please (?:tell|let me know|provide|share|give|specify|clarify|confirm)|"
    r"(?:tell|remind) me (?:how|what|the|when|which|who|if|whether)|"
    r"let me know (?:how|what|the|when|which|whether)|once you (?:tell|give|provide|share|let)|"
    r"if you (?:can |could )?(?:tell|give|provide|share) me|I(?:'d|’d| would)? need (?:to know|the|more|some))\b",
    re.IGNORECASE,
)
NOT_RESULT = re.compile(
    r"\b(?:once|we can|I can|I'll|I will|we'll|we will|would need|need to|have to|let'?s|let us|"
    r"we should|I should|we must|first,? we)\b",
    re.IGNORECASE,
)
RESTATEMENT = re.compile(
    r"\b(?:you (?:said|mentioned|told|gave|wrote|noted|stated)|given (?:that|is)|we know|"
    r"we(?:'re| are) told|according to|the problem (?:says|states)|I need|we need|"
    r"need to know|let'?s say)\b",
    re.IGNORECASE,
)
OFFER_QUESTION = re.compile(
    r"\b(?:anything else|any (?:other|more|further) questions?|(?:can|may|could|shall) I "
    r"(?:help|assist)|does (?:that|this|it) (?:help|make sense|answer)|is (?:that|this) "
    r"(?:helpful|clear|correct|right|ok(?:ay)?|what you)|need (?:any )?(?:more|further) help|"
    r"makes sense\?)",
    re.IGNORECASE,
)
GUESS_QUESTION = re.compile(
    r"^(?:so,?\s+|then,?\s+)?(?:is (?:it|that|the (?:answer|total|result))|was it|could it be|"
    r"would it be|might it be|maybe|perhaps|possibly|probably|the answer is|answer:)\b",
    re.IGNORECASE,
)
REFUSAL = re.compile(
    r"\b(?:(?:can(?:no|'|’)?t|can not|won'?t|will not|unable to|not able to)\s+"
    r"(?:help|assist|comply|do (?:that|this)|answer (?:that|this)|provide (?:that|this|an answer|"
    r"help|assistance)|fulfil+|engage|support|participate|complete (?:that|this))|"
    r"I (?:must|have to) (?:decline|refuse)|I (?:refuse|decline) to|against (?:my|the) "
    r"(?:guidelines|policy|policies|rules)|I(?:'m| am) not (?:going|willing) to)\b",
    re.IGNORECASE,
)
REFUSAL_EXCUSE = re.compile(
    r"\b(?:without|until|unless|before|need|more information|more details|missing)\b", re.IGNORECASE
)
SUCCESS_CLAIM = re.compile(
    r"\b(?:I(?:'ve|’ve| have)?\s+(?:solved|found|computed|calculated|figured out|worked out|"
    r"determined)\b|(?:answer|solution|result) is (?:correct|right|above|below|as follows|ready|"
    r"done|clear|obvious|attached)|problem (?:is|has been) solved|here(?:'s|’s| is) (?:the|my) "
    r"(?:answer|solution))",
    re.IGNORECASE,
)
NEGATED_SPAN = re.compile(
    r"^\W*(?:not|n't|unclear|unknown|impossible|undetermined|indeterminate|cannot|can't|"
    r"depends|dependent|missing|incomplete|ambiguous|uncertain)\b|\b(?:depends|without|unless|"
    r"need)\b",
    re.IGNORECASE,
)

# ----------------------------- bounds, ranges and alternatives around an answer (rule 4)

BOUND_BEFORE = re.compile(
    r"(?:\b(?:at\s+(?:least|most)|(?:no|not)\s+(?:more|less|fewer|over|under)(?:\s+than)?|"
    r"(?:more|less|fewer|greater|smaller|larger|bigger|higher|lower)\s+than|over|under|above|below|beyond|"
    r"up\s+to|upwards\s+of|as\s+(?:much|many|few|little|high|low)\s+as|within|"
    r"approximately|approx|about|around|roughly|nearly|almost|close\s+to|circa|ca|"
    r"somewhere(?:\s+(?:around|near|between))?|between)\b\.?|(?<![\d)%\s])[^\S\n]*[<>≤≥≠]=?|"
    r"^[^\S\n]*[<>≤≥≠]=?|[≈∼~±∓≲≳∈∉∪∩]|\+/-|\+-)"
    r"[\s:=*_$€£¥]*$",
    re.IGNORECASE,
)
"""A bound, an approximation or a relation right before an answer (``at least 42``, ``x ≥ 42``).

A relation after a number is a comparison (``because 15 > 14``), not a bound."""
BOUND_AFTER = re.compile(
    r"^(?:[^\S\n]*(?:\+(?![^\S\n]*[$€£¥]?(?:\d|\.\d|\())|-?ish\b|±|\+/-|\+-|[≈∼≲≳∈]|"
    r"[<>≤≥≠]=?(?![^\S\n]*[-−$€£¥]?\.?\d))|"
    r"[\s,(\[]*(?:[^\W\d_]+,?[^\S\n]+){0,2}?(?:or\s+(?:more|less|fewer|so|greater|higher|lower|above|below|"
    r"over|under|thereabouts|something|close|similar|nearby|around|up|down)|at\s+(?:the\s+(?:very\s+)?)?"
    r"(?:least|most)|give\s+or\s+take|plus\s+or\s+minus|more\s+or\s+less|"
    r"and\s+(?:up|above|over|more|higher|beyond|below|under|less|fewer|lower)|approx(?:imately|\.)?|"
    r"roughly|or\s+thereabouts)\b)",
    re.IGNORECASE,
)
"""A bound or an approximation right after an answer (``42+``, ``42 or more``, ``42-ish``, ``42 ≤ x``).

``maximum``/``minimum`` are not bounds: questions ask for them (``a maximum of 8 minutes``)."""
ALTERNATIVE_CUE = re.compile(
    r"\b(?:or|either|nor|alternatively|otherwise|unless|else|maybe|perhaps|possibly|probably|"
    r"(?:could|might|may)\s+(?:also\s+|equally\s+|instead\s+)?be|could\s+also|might\s+also|"
    r"also\s+(?:possible|plausible|valid|correct|acceptable|right|likely|works?)|"
    r"another\s+(?:possibility|option|answer|candidate|interpretation|reading)|depending|depends|if\s+not)\b|[∨|]",
    re.IGNORECASE,
)
"""Words that offer a different number as another answer (``The answer is 42, or maybe 37``)."""
ALTERNATIVE_ANYWHERE = re.compile(
    r"\b(?:(?:could|might|may)\s+(?:also|instead|equally)\s+be|or\s+(?:maybe|perhaps|possibly|probably)|"
    r"also\s+(?:possible|plausible|valid|correct|acceptable|likely)|"
    r"another\s+(?:possibility|option|possible\s+answer|candidate|interpretation|reading))\b",
    re.IGNORECASE,
)
"""Cues that offer another answer wherever they are in a later sentence (``37 is also possible``)."""
CONDITIONAL_OPENING = re.compile(r"^[\W_]*(?:if|when|assuming|suppose|supposing|in case)\b", re.IGNORECASE)
ALTERNATIVE_OPENING = re.compile(
    r"^[\W_]*(?:(?:but|and|so|then|or)\W+)?(?:or|either(?!\s+way)|alternatively|otherwise|else|unless|maybe|perhaps|"
    r"possibly|probably|failing\s+that|if\s+(?:not|(?:that|this|it)(?:['’]s|\s+is)?\s+(?:not|wrong|incorrect)|"
    r"(?:I['’]m|I\s+am)\s+wrong|(?:we|you)\s+round|rounded|rounding)\b|"
    r"in\s+case|(?:it|that|this|the\s+answer)\s+(?:could|might|may)\s+(?:also\s+|instead\s+)?be)\b",
    re.IGNORECASE,
)
"""The opening of a later sentence that offers another answer (``Or maybe 37.``, ``If not, 37.``)."""
CONDITIONAL_CUE = re.compile(r"\b(?:if|in case|assuming|suppose|supposing|provided)\b", re.IGNORECASE)
NEGATED_NUMBER = re.compile(
    r"(?:\b(?:not|never|rather\s+than|instead\s+of|other\s+than|except|no\s+longer)|n['’]t)[^\S\n]*[$€£¥]?$",
    re.IGNORECASE,
)
CLAUSE_BREAK = re.compile(r"[^\W\d_]+\W*[:;]")
PARENTHESES = re.compile(r"\([^()]*(?:\)|$)")
OR_GAP = re.compile(r"\b(?:or|either|versus|vs|nor)\b|[∨|]", re.IGNORECASE)
RANGE_CONNECTORS = frozenset("– — ~ ∼ ≈ to through thru till until … → -> ± +/- +-".split())
RANGE_INTRO = re.compile(r"\b(?:between|from|range|ranging)\W*$", re.IGNORECASE)
LIST_GAP = re.compile(r"^\s*(?:[a-z]+\s*)?(?:[,;&∧]|,?\s*and)\s*$", re.IGNORECASE)
FILLER_WORDS = frozenset(
    "or and either maybe perhaps possibly it is could be the answer answers possible "
    "options option candidates guess guesses".split()
)


# ----------------------------- LaTeX clean-up (rule 2)


def _latex_symbols(names: str, symbol: str) -> tuple[re.Pattern[str], str]:
    return re.compile(rf"\\(?:{'|'.join(names.split())})(?![a-zA-Z])"), f" {symbol} "


LATEX_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>\n]{0,80})?/?>"), " "),  # <b>, </answer>
    (re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"\1/\2"),
    (re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname|mbox|textrm|textit|emph)\s*\{([^{}]*)\}"), r" \1 "),
    (re.compile(r"\\\$"), "$"),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\\[,!]"), ""),
    (re.compile(r"\\[;: ]"), " "),
    (re.compile(r"\\(?:begin|end)\s*\{[^{}\n]*\}"), " ; "),
    (re.compile(r"\\\\"), " ; "),
    (re.compile(r"\\(?:left|right|displaystyle)\b"), ""),
    (re.compile(r"\\(?:quad|qquad)\b"), " ; "),
    (re.compile(r"\\[()\[\]]"), " "),
    (re.compile(r"\\[{}]"), " "),
    (re.compile(r"\\(?:times|cdot|ast)\b"), " * "),
    (re.compile(r"\\div\b"), " ÷ "),
    (re.compile(r"\^\s*\{?\\circ\}?"), ""),
    _latex_symbols("le leq leqslant leqq", "≤"),
    _latex_symbols("ge geq geqslant geqq", "≥"),
    _latex_symbols("lt", "<"),
    _latex_symbols("gt", ">"),
    _latex_symbols("ne neq", "≠"),
    _latex_symbols("approx approxeq sim simeq cong thickapprox thicksim lesssim gtrsim", "≈"),
    _latex_symbols("pm mp", "±"),
    _latex_symbols("in notin subset subseteq cup cap setminus infty emptyset varnothing", "∈"),
    _latex_symbols("lor vee land wedge mid", "∨"),
    _latex_symbols("ldots dots cdots dotsc dotsb", "…"),
    _latex_symbols("to rightarrow longrightarrow Rightarrow implies", "→"),
    (re.compile(r"(?<=\d)\.{2,}(?=[^\S\n]*[-−+$€£¥]?\d)"), " … "),  # 40..45
    (re.compile(r"\\[a-zA-Z]+"), " "),
    (re.compile(r"[{}]"), ""),
)
