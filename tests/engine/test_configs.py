"""Every shipped config loads, validates and builds its model, losses and optimiser with ``wrim train --dry-run``."""

import pytest
import yaml

from wrim.cli import main
from wrim.engine.config import list_configs, load_config

PAPER_RECIPES = ["sysu", "sysu_adam", "regdb", "regdb_adam", "llcm", "llcm_adam"]
ABLATIONS = [
    "sysu_ablation_baseline",
    "sysu_ablation_miim_block1",
    "sysu_ablation_all_shared",
    "sysu_ablation_all_separate",
    "sysu_ablation_triplet",
    "sysu_ablation_no_aicl",
]


def test_every_recipe_and_ablation_is_shipped():
    assert set(PAPER_RECIPES + ABLATIONS + ["synthetic"]) <= set(list_configs())


@pytest.mark.parametrize("name", list_configs())
def test_dry_run_builds_every_shipped_config(name, capsys):
    assert main(["train", "--config", name, "--dry-run", "data.img_size=[32,16]"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    end = next(i for i, line in enumerate(lines) if "(GFLOPs per image" in line)
    resolved = yaml.safe_load("\n".join(lines[1:end]))
    assert resolved["name"] == name and resolved["data"]["img_size"] == [32, 16]
    assert "| total |" in out and f"dry run of {name!r}" in out and "no training" in out


def test_recipes_differ_from_their_base_in_what_their_header_says():
    sgd, adam = load_config("sysu"), load_config("sysu_adam")
    assert (sgd.optim.name, sgd.optim.lr, sgd.optim.milestones) == ("sgd", 0.1, (20, 50))
    assert (adam.optim.name, adam.optim.lr, adam.optim.milestones, adam.epochs) == ("adam", 3.5e-4, (40, 70), 120)
    assert adam.model == sgd.model and adam.data == sgd.data and adam.loss == sgd.loss
    assert load_config("sysu_ablation_baseline").model.name == "baseline_resnet50"
    block1 = load_config("sysu_ablation_miim_block1").model.kwargs
    assert block1 == {"separate_stages": [1], "shared_stages": []}
    assert load_config("sysu_ablation_triplet").loss.metric == "triplet"
    no_aicl = load_config("sysu_ablation_no_aicl")
    assert no_aicl.loss.p4_weight == 0.0 and no_aicl.optim == sgd.optim


def test_base_key_merges_sections_and_names_the_run_after_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: sysu\noptim: {lr: 0.05}\n")
    config = load_config(path)
    assert config.name == "mine" and config.optim.lr == 0.05 and config.optim.name == "sgd"
    assert config.data.dataset == "sysu"
    path.write_text("base: nosuchconfig\n")
    with pytest.raises(ValueError, match="base config 'nosuchconfig' not found"):
        load_config(path)
    path.write_text("base: mine.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_config(path)


def test_dry_run_reports_a_bad_override_in_one_line(capsys):
    assert main(["train", "--config", "sysu_adam", "--dry-run", "optim.name=adamax"]) == 2
    err = capsys.readouterr().err.strip()
    assert "optim.name must be one of ['sgd', 'adam', 'adamw']" in err and "\n" not in err
