"""The ``wrim`` command line: ``train``, ``eval``, ``search``, ``bench``, ``synth``, ``check-data`` and ``export``.

Usage:

```text
wrim train                                   # the synthetic default: trains and evaluates on 2 CPU cores
wrim train --config sysu data.root=/data/SYSU-MM01 model.compile=true
wrim train --config synthetic --resume        # continue the latest synthetic run
wrim train --config sysu_adam --dry-run       # print the resolved config and the model summary, no training
torchrun --nproc_per_node=4 -m wrim train --config sysu data.root=... data.num_ids=4
wrim eval --checkpoint runs/sysu-... --dataset sysu --root /data/SYSU-MM01 mode=indoor   # the run's best
wrim eval --checkpoint runs/synthetic-... --dataset synthetic --gate-maps 4   # + gate_maps.png in the run
wrim bench                                    # every benchmark of wrim.engine.benchmarks (CUDA-only ones skipped)
wrim bench layers losses                      # only these two, at their default sizes
wrim bench step --device cpu --batch 16 --sizes 288x144 --modes eager   # one benchmark with its own arguments
wrim bench --quick                            # every benchmark at its smallest size (a smoke run)
wrim synth --out ./synthetic                  # write the synthetic set in SYSU-MM01's layout
wrim check-data --dataset sysu --root /data/SYSU-MM01   # counts and files against the published statistics
wrim check-data --dataset list --root /data/mine          # your own list.csv (or --import, any registered reader)
wrim train --import my_parts.py model.name=my_net data.dataset=my_data   # user code that registers parts
wrim search --checkpoint runs/synthetic-... --query q.jpg --query-modality infrared --gallery imgs/ \
    --gallery-modality visible                # ranking.csv and ranklist.png of the nearest gallery images
wrim export runs/synthetic-... --out ./my-model --onnx  # a finished run as a shareable folder (wrim.engine.export)
```

``python -m wrim ...`` is the same program. A failure prints one line and exits with code 2 (the traceback with
``wrim --debug ...`` or ``WRIM_DEBUG=1``); during training the line is also written to the run's ``train.log``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from wrim.engine.config import Config

__all__ = ["SUBCOMMANDS", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wrim`` command: one registration function per subcommand (`SUBCOMMANDS`)."""
    parser = argparse.ArgumentParser(prog="wrim", description="WRIM-Net training, evaluation and benchmarks.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (or WRIM_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in SUBCOMMANDS:
        register(sub)
    return parser


def _add_import(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable): user code that registers models and datasets (``wrim.engine.plugins``)."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module (name on PYTHONPATH, or a .py path) that registers models / datasets; repeatable. "
        "Modules of the 'wrim.plugins' entry points are imported without it",
    )


def _add_train(sub: argparse._SubParsersAction) -> None:
    from wrim.engine.config import RESUME_OVERRIDABLE, list_configs

    train = sub.add_parser("train", help="train and evaluate a model from a config")
    train.add_argument(
        "--config", default="synthetic", help=f"a shipped config {list_configs()} or a YAML path (default: synthetic)"
    )
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue RUN_DIR (or output_dir/run_name, or the newest run of --config) with its saved config; only "
        f"{', '.join(key + '*' if key.endswith('.') else key for key in RESUME_OVERRIDABLE)} may be overridden",
    )
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config and the model summary, build the optimiser and losses, do not train",
    )
    _add_import(train)
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=0.01")
    train.set_defaults(handler=_train)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from wrim.engine.checkpoint import WEIGHTS
    from wrim.engine.precision import AMP_CHOICES

    ev = sub.add_parser("eval", help="evaluate a checkpoint on a dataset's protocol")
    ev.add_argument(
        "--checkpoint",
        required=True,
        help="a run folder (the checkpoint its final evaluation used), <run>/best or <run>/last, or a checkpoint set's "
        f"{WEIGHTS}",
    )
    ev.add_argument("--dataset", required=True, help="a registered dataset: synthetic, sysu, regdb, llcm, list, ...")
    ev.add_argument("--root", default=None, help="the dataset folder (not needed for synthetic)")
    ev.add_argument("--trials", default=None, help="comma-separated gallery trials (default: the run's)")
    ev.add_argument("--img-size", default=None, help="H,W (default: the training size from model.json)")
    ev.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: the run's)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    ev.add_argument("--flip", action=argparse.BooleanOptionalAction, help="add the flipped image (default: the run's)")
    ev.add_argument("--amp", choices=AMP_CHOICES, help="autocast (default: the run's amp)")
    ev.add_argument("--json", action="store_true", help="print the per-trial metrics, mean and std as JSON")
    ev.add_argument("--compile", action="store_true", help="torch.compile the model (opt-in; compiling takes minutes)")
    ev.add_argument("--dataset-arg", action="append", default=[], metavar="key=value", help="e.g. trial=3 (RegDB)")
    ev.add_argument(
        "--gate-maps",
        type=int,
        default=0,
        metavar="N",
        help="write gate_maps.png (each MIIM's gate over N queries and a gallery image of the same person) into "
        "the checkpoint's run folder",
    )
    ev.add_argument(
        "--allow-cross-trial",
        action="store_true",
        help="evaluate a RegDB model on a split it was not trained on (its test identities leak); the card says so",
    )
    _add_import(ev)
    ev.add_argument("protocol", nargs="*", metavar="key=value", help="protocol arguments (default: the run's)")
    ev.set_defaults(handler=_eval)


def _add_synth(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="write the synthetic VI-ReID set in SYSU-MM01's native layout")
    synth.add_argument("--out", required=True, help="the output folder")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--num-ids", type=int, default=None, help="number of identities (default: the dataset's)")
    synth.set_defaults(handler=_synth)


def _add_search(sub: argparse._SubParsersAction) -> None:
    from wrim.engine.search import add_search_arguments

    search = sub.add_parser("search", help="rank a folder of images against query images with a run")
    add_search_arguments(search)
    _add_import(search)
    search.set_defaults(handler=_search)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from wrim.engine.benchmarks import add_bench_parser, run_bench

    add_bench_parser(sub)  # wrim.engine.benchmarks owns its arguments
    sub.choices["bench"].set_defaults(handler=run_bench)


def _add_export(sub: argparse._SubParsersAction) -> None:
    from wrim.engine.export import add_export_parser, run_export

    add_export_parser(sub)  # wrim.engine.export owns its arguments
    sub.choices["export"].set_defaults(handler=run_export)


def _add_check_data(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check-data", help="check a dataset copy: files, counts, fingerprint (exit 0 = matches)")
    check.add_argument("--dataset", required=True, help="sysu, regdb, llcm, list, synthetic or any registered one")
    check.add_argument("--root", default=None, help="the dataset folder in its native layout")
    check.add_argument(
        "--expect", action="append", default=[], metavar="key=value", help="replace a published number, e.g. query=12"
    )
    check.add_argument("--no-decode", action="store_true", help="read the image files without decoding them")
    check.add_argument("--workers", type=int, default=None, help="threads reading the files (default: up to 8)")
    check.add_argument("--dataset-arg", action="append", default=[], metavar="key=value", help="e.g. file=other.csv")
    _add_import(check)
    check.set_defaults(handler=_check_data)


def _parse_pairs(items: list[str]) -> dict[str, object]:
    pairs = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{item!r} must look like key=value")
        key, value = item.split("=", 1)
        pairs[key] = yaml.safe_load(value)
    return pairs


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    from wrim.evaluation import METRIC_NAMES

    cells = "  ".join(f"{k} {metrics[k]:.2f}" for k in METRIC_NAMES if k in metrics)
    print(f"{title}: {cells}", flush=True)


def _train(args: argparse.Namespace) -> int:
    from wrim.engine.config import load_config
    from wrim.engine.resume import check_resume, resume_config
    from wrim.engine.rundir import resume_folder
    from wrim.engine.trainer import Trainer

    start = time.perf_counter()
    overrides = list(args.overrides)
    run_dir = args.resume if isinstance(args.resume, str) else None
    if run_dir is not None and "=" in run_dir and not Path(run_dir).is_dir():  # `--resume key=value`
        overrides.insert(0, run_dir)
        run_dir = None
    config = load_config(args.config, overrides)
    if args.resume:
        run_dir = resume_folder(config, run_dir)
        config = resume_config(run_dir, overrides)
    if args.dry_run:
        if args.resume:  # Trainer checks a resume; a dry run builds no Trainer
            check_resume(run_dir, config)
        return _dry_run(config)
    result = Trainer(config, run_dir=run_dir, resume=bool(args.resume)).fit()
    if int(os.environ.get("RANK", "0")) == 0:
        _print_metrics(f"final ({result.run_dir})", result.metrics)
        print(f"wall time {time.perf_counter() - start:.0f} s", flush=True)
    return 0


def _dry_run(config: Config) -> int:
    """Prints the resolved config, builds the dataset (when it can be read), the model (without weights), losses,
    optimiser and augmentation, as training would (``wrim.engine.build``)."""
    from wrim.data import dataset_needs_root
    from wrim.engine.build import build_dataset, build_loss, build_model, build_optimizer, build_train_transform
    from wrim.engine.config import config_to_dict
    from wrim.models import summary

    data = config.data
    print(f"# resolved config {config.name!r}", flush=True)
    print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="", flush=True)
    readable = data.root is not None or not dataset_needs_root(data.dataset)
    num_classes = build_dataset(data).num_classes if readable else None  # also checks the folder's layout
    model = build_model(config.model, num_classes or 1, tuple(data.img_size), weights=False)
    build_loss(config.loss)
    optimizer = build_optimizer(model, config.optim)
    build_train_transform(data)
    print(summary(model), flush=True)
    weights = "not loaded in a dry run" if config.model.pretrained or config.model.pretrained_file else "none"
    groups = ", ".join(f"{len(g['params'])} tensors at lr {g['lr']:g}" for g in optimizer.param_groups)
    identities = f"{num_classes} identities" if readable else "1 identity here (no data.root: read when training)"
    print(
        f"dry run of {config.name!r}: {config.model.name} for {identities} at {data.img_size[0]}x{data.img_size[1]}, "
        f"backbone weights {weights}; {type(optimizer).__name__} ({groups}, weight decay "
        f"{config.optim.weight_decay:g}); loss {config.loss.metric}; no training",
        flush=True,
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from wrim.engine.evaluate import evaluate_checkpoint, resolve_checkpoint
    from wrim.engine.rundir import complete_old_run

    if args.gate_maps < 0:
        raise ValueError(f"--gate-maps must be a number of queries >= 1, got {args.gate_maps}")
    checkpoint, run_dir = resolve_checkpoint(Path(args.checkpoint))
    report = evaluate_checkpoint(
        checkpoint, run_dir, args.dataset, args.root,
        trials=[int(t) for t in args.trials.split(",")] if args.trials else None,
        img_size=_parse_img_size(args.img_size) if args.img_size else None, batch_size=args.batch_size,
        device=args.device, flip=args.flip, amp=args.amp, num_workers=args.num_workers,
        dataset_kwargs=_parse_pairs(args.dataset_arg), protocol=_parse_pairs(args.protocol) or None,
        compile=args.compile, allow_cross_trial=args.allow_cross_trial,
    )  # fmt: skip
    print(report.as_json() if args.json else report.format(), flush=True)
    note = complete_old_run(run_dir, report)
    if note:
        print(note, file=sys.stderr, flush=True)
    if args.gate_maps:
        from wrim.visualize import plot_split_gate_maps

        split = report.dataset_object.test_split(report.trial_ids[0], **report.protocol)
        path = run_dir / "gate_maps.png"
        try:
            plot_split_gate_maps(report.model, split, args.gate_maps, path, report.img_size)
        except ValueError as err:
            raise ValueError(f"--gate-maps: {err}") from err
        print(f"gate maps of {args.gate_maps} queries: {path}", flush=True)
    return 0


def _parse_img_size(text: str) -> tuple[int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        size = tuple(int(v) for v in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"--img-size must be H,W with two positive integers (e.g. 288,144), got {text!r}")
    return size


def _search(args: argparse.Namespace) -> int:
    from wrim.engine.evaluate import resolve_checkpoint
    from wrim.engine.search import run_search

    return run_search(args, *resolve_checkpoint(Path(args.checkpoint)))


def _synth(args: argparse.Namespace) -> int:
    from wrim.data import SyntheticVIReID

    start = time.perf_counter()
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out!r} is a file; give a folder (created if missing)")
    kwargs = {"seed": args.seed}
    if args.num_ids is not None:
        kwargs["num_ids"] = args.num_ids
    dataset = SyntheticVIReID(root=args.out, **kwargs)
    print(
        f"synthetic set in {dataset.root}: {dataset.num_classes} training identities, {len(dataset.train)} training "
        f"images ({time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    return 0


def _check_data(args: argparse.Namespace) -> int:
    from wrim.data.check import check_dataset

    expected, kwargs = _parse_pairs(args.expect), _parse_pairs(args.dataset_arg)
    report = check_dataset(args.dataset, args.root, expected, not args.no_decode, args.workers, kwargs)
    print(report.format(), flush=True)
    return 0 if report.ok else 1


def _add_study(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser("study", help="run a study file (variants x seeds), resumable, on local workers or SLURM")
    study.add_argument("study", help="the study file (YAML: config, seeds, variants, comparisons)")
    study.add_argument("--out", required=True, help="records (<out>/runs/*.json) and tables go here")
    study.add_argument("--runs-dir", default=None, help="run folders with checkpoints (default <out>/checkpoints)")
    study.add_argument("--workers", type=int, default=1, help="runs at a time (local executor)")
    study.add_argument("--threads", type=int, default=1, help="torch threads per run")
    study.add_argument("--executor", choices=["local", "slurm"], default="local")
    study.add_argument(
        "--slurm", action="append", default=[], metavar="key=value", help="submitit parameter, e.g. timeout_min=60"
    )
    study.add_argument("--only", nargs="+", default=None, metavar="VARIANT", help="run only these variants")
    study.add_argument("--dry-run", action="store_true", help="print the runs to do, run nothing")
    study.add_argument("--allow-mixed", action="store_true", help="continue a study made by other code (marked)")
    _add_import(study)
    study.set_defaults(handler=_study)


def _study(args: argparse.Namespace) -> int:
    from wrim.study import check_one_code_version, load_study, plan, run_local, submit_slurm
    from wrim.study.runner import summary_line

    if args.workers < 1 or args.threads < 1:
        raise ValueError(f"--workers and --threads must be >= 1; got {args.workers} and {args.threads}")
    spec = load_study(args.study)
    out = Path(args.out)
    jobs = plan(spec, out, Path(args.runs_dir) if args.runs_dir else out / "checkpoints")
    if args.only:
        unknown = sorted(set(args.only) - set(spec.variants))
        if unknown:
            raise ValueError(f"--only: unknown variant(s) {unknown}; the study has {sorted(spec.variants)}")
        jobs = [job for job in jobs if job.variant.key in args.only]
    if not args.allow_mixed:
        check_one_code_version(jobs)
    if args.dry_run:
        for job in jobs:
            state = "finished" if job.record_path.is_file() else "to run"
            print(f"{job.name}: {state}", flush=True)
        print(summary_line(jobs), flush=True)
        return 0
    if args.executor == "slurm":
        ids = submit_slurm(jobs, args.threads, _parse_pairs(args.slurm))
        print(f"submitted {len(ids)} runs as a SLURM job array: {', '.join(ids) or 'nothing to do'}", flush=True)
        return 0
    failures = run_local(jobs, args.workers, args.threads, log=lambda line: print(line, flush=True))
    print(summary_line(jobs), flush=True)
    _study_tables(spec, out, args.allow_mixed)
    if failures:
        raise ValueError(f"{len(failures)} run(s) failed, first: {failures[0]}; rerun the same command to retry")
    return 0


def _study_tables(spec: object, out: Path, allow_mixed: bool) -> None:
    """The study's comparisons from its records (``wrim compare --study``) into ``out``, or why there are none."""
    from wrim.study.compare import COMPARED_METRICS, compare_study, load_runs, write_outputs

    records = sorted((out / "runs").glob("*.json"))
    try:
        tables = compare_study(spec, load_runs(records), COMPARED_METRICS, allow_mixed)
    except ValueError as err:
        print(f"no tables yet: {err}", flush=True)
        return
    written = write_outputs(tables, out)
    print(f"tables: {', '.join(str(path) for path in written)}", flush=True)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    from wrim.study.compare import COMPARED_METRICS

    compare = sub.add_parser(
        "compare", help="group runs by their config difference, pair them by seed, and report paired differences"
    )
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run folders or study records (<out>/runs/*.json)")
    compare.add_argument("--study", default=None, help="a study file: one table per comparison it lists")
    compare.add_argument("--reference", default=None, help="the reference group (default: the first)")
    compare.add_argument("--metrics", nargs="+", default=list(COMPARED_METRICS), help="metrics to report")
    compare.add_argument("--plot-metric", default="mAP", help="the forest plot's metric")
    compare.add_argument("--out", default=None, help="write compare.md, .csv, .json and forest.png here")
    compare.add_argument("--allow-mixed", action="store_true", help="make the table from mixed provenance, marked")
    compare.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from wrim.study import load_study
    from wrim.study.compare import compare_runs, compare_study, load_runs, to_markdown, write_outputs

    runs = load_runs(args.runs)
    metrics = tuple(args.metrics)
    if args.study:
        tables = compare_study(load_study(args.study), runs, metrics, args.allow_mixed)
    else:
        tables = [compare_runs(runs, args.reference, metrics=metrics, allow_mixed=args.allow_mixed)]
    print(to_markdown(tables), flush=True)
    if args.out:
        written = write_outputs(tables, args.out, args.plot_metric)
        print(f"wrote {', '.join(str(path) for path in written)}", flush=True)
    return 0


#: The subcommands, each a registration function that adds its parser and sets ``handler`` (a subcommand in its own
#: module registers the same way: ``def add_parser(sub): p = sub.add_parser(...); p.set_defaults(handler=run)``).
SUBCOMMANDS = (
    _add_train,
    _add_eval,
    _add_search,
    _add_bench,
    _add_synth,
    _add_check_data,
    _add_export,
    _add_study,
    _add_compare,
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wrim`` console script and ``python -m wrim``.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The process exit code: 2 after any error (one line on stderr; the traceback with ``--debug`` or
        ``WRIM_DEBUG=1``), 130 after Ctrl-C.
    """
    from wrim.engine.plugins import load_plugins

    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("WRIM_DEBUG", "") not in ("", "0")
    try:
        if hasattr(args, "imports"):  # the commands that build models or datasets by name
            load_plugins(args.imports)
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"wrim {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            traceback.print_exc()
        print(f"wrim {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    """The error as one line: ``ValueError`` s as their message, others prefixed by their type; an error re-raised
    by a DataLoader worker (whose message holds the worker's traceback) as that traceback's last line."""
    text = str(err)
    if "Original Traceback" in text:
        return [line for line in text.splitlines() if line.strip()][-1].strip()
    text = " ".join(text.split())
    return text if isinstance(err, ValueError) else f"{type(err).__name__}: {text}"
