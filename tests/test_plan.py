"""The plan and the budget: units timed on this machine, a plan printed before the heavy work and kept in the study
beside what each phase took, a wall-time budget that bounds the whole run, and candidates slower than the teacher
cut short. Real Optuna storage, real Ray, real exports and timings on a tiny Marian."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from autocompress.engine.plan import MIN_ELASTIC_STEPS, PREP_SHARE, SUSTAINED, make_plan
from tests.searching import SPACE, SPACE_DEFAULTS, WIDE, cli, cli_args, options, search_setup

# Units as the probe times them on the 2-core VM for the demo teacher (seconds; counts as counts).
UNITS = {
    "train_sentences": 29434,
    "dev_sentences": 200,
    "export_s": 10.0,
    "bleu_sentence_s": 0.03,
    "latency_sentence_s": 0.035,
    "tokens_per_pair": 40.0,
    "step_largest_token_s": 4e-4,
    "step_smallest_token_s": 1.5e-4,
    "forward_token_s": 1e-4,
    "teacher_layers": 12.0,
    "kd_setup_s": 3.0,
    "kd_sentence_s": 0.006,
    "table_pair_s": 9e-4,
}
TARGET = {"latency_sentences": 32, "warmup": 2, "repeats": 5, "batch_sizes": [1, 16]}
ELASTIC = {"steps": 3000, "max_tokens": 1500, "random_structures": 1}
ALL = ("importance", "teacher_translations", "target_token_counts", "shortlist_table", "elastic")


def plan(budget_s: float | None, missing: tuple[str, ...] = ALL, trials: int | None = None) -> Any:
    return make_plan(UNITS, missing, TARGET, 200, (0, 200, 800), 1500, ELASTIC, budget_s, trials, 20.0)


def test_a_plan_that_fits_builds_everything_and_fills_the_budget() -> None:
    found = plan(4 * 3600)
    assert found.adapted is None and found.elastic_steps is None and not found.precision_only
    assert {f"prepare:{name}" for name in ALL} <= set(found.estimates)
    assert found.total_s() == pytest.approx(4 * 3600)
    # the elastic student's 3000 sandwich steps: the largest, the smallest and one drawn structure a step
    sandwich = 1500 * (4e-4 + 1.5e-4 + 2.75e-4)
    assert found.estimates["prepare:elastic"] == pytest.approx(SUSTAINED["elastic"] * 3000 * sandwich)
    assert found.per_trial[1] - found.per_trial[0] == pytest.approx(200 * 1500 * 2.75e-4)
    text = "\n".join(found.lines())
    assert "prepare" in text and "trials at 0 steps" in text and "adapted" not in text


def test_a_short_budget_cuts_the_elastic_steps_and_says_so() -> None:
    found = plan(20 * 60)
    assert MIN_ELASTIC_STEPS <= found.elastic_steps < ELASTIC["steps"]
    room = 20 * 60 - 20 - found.estimates["baseline"] - found.estimates["outputs"]
    assert PREP_SHARE * room - 2 <= found.prepare_s <= PREP_SHARE * room
    assert found.total_s() == pytest.approx(20 * 60)
    line = found.lines()[-1]
    assert line.startswith("  adapted: the elastic student trains") and "autocompress prepare" in line


def test_a_budget_too_short_for_any_teacher_artifact_searches_precision_only() -> None:
    found = plan(5 * 60)
    assert found.precision_only and not any(k.startswith("prepare:") for k in found.estimates)
    assert "only the teacher at other precisions" in found.lines()[-1]


def test_a_trial_budget_is_given_its_time() -> None:
    found = plan(None, missing=(), trials=10)
    shares = [1, 1 / 4, 1 / 16]  # of every 21 trials, 16 at the first rung, 4 at the second, 1 at the third
    expected = 10 * sum(s * t for s, t in zip(shares, found.per_trial, strict=True)) / sum(shares)
    assert found.estimates["trials"] == pytest.approx(expected)
    assert "10 trials, no time limit" in found.lines()[0]


@pytest.fixture(scope="module")
def setup(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return search_setup(tiny_models["marian"], tmp_path_factory.mktemp("plan"))


def test_plan_prints_what_search_would_do_and_writes_nothing(setup: dict[str, Any], tmp_path: Path) -> None:
    args = cli_args(setup, tmp_path / "out", "--budget", "3m", "--json", space="two")
    args[0] = "plan"
    done = cli(args)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["budget_s"] == 180 and sum(found["estimates"].values()) == pytest.approx(180)
    assert found["units"]["export_s"] > 0 and found["units"]["latency_sentence_s"] > 0
    assert not (tmp_path / "out").exists()
    bad = cli([*args, "--budget", "soon"])
    assert bad.returncode == 2 and "budget 'soon'" in bad.stderr and "Traceback" not in bad.stderr


def test_a_wall_time_budget_bounds_the_whole_run(setup: dict[str, Any], tmp_path: Path) -> None:
    """Everything the user waits for (Ray, the probe, the baseline, trials, the final timing and outputs) within the
    budget and its slack; the plan and the actual phases kept in the study and shown in the report."""
    import autocompress

    # the `slow` space: each trial trains its student for seconds, from a continuous learning rate (never exhausted)
    result = autocompress.search(setup["model"], "75s", **options(setup, tmp_path / "s", space="slow"))
    attrs = result.study.user_attrs
    planned, actual = attrs["plan"]["estimates"], attrs["actuals"]
    assert {"probe", "baseline", "trials", "outputs"} <= set(planned) & set(actual)
    longest = max(t.duration.total_seconds() for t in result.study.trials if t.duration)
    assert 0.6 * 75 <= actual["total"] <= 75 * 1.05 + longest
    assert len(result.view.measured) >= 2
    report = (tmp_path / "s" / "report.html").read_text()
    assert "Plan and actual" in report


def test_a_candidate_slower_than_the_teacher_is_cut_short_and_never_on_the_front(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    """Planted: the study's teacher timing is made ten times faster, as if every candidate were ten times slower
    than the teacher. The new trials stop measuring after a few sentences, skip BLEU, are kept as pruned with what
    was measured and why, and are not drawn or listed on the front; what was measured before stays there."""
    import autocompress

    space = tmp_path / "cutting.yaml"  # the wide space with the target's default give_up
    space.write_text(SPACE.format(**{**SPACE_DEFAULTS, **WIDE, "give_up": 1.25}))
    opts = {**options(setup, tmp_path / "s", max_bleu_drop=None), "space": str(space)}
    first = autocompress.search(setup["model"], "2", **opts)
    assert not [t for t in first.study.trials if "cut_short" in t.user_attrs]
    url = f"sqlite:///{tmp_path / 's' / 'study.db'}"
    study = optuna.load_study(study_name="s", storage=url)
    baseline = study.user_attrs["baseline"]
    reference = baseline["latency_reference"]
    baseline["latency_reference"] = {**reference, "per_sentence_ms": [v / 10 for v in reference["per_sentence_ms"]]}
    study.set_user_attr("baseline", baseline)
    again = autocompress.search(setup["model"], "5", **opts)
    cut = [t for t in again.study.trials if "cut_short" in t.user_attrs and "duplicate_of" not in t.user_attrs]
    assert cut, [t.user_attrs.get("fail_reason") for t in again.study.trials]
    for trial in cut:
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert "slower than the teacher" in trial.user_attrs["cut_short"]["reason"]
        assert "bleu" not in trial.user_attrs["values"] and trial.user_attrs["values"]["latency_p50_ms"] > 0
        assert "bleu" not in trial.user_attrs["phases"]
    assert not {t.number for t in cut} & {t.number for t in again.view.front}
    assert {t.number for t in first.view.front} <= {t.number for t in again.view.front}
    rows = (tmp_path / "s" / "trials.csv").read_text()
    assert "cut_short" in rows.splitlines()[0] and "slower than the teacher" in rows


def test_a_budget_shorter_than_the_baseline_with_nothing_to_build_adapts_nothing() -> None:
    found = plan(30, missing=())
    assert found.adapted is None and not found.precision_only and found.estimates["trials"] == 0
