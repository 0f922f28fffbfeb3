"""The AutoGluon-Tabular arm of ``bench/fusion.py``, run by AutoGluon's own interpreter.

AutoGluon pins its own numpy, pandas and scikit-learn, so it lives in a separate virtual
environment (never transfuse's): ``python3 -m venv /tmp/agvenv && /tmp/agvenv/bin/pip
install "autogluon.tabular[lightgbm,catboost,xgboost,fastai]==1.6.3" torch==2.11.0`` (every
model family of ``medium_quality``: its gradient-boosted trees and its two neural nets).
``bench/fusion.py --autogluon-python /tmp/agvenv/bin/python`` writes the split as parquet
files and runs this script on them::

    python bench/autogluon_arm.py TRAIN.parquet TEST.parquet OUT.json --label label \
        --text text --time-limit 600

It fits ``TabularPredictor`` (preset ``medium_quality``, ROC-AUC) on the training rows,
the text column given as text (AutoGluon builds its own n-gram features from it), and
writes the test rows' P(label = 1) with the train and predict wall seconds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    """Fit, predict, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--label", default="label")
    parser.add_argument("--text", default="text")
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--presets", default="medium_quality")
    args = parser.parse_args()

    import pandas as pd
    from autogluon.tabular import TabularPredictor

    train, test = pd.read_parquet(args.train), pd.read_parquet(args.test)
    for frame in (train, test):  # a missing text is an empty one
        frame[args.text] = frame[args.text].fillna("").astype(str)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        predictor = TabularPredictor(
            label=args.label, eval_metric="roc_auc", path=folder, verbosity=0
        ).fit(train, presets=args.presets, time_limit=args.time_limit)
        trained = time.perf_counter()
        scores = predictor.predict_proba(test.drop(columns=[args.label]))
        predicted = time.perf_counter()
        positive = 1 if 1 in scores.columns else scores.columns[-1]
        result = {
            "scores": scores[positive].astype(float).tolist(),
            "train_seconds": trained - started,
            "predict_seconds": predicted - trained,
            "best_model": str(predictor.model_best),
            "models": [str(m) for m in predictor.model_names()],
            "presets": args.presets,
            "time_limit": args.time_limit,
        }
    args.out.write_text(json.dumps(result), "utf-8")


if __name__ == "__main__":
    main()
