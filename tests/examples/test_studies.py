"""The shipped study files (examples/studies/*.yaml) load: every variant's overrides build a config."""

import re
from pathlib import Path

import pytest

from wrim.study import load_study, plan

pytestmark = pytest.mark.repo  # reads examples/studies/

STUDIES = sorted((Path(__file__).resolve().parents[2] / "examples" / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_file_loads_and_plans(path: Path, tmp_path: Path) -> None:
    spec = load_study(path)  # checks every variant's overrides against the config
    jobs = plan(spec, tmp_path / "out", tmp_path / "runs")
    assert len(jobs) == sum(len(v.seeds) for v in spec.variants.values())
    assert {c.reference for c in spec.comparisons} <= set(spec.variants)


def test_the_synthetic_study_has_the_controls_and_five_seeds() -> None:
    spec = load_study(STUDIES[[p.stem for p in STUDIES].index("synthetic_bench")])
    for key in ("no_miim", "wrim", "wrim_constant_gate", "wrim_static_gate"):
        assert spec.variants[key].seeds == (0, 1, 2, 3, 4)
    assert "model.kwargs.miim_kwargs={gate: static}" in spec.variants["wrim_static_gate"].overrides


RESULTS = Path(__file__).resolve().parents[2] / "examples" / "results" / "synthetic_bench"


def test_the_committed_study_tables_are_what_compare_computes_from_its_records() -> None:
    """examples/results/synthetic_bench: compare.md is `wrim compare` of the committed records, which all come from
    one code version (so the tables in docs/reproducing.md, copied from it, are no hand edit)."""
    from wrim.study.compare import compare_study, load_runs, to_markdown

    records = sorted((RESULTS / "runs").glob("*.json"))
    assert records, "no committed records"
    runs = load_runs(records)  # refuses unreadable records
    spec = load_study(STUDIES[[p.stem for p in STUDIES].index("synthetic_bench")])
    tables = compare_study(spec, runs, ("R1", "mAP", "mINP"), False)  # False: mixed code would raise
    assert to_markdown(tables).strip() == (RESULTS / "compare.md").read_text().strip()
    assert (RESULTS / "forest.png").is_file()


def test_every_study_figure_in_the_docs_is_in_compare_md() -> None:
    """docs/reproducing.md's Results quote the study: each interval ``+2.10 [+1.72, +2.48]`` (or Δ ± std
    ``15.99 ± 0.39``) they give is one that compare.md, computed from the committed records, holds."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "reproducing.md").read_text(encoding="utf-8")
    results = text.split("### Results\n", 1)[1].split("\n## ", 1)[0]
    computed = (RESULTS / "compare.md").read_text(encoding="utf-8")
    number = r"[+-]?\d+\.\d\d"
    quoted = re.findall(rf"{number} \[{number}, {number}\]|\d+\.\d\d ± \d+\.\d\d", results)
    assert len(quoted) > 20  # the section's figures are found
    assert not [figure for figure in quoted if figure not in computed]
