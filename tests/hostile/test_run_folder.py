"""Run folders copied between machines: pointers, manifests and checkpoint sets (``wrim.engine.load_checkpoint``),
hostile.

Properties: the state of a verified set inside ``<run>/checkpoints``, or a one-line ``CheckpointError`` (a
ValueError) naming the run folder; no other exception escapes; nothing outside the run folder is read (a pointer or
a manifest entry cannot lead out of it); a partial set or one whose files disagree with its manifest is never
loaded; a state file is read with ``torch.load(weights_only=True)`` and runs no code.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

from tests.hostile._props import BAIT_MODULE, assert_confined, assert_one_line_naming, refusal, watched
from wrim.engine.checkpoint import CheckpointError, load_checkpoint, publish_checkpoint, save_checkpoint


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """``<tmp>/run`` (one set, epoch 1, ``last`` and ``best`` pointing at it) and ``<tmp>/outside/set`` (a valid
    copy of that set outside the run: what an escaping pointer or manifest entry would reach)."""
    tmp = tmp_path_factory.mktemp("made")
    set_dir = save_checkpoint(tmp / "run", _net(), {"epoch": 1, "step": 3})
    publish_checkpoint(tmp / "run", "last", set_dir, epoch=1)
    publish_checkpoint(tmp / "run", "best", set_dir, epoch=1, r1=0.5)
    shutil.copytree(set_dir, tmp / "outside" / "set")
    return tmp


def _copy(made: Path, tmp: Path) -> tuple[Path, Path]:
    """A fresh copy of ``made`` in ``tmp``: ``(run folder, its set)``."""
    shutil.copytree(made, tmp, dirs_exist_ok=True)
    return tmp / "run", next((tmp / "run" / "checkpoints").iterdir())


def _rehash(set_dir: Path, names: tuple[str, ...] = ("model.safetensors", "state.pt")) -> None:
    """Rewrite the manifest so that it agrees with the files as they are now (a consistent tampering)."""
    manifest = json.loads((set_dir / "manifest.json").read_text())
    manifest["files"] = {
        n: {"bytes": (set_dir / n).stat().st_size, "sha256": hashlib.sha256((set_dir / n).read_bytes()).hexdigest()}
        for n in names
    }
    (set_dir / "manifest.json").write_text(json.dumps(manifest))


def _load(run: Path, tag: str) -> dict:
    return load_checkpoint(run, tag, _net())


# (pointer "set" value written into best.json, what the one-line message says)
POINTERS = [
    ("/ABS/outside/set", "not at a set checkpoints/<name> of its run"),
    ("../outside/set", "not at a set checkpoints/<name> of its run"),
    ("checkpoints/../../outside/set", "not at a set checkpoints/<name> of its run"),
    ("checkpoints/..", "not at a set checkpoints/<name> of its run"),
    ("checkpoints/", "not at a set checkpoints/<name> of its run"),
    ("checkpoints\\..\\..\\outside\\set", "not at a set checkpoints/<name> of its run"),
    ("checkpoints/..\\..\\outside", "not at a set checkpoints/<name> of its run"),
    ("checkpoints/C:x", "not at a set checkpoints/<name> of its run"),
    ("checkpoints/a\x00b", "not at a set checkpoints/<name> of its run"),
    ("checkpoints/a\nb", "not at a set checkpoints/<name> of its run"),
    (5, "is not a wrim checkpoint pointer"),
    (["checkpoints/x"], "is not a wrim checkpoint pointer"),
]


@pytest.mark.parametrize(("target", "message"), POINTERS, ids=[repr(t)[:30] for t, _ in POINTERS])
def test_pointers_out_of_the_run_are_refused(tmp_path, made, target, message) -> None:
    run, _ = _copy(made, tmp_path)
    target = target.replace("/ABS", str(tmp_path)) if isinstance(target, str) else target
    (run / "best.json").write_text(json.dumps({"set": target, "epoch": 1}))
    with watched() as events, pytest.raises(CheckpointError, match=message) as info:
        _load(run, "best")
    assert_one_line_naming(info.value, run)
    assert_confined(events, run)


def test_a_last_pointer_out_of_the_run_falls_back_to_a_set_inside(tmp_path, made, caplog) -> None:
    run, set_dir = _copy(made, tmp_path)
    (run / "last.json").write_text(json.dumps({"set": str(tmp_path / "outside" / "set"), "epoch": 1}))
    with watched() as events:
        state = _load(run, "last")
    assert state["checkpoint_set"] == str(set_dir) and "not at a set checkpoints/<name>" in caplog.text
    assert_confined(events, run)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"[" * 100_000, "is damaged (maximum recursion depth"), (b'{"set": "\xff"}', "is damaged ('utf-8' codec"),
     (b"{", "is damaged (Expecting property name")],
    ids=["deep", "not_utf8", "truncated"],
)  # fmt: skip
def test_damaged_pointers_are_one_line(tmp_path, made, content, message) -> None:
    run, _ = _copy(made, tmp_path)
    (run / "best.json").write_bytes(content)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(")) as info:
        _load(run, "best")
    assert_one_line_naming(info.value, run)


def _edit_manifest(edit):
    def apply(set_dir: Path) -> None:
        manifest = json.loads((set_dir / "manifest.json").read_text())
        edit(manifest, set_dir)
        (set_dir / "manifest.json").write_text(json.dumps(manifest))

    return apply


def _escape(manifest: dict, set_dir: Path) -> None:
    """Replace the state entry by the outside copy's state.pt, with its true size and digest."""
    outside = set_dir.parents[2] / "outside" / "set" / "state.pt"
    entry = manifest["files"].pop("state.pt")
    manifest["files"]["../../../outside/set/state.pt"] = entry
    (set_dir / "state.pt").unlink()
    assert outside.is_file()


def _absolute(manifest: dict, set_dir: Path) -> None:
    manifest["files"][str(set_dir.parents[2] / "outside" / "set" / "state.pt")] = manifest["files"].pop("state.pt")


# (tampering of the set, what the one-line message says)
SETS = [
    (_edit_manifest(_escape), "its 'files' must give the bytes and sha256 of model.safetensors and state.pt"),
    (_edit_manifest(_absolute), "its 'files' must give the bytes and sha256"),
    (_edit_manifest(lambda m, s: m.update(files=[1, 2])), "its 'files' must give"),
    (_edit_manifest(lambda m, s: m["files"].update({"state.pt": "sha"})), "its 'files' must give"),
    (_edit_manifest(lambda m, s: m["files"]["state.pt"].pop("bytes")), "its 'files' must give"),
    (_edit_manifest(lambda m, s: m["files"]["state.pt"].update(sha256=5)), "its 'files' must give"),
    (_edit_manifest(lambda m, s: m.update(files={})), "its 'files' must give"),
    (_edit_manifest(lambda m, s: m["files"].pop("state.pt")), "its 'files' must give"),
    (_edit_manifest(lambda m, s: m["files"].update({"extra.bin": m["files"]["state.pt"]})), "its 'files' must give"),
    (_edit_manifest(lambda m, s: m.pop("files")), "manifest.json' is damaged ('files')"),
    (lambda s: (s / "manifest.json").write_text("[1]"), "manifest.json' is damaged"),
    (lambda s: (s / "manifest.json").write_bytes(b"[" * 100_000), "manifest.json' is damaged (maximum recursion"),
    (lambda s: (s / "manifest.json").unlink(), "has no manifest.json (not a complete checkpoint set)"),
    (lambda s: (s / "state.pt").unlink(), "state.pt' is missing"),
    (lambda s: (s / "model.safetensors").unlink(), "model.safetensors' is missing"),
    (lambda s: (s / "state.pt").write_bytes((s / "state.pt").read_bytes()[:-1] + b"!"), "its SHA-256 differs"),
    (lambda s: (s / "state.pt").write_bytes((s / "state.pt").read_bytes() + b"!"), "state.pt' is damaged"),
]


@pytest.mark.parametrize(("tamper", "message"), SETS, ids=[f"{i}:{m[-24:]}" for i, (_, m) in enumerate(SETS)])
def test_partial_and_disagreeing_sets_are_never_loaded(tmp_path, made, tamper, message) -> None:
    run, set_dir = _copy(made, tmp_path)
    tamper(set_dir)
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with watched() as events, pytest.raises(CheckpointError) as info:
        load_checkpoint(run, "best", net)
    assert message in str(info.value), str(info.value)
    assert_one_line_naming(info.value, run)
    assert_confined(events, run)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


class _Exploit:
    """Unpickling calls the bait module's ``run()``, which creates its marker: the proof that code ran."""

    def __reduce__(self):
        return (__import__(BAIT_MODULE).run, ())


@pytest.mark.parametrize("kind", ["exploit", "os_system", "list", "no_epoch"])
def test_state_files_run_no_code_and_must_be_a_training_state(tmp_path, made, bait, kind) -> None:
    """A state.pt that agrees with its manifest (consistent tampering) is still read with weights_only."""
    run, set_dir = _copy(made, tmp_path)
    if kind == "exploit":
        (set_dir / "state.pt").write_bytes(pickle.dumps(_Exploit(), protocol=2))
        bait.unlink()  # pickling imported the bait module: start from no marker
        sys.modules.pop(BAIT_MODULE)
    elif kind == "os_system":
        (set_dir / "state.pt").write_bytes(b"cposix\nsystem\n(S'touch " + str(bait).encode() + b"'\ntR.")
    else:
        torch.save([1, 2] if kind == "list" else {"step": 3}, set_dir / "state.pt")
    _rehash(set_dir)
    with watched() as events, pytest.raises(CheckpointError) as info:
        _load(run, "best")
    message = "cannot be read (UnpicklingError" if kind in ("exploit", "os_system") else "not a wrim training state"
    assert message in str(info.value)
    assert_one_line_naming(info.value, run)
    assert_confined(events, run)
    assert not bait.exists() and BAIT_MODULE not in sys.modules


# ------------------------------------------------------------------------------------------------ by property

_TARGETS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["checkpoints/", "..", "/", "\\", "C:", "outside/set", "checkpoints/e0001"]).flatmap(
        lambda prefix: st.text(max_size=12).map(lambda rest: prefix + rest)
    ),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=_TARGETS, tag=st.sampled_from(["last", "best"]))
@example(target="../outside/set", tag="best")
@example(target="checkpoints/../../outside/set", tag="last")
def test_any_pointer_loads_a_set_inside_or_is_refused_in_one_line(tmp_path_factory, made, target, tag) -> None:
    run, set_dir = _copy(made, tmp_path_factory.mktemp("pointer"))
    (run / f"{tag}.json").write_text(json.dumps({"set": target.replace("outside", str(run.parent / "outside"))}))
    with watched() as events:
        state, _ = refusal(lambda: _load(run, tag), run)
    assert_confined(events, run)
    assert state is None or state["checkpoint_set"] == str(set_dir)


_NAMES = st.sampled_from(["model.safetensors", "state.pt", "../state.pt", "/x", "manifest.json", "", "a\\b"])
_META = st.one_of(
    st.fixed_dictionaries({"bytes": st.integers(-1, 2**70), "sha256": st.text(max_size=64)}),
    st.none(),
    st.text(max_size=5),
    st.integers(),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.one_of(st.dictionaries(_NAMES, _META, max_size=3), st.lists(st.integers(), max_size=2), st.none()))
def test_any_manifest_is_verified_or_refused_in_one_line(tmp_path_factory, made, files) -> None:
    run, set_dir = _copy(made, tmp_path_factory.mktemp("manifest"))
    manifest = json.loads((set_dir / "manifest.json").read_text())
    (set_dir / "manifest.json").write_text(json.dumps({**manifest, "files": files}))
    with watched() as events:
        state, _ = refusal(lambda: _load(run, "best"), run)
    assert state is None  # no manifest drawn here lists the true sizes and digests of both files
    assert_confined(events, run)
