"""Building a model with hub weights opens no connection of wrim's own: the hub client's metadata lookup is bounded
while timm fetches the weights, and a timeout the user set is kept."""

import socket

import pytest
from torch import nn

from wrim.engine.build import build_model
from wrim.engine.config import ModelConfig


@pytest.mark.parametrize("user_timeout", [None, 7])
def test_hub_weights_are_looked_up_with_a_bounded_timeout_and_no_probe(monkeypatch, user_timeout):
    constants = pytest.importorskip("huggingface_hub", reason="pip install 'wrim[hub]'").constants
    if user_timeout is not None:
        monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", user_timeout)
    before = constants.HF_HUB_ETAG_TIMEOUT
    seen = {}

    def no_connection(*args, **kwargs):
        raise AssertionError("build_model opened a connection")

    def create_model(name, **kwargs):  # stands for timm's download: records the client's timeout then
        seen.update(kwargs, timeout=constants.HF_HUB_ETAG_TIMEOUT)
        return nn.Linear(1, 1)

    monkeypatch.setattr(socket, "create_connection", no_connection)
    monkeypatch.setattr("wrim.models.create_model", create_model)
    build_model(ModelConfig(name="wrimnet_resnet18", pretrained=True), 4, (64, 32))
    assert seen["pretrained"] is True
    assert seen["timeout"] == (3 if user_timeout is None else user_timeout)
    after = constants.HF_HUB_ETAG_TIMEOUT
    assert after == before  # restored
