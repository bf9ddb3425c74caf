"""Protocol-exact evaluation for VI-ReID: CMC / mAP / mINP as the field's reference code computes them."""

from wrim.evaluation.card import ProtocolCard as ProtocolCard
from wrim.evaluation.card import check_training_trial as check_training_trial
from wrim.evaluation.card import protocol_card as protocol_card
from wrim.evaluation.metrics import METRIC_NAMES as METRIC_NAMES
from wrim.evaluation.metrics import PROTOCOLS as PROTOCOLS
from wrim.evaluation.metrics import RankMetrics as RankMetrics
from wrim.evaluation.metrics import camera_keep_mask as camera_keep_mask
from wrim.evaluation.metrics import evaluate as evaluate
from wrim.evaluation.metrics import mean_metrics as mean_metrics
from wrim.evaluation.protocol import DISTANCES as DISTANCES
from wrim.evaluation.protocol import ProtocolResult as ProtocolResult
from wrim.evaluation.protocol import evaluate_protocol as evaluate_protocol
from wrim.evaluation.protocol import extract_features as extract_features
from wrim.evaluation.protocol import pairwise_distance as pairwise_distance
from wrim.evaluation.rerank import k_reciprocal_rerank as k_reciprocal_rerank
from wrim.evaluation.search import FolderEmbeddings as FolderEmbeddings
from wrim.evaluation.search import embed_folder as embed_folder
from wrim.evaluation.search import rank_gallery as rank_gallery
from wrim.evaluation.visualize import plot_ranklist as plot_ranklist
from wrim.flip import flip_average as flip_average

__all__ = [
    "DISTANCES",
    "FolderEmbeddings",
    "METRIC_NAMES",
    "PROTOCOLS",
    "ProtocolCard",
    "ProtocolResult",
    "RankMetrics",
    "camera_keep_mask",
    "check_training_trial",
    "embed_folder",
    "evaluate",
    "evaluate_protocol",
    "extract_features",
    "flip_average",
    "k_reciprocal_rerank",
    "mean_metrics",
    "pairwise_distance",
    "plot_ranklist",
    "protocol_card",
    "rank_gallery",
]
