"""Which parameters train, and how fast: finetune, freeze, lp-ft and gradual-unfreeze.

None of these copies weights (``copies_weights`` is false), so the transfer workflow puts
``strategy.layer-map`` with its defaults before them. Freezing is done with
``requires_grad`` (and a gradient of ``None``), which AdamW skips entirely; the
optimizer keeps every parameter, so a later epoch can unfreeze one.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from transfuse import TransferError
from transfuse.bases import TransferContext, TransferReport, TransferStrategy
from transfuse_strategies import (
    FineTuneOptions,
    FreezeOptions,
    GradualUnfreezeOptions,
    LpFtOptions,
)
from transfuse_strategies.names import (
    NormGuard,
    Pattern,
    blocks,
    compile_patterns,
    describe_names,
    frozen_inputs,
    matches_any,
    split_groups,
    unwrap,
)

__all__ = ["FineTune", "Freeze", "GradualUnfreeze", "LinearProbeFineTune"]


class FineTune(TransferStrategy):
    """Every parameter trains; encoders, fusion and head may each get their own LR.

    With ``layer_decay`` < 1 the LR also shrinks with depth from the top (head 0,
    fusion 1, an encoder's top block 2, its deeper ``param_groups`` 3, 4, ...).
    """

    options: FineTuneOptions

    def __init__(self, options: FineTuneOptions, device: Any) -> None:
        super().__init__(options, device)
        self.extra_patterns = [
            (Pattern(text, "strategy.finetune.lr_mults"), mult)
            for text, mult in options.lr_mults.items()
        ]

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Check the ``lr_mults`` patterns name real parameters."""
        self.context = ctx
        names = [n for n, _ in unwrap(ctx.target_model).named_parameters()]
        for pattern, _ in self.extra_patterns:
            if not any(pattern.match(n) for n in names):
                raise TransferError(
                    f"lr_mults pattern {pattern.text!r} matches no parameter",
                    where="strategy.finetune",
                    fix=f"parameter names look like {describe_names(names)}",
                )
        return None

    def multiplier(self, model: nn.Module, name: str, depth: dict[str, int]) -> float:
        """The LR multiplier of one parameter."""
        opts = self.options
        if name.startswith("inputs."):
            mult = opts.backbone_lr_mult
        elif name.startswith("fusion."):
            mult = opts.fusion_lr_mult
        else:
            mult = opts.head_lr_mult
        mult *= opts.layer_decay ** depth.get(name, 0)
        for pattern, extra in self.extra_patterns:
            if pattern.match(name):
                mult *= extra
        return mult

    def param_groups(self, model: nn.Module, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Split the groups by each parameter's multiplier."""
        depth = {n: b.depth for b in blocks(model) for n in b.names}
        return split_groups(model, groups, lambda n: self.multiplier(model, n, depth), "ft")


class _Freezing(TransferStrategy):
    """Base of the strategies that switch ``requires_grad``: they touch only parameters that
    were trainable when ``prepare`` ran (never a frozen encoder's) and restore them at the end."""

    options: Any
    label = "strategy"

    def __init__(self, options: Any, device: Any) -> None:
        super().__init__(options, device)
        self.managed: dict[str, nn.Parameter] = {}
        self.guard = NormGuard()

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Record the parameters this strategy may freeze and unfreeze."""
        self.context = ctx
        model = unwrap(ctx.target_model)
        frozen = tuple(f"inputs.{name}." for name in frozen_inputs(model))
        self.managed = {
            n: p
            for n, p in model.named_parameters()
            if p.requires_grad and not (frozen and n.startswith(frozen))
        }
        if self.options.norm_stats == "frozen":
            self.guard.install(model)
        return None

    def set_trainable(self, trainable: set[str]) -> None:
        """Train exactly the managed parameters named in ``trainable``."""
        for name, param in self.managed.items():
            param.requires_grad_(name in trainable)
            if name not in trainable:
                param.grad = None

    def trainable_names(self) -> list[str]:
        """The managed parameters that train now."""
        return [n for n, p in self.managed.items() if p.requires_grad]

    def finalize(self, model: nn.Module) -> None:
        """Make every managed parameter trainable again and remove the norm hooks."""
        self.set_trainable(set(self.managed))
        self.guard.remove()

    def _select(self, patterns: list[Pattern], key: str) -> set[str]:
        """Managed names matching ``patterns``; an error when a pattern matches nothing."""
        for pattern in patterns:
            if not any(pattern.match(n) for n in self.managed):
                raise TransferError(
                    f"{key} pattern {pattern.text!r} matches no trainable parameter",
                    where=self.label,
                    fix=f"parameter names look like {describe_names(self.managed)}",
                )
        return {n for n in self.managed if matches_any(n, patterns)}


class Freeze(_Freezing):
    """Freeze parameters by name; the defaults (all but ``head.*``) give a linear probe."""

    options: FreezeOptions
    label = "strategy.freeze"

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Freeze now; an error if nothing would be left to train."""
        super().prepare(ctx)
        include = compile_patterns(self.options.include, "strategy.freeze.include")
        exclude = compile_patterns(self.options.exclude, "strategy.freeze.exclude")
        frozen = {n for n in self._select(include, "include") if not matches_any(n, exclude)}
        trainable = set(self.managed) - frozen
        if not trainable:
            raise TransferError(
                "every parameter would be frozen; nothing would train",
                where="strategy.freeze",
                fix="narrow 'include' or add 'exclude' patterns (a model whose fusion gives "
                "the logits, such as fusion.late, has no head.*: exclude fusion.heads.* or "
                f"similar); names look like {describe_names(self.managed)}",
            )
        self.set_trainable(trainable)
        return None


class LinearProbeFineTune(_Freezing):
    """Train only the head (``probe`` patterns) for ``probe_epochs``, then everything.

    Kumar et al. (2022): fine-tuning from a random head distorts the pretrained features;
    a head first fitted on frozen features does not.
    """

    options: LpFtOptions
    label = "strategy.lp-ft"

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Check the probe patterns; the first epoch freezes."""
        super().prepare(ctx)
        self.probe = self._select(
            compile_patterns(self.options.probe, "strategy.lp-ft.probe"), "probe"
        )
        return None

    def on_epoch_start(self, epoch: int) -> None:
        """Probe while ``epoch < probe_epochs``, fine-tune everything after."""
        if epoch < self.options.probe_epochs:
            self.set_trainable(self.probe)
        else:
            self.set_trainable(set(self.managed))


class GradualUnfreeze(_Freezing):
    """ULMFiT's gradual unfreezing: the top group trains first; every ``every_epochs``
    epochs one more group below it joins."""

    options: GradualUnfreezeOptions
    label = "strategy.gradual-unfreeze"

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Work out the groups, top-down."""
        super().prepare(ctx)
        if self.options.groups is None:
            self.stages = [
                [n for n in b.names if n in self.managed] for b in blocks(ctx.target_model)
            ]
        else:
            patterns = [
                compile_patterns(g, f"strategy.gradual-unfreeze.groups.{i}")
                for i, g in enumerate(self.options.groups)
            ]
            self.stages = [[] for _ in patterns]
            for name in self.managed:
                index = next(
                    (i for i, g in enumerate(patterns) if matches_any(name, g)), len(patterns) - 1
                )
                self.stages[index].append(name)
        self.stages = [s for s in self.stages if s]
        return None

    def stage_count(self, epoch: int) -> int:
        """How many groups train in ``epoch``."""
        return min(len(self.stages), 1 + epoch // self.options.every_epochs)

    def on_epoch_start(self, epoch: int) -> None:
        """Train the first ``stage_count(epoch)`` groups."""
        count = self.stage_count(epoch)
        self.set_trainable({n for stage in self.stages[:count] for n in stage})
