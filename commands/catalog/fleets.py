"""Fleet commands: creating fleets and steering phased model rollouts."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from commands.spec import CommandBody, CommandSpec, Context
from domain.fleet import Fleet
from domain.identity import fleet_id


class CreateFleet(CommandBody):
    name: str


class FleetCommand(CommandBody):
    fleet_id: UUID


class StartRollout(FleetCommand):
    model_id: UUID
    model_version: str
    phases: list[int]
    failure_threshold: float


class AdvanceRollout(FleetCommand):
    device_ids: list[UUID]


class RecordRolloutResult(FleetCommand):
    device_id: UUID
    succeeded: bool


class PauseRollout(FleetCommand):
    pass


class ResumeRollout(FleetCommand):
    pass


class RollBackRollout(FleetCommand):
    reason: str


class HaltRollout(FleetCommand):
    reason: str


def _target(body: FleetCommand, _tenant: str) -> UUID:
    return body.fleet_id


def _create(_: Fleet | None, body: CreateFleet, ctx: Context) -> Fleet:
    return Fleet.create(tenant_id=ctx.tenant, name=body.name, actor=ctx.actor, at=ctx.at)


def _start(fleet: Fleet, body: StartRollout, ctx: Context) -> Fleet:
    fleet.start_rollout(
        body.model_id,
        body.model_version,
        body.phases,
        body.failure_threshold,
        actor=ctx.actor,
        at=ctx.at,
    )
    return fleet


def _advance(fleet: Fleet, body: AdvanceRollout, ctx: Context) -> Fleet:
    fleet.advance_rollout(body.device_ids, actor=ctx.actor, at=ctx.at)
    return fleet


def _result(fleet: Fleet, body: RecordRolloutResult, ctx: Context) -> Fleet:
    fleet.record_install_result(body.device_id, body.succeeded, actor=ctx.actor, at=ctx.at)
    return fleet


def _pause(fleet: Fleet, body: PauseRollout, ctx: Context) -> Fleet:
    fleet.pause_rollout(actor=ctx.actor, at=ctx.at)
    return fleet


def _resume(fleet: Fleet, body: ResumeRollout, ctx: Context) -> Fleet:
    fleet.resume_rollout(actor=ctx.actor, at=ctx.at)
    return fleet


def _roll_back(fleet: Fleet, body: RollBackRollout, ctx: Context) -> Fleet:
    fleet.roll_back_rollout(body.reason, actor=ctx.actor, at=ctx.at)
    return fleet


def _halt(fleet: Fleet, body: HaltRollout, ctx: Context) -> Fleet:
    fleet.halt_rollout(body.reason, actor=ctx.actor, at=ctx.at)
    return fleet


FLEET_COMMANDS: list[CommandSpec[Any]] = [
    CommandSpec(
        "CreateFleet",
        CreateFleet,
        Fleet,
        lambda body, tenant: fleet_id(tenant, body.name),
        _create,
        creates=True,
        summary="Create a named fleet; its id derives from tenant and name.",
    ),
    CommandSpec(
        "StartRollout",
        StartRollout,
        Fleet,
        _target,
        _start,
        summary="Roll a model version out in phases (e.g. [5, 25, 100]) with a "
        "failure threshold (fraction of targeted devices).",
    ),
    CommandSpec(
        "AdvanceRollout",
        AdvanceRollout,
        Fleet,
        _target,
        _advance,
        summary="Start the rollout's next phase on the given devices.",
    ),
    CommandSpec(
        "RecordRolloutResult",
        RecordRolloutResult,
        Fleet,
        _target,
        _result,
        summary="Count one device's install result; crossing the failure threshold "
        "halts and rolls back by itself.",
    ),
    CommandSpec(
        "PauseRollout", PauseRollout, Fleet, _target, _pause, summary="Pause the active rollout."
    ),
    CommandSpec(
        "ResumeRollout", ResumeRollout, Fleet, _target, _resume, summary="Resume a paused rollout."
    ),
    CommandSpec(
        "RollBackRollout",
        RollBackRollout,
        Fleet,
        _target,
        _roll_back,
        summary="Roll the updated devices back to the previous model.",
    ),
    CommandSpec(
        "HaltRollout",
        HaltRollout,
        Fleet,
        _target,
        _halt,
        summary="Stop the rollout where it is, without rolling back.",
    ),
]
