"""Model registry commands: register a versioned ONNX model, promote, deprecate."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from commands.spec import CommandBody, CommandSpec, Context, Role
from domain.identity import model_id
from domain.model import Model


class TensorSpec(msgspec.Struct, forbid_unknown_fields=True):
    dtype: str
    shape: list[int | None]


class RegisterModel(CommandBody):
    name: str
    version: str
    sha256: str
    size_bytes: int
    input_signature: dict[str, TensorSpec]
    output_signature: dict[str, TensorSpec]
    artifact_name: str | None = None


class ModelCommand(CommandBody):
    model_id: UUID


class PromoteModel(ModelCommand):
    to_stage: str


class DeprecateModel(ModelCommand):
    reason: str


def _signature(signature: dict[str, TensorSpec]) -> dict[str, Any]:
    return {name: msgspec.structs.asdict(tensor) for name, tensor in signature.items()}


def _register(_: Model | None, body: RegisterModel, ctx: Context) -> Model:
    return Model.register(
        tenant_id=ctx.tenant,
        name=body.name,
        version=body.version,
        sha256=body.sha256,
        size_bytes=body.size_bytes,
        input_signature=_signature(body.input_signature),
        output_signature=_signature(body.output_signature),
        artifact_name=body.artifact_name,
        actor=ctx.actor,
        at=ctx.at,
    )


def _promote(model: Model, body: PromoteModel, ctx: Context) -> Model:
    model.promote(body.to_stage, actor=ctx.actor, at=ctx.at)
    return model


def _deprecate(model: Model, body: DeprecateModel, ctx: Context) -> Model:
    model.deprecate(body.reason, actor=ctx.actor, at=ctx.at)
    return model


def _target(body: ModelCommand, _tenant: str) -> UUID:
    return body.model_id


MODEL_COMMANDS: list[CommandSpec[Any]] = [
    CommandSpec(
        "RegisterModel",
        RegisterModel,
        Model,
        lambda body, tenant: model_id(tenant, body.name, body.version),
        _register,
        role=Role.admin,
        creates=True,
        summary="Register a model version (name, version, SHA-256, size, signatures).",
    ),
    CommandSpec(
        "PromoteModel",
        PromoteModel,
        Model,
        _target,
        _promote,
        role=Role.admin,
        summary="Move a model to the next stage: registered -> staging -> production.",
    ),
    CommandSpec(
        "DeprecateModel",
        DeprecateModel,
        Model,
        _target,
        _deprecate,
        role=Role.admin,
        summary="Deprecate a model version.",
    ),
]
