"""Options of the finance data sources (pydantic only: imported when plugins are listed)."""

from __future__ import annotations

from pydantic import Field

from transfuse import Options

__all__ = ["FinanceSourceOptions", "HistoryOptions"]


class FinanceSourceOptions(Options):
    """Options every finance data source takes."""

    multimodal: bool = Field(
        default=False,
        description="Add 'statement_png' and 'call_wav': a chart and a clip drawn from each "
        "row's own figures (derived from the table, for the multimodal plumbing).",
    )
    cache_dir: str | None = Field(
        default=None,
        description="Folder for the drawn files; default $TRANSFUSE_CACHE/finance or the "
        "user cache folder.",
    )
    missing_assets: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Leave this fraction of rows without an image and (independently) "
        "without audio, chosen by the row key, to exercise missing modalities.",
    )
    sample: int | None = Field(
        default=None,
        ge=2,
        description="Keep a label-stratified random sample of this many rows (assets are "
        "drawn only for the rows kept).",
    )
    seed: int = Field(default=0, description="Seed of the sample.")
    progress: bool = Field(default=True, description="Show a progress bar while drawing.")


class HistoryOptions(Options):
    """Options of the synthetic LendingClub tables."""

    seed: int = Field(default=0, description="Seed of the generator: same seed, same table.")
    months: int = Field(
        default=12, ge=1, le=36, description="Months of card history before the application."
    )
    no_history: float = Field(
        default=0.06,
        ge=0.0,
        lt=1.0,
        description="Share of applicants without a card (no transactions at all).",
    )
    no_record: float = Field(
        default=0.03, ge=0.0, lt=1.0, description="Share of applicants without a bureau row."
    )
