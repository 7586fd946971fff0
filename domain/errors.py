"""Domain errors: every rule violation has a name and a business message.

The HTTP and GraphQL layers map ``DomainError`` to 422 and ``NotFound`` to 404;
``code`` is the stable machine-readable name clients can switch on.
"""

from __future__ import annotations


class DomainError(Exception):
    """A command broke a business rule; nothing was recorded."""

    code: str = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidValue(DomainError):
    """A command carried a value the domain cannot accept (bad hash, empty name...)."""

    code = "invalid_value"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class AlreadyExists(DomainError):
    code = "already_exists"


# Device


class DeviceDecommissioned(DomainError):
    code = "device_decommissioned"

    def __init__(self, device_id: object) -> None:
        super().__init__(f"device {device_id} is decommissioned and accepts no further commands")
        self.device_id = device_id


class DeviceAlreadyInFleet(DomainError):
    code = "device_already_in_fleet"

    def __init__(self, device_id: object, fleet_id: object, requested_fleet_id: object) -> None:
        if fleet_id == requested_fleet_id:
            message = f"device {device_id} is already in fleet {fleet_id}"
        else:
            message = (
                f"device {device_id} belongs to fleet {fleet_id}; "
                f"remove it from that fleet before assigning it to {requested_fleet_id}"
            )
        super().__init__(message)
        self.device_id = device_id
        self.fleet_id = fleet_id
        self.requested_fleet_id = requested_fleet_id


class DeviceNotInFleet(DomainError):
    code = "device_not_in_fleet"

    def __init__(self, device_id: object) -> None:
        super().__init__(f"device {device_id} is not in any fleet")
        self.device_id = device_id


class DesiredModelAlreadySet(DomainError):
    code = "desired_model_already_set"

    def __init__(self, device_id: object, model_version: str) -> None:
        super().__init__(
            f"device {device_id} is already meant to run model version {model_version}"
        )
        self.device_id = device_id
        self.model_version = model_version


class DeviceAlreadyOffline(DomainError):
    code = "device_already_offline"

    def __init__(self, device_id: object) -> None:
        super().__init__(f"device {device_id} is already offline")
        self.device_id = device_id


class DeviceAlreadyOnline(DomainError):
    code = "device_already_online"

    def __init__(self, device_id: object) -> None:
        super().__init__(f"device {device_id} is already online")
        self.device_id = device_id


# Fleet and its rollouts


class RolloutAlreadyActive(DomainError):
    code = "rollout_already_active"

    def __init__(self, fleet_id: object, model_version: str) -> None:
        super().__init__(
            f"fleet {fleet_id} is already rolling out model version {model_version}; "
            "let it complete, or halt or roll it back, before starting another"
        )
        self.fleet_id = fleet_id
        self.model_version = model_version


class RolloutTargetIsCurrent(DomainError):
    code = "rollout_target_is_current"

    def __init__(self, fleet_id: object, model_version: str) -> None:
        super().__init__(f"fleet {fleet_id} already runs model version {model_version}")
        self.fleet_id = fleet_id
        self.model_version = model_version


class NoActiveRollout(DomainError):
    code = "no_active_rollout"

    def __init__(self, fleet_id: object) -> None:
        super().__init__(f"fleet {fleet_id} has no rollout in progress")
        self.fleet_id = fleet_id


class RolloutPaused(DomainError):
    code = "rollout_paused"

    def __init__(self, fleet_id: object) -> None:
        super().__init__(f"the rollout in fleet {fleet_id} is paused; resume it first")
        self.fleet_id = fleet_id


class RolloutAlreadyPaused(DomainError):
    code = "rollout_already_paused"

    def __init__(self, fleet_id: object) -> None:
        super().__init__(f"the rollout in fleet {fleet_id} is already paused")
        self.fleet_id = fleet_id


class RolloutNotPaused(DomainError):
    code = "rollout_not_paused"

    def __init__(self, fleet_id: object) -> None:
        super().__init__(f"the rollout in fleet {fleet_id} is not paused")
        self.fleet_id = fleet_id


class RolloutPhasesExhausted(DomainError):
    code = "rollout_phases_exhausted"

    def __init__(self, fleet_id: object, phase_count: int) -> None:
        super().__init__(
            f"all {phase_count} phases of the rollout in fleet {fleet_id} have already started"
        )
        self.fleet_id = fleet_id
        self.phase_count = phase_count


class DeviceNotInRollout(DomainError):
    code = "device_not_in_rollout"

    def __init__(self, fleet_id: object, device_id: object) -> None:
        super().__init__(f"device {device_id} is not targeted by the rollout in fleet {fleet_id}")
        self.fleet_id = fleet_id
        self.device_id = device_id


class InstallResultAlreadyRecorded(DomainError):
    code = "install_result_already_recorded"

    def __init__(self, fleet_id: object, device_id: object) -> None:
        super().__init__(
            f"the install result of device {device_id} is already recorded "
            f"for the rollout in fleet {fleet_id}"
        )
        self.fleet_id = fleet_id
        self.device_id = device_id


# Model


class InvalidStageTransition(DomainError):
    code = "invalid_stage_transition"

    def __init__(self, model_id: object, from_stage: str, to_stage: str) -> None:
        super().__init__(
            f"model {model_id} cannot move from {from_stage} to {to_stage}; "
            "models move registered -> staging -> production"
        )
        self.model_id = model_id
        self.from_stage = from_stage
        self.to_stage = to_stage


class DeprecatedModel(DomainError):
    code = "model_deprecated"

    def __init__(self, model_id: object) -> None:
        super().__init__(f"model {model_id} is deprecated and can no longer change stage")
        self.model_id = model_id


class ModelAlreadyDeprecated(DomainError):
    code = "model_already_deprecated"

    def __init__(self, model_id: object) -> None:
        super().__init__(f"model {model_id} is already deprecated")
        self.model_id = model_id
