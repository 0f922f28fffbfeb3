"""No request body makes the server answer 5xx or stop: random JSON, random rows, random
file values, against real servers on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

COLUMNS = ["id", "income", "age", "purpose", "owns_home"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Rows with the run's columns (some left out, some extra), each value anything.
rows = st.dictionaries(st.sampled_from([*COLUMNS, "extra", ""]), values, min_size=0, max_size=7)
bodies = st.one_of(values, rows, st.lists(rows, max_size=5))

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def post(url: str, content: bytes) -> Any:
    import httpx

    return httpx.post(
        f"{url}/predict", content=content, headers={"content-type": "application/json"}, timeout=60
    )


@FUZZ
@given(body=bodies)
def test_no_body_gets_a_5xx(tabular_server, body):
    content = json.dumps(body, allow_nan=True).encode()  # NaN and Infinity literals too
    answer = post(tabular_server.url, content)
    assert answer.status_code < 500, (content[:300], answer.text[:500])
    assert answer.status_code in {200, 400, 413, 422}


@FUZZ
@given(content=st.binary(max_size=200))
def test_no_bytes_get_a_5xx(tabular_server, content):
    answer = post(tabular_server.url, content)
    assert 400 <= answer.status_code < 500, answer.text[:500]


@pytest.fixture(scope="module")
def image_url(image_run, serve_app, needs_loopback, tmp_path_factory):
    from transfuse_serve.app import ServeSettings

    run, folder = image_run
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFUSE_CACHE", str(tmp_path_factory.mktemp("fuzz-cache")))
        server = serve_app(ServeSettings.checked(run, root=folder))
        yield server.url
        server.close()


files = st.one_of(
    st.none(),
    st.text(max_size=40),  # paths, mostly nowhere
    st.sampled_from(["scan_0.png", "../scan_0.png", "/", ".", "..", "scan_0.png/", "~"]),
    st.builds(lambda b: {"base64": b}, st.text(max_size=40)),
    st.dictionaries(st.text(max_size=6), scalars, max_size=2),
)


@FUZZ
@given(scan=files, income=scalars)
def test_no_file_value_gets_a_5xx(image_url, scan, income):
    body = {"income": income, "purpose": "car", "scan": scan}
    answer = post(image_url, json.dumps(body, allow_nan=True).encode())
    assert answer.status_code < 500, (body, answer.text[:500])
