"""The model-risk sections of ``report.md``: how sure each figure is, calibration, the
cut-off and its tables, and scorecard bands (see ``docs/risk.md``).

:class:`RiskData` is built by the pipeline after training; :func:`write_risk` draws the
plots into the run directory and returns the markdown that ``report.md`` places after
its metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from transfuse.calibration import Calibration
    from transfuse.config import ScorecardConfig

__all__ = ["RiskData", "RiskSections", "write_risk"]


@dataclass
class RiskData:
    """What the risk sections show; the arrays are the rows of ``split`` (test, or the
    validation rows when the run holds no test rows)."""

    split: str
    intervals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rounds: int = 0
    binary: bool = False
    y: np.ndarray | None = None  # 1 for the positive (bad) class
    raw: np.ndarray | None = None  # P(bad) before calibration
    p: np.ndarray | None = None  # P(bad) after calibration
    calibration: Calibration | None = None
    cutoff: float | None = None  # chosen on the validation rows
    cutoff_rule: str = ""
    scorecard: ScorecardConfig | None = None
    bad: str = "1"  # the positive class's label


@dataclass
class RiskSections:
    """The markdown lines and the plot files :func:`write_risk` wrote."""

    lines: list[str]
    files: list[str]


def _num(value: float, digits: int = 4) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


def write_risk(directory: Path, data: RiskData) -> RiskSections:
    """Draw the risk plots into ``directory``; the sections' markdown and the files."""
    from transfuse.uncertainty import intervals_markdown

    lines = intervals_markdown(data.intervals, data.split, data.rounds)
    files: list[str] = []
    if not data.binary or data.y is None or data.p is None or data.raw is None or not len(data.y):
        return RiskSections(lines, files)
    lines += _calibration(directory, data, files)
    if data.cutoff is not None:
        lines += _cutoffs(directory, data, files)
    if data.scorecard is not None:
        lines += _bands(data)
    return RiskSections(lines, files)


def _calibration(directory: Path, data: RiskData, files: list[str]) -> list[str]:
    from sklearn.metrics import brier_score_loss

    from transfuse.calibration import expected_calibration_error, reliability_plot

    assert data.y is not None and data.p is not None and data.raw is not None
    cal = data.calibration
    method = cal.method if cal is not None else "none"
    if cal is None:
        how = "No calibrator: the run scores as the network gives them."
    elif cal.method == "platt":
        how = (
            f"Platt scaling fitted on {cal.rows} validation rows ({cal.positives} positives): "
            f"p' = sigmoid({cal.slope:.4f} * logit(p) {'-' if cal.intercept < 0 else '+'} "
            f"{abs(cal.intercept):.4f})."
        )
    elif cal.method == "isotonic":
        how = (
            f"Isotonic regression fitted on {cal.rows} validation rows ({cal.positives} "
            f"positives), {len(cal.x)} thresholds."
        )
    else:
        how = "Calibration off (`train.calibrate: none`)."
    if cal is not None and cal.note:
        how += f" Note: {cal.note}."
    plot = reliability_plot(directory / "reliability.png", data.y, data.raw, data.p, data.split)
    files.append("reliability.png")
    y, n = data.y, len(data.y)
    rows = [
        ("before (raw)", data.raw),
        (f"after ({method})", data.p),
    ]
    lines = [
        "## Calibration",
        "",
        how + f" Measured on the {data.split} rows ({n} rows, {int(y.sum())} positives); "
        "ECE: the row-weighted gap between mean score and observed rate in ten equal-width "
        "bins.",
        "",
        "| scores | ECE | Brier | mean score | observed rate |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, scores in rows:
        lines.append(
            f"| {label} | {_num(expected_calibration_error(y, scores))} | "
            f"{_num(float(brier_score_loss(y, scores)))} | {_num(float(np.mean(scores)))} | "
            f"{_num(float(np.mean(y)))} |"
        )
    return [*lines, "", f"![{plot}](reliability.png)", "", f"*{plot}*", ""]


def _cutoffs(directory: Path, data: RiskData, files: list[str]) -> list[str]:
    from transfuse.scorecard import confusion, cutoff_table, decile_cutoffs, gains_plot, points

    assert data.y is not None and data.p is not None and data.cutoff is not None
    y, p, cut = data.y, data.p, data.cutoff
    table = cutoff_table(y, p, [*decile_cutoffs(p), ("chosen", cut)])
    card = data.scorecard
    head = "| approve lowest | cut-off P(bad) |" + (" points |" if card else "")
    lines = [
        "## Cut-offs",
        "",
        f"A row is approved when its P({data.bad}) is at or under the cut-off. The cut-off "
        f"was chosen on the validation rows: {data.cutoff_rule}. Below, what each cut-off "
        f"does to the {data.split} rows ({len(y)} rows, {int(y.sum())} bads): the score "
        "deciles, then the chosen cut-off.",
        "",
        head + " approved | approval rate | bad rate among approved | bads caught |",
        "| --- | ---: |" + (" ---: |" if card else "") + " ---: | ---: | ---: | ---: |",
    ]
    for row in table:
        label = "**chosen**" if row.label == "chosen" else row.label
        pts = f" {float(points(np.array([row.cutoff]), card)[0]):.1f} |" if card else ""
        lines.append(
            f"| {label} | {row.cutoff:.4f} |{pts} {row.approved} | {_pct(row.approval_rate)} "
            f"| {_pct(row.bad_rate)} | {_pct(row.bads_caught)} |"
        )
    matrix = confusion(y, p, cut)
    caught = matrix[1, 1] / max(matrix[1].sum(), 1)
    lines += [
        "",
        f"Confusion matrix at the chosen cut-off ({cut:.4f}) on the {data.split} rows; "
        f"accuracy there {_pct(float(np.trace(matrix) / max(matrix.sum(), 1)))}, "
        f"bads caught {_pct(float(caught))}:",
        "",
        "| actual | approved | declined |",
        "| --- | ---: | ---: |",
        f"| good | {matrix[0, 0]} | {matrix[0, 1]} |",
        f"| bad | {matrix[1, 0]} | {matrix[1, 1]} |",
        "",
    ]
    plot = gains_plot(directory / "gains.png", y, p, cut, data.split)
    files.append("gains.png")
    return [*lines, f"![{plot}](gains.png)", "", f"*{plot}*", ""]


def _bands(data: RiskData) -> list[str]:
    from transfuse.scorecard import points, scaling, score_bands

    assert data.y is not None and data.p is not None and data.scorecard is not None
    card = data.scorecard
    factor, offset = scaling(card)
    pts = points(data.p, card)
    lines = [
        "## Score bands",
        "",
        f"points = {offset:.2f} + {factor:.4f} * ln(odds of good): {card.base_score:g} points "
        f"at odds {card.base_odds:g}:1, {card.pdo:g} more points double the odds "
        f"(factor = pdo / ln 2, offset = base_score - factor * ln(base_odds)). Bands on the "
        f"{data.split} rows:",
        "",
        "| points | rows | share | bads | bad rate |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for low, high, rows, bads in score_bands(pts, data.y, card):
        lines.append(
            f"| [{low:g}, {high:g}) | {rows} | {_pct(rows / len(pts))} | {bads} | "
            f"{_pct(bads / rows)} |"
        )
    return [*lines, ""]
