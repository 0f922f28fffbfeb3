"""File-valued inputs: base64, or a path under the server's root, and nothing outside it."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transfuse.cli import main
from transfuse_serve.app import ServeSettings
from transfuse_serve.rows import FileReader


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root with a file, a folder, a link inside it and links that leave it; a secret
    beside it."""
    folder = tmp_path / "root"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.png").write_bytes(b"inside")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    os.symlink(folder / "sub" / "a.png", folder / "link-in.png")
    os.symlink(tmp_path / "secret.txt", folder / "link-out.png")
    os.symlink(tmp_path, folder / "sub" / "up")
    return folder


@pytest.mark.parametrize("value", ["sub/a.png", "./sub/../sub/a.png", "link-in.png"])
def test_a_path_under_the_root_is_read(root, value):
    assert FileReader(root, 1000).read(value) == b"inside"


def test_an_absolute_path_under_the_root_is_read(root):
    assert FileReader(root, 1000).read(str(root / "sub" / "a.png")) == b"inside"


@pytest.mark.parametrize(
    "value",
    [
        "../secret.txt",
        "sub/../../secret.txt",
        "link-out.png",  # a symlink whose target leaves the root
        "sub/up/secret.txt",  # a symlinked folder that leaves the root
        "/etc/passwd",
        "../does-not-exist",  # refused the same way: no hint whether it exists
    ],
)
def test_nothing_outside_the_root_is_read(root, value):
    with pytest.raises(ValueError, match="outside the server's root"):
        FileReader(root, 1000).read(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sub", "not a regular file"),
        ("sub/none.png", "no readable file"),
        ("sub/a\x00.png", "NUL"),
    ],
)
def test_what_is_no_file_is_refused(root, value, message):
    with pytest.raises(ValueError, match=message):
        FileReader(root, 1000).read(value)


def test_a_file_over_the_limit_is_refused(root):
    with pytest.raises(ValueError, match="larger than 3 bytes"):
        FileReader(root, 3).read("sub/a.png")


def test_without_a_root_no_path_is_read(root):
    with pytest.raises(ValueError, match="started without --root"):
        FileReader(None, 1000).read(str(root / "sub" / "a.png"))


# -- over HTTP, with a run that reads images ------------------------------------------


@pytest.fixture(scope="module")
def image_server(image_run, serve_app, needs_loopback, tmp_path_factory):
    """The image run served with its image folder as the root (embedding cache in tmp)."""
    run, folder = image_run
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFUSE_CACHE", str(tmp_path_factory.mktemp("serve-cache")))
        server = serve_app(ServeSettings.checked(run, root=folder))
        yield server
        server.close()


@pytest.fixture
def image_client(image_server):
    import httpx

    with httpx.Client(base_url=image_server.url, timeout=60) as http:
        yield http


def b64(path: Path) -> dict[str, str]:
    return {"base64": base64.b64encode(path.read_bytes()).decode()}


def test_images_by_path_and_by_base64_score_as_the_predict_command(
    image_client, image_run, applicants, tmp_path
):
    run, folder = image_run
    rows = applicants(6, seed=1)[["income", "purpose"]]
    files = [folder / f"scan_{i}.png" for i in range(len(rows))]
    rows["scan"] = [str(f) for f in files]
    data, out = tmp_path / "rows.csv", tmp_path / "scores.csv"
    rows.to_csv(data, index=False)
    assert main(["predict", str(run), "--data", str(data), "--out", str(out)]) == 0
    expected = pd.read_csv(out)[["p_0", "p_1"]].to_numpy()
    records = json.loads(rows.to_json(orient="records"))  # NaN as null
    by_path = [{**r, "scan": f.name} for r, f in zip(records, files)]
    by_bytes = [{**r, "scan": b64(f)} for r, f in zip(records, files)]
    for body in (by_path, by_bytes):
        answer = image_client.post("/predict", json=body)
        assert answer.status_code == 200, answer.text
        got = pd.DataFrame(answer.json()["predictions"])[["p_0", "p_1"]].to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_a_missing_image_is_a_missing_modality(image_client):
    answer = image_client.post("/predict", json={"income": 1.0, "purpose": "car", "scan": None})
    assert answer.status_code == 200, answer.text
    assert 0.0 <= answer.json()["prediction"]["p_1"] <= 1.0


@pytest.mark.parametrize(
    "scan",
    ["../secret.txt", "/etc/passwd", "scan_0.png/../../secret.txt", "link-out.png"],
    ids=["dot-dot", "absolute", "through-a-file", "symlink"],
)
def test_a_path_outside_the_root_gets_422_naming_the_field(image_client, image_run, scan):
    _, folder = image_run
    secret = folder.parent / "secret.txt"
    secret.write_text("not for clients")
    link = folder / "link-out.png"
    if not link.is_symlink():
        os.symlink(secret, link)
    rows = [{"income": 1.0, "purpose": "car", "scan": "scan_1.png"}] * 2
    rows = [rows[0], {**rows[1], "scan": scan}]
    answer = image_client.post("/predict", json=rows)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "rows", 1, "scan"]
    assert "not for clients" not in answer.text
    assert image_client.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("scan", "status"),
    [
        ({"base64": "***not base64***"}, 422),
        ({"base64": "***"}, 422),  # no base64 character at all: not empty bytes
        ({"base64": base64.b64encode(b"no image at all").decode()}, 422),
        ({"path": "scan_0.png"}, 422),
        (12, 422),
    ],
    ids=["bad-base64", "no-base64", "not-an-image", "unknown-key", "number"],
)
def test_a_bad_file_value_gets_422(image_client, scan, status):
    answer = image_client.post("/predict", json={"income": 1.0, "purpose": "car", "scan": scan})
    assert answer.status_code == status, answer.text
    assert "scan" in answer.text
    assert image_client.get("/health").status_code == 200


def test_metadata_says_the_image_is_a_file(image_client):
    meta = image_client.get("/metadata").json()
    (column,) = meta["inputs"]["scan"]["columns"]
    assert column["column"] == "scan" and column["type"].startswith("file")
    assert meta["limits"]["files_by_path"] is True
    assert meta["components"]["inputs.scan.encoder"]["distribution"] == "transfuse-image"
    schemas = image_client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["FileData"]["properties"]["base64"]["contentEncoding"] == "base64"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (base64.b64encode(b"a file's bytes").decode(), b"a file's bytes"),
        (base64.encodebytes(b"x" * 200).decode(), b"x" * 200),  # MIME: 76-column lines
        ("", b""),
    ],
    ids=["one-line", "line-wrapped", "empty"],
)
def test_base64_text_decodes_in_one_line_or_wrapped(text, expected):
    from transfuse_serve.rows import _b64

    assert _b64(text) == expected


@pytest.mark.parametrize(
    "text", ["QUJ", "QU*D", "Q\u00e9JD"], ids=["padding", "alphabet", "non-ascii"]
)
def test_bad_base64_text_is_refused(text):
    from transfuse_serve.rows import _b64

    with pytest.raises(ValueError, match="not valid base64"):
        _b64(text)
