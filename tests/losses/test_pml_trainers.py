"""wrim's cross-modality loss and miner inside pytorch-metric-learning's own trainers, through ModalityCarrier."""

import pytest
import torch

import wrim
from wrim.data import IdentityModalitySampler
from wrim.losses import CMKICLoss
from wrim.losses.pml import ModalityCarrier, pml_batch_sampler
from wrim.miners import CrossModalityKeyInstanceMiner

pml_trainers = pytest.importorskip("pytorch_metric_learning.trainers")


class _Items(torch.utils.data.Dataset):
    """Items shaped as wrim.data.ImageDataset's: (features, label, camera, modality); 4 ids x 2 modalities x 3."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.labels = torch.arange(4).repeat_interleave(6)
        self.modalities = torch.tensor([wrim.VISIBLE] * 3 + [wrim.INFRARED] * 3).repeat(4)
        self.features = torch.randn(24, 8, generator=gen) + self.labels[:, None].float()

    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, int]:
        return self.features[i], int(self.labels[i]), 1, int(self.modalities[i])


def _trainer(data: _Items, loss, miner, carrier=None, sampler=None, hook=None):
    trunk = torch.nn.Linear(8, 4)
    getter = (lambda batch: (batch[0], batch[1])) if carrier is None else carrier.data_and_label_getter
    trainer = pml_trainers.MetricLossOnly(
        models={"trunk": trunk, "embedder": torch.nn.Identity()},
        optimizers={"trunk_optimizer": torch.optim.SGD(trunk.parameters(), lr=0.1)},
        batch_size=8,
        loss_funcs={"metric_loss": loss},
        mining_funcs={"tuple_miner": miner},
        dataset=data,
        sampler=sampler,
        dataloader_num_workers=0,
        iterations_per_epoch=3,
        data_and_label_getter=getter,
        end_of_iteration_hook=hook,
    )
    return trainer, trunk


def test_metric_loss_only_trains_cmkic_with_the_carried_modalities():
    data, carrier = _Items(), ModalityCarrier()
    sampler = IdentityModalitySampler(data.labels, data.modalities, num_ids=2, num_instances=2)
    loss, miner = carrier.wrap(CMKICLoss(k=2)), carrier.wrap(CrossModalityKeyInstanceMiner(k=2))
    values = []
    hook = lambda trainer: values.append(float(trainer.losses["metric_loss"]))  # noqa: E731
    trainer, trunk = _trainer(data, loss, miner, carrier, pml_batch_sampler(sampler), hook)
    before = trunk.weight.detach().clone()
    trainer.train(num_epochs=1)
    assert loss.calls == 3 and loss.one_modality_batches == 0  # every batch paired the modalities
    assert len(values) == 3 and min(values) > 0  # a cross-modality positive in every batch: a non-zero loss
    assert not torch.equal(before, trunk.weight)  # the loss had gradients: the trunk moved


def test_without_the_carrier_pml_trainers_cannot_pass_modalities():
    data = _Items()
    trainer, _ = _trainer(data, CMKICLoss(), CrossModalityKeyInstanceMiner(k=2))
    with pytest.raises(ValueError, match="modalities"):
        trainer.train(num_epochs=1)


def test_one_modality_batches_warn_at_every_power_of_two():
    carrier = ModalityCarrier()
    loss = carrier.wrap(CMKICLoss())
    embeddings, labels = torch.randn(4, 8), torch.tensor([0, 0, 1, 1])
    carrier.set([wrim.VISIBLE] * 4)
    with pytest.warns(UserWarning, match="1 of 1 batches so far.*IdentityModalitySampler"):
        loss(embeddings, labels)
    with pytest.warns(UserWarning, match="2 of 2 batches"):
        loss(embeddings, labels)
    with pytest.warns(UserWarning, match="4 of 4 batches"):
        loss(embeddings, labels)  # the 3rd one is silent
        loss(embeddings, labels)
    assert loss.one_modality_batches == 4
    with pytest.raises(ValueError, match="wrim.VISIBLE"):
        carrier.set([0, 2])
    carrier.set([0, 1])
    with pytest.raises(ValueError, match="subset_batch_miner"):
        loss(embeddings, labels)


def test_multiple_losses_calls_the_wrapped_loss_with_modalities():
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    carrier, data = ModalityCarrier(), _Items()
    both = pml_losses.MultipleLosses([carrier.wrap(CMKICLoss()), pml_losses.NTXentLoss(0.1)], weights=[1.0, 0.0])
    carrier.set(data.modalities)
    value = both(data.features, data.labels)  # MultipleLosses passes (embeddings, labels, indices_tuple) only
    assert torch.allclose(value, CMKICLoss()(data.features, data.labels, modalities=data.modalities))
