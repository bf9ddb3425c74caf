"""Datasets (SYSU-MM01, RegDB, LLCM, a synthetic set, your own list file) and their registry, the identity x
modality sampler, transforms and loaders."""

from wrim.data._registry import create_dataset as create_dataset
from wrim.data._registry import dataset_entrypoint as dataset_entrypoint
from wrim.data._registry import dataset_needs_root as dataset_needs_root
from wrim.data._registry import is_dataset as is_dataset
from wrim.data._registry import list_datasets as list_datasets
from wrim.data._registry import register_dataset as register_dataset
from wrim.data.base import VIReIDDataset as VIReIDDataset
from wrim.data.check import DataCheckReport as DataCheckReport
from wrim.data.check import check_dataset as check_dataset
from wrim.data.list_dataset import ListDataset as ListDataset
from wrim.data.llcm import LLCM as LLCM
from wrim.data.loader import ImageDataset as ImageDataset
from wrim.data.loader import UnreadableImageError as UnreadableImageError
from wrim.data.loader import build_test_loader as build_test_loader
from wrim.data.loader import build_train_loader as build_train_loader
from wrim.data.loader import read_image as read_image
from wrim.data.reader_check import check_reader as check_reader
from wrim.data.records import ImageRecord as ImageRecord
from wrim.data.records import TestSplit as TestSplit
from wrim.data.regdb import RegDB as RegDB
from wrim.data.sampler import IdentityModalitySampler as IdentityModalitySampler
from wrim.data.statistics import check_counts as check_counts
from wrim.data.synthetic import SyntheticVIReID as SyntheticVIReID
from wrim.data.sysu import SYSUMM01 as SYSUMM01
from wrim.data.transforms import TestTransform as TestTransform
from wrim.data.transforms import TrainTransform as TrainTransform

__all__ = [
    "LLCM",
    "SYSUMM01",
    "DataCheckReport",
    "IdentityModalitySampler",
    "ImageDataset",
    "ImageRecord",
    "ListDataset",
    "RegDB",
    "SyntheticVIReID",
    "TestSplit",
    "TestTransform",
    "TrainTransform",
    "UnreadableImageError",
    "VIReIDDataset",
    "build_test_loader",
    "build_train_loader",
    "check_counts",
    "check_dataset",
    "check_reader",
    "create_dataset",
    "dataset_entrypoint",
    "dataset_needs_root",
    "is_dataset",
    "list_datasets",
    "read_image",
    "register_dataset",
]
