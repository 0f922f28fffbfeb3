"""``report.md`` and its plots: metrics, ROC, learning curve and modality importance.

Modality importance answers "what drove the score": each input is masked (marked missing,
as if the row lacked that modality) on the validation rows, and the drop in the validation
metric is reported. Plots are drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from transfuse.bases import Task
    from transfuse.data import FrameBatches
    from transfuse.device import DeviceManager
    from transfuse.model import FusionModel
    from transfuse.risk import RiskData

__all__ = ["ReportData", "findings", "modality_importance", "write_report"]


def modality_importance(
    model: FusionModel, data: FrameBatches, task: Task, device: DeviceManager, metric: str
) -> dict[str, dict[str, float]]:
    """Per input: the metric with it masked on ``data``, and the drop from the full model.

    A positive ``drop`` means the model is worse without that input.
    """
    from transfuse.train import predict_logits

    labels = data.labels()

    def score(masked: str | None) -> float:
        found = predict_logits(model, data, device, masked=[masked] if masked else [])
        logits = torch.from_numpy(found)
        if metric == "loss":
            return float(task.loss(logits, task.encode(labels)))
        return float(task.metrics(labels, task.scores(logits)).get(metric, float("nan")))

    base = score(None)
    sign = 1.0 if task.greater_is_better(metric) else -1.0
    out = {}
    for name in model.inputs:
        value = score(name)
        out[name] = {"metric": value, "drop": sign * (base - value), "full": base}
    return out


@dataclass
class ReportData:
    """What the report shows."""

    name: str
    task: str
    metric: str
    metrics: Mapping[str, Mapping[str, float]]
    history: Sequence[Mapping[str, Any]]
    importance: Mapping[str, Mapping[str, float]]
    inputs: Mapping[str, Mapping[str, Any]]
    splits: Mapping[str, int]
    best_epoch: int
    stopped_early: bool
    curve_split: str = "test"
    y_true: np.ndarray | None = None
    scores: np.ndarray | None = None
    score_columns: Sequence[str] = ()
    classification: bool = True
    environment: Mapping[str, Any] = field(default_factory=dict)
    transfer: Sequence[str] = ()
    comparison: str = ""
    shift: str = ""  # the transfer's domain-shift section (transfuse.shift)
    #: split -> input -> what its encoder noted (skipped files, unknown categories, ...)
    data_notes: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    #: The transferred starting weights' validation metric (a transfer run), else None.
    start_value: float | None = None
    #: One line per transfer strategy (what it loaded), for the summary.
    transfer_lines: Sequence[str] = ()
    #: More sentences for the summary (a transfer's comparison with its baseline).
    findings: Sequence[str] = ()
    #: Whether a higher ``metric`` is better.
    greater: bool = True
    #: Intervals, calibration, cut-offs and score bands (transfuse.risk), else None.
    risk: RiskData | None = None
    #: The fairness section's markdown (transfuse.fairness), empty without report.groups.
    fairness: str = ""
    #: Mean |attribution| per input and column on validation rows (transfuse.reasons).
    attribution: Mapping[str, Any] = field(default_factory=dict)


def write_report(directory: Path, data: ReportData) -> list[str]:
    """Write ``report.md`` and its plots into ``directory``; returns the files written."""
    import matplotlib

    from transfuse.risk import write_risk

    matplotlib.use("Agg", force=False)
    files = ["report.md"]
    plots: dict[str, str] = {}
    if data.y_true is not None and data.scores is not None and len(data.y_true):
        if data.classification:
            plots["roc.png"] = _roc(directory / "roc.png", data)
        else:
            plots["predictions.png"] = _predictions(directory / "predictions.png", data)
    if data.history:
        plots["learning_curve.png"] = _learning_curve(directory / "learning_curve.png", data)
    if data.importance:
        plots["modalities.png"] = _modalities(directory / "modalities.png", data)
    if data.attribution:
        from transfuse.reasons import attribution_plot

        plots["attribution.png"] = attribution_plot(directory / "attribution.png", data.attribution)
    files += list(plots)
    risk = write_risk(directory, data.risk) if data.risk is not None else None
    files += risk.files if risk else []
    text = _markdown(data, plots, risk.lines if risk else ())
    (directory / "report.md").write_text(text, "utf-8")
    return files


def _figure() -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4), dpi=100)


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _roc(path: Path, data: ReportData) -> str:
    from sklearn.metrics import auc, roc_curve

    assert data.y_true is not None and data.scores is not None
    fig, ax = _figure()
    y = np.asarray(data.y_true).astype(int)
    scores = np.asarray(data.scores)
    if scores.shape[1] == 1:
        curves = [(data.score_columns[0] if data.score_columns else "score", y, scores[:, 0])]
    else:
        curves = [
            (col, (y == k).astype(int), scores[:, k]) for k, col in enumerate(data.score_columns)
        ]
    for label, truth, s in curves:
        if len(np.unique(truth)) < 2:
            continue
        fpr, tpr, _ = roc_curve(truth, s)
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC on the {data.curve_split} rows")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)
    return f"ROC curve on the {data.curve_split} rows"


def _predictions(path: Path, data: ReportData) -> str:
    assert data.y_true is not None and data.scores is not None
    fig, ax = _figure()
    ax.scatter(data.y_true, np.asarray(data.scores)[:, 0], s=6, alpha=0.5)
    lo = float(min(np.min(data.y_true), np.min(data.scores)))
    hi = float(max(np.max(data.y_true), np.max(data.scores)))
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"Predictions on the {data.curve_split} rows")
    _save(fig, path)
    return f"predicted against actual on the {data.curve_split} rows"


def _learning_curve(path: Path, data: ReportData) -> str:
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure()
    epochs = [h["epoch"] + 1 for h in data.history]
    ax.plot(epochs, [h["train_loss"] for h in data.history], marker="o", label="train loss")
    val_loss = [h["validation"].get("loss", np.nan) for h in data.history]
    ax.plot(epochs, val_loss, marker="o", label="validation loss")
    ax.set_xlabel("epoch (0: the starting weights)" if data.start_value is not None else "epoch")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if data.metric != "loss":
        right = ax.twinx()
        values = [h["validation"].get(data.metric, np.nan) for h in data.history]
        right.plot(epochs, values, marker="s", color="tab:green", label=f"validation {data.metric}")
        if data.start_value is not None:
            right.plot(
                [0],
                [data.start_value],
                marker="*",
                markersize=12,
                color="tab:red",
                linestyle="none",
                label=f"starting weights' validation {data.metric}",
            )
        right.set_ylabel(data.metric)
        right.legend(loc="center right", fontsize=8)
    chosen = data.best_epoch + 1 if data.best_epoch >= 0 else 0
    ax.axvline(chosen, color="grey", linestyle=":", linewidth=1.5)
    ax.legend(loc="upper right", fontsize=8)
    kept = "the starting weights, kept" if data.best_epoch < 0 else f"epoch {chosen}"
    ax.set_title(f"Learning curve (dotted: the weights kept, {kept})")
    _save(fig, path)
    return (
        "training and validation loss and the validation metric per epoch; the dotted line "
        f"marks the weights kept ({kept})"
        + (
            "; the star, the starting weights' validation metric"
            if data.start_value is not None
            else ""
        )
    )


def _modalities(path: Path, data: ReportData) -> str:
    fig, ax = _figure()
    names = sorted(data.importance, key=lambda n: data.importance[n]["drop"])
    drops = [data.importance[n]["drop"] for n in names]
    colors = ["tab:red" if d > 0 else "tab:grey" for d in drops]
    ax.barh(names, drops, color=colors)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"drop in validation {data.metric} when the input is masked")
    ax.set_title("What drove the score: importance per input")
    _save(fig, path)
    return "the drop in the validation metric when each input is masked"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4f}"
    return "n/a" if value is None else str(value)


def note_lines(key: str, value: Any) -> list[str]:
    """One encoder note as readable lines (the two the platform's encoders write; any
    other key as JSON)."""
    import json

    def first(values: Sequence[Any]) -> str:
        return ", ".join(f"`{v}`" for v in values)

    if key == "skipped_files" and isinstance(value, int):
        return [f"{value} rows without their file (`on_bad_file: skip`)"]
    if key == "first":
        return [f"first skipped: {first(value)}"]
    if key == "unknown_categories" and isinstance(value, Mapping):
        return [
            f"`{column}`: {info.get('rows')} rows in the unknown bucket "
            f"(first: {first(info.get('first', []))})"
            for column, info in value.items()
        ]
    return [f"{key}: `{json.dumps(value, ensure_ascii=False, default=str)}`"]


def _notes(notes: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    lines = [
        "## Data notes",
        "",
        "What the encoders noted about each split's rows (also in `log.json`, under `data`); "
        "a category rarer than `min_frequency` counts as unknown in the training rows.",
        "",
        "| split | input | note |",
        "| --- | --- | --- |",
    ]
    for split, inputs in notes.items():
        for name, report in inputs.items():
            for key, value in report.items():
                lines += [f"| {split} | {name} | {text} |" for text in note_lines(key, value)]
    return [*lines, ""]


def findings(data: ReportData) -> list[str]:
    """The report's answers, one sentence each: how the weights were chosen and on how
    many rows, what a transfer loaded, and which input the model leans on."""
    out = []
    n_val = int(data.splits.get("validation", 0))
    epochs = len(data.history)
    values = [h.get("validation", {}).get(data.metric) for h in data.history]
    values = [v for v in values if isinstance(v, float | int) and v == v]
    if data.best_epoch >= 0:
        out.append(
            f"Early stopping on validation {data.metric} over {n_val} rows kept epoch "
            f"{data.best_epoch + 1} of {epochs}"
            + (" (stopped early)." if data.stopped_early else ".")
        )
    elif data.history:
        best = (
            f"; the best epoch reached {max(values) if data.greater else min(values):.4f}"
            if values
            else ""
        )
        start = f" ({data.start_value:.4f})" if data.start_value is not None else ""
        out.append(
            f"No epoch of {epochs} beat the transferred starting weights{start} on the {n_val} "
            f"validation rows{best}, so the starting weights were kept: training on the "
            "target's labels did not change the model."
        )
    if 0 < n_val < 200:
        out.append(
            f"That choice rests on {n_val} validation rows: a difference of a few hundredths "
            f"in validation {data.metric} between epochs is within noise there."
        )
    out += list(data.findings)
    out += list(data.transfer_lines)
    if len(data.importance) > 1:
        ranked = sorted(data.importance.items(), key=lambda kv: -kv[1]["drop"])
        (top, imp), (low, low_imp) = ranked[0], ranked[-1]
        out.append(
            f"The model leans most on `{top}`: masking it costs {imp['drop']:+.4f} in "
            f"validation {data.metric}; masking `{low}` costs {low_imp['drop']:+.4f} "
            "(positive: worse without the input)."
        )
    if {"accuracy", "macro_f1"} & {m for split in data.metrics.values() for m in split}:
        out.append(
            "accuracy and macro_f1 score the labels at a 0.5 threshold on the predicted "
            "probability; roc_auc, ks and pr_auc need no threshold."
        )
    return out


def _markdown(data: ReportData, plots: Mapping[str, str], risk: Sequence[str] = ()) -> str:
    lines = [f"# {data.name}", "", f"Task: **{data.task}**.", ""]
    lines += ["## Summary", ""]
    lines += [f"- {sentence}" for sentence in findings(data)]
    lines += ["", "Rows: " + ", ".join(f"{k} {v}" for k, v in data.splits.items()), ""]
    names = sorted({m for split in data.metrics.values() for m in split})
    splits = [s for s in data.metrics if data.metrics[s]]
    if names and splits:
        lines += [
            "| metric | " + " | ".join(splits) + " |",
            "| --- |" + " ---: |" * len(splits),
        ]
        for name in names:
            lines.append(
                f"| {name} | " + " | ".join(_fmt(data.metrics[s].get(name)) for s in splits) + " |"
            )
        lines.append("")
    lines += risk  # intervals, calibration, cut-offs, score bands (transfuse.risk)
    if data.fairness:
        lines += [data.fairness, ""]
    if data.comparison:
        lines += ["## Transfer against training from scratch", "", data.comparison, ""]
    lines += [
        "## Inputs",
        "",
        "| input | encoder | columns | frozen |",
        "| --- | --- | --- | --- |",
    ]
    for name, info in data.inputs.items():
        cols = ", ".join(f"`{c}`" for c in info.get("columns", []))
        lines.append(f"| {name} | {info.get('encoder')} | {cols} | {info.get('frozen', False)} |")
    lines.append("")
    if data.importance:
        lines += [
            "## What drove the score",
            "",
            f"Each input masked in turn on the validation rows; the drop in {data.metric} "
            "(positive: the model relies on it).",
            "",
            f"| input | {data.metric} without it | drop |",
            "| --- | ---: | ---: |",
        ]
        for name, imp in sorted(data.importance.items(), key=lambda kv: -kv[1]["drop"]):
            lines.append(f"| {name} | {_fmt(imp['metric'])} | {_fmt(imp['drop'])} |")
        lines.append("")
    if data.attribution:
        from transfuse.reasons import attribution_lines

        lines += attribution_lines(data.attribution)
    if plots:
        lines += ["## Plots", ""]
        for file, caption in plots.items():
            lines += [f"![{caption}]({file})", "", f"*{caption}*", ""]
    if data.data_notes:
        lines += _notes(data.data_notes)
    if data.shift:
        lines += ["## Domain shift: source -> target", "", data.shift, ""]
    if data.transfer:
        lines += [
            "## Transfer: what each strategy did",
            "",
            "Tensors per fate in each module; every tensor's fate is in `transfer.json`.",
            "",
            *[f"{t}\n" for t in data.transfer],
        ]
    env = data.environment
    if env:
        device = (env.get("device") or {}).get("device")
        lines += [
            "## Environment",
            "",
            f"transfuse {env.get('transfuse')}, Python {env.get('python')}, device {device}; "
            "plugins and versions in `environment.json`.",
            "",
        ]
    return "\n".join(lines)
