"""What a search asks of the machine, against what it has: refused at once in one line, never a trial that waits
forever for a CPU or GPU that does not exist (Ray queues such a task without a word)."""

from __future__ import annotations

import os
from typing import Any

from autocompress.engine.config import SearchConfig
from autocompress.errors import UserInputError


def check_local(config: SearchConfig) -> None:
    """Before Ray starts: the target's cores and threads, and the trials' CPUs and GPUs on a local Ray."""
    target, own = config.target, sorted(os.sched_getaffinity(0))
    if config.address is None and target.device == "cpu":  # on a cluster the measuring node is not this machine
        if target.cores is not None and not set(target.cores) <= set(own):
            missing = sorted(set(target.cores) - set(own))
            raise UserInputError(
                f"target cores {list(target.cores)}: {missing} are not CPUs this process may use ({_span(own)}): "
                "give cores from that list"
            )
        if target.threads > len(target.measured_cores()):
            raise UserInputError(
                f"target threads {target.threads} is more than the {len(target.measured_cores())} core(s) measured on "
                f"here: give --threads {len(target.measured_cores())} or fewer"
            )
    if target.device == "cpu" and config.gpus_per_trial:
        raise UserInputError(
            f"--gpus-per-trial {config.gpus_per_trial:g} on a CPU target: trials would wait for GPUs they never use; "
            "leave it out, or give --device cuda"
        )
    if config.address is not None:
        return
    if config.trial_cpus() > (os.cpu_count() or 1):
        raise UserInputError(
            f"--cpus-per-trial {config.trial_cpus():g} is more than the {os.cpu_count()} CPUs of this machine: "
            f"give at most {os.cpu_count()}, or --address of a Ray cluster with bigger nodes"
        )
    if target.device == "cuda":
        count = cuda_devices()
        if count == 0:
            raise UserInputError("the target is cuda but this machine has no CUDA GPU: give --device cpu, or --address")
        if config.trial_gpus() > count:
            raise UserInputError(f"--gpus-per-trial {config.trial_gpus():g} is more than the {count} GPU(s) here")


def check_cluster(cluster: dict[str, Any], cpus: float, gpus: float, address: str) -> None:
    """After joining a cluster (ray.cluster_resources()): a trial must fit on it."""
    for name, wanted, option in (("CPU", cpus, "--cpus-per-trial"), ("GPU", gpus, "--gpus-per-trial")):
        have = float(cluster.get(name, 0.0))
        if wanted > have:
            raise UserInputError(
                f"{option} {wanted:g}: the Ray cluster at {address} has {have:g} {name}s in all: ask for at most that"
            )


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _span(cores: list[int]) -> str:
    return f"{cores[0]}-{cores[-1]}" if cores == list(range(cores[0], cores[-1] + 1)) else ",".join(map(str, cores))
