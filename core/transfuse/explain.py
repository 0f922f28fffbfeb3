"""Row explanations: why did a row get its score, in logit units, per input and per part.

Two levels (``docs/explain.md``):

1. **Across inputs**, exact Shapley values over the inputs, with "the input marked missing"
   (the path that masks a modality, as :func:`transfuse.report.modality_importance` does)
   as the absent player. With k inputs this takes 2^k passes of the fusion and head over
   embeddings computed once, and it is complete: a row's input values add up to
   ``logit(row) - logit(every input missing)``.
2. **Inside each input**, the encoder's own method (:meth:`transfuse.bases.Encoder.attribute`):
   columns, words, events, frames, segments, pixels. Its raw scores are completed to the
   input's Shapley value (the gap spread over the parts in proportion to their size: a
   rescaling where they all have one sign, and bounded where signs mix),
   so the parts of every input add up to the row's logit minus the baseline logit; the
   raw scores, the method and its own completeness error are kept beside them.

The reason codes, wording, global view and the ``explain`` command live in
:mod:`transfuse.reasons`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transfuse.errors import DataError

if TYPE_CHECKING:
    import torch

    from transfuse.bases import Parts
    from transfuse.pipeline import Pipeline

__all__ = [
    "Explanations",
    "InputParts",
    "check_explanation",
    "explain_rows",
    "riskiest",
    "shapley_weights",
]


@dataclass
class InputParts:
    """One input's parts over every explained row (lists hold one entry per row)."""

    labels: list[list[str]]
    scores: list[np.ndarray]  # completed to the input's Shapley value
    raw: list[np.ndarray]  # as the encoder's method gave them
    values: list[list[str]]
    notes: list[list[str]]
    method: str
    baseline: str
    complete: bool
    fixed: list[str] | None  # the encoder's fixed parts (columns), if any
    delta: np.ndarray | None = None
    maps: list[np.ndarray | None] | None = None


@dataclass
class Explanations:
    """Every explained row: its logit, the all-missing baseline, each input's Shapley
    value and each input's parts. Row ``i`` is ``frame.iloc[i]``."""

    index: pd.Index
    output: str  # what the logit is: the positive class, a class, or the prediction
    logit: np.ndarray
    baseline: np.ndarray
    inputs: dict[str, np.ndarray]
    parts: dict[str, InputParts]
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.logit)

    def completeness_error(self) -> float:
        """Largest ``|baseline + sum(input values) - logit|`` over the rows."""
        if not len(self):
            return 0.0
        total = self.baseline + sum(self.inputs.values())
        return float(np.max(np.abs(total - self.logit)))

    def parts_error(self) -> float:
        """Largest ``|sum(parts) - input value|`` over the rows and inputs."""
        worst = 0.0
        for name, parts in self.parts.items():
            for i, scores in enumerate(parts.scores):
                worst = max(worst, abs(float(np.sum(scores)) - float(self.inputs[name][i])))
        return worst

    def factors(self, row: int) -> list[dict[str, Any]]:
        """Row ``row``'s parts across inputs, largest attribution first (ties by input and
        part order, so the order is deterministic)."""
        out = []
        for order, (name, parts) in enumerate(self.parts.items()):
            for j, label in enumerate(parts.labels[row]):
                out.append(
                    {
                        "input": name,
                        "part": label,
                        "value": parts.values[row][j],
                        "note": parts.notes[row][j],
                        "attribution": float(parts.scores[row][j]),
                        "fixed": parts.fixed is not None,
                        "_order": (order, j),
                    }
                )
        out.sort(key=lambda f: (-f["attribution"], f["_order"]))  # type: ignore[operator]
        for f in out:
            del f["_order"]
        return out


def shapley_weights(k: int) -> np.ndarray:
    """``w[s] = s! (k-s-1)! / k!``: the weight of a coalition of size ``s`` without the player."""
    return np.array(
        [math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)]
    )


def _complete(raw: np.ndarray, total: float) -> np.ndarray:
    """``raw`` moved to add up to ``total``: the gap spread over the parts in proportion to
    ``|raw|`` (evenly when every part is 0), the least change weighted by each part's size.
    Where every part has one sign this is a rescaling, which keeps their order; where
    parts of both signs nearly cancel, a rescaling would blow them up (raw +0.020, +0.013,
    -0.034 scaled to a total of -0.19 gives +3.8, +2.5, -6.5), and the spread does not:
    no part moves by more than the gap."""
    if not len(raw):
        return raw
    found = float(raw.sum())
    weight = np.abs(raw)
    mass = float(weight.sum())
    weight = weight / mass if mass > 0 else np.full(len(raw), 1.0 / len(raw))
    return raw + (total - found) * weight


def _target(model_logits: torch.Tensor, task: Any) -> torch.Tensor:
    """The output explained per row: the single logit, or the predicted class's."""
    import torch

    if model_logits.shape[1] == 1:
        return torch.zeros(model_logits.shape[0], dtype=torch.long, device=model_logits.device)
    return model_logits.argmax(dim=1)


def _output_name(pipeline: Pipeline) -> str:
    task = pipeline.task
    classes = getattr(task, "classes", None)
    target = pipeline.config.task.target
    if classes is not None and len(classes) == 2:
        return f"logit of {target} = {classes[1]}"
    if classes is not None:
        return f"logit of the predicted {target} class"
    return f"standardized prediction of {target}"


def explain_rows(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
    how: str = "tables={{{name!r}: frame}}",
    batch_size: int = 256,
) -> Explanations:
    """Explain every row of ``frame`` with a fitted or loaded pipeline (see the module)."""
    import torch

    from transfuse.data import check_columns, input_values

    pipeline._require_fitted()
    model, device = pipeline.model, pipeline.device
    assert model is not None and device is not None
    frame = pipeline.join(frame, tables, how=how)
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"explain needs a pandas DataFrame, not a {type(frame).__name__}")
    check_columns(frame, pipeline.config, target=False)
    names = list(model.inputs)
    k = len(names)
    weights = shapley_weights(k)
    specs = {n: pipeline.config.inputs[n].column_list for n in names}
    encoders = model.encoders()
    logit = np.zeros(len(frame))
    baseline = np.zeros(len(frame))
    inputs = {n: np.zeros(len(frame)) for n in names}
    collected: dict[str, list[tuple[np.ndarray, Parts | None, np.ndarray]]] = {n: [] for n in names}
    model.eval()
    data = pipeline.frame_batches(frame, batch_size=batch_size)
    for batch in data.batches():
        rows = batch["index"].cpu().numpy()
        with torch.no_grad():
            embeddings = {n: e.float() for n, e in model.embeddings(batch).items()}
            present = {n: p.bool() for n, p in batch["present"].items()}
            full = model.head(model.fusion(embeddings, present)).float()
            target = _target(full, pipeline.task)
            values = np.zeros((2**k, len(rows)))
            for mask in range(2**k):
                sub = {n: present[n] & bool(mask >> i & 1) for i, n in enumerate(names)}
                out = model.head(model.fusion(embeddings, sub)).float()
                values[mask] = out.gather(1, target[:, None])[:, 0].cpu().numpy()
        logit[rows] = values[2**k - 1]
        baseline[rows] = values[0]
        for i, name in enumerate(names):
            phi = np.zeros(len(rows))
            for mask in range(2**k):
                if not mask >> i & 1:
                    size = bin(mask).count("1")
                    phi += weights[size] * (values[mask | 1 << i] - values[mask])
            inputs[name][rows] = phi
        for name in names:
            encoder = encoders[name]
            part_values = input_values(frame.iloc[rows], specs[name])

            def head(
                embedding: torch.Tensor,
                at: torch.Tensor,
                name: str = name,
                embeddings: dict[str, torch.Tensor] = embeddings,
                present: dict[str, torch.Tensor] = present,
                target: torch.Tensor = target,
            ) -> torch.Tensor:
                at = at.to(embedding.device)
                embs = {n: embedding if n == name else e[at] for n, e in embeddings.items()}
                pres = {
                    n: torch.ones(len(at), dtype=torch.bool, device=embedding.device)
                    if n == name
                    else p[at]
                    for n, p in present.items()
                }
                out = model.head(model.fusion(embs, pres)).float()
                return out.gather(1, target[at][:, None])[:, 0]

            found = encoder.attribute(part_values, head)
            collected[name].append((rows, found, present[name].cpu().numpy()))
    parts = {n: _gather_parts(n, encoders[n], collected[n], inputs[n], len(frame)) for n in names}
    return Explanations(
        index=frame.index,
        output=_output_name(pipeline),
        logit=logit,
        baseline=baseline,
        inputs=inputs,
        parts=parts,
    )


def _gather_parts(
    name: str,
    encoder: Any,
    chunks: list[tuple[np.ndarray, Parts | None, np.ndarray]],
    phi: np.ndarray,
    n: int,
) -> InputParts:
    """One input's parts over all rows, completed to its Shapley values."""
    labels: list[list[str]] = [[] for _ in range(n)]
    raw: list[np.ndarray] = [np.zeros(0) for _ in range(n)]
    values: list[list[str]] = [[] for _ in range(n)]
    notes: list[list[str]] = [[] for _ in range(n)]
    maps: list[np.ndarray | None] = [None] * n
    delta = np.full(n, np.nan)
    method, base, complete, has_delta, has_maps = (
        "exact Shapley over inputs",
        "the input marked missing",
        True,
        False,
        False,
    )
    for rows, found, present in chunks:
        for j, row in enumerate(rows):
            if found is None:
                labels[row], raw[row] = [name], np.array([phi[row]])
                values[row], notes[row] = [""], [""]
                continue
            given = np.asarray(found.scores[j], dtype=np.float64).reshape(-1)
            if len(given) != len(found.labels[j]):
                raise DataError(
                    f"the encoder gave {len(given)} scores for {len(found.labels[j])} parts",
                    where=f"inputs.{name} attribute (row {j})",
                    fix="return one score per part label (a bug in the encoder's attribute)",
                )
            labels[row] = [str(x) for x in found.labels[j]]
            raw[row] = given if present[j] else np.zeros(len(given))
            values[row] = list(found.values[j]) if found.values else [""] * len(given)
            notes[row] = list(found.notes[j]) if found.notes else [""] * len(given)
            if found.maps is not None:
                maps[row], has_maps = found.maps[j], True
            if found.delta is not None:
                delta[row], has_delta = float(found.delta[j]), True
        if found is not None:
            method, base, complete = found.method, found.baseline, found.complete
    scores = [_complete(raw[i], float(phi[i])) for i in range(n)]
    return InputParts(
        labels=labels,
        scores=scores,
        raw=raw,
        values=values,
        notes=notes,
        method=method,
        baseline=base,
        complete=complete,
        fixed=encoder.explain_parts(),
        delta=delta if has_delta else None,
        maps=maps if has_maps else None,
    )


def check_explanation(
    encoder: Any,
    values: pd.Series | pd.DataFrame,
    *,
    tolerance: float = 1e-3,
) -> Parts | None:
    """Check a fitted encoder's explanation against the contract; see
    :func:`transfuse.testing.check_explanation`."""
    import torch

    device = encoder.device_manager
    encoder = encoder.to(device.device).eval()
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(encoder.output_dim, generator=generator).to(device.device)

    def logit(embedding: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        assert embedding.shape == (len(rows), encoder.output_dim), (
            f"attribute passed an embedding of shape {tuple(embedding.shape)} for {len(rows)} rows"
        )
        return embedding.float() @ weight

    parts = encoder.attribute(values, logit)
    fixed = encoder.explain_parts()
    if parts is None:
        assert fixed is None, "explain_parts names parts but attribute gives none"
        return None
    assert len(parts.labels) == len(values), "attribute must give one list of labels per row"
    assert len(parts.scores) == len(values), "attribute must give one array of scores per row"
    for i, (labels, scores) in enumerate(zip(parts.labels, parts.scores, strict=True)):
        scores = np.asarray(scores)
        assert scores.shape == (len(labels),), (
            f"row {i}: {scores.shape} scores, {len(labels)} parts"
        )
        assert np.isfinite(scores).all(), f"row {i}: non-finite scores"
        if fixed is not None:
            assert list(labels) == list(fixed), f"row {i}: parts {labels} are not {fixed}"
        for name in ("values", "notes"):
            given = getattr(parts, name)
            if given is not None:
                assert len(given[i]) == len(labels), f"row {i}: {name} do not match the parts"
    assert parts.method and parts.baseline, "say which method and baseline were used"
    again = encoder.attribute(values, logit)
    for first, second in zip(parts.scores, again.scores, strict=True):
        assert np.allclose(first, second, atol=1e-6), "the same rows got different scores"
    if parts.complete and parts.delta is not None:
        worst = float(np.max(np.abs(parts.delta))) if len(parts.delta) else 0.0
        assert worst <= tolerance, f"completeness error {worst:.2e} is over {tolerance}"
    return parts


def riskiest(pipeline: Pipeline, frame: pd.DataFrame, n: int = 3, top: int = 3) -> list[str]:
    """Markdown lines: the ``n`` rows of ``frame`` with the highest score and their ``top``
    reasons (for a report; see :func:`transfuse.reasons.riskiest`)."""
    from transfuse.reasons import riskiest as lines

    return lines(pipeline, frame, n=n, top=top)
