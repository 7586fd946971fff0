"""Model: one version of an ONNX model and the stage it has reached."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from read_api.context import ReadContext
from read_api.pagination import PageRequest
from read_api.readers.models import ModelFilter, count_models, page_models
from read_api.types.common import Connection, Long, Source, connection
from read_api.types.timeline import TimelineEvent, history_of

if TYPE_CHECKING:
    from domain.model import Model as ModelAggregate

PROJECTION = "models"


@strawberry.enum
class ModelStage(enum.Enum):
    REGISTERED = "registered"
    STAGING = "staging"
    PRODUCTION = "production"
    DEPRECATED = "deprecated"


@strawberry.input(description="Models match when they satisfy every field given.")
class ModelFilterInput:
    name: str | None = None
    model_version: str | None = None
    stage: ModelStage | None = None

    def to_filter(self) -> ModelFilter:
        stage = self.stage.value if self.stage else None
        return ModelFilter(name=self.name, model_version=self.model_version, stage=stage)


@strawberry.type(description="A registered version of an ONNX model.")
class Model:
    id: UUID
    name: str
    model_version: str = strawberry.field(description="The model's own version, e.g. 1.4.2.")
    sha256: str
    size_bytes: Long
    input_signature: JSON
    output_signature: JSON
    artifact_name: str | None
    stage: ModelStage
    deprecation_reason: str | None
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(description="How many events the model has had.")
    position: Long | None = strawberry.field(description="Null when rebuilt by time travel.")
    source: Source

    @strawberry.field(description="The model's events, oldest first.")
    async def history(
        self,
        info: strawberry.Info[ReadContext, None],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[TimelineEvent]:
        up_to = self.version if self.source is Source.EVENT_LOG else None
        request = PageRequest(first=first, after=after, last=last, before=before)
        return await history_of(info.context, self.id, request, up_to_version=up_to)

    @classmethod
    def from_row(cls, row: Any) -> Model:
        return cls(
            id=row.id,
            name=row.name,
            model_version=row.model_version,
            sha256=row.sha256,
            size_bytes=Long(row.size_bytes),
            input_signature=row.input_signature,
            output_signature=row.output_signature,
            artifact_name=row.artifact_name,
            stage=ModelStage(row.stage),
            deprecation_reason=row.deprecation_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
            position=row.position,
            source=Source.READ_MODEL,
        )

    @classmethod
    def from_aggregate(cls, model: ModelAggregate) -> Model:
        return cls(
            id=model.id,
            name=model.name,
            model_version=model.model_version,
            sha256=model.sha256,
            size_bytes=Long(model.size_bytes),
            input_signature=JSON(model.input_signature),
            output_signature=JSON(model.output_signature),
            artifact_name=model.artifact_name,
            stage=ModelStage(model.stage),
            deprecation_reason=model.deprecation_reason,
            created_at=model.created_on,
            updated_at=model.modified_on,
            version=model.version,
            position=None,
            source=Source.EVENT_LOG,
        )


async def models_page(
    context: ReadContext, where: ModelFilterInput | None, request: PageRequest
) -> Connection[Model]:
    """A page of the caller's models, ordered by name and version."""
    await context.reach(PROJECTION)
    tenant = context.tenant
    criteria = (where or ModelFilterInput()).to_filter()
    max_page_size = context.services.limits.max_page_size
    async with context.connect() as conn:
        page = await page_models(conn, tenant, criteria, request, max_page_size=max_page_size)

    async def count() -> int:
        async with context.connect() as conn:
            return await count_models(conn, tenant, criteria)

    return connection(page, Model.from_row, count)
