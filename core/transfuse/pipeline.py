"""The Python API: ``Pipeline.from_yaml(path).fit(df)``, ``.predict(df)``, ``.save(dir)``
and ``transfuse.load(dir)``.

A pipeline ties the runtime together: it loads and splits the data, builds and fits the
encoders on the training rows, builds the model, trains it (optionally with transfer
strategies), evaluates it on the held-out rows, measures each input's importance on the
validation rows, and writes or reads a run directory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transfuse.config import PipelineConfig, dump_yaml, load_pipeline, parse_config, resolve
from transfuse.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transfuse.bases import Encoder, Task, TransferReport, TransferStrategy
    from transfuse.calibration import Calibration
    from transfuse.data import FrameBatches, InputPlan, Splits
    from transfuse.device import DeviceManager
    from transfuse.model import FusionModel
    from transfuse.plugins import PluginManager
    from transfuse.risk import RiskData
    from transfuse.train import TrainResult

__all__ = ["Pipeline", "load"]

InitHook = Callable[["Pipeline", "FusionModel", "Splits"], "Sequence[TransferReport] | None"]


class Pipeline:
    """A pipeline config plus, once fitted or loaded, its model, task and metrics."""

    def __init__(
        self,
        config: PipelineConfig,
        *,
        manager: PluginManager | None = None,
        base_dir: Path | None = None,
    ) -> None:
        from transfuse.plugins import get_plugin_manager

        self.config = config
        self.manager = manager or get_plugin_manager()
        self.base_dir = base_dir
        self.device: DeviceManager | None = None
        self.model: FusionModel | None = None
        self.task: Task | None = None
        self.plans: list[InputPlan] = []
        self.splits: Splits | None = None
        self.result: TrainResult | None = None
        self.metrics: dict[str, Any] = {}
        self.importance: dict[str, dict[str, float]] = {}
        self.transfer_reports: list[TransferReport] = []
        self.comparison = ""  # markdown: transfer against scratch, set by transfer()
        self.shift = ""  # markdown: source -> target domain shift, set by transfer()
        self.findings: list[str] = []  # summary sentences, set by transfer()
        #: What the encoders noted about the last predicted rows (see data_report).
        self.predict_report: dict[str, dict[str, Any]] = {}
        #: Names the last fit in the ``fit_start`` and ``run_saved`` events (None: not fitted).
        self.fit_id: str | None = None
        self._curve: tuple[str, np.ndarray, np.ndarray] | None = None
        #: A binary run's calibrator (fitted on the validation rows; ``calibration.json``).
        self.calibration: Calibration | None = None
        #: The run a transfer starts from (``transfuse.transfer`` sets it): when this model
        #: scores the validation rows exactly as that run's model does, its calibrator is
        #: kept unless those rows reject it (:func:`transfuse.calibration.keep_unless_rejected`).
        self.calibration_source: Pipeline | None = None
        self._risk: RiskData | None = None  # the report's risk sections (transfuse.risk)
        #: The training rows' bins and counts for `transfuse monitor` (reference.json).
        self.reference: dict[str, Any] = {}
        #: Whether frozen encoders read and fill the on-disk embedding cache
        #: (:mod:`transfuse.cache`); ``load(..., cache=False)`` for one-off rows.
        self.cache_embeddings = True

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path, *, manager: PluginManager | None = None) -> Pipeline:
        """A pipeline from a YAML file (or a preset name registered by a plugin)."""
        config = load_pipeline(path, manager)
        base = Path(path).parent if Path(path).is_file() else None
        return cls(config, manager=manager, base_dir=base)

    @classmethod
    def from_config(
        cls, config: PipelineConfig | Mapping[str, Any], *, manager: PluginManager | None = None
    ) -> Pipeline:
        """A pipeline from a config object or a plain mapping."""
        if not isinstance(config, PipelineConfig):
            config = parse_config(dict(config))
        return cls(config, manager=manager)

    @property
    def fitted(self) -> bool:
        """Whether the pipeline has a trained (or loaded) model."""
        return self.model is not None

    def _make_device(self, device: str | None = None) -> DeviceManager:
        from transfuse.device import DeviceManager

        train = self.config.train
        return DeviceManager(
            device or train.device, train.precision, seed=train.seed, compile=train.compile
        )

    def load_data(self) -> pd.DataFrame:
        """The table ``config.data`` names (source or path, ``where``, joins)."""
        from transfuse.data import load_frame

        return load_frame(self.config.data, self.manager, base_dir=self.base_dir)

    # -- fitting ---------------------------------------------------------------------
    def fit(
        self,
        df: pd.DataFrame | None = None,
        test: pd.DataFrame | None = None,
        *,
        strategies: Sequence[TransferStrategy] = (),
        init: InitHook | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
    ) -> Pipeline:
        """Train on ``df`` (or the config's data); ``test`` replaces the held-out split.

        ``init(pipeline, model, splits)`` runs after the model is built and before the
        optimizer exists (the transfer workflow copies source weights there and returns
        the strategies' reports); ``strategies`` then shape the optimizer and the loss.
        With ``checkpoint_dir`` a checkpoint is written after every epoch; ``resume``
        continues from it.
        """
        from transfuse.data import check_columns, split_frame
        from transfuse.model import FusionModel, build_fusion, build_task, infer_encoders
        from transfuse.tables import check_training_rows
        from transfuse.train import Trainer

        resolve(self.config, self.manager)
        frame = self.load_data() if df is None else df
        if not isinstance(frame, pd.DataFrame):
            raise DataError(
                f"fit needs a pandas DataFrame, not a {type(frame).__name__}", where="fit(df)"
            )
        check_columns(frame, self.config)
        check_training_rows(frame, self.config)
        if test is not None:
            check_columns(test, self.config)
        from transfuse.fairness import check_groups

        check_groups([frame, test], self.config)  # report.groups need not be inputs
        self.device = device = self._make_device()
        self.config = config = infer_encoders(self.config, frame, self.manager)
        import uuid

        self.fit_id = uuid.uuid4().hex  # pairs this fit's events with its run_saved
        if device.is_main:
            self.manager.emit(
                "fit_start",
                {"fit": self.fit_id, "name": config.name, "config": config.to_dict()},
            )
        task = build_task(config, self.manager, device)
        target = config.task.target
        classify = self.manager.get("task", config.task.type).name != "regression"
        splits = split_frame(frame, config, test=test, classify=classify)
        task.fit(splits.train[target])
        if config.scorecard is not None and not _binary(task):
            raise ConfigError(
                f"scorecard points need a binary task, not {config.task.type!r}",
                where="scorecard",
                fix="remove the scorecard section, or use task type 'binary'",
            )
        self.task, self.splits = task, splits
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        encoders = self._fit_encoders(splits, ckpt, resume)
        fusion = build_fusion(config, encoders, task.num_outputs, self.manager, device)
        model = FusionModel(encoders, fusion, task.num_outputs).to(device.device)
        self.model = model
        self.plans = self._plans(model)
        if init is not None:
            self.transfer_reports = list(init(self, model, splits) or [])
        batch = config.train.batch_size
        train_data = self.frame_batches(splits.train, labelled=True, batch_size=batch)
        val_data = self.frame_batches(splits.validation, labelled=True, batch_size=batch)
        trainer = Trainer(
            model,
            task,
            config.train,
            device,
            self.manager,
            strategies=strategies,
            checkpoint_dir=ckpt / "checkpoint" if ckpt is not None else None,
            fingerprint=self._fingerprint(splits),
            start_candidate=init is not None,  # transferred weights compete with each epoch
        )
        self.result = result = trainer.fit(train_data, val_data, resume=resume)
        crossed = self._cross_fit(splits)
        if crossed is not None:  # the inputs weighed on every labelled row, out of fold
            result.refit = crossed
        held, refit_inputs = self._refit_inputs(splits, val_data)
        if held is not None:  # the parts changed: prepare the validation rows afresh
            val_data = self.frame_batches(splits.validation, labelled=True, batch_size=batch)
        self._evaluate_splits(val_data, result.metric, held)
        if refit_inputs:  # which inputs learned again from the validation rows too
            self.metrics.setdefault("log", {})["refit_inputs"] = refit_inputs
        self._log_data(splits)
        if result.refit is not None:  # what the fusion refit on the validation rows chose
            self.metrics.setdefault("log", {})["fusion_refit"] = result.refit
        from transfuse.fairness import measure_fairness
        from transfuse.monitor import build_reference

        self.metrics.update(measure_fairness(self))  # report.groups at the cut-off
        from transfuse.reasons import global_view

        self.metrics["attribution"] = global_view(self, splits.validation)  # report.md
        self.reference = build_reference(self, splits.train, [splits.validation, splits.test])
        return self

    def _log_data(self, splits: Splits) -> None:
        """Put what the encoders noted per split (skipped files, unknown categories) in
        the run's log."""
        parts = {"train": splits.train, "validation": splits.validation, "test": splits.test}
        found = {
            split: report
            for split, rows in parts.items()
            if rows is not None and len(rows) and (report := self.data_report(rows))
        }
        if found:
            self.metrics.setdefault("log", {})["data"] = found

    def data_report(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """Per input, what its encoder notes about these rows (files skipped under
        ``on_bad_file: skip``, categories outside the vocabulary); quiet inputs left out."""
        from transfuse.data import input_values

        self._require_fitted()
        out: dict[str, dict[str, Any]] = {}
        for plan in self.plans:
            report = plan.encoder.data_report(input_values(frame, plan.columns))
            if report:
                out[plan.name] = report
        return out

    def _fit_encoders(self, splits: Splits, ckpt: Path | None, resume: bool) -> dict[str, Encoder]:
        """Build every encoder; fit it on the training rows (or restore it on resume)."""
        from transfuse.model import build_encoder, fit_encoder

        assert self.device is not None
        encoders: dict[str, Encoder] = {}
        for name, spec in self.config.inputs.items():
            encoder = build_encoder(self.config, name, self.manager, self.device)
            state_dir = ckpt / "encoders" / name if ckpt is not None else None
            if resume and state_dir is not None and state_dir.is_dir():
                encoder.load_fitted(state_dir)
            else:
                fit_encoder(
                    encoder,
                    splits.train,
                    spec.column_list,
                    target=self.config.task.target,
                    valid=splits.validation,
                )
                if state_dir is not None and self.device.is_main:  # rank 0 writes
                    state_dir.mkdir(parents=True, exist_ok=True)
                    encoder.save_fitted(state_dir)
            encoders[name] = encoder
        return encoders

    def _plans(self, model: FusionModel) -> list[InputPlan]:
        from transfuse.cache import FrozenEmbedder
        from transfuse.data import InputPlan

        assert self.device is not None
        plans = []
        for name, encoder in model.inputs.items():
            embedder = None
            if getattr(encoder, "frozen", False) and self.cache_embeddings:
                embedder = FrozenEmbedder.for_encoder(encoder, self.device)  # type: ignore[arg-type]
            columns = self.config.inputs[name].column_list
            plans.append(InputPlan(name, columns, encoder, embedder))  # type: ignore[arg-type]
        return plans

    def _fingerprint(self, splits: Splits) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: the config (bar where and how it
        runs) and the training and validation rows."""
        config = self.config.to_dict()
        for key in ("device", "progress", "num_workers"):
            config["train"].pop(key, None)
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
        for part in (splits.train, splits.validation):
            try:
                hashed = pd.util.hash_pandas_object(part, index=True)
            except TypeError:  # unhashable cells (event lists): the index and label only
                hashed = pd.util.hash_pandas_object(part[self.config.task.target], index=True)
            digest.update(hashed.to_numpy().tobytes())
        return {"sha256": digest.hexdigest(), "rows": splits.sizes()}

    def _cross_fit(self, splits: Splits) -> dict[str, Any] | None:
        """``fusion.stack`` ``refit_folds: k`` (with ``refit`` and ``refit_inputs``): weigh
        the inputs again, on out-of-fold logits of the training and validation rows
        together. Each of k stratified folds is scored by the inputs refit (``refit_rows``)
        on the other folds, so the weights are chosen on every labelled row, none scored by
        a model that learned from it; then the inputs are refit on the training rows, as
        they were before. Returns the refit's record (``None``: off; a ``skipped`` note
        kept in the record when an input cannot refit its rows)."""
        from transfuse.data import input_values
        from transfuse.refit import held_out, stratified_folds

        assert self.model is not None and self.device is not None and self.task is not None
        assert self.result is not None
        options = getattr(self.model.fusion, "options", None)
        folds = int(getattr(options, "refit_folds", 0) or 0)
        on = getattr(options, "refit", False) and getattr(options, "refit_inputs", False)
        if not folds or not on or not len(splits.validation) or self.result.refit is None:
            return None
        if len(self.plans) == 1:  # nothing to weigh: one input's refit is its bias alone
            return None
        unable = [p.name for p in self.plans if not hasattr(p.encoder, "refit_rows")]
        if unable:
            return {**self.result.refit, "cross_fit": f"skipped: {unable} cannot refit their rows"}
        target = self.config.task.target
        rows = pd.concat([splits.train, splits.validation])
        fold_of = stratified_folds(self.task.encode(rows[target]), folds, self.config.train.seed)

        def refit_all(fit_rows: pd.DataFrame) -> list[str]:
            """Refit every input on these rows; the names of those that could not."""
            return [
                plan.name
                for plan in self.plans
                if getattr(plan.encoder, "refit_rows")(  # noqa: B009
                    input_values(fit_rows, plan.columns), fit_rows[target]
                )
                is None
            ]

        stored: list[tuple[dict[str, Any], dict[str, Any]]] = []
        order: list[pd.DataFrame] = []
        failed: list[str] = []
        for k in range(folds):
            failed = refit_all(rows[fold_of != k])
            if failed:
                break
            held_rows = rows[fold_of == k]
            data = self.frame_batches(held_rows, labelled=True)
            self.model.eval()
            with self.device.inference():
                stored.extend((self.model.embeddings(b), b["present"]) for b in data.batches())
            order.append(held_rows)
        refit_all(splits.train)  # as fitted: the validation rows are held out again
        if failed:
            return {**self.result.refit, "cross_fit": f"skipped: {failed} cannot refit their rows"}
        labels = pd.concat(order)[target]
        device = self.device

        def batches() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
            with device.inference():  # as refit_fusion's: the heads' logits need no graph
                yield from stored

        held = held_out(batches, labels, self.task, self.result.metric, self.config.train.seed)
        record = getattr(self.model.fusion, "refit")(held)  # noqa: B009
        return {**record, "cross_fit": {"folds": folds, "rows": len(labels)}}

    def _refit_inputs(
        self, splits: Splits, val_data: FrameBatches
    ) -> tuple[tuple[np.ndarray, dict[str, Any]] | None, dict[str, Any]]:
        """A fusion with ``refit_inputs`` (``fusion.stack``): once its refit has weighed
        the inputs on the validation rows, each encoder that can (``refit_rows``: its own
        model refit with the settings its fit chose) learns again from the training and
        validation rows together. Returns the validation rows' logits and the inputs'
        importance from before (held out: calibration, the validation metrics, the cut-off
        and the importance are measured on them) and what each refit encoder reported;
        ``(None, {})`` when nothing was refit."""
        from transfuse.data import input_values
        from transfuse.report import modality_importance
        from transfuse.train import predict_logits

        assert self.model is not None and self.device is not None
        options = getattr(self.model.fusion, "options", None)
        if not getattr(options, "refit_inputs", False) or not len(splits.validation):
            return None, {}
        able = [p for p in self.plans if callable(getattr(p.encoder, "refit_rows", None))]
        if not able:
            return None, {}
        assert self.task is not None and self.result is not None
        logits = predict_logits(self.model, val_data, self.device)
        importance = modality_importance(
            self.model, val_data, self.task, self.device, self.result.metric
        )
        rows = pd.concat([splits.train, splits.validation])
        target = rows[self.config.task.target]
        done: dict[str, Any] = {}
        for plan in able:
            refit: Callable[..., Any] = getattr(plan.encoder, "refit_rows")  # noqa: B009
            record = refit(input_values(rows, plan.columns), target)
            if record is not None:
                done[plan.name] = record
        return ((logits, importance) if done else None), done

    def _evaluate_splits(
        self,
        val_data: FrameBatches,
        metric: str,
        held: tuple[np.ndarray, dict[str, Any]] | None = None,
    ) -> None:
        """Calibrate on the validation rows, then measure both splits with calibrated
        scores (test metrics with bootstrap intervals) and keep what the report draws.
        ``held``: the validation rows' logits and the inputs' importance from before the
        inputs were refit on those rows."""
        from transfuse.report import modality_importance
        from transfuse.train import predict_logits

        assert self.model is not None and self.task is not None and self.device is not None
        assert self.splits is not None and self.result is not None
        val_logits = predict_logits(self.model, val_data, self.device) if held is None else held[0]
        val_labels = val_data.labels()
        self.calibration = self._fit_calibration(val_labels, val_logits)
        if self.calibration_source is not None:
            self.calibration = self._source_calibration(val_labels, val_logits)
        metrics: dict[str, Any] = {"validation": self._metrics(val_labels, val_logits)}
        curve = (self.splits.validation, "validation", val_labels, val_logits)
        test = self.splits.test
        if test is not None and len(test):
            test_data = self.frame_batches(test, labelled=True)
            test_logits = predict_logits(self.model, test_data, self.device)
            test_labels = test_data.labels()
            metrics["test"] = self._metrics(test_labels, test_logits)
            curve = (test, "test", test_labels, test_logits)
        curve_frame, curve_split, curve_labels, curve_logits = curve
        scores = self._scores(curve_logits)
        labels = curve_frame[self.config.task.target]
        truth = (
            labels.to_numpy() if not _classifies(self.task) else self.task.encode(labels).numpy()
        )
        self._curve = (curve_split, truth, scores)
        self._risk = self._risk_data(
            metrics, (curve_split, curve_labels, curve_logits), (val_labels, val_logits)
        )
        self.importance = (
            modality_importance(self.model, val_data, self.task, self.device, metric)
            if held is None
            else held[1]
        )
        self.metrics = {
            "metric": metric,
            "best_epoch": self.result.best_epoch,
            "best_value": self.result.best_value,
            "start_value": self.result.start_value,
            "stopped_early": self.result.stopped_early,
            "seconds": self.result.seconds,
            "splits": self.splits.sizes(),
            **metrics,
            "importance": self.importance,
            "history": self.result.history,
        }

    def _fit_calibration(self, labels: pd.Series, logits: np.ndarray) -> Calibration | None:
        """``train.calibrate`` fitted on the validation rows (binary tasks only)."""
        from transfuse.calibration import fit_calibration

        assert self.task is not None
        if not _binary(self.task):
            return None
        raw = self._scores(logits, raw=True)[:, 0]
        return fit_calibration(self.config.train.calibrate, self.task.encode(labels).numpy(), raw)

    def _source_calibration(self, labels: pd.Series, logits: np.ndarray) -> Calibration | None:
        """The transfer's source run's calibrator instead of this run's, when the model is
        the source's on the validation rows (the same logits) and they do not reject it."""
        from transfuse.calibration import keep_unless_rejected
        from transfuse.errors import TransfuseError
        from transfuse.train import predict_logits

        source, fitted = self.calibration_source, self.calibration
        if source is None or fitted is None or source.calibration is None:
            return fitted
        assert self.splits is not None and self.task is not None
        try:
            batches = source.frame_batches(self.splits.validation)
            assert source.model is not None and source.device is not None
            theirs = predict_logits(source.model, batches, source.device)
        except TransfuseError:  # the source reads columns these rows lack: another model
            return fitted
        # the same logits to 0.01 (1% in the odds): recomputed features (a frozen encoder's
        # cached float16 embeddings, another batch size) move them by about 1e-3
        if theirs.shape != logits.shape or not np.allclose(theirs, logits, rtol=0, atol=1e-2):
            return fitted
        raw = self._scores(logits, raw=True)[:, 0]
        y = self.task.encode(labels).numpy()
        return keep_unless_rejected(source.calibration, fitted, y, raw)

    def _scores(self, logits: np.ndarray, *, raw: bool = False) -> np.ndarray:
        """The task's scores for ``logits``, calibrated unless ``raw``."""
        import torch

        assert self.task is not None
        scores = np.asarray(self.task.scores(torch.from_numpy(logits)))
        if raw or self.calibration is None or scores.shape[1] != 1:
            return scores
        return self.calibration.apply(scores)

    def _metrics(self, labels: pd.Series, logits: np.ndarray) -> dict[str, float]:
        """The task's metrics on calibrated scores, and the training loss (on the logits)."""
        import torch

        assert self.task is not None
        metrics = dict(self.task.metrics(labels, self._scores(logits)))
        with torch.no_grad():
            metrics["loss"] = float(
                self.task.loss(torch.from_numpy(logits), self.task.encode(labels))
            )
        return metrics

    def _risk_data(
        self,
        metrics: dict[str, Any],
        rows: tuple[str, pd.Series, np.ndarray],
        validation: tuple[pd.Series, np.ndarray],
    ) -> RiskData:
        """Intervals on the test metrics (into ``metrics``), the cut-off chosen on the
        validation rows, and what the report's risk sections draw (transfuse.risk)."""
        from transfuse.risk import RiskData
        from transfuse.scorecard import choose_cutoff, cutoff_table
        from transfuse.uncertainty import metric_intervals

        assert self.task is not None
        split, labels, logits = rows
        report = self.config.report
        risk = RiskData(split=split, rounds=report.bootstrap_rounds)
        if "test" in metrics:
            found = metric_intervals(
                self.task,
                labels,
                self._scores(logits),
                logits,
                metrics["test"],
                rounds=report.bootstrap_rounds,
                seed=self.config.train.seed,
            )
            risk.intervals = {k: v.to_dict() for k, v in found.items()}
            if risk.intervals:
                metrics["intervals"] = {"test": risk.intervals}
        if not _binary(self.task) or not len(labels):
            return risk
        val_y = self.task.encode(validation[0]).numpy()
        val_p = self._scores(validation[1])[:, 0]
        target = report.target_bad_rate
        cutoff = choose_cutoff(val_y, val_p, target)
        rule = (
            f"the highest cut-off whose bad rate among approved rows is at most {target:g}"
            if target is not None
            else "no `report.target_bad_rate`: approve as many rows as the validation rows "
            "hold goods"
        )
        y = self.task.encode(labels).numpy()
        p = self._scores(logits)[:, 0]
        (row,) = cutoff_table(y, p, [("chosen", cutoff)])
        metrics["cutoff"] = {
            "value": cutoff,
            "target_bad_rate": target,
            "chosen_on": "validation",
            split: {
                "approval_rate": row.approval_rate,
                "bad_rate": row.bad_rate,
                "bads_caught": row.bads_caught,
            },
        }
        risk.binary = True
        risk.y, risk.p, risk.raw = y, p, self._scores(logits, raw=True)[:, 0]
        risk.calibration, risk.cutoff, risk.cutoff_rule = self.calibration, cutoff, rule
        risk.scorecard = self.config.scorecard
        risk.bad = str(getattr(self.task, "positive", "1"))
        return risk

    # -- inference -------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.model is None or self.task is None:
            raise ConfigError(
                "the pipeline is not trained yet", fix="call .fit(df) or transfuse.load(run_dir)"
            )

    def frame_batches(
        self, frame: pd.DataFrame, *, labelled: bool = False, batch_size: int | None = None
    ) -> FrameBatches:
        """The rows of ``frame`` as batches for this pipeline's model."""
        from transfuse.data import FrameBatches

        self._require_fitted()
        assert self.device is not None
        return FrameBatches(
            frame,
            self.plans,
            self.device,
            task=self.task if labelled else None,
            target=self.config.task.target if labelled else None,
            batch_size=batch_size or self.config.train.batch_size,
            num_workers=self.config.train.num_workers,
        )

    def batches(
        self,
        frame: pd.DataFrame,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Device batches of ``frame`` (labelled when it has the target column); this is
        ``TransferContext.batches`` for strategies that need extra forward passes."""
        labelled = (
            self.config.task.target in frame.columns
            and frame[self.config.task.target].notna().all()
        )
        data = self.frame_batches(frame, labelled=bool(labelled), batch_size=batch_size)
        return data.batches(shuffle=shuffle, seed=seed)

    def join(
        self,
        df: pd.DataFrame,
        tables: Mapping[str, pd.DataFrame] | None = None,
        *,
        how: str = "tables={{{name!r}: frame}}",
    ) -> pd.DataFrame:
        """``df`` (main-table rows) with the pipeline's ``data.join`` tables joined by key;
        ``df`` as it is without ``tables`` (already joined, or no joins). Every table the
        pipeline joins must be given (an empty one means no rows for these entities)."""
        if tables is None:
            return df
        from transfuse.tables import join_tables

        where = "--data" if how.startswith("--data") else "tables"
        return join_tables(df, self.config.data, tables, where=where, how=how)

    def predict_scores(
        self,
        df: pd.DataFrame | str | Path,
        tables: Mapping[str, pd.DataFrame] | None = None,
        *,
        how: str = "tables={{{name!r}: frame}}",
        raw: bool = False,
    ) -> np.ndarray:
        """Scores ``[N, K]`` in the task's score columns' order (``tables``: see :meth:`join`);
        a binary run's are calibrated (``calibration.json``) unless ``raw``."""
        from transfuse.data import check_columns
        from transfuse.train import predict_logits

        self._require_fitted()
        assert self.task is not None and self.model is not None and self.device is not None
        df = self.join(rows_of(df), tables, how=how)
        check_columns(df, self.config, target=False)
        logits = predict_logits(self.model, self.frame_batches(df), self.device)
        self.predict_report = self.data_report(df)
        return self._scores(logits, raw=raw)

    def score_columns(self) -> list[str]:
        """The columns :meth:`predict` returns (one per class for a classifier)."""
        self._require_fitted()
        assert self.task is not None
        columns = list(self.task.score_columns())
        classes = getattr(self.task, "classes", None)
        if len(columns) == 1 and classes is not None and len(classes) == 2:
            return [f"p_{classes[0]}", *columns]
        return columns

    def predict(
        self,
        df: pd.DataFrame | str | Path,
        tables: Mapping[str, pd.DataFrame] | None = None,
        *,
        how: str = "tables={{{name!r}: frame}}",
    ) -> pd.DataFrame:
        """A score column per class (or a ``prediction`` column), index aligned with ``df``;
        ``tables`` gives the joined tables by name (see :meth:`join`). With a
        ``scorecard`` section a ``points`` column follows (transfuse.scorecard). ``df`` may
        be a CSV or parquet path, read as ``transfuse predict --data`` reads it."""
        df = rows_of(df)
        scores = self.predict_scores(df, tables, how=how)
        columns = self.score_columns()
        if scores.shape[1] == 1 and len(columns) == 2:  # binary: add the negative class
            scores = np.concatenate([1.0 - scores, scores], axis=1)
        out = pd.DataFrame(scores, index=df.index, columns=columns)
        if self.config.scorecard is not None and scores.shape[1] == 2:
            from transfuse.scorecard import points

            out["points"] = points(scores[:, 1], self.config.scorecard)
        return out

    def explain(
        self,
        df: pd.DataFrame | str | Path,
        tables: Mapping[str, pd.DataFrame] | None = None,
        *,
        top: int = 4,
    ) -> pd.DataFrame:
        """Why each row got its score, one row per row of ``df`` (index aligned): each
        input's and part's attribution in logit units and the top reasons
        (:mod:`transfuse.explain`, :mod:`transfuse.reasons`, ``docs/explain.md``)."""
        from transfuse.explain import explain_rows
        from transfuse.reasons import code_table, explanation_frame

        explained = explain_rows(self, rows_of(df), tables=tables)
        return explanation_frame(explained, top=top, codes=code_table(self))

    def evaluate(
        self,
        df: pd.DataFrame | str | Path,
        tables: Mapping[str, pd.DataFrame] | None = None,
        *,
        how: str = "tables={{{name!r}: frame}}",
    ) -> dict[str, float]:
        """The task's metrics (and loss) on labelled rows of ``df`` (``tables``: :meth:`join`),
        from calibrated scores as in ``metrics.json``."""
        from transfuse.data import check_columns
        from transfuse.train import predict_logits

        self._require_fitted()
        assert self.task is not None and self.model is not None and self.device is not None
        df = self.join(rows_of(df), tables, how=how)
        check_columns(df, self.config)
        labelled = df[df[self.config.task.target].notna()]
        if labelled.empty:
            raise DataError(
                "no row has a label",
                where=f"column {self.config.task.target!r}",
                fix="evaluate on labelled rows",
            )
        data = self.frame_batches(labelled, labelled=True)
        return self._metrics(data.labels(), predict_logits(self.model, data, self.device))

    # -- saving ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the run directory (atomically); returns its path."""
        from transfuse.distributed import is_main_process
        from transfuse.runs import write_run

        self._require_fitted()
        path = write_run(Path(directory), self._write)
        if is_main_process():  # trackers log the saved files (report.md, plots)
            payload = {"fit": self.fit_id, "name": self.config.name, "path": str(path)}
            self.manager.emit("run_saved", payload)
        return path

    def _write(self, out: Path) -> None:
        from transfuse.checkpoint import save_tensors, state_tensors
        from transfuse.report import write_report
        from transfuse.runs import environment, split_run_log, write_json

        assert self.model is not None and self.task is not None
        (out / "config.yaml").write_text(dump_yaml(self.config), "utf-8")
        save_tensors(out / "model.safetensors", state_tensors(self.model), {"format": "pt"})
        for name, encoder in self.model.inputs.items():
            folder = out / "encoders" / name
            folder.mkdir(parents=True)
            encoder.save_fitted(folder)  # type: ignore[operator]
        write_json(
            out / "task.json",
            {
                "type": self.config.task.type,
                "state": self.task.state(),
                "score_columns": self.task.score_columns(),
            },
        )
        metrics, log = split_run_log(self.metrics)  # metrics.json: results only, reproducible
        write_json(out / "metrics.json", metrics)
        write_json(out / "log.json", log)
        env = environment(self.manager, self.device, self.config)
        write_json(out / "environment.json", env)
        if self.reference:  # bins and counts for `transfuse monitor`, never rows
            write_json(out / "reference.json", self.reference)
        if self.transfer_reports:
            write_json(out / "transfer.json", [r.to_dict() for r in self.transfer_reports])
        if self.calibration is not None:
            from transfuse.calibration import save_calibration

            save_calibration(out, self.calibration)
        if self.metrics:
            write_report(out, self._report_data(env))

    def _report_data(self, env: dict[str, Any]) -> Any:
        from transfuse.fairness import fairness_markdown
        from transfuse.report import ReportData

        assert self.model is not None and self.task is not None
        split, truth, scores = self._curve if self._curve else ("test", None, None)
        inputs = {
            name: {
                "encoder": spec.encoder,
                "columns": spec.column_list,
                "frozen": bool(getattr(self.model.inputs[name], "frozen", False)),
            }
            for name, spec in self.config.inputs.items()
        }
        return ReportData(
            name=self.config.name,
            task=self.config.task.type,
            metric=self.metrics.get("metric", "loss"),
            metrics={k: self.metrics[k] for k in ("validation", "test") if k in self.metrics},
            history=self.metrics.get("history", []),
            importance=self.importance,
            inputs=inputs,
            splits=self.metrics.get("splits", {}),
            best_epoch=int(self.metrics.get("best_epoch", -1)),
            stopped_early=bool(self.metrics.get("stopped_early", False)),
            curve_split=split,
            y_true=truth,
            scores=scores,
            score_columns=self.task.score_columns(),
            classification=_classifies(self.task),
            environment=env,
            transfer=[r.to_markdown() for r in self.transfer_reports],
            transfer_lines=[r.summary() + "." for r in self.transfer_reports],
            findings=list(self.findings),
            start_value=self.metrics.get("start_value"),
            greater=self.task.greater_is_better(self.metrics.get("metric", "loss")),
            comparison=self.comparison,
            shift=self.shift,
            data_notes=self.metrics.get("log", {}).get("data", {}),
            attribution=self.metrics.get("attribution", {}),
            risk=self._risk,
            fairness=fairness_markdown(self.metrics.get("fairness", {})),
        )


def rows_of(rows: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A DataFrame as given, or a CSV/parquet path read as the CLI reads ``--data``
    (relative file paths inside it taken from its folder; a DataFrame's relative paths are
    taken from the working directory, as for any file name in Python)."""
    if not isinstance(rows, str | Path):
        return rows  # a DataFrame, or something the checks downstream refuse in words
    from transfuse.tables import read_rows

    return read_rows(rows, where="rows")


def _classifies(task: Task) -> bool:
    return getattr(task, "classes", None) is not None


def _binary(task: Task) -> bool:
    """Two classes scored by one probability (what calibration and scorecards need)."""
    classes = getattr(task, "classes", None)
    return classes is not None and len(classes) == 2 and task.num_outputs == 1


def load(
    directory: str | Path,
    *,
    device: str | None = None,
    manager: PluginManager | None = None,
    cache: bool = True,
) -> Pipeline:
    """Restore a saved run: the same predictions as the pipeline that wrote it.

    ``cache=False``: frozen encoders run on every row they score, and nothing is written
    to the embedding cache; for rows seen once, such as a scoring server's requests,
    where the cache would only grow (a row per applicant) and its writes add latency."""
    from transfuse.calibration import load_calibration
    from transfuse.model import FusionModel, build_encoder, build_fusion, build_task
    from transfuse.runs import check_compatible, load_state_into, read_run

    files = read_run(directory)
    pipeline = Pipeline(files.config, manager=manager)
    pipeline.cache_embeddings = cache
    differences = check_compatible(files, pipeline.manager)  # every component installed
    pipeline.device = dev = pipeline._make_device(device)
    task = build_task(files.config, pipeline.manager, dev)
    task.load_state(files.task.get("state", {}))
    encoders = {}
    for name in files.config.inputs:
        encoder = build_encoder(files.config, name, pipeline.manager, dev)
        encoder.load_fitted(files.encoder_dir(name))
        encoders[name] = encoder
    fusion = build_fusion(files.config, encoders, task.num_outputs, pipeline.manager, dev)
    model = FusionModel(encoders, fusion, task.num_outputs)
    load_state_into(
        model, files.tensors(), str(files.path / "model.safetensors"), differences=differences
    )
    pipeline.model = model.to(dev.device)
    pipeline.task = task
    pipeline.metrics = files.metrics
    pipeline.importance = dict(files.metrics.get("importance", {}))
    pipeline.plans = pipeline._plans(model)
    if (files.path / "reference.json").is_file():  # kept when the run is saved again
        from transfuse.monitor import read_reference

        pipeline.reference = read_reference(files.path)
    pipeline.calibration = load_calibration(files.path)  # None: a run from before calibration
    return pipeline
