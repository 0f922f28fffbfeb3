"""Is a column free text? The heuristic behind ``transfuse_infer_modality``.

Free text is strings, mostly letters, either too varied to be categories or several words
long and mostly different; identifiers, dates, categories, file names and URLs are left
to other plugins (the core calls short repeated strings tabular).
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["looks_like_free_text"]

SAMPLE = 200
_FILE_LIKE = re.compile(r"^\S+\.[A-Za-z][A-Za-z0-9]{0,4}$|^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_WORD = re.compile(r"\w+")


def looks_like_free_text(column: pd.Series) -> bool:
    """True when the column's non-missing values look like free text."""
    if not (column.dtype == object or pd.api.types.is_string_dtype(column)):
        return False
    values = column.dropna()
    values = values[values.map(lambda v: not isinstance(v, str) or bool(v.strip()))]
    if values.empty or len(values) < 2:
        return False
    sample = values.sample(n=SAMPLE, random_state=0) if len(values) > SAMPLE else values
    texts = sample.tolist()
    if not all(isinstance(t, str) for t in texts):
        return False
    if sum(bool(_FILE_LIKE.match(t.strip())) for t in texts) > len(texts) / 2:
        return False  # file names, paths and URLs belong to the image/audio plugins
    letters = sum(sum(c.isalpha() for c in t) / len(t) for t in texts) / len(texts)
    if letters < 0.5:
        return False  # identifiers, codes, dates, amounts
    words = sum(len(_WORD.findall(t)) for t in texts) / len(texts)
    distinct = values.nunique()
    if distinct > max(20, len(values) // 20):
        return True  # too varied to be categories (job titles, descriptions)
    return words >= 3 and distinct > len(values) / 2  # a few sentences, mostly different
