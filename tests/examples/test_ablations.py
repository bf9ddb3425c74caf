"""examples/ablations.py, the study runner: 2 variants x 2 seeds on the tiny --fast set, its statistics recomputed by
hand from the per-run result files, a rerun that trains nothing, and the benchmark config's dry run."""

import json
import math
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.metric_bounds import assert_metric_bounds
from wrim.engine import load_config
from wrim.layers import MIIM, ModalityMIIM

pytestmark = pytest.mark.repo  # runs the scripts in examples/

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "ablations.py"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """CMKIC vs batch-hard triplet, seeds 0 and 1, one epoch each on the --fast set (4 runs)."""
    out = tmp_path_factory.mktemp("study")
    main = runpy.run_path(str(SCRIPT))["main"]
    argv = ["--fast", "--experiments", "metric", "--seeds", "0,1", "--out", str(out)]
    return main, argv, out, main(argv)


def _hand_mean_std(values):
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def test_study_writes_table_csv_json_and_plot(study):
    _, _, out, summary = study
    for name in ("ablations.md", "ablations.json", "ablations.csv", "ablations.png"):
        assert (out / name).stat().st_size > 0, name
    results = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert results == ["triplet-seed0.json", "triplet-seed1.json", "wrim-seed0.json", "wrim-seed1.json"]
    for path in (out / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        assert_metric_bounds(record, num_test_ids=6)  # --fast: num_test_ids 6
        assert record["cpu_s"] > 0 and record["time_s"] > 0 and record["device"] == "cpu"
    table = (out / "ablations.md").read_text()
    assert (
        "## metric loss" in table and "| AICL / CMKIC (paper) | 2 |" in table and "| batch-hard triplet | 2 |" in table
    )
    assert json.loads((out / "ablations.json").read_text()) == json.loads(json.dumps(summary))
    assert len((out / "ablations.csv").read_text().splitlines()) == 1 + 4


def test_mean_std_and_paired_se_equal_a_hand_calculation(study):
    _, _, out, summary = study
    runs = {p.stem: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    reference, triplet = summary[0]["rows"]
    for metric in ("R1", "mAP", "mINP"):
        ref_values = [runs[f"wrim-seed{s}"][metric] for s in (0, 1)]
        values = [runs[f"triplet-seed{s}"][metric] for s in (0, 1)]
        mean, std = _hand_mean_std(values)
        assert triplet[f"{metric}_per_seed"] == values
        assert triplet[f"{metric}_mean"] == pytest.approx(mean) and triplet[f"{metric}_std"] == pytest.approx(std)
        d0, d1 = values[0] - ref_values[0], values[1] - ref_values[1]
        assert triplet[f"{metric}_diff"] == pytest.approx((d0 + d1) / 2)
        assert triplet[f"{metric}_diff_se"] == pytest.approx(abs(d0 - d1) / 2)  # sd of 2 values / sqrt(2)
        assert triplet[f"{metric}_diff_n"] == 2 and reference[f"{metric}_diff"] == 0.0
    row = f"| batch-hard triplet | 2 | {triplet['R1_mean']:.2f} ± {triplet['R1_std']:.2f} |"
    assert row in (out / "ablations.md").read_text()


def test_rerun_skips_finished_runs(study, capsys):
    main, argv, out, summary = study
    files = sorted((out / "runs").glob("*.json")) + sorted((out / "checkpoints").rglob("*"))
    before = {p: p.stat().st_mtime_ns for p in files}
    capsys.readouterr()
    assert main(argv) == summary
    printed = capsys.readouterr().out
    assert printed.count("skip ") == 4 and "run wrim" not in printed
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_other_settings_in_the_same_folder_are_refused(study):
    main, argv, out, _ = study
    with pytest.raises(ValueError, match="use another --out"):
        main([*argv, "--epochs", "2"])


def test_old_experiment_names_and_bad_seeds(study, capsys):
    main, _, out, _ = study
    titles = ["MIIM placement", "metric loss", "key instances K", "block-1 spatial compression"]
    summary = main(["--fast", "--table-only", "--out", str(out), "--experiments", *titles])
    assert [block["experiment"] for block in summary] == titles
    labels = {row["label"] for block in summary for row in block["rows"]}
    assert {
        "no MIIM (baseline)",
        "block 1 only",
        "AICL / CMKIC (paper)",
        "K = 2 (default)",
        "stride 4 (paper)",
    } <= labels
    for bad in (["--seeds", "0-x"], ["--experiments", "nosuch"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--table-only", "--out", str(out), *bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "error: --" in err[-1] and bad[0] in err[-1]  # argparse's usage, then one line naming the option


def test_a_run_key_means_one_setting_in_every_experiment():
    """Experiments share runs by key (the 2 x 3 loss x MIIM factorial reuses ``metric``'s runs): a key must name the
    same overrides wherever it appears, and each factorial cell differs from its baseline by the MIIMs only."""
    experiments = runpy.run_path(str(SCRIPT))["EXPERIMENTS"]
    settings = {}
    for experiment in experiments.values():
        for variant in experiment.variants:
            setting = (variant.overrides, variant.constant_gate)
            assert settings.setdefault(variant.key, setting) == setting, variant.key
    no_miim = set(settings["no_miim"][0])
    for loss in ("triplet", "wr_triplet"):
        baseline, wrim = experiments[f"wrim_vs_baseline_{loss}"].variants
        assert (baseline.key, wrim.key) == (f"no_miim_{loss}", loss)
        assert set(baseline.overrides) == no_miim | set(wrim.overrides)
    assert experiments["aicl"].variants[1].overrides == ("loss.p4_weight=0",)


def test_constant_gates_make_every_miim_x_plus_bn_x():
    """The ``constant_gate`` control, written out: ``X + (X/2 - mean) / sqrt(var + eps)`` with the batch's biased
    per-channel moments (per modality for a separate MIIM), no gradient into the gate's parameters, and the learned
    gate back after the block."""
    constant_gates = runpy.run_path(str(SCRIPT))["constant_gates"]
    learned = MIIM.gate
    torch.manual_seed(0)
    x = torch.randn(4, 16, 8, 5, dtype=torch.float64)  # (B, C, H, W); 5 is not a multiple of the stride
    modalities = torch.tensor([0, 1, 0, 1])
    shared = MIIM(16, reduction=4, stride=2, dtype=torch.float64)
    separate = ModalityMIIM(16, reduction=4, stride=2, dtype=torch.float64)

    def expected(rows):
        y = x[rows] * 0.5
        mean, var = y.mean(dim=(0, 2, 3), keepdim=True), y.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return x[rows] + (y - mean) / torch.sqrt(var + 1e-5)

    with constant_gates():
        leaf = x.clone().requires_grad_()  # the gradient flows to X only
        out_shared, out_separate = shared(leaf), separate(leaf, modalities)
        (out_shared.square().sum() + out_separate.square().sum()).backward()
    torch.testing.assert_close(out_shared, expected(slice(None)))
    for modality in (0, 1):
        rows = modalities == modality
        torch.testing.assert_close(out_separate[rows], expected(rows))
    assert all(p.grad is None for m in (shared, separate) for p in m.parameters())
    assert MIIM.gate is learned
    assert not torch.allclose(shared(x), out_shared)  # the learned gate is back


def test_benchmark_config_is_native_128x64_with_the_default_recipe():
    bench, default = load_config("synthetic_bench"), load_config("synthetic")
    kwargs = bench.data.dataset_kwargs
    assert list(bench.data.img_size) == kwargs["img_size"] and kwargs["img_size"][0] >= 128
    assert kwargs["img_size"][1] >= 64  # rendered at the training size: nothing is upsampled
    assert bench.model == default.model and bench.loss == default.loss and bench.optim == default.optim


def test_benchmark_config_dry_runs():
    cmd = [sys.executable, "-m", "wrim", "train", "--config", "synthetic_bench", "--dry-run"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "dry run of 'synthetic_bench': wrimnet_resnet18 for 160 identities at 128x64" in done.stdout
