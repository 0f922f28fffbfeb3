"""``transfuse demo``: the four steps of the mission in one command.

(1) train a source model on the source domain, (2) train the target model from scratch on
a small label budget, (3) transfer the source model to the target with the preset's
strategies, (4) evaluate both on the same held-out target rows, print a table and the
transfer report, and write ``report.md`` with plots.

The core knows no data set: the demo runs the pipeline presets that a plugin registers as
``demo-source`` and ``demo-target`` (transfuse-finance registers a LendingClub pair).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfuse.errors import UnknownComponentError

if TYPE_CHECKING:
    from transfuse.plugins import PluginManager
    from transfuse.workflow import TransferResult

__all__ = ["DEMO_METRICS", "run_demo"]

DEMO_METRICS = ("roc_auc", "ks", "pr_auc", "brier")


def _say(message: str) -> None:
    print(message, flush=True)


def run_demo(
    out: str | Path,
    *,
    source: str = "demo-source",
    target: str = "demo-target",
    device: str | None = None,
    manager: PluginManager | None = None,
) -> TransferResult:
    """Run the demo into ``out`` (``source/``, ``target/``, ``report.md``)."""
    from transfuse.config import load_pipeline
    from transfuse.pipeline import Pipeline
    from transfuse.plugins import get_plugin_manager
    from transfuse.runs import check_destination
    from transfuse.workflow import transfer

    manager = manager or get_plugin_manager()
    try:
        source_config = load_pipeline(source, manager)
        target_config = load_pipeline(target, manager)
    except UnknownComponentError as exc:
        raise UnknownComponentError(
            f"the demo needs the pipeline presets {source!r} and {target!r}: {exc.what}",
            fix="install transfuse-finance (pip install -e plugins/finance), which ships them",
        ) from None
    if device:
        source_config = _on(source_config, device)
        target_config = _on(target_config, device)
    out = Path(out)
    for part in (out / "source", out / "target"):
        check_destination(part)
    started = time.perf_counter()

    _say(f"[1/4] training the source model: {source_config.description or source_config.name}")
    source_pipeline = Pipeline(source_config, manager=manager).fit()
    source_run = source_pipeline.save(out / "source")
    _say(f"      {_brief(source_pipeline.metrics)} -> {source_run}")

    steps = target_config.transfer.steps() if target_config.transfer else [("finetune", {})]
    names = ", ".join(name for name, _ in steps)
    _say(
        f"[2/4] training the target model from scratch and [3/4] transferring ({names}): "
        f"{target_config.description or target_config.name}"
    )
    result = transfer(target_config, source_run, manager=manager, baseline="scratch")
    target_run = result.save(out / "target")
    _say(f"      transfer: {_brief(result.pipeline.metrics)}")
    if result.baseline is not None:
        _say(f"      scratch:  {_brief(result.baseline.metrics)}")

    _say("[4/4] both on the same held-out target rows:")
    _say(table(result))
    for report in result.reports:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(report.counts().items()))
        _say(f"      {report.strategy}: {report.loaded_fraction:.1%} of target parameters "
             f"loaded ({counts})")  # fmt: skip
    path = write_demo_report(out, result, source_pipeline, time.perf_counter() - started)
    _say(
        f"report: {path} (runs: {source_run}, {target_run}); {time.perf_counter() - started:.0f} s"
    )
    return result


def _on(config: Any, device: str) -> Any:
    return config.model_copy(update={"train": config.train.model_copy(update={"device": device})})


def _brief(metrics: dict[str, Any]) -> str:
    split = "test" if metrics.get("test") else "validation"
    values = metrics.get(split, {})
    shown = ", ".join(f"{m} {values[m]:.3f}" for m in DEMO_METRICS if m in values)
    return f"{split}: {shown}"


def table(result: TransferResult) -> str:
    """The side-by-side table of the demo's metrics, as printed."""
    from transfuse.workflow import split_of

    split = split_of(result.pipeline.metrics)
    rows = [f"      {'metric':<10} {'scratch':>9} {'transfer':>9} {'difference':>11}"]
    for metric in DEMO_METRICS:
        row = result.comparison.get(metric)
        if row is None:
            continue
        rows.append(
            f"      {metric:<10} {row['scratch']:>9.4f} {row['transfer']:>9.4f} "
            f"{row['difference']:>+11.4f}"
        )
    better = "lower" if "brier" in DEMO_METRICS else ""
    rows.append(f"      ({split} rows; brier: {better} is better, the others higher)")
    return "\n".join(rows)


def write_demo_report(out: Path, result: TransferResult, source: Any, seconds: float) -> Path:
    """``report.md`` for the whole demo, with a ROC plot of transfer against scratch."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from transfuse.workflow import comparison_table, split_of

    plots = []
    curves = {"transfer": result.pipeline._curve}
    if result.baseline is not None:
        curves["scratch"] = result.baseline._curve
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for label, curve in curves.items():
        if curve is None or curve[2] is None or curve[2].shape[1] != 1:
            continue
        _, truth, scores = curve
        fpr, tpr, _ = roc_curve(truth, scores[:, 0])
        ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Target test rows")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc_transfer_vs_scratch.png")
    plt.close(fig)
    plots.append("roc_transfer_vs_scratch.png")

    split = split_of(result.pipeline.metrics)
    target = result.pipeline.config
    lines = [
        f"# transfuse demo: {source.config.name} -> {target.name}",
        "",
        f"{source.config.description}".strip(),
        "",
        f"{target.description}".strip(),
        "",
        "1. Source model trained on the source domain: "
        f"{_brief(source.metrics)} ([run](source/report.md)).",
        "2. Target model trained from scratch on the target's labelled rows "
        "([run](target/baseline/report.md)).",
        "3. Source model transferred to the target with "
        + ", ".join(r.strategy for r in result.reports or [])
        + " and the preset's other strategies ([run](target/report.md)).",
        f"4. Both evaluated on the same held-out target {split} rows:",
        "",
        comparison_table(result.comparison, split),
        "",
        *[f"![{p}]({p})" for p in plots],
        "",
        "## Transfer report",
        "",
        *[r.to_markdown() + "\n" for r in result.reports],
        f"Ran in {seconds:.0f} s.",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines), "utf-8")
    return path
