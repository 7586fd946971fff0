from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from domain import errors
from domain.fleet import Fleet
from domain.identity import fleet_id
from tests.unit.given_when_then import BY, Fact, fact, given, replayed, then_error, then_events

MODEL_1 = uuid4()
MODEL_2 = uuid4()
D1, D2, D3, D4, D5, D6 = (uuid4() for _ in range(6))

CREATED = fact(Fleet.Created, tenant_id="acme", name="north-depots")
RUNS_MODEL_1 = (
    fact(
        Fleet.RolloutStarted,
        model_id=MODEL_1,
        model_version="1.0.0",
        previous_model_id=None,
        previous_model_version=None,
        phases=[100],
        failure_threshold=1.0,
    ),
    fact(Fleet.RolloutPhaseStarted, phase_index=0, percent=100, device_ids=[D1]),
    fact(Fleet.InstallResultRecorded, device_id=D1, succeeded=True),
    fact(Fleet.RolloutCompleted, model_id=MODEL_1, model_version="1.0.0", succeeded=1, failed=0),
)


def rollout_of_model_2(phases: list[int], failure_threshold: float = 0.25) -> tuple[Fact, ...]:
    return (
        fact(
            Fleet.RolloutStarted,
            model_id=MODEL_2,
            model_version="2.0.0",
            previous_model_id=MODEL_1,
            previous_model_version="1.0.0",
            phases=phases,
            failure_threshold=failure_threshold,
        ),
    )


def phase(index: int, percent: int, *devices: UUID) -> Fact:
    return fact(
        Fleet.RolloutPhaseStarted, phase_index=index, percent=percent, device_ids=list(devices)
    )


def result(device: UUID, succeeded: bool) -> Fact:
    return fact(Fleet.InstallResultRecorded, device_id=device, succeeded=succeeded)


ROLLING_OUT = (CREATED, *RUNS_MODEL_1, *rollout_of_model_2([25, 50, 100]))
FIRST_PHASE = (*ROLLING_OUT, phase(0, 25, D1, D2, D3, D4))
PAUSED = (*FIRST_PHASE, fact(Fleet.RolloutPaused))


# Creation


def test_creating_a_fleet_records_its_name() -> None:
    fleet = Fleet.create(tenant_id="acme", name="north-depots", **BY)

    then_events(fleet, [fact(Fleet.Created, name="north-depots")])
    assert fleet.id == fleet_id("acme", "north-depots")
    assert (fleet.TYPE, fleet.tenant_id, fleet.name) == ("fleet", "acme", "north-depots")
    assert fleet.rollout is None and fleet.current_model_version is None
    assert fleet.rollout_count == 0


@pytest.mark.parametrize("name", ["", "n" * 101, " padded", "padded "])
def test_a_fleet_name_must_be_1_to_100_characters_without_surrounding_spaces(name: str) -> None:
    error = then_error(Fleet.create, errors.InvalidValue, tenant_id="acme", name=name, **BY)
    assert error.field == "name"


# Starting a rollout


def test_a_rollout_starts_from_the_model_the_fleet_runs() -> None:
    fleet = given(Fleet, CREATED, *RUNS_MODEL_1)

    fleet.start_rollout(MODEL_2, "2.0.0", [5, 25, 100], 0.1, **BY)

    then_events(
        fleet,
        [
            fact(
                Fleet.RolloutStarted,
                model_id=MODEL_2,
                model_version="2.0.0",
                previous_model_id=MODEL_1,
                previous_model_version="1.0.0",
                phases=[5, 25, 100],
                failure_threshold=0.1,
            )
        ],
    )
    assert fleet.rollout is not None and fleet.rollout["phases_started"] == 0
    assert fleet.rollout_count == 2


def test_the_first_rollout_of_a_fleet_has_no_previous_model() -> None:
    fleet = given(Fleet, CREATED)

    fleet.start_rollout(MODEL_1, "1.0.0", [100], 1, **BY)

    [started] = then_events(fleet, [Fleet.RolloutStarted])
    assert (started.previous_model_id, started.previous_model_version) == (None, None)
    assert started.failure_threshold == 1.0 and isinstance(started.failure_threshold, float)


def test_a_rollout_cannot_start_while_another_is_running() -> None:
    fleet = given(Fleet, *FIRST_PHASE)

    then_error(fleet.start_rollout, errors.RolloutAlreadyActive, MODEL_1, "3.0.0", [100], 0.5, **BY)


def test_a_rollout_cannot_start_while_another_is_paused() -> None:
    fleet = given(Fleet, *PAUSED)

    then_error(fleet.start_rollout, errors.RolloutAlreadyActive, MODEL_1, "3.0.0", [100], 0.5, **BY)


@pytest.mark.parametrize(
    "phases",
    [
        [],
        [50],
        [0, 100],
        [5, 101],
        [50, 50, 100],
        [50, 25, 100],
        [5.0, 100],
        [True, 100],
        "5,100",
        [*range(1, 11), 100],  # eleven phases
    ],
)
def test_phases_must_be_strictly_increasing_percentages_ending_at_100(phases: object) -> None:
    fleet = given(Fleet, CREATED, *RUNS_MODEL_1)

    error = then_error(
        fleet.start_rollout, errors.InvalidValue, MODEL_2, "2.0.0", phases, 0.1, **BY
    )
    assert error.field == "phases"


def test_ten_phases_are_allowed() -> None:
    fleet = given(Fleet, CREATED)

    fleet.start_rollout(MODEL_1, "1.0.0", [10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0.1, **BY)

    then_events(fleet, [Fleet.RolloutStarted])


@pytest.mark.parametrize("threshold", [0, -0.1, 1.01, float("nan"), True, "0.1"])
def test_the_failure_threshold_must_be_above_0_and_at_most_1(threshold: object) -> None:
    fleet = given(Fleet, CREATED, *RUNS_MODEL_1)

    error = then_error(
        fleet.start_rollout, errors.InvalidValue, MODEL_2, "2.0.0", [100], threshold, **BY
    )
    assert error.field == "failure_threshold"


def test_rolling_out_the_model_the_fleet_already_runs_is_rejected() -> None:
    fleet = given(Fleet, CREATED, *RUNS_MODEL_1)

    then_error(
        fleet.start_rollout, errors.RolloutTargetIsCurrent, MODEL_1, "1.0.0", [100], 0.1, **BY
    )


# Advancing through phases


def test_advancing_starts_the_next_phase_on_the_chosen_devices() -> None:
    fleet = given(Fleet, *ROLLING_OUT)

    fleet.advance_rollout([D1, D2], **BY)

    then_events(
        fleet,
        [fact(Fleet.RolloutPhaseStarted, phase_index=0, percent=25, device_ids=[D1, D2])],
    )
    assert fleet.rollout is not None and fleet.rollout["targeted"] == [D1, D2]


def test_later_phases_add_to_the_devices_already_targeted() -> None:
    fleet = given(Fleet, *FIRST_PHASE)

    fleet.advance_rollout([D5, D6], **BY)

    then_events(fleet, [fact(Fleet.RolloutPhaseStarted, phase_index=1, percent=50)])
    assert fleet.rollout is not None and fleet.rollout["targeted"] == [D1, D2, D3, D4, D5, D6]


def test_a_fleet_without_a_rollout_cannot_advance_one() -> None:
    fleet = given(Fleet, CREATED)

    then_error(fleet.advance_rollout, errors.NoActiveRollout, [D1], **BY)


def test_a_paused_rollout_cannot_advance() -> None:
    fleet = given(Fleet, *PAUSED)

    then_error(fleet.advance_rollout, errors.RolloutPaused, [D5], **BY)


def test_a_rollout_cannot_advance_past_its_last_phase() -> None:
    fleet = given(Fleet, *ROLLING_OUT, phase(0, 25, D1), phase(1, 50, D2), phase(2, 100, D3))

    then_error(fleet.advance_rollout, errors.RolloutPhasesExhausted, [D4], **BY)


def test_a_phase_cannot_target_a_device_an_earlier_phase_targeted() -> None:
    fleet = given(Fleet, *FIRST_PHASE)

    error = then_error(fleet.advance_rollout, errors.InvalidValue, [D5, D1], **BY)
    assert error.field == "device_ids"


@pytest.mark.parametrize(
    "device_ids", [[], [D1, D1], ["not-a-uuid"]], ids=["empty", "twice", "text"]
)
def test_a_phase_needs_distinct_device_ids(device_ids: list[object]) -> None:
    fleet = given(Fleet, *ROLLING_OUT)

    error = then_error(fleet.advance_rollout, errors.InvalidValue, device_ids, **BY)
    assert error.field == "device_ids"


# Install results, automatic halt and completion


def test_an_install_result_is_recorded_for_a_targeted_device() -> None:
    fleet = given(Fleet, *FIRST_PHASE)

    fleet.record_install_result(D1, True, **BY)

    then_events(fleet, [fact(Fleet.InstallResultRecorded, device_id=D1, succeeded=True)])
    assert fleet.rollout is not None and fleet.rollout["succeeded"] == [D1]


def test_an_install_result_for_a_device_outside_the_rollout_is_rejected() -> None:
    fleet = given(Fleet, *FIRST_PHASE)

    then_error(fleet.record_install_result, errors.DeviceNotInRollout, D5, True, **BY)


def test_a_devices_install_result_counts_only_once() -> None:
    fleet = given(Fleet, *FIRST_PHASE, result(D1, False))

    then_error(fleet.record_install_result, errors.InstallResultAlreadyRecorded, D1, True, **BY)


def test_an_install_result_without_a_rollout_is_rejected() -> None:
    fleet = given(Fleet, CREATED, *RUNS_MODEL_1)

    then_error(fleet.record_install_result, errors.NoActiveRollout, D1, True, **BY)


def test_install_results_are_still_recorded_while_a_rollout_is_paused() -> None:
    fleet = given(Fleet, *PAUSED)

    fleet.record_install_result(D1, True, **BY)

    then_events(fleet, [Fleet.InstallResultRecorded])


def test_failures_at_the_threshold_do_not_halt_the_rollout() -> None:
    fleet = given(Fleet, *FIRST_PHASE)  # 4 devices, threshold 0.25

    fleet.record_install_result(D2, False, **BY)

    then_events(fleet, [Fleet.InstallResultRecorded])
    assert fleet.rollout is not None


def test_crossing_the_failure_threshold_halts_and_rolls_back_in_the_same_command() -> None:
    fleet = given(Fleet, *FIRST_PHASE, result(D1, True), result(D2, False))

    fleet.record_install_result(D3, False, **BY)

    then_events(
        fleet,
        [
            fact(Fleet.InstallResultRecorded, device_id=D3, succeeded=False),
            fact(Fleet.RolloutHalted, reason="failure threshold crossed", failed=2, targeted=4),
            fact(
                Fleet.RolloutRolledBack,
                device_ids=[D1, D4],  # succeeded or still pending; failed ones never left 1.0.0
                to_model_id=MODEL_1,
                to_model_version="1.0.0",
                reason="failure threshold crossed",
            ),
        ],
    )
    assert fleet.rollout is None
    assert fleet.current_model_version == "1.0.0"


def test_a_new_rollout_may_start_after_an_automatic_rollback() -> None:
    fleet = given(Fleet, *FIRST_PHASE, result(D1, False))
    fleet.record_install_result(D2, False, **BY)
    fleet.collect_events()

    fleet.start_rollout(MODEL_2, "2.0.1", [100], 0.25, **BY)

    then_events(fleet, [fact(Fleet.RolloutStarted, previous_model_version="1.0.0")])


def test_a_rollout_completes_when_every_device_of_the_final_phase_succeeded() -> None:
    fleet = given(
        Fleet,
        *ROLLING_OUT,
        phase(0, 25, D1),
        result(D1, True),
        phase(1, 50, D2),
        phase(2, 100, D3, D4),
        result(D2, True),
        result(D3, True),
    )

    fleet.record_install_result(D4, True, **BY)

    then_events(
        fleet,
        [
            fact(Fleet.InstallResultRecorded, device_id=D4, succeeded=True),
            fact(
                Fleet.RolloutCompleted,
                model_id=MODEL_2,
                model_version="2.0.0",
                succeeded=4,
                failed=0,
            ),
        ],
    )
    assert fleet.rollout is None
    assert (fleet.current_model_id, fleet.current_model_version) == (MODEL_2, "2.0.0")


def test_a_rollout_with_failures_within_its_threshold_completes_once_every_device_reported() -> (
    None
):
    fleet = given(
        Fleet,
        *ROLLING_OUT,
        phase(0, 25, D1, D2, D3),
        phase(1, 50, D4),
        phase(2, 100, D5),
        result(D1, True),
        result(D2, False),
        result(D3, True),
        result(D4, True),
    )

    fleet.record_install_result(D5, True, **BY)

    then_events(
        fleet,
        [Fleet.InstallResultRecorded, fact(Fleet.RolloutCompleted, succeeded=4, failed=1)],
    )
    assert fleet.current_model_version == "2.0.0"


def test_a_rollout_does_not_complete_before_its_final_phase_started() -> None:
    fleet = given(Fleet, *ROLLING_OUT, phase(0, 25, D1))

    fleet.record_install_result(D1, True, **BY)

    then_events(fleet, [Fleet.InstallResultRecorded])
    assert fleet.rollout is not None and fleet.current_model_version == "1.0.0"


# Pause, resume, roll back, halt


def test_a_running_rollout_pauses() -> None:
    fleet = given(Fleet, *FIRST_PHASE)

    fleet.pause_rollout(**BY)

    then_events(fleet, [Fleet.RolloutPaused])
    assert fleet.rollout is not None and fleet.rollout["paused"]


def test_a_fleet_without_a_rollout_cannot_pause_one() -> None:
    fleet = given(Fleet, CREATED)

    then_error(fleet.pause_rollout, errors.NoActiveRollout, **BY)


def test_a_paused_rollout_cannot_pause_again() -> None:
    fleet = given(Fleet, *PAUSED)

    then_error(fleet.pause_rollout, errors.RolloutAlreadyPaused, **BY)


def test_a_paused_rollout_resumes() -> None:
    fleet = given(Fleet, *PAUSED)

    fleet.resume_rollout(**BY)

    then_events(fleet, [Fleet.RolloutResumed])
    assert fleet.rollout is not None and not fleet.rollout["paused"]


def test_a_running_rollout_cannot_resume() -> None:
    fleet = given(Fleet, *FIRST_PHASE)

    then_error(fleet.resume_rollout, errors.RolloutNotPaused, **BY)


def test_a_fleet_without_a_rollout_cannot_resume_one() -> None:
    fleet = given(Fleet, CREATED)

    then_error(fleet.resume_rollout, errors.NoActiveRollout, **BY)


def test_an_operator_rolls_back_every_device_the_rollout_reached() -> None:
    fleet = given(Fleet, *PAUSED, result(D1, True), result(D2, False))

    fleet.roll_back_rollout("customer complaint", **BY)

    then_events(
        fleet,
        [
            fact(
                Fleet.RolloutRolledBack,
                device_ids=[D1, D3, D4],
                to_model_id=MODEL_1,
                to_model_version="1.0.0",
                reason="customer complaint",
            )
        ],
    )
    assert fleet.rollout is None and fleet.current_model_version == "1.0.0"


def test_a_fleet_without_a_rollout_cannot_roll_one_back() -> None:
    fleet = given(Fleet, CREATED, *RUNS_MODEL_1)

    then_error(fleet.roll_back_rollout, errors.NoActiveRollout, "why not", **BY)


def test_rolling_back_needs_a_reason() -> None:
    fleet = given(Fleet, *FIRST_PHASE)

    error = then_error(fleet.roll_back_rollout, errors.InvalidValue, "", **BY)
    assert error.field == "reason"


def test_an_operator_halts_a_rollout_without_rolling_back() -> None:
    fleet = given(Fleet, *FIRST_PHASE, result(D2, False))

    fleet.halt_rollout("investigating latency", **BY)

    then_events(
        fleet,
        [fact(Fleet.RolloutHalted, reason="investigating latency", failed=1, targeted=4)],
    )
    assert fleet.rollout is None and fleet.current_model_version == "1.0.0"


def test_a_fleet_without_a_rollout_cannot_halt_one() -> None:
    fleet = given(Fleet, CREATED)

    then_error(fleet.halt_rollout, errors.NoActiveRollout, "why not", **BY)


def test_a_new_rollout_may_start_after_a_halt() -> None:
    fleet = given(Fleet, *FIRST_PHASE, fact(Fleet.RolloutHalted, reason="x", failed=0, targeted=4))

    fleet.start_rollout(MODEL_2, "2.0.0", [100], 0.5, **BY)

    then_events(fleet, [Fleet.RolloutStarted])
    assert fleet.rollout_count == 3


# Replay


def test_replaying_a_fleets_events_rebuilds_an_equal_fleet() -> None:
    fleet = Fleet.create(tenant_id="acme", name="north-depots", **BY)
    fleet.start_rollout(MODEL_1, "1.0.0", [50, 100], 0.5, **BY)
    fleet.advance_rollout([D1], **BY)
    fleet.pause_rollout(**BY)
    fleet.record_install_result(D1, True, **BY)
    fleet.resume_rollout(**BY)
    fleet.advance_rollout([D2, D3], **BY)
    fleet.record_install_result(D2, True, **BY)
    fleet.record_install_result(D3, True, **BY)
    fleet.start_rollout(MODEL_2, "2.0.0", [100], 0.1, **BY)
    fleet.advance_rollout([D1, D2, D3], **BY)
    fleet.record_install_result(D1, False, **BY)
    events = fleet.collect_events()

    assert [type(event).__name__ for event in events][-4:] == [
        "RolloutPhaseStarted",
        "InstallResultRecorded",
        "RolloutHalted",
        "RolloutRolledBack",
    ]
    assert replayed(events) == fleet
    assert fleet.current_model_version == "1.0.0" and fleet.rollout is None


def test_an_events_lists_are_not_shared_with_the_fleets_state() -> None:
    fleet = given(Fleet, *ROLLING_OUT)
    chosen = [D1]

    fleet.advance_rollout(chosen, **BY)
    [started] = then_events(fleet, [Fleet.RolloutPhaseStarted])
    fleet.advance_rollout([D2], **BY)
    chosen.append(D3)

    assert started.device_ids == [D1]
    assert fleet.rollout is not None and fleet.rollout["targeted"] == [D1, D2]
