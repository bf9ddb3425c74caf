"""``wrim compare`` on records with known metrics: grouping, the paired Δ against a hand calculation, refusals."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from wrim.cli import main
from wrim.study.compare import compare_runs, load_runs, to_csv, to_markdown, write_outputs

stats = pytest.importorskip("scipy.stats")

SEGMENT = {
    "wrim": {"version": "0.2.0", "commit": "a" * 40, "dirty": False},
    "torch": "2.14.1",
    "timm": "1.0.31",
    "device": {"type": "cpu"},
    "precision": "fp32",
    "dataset": {"sha256": "d" * 64},
}
CARD = {"dataset": "synthetic", "protocol": {"mode": "all"}, "trials": list(range(10)), "flip": False,
        "checkpoint": {"tag": "best", "epoch": 5, "selected_on": "R1 of trials [0]"}}  # fmt: skip
BASELINE = {0: 16.22, 1: 15.95, 2: 15.55}
WRIM = {0: 18.61, 1: 17.41, 2: 18.45}


def _record(variant: str, seed: int, mAP: float, **changes) -> dict:
    config = {"seed": seed, "epochs": 5, "output_dir": f"/runs/{variant}", "model": {"kwargs": {}}}
    if variant == "no_miim":
        config["model"]["kwargs"] = {"separate_stages": [], "shared_stages": []}
    segment = copy.deepcopy(SEGMENT)
    for path, value in changes.items():
        node = segment
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return {
        "run": f"{variant}-seed{seed}", "seed": seed, "config": config, "card": copy.deepcopy(CARD),
        "metrics": {"R1": mAP - 1.0, "mAP": mAP, "mINP": mAP / 2}, "provenance": {"segments": [segment]},
    }  # fmt: skip


def _write(folder: Path, records: list[dict]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for record in records:
        path = folder / f"{record['run']}.json"
        path.write_text(json.dumps(record))
        paths.append(str(path))
    return paths


def _study(tmp_path: Path, **changes) -> list[str]:
    records = [_record("no_miim", s, v) for s, v in BASELINE.items()]
    records += [_record("wrim", s, v, **(changes if s == 2 else {})) for s, v in WRIM.items()]
    return _write(tmp_path / "runs", records)


def test_paired_difference_equals_a_hand_calculation(tmp_path: Path) -> None:
    table = compare_runs(load_runs(_study(tmp_path)), metrics=("mAP",))
    labels = [row.label for row in table.rows]  # grouped by the config keys they set differently
    assert labels == ["model.kwargs.separate_stages=[], model.kwargs.shared_stages=[]",
                      "model.kwargs.separate_stages=unset, model.kwargs.shared_stages=unset"]  # fmt: skip
    reference, row = table.rows
    seeds = sorted(BASELINE)
    expected = stats.ttest_rel([WRIM[s] for s in seeds], [BASELINE[s] for s in seeds])
    interval = expected.confidence_interval(0.95)
    d = row.differences["mAP"]
    assert d.n == 3 and d.mean == pytest.approx(sum(WRIM[s] - BASELINE[s] for s in seeds) / 3)
    assert d.p == pytest.approx(expected.pvalue, rel=1e-9)
    assert (d.low, d.high) == (pytest.approx(interval.low, abs=1e-9), pytest.approx(interval.high, abs=1e-9))
    assert d.verdict() == "indication, higher" and reference.differences["mAP"] is None


def test_mixed_commits_are_refused_and_marked_when_allowed(tmp_path: Path, capsys) -> None:
    paths = _study(tmp_path, wrim__commit="b" * 40)
    assert main(["compare", *paths]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wrim.commit differs" in err and "--allow-mixed" in err
    assert main(["compare", *paths, "--allow-mixed", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "MIXED: wrim.commit differs" in out
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"compare.md", "compare.csv", "compare.json"}


@pytest.mark.parametrize(
    "changes, named",
    [({"torch": "2.3.1"}, "torch differs"), ({"precision": "bfloat16 autocast"}, "precision differs"),
     ({"device__type": "cuda"}, "device.type differs"), ({"wrim__dirty": True}, "wrim.dirty differs"),
     ({"dataset__sha256": "e" * 64}, "dataset's fingerprint differs")],
)  # fmt: skip
def test_each_provenance_difference_is_named(tmp_path: Path, changes: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        compare_runs(load_runs(_study(tmp_path, **changes)))


def test_differing_protocol_cards_are_refused(tmp_path: Path) -> None:
    paths = _study(tmp_path)
    record = json.loads(Path(paths[-1]).read_text())
    record["card"]["flip"] = True
    Path(paths[-1]).write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"protocol cards differ \(flip\)"):
        compare_runs(load_runs(paths))


def test_a_run_without_provenance_is_named(tmp_path: Path) -> None:
    paths = _study(tmp_path)
    record = json.loads(Path(paths[0]).read_text())
    record["provenance"] = None
    Path(paths[0]).write_text(json.dumps(record))
    with pytest.raises(ValueError, match="no-miim|no_miim-seed0 has no provenance"):
        compare_runs(load_runs(paths))


def test_one_setting_and_no_common_seed_are_said(tmp_path: Path, capsys) -> None:
    one = _write(tmp_path / "one", [_record("wrim", 0, 18.0), _record("wrim", 1, 17.0)])
    assert main(["compare", *one]) == 2
    assert "at least two settings" in capsys.readouterr().err
    apart = _write(tmp_path / "apart", [_record("no_miim", 0, 16.0), _record("wrim", 1, 17.0)])
    assert main(["compare", *apart]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shares no seed" in err


def test_outputs_and_forest_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    table = compare_runs(load_runs(_study(tmp_path)))
    written = write_outputs([table], tmp_path / "out")
    assert [p.name for p in written] == ["compare.md", "compare.csv", "compare.json", "forest.png"]
    assert (tmp_path / "out" / "forest.png").stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "compare.json").read_text())[0]["rows"][1]["differences"]["mAP"]["n"] == 3


def _with_history(record: dict, maps: dict[int, float | None]) -> dict:
    """``record`` with a training history: mAP (and R1, mINP) at the epochs given, ``None`` for an epoch trained but
    not evaluated."""
    record["history"] = [
        {"epoch": e, "loss": 20.0} if v is None else {"epoch": e, "loss": 20.0, "R1": v - 1, "mAP": v, "mINP": v / 2}
        for e, v in maps.items()
    ]
    return record


def test_each_epoch_evaluated_by_every_pair_is_compared_like_the_final_metrics(tmp_path: Path) -> None:
    # epochs 2 and 4 are evaluated in every run; epoch 3 only in the WRIM runs, epoch 1 in none
    baseline = {0: {2: 10.0, 4: 13.0}, 1: {2: 11.5, 4: 12.0}, 2: {2: 9.0, 4: 14.5}}
    wrim = {0: {2: 10.5, 3: 12.0, 4: 14.0}, 1: {2: 11.0, 3: 12.5, 4: 14.5}, 2: {2: 10.0, 3: 11.0, 4: 15.0}}
    records = [_with_history(_record("no_miim", s, BASELINE[s]), {1: None, **baseline[s]}) for s in BASELINE]
    records += [_with_history(_record("wrim", s, WRIM[s]), {1: None, **wrim[s]}) for s in WRIM]
    table = compare_runs(load_runs(_write(tmp_path / "runs", records)), metrics=("mAP",))
    reference, row = table.rows
    assert sorted(row.epoch_differences) == [2, 4] and sorted(reference.epoch_values) == [2, 4]
    for epoch in (2, 4):
        expected = stats.ttest_rel([wrim[s][epoch] for s in range(3)], [baseline[s][epoch] for s in range(3)])
        d = row.epoch_differences[epoch]["mAP"]
        assert d.n == 3 and d.mean == pytest.approx(sum(wrim[s][epoch] - baseline[s][epoch] for s in range(3)) / 3)
        assert d.p == pytest.approx(expected.pvalue, rel=1e-9)
        assert row.epoch_values[epoch]["mAP"] == [wrim[s][epoch] for s in range(3)]
        assert reference.epoch_differences[epoch]["mAP"] is None
    markdown = to_markdown([table])
    assert "at each epoch evaluated during training" in markdown
    epochs = [line.split(" | ")[0] for line in markdown.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert epochs == ["| 2", "| 2", "| 4", "| 4"]
    lines = to_csv([table]).splitlines()
    assert lines[0].startswith("table,setting,epoch,metric,n,values,delta")
    assert sum(",4,mAP," in line for line in lines) == 2
    assert "epoch_differences" in json.dumps(table.as_dict())


def test_runs_evaluated_at_one_epoch_get_no_per_epoch_table(tmp_path: Path) -> None:
    records = [_with_history(_record("no_miim", s, BASELINE[s]), {5: BASELINE[s]}) for s in BASELINE]
    records += [_with_history(_record("wrim", s, WRIM[s]), {4: None, 5: WRIM[s]}) for s in WRIM]
    table = compare_runs(load_runs(_write(tmp_path / "runs", records)))
    assert all(not row.epoch_values for row in table.rows)
    assert "at each epoch" not in to_markdown([table])
    assert ",final," in to_csv([table]) and ",5," not in to_csv([table])
