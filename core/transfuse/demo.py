"""``transfuse demo``: the four steps of the mission in one command, judged honestly.

(1) train a source model on the source domain, (2) train the target model from scratch on
a small label budget, (3) transfer the source model to the target with the preset's
strategies, (4) evaluate four models on the same held-out target rows: the source model
unchanged, pooled LightGBM (source rows + the target's labelled rows, a domain flag), the
target model from scratch and the transfer, each with a bootstrap 95% interval, and the
paired difference of the transfer against each other arm. The summary says in one sentence
what the target labels changed (fine-tuning may not beat the source weights on a few dozen
validation rows, in which case the source weights are kept and the transfer *is* the
source model), then ``report.md`` gives the details.

The core knows no data set: the demo runs the pipeline presets that a plugin registers as
``demo-source`` and ``demo-target`` (transfuse-finance registers a LendingClub pair).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from transfuse.errors import UnknownComponentError

if TYPE_CHECKING:
    import pandas as pd

    from transfuse.intervals import Interval
    from transfuse.pipeline import Pipeline
    from transfuse.plugins import PluginManager
    from transfuse.workflow import TransferResult

__all__ = ["DEMO_METRICS", "Arms", "compare_arms", "run_demo"]

DEMO_METRICS = ("roc_auc", "ks", "pr_auc", "brier")
#: The arms, in the order shown: key -> label.
ARMS = {
    "source": "source model, unchanged",
    "pooled": "pooled LightGBM (source + target rows)",
    "scratch": "target model from scratch",
    "transfer": "transfer",
}
#: The same LightGBM set-up as bench/baselines.py: small leaves and subsampling, so that it
#: behaves on a few hundred rows as on thousands.
LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 10,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "verbose": -1,
}


def _say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Arms:
    """Four models' scores on the same held-out target rows, their metrics with intervals
    and the transfer's paired differences against each other arm."""

    y: np.ndarray
    scores: dict[str, np.ndarray]
    metrics: dict[str, dict[str, Interval]]
    differences: dict[str, dict[str, Interval]]
    notes: list[str]
    split: str = "test"

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "rows": len(self.y),
            "positives": int(self.y.sum()),
            "arms": {k: ARMS.get(k, k) for k in self.scores},
            "metrics": {a: {m: i.to_dict() for m, i in v.items()} for a, v in self.metrics.items()},
            "transfer_minus": {
                a: {m: i.to_dict() for m, i in v.items()} for a, v in self.differences.items()
            },
            "notes": self.notes,
        }


def run_demo(
    out: str | Path,
    *,
    source: str = "demo-source",
    target: str = "demo-target",
    device: str | None = None,
    epochs: int | None = None,
    sample: int | None = None,
    manager: PluginManager | None = None,
) -> TransferResult:
    """Run the demo into ``out`` (``source/``, ``target/``, ``report.md``, ``demo.json``).

    ``epochs`` and ``sample`` (rows drawn from the data source, where its options take
    ``sample``) shrink the run for a quick look; the defaults are the presets'.
    """
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
    source_config = _smaller(source_config, device, epochs, sample)
    target_config = _smaller(target_config, device, epochs, sample)
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

    _say("[4/4] four models on the same held-out target rows (pooled LightGBM fitting) ...")
    arms = compare_arms(result, source_pipeline)
    sentences = what_changed(result, arms)
    _say(table(arms))
    for sentence in sentences:
        _say(f"      {sentence}")
    (out / "demo.json").write_text(
        json.dumps({**arms.to_dict(), "summary": sentences}, indent=2), "utf-8"
    )
    path = write_demo_report(out, result, source_pipeline, arms, sentences,
                             time.perf_counter() - started)  # fmt: skip
    _say(
        f"report: {path} (runs: {source_run}, {target_run}); {time.perf_counter() - started:.0f} s"
    )
    return result


def _smaller(config: Any, device: str | None, epochs: int | None, sample: int | None) -> Any:
    train: dict[str, Any] = {}
    if device:
        train["device"] = device
    if epochs:
        train["epochs"] = epochs
    update: dict[str, Any] = {}
    if train:
        update["train"] = config.train.model_copy(update=train)
    if sample and "sample" in config.data.options:
        options = {**config.data.options, "sample": sample}
        update["data"] = config.data.model_copy(update={"options": options})
    return config.model_copy(update=update) if update else config


def _brief(metrics: dict[str, Any]) -> str:
    split = "test" if metrics.get("test") else "validation"
    values = metrics.get(split, {})
    shown = ", ".join(f"{m} {values[m]:.3f}" for m in DEMO_METRICS if m in values)
    return f"{split}: {shown}"


def _test_rows(result: TransferResult) -> tuple[pd.DataFrame, str]:
    splits = result.pipeline.splits
    assert splits is not None
    if splits.test is not None and len(splits.test):
        return splits.test, "test"
    return splits.validation, "validation"


def _labelled(pipeline: Pipeline) -> pd.DataFrame:
    import pandas as pd

    splits = pipeline.splits
    assert splits is not None
    return pd.concat([splits.train, splits.validation], ignore_index=True)


def pooled_lightgbm(
    source: Pipeline, target: Pipeline, rows: pd.DataFrame
) -> tuple[np.ndarray | None, str]:
    """P(positive) on ``rows`` from LightGBM fitted on the source's labelled rows and the
    target's labelled rows together, over the target's table inputs' columns, with a
    domain flag; ``None`` and a note when LightGBM or table columns are missing."""
    import pandas as pd

    try:
        import lightgbm as lgb
    except ImportError:
        return None, "pooled LightGBM not run: lightgbm is not installed (pip install lightgbm)"
    label = target.config.task.target
    columns = list(
        dict.fromkeys(
            c
            for spec in target.config.inputs.values()
            if str(spec.encoder).startswith("tabular")
            for c in spec.column_list
        )
    )
    first, second = _labelled(source), _labelled(target)
    columns = [c for c in columns if c in first.columns and c in second.columns]
    if not columns:
        return None, "pooled LightGBM not run: the target has no table columns the source has"
    train = pd.concat(
        [first[columns].assign(_domain=0), second[columns].assign(_domain=1)], ignore_index=True
    )
    test = rows[columns].assign(_domain=1)
    for column in columns:
        if not pd.api.types.is_numeric_dtype(train[column]):
            kinds = sorted(set(train[column].dropna().astype(str)))
            for frame in (train, test):
                frame[column] = pd.Categorical(frame[column].astype("string"), categories=kinds)
    task = target.task
    assert task is not None
    y = np.concatenate([task.encode(first[label]).numpy(), task.encode(second[label]).numpy()])
    model = lgb.LGBMClassifier(**LGBM_PARAMS, random_state=target.config.train.seed)
    model.fit(train, y)
    note = (
        f"pooled LightGBM: {len(first)} source and {len(second)} target labelled rows, "
        f"{len(columns)} table columns and a domain flag"
    )
    return np.asarray(model.predict_proba(test))[:, 1], note


def compare_arms(result: TransferResult, source: Pipeline) -> Arms:
    """The four arms on the transfer's held-out rows (binary tasks)."""
    from transfuse.intervals import binary_interval, binary_paired

    rows, split = _test_rows(result)
    target = result.pipeline
    assert target.task is not None
    label = target.config.task.target
    y = target.task.encode(rows[label]).numpy().astype(int)
    scores: dict[str, np.ndarray] = {}
    notes: list[str] = []
    scores["source"] = source.predict_scores(rows)[:, 0]
    pooled, note = pooled_lightgbm(source, target, rows)
    notes.append(note)
    if pooled is not None:
        scores["pooled"] = pooled
    if result.baseline is not None:
        scores["scratch"] = result.baseline.predict_scores(rows)[:, 0]
    scores["transfer"] = target.predict_scores(rows)[:, 0]
    metrics = {k: binary_interval(y, v) for k, v in scores.items()}
    differences = {
        k: binary_paired(y, scores["transfer"], v) for k, v in scores.items() if k != "transfer"
    }
    return Arms(y, scores, metrics, differences, notes, split)


def what_changed(result: TransferResult, arms: Arms) -> list[str]:
    """The summary: what the target labels changed, then the transfer against each arm."""
    metrics = result.pipeline.metrics
    splits = metrics.get("splits", {})
    n_train, n_val = int(splits.get("train", 0)), int(splits.get("validation", 0))
    out = []
    same = arms.differences.get("source", {}).get("roc_auc")
    if int(metrics.get("best_epoch", -1)) < 0:
        text = (
            f"The {n_train + n_val} target labels did not change the model: fine-tuning on "
            f"{n_train} of them did not beat the source weights on the other {n_val} "
            "(the validation rows), so the source weights were kept"
        )
        if same is not None and abs(same.value) < 1e-3:
            text += (
                "; the transfer ranks the held-out rows as the unchanged source model does "
                f"(ROC-AUC difference {same.value:+.4f})"
            )
            brier = arms.differences.get("source", {}).get("brier")
            calibration = getattr(result.pipeline, "calibration", None)
            if calibration is not None and calibration.note.startswith("the source run's"):
                text += (
                    ", and it keeps the source's probability calibration too (the "
                    f"{n_val} validation rows do not reject it)"
                )
            elif brier is not None and abs(brier.value) >= 1e-4:
                text += (
                    f", and only its probability calibration, refit on the {n_val} validation "
                    f"rows, differs (Brier {brier.value:+.4f} [{brier.low:+.4f}, "
                    f"{brier.high:+.4f}])"
                )
        out.append(text + ".")
    else:
        out.append(
            f"Fine-tuning on {n_train} target labels changed the model: epoch "
            f"{int(metrics['best_epoch']) + 1} was kept by validation on {n_val} rows."
        )
    for key, diff in arms.differences.items():
        auc = diff.get("roc_auc")
        if auc is None:
            continue
        verdict = "better" if auc.low > 0 else "worse" if auc.high < 0 else "not distinguishable"
        out.append(
            f"Transfer against the {ARMS[key]}: ROC-AUC {auc.value:+.4f} "
            f"[{auc.low:+.4f}, {auc.high:+.4f}] ({verdict} on {auc.rows} {arms.split} rows)."
        )
    return out


def table(arms: Arms) -> str:
    """The four arms' metrics with intervals, and the transfer's paired differences."""
    lines = [f"      {'model':<40} {'roc_auc [95% interval]':>25} {'ks':>7} {'pr_auc':>7} "
             f"{'brier':>7} {'transfer - it (roc_auc)':>26}"]  # fmt: skip
    for key, found in arms.metrics.items():
        auc = found.get("roc_auc")
        diff = arms.differences.get(key, {}).get("roc_auc")
        lines.append(
            f"      {ARMS[key]:<40} {_cell(auc):>25} "
            + " ".join(
                f"{found[m].value:>7.4f}" if m in found else f"{'n/a':>7}"
                for m in ("ks", "pr_auc", "brier")
            )
            + f" {_cell(diff, signed=True) if diff else '':>26}"
        )
    lines.append(
        f"      ({len(arms.y)} held-out {arms.split} rows, {int(arms.y.sum())} positives; "
        "brier: lower is better, the others higher; intervals: bootstrap 95%, paired for "
        "differences)"
    )
    return "\n".join(lines)


def _cell(found: Interval | None, signed: bool = False) -> str:
    if found is None:
        return "n/a"
    f = "+.4f" if signed else ".4f"
    return f"{found.value:{f}} [{found.low:{f}}, {found.high:{f}}]"


def _roc_plot(path: Path, arms: Arms) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for key, scores in arms.scores.items():
        fpr, tpr, _ = roc_curve(arms.y, scores)
        auc = arms.metrics[key].get("roc_auc")
        ax.plot(fpr, tpr, label=f"{ARMS[key]} ({auc.value:.3f})" if auc else ARMS[key])
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC on the held-out target {arms.split} rows")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_demo_report(
    out: Path,
    result: TransferResult,
    source: Any,
    arms: Arms,
    sentences: list[str],
    seconds: float,
) -> Path:
    """``report.md`` for the whole demo: the answer first (four arms, differences, what the
    target labels changed), then how it was made, with a ROC plot of the four arms."""
    from transfuse.explain import riskiest

    _roc_plot(out / "roc_arms.png", arms)
    target = result.pipeline.config
    rows, _ = _test_rows(result)
    reasons = riskiest(result.pipeline, rows, n=3, top=3)
    metrics = ("roc_auc", "ks", "pr_auc", "brier")
    lines = [
        f"# transfuse demo: {source.config.name} -> {target.name}",
        "",
        "## Answer",
        "",
        *[f"- {s}" for s in sentences],
        "",
        f"Four models on the same {len(arms.y)} held-out target {arms.split} rows "
        f"({int(arms.y.sum())} positives); each figure with its bootstrap 95% interval "
        "(stratified by class, 1,000 rounds).",
        "",
        "| model | " + " | ".join(metrics) + " |",
        "| --- |" + " ---: |" * len(metrics),
    ]
    for key, found in arms.metrics.items():
        lines.append(f"| {ARMS[key]} | " + " | ".join(_cell(found.get(m)) for m in metrics) + " |")
    lines += [
        "",
        "The transfer minus each other model on the same rows (paired bootstrap 95% interval; "
        "an interval that excludes 0 is a difference that holds; brier: negative is better):",
        "",
        "| transfer minus | " + " | ".join(metrics) + " |",
        "| --- |" + " ---: |" * len(metrics),
    ]
    for key, diff in arms.differences.items():
        lines.append(
            f"| {ARMS[key]} | "
            + " | ".join(_cell(diff.get(m), signed=True) for m in metrics)
            + " |"
        )
    lines += [
        "",
        "![ROC of the four models](roc_arms.png)",
        "",
        "## Why the three riskiest held-out applicants scored high",
        "",
        "The transferred model's top reasons (attributions in logit units against the "
        "training reference; the method per input is in transfuse's docs/explain.md):",
        "",
        *reasons,
        "",
        "## How it was made",
        "",
        f"{source.config.description}".strip(),
        "",
        f"{target.description}".strip(),
        "",
        "1. Source model trained on the source domain: "
        f"{_brief(source.metrics)} ([run](source/report.md)); scored unchanged on the target.",
        "2. Target model trained from scratch on the target's labelled rows "
        "([run](target/baseline/report.md)).",
        "3. Source model transferred to the target with "
        + ", ".join(r.strategy for r in result.reports or [])
        + " and the preset's other strategies ([run](target/report.md)).",
        f"4. {'; '.join(arms.notes)}.",
        "",
        "## Transfer: what each strategy did",
        "",
        *[r.summary() + "." for r in result.reports],
        "",
        "Per module in [the target run's report](target/report.md); every tensor in "
        "`target/transfer.json`.",
        "",
        f"Ran in {seconds:.0f} s; the figures are also in `demo.json`.",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines), "utf-8")
    return path
