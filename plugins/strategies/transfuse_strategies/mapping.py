"""Which source tensor feeds which target tensor: rules, column renames and category rows.

A :class:`NamePlan` is pure bookkeeping over names (no tensor is touched): each source
name goes through the rules (the first that matches decides), then through the tabular
column rename map, giving at most one source per target name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from transfuse_strategies import LayerMapOptions, MapRule
from transfuse_strategies.names import Pattern

__all__ = [
    "CompiledRule",
    "NamePlan",
    "category_rows",
    "category_text",
    "column_blocks",
    "column_keys",
]

DEFAULT_RULE = MapRule.model_validate({"from": "*", "to": "*", "shape": "copy"})


def category_text(value: Any) -> str:
    """A category value as the tabular encoders key it: its text, 3.0 written as 3."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


class CompiledRule:
    """A :class:`MapRule` with compiled patterns; ``apply`` maps one source name."""

    def __init__(self, rule: MapRule, index: int | str) -> None:
        self.rule = rule
        self.label = f"rule {index}" if isinstance(index, int) else index
        where = f"strategy.layer-map.rules.{index}"
        self.source = Pattern(rule.from_, where)
        self.template = rule.to if rule.to is not None else rule.from_
        if not self.source.is_regex and self.template.count("*") + self.template.count("?") > (
            rule.from_.count("*") + rule.from_.count("?")
        ):
            from transfuse.errors import ConfigError

            raise ConfigError(
                f"'to' {self.template!r} has more wildcards than 'from' {rule.from_!r}",
                where=where,
                fix="each * or ? in 'to' takes the text its counterpart in 'from' matched",
            )

    @property
    def shape(self) -> str:
        """The rule's shape policy."""
        return self.rule.shape

    def apply(self, name: str) -> str | None:
        """The target name for a source name, or None when the rule does not match."""
        match = self.source.match(name)
        if match is None:
            return None
        if self.source.is_regex:
            return match.expand(self.template[3:])
        captures = iter(match.groups())
        return "".join(next(captures, "") if c in "*?" else c for c in self.template)


def column_keys(encoder: nn.Module) -> dict[str, str] | None:
    """Column name -> ModuleDict key of an encoder with per-column parameters, else None."""
    columns = getattr(encoder, "columns", None)
    if not isinstance(columns, nn.ModuleDict):
        return None
    names = getattr(encoder, "column_names", None)
    state = getattr(encoder, "column_state", None)
    if callable(names) and callable(state):
        try:
            return {n: str(state(n)["key"]) for n in names()}
        except Exception:  # not fitted, or another layout: keys are the names
            pass
    return {key: key for key in columns}


def category_rows(encoder: nn.Module, column: str) -> dict[str, int] | None:
    """Category value -> embedding row of a categorical column, if the encoder tells."""
    method = getattr(encoder, "category_index", None)
    if not callable(method):
        return None
    try:
        return {category_text(k): int(v) for k, v in method(column).items()}
    except Exception:  # a numeric column, or no vocabulary
        return None


def column_blocks(encoder: nn.Module) -> dict[str, int]:
    """Encoder-relative parameter name -> block width, for parameters whose last dimension
    holds the columns' tokens side by side in ``column_names()`` order.

    An encoder says so with ``column_inputs()``; otherwise, for an encoder that has
    ``column_names()`` and ``options.embedding_dim`` (tabular.mlp), its first matrix outside
    ``columns`` whose input width is (columns x embedding_dim), with two or more columns.
    """
    declared = getattr(encoder, "column_inputs", None)
    if callable(declared):
        return {str(k): int(v) for k, v in declared().items()}
    names = getattr(encoder, "column_names", None)
    width = getattr(getattr(encoder, "options", None), "embedding_dim", None)
    if not callable(names) or not isinstance(width, int):
        return {}
    try:
        count = len(names())
    except Exception:  # not fitted
        return {}
    if count < 2:
        return {}
    for name, param in encoder.named_parameters():
        if name.startswith("columns.") or param.ndim != 2:
            continue
        return {name: width} if param.shape[1] == count * width else {}
    return {}


@dataclass(frozen=True)
class ColumnRef:
    """A per-column parameter: ``inputs.<input>.columns.<key>.<rest>``."""

    input: str
    key: str
    rest: str

    @classmethod
    def parse(cls, name: str) -> ColumnRef | None:
        parts = name.split(".", 4)
        if len(parts) == 5 and parts[0] == "inputs" and parts[2] == "columns":
            return cls(parts[1], parts[3], parts[4])
        return None

    def name(self) -> str:
        return f"inputs.{self.input}.columns.{self.key}.{self.rest}"


class NamePlan:
    """Target name -> (source name, rule) for two models, from the options."""

    def __init__(self, source: nn.Module, target: nn.Module, options: LayerMapOptions) -> None:
        self.source, self.target = source, target
        self.rules = [CompiledRule(r, i) for i, r in enumerate(options.rules)]
        if options.defaults:
            self.rules.append(CompiledRule(DEFAULT_RULE, "default rule"))
        self.renames = dict(options.columns)
        self.source_keys = _keys(source)
        self.target_keys = _keys(target)
        self.values = {
            k: {category_text(a): category_text(b) for a, b in m.items()}
            for k, m in options.values.items()
        }

    def column_name(self, model: str, input_name: str, key: str) -> str:
        """The column name behind a ModuleDict key (``model``: 'source' or 'target')."""
        keys = (self.source_keys if model == "source" else self.target_keys).get(input_name, {})
        return next((n for n, k in keys.items() if k == key), key)

    def map_name(self, name: str) -> tuple[str | None, CompiledRule | None]:
        """The target name (or None) of a source tensor, and the rule that decided it."""
        for rule in self.rules:
            mapped = rule.apply(name)
            if mapped is not None:
                return self._rekey(name, mapped), rule
        return None, None

    def _rekey(self, source_name: str, mapped: str) -> str | None:
        """Apply the column rename map to a per-column name the rule left as it was."""
        src, dst = ColumnRef.parse(source_name), ColumnRef.parse(mapped)
        if src is None or dst is None or src.key != dst.key:
            return mapped
        column = self.column_name("source", src.input, src.key)
        renamed = self.renames.get(column, column)
        keys = self.target_keys.get(dst.input)
        key = renamed if keys is None else keys.get(renamed)
        return None if key is None else ColumnRef(dst.input, key, dst.rest).name()

    def plan(self, names: list[str], targets: set[str]) -> dict[str, tuple[str, CompiledRule]]:
        """Target name -> (source name, rule) for the given source names; first wins."""
        out: dict[str, tuple[str, CompiledRule]] = {}
        for name in names:
            mapped, rule = self.map_name(name)
            if mapped is not None and rule is not None and mapped in targets:
                out.setdefault(mapped, (name, rule))
        return out

    def value_map(self, source_column: str, target_column: str) -> dict[str, str]:
        """Source value -> target value for one categorical column (either name keys it)."""
        return self.values.get(target_column) or self.values.get(source_column) or {}

    def _categories(self, side: str, name: str) -> tuple[str, dict[str, int]] | None:
        """(column name, category -> row) of a per-column tensor, when its encoder tells."""
        ref = ColumnRef.parse(name)
        if ref is None:
            return None
        encoder = _encoder(self.source if side == "source" else self.target, ref.input)
        column = self.column_name(side, ref.input, ref.key)
        rows = category_rows(encoder, column) if encoder is not None else None
        return None if rows is None else (column, rows)

    def category_mapping(self, source_name: str, target_name: str) -> list[tuple[int, int]] | None:
        """(source row, target row) pairs for a categorical column's embedding rows.

        Rows the encoders' ``category_index`` does not list (missing, unknown) pair by
        position. None when the tensors are not per-category tables of two encoders that
        can tell their categories.
        """
        src, dst = self._categories("source", source_name), self._categories("target", target_name)
        if src is None or dst is None:
            return None
        (s_col, s_rows), (t_col, t_rows) = src, dst
        translate = self.value_map(s_col, t_col)
        pairs: dict[int, int] = {}
        for value, row in s_rows.items():
            target_row = t_rows.get(translate.get(value, value))
            if target_row is not None:
                pairs.setdefault(target_row, row)
        s_special = _special_rows(s_rows)
        for row in _special_rows(t_rows):
            if row in s_special:
                pairs.setdefault(row, row)
        return sorted((s, t) for t, s in pairs.items())

    def block_mapping(
        self, source_name: str, target_name: str
    ) -> tuple[list[tuple[int, int]], int, int, int] | None:
        """For a layer that sees the columns side by side: (source block, target block)
        pairs by column name (renames applied), the block width and both column counts."""
        src, dst = _split_input(source_name), _split_input(target_name)
        if src is None or dst is None:
            return None
        s_enc, t_enc = _encoder(self.source, src[0]), _encoder(self.target, dst[0])
        if s_enc is None or t_enc is None:
            return None
        s_width = column_blocks(s_enc).get(src[1])
        t_width = column_blocks(t_enc).get(dst[1])
        if s_width is None or s_width != t_width:
            return None
        s_cols = [self.renames.get(c, c) for c in s_enc.column_names()]  # type: ignore[operator]
        t_cols = list(t_enc.column_names())  # type: ignore[operator]
        where = {c: i for i, c in enumerate(s_cols)}
        pairs = [(where[c], j) for j, c in enumerate(t_cols) if c in where]
        return pairs, s_width, len(s_cols), len(t_cols)

    def table_sizes(self, source_name: str, target_name: str) -> tuple[int, int] | None:
        """Rows of the two categorical tables (specials included), when known."""
        src, dst = self._categories("source", source_name), self._categories("target", target_name)
        if src is None or dst is None:
            return None
        return _table_size(src[1]), _table_size(dst[1])


def _split_input(name: str) -> tuple[str, str] | None:
    """``inputs.<input>.<rest>`` -> (input, rest)."""
    parts = name.split(".", 2)
    return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "inputs" else None


def _special_rows(rows: dict[str, int]) -> list[int]:
    """Rows below the first category row (missing, unknown)."""
    return list(range(min(rows.values(), default=0)))


def _table_size(rows: dict[str, int]) -> int:
    return max(rows.values(), default=-1) + 1 if rows else 0


def _encoder(model: nn.Module, name: str) -> nn.Module | None:
    inputs = getattr(model, "inputs", None)
    if isinstance(inputs, nn.ModuleDict) and name in inputs:
        return inputs[name]
    return None


def _keys(model: nn.Module) -> dict[str, dict[str, str]]:
    inputs = getattr(model, "inputs", None)
    if not isinstance(inputs, nn.ModuleDict):
        return {}
    out = {}
    for name, encoder in inputs.items():
        keys = column_keys(encoder)
        if keys is not None:
            out[name] = keys
    return out
