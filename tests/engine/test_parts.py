"""The trainer built from parts: a user's network (torchvision ResNet-18 + four MIIMs), a user loss, a given dataset;
the model / loss contract's one-line errors, a mismatched resume, and the registered-name paths of ``wrim train``.

The slow tests reuse the fault-injection driver (SIGKILL mid-run, then resume: bit-identical weights) and the DDP
comparison of tests/engine/test_distributed.py (2 gloo processes vs 1) for the user's network, loaded with --import.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.engine._tiny import tiny_overrides
from tests.engine._user_network import ResNetMIIM
from tests.engine.test_faults import DRIVER, _outcome, _same
from wrim.cli import main
from wrim.data import create_dataset
from wrim.engine import Trainer, load_config
from wrim.engine.build import build_dataset, build_loss, build_model
from wrim.engine.config import DataConfig, LossConfig
from wrim.losses import WRIMNetLoss

PLUGIN = str(Path(__file__).with_name("_plugin_parts.py"))  # a subprocess imports the file, as a user would
PLUGIN_MODULE = (
    "tests.engine._plugin_parts"  # in this process: imported by the `plugin` fixture (tests/engine/conftest.py)
)
TINY_DATA = {"num_ids": 16, "num_test_ids": 8, "images_per_camera": 2}


def _tiny_config(tmp_path, name, *extra):
    return load_config("synthetic", tiny_overrides(tmp_path, name, "epochs=1", "data.num_workers=0", *extra))


class _CountsVisible(ResNetMIIM):
    """The plugin's network with a ``num_visible`` parameter: records what the trainer passes."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.seen: list[int | None] = []

    def forward(self, images, modalities, num_visible=None):
        self.seen.append(num_visible)
        return super().forward(images, modalities)


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    """One tiny epoch of ResNet-18 + four MIIMs (not a WRIMNet) through Trainer(config, model=, dataset=)."""
    out = tmp_path_factory.mktemp("user")
    dataset = create_dataset("synthetic", None, **TINY_DATA)
    torch.manual_seed(0)
    net = _CountsVisible(dataset.num_classes)
    trainer = Trainer(_tiny_config(out, "user"), model=net, dataset=dataset)
    return trainer, trainer.fit(), dataset


@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_user_network_trains_evaluates_and_writes_its_checkpoints(user_run):
    trainer, result, _ = user_run
    run = result.run_dir
    assert set(result.metrics) == {"R1", "R5", "R10", "R20", "mAP", "mINP"}
    assert 0 <= result.metrics["mAP"] <= 100 and result.best_epoch == 1
    assert (run / "last.json").is_file() and (run / "best.json").is_file() and (run / "final_metrics.json").is_file()
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert {"loss", "id", "metric", "id_p5_global", "R1"} <= set(record)
    info = json.loads((run / "model.json").read_text())
    assert info["model"] is None and info["class"].endswith("_CountsVisible") and info["num_classes"] == 16
    kinds = [type(m).__name__ for m in trainer.net.trunk.miims.values()]
    assert kinds == ["ModalityMIIM", "ModalityMIIM", "MIIM", "MIIM"]  # the paper's placements, by hooks


@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_export_of_a_given_model_run_says_what_to_do(user_run, tmp_path, capsys):
    _, result, _ = user_run
    assert main(["export", str(result.run_dir), "--out", str(tmp_path / "shared")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trained a model object given to Trainer(model=...)" in err
    assert "_CountsVisible" in err and "@wrim.register_model" in err


@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_num_visible_is_offered_to_a_forward_that_takes_it(user_run):
    trainer, _, _ = user_run
    training_calls = [n for n in trainer.net.seen if n is not None]  # evaluation calls forward(images, modalities)
    assert len(training_calls) == trainer.iters_per_epoch
    assert set(training_calls) == {8}  # data.num_ids=4 x data.num_instances=2 visible images per batch
    # a forward without the parameter is not given it: _Embedding below would raise a TypeError


@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_resume_with_another_network_is_one_line_naming_the_first_difference(user_run):
    trainer, result, dataset = user_run
    config = load_config(result.run_dir / "config.yaml", ["epochs=2"])
    net = ResNetMIIM(dataset.num_classes)
    net.classifier = nn.Linear(512, dataset.num_classes + 1, bias=False)  # another classifier size
    first_difference = r"classifier\.weight: file \(16, 512\) vs model \(17, 512\); build the model the run"
    with pytest.raises(ValueError, match=r"^--resume: .*" + first_difference):
        Trainer(config, run_dir=result.run_dir, resume=True, model=net, dataset=dataset).fit()


class _Embedding(nn.Module):
    """ResNet-18 + MIIMs whose forward returns the (B, 512) embedding in both modes (for a metric-only loss)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ResNetMIIM(1).trunk  # (B, 3, H, W), (B,) -> (B, 512)
        self.neck = nn.BatchNorm1d(512)

    def forward(self, images, modalities):
        return F.normalize(self.neck(self.trunk(images, modalities)), dim=1)  # (B, 512)


class SupConOnEmbeddings(nn.Module):
    """pytorch-metric-learning's SupConLoss on the embeddings, in the trainer's calling convention."""

    def __init__(self) -> None:
        super().__init__()
        from pytorch_metric_learning.losses import SupConLoss

        self.supcon = SupConLoss(temperature=0.1)
        self.terms: dict[str, torch.Tensor] = {}

    def forward(self, outputs, labels, *, modalities):
        loss = self.supcon(outputs, labels)
        self.terms = {"supcon": loss.detach()}
        return loss


@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_user_loss_pml_supcon_is_called_and_its_terms_logged(tmp_path):
    pytest.importorskip("pytorch_metric_learning")
    dataset = create_dataset("synthetic", None, **TINY_DATA)
    torch.manual_seed(0)
    result = Trainer(_tiny_config(tmp_path, "supcon"), model=_Embedding(), loss=SupConOnEmbeddings(), dataset=dataset)
    result = result.fit()
    record = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record) >= {"supcon", "loss", "R1"} and "id" not in record
    assert record["loss"] == pytest.approx(record["supcon"]) and record["loss"] > 0


@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_default_loss_on_another_output_is_one_line_saying_what_to_pass(tmp_path):
    dataset = create_dataset("synthetic", None, **TINY_DATA)
    with pytest.raises(TypeError, match=r"WRIMNetOutput, got Tensor: pass your own loss") as err:
        Trainer(_tiny_config(tmp_path, "bad"), model=_Embedding(), dataset=dataset).fit()
    assert "\n" not in str(err.value)


def test_wrong_part_types_fail_at_construction():
    config = load_config("synthetic")
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        Trainer(config, model=lambda x: x)
    with pytest.raises(TypeError, match="must be a wrim.data.VIReIDDataset"):
        Trainer(config, dataset=[1, 2])


def test_build_module_gives_the_default_parts(tmp_path):
    """The one build module gives what the trainer used to build inline: the registered reader, a classifier of
    ``dataset.num_classes`` and the WRIMNetLoss of ``loss.*``."""
    dataset = build_dataset(DataConfig(dataset="synthetic", dataset_kwargs=TINY_DATA))
    assert type(dataset).__name__ == "SyntheticVIReID" and dataset.num_classes == 16
    config = load_config("synthetic")
    model = build_model(config.model, dataset.num_classes, (64, 32), weights=False).train()
    out = model(torch.randn(4, 3, 64, 32), torch.tensor([0, 0, 1, 1]))
    assert type(model).__name__ == "WRIMNet" and {tuple(v.shape) for v in out.logits.values()} == {(4, 16)}
    loss = build_loss(LossConfig(metric="triplet"))
    assert isinstance(loss, WRIMNetLoss) and type(loss.metric_loss.loss).__name__ == "TripletLoss"
    with pytest.raises(ValueError, match=r"^dataset 'sysu' needs its folder: pass data.root="):
        build_dataset(DataConfig(dataset="sysu"))


@pytest.mark.slow
@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_cli_trains_and_evaluates_a_plugin_model_on_a_plugin_dataset_in_subprocesses(tmp_path):
    cmd = [sys.executable, "-m", "wrim", "train", "--import", PLUGIN, "model.name=resnet18_miim"]
    cmd += tiny_overrides(tmp_path, "plugin", "epochs=1", "data.num_workers=0")
    cmd += ["data.dataset=tiny_synth", "data.dataset_kwargs={seed: 0}"]  # after the tiny run's synthetic kwargs
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "final (" in proc.stdout
    info = json.loads((tmp_path / "plugin" / "model.json").read_text())
    assert info == {"model": "resnet18_miim", "num_classes": 8, "img_size": [64, 32]}
    ev = [sys.executable, "-m", "wrim", "eval", "--import", PLUGIN, "--checkpoint", str(tmp_path / "plugin")]
    proc = subprocess.run([*ev, "--dataset", "tiny_synth", "--num-workers", "0"], capture_output=True, text=True)
    assert proc.returncode == 0 and "R1" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_sigkill_then_resume_of_a_user_network_is_bit_identical(tmp_path, capsys, plugin):
    """The fault driver kills ``wrim train`` (the plugin's ResNet-18 + MIIMs) at epoch 2's second step; the resume
    must give the uninterrupted run's weights, logs and metrics exactly (CPU)."""
    args = ["--import", PLUGIN_MODULE, "model.name=resnet18_miim", "data.dataset=tiny_synth"]
    args += tiny_overrides(tmp_path, "ref", "epochs=2", "eval.every=1", "data.num_workers=0", "data.dataset_kwargs={}")
    assert main(["train", *args]) == 0
    iters = int((tmp_path / "ref" / "train.log").read_text().split(" iters/epoch")[0].rsplit(" ", 1)[1])
    killed_args = [a.replace("run_name=ref", "run_name=run") for a in args]
    killed = subprocess.run(
        [sys.executable, str(DRIVER), "step", str(iters + 2), "SIGKILL", *killed_args], capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert main(["train", "--import", PLUGIN_MODULE, "--resume", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    assert _same(_outcome(tmp_path / "run"), _outcome(tmp_path / "ref"))


@pytest.mark.slow
@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_ddp_two_gloo_processes_give_a_user_network_the_one_process_step(tmp_path):
    """2 gloo processes x half a batch vs 1 process, float64, the harness of tests/test_distributed.py: every loss
    term, gradient and BatchNorm running statistic of the ResNet-18 + MIIMs agrees (synced statistics, the metric
    loss gathered across ranks), as for WRIM-Net (bound 1e-5 relative there too)."""
    import torch.multiprocessing as mp

    from tests import _ddp_equality as ddp
    from tests.engine import _user_ddp

    mp.spawn(_user_ddp.worker, args=(ddp.free_port(), str(tmp_path)), nprocs=ddp.WORLD, join=True)
    ranks = [torch.load(tmp_path / f"user-default-{r}.pt") for r in range(ddp.WORLD)]
    ref = _user_ddp.step(None)
    for part in ("terms", "grads", "buffers"):
        worst = 0.0
        for name, value in ref[part].items():
            for got in ranks:
                scale = float(value.abs().max()) or 1.0
                worst = max(worst, float((got[part][name] - value).abs().max()) / scale)
                assert float((got[part][name] - value).abs().max()) <= 1e-5 * scale, (part, name)
        print(f"{part}: max relative difference {worst:.1e}")
    assert len(ref["buffers"]) > 40  # every BatchNorm of the trunk, the MIIMs and the neck is compared


def _worst_gradient_difference(tmp_path, loss: str) -> float:
    """The largest relative difference of any parameter's gradient between 2 gloo processes (each rank) and one
    process, one float64 step of the user network with ``_user_ddp.LOSSES[loss]``."""
    import torch.multiprocessing as mp

    from tests import _ddp_equality as ddp
    from tests.engine import _user_ddp

    mp.spawn(_user_ddp.worker, args=(ddp.free_port(), str(tmp_path), loss), nprocs=ddp.WORLD, join=True)
    ref = _user_ddp.step(None, loss)["grads"]
    worst = 0.0
    for r in range(ddp.WORLD):
        got = torch.load(tmp_path / f"user-{loss}-{r}.pt")["grads"]
        for name, value in ref.items():
            worst = max(worst, float((got[name] - value).abs().max()) / (float(value.abs().max()) or 1.0))
    return worst


@pytest.mark.slow
@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_ddp_a_loss_of_your_own_that_gathers_as_documented_trains_like_one_process(tmp_path):
    """docs/training.md, Your loss under DDP: the loss gathers its CMKIC inputs with all_gather_with_grad, and 2
    processes give the one-process gradients (the 1e-5 bound of the default loss); without the gather they do not
    (measured difference printed: the metric term then sees half the batch)."""
    gathered = _worst_gradient_difference(tmp_path, "docs")
    local = _worst_gradient_difference(tmp_path, "docs_without_gather")
    print(f"max relative gradient difference: gathered {gathered:.1e}, not gathered {local:.1e}")
    assert gathered <= 1e-5
    assert local > 1e-2


def _records(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_ddp_two_gloo_processes_train_a_user_network_like_one(tmp_path):
    """``wrim train`` under torchrun (2 gloo processes x 4 identities) vs 1 process x 8, one epoch: every logged term
    within 0.05 % (the bound of tests/engine/test_distributed.py for epoch 1; measured 0.03 %). Later epochs drift as
    float32 summation order does: one process with 1 vs 2 threads already differs by 0.9 % at epoch 2 for this
    network (0.13 % for WRIM-Net), so they are not compared."""
    common = ["--import", PLUGIN_MODULE, "model.name=resnet18_miim", "epochs=1", "eval.every=1", "data.num_workers=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = [sys.executable, "-m", "wrim", "train", *common, *tiny_overrides(tmp_path, "single", "data.num_ids=8")]
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "wrim", "train"]
    ddp += [*common, *tiny_overrides(tmp_path, "ddp", "data.num_ids=4")]
    for cmd in (single, ddp):
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
    (a,), (b,) = _records(tmp_path / "single"), _records(tmp_path / "ddp")
    print({term: (a[term], b[term]) for term in ("id", "metric", "loss")})
    for term in ("id", "metric", "loss"):
        assert abs(a[term] - b[term]) <= 0.0005 * a[term], (term, a, b)


def _plugin_run(tmp_path, name, *extra, config="synthetic"):
    """``wrim train`` arguments of one tiny epoch of the plugin model, without the synthetic set's arguments."""
    size = ["data.img_size=[64,32]", "data.num_ids=4", "data.num_instances=2", "data.num_workers=0", "epochs=1"]
    run = ["eval.batch_size=64", "eval.ranklist=false", "progress=false", f"output_dir={tmp_path}", f"run_name={name}"]
    return ["train", "--config", config, "--import", PLUGIN_MODULE, "model.name=resnet18_miim", *size, *run, *extra]


@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_a_reader_without_default_trials_is_refused_before_the_first_epoch(tmp_path, capsys, plugin):
    """eval.final_trials left null (the dataset's default trials) for a reader that declares none: one line naming
    the key, before any training."""
    assert main(_plugin_run(tmp_path, "refused", "data.dataset=tiny_no_trials")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eval.final_trials is null" in err and "set eval.final_trials=[0]" in err
    assert not (tmp_path / "refused" / "last.json").exists()  # nothing trained
    assert "stopped: ValueError: eval.final_trials is null" in (tmp_path / "refused" / "train.log").read_text()


@pytest.mark.slow
@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_a_reader_without_default_trials_trains_with_the_key_the_message_names(tmp_path, capsys, plugin):
    assert main(_plugin_run(tmp_path, "fixed", "data.dataset=tiny_no_trials", "eval.final_trials=[0]")) == 0
    assert json.loads((tmp_path / "fixed" / "final_metrics.json").read_text())["R1"] >= 0


@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_a_plugin_written_to_the_docs_builds_under_the_paper_config(tmp_path, capsys, plugin):
    """``--config sysu`` sets model.pretrained_tag (for the built-in models) and backbone_lr_mult 0.1. The plugin's
    entrypoint (pretrained, num_classes, img_size, as documented) is built without the tag (the log says so);
    the multiplier, which no ``backbone.*`` parameter of this model would receive, is one line naming
    optim.backbone_prefixes, before any training."""
    assert main(_plugin_run(tmp_path, "sysu", "data.dataset=tiny_synth", config="sysu")) == 2
    err = capsys.readouterr().err
    assert "optim.backbone_lr_mult=0.1 applies to the parameters whose names start with" in err
    assert "optim.backbone_prefixes=[NAME.] (this model's: classifier., neck., trunk.)" in err
    log = (tmp_path / "sysu" / "train.log").read_text()
    assert "model.pretrained_tag=tv_in1k is not passed: resnet18_miim takes no pretrained_tag argument" in log
    assert not (tmp_path / "sysu" / "last.json").exists()


@pytest.mark.slow
@pytest.mark.repo  # the network of examples/miim_in_your_model.py
def test_naming_the_pretrained_parameters_trains_them_at_the_backbone_rate(tmp_path, capsys, plugin):
    """The same run with ``optim.backbone_prefixes=[trunk.net.]`` (the ResNet the MIIMs were hooked into): one epoch,
    the ResNet at 0.1 x lr, the MIIMs, neck and classifier at lr."""
    from wrim.engine.checkpoint import load_checkpoint

    prefixes = "optim.backbone_prefixes=[trunk.net.]"
    assert main(_plugin_run(tmp_path, "sysu", "data.dataset=tiny_synth", prefixes, config="sysu")) == 0
    state = load_checkpoint(tmp_path / "sysu", "last")
    groups = {g["lr_mult"]: len(g["params"]) for g in state["optimizer"]["param_groups"]}
    net = ResNetMIIM(8)
    rest = [*net.trunk.miims.parameters(), *net.neck.parameters(), *net.classifier.parameters()]
    assert groups == {0.1: len(list(net.trunk.net.parameters())), 1.0: len(rest)}


def test_evaluation_settings_are_checked_against_the_dataset(tmp_path):
    """Each trial list names trials, and each trial builds under eval.protocol; the message names the key."""
    from wrim.engine.build import check_evaluation
    from wrim.engine.config import EvalConfig

    dataset = create_dataset("synthetic", None, **TINY_DATA)
    check_evaluation(EvalConfig(trials=(0,), final_trials=None), dataset)  # the 10 default trials build
    with pytest.raises(ValueError, match=r"^eval.trials is empty: list the trials to evaluate, e.g. eval.trials=\[0\]"):
        check_evaluation(EvalConfig(trials=()), dataset)
    with pytest.raises(ValueError, match=r"^eval.trials: trial 0 with eval.protocol=\{'mode': 'outdoor'\}: mode must"):
        check_evaluation(EvalConfig(protocol={"mode": "outdoor"}), dataset)
    with pytest.raises(ValueError, match=r"^eval.trials: trial 0 with eval.protocol=\{'shot': 1\}: .*'shot'"):
        check_evaluation(EvalConfig(protocol={"shot": 1}), dataset)  # a reader's TypeError, named as the key
    from tests.data._list_tree import write_list_tree

    one_trial = create_dataset("list", write_list_tree(tmp_path))
    with pytest.raises(ValueError, match=r"^eval.final_trials: trial 3 with eval.protocol=\{\}: ListDataset has one"):
        check_evaluation(EvalConfig(final_trials=(0, 3)), one_trial)
