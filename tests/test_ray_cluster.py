"""The README's cluster recipe on a real `ray start --head` (token authentication on, as Ray turns it on when a token
exists), and an --address that is not Ray refused within seconds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.searching import cli, cli_args, search_setup


@pytest.fixture(scope="module")
def setup(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return search_setup(tiny_models["marian"], tmp_path_factory.mktemp("cluster"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def not_ray() -> Iterator[str]:
    """A TCP service that answers with a banner, as an SSH or SMTP server on that port would."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            time.sleep(5)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    server.close()


def test_an_address_that_is_not_ray_is_refused_within_seconds(
    setup: dict[str, Any], tmp_path: Path, not_ray: str
) -> None:
    started = time.monotonic()
    done = cli(cli_args(setup, tmp_path / "out", "--address", not_ray))
    assert done.returncode == 2 and "not as Ray" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "out").exists()


def _ray_start(arguments: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`ray start --block` in a session of its own: Ray's process reaper, which signals its whole process group when
    it reads the end of its stdin, never reaches this test's process; stopped by _ray_stop (never `ray stop`, which
    stops every Ray on the machine)."""
    return subprocess.Popen(
        ["ray", "start", "--block", *arguments],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _ray_stop(node: subprocess.Popen) -> None:
    """SIGTERM to the node's session, then SIGKILL: `ray start --block` took 30 s to stop gracefully, and nothing of a
    test's cluster outlives it (its temp dir is removed after)."""
    try:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)
    except ProcessLookupError:  # already gone (killed where it did not come up)
        pass


def _wait_for_port(port: int, nodes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    errors = [node.stderr.read() if node.stderr else "" for node in nodes]
    for node in nodes:
        os.killpg(node.pid, signal.SIGKILL)
    pytest.fail(f"ray start --head did not come up: {errors}")


@contextlib.contextmanager
def _ray_head(env: dict[str, str], cpus: int) -> Iterator[str]:
    """A head node on a free port; yields its address. Its own temp dir, so that the `ray_current_cluster` file it
    writes does not point other Ray users of the machine at it (short: Ray's socket paths stay under 108 characters)."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    head = _ray_start(
        ["--head", f"--port={port}", f"--num-cpus={cpus}", "--include-dashboard=false", f"--temp-dir={temp}"], env
    )
    try:
        _wait_for_port(port, [head])
        yield f"127.0.0.1:{port}"
    finally:
        _ray_stop(head)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`ray start --head` with its own HOME holding a token (~/.ray/auth_token): Ray turns token authentication on,
    as it does on a machine where `ray get-auth-token --generate` ran."""
    if shutil.which("ray") is None:
        pytest.skip("the ray command is not installed")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("a" * 32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {"HOME": str(home)}
    with _ray_head(env, cpus=2) as address:
        yield address, env


def test_the_readme_cluster_recipe_runs_with_token_auth(
    setup: dict[str, Any], tmp_path: Path, ray_head: tuple[str, dict[str, str]]
) -> None:
    address, env = ray_head
    out = tmp_path / "on-cluster"
    done = cli(cli_args(setup, out, "--address", address, "--budget", "1", "--no-constraint", "--json"), env=env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    summary = json.loads(done.stdout)
    assert summary["trials"]["measured"] == 1 and (out / "best" / "artifact.json").exists()
    too_big = cli(cli_args(setup, tmp_path / "big", "--address", address, "--cpus-per-trial", "64"), env=env)
    assert too_big.returncode == 2 and "has 2 CPUs in all" in too_big.stderr, too_big.stderr


def test_a_token_makes_the_driver_send_it(tmp_path: Path) -> None:
    """RAY_AUTH_MODE is set to token only when a token exists and the mode is unset (run in a fresh interpreter:
    Ray reads its configuration once)."""
    code = (
        "import os; from autocompress.engine.executor import use_cluster_auth; use_cluster_auth(); "
        "print(os.environ.get('RAY_AUTH_MODE'))"
    )
    home = tmp_path / "home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {"HOME": str(home)}

    def mode(env: dict[str, str]) -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()

    assert mode(base) == "None"
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("b" * 32)
    assert mode(base) == "token"
    assert mode(base | {"RAY_AUTH_MODE": "disabled"}) == "disabled"


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Two Ray nodes on this machine, as `ray start` makes them on two: a head and a worker node joining it, one CPU
    each, so that two trials of one CPU can only run one on each."""
    if shutil.which("ray") is None:
        pytest.skip("the ray command is not installed")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"HOME": str(home)}
    with _ray_head(env, cpus=1) as address:
        worker = _ray_start([f"--address={address}", "--num-cpus=1"], env)
        try:
            _wait_for_nodes(address, env, 2)
            yield address, env
        finally:
            _ray_stop(worker)


def _wait_for_nodes(address: str, env: dict[str, str], count: int) -> None:
    """Until the cluster reports `count` live nodes (`ray status` prints one "node_" line per active node)."""
    deadline = time.monotonic() + 120
    status = ""
    while time.monotonic() < deadline:
        done = subprocess.run(["ray", "status", f"--address={address}"], env=env, capture_output=True, text=True)
        status = done.stdout
        if status.count(" node_") >= count:
            return
        time.sleep(1)
    pytest.fail(f"the cluster did not reach {count} nodes: {status}")


def test_trials_land_on_both_nodes_of_a_cluster_and_the_driver_keeps_the_study(
    setup: dict[str, Any], tmp_path: Path, two_nodes: tuple[str, dict[str, str]]
) -> None:
    import optuna

    address, env = two_nodes
    out = tmp_path / "two-nodes"
    args = ["--address", address, "--workers", "2", "--cpus-per-trial", "1", "--budget", "4", "--no-constraint"]
    done = cli(cli_args(setup, out, *args, space="four"), env=env, timeout=900)  # a task no node fits waits forever
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}")
    ran = [t for t in study.trials if "worker" in t.user_attrs and "duplicate_of" not in t.user_attrs]
    nodes = {t.user_attrs["worker"]["node"] for t in ran}
    assert len(nodes) == 2 and None not in nodes, [(t.number, t.user_attrs["worker"]) for t in ran]
    assert (out / "pareto.csv").exists() and (out / "best" / "artifact.json").exists()
