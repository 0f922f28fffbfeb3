"""Reason codes, the explanation table, the global view and the ``explain`` command.

A **factor** is what a reason names: a column of an input whose encoder has fixed parts
(``applicant.debt_to_income``), or a whole input whose parts vary by row (``job``: its
words). The **code table** gives every factor of a run a code (``R01``, ``R02``, ...) in
the order of the config's inputs and their parts; it is written to the run directory as
``reason_codes.json`` and only ever grows, so a factor keeps its code. A row's **reasons**
are its K factors with the largest positive attribution: what pushed the row towards the
explained output (for a credit model, the adverse class). Wording here is generic; credit
wording lives in ``transfuse-finance`` (``transfuse_finance.reasons``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transfuse.errors import DataError

if TYPE_CHECKING:
    from transfuse.explain import Explanations
    from transfuse.pipeline import Pipeline

__all__ = [
    "CODE_FILE",
    "attribution_lines",
    "attribution_plot",
    "code_table",
    "explanation_frame",
    "global_importance",
    "global_view",
    "reason_text",
    "riskiest",
    "write_code_table",
]

CODE_FILE = "reason_codes.json"


def _factors(pipeline: Pipeline) -> list[dict[str, str | None]]:
    """Every factor of the pipeline, in config order."""
    assert pipeline.model is not None
    out: list[dict[str, str | None]] = []
    for name, encoder in pipeline.model.encoders().items():
        fixed = encoder.explain_parts()
        if fixed:
            out += [{"factor": f"{name}.{part}", "input": name, "part": part} for part in fixed]
        else:
            out.append({"factor": name, "input": name, "part": None})
    return out


def code_table(pipeline: Pipeline, existing: list[dict[str, Any]] | None = None) -> list[dict]:
    """The run's codes: those in ``existing`` kept, new factors appended in config order."""
    table = [dict(row) for row in existing or []]
    known = {row["factor"] for row in table}
    for factor in _factors(pipeline):
        if factor["factor"] not in known:
            table.append({"code": f"R{len(table) + 1:02d}", **factor})
    return table


def write_code_table(directory: str | Path, pipeline: Pipeline) -> list[dict[str, Any]]:
    """Read ``reason_codes.json`` in the run directory, add new factors, write it back
    (write, then rename) when it changed; returns the table."""
    import uuid

    path = Path(directory) / CODE_FILE
    existing = None
    if path.is_file():
        try:
            existing = json.loads(path.read_text("utf-8"))["codes"]
        except (ValueError, KeyError, TypeError):
            raise DataError(
                "the reason code table is damaged",
                where=str(path),
                fix="restore it from a copy (deleting it renumbers the codes)",
            ) from None
    table = code_table(pipeline, existing)
    if table != existing:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_text(json.dumps({"version": 1, "codes": table}, indent=1), "utf-8")
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    return table


def reason_text(factor: dict[str, Any]) -> str:
    """Generic wording: ``"debt_to_income 38.2, higher than 91% of training rows"`` for a
    column, ``"job: 'self'"`` for a word of a text."""
    if factor["fixed"]:
        value, note = factor["value"], factor["note"]
        if not value:
            return str(factor["part"])
        return f"{factor['part']} {value}" + (f", {note}" if note else "")
    if factor["value"]:
        return f"{factor['input']}: {factor['part']} ({factor['value']})"
    return f"{factor['input']}: '{factor['part']}'"


def _code_of(codes: list[dict[str, Any]], factor: dict[str, Any]) -> str:
    key = f"{factor['input']}.{factor['part']}" if factor["fixed"] else factor["input"]
    for row in codes:
        if row["factor"] == key:
            return str(row["code"])
    return ""


def explanation_frame(
    explained: Explanations,
    *,
    top: int = 4,
    codes: list[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per explained row (index kept): the logit, the all-missing baseline logit,
    each input's value (``input.NAME``), the top reasons (``reason_k``, ``code_k``,
    ``attribution_k``) and every part as JSON (``parts``)."""
    data: dict[str, Any] = {
        "logit": explained.logit,
        "baseline_logit": explained.baseline,
    }
    for name, values in explained.inputs.items():
        data[f"input.{name}"] = values
    reasons: list[list[dict[str, Any]]] = []
    parts_json = []
    for i in range(len(explained)):
        factors = explained.factors(i)
        reasons.append([f for f in factors if f["attribution"] > 0][:top])
        by_input: dict[str, list[dict[str, Any]]] = {}
        for f in factors:
            by_input.setdefault(f["input"], []).append(
                {
                    "part": f["part"],
                    "value": f["value"],
                    "attribution": round(f["attribution"], 6),
                }
            )
        parts_json.append(json.dumps(by_input, ensure_ascii=False))
    for k in range(top):
        picked = [r[k] if k < len(r) else None for r in reasons]
        data[f"reason_{k + 1}"] = [reason_text(f) if f else "" for f in picked]
        data[f"code_{k + 1}"] = [_code_of(codes or [], f) if f else "" for f in picked]
        data[f"attribution_{k + 1}"] = [f["attribution"] if f else np.nan for f in picked]
    data["parts"] = parts_json
    return pd.DataFrame(data, index=explained.index)


def global_importance(explained: Explanations) -> dict[str, dict[str, float]]:
    """Mean |attribution| per input and per fixed part (column) over the explained rows."""
    n = max(1, len(explained))
    inputs = {
        name: float(np.abs(v).mean()) if len(v) else 0.0 for name, v in explained.inputs.items()
    }
    parts: dict[str, float] = {}
    for name, found in explained.parts.items():
        if not found.fixed:
            continue
        for row, labels in enumerate(found.labels):
            for j, label in enumerate(labels):
                key = f"{name}.{label}"
                parts[key] = parts.get(key, 0.0) + abs(float(found.scores[row][j])) / n
    return {"inputs": inputs, "columns": parts}


def riskiest(pipeline: Pipeline, frame: pd.DataFrame, n: int = 3, top: int = 3) -> list[str]:
    """Markdown lines: the ``n`` rows with the highest logit and their ``top`` reasons."""
    from transfuse.explain import explain_rows

    pipeline._require_fitted()
    scores = pipeline.predict_scores(frame)
    order = np.argsort(-scores[:, -1], kind="stable")[:n]
    rows = frame.iloc[order]
    explained = explain_rows(pipeline, rows)
    key = pipeline.config.data.key
    lines = []
    for i in range(len(rows)):
        label = rows[key].iloc[i] if key and key in rows.columns else rows.index[i]
        reasons = [f for f in explained.factors(i) if f["attribution"] > 0][:top]
        words = "; ".join(f"{reason_text(f)} (+{f['attribution']:.2f})" for f in reasons)
        score = scores[order[i], -1]
        lines.append(f"{i + 1}. `{label}` (score {score:.3f}): {words or 'no factor raised it'}")
    return lines


def write_maps(explained: Explanations, labels: list[str], directory: Path) -> int:
    """Each saliency map (image inputs) as ``DIR/<row>_<input>.png``; returns how many."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, found in explained.parts.items():
        for label, saliency in zip(labels, found.maps or [], strict=False):
            if saliency is None:
                continue
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(label))
            path = directory / f"{safe}_{name}.png"
            tmp = path.with_name(f".{path.name}.tmp")
            plt.imsave(tmp, np.asarray(saliency, dtype=np.float64), cmap="inferno", format="png")
            tmp.replace(path)
            written += 1
    return written


def explain_command(args: Any) -> int:
    """``transfuse explain RUN --data ROWS --out FILE [--top K] [--images DIR]``."""
    import transfuse
    from transfuse.commands import read_data_args, write_rows
    from transfuse.explain import explain_rows

    out = Path(args.out).expanduser()
    pipeline = transfuse.load(args.run, device=args.device)
    frame, tables, data = read_data_args(args.data, pipeline)
    if out.exists() and data.exists() and out.resolve() == data.resolve():
        raise DataError(
            "refusing to overwrite the input file with explanations",
            where=f"--out {out}",
            fix="give another output file",
        )
    if args.top < 1:
        raise DataError(f"--top {args.top} must be at least 1", where="--top")
    explained = explain_rows(pipeline, frame, tables=tables, how="--data {name}=PATH")
    codes = write_code_table(args.run, pipeline)
    result = explanation_frame(explained, top=args.top, codes=codes)
    key = pipeline.config.data.key
    if key and key in frame.columns:
        result.insert(0, key, frame[key].to_numpy())
    labels = [str(v) for v in (frame[key] if key and key in frame.columns else range(len(frame)))]
    write_rows(result.reset_index(drop=True), out)
    print(
        f"explained {len(result)} rows ({explained.output}; completeness error "
        f"{explained.completeness_error():.1e} logits) -> {out}; reason codes in "
        f"{Path(args.run) / CODE_FILE}"
    )
    if args.images:
        count = write_maps(explained, labels, Path(args.images).expanduser())
        print(f"wrote {count} saliency maps to {args.images}")
    return 0


#: Validation rows explained for the report's global view.
GLOBAL_ROWS = 128


def global_view(pipeline: Pipeline, frame: pd.DataFrame, rows: int = GLOBAL_ROWS) -> dict:
    """Mean |attribution| per input and per column over the first ``rows`` rows of
    ``frame`` (the validation rows), for ``report.md``; empty, with a warning, when an
    encoder's ``attribute`` fails (the run is kept)."""
    import warnings

    from transfuse.explain import explain_rows

    if not len(frame):
        return {}
    try:
        explained = explain_rows(pipeline, frame.iloc[:rows])
    except Exception as exc:  # a plugin's attribute must not cost the trained run
        warnings.warn(f"no attribution view in the report: {exc}", stacklevel=2)
        return {}
    view: dict[str, Any] = global_importance(explained)
    view["rows"] = len(explained)
    view["methods"] = {name: parts.method for name, parts in explained.parts.items()}
    return view


def attribution_plot(path: Path, view: Mapping[str, Any]) -> str:
    """A bar chart of mean |attribution| per input and per column; returns its caption."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    bars = [(f"input {k}", v) for k, v in view.get("inputs", {}).items()]
    columns = sorted(view.get("columns", {}).items(), key=lambda kv: -kv[1])[:15]
    bars += [(k, v) for k, v in columns]
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.3 * len(bars) + 1)), dpi=100)
    names = [b[0] for b in bars][::-1]
    values = [b[1] for b in bars][::-1]
    colors = ["tab:blue" if n.startswith("input ") else "tab:orange" for n in names]
    ax.barh(names, values, color=colors)
    ax.set_xlabel("mean |attribution| (logits)")
    ax.set_title("Attribution per input (blue) and per column (orange)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"mean |attribution| per input and per column on {view.get('rows', 0)} validation rows"


def attribution_lines(view: Mapping[str, Any]) -> list[str]:
    """The report's section: mean |attribution| per input and per column."""
    lines = [
        "## Attribution per input and per column",
        "",
        f"Mean |attribution| in logits over {view.get('rows', 0)} validation rows "
        "(`transfuse explain` gives every row's; see docs/explain.md): each input's exact "
        "Shapley value, and each column's share of its input.",
        "",
        "| input or column | mean abs. attribution | method |",
        "| --- | ---: | --- |",
    ]
    methods = view.get("methods", {})
    for name, value in sorted(view.get("inputs", {}).items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {value:.4f} | {methods.get(name, '')} |")
    for name, value in sorted(view.get("columns", {}).items(), key=lambda kv: -kv[1]):
        lines.append(f"| `{name}` | {value:.4f} | |")
    return [*lines, ""]
