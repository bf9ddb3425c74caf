"""Make the figures of the docs: the diagrams, and the curves, rank list and gate maps of a real synthetic run.

Run from the repository root by hand (needs matplotlib, the ``train`` extra); no test runs it:

    python docs/make_figures.py                  # the diagrams; then a `wrim train` run for the run figures
    python docs/make_figures.py --run runs/synthetic-<time>   # the diagrams + the figures of a finished run
    python docs/make_figures.py --run runs/synthetic-<time> --figures curves gate_maps
    python docs/make_figures.py --diagram-only
    python docs/make_figures.py epochs=2 eval.every=1      # a shorter run: config overrides go to `wrim train`

Without ``--run`` the script trains the shipped ``synthetic`` config (``wrim train``, a few minutes on a CPU) into a
temporary folder. It writes into ``docs/figures/``:

- ``architecture.svg``: WRIM-Net's data flow, where each MIIM sits, the heads and the losses;
- ``miim.svg``: one MIIM, its gate (SCC, GRI, SCR), the re-weighting and the normalised residual;
- ``modality_miim.svg``: ModalityMIIM's routing of each sample to its modality's copy;
- ``cmkic.svg``: CMKIC's key instances and negatives for one anchor;
- ``curves.png``: the loss, learning rate and validation curves the run wrote (``runs/<name>/curves.png``);
- ``ranklist.png``: the run's rank list on the synthetic test set (``runs/<name>/ranklist.png``);
- ``gate_maps.png``: ``wrim eval --gate-maps 4`` on the run's weights (``runs/<name>/gate_maps.png``);
- ``run.txt``: which run each run figure comes from, its schedule and final metrics.
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


class Sketch:
    """A matplotlib canvas in data coordinates with the diagrams' rounded boxes and arrows (the ``train`` extra)."""

    def __init__(self, size: tuple[float, float], xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        matplotlib.rcParams.update({"svg.hashsalt": "wrim", "font.size": 9, "font.family": "DejaVu Sans"})
        self.fig, self.ax = plt.subplots(figsize=size)
        self.ax.set_xlim(*xlim)
        self.ax.set_ylim(*ylim)
        self.ax.axis("off")

    def box(self, x, y, w, h, text, colour, bold=False, size=9, edge="#555555"):
        from matplotlib.patches import FancyBboxPatch

        self.ax.add_patch(
            FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.25,rounding_size=0.8", fc=colour, ec=edge, lw=0.8)
        )
        self.ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", size=size, weight="bold" if bold else None)
        return x, y, w, h

    def arrow(self, start, end, style="-|>", colour="#444444", dashed=False, curve=0.0, width=0.9):
        from matplotlib.patches import FancyArrowPatch

        self.ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle=style,
                mutation_scale=9,
                color=colour,
                lw=width,
                linestyle="--" if dashed else "-",
                shrinkA=0,
                shrinkB=0,
                connectionstyle=f"arc3,rad={curve}",
            )
        )

    def node(self, x, y, symbol, radius=1.6):
        """A round operator node (``⊙``, ``+``) centred at (x, y)."""
        from matplotlib.patches import Circle

        self.ax.add_patch(Circle((x, y), radius, fc="#ffffff", ec="#444444", lw=0.9))
        self.ax.text(x, y, symbol, ha="center", va="center", size=11)

    def save(self, path: Path) -> Path:
        import matplotlib.pyplot as plt

        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"Date": None} if path.suffix == ".svg" else {}
        self.fig.savefig(path, bbox_inches="tight", metadata=metadata, dpi=150)
        plt.close(self.fig)
        return path


def draw_architecture(path: Path) -> Path:
    """WRIM-Net as built by ``WRIMNet`` with its defaults (the paper's placements), drawn with matplotlib."""
    from matplotlib.patches import FancyBboxPatch

    sketch = Sketch((11, 5.6), (0, 110), (-2, 56))
    ax, box, arrow = sketch.ax, sketch.box, sketch.arrow

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

    return sketch.save(path)


def draw_miim(path: Path) -> Path:
    """One MIIM: the gate SCC → GRI → SCR, the re-weighting X ⊙ Up(G) and the normalised residual X + BN(·)."""
    sketch = Sketch((11, 3.8), (-2, 116), (-1, 37))
    box, arrow, text = sketch.box, sketch.arrow, sketch.ax.text
    box(0, 22, 10, 8, "X\n(B, C, H, W)", "#ffffff", size=8)
    # the gate branch (bottom row)
    gate = [
        (13, 15, "SCC\nconv s×s, stride s\nC → C' = C/r", "F2: (B, C', h, w)"),
        (
            31,
            21,
            "GRI\nLN → multi-head attention\nover the h·w region tokens\n(+ 2-D positional encoding)",
            "F4: (B, h·w, C')",
        ),
        (55, 14, "SCR\nLinear C' → C\nsigmoid", "G: (B, C, h, w), in (0, 1)"),
        (72, 9, "Up$_s$\nnearest", "(B, C, H, W)"),
    ]
    sketch.ax.plot([5, 5], [21.7, 8], color="#444444", lw=0.9)
    arrow((5, 8), (12.7, 8))
    for index, (x, w, label, shape) in enumerate(gate):
        box(x, 3, w, 10, label, _SHARED, size=7.5)
        text(x + w / 2, 0.6, shape, ha="center", size=7.5, style="italic")
        if index + 1 < len(gate):
            arrow((x + w + 0.3, 8), (gate[index + 1][0] - 0.3, 8))
    text(45, 15.2, "the gate  G = SCR(GRI(SCC(X)))", ha="center", size=8.5, weight="bold", color="#2f6b2f")
    # the re-weighting, the normalisation and the residual (top row)
    arrow((10.3, 26), (73.9, 26))
    sketch.node(76.5, 26, "⊙")
    arrow((76.5, 13.3), (76.5, 23.9))
    text(76.5, 29.2, "re-weighting\nX ⊙ Up$_s$(G)", ha="center", size=7.5)
    arrow((79.1, 26), (82.7, 26))
    box(83, 22, 10, 8, "BN\nnon-affine", _HEAD, size=8)
    arrow((93.3, 26), (95.4, 26))
    sketch.node(98, 26, "+")
    sketch.ax.plot([5, 5, 98, 98], [30.3, 34.5, 34.5, 31.5], color="#444444", lw=0.9)
    arrow((98, 31.5), (98, 28.5))
    text(50, 35.2, "residual: the input itself", ha="center", size=7.5, style="italic")
    text(98, 20.6, "normalised residual\nX + BN(·)", ha="center", va="top", size=7.5)
    arrow((100.6, 26), (103.7, 26))
    box(104, 22, 10, 8, "Out\n(B, C, H, W)", "#ffffff", size=8)
    return sketch.save(path)


def draw_modality_miim(path: Path) -> Path:
    """ModalityMIIM: a visible and an infrared copy of the gate, each sample routed by its modality id."""
    sketch = Sketch((10, 4.6), (-2, 104), (-1, 46))
    box, arrow, text = sketch.box, sketch.arrow, sketch.ax.text
    visible, infrared = "#cfe0f7", "#f7d3c8"
    batch = [("x$_1$  visible (0)", visible), ("x$_2$  infrared (1)", infrared)]
    batch += [("x$_3$  infrared (1)", infrared), ("x$_4$  visible (0)", visible)]
    for row, (label, colour) in enumerate(batch):
        box(0, 34 - 7 * row, 15, 5, label, colour, size=7.5)
    text(7.5, 41.5, "X: (B, C, H, W), modalities: (B,),\nin any order", ha="center", size=7.5)
    copies = [(28, "visible copy: SCC → GRI → SCR\ngate G$^V$ (its own weights)", visible)]
    copies += [(11, "infrared copy: SCC → GRI → SCR\ngate G$^I$ (its own weights)", infrared)]
    for y, label, colour in copies:
        box(24, y, 25, 9, label, colour, size=7.5)
        arrow((15.5, 25), (23.7, y + 4.5))
        arrow((49.3, y + 4.5), (56.7, 24.5))
    box(57, 19, 15, 11, "each sample takes\nthe gate of its\nmodality:\nG$_b$ = G$^{m_b}$(X)$_b$", "#ffffff", size=7.5)
    arrow((72.3, 24.5), (76.7, 24.5))
    tail = "X + BN$^m$(X ⊙ Up$_s$(G))\n\nBatchNorm statistics\nper modality (visible\nrows, infrared rows)"
    box(77, 17, 16, 15, tail, _SEPARATE, size=7.5)
    sketch.ax.plot([7.5, 7.5, 85], [12.7, 6, 6], color="#444444", lw=0.9)
    arrow((85, 6), (85, 16.7))
    text(46, 6.8, "X at full resolution", ha="center", size=7.5, style="italic")
    arrow((93.3, 24.5), (95.2, 24.5))
    text(98, 24.5, "(B, C, H, W)", ha="center", va="center", size=7.5, rotation=90)
    note = "with num_visible = n (visible rows first), each copy runs on its own rows only: the same values"
    text(46, 1.2, note, ha="center", size=7.5, style="italic")
    return sketch.save(path)


def draw_cmkic(path: Path) -> Path:
    """CMKIC for one visible anchor: its K = 2 key instances among the infrared positives, and the negatives."""
    sketch = Sketch((9, 5.2), (0, 100), (-14, 58))
    ax, arrow, text = sketch.ax, sketch.arrow, sketch.ax.text
    anchor, blue, red, green = (22, 30), "#2b6cb0", "#c0392b", "#2f8f2f"
    positives = [(28, 35), (27, 24), (36, 40)]  # infrared, same id, most similar: not keys
    keys = [(46, 18), (50, 36)]  # infrared, same id, least similar: the K = 2 key instances
    negatives = [(33, 52), (60, 48), (38, 8), (10, 10), (64, 14)]  # infrared, other ids
    for point in keys:
        arrow(anchor, point, style="-", colour=green, width=1.6)
    for point in negatives:
        arrow(anchor, point, style="-", colour=red, dashed=True, width=0.8)
    ax.scatter(*anchor, s=140, marker="o", c=blue, edgecolors="black", zorder=3)
    ax.scatter([16, 18], [37, 22], s=70, marker="o", facecolors="none", edgecolors=blue, zorder=3)
    ax.scatter(*zip(*positives), s=80, marker="^", c="#9dbbe0", edgecolors=blue, zorder=3)
    ax.scatter(*zip(*keys), s=110, marker="^", c=blue, edgecolors=green, linewidths=2.2, zorder=3)
    ax.scatter(*zip(*negatives), s=80, marker="^", c="#f2b8ae", edgecolors=red, zorder=3)
    text(anchor[0] - 1, anchor[1] + 3.2, "anchor", ha="right", size=8, weight="bold")
    text(0, 57, "one visible anchor among the batch's projections", size=8.5, weight="bold", va="top")
    text(53, 26, "key instances: the K = 2\nleast similar positives", size=8, color=green, va="center")
    legend = [
        ("o", blue, blue, "anchor: visible, identity A"),
        ("o", "none", blue, "identity A, visible: same modality, not contrasted"),
        ("^", "#9dbbe0", blue, "identity A, infrared: positives not among the K keys"),
        ("^", blue, green, "identity A, infrared: key instances (pulled: green)"),
        ("^", "#f2b8ae", red, "other identities, infrared: negatives (pushed: red)"),
    ]
    for row, (marker, face, edge, label) in enumerate(legend):
        ax.scatter([70], [54 - 5 * row], s=55, marker=marker, facecolors=face, edgecolors=edge)
        text(72.5, 54 - 5 * row, label, va="center", size=7)
    text(
        50,
        -6,
        r"$L(i) = -\frac{1}{|P^K(i)|}\sum_{p \in P^K(i)} \log \frac{e^{s_{ip}/\tau}}{e^{s_{ip}/\tau}"
        r" + \sum_{n \in N(i)} e^{s_{in}/\tau}}$",
        ha="center",
        size=11,
    )
    text(
        50,
        -12.5,
        "s: cosine similarity of the projections; τ = 0.1, K = 2. Infrared anchors (I → V) mirror this; each"
        " direction is averaged over its anchors, and the two are summed",
        ha="center",
        size=7.5,
    )
    return sketch.save(path)


def train_synthetic(output_dir: Path, overrides: list[str]) -> Path:
    """``wrim train`` with the shipped synthetic config and ``overrides``; returns the run folder it wrote."""
    command = [sys.executable, "-m", "wrim", "train", f"output_dir={output_dir}", "progress=false", *overrides]
    subprocess.run(command, check=True)
    runs = sorted(p for p in output_dir.iterdir() if p.is_dir())
    if not runs:
        raise RuntimeError(f"wrim train wrote no run folder into {output_dir}")
    return runs[-1]


def write_gate_maps(run: Path) -> None:
    """``wrim eval --gate-maps 4`` on the run's best weights: writes ``<run>/gate_maps.png``."""
    command = [sys.executable, "-m", "wrim", "eval", "--checkpoint", str(run), "--dataset", "synthetic"]
    subprocess.run([*command, "--trials", "0", "--gate-maps", "4"], check=True)


def _describe(run: Path) -> str:
    """The run's name, epochs, evaluation schedule and final metrics, for run.txt."""
    import yaml

    config_file = run / "config.yaml"
    config = (yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.is_file() else None) or {}
    final = run / "final_metrics.json"
    metrics = json.loads(final.read_text(encoding="utf-8")) if final.is_file() else {}
    shown = ", ".join(f"{k} {metrics[k]:.2f}" for k in ("R1", "mAP", "mINP") if k in metrics)
    evaluation = config.get("eval") or {}
    return (
        f"{run.name} (wrim train, synthetic config): epochs {config.get('epochs')}, evaluated every "
        f"{evaluation.get('every')} epochs on trials {evaluation.get('trials')}; final metrics {shown}"
    )


def copy_run_figures(run: Path, figures: list[str]) -> None:
    """Copy the run's figures into docs/figures; run.txt says which run each figure comes from."""
    if "gate_maps" in figures:
        write_gate_maps(run)
    notes = {}
    if (ASSETS / "run.txt").is_file():
        for line in (ASSETS / "run.txt").read_text(encoding="utf-8").splitlines():
            name, _, note = line.partition(": ")
            notes[name] = note
    for figure in figures:
        name = f"{figure}.png"
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run / name} is missing: was the run trained to the end with matplotlib?")
        shutil.copy(run / name, ASSETS / name)
        notes[name] = _describe(run)
    lines = [f"{name}: {note}" for name, note in sorted(notes.items())]
    (ASSETS / "run.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


DIAGRAMS = {
    "architecture.svg": draw_architecture,
    "miim.svg": draw_miim,
    "modality_miim.svg": draw_modality_miim,
    "cmkic.svg": draw_cmkic,
}
RUN_FIGURES = ["curves", "ranklist", "gate_maps"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run folder to take the run figures from")
    parser.add_argument("--diagram-only", action="store_true", help="only redraw the diagrams")
    parser.add_argument(
        "--figures", nargs="+", choices=RUN_FIGURES, default=RUN_FIGURES, help="the run figures to write (all)"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides for the training run, e.g. epochs=2")
    args = parser.parse_args(argv)
    for name, draw in DIAGRAMS.items():
        print(draw(ASSETS / name))
    if args.diagram_only:
        return
    if args.run is not None:
        copy_run_figures(args.run, args.figures)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            copy_run_figures(train_synthetic(Path(tmp), args.overrides), args.figures)
    print(f"{', '.join(f + '.png' for f in args.figures)}, run.txt -> {ASSETS}")


if __name__ == "__main__":
    main()
