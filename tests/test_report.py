"""Tests of the evaluation report: Markdown tables, HTML escaping, plots, and the HTML report opened in
real headless Chromium (``scripts/install_chromium.sh`` installs it; a missing browser FAILS the test).

The browser tests read the DOM after the page's scripts ran (``--dump-dom``) and check that tables,
figures (decoded by the browser), transcripts, step info and highlighted shards render, that the
filters work, and that model output containing HTML/JS stays text. A negative control writes the
same report with escaping switched off and checks that the injection checks then do fire.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from userlm_env.evaluation import report as report_module
from userlm_env.evaluation.plots import bar_chart_with_ci, turn_curve
from userlm_env.evaluation.report import (
    ReportFigure,
    ReportTable,
    figure_to_png,
    format_cell,
    markdown_table,
    select_episodes,
    write_html_report,
    write_markdown_summary,
)

# --------------------------------------------------------------------------------------------------
# Hand-made episode records (the format of userlm_env/rollout.py plus the evaluation fields)
# --------------------------------------------------------------------------------------------------

COMPONENTS = ("correctness", "premature_answer", "clarification", "hedge", "turn", "length", "no_attempt")
ALERT_REPLY = "Sure! <script>alert(1)</script> The answer is 7."
# Would change the DOM / title if it ever became markup and ran (CSP aside, see the negative control).
DOM_PAYLOAD = (
    "<script>document.title='PWN'+'ED';document.body.setAttribute('data-pwned','script')</script>"
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\"><b id=\"injected-b\">bold?</b>"
)
ATTR_PAYLOAD = 'evil" data-pwned="attr'
SHARD_TEXTS = {
    1: "How many apples does Mia have at the end?",
    2: "Mia starts with 12 apples.",
    3: "She gives 5 apples to Leo.",
}


def _step(
    turn: int,
    reply: str,
    *,
    new_shards: list[int],
    revealed: list[int],
    kind: str = "clarification",
    answer: str | None = None,
    correct: bool | None = None,
    reward: float = 0.0,
    end: str | None = None,
) -> dict:
    components = dict.fromkeys(COMPONENTS, 0.0)
    components.update(turn=1.0, length=0.05, clarification=1.0 if kind == "clarification" else 0.0)
    if correct is not None:
        components["correctness"] = 1.0 if correct else 0.0
    return {
        "reply": reply,
        "reward": reward,
        "turn": turn,
        "reward_components": components,
        "reply_kind": kind,
        "answer_attempt": answer is not None,
        "extracted_answer": answer,
        "correct": correct,
        "judge_reason": "test",
        "score": 1.0 if correct else 0.0,
        "shards_revealed": revealed,
        "new_shards": new_shards,
        "user_ended": end is not None,
        "end_reason": end,
        "user_meta": {},
    }


def _episode(
    index: int,
    *,
    setting: str | None,
    assistant: str,
    user: str,
    transcript: list[tuple[str, str]],
    steps: list[dict],
    score: float,
    with_eval_fields: bool = True,
) -> dict:
    record: dict[str, Any] = {
        "episode_key": f"ep={index}",
        "episode": index,
        "seed": index,
        "assistant": assistant,
        "user": user,
        "tasks": "procedural",
        "reward": "lic",
        "max_turns": 6,
        "task_id": f"procedural/{1000 + index}",
        "num_shards": 3,
        "transcript": [{"role": r, "content": c} for r, c in transcript],
        "steps": steps,
        "return": sum(s["reward"] for s in steps),
        "score": score,
        "turns": len(steps),
        "shards_revealed": len(steps[-1]["shards_revealed"]) if steps else 0,
        "end_reason": "answered",
        "terminated": True,
        "truncated": False,
        "component_totals": {"correctness": score, "turn": float(len(steps))},
        "seconds": 0.5,
        "error": None,
    }
    if with_eval_fields:
        record.update(
            setting=setting,
            shards=[{"shard_id": k, "text": v} for k, v in SHARD_TEXTS.items()],
            instruction="Mia starts with 12 apples. She gives 5 apples to Leo. How many apples does Mia have?",
        )
    return record


def make_episodes() -> list[dict]:
    """Five records: a sharded success, an old-format log with injections, FULL, CONCAT and an error."""
    sharded = _episode(
        0,
        setting="SHARDED",
        assistant="qwen-0.5b",
        user="userlm-8b",
        score=1.0,
        transcript=[
            ("user", "How many apples does Mia have at the end?"),
            ("assistant", "How many apples does she start with?"),
            ("user", "She has 12 apples to begin with."),
            ("assistant", "Does anything happen to the apples?"),
            ("user", "Oh right, she gives 5 to Leo."),
            ("assistant", "Then Mia has 7 apples."),
            ("user", "Thanks, bye!"),
        ],
        steps=[
            _step(1, "How many apples does she start with?", new_shards=[2], revealed=[1, 2]),
            _step(2, "Does anything happen to the apples?", new_shards=[3], revealed=[1, 2, 3]),
            _step(
                3,
                "Then Mia has 7 apples.",
                new_shards=[],
                revealed=[1, 2, 3],
                kind="answer_attempt",
                answer="7",
                correct=True,
                reward=1.0,
                end="answered",
            ),
        ],
    )
    sharded["opening_shards"] = [1]
    injected = _episode(  # an older log: no setting, shards, instruction or opening_shards
        1,
        setting=None,
        assistant=ATTR_PAYLOAD,
        user="replay",
        score=0.0,
        with_eval_fields=False,
        transcript=[
            ("user", "How many apples does Mia have at the end?"),
            ("assistant", ALERT_REPLY),
            ("user", "Wait, she starts with 12 apples."),
            ("assistant", DOM_PAYLOAD),
        ],
        steps=[
            _step(
                1,
                ALERT_REPLY,
                new_shards=[2],
                revealed=[1, 2],
                kind="answer_attempt",
                answer="7",
                correct=False,
                reward=-0.5,
            ),
            _step(
                2,
                DOM_PAYLOAD,
                new_shards=[],
                revealed=[1, 2],
                kind="answer_attempt",
                answer=None,
                correct=False,
                reward=0.0,
                end="max_turns",
            ),
        ],
    )
    injected.update(end_reason="max_turns", truncated=True)  # cut at max_turns with shard 3 never revealed
    full = _episode(
        2,
        setting="FULL",
        assistant="qwen-0.5b",
        user="replay",
        score=1.0,
        transcript=[
            ("user", "Mia starts with 12 apples. She gives 5 apples to Leo. How many are left?"),
            ("assistant", "7"),
        ],
        steps=[
            _step(
                1,
                "7",
                new_shards=[],
                revealed=[1, 2, 3],
                kind="answer_attempt",
                answer="7",
                correct=True,
                reward=1.0,
                end="answered",
            )
        ],
    )
    full["opening_shards"] = [1, 2, 3]
    concat = _episode(
        3,
        setting="CONCAT",
        assistant="qwen-0.5b",
        user="replay",
        score=0.0,
        transcript=[("user", "- Mia has 12 apples\n- gives 5 to Leo\n- how many left?"), ("assistant", "17")],
        steps=[
            _step(
                1,
                "17",
                new_shards=[],
                revealed=[1, 2, 3],
                kind="answer_attempt",
                answer="17",
                correct=False,
                reward=0.0,
                end="answered",
            )
        ],
    )
    concat["opening_shards"] = [1, 2, 3]
    error = {
        "episode_key": "ep=4",
        "episode": 4,
        "seed": 4,
        "assistant": "qwen-0.5b",
        "user": "userlm-8b",
        "setting": "SHARDED",
        "task_id": "procedural/1004",
        "transcript": [],
        "steps": [],
        "score": None,
        "error": "RuntimeError: backend died <b>mid-episode</b>",
    }
    return [sharded, injected, full, concat, error]


def make_tables() -> list[ReportTable]:
    return [
        ReportTable(
            "Accuracy per setting",
            ["setting", "user", "P", "n"],
            [["FULL", "replay", 0.91234, 120], ["SHARDED", "userlm-8b", 0.4, 118], ["CONCAT", "a|b <i>x</i>", None, 0]],
            note="95% bootstrap CI",
        ),
        ReportTable("Shard reveal", ["user", "turns to reveal"], [["userlm-8b", 3.25], ["replay", float("nan")]]),
    ]


# --------------------------------------------------------------------------------------------------
# Unit tests: formatting, Markdown, HTML escaping, episode selection, plots
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (float("nan"), "—"),
        (0.5, "0.500"),
        (0.12345, "0.123"),
        (12.0, "12.000"),
        (3, "3"),
        (0.0, "0.000"),
        (4.2e-5, "4.20e-05"),
        (True, "yes"),
        (float("inf"), "∞"),
        ("a", "a"),
    ],
)
def test_format_cell(value, text):
    assert format_cell(value) == text


def test_markdown_table_escapes_pipes_and_aligns_numbers():
    table = ReportTable("t", ["name", "a|b", "score"], [["x|y", 1, 0.5], ["multi\nline", None, None]])
    lines = markdown_table(table).splitlines()
    assert lines[0] == "| name | a\\|b | score |"
    assert lines[1] == "| --- | ---: | ---: |"
    assert lines[2] == "| x\\|y | 1 | 0.500 |"
    assert lines[3] == "| multi line | — | — |"
    # Every row has the same number of unescaped pipes: the table is not broken by cell content.
    assert {line.replace("\\|", "").count("|") for line in lines} == {4}


def test_report_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="row 1"):
        ReportTable("t", ["a", "b"], [[1, 2], [3]])


def test_write_markdown_summary(tmp_path):
    path = write_markdown_summary(tmp_path / "sub" / "summary.md", title="Eval", tables=make_tables(), intro="Hi.")
    text = path.read_text()
    assert text.startswith("# Eval\n\nHi.\n")
    assert "## Accuracy per setting" in text and "## Shard reveal" in text
    assert "| CONCAT | a\\|b <i>x</i> | — | 0 |" in text
    assert "| FULL | replay | 0.912 | 120 |" in text
    assert "_95% bootstrap CI_" in text


def test_html_escapes_all_text(tmp_path):
    evil = "<script>alert('t')</script>"
    tables = [ReportTable(evil, [evil], [[evil]], note=evil)]
    figures = [ReportFigure(evil, b"\x89PNG fake", caption=evil)]
    page = write_html_report(
        tmp_path / "r.html", title=evil, intro=evil, tables=tables, figures=figures, episodes=make_episodes()
    ).read_text()
    assert page.count("<script") == 1, "only the page's own script may be a <script> element"
    assert "<img src=x" not in page and 'data-pwned="' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "default-src 'none'" in page  # CSP: no network


def test_episode_cap_round_robin_and_notice(tmp_path):
    episodes = []
    for i in range(30):
        episodes.append(
            {
                "setting": "SHARDED" if i < 24 else "FULL",
                "assistant": "a",
                "user": "u",
                "task_id": f"t{i}",
                "transcript": [],
                "steps": [],
                "score": 0.0,
                "error": None,
            }
        )
    chosen = select_episodes(episodes, 4)
    assert len(chosen) == 4 and chosen == sorted(chosen)
    assert {episodes[i]["setting"] for i in chosen} == {"SHARDED", "FULL"}  # both groups represented
    assert select_episodes(episodes, None) == list(range(30))
    page = write_html_report(
        tmp_path / "r.html", title="t", tables=[], figures=[], episodes=episodes, max_episodes=4
    ).read_text()
    assert "Showing 4 of 30 episodes" in page and "max_episodes=4" in page
    assert page.count('class="episode"') == 4


def test_opening_shards_fallback_and_missing_shard_text(tmp_path):
    (injected,) = [e for e in make_episodes() if e["episode"] == 1]
    page = write_html_report(tmp_path / "r.html", title="t", tables=[], figures=[], episodes=[injected]).read_text()
    # steps[0].shards_revealed [1, 2] minus steps[0].new_shards [2] -> the opening message revealed shard 1.
    assert 'class="msg user revealed" data-shards="1"' in page
    assert 'class="msg user revealed" data-shards="2"' in page
    assert "(shard text not in the log)" in page


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", png[16:24])


def test_plots_render_to_png():
    fig = bar_chart_with_ci(
        ["FULL", "CONCAT", "SHARDED"],
        {
            "replay": [(0.9, 0.85, 0.95), (0.8, 0.7, 0.9), (0.5, 0.4, 0.6)],
            "userlm": [(0.9, 0.8, 1.0), (None, None, None), (0.3, 0.2, 0.4)],
        },
        ylabel="P",
        title="P per setting",
    )
    assert len(fig.axes[0].patches) == 5  # the missing (None) bar is left out
    width, height = _png_size(figure_to_png(fig))
    assert width > 300 and height > 200
    curve = turn_curve(
        {"replay": [0.33, 0.66, 1.0], "userlm": [0.33, math.nan, 0.66]},
        xlabel="turn",
        ylabel="share revealed",
        title="Reveal",
    )
    assert [len(line.get_xdata()) for line in curve.axes[0].lines] == [3, 3]
    assert _png_size(figure_to_png(curve))[0] > 300
    with pytest.raises(ValueError, match="categories"):
        bar_chart_with_ci(["a", "b"], {"s": [(1.0, 0.0, 2.0)]}, ylabel="y", title="t")


# --------------------------------------------------------------------------------------------------
# Real browser
# --------------------------------------------------------------------------------------------------


class Node:
    """A minimal DOM node built from Chromium's serialized DOM."""

    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


class DomBuilder(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_dom(text: str) -> Node:
    builder = DomBuilder()
    builder.feed(text)
    return builder.root


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("headless Chromium is required for the report tests: run `bash scripts/install_chromium.sh`")
    return path


def dump_dom(chromium: str, html_path: Path, tmp_path: Path, fragment: str = "") -> Node:
    """Open the page in headless Chromium and return the DOM after its scripts ran."""
    profile = tmp_path / f"profile-{abs(hash(fragment))}"
    cmd = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        html_path.resolve().as_uri() + fragment,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    assert "</html>" in result.stdout, f"no DOM dumped: {result.stderr[-2000:]}"
    return parse_dom(result.stdout)


def injection_findings(dom: Node) -> list[str]:
    """Everything that shows model-output markup became markup or ran (empty when the page is safe)."""
    findings = []
    scripts = dom.find_all("script")
    if len(scripts) != 1:
        findings.append(f"{len(scripts)} <script> elements (expected only the page's own)")
    if any(n.attrs.get("src") == "x" for n in dom.find_all("img")):
        findings.append("an injected <img src=x> element")
    if dom.find_all(id="injected-b"):
        findings.append("an injected <b> element")
    if any("data-pwned" in n.attrs for n in dom.iter()):
        findings.append(
            "an element got a data-pwned attribute (an injected script/handler ran or an attribute broke out)"
        )
    titles = dom.find_all("title")
    if not titles or "PWNED" in titles[0].text():
        findings.append("the title was changed by an injected script")
    return findings


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> tuple[Path, bytes]:
    out = tmp_path_factory.mktemp("report")
    figure = bar_chart_with_ci(
        ["FULL", "SHARDED"], {"replay": [(0.9, 0.8, 1.0), (0.5, 0.4, 0.6)]}, ylabel="P", title="P per setting"
    )
    png = figure_to_png(figure)
    path = write_html_report(
        out / "report.html",
        title="Eval report",
        intro="Intro text.",
        tables=make_tables(),
        figures=[ReportFigure("P per setting", png, caption="Mean with 95% CI")],
        episodes=make_episodes(),
    )
    return path, png


@pytest.fixture(scope="module")
def dom(report_page, chromium, tmp_path_factory) -> Node:
    return dump_dom(chromium, report_page[0], tmp_path_factory.mktemp("chromium"))


def test_browser_page_script_ran_and_images_decoded(dom, report_page):
    (body,) = dom.find_all("body")
    assert body.attrs.get("data-report-js") == "ready", "the page's own script did not run"
    assert body.attrs.get("data-images-decoded") == "1/1"
    (img,) = dom.find_all("img")
    width, height = _png_size(report_page[1])
    assert img.attrs["data-decoded"] == "yes"
    assert (int(img.attrs["data-natural-width"]), int(img.attrs["data-natural-height"])) == (width, height)
    assert dom.find_all("title")[0].text() == "Eval report"


def test_browser_tables_render(dom):
    tables = dom.find_all("table", cls="data")
    assert len(tables) == 2
    headers = [th.text() for th in tables[0].find_all("th")]
    assert headers == ["setting", "user", "P", "n"]
    rows = [[td.text() for td in tr.find_all("td")] for tr in tables[0].find_all("tbody")[0].find_all("tr")]
    assert rows == [
        ["FULL", "replay", "0.912", "120"],
        ["SHARDED", "userlm-8b", "0.400", "118"],
        ["CONCAT", "a|b <i>x</i>", "—", "0"],
    ]
    assert [td.text() for td in tables[1].find_all("td")] == ["userlm-8b", "3.250", "replay", "—"]
    assert "95% bootstrap CI" in dom.find_all(id="table-0")[0].text()


def test_browser_transcripts_render(dom):
    episodes = make_episodes()
    rendered = dom.find_all("details", cls="episode")
    assert [int(e.attrs["data-index"]) for e in rendered] == list(range(len(episodes)))
    for record, node in zip(episodes, rendered):
        messages = node.find_all("div", cls="msg")
        assert [m.find_all("div", cls="content")[0].text() for m in messages] == [
            t["content"] for t in record["transcript"]
        ]
        infos = node.find_all("div", cls="step-info")
        assert len(infos) == len(record["steps"])
        for info, step in zip(infos, record["steps"]):
            assert [th.text() for th in info.find_all("table", cls="components")[0].find_all("th")] == list(
                step["reward_components"]
            )
            assert step["reply_kind"] in info.text()
    first = rendered[0]
    assert "correct" in first.find_all("div", cls="step-info")[-1].find_all("span", cls="good")[0].text()
    assert "7" in first.find_all("div", cls="step-info")[-1].find_all("code")[0].text()
    # The error record: its error is shown and its empty transcript does not break the page.
    error = rendered[4]
    assert error.attrs["data-error"] == "1"
    assert error.find_all("pre", cls="error")[0].text() == "RuntimeError: backend died <b>mid-episode</b>"
    assert "(empty transcript)" in error.text()


def test_browser_revealed_shards_highlighted(dom):
    first = dom.find_all("details", cls="episode")[0]
    revealed = first.find_all("div", cls="revealed")
    assert [m.attrs["data-shards"] for m in revealed] == ["1", "2", "3"]
    for message, shard_id in zip(revealed, (1, 2, 3)):
        (shard,) = message.find_all("div", cls="shard")
        assert shard.find_all("span", cls="shard-id")[0].text() == f"shard {shard_id}"
        assert SHARD_TEXTS[shard_id] in shard.text()
    # The user message that revealed nothing new (the goodbye) is not highlighted.
    last_user = [m for m in first.find_all("div", cls="msg") if "user" in m.classes][-1]
    assert "revealed" not in last_user.classes
    # FULL: everything in the opening message.
    full = dom.find_all("details", cls="episode")[2]
    assert [m.attrs["data-shards"] for m in full.find_all("div", cls="revealed")] == ["1 2 3"]


def test_browser_model_output_stays_text(dom):
    assert injection_findings(dom) == []
    injected = dom.find_all("details", cls="episode")[1]
    contents = [m.find_all("div", cls="content")[0].text() for m in injected.find_all("div", cls="assistant")]
    assert contents == [ALERT_REPLY, DOM_PAYLOAD]  # shown verbatim, as text
    assert injected.attrs["data-assistant"] == ATTR_PAYLOAD


def test_browser_injection_checks_fire_when_escaping_is_broken(chromium, tmp_path, monkeypatch):
    """Negative control: without escaping the same report is caught by ``injection_findings``."""
    monkeypatch.setattr(report_module, "_e", lambda value: "" if value is None else str(value))
    path = write_html_report(tmp_path / "broken.html", title="t", tables=[], figures=[], episodes=make_episodes()[1:2])
    findings = injection_findings(dump_dom(chromium, path, tmp_path))
    assert any("<script> elements" in f for f in findings), findings
    assert any("<img src=x>" in f for f in findings), findings
    assert any("data-pwned" in f for f in findings), findings


def test_browser_filters(report_page, chromium, tmp_path):
    dom = dump_dom(chromium, report_page[0], tmp_path, "#setting=SHARDED&min=0.5")
    shown = [e.attrs["data-index"] for e in dom.find_all("details", cls="episode") if "hidden" not in e.attrs]
    assert shown == ["0"]  # SHARDED with score >= 0.5 (the error record has no score)
    assert dom.find_all("body")[0].attrs["data-episodes-shown"] == "1"
    assert dom.find_all(id="ep-count")[0].text() == "1 of 5 episodes shown"
    dom = dump_dom(chromium, report_page[0], tmp_path, "#errors=1")
    shown = [e.attrs["data-index"] for e in dom.find_all("details", cls="episode") if "hidden" not in e.attrs]
    assert shown == ["4"]


def test_sample_records_from_rollout_render(tmp_path):
    """Records written by rollout.py (no evaluation fields) go through unchanged."""
    record = make_episodes()[0]
    for key in ("setting", "shards", "instruction", "opening_shards"):
        record.pop(key)
    record = json.loads(json.dumps(record))
    page = write_html_report(tmp_path / "r.html", title="t", tables=[], figures=[], episodes=[record]).read_text()
    assert page.count('class="msg ') == len(record["transcript"])
    assert 'data-shards="1"' in page and "(shard text not in the log)" in page


# --------------------------------------------------------------------------------------------------
# Hardening: any text can be written; episodes cut before every shard was revealed are marked
# --------------------------------------------------------------------------------------------------

SURROGATE = "\ud800"  # a lone surrogate (json.loads gives one back from a logged "\\ud800")


def test_reports_write_any_text(tmp_path):
    """A lone surrogate anywhere (transcript, task id, table cell, title) is written as a visible escape."""
    episode = make_episodes()[0]
    episode["transcript"][1]["content"] = f"odd {SURROGATE} reply"
    episode["task_id"] = f"task{SURROGATE}"
    table = ReportTable(f"t{SURROGATE}", ["a"], [[f"cell{SURROGATE}"]])
    page = write_html_report(tmp_path / "r.html", title="t", tables=[table], figures=[], episodes=[episode])
    text = page.read_text(encoding="utf-8")
    assert "odd \\ud800 reply" in text and "task\\ud800" in text and "cell\\ud800" in text
    summary = write_markdown_summary(tmp_path / "s.md", title=f"T{SURROGATE}", tables=[table])
    assert "| cell\\ud800 |" in summary.read_text(encoding="utf-8")


def test_cut_episodes_are_marked(tmp_path):
    """An episode truncated at max_turns before every shard was revealed carries a badge and data-cut="1"."""
    page = write_html_report(tmp_path / "r.html", title="t", tables=[], figures=[], episodes=make_episodes())
    nodes = parse_dom(page.read_text()).find_all("details", cls="episode")
    assert [n.attrs["data-cut"] for n in nodes] == ["0", "1", "0", "0", "0"]
    (badge,) = nodes[1].find_all("span", cls="cut")
    assert badge.text() == "cut at max turns: 2/3 shards"
    assert not nodes[0].find_all("span", cls="cut")


def test_browser_cut_filter(report_page, chromium, tmp_path):
    dom = dump_dom(chromium, report_page[0], tmp_path, "#cut=1")
    shown = [e.attrs["data-index"] for e in dom.find_all("details", cls="episode") if "hidden" not in e.attrs]
    assert shown == ["1"]
