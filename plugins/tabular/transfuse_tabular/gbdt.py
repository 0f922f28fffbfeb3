"""``tabular.gbdt``: a LightGBM model fitted on the training rows; a row becomes the mean
of one learned vector per leaf it lands in (one leaf per tree).

The booster is saved in LightGBM's own text format (``booster.txt``) beside the JSON
fitted state, never pickled. For transfer, :meth:`GBDTEncoder.continue_boosting` adds
trees fitted on new rows (LightGBM ``init_model``) and grows the leaf table, keeping the
old rows, and :meth:`GBDTEncoder.leaf_offsets` says where each tree's leaves start.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse.bases import Batch, Encoder
from transfuse.errors import CheckpointError, DataError
from transfuse_tabular.columns import TableSchema, as_frame, category_key

if TYPE_CHECKING:
    from transfuse.bases import Logit, Parts
    from transfuse.device import DeviceManager
    from transfuse_tabular.options import GBDTOptions

__all__ = ["GBDTEncoder"]

STATE_VERSION = 1
_MAX_AUTO_CLASSES = 20


def _leaf_values(node: dict[str, Any], out: dict[int, float]) -> dict[int, float]:
    """Leaf index -> leaf value of one tree of ``Booster.dump_model()``."""
    if "leaf_index" in node:
        out[int(node["leaf_index"])] = float(node["leaf_value"])
    elif "left_child" in node:
        _leaf_values(node["left_child"], out)
        _leaf_values(node["right_child"], out)
    else:  # a tree of one leaf
        out[0] = float(node.get("leaf_value", 0.0))
    return out


class GBDTEncoder(Encoder):
    """LightGBM leaves -> ``nn.EmbeddingBag(total_leaves, dim, mode="mean")``."""

    handles_missing = True
    options: GBDTOptions

    def __init__(self, options: GBDTOptions, device: DeviceManager) -> None:
        super().__init__(options, device)
        self.output_dim = options.dim
        self.schema: TableSchema | None = None
        self.booster: lgb.Booster | None = None
        self.objective = options.objective
        self.classes: list[str] = []
        self.leaves_per_tree: list[int] = []
        self.leaf_embedding = nn.EmbeddingBag(1, options.dim, mode="mean")
        self.dropout = nn.Dropout(options.dropout)
        self.labelled = False  # whether fit saw labels (refit_rows needs that)

    # -- LightGBM inputs -----------------------------------------------------------------
    def data_report(self, values: pd.Series | pd.DataFrame) -> dict[str, Any]:
        """Rows per column whose category is outside the vocabulary (LightGBM sees them as
        missing), for the run's log."""
        unknown = self._fitted().unknown(as_frame(values))
        return {"unknown_categories": unknown} if unknown else {}

    def _matrix(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """Numbers as they are, categories as vocabulary codes (NaN: missing or unknown),
        yes/no as 0/1; LightGBM treats NaN as missing."""
        schema = self._fitted()
        frame = as_frame(values)
        codes = schema.codes(frame).astype(np.float64) - 2.0
        codes[codes < 0] = np.nan
        return np.column_stack([schema.numbers(frame), codes])

    def _categorical_features(self) -> list[int]:
        schema = self._fitted()
        n = len(schema.numeric)
        return [n + j for j, c in enumerate(schema.categorical) if c.kind == "categorical"]

    def _params(self) -> dict[str, Any]:
        o = self.options
        params: dict[str, Any] = {
            "objective": self.objective,
            "num_leaves": o.leaves,
            "learning_rate": o.learning_rate,
            "min_data_in_leaf": o.min_rows_per_leaf,
            "min_data_per_group": o.min_rows_per_leaf,
            "feature_fraction": o.column_subsample,
            "bagging_fraction": o.row_subsample,
            "bagging_freq": 1 if o.row_subsample < 1 else 0,
            "seed": o.seed if o.seed is not None else (self.device_manager.seed or 0),
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        params.update(self._threads())
        if self.objective == "multiclass":
            params["num_class"] = len(self.classes)
        return params

    def _threads(self) -> dict[str, Any]:
        return {"num_threads": self.options.threads} if self.options.threads else {}

    def _labels(self, target: pd.Series | np.ndarray, *, learn: bool) -> np.ndarray:
        """Labels as LightGBM wants them; ``learn`` picks the objective and the classes."""
        target = pd.Series(np.asarray(target) if not isinstance(target, pd.Series) else target)
        if learn:
            self.objective = self.options.objective
            distinct = sorted({category_key(v) for v in target.dropna()})
            if self.objective == "auto":
                numeric = pd.api.types.is_numeric_dtype(target)
                floats = pd.api.types.is_float_dtype(target) and not all(
                    float(v).is_integer() for v in target.dropna()
                )
                if len(distinct) == 2:
                    self.objective = "binary"
                elif not numeric or (not floats and len(distinct) <= _MAX_AUTO_CLASSES):
                    self.objective = "multiclass"
                else:
                    self.objective = "regression"
            if self.objective in {"binary", "multiclass"}:
                with contextlib.suppress(ValueError):  # numbers in numeric order
                    distinct = sorted(distinct, key=float)
                self.classes = distinct
                if self.objective == "binary" and len(distinct) != 2:
                    raise DataError(
                        f"objective binary needs 2 classes, the labels have {len(distinct)}",
                        where="tabular.gbdt options.objective",
                        fix="use objective: multiclass or auto",
                    )
            else:
                self.classes = []
        if self.objective == "regression":
            return pd.to_numeric(target, errors="coerce").to_numpy(dtype=np.float64)
        index = {c: i for i, c in enumerate(self.classes)}
        keys = target.map(lambda v: category_key(v) if pd.notna(v) else None)
        unknown = keys.notna() & ~keys.isin(list(index))
        if unknown.any():
            raise DataError(
                f"label {target[unknown].iloc[0]!r} is not one of the fitted classes "
                f"{self.classes}",
                where="tabular.gbdt labels",
                fix="continue boosting only on labels of the same classes",
            )
        return keys.map(index).to_numpy(dtype=np.float64, na_value=np.nan)

    # -- fitting -------------------------------------------------------------------------
    def fit(
        self,
        values: pd.Series | pd.DataFrame,
        target: pd.Series | np.ndarray | None = None,
        valid: tuple[pd.Series | pd.DataFrame, pd.Series | np.ndarray] | None = None,
    ) -> None:
        """Fit the schema and a LightGBM model on training rows (``valid``: early stopping).

        Without ``target`` the trees are fitted to random targets, like scikit-learn's
        ``RandomTreesEmbedding`` (a warning says so): useful only without labels.
        """
        o = self.options
        self.schema = TableSchema.fit(
            as_frame(values),
            numeric=o.numeric,
            categorical=o.categorical,
            boolean=o.boolean,
            text_statistics=o.text_statistics,
            min_frequency=o.min_frequency,
        )
        x = self._matrix(values)
        self.labelled = target is not None
        if target is None:
            warnings.warn(
                "tabular.gbdt was fitted without labels: its trees split on random targets",
                stacklevel=2,
            )
            rng = np.random.default_rng(self._params()["seed"])
            self.objective, self.classes = "regression", []
            y = rng.standard_normal(len(x))
        else:
            if len(target) != len(x):
                raise DataError(f"{len(target)} labels for {len(x)} rows", where="tabular.gbdt fit")
            y = self._labels(target, learn=True)
        keep = ~np.isnan(y)
        train = lgb.Dataset(
            x[keep],
            y[keep],
            categorical_feature=self._categorical_features(),
            free_raw_data=False,
        )
        valid_sets: list[lgb.Dataset] = []
        callbacks: list[Callable[..., Any]] = []
        if valid is not None and target is not None:
            xv, yv = self._matrix(valid[0]), self._labels(valid[1], learn=False)
            kv = ~np.isnan(yv)
            valid_sets = [lgb.Dataset(xv[kv], yv[kv], reference=train)]
            if o.early_stopping:
                callbacks = [lgb.early_stopping(o.early_stopping, verbose=False)]
        booster = lgb.train(
            self._params(),
            train,
            num_boost_round=o.trees,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        best = booster.best_iteration if booster.best_iteration > 0 else -1
        self._set_booster(lgb.Booster(model_str=booster.model_to_string(num_iteration=best)))
        self.leaf_embedding = self._new_table(0, self.leaf_embedding.weight)

    def refit_rows(
        self, values: pd.Series | pd.DataFrame, target: pd.Series | np.ndarray
    ) -> dict[str, Any] | None:
        """Refit the trees on these labelled rows (the training and validation rows:
        ``fusion.stack`` ``refit_inputs``) with as many boosting rounds as the fit kept
        (no early stopping: no rows are left to stop on) and the schema kept; the leaf
        table starts again at the new trees' leaf values. ``None``: nothing to refit (no
        labels fitted, or ``leaf_value_init`` off, where the table is not the trees')."""
        if self.booster is None or not self.options.leaf_value_init or not len(values):
            return None
        if not self.labelled:  # trees split on random targets: none to refit
            return None
        y = self._labels(target, learn=False)
        keep = ~np.isnan(y)
        x = self._matrix(values)[keep]
        rounds = self.booster.current_iteration()
        data = lgb.Dataset(x, y[keep], categorical_feature=self._categorical_features())
        booster = lgb.train(self._params(), data, num_boost_round=rounds)
        self._set_booster(booster)
        self.leaf_embedding = self._new_table(0, self.leaf_embedding.weight)
        return {"rounds": rounds, "rows": int(keep.sum())}

    def _set_booster(self, booster: lgb.Booster) -> None:
        self.booster = booster
        self.leaves_per_tree = [t["num_leaves"] for t in booster.dump_model()["tree_info"]]

    def _new_table(self, keep: int, old: Tensor) -> nn.EmbeddingBag:
        """A table for the current trees: the first ``keep`` rows copied from ``old``, new
        rows at the mean of the kept ones (random when none), plus leaf values if asked."""
        total, dim = sum(self.leaves_per_tree), self.options.dim
        table = nn.EmbeddingBag(total, dim, mode="mean").to(old.device, old.dtype)
        trees = len(self.leaves_per_tree)
        kept_trees = int(np.searchsorted(np.cumsum(self.leaves_per_tree), keep, side="right"))
        with torch.no_grad():
            if keep:
                table.weight[:keep] = old[:keep]
                table.weight[keep:] = old[:keep].mean(0)
            else:
                table.weight.normal_(0.0, 1.0)
            if self.options.leaf_value_init and self.booster is not None:
                scale = kept_trees or trees  # the mean over trees then starts at the raw score
                per_class = max(1, len(self.classes)) if self.objective == "multiclass" else 1
                offsets = self.leaf_offsets()
                for t, values in enumerate(self.leaf_values(kept_trees), start=kept_trees):
                    rows = torch.tensor([offsets[t] + i for i in values], dtype=torch.long)
                    vals = torch.tensor(list(values.values()), dtype=old.dtype) * scale
                    table.weight[rows.to(old.device), (t % per_class) % dim] = vals.to(old.device)
        return table

    def leaf_offsets(self) -> list[int]:
        """Row of each tree's leaf 0 in ``leaf_embedding.weight`` (cumulative leaf counts)."""
        return [0, *np.cumsum(self.leaves_per_tree)[:-1].tolist()] if self.leaves_per_tree else []

    def leaf_values(self, first: int = 0) -> list[dict[int, float]]:
        """Leaf index -> leaf value (the booster's raw score) of each tree from ``first`` on."""
        if self.booster is None:
            return []
        info = self.booster.dump_model(start_iteration=first)["tree_info"]
        return [_leaf_values(tree["tree_structure"], {}) for tree in info]

    def continue_boosting(
        self, values: pd.Series | pd.DataFrame, target: pd.Series | np.ndarray, trees: int
    ) -> int:
        """Add up to ``trees`` trees fitted on these rows (LightGBM ``init_model``); grow the
        leaf table, keeping every old row. Returns the number of trees added."""
        if self.booster is None:
            raise DataError(
                "continue_boosting before fit",
                where="tabular.gbdt",
                fix="fit or load the encoder first",
            )
        x, y = self._matrix(values), self._labels(target, learn=False)
        keep = ~np.isnan(y)
        data = lgb.Dataset(x[keep], y[keep], categorical_feature=self._categorical_features())
        before, old_rows = len(self.leaves_per_tree), sum(self.leaves_per_tree)
        booster = lgb.train(self._params(), data, num_boost_round=trees, init_model=self.booster)
        self._set_booster(lgb.Booster(model_str=booster.model_to_string()))
        self.leaf_embedding = self._new_table(old_rows, self.leaf_embedding.weight)
        return len(self.leaves_per_tree) - before

    def copy_fitted_from(self, other: GBDTEncoder) -> None:
        """Take another encoder's schema, booster and classes (for transfer: keep the
        source trees); the leaf table is rebuilt with the source's shape."""
        self.load_fitted_state(other.fitted_state())
        assert other.booster is not None
        self._set_booster(lgb.Booster(model_str=other.booster.model_to_string()))

    # -- data ----------------------------------------------------------------------------
    def _fitted(self) -> TableSchema:
        if self.schema is None:
            raise DataError(
                "the encoder is used before it was fitted",
                where="tabular.gbdt",
                fix="call fit(values, target=...) on training rows, or load_fitted(directory)",
            )
        return self.schema

    def leaf_ids(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """``[N, trees]`` leaf index of each row in each tree (not offset)."""
        if self.booster is None:
            raise DataError(
                "the booster is not loaded",
                where="tabular.gbdt",
                fix="call fit or load_fitted(directory) first",
            )
        leaves = self.booster.predict(self._matrix(values), pred_leaf=True, **self._threads())
        return np.asarray(leaves, np.int64)

    def raw_score(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """The booster's own raw prediction per row (``[N]``, or ``[N, classes]``)."""
        if self.booster is None:
            raise DataError(
                "the booster is not loaded",
                where="tabular.gbdt",
                fix="call fit or load_fitted(directory) first",
            )
        return np.asarray(
            self.booster.predict(self._matrix(values), raw_score=True, **self._threads())
        )

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """Rows -> ``leaves``: ``[N, trees]`` rows of ``leaf_embedding`` (offset leaf ids)."""
        ids = self.leaf_ids(values).reshape(len(values), -1)
        return {"leaves": torch.from_numpy(ids + np.asarray(self.leaf_offsets(), np.int64))}

    def forward(self, batch: Batch) -> Tensor:
        """Mean of the rows' leaf vectors: ``[B, dim]``."""
        return self.dropout(self.leaf_embedding(batch["leaves"]))

    # -- explanations --------------------------------------------------------------------
    def explain_parts(self) -> list[str]:
        """The columns, in the order :meth:`attribute` scores them."""
        return [c.name for c in self._fitted().columns]

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Logit) -> Parts:
        """LightGBM's own per-column contributions (see :mod:`transfuse_tabular.explain`)."""
        from transfuse_tabular.explain import tree_contributions

        return tree_contributions(self, values)

    # -- state ---------------------------------------------------------------------------
    def fitted_state(self) -> dict[str, Any]:
        """Schema, objective, classes and leaves per tree (the booster is saved apart)."""
        if self.schema is None:
            return {}
        return {
            "version": STATE_VERSION,
            "columns": self.schema.to_state(),
            "objective": self.objective,
            "classes": self.classes,
            "leaves_per_tree": self.leaves_per_tree,
        }

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`fitted_state`; builds ``leaf_embedding`` with its final shape."""
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(
                f"fitted state version {state.get('version')!r} is not {STATE_VERSION}",
                where="tabular.gbdt",
                fix="refit the encoder with this transfuse-tabular",
            )
        self.schema = TableSchema.from_state(state["columns"])
        self.objective, self.classes = state["objective"], list(state["classes"])
        self.leaves_per_tree = [int(n) for n in state["leaves_per_tree"]]
        old = self.leaf_embedding.weight
        self.leaf_embedding = nn.EmbeddingBag(
            sum(self.leaves_per_tree), self.options.dim, mode="mean"
        ).to(old.device, old.dtype)

    def save_fitted(self, directory: Path) -> None:
        """``state.json`` and ``booster.txt`` (LightGBM's text format)."""
        if self.booster is None:
            raise DataError("nothing to save: the encoder is not fitted", where="tabular.gbdt")
        directory = Path(directory)
        (directory / "state.json").write_text(json.dumps(self.fitted_state(), indent=1), "utf-8")
        (directory / "booster.txt").write_text(self.booster.model_to_string(), "utf-8")

    def load_fitted(self, directory: Path) -> None:
        """Restore what :meth:`save_fitted` wrote."""
        directory = Path(directory)
        try:
            state = json.loads((directory / "state.json").read_text("utf-8"))
            text = (directory / "booster.txt").read_text("utf-8")
        except OSError as exc:
            raise CheckpointError(
                f"cannot read the fitted encoder: {exc}",
                where=str(directory),
                fix="restore from the directory that save_fitted wrote",
            ) from None
        self.load_fitted_state(state)
        self.booster = lgb.Booster(model_str=text)
        if self.leaves_per_tree != [
            t["num_leaves"] for t in self.booster.dump_model()["tree_info"]
        ]:
            raise CheckpointError("booster.txt does not match state.json", where=str(directory))
