"""Model: one version of an ONNX model and the stage it has reached.

The artifact itself lives in the JetStream Object Store; the aggregate holds
what a device needs to trust and run it (hash, size, tensor signatures) and
how far it has been promoted.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from domain import errors, identity
from domain.base import VigilAggregate, ensure_text

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_VERSION_LENGTH = 64
_MAX_ARTIFACT_NAME_LENGTH = 255
_MAX_REASON_LENGTH = 500

REGISTERED = "registered"
STAGING = "staging"
PRODUCTION = "production"
DEPRECATED = "deprecated"
STAGES = (REGISTERED, STAGING, PRODUCTION, DEPRECATED)
_PROMOTIONS = {REGISTERED: STAGING, STAGING: PRODUCTION}


def ensure_model_version(field: str, version: Any) -> None:
    """Versions look like ``1.4.2`` or ``1.4.2-rc.1``; devices and fleets reuse this rule."""
    if (
        not isinstance(version, str)
        or len(version) > _MAX_VERSION_LENGTH
        or not _VERSION_RE.match(version)
    ):
        raise errors.InvalidValue(field, "must look like 1.2.3 or 1.2.3-suffix")


class Model(VigilAggregate):
    """A registered model version, promoted registered -> staging -> production."""

    TYPE = "model"
    class_version = 1  # bump with an upcast_v1_v2 when the state's shape changes

    class Registered(VigilAggregate.Created):
        name: str
        version: str
        sha256: str
        size_bytes: int
        input_signature: dict[str, Any]
        output_signature: dict[str, Any]
        artifact_name: str | None

        def apply(self, model: Model) -> None:
            model.name = self.name
            model.model_version = self.version
            model.sha256 = self.sha256
            model.size_bytes = self.size_bytes
            model.input_signature = _copy_signature(self.input_signature)
            model.output_signature = _copy_signature(self.output_signature)
            model.artifact_name = self.artifact_name

    class Promoted(VigilAggregate.Event):
        from_stage: str
        to_stage: str

        def apply(self, model: Model) -> None:
            model.stage = self.to_stage

    class Deprecated(VigilAggregate.Event):
        from_stage: str
        reason: str

        def apply(self, model: Model) -> None:
            model.stage = DEPRECATED
            model.deprecation_reason = self.reason

    def __init__(self, tenant_id: str) -> None:
        # Explicit, so the dataclass machinery eventsourcing applies to
        # aggregates keeps the base __init__ (and with it tenant_id).
        super().__init__(tenant_id)
        self.name = ""
        self.model_version = ""  # "version" is taken: it is the aggregate's event count
        self.sha256 = ""
        self.size_bytes = 0
        self.input_signature: dict[str, Any] = {}
        self.output_signature: dict[str, Any] = {}
        self.artifact_name: str | None = None
        self.stage = REGISTERED
        self.deprecation_reason: str | None = None

    @classmethod
    def register(
        cls,
        *,
        tenant_id: str,
        name: str,
        version: str,
        sha256: str,
        size_bytes: int,
        input_signature: dict[str, Any],
        output_signature: dict[str, Any],
        artifact_name: str | None,
        actor: str,
        at: datetime,
    ) -> Model:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise errors.InvalidValue("name", "must be 1 to 100 characters of A-Z a-z 0-9 . _ -")
        ensure_model_version("version", version)
        if not isinstance(sha256, str) or not _SHA256_RE.match(sha256):
            raise errors.InvalidValue("sha256", "must be 64 lowercase hexadecimal characters")
        if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes <= 0:
            raise errors.InvalidValue("size_bytes", "must be a positive whole number")
        _ensure_signature("input_signature", input_signature)
        _ensure_signature("output_signature", output_signature)
        if artifact_name is not None and (
            not isinstance(artifact_name, str)
            or not artifact_name.strip()
            or len(artifact_name) > _MAX_ARTIFACT_NAME_LENGTH
        ):
            raise errors.InvalidValue(
                "artifact_name", f"must be absent or 1 to {_MAX_ARTIFACT_NAME_LENGTH} characters"
            )
        model: Model = cls._start(
            cls.Registered,
            id=identity.model_id(tenant_id, name, version),
            tenant_id=tenant_id,
            actor=actor,
            at=at,
            name=name,
            version=version,
            sha256=sha256,
            size_bytes=size_bytes,
            input_signature=_copy_signature(input_signature),
            output_signature=_copy_signature(output_signature),
            artifact_name=artifact_name,
        )
        return model

    def promote(self, to_stage: str, *, actor: str, at: datetime) -> None:
        """Move one step towards production: registered -> staging -> production."""
        self._ensure_not_deprecated()
        if to_stage not in STAGES:
            raise errors.InvalidValue("to_stage", f"must be one of {', '.join(STAGES)}")
        self._ensure_can_move_to(to_stage)
        self._record(self.Promoted, actor=actor, at=at, from_stage=self.stage, to_stage=to_stage)

    def deprecate(self, reason: str, *, actor: str, at: datetime) -> None:
        if self.stage == DEPRECATED:
            raise errors.ModelAlreadyDeprecated(self.id)
        ensure_text("reason", reason, max_length=_MAX_REASON_LENGTH)
        self._record(self.Deprecated, actor=actor, at=at, from_stage=self.stage, reason=reason)

    def _ensure_not_deprecated(self) -> None:
        if self.stage == DEPRECATED:
            raise errors.DeprecatedModel(self.id)

    def _ensure_can_move_to(self, to_stage: str) -> None:
        if _PROMOTIONS.get(self.stage) != to_stage:
            raise errors.InvalidStageTransition(self.id, self.stage, to_stage)


def _ensure_signature(field: str, signature: Any) -> None:
    """A signature maps tensor names to ``{"dtype": str, "shape": [int | None, ...]}``."""
    if not isinstance(signature, dict) or not signature:
        raise errors.InvalidValue(field, "must map at least one tensor name to its dtype and shape")
    for tensor, spec in signature.items():
        if not isinstance(tensor, str) or not tensor:
            raise errors.InvalidValue(field, "tensor names must be non-empty strings")
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape"}:
            raise errors.InvalidValue(field, f"{tensor}: must have exactly dtype and shape")
        if not isinstance(spec["dtype"], str) or not spec["dtype"]:
            raise errors.InvalidValue(field, f"{tensor}: dtype must be a non-empty string")
        shape = spec["shape"]
        if not isinstance(shape, list) or not all(_is_dimension(dim) for dim in shape):
            raise errors.InvalidValue(
                field, f"{tensor}: shape must be a list of sizes (whole numbers >= 0) or null"
            )


def _is_dimension(dim: Any) -> bool:
    # None is a dynamic axis (a batch size, a sequence length).
    return dim is None or (isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0)


def _copy_signature(signature: dict[str, Any]) -> dict[str, Any]:
    # Events and state must not share lists with the caller or with each other.
    return {
        tensor: {"dtype": spec["dtype"], "shape": list(spec["shape"])}
        for tensor, spec in signature.items()
    }
