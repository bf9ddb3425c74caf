"""``wrim bench``: every benchmark of ``wrim.engine.benchmarks`` runs at its smallest size, the training-step ones time
the engine's own step, the commands the docs quote parse, and nothing needs the source checkout."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import wrim.layers.token_linear as token_linear_module
from wrim.cli import main
from wrim.engine.benchmarks import BENCHMARKS, parse
from wrim.engine.benchmarks.token_linear import linear_path
from wrim.engine.step import TrainStep
from wrim.layers import TokenLinear
from wrim.losses import WRIMNetLoss

ROOT = Path(__file__).resolve().parents[2]
QUOTED = re.compile(r"wrim bench ([a-z_]+)((?: +-[^\n`|#]*)?)")


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("|---")]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name == "profile" else name
        for name in BENCHMARKS
        if name != "step"
    ],
)  # step: the next test; profile (an analysis of step's calls) only in the slow suite
def test_every_benchmark_runs_at_its_smallest_size(name, capsys):
    assert main(["bench", "--quick", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"== {name}\n")
    if name == "token_linear":  # its two lines: training step and embedding, both paths against the baseline
        assert [line.split(":")[0].split()[-3] for line in out.splitlines() if "F.linear" in line] == ["train", "infer"]
    else:
        assert len(_table_rows(out)) >= 2, out  # a header and at least one measured row


def test_the_step_benchmark_times_the_engines_step(monkeypatch, capsys):
    """Every timed training call is a ``TrainStep`` built by ``wrim.engine.build`` from the config: the default
    ``WRIMNetLoss``, the config's optimiser, over the parameters of the model it calls."""
    seen: list[TrainStep] = []
    call = TrainStep.__call__

    def spy(self, *args, **kwargs):
        seen.append(self)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(TrainStep, "__call__", spy)
    assert main(["bench", "--quick", "step"]) == 0
    steps = list({id(step): step for step in seen}.values())
    assert len(steps) == 2 and len(seen) >= 2 * 3  # both models; first call, warm-up and timed calls
    for step in steps:
        assert isinstance(step.loss, WRIMNetLoss) and isinstance(step.optimizer, torch.optim.SGD)  # the sysu recipe
        params = {id(p) for group in step.optimizer.param_groups for p in group["params"]}
        assert params == {id(p) for p in step.model.parameters() if p.requires_grad}
        assert step.takes_num_visible
    rows = [row for row in _table_rows(capsys.readouterr().out) if "eager" in row]
    assert float(rows[0].split("|")[6].strip().rstrip("x")) > 0  # the step ratio


def test_a_cuda_benchmark_is_skipped_with_one_line_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["bench", "step"]) == 0
    assert capsys.readouterr().out.splitlines() == ["== step: skipped, needs CUDA (--device cpu runs it on the CPU)"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "no_such_bench"], "available: layers, losses"),
        (["bench", "step", "--no-such-flag"], "step: unrecognized arguments: --no-such-flag"),
        (["bench", "step", "--sizes", "288by144"], "HxW"),
        (["bench", "layers", "step", "--batch", "4"], "apply to one benchmark"),
        (["bench", "--quick", "step", "--batch", "4"], "apply to one benchmark"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_list_names_every_benchmark(capsys):
    assert main(["bench", "--list"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == list(BENCHMARKS)


def _quoted_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for path in (ROOT / "docs" / "performance.md", ROOT / "examples" / "benchmarks" / "run_all.sh"):
        text = path.read_text(encoding="utf-8").replace("\\\n", " ")
        for match in QUOTED.finditer(text):
            found.append((path.name, match.group(1), shlex.split(match.group(2))))
    return found


@pytest.mark.repo  # reads docs/
def test_the_benchmark_commands_of_the_docs_parse():
    quoted = _quoted_commands()
    assert {name for _, name, _ in quoted} >= {"layers", "losses", "evaluation", "models", "step", "miim_parts"}
    for where, name, options in quoted:
        parse(name, options)  # raises ValueError naming the bad argument
        assert where and name in BENCHMARKS


def test_the_losses_benchmark_without_the_loop_reference(capsys, tmp_path):
    """From an installed wheel (no tests/ folder) the vectorised loss is still timed and the loop columns say so."""
    options = [*BENCHMARKS["losses"].QUICK, "--reference", str(tmp_path / "absent.py")]
    rows = BENCHMARKS["losses"].run(parse("losses", options))
    assert "loop reference: not found" in capsys.readouterr().out
    assert [row.split("|")[3].strip() for row in rows[2:]] == ["–", "–"]
    assert all(float(row.split("|")[4]) > 0 for row in rows[2:])


@pytest.mark.repo  # the loop reference is tests/losses/losses_loop_reference.py beside the source tree
def test_the_losses_benchmark_equals_the_loop_reference(capsys):
    rows = BENCHMARKS["losses"].run(parse("losses", list(BENCHMARKS["losses"].QUICK)))
    assert [row.split("|")[2].strip() for row in rows[2:]] == ["16", "32"]
    assert all(float(row.split("|")[7]) < 1e-5 for row in rows[2:])


def test_linear_path_switches_token_linear_and_restores_the_threshold():
    """The A/B of ``wrim bench token_linear`` runs the layer's own two branches: above the threshold the product is a
    1x1 convolution (a transposed view of a channel-first result), with the threshold out of reach ``F.linear``."""
    layer = TokenLinear(512, 2048)
    tokens = torch.randn(16, 162, 512)
    shipped = token_linear_module.CONV_MIN_MACS
    with linear_path(True):
        convolution = layer(tokens)
    with linear_path(False):
        linear = layer(tokens)
    assert shipped == token_linear_module.CONV_MIN_MACS
    assert not convolution.is_contiguous() and linear.is_contiguous()
    torch.testing.assert_close(convolution, linear, rtol=1e-4, atol=1e-4)


def test_wrim_bench_runs_outside_the_checkout(tmp_path):
    """What ``wrim bench`` runs is the package's own code: from another folder, with no examples/ at hand."""
    result = subprocess.run(
        [sys.executable, "-m", "wrim", "bench", "--quick", "models"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| wrimnet_resnet18 | 64x32 |" in result.stdout
