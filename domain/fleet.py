"""Fleet: a named group of devices and the phased rollouts of models to them.

A rollout moves a fleet from one model version to another a phase at a time
(for example 5% -> 25% -> 100%). The caller picks the devices of each phase;
the fleet keeps score of their install results and, when failures cross the
rollout's threshold, halts it and rolls the updated devices back by itself.
"""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from typing import Any, TypedDict, cast
from uuid import UUID

from domain import errors, identity
from domain.base import VigilAggregate, ensure_text
from domain.model import ensure_model_version

_MAX_NAME_LENGTH = 100
_MAX_REASON_LENGTH = 500
_MAX_PHASES = 10
THRESHOLD_CROSSED = "failure threshold crossed"


class RolloutState(TypedDict):
    """The active rollout, kept in plain types so snapshots encode it as is.

    Events after ``RolloutStarted`` and before the rollout ends always find one,
    which is why their ``apply`` methods can take it for granted.
    """

    model_id: UUID
    model_version: str
    previous_model_id: UUID | None
    previous_model_version: str | None
    phases: list[int]
    failure_threshold: float
    started_at: datetime
    paused: bool
    phases_started: int
    targeted: list[UUID]
    succeeded: list[UUID]
    failed: list[UUID]


Decision = tuple[type[Any], dict[str, Any]]


class Fleet(VigilAggregate):
    """Devices grouped under one name within a tenant, and their rollouts."""

    TYPE = "fleet"
    class_version = 1  # bump with an upcast_v1_v2 when the state's shape changes

    class Created(VigilAggregate.Created):
        name: str

        def apply(self, fleet: Fleet) -> None:
            fleet.name = self.name

    class RolloutStarted(VigilAggregate.Event):
        model_id: UUID
        model_version: str
        previous_model_id: UUID | None
        previous_model_version: str | None
        phases: list[int]
        failure_threshold: float

        def apply(self, fleet: Fleet) -> None:
            fleet.rollout = RolloutState(
                model_id=self.model_id,
                model_version=self.model_version,
                previous_model_id=self.previous_model_id,
                previous_model_version=self.previous_model_version,
                phases=list(self.phases),
                failure_threshold=self.failure_threshold,
                started_at=self.timestamp,
                paused=False,
                phases_started=0,
                targeted=[],
                succeeded=[],
                failed=[],
            )
            fleet.rollout_count += 1

    class RolloutPhaseStarted(VigilAggregate.Event):
        phase_index: int
        percent: int
        device_ids: list[UUID]

        def apply(self, fleet: Fleet) -> None:
            rollout = cast(RolloutState, fleet.rollout)
            rollout["phases_started"] = self.phase_index + 1
            rollout["targeted"].extend(self.device_ids)

    class InstallResultRecorded(VigilAggregate.Event):
        device_id: UUID
        succeeded: bool

        def apply(self, fleet: Fleet) -> None:
            rollout = cast(RolloutState, fleet.rollout)
            rollout["succeeded" if self.succeeded else "failed"].append(self.device_id)

    class RolloutPaused(VigilAggregate.Event):
        def apply(self, fleet: Fleet) -> None:
            cast(RolloutState, fleet.rollout)["paused"] = True

    class RolloutResumed(VigilAggregate.Event):
        def apply(self, fleet: Fleet) -> None:
            cast(RolloutState, fleet.rollout)["paused"] = False

    class RolloutHalted(VigilAggregate.Event):
        """The rollout stopped where it stood; devices keep what they installed."""

        reason: str
        failed: int
        targeted: int

        def apply(self, fleet: Fleet) -> None:
            fleet.rollout = None

    class RolloutRolledBack(VigilAggregate.Event):
        """The rollout ended and these devices go back to the previous model."""

        device_ids: list[UUID]
        to_model_id: UUID | None
        to_model_version: str | None
        reason: str

        def apply(self, fleet: Fleet) -> None:
            fleet.rollout = None

    class RolloutCompleted(VigilAggregate.Event):
        model_id: UUID
        model_version: str
        succeeded: int
        failed: int

        def apply(self, fleet: Fleet) -> None:
            fleet.rollout = None
            fleet.current_model_id = self.model_id
            fleet.current_model_version = self.model_version

    def __init__(self, tenant_id: str) -> None:
        # Explicit, so the dataclass machinery eventsourcing applies to
        # aggregates keeps the base __init__ (and with it tenant_id).
        super().__init__(tenant_id)
        self.name = ""
        self.rollout: RolloutState | None = None  # the active rollout, running or paused
        self.rollout_count = 0  # rollouts ever started, the active one included
        self.current_model_id: UUID | None = None  # what the fleet runs outside a rollout
        self.current_model_version: str | None = None

    @classmethod
    def create(cls, *, tenant_id: str, name: str, actor: str, at: datetime) -> Fleet:
        if (
            not isinstance(name, str)
            or not 1 <= len(name) <= _MAX_NAME_LENGTH
            or name != name.strip()
        ):
            raise errors.InvalidValue(
                "name", f"must be 1 to {_MAX_NAME_LENGTH} characters, without surrounding spaces"
            )
        fleet: Fleet = cls._start(
            cls.Created,
            id=identity.fleet_id(tenant_id, name),
            tenant_id=tenant_id,
            actor=actor,
            at=at,
            name=name,
        )
        return fleet

    def start_rollout(
        self,
        model_id: UUID,
        model_version: str,
        phases: list[int],
        failure_threshold: float,
        *,
        actor: str,
        at: datetime,
    ) -> None:
        """Begin moving the fleet to ``model_version``; no device is targeted yet."""
        self._ensure_no_active_rollout()
        identity.ensure_uuid("model_id", model_id)
        ensure_model_version("model_version", model_version)
        _ensure_phases(phases)
        _ensure_failure_threshold(failure_threshold)
        self._ensure_not_current(model_id, model_version)
        self._record(
            self.RolloutStarted,
            actor=actor,
            at=at,
            model_id=model_id,
            model_version=model_version,
            previous_model_id=self.current_model_id,
            previous_model_version=self.current_model_version,
            phases=list(phases),
            failure_threshold=float(failure_threshold),
        )

    def advance_rollout(self, device_ids: list[UUID], *, actor: str, at: datetime) -> None:
        """Start the next phase on ``device_ids``, which the caller chose for its percentage."""
        rollout = self._ensure_rollout_running()
        self._ensure_a_phase_is_left(rollout)
        _ensure_new_targets(device_ids, already_targeted=rollout["targeted"])
        phase_index = rollout["phases_started"]
        self._record(
            self.RolloutPhaseStarted,
            actor=actor,
            at=at,
            phase_index=phase_index,
            percent=rollout["phases"][phase_index],
            device_ids=list(device_ids),
        )

    def record_install_result(
        self, device_id: UUID, succeeded: bool, *, actor: str, at: datetime
    ) -> None:
        """Count one device's install; may also halt and roll back, or complete, the rollout."""
        rollout = self._ensure_rollout_active()
        identity.ensure_uuid("device_id", device_id)
        if not isinstance(succeeded, bool):
            raise errors.InvalidValue("succeeded", "must be true or false")
        self._ensure_targeted(rollout, device_id)
        self._ensure_no_result_yet(rollout, device_id)
        decisions: list[Decision] = [
            (self.InstallResultRecorded, {"device_id": device_id, "succeeded": succeeded}),
            *_consequences(rollout, device_id, succeeded),
        ]
        for event_class, fields in decisions:
            self._record(event_class, actor=actor, at=at, **fields)

    def pause_rollout(self, *, actor: str, at: datetime) -> None:
        rollout = self._ensure_rollout_active()
        if rollout["paused"]:
            raise errors.RolloutAlreadyPaused(self.id)
        self._record(self.RolloutPaused, actor=actor, at=at)

    def resume_rollout(self, *, actor: str, at: datetime) -> None:
        rollout = self._ensure_rollout_active()
        if not rollout["paused"]:
            raise errors.RolloutNotPaused(self.id)
        self._record(self.RolloutResumed, actor=actor, at=at)

    def roll_back_rollout(self, reason: str, *, actor: str, at: datetime) -> None:
        """End the rollout and send every device it reached back to the previous model."""
        rollout = self._ensure_rollout_active()
        ensure_text("reason", reason, max_length=_MAX_REASON_LENGTH)
        self._record(self.RolloutRolledBack, actor=actor, at=at, **_roll_back(rollout, reason))

    def halt_rollout(self, reason: str, *, actor: str, at: datetime) -> None:
        """End the rollout where it stands, without rolling any device back."""
        rollout = self._ensure_rollout_active()
        ensure_text("reason", reason, max_length=_MAX_REASON_LENGTH)
        self._record(
            self.RolloutHalted,
            actor=actor,
            at=at,
            reason=reason,
            failed=len(rollout["failed"]),
            targeted=len(rollout["targeted"]),
        )

    # Guards.

    def _ensure_no_active_rollout(self) -> None:
        if self.rollout is not None:
            raise errors.RolloutAlreadyActive(self.id, self.rollout["model_version"])

    def _ensure_rollout_active(self) -> RolloutState:
        if self.rollout is None:
            raise errors.NoActiveRollout(self.id)
        return self.rollout

    def _ensure_rollout_running(self) -> RolloutState:
        rollout = self._ensure_rollout_active()
        if rollout["paused"]:
            raise errors.RolloutPaused(self.id)
        return rollout

    def _ensure_a_phase_is_left(self, rollout: RolloutState) -> None:
        if rollout["phases_started"] == len(rollout["phases"]):
            raise errors.RolloutPhasesExhausted(self.id, len(rollout["phases"]))

    def _ensure_not_current(self, model_id: UUID, model_version: str) -> None:
        if (model_id, model_version) == (self.current_model_id, self.current_model_version):
            raise errors.RolloutTargetIsCurrent(self.id, model_version)

    def _ensure_targeted(self, rollout: RolloutState, device_id: UUID) -> None:
        if device_id not in rollout["targeted"]:
            raise errors.DeviceNotInRollout(self.id, device_id)

    def _ensure_no_result_yet(self, rollout: RolloutState, device_id: UUID) -> None:
        if device_id in rollout["succeeded"] or device_id in rollout["failed"]:
            raise errors.InstallResultAlreadyRecorded(self.id, device_id)


def _consequences(rollout: RolloutState, device_id: UUID, succeeded: bool) -> list[Decision]:
    """What one more install result means for the rollout, decided before anything is recorded.

    Crossing the failure threshold halts the rollout and rolls it back. Once the
    final phase has started, the rollout completes when every targeted device
    has reported and the failures stayed within the threshold.
    """
    succeeded_count = len(rollout["succeeded"]) + (1 if succeeded else 0)
    failed_ids = rollout["failed"] + ([] if succeeded else [device_id])
    targeted = len(rollout["targeted"])
    if len(failed_ids) / targeted > rollout["failure_threshold"]:
        halted = {"reason": THRESHOLD_CROSSED, "failed": len(failed_ids), "targeted": targeted}
        rolled_back = _roll_back(rollout, THRESHOLD_CROSSED, failed_ids=failed_ids)
        return [(Fleet.RolloutHalted, halted), (Fleet.RolloutRolledBack, rolled_back)]
    final_phase_started = rollout["phases_started"] == len(rollout["phases"])
    if final_phase_started and succeeded_count + len(failed_ids) == targeted:
        completed = {
            "model_id": rollout["model_id"],
            "model_version": rollout["model_version"],
            "succeeded": succeeded_count,
            "failed": len(failed_ids),
        }
        return [(Fleet.RolloutCompleted, completed)]
    return []


def _roll_back(
    rollout: RolloutState, reason: str, *, failed_ids: list[UUID] | None = None
) -> dict[str, Any]:
    # Devices whose install failed never left the previous model; every other
    # targeted device has it or may be installing it, so all of those go back.
    failed = set(rollout["failed"] if failed_ids is None else failed_ids)
    return {
        "device_ids": [device for device in rollout["targeted"] if device not in failed],
        "to_model_id": rollout["previous_model_id"],
        "to_model_version": rollout["previous_model_version"],
        "reason": reason,
    }


def _ensure_phases(phases: Any) -> None:
    """Phases are cumulative percentages, strictly increasing and ending at 100."""
    if (
        not isinstance(phases, list | tuple)
        or not 1 <= len(phases) <= _MAX_PHASES
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in phases)
        or not all(1 <= p <= 100 for p in phases)
        or any(later <= earlier for earlier, later in pairwise(phases))
        or phases[-1] != 100
    ):
        raise errors.InvalidValue(
            "phases",
            f"must be 1 to {_MAX_PHASES} strictly increasing percentages from 1 to 100, "
            "ending at 100",
        )


def _ensure_failure_threshold(threshold: Any) -> None:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 < threshold <= 1
    ):
        raise errors.InvalidValue("failure_threshold", "must be a fraction above 0 and at most 1")


def _ensure_new_targets(device_ids: Any, *, already_targeted: list[UUID]) -> None:
    if not isinstance(device_ids, list | tuple) or not device_ids:
        raise errors.InvalidValue("device_ids", "must list at least one device")
    if not all(isinstance(device, UUID) for device in device_ids):
        raise errors.InvalidValue("device_ids", "must be UUIDs")
    if len(set(device_ids)) != len(device_ids):
        raise errors.InvalidValue("device_ids", "must not repeat a device")
    if not set(device_ids).isdisjoint(already_targeted):
        raise errors.InvalidValue(
            "device_ids", "must not include devices an earlier phase targeted"
        )
