"""``strategy.layer-map``: copy a source model's tensors into a differently shaped target.

Every target parameter ends up with a recorded fate: ``copied`` (all of it from the
source), ``reshaped`` (part of it: common rows of a resized table, the categories both
models know), ``reinitialised`` (explicitly initialised afresh, seeded) or ``skipped``
(left untouched by a ``skip`` rule). Below ``min_loaded`` it raises rather than train a
model that silently learned nothing from the source.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from transfuse import TransferError
from transfuse.bases import Fate, TransferContext, TransferReport, TransferStrategy
from transfuse_strategies import LayerMapOptions
from transfuse_strategies.initialise import fresh_tensor
from transfuse_strategies.mapping import CompiledRule, NamePlan
from transfuse_strategies.names import describe_names, unwrap

__all__ = ["LayerMap"]


@dataclass
class _Outcome:
    fate: Fate
    source: str | None = None
    note: str = ""
    rows: Tensor | None = None  # bool mask (rows, or the whole tensor) of what was loaded
    run: str | None = None  # the source run, when there are several


class LayerMap(TransferStrategy):
    """Copy parameters by name rules, column renames and category values; report each fate.

    After ``prepare``, ``ctx.extra["loaded"]`` maps each loaded target parameter's name to
    ``None`` (all of it came from the source) or a boolean mask of what did (over its rows,
    or of its full shape); ``strategy.l2sp`` reads it.

    With several source runs (``ctx.source_models``) each target tensor comes from the
    first run whose tensor fits (``combine: first``) or from the average of every run whose
    tensor fits whole (``combine: average``); the report names the run of each tensor.
    """

    options: LayerMapOptions
    copies_weights = True
    #: The name the report carries.
    report_name = "strategy.layer-map"

    def __init__(self, options: LayerMapOptions, device: Any) -> None:
        super().__init__(options, device)
        for i, rule in enumerate(options.rules):
            CompiledRule(rule, i)  # a bad pattern is a config error now, not mid-transfer

    def prepare(self, ctx: TransferContext) -> TransferReport:
        """Map, copy, initialise the rest, check ``min_loaded``; return the report."""
        self.context = ctx
        models = list(ctx.source_models) or [ctx.source_model]
        names = list(ctx.source_names)
        if len(names) != len(models):
            names = [f"source {i}" for i in range(len(models))]
        return self.load_sources(ctx, models, names, [1.0] * len(models))

    def load_sources(
        self,
        ctx: TransferContext,
        models: list[nn.Module],
        names: list[str],
        weights: list[float],
        *,
        check: bool = True,
    ) -> TransferReport:
        """Fill the target from ``models`` (in order; ``weights`` weigh an average)."""
        target = unwrap(ctx.target_model)
        sources = [unwrap(m) for m in models]
        several = len(sources) > 1
        self.seed = self.device_manager.seed or 0
        report = TransferReport(self.report_name)
        plans = [NamePlan(s, target, self.options) for s in sources]
        grown, pinned = self._adopt_all_trees(ctx, plans, names if several else None, report)
        for k in reversed(range(len(plans))):  # the first run's statistics win
            self._adopt_columns(plans[k], report, names[k] if several else None)
        targets = dict(target.named_parameters())
        tensors = [dict(s.named_parameters()) for s in sources]
        mappings = [p.plan(list(t), set(targets)) for p, t in zip(plans, tensors, strict=True)]
        outcomes: dict[str, _Outcome] = {}
        for name, param in targets.items():
            candidates = [
                (k, plans[k], mappings[k].get(name), tensors[k])
                for k in range(len(sources))
                if _pinned_to(name, pinned) in (None, k)
            ]
            if not several:
                outcomes[name] = self._fill(target, name, param, *candidates[0][1:])
            elif self.options.combine == "average":
                outcomes[name] = self._average(target, name, param, candidates, names, weights)
            else:
                outcomes[name] = self._first(target, name, param, candidates, names)
        for name, (old_rows, note) in self._continue_boosting(ctx, grown).items():
            o = outcomes[name]
            outcomes[name] = _Outcome("reshaped", o.source, note, old_rows, o.run)
        targets = dict(target.named_parameters())
        for name, param in targets.items():
            o = outcomes[name]
            report.add(name, o.fate, param.numel(), o.source, o.note, o.run)
        self._copy_buffers(sources, target, plans, report, names if several else None)
        for k, mapping in enumerate(mappings):
            used = {src for src, _ in mapping.values()}
            unused = [n for n in tensors[k] if n not in used]
            if unused:
                who = f"{names[k]}: " if several else ""
                report.notes.append(
                    f"{who}{len(unused)} source tensors have no target: {describe_names(unused, 6)}"
                )
        if several:
            taken = ", ".join(f"{n} {report.runs().get(n, 0)}" for n in names)
            report.notes.append(f"tensors per source run ({self.options.combine}): {taken}")
        if check:
            self._check(report, mappings[0], tensors[0], targets)
        loaded = [t.name for t in report.tensors if t.fate in ("copied", "reshaped")]
        ctx.extra["loaded"] = {name: outcomes[name].rows for name in loaded}
        ctx.extra.setdefault("reports", []).append(report)
        return report

    # -- several sources -----------------------------------------------------------------
    def _first(
        self,
        model: nn.Module,
        name: str,
        param: Tensor,
        candidates: Sequence[tuple[int, NamePlan, Any, Mapping[str, Tensor]]],
        names: list[str],
    ) -> _Outcome:
        """The first run whose tensor fits (copied or reshaped) gives it; an explicit skip
        or reinit rule of an earlier run decides."""
        fallback: _Outcome | None = None
        for k, plan, found, tensors in candidates:
            if found is None:
                continue
            outcome = self._fill(model, name, param, plan, found, tensors)
            outcome.run = names[k]
            if outcome.fate != "reinitialised" or found[1].shape == "reinit":
                return outcome
            fallback = fallback or outcome
        if fallback is not None:
            self._reinit(model, name, param)
            return fallback
        return self._fill(model, name, param, candidates[0][1] if candidates else None, None, {})

    def _average(
        self,
        model: nn.Module,
        name: str,
        param: Tensor,
        candidates: Sequence[tuple[int, NamePlan, Any, Mapping[str, Tensor]]],
        names: list[str],
        weights: list[float],
    ) -> _Outcome:
        """The weighted mean of the runs whose tensor fits whole; else as ``first``."""
        start = param.detach().clone()
        whole: list[tuple[int, _Outcome, Tensor]] = []
        others: list[str] = []
        for k, plan, found, tensors in candidates:
            if found is None:
                continue
            with torch.no_grad():
                param.copy_(start)
            outcome = self._fill(model, name, param, plan, found, tensors)
            if outcome.fate == "copied":
                whole.append((k, outcome, param.detach().clone()))
            else:
                src = tensors[found[0]]
                others.append(f"{names[k]} {outcome.fate} ({tuple(src.shape)})")
        if len(whole) < 2:
            with torch.no_grad():
                param.copy_(start)
            outcome = self._first(model, name, param, candidates, names)
            if others and whole:
                outcome.note = _join(outcome.note, f"not averaged: {'; '.join(others)}")
            return outcome
        total = sum(weights[k] for k, _, _ in whole)
        mean = sum(weights[k] / total * value.float() for k, _, value in whole)
        _assign(param, mean)  # type: ignore[arg-type]
        runs = " + ".join(
            names[k] if len({weights[j] for j, _, _ in whole}) == 1 else
            f"{names[k]} x{weights[k] / total:.2f}" for k, _, _ in whole
        )  # fmt: skip
        note = f"average of {len(whole)} runs"
        if others:
            note += f"; left out: {'; '.join(others)}"
        return _Outcome("copied", whole[0][1].source, _join(whole[0][1].note, note), None, runs)

    def _adopt_all_trees(
        self,
        ctx: TransferContext,
        plans: list[NamePlan],
        names: list[str] | None,
        report: TransferReport,
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Each gbdt target input takes the trees of the first run that has them; returns
        the leaf rows grown and, by input, the run its tensors must all come from."""
        grown: dict[str, int] = {}
        pinned: dict[str, int] = {}
        for k, plan in enumerate(plans):
            taken = set(pinned)
            kept = self._adopt_trees(ctx, plan, report, taken, names[k] if names else None)
            for name in kept:
                pinned[name] = k
            grown.update({n: r for n, r in kept.items() if n not in grown})
        return grown, pinned if names else {}

    # -- one tensor ----------------------------------------------------------------------
    def _fill(
        self,
        model: nn.Module,
        name: str,
        param: Tensor,
        plan: NamePlan | None,
        found: tuple[str, CompiledRule] | None,
        sources: Mapping[str, Tensor],
    ) -> _Outcome:
        if found is None or plan is None:
            self._reinit(model, name, param)
            return _Outcome("reinitialised", note="no source tensor maps here")
        source_name, rule = found
        src = sources[source_name].detach()
        where = rule.label
        if rule.shape == "skip":
            return _Outcome("skipped", source_name, f"{where}: skip")
        if rule.shape == "reinit":
            self._reinit(model, name, param)
            return _Outcome("reinitialised", source_name, f"{where}: reinit")
        pairs = plan.category_mapping(source_name, name)
        sizes = plan.table_sizes(source_name, name)
        if (
            pairs is not None
            and sizes == (src.shape[0] if src.ndim else -1, param.shape[0] if param.ndim else -1)
            and src.shape[1:] == param.shape[1:]
        ):
            return self._by_rows(model, name, param, src, source_name, pairs, "by category value")
        blocks = plan.block_mapping(source_name, name)
        if (
            blocks is not None
            and src.ndim == param.ndim == 2
            and src.shape[0] == param.shape[0]
            and (src.shape[1], param.shape[1]) == (blocks[1] * blocks[2], blocks[1] * blocks[3])
        ):
            return self._by_blocks(model, name, param, src, source_name, *blocks)
        if src.shape == param.shape:
            _assign(param, src)
            return _Outcome("copied", source_name)
        if (
            rule.shape == "slice"
            and src.ndim == param.ndim >= 1
            and src.shape[1:] == param.shape[1:]
        ):
            common = min(src.shape[0], param.shape[0])
            pairs = [(i, i) for i in range(common)]
            note = f"leading dimension {src.shape[0]} -> {param.shape[0]}"
            return self._by_rows(model, name, param, src, source_name, pairs, note)
        self._reinit(model, name, param)
        note = f"{where}: shape {tuple(src.shape)} -> {tuple(param.shape)} ({rule.shape})"
        return _Outcome("reinitialised", source_name, note)

    def _by_rows(
        self,
        model: nn.Module,
        name: str,
        param: Tensor,
        src: Tensor,
        source_name: str,
        pairs: list[tuple[int, int]],
        note: str,
    ) -> _Outcome:
        """Copy the paired rows, initialise the others."""
        rows = torch.zeros(param.shape[0], dtype=torch.bool)
        if len(pairs) < param.shape[0]:
            self._reinit(model, name, param)
        if pairs:
            s_rows = torch.tensor([s for s, _ in pairs], dtype=torch.long)
            t_rows = torch.tensor([t for _, t in pairs], dtype=torch.long)
            with torch.no_grad():
                param[t_rows.to(param.device)] = src[s_rows.to(src.device)].to(
                    param.device, param.dtype
                )
                if self.options.new_rows == "mean" and len(pairs) < param.shape[0]:
                    new = ~rows
                    new[t_rows] = False
                    param[new.to(param.device)] = param[t_rows.to(param.device)].mean(0)
            rows[t_rows] = True
        loaded = int(rows.sum())
        if loaded == 0:
            return _Outcome("reinitialised", source_name, f"{note}: no rows in common")
        if loaded == param.shape[0]:
            return _Outcome("copied", source_name, note)
        detail = f"{note}: {loaded} of {param.shape[0]} rows from the source"
        return _Outcome("reshaped", source_name, detail, rows)

    def _by_blocks(
        self,
        model: nn.Module,
        name: str,
        param: Tensor,
        src: Tensor,
        source_name: str,
        pairs: list[tuple[int, int]],
        width: int,
        n_source: int,
        n_target: int,
    ) -> _Outcome:
        """Copy the input blocks of the columns both models have, initialise the others."""
        mask = torch.zeros(param.shape, dtype=torch.bool)
        if len(pairs) < n_target:
            self._reinit(model, name, param)
        with torch.no_grad():
            for i, j in pairs:
                value = src[:, i * width : (i + 1) * width]
                param[:, j * width : (j + 1) * width] = value.to(param.device, param.dtype)
                mask[:, j * width : (j + 1) * width] = True
        if not pairs:
            return _Outcome("reinitialised", source_name, "by column: no column in common")
        if len(pairs) == n_target:
            moved = any(i != j for i, j in pairs) or n_source != n_target
            return _Outcome("copied", source_name, "by column" + (" (reordered)" if moved else ""))
        note = f"by column: {len(pairs)} of {n_target} columns' inputs from the source"
        return _Outcome("reshaped", source_name, note, mask)

    def _reinit(self, model: nn.Module, name: str, param: Tensor) -> None:
        if self.options.init == "reset":
            _assign(param, fresh_tensor(model, name, self.seed))

    # -- buffers (batch-norm statistics) -------------------------------------------------
    def _copy_buffers(
        self,
        sources: list[nn.Module],
        target: nn.Module,
        plans: list[NamePlan],
        report: TransferReport,
        names: list[str] | None,
    ) -> None:
        """Buffers (batch-norm statistics) of equal shape, each from the first run that has
        it (never averaged)."""
        if not self.options.buffers:
            return
        targets = dict(target.named_buffers())
        done: dict[str, int] = {}
        for k, (source, plan) in enumerate(zip(sources, plans, strict=True)):
            buffers = dict(source.named_buffers())
            for target_name, (source_name, rule) in plan.plan(list(buffers), set(targets)).items():
                src, dst = buffers[source_name], targets[target_name]
                if target_name in done or rule.shape not in ("copy", "slice"):
                    continue
                if src.shape == dst.shape:
                    _assign(dst, src)
                    done[target_name] = k
        if targets:
            note = f"buffers: {len(done)} of {len(targets)} copied from the source"
            if names:
                counts = [sum(1 for v in done.values() if v == k) for k in range(len(names))]
                note += " (" + ", ".join(f"{n} {c}" for n, c in zip(names, counts)) + ")"
            report.notes.append(note)

    # -- tabular.gbdt inputs -------------------------------------------------------------
    def _adopt_trees(
        self,
        ctx: TransferContext,
        plan: NamePlan,
        report: TransferReport,
        taken: set[str] | None = None,
        run: str | None = None,
    ) -> dict[str, int]:
        """Give each gbdt target input the source's trees (unless ``target-trees``, or the
        input is in ``taken``: an earlier source run gave it its trees).

        Returns input name -> leaf rows before any continued boosting.
        """
        mode = self.options.gbdt
        grown: dict[str, int] = {}
        for name, (t_enc, s_enc, s_name) in _gbdt_pairs(plan).items():
            if mode == "target-trees":
                note = f"inputs.{name}: target's own trees kept; leaves are new"
                if note not in report.notes:
                    report.notes.append(note)
                plan.rules.insert(0, _reinit_rule(f"inputs.{s_name}.leaf_embedding.*"))
                continue
            if taken and name in taken:
                continue
            wanted = _tabular_columns(t_enc)
            _copy_fitted(s_enc, t_enc)
            _rename_state(t_enc, plan)
            lacking = [c for c in _tabular_columns(t_enc) if wanted and c not in wanted]
            if lacking:
                raise TransferError(
                    f"the source trees of input {name!r} split on columns the target input "
                    f"lacks: {lacking}",
                    where="strategy.layer-map",
                    fix="map them with 'columns: {source: target}', or use gbdt: target-trees",
                )
            who = f" of {run}" if run else ""
            report.notes.append(f"inputs.{name}: source trees{who} kept ({mode})")
            grown[name] = sum(getattr(t_enc, "leaves_per_tree", []))
        return grown

    # -- neural tabular inputs -------------------------------------------------------------
    def _adopt_columns(self, plan: NamePlan, report: TransferReport, run: str | None) -> None:
        """Give each neural tabular target input the source's fitted column statistics
        for the columns both have (``fitted_columns: source``)."""
        if self.options.fitted_columns != "source":
            return
        for name, (t_enc, s_enc, _) in _input_pairs(plan, _is_neural_table).items():
            adopted = _adopt_column_stats(s_enc, t_enc, plan)
            if adopted:
                who = f"{run}'s" if run else "the source's"
                report.notes.append(
                    f"inputs.{name}: {who} fitted statistics (scalers, bins, "
                    f"vocabularies) for {adopted} of {len(_tabular_columns(t_enc))} columns"
                )

    def _continue_boosting(
        self, ctx: TransferContext, grown: dict[str, int]
    ) -> dict[str, tuple[Tensor, str]]:
        """Boost more trees on the target rows; the new leaves' rows start fresh."""
        if self.options.gbdt != "continue":
            return {}
        label = ctx.extra.get("label")
        if label is None or label not in ctx.target_data:
            raise TransferError(
                "gbdt: continue needs the label column of the target rows",
                where="strategy.layer-map",
                fix="the transfer workflow passes it as ctx.extra['label']; or use "
                "gbdt: source-trees",
            )
        out = {}
        inputs = unwrap(ctx.target_model).inputs
        assert isinstance(inputs, nn.ModuleDict)
        for name, old_rows in grown.items():
            encoder: Any = inputs[name]
            values = ctx.target_data[_tabular_columns(encoder)]
            trees = self.options.boost_trees
            added = encoder.continue_boosting(values, ctx.target_data[label], trees)
            total = encoder.leaf_embedding.weight.shape[0]
            rows = torch.zeros(total, dtype=torch.bool)
            rows[:old_rows] = True
            note = f"{added} trees boosted on the target rows; {total - old_rows} new leaves"
            out[f"inputs.{name}.leaf_embedding.weight"] = (rows, note)
        return out

    # -- the guard -----------------------------------------------------------------------
    def _check(
        self,
        report: TransferReport,
        mapping: dict[str, Any],
        sources: Mapping[str, Tensor],
        targets: Mapping[str, Tensor],
    ) -> None:
        fraction = report.loaded_fraction
        if fraction >= self.options.min_loaded:
            return
        missing = [t.name for t in report.tensors if t.fate == "reinitialised"]
        raise TransferError(
            f"only {fraction:.1%} of the target's parameters were loaded from the source "
            f"(min_loaded {self.options.min_loaded:g}); {len(missing)} of {len(targets)} target "
            f"tensors got nothing, e.g. {describe_names(missing, 3)}; source tensors look like "
            f"{describe_names(list(sources), 3)}",
            where="strategy.layer-map",
            fix="add rules mapping source names to target names (e.g. {from: "
            "'inputs.applicant.*', to: 'inputs.borrower.*'}) or a 'columns' rename map, or "
            "lower min_loaded if a partial transfer is what you want",
        )


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _pinned_to(name: str, pinned: dict[str, int]) -> int | None:
    """The run all tensors of this parameter's input must come from (its gbdt trees'), if any."""
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "inputs":
        return pinned.get(parts[1])
    return None


def _assign(dst: Tensor, value: Tensor) -> None:
    with torch.no_grad():
        dst.copy_(value.detach().to(dst.device, dst.dtype))


def _reinit_rule(pattern: str) -> CompiledRule:
    from transfuse_strategies import MapRule

    return CompiledRule(MapRule.model_validate({"from": pattern, "shape": "reinit"}), "gbdt")


def _is_gbdt(encoder: nn.Module) -> bool:
    return callable(getattr(encoder, "leaf_offsets", None))


def _is_neural_table(encoder: nn.Module) -> bool:
    return callable(getattr(encoder, "column_state", None)) and not _is_gbdt(encoder)


def _gbdt_pairs(plan: NamePlan) -> dict[str, tuple[nn.Module, nn.Module, str]]:
    """Target gbdt input -> (its encoder, the source gbdt encoder mapped to it, its name)."""
    return _input_pairs(plan, _is_gbdt)


def _input_pairs(plan: NamePlan, kind: Any) -> dict[str, tuple[nn.Module, nn.Module, str]]:
    """Target input -> (its encoder, the source encoder mapped to it, the source input's
    name), for the encoders ``kind(encoder)`` accepts on both sides."""
    s_inputs = getattr(plan.source, "inputs", {})
    t_inputs = getattr(plan.target, "inputs", {})
    out = {}
    for s_name, s_enc in s_inputs.items():
        first = next((n for n, _ in s_enc.named_parameters()), None)
        if not kind(s_enc) or first is None:
            continue
        mapped, _ = plan.map_name(f"inputs.{s_name}.{first}")
        parts = (mapped or "").split(".")
        if len(parts) > 1 and parts[1] in t_inputs and parts[1] not in out:
            t_enc = t_inputs[parts[1]]
            if kind(t_enc):
                out[parts[1]] = (t_enc, s_enc, s_name)
    return out


def _adopt_column_stats(source: nn.Module, target: nn.Module, plan: NamePlan) -> int:
    """Replace the target encoder's fitted statistics of each column the source has (same
    kind, after renames and value maps) by the source's; rebuild it; return how many."""
    s_state = source.fitted_state()  # type: ignore[operator]
    t_state = target.fitted_state()  # type: ignore[operator]
    by_name = {}
    for column in s_state.get("columns", []):
        name = plan.renames.get(column["name"], column["name"])
        translate = plan.value_map(column["name"], name)
        if translate and column.get("vocabulary"):
            column = {**column, "vocabulary": [translate.get(v, v) for v in column["vocabulary"]]}
        by_name[name] = column
    adopted = 0
    for i, column in enumerate(t_state.get("columns", [])):
        found = by_name.get(column["name"])
        if found is None or found["kind"] != column["kind"]:
            continue
        t_state["columns"][i] = {**found, "name": column["name"], "key": column["key"]}
        adopted += 1
    if adopted:
        param = next(target.parameters(), None)
        target.load_fitted_state(t_state)  # type: ignore[operator]
        if param is not None:
            target.to(param.device, param.dtype)
    return adopted


def _tabular_columns(encoder: nn.Module) -> list[str]:
    """A tabular encoder's fitted columns (``column_names()`` or its fitted state's)."""
    names = getattr(encoder, "column_names", None)
    if callable(names):
        return list(names())
    fitted = getattr(encoder, "fitted_state", None)
    state = fitted() if callable(fitted) else {}
    return [c["name"] for c in state.get("columns", [])]


def _copy_fitted(source: nn.Module, target: nn.Module) -> None:
    """Give ``target`` the source encoder's fitted state (its trees, for gbdt)."""
    copy = getattr(target, "copy_fitted_from", None)
    if callable(copy):
        copy(source)
        return
    with tempfile.TemporaryDirectory() as tmp:
        source.save_fitted(Path(tmp))  # type: ignore[operator]
        target.load_fitted(Path(tmp))  # type: ignore[operator]


def _rename_state(encoder: nn.Module, plan: NamePlan) -> None:
    """Rename the adopted columns and category values to the target's (gbdt keeps its trees,
    which split on column positions and category codes, so renaming is exact)."""
    state = encoder.fitted_state()  # type: ignore[operator]
    columns = state.get("columns", [])
    changed = False
    for column in columns:
        source_name = column["name"]
        target_name = plan.renames.get(source_name, source_name)
        translate = plan.value_map(source_name, target_name)
        if target_name != source_name:
            column["name"], changed = target_name, True
        if translate and column.get("vocabulary"):
            column["vocabulary"] = [translate.get(v, v) for v in column["vocabulary"]]
            changed = True
    if changed:
        booster = getattr(encoder, "booster", None)
        encoder.load_fitted_state(state)  # type: ignore[operator]
        if booster is not None:
            encoder.booster = booster
