"""Training engine: typed configs, the training loop, checkpoints, logging, DDP and the ``wrim`` command line."""

from wrim.engine.build import build_dataset as build_dataset
from wrim.engine.build import build_loss as build_loss
from wrim.engine.build import build_model as build_model
from wrim.engine.checkpoint import load_checkpoint as load_checkpoint
from wrim.engine.checkpoint import save_checkpoint as save_checkpoint
from wrim.engine.config import Config as Config
from wrim.engine.config import DataConfig as DataConfig
from wrim.engine.config import EvalConfig as EvalConfig
from wrim.engine.config import LossConfig as LossConfig
from wrim.engine.config import ModelConfig as ModelConfig
from wrim.engine.config import OptimConfig as OptimConfig
from wrim.engine.config import apply_overrides as apply_overrides
from wrim.engine.config import config_from_dict as config_from_dict
from wrim.engine.config import config_to_dict as config_to_dict
from wrim.engine.config import list_configs as list_configs
from wrim.engine.config import load_config as load_config
from wrim.engine.config import save_config as save_config
from wrim.engine.optim import build_optimizer as build_optimizer
from wrim.engine.optim import build_scheduler as build_scheduler
from wrim.engine.trainer import NonFiniteLossError as NonFiniteLossError
from wrim.engine.trainer import Trainer as Trainer
from wrim.engine.trainer import TrainResult as TrainResult

__all__ = [
    "Config",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "TrainResult",
    "Trainer",
    "apply_overrides",
    "build_dataset",
    "build_loss",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "config_from_dict",
    "config_to_dict",
    "list_configs",
    "load_config",
    "save_config",
]
