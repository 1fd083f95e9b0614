"""Trials as Ray tasks: a local Ray by default, or a running cluster (--address). The driver submits and collects;
ask/tell stays in the driver. Ray retries a task once when its worker process dies (crash, out of memory)."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.engine.resources import check_cluster
from autocompress.engine.worker import (
    FAULTS_ENV,
    TRIAL_CORES_ENV,
    TrialJob,
    TrialOutcome,
    run_comparison,
    run_prepare,
    run_probe,
    run_trial,
)
from autocompress.errors import UserInputError

RAY_TOKEN_FILE = Path.home() / ".ray" / "auth_token"  # where `ray get-auth-token --generate` writes it
PASSED_ENV = ("OMP_WAIT_POLICY", FAULTS_ENV, "AUTOCOMPRESS_CACHE", "AUTOCOMPRESS_LOCK_DIR")


@dataclass
class Running:
    job: TrialJob
    ref: Any
    submitted: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Finished:
    job: TrialJob
    outcome: TrialOutcome | None
    reason: str | None = None  # why it failed
    detail: str | None = None  # the worker's traceback, when it raised


def check_address(address: str) -> None:
    """Fail fast, with the fix, when --address names no reachable Ray cluster (ray.init would wait a long time, or
    for ever on a port that is open but not Ray's)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    fix = "start one with `ray start --head` and pass its address (host:6379), or leave out --address for a local Ray"
    try:
        with socket.create_connection((host, int(port)), timeout=3) as connection:
            speaks_grpc = _answers_http2(connection)
    except (OSError, ValueError):
        raise UserInputError(f"no Ray cluster answers at {address}: {fix}") from None
    if not speaks_grpc:
        raise UserInputError(f"{address} answers, but not as Ray (no gRPC there): {fix}")


def _answers_http2(connection: socket.socket) -> bool:
    """Whether the server speaks HTTP/2, as Ray's GCS (gRPC) does: its connection preface is a SETTINGS frame."""
    connection.settimeout(3)
    connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    header = b""
    while len(header) < 9:
        chunk = connection.recv(9 - len(header))
        if not chunk:
            return False
        header += chunk
    return header[3] == 0x04  # frame type SETTINGS


def use_cluster_auth() -> None:
    """`ray start --head` turns token authentication on when a token exists (~/.ray/auth_token, RAY_AUTH_TOKEN or
    RAY_AUTH_TOKEN_PATH) and RAY_AUTH_MODE is unset; a driver joining it must then send the token, which Ray does only
    with RAY_AUTH_MODE=token. Set before Ray is imported (it reads its configuration once); an explicit
    RAY_AUTH_MODE is kept."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or RAY_TOKEN_FILE.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


class RayExecutor:
    def __init__(
        self, address: str | None, cpus_per_trial: float, gpus_per_trial: float, measured: tuple[int, ...] = ()
    ) -> None:
        if address:
            use_cluster_auth()
        import ray

        self.ray = ray
        self.own_cores = os.sched_getaffinity(0)
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        if address:
            check_address(address)
            ray.init(address=address, runtime_env={"env_vars": env}, logging_level="ERROR", log_to_driver=False)
            try:
                check_cluster(ray.cluster_resources(), cpus_per_trial, gpus_per_trial, address)
            except UserInputError:
                ray.shutdown()
                raise
        else:
            # Ray's daemons (and this driver, which polls the study) keep off the measured cores, so nothing of the
            # search runs beside a timing: they inherit this process's affinity at start. Trials start with it too
            # and widen back to every core (worker.use_trial_cores); a measurement pins itself to the measured ones.
            others = self.own_cores - set(measured)
            if others:
                os.environ[TRIAL_CORES_ENV] = ",".join(map(str, sorted(self.own_cores)))
                os.sched_setaffinity(0, others)
            # Local workers inherit this environment (OMP_WAIT_POLICY=PASSIVE included).
            # "local": a new Ray of this search's own, never one that `ray start` left on the machine (ray.init()
            # with no address joins the cluster named in /tmp/ray/ray_current_cluster, or RAY_ADDRESS).
            ray.init(
                address="local",
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                configure_logging=True,
            )
        self.task = ray.remote(run_trial)
        self.resources = {"num_cpus": cpus_per_trial, "num_gpus": gpus_per_trial}
        self.running: dict[Any, Running] = {}

    def prepare(self, job: TrialJob, artifacts: tuple[str, ...], stop: Any) -> dict[str, dict[str, Any]]:
        """Run the teacher's preparation (run_prepare) with the whole of one machine, checking `stop()` every second."""
        return self._on_one_node(run_prepare, "prepare", stop, job, artifacts)

    def probe(self, job: TrialJob, artifacts: tuple[str, ...], train_tokens: int, stop: Any) -> dict[str, Any]:
        """Time the units the plan needs (run_probe) with the whole of one machine, as preparation runs."""
        return self._on_one_node(run_probe, "probe", stop, job, artifacts, train_tokens)

    def _on_one_node(self, function: Any, name: str, stop: Any, *args: Any) -> Any:
        """function(*args) as a Ray task with one node's CPUs, not the cluster's (a task asking for more than any
        node has would wait forever), checking `stop()` every second."""
        nodes = [node["Resources"].get("CPU", 0.0) for node in self.ray.nodes() if node["Alive"]]
        ref = self.ray.remote(function).options(name=name, num_cpus=max(nodes)).remote(*args)
        while not self.ray.wait([ref], timeout=1.0)[0]:
            stop()
        return self.ray.get(ref)

    def compare(self, job: TrialJob, artifacts: list[str], rounds: int, stop: Any) -> dict[str, list[dict]]:
        """Time artifacts side by side on the target (run_comparison), with a trial's resources."""
        task = self.ray.remote(run_comparison).options(name="compare", **self.resources)
        ref = task.remote(job, artifacts, rounds)
        while not self.ray.wait([ref], timeout=1.0)[0]:
            stop()
        return self.ray.get(ref)

    def submit(self, job: TrialJob) -> None:
        options = {"name": f"trial-{job.number}", "max_retries": 1, "retry_exceptions": False, **self.resources}
        ref = self.task.options(**options).remote(job)
        self.running[ref] = Running(job, ref)

    def collect(self, wait_s: float, trial_timeout: float | None) -> list[Finished]:
        """Trials that ended (or ran past the timeout, then cancelled) within wait_s seconds."""
        ray, finished = self.ray, []
        if self.running:
            done, _ = ray.wait(list(self.running), num_returns=1, timeout=wait_s)
            done += [ref for ref in ray.wait(list(self.running), num_returns=len(self.running), timeout=0)[0]]
            for ref in dict.fromkeys(done):
                entry = self.running.pop(ref)
                finished.append(self._result(entry))
        else:
            time.sleep(wait_s)
        if trial_timeout:
            for ref, entry in list(self.running.items()):
                if time.monotonic() - entry.submitted > trial_timeout:
                    ray.cancel(ref, force=True)
                    del self.running[ref]
                    finished.append(Finished(entry.job, None, f"exceeded --trial-timeout {trial_timeout:g} s"))
        return finished

    def _result(self, entry: Running) -> Finished:
        from ray import exceptions

        try:
            return Finished(entry.job, self.ray.get(entry.ref))
        except exceptions.RayTaskError as err:
            cause = err.cause if err.cause is not None else err
            detail = str(err).strip().splitlines()
            return Finished(entry.job, None, f"{type(cause).__name__}: {_first_line(cause)}", "\n".join(detail[-30:]))
        except exceptions.OutOfMemoryError as err:
            return Finished(entry.job, None, f"out of memory (killed by Ray, retried once): {_first_line(err)}")
        except (exceptions.WorkerCrashedError, exceptions.RayError) as err:
            return Finished(entry.job, None, f"worker died twice (retried once): {type(err).__name__}")

    def cancel_all(self, reason: str) -> list[Finished]:
        stopped = []
        for ref, entry in list(self.running.items()):
            self.ray.cancel(ref, force=True)
            stopped.append(Finished(entry.job, None, reason))
        self.running.clear()
        return stopped

    def shutdown(self) -> None:
        self.ray.shutdown()
        os.environ.pop(TRIAL_CORES_ENV, None)
        os.sched_setaffinity(0, self.own_cores)


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(err).__name__
