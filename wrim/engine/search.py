"""``wrim search``: rank a folder of images against query images with a trained run; a CSV and a rank-list picture.

```text
wrim search --checkpoint runs/sysu-... --query night/ --query-modality infrared \
            --gallery day/ --gallery-modality visible --top 10 --out search/
```

writes ``search/ranking.csv`` (``query,rank,gallery,distance``, the ``--top`` nearest gallery images of every query)
and ``search/ranklist.png`` (each query beside its nearest gallery images; frames are green / red only when the
images sit in folders named by identity, e.g. ``0001/``). Every image needs its modality: a folder of one
modality is the usual case (docs: Evaluation, section Using a trained checkpoint).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

__all__ = ["add_search_arguments", "run_search"]


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``wrim search`` (registered by ``wrim.cli``)."""
    from wrim.engine.precision import AMP_CHOICES

    parser.add_argument("--checkpoint", required=True, help="a run folder (its best checkpoint) or a file in one")
    parser.add_argument("--query", required=True, help="a query image, or a folder of query images")
    parser.add_argument("--gallery", required=True, help="the folder of gallery images (searched recursively)")
    for side in ("query", "gallery"):
        parser.add_argument(
            f"--{side}-modality",
            required=True,
            choices=["visible", "infrared"],
            help=f"the modality of every {side} image (the model routes each image by it)",
        )
    parser.add_argument("--top", type=int, default=10, help="gallery images per query in the CSV and picture")
    parser.add_argument("--out", default="search", help="the output folder (ranking.csv, ranklist.png)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", choices=AMP_CHOICES, default=None, help="default: the run's")
    parser.add_argument("--flip", action="store_true", help="add the flipped image's embedding")


def run_search(args: argparse.Namespace, checkpoint: Path, run_dir: Path) -> int:
    """Embeds the query and gallery images with the run's weights, writes ``ranking.csv`` and ``ranklist.png``."""
    from wrim.engine.evaluate import load_run_model
    from wrim.evaluation import embed_folder, pairwise_distance, plot_ranklist, rank_gallery

    if args.top < 1:
        raise ValueError(f"--top must be >= 1, got {args.top}")
    model = load_run_model(run_dir, checkpoint, device=args.device, amp=args.amp)
    kwargs = {"img_size": model.img_size, "device": model.device, "flip": args.flip}
    query = embed_folder(model, args.query, args.query_modality, **kwargs)
    gallery = embed_folder(model, args.gallery, args.gallery_modality, **kwargs)
    order, dist = rank_gallery(query.embeddings, gallery.embeddings, topk=args.top)  # (Q, k), (Q, k)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ranking.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "rank", "gallery", "distance"])
        for q, record in enumerate(query.records):
            for rank, (g, d) in enumerate(zip(order[q].tolist(), dist[q].tolist()), 1):
                writer.writerow([record.path, rank, gallery.records[g].path, f"{d:.6f}"])
    print(f"{len(query.records)} queries x {len(gallery.records)} gallery images: {out / 'ranking.csv'}", flush=True)
    # an unknown identity (-1) on both sides would frame every image as a match: the queries' become -2
    queries = [dataclasses.replace(r, pid=-2) if r.pid == -1 else r for r in query.records]
    try:
        picture = plot_ranklist(
            pairwise_distance(query.embeddings, gallery.embeddings),
            queries,
            gallery.records,
            out / "ranklist.png",
            protocol="regdb",  # no camera rule: every gallery image is ranked
            topk=args.top,
            num_queries=min(len(query.records), 6),
            img_size=model.img_size,
        )
        print(f"rank-list picture: {picture}", flush=True)
    except ImportError:
        print("matplotlib not installed: no ranklist.png (pip install -e '.[train]')", flush=True)
    return 0
