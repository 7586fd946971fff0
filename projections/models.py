"""The models read model: one row per model version, with its hash, size and stage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain import model as m
from domain.model import Model
from projections.rows import Apply, Changes, RowProjection


def registered(row: Mapping[str, Any], e: Model.Registered) -> Changes:
    return {
        "name": e.name,
        "model_version": e.version,
        "sha256": e.sha256,
        "size_bytes": e.size_bytes,
        "input_signature": e.input_signature,
        "output_signature": e.output_signature,
        "artifact_name": e.artifact_name,
        "stage": m.REGISTERED,
        "deprecation_reason": None,
    }


def promoted(row: Mapping[str, Any], e: Model.Promoted) -> Changes:
    return {"stage": e.to_stage}


def deprecated(row: Mapping[str, Any], e: Model.Deprecated) -> Changes:
    return {"stage": m.DEPRECATED, "deprecation_reason": e.reason}


APPLIES: dict[type, Apply] = {
    Model.Registered: registered,
    Model.Promoted: promoted,
    Model.Deprecated: deprecated,
}


class ModelsProjection(RowProjection):
    name = "models"
    aggregate_types = frozenset({Model.TYPE})
    table_names = ("models",)
    applies = APPLIES
    creates = frozenset({Model.Registered})
