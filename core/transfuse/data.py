"""Turning a pandas DataFrame into batches per input.

Reading: :func:`load_frame` (from :mod:`transfuse.tables`) loads the table that
``config.data`` names, keeps the ``where`` rows and joins the ``data.join`` tables by key.
Checking: :func:`check_columns` names a missing column and the config key. Splitting:
:func:`split_frame` holds out the test rows (stratified for classification, seeded), drops
unlabelled rows, applies ``label_budget`` and takes a stratified validation split from the
training rows only; with ``data.key`` set and a key on several rows, whole entities are
held out, so no entity straddles two splits. Batching: :class:`FrameBatches` calls each
encoder's ``prepare`` on a batch of rows, builds the ``present`` masks and, for frozen
encoders, reads the embedding cache instead of running the encoder (filled before the
pass, see :meth:`FrameBatches.warm`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transfuse.errors import DataError
from transfuse.tables import load_frame, need_columns, read_table

if TYPE_CHECKING:
    from transfuse.bases import Encoder, Task
    from transfuse.cache import FrozenEmbedder, Positions
    from transfuse.config import PipelineConfig
    from transfuse.device import DeviceManager

__all__ = [
    "FrameBatches",
    "LengthBuckets",
    "Splits",
    "cache_stats",
    "check_columns",
    "input_values",
    "load_frame",
    "read_table",
    "split_frame",
]


# -- checking ---------------------------------------------------------------------------


def check_columns(frame: pd.DataFrame, config: PipelineConfig, *, target: bool = True) -> None:
    """Every input column (and the target, when asked) exists; else a DataError naming it."""
    if target:
        need_columns(frame, [config.task.target], "task.target")
    for name, spec in config.inputs.items():
        key = f"inputs.{name}.column" + ("s" if spec.columns is not None else "")
        need_columns(frame, spec.column_list, key)


def input_values(frame: pd.DataFrame, columns: list[str]) -> pd.Series | pd.DataFrame:
    """What an encoder sees: a Series for one column, a DataFrame for several."""
    return frame[columns[0]] if len(columns) == 1 else frame[columns]


# -- splitting --------------------------------------------------------------------------


@dataclass
class Splits:
    """Training, validation and test rows; rows without a label are kept apart."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame | None = None
    unlabeled: pd.DataFrame | None = None

    def sizes(self) -> dict[str, int]:
        """Row counts per split."""
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": 0 if self.test is None else len(self.test),
            "unlabeled": 0 if self.unlabeled is None else len(self.unlabeled),
        }


def _stratify(labels: pd.Series, classify: bool, n_holdout: int) -> pd.Series | None:
    if not classify:
        return None
    counts = labels.value_counts()
    if len(counts) < 2 or counts.min() < 2 or n_holdout < len(counts):
        return None
    if len(labels) - n_holdout < len(counts):
        return None
    return labels


def _holdout(
    frame: pd.DataFrame,
    size: float | int,
    target: str,
    classify: bool,
    seed: int,
    key: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    if key is not None and key in frame.columns and frame[key].duplicated().any():
        return _holdout_entities(frame, size, target, classify, seed, key)
    n = len(frame)
    n_holdout = int(np.ceil(size * n)) if isinstance(size, float) else int(size)
    if n_holdout < 1 or n - n_holdout < 1:
        raise DataError(
            f"{n} labelled rows are too few to hold out {size}",
            where=f"task.target {target!r}",
            fix="give more rows or lower data.test_size / data.validation_size",
        )
    strat = _stratify(frame[target], classify, n_holdout)
    keep, held = train_test_split(
        frame, test_size=n_holdout, random_state=seed, shuffle=True, stratify=strat
    )
    return keep, held


def _holdout_entities(
    frame: pd.DataFrame, size: float | int, target: str, classify: bool, seed: int, key: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out whole entities: every row of a key lands on one side. ``size`` counts
    entities as a fraction, rows as a number (about that many rows' worth of entities);
    the entities are stratified by their first row's label."""
    first = frame.drop_duplicates(key).set_index(key)[target]
    n_rows, n_keys = len(frame), len(first)
    if isinstance(size, float):
        n_holdout = int(np.ceil(size * n_keys))
    else:
        n_holdout = round(size * n_keys / n_rows)
    if n_holdout < 1 or n_keys - n_holdout < 1:
        raise DataError(
            f"{n_keys} labelled entities ({key!r}) are too few to hold out {size}",
            where=f"data.key {key!r}",
            fix="give more entities or lower data.test_size / data.validation_size",
        )
    entities = first.to_frame().reset_index()
    _, held = _holdout(entities, n_holdout, target, classify, seed)
    held_rows = frame[key].isin(held[key])
    return frame[~held_rows], frame[held_rows]


def split_frame(
    frame: pd.DataFrame,
    config: PipelineConfig,
    *,
    test: pd.DataFrame | None = None,
    classify: bool = True,
) -> Splits:
    """Split rows: test (unless given), label budget, then validation from training rows.

    The test rows are held out first and never influence a choice made afterwards.
    """
    target = config.task.target
    data = config.data
    seed = config.train.seed
    need_columns(frame, [target], "task.target")
    unlabeled_mask = frame[target].isna()
    unlabeled = frame[unlabeled_mask] if unlabeled_mask.any() else None
    if unlabeled is not None:
        warnings.warn(
            f"{int(unlabeled_mask.sum())} rows have no {target!r} label; they are left out "
            "of training and evaluation",
            stacklevel=2,
        )
    labelled = frame[~unlabeled_mask]
    key = data.key  # rows of one entity never straddle two splits
    if test is None and data.test_size > 0:
        labelled, test = _holdout(labelled, data.test_size, target, classify, seed, key)
    elif test is not None:
        need_columns(test, [target], "task.target")
        test = test[test[target].notna()]
    if data.label_budget is not None and len(labelled) > data.label_budget:
        _, labelled = _holdout(labelled, data.label_budget, target, classify, seed + 1, key)
    train, validation = _holdout(labelled, data.validation_size, target, classify, seed + 2, key)
    return Splits(train=train, validation=validation, test=test, unlabeled=unlabeled)


# -- batching ---------------------------------------------------------------------------


@dataclass
class InputPlan:
    """One model input as the data path sees it."""

    name: str
    columns: list[str]
    encoder: Encoder
    embedder: FrozenEmbedder | None = None


class _RowsDataset:
    """A map-style dataset whose items are whole batches: ``dataset[list_of_positions]``."""

    def __init__(self, owner: FrameBatches) -> None:
        self.owner = owner

    def __len__(self) -> int:
        return len(self.owner.frame)

    def __getitem__(self, positions: list[int]) -> dict[str, Any]:
        return self.owner.host_batch(np.asarray(positions, dtype=np.int64))


class FrameBatches:
    """The batches of one DataFrame for a model's inputs, ready for the device.

    A batch is ``{"inputs": {name: prepared}, "present": {name: bool[B]}, "target": ...,
    "index": long[B]}``; ``index`` gives the rows' positions in ``frame``. A frozen input's
    batch is ``{"embedding": [B, D]}``, read from the cache or computed once.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        inputs: list[InputPlan],
        device: DeviceManager,
        *,
        task: Task | None = None,
        target: str | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
    ) -> None:
        self.frame = frame
        self.inputs = inputs
        self.device = device
        self.task = task
        self.target = target if target is not None and target in frame.columns else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self._keys: dict[str, np.ndarray] = {}
        self._where: dict[str, Positions] = {}  # frozen inputs' rows in their cache
        self._warm: set[str] = set()
        self._lengths: np.ndarray | bool | None = False  # False: not asked yet
        self._rows: dict[str, Any] = {}  # rowwise_prepare inputs, prepared once
        self._missing: dict[str, np.ndarray] = {}  # per input, over the whole frame
        self._target: Any = None  # the encoded labels of every row
        for plan in inputs:
            if plan.embedder is not None:
                from transfuse.cache import row_keys

                self._keys[plan.name] = row_keys(input_values(frame, plan.columns))

    def __len__(self) -> int:
        """Number of batches per pass."""
        return -(-len(self.frame) // self.batch_size)

    def host_batch(self, positions: np.ndarray) -> dict[str, Any]:
        """Prepare the rows at ``positions`` on the host (runs in loader workers)."""
        import torch

        taken: list[pd.DataFrame] = []  # the frame's rows, sliced only when needed

        def rows() -> pd.DataFrame:
            if not taken:
                taken.append(self.frame.iloc[positions])
            return taken[0]

        inputs: dict[str, Any] = {}
        present: dict[str, torch.Tensor] = {}
        for plan in self.inputs:
            if plan.encoder.handles_missing:
                present[plan.name] = torch.ones(len(positions), dtype=torch.bool)
            elif plan.name in self._missing:
                present[plan.name] = torch.from_numpy(~self._missing[plan.name][positions])
            else:
                values = input_values(rows(), plan.columns)
                missing = np.asarray(plan.encoder.missing(values), dtype=bool)
                present[plan.name] = torch.from_numpy(~missing)
            if plan.embedder is not None:
                inputs[plan.name] = {"rows": torch.from_numpy(positions)}
            elif plan.name in self._rows:
                inputs[plan.name] = _take(self._rows[plan.name], torch.from_numpy(positions))
            else:
                inputs[plan.name] = plan.encoder.prepare(input_values(rows(), plan.columns))
        batch: dict[str, Any] = {
            "inputs": inputs,
            "present": present,
            "index": torch.from_numpy(positions),
        }
        if self._target is not None:
            batch["target"] = self._target[torch.from_numpy(positions)]
        elif self.task is not None and self.target is not None:
            batch["target"] = self.task.encode(rows()[self.target])
        return batch

    def warm(self) -> None:
        """Fill the cache of every frozen input before a pass: each missing row embedded
        once, in length-sorted batches, written in bulk. Counts each row once per pass.
        Then finds the rows in the cache, once per split while the cache's shards hold
        (not once per batch), so that a batch is a gather from the mapped shards."""
        for plan in self.inputs:
            if plan.embedder is None:
                continue
            keys = self._keys[plan.name]
            if plan.name in self._warm:  # every row was cached by an earlier pass
                plan.embedder.cache.count(hits=len(keys))
            else:
                plan.embedder.warm(input_values(self.frame, plan.columns), keys)
                self._warm.add(plan.name)
            self._where[plan.name] = plan.embedder.cache.locate(keys, self._where.get(plan.name))

    def prepare_rows(self) -> None:
        """Before a pass: each input's missing mask over the whole frame, and the prepared
        rows of encoders that declare ``rowwise_prepare`` (in chunks of ``_CHUNK`` rows),
        so that a batch slices them instead of preparing its rows again every epoch; the
        labels are encoded once too (a task's ``encode`` works row by row)."""
        if self._target is None and self.task is not None and self.target is not None:
            self._target = self.task.encode(self.frame[self.target])
        for plan in self.inputs:
            if plan.name not in self._missing and not plan.encoder.handles_missing:
                values = input_values(self.frame, plan.columns)
                self._missing[plan.name] = np.asarray(plan.encoder.missing(values), dtype=bool)
            if (
                plan.embedder is None
                and getattr(plan.encoder, "rowwise_prepare", False)
                and plan.name not in self._rows
                and len(self.frame)
            ):
                parts = [
                    plan.encoder.prepare(
                        input_values(self.frame.iloc[start : start + _CHUNK], plan.columns)
                    )
                    for start in range(0, len(self.frame), _CHUNK)
                ]
                self._rows[plan.name] = _cat(parts)

    def _resolve_frozen(self, batch: dict[str, Any]) -> dict[str, Any]:
        import torch

        for plan in self.inputs:
            if plan.embedder is None:
                continue
            positions = batch["inputs"][plan.name]["rows"].numpy()
            keys = self._keys[plan.name][positions]
            where = self._where.get(plan.name)
            if where is not None:  # counted by warm()
                rows, hit = plan.embedder.cache.gather(where, positions)
            else:
                rows, hit = plan.embedder.cache.fetch(keys, count=False)
            if not hit.all():  # rows not warmed (a pass without warm()): compute them
                miss = np.flatnonzero(~hit)
                values = input_values(self.frame.iloc[positions[miss]], plan.columns)
                rows[miss] = plan.embedder.compute(values, keys[miss])
            batch["inputs"][plan.name] = {"embedding": torch.from_numpy(rows)}
        return batch

    def lengths(self) -> np.ndarray | None:
        """Per-row cost summed over the trainable inputs whose encoder declares
        ``lengths`` (``None`` when none does); asked once per frame."""
        if self._lengths is False:
            total: np.ndarray | None = None
            for plan in self.inputs:
                if plan.embedder is not None:
                    continue
                found = plan.encoder.lengths(input_values(self.frame, plan.columns))
                if found is not None:
                    found = np.asarray(found, dtype=np.int64)
                    total = found if total is None else total + found
            self._lengths = total
        return self._lengths if isinstance(self._lengths, np.ndarray) else None

    def batches(
        self, *, shuffle: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> Iterator[dict[str, Any]]:
        """One pass over the rows as device batches (shuffled by ``seed`` when asked).

        Shuffled, rows whose trainable encoder declares ``lengths`` are bucketed by length
        (:class:`LengthBuckets`); in order, batches follow the rows. With ``world_size`` > 1
        this rank gets its stride of every batch, which then carries its ``share`` of the
        batch's rows (:func:`transfuse.distributed.shard_batches`).
        """
        import torch
        from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

        self.warm()
        self.prepare_rows()
        lengths = self.lengths() if shuffle else None
        if lengths is not None:
            batch_sampler: Any = LengthBuckets(lengths, self.batch_size, seed)
        elif shuffle:
            gen = torch.Generator()
            gen.manual_seed(seed)
            sampler: Any = RandomSampler(range(len(self.frame)), generator=gen)
            batch_sampler = BatchSampler(sampler, self.batch_size, drop_last=False)
        else:
            sampler = SequentialSampler(range(len(self.frame)))
            batch_sampler = BatchSampler(sampler, self.batch_size, drop_last=False)
        shares: list[float] | None = None
        if world_size > 1:
            from transfuse.distributed import shard_batches

            batch_sampler, shares = shard_batches(batch_sampler, rank, world_size)
        loader: Any = DataLoader(
            _RowsDataset(self),  # type: ignore[arg-type]
            sampler=batch_sampler,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,
        )
        try:
            for i, host in enumerate(loader):
                batch = self.device.move(self._resolve_frozen(host))
                if shares is not None:
                    batch["share"] = shares[i]
                yield batch
        finally:
            for plan in self.inputs:
                if plan.embedder is not None:
                    plan.embedder.cache.flush()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.batches()

    def labels(self) -> pd.Series:
        """The target column of these rows (for metrics)."""
        if self.target is None:
            raise DataError("these rows have no label column", where="task.target")
        return self.frame[self.target]


_CHUNK = 65536


def _take(prepared: Any, rows: Any) -> Any:
    """The rows ``rows`` of a prepared batch (nested dicts, lists and tensors)."""
    if isinstance(prepared, dict):
        return {k: _take(v, rows) for k, v in prepared.items()}
    if isinstance(prepared, list | tuple):
        return type(prepared)(_take(v, rows) for v in prepared)
    return prepared[rows]


def _cat(parts: list[Any]) -> Any:
    """Prepared batches joined along the rows."""
    import torch

    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, dict):
        return {k: _cat([p[k] for p in parts]) for k in first}
    if isinstance(first, list | tuple):
        return type(first)(_cat(list(col)) for col in zip(*parts, strict=True))
    return torch.cat(parts)


class LengthBuckets:
    """Shuffled batches of rows of similar length, the same for the same seed.

    Rows are shuffled, cut into pools of ``pool`` batches, each pool sorted by length and
    cut into batches; the batches' order is then shuffled. Every row appears once a pass.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, pool: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = pool

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(self.lengths))
        span = self.batch_size * self.pool
        batches: list[np.ndarray] = []
        for start in range(0, len(order), span):
            pool = order[start : start + span]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        for index in rng.permutation(len(batches)):
            yield batches[index].tolist()


def cache_stats(inputs: list[InputPlan]) -> dict[str, dict[str, int]]:
    """Hits and misses so far per frozen input."""
    return {p.name: p.embedder.cache.stats() for p in inputs if p.embedder is not None}
