"""ListDataset: a user's own data as one list.csv, read, trained on, checked, and each malformed row one line."""

import shutil

import pytest

from tests.data._list_tree import write_list_tree
from tests.engine._tiny import tiny_overrides
from wrim.cli import main
from wrim.data import ListDataset, SyntheticVIReID, create_dataset, list_datasets
from wrim.modality import INFRARED, VISIBLE


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_list_tree(tmp_path_factory.mktemp("mine"))


@pytest.fixture
def copy(tree, tmp_path):
    """A copy of the tree the test may damage."""
    return shutil.copytree(tree, tmp_path / "copy")


def test_reads_the_list_like_the_synthetic_reader_it_was_copied_from(tree):
    source = SyntheticVIReID(num_ids=8, num_test_ids=4, images_per_camera=2)
    dataset = create_dataset("list", tree)
    assert "list" in list_datasets() and isinstance(dataset, ListDataset)
    assert dataset.num_classes == 8 and len(dataset.train) == len(source.train)
    assert sorted({r.pid for r in dataset.train}) == list(range(8))
    modalities = [r.modality for r in dataset.train]
    assert modalities == sorted(modalities) and set(modalities) == {VISIBLE, INFRARED}  # visible first
    split, expected = dataset.test_split(0), source.test_split(0)
    assert (len(split.query), len(split.gallery), split.protocol) == (
        len(expected.query),
        len(expected.gallery),
        "regdb",
    )
    # string identities are numbered in sorted order: the same partition of the images as the source's ids
    by_pid = {}
    for ours, theirs in zip(split.query + split.gallery, expected.query + expected.gallery, strict=True):
        assert by_pid.setdefault(ours.pid, theirs.pid) == theirs.pid and ours.modality == theirs.modality
    assert ListDataset(tree, exclude_same_camera=True).test_split().protocol == "llcm"
    with pytest.raises(ValueError, match="one trial"):
        dataset.test_split(1)


def test_integer_identities_and_cameras_keep_their_numbers(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    rows = ["pid,path,split,camera,modality,note", "17,a.jpg,train,3,0,x", "17,b.jpg,train,4,1,",
            "21,c.jpg,query,3,visible,", "21,d.jpg,gallery,5,infrared,"]  # fmt: skip
    (tmp_path / "list.csv").write_text("\n".join(rows), encoding="utf-8")
    dataset = ListDataset(tmp_path)
    assert [(r.pid, r.camid, r.modality) for r in dataset.train] == [(0, 3, VISIBLE), (0, 4, INFRARED)]
    assert dataset.query[0].pid == 21 and dataset.gallery[0].camid == 5


MALFORMED = [  # (what the file holds after the header, the one-line message's end)
    ("a.jpg,p1,c1,visible", "list.csv:2: expected 5 comma-separated fields, got 4"),
    ("a.jpg,,c1,visible,train", "list.csv:2: empty 'pid'"),
    ("a.jpg,p1,c1,thermal,train", "list.csv:2: modality must be visible, infrared, 0 or 1, got 'thermal'"),
    ("a.jpg,p1,c1,visible,test", "list.csv:2: split must be train, query or gallery, got 'test'"),
    ("/data/a.jpg,p1,c1,visible,train", "list.csv:2: path '/data/a.jpg' must be relative to the root, inside it"),
    ("a.jpg,p1,c1,visible,train\na.jpg,p1,c2,infrared,train", "list.csv:3: 'a.jpg' is already listed at line 2"),
]


@pytest.mark.parametrize(("rows", "message"), MALFORMED)
def test_each_malformed_row_kind_is_one_line_naming_file_and_line(tmp_path, capsys, rows, message):
    (tmp_path / "list.csv").write_text("path,pid,camera,modality,split\n" + rows + "\n", encoding="utf-8")
    args = ["train", "--dry-run", "data.dataset=list", f"data.root={tmp_path}", "eval.protocol={}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wrim train: error: ") and err.endswith(message) and "\n" not in err


def test_bad_header_and_encoding_are_one_line(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("path,pid,cam,modality,split\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"list.csv:1: the header lacks column\(s\) \['camera'\]"):
        ListDataset(tmp_path)
    path.write_bytes(b"path,pid,camera,modality,split\n\xff\xfe,1,1,0,train\n")
    with pytest.raises(ValueError, match="list.csv: not UTF-8"):
        ListDataset(tmp_path)
    path.write_text("path,pid,camera,modality,split\na.jpg,1,1,0,train\nb.jpg,2,1,0,query\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no 'gallery' row"):
        ListDataset(tmp_path)


def test_check_data_passes_the_clean_tree_and_finds_each_planted_problem(tree, copy, capsys):
    assert main(["check-data", "--dataset", "list", "--root", str(tree)]) == 0
    assert "OK: the copy matches" in capsys.readouterr().out
    lines = (copy / "list.csv").read_text().splitlines()
    train = [line for line in lines if line.endswith(",train")]
    query = [line for line in lines if line.endswith(",query")]
    (copy / train[0].split(",")[0]).unlink()  # missing
    (copy / train[1].split(",")[0]).write_bytes(b"")  # zero bytes
    (copy / train[2].split(",")[0]).write_bytes(b"not an image")  # unreadable
    shutil.copyfile(copy / train[3].split(",")[0], copy / "dup.jpg")  # duplicate of a listed file
    test_pid = query[0].split(",")[1]
    lines += ["dup.jpg,person-dup,cam-1,visible,train", f"x.jpg,{test_pid},cam-1,visible,trian"]  # + malformed row
    lines += [train[4].replace(train[4].split(",")[0], "overlap.jpg").replace(",train", ",gallery")]  # train id in test
    lines += ["lonely.jpg,person-lonely,cam-1,visible,query"]  # a query identity without a gallery image
    shutil.copyfile(copy / train[5].split(",")[0], copy / "overlap.jpg")
    shutil.copyfile(copy / query[0].split(",")[0], copy / "lonely.jpg")
    (copy / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["check-data", "--dataset", "list", "--root", str(copy)]) == 1
    out = capsys.readouterr().out
    kinds = {line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert {"missing", "empty", "unreadable", "duplicate", "malformed", "overlap", "no_gallery"} <= kinds, out
    assert f"list.csv:{len(lines) - 2}" in out and "difference(s): the copy does not match" in out


def test_trains_one_tiny_epoch_and_evaluates_from_the_command_line(tree, tmp_path, capsys):
    args = tiny_overrides(tmp_path, "list", "epochs=1", "data.num_workers=0", "data.dataset_kwargs={}")
    args += ["data.dataset=list", f"data.root={tree}", "eval.protocol={}"]
    assert main(["train", *args]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "final (" in out and "mAP" in out
    ev = ["eval", "--checkpoint", str(tmp_path / "list"), "--dataset", "list", "--root", str(tree)]
    assert main([*ev, "--num-workers", "0"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("list ")
