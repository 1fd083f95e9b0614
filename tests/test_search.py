"""The search engine end to end on a tiny Marian: real Optuna storage, real Ray, real exports and measurements.

Faults are injected into chosen trials (AUTOCOMPRESS_FAULTS): the driver's handling of them is what is tested.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.searching import cli, cli_args, options, search_setup, wait_until_one_done_and_one_running


@pytest.fixture(scope="module")
def setup(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return search_setup(tiny_models["marian"], tmp_path_factory.mktemp("search"))


def test_search_with_two_workers_leaves_every_output(setup: dict[str, Any], tmp_path: Path) -> None:
    import autocompress

    result = autocompress.search(setup["model"], "4", workers=2, seed=1, **options(setup, tmp_path / "s"))
    out = tmp_path / "s"
    assert result.exit_code == 0 and result.exported == out / "best"
    for name in (
        "trials.csv",
        "pareto.csv",
        "pareto.json",
        "report.html",
        "pareto_bleu_latency.png",
        "pareto_3d.png",
        "hypervolume.png",
        "timeline.png",
        "study.db",
    ):
        assert (out / name).stat().st_size > 0, name
    assert {"recipe.json", "metrics.json", "README.md", "artifact.json"} <= {p.name for p in (out / "best").iterdir()}
    assert result.study.user_attrs["baseline"]["values"]["latency_p50_ms"] > 0
    retimed = result.study.user_attrs["retimed"]  # the teacher timed again beside the selected model, interleaved
    assert retimed["trial"] == result.selected.number and retimed["rounds"] == 3
    assert retimed["teacher"]["latency_p50_ms"] > 0 and retimed["model"]["latency_p50_ms"] > 0
    rows = {row["measure"]: row for row in result.summary()["selected"]["comparison"]}
    latency = next(row for title, row in rows.items() if title.startswith("p50"))
    assert latency["retimed"] and latency["teacher"] == retimed["teacher"]["latency_p50_ms"]
    assert "timed again side by side" in (out / "best" / "README.md").read_text()
    _card_parses(out / "best" / "README.md", result)
    _tables_name_models(out)
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 4 and "data:image/png;base64," in html
    _front_is_interactive_offline(out / "report.html", result)
    measured = [t for t in result.study.trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    assert len(measured) == 4
    for trial in measured:
        assert trial.user_attrs["signatures"]["bleu"].startswith("nrefs:1|")
        assert Path(trial.user_attrs["artifact"]).is_dir()
        assert {"student", "artifact", "bleu", "latency", "memory"} <= set(trial.user_attrs["phases"])
    spans = sorted((t.datetime_start, t.datetime_complete) for t in measured)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), "two workers never overlapped"


def _tables_name_models(out: Path) -> None:
    """Rows say what each model is, and the recipe's values as the recipe holds them (integers as integers)."""
    import csv

    pareto = list(csv.DictReader((out / "pareto.csv").open()))
    assert pareto[0]["trial"] == "teacher" and pareto[0]["model"].startswith("teacher")
    trials = list(csv.DictReader((out / "trials.csv").open()))
    measured = [row for row in trials if row["state"] == "COMPLETE"]
    assert all(" fp32" in row["model"] or " int8" in row["model"] for row in measured), measured
    assert {row["layers.decoder_layers"] for row in measured} <= {"1", "2", ""}, "an integer, not 1.0"
    assert {row["precision.dtype"] for row in measured} <= {"fp32", "int8"}


def _card_parses(card: Path, result: Any) -> None:
    """The exported card's metadata, read as the Hub reads it: the teacher's licence, languages, metrics."""
    from huggingface_hub import ModelCard

    data = ModelCard.load(card).data
    assert data.license == "mit" and data.language == ["en", "es"] and data.pipeline_tag == "translation"
    assert data.base_model == result.study.user_attrs["settings"]["model"]
    assert {"translation", "autocompress", "marian"} <= set(data.tags)
    bleu = next(r for r in data.eval_results if r.metric_type == "bleu")
    assert bleu.metric_value == result.selected.user_attrs["values"]["bleu"]
    assert bleu.metric_config == result.selected.user_attrs["signatures"]["bleu"]
    text = card.read_text()
    assert f"trial {result.selected.number}" in text and "autocompress " in text and "study.db" in text


def _front_is_interactive_offline(report: Path, result: Any) -> None:
    """report.html in headless Chromium with every network request failing: plotly draws the front (a point a
    measured trial, the teacher, the selection) from the page alone."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        message = "chromium is not installed: `.ci/run` installs it (apt-get install chromium)"
        if os.environ.get("AUTOCOMPRESS_CI_CLIENTS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=http://127.0.0.1:9",
         "--virtual-time-budget=10000", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    dom = done.stdout
    assert 'class="main-svg"' in dom and "scatterlayer" in dom, done.stderr[-2000:]
    assert dom.count('class="point"') >= len([t for t in result.study.trials if t.state.name == "COMPLETE"]) // 2
    assert "teacher" in dom and f"selected: trial {result.selected.number}" in dom


def test_failures_are_recorded_and_the_budget_is_still_met(setup: dict[str, Any], tmp_path: Path) -> None:
    import autocompress

    os.environ["AUTOCOMPRESS_FAULTS"] = "0:raise,1:exit-once,2:hang"
    try:
        result = autocompress.search(
            setup["model"], "3", trial_timeout=40, max_bleu_drop=None, **options(setup, tmp_path / "f", "four")
        )
    finally:
        del os.environ["AUTOCOMPRESS_FAULTS"]
    trials = result.study.trials
    print([(t.number, t.state.name, t.user_attrs.get("fail_reason"), t.user_attrs.get("recipe_id")) for t in trials])
    assert trials[0].state.name == "FAIL"
    assert trials[0].user_attrs["fail_reason"] == "RuntimeError: injected failure in trial 0"
    assert "injected failure" in trials[0].user_attrs["traceback"]
    assert trials[1].state.name == "COMPLETE", "a worker that died once is retried"
    assert (tmp_path / "f" / "faults" / "1-exit-once").exists()
    assert trials[2].state.name == "FAIL"
    assert trials[2].user_attrs["fail_reason"] == "exceeded --trial-timeout 40 s"
    complete = [t for t in trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    assert len(complete) == 3
    csv = (tmp_path / "f" / "trials.csv").read_text()
    assert "injected failure in trial 0" in csv and "exceeded --trial-timeout" in csv


def test_a_repeated_recipe_is_not_recomputed(setup: dict[str, Any], tmp_path: Path) -> None:
    """The space holds two recipes: a budget of three measures two and then stops, the rest are duplicates."""
    import autocompress

    result = autocompress.search(setup["model"], "3", **options(setup, tmp_path / "d", "two"))
    measured = [t for t in result.study.trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    duplicates = [t for t in result.study.trials if "duplicate_of" in t.user_attrs]
    assert len(measured) == 2 and duplicates
    assert len({t.user_attrs["recipe_id"] for t in measured}) == 2
    assert len(list((tmp_path / "d" / "artifacts").iterdir())) == 3  # two trials and the baseline
    for dup in duplicates:
        original = result.study.trials[dup.user_attrs["duplicate_of"]]
        assert dup.values == original.values and dup.user_attrs["recipe_id"] == original.user_attrs["recipe_id"]


def test_the_spaces_start_recipes_run_first_once(setup: dict[str, Any], tmp_path: Path) -> None:
    """`start:` recipes are the study's first trials; resuming the study does not queue them again."""
    import autocompress

    text = (setup["work"] / "wide.yaml").read_text()
    start = (
        "start:\n  - {precision.runtime: ctranslate2, precision.dtype.ctranslate2: int8, layers.decoder_layers: 1}\n"
    )
    (tmp_path / "space.yaml").write_text(text + start)
    opts = {**options(setup, tmp_path / "s"), "space": str(tmp_path / "space.yaml"), "max_bleu_drop": None}
    first = autocompress.search(setup["model"], "1", **opts).study.trials[0]
    assert first.params["precision.runtime"] == "ctranslate2" and first.params["precision.dtype.ctranslate2"] == "int8"
    layers = next(p for p in first.user_attrs["recipe"]["passes"] if p["name"] == "layers")
    assert layers["params"]["decoder_layers"] == 1
    resumed = autocompress.search(setup["model"], "2", **opts).study
    assert resumed.user_attrs["start_enqueued"] == 1
    assert not [t for t in resumed.trials if t.state.name == "WAITING"]


def test_the_study_survives_sigkill_and_resumes(setup: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "k"
    args = cli_args(setup, out, "--budget", "4", "--seed", "3", "--json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocompress", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_until_one_done_and_one_running(out, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = optuna.load_study(study_name="k", storage=f"sqlite:///{out / 'study.db'}")
    done_before = {t.number: (t.values, t.user_attrs["recipe_id"]) for t in before.trials if t.state.name == "COMPLETE"}
    cut = [t.number for t in before.trials if t.state.name == "RUNNING"]
    assert done_before and cut
    time.sleep(2)

    again = cli(args)
    assert again.returncode in (0, 3), again.stderr
    summary = json.loads(again.stdout)
    after = optuna.load_study(study_name="k", storage=f"sqlite:///{out / 'study.db'}")
    for number, (values, recipe_id) in done_before.items():
        trial = after.trials[number]
        assert trial.state.name == "COMPLETE" and trial.values == values and trial.user_attrs["recipe_id"] == recipe_id
    for number in cut:
        assert after.trials[number].state.name == "FAIL"
        assert "cut off" in after.trials[number].user_attrs["fail_reason"]
        assert any(t.user_attrs.get("rerun_of") == number for t in after.trials), "a cut-off trial is run again"
    measured = [t for t in after.trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    assert len(measured) == 4 == summary["trials"]["measured"]
    assert len({t.user_attrs["recipe_id"] for t in measured}) == 4, "a recipe was measured twice"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "0"], "budget '0' is not usable"),
        (["--budget", "-3"], "budget '-3' is not understood"),
        (["--budget", "soon"], "budget 'soon' is not understood"),
        (["--address", "127.0.0.1:9"], "no Ray cluster answers at 127.0.0.1:9"),
        (["--sampler", "grid"], "sampler 'grid' is unknown"),
        (["--objectives", "latency,memory"], "need a quality measure"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(
    setup: dict[str, Any], tmp_path: Path, extra: list[str], message: str
) -> None:
    done = cli(cli_args(setup, tmp_path / "bad", *extra))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad" / "study.db").exists()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("passes: [unclosed\n", "is not valid YAML"),
        ("passes:\n  precision:\n    dtype: {choice: [fp32, int3]}\n", "precision.dtype = 'int3' is outside"),
        ("passes:\n  prune:\n    amount: 0.5\n", "unknown pass 'prune'"),
        ("passes:\n  heads:\n    fraction: {float: [0.5, 0.1]}\n", "low 0.5 is above high 0.1"),
    ],
)
def test_bad_space_gets_one_line_and_exit_2(setup: dict[str, Any], tmp_path: Path, space: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(space)
    args = cli_args(setup, tmp_path / "bad")
    args[args.index("--space") + 1] = str(path)
    done = cli(args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_output_directory_holding_another_study_is_refused_untouched(setup: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    optuna.create_study(study_name="someone-else", storage=f"sqlite:///{out / 'study.db'}")
    before = (out / "study.db").read_bytes()
    done = cli([*cli_args(setup, out), "--study", "mine"])
    assert done.returncode == 2 and "holds another study (someone-else)" in done.stderr, done.stderr
    assert (out / "study.db").read_bytes() == before


def test_ctrl_c_stops_cleanly_and_keeps_finished_trials(setup: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "c"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocompress", *cli_args(setup, out, "--budget", "8", "--json", space="slow")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A job started in the background of a non-interactive shell inherits SIGINT ignored, and Python then never
        # raises KeyboardInterrupt: give the search the default disposition, as an interactive shell does.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_until_one_done_and_one_running(out, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode in (0, 3), stderr
    assert "Ctrl-C: stopping" in stderr and "Traceback" not in stderr
    study = optuna.load_study(study_name="c", storage=f"sqlite:///{out / 'study.db'}")
    reasons = [t.user_attrs.get("fail_reason", "") for t in study.trials if t.state.name == "FAIL"]
    assert any(r.startswith("stopped by the user") for r in reasons)
    assert json.loads(stdout)["trials"]["measured"] >= 1
    assert (out / "report.html").exists() and (out / "trials.csv").exists()


def test_settings_round_trip_objectives_follow_the_target_and_report_keeps_the_selection(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    """The throughput objective reads the target's largest batch size (8 here, not a fixed 16); the study carries
    metric names (optuna-dashboard shows them); `report` selects as the search did, not by a default; resuming with
    another --seed is refused in one line naming it."""
    out = tmp_path / "s"
    args = cli_args(setup, out, "--budget", "2", "--objectives", "bleu,throughput", "--select", "smallest",
                     "--no-constraint", space="batch8")  # fmt: skip
    done = cli(args)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}")
    assert study.metric_names == ["BLEU", "throughput, batch 8 (sentences/s)"]
    settings = study.user_attrs["settings"]
    assert settings["select"] == "smallest" and settings["seed"] == 0 and settings["sampler"] == "tpe"
    assert len(settings["space_sha256"]) == 64 and settings["model_fingerprint"]
    measured = [t for t in study.trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    assert all(t.values[1] == t.user_attrs["values"]["throughput_b8"] for t in measured)
    smallest = min(measured, key=lambda t: (t.user_attrs["values"]["size_mb"], -t.user_attrs["values"]["bleu"]))
    before = json.loads((out / "best" / "metrics.json").read_text())
    assert before["trial"] == smallest.number and before["selected_by"] == "smallest"
    report = cli(["report", str(out)])
    assert report.returncode == 0, report.stderr
    assert json.loads((out / "best" / "metrics.json").read_text())["trial"] == smallest.number
    resumed = cli([*args, "--seed", "1"])
    assert resumed.returncode == 2 and len(resumed.stderr.strip().splitlines()) == 1, resumed.stderr
    assert "was run with other seed" in resumed.stderr and "Traceback" not in resumed.stderr


FIDELITY_SPACE = """
target: {device: cpu, threads: 1, batch_sizes: [1], max_length: 10, latency_sentences: 2, warmup: 1, repeats: 1,
         give_up: null}
evaluation: {dev_sentences: 12}
fidelity: {rungs: [0, 6, 12], eta: 2}
passes:
  precision: {runtime: onnxruntime, dtype: int8}
  layers: {decoder_layers: 1}
  heads: {fraction: {float: [0.0, 0.75], step: 0.25}}
  distill: {method: finetune, lr: 1.0e-3, max_tokens: 200, warmup_steps: 2, cooldown: 0.34}
"""


def test_multi_fidelity_trains_the_best_further_from_where_they_stopped(setup: dict[str, Any], tmp_path: Path) -> None:
    """Successive halving over rungs of 0, 6 and 12 steps (eta 2): every student is measured first untrained, as it
    was cut (rung 0, no training); of every two measured at a rung, the better goes on to the next, continuing its own
    training; the outputs count each student once, at its highest rung."""
    import autocompress

    (tmp_path / "space.yaml").write_text(FIDELITY_SPACE)
    opts = {**options(setup, tmp_path / "s"), "space": str(tmp_path / "space.yaml"), "max_bleu_drop": None}
    result = autocompress.search(setup["model"], "8", seed=2, **opts)
    trials = {
        t.number: t for t in result.study.trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs
    }

    def steps(trial: optuna.trial.FrozenTrial) -> list[int]:
        return [p["params"]["steps"] for p in trial.user_attrs["recipe"]["passes"] if p["name"] == "distill"]

    untrained = [t for t in trials.values() if t.user_attrs.get("rung", 0) == 0]
    assert untrained and all(steps(t) == [0] and "distill" not in t.user_attrs["metrics"]["student"] for t in untrained)
    children = {rung: [t for t in trials.values() if t.user_attrs.get("rung") == rung] for rung in (1, 2)}
    assert children[1] and children[2], "no student was trained on to the third rung"
    for rung, resumed in ((1, 0), (2, 4)):  # from the slice; then rung 1's state before its cool-down (6 - 2)
        for child in children[rung]:
            parent = trials[child.user_attrs["parent"]]
            assert parent.params == child.params and parent.user_attrs.get("rung", 0) == rung - 1
            assert steps(child) == [(0, 6, 12)[rung]]
            assert child.user_attrs["metrics"]["student"]["distill"]["resumed_from"] == resumed
    shown = {t.number for t in result.view.measured}
    promoted = children[1] + children[2]
    parents = {child.user_attrs["parent"] for child in promoted}
    assert all((child.number in shown) != (child.number in parents) for child in promoted) and not parents & shown


ELASTIC_SPACE = """
target: {device: cpu, threads: 1, batch_sizes: [1], max_length: 10, latency_sentences: 2, warmup: 1, repeats: 1,
         give_up: null}
evaluation: {dev_sentences: 12}
elastic: {steps: 4, checkpoint_every: 2, max_tokens: 300}
passes:
  init: {source: elastic}
  precision: {runtime: onnxruntime, dtype: int8}
  layers: {decoder_layers: 1, strategy: importance}
  heads: {fraction: 0.5, allocation: uniform}
  distill: {method: sequence, steps: 3, max_tokens: 200}
  vocabulary: {keep: used}
"""


def test_students_start_from_the_elastic_student_prepared_once(setup: dict[str, Any], tmp_path: Path) -> None:
    """`autocompress prepare` builds the importance, the teacher's translations and the elastic student the space
    asks for; the search finds them cached and its students start from the elastic student."""
    import autocompress

    space = tmp_path / "space.yaml"
    space.write_text(ELASTIC_SPACE)
    env = {**os.environ, "AUTOCOMPRESS_CACHE": str(tmp_path / "cache")}
    work = setup["work"]
    args = ["prepare", "--model", setup["model"], "--train", str(work / "train.tsv"), "--space", str(space), "--json"]
    done = cli(args, env=env)
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert set(built) == {"importance", "teacher_translations", "target_token_counts", "elastic"}
    assert not any(entry["hit"] for entry in built.values())
    again = json.loads(cli(args, env=env).stdout)
    assert all(entry["hit"] for entry in again.values())
    opts = {**options(setup, tmp_path / "s"), "space": str(space), "max_bleu_drop": None}
    os.environ["AUTOCOMPRESS_CACHE"] = str(tmp_path / "cache")  # the search's workers read it
    try:
        result = autocompress.search(setup["model"], "1", **opts)
    finally:
        os.environ.pop("AUTOCOMPRESS_CACHE")
    trial = next(t for t in result.study.trials if t.state.name == "COMPLETE")
    assert [p["name"] for p in trial.user_attrs["recipe"]["passes"]][:2] == ["init", "layers"]
    caches = trial.user_attrs["metrics"]["student"]["cache"]
    assert caches["elastic"]["hit"] and caches["teacher_translations"]["hit"] and caches["target_token_counts"]["hit"]
    kept = trial.user_attrs["metrics"]["student"]["vocabulary"]
    assert kept["kept"] < kept["of"]  # and the trimmed artifact was measured like any other
