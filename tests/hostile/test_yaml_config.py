"""YAML configs and command-line overrides (``wrim.engine.load_config`` / ``read_yaml`` / ``apply_overrides``),
hostile.

Properties: a file gives a `Config` or a one-line ValueError naming the file (``file:line:column`` where YAML knows
the place); an override gives a `Config` or a one-line ValueError naming its key; no other exception escapes; no tag
constructs an object or imports a module; an alias cannot expand the file (aliases are refused) and nesting is
bounded (no ``RecursionError``).
"""

from __future__ import annotations

import math
import sys

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.hostile._props import BAIT_MODULE, assert_confined, assert_one_line_naming, refusal, watched
from wrim.engine import Config, load_config
from wrim.engine.config import apply_overrides, read_yaml

# six lines that expand to 9**6 values through aliases; nested under a valid key (head_kwargs) in _NESTED_LAUGHS
_LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['x'] * 9)}]\n" for i in range(6))
_NESTED_LAUGHS = "".join(f"      {line}\n" for line in _LAUGHS.splitlines())

# (file text, what the one-line message says, its line or None)
ATTACKS = [
    ("epochs: 1\nepochs: 2\n", "duplicate key 'epochs' (first at line 1)", 2),
    ("optim:\n  lr: 0.1\n  lr: 0.2\n", "duplicate key 'lr'", 3),
    ("optim:\n  milestones: &m [20, 50]\neval:\n  trials: *m\n", "alias *m refused", 4),
    ("model:\n  kwargs:\n    head_kwargs:\n" + _NESTED_LAUGHS, "alias *l0 refused", 5),
    ("epochs: !!python/object/apply:os.system ['true']\n", "could not determine a constructor", 1),
    (f"epochs: !!python/object/apply:{BAIT_MODULE}.run []\n", "could not determine a constructor", 1),
    (f"epochs: !!python/module:{BAIT_MODULE}\n", "could not determine a constructor", 1),
    (f"epochs: !!python/name:{BAIT_MODULE}.run\n", "could not determine a constructor", 1),
    ("epochs: !custom 3\n", "could not determine a constructor for the tag '!custom'", 1),
    ("name: !!binary aGVsbG8=\n", "name must be a string", None),
    ("<<: {epochs: 3}\n", "could not determine a constructor", 1),
    ("model:\n  kwargs: " + "[" * 40 + "]" * 40 + "\n", "nested deeper than 32 levels", 2),
    ("a: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than 32 levels", 1),
    ("".join("  " * i + f"k{i}:\n" for i in range(2000)), "nested deeper than 32 levels", 32),
    ("epochs: " + "9" * 5000 + "\n", "Exceeds the limit (4300", None),  # "(4300 digits)" from Python 3.11
    ("epochs: 18446744073709551616\n", "epochs must be an integer (of size below 2**63)", None),
    ("epochs: 1e400\n", "epochs must be an integer", None),
    ("epochs: .inf\n", "epochs must be an integer", None),
    ("epochs: .nan\n", "epochs must be an integer", None),
    ("optim:\n  lr: .nan\n", "optim.lr must be > 0 (and finite), got nan", None),
    ("optim:\n  lr: 1.0e+400\n", "optim.lr must be > 0 (and finite), got inf", None),
    ("optim:\n  clip_grad_norm: -.inf\n", "optim.clip_grad_norm must be > 0 (and finite)", None),
    ("data:\n  img_size: [.nan, 64]\n", "data.img_size must be an integer", None),
    ("data:\n  exchange_prob: .inf\n", "data.exchange_prob must be >= 0 (and finite), got inf", None),
    ("1: 2\n", "key 1 is not a name", 1),
    ("yes: 1\n", "key True is not a name", 1),
    ("~: 1\n", "key None is not a name", 1),
    ("? [a, b]\n: 1\n", "is not a name", 1),
    ("base: [sysu]\n", "base must be a config name or a YAML path", None),
    ("base: {a: 1}\n", "base must be a config name or a YAML path", None),
    ("- 1\n- 2\n", "must hold a mapping at the top level", None),
    ("epochs: 1\n---\nepochs: 2\n", "expected a single document", 2),
    ("model: [1]\n", "model. must be a mapping", None),
    ("seed: '1'\nunknown: 3\n", "unknown config key(s) ['unknown']", None),
]


@pytest.mark.parametrize(("text", "message", "line"), ATTACKS, ids=[f"{i}:{a[1][:24]}" for i, a in enumerate(ATTACKS)])
def test_attacks_are_refused_naming_the_file(tmp_path, bait, text, message, line) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    with watched() as events, pytest.raises(ValueError) as info:
        load_config(path)
    assert message in str(info.value)
    assert_one_line_naming(info.value, path, line)
    assert_confined(events, tmp_path)
    assert not bait.exists() and BAIT_MODULE not in sys.modules


def test_non_utf8_names_the_file(tmp_path) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ValueError, match="can't decode byte 0xe9") as info:
        load_config(path)
    assert_one_line_naming(info.value, path)


def test_anchors_without_aliases_load(tmp_path) -> None:
    path = tmp_path / "anchored.yaml"
    path.write_text("epochs: &e 3\noptim: &o {lr: 0.01}\n")
    config = load_config(path)
    assert config.epochs == 3 and config.optim.lr == 0.01


def test_read_yaml_refuses_aliases_in_a_run_folder_config(tmp_path) -> None:
    """``read_yaml`` also reads a copied run's ``config.yaml`` (``wrim eval``): the same loader, the same refusals."""
    path = tmp_path / "config.yaml"
    path.write_text(_LAUGHS)
    with pytest.raises(ValueError, match=r"config\.yaml:2:\d+: YAML error: alias \*l0 refused"):
        read_yaml(path)


# --------------------------------------------------------------------------------------------- overrides

OVERRIDE_ATTACKS = [
    ("epochs=.inf", "epochs must be an integer"),
    ("epochs=99999999999999999999", "epochs must be an integer (of size below 2**63)"),
    ("optim.lr=.nan", "optim.lr must be > 0 (and finite), got nan"),
    ("optim.betas=[.nan, 0.9]", "optim.betas must be >= 0 (and finite)"),
    ("model.kwargs.head_kwargs={x: *a}", "model.kwargs.head_kwargs: cannot parse"),
    ("model.kwargs.head_kwargs=" + "[" * 50 + "]" * 50, "nested deeper than 32 levels"),
    ("model.kwargs.head_kwargs={1: 2}", "key 1 is not a name"),
    ("model.kwargs.x=!!python/object/apply:os.system [true]", "could not determine a constructor"),
    ("eval.protocol={mode: !!python/name:os.system }", "could not determine a constructor"),
    ("seed=" + "9" * 5000, "seed: cannot parse"),
    ("no_equals_sign", "must look like key=value"),
    ("optim..lr=1", "unknown config key 'optim.'"),
]


@pytest.mark.parametrize(("override", "message"), OVERRIDE_ATTACKS, ids=[o[:30] for o, _ in OVERRIDE_ATTACKS])
def test_override_attacks_are_one_line_naming_the_key(override, message) -> None:
    with watched() as events, pytest.raises(ValueError) as info:
        apply_overrides(Config(), [override])
    text = str(info.value)
    assert message in text and len(text.splitlines()) == 1, text
    assert not [e for e in events if e[0] == "run"]


# ------------------------------------------------------------------------------------------------ by property

_KEYS = st.sampled_from(["name", "epochs", "seed", "device", "amp", "model", "data", "optim", "eval", "loss", "base",
                         "lr", "img_size", "kwargs", "protocol", "milestones", "trials", "x"])  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
                       max_leaves=12)  # fmt: skip
_SNIPPETS = st.sampled_from(
    ["", "x: &a 1\ny: *a\n", "z: !!python/object/apply:os.system [true]\n", "w: " + "[" * 60 + "\n",
     "epochs: 1\nepochs: 1\n", "\t- :\n", "'unterminated\n", "k: {a: 1, a: 2}\n", "%YAML 1.1\n---\n"]
)  # fmt: skip


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.dictionaries(_KEYS, _VALUES, max_size=5), snippet=_SNIPPETS)
@example(content={"optim": {"lr": math.nan}}, snippet="")
@example(content={"epochs": 2**64}, snippet="")
def test_any_mapping_loads_or_is_refused_in_one_line(tmp_path_factory, content, snippet) -> None:
    folder = tmp_path_factory.mktemp("yaml")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(content) + snippet, encoding="utf-8")
    with watched() as events:
        config, _ = refusal(lambda: load_config(path), path)
    assert config is None or isinstance(config, Config)
    assert_confined(events, folder)


@given(text=st.text(alphabet=st.sampled_from(list("ab1.:-[]{}&*!|>'\"#%@`, \n\t~?")), max_size=60))
def test_any_text_loads_or_is_refused_in_one_line(tmp_path_factory, text) -> None:
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_text(text, encoding="utf-8")
    refusal(lambda: load_config(path), path)


@given(key=st.sampled_from(["epochs", "optim.lr", "data.img_size", "model.kwargs.head_kwargs", "eval.protocol",
                            "name", "optim.betas", "x.y", "model.kwargs"]),  # fmt: skip
       value=st.text(alphabet=st.sampled_from(list("a1.e+-[]{}&*!:, ~\n'\"nif")), max_size=30))  # fmt: skip
@example(key="model.kwargs.head_kwargs", value="{a: &x [1], b: *x}")
def test_any_override_gives_a_config_or_one_line_naming_the_key(key, value) -> None:
    try:
        config = apply_overrides(Config(), [f"{key}={value}"])
    except ValueError as err:
        text = str(err)
        assert len(text.splitlines()) == 1 and key.split(".")[0] in text, text
    else:
        assert isinstance(config, Config)
