"""Tests of the typed config: shipped YAML files, dotted overrides, type conversion and clear errors."""

import pytest
import yaml

from wrim.engine.config import Config, apply_overrides, config_to_dict, list_configs, load_config, save_config


def test_shipped_configs_load():
    assert {"synthetic", "sysu", "regdb", "llcm"} <= set(list_configs())
    for name in list_configs():
        cfg = load_config(name)
        assert isinstance(cfg, Config)
        assert cfg.name == name


def test_paper_setup_in_real_dataset_configs():
    for name in ("sysu", "regdb", "llcm"):
        cfg = load_config(name)
        assert cfg.data.img_size == (384, 128)
        assert cfg.data.num_ids * 2 * cfg.data.num_instances == 128
        assert cfg.model.name == "wrimnet_resnet50"
        assert cfg.optim.name == "sgd" and cfg.optim.warmup_epochs == 10 and cfg.optim.milestones == (20, 50)


def test_overrides_are_typed():
    cfg = load_config(
        "synthetic",
        ["optim.lr=1e-3", "data.img_size=[64,32]", "model.kwargs.last_stride=2", "eval.final_trials=[0,1]",
         "optim.clip_grad_norm=none", "model.compile=true", "epochs=3"],
    )  # fmt: skip
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.data.img_size == (64, 32)
    assert cfg.model.kwargs == {"last_stride": 2}
    assert cfg.eval.final_trials == (0, 1)
    assert cfg.optim.clip_grad_norm is None
    assert cfg.model.compile is True
    assert cfg.epochs == 3


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("optim.lrr=1", r"optim.lrr.*valid keys.*'lr'"),
        ("modle.name=x", r"modle.*valid keys.*'model'"),
        ("epochs=abc", "epochs must be an integer"),
        ("data.img_size=[1,2,3]", "list of 2 values"),
        ("model.compile=maybe", "true or false"),
        ("loss.metric=arcface", "loss.metric must be one of"),
        ("epochs", "key=value"),
    ],
)
def test_bad_overrides_raise(override, match):
    with pytest.raises(ValueError, match=match):
        load_config("synthetic", [override])


def test_unknown_config_name_lists_shipped():
    with pytest.raises(ValueError, match="synthetic"):
        load_config("no_such_config")


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 2\noptim:\n  learning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"optim.learning_rate.*valid keys"):
        load_config(path)


def test_save_and_reload_roundtrip(tmp_path):
    cfg = load_config("sysu", ["data.root=/data/SYSU", "optim.lr=0.05"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["optim"]["lr"] == 0.05


def test_apply_overrides_returns_copy():
    cfg = load_config("synthetic")
    new = apply_overrides(cfg, ["seed=5"])
    assert cfg.seed == 0 and new.seed == 5
    assert config_to_dict(new)["seed"] == 5


def test_switching_datasets_leaves_the_old_datasets_settings_behind(tmp_path):
    """``data.dataset=NAME`` resets ``data.dataset_kwargs`` and ``eval.protocol`` to the new dataset's own defaults
    ({}), unless the same overrides set them; a file that changes its base's dataset behaves alike."""
    switched = load_config("regdb", ["data.dataset=list", "data.root=/data/mine"])
    assert switched.eval.protocol == {} and switched.data.dataset_kwargs == {}  # RegDB's direction and trial gone
    kept = load_config("synthetic", ["data.dataset=list", "data.dataset_kwargs.exclude_same_camera=true"])
    assert kept.data.dataset_kwargs == {"exclude_same_camera": True}
    with pytest.raises(ValueError, match=r"eval.protocol has key\(s\) \['mode'\] that ListDataset.test_split"):
        load_config("synthetic", ["data.dataset=list", "eval.protocol={mode: all}"])  # set by the user: checked
    same = load_config("llcm", ["data.dataset=llcm"])
    assert same.eval.protocol == {"direction": "i2v"}  # not a switch
    assert load_config("synthetic", ["data.dataset=list"]).model.name == "wrimnet_resnet18"  # the recipe stays

    mine = tmp_path / "mine.yaml"
    mine.write_text("base: sysu\ndata: {dataset: list, root: /data/mine}\n")
    assert load_config(str(mine)).eval.protocol == {}
    mine.write_text("base: sysu\ndata: {dataset: list}\neval: {protocol: {}, every: 1}\n")
    assert load_config(str(mine)).eval.every == 1
    mine.write_text("base: synthetic\neval: {every: 1}\n")
    assert load_config(str(mine)).eval.protocol == {"mode": "all", "shots": 1}  # same dataset: inherited
    sub = load_config("sysu", ["data.dataset=llcm", "eval.protocol.direction=v2i"])
    assert sub.eval.protocol == {"direction": "v2i"}  # a sub-key starts from the new dataset's {}, not sysu's mode
