"""A user's own data for the ListDataset tests: synthetic images copied into an arbitrary layout, described by a
list.csv with string identities and cameras."""

import shutil
from pathlib import Path

from wrim.data import SyntheticVIReID
from wrim.modality import VISIBLE


def write_list_tree(root: Path) -> Path:
    """Copies a small synthetic set (8 train, 4 test identities) to ``root`` and writes ``root/list.csv``.

    Layout: ``train/<modality>/<pid>_<n>.jpg`` and ``test/<n>.jpg``; identities are ``person-<id>`` strings,
    cameras ``cam-<id>`` strings; the test split is trial 0's query and gallery of the synthetic protocol.
    """
    source = SyntheticVIReID(num_ids=8, num_test_ids=4, images_per_camera=2)
    split = source.test_split(0)
    rows = ["path,pid,camera,modality,split"]
    groups = [("train", r, f"train/{'day' if r.modality == VISIBLE else 'night'}") for r in source.train]
    groups += [("query", r, "test") for r in split.query] + [("gallery", r, "test") for r in split.gallery]
    for n, (kind, record, folder) in enumerate(groups):
        pid = record.pid if kind != "train" else 1000 + record.pid  # train ids are relabelled: keep them apart
        path = Path(folder) / f"{pid}_{n}{Path(record.path).suffix}"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(record.path, root / path)
        modality = "visible" if record.modality == VISIBLE else "infrared"
        rows.append(f"{path.as_posix()},person-{pid},cam-{record.camid},{modality},{kind}")
    (root / "list.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root
