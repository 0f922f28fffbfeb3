"""Group fairness at the cut-off: does the score treat groups of applicants alike?

For each column in ``report.groups`` (need not be a model input) the held-out rows are
sliced by the column's values with fairlearn's :class:`~fairlearn.metrics.MetricFrame`
and, per group, the report gives:

- **AUC**: how well the score ranks bads above goods inside the group;
- **calibration**: the mean predicted bad probability against the observed bad rate;
- **approval rate**: the share approved at the run's cut-off (approve: bad probability at
  or under it; :func:`transfuse.scorecard.choose_cutoff` on the validation rows);
- **adverse impact ratio**: the group's approval rate over the most-approved group's
  (the four-fifths rule: under 0.8 is a warning);
- **equal-opportunity difference**: among the goods (rows without the bad outcome), the
  share approved in the group minus the highest such share of any group (0: creditworthy
  applicants are approved alike; -0.1: ten points fewer of them approved).

The bad outcome is the binary task's positive class (the score is its probability).
Every figure carries a bootstrap 95% interval (:func:`transfuse.intervals.interval`,
resampled within each group, so each group keeps its size).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transfuse.errors import DataError

if TYPE_CHECKING:
    from transfuse.config import PipelineConfig

__all__ = [
    "FEW_ROWS",
    "FOUR_FIFTHS",
    "check_groups",
    "fairness",
    "fairness_markdown",
    "group_labels",
    "measure_fairness",
]

#: The four-fifths rule: an adverse impact ratio under this is a warning.
FOUR_FIFTHS = 0.8
#: A numeric group column with more distinct values than this is cut into quartiles.
MAX_NUMERIC_GROUPS = 10
MISSING = "(missing)"
#: A group with fewer rows is marked in the report: its figures, and any ratio taken
#: against it, rest on too few rows to act on without their intervals.
FEW_ROWS = 30
_METRICS = (
    "auc",
    "mean_predicted",
    "observed_bad_rate",
    "calibration_gap",
    "approval_rate",
    "adverse_impact_ratio",
    "good_approval_rate",
    "equal_opportunity_difference",
)


def check_groups(frames: Sequence[pd.DataFrame | None], config: PipelineConfig) -> None:
    """Every ``report.groups`` column is in every given frame; else a DataError naming it."""
    from transfuse.tables import need_columns

    groups = list(config.report.groups)
    for frame in frames:
        if groups and frame is not None:
            need_columns(frame, groups, "report.groups")


def group_labels(values: pd.Series) -> np.ndarray:
    """Each row's group as text: the value itself, numbers with many values cut into
    quartiles (``[lo, hi]``), missing values as ``(missing)``."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > MAX_NUMERIC_GROUPS:
        cut = pd.qcut(values.astype(float), 4, duplicates="drop")
        text = cut.astype(object).map(
            lambda b: f"[{b.left:.4g}, {b.right:.4g}]" if isinstance(b, pd.Interval) else b
        )
    else:
        text = values.astype(object).map(str)
    return np.asarray(text.where(values.notna(), MISSING), dtype=object)


# -- per-group figures --------------------------------------------------------------------


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic (ties count half); NaN with one class."""
    from scipy.stats import rankdata

    bads = y == 1
    n_bad = int(bads.sum())
    n_good = len(y) - n_bad
    if not n_bad or not n_good:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[bads].sum() - n_bad * (n_bad + 1) / 2) / (n_bad * n_good))


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _base_metrics(cutoff: float) -> dict[str, Callable[[Any, Any], float]]:
    """The group metrics that need only the group's rows: ``f(y_true, p_bad)``."""

    def approval(y: Any, p: Any) -> float:
        return _mean((np.asarray(p) <= cutoff).astype(float))

    def good_approval(y: Any, p: Any) -> float:
        return _mean((np.asarray(p)[np.asarray(y) == 0] <= cutoff).astype(float))

    return {
        "auc": lambda y, p: _auc(np.asarray(y), np.asarray(p)),
        "mean_predicted": lambda y, p: _mean(np.asarray(p, dtype=float)),
        "observed_bad_rate": lambda y, p: _mean(np.asarray(y, dtype=float)),
        "approval_rate": approval,
        "good_approval_rate": good_approval,
    }


def _relative(by_group: dict[str, dict[str, float]]) -> None:
    """Add the figures that compare a group with the others (in place)."""

    def top(metric: str) -> float:
        values = [g[metric] for g in by_group.values() if np.isfinite(g[metric])]
        return max(values, default=float("nan"))

    top_approval, top_good = top("approval_rate"), top("good_approval_rate")
    for g in by_group.values():
        g["calibration_gap"] = g["mean_predicted"] - g["observed_bad_rate"]
        g["adverse_impact_ratio"] = (
            g["approval_rate"] / top_approval if top_approval > 0 else float("nan")
        )
        g["equal_opportunity_difference"] = g["good_approval_rate"] - top_good


def _metric_frame(y: np.ndarray, p: np.ndarray, groups: np.ndarray, cutoff: float) -> Any:
    """fairlearn's MetricFrame of the base metrics by group."""
    from fairlearn.metrics import MetricFrame

    return MetricFrame(
        metrics=_base_metrics(cutoff),
        y_true=y,
        y_pred=p,
        sensitive_features=pd.Series(groups, name="group"),
    )


def _by_group_fast(
    y: np.ndarray, p: np.ndarray, codes: np.ndarray, names: Sequence[str], cutoff: float
) -> dict[str, dict[str, float]]:
    """The same base metrics as the MetricFrame, by plain indexing (for the bootstrap's
    thousand rounds, where a MetricFrame each round would take seconds)."""
    metrics = _base_metrics(cutoff)
    out = {}
    for k, name in enumerate(names):
        rows = codes == k
        out[name] = {m: f(y[rows], p[rows]) for m, f in metrics.items()}
    return out


def fairness(
    groups: pd.Series,
    y_true: np.ndarray,
    p_bad: np.ndarray,
    cutoff: float,
    *,
    rounds: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per group of ``groups`` (aligned with ``y_true`` 0/1 and the bad probability
    ``p_bad``): the figures above with bootstrap 95% intervals, the most-approved group
    and one warning line per group whose adverse impact ratio is under 0.8."""
    from transfuse.intervals import interval

    y = np.asarray(y_true).astype(int)
    p = np.asarray(p_bad, dtype=float)
    if not (len(y) == len(p) == len(groups)):
        raise DataError(
            f"{len(groups)} group values for {len(y)} labels and {len(p)} scores",
            where=f"report.groups {groups.name!r}",
        )
    labels = group_labels(groups)
    names = sorted({str(v) for v in labels})
    codes = np.searchsorted(np.asarray(names, dtype=object), labels)
    frame = _metric_frame(y, p, labels, cutoff)
    point: dict[str, dict[str, float]] = {
        str(name): {m: float(v) for m, v in row.items()}
        for name, row in frame.by_group.to_dict(orient="index").items()
    }
    _relative(point)

    def flat(rows: np.ndarray) -> dict[str, float]:
        found = _by_group_fast(y[rows], p[rows], codes[rows], names, cutoff)
        _relative(found)
        return {f"{g}\x1f{m}": v for g, values in found.items() for m, v in values.items()}

    # resampled within each group (each keeps its size; its bads vary, so the observed bad
    # rate has an interval too); a round where a group draws one class has no AUC for it
    drawn = interval(flat, len(y), labels=codes, rounds=rounds, seed=seed)
    out_groups: dict[str, Any] = {}
    for k, name in enumerate(names):
        rows = codes == k
        entry: dict[str, Any] = {"rows": int(rows.sum()), "bads": int(y[rows].sum())}
        for metric in _METRICS:
            value = point[name][metric]
            found = drawn.get(f"{name}\x1f{metric}")
            entry[metric] = (
                {"value": value, "low": found.low, "high": found.high}
                if found is not None and np.isfinite(value)
                else {"value": value if np.isfinite(value) else None, "low": None, "high": None}
            )
        out_groups[name] = entry
    top = max(names, key=lambda g: point[g]["approval_rate"])
    return {
        "column": str(groups.name),
        "cutoff": float(cutoff),
        "rows": len(y),
        "most_approved": top,
        "groups": out_groups,
        "overall": {m: float(v) for m, v in frame.overall.items()},
        "warnings": _warnings(str(groups.name), out_groups, top),
        "largest_gaps": {
            "adverse_impact_ratio": float(frame.ratio(method="between_groups")["approval_rate"]),
            "equal_opportunity_difference": float(
                frame.difference(method="between_groups")["good_approval_rate"]
            ),
        },
    }


def _warnings(column: str, groups: Mapping[str, Any], top: str) -> list[str]:
    lines = []
    for name, entry in groups.items():
        ratio = entry["adverse_impact_ratio"]
        if ratio["value"] is None or ratio["value"] >= FOUR_FIFTHS:
            continue
        holds = ratio["high"] is not None and ratio["high"] < FOUR_FIFTHS
        lines.append(
            f"`{column}` = `{name}`: adverse impact ratio {_fmt(ratio)} is under "
            f"{FOUR_FIFTHS} (four-fifths rule): approved at {ratio['value']:.2f} times the rate "
            f"of `{top}`"
            + ("; the whole interval is under 0.8." if holds else "; the interval reaches 0.8.")
        )
    return lines


# -- the report section -------------------------------------------------------------------


def _fmt(figure: Mapping[str, Any]) -> str:
    value = figure.get("value")
    if value is None:
        return "n/a"
    if figure.get("low") is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"


def fairness_markdown(found: Mapping[str, Any]) -> str:
    """The report.md section from ``metrics["fairness"]`` (empty when there is none)."""
    if not found:
        return ""
    if "note" in found:
        return f"## Fairness\n\n{found['note']}\n"
    columns: Mapping[str, Any] = found.get("columns", {})
    cutoff = found.get("cutoff")
    lines = [
        "## Fairness",
        "",
        f"Groups compared on the {found.get('split', 'test')} rows at the cut-off "
        f"{cutoff:.4f} (approve: bad probability at or under it; {found.get('cutoff_rule', '')}). "
        "Figures with bootstrap 95% intervals, computed per group with fairlearn's "
        "MetricFrame. Calibration: mean predicted bad probability against the observed bad "
        "rate. Adverse impact ratio: the group's approval rate over the most-approved "
        "group's (four-fifths rule: under 0.8 is a warning). Equal-opportunity difference: "
        "the share of goods approved in the group minus the highest share of any group.",
        "",
    ]
    for column, result in columns.items():
        lines += [
            f"### `{column}`",
            "",
            "| group | rows | bads | AUC | mean predicted | observed bad rate | approval rate "
            "| adverse impact ratio | equal-opportunity difference |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        few = [name for name, g in result["groups"].items() if g["rows"] < FEW_ROWS]
        for name, g in result["groups"].items():
            mark = " \\*" if name in few else ""
            lines.append(
                f"| {name}{mark} | {g['rows']} | {g['bads']} | {_fmt(g['auc'])} | "
                f"{_fmt(g['mean_predicted'])} | {_fmt(g['observed_bad_rate'])} | "
                f"{_fmt(g['approval_rate'])} | {_fmt(g['adverse_impact_ratio'])} | "
                f"{_fmt(g['equal_opportunity_difference'])} |"
            )
        lines.append("")
        if few:
            lines += [
                f"\\* fewer than {FEW_ROWS} rows: the group's figures, and a ratio taken "
                "against it as the most-approved group, need their intervals read.",
                "",
            ]
        lines += [f"**Warning:** {w}" for w in result.get("warnings", [])]
        if result.get("warnings"):
            lines.append("")
    return "\n".join(lines)


# -- the cut-off and the pipeline's hook --------------------------------------------------


def measure_fairness(pipeline: Any) -> dict[str, Any]:
    """``{"fairness": ...}`` for ``metrics.json`` from a fitted pipeline's held-out rows, at
    the run's cut-off (``metrics["cutoff"]``, chosen on the validation rows); empty without
    ``report.groups``, a note when the task is not binary."""
    config = pipeline.config
    groups = list(config.report.groups)
    if not groups or pipeline._curve is None or pipeline.splits is None:
        return {}
    split, truth, scores = pipeline._curve
    p = np.asarray(scores, dtype=float)
    classes = getattr(pipeline.task, "classes", None)
    if classes is None or len(classes) != 2 or p.ndim != 2 or p.shape[1] != 1:
        note = "Not measured: fairness at a cut-off needs a binary task (a bad probability)."
        return {"fairness": {"note": note}}
    rows = pipeline.splits.test if split == "test" else pipeline.splits.validation
    y, p = np.asarray(truth).astype(int), p[:, 0]
    chosen = pipeline.metrics.get("cutoff", {})
    if "value" in chosen:
        cutoff = float(chosen["value"])
        rule = "the run's cut-off, chosen on the validation rows"
    else:  # no cut-off in the metrics: chosen here, on these rows, by the same rule
        from transfuse.scorecard import choose_cutoff

        cutoff = choose_cutoff(y, p, config.report.target_bad_rate)
        rule = f"chosen on the {split} rows"
    rounds = config.report.bootstrap_rounds
    columns = {
        column: fairness(
            rows[column].reset_index(drop=True),
            y,
            p,
            cutoff,
            rounds=rounds,
            seed=config.train.seed,
        )
        for column in groups
    }
    return {
        "fairness": {
            "split": split,
            "cutoff": cutoff,
            "cutoff_rule": rule,
            "rounds": rounds,
            "columns": columns,
        }
    }
