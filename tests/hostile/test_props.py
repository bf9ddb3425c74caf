"""The property checks of the hostile-input tests fail when they should: a check that cannot fail proves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.hostile._props import (
    BAIT_MODULE,
    _peak_is_measurable,
    assert_confined,
    assert_one_line_naming,
    peak_growth_mb,
    watched,
)


def test_a_read_outside_the_folder_is_seen(tmp_path) -> None:
    inside, outside = tmp_path / "inside", tmp_path / "outside.txt"
    inside.mkdir()
    outside.write_text("secret")
    (inside / "ok.txt").write_text("fine")
    with watched() as events:
        (inside / "ok.txt").read_text()
    assert_confined(events, inside)
    with watched() as events:
        outside.read_text()
    with pytest.raises(AssertionError, match="read outside"):
        assert_confined(events, inside)
    with watched() as events:
        (inside / ".." / "outside.txt").read_text()  # lexically inside, resolved outside
    with pytest.raises(AssertionError, match="read outside"):
        assert_confined(events, inside)


def test_a_write_a_process_and_the_bait_import_are_seen(tmp_path, bait) -> None:
    with watched() as events:
        (tmp_path / "x.txt").write_text("written")
    with pytest.raises(AssertionError, match="wrote outside"):
        assert_confined(events, tmp_path / "elsewhere")
    with watched() as events:
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    with pytest.raises(AssertionError, match="a process was started"):
        assert_confined(events, tmp_path)
    with watched() as events:
        __import__(BAIT_MODULE)
    with pytest.raises(AssertionError, match="the module a file names was imported"):
        assert_confined(events, tmp_path)
    assert bait.exists()


def test_the_one_line_check_refuses_other_types_lines_and_names(tmp_path) -> None:
    path = tmp_path / "f.csv"
    assert_one_line_naming(ValueError(f"{path}:3: bad"), path, 3)
    for err in (KeyError(f"{path}"), ValueError(f"{path}: a\nb"), ValueError("no name"), ValueError(f"{path}:4: x")):
        with pytest.raises(AssertionError):
            assert_one_line_naming(err, path, 3)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc/self/clear_refs")
def test_peak_memory_growth_is_measured() -> None:
    if not _peak_is_measurable():
        pytest.skip("this system shows no growth of VmHWM or VmRSS for a 64 MB block written page by page")
    with peak_growth_mb() as small:
        np.ones(1000)
    with peak_growth_mb() as large:
        block = np.ones(25_000_000)  # 200 MB
        time.sleep(0.05)
        del block
    assert small[0] is not None and small[0] < 32 and large[0] is not None and large[0] > 150
