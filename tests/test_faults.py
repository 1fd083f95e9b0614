"""Bad input, faults and many drivers: every case ends in one line and its exit code, and leaves files as they were.

Bad input is refused before any work (exit 2); a run that cannot go on says why and where to look (exit 1); signals,
kill -9 and a full disk leave a study that resumes and outputs that are whole; two drivers share one study.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest

from autocompress.cli import main
from tests.searching import cli, cli_args, search_setup, trial_states


@pytest.fixture(scope="module")
def setup(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return search_setup(tiny_models["marian"], tmp_path_factory.mktemp("faults"))


def _snapshot(root: Path) -> dict[str, str]:
    files = (p for p in root.rglob("*") if p.is_file()) if root.exists() else ()
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture
def run_main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str]]:
    def run(*args: str, stdin: bytes = b"") -> tuple[int, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse ends the process on an argument error
            code = int(exit_.code or 0)
        return code, capsys.readouterr().err

    return run


# --- bad input: files that exist but are wrong, options out of range, output paths -------------------------------


def _model(setup: dict[str, Any], tmp: Path, change: Callable[[Path], Any]) -> str:
    copy = tmp / "model"
    shutil.copytree(setup["model"], copy)
    change(copy)
    return str(copy)


def _weights(model: Path) -> Path:
    return model / "model.safetensors"


def _config(model: Path, text: str) -> None:
    (model / "config.json").write_text(text)


def _unknown_type(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    _config(model, json.dumps({**config, "model_type": "frobnicator"}))


def _file(tmp: Path, content: str | bytes, name: str = "file.yaml") -> str:
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def _search(setup: dict[str, Any], tmp: Path, *extra: str) -> list[str]:
    return cli_args(setup, tmp / "out", *extra)


def _study_file(setup: dict[str, Any], tmp: Path, content: bytes | None) -> list[str]:
    """--out holding a study.db that is not a study: bytes, or a directory for None."""
    (tmp / "out").mkdir()
    if content is None:
        (tmp / "out" / "study.db").mkdir()
    else:
        (tmp / "out" / "study.db").write_bytes(content)
    return _search(setup, tmp)


def _with(args: list[str], option: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(option) + 1] = value
    return args


SPACE_OK = "passes:\n  precision:\n    dtype: int8\n"
BAD_SEARCHES: dict[str, tuple[Callable[[dict[str, Any], Path], list[str]], str]] = {
    "truncated weights": (
        lambda s, t: _with(
            _search(s, t),
            "--model",
            _model(s, t, lambda m: _weights(m).write_bytes(_weights(m).read_bytes()[:3000])),
        ),
        "is damaged",
    ),
    "random weights file": (
        lambda s, t: _with(_search(s, t), "--model", _model(s, t, lambda m: _weights(m).write_bytes(os.urandom(5000)))),
        "is damaged",
    ),
    "no weights": (
        lambda s, t: _with(_search(s, t), "--model", _model(s, t, lambda m: _weights(m).unlink())),
        "has no weights",
    ),
    "config not an object": (
        lambda s, t: _with(_search(s, t), "--model", _model(s, t, lambda m: _config(m, "[1, 2]"))),
        "is not a JSON object",
    ),
    "unknown model_type": (
        lambda s, t: _with(_search(s, t), "--model", _model(s, t, _unknown_type)),
        "model_type 'frobnicator' is not one transformers",
    ),
    "space is a directory": (lambda s, t: _with(_search(s, t), "--space", str(t)), "is a directory"),
    "space is a list": (lambda s, t: _with(_search(s, t), "--space", _file(t, "- a\n- b\n")), "not a list"),
    "pass given as a list": (
        lambda s, t: _with(_search(s, t), "--space", _file(t, "passes:\n  precision: [1, 2]\n")),
        "pass precision must be a mapping",
    ),
    "step: abc": (
        lambda s, t: _with(_search(s, t), "--space", _file(t, "passes:\n  distill:\n    steps: abc\n")),
        "distill.steps = 'abc'",
    ),
    "space not UTF-8": (
        lambda s, t: _with(_search(s, t), "--space", _file(t, b"passes:\n  precision:\n    dtype: int\xe98\n")),
        "is not UTF-8",
    ),
    "dev_sentences: 0": (
        lambda s, t: _with(_search(s, t), "--space", _file(t, "evaluation: {dev_sentences: 0}\n" + SPACE_OK)),
        "evaluation.dev_sentences = 0 must be at least 1",
    ),
    "cores: [64]": (
        lambda s, t: _with(_search(s, t), "--space", _file(t, "target: {cores: [64]}\n" + SPACE_OK)),
        "target cores [64]",
    ),
    "target threads: many": (
        lambda s, t: _search(s, t, "--target", _file(t, "threads: many\n", "target.yaml")),
        "target threads = 'many' must be a whole number",
    ),
    "target is a directory": (lambda s, t: _search(s, t, "--target", str(t)), "is a directory"),
    "target is a list": (lambda s, t: _search(s, t, "--target", _file(t, "- 1\n", "target.yaml")), "not a list"),
    "target not UTF-8": (
        lambda s, t: _search(s, t, "--target", _file(t, b"threads: \xff\n", "target.yaml")),
        "is not UTF-8",
    ),
    "--seed -1": (lambda s, t: _search(s, t, "--seed", "-1"), "--seed -1 must be a whole number"),
    "--max-bleu-drop -1": (lambda s, t: _search(s, t, "--max-bleu-drop", "-1"), "--max-bleu-drop -1.0 must be"),
    "--max-bleu-drop nan": (lambda s, t: _search(s, t, "--max-bleu-drop", "nan"), "--max-bleu-drop nan must be"),
    "--cpus-per-trial 64": (lambda s, t: _search(s, t, "--cpus-per-trial", "64"), "--cpus-per-trial 64 is more"),
    "--gpus-per-trial on cpu": (lambda s, t: _search(s, t, "--gpus-per-trial", "1"), "on a CPU target"),
    "--threads beyond the machine": (
        lambda s, t: _search(s, t, "--threads", str((os.cpu_count() or 1) + 1)),
        "is more than the",
    ),
    "--out below a file": (
        lambda s, t: _with(_search(s, t), "--out", _file(t, "x", "a-file") + "/sub"),
        "which is a file",
    ),
    "study.db empty": (lambda s, t: _study_file(s, t, b""), "is empty (0 bytes)"),
    "study.db not SQLite": (lambda s, t: _study_file(s, t, b"junk" * 50), "is not an SQLite file"),
    "study.db a directory": (lambda s, t: _study_file(s, t, None), "is a directory, not a study file"),
    "misspelt option": (lambda s, t: [*_search(s, t), "--budjet", "3"], "unrecognized arguments: --budjet 3"),
    "option of the wrong type": (lambda s, t: _search(s, t, "--seed", "x"), "argument --seed: invalid int"),
}


@pytest.mark.parametrize("case", list(BAD_SEARCHES))
def test_bad_search_input_is_one_line_exit_2_and_nothing_written(
    setup: dict[str, Any], tmp_path: Path, run_main: Callable[..., tuple[int, str]], case: str
) -> None:
    build, expected = BAD_SEARCHES[case]
    args = build(setup, tmp_path)
    before = _snapshot(tmp_path)
    code, err = run_main(*args)
    assert code == 2 and expected in err and _one_line(err), err
    assert _snapshot(tmp_path) == before, "a refused search wrote or changed files"


@pytest.mark.parametrize("command", ["evaluate", "translate"])
def test_commands_that_load_a_model_refuse_damaged_weights(
    setup: dict[str, Any], tmp_path: Path, run_main: Callable[..., tuple[int, str]], command: str
) -> None:
    model = _model(setup, tmp_path, lambda m: _weights(m).write_bytes(_weights(m).read_bytes()[:3000]))
    code, err = run_main(command, "--model", model, stdin=b"Jesus wept.\n")
    assert code == 2 and "is damaged" in err and _one_line(err), err


def test_argument_errors_are_one_line(tmp_path: Path) -> None:
    done = cli(["search", "--budjet", "3"])
    assert done.returncode == 2 and _one_line(done.stderr), done.stderr
    assert "--budjet" in done.stderr and "--help" in done.stderr


@contextmanager
def _tmpfs(place: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at place for the test (root only: the test skips elsewhere)."""
    place.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(place)], check=False).returncode:
        # .ci/run sets AUTOCOMPRESS_CI_MOUNTS=1: there the full-disk and read-only cases must run, not skip.
        message = f"cannot mount a tmpfs ({options}) here (needs root)"
        if os.environ.get("AUTOCOMPRESS_CI_MOUNTS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield place
    finally:
        subprocess.run(["umount", str(place)], check=False)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only file system (root ignores permission bits, so a mount is the honest read-only place)."""
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as place:
        yield place


def test_an_unwritable_out_is_refused(
    setup: dict[str, Any], tmp_path: Path, read_only_dir: Path, run_main: Callable[..., tuple[int, str]]
) -> None:
    code, err = run_main(*_with(_search(setup, tmp_path), "--out", str(read_only_dir / "sub")))
    assert code == 2 and "cannot be written" in err and _one_line(err), err


def test_translate_reads_utf8_and_crlf(setup: dict[str, Any], run_main: Callable[..., tuple[int, str]]) -> None:
    code, err = run_main("translate", "--model", setup["model"], stdin=b"hello\xff world\n")
    assert code == 2 and "stdin line 1 is not UTF-8" in err and _one_line(err), err
    lf = cli(["translate", "--model", setup["model"]], stdin="In the beginning.\nJesus wept.\n")
    crlf = cli(["translate", "--model", setup["model"]], stdin="In the beginning.\r\nJesus wept.\r\n")
    assert lf.returncode == crlf.returncode == 0, crlf.stderr
    assert crlf.stdout == lf.stdout and "\r" not in crlf.stdout


# --- a finished study: read commands, exports, a full disk ----------------------------------------------------------


@pytest.fixture(scope="module")
def finished(setup: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "done"
    done = cli(cli_args(setup, out, "--budget", "2", "--no-constraint"))
    assert done.returncode == 0, done.stderr
    return out


def test_export_never_overwrites_without_force(finished: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("precious")
    study_files = _snapshot(finished)
    for to, expected in (
        (taken, "is not empty"),
        (finished, "holds the study itself"),
        (taken / "keep.txt", "is a file"),
    ):
        done = cli(["export", str(finished), "--trial", "0", "--to", str(to)])
        assert done.returncode == 2 and expected in done.stderr and _one_line(done.stderr), done.stderr
    assert (taken / "keep.txt").read_text() == "precious" and _snapshot(finished) == study_files
    forced = cli(["export", str(finished), "--trial", "0", "--to", str(taken), "--force"])
    assert forced.returncode == 0, forced.stderr
    assert (taken / "artifact.json").exists() and not (taken / "keep.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["taken"], "a staging directory was left behind"


def test_read_commands_never_write(finished: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "study.db").write_bytes(b"")
    done = cli(["pareto", str(empty)])
    assert done.returncode == 2 and "is empty (0 bytes)" in done.stderr and _one_line(done.stderr), done.stderr
    assert (empty / "study.db").read_bytes() == b""
    before = _snapshot(finished)
    assert cli(["pareto", str(finished)]).returncode == 0
    assert _snapshot(finished) == before


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with _tmpfs(tmp_path / "small", "size=64k") as place:
        yield place


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(finished: Path, small_disk: Path) -> None:
    done = cli(["export", str(finished), "--trial", "0", "--to", str(small_disk / "model")])
    assert done.returncode == 1 and "No space left on device" in done.stderr and _one_line(done.stderr), done.stderr
    assert list(small_disk.iterdir()) == [], "a half-written export was left on the full disk"


# --- run-level failures and signals -----------------------------------------------------------------------------------


def _faulty(faults: str) -> dict[str, str]:
    return {**os.environ, "AUTOCOMPRESS_FAULTS": faults}


def test_a_failed_baseline_is_one_line_and_the_report_step_still_works(setup: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "b"
    done = cli(cli_args(setup, out, "--budget", "2"), env=_faulty("-1:raise"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "baseline measurement failed" in done.stderr.splitlines()[-1] and "failure.log" in done.stderr
    assert "injected failure" in (out / "failure.log").read_text()
    assert (out / "trials.csv").exists() and (out / "report.html").exists(), "the outputs were not written"
    for command in (["report", str(out)], ["pareto", str(out)]):  # a study with settings and nothing measured
        again = cli(command)
        assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr


def test_trial_after_trial_failing_ends_in_one_line_and_the_baseline_is_not_cut(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    """--trial-timeout 1 does not cut the baseline (which takes longer); every trial raises; the search stops after
    8 failures in a row with one line, and the report reads a study of only failures."""
    out = tmp_path / "t"
    every_trial = _faulty(",".join(f"{number}:raise" for number in range(80)))
    done = cli(cli_args(setup, out, "--budget", "20", "--trial-timeout", "1"), env=every_trial)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "trials failed" in done.stderr.splitlines()[-1] and "trials.csv" in done.stderr.splitlines()[-1]
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{out / 'study.db'}")
    assert study.user_attrs["baseline"]["values"]["bleu"] >= 0
    assert not [t for t in study.trials if t.state.name == "COMPLETE" and t.user_attrs["duplicate_of"] != "baseline"]
    assert "injected failure" in (out / "trials.csv").read_text()
    ran = [t.user_attrs["recipe_id"] for t in study.trials if "traceback" in t.user_attrs]
    assert len(ran) == len(set(ran)), "a recipe that raised was run again"
    again = cli(["report", str(out)])
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr


def _started(out: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    """The search has written its study (settings known, the baseline being measured)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "study.db").exists() and (out / ".baseline.lock").exists():
            time.sleep(3)
            return
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"the search did not reach its baseline: {proc.communicate()[1]}")


def test_sigterm_during_the_baseline_then_kill_9_then_resume(setup: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "s"
    args = [sys.executable, "-m", "autocompress", *cli_args(setup, out, "--budget", "1")]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=_faulty("-1:hang"))
    _started(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3 and "Traceback" not in err and "stopping" in err, err
    killed = subprocess.Popen(args, stderr=subprocess.DEVNULL, env=_faulty("-1:hang"), start_new_session=True)
    _started(out, killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    resumed = cli(cli_args(setup, out, "--budget", "1", "--json"))
    assert resumed.returncode in (0, 3) and "Traceback" not in resumed.stderr, resumed.stderr
    assert json.loads(resumed.stdout)["trials"]["measured"] == 1


def test_kill_9_while_writing_outputs_leaves_whole_files(finished: Path, tmp_path: Path) -> None:
    study = tmp_path / "copy"
    shutil.copytree(finished, study)
    (study / "trials.csv").write_text("stale\n")
    done = cli(["report", str(study), "--study", "done"], env=_faulty("outputs:exit"))
    assert done.returncode == 17
    assert (study / "trials.csv").read_text() == "stale\n", "a killed report step changed a finished file"
    again = cli(["report", str(study), "--study", "done"])
    assert again.returncode == 0, again.stderr
    assert (study / "trials.csv").read_text().startswith("trial,")
    assert not [p.name for p in study.iterdir() if p.name.startswith(".outputs-")], "a staging directory was left"


# --- two drivers on one study -----------------------------------------------------------------------------------------


def test_two_drivers_on_one_study_measure_each_recipe_once_within_the_budget(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "two"
    args = [sys.executable, "-m", "autocompress", *cli_args(setup, out, "--budget", "4", "--json")]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=900) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode in (0, 3) and "Traceback" not in err, err
    study = optuna.load_study(study_name="two", storage=f"sqlite:///{out / 'study.db'}")
    measured = [t for t in study.trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    assert len(measured) == 4, [(n, s) for n, s in trial_states(out / "study.db")]
    assert len({t.user_attrs["recipe_id"] for t in measured}) == 4, "a recipe was measured twice"
    assert not [t for t in study.trials if t.state.name == "FAIL"], [t.user_attrs for t in study.trials]
    assert all(json.loads(stdout)["trials"]["measured"] <= 4 for stdout, _ in results)
    assert not list((out / "artifacts").glob("*.building*"))
