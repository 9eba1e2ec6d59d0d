"""Inference runtime: honest provider reporting, IO binding, warm-up, rejected outputs, reach demo."""

from __future__ import annotations

import numpy as np
import pytest

from robot_brain.errors import ConfigurationError
from robot_brain.inference.builders import build_policy, mlp_contract
from robot_brain.inference.model import load_model
from robot_brain.inference.reach_policy import build_reach_policy, write_reach_policy
from robot_brain.inference.runtime import (
    CPU,
    InferenceRuntime,
    InvalidOutputError,
    RuntimeOptions,
    nvidia_driver_present,
    resolve_providers,
)


def mlp(**kwargs: object) -> InferenceRuntime:
    model = load_model(build_policy(mlp_contract(horizon=8), hidden=(16,), **kwargs).SerializeToString())
    return InferenceRuntime(model, RuntimeOptions(providers=["cpu"], warmup_runs=2))


def test_cpu_request_reports_cpu_without_warning() -> None:
    runtime = mlp()
    assert runtime.providers.active == (CPU,)
    assert runtime.providers.warning is None
    assert runtime.providers.on_gpu is False
    assert runtime.warmup_s > 0.0


@pytest.mark.skipif(nvidia_driver_present(), reason="checks the no-GPU fallback report")
@pytest.mark.parametrize("request_", [["cuda", "cpu"], ["tensorrt", "cuda", "cpu"], "auto"])
def test_gpu_request_without_gpu_warns_and_never_claims_gpu(request_: object) -> None:
    model = load_model(build_policy(mlp_contract(), hidden=(8,)).SerializeToString())
    runtime = InferenceRuntime(model, RuntimeOptions(providers=request_, warmup_runs=0))  # type: ignore[arg-type]
    assert runtime.providers.primary == CPU
    assert runtime.providers.on_gpu is False
    assert runtime.providers.warning is not None and "NOT in use" in runtime.providers.warning


def test_unknown_provider_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"providers: expected 'auto' or names from .* found 'tpu'"):
        resolve_providers(["tpu"])


def test_io_binding_matches_session_run_and_reuses_buffers() -> None:
    runtime = mlp()
    feeds = {"qpos": np.full((1, 7), 0.3, np.float32), "qvel": np.full((1, 7), -0.1, np.float32)}
    first = runtime.run(feeds)["actions"]
    np.testing.assert_allclose(first, runtime.session.run(["actions"], feeds)[0], rtol=1e-6)
    buffer = runtime.input_buffer("qpos")
    assert buffer is not None
    buffer[:] = 0.0
    second = runtime.run({"qvel": feeds["qvel"]})["actions"]
    expected = runtime.session.run(["actions"], {"qpos": np.zeros((1, 7), np.float32), "qvel": feeds["qvel"]})[0]
    np.testing.assert_allclose(second, expected, rtol=1e-6)
    assert second is first  # the same pre-bound output buffer


def test_nan_outputs_are_counted_and_raised() -> None:
    runtime = mlp(poison="nan")
    for _ in range(3):
        with pytest.raises(InvalidOutputError, match="expected finite values, found NaN/inf"):
            runtime.run()
    assert runtime.counters.non_finite == 3 and runtime.counters.rejected == 3


def test_wrong_runtime_shapes_are_counted_and_raised() -> None:
    runtime = mlp(poison="shape")
    with pytest.raises(InvalidOutputError):
        runtime.run()
    assert runtime.counters.bad_shape == 1


def test_reach_policy_moves_toward_target_with_capped_speed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_reach_policy(tmp_path / "reach.onnx")
    model = load_model(path)
    contract = model.require_contract()
    assert contract.learned is False and "NOT a learned policy" in contract.description
    runtime = InferenceRuntime(model, RuntimeOptions(providers=["cpu"]))
    ee = np.array([[0.3, -0.1, 0.5, 0.0, 0.0, 0.0, 1.0]], np.float32)
    target = np.array([[0.6, 0.2, 0.2]], np.float32)
    chunk = runtime.run({"target_point": target, "ee_pose": ee})["actions"][0].astype(np.float64)
    horizon, dt = contract.action_output.horizon, contract.action_output.dt
    assert chunk.shape == (horizon, 7)
    offsets = chunk[:, :3]
    direction = (target - ee[:, :3])[0] / np.linalg.norm(target - ee[:, :3])
    distances = np.linalg.norm(target[0] - (ee[0, :3] + offsets), axis=1)
    assert np.all(np.diff(distances) < 0), "every waypoint is closer to the target"
    np.testing.assert_allclose(
        offsets / np.linalg.norm(offsets, axis=1, keepdims=True), np.tile(direction, (horizon, 1)), atol=1e-5
    )
    speeds = np.linalg.norm(np.diff(np.vstack([np.zeros(3), offsets]), axis=0), axis=1) / dt
    assert np.all(speeds <= 0.25 + 1e-4) and speeds.max() > 0.2
    np.testing.assert_allclose(chunk[:, 3:], np.tile([0, 0, 0, 1], (horizon, 1)), atol=1e-7)
    near = runtime.run({"target_point": ee[:, :3] + 0.01, "ee_pose": ee})["actions"][0]
    assert np.all(np.linalg.norm(near[:, :3], axis=1) <= np.linalg.norm([0.01] * 3) + 1e-6), "never overshoots"


def test_reach_policy_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="max_speed: expected > 0"):
        build_reach_policy(max_speed=0.0)
