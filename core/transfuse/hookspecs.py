"""The hook specifications: what a transfuse plugin may implement.

Registration hooks return lists of entries and never mutate a global registry. A plugin
implements any subset of them with ``@transfuse.hookimpl``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import pandas as pd

    from transfuse.components import (
        CommandEntry,
        DataSourceEntry,
        EncoderEntry,
        FusionEntry,
        PipelineEntry,
        StrategyEntry,
        TaskEntry,
    )

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "transfuse"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def transfuse_encoders() -> list[EncoderEntry]:
    """Register encoders: modules that turn one input into ``[B, output_dim]``.

    Example::

        @hookimpl
        def transfuse_encoders():
            return [EncoderEntry(name="text.bag-of-words", modality="text",
                                 factory="transfuse_text.bow:BagOfWords",
                                 options=BagOfWordsOptions,
                                 description="Hashed-token EmbeddingBag encoder.")]
    """
    raise NotImplementedError


@hookspec
def transfuse_fusions() -> list[FusionEntry]:
    """Register fusion modules that combine per-input embeddings into one vector.

    Example::

        @hookimpl
        def transfuse_fusions():
            return [FusionEntry(name="fusion.concat", factory="transfuse.fusion:Concat",
                                options=ConcatOptions, description="Concatenate, then MLP.")]
    """
    raise NotImplementedError


@hookspec
def transfuse_strategies() -> list[StrategyEntry]:
    """Register transfer strategies (fine-tuning, freezing, layer mapping, ...).

    Example::

        @hookimpl
        def transfuse_strategies():
            return [StrategyEntry(name="strategy.l2sp", factory="my_plugin:L2SP",
                                  options=L2SPOptions, description="Pull weights to the source.")]
    """
    raise NotImplementedError


@hookspec
def transfuse_tasks() -> list[TaskEntry]:
    """Register tasks: a head, a loss and metrics (binary, multiclass, regression).

    Example::

        @hookimpl
        def transfuse_tasks():
            return [TaskEntry(name="task.ordinal", factory="my_plugin:Ordinal",
                              description="Ordinal regression over ordered classes.")]
    """
    raise NotImplementedError


@hookspec
def transfuse_data_sources() -> list[DataSourceEntry]:
    """Register data sources that load a table by name.

    Example::

        @hookimpl
        def transfuse_data_sources():
            return [DataSourceEntry(name="finance.hmda", factory="transfuse_finance.sources:HMDA",
                                    description="AER/HMDA mortgage denials (2,380 rows).")]
    """
    raise NotImplementedError


@hookspec
def transfuse_pipelines() -> list[PipelineEntry]:
    """Register named pipeline presets, shipped as YAML package data.

    Example::

        @hookimpl
        def transfuse_pipelines():
            return [PipelineEntry(name="lending-club-source",
                                  resource="transfuse_finance.presets:source.yaml",
                                  description="LendingClub, card and consolidation loans.")]
    """
    raise NotImplementedError


@hookspec
def transfuse_commands() -> list[CommandEntry]:
    """Register subcommands of the ``transfuse`` command line (``transfuse serve``).

    The factory adds the command's arguments to its ``argparse`` parser and returns the
    function that runs it; its module is imported whenever the parser is built, so it
    imports nothing heavy. A name the core already uses is ignored and reported.

    Example::

        @hookimpl
        def transfuse_commands():
            return [CommandEntry(name="serve", factory="transfuse_serve.cli:configure",
                                 description="Score a trained run over HTTP.")]

        # transfuse_serve/cli.py
        def configure(parser):
            parser.add_argument("run")
            parser.add_argument("--port", type=int, default=8000)
            return run  # run(args) -> int, imports fastapi when it runs
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def transfuse_infer_modality(column: pd.Series) -> str | None:
    """Guess a column's modality (``"text"``, ``"image"``, ...); ``None`` when unsure.

    The first plugin that answers wins, so answer only when sure.

    Example::

        @hookimpl
        def transfuse_infer_modality(column):
            if column.dtype == object and column.astype(str).str.endswith(".wav").all():
                return "audio"
            return None
    """
    raise NotImplementedError


@hookspec
def transfuse_on_event(event: str, payload: Mapping[str, Any]) -> None:
    """Observe what a run does: ``run_start``, ``epoch_end``, ``checkpoint``, ``run_end``...

    For loggers and experiment trackers; the return value is ignored.

    Example::

        @hookimpl
        def transfuse_on_event(event, payload):
            if event == "epoch_end":
                print(payload["epoch"], payload["metrics"])
    """
    raise NotImplementedError
