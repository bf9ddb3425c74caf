"""The list CSV of someone's own data (``wrim.data.read_list_file`` / ``ListDataset`` / ``check_list``), hostile.

Properties: the reader returns rows whose paths stay inside the root on every system, or raises a one-line
ValueError naming ``file:line``; no other exception escapes; reading opens nothing outside the folder.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.hostile._props import assert_confined, assert_one_line_naming, refusal, watched
from wrim.data import ListDataset
from wrim.data.list_dataset import read_list_file

HEADER = "path,pid,camera,modality,split\n"
ROW = "a.jpg,1,1,0,train\n"

# known attacks on the path column: (path as written in the CSV, what the one-line message says)
PATH_ATTACKS = [
    ("/etc/passwd", "must be relative to the root"),
    ("../outside.jpg", "must be relative to the root"),
    ("a/../../outside.jpg", "must be relative to the root"),
    ("..\\..\\outside.jpg", "holds a backslash"),
    ("a\\b.jpg", "holds a backslash"),
    ("C:\\x.jpg", "holds a backslash"),
    ("C:/x.jpg", "must be relative to the root"),
    ("c:x.jpg", "must be relative to the root"),
    ("\\\\server\\share\\x.jpg", "holds a backslash"),
    ("a\x00b.jpg", "holds a control character|line contains NUL"),  # Python 3.10's csv module refuses NUL first
    ("a\x1bb.jpg", "holds a control character"),
    ('"a\nb.jpg"', "holds a control character"),  # a quoted newline: the record spans two lines
    ('"a\rb.jpg"', "holds a control character"),
    (".", "names the root itself"),
    ("./", "names the root itself"),
]


def _write(folder: Path, text: str | bytes) -> Path:
    path = folder / "list.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def _safe(path: str) -> bool:
    """Inside the root on POSIX and on Windows: relative, no drive, no ``..``, no backslash, no control character."""
    return (
        not PurePosixPath(path).is_absolute()
        and not PureWindowsPath(path).drive
        and ".." not in PurePosixPath(path).parts
        and "\\" not in path
        and all(ord(c) >= 32 and c != "\x7f" for c in path)
    )


@pytest.mark.parametrize(("path", "message"), PATH_ATTACKS, ids=[repr(p) for p, _ in PATH_ATTACKS])
def test_path_attacks_are_refused_naming_file_and_line(tmp_path, path, message) -> None:
    list_file = _write(tmp_path, HEADER + ROW + f"{path},1,1,0,train\n")
    with pytest.raises(ValueError, match=message) as info:
        read_list_file(list_file)
    assert_one_line_naming(info.value, list_file, 3)


def test_quoted_commas_and_a_bom_are_read_as_written(tmp_path) -> None:
    list_file = _write(tmp_path, "\ufeff" + HEADER + '"a,b.jpg",1,1,0,train\n"c "" d.jpg",2,1,1,train\n')
    assert [(r.line, r.path) for r in read_list_file(list_file)] == [(2, "a,b.jpg"), (3, 'c " d.jpg')]


def test_line_numbers_count_physical_lines(tmp_path) -> None:
    """A quoted field spanning lines ends its record on its last line; the next record's line number follows."""
    list_file = _write(tmp_path, HEADER + 'a.jpg,"x\ny",1,0,train\n' + "b.jpg,1,1,0,train\n/c.jpg,1,1,0,train\n")
    with pytest.raises(ValueError, match="list.csv:5: path '/c.jpg'"):
        read_list_file(list_file)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("path,pid,camera,modality,split,path\na.jpg,1,1,0,train,/etc/passwd\n", 1, "names column(s) ['path'] more"),
        ("path,pid,camera,modality\na.jpg,1,1,0\n", 1, "lacks column(s) ['split']"),
        ("", 1, "the file is empty"),
        (HEADER + "a" * 200_000 + ".jpg,1,1,0,train\n", 2, "not a CSV record (field larger than field limit"),
        ("p" * 200_000 + "\n", 1, "not a CSV record"),
        (HEADER + "a.jpg,1,1,0\n", 2, "expected 5 comma-separated fields, got 4"),
        (HEADER + ROW + ROW, 3, "'a.jpg' is already listed at line 2"),
    ],
    ids=["duplicate_column", "missing_column", "empty", "huge_field", "huge_header", "short_row", "repeated_row"],
)
def test_malformed_files_name_file_and_line(tmp_path, text, line, message) -> None:
    list_file = _write(tmp_path, text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as info:
        read_list_file(list_file)
    assert_one_line_naming(info.value, list_file, line)


def test_non_utf8_names_file_and_line(tmp_path) -> None:
    list_file = _write(tmp_path, HEADER.encode() + ROW.encode() + b"b\xff.jpg,1,1,0,train\n")
    with pytest.raises(ValueError, match=r"not UTF-8 \(invalid start byte at line 3, byte \d+\)") as info:
        read_list_file(list_file)
    assert_one_line_naming(info.value, list_file)


def test_huge_rows_are_read_in_one_pass(tmp_path) -> None:
    """A row of 100 000 extra fields, and 20 000 rows: read in one pass (extra fields ignored)."""
    wide = "w.jpg,1,1,0,train" + "," * 100_000 + "\n"
    list_file = _write(tmp_path, HEADER + wide + "".join(f"d/{i}.jpg,{i % 7},1,{i % 2},train\n" for i in range(20_000)))
    rows = read_list_file(list_file)
    assert len(rows) == 20_001 and rows[0].path == "w.jpg" and rows[-1].line == 20_002


def test_check_list_collects_each_malformed_row_as_one_line(tmp_path) -> None:
    """``wrim check-data``'s reader: every bad row is reported (one line each), the good rows are still checked."""
    text = HEADER + ROW + "".join(f"{path},1,1,0,train\n" for path, _ in PATH_ATTACKS) + "z" * 200_000 + ",1,1,0,x\n"
    list_file = _write(tmp_path, text)
    collected: list[str] = []
    rows = read_list_file(list_file, collect=collected)
    assert [r.path for r in rows] == ["a.jpg"]
    assert len(collected) == len(PATH_ATTACKS) + 1
    for message in collected:
        assert_one_line_naming(ValueError(message), list_file)


# ------------------------------------------------------------------------------------------------ by property

_ATTACK_TEXT = st.sampled_from(
    ["", " ", "..", "/", "\\", "C:", "c:\\", "\x00", "\n", "\r", '"', ",", "\ufeff", "~", "%2e%2e", "\u2028", "é"]
)
_CELL = st.one_of(st.text(max_size=12), _ATTACK_TEXT, st.sampled_from(["a.jpg", "1", "0", "train", "gallery"]))
_ROW = st.lists(_CELL, min_size=0, max_size=7)


def _csv_text(rows: list[list[str]], quoted: bool) -> str:
    """The rows as CSV: every field quoted, inner quotes doubled (valid CSV, any character, as ``csv.writer`` writes
    it with QUOTE_ALL; Python 3.10's writer refuses a NUL), or joined by commas as written (any quoting)."""
    if not quoted:
        return "".join(",".join(row) + "\n" for row in rows)
    return "".join(",".join('"' + cell.replace('"', '""') + '"' for cell in row) + "\n" for row in rows)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, max_size=8), quoted=st.booleans(), header=st.sampled_from([HEADER, "", "path,pid\n"]))
@example(rows=[["../../outside/secret.jpg", "1", "1", "0", "train"]], quoted=True, header=HEADER)
@example(rows=[["..\\outside\\secret.jpg", "1", "1", "0", "train"]], quoted=True, header=HEADER)
@example(rows=[["a\x00.jpg", "1", "1", "0", "train"]], quoted=True, header=HEADER)
def test_any_text_is_read_safely_or_refused_in_one_line(tmp_path_factory, rows, quoted, header) -> None:
    folder = tmp_path_factory.mktemp("list")
    list_file = _write(folder, header + _csv_text(rows, quoted))
    with watched() as events:
        result, _ = refusal(lambda: read_list_file(list_file), list_file)
    assert_confined(events, folder)
    for row in result or []:
        assert _safe(row.path), row
        assert os.path.normpath(folder / row.path).startswith(str(folder) + os.sep)


@given(data=st.binary(max_size=300))
@example(data=b"\xef\xbb\xbfpath,pid,camera,modality,split\r\na.jpg,1,1,0,train")
@example(data=b"path,pid,camera,modality,split\n\xff\xfe,1,1,0,train\n")
def test_any_bytes_are_read_safely_or_refused_in_one_line(tmp_path_factory, data) -> None:
    list_file = _write(tmp_path_factory.mktemp("list"), data)
    result, _ = refusal(lambda: read_list_file(list_file), list_file)
    assert all(_safe(row.path) for row in result or [])


def test_the_dataset_built_from_a_list_holds_only_paths_inside_its_root(tmp_path) -> None:
    splits = ("train", "query", "gallery")
    text = HEADER + "".join(f"{s}/{i}{m}.jpg,{i},{i % 2},{m},{s}\n" for i in range(4) for s in splits for m in (0, 1))
    list_file = _write(tmp_path, text)
    with watched() as events:
        dataset = ListDataset(tmp_path)
    assert_confined(events, tmp_path)
    records = dataset.train + dataset.query + dataset.gallery
    assert records and all(Path(r.path).parent.parent == tmp_path for r in records)
    _write(tmp_path, text + "../x.jpg,9,1,0,train\n")
    with pytest.raises(ValueError) as info:
        ListDataset(tmp_path)
    assert_one_line_naming(info.value, list_file, text.count("\n") + 1)
