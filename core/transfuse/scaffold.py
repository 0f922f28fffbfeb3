"""``transfuse new encoder|fusion|strategy|source NAME``: a plugin distribution to start from.

It writes an installable package: ``pyproject.toml`` with the entry point, the
registration module (options model and hook, no torch), a typed component class that
works as it is, tests that use :mod:`transfuse.testing`, and a README. Its tests pass
right after ``pip install -e ".[test]"``; then edit the class.
"""

from __future__ import annotations

import argparse
import keyword
import re
import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfuse.errors import ConfigError

__all__ = ["KINDS", "Scaffold", "add_new_command", "plan", "write"]

#: What ``transfuse new`` can write: the kind -> (module, class suffix).
KINDS = {
    "encoder": ("encoder", "Encoder"),
    "fusion": ("fusion", "Fusion"),
    "strategy": ("strategy", "Strategy"),
    "source": ("source", "Source"),
}
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_DOTTED = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$")


@dataclass(frozen=True)
class Scaffold:
    """The names of a plugin to write."""

    kind: str
    #: The registered component name (``text.char-ngram``).
    component: str
    #: The distribution (``transfuse-char-ngram``), package and entry-point names.
    distribution: str
    package: str
    entry_point: str
    #: The component class (``CharNgramEncoder``) and its options model.
    cls: str
    options: str
    module: str
    modality: str


def plan(kind: str, name: str, modality: str = "text") -> Scaffold:
    """The names for ``transfuse new KIND NAME``: ``NAME`` is a short name
    (``char-ngram``) or a full component name (``text.char-ngram``)."""
    if kind not in KINDS:
        raise ConfigError(
            f"cannot scaffold a {kind!r}", where="transfuse new", fix=f"one of {', '.join(KINDS)}"
        )
    if _DOTTED.match(name):
        component, short = name, name.rsplit(".", 1)[-1]
        if kind == "encoder":
            modality = name.split(".", 1)[0]
    elif _NAME.match(name):
        short = name
        prefix = {"encoder": f"{modality}.", "fusion": "fusion.", "strategy": "strategy."}
        component = prefix.get(kind, "") + name
    else:
        raise ConfigError(
            f"{name!r} is not a plugin name",
            where="transfuse new NAME",
            fix="use lower-case letters, digits and dashes (char-ngram), optionally dotted "
            "(text.char-ngram)",
        )
    words = [w for w in re.split(r"[-_.]", short) if w]
    package = "transfuse_" + "_".join(words)
    if keyword.iskeyword(package) or not package.isidentifier():
        raise ConfigError(f"{name!r} gives no valid package name", where="transfuse new NAME")
    module, suffix = KINDS[kind]
    base = "".join(w.capitalize() for w in words)
    return Scaffold(
        kind=kind,
        component=component,
        distribution="transfuse-" + "-".join(words),
        package=package,
        entry_point="_".join(words),
        cls=base + suffix,
        options=base + "Options",
        module=module,
        modality=modality,
    )


def write(scaffold: Scaffold, out: Path) -> Path:
    """Write the distribution into ``out`` (refused if it exists), atomically: the
    files go to a temporary folder beside it, renamed into place at the end."""
    from transfuse import __version__

    out = out.expanduser()
    if out.exists():
        raise ConfigError(
            "the folder exists already",
            where=f"--out {out}",
            fix="give a new folder, or remove that one",
        )
    values = {
        "component": scaffold.component,
        "distribution": scaffold.distribution,
        "package": scaffold.package,
        "entry_point": scaffold.entry_point,
        "cls": scaffold.cls,
        "options": scaffold.options,
        "module": scaffold.module,
        "modality": scaffold.modality,
        "kind": scaffold.kind,
        "core": ".".join(__version__.split(".")[:2]),
        "entry": _ENTRY[scaffold.kind],
        "hook": _HOOK[scaffold.kind],
    }
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README[scaffold.kind],
        f"{scaffold.package}/__init__.py": INIT[scaffold.kind],
        f"{scaffold.package}/{scaffold.module}.py": CODE[scaffold.kind],
        f"{scaffold.package}/py.typed": "",
        f"tests/test_{scaffold.package}.py": TESTS[scaffold.kind],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for relative, template in files.items():
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(string.Template(template).substitute(values), "utf-8")
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def add_new_command(sub: Any) -> None:
    """Add ``transfuse new`` to the parser."""
    p = sub.add_parser(
        "new",
        help="write a plugin distribution to start from (encoder, fusion, strategy, source)",
        description="Write an installable plugin: pyproject.toml with the entry point, a "
        "typed class with an options model, tests that use transfuse.testing, a README.",
    )
    p.add_argument("kind", choices=sorted(KINDS), help="what the plugin registers")
    p.add_argument("name", help="a short name (char-ngram) or a component name (text.char-ngram)")
    p.add_argument("--out", help="the folder to write (default: ./transfuse-NAME)")
    p.add_argument(
        "--modality", default="text", help="an encoder's modality, for a short name (text)"
    )
    p.set_defaults(func=_cmd_new)


def _cmd_new(args: argparse.Namespace) -> int:
    scaffold = plan(args.kind, args.name, args.modality)
    out = write(scaffold, Path(args.out) if args.out else Path(scaffold.distribution))
    print(f"wrote {scaffold.kind} {scaffold.component!r} as {scaffold.distribution} in {out}")
    print(f'next: cd {out} && pip install -e ".[test]" && pytest')
    print(f"then: transfuse plugins {scaffold.component}")
    return 0


_ENTRY = {
    "encoder": "EncoderEntry",
    "fusion": "FusionEntry",
    "strategy": "StrategyEntry",
    "source": "DataSourceEntry",
}
_HOOK = {
    "encoder": "transfuse_encoders",
    "fusion": "transfuse_fusions",
    "strategy": "transfuse_strategies",
    "source": "transfuse_data_sources",
}

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "A transfuse plugin: the $kind $component."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["transfuse[train]>=$core"]

[project.optional-dependencies]
test = ["transfuse[testing]>=$core"]

# transfuse finds the plugin through this entry point; the module imports no torch.
[project.entry-points.transfuse]
$entry_point = "$package"

[tool.setuptools]
packages = ["$package"]

[tool.setuptools.package-data]
$package = ["py.typed"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_README_COMMON = """\
# $distribution

A [transfuse](https://example.invalid/transfuse) plugin that registers the $kind
`$component` (class `$package.$module:$cls`, options `$package:$options`).

```
pip install -e ".[test]"
pytest                              # the conformance checks of transfuse.testing
transfuse plugins $component        # its options: type, default, bounds, help
transfuse plugins --check           # exit 1 on any plugin problem (a clash of names...)
```

`$package/__init__.py` registers the component through `$hook` and imports no torch
(so `transfuse plugins` stays fast); `$package/$module.py` is the component. Change
both, keep the tests passing. The options model's fields (with `Field(description=...)`
and bounds) are what `transfuse plugins $component` and `transfuse config schema` show.
"""

README = {
    "encoder": _README_COMMON
    + """
Use it in a pipeline:

```yaml
inputs:
  notes: {encoder: $component, column: notes, options: {dim: 32}}
```
""",
    "fusion": _README_COMMON
    + """
Use it in a pipeline:

```yaml
fusion: {method: $component, options: {dim: 64}}
```
""",
    "strategy": _README_COMMON
    + """
Use it in a transfer (after `layer-map`, which copies the source's weights):

```yaml
transfer:
  from: runs/source
  strategies: [layer-map, {$component: {warmup_epochs: 1}}]
```
""",
    "source": _README_COMMON
    + """
Use it in a pipeline:

```yaml
data: {source: $component, options: {path: loans.csv, target: bad}}
```
""",
}

INIT = {
    "encoder": '''\
"""Registers the encoder $component; imports no torch (the class does, when built)."""

from pydantic import Field

from transfuse import EncoderEntry, Options, hookimpl


class $options(Options):
    """Options of $component (a pipeline's `inputs.NAME.options`)."""

    dim: int = Field(32, ge=1, description="Width of the embedding forward returns.")
    buckets: int = Field(256, ge=8, description="Hash buckets for the character n-grams.")
    n: int = Field(3, ge=1, le=6, description="Characters per n-gram.")


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    return [
        EncoderEntry(
            name="$component",
            modality="$modality",
            factory="$package.$module:$cls",
            options=$options,
            description="Hashed character n-gram counts, then a linear layer.",
        )
    ]
''',
    "fusion": '''\
"""Registers the fusion $component; imports no torch (the class does, when built)."""

from pydantic import Field

from transfuse import FusionEntry, Options, hookimpl


class $options(Options):
    """Options of $component (a pipeline's `fusion.options`)."""

    dim: int = Field(64, ge=1, description="Width of the fused vector.")


@hookimpl
def transfuse_fusions() -> list[FusionEntry]:
    return [
        FusionEntry(
            name="$component",
            factory="$package.$module:$cls",
            options=$options,
            description="Mean of the present inputs' projected embeddings.",
        )
    ]
''',
    "strategy": '''\
"""Registers the strategy $component; imports no torch (the class does, when built)."""

from pydantic import Field

from transfuse import Options, StrategyEntry, hookimpl


class $options(Options):
    """Options of $component (in `transfer.strategies`)."""

    warmup_epochs: int = Field(
        1, ge=0, description="Epochs in which the encoders stay frozen and the rest trains."
    )
    frozen: list[str] = Field(
        default_factory=lambda: ["inputs."],
        description="Prefixes of the parameter names frozen during the warm-up.",
    )


@hookimpl
def transfuse_strategies() -> list[StrategyEntry]:
    return [
        StrategyEntry(
            name="$component",
            factory="$package.$module:$cls",
            options=$options,
            description="Freeze the encoders for the first epochs, then train everything.",
            copies_weights=False,  # the same as the class says
        )
    ]
''',
    "source": '''\
"""Registers the data source $component; imports no pandas until it loads."""

from pydantic import Field

from transfuse import DataSourceEntry, Options, hookimpl


class $options(Options):
    """Options of $component (a pipeline's `data.options`)."""

    path: str = Field(description="The CSV file to read.")
    target: str | None = Field(None, description="Its label column, if it has one.")


@hookimpl
def transfuse_data_sources() -> list[DataSourceEntry]:
    return [
        DataSourceEntry(
            name="$component",
            factory="$package.$module:$cls",
            options=$options,
            description="Rows from a CSV file.",
        )
    ]
''',
}

CODE = {
    "encoder": '''\
"""The encoder $component: hashed character n-gram counts through a linear layer."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse import DeviceManager, Encoder
from $package import $options


class $cls(Encoder):
    """Each value's character n-grams, hashed into ``buckets`` counts, then ``Linear``.

    ``prepare`` gets every row, missing ones included (NaN/None: a row of zeros, and the
    fusion masks the row out); it returns float32 CPU tensors, one row per value.
    """

    rowwise_prepare = True  # row i depends on value i alone: prepared once, sliced

    def __init__(self, options: $options, device: DeviceManager) -> None:
        super().__init__(options, device)  # sets self.options and self.device_manager
        self.output_dim = options.dim
        self.linear = nn.Linear(options.buckets, options.dim)

    def prepare(self, values: pd.Series | pd.DataFrame) -> dict[str, Tensor]:
        if isinstance(values, pd.DataFrame):  # several columns: one text per row
            values = values.astype("string").fillna("").agg(" ".join, axis=1)
        counts = np.zeros((len(values), self.options.buckets), dtype=np.float32)
        n = self.options.n
        for i, value in enumerate(values):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            text = f" {value} "
            for j in range(max(len(text) - n + 1, 1)):
                gram = text[j : j + n].encode("utf-8")
                counts[i, zlib.crc32(gram) % self.options.buckets] += 1.0
        counts = np.log1p(counts)
        return {"counts": torch.from_numpy(counts)}

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        out: Tensor = self.linear(batch["counts"])
        return out
''',
    "fusion": '''\
"""The fusion $component: the mean of the present inputs' projected embeddings."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from transfuse import DeviceManager, Fusion
from $package import $options


class $cls(Fusion):
    """Projects each input to ``dim``, then averages over the inputs present in the row
    (a row with none present gets zeros)."""

    def __init__(
        self,
        options: $options,
        device: DeviceManager,
        *,
        input_dims: Mapping[str, int],
        num_outputs: int,
    ) -> None:
        super().__init__(options, device, input_dims=input_dims, num_outputs=num_outputs)
        self.output_dim = options.dim
        self.project = nn.ModuleDict({k: nn.Linear(d, options.dim) for k, d in input_dims.items()})

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        total: Tensor | None = None
        count: Tensor | None = None
        for name, layer in self.project.items():
            mask = present[name].to(embeddings[name].dtype).unsqueeze(1)
            part = layer(embeddings[name]) * mask
            total = part if total is None else total + part
            count = mask if count is None else count + mask
        assert total is not None and count is not None
        return total / count.clamp(min=1.0)
''',
    "strategy": '''\
"""The strategy $component: a warm-up with the encoders frozen, then every weight trains."""

from __future__ import annotations

from torch import nn

from transfuse import DeviceManager, TransferContext, TransferReport, TransferStrategy
from $package import $options


class $cls(TransferStrategy):
    """Freezes the parameters under ``frozen`` for ``warmup_epochs`` epochs.

    It copies no weights (``strategy.layer-map`` does that; the workflow puts it first),
    so its report gives every tensor the fate ``kept``. ``finalize`` makes every
    parameter it froze trainable again, as the kit checks.
    """

    copies_weights = False  # the same as the entry says

    def __init__(self, options: $options, device: DeviceManager) -> None:
        super().__init__(options, device)
        self.held: list[nn.Parameter] = []

    def prepare(self, ctx: TransferContext) -> TransferReport:
        self.context = ctx
        report = TransferReport(strategy="$component")
        for name, param in ctx.target_model.named_parameters():
            if self.options.warmup_epochs and param.requires_grad and name.startswith(
                tuple(self.options.frozen)
            ):
                param.requires_grad_(False)
                self.held.append(param)
                report.add(name, "kept", param.numel(), note="frozen for the warm-up")
            else:
                report.add(name, "kept", param.numel())
        return report

    def on_epoch_start(self, epoch: int) -> None:
        if epoch >= self.options.warmup_epochs:
            self._release()

    def finalize(self, model: nn.Module) -> None:
        self._release()

    def _release(self) -> None:
        for param in self.held:
            param.requires_grad_(True)
        self.held = []
''',
    "source": '''\
"""The data source $component: rows from a CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from transfuse import DataError, DataSource
from $package import $options


class $cls(DataSource):
    """Reads ``path``; ``target`` names its label column."""

    def __init__(self, options: $options) -> None:
        super().__init__(options)
        self.target = options.target

    def load(self) -> pd.DataFrame:
        path = Path(self.options.path).expanduser()
        if not path.is_file():
            raise DataError("no such file", where=f"data.options.path {path}", fix="check the path")
        frame = pd.read_csv(path)
        if self.target is not None and self.target not in frame.columns:
            raise DataError(
                f"the label column {self.target!r} is not in the file",
                where=f"data.options.target ({path})",
                fix=f"the file has: {', '.join(map(str, frame.columns))}",
            )
        return frame
''',
}

_TEST_HEADER = '''\
"""The conformance checks of transfuse.testing, on $component."""

import pytest
from pydantic import ValidationError

import $package
from $package import $options
from transfuse.testing import check_plugin
'''

TESTS = {
    "encoder": _TEST_HEADER
    + """

def test_every_component_conforms():
    check_plugin($package)  # sample text and tabular values, a missing one included


def test_unknown_options_are_refused():
    with pytest.raises(ValidationError):
        $options(dimm=3)


def test_a_missing_value_embeds_as_the_empty_text(transfuse_manager, register_plugin):
    import pandas as pd
    import torch

    register_plugin($package)
    entry = transfuse_manager.get("encoder", "$component")
    encoder = entry.load()(entry.validate_options({"dim": 4}), None)
    batch = encoder.prepare(pd.Series(["abc", None]))
    assert batch["counts"].dtype == torch.float32
    assert batch["counts"][1].sum() == 0 and batch["counts"][0].sum() > 0
""",
    "fusion": _TEST_HEADER
    + """

def test_every_component_conforms():
    check_plugin($package)


def test_unknown_options_are_refused():
    with pytest.raises(ValidationError):
        $options(dimm=3)
""",
    "strategy": _TEST_HEADER
    + """

def test_every_component_conforms():
    check_plugin($package)  # includes: finalize leaves nothing frozen


def test_the_warm_up_freezes_the_encoders_until_its_last_epoch(transfuse_manager, register_plugin):
    from torch import nn

    from transfuse import TransferContext
    from transfuse.testing import cpu_device

    register_plugin($package)
    entry = transfuse_manager.get("strategy", "$component")
    strategy = entry.load()(entry.validate_options({"warmup_epochs": 2}), cpu_device())
    model = nn.Module()
    model.inputs = nn.Linear(2, 2)
    model.head = nn.Linear(2, 1)
    strategy.prepare(TransferContext(model, model, cpu_device(), None))
    strategy.on_epoch_start(1)
    assert not model.inputs.weight.requires_grad and model.head.weight.requires_grad
    strategy.on_epoch_start(2)
    assert model.inputs.weight.requires_grad


def test_unknown_options_are_refused():
    with pytest.raises(ValidationError):
        $options(warmup=3)
""",
    "source": _TEST_HEADER
    + """

def test_every_component_conforms(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("x,bad\\n1.5,0\\n2.5,1\\n", "utf-8")
    options = {"$component": {"path": str(path), "target": "bad"}}
    frame = check_plugin($package, options=options)["$component"]
    assert list(frame.columns) == ["x", "bad"]


def test_a_missing_label_column_says_which(tmp_path):
    from transfuse import DataError
    from $package.$module import $cls

    path = tmp_path / "rows.csv"
    path.write_text("x\\n1\\n", "utf-8")
    with pytest.raises(DataError, match="'bad' is not in the file"):
        $cls($options(path=str(path), target="bad")).load()
""",
}
