"""text.tfidf's warm start (a logistic regression fitted first) and its fixed-width rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from transfuse.testing import cpu_device
from transfuse_text import TfidfOptions
from transfuse_text.tfidf import C_GRID, TfidfEncoder

GOOD = ["paid", "early", "on", "time", "thanks", "settled", "fine", "ok"]
BAD = ["late", "missed", "default", "again", "arrears", "overdue", "fine", "ok"]


def notes(rows: int, seed: int, classes: int = 2) -> tuple[pd.Series, pd.Series]:
    """Short notes whose words lean to their class's list (one in four words from the
    other's), so no C separates them perfectly."""
    rng = np.random.default_rng(seed)
    words = [GOOD, BAD, ["unknown", "pending", "review", "fine", "ok"]][:classes]
    labels = rng.integers(0, classes, rows)
    texts = []
    for label in labels:
        own = words[label] if rng.random() > 0.25 else words[(label + 1) % classes]
        texts.append(" ".join(rng.choice(own, size=rng.integers(2, 6))))
    return pd.Series(texts, name="note"), pd.Series(labels, name="y")


def encoder(**options: Any) -> TfidfEncoder:
    return TfidfEncoder(TfidfOptions(**{"min_df": 1, "char_ngrams": 3, **options}), cpu_device())


def test_the_layer_starts_at_a_logistic_regression_on_the_same_features() -> None:
    from sklearn.linear_model import LogisticRegression

    texts, labels = notes(120, seed=0)
    enc = encoder(dim=4, C=2.0)
    enc.fit(texts, target=labels)
    expected = LogisticRegression(C=2.0, max_iter=1000).fit(enc.tfidf(texts), labels)
    weight = enc.bag.weight.detach().numpy()
    assert np.allclose(weight[:, 0], expected.coef_[0], atol=1e-4)
    assert not weight[:, 1:].any()  # the other columns start at zero, not at noise
    logit = enc(enc.prepare(texts))[:, 0].detach().numpy()
    assert np.allclose(logit + expected.intercept_[0], expected.decision_function(enc.tfidf(texts)),
                       atol=1e-4)  # fmt: skip
    assert enc.warm["C"] == 2.0 and enc.warm["chosen_on"] == "options.C"


def test_several_classes_fill_one_column_each() -> None:
    from sklearn.linear_model import LogisticRegression

    texts, labels = notes(150, seed=1, classes=3)
    enc = encoder(dim=5, C=1.0)
    enc.fit(texts, target=labels.map({0: "a", 1: "b", 2: "c"}))
    expected = LogisticRegression(C=1.0, max_iter=1000).fit(enc.tfidf(texts), labels)
    weight = enc.bag.weight.detach().numpy()
    assert np.allclose(weight[:, :3], expected.coef_.T, atol=1e-4)
    assert enc.warm["classes"] == ["a", "b", "c"]


def test_c_is_chosen_on_the_validation_rows_or_by_folds_without_them() -> None:
    texts, labels = notes(150, seed=2)
    valid = notes(60, seed=3)
    enc = encoder()
    enc.fit(texts, target=labels, valid=valid)
    assert enc.warm["chosen_on"] == "validation rows"
    assert enc.warm["C"] in C_GRID and set(enc.warm["scores"]) == {f"{c:g}" for c in C_GRID}
    assert enc.warm["C"] == max(C_GRID, key=lambda c: enc.warm["scores"][f"{c:g}"])
    assert enc.warm["rows"] == 150 and enc.warm["fitted_on"] == "training rows"
    everything = encoder(warm_start_rows="all")
    everything.fit(texts, target=labels, valid=valid)
    assert everything.warm["rows"] == 210
    folds = encoder()
    folds.fit(texts, target=labels)
    assert folds.warm["chosen_on"] == "3-fold CV" and folds.warm["C"] in C_GRID


def test_no_labels_one_class_or_warm_start_off_leave_the_random_start() -> None:
    texts, labels = notes(40, seed=4)
    for enc, target in [
        (encoder(), None),
        (encoder(), pd.Series(["same"] * 40)),
        (encoder(warm_start=False), labels),
    ]:
        enc.fit(texts, target=target)
        assert enc.bag.weight[:, 1:].abs().sum() > 0  # the std 0.01 start
        assert "C" not in enc.warm


def test_rows_prepare_alike_alone_or_in_any_batch_and_unseen_texts_too() -> None:
    texts, labels = notes(80, seed=5)
    enc = encoder()
    enc.fit(texts, target=labels)
    unseen = pd.Series(["paid late again overdue thanks", None, "zzz"])
    frame = pd.concat([texts, unseen], ignore_index=True)
    whole = enc.prepare(frame)
    parts = [enc.prepare(frame.iloc[i : i + 7]) for i in range(0, len(frame), 7)]
    for key in ("terms", "weights"):
        assert whole[key].shape[1] == enc.width
        assert torch.equal(whole[key], torch.cat([p[key] for p in parts]))
    # the texts fit saw are read back, not counted again: the same as counting afresh
    fresh = enc._transform(list(frame.fillna("").astype(str)))
    assert np.allclose(enc.tfidf(frame).toarray(), fresh.toarray(), atol=1e-6)


def test_fitted_state_and_weights_round_trip(tmp_path: Path) -> None:
    texts, labels = notes(100, seed=6)
    enc = encoder(dim=3)
    enc.fit(texts, target=labels, valid=notes(40, seed=7))
    enc.save_fitted(tmp_path)
    saved = json.loads((tmp_path / "vocabulary.json").read_text("utf-8"))
    assert saved["width"] == enc.width and saved["warm_start"]["C"] == enc.warm["C"]
    fresh = encoder(dim=3)
    fresh.load_fitted(tmp_path)
    fresh.load_state_dict(enc.state_dict())
    assert fresh.width == enc.width and fresh.warm == enc.warm
    batch = enc.prepare(texts)
    assert torch.equal(fresh.prepare(texts)["terms"], batch["terms"])
    assert torch.allclose(fresh(fresh.prepare(texts)), enc(batch))
    assert fresh.cache_key() == enc.cache_key()


def test_a_frozen_layers_cache_key_follows_its_weights() -> None:
    texts, labels = notes(60, seed=8)
    enc = encoder(frozen=True, C=1.0)
    enc.fit(texts, target=labels)
    assert enc.frozen
    key = enc.cache_key()
    with torch.no_grad():
        enc.bag.weight[0, 0] += 1.0
    assert enc.cache_key() != key


def test_alone_with_a_linear_head_the_model_ranks_as_the_regression_does() -> None:
    import transfuse

    texts, labels = notes(240, seed=9)
    frame = pd.DataFrame({"note": texts, "bad": labels})
    config = {
        "name": "tfidf-warm",
        "task": {"type": "binary", "target": "bad"},
        "inputs": {
            "note": {
                "encoder": "text.tfidf",
                "column": "note",
                "options": {"frozen": True, "min_df": 1, "char_ngrams": 3, "dim": 4},
            }
        },
        "fusion": {"method": "fusion.stack", "options": {"dim": 8, "linear_heads": True}},
        "train": {"epochs": 2, "batch_size": 32, "device": "cpu", "progress": False},
    }
    pipeline = transfuse.Pipeline.from_config(config).fit(frame.iloc[:180], frame.iloc[180:])
    test = frame.iloc[180:]
    encoder_ = pipeline.model.inputs["note"]
    assert encoder_.warm["chosen_on"] == "validation rows"
    with torch.no_grad():
        logit = encoder_(encoder_.prepare(test["note"]))[:, 0].numpy()
    scores = pipeline.predict_scores(test, raw=True)[:, 0]
    order = np.argsort(logit, kind="stable")
    assert np.all(np.diff(scores[order]) >= -1e-6)  # a monotone map of the regression's logit


def test_refit_rows_refits_the_regression_on_more_rows_with_the_chosen_c() -> None:
    from sklearn.linear_model import LogisticRegression

    texts, labels = notes(200, seed=3)
    enc = encoder(dim=4)
    enc.fit(texts[:120], target=labels[:120], valid=(texts[120:160], labels[120:160]))
    chosen = enc.warm["C"]
    record = enc.refit_rows(texts[:160], labels[:160])
    assert record == {"C": chosen, "rows": 160}
    expected = LogisticRegression(C=chosen, max_iter=1000).fit(enc.tfidf(texts[:160]), labels[:160])
    weight = enc.bag.weight.detach().numpy()
    assert np.allclose(weight[:, 0], expected.coef_[0], atol=1e-4)
    assert not weight[:, 1:].any()
    assert enc.warm["fitted_on"] == "training and validation rows (refit_inputs)"
    assert encoder(dim=4, warm_start=False).refit_rows is not None  # a method on every one
    cold = encoder(dim=4, warm_start=False)
    cold.fit(texts, target=labels)
    assert cold.refit_rows(texts, labels) is None  # no regression to refit
