"""The search's plan: what will be built and measured, how long each part should take on this machine, and what the
budget buys, from units timed on it (autocompress.teacher.probe). Made before the heavy work, printed, kept in the
study beside the actual durations (`plan`, `actuals`), and kept to: a wall-time budget bounds the whole run.

Pure arithmetic over the units: no model, no Ray. When the teacher's one-off work does not fit the budget, the plan
trains the elastic student for the steps that fit, or, when too few fit, gives the search only the levers that need
no teacher artifact (the teacher at other precisions and runtimes), and says which in one line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Of the time left after the baseline and the final outputs, the most the one-off work may take: it is reused by every
# later search of the teacher, and a first-rung trial of a sliced student costs seconds, not minutes.
PREP_SHARE = 0.7
MIN_ELASTIC_STEPS = 100  # fewer, and the search is better off with the teacher's precisions alone
STUDENT_SHARE = 0.5  # a student's decoding and timing against the teacher's, until trials are measured
EXPORT_SHARE = 0.2  # a student's export against the teacher's fp32 ONNX export
RETIME_ROUNDS = 3  # the final side-by-side timing (engine.driver)
WRITE_S = 15.0  # tables, plots, report and the selected model's export
IMPORTANCE = {"sentences": 512, "max_tokens": 2000}  # model.importance.ImportanceSettings' defaults
# What whole builds took against the units' product, measured on the 2-core VM (the demo teacher perturbed, a 20-min
# budget, 2026-12-07): the KD data 204 s against 264 (the whole set sorted by length pads less than a sample's two
# batches); the lexical table 32 s against 21 (its EM over 59k pairs grows faster than over a sample's 128); the
# elastic student 601 s against 457 for 399 steps (sustained sandwich steps, checkpoints). Multiplied in.
SUSTAINED = {"teacher_translations": 0.8, "shortlist_table": 1.5, "elastic": 1.3}


@dataclass(frozen=True)
class Plan:
    units: dict[str, float]
    estimates: dict[str, float]  # phase → seconds: probe, baseline, prepare:<artifact>…, trials, outputs
    per_trial: tuple[float, ...]  # seconds for one trial at each rung (one entry when the space has no rungs)
    budget_s: float | None = None
    trials: int | None = None
    elastic_steps: int | None = None  # the elastic student's steps, when the budget cut them
    precision_only: bool = False  # the budget fits no teacher artifact: trials keep the teacher's weights
    adapted: str | None = None  # what the budget changed, in one line
    notes: dict[str, str] = field(default_factory=dict)  # phase → what it holds, in words

    @property
    def prepare_s(self) -> float:
        return sum(v for k, v in self.estimates.items() if k.startswith("prepare:"))

    def total_s(self) -> float:
        return sum(self.estimates.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_trial": list(self.per_trial)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(**{**data, "per_trial": tuple(data["per_trial"])})

    def lines(self) -> list[str]:
        bound = f"budget {_minutes(self.budget_s)}" if self.budget_s else f"{self.trials} trials, no time limit"
        found = [f"plan ({bound}; ≈ {_minutes(self.total_s())} in all):"]
        rows = [("probe", self.estimates.get("probe", 0.0)), ("baseline", self.estimates.get("baseline", 0.0))]
        if self.prepare_s:
            rows.append(("prepare", self.prepare_s))
        rows += [("trials", self.estimates["trials"]), ("outputs", self.estimates["outputs"])]
        for name, seconds in rows:
            found.append(f"  {name:<9}{_minutes(seconds):>9}  {self.notes.get(name, '')}".rstrip())
        if self.adapted:
            found.append(f"  adapted: {self.adapted}")
        return found


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def artifact_seconds(units: dict[str, float], name: str, elastic: dict[str, Any] | None, steps: int | None) -> float:
    """What building one teacher artifact should take, from the units."""
    return SUSTAINED.get(name, 1.0) * _unit_product(units, name, elastic, steps)


def _unit_product(units: dict[str, float], name: str, elastic: dict[str, Any] | None, steps: int | None) -> float:
    pair_tokens = units["tokens_per_pair"]
    if name == "importance":
        tokens = min(IMPORTANCE["sentences"], units["train_sentences"]) * pair_tokens
        # gate gradients (a forward and backward), then every layer skipped in turn (forwards), per stack
        return tokens * (units["step_largest_token_s"] + (units["teacher_layers"] + 2) * units["forward_token_s"])
    if name == "teacher_translations":
        return units["kd_setup_s"] + units["kd_sentence_s"] * units["train_sentences"]
    if name == "target_token_counts":
        return 1e-4 * units["train_sentences"]
    if name == "shortlist_table":
        return units["table_pair_s"] * 2 * units["train_sentences"]  # the translations' pairs and the references'
    if name == "elastic":
        assert elastic is not None
        return (steps or elastic["steps"]) * elastic_step_s(units, elastic)
    raise ValueError(f"unknown teacher artifact {name!r}")


def elastic_step_s(units: dict[str, float], elastic: dict[str, Any]) -> float:
    """The sandwich rule: the largest, the smallest and random structures, each a forward and backward."""
    largest, smallest = units["step_largest_token_s"], units["step_smallest_token_s"]
    per_token = largest + smallest + elastic["random_structures"] * (largest + smallest) / 2
    return elastic["max_tokens"] * per_token + units.get("update_s", 0.0)


def measurement_seconds(units: dict[str, float], target: dict[str, Any], dev_sentences: int) -> dict[str, float]:
    """The teacher's export, BLEU decoding and timing (a student's take a share of these)."""
    timed = min(target["latency_sentences"], dev_sentences) * (target["warmup"] + target["repeats"])
    batched = sum(1 for size in target["batch_sizes"] if size > 1)
    return {
        "export": units["export_s"],
        "bleu": units["bleu_sentence_s"] * dev_sentences,
        "latency": units["latency_sentence_s"] * timed * (1 + 0.5 * batched),
        "memory": 3.0,
    }


def make_plan(
    units: dict[str, float],
    missing: tuple[str, ...],
    target: dict[str, Any],
    dev_sentences: int,
    rungs: tuple[int, ...],
    train_tokens: int,
    elastic: dict[str, Any] | None,
    budget_s: float | None,
    trials: int | None,
    elapsed_s: float,
    trains_students: bool = True,
    eta: int = 4,
) -> Plan:
    """`elapsed_s`: what the run has taken so far (start, the probe); `rungs`: a student's training steps at each
    rung ((0,) untrained, or the distillation's steps when the space has no rungs); `train_tokens`: a distillation
    batch's tokens; `eta`: the rungs' promotion rate (a trial budget spends 1/eta of its trials a rung higher)."""
    measured = measurement_seconds(units, target, dev_sentences)
    baseline = sum(measured.values()) - measured["export"]  # the probe's export is the baseline's, cached for it
    outputs = RETIME_ROUNDS * measured["latency"] * (1 + STUDENT_SHARE) + WRITE_S
    # a student's artifact is smaller and faster than the teacher's; its export mostly a CTranslate2 conversion
    overhead = STUDENT_SHARE * baseline + EXPORT_SHARE * measured["export"]
    # a drawn student sits between the largest and the smallest structure; its update, over fewer weights, too
    step_s = (
        train_tokens * (units["step_largest_token_s"] + units["step_smallest_token_s"]) + units.get("update_s", 0.0)
    ) / 2
    per_trial = tuple(overhead + steps * step_s for steps in rungs) if trains_students else (overhead,)
    notes = {
        "probe": "timed here: an export, a BLEU batch, latency sentences, training steps"
        + (", a KD batch" if "kd_sentence_s" in units else ""),
        "baseline": f"the teacher, fp32 ONNX (exported by the probe): BLEU {measured['bleu']:.0f} s, "
        f"latency {measured['latency']:.0f} s",
        "outputs": f"the teacher timed again beside the selected model ({RETIME_ROUNDS} rounds), tables, report",
    }
    steps, precision_only, adapted = None, False, None
    prepare = {name: artifact_seconds(units, name, elastic, None) for name in missing}
    if budget_s is not None:
        room = budget_s - elapsed_s - baseline - outputs
        if prepare and sum(prepare.values()) > PREP_SHARE * room:
            whole = sum(prepare.values())
            others = whole - prepare.get("elastic", 0.0)
            step_s = SUSTAINED["elastic"] * elastic_step_s(units, elastic) if elastic else 0.0
            fitting = math.floor((PREP_SHARE * room - others) / step_s) if elastic else 0
            if "elastic" in prepare and elastic is not None and fitting >= MIN_ELASTIC_STEPS:
                steps = min(fitting, int(elastic["steps"]))
                prepare["elastic"] = artifact_seconds(units, "elastic", elastic, steps)
                adapted = (
                    f"the elastic student trains {steps} of its {elastic['steps']} steps, students start from a less "
                    f"trained one: the whole one-off work (≈ {_minutes(whole)} here) does not fit the budget; "
                    "`autocompress prepare` with the same --space builds it whole, ahead of a search"
                )
            else:
                precision_only = True
                prepare = {}
                adapted = (
                    "only the teacher at other precisions and runtimes is searched: the teacher's one-off work "
                    f"(≈ {_minutes(whole)} here) does not fit the budget; `autocompress prepare` with the same "
                    "--space builds it ahead of a search"
                )
                per_trial = (overhead,)
    estimates = {"probe": elapsed_s, "baseline": baseline}
    estimates |= {f"prepare:{name}": seconds for name, seconds in prepare.items()}
    if prepare:
        notes["prepare"] = ", ".join(f"{name} {_minutes(seconds)}" for name, seconds in prepare.items())
    if budget_s is not None:
        estimates["trials"] = max(0.0, budget_s - sum(estimates.values()) - outputs)
    else:
        # successive halving: of n trials at a rung, n/eta more run at the next, while the trial budget lasts
        shares = [eta**-rung for rung in range(len(per_trial))]
        estimates["trials"] = (trials or 0) * sum(s * t for s, t in zip(shares, per_trial, strict=True)) / sum(shares)
    estimates["outputs"] = outputs
    notes["trials"] = _buys(estimates["trials"], per_trial, rungs if not precision_only else (0,))
    return Plan(units, estimates, per_trial, budget_s, trials, steps, precision_only, adapted, notes)


def _buys(seconds: float, per_trial: tuple[float, ...], rungs: tuple[int, ...]) -> str:
    """What the trials' time buys at each rung, in words."""
    parts = []
    for steps, each in zip(rungs, per_trial, strict=False):
        count = round(seconds / each)
        parts.append(f"{count} trial{'' if count == 1 else 's'} at {steps} steps ({_minutes(each)} each)")
    return "≈ " + ", or ".join(parts[:3])


def plan_rows(plan: dict[str, Any], actuals: dict[str, float]) -> list[dict[str, Any]]:
    """Each phase's estimate beside what it took (the study's `plan` and `actuals`), the whole run last."""
    estimates = plan.get("estimates", {})
    prepare = sum(v for k, v in estimates.items() if k.startswith("prepare:"))
    phases = [("probe", estimates.get("probe")), ("baseline", estimates.get("baseline"))]
    phases += [(k, v) for k, v in estimates.items() if k.startswith("prepare:")]
    if prepare:
        phases.append(("prepare", prepare))
    phases += [("trials", estimates.get("trials")), ("outputs", estimates.get("outputs"))]
    phases.append(("total", sum(estimates.values())))
    rows = []
    for phase, planned in phases:
        taken = actuals.get(phase)
        rows.append(
            {
                "phase": phase,
                "planned s": None if planned is None else round(planned, 1),
                "actual s": taken,
                "actual / planned": round(taken / planned, 2) if taken is not None and planned else None,
            }
        )
    return rows
