"""Turn evaluation records into metrics, tables, plots and the two reports.

:func:`evaluation_metrics` computes everything as plain numbers (written to ``metrics.json``);
:func:`report_tables` and :func:`report_figures` lay them out; :func:`write_reports` writes
``report.html`` (tables, plots, transcript browser) and ``summary.md`` next to the episode log.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from userlm_env.driver import COST_FIELDS
from userlm_env.episode_log import unique_by_key
from userlm_env.episode_types import EndReason
from userlm_env.evaluation.assistant_metrics import attempt_stats, lic_metrics_with_ci, relative_drop, scores_by_task
from userlm_env.evaluation.plots import bar_chart_with_ci, turn_curve
from userlm_env.evaluation.records import cut_before_all_shards, opening_shards, printable
from userlm_env.evaluation.report import (
    ReportFigure,
    ReportTable,
    figure_to_png,
    write_html_report,
    write_markdown_summary,
)
from userlm_env.evaluation.runner import SETTINGS
from userlm_env.evaluation.user_metrics import user_metrics_from_episodes

HUMAN_ROW = "human (ShareGPT)"
USER_METRIC_ROWS = (
    ("conversations", "conversations"),
    ("user_turns_per_chat", "user turns per chat"),
    ("first_turn_unique", "first-turn diversity: unique first turns per task"),
    ("first_turn_distinct_2", "first-turn diversity: distinct-2 within a task"),
    ("first_turn_pooled_distinct_2", "first-turn diversity: distinct-2 over all first turns"),
    ("intent_decomposition", "intent decomposition: share of the task in turn 1 (lower = more gradual)"),
    ("first_turn_shards", "shards revealed by turn 1 (share)"),
    ("first_turn_share", "share of the user's whole content said in turn 1"),
    ("shards_per_user_turn", "shards revealed per user turn"),
    ("intent_coverage", "intent coverage at the end (shards revealed)"),
    ("intent_adherence", "intent adherence: user words from the task"),
    ("role_adherence", "role adherence: user turns not assistant-like"),
    ("repeated_demands", "repeated demands (share of later turns)"),
    ("added_number_turns", "added demands: turns with numbers not in the task"),
    ("user_end_rate", "episodes the user ended"),
    ("termination_precision", "termination precision"),
    ("termination_recall", "termination recall"),
    ("termination_f1", "termination F1"),
    ("termination_should_end", "termination: decisions where the user should end"),
    ("llm_role_adherence", "LM judge: role adherence (share judged USER)"),
    ("llm_naturalness", "LM judge: naturalness (share judged HUMAN)"),
    ("llm_judged", "LM judge: turns judged"),
    ("turn_mean_words", "words per user turn (mean)"),
    ("turn_median_words", "words per user turn (median)"),
)


def _group(records: Sequence[Mapping[str, Any]], *keys: str) -> dict[tuple, list[Mapping[str, Any]]]:
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        groups[tuple(record.get(k) for k in keys)].append(record)
    return dict(groups)


def _run_order(item: tuple[tuple, Any]) -> tuple:
    """Runs in table order: by assistant, then FULL, CONCAT, SHARDED, then user."""
    assistant, setting, user = item[0]
    rank = SETTINGS.index(setting) if setting in SETTINGS else len(SETTINGS)
    return str(assistant), rank, str(user)


def _label(setting: str, user: str) -> str:
    return setting if setting != "SHARDED" else f"SHARDED:{user}"


def _probes(records: Sequence[Mapping[str, Any]]) -> list[bool] | None:
    """Termination probes in record order (None if no episode was probed)."""
    probed = [r for r in records if r.get("end_reason") == EndReason.CORRECT_ANSWER and not r.get("error")]
    if not any("termination_probe" in r for r in probed):
        return None
    return [bool(r.get("termination_probe")) for r in probed if r.get("termination_probe") is not None]


def _turn_range(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The turn budgets of a run's episodes: ``"8"`` or ``"8-12"`` (per-task defaults), None if not logged."""
    budgets = sorted({int(r["max_turns"]) for r in records if isinstance(r.get("max_turns"), (int, float))})
    if not budgets:
        return None
    return str(budgets[0]) if len(budgets) == 1 else f"{budgets[0]}-{budgets[-1]}"


def revealed_by_turn(records: Sequence[Mapping[str, Any]], max_turns: int) -> list[float]:
    """Mean share of shards revealed after user turn k = 1..max_turns (an ended chat keeps its last value)."""
    curves = []
    for record in records:
        if record.get("error") or not record.get("num_shards"):
            continue
        steps = record.get("steps") or []
        counts = [len(opening_shards(record))]
        counts += [
            len(s.get("shards_revealed") or []) for s in steps if s.get("end_reason") in (None, EndReason.USER_ENDED)
        ]
        counts += [counts[-1]] * max(0, max_turns - len(counts))
        curves.append([c / record["num_shards"] for c in counts[:max_turns]])
    return [float(v) for v in np.mean(curves, axis=0)] if curves else []


def evaluation_metrics(
    records: Sequence[Mapping[str, Any]],
    *,
    human_reference: Mapping[str, Any] | None = None,
    llm_judged: Mapping[str, Mapping[str, float]] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every number of the evaluation, JSON-ready.

    Returns:
        ``{"runs": [...], "drops": [...], "users": {user: {...}}, "human_reference": {...}, "failures": [...]}``:
        ``runs`` has one entry per (assistant, setting, user) with P / A90 / U90_10 (and 95% bootstrap
        intervals over tasks) and answer-attempt statistics; ``drops`` the FULL -> SHARDED change of P
        per (assistant, user); ``users`` the user-simulator metrics of each SHARDED user, pooled over
        assistants; ``failures`` the episodes that raised. ``llm_judged`` (user name or
        :data:`HUMAN_ROW` -> :func:`~userlm_env.evaluation.llm_user_metrics.llm_user_metrics`) adds the
        LM-judged metrics as ``llm_*`` entries.
    """
    records, duplicates = unique_by_key(records)  # an episode logged twice (two writers) counts once
    runs = []
    groups = _group(records, "assistant", "setting", "user")
    for (assistant, setting, user), group in sorted(groups.items(), key=_run_order):
        by_task = scores_by_task(group)
        runs.append(
            {
                "assistant": assistant,
                "setting": setting,
                "user": user,
                "label": _label(setting, user),
                "episodes": len(group),
                "errors": sum(1 for r in group if r.get("error")),
                **lic_metrics_with_ci(by_task, seed=seed),
                **attempt_stats(group),
                "success_rate": float(np.mean([r["score"] for r in group if not r.get("error")] or [math.nan])),
                "cut_before_all_shards": sum(1 for r in group if cut_before_all_shards(r)),
                "max_turns": _turn_range(group),
                "cost": run_cost(group),
            }
        )
    by_key = {(r["assistant"], r["setting"], r["user"]): r for r in runs}
    drops = []
    for (assistant, setting, user), group in sorted(groups.items(), key=_run_order):
        full = [r for r in records if r.get("assistant") == assistant and r.get("setting") == "FULL"]
        if setting != "SHARDED" or not full:
            continue
        drop = relative_drop(scores_by_task(full), scores_by_task(group), seed=seed)
        drops.append(
            {
                "assistant": assistant,
                "user": user,
                "P_FULL": by_key[(assistant, "FULL", "full")]["P"],
                "P_CONCAT": by_key.get((assistant, "CONCAT", "concat"), {}).get("P", math.nan),
                "P_SHARDED": by_key[(assistant, "SHARDED", user)]["P"],
                "U90_10_FULL": by_key[(assistant, "FULL", "full")]["U90_10"],
                "U90_10_SHARDED": by_key[(assistant, "SHARDED", user)]["U90_10"],
                **drop,
            }
        )
    sharded = [r for r in records if r.get("setting", "SHARDED") == "SHARDED"]
    users = {
        user: user_metrics_from_episodes(group, termination_probes=_probes(group))
        for (user,), group in sorted(_group(sharded, "user").items())
    }
    human = None
    if human_reference:  # the raw sample turns stay in the cache, not in metrics.json
        human = {k: v for k, v in human_reference.items() if k != "sample_turns"}
        human["metrics"] = dict(human["metrics"])
    for name, judged in (llm_judged or {}).items():
        target = users.get(name) if name != HUMAN_ROW else (human or {}).get("metrics")
        if target is not None:
            target.update({f"llm_{k}": v for k, v in judged.items()})
    max_turns = max((int(r.get("max_turns") or 1) for r in sharded), default=1)
    curves = {user: revealed_by_turn(group, max_turns) for (user,), group in sorted(_group(sharded, "user").items())}
    failures = [
        {"episode_key": r.get("episode_key"), "error": (r.get("error") or "").strip().splitlines()[-1:]}
        for r in records
        if r.get("error")
    ]
    return {
        "runs": runs,
        "drops": drops,
        "users": users,
        "revealed_by_turn": curves,
        "human_reference": human,
        "failures": failures,
        "episodes": len(records),
        "duplicates_ignored": duplicates,
        "cut_before_all_shards": sum(r["cut_before_all_shards"] for r in runs),
    }


def run_cost(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """What a run's episodes cost: the total of each :data:`~userlm_env.driver.COST_FIELDS` field.

    ``episodes`` counts the records that carry a cost (logs written before cost accounting have none).
    """
    costs = [r["cost"] for r in records if isinstance(r.get("cost"), Mapping)]
    total = {name: float(sum(c.get(name, 0) for c in costs)) for name in COST_FIELDS}
    return {"episodes": len(costs), **total}


def _ci(interval: Sequence[float]) -> str:
    lo, hi = interval
    return "—" if math.isnan(lo) else f"[{lo:.1f}, {hi:.1f}]"


def report_tables(metrics: Mapping[str, Any]) -> list[ReportTable]:
    """The report's tables: LiC scores, FULL -> SHARDED drops, user-simulator metrics, failures."""
    scores = ReportTable(
        title="Assistant scores (Lost in Conversation)",
        columns=[
            "assistant",
            "setting",
            "tasks",
            "runs",
            "errors",
            "P",
            "P 95% CI",
            "A90",
            "U90_10",
            "U90_10 95% CI",
            "first attempt turn",
            "attempts / episode",
            "premature attempts / episode",
            "no attempt (share)",
            "turns",
            "max turns",
            "cut before all shards",
        ],
        rows=[
            [
                r["assistant"],
                r["label"],
                r["tasks"],
                r["runs"],
                r["errors"],
                r["P"],
                _ci(r["P_ci"]),
                r["A90"],
                r["U90_10"],
                _ci(r["U90_10_ci"]),
                r["first_attempt_turn"],
                r["attempts_per_episode"],
                r["premature_attempts"],
                r["no_attempt_share"],
                r["mean_turns"],
                r.get("max_turns"),
                r.get("cut_before_all_shards"),
            ]
            for r in metrics["runs"]
        ],
        note="P = mean score x 100; A90 / U90_10 = 90th percentile / 90th-10th percentile range of a task's runs "
        "x 100, averaged over tasks; intervals: 95% percentile bootstrap over tasks (1000 resamples). "
        "max turns: assistant replies per episode (SHARDED default per task: max(8, shards + 2)); "
        "cut before all shards: episodes that hit max turns while shards were still hidden, so the task could "
        "not be completed (marked in the transcript browser)."
        + (
            f" {metrics['duplicates_ignored']} duplicate record(s) in the log (an episode key logged twice) "
            "were ignored: each episode counts once."
            if metrics.get("duplicates_ignored")
            else ""
        ),
    )
    tables = [scores]
    if metrics["drops"]:
        tables.append(
            ReportTable(
                title="FULL -> SHARDED",
                columns=[
                    "assistant",
                    "user",
                    "P FULL",
                    "P CONCAT",
                    "P SHARDED",
                    "change of P %",
                    "95% CI",
                    "U90_10 FULL",
                    "U90_10 SHARDED",
                ],
                rows=[
                    [
                        d["assistant"],
                        d["user"],
                        *(d[k] for k in ("P_FULL", "P_CONCAT", "P_SHARDED", "drop_pct")),
                        _ci(d["drop_ci"]),
                        d["U90_10_FULL"],
                        d["U90_10_SHARDED"],
                    ]
                    for d in metrics["drops"]
                ],
                note="Relative change (P_SHARDED - P_FULL) / P_FULL, paired over tasks; LiC reports -39% on average "
                "for strong assistants. Empty when P FULL is 0.",
            )
        )
    users = list(metrics["users"])
    human = (metrics.get("human_reference") or {}).get("metrics")
    columns = ["metric", *users] + ([HUMAN_ROW] if human else [])
    rows = []
    for key, name in USER_METRIC_ROWS:
        row = [name, *(metrics["users"][u].get(key) for u in users)] + ([human.get(key)] if human else [])
        if any(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in row[1:]):
            rows.append(row)
    if users:
        reference = metrics.get("human_reference") or {}
        tables.append(
            ReportTable(
                title="User simulators (SHARDED episodes, pooled over assistants)",
                columns=columns,
                rows=rows,
                note="Lexical metrics (see userlm_env.evaluation.user_metrics). "
                + (
                    f"Human reference: {reference.get('sampled')} ShareGPT conversations sampled from "
                    f"{reference.get('usable')} usable of {reference.get('parse', {}).get('records')} "
                    "complete records; "
                    "real chats have no written task, so task-based metrics are empty for them."
                    if human
                    else ""
                ),
            )
        )
    costed = [r for r in metrics["runs"] if r.get("cost", {}).get("episodes")]
    if costed:
        tables.append(
            ReportTable(
                title="What the evaluation cost (user simulation)",
                columns=[
                    "assistant",
                    "setting",
                    "episodes",
                    "user calls",
                    "user requests",
                    "user prompt tokens",
                    "user generated tokens",
                    "user resamples",
                    "user seconds",
                    "assistant seconds",
                    "user tokens / episode",
                ],
                rows=[
                    [
                        r["assistant"],
                        r["label"],
                        r["cost"]["episodes"],
                        *(r["cost"][name] for name in COST_FIELDS),
                        (r["cost"]["user_prompt_tokens"] + r["cost"]["user_generated_tokens"]) / r["cost"]["episodes"],
                    ]
                    for r in costed
                ],
                note="Totals per run. A batched user call serves several episodes: each episode is charged an equal "
                "share of its calls' tokens and seconds (userlm_env.driver), so the totals add up to the real calls.",
            )
        )
    if metrics["failures"]:
        tables.append(
            ReportTable(
                title="Failed episodes",
                columns=["episode", "error"],
                rows=[[f["episode_key"], " ".join(f["error"])] for f in metrics["failures"]],
            )
        )
    return tables


def report_figures(metrics: Mapping[str, Any]) -> list[ReportFigure]:
    """Bar chart of P per setting and assistant (95% CI); shards revealed per user turn."""
    figures = []
    runs = metrics["runs"]
    if runs:
        labels = list(dict.fromkeys(r["label"] for r in runs))
        series = {}
        for assistant in dict.fromkeys(r["assistant"] for r in runs):
            by_label = {r["label"]: r for r in runs if r["assistant"] == assistant}
            series[assistant] = [
                (by_label[lab]["P"], *by_label[lab]["P_ci"]) if lab in by_label else (math.nan, math.nan, math.nan)
                for lab in labels
            ]
        fig = bar_chart_with_ci(  # printable: matplotlib cannot draw lone surrogates
            [printable(label) for label in labels],
            {printable(name): values for name, values in series.items()},
            ylabel="P (mean score x 100)",
            title="Score per setting",
        )
        figures.append(ReportFigure("Score per setting", figure_to_png(fig), "95% bootstrap intervals over tasks."))
    curves = {u: c for u, c in metrics.get("revealed_by_turn", {}).items() if c}
    if curves:
        fig = turn_curve(
            {printable(user): curve for user, curve in curves.items()},
            xlabel="user turn",
            ylabel="share of shards revealed",
            title="Revelation pace",
        )
        figures.append(
            ReportFigure("Shards revealed after each user turn", figure_to_png(fig), "Mean over SHARDED episodes.")
        )
    return figures


def write_reports(
    out_dir: str | Path,
    records: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    *,
    title: str = "userlm_env evaluation",
    intro: str = "",
) -> dict[str, Path]:
    """Write ``metrics.json``, ``summary.md`` and ``report.html`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    records, _ = unique_by_key(records)
    tables = report_tables(metrics)
    paths = {"metrics": out_dir / "metrics.json", "summary": out_dir / "summary.md", "report": out_dir / "report.html"}
    paths["metrics"].write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n")
    write_markdown_summary(paths["summary"], title=title, tables=tables, intro=intro)
    write_html_report(
        paths["report"],
        title=title,
        tables=tables,
        figures=report_figures(metrics),
        episodes=[dict(r) for r in records],
        intro=intro,
    )
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
