"""``transfuse new``: the written plugins install, list their options, pass their own tests,
and work in a train and a transfer run."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transfuse.cli import main
from transfuse.plugins import PluginManager, reset_plugin_manager
from transfuse.scaffold import plan

KINDS = ["encoder", "fusion", "strategy", "source"]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One scaffolded plugin of each kind, written by the command."""
    root = tmp_path_factory.mktemp("new")
    out = {}
    for kind in KINDS:
        assert main(["new", kind, f"probe-{kind}", "--out", str(root / kind)]) == 0
        out[kind] = root / kind
    return out


def _install_like_pip(site: Path, folder: Path) -> None:
    """What `pip install -e` leaves for the plugin manager: the package importable and a
    dist-info with the entry point of the written pyproject."""
    import tomllib

    project = tomllib.loads((folder / "pyproject.toml").read_text("utf-8"))["project"]
    (site / f"{project['name']}.pth").write_text(str(folder) + "\n", "utf-8")
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n", "utf-8"
    )
    eps = project["entry-points"]["transfuse"]
    lines = "".join(f"{k} = {v}\n" for k, v in eps.items())
    (info / "entry_points.txt").write_text(f"[transfuse]\n{lines}", "utf-8")


def test_the_names_follow_the_kind():
    s = plan("encoder", "char-ngram")
    assert (s.component, s.distribution, s.package) == (
        "text.char-ngram",
        "transfuse-char-ngram",
        "transfuse_char_ngram",
    )
    assert plan("strategy", "warm-up").component == "strategy.warm-up"
    assert plan("encoder", "image.edges").modality == "image"


def test_it_writes_an_installable_distribution(written):
    folder = written["encoder"]
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert names == [
        "README.md",
        "pyproject.toml",
        "tests/test_transfuse_probe_encoder.py",
        "transfuse_probe_encoder/__init__.py",
        "transfuse_probe_encoder/encoder.py",
        "transfuse_probe_encoder/py.typed",
    ]
    pyproject = (folder / "pyproject.toml").read_text("utf-8")
    entry = '[project.entry-points.transfuse]\nprobe_encoder = "transfuse_probe_encoder"'
    assert entry in pyproject
    assert "transfuse[testing]" in pyproject


def test_an_existing_folder_is_refused_and_left_alone(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x", "utf-8")
    assert main(["new", "encoder", "x", "--out", str(tmp_path / "mine")]) == 2
    assert "the folder exists already" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["keep.txt"]


def test_a_bad_name_is_refused(tmp_path, capsys):
    assert main(["new", "encoder", "Bad Name", "--out", str(tmp_path / "x")]) == 2
    assert "is not a plugin name" in capsys.readouterr().err


def test_the_installed_plugins_list_their_options_without_torch(written, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    for folder in written.values():
        _install_like_pip(site, folder)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import sys, runpy; sys.argv = ['transfuse', 'plugins', 'text.probe-encoder'];"
        "import transfuse.cli as c; rc = c.main(sys.argv[1:]);"
        "print('torch' in sys.modules); sys.exit(rc)"
    )
    # site-packages .pth files are read only from site dirs: add the folder as one.
    code = f"import site; site.addsitedir({str(site)!r}); " + code
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "encoder text.probe-encoder [text]" in out
    assert "transfuse-probe-encoder 0.1.0" in out
    assert "buckets" in out and ">= 8" in out and "Hash buckets" in out
    assert out.strip().splitlines()[-1] == "False"  # listing options imports no torch
    check = subprocess.run(
        [sys.executable, "-c", f"import site; site.addsitedir({str(site)!r}); "
         "import sys, transfuse.cli as c; sys.exit(c.main(['plugins', '--check']))"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr  # four clean plugins: nothing to report


def test_the_generated_tests_pass(written):
    path = os.pathsep.join(str(f) for f in written.values())
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *[str(f / "tests") for f in written.values()]],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": path}, cwd=next(iter(written.values())),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "10 passed" in done.stdout


@pytest.fixture
def registered(written, monkeypatch):
    """The written plugins on sys.path and registered with the process-wide manager, the
    installed ones too (the transfer needs strategy.layer-map)."""
    for folder in written.values():
        monkeypatch.syspath_prepend(str(folder))
    manager = PluginManager()
    for kind in KINDS:
        module = importlib.import_module(f"transfuse_probe_{kind}")
        manager.register(
            module, name=f"probe_{kind}", distribution=f"transfuse-probe-{kind}", version="0.1.0"
        )
    reset_plugin_manager(manager)
    yield manager
    reset_plugin_manager(None)


@pytest.mark.slow
def test_the_encoder_and_strategy_work_in_a_train_and_a_transfer_run(registered, tmp_path, capsys):
    pytest.importorskip("torch")
    if "strategy.layer-map" not in registered.components("strategy"):
        pytest.skip("transfuse-strategies is not installed")
    rows = tmp_path / "rows.csv"
    lines = ["notes,y"] + [
        f"{'late again' if i % 3 == 0 else 'steady pay'} {i},{int(i % 3 == 0)}" for i in range(40)
    ]
    rows.write_text("\n".join(lines) + "\n", "utf-8")
    source = tmp_path / "source.yaml"
    source.write_text(
        "name: src\ntask: {type: binary, target: y}\n"
        f"data: {{source: probe-source, options: {{path: {rows}, target: y}}}}\n"
        "inputs: {notes: {encoder: text.probe-encoder, column: notes, options: {dim: 8}}}\n"
        "fusion: {method: fusion.probe-fusion, options: {dim: 8}}\n"
        "train: {epochs: 1, batch_size: 16, device: cpu, progress: false}\n",
        "utf-8",
    )
    assert main(["config", "validate", str(source)]) == 0
    assert main(["train", str(source), "--out", str(tmp_path / "src")]) == 0
    target = tmp_path / "target.yaml"
    target.write_text(
        source.read_text("utf-8").replace("name: src", "name: tgt")
        + "transfer: {from: src, strategies: [{probe-strategy: {warmup_epochs: 1}}]}\n",
        "utf-8",
    )
    capsys.readouterr()
    assert main(["train", str(target), "--out", str(tmp_path / "tgt")]) == 0
    out = capsys.readouterr().out
    assert "strategy.probe-strategy: no weights loaded" in out  # it copies none: all kept
    report = json.loads((tmp_path / "tgt" / "transfer.json").read_text("utf-8"))
    fates = {r["strategy"]: r["counts"] for r in report}
    assert set(fates["strategy.probe-strategy"]) == {"kept"}
    assert fates["strategy.layer-map"].get("copied", 0) > 0
