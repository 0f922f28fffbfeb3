"""Three tables about one entity: a main table, a one-to-one table and a one-to-many table.

Entity-safe splits, joins by key (vectorised), and a run that predicts for new entities
from three new tables, in Python and on the command line; an entity without events is a
missing modality; a table the run needs and is not given, or a repeated one-to-one key,
is a one-line error naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

for plugin in ("transfuse_tabular", "transfuse_sequence"):
    pytest.importorskip(plugin)

import transfuse  # noqa: E402
from transfuse import DataError  # noqa: E402
from transfuse.cli import main  # noqa: E402
from transfuse.config import parse_config  # noqa: E402
from transfuse.data import split_frame  # noqa: E402
from transfuse.tables import event_lists, join_tables  # noqa: E402

JOIN = [
    {"name": "bureau", "key": "cid"},
    {
        "name": "tx",
        "key": "cid",
        "relation": "one-to-many",
        "columns": ["amount", "late"],
        "order_by": "day",
        "max_events": 8,
    },
]


def config(**data: object) -> dict:
    return {
        "name": "three-tables",
        "task": {"type": "binary", "target": "y"},
        "data": {"key": "cid", "join": JOIN, **data},
        "inputs": {
            "applicant": {"encoder": "tabular.mlp", "columns": ["income", "bureau_score"]},
            "history": {
                "encoder": "sequence.gru",
                "column": "tx",
                "options": {"hidden": 16, "dim": 16, "max_events": 8},
            },
        },
        "fusion": {"method": "fusion.concat"},
        "train": {"epochs": 4, "batch_size": 64, "lr": 3e-3, "progress": False, "device": "cpu"},
    }


def make_tables(n: int, seed: int, start: int = 0) -> dict[str, pd.DataFrame]:
    """``n`` entities: ``y`` is 1 when income plus the entity's late payments is high; a
    tenth have no bureau row, a sixth no events."""
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + n)
    counts = rng.integers(1, 7, n) * (rng.random(n) > 1 / 6)
    who = np.repeat(ids, counts)
    late = (rng.random(len(who)) < 0.3).astype(np.int64)
    tx = pd.DataFrame(
        {
            "cid": who,
            "day": rng.integers(1, 30, len(who)),
            "amount": rng.lognormal(3, 1, len(who)).round(2),
            "late": late,
        }
    )
    lates = np.bincount(who - start, weights=late, minlength=n)
    income = rng.normal(size=n)
    main_table = pd.DataFrame(
        {"cid": ids, "income": income, "y": (income + lates > 1.0).astype(np.int64)}
    )
    has = rng.random(n) > 0.1
    bureau = pd.DataFrame({"cid": ids[has], "score": rng.normal(600, 50, has.sum()).round()})
    return {"main": main_table, "bureau": bureau, "tx": tx}


# -- splits ---------------------------------------------------------------------------


def test_splits_hold_out_whole_entities_when_a_key_repeats():
    rng = np.random.default_rng(0)
    keys = np.repeat(np.arange(120), rng.integers(1, 5, 120))
    frame = pd.DataFrame({"cid": keys, "x": rng.normal(size=len(keys))})
    frame["y"] = rng.integers(0, 2, len(keys))
    cfg = parse_config({**config(), "data": {"key": "cid"}})
    splits = split_frame(frame, cfg)
    sets = [set(part["cid"]) for part in (splits.train, splits.validation, splits.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set.union(*sets) == set(keys)
    assert sum(splits.sizes()[s] for s in ("train", "validation", "test")) == len(frame)
    assert 0.15 < len(sets[2]) / 120 < 0.25  # test_size counts entities


def test_a_label_budget_keeps_whole_entities_too():
    rng = np.random.default_rng(1)
    keys = np.repeat(np.arange(200), 3)
    frame = pd.DataFrame({"cid": keys, "x": rng.normal(size=len(keys))})
    frame["y"] = rng.integers(0, 2, len(keys))
    cfg = parse_config({**config(), "data": {"key": "cid", "label_budget": 150}})
    splits = split_frame(frame, cfg)
    kept = pd.concat([splits.train, splits.validation])
    assert kept.groupby("cid").size().eq(3).all()  # no entity cut in part
    assert abs(len(kept) - 150) <= 3


# -- joins ----------------------------------------------------------------------------


def test_one_to_many_events_are_the_latest_by_order_with_ties_in_table_order():
    other = pd.DataFrame(
        {"cid": [2, 1, 1, 1, 2], "day": [5, 3, 1, 3, 4], "amount": [1.0, 2.0, 3.0, 4.0, 5.0]}
    )
    join = (
        parse_config(config())
        .data.join[1]
        .model_copy(update={"columns": ["amount"], "max_events": 2})
    )
    lists = event_lists(other, join, pd.Series([1, 2, 3]))
    assert lists == [[{"amount": 2.0}, {"amount": 4.0}], [{"amount": 5.0}, {"amount": 1.0}], None]


def test_a_repeated_key_in_a_one_to_one_table_is_an_error_naming_the_key():
    t = make_tables(20, seed=0)
    bureau = pd.concat([t["bureau"], t["bureau"][t["bureau"].cid == 7]])
    data = parse_config(config()).data
    with pytest.raises(DataError, match=r"'bureau' is one-to-one but key 'cid' repeats: 7"):
        join_tables(t["main"], data, {"bureau": bureau, "tx": t["tx"]})


def test_keys_read_as_text_still_match_numeric_keys():
    t = make_tables(20, seed=0)
    bureau = t["bureau"].assign(cid=t["bureau"].cid.astype(str))
    joined = join_tables(t["main"], parse_config(config()).data, {"bureau": bureau, "tx": t["tx"]})
    expected = t["main"].merge(t["bureau"], on="cid", how="left")["score"]
    assert np.allclose(joined["bureau_score"], expected, equal_nan=True)


def test_a_table_the_pipeline_does_not_join_is_an_error_listing_those_it_does():
    t = make_tables(10, seed=0)
    with pytest.raises(DataError, match="'bills' is not one this pipeline joins.*bureau, tx"):
        join_tables(t["main"], parse_config(config()).data, {**t, "bills": t["tx"]})


# -- a run that predicts for new entities ---------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("three")
    t = make_tables(400, seed=1)
    for name, frame in t.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    cfg = config(path=str(folder / "main.csv"))
    cfg["data"]["join"] = [
        {**JOIN[0], "path": str(folder / "bureau.csv")},
        {**JOIN[1], "path": str(folder / "tx.csv")},
    ]
    pipeline = transfuse.Pipeline.from_config(cfg).fit()
    return pipeline.save(folder / "run")


def new_tables(folder: Path) -> dict[str, Path]:
    t = make_tables(60, seed=2, start=10_000)
    t["tx"] = t["tx"][t["tx"].cid != 10_003]  # a new entity without events
    paths = {}
    for name, frame in t.items():
        paths[name] = folder / f"new-{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


@pytest.mark.slow
def test_a_reloaded_run_scores_new_entities_from_three_new_tables(run, tmp_path):
    paths = new_tables(tmp_path)
    pipeline = transfuse.load(run)
    frames = {k: pd.read_csv(v) for k, v in paths.items()}
    main_rows = frames.pop("main")
    scores = pipeline.predict(main_rows, frames)
    assert len(scores) == 60 and scores.notna().all().all()
    metrics = pipeline.evaluate(main_rows, frames)
    assert metrics["roc_auc"] > 0.75  # the events matter: income alone cannot tell y
    no_events = main_rows.index[main_rows.cid == 10_003][0]
    joined = pipeline.join(main_rows, frames)
    assert joined.loc[no_events, "tx"] is None  # a missing modality, still scored
    assert 0.0 <= scores.loc[no_events].iloc[-1] <= 1.0


@pytest.mark.slow
def test_predict_on_the_command_line_takes_each_table_by_name(run, tmp_path):
    paths = new_tables(tmp_path)
    out = tmp_path / "scores.csv"
    code = main(
        [
            "predict",
            str(run),
            "--data",
            str(paths["main"]),
            "--data",
            f"bureau={paths['bureau']}",
            "--data",
            f"tx={paths['tx']}",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    written = pd.read_csv(out)
    assert written["cid"].tolist() == list(range(10_000, 10_060))
    python = transfuse.load(run).predict(
        pd.read_csv(paths["main"]),
        {"bureau": pd.read_csv(paths["bureau"]), "tx": pd.read_csv(paths["tx"])},
    )
    assert np.allclose(written.iloc[:, -1], python.iloc[:, -1], atol=1e-6)


@pytest.mark.slow
def test_a_missing_table_on_the_command_line_is_one_line_naming_it(run, tmp_path, capsys):
    paths = new_tables(tmp_path)
    code = main(
        [
            "predict",
            str(run),
            "--data",
            str(paths["main"]),
            "--data",
            f"bureau={paths['bureau']}",
            "--out",
            str(tmp_path / "s.csv"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "table 'tx' (one-to-many on 'cid') is missing" in err
    assert "--data tx=PATH" in err


@pytest.mark.slow
def test_an_events_table_with_no_rows_scores_every_entity_as_without_events(run, tmp_path):
    paths = new_tables(tmp_path)
    pipeline = transfuse.load(run)
    main_rows, bureau = pd.read_csv(paths["main"]), pd.read_csv(paths["bureau"])
    empty = pd.read_csv(paths["tx"]).iloc[:0]
    scores = pipeline.predict(main_rows, {"bureau": bureau, "tx": empty})
    assert len(scores) == 60 and scores.notna().all().all()


@pytest.mark.slow
def test_evaluate_on_the_command_line_takes_the_same_tables(run, tmp_path, capsys):
    paths = new_tables(tmp_path)
    code = main(
        [
            "evaluate",
            str(run),
            "--data",
            str(paths["main"]),
            "--data",
            f"bureau={paths['bureau']}",
            "--data",
            f"tx={paths['tx']}",
            "--json",
        ]
    )
    assert code == 0
    assert "roc_auc" in capsys.readouterr().out


@pytest.mark.slow
def test_train_on_the_command_line_reads_each_joined_table_from_data(tmp_path, capsys):
    import yaml

    for name, frame in make_tables(300, seed=3).items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    cfg = config(path=str(tmp_path / "elsewhere.csv"))
    cfg["data"]["join"] = [  # files that do not exist: --data replaces every one
        {**JOIN[0], "path": str(tmp_path / "old-bureau.csv")},
        {**JOIN[1], "path": str(tmp_path / "old-tx.csv")},
    ]
    cfg["train"]["epochs"] = 1
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    data = [f"--data={tmp_path / 'main.csv'}", f"--data=bureau={tmp_path / 'bureau.csv'}"]
    args = ["train", str(tmp_path / "p.yaml"), *data, f"--data=tx={tmp_path / 'tx.csv'}"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    joined = transfuse.load(tmp_path / "run").config.data.join
    assert [j.path for j in joined] == [str(tmp_path / "bureau.csv"), str(tmp_path / "tx.csv")]
    capsys.readouterr()
    code = main([*args[:-1], "--data=bank=x.csv", "--out", str(tmp_path / "run2")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "joins no table named 'bank'" in err and "bureau, tx" in err
    assert not (tmp_path / "run2").exists()
