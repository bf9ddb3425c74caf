"""User code on the command line: ``--import MODULE`` and ``wrim.plugins`` entry points register models and datasets
that ``wrim train`` builds by name; unknown names and failing plugins are one line and exit 2."""

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.engine._tiny import tiny_overrides
from wrim.cli import main

PLUGIN = textwrap.dedent(
    '''
    """A plugin written by a user in their own folder."""
    import wrim
    from wrim.data import SyntheticVIReID, register_dataset
    from wrim.models import WRIMNet


    @wrim.register_model
    def {model}(pretrained=False, num_classes=0, img_size=(64, 32), **kwargs):
        return WRIMNet(backbone="test_resnet", pretrained=pretrained, num_classes=num_classes, img_size=img_size)


    @register_dataset("{dataset}")
    def {dataset}(root=None):
        return SyntheticVIReID(root, num_ids=8, num_test_ids=4, images_per_camera=2)
    '''
)


def _write_plugin(folder, module, model, dataset):
    (folder / f"{module}.py").write_text(PLUGIN.format(model=model, dataset=dataset), encoding="utf-8")


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_import_flag_lets_a_subprocess_train_a_plugin_model_on_a_plugin_dataset(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    _write_plugin(plugins, "my_parts", "my_net", "my_data")
    cmd = [sys.executable, "-m", "wrim", "train", "--import", "my_parts", "model.name=my_net", "data.dataset=my_data"]
    cmd += tiny_overrides(tmp_path, "run", "epochs=1", "data.num_workers=0", "data.dataset_kwargs={}")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(plugins), env.get("PYTHONPATH", "")])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "final (" in proc.stdout and "my_net on" in (tmp_path / "run" / "train.log").read_text()
    export = [sys.executable, "-m", "wrim", "export", str(tmp_path / "run"), "--out", str(tmp_path / "shared")]
    proc = subprocess.run(export, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 2 and "unknown model 'my_net'" in proc.stderr  # the plugin is not imported
    proc = subprocess.run([*export, "--import", "my_parts"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "shared" / "model.safetensors").is_file()


def test_an_entry_point_plugin_is_found_without_a_flag(tmp_path, monkeypatch, capsys, restore_registries):
    _write_plugin(tmp_path, "entry_parts", "entry_net", "entry_data")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(name="entry", value="entry_parts", group="wrim.plugins")
    real = importlib.metadata.entry_points
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda **kw: [entry] if kw.get("group") == "wrim.plugins" else real(**kw)
    )
    assert (
        main(["train", "--dry-run", "model.name=entry_net", "data.dataset=entry_data", "data.dataset_kwargs={}"]) == 0
    )
    assert "dry run of 'synthetic': entry_net for 8 identities" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model.name=no_such_net"], r"unknown model 'no_such_net'; registered: .*wrimnet_resnet50"),
        (["data.dataset=no_such_data"], r"unknown dataset 'no_such_data'; registered: .*list, llcm, regdb, .*sysu"),
    ],
)
def test_unknown_names_are_one_line_listing_the_registered_ones_and_how_to_add_one(capsys, args, message):
    assert main(["train", "--dry-run", *args]) == 2
    err = _one_line_error(capsys)
    assert re.search(message, err) and "--import MODULE" in err and "'wrim.plugins' entry point" in err


def test_a_failing_plugin_is_one_line_naming_the_module_and_its_error(
    tmp_path, monkeypatch, capsys, restore_registries
):
    (tmp_path / "broken_parts.py").write_text("import wrim\nraise RuntimeError('no GPU driver found')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["train", "--dry-run", "--import", "broken_parts"]) == 2
    assert _one_line_error(capsys).endswith(
        "error: plugin 'broken_parts' failed to import: RuntimeError: no GPU driver found"
    )
    for command in (["eval", "--checkpoint", "x", "--dataset", "sysu"], ["check-data", "--dataset", "list"]):
        assert main([*command, "--root", str(tmp_path), "--import", "no_such_module"]) == 2
        assert "plugin 'no_such_module' failed to import: ModuleNotFoundError" in _one_line_error(capsys)
    assert main(["train", "--dry-run", "--import", str(tmp_path / "missing.py")]) == 2
    assert "failed to import: FileNotFoundError: no such file" in _one_line_error(capsys)
