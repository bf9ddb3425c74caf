"""Fixtures of the engine tests."""

import importlib
import sys

import pytest

from wrim.data import _registry as dataset_registry
from wrim.models import _registry as model_registry

PLUGIN_MODULE = "tests.engine._plugin_parts"


@pytest.fixture
def restore_registries():
    """The model and dataset registries as they were before the test (a plugin imported in-process registers)."""
    models, datasets = dict(model_registry._ENTRYPOINTS), dict(dataset_registry._DATASETS)
    yield
    model_registry._ENTRYPOINTS.clear()
    model_registry._ENTRYPOINTS.update(models)
    dataset_registry._DATASETS.clear()
    dataset_registry._DATASETS.update(datasets)


@pytest.fixture
def plugin(restore_registries):
    """tests/engine/_plugin_parts.py imported in this process (``resnet18_miim`` and ``tiny_synth`` registered) for
    the test only."""
    sys.modules.pop(PLUGIN_MODULE, None)
    yield importlib.import_module(PLUGIN_MODULE)
    sys.modules.pop(PLUGIN_MODULE, None)
