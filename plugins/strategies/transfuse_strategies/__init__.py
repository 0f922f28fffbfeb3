"""Transfer strategies for transfuse: fine-tuning, freezing, layer mapping, L2-SP, replay,
stacking, pooled averaging, CORAL, DANN.

This module registers the strategies and holds their options models; it imports no torch.
The implementations live in submodules that are imported only when a strategy is built.
Name patterns everywhere are globs over parameter names (``inputs.*.columns.*``); prefix
one with ``re:`` to give a regular expression instead (``re:inputs\\.\\w+\\.proj\\..*``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from transfuse import Options, StrategyEntry, hookimpl

__all__ = [
    "CoralOptions",
    "DannOptions",
    "FineTuneOptions",
    "FreezeOptions",
    "GradualUnfreezeOptions",
    "L2SPOptions",
    "LayerMapOptions",
    "LpFtOptions",
    "MapRule",
    "PoolOptions",
    "ReplayOptions",
    "SourceWeightsOptions",
    "StackOptions",
    "transfuse_strategies",
]

NormStats = Literal["frozen", "update"]


class FineTuneOptions(Options):
    """Options of ``strategy.finetune``: every parameter trains, at its own learning rate."""

    backbone_lr_mult: float = Field(
        default=1.0, gt=0, description="LR multiplier for the input encoders (inputs.*)."
    )
    fusion_lr_mult: float = Field(default=1.0, gt=0, description="LR multiplier for fusion.*.")
    head_lr_mult: float = Field(default=1.0, gt=0, description="LR multiplier for head.*.")
    layer_decay: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Layer-wise decay: block k from the top gets lr * layer_decay**k (1 = off).",
    )
    lr_mults: dict[str, float] = Field(
        default_factory=dict,
        description="Extra multipliers by name pattern, e.g. {'inputs.text.*': 0.1}.",
    )


class FreezeOptions(Options):
    """Options of ``strategy.freeze``; the defaults freeze all but the head: a linear probe."""

    include: list[str] = Field(
        default_factory=lambda: ["*"], description="Freeze parameters matching any of these."
    )
    exclude: list[str] = Field(
        default_factory=lambda: ["head.*"], description="...unless they match one of these."
    )
    norm_stats: NormStats = Field(
        default="frozen",
        description="'frozen': batch-norm layers whose parameters are frozen keep their "
        "running statistics (evaluation mode); 'update': they keep learning them.",
    )


class LpFtOptions(Options):
    """Options of ``strategy.lp-ft``: linear probe first, then full fine-tuning."""

    probe_epochs: int = Field(default=1, ge=1, description="Epochs of linear probing.")
    probe: list[str] = Field(
        default_factory=lambda: ["head.*"], description="What trains while probing."
    )
    norm_stats: NormStats = Field(default="frozen", description="As in strategy.freeze.")


class GradualUnfreezeOptions(Options):
    """Options of ``strategy.gradual-unfreeze`` (ULMFiT): one more group every few epochs."""

    every_epochs: int = Field(default=1, ge=1, description="Epochs between two unfreezings.")
    groups: list[list[str]] | None = Field(
        default=None,
        description="Groups of name patterns, top (first unfrozen) to bottom; default: head, "
        "fusion, then each input (its blocks top-down when it declares param_groups).",
    )
    norm_stats: NormStats = Field(default="frozen", description="As in strategy.freeze.")


ShapePolicy = Literal["copy", "slice", "reinit", "skip"]


class MapRule(Options):
    """One layer-map rule: source names matching ``from`` go to ``to``, under a shape policy.

    ``*`` in a glob captures any text (dots included) and the ``*`` in ``to`` take the
    captures in order; with ``re:`` patterns ``to`` uses ``\\1``-style groups.
    """

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="Source parameter names (glob or re:).")
    to: str | None = Field(default=None, description="Target names; default: same as from.")
    shape: ShapePolicy = Field(
        default="copy",
        description="copy: when shapes are equal; slice: also when only the leading dimension "
        "differs (keep the common rows, initialise new ones); reinit: initialise afresh; "
        "skip: leave the target tensor untouched.",
    )

    @field_validator("to")
    @classmethod
    def _same_kind(cls, value: str | None, info: Any) -> str | None:
        source = info.data.get("from_")
        if (
            value is not None
            and source is not None
            and (value.startswith("re:") != source.startswith("re:"))
        ):
            raise ValueError("'from' and 'to' must both be globs or both be re: patterns")
        return value


Scalar = str | int | float | bool


class LayerMapOptions(Options):
    """Options of ``strategy.layer-map``."""

    rules: list[MapRule] = Field(
        default_factory=list, description="Rules tried in order; the first match decides."
    )
    defaults: bool = Field(
        default=True,
        description="Append the default rule {from: '*', to: '*', shape: copy}: every "
        "tensor with the same name (and shape) is copied.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Tabular column renames, source -> target, e.g. {annual_income: annual_inc}.",
    )
    values: dict[str, dict[Scalar, Scalar]] = Field(
        default_factory=dict,
        description="Per categorical column (source or target name): source value -> target "
        "value, e.g. {term: {term_36: 36}}.",
    )
    min_loaded: float = Field(
        default=0.5, ge=0, le=1, description="Fail when a smaller fraction is loaded."
    )
    buffers: bool = Field(
        default=True, description="Also copy buffers (batch-norm statistics) of equal shape."
    )
    init: Literal["reset", "keep"] = Field(
        default="reset",
        description="Tensors the source does not provide: 'reset' re-initialises them "
        "(seeded) with their module's reset_parameters() or, lacking one, by shape; 'keep' "
        "keeps the values the target was built with.",
    )
    new_rows: Literal["mean", "init"] = Field(
        default="mean",
        description="Rows of a partly loaded table (new categories, a grown leading "
        "dimension): 'mean' starts them at the mean of the loaded rows, 'init' as 'init' says.",
    )
    gbdt: Literal["source-trees", "continue", "target-trees"] = Field(
        default="source-trees",
        description="For tabular.gbdt inputs: keep the source trees and copy their leaf "
        "embeddings; 'continue' also boosts more trees on the target rows (new leaves "
        "initialised); 'target-trees' keeps the target's own trees (leaf embeddings new).",
    )
    boost_trees: int = Field(default=50, ge=1, description="Trees added by gbdt: continue.")
    combine: Literal["first", "average"] = Field(
        default="first",
        description="With several source runs: 'first' takes each target tensor from the "
        "first run (in the order given) whose tensor fits; 'average' averages the tensors "
        "of every run that fits whole (same shape), else takes the first that fits. Inputs "
        "whose gbdt trees came from one run take all their tensors from that run.",
    )
    fitted_columns: Literal["source", "target"] = Field(
        default="source",
        description="For neural tabular inputs (tabular.mlp, tabular.ft-transformer): "
        "'source' gives the target encoder the source's fitted column statistics (scalers, "
        "bins, vocabularies) for the columns both have, so the copied embeddings see values "
        "as the source did; 'target' keeps those fitted on the target's own rows.",
    )


class SourceWeightsOptions(LayerMapOptions):
    """Options of ``strategy.source-weights``: layer-map's, plus how the sources are weighed."""

    temperature: float = Field(
        default=0.02,
        gt=0,
        description="Source k's weight is softmax(AUC_k / temperature) over the sources, AUC_k "
        "its score alone on the target's labelled rows (small: the best source takes all).",
    )
    distill: float = Field(
        default=1.0,
        ge=0,
        description="Weight of a loss pulling the target's logits toward the weighted sum of "
        "the sources' logits on the training rows (0: the weights only order the sources).",
    )
    use_validation: bool = Field(
        default=True,
        description="Score the sources on the validation rows too (every labelled row counts; "
        "nothing is fitted on them, and test rows are never seen).",
    )


class L2SPOptions(Options):
    """Options of ``strategy.l2sp`` (Li et al. 2018)."""

    alpha: float = Field(default=0.01, ge=0, description="Pull of transferred weights to w0.")
    beta: float = Field(default=0.01, ge=0, description="Plain L2 on new weights.")
    exclude: list[str] = Field(
        default_factory=list, description="Name patterns that get no penalty at all."
    )


class CoralOptions(Options):
    """Options of ``strategy.coral`` (Sun & Saenko 2016)."""

    weight: float = Field(default=1.0, ge=0, description="Weight of the CORAL loss.")
    batch_size: int = Field(default=64, ge=2, description="Rows per domain per step.")


class ReplayOptions(Options):
    """Options of ``strategy.replay`` (rehearsal on labelled source rows)."""

    weight: float = Field(
        default=1.0, ge=0, description="Weight of the source rows' loss beside the target's."
    )
    batch_size: int = Field(default=64, ge=1, description="Source rows per step.")


class DannOptions(Options):
    """Options of ``strategy.dann`` (Ganin et al. 2016)."""

    weight: float = Field(default=1.0, ge=0, description="Weight of the domain loss.")
    max_lambda: float = Field(default=1.0, ge=0, description="Final gradient-reversal factor.")
    gamma: float = Field(default=10.0, gt=0, description="Steepness of the lambda ramp.")
    hidden: int = Field(default=64, ge=1, description="Width of the domain discriminator.")
    batch_size: int = Field(default=64, ge=2, description="Rows per domain per step.")
    lr_mult: float = Field(default=1.0, gt=0, description="Discriminator LR multiplier.")


class StackOptions(Options):
    """Options of ``strategy.stack``: source logit as an offset + a CV-shrunk correction."""

    penalties: list[float] = Field(
        default_factory=lambda: [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0],
        description="L2 penalties tried (on standardised inputs; inf, keeping the source's "
        "ranking, is always tried too).",
    )
    folds: int = Field(default=5, ge=2, description="k of the repeated stratified k-fold.")
    min_class_rows: int = Field(
        default=20,
        ge=2,
        description="Fewer labelled rows of a class than this: no correction, the source's "
        "ranking is kept (intercept refitted only).",
    )
    criterion: Literal["auc", "log-loss"] = Field(
        default="auc",
        description="Out-of-fold score that picks the penalty (one-standard-error rule towards "
        "the larger penalty).",
    )
    repeats: int = Field(default=3, ge=1, description="Repeats of the k-fold.")
    seed: int = Field(default=0, description="Seed of the fold assignment.")
    features: bool = Field(
        default=True,
        description="Correct with the fused features too (false: rescale the source logit only).",
    )
    use_validation: bool = Field(
        default=True,
        description="Also fit on the validation rows (every labelled row counts; the choice "
        "is made by k-fold, never on test rows).",
    )
    then: Literal["keep", "train"] = Field(
        default="keep",
        description="'keep': nothing trains afterwards (learning rates 0); 'train': training "
        "goes on from the stacked model (which stays a candidate on validation).",
    )

    @field_validator("penalties")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("give one or more penalties > 0 (inf is always added)")
        return value


class PoolOptions(Options):
    """Options of ``strategy.pool``: the source logit averaged with a pooled booster's,
    distilled into the network."""

    mix: float = Field(
        default=0.5, gt=0, lt=1, description="Weight of the pooled model in the average."
    )
    trees: int = Field(default=300, ge=1, description="Trees fitted on the pooled rows.")
    learning_rate: float = Field(default=0.03, gt=0, description="Their learning rate.")
    leaves: int = Field(default=15, ge=2, description="Leaves per tree.")
    min_rows_per_leaf: int = Field(default=10, ge=1, description="Fewest rows in a leaf.")
    row_subsample: float = Field(default=0.8, gt=0, le=1, description="Rows per tree.")
    column_subsample: float = Field(default=0.8, gt=0, le=1, description="Columns per tree.")
    l2: float = Field(default=1.0, ge=0, description="L2 penalty on leaf values.")
    source_weight: float = Field(
        default=1.0, gt=0, description="Weight of a source row (a target row weighs 1)."
    )
    use_validation: bool = Field(
        default=True, description="Also pool the target's validation rows (every label counts)."
    )
    exact: bool = Field(
        default=False,
        description="Write the average into the network exactly instead of distilling it: "
        "needs a fusion through which the gbdt input reaches the logit linearly "
        "(fusion.linear).",
    )
    distill_epochs: int = Field(
        default=10, ge=1, description="Epochs over the pooled rows to distil the average."
    )
    distill_lr: float = Field(default=1e-3, gt=0, description="Adam learning rate of it.")
    distill_batch_size: int = Field(default=256, ge=1, description="Rows per distil step.")
    threads: int = Field(default=1, ge=1, description="LightGBM threads.")
    seed: int = Field(default=0, description="Seed of the subsampling and the distil order.")
    then: Literal["keep", "train"] = Field(
        default="keep",
        description="'keep': nothing trains afterwards (learning rates 0); 'train': training "
        "goes on from the average.",
    )


@hookimpl
def transfuse_strategies() -> list[StrategyEntry]:
    """The strategies this plugin provides."""
    return [
        StrategyEntry(
            name="strategy.finetune",
            factory="transfuse_strategies.tuning:FineTune",
            options=FineTuneOptions,
            description="All parameters train; discriminative and layer-wise decayed LRs.",
        ),
        StrategyEntry(
            name="strategy.freeze",
            factory="transfuse_strategies.tuning:Freeze",
            options=FreezeOptions,
            description="Freeze parameters by name pattern (default: a linear probe).",
        ),
        StrategyEntry(
            name="strategy.lp-ft",
            factory="transfuse_strategies.tuning:LinearProbeFineTune",
            options=LpFtOptions,
            description="Linear probe for N epochs, then full fine-tuning (Kumar et al. 2022).",
        ),
        StrategyEntry(
            name="strategy.gradual-unfreeze",
            factory="transfuse_strategies.tuning:GradualUnfreeze",
            options=GradualUnfreezeOptions,
            description="Unfreeze top-down, one group per epoch (ULMFiT).",
        ),
        StrategyEntry(
            name="strategy.layer-map",
            factory="transfuse_strategies.layermap:LayerMap",
            options=LayerMapOptions,
            copies_weights=True,  # so the config check puts it before strategies that train
            description="Copy source parameters into the target by rules, columns and values.",
        ),
        StrategyEntry(
            name="strategy.source-weights",
            factory="transfuse_strategies.sourceweights:SourceWeights",
            options=SourceWeightsOptions,
            description="Several source runs weighed by their AUC alone on the target's labels.",
            copies_weights=True,
        ),
        StrategyEntry(
            name="strategy.l2sp",
            factory="transfuse_strategies.l2sp:L2SP",
            options=L2SPOptions,
            description="Pull transferred weights toward their start point (Li et al. 2018).",
        ),
        StrategyEntry(
            name="strategy.replay",
            factory="transfuse_strategies.replay:Replay",
            options=ReplayOptions,
            description="Keep training on labelled source rows beside the target's (rehearsal).",
        ),
        StrategyEntry(
            name="strategy.pool",
            factory="transfuse_strategies.pool:Pool",
            options=PoolOptions,
            description="Average the source logit with a booster fitted on source + target "
            "rows pooled (tabular.gbdt input).",
        ),
        StrategyEntry(
            name="strategy.stack",
            factory="transfuse_strategies.stack:Stack",
            options=StackOptions,
            description="Source logit as an offset + a linear correction, shrunk by k-fold CV.",
        ),
        StrategyEntry(
            name="strategy.coral",
            factory="transfuse_strategies.alignment:Coral",
            options=CoralOptions,
            description="Align source and unlabeled target feature covariances (Deep CORAL).",
        ),
        StrategyEntry(
            name="strategy.dann",
            factory="transfuse_strategies.alignment:Dann",
            options=DannOptions,
            description="A domain discriminator behind gradient reversal (Ganin et al. 2016).",
        ),
    ]
