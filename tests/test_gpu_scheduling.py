"""GPU scheduling without GPUs: a real local Ray started with logical GPUs places trial tasks as it would on a GPU
machine (CUDA_VISIBLE_DEVICES set per task), and the measurement lock follows the GPU a task was given: tasks on
different GPUs measure at the same time, two sharing one GPU (0.5 each) never do."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

HOLD_S = 1.5  # how long each task holds its measurement: long enough for both to be running at once


@pytest.fixture
def ray_with_gpus(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    import ray

    os.environ["AUTOCOMPRESS_LOCK_DIR"] = str(tmp_path)  # workers inherit it: this test's locks only
    if ray.is_initialized():  # a search earlier in this process left its Ray: this test needs one with GPUs
        ray.shutdown()
    try:
        ray.init(address="local", num_cpus=2, num_gpus=request.param, include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False)  # fmt: skip
        yield ray
    finally:
        ray.shutdown()
        del os.environ["AUTOCOMPRESS_LOCK_DIR"]


def _measure() -> tuple[str, float, float]:
    """What a trial's latency step does on a CUDA target: hold the device's measurement lock."""
    from autocompress.measure_lock import exclusive
    from autocompress.target import TargetSpec

    with exclusive(TargetSpec.from_dict({"device": "cuda"})):
        began = time.monotonic()
        time.sleep(HOLD_S)
        return os.environ.get("CUDA_VISIBLE_DEVICES", ""), began, time.monotonic()


def _two(ray: Any, gpus: float) -> list[tuple[str, float, float]]:
    task = ray.remote(_measure).options(num_gpus=gpus, num_cpus=0.5)
    return ray.get([task.remote(), task.remote()])


def _overlap(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


@pytest.mark.parametrize("ray_with_gpus", [2], indirect=True)
def test_trials_on_two_gpus_get_one_each_and_measure_at_once(ray_with_gpus: Any) -> None:
    first, second = _two(ray_with_gpus, 1)
    assert {first[0], second[0]} == {"0", "1"}, (first, second)
    assert _overlap(first, second), "different GPUs: measurements run side by side"


def _train() -> tuple[str, float, float]:
    """What a distillation step does on a CUDA target: background work on its own GPU, here held long."""
    from autocompress.measure_lock import background_work

    with background_work("cuda"):
        began = time.monotonic()
        time.sleep(2 * HOLD_S)
        return os.environ.get("CUDA_VISIBLE_DEVICES", ""), began, time.monotonic()


@pytest.mark.parametrize("ray_with_gpus", [2], indirect=True)
def test_training_on_one_gpu_never_pauses_a_measurement_on_another(ray_with_gpus: Any) -> None:
    ray = ray_with_gpus
    training = ray.remote(_train).options(num_gpus=1, num_cpus=0.5).remote()
    time.sleep(HOLD_S / 3)  # the training step holds its GPU's lock first
    measuring = ray.remote(_measure).options(num_gpus=1, num_cpus=0.5).remote()
    trained, measured = ray.get([training, measuring])
    assert trained[0] != measured[0], (trained, measured)
    assert _overlap(trained, measured), "the measurement did not wait for training on the other GPU"


@pytest.mark.parametrize("ray_with_gpus", [1], indirect=True)
def test_two_trials_sharing_a_gpu_never_measure_at_once(ray_with_gpus: Any) -> None:
    first, second = _two(ray_with_gpus, 0.5)
    assert first[0] == second[0] == "0", (first, second)  # --gpus-per-trial 0.5 packs both on the one GPU
    assert not _overlap(first, second), "one GPU: one measurement at a time"


def test_the_lock_names_the_gpu_a_process_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from autocompress.measure_lock import device_key

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert device_key("cuda") == "cuda3" and device_key("cpu") == "cpu"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert device_key("cuda") == "cuda0"
