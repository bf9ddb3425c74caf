"""Mutation smoke check: plant known bugs, one at a time, in a copy of the tree and check the tests catch each.

Usage::

    python tests/mutation/run_mutations.py              # every mutant
    python tests/mutation/run_mutations.py gate_tanh    # some of them, by name
    python tests/mutation/run_mutations.py --list

For each mutant the script copies the repository to a temporary folder, replaces one exact snippet of one package
file, and runs only the test files that should catch it (``python -m pytest -x``, ``PYTHONPATH`` = the copy, so
the copy's ``wrim`` is the one imported). A mutant is *caught* when pytest reports a failing test (exit code 1).
The unmutated copy is run first on the union of those test files and must pass, so a catch is not a broken setup.

A snippet that is not found exactly once is an error that names the mutant and the file: code moved by a later
change must be followed here, not silently skipped. Exit status: 0 when every mutant is caught, 1 otherwise.
It takes a few minutes on 2 cores (each mutant runs a handful of test files, stopping at the first failure).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", ".hypothesis", "site", "build", "dist",
    "runs", "outputs",
)  # fmt: skip
_TIMEOUT_S = 900


@dataclass(frozen=True)
class Mutant:
    """One planted bug: replace ``old`` (exactly once in ``path``) by ``new``; ``tests`` should then fail."""

    name: str
    description: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


LAYERS = ("tests/layers/test_reference.py", "tests/layers/test_modality_miim.py")

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "gate_no_permute",
        "MIIM.gate: gate reshaped to (B, C, h, w) without the permute",
        "wrim/layers/miim.py",
        "gate = gate.view(batch, grid_h, grid_w, self.channels).permute(0, 3, 1, 2)",
        "gate = gate.reshape(batch, self.channels, grid_h, grid_w)",
        LAYERS,
    ),
    Mutant(
        "gate_tanh",
        "MIIM.gate: sigmoid replaced by tanh",
        "wrim/layers/miim.py",
        "gate = torch.sigmoid(self.restore(tokens))",
        "gate = torch.tanh(self.restore(tokens))",
        LAYERS,
    ),
    Mutant(
        "gri_residual_on_normalised",
        "GRI: residual added to the normalised tokens instead of the input tokens",
        "wrim/layers/gri.py",
        "return shortcut + out if self.residual else out",
        "return queries + out if self.residual else out",
        LAYERS,
    ),
    Mutant(
        "absent_running_var_updated",
        "ModalityMIIM: the absent modality's running_var updated anyway",
        "wrim/layers/norm.py",
        "norm.running_var.copy_(torch.where(present, new_var, norm.running_var))",
        "norm.running_var.copy_(new_var)",
        LAYERS,
    ),
    Mutant(
        "split_gate_copies_swapped",
        "ModalityMIIM(num_visible=n): the visible rows go through the infrared copy and vice versa",
        "wrim/layers/modality_miim.py",
        "torch.cat([self.visible.gate(x_visible), self.infrared.gate(x_infrared)])",
        "torch.cat([self.infrared.gate(x_visible), self.visible.gate(x_infrared)])",
        LAYERS,
    ),
    Mutant(
        "embedding_raw_pooled",
        "WRIMNet eval: embedding built from the raw pooled features instead of the BNNeck features",
        "wrim/models/wrimnet.py",
        "parts = [self.heads[name](pooled[name], pre_logits=True) for name in self.embed_heads]",
        "parts = [pooled[name] for name in self.embed_heads]",
        ("tests/models/test_embedding_reference.py",),
    ),
    Mutant(
        "rerank_noop",
        "evaluate_protocol(rerank=True): re-ranking does nothing",
        "wrim/evaluation/protocol.py",
        "    if rerank:\n        dist = k_reciprocal_rerank(",
        "    if rerank and False:\n        dist = k_reciprocal_rerank(",
        ("tests/evaluation/test_protocol.py",),
    ),
    Mutant(
        "sincos_xy_swapped",
        "sincos_2d_pos_embed: x and y halves swapped",
        "wrim/layers/pos_embed.py",
        "[x_angles.sin(), x_angles.cos(), y_angles.sin(), y_angles.cos()]",
        "[y_angles.sin(), y_angles.cos(), x_angles.sin(), x_angles.cos()]",
        LAYERS,
    ),
    Mutant(
        "sincos_inverse_frequency",
        "sincos_2d_pos_embed: T^i instead of 1/T^i",
        "wrim/layers/pos_embed.py",
        "omega = 1.0 / temperature**omega",
        "omega = temperature**omega",
        LAYERS,
    ),
    Mutant(
        "key_instance_k_plus_1",
        "key-instance masks: k -> k + 1",
        "wrim/miners/key_instance.py",
        "select_per_row(sim.detach(), pos, k, largest=False)",
        "select_per_row(sim.detach(), pos, k + 1, largest=False)",
        ("tests/miners/test_key_instance.py", "tests/losses/test_cmkic.py"),
    ),
    Mutant(
        "key_instance_most_similar",
        "key-instance masks: most-similar instead of least-similar positives",
        "wrim/miners/key_instance.py",
        "select_per_row(sim.detach(), pos, k, largest=False)",
        "select_per_row(sim.detach(), pos, k, largest=True)",
        ("tests/miners/test_key_instance.py", "tests/losses/test_cmkic.py"),
    ),
    Mutant(
        "bnneck_bias_trained",
        "EmbeddingHead: the BNNeck bias trained by default instead of frozen at 0 ([D] freeze_bnneck_bias)",
        "wrim/models/heads.py",
        "freeze_bnneck_bias: bool = True,",
        "freeze_bnneck_bias: bool = False,",
        ("tests/test_decision_defaults.py",),
    ),
    Mutant(
        "sysu_camera_rule_dropped",
        "SYSU evaluation: the cam3 -> cam2 rule dropped",
        "wrim/evaluation/metrics.py",
        "return ~((query_cams == 3)[:, None] & (ranked_cams == 2))",
        "return torch.ones_like(ranked_cams, dtype=torch.bool)",
        ("tests/evaluation/test_metrics.py",),
    ),
    Mutant(
        "sampler_no_balancing",
        "IdentityModalitySampler: each step's identities drawn at random (no rounds)",
        "wrim/data/sampler.py",
        "steps.append(np.array(order[:per_step], dtype=np.int64))",
        "steps.append(rng.choice(self.ids, per_step, replace=False))",
        ("tests/data/test_sampler.py",),
    ),
    Mutant(
        "infrared_from_visible_pool",
        "IdentityModalitySampler: the infrared half of a batch drawn from the visible pool",
        "wrim/data/sampler.py",
        "ir = [self._draw(rng, self.index_by_id[int(pid)][1]) for pid in ids]",
        "ir = [self._draw(rng, self.index_by_id[int(pid)][0]) for pid in ids]",
        ("tests/data/test_sampler.py",),
    ),
)


def check_snippets(root: Path, mutants: tuple[Mutant, ...]) -> None:
    """Raise a RuntimeError naming every mutant whose snippet is not in its file exactly once."""
    problems = []
    for mutant in mutants:
        file = root / mutant.path
        if not file.is_file():
            problems.append(f"{mutant.name}: {mutant.path} does not exist")
            continue
        count = file.read_text().count(mutant.old)
        if count != 1:
            problems.append(f"{mutant.name}: the snippet {mutant.old!r} occurs {count} times in {mutant.path}")
    if problems:
        raise RuntimeError(
            "mutation snippets out of date (the code moved; update tests/mutation/run_mutations.py):\n  "
            + "\n  ".join(problems)
        )


def _pytest(copy: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    """Run ``pytest -x`` on ``tests`` inside ``copy`` with the copy's package first on the path."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    proc = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S)
    return proc.returncode, proc.stdout + proc.stderr


def _first_failure(output: str) -> str:
    match = re.search(r"^FAILED (\S+)", output, flags=re.MULTILINE)
    return match.group(1) if match else "?"


def run(
    names: list[str] | None = None, verbose: bool = True, mutants: tuple[Mutant, ...] = MUTANTS
) -> dict[str, str | None]:
    """Apply each selected mutant of ``mutants`` (default: the planted bugs above) to a fresh copy and run its tests.

    Returns:
        ``{mutant name: the first failing test id, or None when the mutant survived}``.

    Raises:
        RuntimeError: a snippet is missing, the copy does not import its own ``wrim``, or the unmutated tests fail.
    """
    selected = tuple(m for m in mutants if not names or m.name in names)
    unknown = set(names or ()) - {m.name for m in mutants}
    if unknown:
        raise RuntimeError(f"unknown mutants {sorted(unknown)}; --list shows the names")
    check_snippets(ROOT, selected)
    results: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="wrim-mutants-") as tmp:
        copy = Path(tmp) / "tree"
        shutil.copytree(ROOT, copy, ignore=_IGNORE)
        env = dict(os.environ, PYTHONPATH=str(copy))
        where = subprocess.run(
            [sys.executable, "-c", "import wrim; print(wrim.__file__)"],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not where.startswith(str(copy)):
            raise RuntimeError(f"the copy's tests would import wrim from {where!r}, not from the copy {copy}")
        union = tuple(dict.fromkeys(t for m in selected for t in m.tests))
        start = time.perf_counter()
        code, output = _pytest(copy, union)
        if code != 0:
            raise RuntimeError(f"the unmutated tests fail (exit {code}); fix them first:\n{output[-3000:]}")
        if verbose:
            print(f"baseline: {len(union)} test files pass unmutated ({time.perf_counter() - start:.0f} s)")
        for mutant in selected:
            file = copy / mutant.path
            original = file.read_text()
            file.write_text(original.replace(mutant.old, mutant.new))
            start = time.perf_counter()
            try:
                code, output = _pytest(copy, mutant.tests)
            finally:
                file.write_text(original)
            if code not in (0, 1):
                raise RuntimeError(f"{mutant.name}: pytest exit {code} (not a test failure):\n{output[-3000:]}")
            results[mutant.name] = _first_failure(output) if code == 1 else None
            if verbose:
                verdict = f"caught by {results[mutant.name]}" if code == 1 else "SURVIVED"
                print(f"{mutant.name:28s} {verdict} ({time.perf_counter() - start:.0f} s)", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name:28s} {mutant.description}  [{', '.join(mutant.tests)}]")
        return 0
    results = run(args.names or None)
    survivors = [name for name, caught in results.items() if caught is None]
    print(
        f"{len(results) - len(survivors)}/{len(results)} mutants caught"
        + (f"; survived: {survivors}" * bool(survivors))
    )
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
