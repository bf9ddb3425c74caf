"""The protocol card: everything a VI-ReID number depends on besides the weights, written beside the number.

The field's numbers are often incomparable for reasons the number itself does not show: re-ranking applied in the
test code, flip averaging, which galleries were drawn, which dataset version, which RegDB trial the model was trained
on, and whether the checkpoint was chosen on the test set. A [`ProtocolCard`][wrim.evaluation.ProtocolCard] states each
of them; wrim writes one beside every metric it reports (``final_metrics.json``, ``wrim eval``'s table and JSON, the
model card of an exported run) and ``wrim compare`` refuses to pair numbers whose cards differ ([D] see
docs: Evaluation, section Provenance and protocol cards).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RERANK_OFF", "ProtocolCard", "check_training_trial", "protocol_card"]

#: The re-ranking entry of a card whose distances were not re-ranked.
RERANK_OFF: dict[str, Any] = {"enabled": False}


@dataclass(frozen=True)
class ProtocolCard:
    """How a metric was measured.

    Attributes:
        dataset: the dataset's name (``"sysu"``, ``"regdb"``, ``"llcm"``, ``"synthetic"``, ``"list"``, ...).
        dataset_version: which version of the dataset the copy is, where several exist (``None``: one is known).
        dataset_sha256: the hash of the copy's records (``wrim.data.fingerprint``): equal for the same file lists
            and labels.
        protocol: the protocol arguments (``{"mode": "all", "shots": 1}``, ``{"direction": "v2t"}``, ...).
        trials: the gallery trials averaged (RegDB: the split evaluated).
        galleries: how the galleries were drawn (``"official_mat"``, ``"agw_seed"``, ...; ``None`` where the dataset
            has no choice).
        rerank: ``{"enabled": False}``, or ``{"enabled": True, "k1": 20, "k2": 6, "lambda": 0.3}``.
        flip: whether the flipped image's embedding was added.
        precision: ``"fp32"`` or the autocast dtype (``"bf16 autocast"``).
        checkpoint: how the weights were chosen: ``{"tag": "best", "epoch": 7, "selected_on": "R1 of trials [0]"}``
            (chosen on the test set), ``{"tag": "last", "epoch": 8}`` (not chosen on it), or ``{"tag": "file"}``.
        training_trial: RegDB: the split the model was trained on (``None`` elsewhere or when unknown).
        cross_trial: the evaluated split differs from ``training_trial`` (allowed explicitly; identities leak).
    """

    dataset: str
    dataset_version: str | None
    dataset_sha256: str | None
    protocol: dict[str, Any]
    trials: list[int]
    galleries: str | None
    rerank: dict[str, Any] = field(default_factory=lambda: dict(RERANK_OFF))
    flip: bool = False
    precision: str = "fp32"
    checkpoint: dict[str, Any] = field(default_factory=lambda: {"tag": "file"})
    training_trial: int | None = None
    cross_trial: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The card as plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ProtocolCard:
        """A card read back from JSON.

        Raises:
            ValueError: a missing or unknown field (one line naming them).
        """
        names = set(cls.__dataclass_fields__)
        missing = sorted(name for name in names if name not in values)
        unknown = sorted(set(values) - names)
        if missing or unknown or not isinstance(values, dict):
            raise ValueError(f"not a protocol card: missing fields {missing}, unknown fields {unknown}")
        return cls(**values)

    def header(self) -> str:
        """One line for the top of a metric table."""
        version = f" ({self.dataset_version})" if self.dataset_version else ""
        protocol = " ".join(f"{key}={value}" for key, value in self.protocol.items()) or "default protocol"
        galleries = f", galleries {self.galleries}" if self.galleries else ""
        rerank = "re-ranked (k1 {k1}, k2 {k2}, λ {lambda})".format(**self.rerank) if self.rerank["enabled"] else ""
        checkpoint = self.checkpoint["tag"]
        if "epoch" in self.checkpoint:
            checkpoint += f" (epoch {self.checkpoint['epoch']}"
            checkpoint += f", chosen on {self.checkpoint['selected_on']})" if "selected_on" in self.checkpoint else ")"
        leak = f", CROSS-TRIAL: trained on split {self.training_trial}" if self.cross_trial else ""
        return (
            f"{self.dataset}{version} {protocol}, trials {_spans(self.trials)}{galleries}, "
            f"{rerank or 'no re-ranking'}, flip {'on' if self.flip else 'off'}, {self.precision}, "
            f"checkpoint {checkpoint}{leak}"
        )


def _spans(values: list[int]) -> str:
    """``[0, 1, 2, 3, 7]`` -> ``"0-3, 7"``: runs of consecutive integers as spans."""
    spans: list[list[int]] = []
    for value in values:
        if spans and value == spans[-1][1] + 1:
            spans[-1][1] = value
        else:
            spans.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def protocol_card(
    dataset: Any,
    *,
    protocol: dict[str, Any],
    trials: list[int],
    flip: bool,
    precision: str,
    checkpoint: dict[str, Any],
    rerank: dict[str, Any] | None = None,
    training_trial: int | None = None,
) -> ProtocolCard:
    """The card of an evaluation of ``dataset`` (its fingerprint is taken under ``protocol``).

    Args:
        dataset: the dataset reader evaluated.
        protocol: the protocol arguments used.
        trials: the trials averaged.
        flip: flip averaging on or off.
        precision: ``"fp32"`` or ``"<dtype> autocast"``.
        checkpoint: how the weights were chosen (see `ProtocolCard.checkpoint`).
        rerank: the re-ranking settings (default off).
        training_trial: the split the model was trained on, for readers tied to one split (RegDB's ``trial``).
    """
    from wrim.data.fingerprint import dataset_fingerprint

    fingerprint = dataset_fingerprint(dataset, protocol)
    evaluated = getattr(dataset, "trial", None)
    return ProtocolCard(
        dataset=fingerprint["name"],
        dataset_version=fingerprint["version"],
        dataset_sha256=fingerprint["sha256"],
        protocol=dict(protocol),
        trials=[int(t) for t in trials],
        galleries=getattr(dataset, "gallery_sampling", None),
        rerank=dict(rerank or RERANK_OFF),
        flip=bool(flip),
        precision=precision,
        checkpoint=dict(checkpoint),
        training_trial=training_trial,
        cross_trial=training_trial is not None and evaluated is not None and int(evaluated) != int(training_trial),
    )


def check_training_trial(dataset: Any, training_trial: int | None, allow_cross_trial: bool = False) -> None:
    """Refuse to evaluate a model on a split it was not trained for (RegDB: another trial's test ids are train ids).

    Raises:
        ValueError: ``dataset`` is another split than ``training_trial`` and ``allow_cross_trial`` is False.
    """
    evaluated = getattr(dataset, "trial", None)
    if training_trial is None or evaluated is None or int(evaluated) == int(training_trial) or allow_cross_trial:
        return
    raise ValueError(
        f"this model was trained on {dataset.name} split {training_trial}; split {evaluated}'s test identities are "
        f"among its training identities, so its numbers would leak: evaluate split {training_trial} "
        f"(--dataset-arg trial={training_trial}), or pass --allow-cross-trial (the protocol card then says so)"
    )
