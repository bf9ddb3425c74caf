"""Make the figures of the docs: the WRIM-Net diagram, and the curves and rank list of a real synthetic run.

Run from the repository root (needs matplotlib, the ``train`` extra):

    python docs/make_figures.py                  # the diagram; then a `wrim train` run for the two run figures
    python docs/make_figures.py --run runs/synthetic-<time>   # the diagram + the figures of a finished run
    python docs/make_figures.py --diagram-only
    python docs/make_figures.py epochs=2 eval.every=1      # a shorter run: config overrides go to `wrim train`

Without ``--run`` the script trains the shipped ``synthetic`` config (``wrim train``, a few minutes on a CPU) into a
temporary folder. It writes into ``docs/figures/``:

- ``architecture.svg``: WRIM-Net's data flow, where each MIIM sits, the heads and the losses;
- ``curves.png``: the loss, learning rate and validation curves the run wrote (``runs/<name>/curves.png``);
- ``ranklist.png``: the run's rank list on the synthetic test set (``runs/<name>/ranklist.png``);
- ``run.txt``: which run and config the two run figures come from, and its final metrics.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "figures"

# Diagram colours: backbone stages, modality-specific MIIMs, shared MIIMs, heads, losses.
_STAGE, _SEPARATE, _SHARED, _HEAD, _LOSS, _EVAL = "#dbe4f0", "#f6d2b8", "#cfe8cf", "#ece0f3", "#f8e6a0", "#e4e4e4"


def draw_architecture(path: Path) -> Path:
    """WRIM-Net as built by ``WRIMNet`` with its defaults (the paper's placements), drawn with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    matplotlib.rcParams.update({"svg.hashsalt": "wrim", "font.size": 9, "font.family": "DejaVu Sans"})
    fig, ax = plt.subplots(figsize=(11, 5.6))
    ax.set_xlim(0, 110)
    ax.set_ylim(-2, 56)
    ax.axis("off")

    def box(x, y, w, h, text, colour, bold=False, size=9):
        ax.add_patch(
            FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.25,rounding_size=0.8", fc=colour, ec="#555555", lw=0.8)
        )
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", size=size, weight="bold" if bold else None)
        return x, y, w, h

    def arrow(start, end, style="-|>", colour="#444444", dashed=False):
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle=style,
                mutation_scale=9,
                color=colour,
                lw=0.9,
                linestyle="--" if dashed else "-",
                shrinkA=0,
                shrinkB=0,
            )
        )

    # Backbone row (y 40..48): input, stem, four stages each followed by its MIIM.
    y, h = 40, 8
    box(0.3, y, 8.3, h, "images\n(B, 3, H, W)\nmodalities\n(B,)", "#ffffff", size=7.5)
    box(10.5, y, 6, h, "stem", _STAGE)
    arrow((8.8, y + h / 2), (10.3, y + h / 2))
    stages = [
        ("Block1", "MIIM$^{V}$ | MIIM$^{I}$\nr=2, s=4", _SEPARATE),
        ("Block2", "MIIM$^{V}$ | MIIM$^{I}$\nr=2, s=2", _SEPARATE),
        ("Block3", "MIIM\nr=4, s=1", _SHARED),
        ("Block4\nstride 1", "MIIM\nr=4, s=1", _SHARED),
    ]
    x = 18.5
    outputs = {}
    for index, (stage, miim, colour) in enumerate(stages, start=1):
        arrow((x - 1.7, y + h / 2), (x - 0.2, y + h / 2))
        box(x, y, 7, h, stage, _STAGE)
        arrow((x + 7.3, y + h / 2), (x + 8.8, y + h / 2))
        box(x + 9, y, 11, h, miim, colour, size=8)
        outputs[index] = (x + 9 + 5.5, y)
        x += 22.5
    ax.text(
        outputs[1][0] + 11,
        y + h + 2.2,
        "modalities route each sample to its own copy",
        ha="center",
        size=8,
        style="italic",
        color="#8a4b1c",
    )
    ax.text(outputs[3][0], y - 2.2, "P4", ha="center", size=9, weight="bold")
    ax.text(outputs[4][0], y - 2.2, "P5", ha="center", size=9, weight="bold")

    # Heads row (y 22..30): P5 global, P5 strips, P4 global; each GAP -> BNNeck.
    hy, hh = 21, 9
    heads = [
        (58, "p4_global\nGAP → BNNeck", outputs[3]),
        (75, "p5_global\nGAP → BNNeck", outputs[4]),
        (92, "p5_part0, p5_part1\n2 strips → GAP\n→ BNNeck", outputs[4]),
    ]
    for hx, text, (ox, oy) in heads:
        box(hx, hy, 15, hh, text, _HEAD, size=8)
        arrow((ox, oy - 4), (hx + 7.5, hy + hh + 0.3))

    # Outputs of the heads: projections (P4, P5 global) and classifiers (every head).
    py, ph = 8, 7
    box(58, py, 15, ph, "projection MLP\nz4 (B, P)", _HEAD, size=8)
    box(75, py, 15, ph, "projection MLP\nz5 (B, P)", _HEAD, size=8)
    box(92, py, 15, ph, "classifier per head\nlogits (B, K)", _HEAD, size=8)
    arrow((65.5, hy - 0.3), (65.5, py + ph + 0.3))
    arrow((82.5, hy - 0.3), (82.5, py + ph + 0.3))
    for hx, _, _ in heads:
        arrow((hx + 13, hy - 0.3), (99.5, py + ph + 0.3), dashed=True, colour="#777777")

    # Losses (bottom row) and the test embedding (left).
    box(58, 0.3, 32, 5, "AICL = λ5·CMKIC(z5) + λ4·CMKIC(z4)", _LOSS, size=8.5)
    box(92, 0.3, 15, 5, "ID loss per head", _LOSS, size=8.5)
    arrow((65.5, py - 0.3), (68, 5.6))
    arrow((82.5, py - 0.3), (80, 5.6))
    arrow((99.5, py - 0.3), (99.5, 5.6))
    box(2, 12, 44, 14, "", "#ffffff")
    ax.text(24, 23.3, "training: WRIMNetOutput", ha="center", size=9, weight="bold")
    ax.text(24, 19.4, "logits, BNNeck features and projections per head;\nloss = ID + AICL", ha="center", size=8)
    ax.text(24, 15.0, "eval: e = L2norm(concat of the heads' BNNeck features)", ha="center", size=8)
    legend = [
        (_SEPARATE, "modality-specific MIIM (ModalityMIIM)"),
        (_SHARED, "shared MIIM"),
        (_HEAD, "heads"),
        (_LOSS, "losses"),
    ]
    for row, (colour, text) in enumerate(legend):
        ax.add_patch(
            FancyBboxPatch((2, 6.5 - 2.2 * row), 2.2, 1.5, boxstyle="round,pad=0.1", fc=colour, ec="#555555", lw=0.6)
        )
        ax.text(5.2, 7.25 - 2.2 * row, text, va="center", size=8)
    ax.text(
        2,
        31,
        "MIIM: compress (conv k = s, C → C/r) → GRI attention over the region tokens → restore\n"
        "(Linear C/r → C, sigmoid, upsample) → gate:  Out = X + BN(X ⊙ gate)",
        size=8,
        va="bottom",
    )

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return path


def train_synthetic(output_dir: Path, overrides: list[str]) -> Path:
    """``wrim train`` with the shipped synthetic config and ``overrides``; returns the run folder it wrote."""
    command = [sys.executable, "-m", "wrim", "train", f"output_dir={output_dir}", "progress=false", *overrides]
    subprocess.run(command, check=True)
    runs = sorted(p for p in output_dir.iterdir() if p.is_dir())
    if not runs:
        raise RuntimeError(f"wrim train wrote no run folder into {output_dir}")
    return runs[-1]


def _changed_keys(config: str) -> list[str]:
    """The top-level epochs and eval settings of a run's resolved config, for run.txt."""
    import yaml

    resolved = yaml.safe_load(config) or {}
    return [f"epochs: {resolved.get('epochs')}", f"eval: {resolved.get('eval')}"]


def copy_run_figures(run: Path) -> None:
    """Copy the run's curves and rank list into docs/figures, with a note of where they come from."""
    for name in ("curves.png", "ranklist.png"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run / name} is missing: was the run trained to the end with matplotlib?")
        shutil.copy(run / name, ASSETS / name)
    config = (run / "config.yaml").read_text(encoding="utf-8") if (run / "config.yaml").is_file() else ""
    lines = [f"run: {run.name} (wrim train, synthetic config)", *_changed_keys(config)]
    final = run / "final_metrics.json"
    if final.is_file():
        lines.append("final metrics: " + json.dumps(json.loads(final.read_text(encoding="utf-8")), sort_keys=True))
    (ASSETS / "run.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run folder to take curves.png / ranklist.png from")
    parser.add_argument("--diagram-only", action="store_true", help="only redraw architecture.svg")
    parser.add_argument("overrides", nargs="*", help="config overrides for the training run, e.g. epochs=2")
    args = parser.parse_args(argv)
    print(draw_architecture(ASSETS / "architecture.svg"))
    if args.diagram_only:
        return
    if args.run is not None:
        copy_run_figures(args.run)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            copy_run_figures(train_synthetic(Path(tmp), args.overrides))
    print(f"curves.png, ranklist.png, run.txt -> {ASSETS}")


if __name__ == "__main__":
    main()
