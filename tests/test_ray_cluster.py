"""The README's cluster recipe on a real `ray start --head` (token authentication on, as Ray turns it on when a token
exists), and an --address that is not Ray refused within seconds."""

from __future__ import annotations

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


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`ray start --head --block` with its own HOME holding a token (~/.ray/auth_token): Ray turns token
    authentication on, as it does on a machine where `ray get-auth-token --generate` ran. Stopped by signalling its
    process group (never `ray stop`, which stops every Ray on the machine)."""
    if shutil.which("ray") is None:
        pytest.skip("the ray command is not installed")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("a" * 32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {"HOME": str(home)}
    port = _free_port()
    # Its own temp dir, so that the `ray_current_cluster` file it writes does not point other Ray users of the machine
    # at it (short: Ray's socket paths must stay under 108 characters).
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    command = ["ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    head = subprocess.Popen(
        [*command, f"--temp-dir={temp}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(head.pid, signal.SIGKILL)
        pytest.fail(f"ray start --head did not come up: {head.stderr.read() if head.stderr else ''}")
    yield address, env
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


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
