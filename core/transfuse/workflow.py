"""The transfer workflow (`transfuse.transfer`): source run -> strategies -> target run -> report.

``transfer(target, source_run, strategies=[...])`` loads a finished source run, builds the
target pipeline, lets each strategy copy, map or freeze parameters before training and
shape the optimizer and loss during it, trains on the target's labelled rows, evaluates
on its held-out rows and, with ``baseline="scratch"``, trains the same target pipeline
from scratch on the same rows and seed so the report can say whether transfer helped.
Every transferred run's report also has a domain-shift section (``transfuse.shift``):
per-column PSI between the source rows and the target rows, a domain classifier's AUC and
the columns that moved most, so a reader can judge whether transfer could pay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transfuse.config import PipelineConfig, load_pipeline, parse_config
from transfuse.errors import ConfigError

if TYPE_CHECKING:
    from transfuse.bases import TransferReport, TransferStrategy
    from transfuse.data import Splits
    from transfuse.model import FusionModel
    from transfuse.pipeline import Pipeline
    from transfuse.plugins import PluginManager

__all__ = [
    "COMPARED",
    "TransferResult",
    "comparison_finding",
    "comparison_table",
    "paired_on_curves",
    "source_runs",
    "transfer",
]

StrategySpec = "str | tuple[str, Mapping[str, Any]] | Mapping[str, Any] | TransferStrategy"

#: The metrics the side-by-side table shows (those the task reports).
COMPARED = ("roc_auc", "ks", "pr_auc", "brier", "log_loss", "accuracy", "macro_f1", "rmse", "mae")


@dataclass
class TransferResult:
    """The transferred pipeline, the optional scratch baseline, and their comparison."""

    pipeline: Pipeline
    baseline: Pipeline | None = None
    reports: list[TransferReport] = field(default_factory=list)
    comparison: dict[str, dict[str, float]] = field(default_factory=dict)

    def __repr__(self) -> str:
        split = split_of(self.pipeline.metrics)
        metric = self.pipeline.metrics.get("metric", "loss")
        value = self.pipeline.metrics.get(split, {}).get(metric)
        shown = f"{split} {metric} {value:.4f}" if isinstance(value, float) else "not evaluated"
        if self.baseline is not None:
            other = self.baseline.metrics.get(split, {}).get(metric)
            shown += f" (scratch {other:.4f})" if isinstance(other, float) else ""
        best = self.pipeline.metrics.get("best_epoch", -1)
        kept = "starting weights kept" if best < 0 else f"best epoch {best + 1}"
        strategies = [r.strategy for r in self.reports]
        return (
            f"TransferResult({self.pipeline.config.name!r}, strategies={strategies}, "
            f"{shown}, {kept})"
        )

    def save(self, directory: str | Path) -> Path:
        """Write the transferred run (its report compares with the baseline) and, beside
        it in ``baseline/``, the scratch run."""
        path = self.pipeline.save(directory)
        if self.baseline is not None:
            self.baseline.save(path / "baseline")
        return path


def _as_config(target: Pipeline | PipelineConfig | Mapping[str, Any] | str | Path) -> Any:
    from transfuse.pipeline import Pipeline

    if isinstance(target, Pipeline):
        return target.config, target.base_dir
    if isinstance(target, PipelineConfig):
        return target, None
    if isinstance(target, Mapping):
        return parse_config(dict(target)), None
    base = Path(target).parent if Path(target).is_file() else None
    return load_pipeline(target), base


def build_strategies(
    specs: Sequence[Any], manager: PluginManager, device: Any
) -> list[TransferStrategy]:
    """Strategy instances from names, ``(name, options)`` pairs, ``{name: options}`` or
    instances; ``strategy.layer-map`` goes first when no strategy copies weights."""
    from transfuse.bases import TransferStrategy

    out: list[TransferStrategy] = []
    for i, spec in enumerate(specs):
        where = f"transfer.strategies.{i}"
        if isinstance(spec, TransferStrategy):
            out.append(spec)
            continue
        if isinstance(spec, str):
            name, options = spec, {}
        elif isinstance(spec, tuple):
            name, options = spec[0], dict(spec[1] or {})
        elif isinstance(spec, Mapping) and len(spec) == 1:
            ((name, options),) = spec.items()
            options = dict(options or {})
        else:
            raise ConfigError(
                f"cannot read strategy {spec!r}", where=where, fix="give a name or {name: options}"
            )
        entry = manager.get("strategy", name, where=where)
        strategy = entry.load()(entry.validate_options(options, f"{where}.options"), device)
        strategy.name = entry.name
        out.append(strategy)
    if not any(getattr(s, "copies_weights", False) for s in out):
        entry = manager.get("strategy", "layer-map", where="transfer.strategies")
        first = entry.load()(entry.validate_options({}), device)
        first.name = entry.name
        out.insert(0, first)
    return out


def source_runs(
    given: str | Path | Sequence[str | Path] | None, base_dir: Path | None
) -> list[Path]:
    """The source run directories, in order: one path, a list, or a comma-separated
    string; relative paths that do not exist here are taken from ``base_dir``."""
    if given is None:
        return []
    items = [given] if isinstance(given, str | Path) else list(given)
    names = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    out = []
    for name in names:
        path = Path(name)
        if base_dir is not None and not path.is_absolute() and not path.exists():
            path = base_dir / path
        out.append(path)
    if len(set(out)) != len(out):
        raise ConfigError(
            "a source run is given twice", where="transfer.from", fix="give each run once"
        )
    return out


def transfer(
    target: Pipeline | PipelineConfig | Mapping[str, Any] | str | Path,
    source_run: str | Path | Sequence[str | Path] | None = None,
    strategies: Sequence[Any] | None = None,
    *,
    data: pd.DataFrame | None = None,
    test: pd.DataFrame | None = None,
    unlabeled: pd.DataFrame | None = None,
    source_data: pd.DataFrame | None = None,
    baseline: str | None = None,
    manager: PluginManager | None = None,
    shift: bool = True,
) -> TransferResult:
    """Train ``target`` by transfer from the run in ``source_run`` (or several runs: a
    list, or comma-separated; strategies see them all, in order, in ``ctx.source_models``;
    ``source_data`` and the domain-shift section are the first run's).

    ``strategies`` default to the config's ``transfer.strategies`` (else ``finetune``);
    ``data``/``test`` replace the config's data; ``unlabeled`` holds unlabeled target rows
    for the alignment strategies (``coral``, ``dann``), which also use ``source_data``
    (default: the source run's own data, loaded from its config). ``baseline="scratch"``
    also trains the target from scratch on the same rows and seed. ``shift`` (default on)
    measures the domain shift for the report (source rows loaded from the source run's
    config when not given; a note says so when they cannot be).
    """
    from transfuse.pipeline import Pipeline, load
    from transfuse.plugins import get_plugin_manager

    manager = manager or get_plugin_manager()
    config, base_dir = _as_config(target)
    section = config.transfer
    if source_run is None or (not isinstance(source_run, str | Path) and not source_run):
        source_run = section.sources() if section is not None else None
    paths = source_runs(source_run, base_dir)
    if not paths:
        raise ConfigError(
            "no source run to transfer from",
            where="transfer.from",
            fix="pass --from RUN (a finished run directory) or set transfer.from",
        )
    source_path = paths[0]
    specs = list(strategies) if strategies is not None else None
    if specs is None:
        specs = [dict([s]) for s in section.steps()] if section is not None else ["finetune"]
    baseline = baseline or (section.baseline if section is not None else "none")
    if baseline not in {"none", "scratch"}:
        raise ConfigError(f"unknown baseline {baseline!r}", where="--baseline", fix="none|scratch")

    loaded = []
    for path in paths:  # each checked as a single source is (weights, components)
        loaded.append(load(path, manager=manager))
    source = loaded[0]
    names = [str(p) for p in paths]
    pipeline = Pipeline(config, manager=manager, base_dir=base_dir)
    device = pipeline._make_device()
    instances = build_strategies(specs, manager, device)
    needs_source = any(getattr(s, "needs_source_data", False) for s in instances)
    if needs_source and source_data is None:
        source_data = source.load_data()

    def init(pipe: Pipeline, model: FusionModel, splits: Splits) -> list[TransferReport]:
        from transfuse.bases import TransferContext

        assert pipe.device is not None and source.model is not None
        pipe.calibration_source = source  # kept when the model stays the source's
        steps = -(-len(splits.train) // pipe.config.train.batch_size)
        ctx = TransferContext(
            source_model=source.model,
            source_models=[s.model for s in loaded if s.model is not None],
            source_names=names,
            target_model=model,
            device=pipe.device,
            target_data=splits.train,
            validation_data=splits.validation,
            unlabeled=unlabeled,
            source_data=source_data,
            epochs=pipe.config.train.epochs,
            steps_per_epoch=steps,
            batches=pipe.batches,
            extra={
                "label": pipe.config.task.target,
                "task": pipe.task,
                "source_config": source.config,
                "source_configs": [s.config for s in loaded],
            },
        )
        reports = []
        for strategy in instances:
            report = strategy.prepare(ctx)
            if report is not None and report not in reports:
                reports.append(report)
        manager.emit(
            "transfer_prepared",
            {
                "source": str(source_path),
                "sources": names,
                "reports": [r.to_dict() for r in reports],
            },
        )
        return reports

    pipeline.fit(data, test, strategies=instances, init=init)
    result = TransferResult(pipeline, reports=list(pipeline.transfer_reports))
    pipeline.metrics["transfer"] = {
        "source": str(source_path),
        "sources": names,
        "strategies": [getattr(s, "name", type(s).__name__) for s in instances],
        "loaded_fraction": [r.loaded_fraction for r in result.reports],
    }
    if shift:
        measured, text = measure_shift(pipeline, source, source_data, instances, unlabeled)
        pipeline.metrics["transfer"]["shift"] = measured
        pipeline.shift = text
    if baseline == "scratch":
        scratch_config = config.model_copy(update={"transfer": None})
        scratch = Pipeline(scratch_config, manager=manager, base_dir=base_dir)
        scratch.fit(data, test)
        result.baseline = scratch
        paired = paired_on_curves(pipeline, scratch)
        result.comparison = compare(pipeline.metrics, scratch.metrics, paired)
        pipeline.findings.append(comparison_finding(result.comparison, pipeline, "scratch"))
        pipeline.metrics["baseline"] = {
            k: scratch.metrics[k] for k in ("validation", "test") if k in scratch.metrics
        }
        pipeline.comparison = comparison_table(result.comparison, split_of(pipeline.metrics))
    return result


def measure_shift(
    pipeline: Pipeline,
    source: Pipeline,
    source_data: pd.DataFrame | None,
    strategies: Sequence[TransferStrategy],
    unlabeled: pd.DataFrame | None,
) -> tuple[dict[str, Any], str]:
    """The domain shift between the source rows and every target row (features only:
    training, validation, test and unlabeled), over the target's input columns; source
    columns are renamed as the strategies' ``columns`` options say. Returns the JSON form
    and the report.md section (a note instead when the source rows cannot be loaded).
    Only table inputs' columns are compared (others hold free text or file paths)."""
    from transfuse.errors import TransfuseError
    from transfuse.shift import domain_shift

    if source_data is None:
        try:
            source_data = source.load_data()
        except (TransfuseError, OSError) as exc:
            note = f"not measured: the source run's rows could not be loaded ({exc})"
            return {"error": note}, f"Domain shift {note}; pass source_data= to measure it."
    renames: dict[str, str] = {}
    for strategy in strategies:
        columns = getattr(getattr(strategy, "options", None), "columns", None)
        if isinstance(columns, Mapping):
            renames.update({str(k): str(v) for k, v in columns.items()})
    source_rows = source_data.rename(columns=renames)
    splits = pipeline.splits
    assert splits is not None
    parts = [splits.train, splits.validation, splits.test, splits.unlabeled, unlabeled]
    target_rows = pd.concat([p for p in parts if p is not None and len(p)], ignore_index=True)
    tables = [s for s in pipeline.config.inputs.values() if str(s.encoder).startswith("tabular")]
    columns = list(dict.fromkeys(c for spec in tables for c in spec.column_list))
    if not columns:  # text, images, audio: their columns hold free text or file paths
        return {"error": "no table inputs"}, "Domain shift not measured: no table inputs."
    try:
        report = domain_shift(source_rows, target_rows, columns)
    except TransfuseError as exc:
        return {"error": str(exc)}, f"Domain shift not measured: {exc}"
    return report.to_dict(), report.to_markdown()


def split_of(metrics: Mapping[str, Any]) -> str:
    """The split the comparison uses: test when there is one, else validation."""
    return "test" if metrics.get("test") else "validation"


def paired_on_curves(a: Pipeline, b: Pipeline) -> dict[str, Any]:
    """Paired bootstrap intervals of ``a`` minus ``b`` on the rows both were evaluated on
    (binary tasks; empty when the rows differ or the task is not binary)."""
    from transfuse.intervals import binary_paired

    if not a._curve or not b._curve:
        return {}
    (_, truth_a, scores_a), (_, truth_b, scores_b) = a._curve, b._curve
    if (
        scores_a is None
        or scores_b is None
        or scores_a.shape[1] != 1
        or scores_b.shape != scores_a.shape
        or not np.array_equal(truth_a, truth_b)
    ):
        return {}
    return binary_paired(truth_a, scores_a[:, 0], scores_b[:, 0])


def compare(
    transferred: Mapping[str, Any],
    scratch: Mapping[str, Any],
    paired: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Per metric: the transferred value, the scratch value and their difference (with the
    paired bootstrap 95% interval of the difference, ``low``/``high``, where given)."""
    split = split_of(transferred)
    a, b = transferred.get(split, {}), scratch.get(split, {})
    out, paired = {}, paired or {}
    for m in COMPARED:
        if m in a and m in b:
            row = {
                "transfer": float(a[m]),
                "scratch": float(b[m]),
                "difference": float(a[m] - b[m]),
            }
            if m in paired:
                row.update(low=paired[m].low, high=paired[m].high, rows=float(paired[m].rows))
            out[m] = row
    return out


def comparison_finding(
    comparison: Mapping[str, Mapping[str, float]], pipeline: Pipeline, other: str
) -> str:
    """One sentence: the transfer against ``other`` on the early-stopping metric (or the
    first compared), with its interval and whether the difference holds."""
    if not comparison:
        return f"Transfer and {other} could not be compared (no metric in common)."
    metric = str(pipeline.metrics.get("metric"))
    name = metric if metric in comparison else next(iter(comparison))
    row = comparison[name]
    split = split_of(pipeline.metrics)
    text = (
        f"Transfer against {other} on the same {split} rows: {name} {row['transfer']:.4f} "
        f"vs {row['scratch']:.4f}, difference {row['difference']:+.4f}"
    )
    if "low" in row:
        holds = row["low"] > 0 or row["high"] < 0
        text += (
            f" (paired bootstrap 95% interval [{row['low']:+.4f}, {row['high']:+.4f}] over "
            f"{int(row['rows'])} rows: " + ("the difference holds)." if holds else "within noise).")
        )
    else:
        text += "."
    return text


def comparison_table(comparison: Mapping[str, Mapping[str, float]], split: str) -> str:
    """The side-by-side markdown table for ``report.md``."""
    lines = [
        f"Both trained on the same target rows with the same seed; metrics on the {split} "
        "rows; the interval is a paired bootstrap 95% interval of the difference.",
        "",
        "| metric | transfer | scratch | difference | 95% interval |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for metric, row in comparison.items():
        interval = f"[{row['low']:+.4f}, {row['high']:+.4f}]" if "low" in row else "n/a"
        lines.append(
            f"| {metric} | {row['transfer']:.4f} | {row['scratch']:.4f} | "
            f"{row['difference']:+.4f} | {interval} |"
        )
    return "\n".join(lines)
