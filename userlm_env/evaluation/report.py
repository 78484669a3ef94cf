r"""Evaluation reports: a self-contained HTML page and a Markdown summary.

The HTML report is one file that opens offline in any browser: inline CSS and JS, figures embedded
as base64 PNG data URIs, no network access. It holds

* the result tables (sticky headers, monospace numbers),
* the figures (rendered with matplotlib, see :func:`figure_to_png` and ``plots.py``),
* a transcript browser: episodes can be filtered by setting, assistant, user, task id and score;
  each shows the chat turn by turn, the step info after every assistant reply (reply kind, extracted
  answer, correctness, reward and its per-turn components), and highlights the user messages that
  revealed new shards of the task, with the shard ids and text. An episode cut at its turn limit
  before every shard was revealed (it could not be completed) carries a "cut at max turns" badge and
  can be filtered on.

Every piece of text that comes from data (model outputs, task text, table cells) is HTML-escaped in
Python; the page's own script reads only ``data-*`` attributes and writes only ``textContent``, so a
``<script>`` in a model reply is shown as text, never run.

The Markdown summary holds the same tables as GitHub pipe tables, for terminals and papers.

Both files are UTF-8; text that UTF-8 cannot hold (lone surrogates, which JSON logs can carry) is
written as visible ``\udXXX`` escapes instead of failing.

Episode records are those written by :mod:`userlm_env.rollout` (one dict per episode). Evaluation runs
add the optional fields ``setting``, ``shards`` (``[{"shard_id", "text"}]``), ``instruction`` and
``opening_shards``; older logs lack them and still render.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import io
import math
import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from userlm_env.evaluation.records import cut_before_all_shards, opening_shards

__all__ = [
    "ReportTable",
    "ReportFigure",
    "figure_to_png",
    "format_cell",
    "markdown_table",
    "write_markdown_summary",
    "write_html_report",
    "select_episodes",
]

MISSING = "—"
"""How an absent value (``None`` or NaN) is shown."""

DEFAULT_MAX_EPISODES = 500
"""How many episodes the HTML transcript browser embeds by default."""


# --------------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------------


@dataclass
class ReportTable:
    """A result table for the HTML report and the Markdown summary.

    Attributes:
        title: heading shown above the table.
        columns: column names.
        rows: one list of cells per row, as long as ``columns``; a cell is a str, int, float
            or None (shown as "—"). Floats are formatted by :func:`format_cell`.
        note: optional text shown under the table (e.g. how confidence intervals were computed).

    Raises:
        ValueError: a row does not have one cell per column.
    """

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def __post_init__(self) -> None:
        for index, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: row {index} has {len(row)} cells for {len(self.columns)} columns"
                )

    def numeric_columns(self) -> list[bool]:
        """Whether each column holds only numbers (and missing values), with at least one number."""
        flags = []
        for col in range(len(self.columns)):
            cells = [row[col] for row in self.rows if row[col] is not None]
            flags.append(bool(cells) and all(_is_number(cell) for cell in cells))
        return flags


@dataclass
class ReportFigure:
    """A figure embedded in the HTML report.

    Attributes:
        title: heading shown above the image (also its alt text).
        png: the PNG bytes (see :func:`figure_to_png`).
        caption: optional text shown under the image.
    """

    title: str
    png: bytes = field(repr=False)
    caption: str = ""


def figure_to_png(fig: Any, *, dpi: int = 120) -> bytes:
    """Render a matplotlib figure to PNG bytes (Agg) and close it.

    Works with figures made by ``matplotlib.figure.Figure`` (as ``plots.py`` does, no pyplot state)
    and with pyplot figures; the global backend is left unchanged.

    Args:
        fig: a ``matplotlib.figure.Figure``.
        dpi: resolution of the PNG.

    Returns:
        The PNG file content.
    """
    buffer = io.BytesIO()
    try:  # savefig(format="png") renders with Agg whatever the figure's canvas or the global backend
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# Cell formatting and Markdown
# --------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_cell(value: Any) -> str:
    """Format one table cell as text.

    ``None`` and NaN become "—"; booleans "yes"/"no"; ints as they are; floats with three decimals
    (``0.523``, ``12.000``), or three significant digits in scientific notation when they are tiny
    (``4.20e-05``); infinities as "∞"/"-∞". Anything else goes through ``str``.

    Args:
        value: the cell.

    Returns:
        The text to show.
    """
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.3f}"
    return str(value)


def _markdown_escape(text: str) -> str:
    """Make text safe inside a GitHub pipe-table cell (pipes escaped, one line)."""
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def markdown_table(table: ReportTable) -> str:
    """Render a table as a GitHub-flavoured Markdown pipe table.

    Numeric columns are right-aligned; pipes in cells are escaped and line breaks become spaces.
    The table title and note are not included (see :func:`write_markdown_summary`).

    Args:
        table: the table.

    Returns:
        The table text, ending with a newline.
    """
    header = [_markdown_escape(str(name)) for name in table.columns]
    align = ["---:" if numeric else "---" for numeric in table.numeric_columns()]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in table.rows:
        lines.append("| " + " | ".join(_markdown_escape(format_cell(cell)) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def write_markdown_summary(path: str | Path, *, title: str, tables: Sequence[ReportTable], intro: str = "") -> Path:
    """Write a Markdown summary: a title, the intro, then each table with its title and note.

    Args:
        path: the file to write (parent folders are created).
        title: the document title (a level-1 heading).
        tables: the tables, in order.
        intro: optional Markdown text put under the title as it is.

    Returns:
        The path written.
    """
    parts = [f"# {title}\n"]
    if intro.strip():
        parts.append(intro.strip() + "\n")
    for table in tables:
        parts.append(f"## {table.title}\n")
        parts.append(markdown_table(table))
        if table.note.strip():
            parts.append(f"_{table.note.strip()}_\n")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8", errors="backslashreplace")
    return out


# --------------------------------------------------------------------------------------------------
# HTML helpers
# --------------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """HTML-escape any value (quotes included, so the result is safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def _paragraphs(text: str) -> str:
    """Escaped paragraphs, one per blank-line-separated block."""
    blocks = [block.strip() for block in text.split("\n\n") if block.strip()]
    return "".join(f"<p>{_e(block)}</p>" for block in blocks)


def _html_table(table: ReportTable, index: int) -> str:
    numeric = table.numeric_columns()
    head = "".join(f'<th class="{"num" if num else ""}">{_e(name)}</th>' for name, num in zip(table.columns, numeric))
    body_rows = []
    for row in table.rows:
        cells = []
        for cell in row:
            classes = ["num"] if _is_number(cell) else []
            if cell is None or (isinstance(cell, float) and math.isnan(cell)):
                classes.append("missing")
            cells.append(f'<td class="{" ".join(classes)}">{_e(format_cell(cell))}</td>')
        body_rows.append("<tr>" + "".join(cells) + "</tr>")
    if not body_rows:
        body_rows.append(f'<tr><td class="missing" colspan="{max(1, len(table.columns))}">(no rows)</td></tr>')
    note = f'<p class="note">{_e(table.note)}</p>' if table.note.strip() else ""
    return (
        f'<section class="report-table" id="table-{index}"><h3>{_e(table.title)}</h3>'
        f'<div class="table-wrap"><table class="data"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body_rows)}</tbody></table></div>{note}</section>"
    )


def _html_figure(figure: ReportFigure, index: int) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    caption = f"<figcaption>{_e(figure.caption)}</figcaption>" if figure.caption.strip() else ""
    return (
        f'<figure class="report-figure" id="figure-{index}"><h3>{_e(figure.title)}</h3>'
        f'<img src="data:image/png;base64,{data}" alt="{_e(figure.title)}">{caption}</figure>'
    )


# --------------------------------------------------------------------------------------------------
# Episodes
# --------------------------------------------------------------------------------------------------


def _group_key(episode: dict[str, Any]) -> tuple[str, str, str]:
    return (str(episode.get("setting") or ""), str(episode.get("assistant") or ""), str(episode.get("user") or ""))


def select_episodes(episodes: Sequence[dict[str, Any]], max_episodes: int | None) -> list[int]:
    """Choose which episodes to embed when there are more than ``max_episodes``.

    Episodes are taken round-robin over the (setting, assistant, user) groups, in their order within
    each group, so every combination stays represented; the chosen indices are returned in the
    original order.

    Args:
        episodes: all episode records.
        max_episodes: the cap (None: no cap).

    Returns:
        Sorted indices into ``episodes``.
    """
    if max_episodes is None or len(episodes) <= max_episodes:
        return list(range(len(episodes)))
    groups: OrderedDict[tuple[str, str, str], list[int]] = OrderedDict()
    for index, episode in enumerate(episodes):
        groups.setdefault(_group_key(episode), []).append(index)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < max_episodes:
        for members in groups.values():
            if depth < len(members) and len(chosen) < max_episodes:
                chosen.append(members[depth])
        depth += 1
    return sorted(chosen)


def _shard_texts(episode: dict[str, Any]) -> dict[str, str]:
    texts = {}
    for shard in episode.get("shards") or []:
        if isinstance(shard, dict) and "shard_id" in shard:
            texts[str(shard["shard_id"])] = str(shard.get("text", ""))
    return texts


def _score_class(score: Any) -> str:
    if not _is_number(score) or math.isnan(score):
        return "na"
    if score >= 1:
        return "good"
    if score <= 0:
        return "bad"
    return "partial"


def _correct_badge(correct: Any) -> str:
    if correct is True:
        return '<span class="badge good">correct</span>'
    if correct is False:
        return '<span class="badge bad">incorrect</span>'
    return f'<span class="badge na">{MISSING}</span>'


def _components_table(components: dict[str, Any]) -> str:
    if not components:
        return ""
    head = "".join(f"<th>{_e(name)}</th>" for name in components)
    cells = []
    for value in components.values():
        classes = ["num"]
        if _is_number(value) and value != 0:
            classes.append("neg" if value < 0 else "nonzero")
        cells.append(f'<td class="{" ".join(classes)}">{_e(format_cell(value))}</td>')
    return f'<table class="components"><thead><tr>{head}</tr></thead><tbody><tr>{"".join(cells)}</tr></tbody></table>'


def _step_info(step: dict[str, Any]) -> str:
    items = [
        ("reply kind", _e(step.get("reply_kind") or MISSING)),
        ("extracted answer", f"<code>{_e(step.get('extracted_answer'))}</code>")
        if step.get("extracted_answer") is not None
        else ("extracted answer", MISSING),
        ("correct", _correct_badge(step.get("correct"))),
        ("reward", f'<span class="num">{_e(format_cell(step.get("reward")))}</span>'),
    ]
    if step.get("score") is not None:
        items.append(("score", f'<span class="num">{_e(format_cell(step.get("score")))}</span>'))
    if step.get("end_reason"):
        items.append(("end", _e(step["end_reason"])))
    if step.get("reply_truncated"):
        items.append(("reply", '<span class="badge partial">truncated</span>'))
    kv = "".join(f'<span class="kv"><span class="k">{k}</span> {v}</span>' for k, v in items)
    reason = f'<div class="judge">judge: {_e(step["judge_reason"])}</div>' if step.get("judge_reason") else ""
    turn = _e(step.get("turn", ""))
    return (
        f'<div class="step-info" data-turn="{turn}"><div class="kvs">{kv}</div>'
        f"{_components_table(step.get('reward_components') or {})}{reason}</div>"
    )


def _shard_reveal(shard_ids: Sequence[Any], texts: dict[str, str]) -> str:
    rows = []
    for shard_id in shard_ids:
        text = texts.get(str(shard_id))
        body = _e(text) if text is not None else '<span class="missing">(shard text not in the log)</span>'
        rows.append(f'<div class="shard"><span class="shard-id">shard {_e(shard_id)}</span> {body}</div>')
    return f'<div class="shard-reveal">{"".join(rows)}</div>'


def _message(role: str, content: Any, index: int, revealed: Sequence[Any], texts: dict[str, str]) -> str:
    role_class = role if role in ("user", "assistant", "system") else "other"
    classes = ["msg", role_class] + (["revealed"] if revealed else [])
    ids = " ".join(str(s) for s in revealed)
    label = f"{_e(role)} · #{index}"
    if revealed:
        label += f' <span class="badge shard-badge">+ shard{"s" if len(revealed) > 1 else ""} {_e(ids)}</span>'
    reveal = _shard_reveal(revealed, texts) if revealed else ""
    return (
        f'<div class="{" ".join(classes)}" data-shards="{_e(ids)}"><div class="role">{label}</div>'
        f'<div class="content">{_e(content)}</div>{reveal}</div>'
    )


def _chat(episode: dict[str, Any], texts: dict[str, str]) -> str:
    """The transcript, each assistant message followed by its step info.

    The i-th assistant message belongs to ``steps[i]``; the user message right after it revealed
    ``steps[i]["new_shards"]``; user messages before any assistant reply revealed the opening shards.
    """
    steps = episode.get("steps") or []
    opening = opening_shards(episode)
    parts = []
    assistant_turns = 0
    previous_role = None
    for index, message in enumerate(episode.get("transcript") or []):
        role = str(message.get("role", "")) if isinstance(message, dict) else "?"
        content = message.get("content", "") if isinstance(message, dict) else message
        revealed: Sequence[Any] = []
        if role == "user":
            if assistant_turns == 0:
                revealed, opening = opening, []  # only the first user message gets the opening shards
            elif previous_role == "assistant" and assistant_turns - 1 < len(steps):
                revealed = steps[assistant_turns - 1].get("new_shards") or []
        parts.append(_message(role, content, index, revealed, texts))
        if role == "assistant":
            if assistant_turns < len(steps):
                parts.append(_step_info(steps[assistant_turns]))
            assistant_turns += 1
        previous_role = role
    if not parts:
        return '<p class="missing">(empty transcript)</p>'
    return f'<div class="chat">{"".join(parts)}</div>'


def _reveal_turns(episode: dict[str, Any]) -> dict[str, int]:
    """When each shard was revealed: 0 for the opening message, k after the k-th assistant reply."""
    turns = {str(s): 0 for s in opening_shards(episode)}
    for k, step in enumerate(episode.get("steps") or [], start=1):
        for shard in step.get("new_shards") or []:
            turns.setdefault(str(shard), k)
    return turns


def _task_block(episode: dict[str, Any], texts: dict[str, str]) -> str:
    parts = []
    if episode.get("instruction"):
        parts.append(
            f'<details class="instruction"><summary>Full task</summary>'
            f'<div class="content">{_e(episode["instruction"])}</div></details>'
        )
    if texts:
        when = _reveal_turns(episode)
        rows = []
        for shard_id, text in texts.items():
            turn = when.get(shard_id)
            label = "opening" if turn == 0 else (f"after reply {turn}" if turn else "never")
            rows.append(
                f'<tr class="{"" if turn is not None else "unrevealed"}"><td class="num">{_e(shard_id)}</td>'
                f"<td>{_e(text)}</td><td>{_e(label)}</td></tr>"
            )
        parts.append(
            '<details class="shards"><summary>Shards</summary><table class="shard-table"><thead><tr><th>id</th>'
            f"<th>text</th><th>revealed</th></tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
        )
    return "".join(parts)


def _episode_meta(episode: dict[str, Any]) -> str:
    fields = [
        ("episode", episode.get("episode_key", episode.get("episode"))),
        ("seed", episode.get("seed")),
        ("tasks", episode.get("tasks")),
        ("reward fn", episode.get("reward")),
        ("max turns", episode.get("max_turns")),
        ("return", episode.get("return")),
        ("end", episode.get("end_reason")),
        ("terminated", episode.get("terminated")),
        ("truncated", episode.get("truncated")),
        ("seconds", episode.get("seconds")),
    ]
    kv = "".join(
        f'<span class="kv"><span class="k">{_e(k)}</span> {_e(format_cell(v))}</span>'
        for k, v in fields
        if v is not None
    )
    totals = episode.get("component_totals") or {}
    totals_html = f'<div class="totals"><span class="k">component totals</span>{_components_table(totals)}</div>'
    return f'<div class="kvs meta">{kv}</div>' + (totals_html if totals else "")


def _episode(episode: dict[str, Any], index: int) -> str:
    score = episode.get("score")
    error = episode.get("error")
    texts = _shard_texts(episode)
    setting, assistant, user = _group_key(episode)
    task_id = str(episode.get("task_id") or "")
    score_attr = "" if not _is_number(score) or math.isnan(score) else repr(float(score))
    num_shards = episode.get("num_shards")
    revealed = episode.get("shards_revealed")
    shards = f"{_e(format_cell(revealed))}/{_e(format_cell(num_shards))}" if num_shards is not None else MISSING
    badges = [f'<span class="badge {_score_class(score)}">score {_e(format_cell(score))}</span>']
    if error:
        badges.insert(0, '<span class="badge bad">error</span>')
    cut = cut_before_all_shards(episode)
    if cut:
        badges.insert(
            0,
            '<span class="badge partial cut" title="the episode hit its turn limit while shards were still hidden: '
            f'its task could not be completed">cut at max turns: {shards} shards</span>',
        )
    summary = (
        f'<span class="ep-index">#{index}</span>'
        + (f'<span class="tag setting">{_e(setting)}</span>' if setting else "")
        + f'<span class="who">{_e(assistant or "?")} <span class="vs">vs</span> {_e(user or "?")}</span>'
        + f'<span class="task">{_e(task_id)}</span>'
        + '<span class="spacer"></span>'
        + f'<span class="stat">turns <b>{_e(format_cell(episode.get("turns")))}</b></span>'
        + f'<span class="stat">shards <b>{shards}</b></span>'
        + "".join(badges)
    )
    error_html = f'<pre class="error">{_e(error)}</pre>' if error else ""
    return (
        f'<details class="episode" data-index="{index}" data-setting="{_e(setting)}" data-assistant="{_e(assistant)}"'
        f' data-user="{_e(user)}" data-task="{_e(task_id)}" data-score="{score_attr}" data-error="{1 if error else 0}"'
        f' data-cut="{1 if cut else 0}">'
        f'<summary>{summary}</summary><div class="ep-body">{error_html}{_episode_meta(episode)}'
        f"{_task_block(episode, texts)}{_chat(episode, texts)}</div></details>"
    )


def _options(values: Iterable[str]) -> str:
    return '<option value="">all</option>' + "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)


def _transcript_browser(episodes: Sequence[dict[str, Any]], max_episodes: int | None) -> str:
    chosen = select_episodes(episodes, max_episodes)
    embedded = [episodes[i] for i in chosen]

    def distinct(position: int) -> list[str]:
        return sorted({_group_key(ep)[position] for ep in embedded} - {""})

    if len(chosen) < len(episodes):
        cap = (
            f'<p class="notice" id="episode-cap">Showing {len(chosen)} of {len(episodes)} episodes '
            f"(capped at max_episodes={max_episodes}; taken round-robin over setting × assistant × user, so "
            "every combination is represented). The tables and figures use all episodes.</p>"
        )
    else:
        cap = f'<p class="notice" id="episode-cap">All {len(episodes)} episodes are embedded.</p>'
    filters = (
        '<div class="filters" id="filters">'
        f'<label>setting <select id="f-setting">{_options(distinct(0))}</select></label>'
        f'<label>assistant <select id="f-assistant">{_options(distinct(1))}</select></label>'
        f'<label>user <select id="f-user">{_options(distinct(2))}</select></label>'
        '<label>task id <input id="f-task" type="search" placeholder="substring"></label>'
        '<label>score ≥ <input id="f-min" type="number" step="0.1" class="narrow"></label>'
        '<label>score ≤ <input id="f-max" type="number" step="0.1" class="narrow"></label>'
        '<label><input id="f-errors" type="checkbox"> errors only</label>'
        '<label><input id="f-cut" type="checkbox"> cut before all shards only</label>'
        '<button type="button" id="expand-all">expand</button>'
        '<button type="button" id="collapse-all">collapse</button>'
        '<span id="ep-count" class="count"></span></div>'
    )
    body = "".join(_episode(episodes[i], i) for i in chosen) or '<p class="missing">(no episodes)</p>'
    return f'{cap}{filters}<div id="episodes">{body}</div>'


# --------------------------------------------------------------------------------------------------
# Page
# --------------------------------------------------------------------------------------------------

_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --border:#d0d7de; --bg2:#f6f8fa; --good:#1a7f37; --good-bg:#dafbe1;
  --bad:#cf222e; --bad-bg:#ffebe9; --partial:#9a6700; --partial-bg:#fff8c5; --accent:#0969da; --shard-bg:#fff4d6;
  --mono: ui-monospace, SFMono-Regular, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
* { box-sizing: border-box; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
  margin: 0 auto; max-width: 1280px; padding: 0 24px 48px; }
header { border-bottom: 1px solid var(--border); margin-bottom: 16px; }
h1 { font-size: 24px; margin: 24px 0 4px; } h2 { font-size: 19px; margin-top: 32px;
  border-bottom: 1px solid var(--border); padding-bottom: 4px; } h3 { font-size: 15px; margin: 20px 0 8px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; }
.generated, .note, figcaption, .notice, .count, .judge { color: var(--muted); font-size: 12.5px; }
.num, td.num { font-family: var(--mono); font-variant-numeric: tabular-nums; text-align: right; }
th.num { text-align: right; font-family: inherit; }
.missing { color: var(--muted); }
.table-wrap { display: inline-block; max-width: 100%; max-height: 70vh; overflow: auto; border: 1px solid var(--border);
  border-radius: 6px; vertical-align: top; }
.report-table .note { margin-top: 4px; }
table.data { border-collapse: separate; border-spacing: 0; font-size: 13px; }
table.data th { position: sticky; top: 0; z-index: 1; background: var(--bg2);
  border-bottom: 1px solid var(--border); padding: 6px 10px; white-space: nowrap; }
table.data td { padding: 4px 14px 4px 10px; border-bottom: 1px solid #eaeef2; }
table.data th:not(.num) { text-align: left; }
table.data tbody tr:nth-child(even) td { background: #fafbfc; }
table.data tbody tr:hover td { background: #eef4ff; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 16px; }
figure.report-figure { margin: 0; padding: 8px 12px; border: 1px solid var(--border); border-radius: 6px; }
figure.report-figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
.filters { position: sticky; top: 0; z-index: 5; background: rgba(255,255,255,.96); padding: 8px 0;
  border-bottom: 1px solid var(--border); display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center; }
.filters label { font-size: 13px; color: var(--muted); } .filters select, .filters input { font: inherit; }
.filters input.narrow { width: 5em; } .filters button { font: inherit; padding: 1px 10px; }
details.episode { border: 1px solid var(--border); border-radius: 6px; margin: 6px 0; }
details.episode > summary { cursor: pointer; padding: 6px 10px; display: flex; flex-wrap: wrap; gap: 10px;
  align-items: center; background: var(--bg2); border-radius: 6px; list-style-position: inside; }
details.episode[open] > summary { border-bottom: 1px solid var(--border); border-radius: 6px 6px 0 0; }
.ep-index { font-family: var(--mono); color: var(--muted); } .vs { color: var(--muted); font-size: 12px; }
.task { font-family: var(--mono); font-size: 12.5px; } .spacer { flex: 1; } .stat { font-size: 12.5px; }
.tag { font-size: 11.5px; padding: 0 6px; border-radius: 10px; border: 1px solid var(--accent); color: var(--accent); }
.badge { font-size: 11.5px; padding: 1px 7px; border-radius: 10px; white-space: nowrap; font-weight: 600; }
.badge.good { background: var(--good-bg); color: var(--good); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.partial { background: var(--partial-bg); color: var(--partial); }
.badge.na { background: #eaeef2; color: var(--muted); }
.badge.shard-badge { background: #ffd8a8; color: #7a4100; }
.ep-body { padding: 8px 12px 12px; }
.kvs { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12.5px; }
.kv .k, .totals .k { color: var(--muted); } .meta { margin-bottom: 6px; }
.totals { display: flex; gap: 10px; align-items: center; font-size: 12.5px; margin-bottom: 6px; }
pre.error { background: var(--bad-bg); color: var(--bad); padding: 8px; border-radius: 6px; white-space: pre-wrap; }
.chat { display: flex; flex-direction: column; gap: 6px; margin-top: 8px; }
.msg { max-width: 88%; padding: 6px 10px; border-radius: 8px; border: 1px solid var(--border); }
.msg.user { align-self: flex-start; background: #f6f8fa; }
.msg.assistant { align-self: flex-end; background: #eef4ff; border-color: #b6d3ff; }
.msg.revealed { background: var(--shard-bg); border-color: #f0b64a; box-shadow: inset 4px 0 0 #f0b64a; }
.msg .role { font-size: 11.5px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
.content { white-space: pre-wrap; word-wrap: break-word; }
.shard-reveal { margin-top: 6px; padding-top: 4px; border-top: 1px dashed #f0b64a; font-size: 12.5px; }
.shard-id { font-family: var(--mono); font-weight: 600; color: #7a4100; margin-right: 4px; }
.step-info { align-self: flex-end; max-width: 88%; font-size: 12px; padding: 2px 4px 6px; }
.step-info .kvs { justify-content: flex-end; }
table.components { border-collapse: collapse; font-size: 11.5px; margin-top: 3px; margin-left: auto; }
table.components th { font-weight: 500; color: var(--muted); padding: 0 6px; text-align: right; }
table.components td { padding: 0 6px; color: #8c959f; }
table.components td.nonzero { color: var(--fg); font-weight: 600; }
table.components td.neg { color: var(--bad); font-weight: 600; }
.totals table.components { margin-left: 0; }
details.instruction, details.shards { margin: 4px 0; font-size: 13px; }
details.instruction > summary, details.shards > summary { cursor: pointer; color: var(--accent); }
table.shard-table { border-collapse: collapse; font-size: 12.5px; margin-top: 4px; }
table.shard-table td, table.shard-table th { border: 1px solid var(--border); padding: 2px 8px; text-align: left; }
table.shard-table tr.unrevealed td { color: var(--muted); }
code { font-family: var(--mono); background: #eaeef2; padding: 0 4px; border-radius: 4px; }
"""

# The page's own script: it reads data-* attributes and writes textContent only (never innerHTML),
# so nothing from the data can become markup or code.
_JS = """
(function () {
  "use strict";
  var body = document.body;
  var episodes = Array.prototype.slice.call(document.querySelectorAll("details.episode"));
  var ids = ["setting", "assistant", "user", "task", "min", "max", "errors", "cut"];
  function el(name) { return document.getElementById("f-" + name); }
  function value(name) { var e = el(name); return e.type === "checkbox" ? (e.checked ? "1" : "") : e.value; }
  function matches(d, f) {
    if (f.setting && d.setting !== f.setting) return false;
    if (f.assistant && d.assistant !== f.assistant) return false;
    if (f.user && d.user !== f.user) return false;
    if (f.task && d.task.toLowerCase().indexOf(f.task.toLowerCase()) < 0) return false;
    if (f.errors && d.error !== "1") return false;
    if (f.cut && d.cut !== "1") return false;
    var score = d.score === "" ? NaN : parseFloat(d.score);
    if (f.min !== "" && !(score >= parseFloat(f.min))) return false;
    if (f.max !== "" && !(score <= parseFloat(f.max))) return false;
    return true;
  }
  function apply() {
    var f = {}, params = [];
    ids.forEach(function (name) {
      f[name] = value(name);
      if (f[name] !== "") params.push(encodeURIComponent(name) + "=" + encodeURIComponent(f[name]));
    });
    var shown = 0;
    episodes.forEach(function (ep) { var ok = matches(ep.dataset, f); ep.hidden = !ok; if (ok) shown++; });
    var count = document.getElementById("ep-count");
    if (count) count.textContent = shown + " of " + episodes.length + " episodes shown";
    body.setAttribute("data-episodes-shown", String(shown));
    if (window.history && history.replaceState && location.protocol !== "about:") {
      try { history.replaceState(null, "", params.length ? "#" + params.join("&") : location.pathname); } catch (e) {}
    }
  }
  function fromHash() {
    var hash = location.hash.replace(/^#/, "");
    if (!hash) return;
    hash.split("&").forEach(function (pair) {
      var kv = pair.split("="), name = decodeURIComponent(kv[0]), val = decodeURIComponent(kv[1] || "");
      if (ids.indexOf(name) < 0) return;
      var e = el(name);
      if (e.type === "checkbox") e.checked = val !== ""; else e.value = val;
    });
  }
  if (el("setting")) {
    fromHash();
    ids.forEach(function (name) {
      el(name).addEventListener("input", apply);
      el(name).addEventListener("change", apply);
    });
    document.getElementById("expand-all").addEventListener("click", function () {
      episodes.forEach(function (ep) { if (!ep.hidden) ep.open = true; });
    });
    document.getElementById("collapse-all").addEventListener("click", function () {
      episodes.forEach(function (ep) { ep.open = false; });
    });
    apply();
  }
  function checkImages() {
    var imgs = document.querySelectorAll("figure.report-figure img"), ok = 0;
    Array.prototype.forEach.call(imgs, function (img) {
      var decoded = img.complete && img.naturalWidth > 0;
      img.setAttribute("data-decoded", decoded ? "yes" : "no");
      img.setAttribute("data-natural-width", String(img.naturalWidth));
      img.setAttribute("data-natural-height", String(img.naturalHeight));
      if (decoded) ok++;
    });
    body.setAttribute("data-images-decoded", ok + "/" + imgs.length);
  }
  if (document.readyState === "complete") checkImages(); else window.addEventListener("load", checkImages);
  body.setAttribute("data-report-js", "ready");
})();
"""


_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()}'"
)
"""Content security policy: no network at all (images are data: URIs), and only the page's own script
may run (pinned by its hash). Defence in depth: the data is escaped anyway."""


def write_html_report(
    path: str | Path,
    *,
    title: str,
    tables: Sequence[ReportTable],
    figures: Sequence[ReportFigure],
    episodes: Sequence[dict[str, Any]],
    intro: str = "",
    max_episodes: int | None = DEFAULT_MAX_EPISODES,
) -> Path:
    """Write the self-contained HTML report.

    Args:
        path: the file to write (parent folders are created).
        title: page title and heading.
        tables: result tables, in order.
        figures: figures, in order (PNG bytes, embedded as data URIs).
        episodes: episode records for the transcript browser (records with a non-null ``error``
            and an empty transcript are shown with their error).
        intro: plain text under the title (blank lines separate paragraphs; escaped, not Markdown).
        max_episodes: at most this many episodes are embedded (None: all); the page says how many
            were left out and how the embedded ones were chosen (see :func:`select_episodes`).

    Returns:
        The path written.
    """
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tables_html = "".join(_html_table(t, i) for i, t in enumerate(tables)) or '<p class="missing">(no tables)</p>'
    figures_html = "".join(_html_figure(f, i) for i, f in enumerate(figures)) or '<p class="missing">(no figures)</p>'
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><p class="generated">Generated {generated} by userlm_env · '
        f"{len(tables)} tables · {len(figures)} figures · {len(episodes)} episodes</p>"
        '<nav><a href="#tables">Tables</a><a href="#figures">Figures</a><a href="#transcripts">Transcripts</a></nav>'
        f"</header>{_paragraphs(intro)}"
        f'<section id="tables"><h2>Tables</h2>{tables_html}</section>'
        f'<section id="figures"><h2>Figures</h2><div class="figures">{figures_html}</div></section>'
        f'<section id="transcripts"><h2>Transcripts</h2>{_transcript_browser(episodes, max_episodes)}</section>'
        f"<script>{_JS}</script></body></html>\n"
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8", errors="backslashreplace")  # lone surrogates
    return out
