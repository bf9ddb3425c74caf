"""The augmentation switches of the config reach the train transform: exchange probability and CAJ's grayscale."""

from types import SimpleNamespace

import torch

from wrim.data import ImageRecord, build_train_loader
from wrim.data.transforms import ChannelExchange
from wrim.engine.config import DataConfig, load_config


def _records() -> list[ImageRecord]:
    return [ImageRecord(f"/x/{pid}_{m}_{k}.jpg", pid, 1 + m, m) for pid in range(4) for m in (0, 1) for k in range(2)]


def test_defaults_are_cajs_code():
    data = DataConfig()
    assert (data.channel_aug, data.exchange_prob, data.channel_gray, data.random_erasing) == (True, 0.5, 2, 0.5)
    assert load_config("sysu").data.channel_gray == 2


def test_loader_passes_the_switches_to_the_transform():
    dataset = SimpleNamespace(train=_records())
    loader = build_train_loader(dataset, img_size=(32, 16), num_ids=2, num_instances=2, num_workers=0,
                                exchange_prob=1.0, channel_gray=3, random_erasing=0.0)  # fmt: skip
    transform = loader.dataset.transform
    assert transform.exchange_prob == 1.0 and transform.exchange.gray == 3 and transform.erasing is None


def _outcomes(gray: int, draws: int = 400) -> dict[str, int]:
    torch.manual_seed(0)
    img = torch.stack([torch.full((4, 2), 1.0), torch.full((4, 2), 2.0), torch.full((4, 2), 4.0)])  # R, G, B
    counts = {"R": 0, "G": 0, "B": 0, "gray": 0}
    exchange = ChannelExchange(gray)
    for _ in range(draws):
        value = float(exchange(img)[0, 0, 0])
        counts[{1.0: "R", 2.0: "G", 4.0: "B"}.get(value, "gray")] += 1
    return counts


def test_channel_gray_3_draws_grayscale_a_quarter_of_the_time():
    assert _outcomes(2)["gray"] == 0  # CAJ's code: the grayscale branch never runs
    counts = _outcomes(3)
    # 400 draws of a 1/4 chance: mean 100, std ~8.7; bounds at ~4.6 std
    assert all(60 <= n <= 140 for n in counts.values()), counts
