from __future__ import annotations

from typing import Any

import pytest

from domain import errors
from domain.identity import model_id
from domain.model import Model
from tests.unit.given_when_then import BY, fact, given, replayed, then_error, then_events

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
INPUTS = {"images": {"dtype": "float32", "shape": [None, 3, 224, 224]}}
OUTPUTS = {"scores": {"dtype": "float32", "shape": [None, 1000]}}

REGISTERED = fact(
    Model.Registered,
    tenant_id="acme",
    name="defect-detector",
    version="1.4.2",
    sha256=SHA,
    size_bytes=24_000_000,
    input_signature=INPUTS,
    output_signature=OUTPUTS,
    artifact_name="defect-detector-1.4.2.onnx",
)
IN_STAGING = fact(Model.Promoted, from_stage="registered", to_stage="staging")
IN_PRODUCTION = fact(Model.Promoted, from_stage="staging", to_stage="production")
DEPRECATED = fact(Model.Deprecated, from_stage="production", reason="superseded by 1.5.0")


def register(**overrides: Any) -> Model:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "name": "defect-detector",
        "version": "1.4.2",
        "sha256": SHA,
        "size_bytes": 24_000_000,
        "input_signature": INPUTS,
        "output_signature": OUTPUTS,
        "artifact_name": "defect-detector-1.4.2.onnx",
        **BY,
    }
    fields.update(overrides)
    return Model.register(**fields)


# Registration


def test_registering_a_model_records_what_a_device_needs_to_trust_and_run_it() -> None:
    model = register()

    then_events(
        model,
        [
            fact(
                Model.Registered,
                name="defect-detector",
                version="1.4.2",
                sha256=SHA,
                size_bytes=24_000_000,
                input_signature=INPUTS,
                output_signature=OUTPUTS,
                artifact_name="defect-detector-1.4.2.onnx",
            )
        ],
    )
    assert model.id == model_id("acme", "defect-detector", "1.4.2")
    assert (model.TYPE, model.tenant_id, model.stage) == ("model", "acme", "registered")
    assert (model.name, model.model_version, model.version) == ("defect-detector", "1.4.2", 1)


def test_a_model_id_follows_from_tenant_name_and_version() -> None:
    assert register().id == register().id
    assert register().id != register(version="1.4.3").id
    assert register().id != register(name="other").id


def test_a_model_may_be_registered_before_its_artifact_is_stored() -> None:
    model = register(artifact_name=None)

    then_events(model, [fact(Model.Registered, artifact_name=None)])


@pytest.mark.parametrize("name", ["", "n" * 101, "has space", "a/b"])
def test_a_model_name_outside_the_safe_alphabet_is_rejected(name: str) -> None:
    error = then_error(register, errors.InvalidValue, name=name)
    assert error.field == "name"


@pytest.mark.parametrize("version", ["", "1.4", "v1.4.2", "1.4.2.0", "1.4.2-", "latest"])
def test_a_version_must_look_like_semver(version: str) -> None:
    error = then_error(register, errors.InvalidValue, version=version)
    assert error.field == "version"


def test_a_version_may_carry_a_prerelease_suffix() -> None:
    model = register(version="2.0.0-rc.1")

    then_events(model, [fact(Model.Registered, version="2.0.0-rc.1")])


@pytest.mark.parametrize("sha256", ["", SHA[:-1], SHA + "0", SHA.upper(), "z" * 64])
def test_a_sha256_must_be_64_lowercase_hex_characters(sha256: str) -> None:
    error = then_error(register, errors.InvalidValue, sha256=sha256)
    assert error.field == "sha256"


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_a_size_must_be_a_positive_whole_number_of_bytes(size: object) -> None:
    error = then_error(register, errors.InvalidValue, size_bytes=size)
    assert error.field == "size_bytes"


@pytest.mark.parametrize(
    "signature",
    [
        {},
        [],
        {"": {"dtype": "float32", "shape": [1]}},
        {"x": {"shape": [1]}},
        {"x": {"dtype": "", "shape": [1]}},
        {"x": {"dtype": "float32", "shape": (1, 3)}},
        {"x": {"dtype": "float32", "shape": [1, -1]}},
        {"x": {"dtype": "float32", "shape": [1, "batch"]}},
        {"x": {"dtype": "float32", "shape": [1], "layout": "nchw"}},
    ],
)
@pytest.mark.parametrize("field", ["input_signature", "output_signature"])
def test_a_signature_maps_tensor_names_to_a_dtype_and_shape(field: str, signature: object) -> None:
    error = then_error(register, errors.InvalidValue, **{field: signature})
    assert error.field == field


def test_the_registered_signature_is_a_copy_the_caller_cannot_change() -> None:
    inputs: dict[str, Any] = {"images": {"dtype": "float32", "shape": [None, 3]}}
    model = register(input_signature=inputs)

    inputs["images"]["shape"].append(7)

    assert model.input_signature == {"images": {"dtype": "float32", "shape": [None, 3]}}


def test_a_blank_artifact_name_is_rejected() -> None:
    error = then_error(register, errors.InvalidValue, artifact_name=" ")
    assert error.field == "artifact_name"


# Stages


def test_a_registered_model_is_promoted_to_staging() -> None:
    model = given(Model, REGISTERED)

    model.promote("staging", **BY)

    then_events(model, [fact(Model.Promoted, from_stage="registered", to_stage="staging")])
    assert model.stage == "staging"


def test_a_staging_model_is_promoted_to_production() -> None:
    model = given(Model, REGISTERED, IN_STAGING)

    model.promote("production", **BY)

    then_events(model, [fact(Model.Promoted, from_stage="staging", to_stage="production")])
    assert model.stage == "production"


@pytest.mark.parametrize(
    ("history", "to_stage"),
    [
        ((), "production"),
        ((), "registered"),
        ((IN_STAGING,), "registered"),
        ((IN_STAGING,), "staging"),
        ((IN_STAGING, IN_PRODUCTION), "staging"),
        ((IN_STAGING, IN_PRODUCTION), "production"),
        ((IN_STAGING, IN_PRODUCTION), "deprecated"),
    ],
)
def test_a_model_moves_only_one_step_forward(history: tuple[Any, ...], to_stage: str) -> None:
    model = given(Model, REGISTERED, *history)
    from_stage = model.stage

    error = then_error(model.promote, errors.InvalidStageTransition, to_stage, **BY)
    assert (error.from_stage, error.to_stage) == (from_stage, to_stage)
    assert from_stage in error.message and to_stage in error.message


def test_promoting_to_an_unknown_stage_is_rejected() -> None:
    model = given(Model, REGISTERED)

    error = then_error(model.promote, errors.InvalidValue, "canary", **BY)
    assert error.field == "to_stage"


def test_a_model_is_deprecated_with_a_reason() -> None:
    model = given(Model, REGISTERED, IN_STAGING, IN_PRODUCTION)

    model.deprecate("superseded by 1.5.0", **BY)

    then_events(
        model,
        [fact(Model.Deprecated, from_stage="production", reason="superseded by 1.5.0")],
    )
    assert model.stage == "deprecated"
    assert model.deprecation_reason == "superseded by 1.5.0"


def test_deprecating_needs_a_reason() -> None:
    model = given(Model, REGISTERED)

    error = then_error(model.deprecate, errors.InvalidValue, "", **BY)
    assert error.field == "reason"


def test_a_deprecated_model_cannot_be_promoted() -> None:
    model = given(Model, REGISTERED, DEPRECATED)

    then_error(model.promote, errors.DeprecatedModel, "staging", **BY)


def test_a_deprecated_model_cannot_be_deprecated_again() -> None:
    model = given(Model, REGISTERED, DEPRECATED)

    then_error(model.deprecate, errors.ModelAlreadyDeprecated, "still old", **BY)


# Replay


def test_replaying_a_models_events_rebuilds_an_equal_model() -> None:
    model = register()
    model.promote("staging", **BY)
    model.promote("production", **BY)
    model.deprecate("superseded", **BY)
    events = model.collect_events()

    assert replayed(events) == model
    assert model.version == 4
