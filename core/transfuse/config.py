"""Pipeline configuration: pydantic models, YAML loading, JSON Schema export.

A config names components; it never imports or evaluates code. Structure is validated
here; component names and their options are checked against the installed plugins by
:func:`resolve`.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from transfuse.components import format_validation_error
from transfuse.errors import ConfigError, PluginError, TransfuseError

if TYPE_CHECKING:
    from transfuse.plugins import PluginManager

__all__ = [
    "DataConfig",
    "FusionConfig",
    "InputConfig",
    "JoinConfig",
    "PipelineConfig",
    "ReportConfig",
    "ScorecardConfig",
    "TaskConfig",
    "TrainConfig",
    "TransferConfig",
    "dump_yaml",
    "load_config",
    "load_pipeline",
    "parse_config",
    "resolve",
    "schema",
]


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: A config that expands to more values than this (YAML aliases nested in aliases) is refused.
MAX_VALUES = 100_000


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", protected_namespaces=(), populate_by_name=True, allow_inf_nan=False
    )  # `lr: .inf` and `.nan` are YAML floats, and no setting here means them

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # YAML reads `epochs: yes` as True, and pydantic would take it as 1.
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float, int | None, float | None):
                raise ValueError(f"expected a number, got {str(value).lower()}")
        return value


class TaskConfig(_Strict):
    """What to predict."""

    type: str = Field(description="Task name: binary, multiclass or regression.")
    target: str = Field(description="The label column.")
    options: dict[str, Any] = Field(default_factory=dict, description="Task options.")


class JoinConfig(_Strict):
    """Another table about the same entities, joined to the main table by key."""

    name: str = Field(description="Prefix for this table's columns / the sequence column.")
    source: str | None = Field(default=None, description="Data source name.")
    path: str | None = Field(default=None, description="A CSV or parquet file.")
    options: dict[str, Any] = Field(default_factory=dict)
    key: str = Field(description="The key column in this table.")
    relation: Literal["one-to-one", "one-to-many"] = "one-to-one"
    columns: list[str] | None = Field(default=None, description="Columns to keep; all if unset.")
    order_by: str | None = Field(default=None, description="Sort events by this (one-to-many).")
    max_events: int = Field(default=64, ge=1, description="Keep the latest N events per entity.")


class DataConfig(_Strict):
    """Where the rows come from and how they are split."""

    source: str | None = Field(default=None, description="Data source name (csv, parquet, ...).")
    path: str | None = Field(default=None, description="A CSV or parquet file (sets the source).")
    options: dict[str, Any] = Field(default_factory=dict, description="Data source options.")
    key: str | None = Field(default=None, description="Entity key, for joined tables.")
    join: list[JoinConfig] = Field(default_factory=list, description="Tables joined by key.")
    where: dict[str, list[Any]] = Field(
        default_factory=dict, description="Keep rows whose column value is in the list."
    )
    test_size: float = Field(default=0.2, ge=0.0, lt=1.0, description="Held-out test fraction.")
    validation_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    label_budget: int | None = Field(
        default=None, ge=2, description="Keep at most this many labelled training rows."
    )

    @model_validator(mode="after")
    def _one_origin(self) -> DataConfig:
        if self.source and self.path and self.source not in {"csv", "parquet"}:
            raise ValueError("give either 'source' or 'path', not both")
        return self


class InputConfig(_Strict):
    """One model input: a column (or several) and the encoder that reads it."""

    encoder: str | None = Field(default=None, description="Encoder name; inferred if unset.")
    column: str | None = None
    columns: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_columns(self) -> InputConfig:
        if (self.column is None) == (self.columns is None):
            raise ValueError("give exactly one of 'column' or 'columns'")
        if self.columns is not None and not self.columns:
            raise ValueError("'columns' is empty")
        return self

    @property
    def column_list(self) -> list[str]:
        """The columns this input reads."""
        return [self.column] if self.column is not None else list(self.columns or [])


class FusionConfig(_Strict):
    """How the inputs' embeddings are combined."""

    method: str = "fusion.concat"
    options: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """The training loop."""

    epochs: int = Field(
        default=20,
        ge=0,
        description="Passes over the training rows; 0: no joint training, the model stays "
        "as its encoders fitted it (warm starts) and a fusion's refit still runs.",
    )
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=1e-3, gt=0, le=100)  # past float32's range the optimizer crashes
    weight_decay: float = Field(default=1e-4, ge=0)
    warmup: float = Field(default=0.05, ge=0, lt=1, description="Warm-up fraction of steps.")
    grad_clip: float | None = Field(default=1.0, gt=0)
    patience: int = Field(default=5, ge=1, description="Epochs without improvement to stop.")
    metric: str | None = Field(default=None, description="Early-stopping metric; task default.")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N or mps.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = Field(
        default=0, ge=0, lt=2**31, description="Seeds every generator and the data splits."
    )  # numpy and scikit-learn take seeds below 2**32; splits add small offsets
    compile: bool = False
    num_workers: int = Field(default=0, ge=0, le=64)  # 1000 workers hang a small machine
    progress: bool = True
    calibrate: Literal["platt", "isotonic", "none"] = Field(
        default="platt",
        description="Calibrate a binary model's probabilities on the validation rows after "
        "training: platt (monotone, two numbers), isotonic (a step function; needs more "
        "rows) or none. Stored in the run as calibration.json.",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        # The same names the device manager takes; availability is checked when a run starts.
        name = value.strip().lower()
        if not _DEVICE.match(name):
            close = difflib.get_close_matches(name, ["auto", "cpu", "cuda", "mps"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown device {value!r}{hint} (use auto, cpu, cuda, cuda:N or mps)")
        return name

    @model_validator(mode="after")
    def _precision_fits_device(self) -> TrainConfig:
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError("precision fp16 is not supported on the CPU (use bf16 or fp32)")
        return self


class TransferConfig(_Strict):
    """Train by transfer from a finished source run."""

    from_: str | list[str] | None = Field(
        default=None,
        alias="from",
        description="Source run directory, or a list of them (several sources, in order).",
    )
    strategies: list[str | dict[str, dict[str, Any] | None]] = Field(
        default_factory=lambda: list[str | dict[str, dict[str, Any] | None]](["strategy.finetune"]),
        description="Strategies in order: names, or {name: options} mappings.",
    )
    baseline: Literal["none", "scratch"] = "none"

    @field_validator("strategies")
    @classmethod
    def _one_key_each(cls, value: list[Any]) -> list[Any]:
        for i, item in enumerate(value):
            if isinstance(item, dict) and len(item) != 1:
                raise ValueError(f"strategy {i} must be a name or a one-key mapping")
        return value

    @field_validator("from_")
    @classmethod
    def _runs(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not value or any(not str(v).strip() for v in value):
                raise ValueError("give one or more source run directories")
            if len(set(value)) != len(value):
                raise ValueError("a source run is listed twice")
        return value

    def sources(self) -> list[str]:
        """The source run directories, in the order given (one, or several)."""
        if self.from_ is None:
            return []
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)

    def steps(self) -> list[tuple[str, dict[str, Any]]]:
        """The strategies as (name, options) pairs."""
        out: list[tuple[str, dict[str, Any]]] = []
        for item in self.strategies:
            if isinstance(item, str):
                out.append((item, {}))
            else:
                ((name, opts),) = item.items()
                out.append((name, dict(opts or {})))
        return out


class ReportConfig(_Strict):
    """What the report measures beyond the metrics: the cut-off and the groups compared."""

    target_bad_rate: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="The bad rate among approved rows (scores at or under the cut-off) that "
        "sets the cut-off: the highest cut-off whose validation bad rate meets it; unset: "
        "the cut-off that approves as many validation rows as they hold goods.",
    )
    groups: list[str] = Field(
        default_factory=list,
        description="Columns whose groups are compared for fairness (need not be inputs).",
    )
    bootstrap_rounds: int = Field(
        default=1000,
        ge=0,
        le=100_000,
        description="Bootstrap rounds of the 95% intervals on the test metrics (0: none).",
    )


class ScorecardConfig(_Strict):
    """Scorecard scaling: points = offset + factor * ln(odds of good), where
    factor = pdo / ln 2 and offset = base_score - factor * ln(base_odds)."""

    base_score: float = Field(default=600.0, description="Points at the base odds.")
    base_odds: float = Field(default=50.0, gt=0, description="Odds of good (good:bad) there.")
    pdo: float = Field(default=20.0, gt=0, description="Points that double the odds of good.")


class PipelineConfig(_Strict):
    """A whole pipeline: task, data, inputs, fusion, training and (optionally) transfer."""

    name: str
    description: str = ""
    task: TaskConfig
    data: DataConfig = Field(default_factory=DataConfig)
    inputs: dict[str, InputConfig]
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    transfer: TransferConfig | None = None
    report: ReportConfig = Field(default_factory=ReportConfig)
    scorecard: ScorecardConfig | None = Field(
        default=None, description="Scale a binary model's probability to scorecard points."
    )

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: dict[str, InputConfig]) -> dict[str, InputConfig]:
        if not value:
            raise ValueError("at least one input is needed")
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"input name {name!r} must be an identifier")
        return value

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping, as written to a run's ``config.yaml``."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_config(raw: Any, origin: str = "config") -> PipelineConfig:
    """Validate a mapping as a pipeline config; errors name the key path."""
    if raw is None:
        raise ConfigError(
            "the config is empty", where=origin, fix="a pipeline needs name, task and inputs"
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"a pipeline config must be a mapping, not a {type(raw).__name__}",
            where=origin,
            fix="start the file with keys such as `name:`, `task:` and `inputs:`",
        )
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, model=PipelineConfig),
            where=origin,
            fix="see `transfuse config schema` for the allowed keys",
        ) from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML pipeline file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", fix="check the path") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start}); a pipeline is a YAML text file",
            where=f"{path}:{line}",
            fix="save the file as UTF-8",
        ) from None
    return parse_config(_yaml(text, str(path)), str(path))


def load_pipeline(spec: str | Path, manager: PluginManager | None = None) -> PipelineConfig:
    """A YAML path, or the name of a preset registered through ``transfuse_pipelines``."""
    path = Path(spec)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return load_config(path)
    from transfuse.plugins import get_plugin_manager

    manager = manager or get_plugin_manager()
    entry = manager.get("pipeline", str(spec), where="pipeline")
    return parse_config(_yaml(entry.read_text(), entry.resource), f"preset {entry.name}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML (no tags that build objects) that refuses a key given twice in a mapping,
    which plain YAML silently resolves by keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_mapping
)


def _yaml(text: str, origin: str) -> Any:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and mark is not None and start.line != mark.line:
            problem = f"{problem} ({context} that starts on line {start.line + 1})"
        raise ConfigError(
            f"invalid YAML: {problem}", where=where, fix="fix the file at that line"
        ) from None
    _check_size(data, origin)
    return data


def _check_size(data: Any, origin: str) -> None:
    """Refuse a document whose aliases expand it past :data:`MAX_VALUES` values (a
    "billion laughs" file), counting without expanding."""
    count, stack = 0, [data]
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(
                f"the config expands to more than {MAX_VALUES} values",
                where=origin,
                fix="remove nested YAML aliases (*name) or split the file",
            )
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def resolve(
    config: PipelineConfig,
    manager: PluginManager | None = None,
    *,
    need_source: bool = False,
    load: bool = False,
) -> dict[str, Any]:
    """Check every component name and its options against the installed plugins.

    Returns the validated options objects by config key path (``inputs.text``,
    ``fusion``, ``task``, ``transfer.strategies.0``...). With ``need_source`` a transfer
    section must name its source run (``transfuse train`` has no ``--from``). With
    ``load`` each component's factory is imported too and checked to be a class of the
    right base (what ``config validate`` and ``train`` do), so a plugin module that
    fails to import fails here, naming the config key.
    """
    from transfuse.plugins import get_plugin_manager

    manager = manager or get_plugin_manager()
    resolved: dict[str, Any] = {}
    task = manager.get("task", config.task.type, where="task.type")
    resolved["task"] = task.validate_options(config.task.options, "task.options")
    used: list[tuple[str, Any]] = [("task.type", task)]
    for name, spec in config.inputs.items():
        if spec.encoder is None:
            continue  # inferred from the data when it arrives
        entry = manager.get("encoder", spec.encoder, where=f"inputs.{name}.encoder")
        resolved[f"inputs.{name}"] = entry.validate_options(spec.options, f"inputs.{name}.options")
        used.append((f"inputs.{name}.encoder", entry))
    fusion = manager.get("fusion", config.fusion.method, where="fusion.method")
    resolved["fusion"] = fusion.validate_options(config.fusion.options, "fusion.options")
    used.append(("fusion.method", fusion))
    if config.data.source:
        source = manager.get("data_source", config.data.source, where="data.source")
        options = dict(config.data.options)
        if config.data.path:
            options.setdefault("path", config.data.path)
        resolved["data"] = source.validate_options(options, "data.options")
        used.append(("data.source", source))
    if config.transfer is not None:
        if need_source and not config.transfer.from_:
            raise ConfigError(
                "a transfer needs a source run, and none is given",
                where="transfer.from",
                fix="set transfer.from to a finished run directory, or use "
                "`transfuse transfer PIPELINE --from RUN`",
            )
        entries = []
        for i, (name, options) in enumerate(config.transfer.steps()):
            where = f"transfer.strategies.{i}"
            entry = manager.get("strategy", name, where=where)
            resolved[where] = entry.validate_options(options, where)
            entries.append(entry)
            used.append((where, entry))
        _check_strategy_order(entries)
    if load:  # names and options first: those errors need no plugin code
        _load_all(used)
    return resolved


def _load_all(used: list[tuple[str, Any]]) -> None:
    """Import every component's factory and check its base class (imports torch)."""
    from transfuse import bases

    base = {
        "encoder": bases.Encoder,
        "fusion": bases.Fusion,
        "strategy": bases.TransferStrategy,
        "task": bases.Task,
        "data_source": bases.DataSource,
    }
    for where, entry in used:
        try:
            factory = entry.load()
        except TransfuseError as exc:
            raise exc.within(where) from exc.__cause__
        wanted = base.get(entry.kind)
        if wanted is not None and not (isinstance(factory, type) and issubclass(factory, wanted)):
            raise PluginError(
                f"{entry.kind} {entry.name!r}: its factory {entry.factory!r} is "
                f"{getattr(factory, '__name__', type(factory).__name__)}, not a subclass of "
                f"transfuse.{wanted.__name__}",
                where=f"{where} ({entry.distribution} {entry.version})",
                fix="derive the class from the base class (see docs/plugins.md) or "
                "report the bug to the plugin's authors",
            )


def _check_strategy_order(entries: list[Any]) -> None:
    """Each strategy once; weight-copying strategies before those that act on the weights."""
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry.name in first:
            raise ConfigError(
                f"{entry.name} is listed twice (transfer.strategies.{first[entry.name]} and {i})",
                where=f"transfer.strategies.{i}",
                fix="give each strategy once, with all its options",
            )
        first[entry.name] = i
    for i, entry in enumerate(entries):
        if not getattr(entry, "copies_weights", False):
            continue
        before = [e.name for e in entries[:i] if not getattr(e, "copies_weights", False)]
        if before:
            raise ConfigError(
                f"{entry.name} copies the source weights, so it cannot come after "
                f"{', '.join(before)}, which act on the weights it would overwrite",
                where=f"transfer.strategies.{i}",
                fix=f"move {entry.name} to the front of transfer.strategies",
            )


def schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline file."""
    return PipelineConfig.model_json_schema(by_alias=True)


def dump_yaml(config: PipelineConfig) -> str:
    """The config as YAML text (round-trips through :func:`parse_config`)."""
    return yaml.safe_dump(json.loads(json.dumps(config.to_dict())), sort_keys=False)
