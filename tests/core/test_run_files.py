"""Untrusted files: pickles are refused unread, runs are checked against the installed
plugins when loaded, and an earlier run is never overwritten without ``--overwrite``."""

from __future__ import annotations

import json
import pickle
import sys
import warnings
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

import transfuse
from transfuse import CheckpointError, Pipeline
from transfuse.cli import main
from transfuse.commands import checkpoint_dir


class Trap:
    """Unpickling this creates ``path``: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


@pytest.fixture
def project(tmp_path, kit_manager):
    kit.frame(120).to_csv(tmp_path / "rows.csv", index=False)
    config = kit.config(data={"path": "rows.csv"}, train={"epochs": 2})
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


@pytest.fixture
def run(project):
    assert main(["train", str(project / "pipeline.yaml"), "--out", str(project / "run")]) == 0
    return project / "run"


def _predict(run_path: Path, project: Path) -> int:
    data, out = str(project / "rows.csv"), str(project / "scores.csv")
    return main(["predict", str(run_path), "--data", data, "--out", out])


@pytest.mark.parametrize("name", ["model.pt", "run.pkl", "weights.bin", "model.safetensors"])
def test_a_pickle_handed_in_as_a_run_is_refused_unread(name, project, capsys):
    trap = project / "unpickled"
    (project / name).write_bytes(pickle.dumps({"weights": Trap(trap)}))
    assert _predict(project / name, project) == 2
    assert "never loads pickles" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="never loads pickles"):
        transfuse.load(project / name)
    assert not trap.exists()


def test_a_run_holding_pickled_weights_instead_of_safetensors_is_refused(run, project, capsys):
    trap = project / "unpickled"
    (run / "model.safetensors").unlink()
    (run / "model.pt").write_bytes(pickle.dumps(Trap(trap)))
    assert _predict(run, project) == 2
    assert "holds pickled weights (model.pt)" in capsys.readouterr().err
    assert not trap.exists()


def test_a_pickle_renamed_to_safetensors_inside_a_run_is_not_unpickled(run, project, capsys):
    trap = project / "unpickled"
    (run / "model.safetensors").write_bytes(pickle.dumps(Trap(trap)))
    assert _predict(run, project) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    assert not trap.exists()


def test_a_pickle_in_the_checkpoint_is_refused_on_resume(project, capsys):
    trap = project / "unpickled"
    folder = checkpoint_dir(project / "run") / "checkpoint"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"epoch": 0, "has_best": False}))
    for name in ("model.safetensors", "optimizer.safetensors"):
        (folder / name).write_bytes(pickle.dumps(Trap(trap)))
    code = main(
        ["train", str(project / "pipeline.yaml"), "--out", str(project / "run"), "--resume"]
    )
    assert code == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    assert not trap.exists() and not (project / "run").exists()


def test_a_pickle_given_as_a_transfer_source_is_refused(project, capsys):
    trap = project / "unpickled"
    (project / "source.pt").write_bytes(pickle.dumps(Trap(trap)))
    out = str(project / "target")
    code = main(["transfer", str(project / "pipeline.yaml"), "--from", str(project / "source.pt"),
                 "--out", out, "--strategy", "layer-map"])  # fmt: skip
    assert code == 2
    assert "never loads pickles" in capsys.readouterr().err
    assert not trap.exists()


def test_an_earlier_run_is_kept_unless_overwrite_is_given(run, project, capsys):
    weights = (run / "model.safetensors").read_bytes()
    (run / "notes.md").write_text("mine")
    args = ["train", str(project / "pipeline.yaml"), "--out", str(run)]
    assert main(args) == 2
    assert "a run already exists here" in capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() == weights
    assert (run / "notes.md").read_text() == "mine"
    assert main([*args, "--overwrite"]) == 0
    assert not (run / "notes.md").exists()


def test_a_run_whose_encoder_is_not_installed_names_it_and_its_origin(run, transfuse_manager):
    transfuse_manager.unregister("runtime-kit")
    with pytest.raises(CheckpointError) as info:
        transfuse.load(run)
    message = str(info.value)
    assert "inputs.a.encoder" in message and "test.numeric" in message
    assert "runtime-kit 0.0.test" in message and "install runtime-kit==0.0.test" in message


def test_a_run_written_with_other_plugin_versions_loads_with_a_warning(run, register_plugin):
    env = json.loads((run / "environment.json").read_text())
    env["components"]["inputs.a.encoder"]["version"] = "0.0.old"
    (run / "environment.json").write_text(json.dumps(env))
    with pytest.warns(UserWarning, match=r"test\.numeric: runtime-kit 0\.0\.old -> runtime-kit"):
        transfuse.load(run)


def test_weights_that_do_not_fit_name_the_changed_versions(run):
    env = json.loads((run / "environment.json").read_text())
    env["components"]["fusion.method"]["version"] = "9.9"
    (run / "environment.json").write_text(json.dumps(env))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["fusion"]["options"]["dim"] = 5
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match=r"of another shape.*versions changed since"):
            transfuse.load(run)


def test_every_file_of_a_run_is_written_through_a_temporary_folder(kit_manager, tmp_path):
    pipeline = Pipeline.from_config(kit.config(train={"epochs": 1}), manager=kit_manager)
    pipeline.fit(kit.frame(80))
    seen = []

    def spy(out: Path) -> None:
        seen.append(out)
        original(out)

    original = pipeline._write
    pipeline._write = spy  # type: ignore[method-assign]
    path = pipeline.save(tmp_path / "run")
    assert seen[0].parent == path.parent and seen[0].name.startswith(".run.tmp-")
    assert not seen[0].exists() and (path / "log.json").is_file()
