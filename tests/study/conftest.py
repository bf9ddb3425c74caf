"""Fixtures of the study tests: the model registry restored after a test that loads a study's plugin."""

import pytest

from wrim.models import _registry as model_registry


@pytest.fixture
def restore_registry():
    models = dict(model_registry._ENTRYPOINTS)
    yield
    model_registry._ENTRYPOINTS.clear()
    model_registry._ENTRYPOINTS.update(models)
