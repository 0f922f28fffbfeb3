"""Shared pieces: name patterns, the model's blocks top-down, and optimizer-group splitting.

Every strategy works on parameter *names* under the model layout convention (``inputs.<name>.``,
``fusion.``, ``head.``), so these helpers are the vocabulary they share.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from transfuse.errors import ConfigError

__all__ = [
    "Block",
    "NormGuard",
    "Pattern",
    "blocks",
    "frozen_inputs",
    "matches_any",
    "param_names",
    "split_groups",
    "unwrap",
]


class Pattern:
    """A glob (``*`` matches any text, dots included) or, prefixed ``re:``, a regex."""

    def __init__(self, text: str, where: str = "pattern") -> None:
        self.text = text
        self.is_regex = text.startswith("re:")
        source = text[3:] if self.is_regex else _glob_to_regex(text)
        try:
            self.regex = re.compile(source)
        except re.error as exc:
            raise ConfigError(
                f"bad pattern {text!r}: {exc}", where=where, fix="fix the regular expression"
            ) from None

    def match(self, name: str) -> re.Match[str] | None:
        """The full match of ``name``, or None."""
        return self.regex.fullmatch(name)

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"


def _glob_to_regex(glob: str) -> str:
    """fnmatch's translation, but with each ``*``/``?`` a capture group for substitution."""
    out = []
    for char in glob:
        if char == "*":
            out.append("(.*)")
        elif char == "?":
            out.append("(.)")
        else:
            out.append(re.escape(char))
    return "".join(out)


def matches_any(name: str, patterns: Sequence[Pattern]) -> bool:
    """Whether any pattern matches ``name``."""
    return any(p.match(name) for p in patterns)


def compile_patterns(texts: Iterable[str], where: str) -> list[Pattern]:
    """Compile a list of pattern strings, errors naming ``where``."""
    return [Pattern(t, where) for t in texts]


def unwrap(model: nn.Module) -> nn.Module:
    """The module under ``torch.compile``'s wrapper, so names carry no ``_orig_mod.``."""
    return getattr(model, "_orig_mod", model)


def param_names(model: nn.Module) -> dict[int, str]:
    """``id(parameter) -> name`` for every parameter of the (unwrapped) model."""
    return {id(p): n for n, p in unwrap(model).named_parameters()}


def frozen_inputs(model: nn.Module) -> set[str]:
    """Names of the inputs whose encoder is frozen (cached): strategies never train them."""
    inputs = getattr(unwrap(model), "inputs", None)
    if not isinstance(inputs, nn.ModuleDict):
        return set()
    return {name for name, enc in inputs.items() if getattr(enc, "frozen", False)}


@dataclass
class Block:
    """A group of parameters that trains (or unfreezes) together, with its depth from the top."""

    label: str
    depth: int
    names: list[str] = field(default_factory=list)


def blocks(model: nn.Module) -> list[Block]:
    """The model's blocks top-down: head, fusion, then each input's blocks.

    An encoder that declares ``param_groups()`` is split: its parameters outside any group
    form its top block, then its groups follow in reverse order of declaration (declare them
    input to output). Parameters of frozen encoders are left out; any parameter outside
    ``inputs``/``fusion``/``head`` joins the head's block.
    """
    model = unwrap(model)
    names = [n for n, _ in model.named_parameters()]
    head = Block("head", 0, [n for n in names if not n.startswith(("inputs.", "fusion."))])
    out = [head, Block("fusion", 1, [n for n in names if n.startswith("fusion.")])]
    inputs = getattr(model, "inputs", None)
    if isinstance(inputs, nn.ModuleDict):
        frozen = frozen_inputs(model)
        for name, encoder in inputs.items():
            if name in frozen:
                continue
            prefix = f"inputs.{name}."
            own = [n for n in names if n.startswith(prefix)]
            groups = _encoder_groups(encoder, prefix)
            grouped = {n for g in groups.values() for n in g}
            out.append(Block(f"inputs.{name}", 2, [n for n in own if n not in grouped]))
            for depth, (label, members) in enumerate(reversed(groups.items()), start=3):
                out.append(Block(f"inputs.{name}.{label}", depth, members))
    return [b for b in out if b.names]


def _encoder_groups(encoder: nn.Module, prefix: str) -> dict[str, list[str]]:
    """An encoder's ``param_groups()`` as parameter names (empty when it declares none)."""
    method = getattr(encoder, "param_groups", None)
    if not callable(method):
        return {}
    groups = method() or {}
    local = {id(p): prefix + n for n, p in encoder.named_parameters()}
    return {
        label: [local[id(p)] for p in params if id(p) in local] for label, params in groups.items()
    }


def split_groups(
    model: nn.Module,
    groups: list[dict[str, Any]],
    multiplier: Callable[[str], float],
    tag: str,
) -> list[dict[str, Any]]:
    """Split each optimizer group by a per-name LR multiplier.

    Parameters with multiplier 1 stay in their group; the others move to a copy of it
    (same weight decay and other keys) named ``<group>/<tag>x<mult>`` with ``lr`` scaled.
    A ``param_names`` list, when the groups carry one, follows its parameters.
    """
    names = param_names(model)
    out: list[dict[str, Any]] = []
    for group in groups:
        buckets: dict[float, list[Any]] = {}
        for param in group["params"]:
            mult = multiplier(names[id(param)]) if id(param) in names else 1.0
            buckets.setdefault(mult, []).append(param)
        for mult, params in sorted(buckets.items(), key=lambda kv: -kv[0]):
            new = dict(group, params=params)
            if "param_names" in group:
                new["param_names"] = [names.get(id(p), "") for p in params]
            if mult != 1.0:
                new["lr"] = group["lr"] * mult
                new["name"] = f"{group.get('name', 'group')}/{tag}x{mult:.3g}"
            out.append(new)
    return out


class NormGuard:
    """Keeps batch-norm layers whose parameters are all frozen in evaluation mode.

    A frozen feature extractor should not drift through its running statistics; a forward
    pre-hook sets such a layer's ``training`` flag from the root model's at every call.
    """

    def __init__(self) -> None:
        self._handles: list[Any] = []

    def install(self, model: nn.Module) -> None:
        """Hook every batch-norm layer with parameters in ``model``."""
        from torch.nn.modules.batchnorm import _NormBase

        self.remove()
        root = unwrap(model)
        for module in root.modules():
            params = list(module.parameters(recurse=False))
            if isinstance(module, _NormBase) and params:

                def hook(mod: nn.Module, _args: Any, params: list[Any] = params) -> None:
                    mod.training = root.training and any(p.requires_grad for p in params)

                self._handles.append(module.register_forward_pre_hook(hook))

    def remove(self) -> None:
        """Remove the hooks (the next ``model.train()`` restores the layers' mode)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def describe_names(names: Iterable[str], limit: int = 4) -> str:
    """A few names for an error message: ``a, b, c, ... (12 in all)``."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "") or "none"
