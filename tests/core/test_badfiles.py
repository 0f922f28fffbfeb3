"""transfuse.badfiles: the shared on_bad_file policy of the encoders that read files."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from transfuse import DataError
from transfuse.badfiles import FIRST_PATHS, BadFiles


def read(value: object) -> object:
    """A reader that accepts files holding b'ok' and names the row otherwise."""
    if not Path(str(value)).is_file() or Path(str(value)).read_bytes() != b"ok":
        raise DataError(f"cannot read {value}", where="column 'c', row 7", fix="give a good file")
    return value


def test_under_error_a_bad_file_raises_with_the_way_out_added(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        BadFiles("error", "image").probe(str(tmp_path / "absent.png"), read)
    assert str(err.value) == (
        f"column 'c', row 7: cannot read {tmp_path / 'absent.png'}; "
        "give a good file (or set on_bad_file: skip)"
    )


def test_under_skip_each_file_is_read_once_and_warned_once(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(b"ok")
    bad.write_bytes(b"broken")
    calls: list[object] = []
    files = BadFiles("skip", "audio")

    def counting(value: object) -> object:
        calls.append(value)
        return read(value)

    with pytest.warns(UserWarning, match="so the row has no audio") as caught:
        assert [files.probe(str(p), counting) for p in (good, bad, good, bad)] == [
            True, False, True, False,
        ]  # fmt: skip
    assert calls == [str(good), str(bad)] and len(caught) == 1
    assert files.is_bad(str(bad)) and not files.is_bad(str(good))


def test_a_fixed_file_is_judged_again(tmp_path: Path) -> None:
    path = tmp_path / "later"
    files = BadFiles("skip", "image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not files.probe(str(path), read)
    path.write_bytes(b"ok")
    assert files.probe(str(path), read)


def test_the_report_counts_rows_and_names_the_first_paths(tmp_path: Path) -> None:
    files = BadFiles("skip", "image")
    paths = [str(tmp_path / f"absent-{i}") for i in range(FIRST_PATHS + 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            files.probe(path, read)
    assert files.report([*paths, paths[0], None, 3]) == {
        "skipped_files": len(paths) + 1,
        "first": paths[:FIRST_PATHS],
    }
    assert BadFiles("skip", "image").report(paths) == {}  # only files already judged
