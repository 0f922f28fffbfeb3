"""Monitoring: has the population moved since training? (``transfuse monitor``)

When a run is saved it keeps, in ``reference.json``, what monitoring needs of its
training rows and never the rows themselves: per input column its bins and counts
(numbers: the training deciles' edges; categories: those held by at least ``MIN_COUNT``
training rows, the rest pooled as "other"; free text and file paths: deciles of their
length in characters; event lists: of their number of events), its missing count, and
the same bins of the score on the training rows. ``transfuse monitor RUN --data NEW``
then measures, on the new rows, each column's and the score's population stability index
(PSI, :mod:`transfuse.shift`'s formula and bands), missing rates and the share of
categories outside the reference, and writes ``monitor.md`` (with plots) and
``monitor.json``. Exit status 0: stable; 1: a PSI above ``--fail-above`` (the columns are
named); 2: bad input.

The domain classifier of :mod:`transfuse.shift` needs rows from both sides. Rows
sampled from the stored bins would be independent column by column, so the classifier
would tell them from any real rows by their correlations alone; instead the training rows
are reloaded from the run's ``data`` config and split again, and used only when their
digest (a SHA-256 kept in ``reference.json``) matches the rows the run was trained on;
otherwise the classifier is skipped with a note saying why.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfuse.errors import CheckpointError, DataError, TransfuseError

if TYPE_CHECKING:
    import argparse

    import numpy as np
    import pandas as pd

    from transfuse.pipeline import Pipeline

__all__ = [
    "FAIL_ABOVE",
    "MIN_COUNT",
    "REFERENCE",
    "add_monitor_command",
    "build_reference",
    "column_reference",
    "compare",
    "input_columns",
    "monitor_run",
    "psi_of_counts",
    "read_reference",
    "write_monitor",
]

REFERENCE = "reference.json"
#: The default ``--fail-above``: shift.py's major PSI band (kept here, as a literal, so the
#: parser needs no numpy; a test checks they agree).
FAIL_ABOVE = 0.25
#: A category is kept by name only when at least this many training rows hold it.
MIN_COUNT = 10
_TOP = 30  # categories kept by name at most (shift.py's choice too)
_BINS = 10
_SCORE_ROWS = 20_000  # training rows scored for the score's reference (a seeded sample)
_EPS = 1e-4  # share given to an empty bin (shift.py's value), so the logarithm stays finite
_TEXT_COVER = 0.5  # strings whose kept categories cover less than this are free text


# -- the reference ------------------------------------------------------------------------


def _edges(values: np.ndarray, bins: int = _BINS) -> list[float]:
    """The inner quantile edges of the present values (shift.py's numeric bins)."""
    import numpy as np

    present = values[~np.isnan(values)]
    if not len(present):
        return []
    inner = np.linspace(0, 1, bins + 1)[1:-1]
    return [float(e) for e in np.unique(np.quantile(present, inner))]


def _numeric_counts(values: np.ndarray, edges: Sequence[float]) -> tuple[list[int], int]:
    """Counts per bin (``len(edges) + 1`` of them) and the missing count."""
    import numpy as np

    missing = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="right")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [int(c) for c in counts], int(missing.sum())


def _lengths(values: pd.Series, kind: str) -> np.ndarray:
    """Characters of each text (``text``) or items of each list (``events``); NaN missing."""
    import numpy as np

    def one(v: Any) -> float:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return np.nan
        return float(len(v) if kind == "events" and hasattr(v, "__len__") else len(str(v)))

    return np.asarray([one(v) for v in values], dtype=float)


def _is_events(values: pd.Series) -> bool:
    import numpy as np

    present = values.dropna()
    return bool(len(present)) and isinstance(present.iloc[0], list | tuple | np.ndarray | dict)


def _as_text(values: pd.Series) -> pd.Series:
    return (
        values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))
    )


def _is_numeric(values: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def column_reference(values: pd.Series) -> dict[str, Any]:
    """What monitoring keeps of one training column: its kind, bins, counts and missing
    count; of categories only those at least ``MIN_COUNT`` rows hold (never a rarer value)."""
    import pandas as pd

    rows = len(values)
    if _is_events(values):
        kind = "events"
    elif _is_numeric(values):
        numbers = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
        edges = _edges(numbers)
        counts, missing = _numeric_counts(numbers, edges)
        return {
            "kind": "numeric",
            "rows": rows,
            "edges": edges,
            "counts": counts,
            "missing": missing,
        }
    else:
        text = _as_text(values)
        frequent = text.dropna().value_counts()
        kept = frequent[frequent >= MIN_COUNT].iloc[:_TOP]
        present = int(text.notna().sum())
        if present and kept.sum() >= _TEXT_COVER * present:
            return {
                "kind": "categorical",
                "rows": rows,
                "categories": {str(k): int(v) for k, v in kept.items()},
                "other": present - int(kept.sum()),
                "missing": rows - present,
                "distinct": len(frequent),
            }
        kind = "text"
    lengths = _lengths(values, kind)
    edges = _edges(lengths)
    counts, missing = _numeric_counts(lengths, edges)
    return {"kind": kind, "rows": rows, "edges": edges, "counts": counts, "missing": missing}


def _digest(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """A SHA-256 of the rows' values in ``columns`` and their index (never the rows)."""
    import pandas as pd

    digest = hashlib.sha256(json.dumps(list(columns)).encode())
    try:
        hashed = pd.util.hash_pandas_object(frame[list(columns)], index=True)
    except TypeError:  # unhashable cells (event lists): the index and the last column
        hashed = pd.util.hash_pandas_object(frame[list(columns)[-1]], index=True)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def input_columns(pipeline: Pipeline) -> list[str]:
    """Every column the run's inputs read, once each, in config order."""
    return list(
        dict.fromkeys(c for spec in pipeline.config.inputs.values() for c in spec.column_list)
    )


def build_reference(
    pipeline: Pipeline, train: pd.DataFrame, held_out: Sequence[pd.DataFrame | None] = ()
) -> dict[str, Any]:
    """The run's ``reference.json``: each input column's bins and counts on the training
    rows, a digest of those rows, and the score's bins on the ``held_out`` rows (the
    validation and test rows: on the rows it was fitted to, a model's scores are more
    confident than on any new rows, so they would show a shift that is only overfitting);
    the training rows when none is held out."""
    import numpy as np
    import pandas as pd

    columns = input_columns(pipeline)
    target = pipeline.config.task.target
    parts = [part for part in held_out if part is not None and len(part)]
    scored = pd.concat(parts) if parts else train
    sample = scored
    if len(scored) > _SCORE_ROWS:
        rng = np.random.default_rng(pipeline.config.train.seed)
        sample = scored.iloc[np.sort(rng.choice(len(scored), _SCORE_ROWS, replace=False))]
    noted = pipeline.predict_report
    scores = pipeline.predict_scores(sample)
    pipeline.predict_report = noted  # these rows' notes are not a prediction's
    names = list(pipeline.task.score_columns()) if pipeline.task is not None else []
    score_ref = {}
    for k, name in enumerate(names[: scores.shape[1]]):
        values = scores[:, k].astype(float)
        edges = _edges(values)
        counts, missing = _numeric_counts(values, edges)
        score_ref[name] = {
            "kind": "numeric",
            "rows": len(values),
            "edges": edges,
            "counts": counts,
            "missing": missing,
        }
    return {
        "format": "transfuse-reference",
        "version": 1,
        "rows": len(train),
        "columns": {c: column_reference(train[c]) for c in columns},
        "score": score_ref,
        "score_rows": "held-out (validation and test)" if parts else "training",
        "train_digest": _digest(train, [*columns, target]),
        "data_dir": str(pipeline.base_dir.absolute()) if pipeline.base_dir else None,
    }


def read_reference(run: Path) -> dict[str, Any]:
    """A run's ``reference.json``; a CheckpointError when it lacks one."""
    path = Path(run) / REFERENCE
    if not path.is_file():
        raise CheckpointError(
            f"the run has no {REFERENCE} (it was saved before monitoring existed, or not "
            "by `transfuse train`)",
            where=str(run),
            fix="train the run again to monitor it",
        )
    try:
        data = json.loads(path.read_text("utf-8"))
    except ValueError as exc:
        raise CheckpointError(f"{REFERENCE} is unreadable: {exc}", where=str(run)) from None
    if not isinstance(data, dict) or data.get("format") != "transfuse-reference":
        raise CheckpointError(f"{REFERENCE} is not a transfuse reference", where=str(run))
    return data


# -- comparing ----------------------------------------------------------------------------


def psi_of_counts(reference: Sequence[float], new: Sequence[float]) -> float:
    """PSI of two histograms over the same bins: ``sum((n - r) * ln(n / r))`` of their
    shares, an empty bin counted as a share of 1e-4 (as :func:`transfuse.shift.psi`)."""
    import numpy as np

    r, n = np.asarray(reference, dtype=float), np.asarray(new, dtype=float)
    pr = np.maximum(r / max(r.sum(), 1.0), _EPS)
    pn = np.maximum(n / max(n.sum(), 1.0), _EPS)
    return float(np.sum((pn - pr) * np.log(pn / pr)))


def sampling_noise(
    reference: Sequence[float], new: Sequence[float], level: float = 0.95, draws: int = 1000
) -> float:
    """The PSI that sampling alone stays under with probability ``level`` when the new rows
    and the reference rows come from one distribution: the ``level`` quantile of the PSI of
    ``draws`` pairs of histograms of the same sizes drawn from the two pooled (a parametric
    bootstrap, seeded; empty bins floored as :func:`psi_of_counts` floors them). On 50 new
    rows over 10 bins it is about 0.6, above the major band: a PSI under it is no evidence
    of a shift; on thousands of rows it is a few thousandths."""
    import numpy as np

    r, m = np.asarray(reference, dtype=float), np.asarray(new, dtype=float)
    big, n = int(r.sum()), int(m.sum())
    if n <= 0 or big <= 0:
        return 0.0
    pooled = (r + m) / (r.sum() + m.sum())
    rng = np.random.default_rng(0)
    shares = [np.maximum(rng.multinomial(k, pooled, size=draws) / k, _EPS) for k in (big, n)]
    psi = np.sum((shares[1] - shares[0]) * np.log(shares[1] / shares[0]), axis=1)
    return float(np.quantile(psi, level))


def _bin_names(ref: Mapping[str, Any]) -> list[str]:
    if ref["kind"] == "categorical":
        return [*[repr(c) for c in ref["categories"]], "other", "missing"]
    edges = [f"{e:.4g}" for e in ref["edges"]]
    bounds = ["-inf", *edges, "inf"]
    unit = {"text": " chars", "events": " events"}.get(ref["kind"], "")
    return [f"[{a}, {b}){unit}" for a, b in pairwise(bounds)] + ["missing"]


def compare(ref: Mapping[str, Any], values: pd.Series) -> dict[str, Any]:
    """One column's new rows against its reference: PSI, missing rates, the share outside
    the reference's categories, and the bin whose share moved most."""
    import numpy as np
    import pandas as pd

    from transfuse.shift import PSI_MAJOR, PSI_MODERATE

    kind = ref["kind"]
    extra: dict[str, Any] = {}
    if kind == "categorical":
        text = _as_text(values)
        known = list(ref["categories"])
        present = text.dropna()
        inside = present.isin(known)
        counts = [int((present == c).sum()) for c in known]
        new = [*counts, int((~inside).sum()), int(text.isna().sum())]
        old = [*ref["categories"].values(), ref["other"], ref["missing"]]
        outside = present[~inside]
        extra["outside_reference"] = {
            "reference": ref["other"] / max(ref["rows"], 1),
            "new": len(outside) / max(len(values), 1),
            "first": [str(v) for v in outside.value_counts().index[:5]],
        }
    else:
        if kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
        else:
            numbers = _lengths(values, kind)
        counts, missing = _numeric_counts(numbers, ref["edges"])
        new, old = [*counts, missing], [*ref["counts"], ref["missing"]]
    value = psi_of_counts(old, new)
    noise = sampling_noise(old, new)
    names = _bin_names(ref)
    shares_old = np.asarray(old, float) / max(sum(old), 1)
    shares_new = np.asarray(new, float) / max(sum(new), 1)
    moved = int(np.argmax(np.abs(shares_new - shares_old)))
    return {
        "kind": kind,
        "psi": value,
        "noise": noise,
        "band": "major"
        if value >= PSI_MAJOR
        else "moderate"
        if value >= PSI_MODERATE
        else "stable",
        "missing": [ref["missing"] / max(ref["rows"], 1), float(values.isna().mean())],
        "moved": f"{names[moved]} {shares_old[moved]:.0%} -> {shares_new[moved]:.0%}",
        "bins": {"names": names, "reference": old, "new": new},
        **extra,
    }


def _training_rows(run: Path, reference: Mapping[str, Any]) -> tuple[pd.DataFrame | None, str]:
    """The run's training rows, reloaded from its ``data`` config and split again, when
    their digest matches; else None and why not."""
    from transfuse.data import split_frame
    from transfuse.pipeline import Pipeline
    from transfuse.runs import read_run

    files = read_run(run)
    base = reference.get("data_dir")
    pipeline = Pipeline(files.config, base_dir=Path(base) if base else None)
    try:
        frame = pipeline.load_data()
        classify = pipeline.manager.get("task", files.config.task.type).name != "regression"
        train = split_frame(frame, files.config, classify=classify).train
    except (TransfuseError, OSError) as exc:
        return None, f"the training rows could not be reloaded from the run's data config ({exc})"
    columns = [*reference.get("columns", {}), files.config.task.target]
    missing = [c for c in columns if c not in train.columns]
    if missing or _digest(train, columns) != reference.get("train_digest"):
        return None, (
            "the run's data config no longer gives the rows it was trained on (their digest "
            "differs), so they are not used"
        )
    return train, "training rows reloaded from the run's data config (digest matches)"


# -- the command --------------------------------------------------------------------------


def monitor_run(
    run: str | Path,
    frame: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame] | None = None,
    *,
    fail_above: float = FAIL_ABOVE,
    domain: bool = True,
    pipeline: Pipeline | None = None,
) -> dict[str, Any]:
    """The new rows ``frame`` against run ``run``'s reference: per input column and per
    score column the comparison of :func:`compare`, the domain classifier's ROC-AUC (or
    why it was skipped), and the names whose PSI is above ``fail_above``."""
    import pandas as pd

    import transfuse
    from transfuse.shift import domain_auc

    run = Path(run)
    pipeline = pipeline or transfuse.load(run)
    reference = read_reference(run)
    rows = pipeline.join(frame, tables, how="--data {name}=PATH")
    from transfuse.tables import need_columns

    need_columns(rows, list(reference["columns"]), "the run's inputs (--data)")
    if not len(rows):
        raise DataError("the new rows are empty", where="--data", fix="give rows to monitor")
    columns = {c: compare(ref, rows[c]) for c, ref in reference["columns"].items()}
    scores = pipeline.predict_scores(rows)
    score = {
        name: compare(ref, pd.Series(scores[:, k]))
        for k, (name, ref) in enumerate(reference["score"].items())
        if k < scores.shape[1]
    }
    result: dict[str, Any] = {
        "run": str(run),
        "rows": len(rows),
        "reference_rows": reference["rows"],
        "fail_above": fail_above,
        "columns": columns,
        "score": score,
    }
    tabular = [c for c, v in columns.items() if v["kind"] in {"numeric", "categorical"}]
    if not domain:
        result["domain"] = {"note": "skipped (--no-domain)"}
    elif not tabular:
        result["domain"] = {"note": "skipped: no numeric or categorical input columns"}
    else:
        train, note = _training_rows(run, reference)
        found = domain_auc(train, rows, tabular) if train is not None else None
        if train is not None and found is None:
            note = "skipped: too few rows for 5 folds"
        result["domain"] = {"note": note}
        if found is not None:
            result["domain"].update({"auc": found[0], "std": found[1], "columns": tabular})
    # a PSI counts when it is above the limit and above what sampling alone gives n rows
    named = {f"column {c}": v for c, v in columns.items()}
    named.update({f"score {s}": v for s, v in score.items()})
    above = {n: v for n, v in named.items() if v["psi"] > fail_above}
    crossed = {n: v["psi"] for n, v in above.items() if v["psi"] > v["noise"]}
    result["within_noise"] = {n: v["psi"] for n, v in above.items() if n not in crossed}
    result["crossed"] = crossed
    result["status"] = "shifted" if crossed else "stable"
    return result


def _markdown(result: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    from transfuse.shift import PSI_MAJOR, PSI_MODERATE

    limit = result["fail_above"]
    status = result["status"]
    lines = [
        f"# Monitoring {result['run']}",
        "",
        f"{result['rows']} new rows against the run's {result['reference_rows']} training "
        f"rows (bins and counts kept in `{REFERENCE}`). Status: **{status}**"
        + (
            f" (PSI above {limit}: {', '.join(result['crossed'])})."
            if result["crossed"]
            else f" (no PSI above {limit})."
        )
        + (
            f" Above {limit} but within the sampling noise of {result['rows']} rows (the "
            f"'noise' column), so not counted: {', '.join(result['within_noise'])}."
            if result.get("within_noise")
            else ""
        ),
        "",
        f"PSI bands: < {PSI_MODERATE} stable, {PSI_MODERATE}-{PSI_MAJOR} moderate, > {PSI_MAJOR} "
        "major. Missing values are a bin of their own; categories held by fewer than "
        f"{MIN_COUNT} training rows count as 'other'; text and file paths are binned by "
        "length. Noise: the PSI that sampling alone stays under 95% of the time for rows "
        "from the training distribution (it shrinks with the number of rows); a PSI counts "
        "as a shift only above it.",
        "",
        "| | PSI | noise | band | moved most | missing (training / new) | outside the "
        "reference (training / new) |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    entries = [(f"score `{s}`", v) for s, v in result["score"].items()]
    entries += [(f"`{c}`", v) for c, v in result["columns"].items()]
    for name, v in sorted(entries, key=lambda e: -e[1]["psi"]):
        out = v.get("outside_reference")
        outside = f"{out['reference']:.1%} / {out['new']:.1%}" if out else ""
        missing = f"{v['missing'][0]:.1%} / {v['missing'][1]:.1%}"
        lines.append(
            f"| {name} | {v['psi']:.3f} | {v.get('noise', 0.0):.3f} | {v['band']} | "
            f"{v['moved']} | {missing} | {outside} |"
        )
    lines.append("")
    domain = result["domain"]
    if "auc" in domain:
        lines += [
            f"Domain classifier (gradient boosting, 5-fold, {len(domain['columns'])} columns) "
            f"telling a new row from a training row: ROC-AUC **{domain['auc']:.3f} ± "
            f"{domain['std']:.3f}** (0.5: indistinguishable); {domain['note']}.",
            "",
        ]
    else:
        lines += [f"Domain classifier: {domain['note']}.", ""]
    for file, caption in plots.items():
        lines += [f"![{caption}]({file})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def _plots(directory: Path, result: Mapping[str, Any]) -> dict[str, str]:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plots = {}
    entries = [(f"score {s}", v["psi"]) for s, v in result["score"].items()]
    entries += [(c, v["psi"]) for c, v in result["columns"].items()]
    entries.sort(key=lambda e: e[1])
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.3 * len(entries) + 1)), dpi=100)
    colors = ["tab:red" if p > result["fail_above"] else "tab:grey" for _, p in entries]
    ax.barh([n for n, _ in entries], [p for _, p in entries], color=colors)
    ax.axvline(result["fail_above"], color="black", linestyle=":", linewidth=1)
    ax.set_xlabel("PSI against the training rows (dotted: --fail-above)")
    fig.tight_layout()
    fig.savefig(directory / "psi.png")
    plt.close(fig)
    plots["psi.png"] = "PSI of each input column and of the score"
    for k, (name, v) in enumerate(result["score"].items()):
        bins = v["bins"]
        ref = np.asarray(bins["reference"], float)
        new = np.asarray(bins["new"], float)
        x = np.arange(len(ref))
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        ax.bar(x - 0.2, ref / max(ref.sum(), 1), width=0.4, label="training rows")
        ax.bar(x + 0.2, new / max(new.sum(), 1), width=0.4, label="new rows")
        ax.set_xticks(x, bins["names"], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("share of rows")
        ax.set_title(f"score {name}: training deciles, PSI {v['psi']:.3f}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        file = f"score_{k}.png"
        fig.savefig(directory / file)
        plt.close(fig)
        plots[file] = f"share of rows per training decile of score {name}"
    return plots


def write_monitor(out: Path, result: Mapping[str, Any]) -> Path:
    """Write ``monitor.md``, ``monitor.json`` and the plots into ``out`` (a temporary
    sibling renamed into place; an existing ``out`` is replaced only when it is itself a
    monitor report)."""
    from transfuse.runs import write_json

    out = Path(out).expanduser().absolute()
    if out.is_file() or (
        out.is_dir() and any(out.iterdir()) and not (out / "monitor.json").is_file()
    ):
        raise DataError(
            "is a file or a folder that is not a monitor report; refusing to overwrite it",
            where=f"--out {out}",
            fix="choose a new or empty folder",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        plots = _plots(tmp, result)
        write_json(tmp / "monitor.json", result)
        (tmp / "monitor.md").write_text(_markdown(result, plots), "utf-8")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.replace(old)
        tmp.replace(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _cmd_monitor(args: argparse.Namespace) -> int:
    import transfuse
    from transfuse.commands import read_data_args

    if not args.fail_above > 0:
        raise DataError(
            f"--fail-above must be above 0, not {args.fail_above}",
            where="--fail-above",
            fix=f"give a PSI such as {FAIL_ABOVE}",
        )
    run = Path(args.run).expanduser()
    pipeline = transfuse.load(run, device=args.device)
    read_reference(run)  # before the rows are read: a run without one is bad input
    frame, tables, _ = read_data_args(args.data, pipeline)
    result = monitor_run(
        run, frame, tables, fail_above=args.fail_above, domain=not args.no_domain,
        pipeline=pipeline,
    )  # fmt: skip
    out = Path(args.out) if args.out else run.parent / f"{run.name}-monitor"
    path = write_monitor(out, result)
    if result["crossed"]:
        named = ", ".join(f"{n} (PSI {p:.3f})" for n, p in result["crossed"].items())
        print(f"shifted: {named} above {args.fail_above} -> {path}")
        return 1
    every = {f"column {c}": v["psi"] for c, v in result["columns"].items()}
    every.update({f"score {s}": v["psi"] for s, v in result["score"].items()})
    top = max(every, key=lambda n: every[n]) if every else None
    largest = f"; largest PSI {every[top]:.3f} ({top})" if top else ""
    noisy = result.get("within_noise") or {}
    within = (
        f"; above it but within the sampling noise of {result['rows']} rows: {', '.join(noisy)}"
        if noisy
        else ""
    )
    print(f"stable: no PSI above {args.fail_above}{largest}{within} -> {path}")
    return 0


def add_monitor_command(sub: Any) -> None:
    """Add ``transfuse monitor`` to the ``transfuse`` parser."""
    m = sub.add_parser(
        "monitor",
        help="population stability of new rows against a run's training rows "
        "(exit 0 stable, 1 shifted, 2 bad input)",
    )
    m.add_argument("run", help="a run directory written by `transfuse train`")
    m.add_argument(
        "--data",
        required=True,
        action="append",
        help="the new rows (CSV or parquet); repeat as NAME=PATH for each table the run joins",
    )
    m.add_argument("--out", help="the report folder (default: RUN-monitor beside the run)")
    m.add_argument(
        "--fail-above",
        type=float,
        default=FAIL_ABOVE,
        help=f"exit 1 when a column's or the score's PSI is above this (default {FAIL_ABOVE})",
    )
    m.add_argument(
        "--no-domain", action="store_true", help="skip the domain classifier (no data reload)"
    )
    m.add_argument("--device", help="where to score the rows (default: the run's train.device)")
    m.set_defaults(func=_cmd_monitor)
