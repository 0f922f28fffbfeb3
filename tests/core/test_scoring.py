"""Parquet everywhere and streaming batch scoring: ``transfuse predict`` reads its rows a
chunk at a time and writes the scores as it goes, renamed into place at the end."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

import transfuse
from transfuse import DataError, Pipeline
from transfuse.cli import main
from transfuse.scoring import RowWriter, iter_chunks, predict_file


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


def _config(**overrides):
    inputs = {
        "a": {"encoder": "test.numeric", "column": "a"},
        "b": {"encoder": "test.frozen", "column": "b"},  # frozen: cached while training
    }
    return kit.config(inputs=inputs, train={"epochs": 1}, **overrides)


@pytest.fixture
def run(tmp_path, kit_manager):
    """A trained run (a trainable and a frozen input) and 50 new rows with an id."""
    pipeline = Pipeline.from_config(_config(data={"key": "id"}))
    rows = kit.frame(160).assign(id=range(160))
    pipeline.fit(rows).save(tmp_path / "run")
    new = kit.frame(50, seed=9).drop(columns="y").assign(id=range(1000, 1050))
    return tmp_path / "run", new


def _expected(run_dir, rows):
    return transfuse.load(run_dir).predict(rows)


def _parts(folder: Path, frame: pd.DataFrame, sizes: list[int]) -> Path:
    """``frame`` written as one parquet file per slice of ``sizes`` rows."""
    folder.mkdir()
    start = 0
    for i, size in enumerate(sizes):
        frame.iloc[start : start + size].to_parquet(folder / f"part-{i}.parquet", index=False)
        start += size
    (folder / "_SUCCESS").write_text("")  # what Spark leaves beside its parts: ignored
    return folder


def test_a_parquet_file_scored_in_chunks_equals_scoring_it_whole(run, tmp_path):
    run_dir, new = run
    new.to_parquet(tmp_path / "new.parquet", index=False)
    pipeline = transfuse.load(run_dir)
    seen: list[int] = []
    predict = pipeline.predict
    pipeline.predict = lambda df, *a, **k: seen.append(len(df)) or predict(df, *a, **k)
    summary = predict_file(
        pipeline, tmp_path / "new.parquet", tmp_path / "s.parquet", chunk_rows=16
    )
    assert seen == [16, 16, 16, 2]  # never more than a chunk of rows at a time
    assert summary.rows == 50 and summary.chunks == 4
    got = pd.read_parquet(tmp_path / "s.parquet")
    want = _expected(run_dir, new)
    assert list(got.columns) == ["id", "p_0", "p_1"]  # data.key kept by default
    assert got["id"].tolist() == new["id"].tolist()
    np.testing.assert_allclose(got[["p_0", "p_1"]].to_numpy(), want.to_numpy(), atol=1e-6)


def test_a_csv_is_scored_in_chunks_and_appended_to_a_csv(run, tmp_path):
    run_dir, new = run
    new.to_csv(tmp_path / "new.csv", index=False)
    code = main(
        ["predict", str(run_dir), "--data", str(tmp_path / "new.csv"), "--out",
         str(tmp_path / "s.csv"), "--chunk-rows", "7", "--keep", "id", "a"]
    )  # fmt: skip
    assert code == 0
    got = pd.read_csv(tmp_path / "s.csv")
    assert list(got.columns) == ["id", "a", "p_0", "p_1"] and len(got) == 50
    want = _expected(run_dir, new)
    np.testing.assert_allclose(got[["p_0", "p_1"]].to_numpy(), want.to_numpy(), atol=1e-6)


def test_a_folder_of_parquet_files_is_scored_into_a_folder_of_parts(run, tmp_path, capsys):
    run_dir, new = run
    folder = _parts(tmp_path / "new", new, [20, 30])
    out = str(tmp_path / "scores") + "/"
    code = main(
        ["predict", str(run_dir), "--data", str(folder), "--out", out, "--chunk-rows", "25"]
    )
    assert code == 0 and "wrote 50 rows" in capsys.readouterr().out
    parts = sorted(p.name for p in (tmp_path / "scores").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    got = pd.read_parquet(tmp_path / "scores")  # chunks never span two input files
    assert sorted(got["id"]) == new["id"].tolist()
    want = _expected(run_dir, new).set_index(new["id"])
    got = got.set_index("id").loc[want.index]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), atol=1e-6)


def test_streamed_frozen_inputs_do_not_fill_the_embedding_cache(run, tmp_path):
    run_dir, new = run
    new.to_parquet(tmp_path / "new.parquet", index=False)
    cache = tmp_path / "cache"
    before = sorted(p.name for p in cache.rglob("*"))
    predict_file(transfuse.load(run_dir), tmp_path / "new.parquet", tmp_path / "s.csv")
    assert sorted(p.name for p in cache.rglob("*")) == before
    assert kit.Frozen.calls  # the frozen encoder ran on the new rows instead


def test_a_failure_midway_leaves_no_output_and_keeps_the_old_one(run, tmp_path):
    run_dir, new = run
    new.to_parquet(tmp_path / "new.parquet", index=False)
    (tmp_path / "s.parquet").write_bytes(b"yesterday's scores")
    pipeline = transfuse.load(run_dir)
    predict, calls = pipeline.predict, []

    def flaky(df, *args, **kwargs):
        calls.append(len(df))
        if len(calls) == 3:
            raise RuntimeError("the machine fell over")
        return predict(df, *args, **kwargs)

    pipeline.predict = flaky
    with pytest.raises(RuntimeError, match="fell over"):
        predict_file(pipeline, tmp_path / "new.parquet", tmp_path / "s.parquet", chunk_rows=10)
    assert (tmp_path / "s.parquet").read_bytes() == b"yesterday's scores"
    assert not list(tmp_path.glob(".s.parquet.*"))  # the temporary file is gone


def test_a_parquet_folder_works_as_data_path_and_as_a_joined_table(tmp_path, kit_manager):
    rows = kit.frame(160).assign(id=range(160))
    _parts(tmp_path / "main", rows.drop(columns="b"), [80, 80])
    _parts(tmp_path / "side", rows[["id", "b"]], [100, 60])
    config = kit.config(
        data={
            "path": "main",
            "key": "id",
            "join": [{"name": "side", "path": "side", "key": "id"}],
        },
        inputs={
            "a": {"encoder": "test.numeric", "column": "a"},
            "b": {"encoder": "test.numeric", "column": "side_b"},
        },
        train={"epochs": 1},
    )
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "pipeline.yaml"), "--out", str(tmp_path / "run")]) == 0
    new = kit.frame(30, seed=5).assign(id=range(500, 530))
    new.drop(columns=["b", "y"]).to_parquet(tmp_path / "new.parquet", index=False)
    _parts(tmp_path / "new_side", new[["id", "b"]], [10, 20])
    code = main(
        ["predict", str(tmp_path / "run"), "--data", str(tmp_path / "new.parquet"),
         "--data", f"side={tmp_path / 'new_side'}", "--out", str(tmp_path / "s.parquet"),
         "--chunk-rows", "8"]
    )  # fmt: skip
    assert code == 0
    got = pd.read_parquet(tmp_path / "s.parquet")
    want = transfuse.load(tmp_path / "run").predict(new.rename(columns={"b": "side_b"}))
    assert got["id"].tolist() == new["id"].tolist()
    np.testing.assert_allclose(got[["p_0", "p_1"]].to_numpy(), want.to_numpy(), atol=1e-6)


def test_evaluate_and_train_read_a_folder_of_parquet_files(run, tmp_path, capsys):
    run_dir, _ = run
    labelled = kit.frame(40, seed=3).assign(id=range(40))
    folder = _parts(tmp_path / "labelled", labelled, [15, 25])
    assert main(["evaluate", str(run_dir), "--data", str(folder), "--json"]) == 0
    assert '"roc_auc"' in capsys.readouterr().out


def test_scoring_refuses_to_write_into_the_input_folder(run, tmp_path, capsys):
    run_dir, new = run
    folder = _parts(tmp_path / "new", new, [50])
    code = main(["predict", str(run_dir), "--data", str(folder), "--out", str(folder / "s.csv")])
    assert code == 2 and "refusing to overwrite the input" in capsys.readouterr().err
    assert not (folder / "s.csv").exists()


def test_an_output_folder_that_holds_files_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        RowWriter(tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_an_output_of_unknown_format_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot tell the format"):
        RowWriter(tmp_path / "scores.xlsx")


def test_a_column_changing_type_between_chunks_is_a_data_error(tmp_path):
    writer = RowWriter(tmp_path / "s.parquet")
    writer.write(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(DataError, match="'x' changes type"):
        writer.write(pd.DataFrame({"x": ["a", "b"]}))
    writer.abort()
    assert not list(tmp_path.iterdir())


def test_an_empty_file_and_an_unreadable_one_are_data_errors(run, tmp_path):
    run_dir, new = run
    new.iloc[:0].to_parquet(tmp_path / "none.parquet", index=False)
    pipeline = transfuse.load(run_dir)
    with pytest.raises(DataError, match="no rows"):
        predict_file(pipeline, tmp_path / "none.parquet", tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read it as parquet"):
        list(iter_chunks(tmp_path / "bad.parquet"))
