"""examples/miim_knockout.py: each test-time intervention does what its equation says, checked on the gates and the
block outputs it produces (not by rerunning the script's own code); the network is restored exactly afterwards;
the re-estimated BatchNorm normalises the changed branch; end to end on a one-epoch tiny run."""

import json
import runpy
from pathlib import Path

import pytest
import torch

import wrim
from wrim.cli import main
from wrim.visualize import capture_gates

pytestmark = pytest.mark.repo  # runs the scripts in examples/

ROOT = Path(__file__).resolve().parents[2]
if not (ROOT / "examples").is_dir():  # the script is read at import, before the marker can skip
    pytest.skip("needs the repository's files; absent here: examples", allow_module_level=True)
KNOCKOUT = runpy.run_path(str(ROOT / "examples" / "miim_knockout.py"))


@pytest.fixture(scope="module")
def net_and_batch():
    torch.manual_seed(0)
    net = wrim.create_model("wrimnet_resnet18", num_classes=4, img_size=(64, 32)).eval()
    images = torch.randn(8, 3, 64, 32)  # (B, 3, H, W)
    modalities = torch.tensor([0, 1] * 4)  # alternating, as the script's calibration images
    return net, images, modalities


def _gates_and_io(net, images, modalities, name):
    """Every gate (``capture_gates``) and the (input, output) of placement ``name`` in one eval forward."""
    seen = {}
    handle = net.miims[name].register_forward_hook(lambda _m, inputs, out: seen.update(x=inputs[0], out=out))
    try:
        with capture_gates(net) as records, torch.no_grad():
            embedding = net(images, modalities)
    finally:
        handle.remove()
    return records[name], seen["x"], seen["out"], embedding


def _intervened(net, images, modalities, name, label):
    _, channel_means = KNOCKOUT["gate_statistics"](net, images, modalities)
    change = KNOCKOUT["INTERVENTIONS"][label]
    with KNOCKOUT["intervene"](net.miims[name], change, channel_means[name], (images, modalities), net):
        return _gates_and_io(net, images, modalities, name), channel_means[name]


@pytest.mark.parametrize("name", ["stage1", "stage3"])  # a separate (visible / infrared copies) and a shared MIIM
def test_gate_changes_follow_their_equations(net_and_batch, name):
    net, images, modalities = net_and_batch
    original, _, _, _ = _gates_and_io(net, images, modalities, name)
    (constant, _, _, _), means = _intervened(net, images, modalities, name, "constant gate")
    for copy, gate in constant.items():  # (B, C, h, w): c_copy per channel, the same for every image and region
        own = modalities == (1 if copy == "infrared" else 0) if copy != "shared" else modalities >= 0
        torch.testing.assert_close(means[copy], original[copy][own].mean(dim=(0, 2, 3)))  # the copy's own images
        torch.testing.assert_close(gate, means[copy][None, :, None, None].expand_as(gate), atol=1e-6, rtol=1e-5)
    (channel, _, _, _), _ = _intervened(net, images, modalities, name, "channel gate only")
    for copy, gate in channel.items():  # each image's spatial mean of its gate, per channel
        expected = original[copy].mean(dim=(2, 3), keepdim=True).expand_as(gate)
        torch.testing.assert_close(gate, expected, atol=1e-6, rtol=1e-5)
    (spatial, _, _, _), _ = _intervened(net, images, modalities, name, "spatial gate only")
    for copy, gate in spatial.items():  # each region's mean over channels
        expected = original[copy].mean(dim=1, keepdim=True).expand_as(gate)
        torch.testing.assert_close(gate, expected, atol=1e-6, rtol=1e-5)
    ((_, x, out, _), _) = _intervened(net, images, modalities, name, "removed")
    assert torch.equal(out, x)


def test_changed_branch_is_renormalised_on_the_calibration_images(net_and_batch):
    """One calibration batch: its statistics become the running ones, so on those images the branch is
    ``(y - mean(y)) / sqrt(var(y) + eps)`` with ``y = X ⊙ c`` (unbiased var, per channel; per modality and with that
    copy's ``c`` for a separate MIIM), written out here from ``X`` and ``c``."""
    net, images, modalities = net_and_batch
    for name in ("stage1", "stage3"):
        (_, x, out, _), means = _intervened(net, images, modalities, name, "constant gate")
        copies = {"visible": modalities == 0, "infrared": modalities == 1} if name == "stage1" else {"shared": None}
        for copy, rows in copies.items():
            rows = slice(None) if rows is None else rows
            y = x[rows].double() * means[copy].double()[None, :, None, None]  # (b, C, H, W)
            mean, var = y.mean(dim=(0, 2, 3), keepdim=True), y.var(dim=(0, 2, 3), unbiased=True, keepdim=True)
            expected = (y - mean) / torch.sqrt(var + 1e-5)
            torch.testing.assert_close((out - x)[rows].double(), expected, atol=2e-5, rtol=1e-4)


def test_network_is_restored_exactly_after_every_intervention(net_and_batch):
    net, images, modalities = net_and_batch
    state = {k: v.clone() for k, v in net.state_dict().items()}
    *_, before = _gates_and_io(net, images, modalities, "stage1")
    for label in KNOCKOUT["INTERVENTIONS"]:
        for name in net.miims:
            _intervened(net, images, modalities, name, label)
    *_, after = _gates_and_io(net, images, modalities, "stage1")
    assert torch.equal(before, after)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert all(m.momentum == 0.1 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not net.training and not any(m.training for m in net.modules())


def test_knockout_of_a_tiny_run_end_to_end(tmp_path):
    runs = tmp_path / "runs"
    tiny = ["data.dataset_kwargs={num_ids: 12, num_test_ids: 6, images_per_camera: 2}", "data.num_ids=4",
            "data.num_instances=2", "data.num_workers=0", "epochs=1", "eval.final_trials=[0]"]  # fmt: skip
    assert main(["train", *tiny, "progress=false", f"output_dir={runs}", "run_name=wrim-seed0"]) == 0
    out = tmp_path / "knockout"
    results = KNOCKOUT["main"]([str(runs / "wrim-seed0"), "--out", str(out), "--calibration", "8"])
    final = json.loads((runs / "wrim-seed0" / "final_metrics.json").read_text())
    intact = results[0]["intact"]
    assert intact["mAP"] == pytest.approx(final["mAP"], abs=1e-6)
    assert set(results[0]["changed"]) == {"stage1", "stage2", "stage3", "stage4"}
    for changes in results[0]["changed"].values():
        assert set(changes) == set(KNOCKOUT["INTERVENTIONS"])
        assert all(0 <= c["mAP"] <= 100 for c in changes.values())
    gates = results[0]["gates"]["stage3"]
    assert 0 < gates["mean"] < 1 and gates["branch / input"] > 0
    table = (out / "knockout.md").read_text()
    assert "| stage4 |" in table and "Δ mAP, constant gate" in table
    assert json.loads((out / "knockout.json").read_text()) == results
    with pytest.raises(SystemExit) as exit_info:  # a baseline has nothing to knock out: one line, exit 2
        KNOCKOUT["main"]([str(runs / "no_miim-seed0"), "--out", str(out)])
    assert exit_info.value.code == 2
