"""The fleets read model: one row per fleet, its current model and its active rollout.

While a rollout runs or is paused the ``rollout_*`` columns describe it: the
phases, how many phases have started and the percentage reached, how many
devices it targeted and how many installs succeeded or failed. When it ends
(completed, halted or rolled back) they are cleared and ``last_rollout_*``
says how it ended. A halt on crossing the failure threshold is followed by a
roll-back in the same commit; the roll-back is what ``last_rollout_outcome``
then shows, since it is what happened to the devices.

Device counts per fleet are not here: the devices projection maintains them
in ``fleet_device_counts`` (see ``projections.tables``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.fleet import Fleet
from projections.rows import Apply, Changes, RowProjection

RUNNING, PAUSED = "running", "paused"
COMPLETED, HALTED, ROLLED_BACK = "completed", "halted", "rolled_back"

_NO_ROLLOUT: Changes = {
    "rollout_status": None,
    "rollout_model_id": None,
    "rollout_model_version": None,
    "rollout_previous_model_version": None,
    "rollout_phases": None,
    "rollout_phase": None,
    "rollout_percent": None,
    "rollout_failure_threshold": None,
    "rollout_started_at": None,
    "rollout_targeted": None,
    "rollout_succeeded": None,
    "rollout_failed": None,
}


def created(row: Mapping[str, Any], e: Fleet.Created) -> Changes:
    return {
        "name": e.name,
        "current_model_id": None,
        "current_model_version": None,
        "rollout_count": 0,
        **_NO_ROLLOUT,
        "last_rollout_outcome": None,
        "last_rollout_model_version": None,
        "last_rollout_reason": None,
        "last_rollout_ended_at": None,
    }


def rollout_started(row: Mapping[str, Any], e: Fleet.RolloutStarted) -> Changes:
    return {
        "rollout_count": row["rollout_count"] + 1,
        "rollout_status": RUNNING,
        "rollout_model_id": e.model_id,
        "rollout_model_version": e.model_version,
        "rollout_previous_model_version": e.previous_model_version,
        "rollout_phases": list(e.phases),
        "rollout_phase": 0,
        "rollout_percent": 0,
        "rollout_failure_threshold": e.failure_threshold,
        "rollout_started_at": e.timestamp,
        "rollout_targeted": 0,
        "rollout_succeeded": 0,
        "rollout_failed": 0,
    }


def phase_started(row: Mapping[str, Any], e: Fleet.RolloutPhaseStarted) -> Changes:
    return {
        "rollout_phase": e.phase_index + 1,
        "rollout_percent": e.percent,
        "rollout_targeted": row["rollout_targeted"] + len(e.device_ids),
    }


def install_result_recorded(row: Mapping[str, Any], e: Fleet.InstallResultRecorded) -> Changes:
    if e.succeeded:
        return {"rollout_succeeded": row["rollout_succeeded"] + 1}
    return {"rollout_failed": row["rollout_failed"] + 1}


def paused(row: Mapping[str, Any], e: Fleet.RolloutPaused) -> Changes:
    return {"rollout_status": PAUSED}


def resumed(row: Mapping[str, Any], e: Fleet.RolloutResumed) -> Changes:
    return {"rollout_status": RUNNING}


def _ended(row: Mapping[str, Any], outcome: str, reason: str | None, e: Any) -> Changes:
    # A roll-back right after a halt finds the rollout already cleared.
    version = row["rollout_model_version"] or row["last_rollout_model_version"]
    return {
        **_NO_ROLLOUT,
        "last_rollout_outcome": outcome,
        "last_rollout_model_version": version,
        "last_rollout_reason": reason,
        "last_rollout_ended_at": e.timestamp,
    }


def halted(row: Mapping[str, Any], e: Fleet.RolloutHalted) -> Changes:
    return _ended(row, HALTED, e.reason, e)


def rolled_back(row: Mapping[str, Any], e: Fleet.RolloutRolledBack) -> Changes:
    return _ended(row, ROLLED_BACK, e.reason, e)


def completed(row: Mapping[str, Any], e: Fleet.RolloutCompleted) -> Changes:
    return {
        **_ended(row, COMPLETED, None, e),
        "current_model_id": e.model_id,
        "current_model_version": e.model_version,
    }


APPLIES: dict[type, Apply] = {
    Fleet.Created: created,
    Fleet.RolloutStarted: rollout_started,
    Fleet.RolloutPhaseStarted: phase_started,
    Fleet.InstallResultRecorded: install_result_recorded,
    Fleet.RolloutPaused: paused,
    Fleet.RolloutResumed: resumed,
    Fleet.RolloutHalted: halted,
    Fleet.RolloutRolledBack: rolled_back,
    Fleet.RolloutCompleted: completed,
}


class FleetsProjection(RowProjection):
    name = "fleets"
    aggregate_types = frozenset({Fleet.TYPE})
    table_names = ("fleets",)
    applies = APPLIES
    creates = frozenset({Fleet.Created})
