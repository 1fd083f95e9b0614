"""Plots of a study, drawn with Optuna's matplotlib visualizations where they fit, written as PNG files.

BLEU against latency with memory as colour and the teacher marked is drawn here: Optuna's Pareto plot has no third
objective as colour and no reference point. Each plot that cannot be drawn yet (too few trials) is skipped, named.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): servers have no display
from optuna.visualization import matplotlib as ovm

from autocompress.engine.study import is_feasible
from autocompress.engine.view import StudyView

MIN_IMPORTANCE = 20  # measured trials before parameter importances are drawn


def reference_point(view: StudyView) -> list[float]:
    """For the hypervolume: a little worse than the worst value seen of each objective (scores: 0)."""
    point = []
    for i, objective in enumerate(view.objectives):
        seen = [t.values[i] for t in view.measured]
        if objective.higher_is_better:
            point.append(0.0 if not objective.unit else min(seen) * 0.9)
        else:
            point.append(max(seen) * 1.1)
    return point


def bleu_latency(view: StudyView, path: Path) -> None:
    trials = view.measured
    values = [t.user_attrs["values"] for t in trials]
    titles = {m.key: m.title for m in view.measures}
    fig, ax = plt.subplots(figsize=(7.5, 5))
    points = ax.scatter(
        [v["latency_p50_ms"] for v in values],
        [v["bleu"] for v in values],
        c=[v["peak_rss_mb"] for v in values],
        cmap="viridis",
        edgecolors=["black" if is_feasible(t) else "none" for t in trials],
        s=40,
    )
    fig.colorbar(points, ax=ax, label=titles["peak_rss_mb"])
    front = sorted((t.user_attrs["values"] for t in view.front), key=lambda v: v["latency_p50_ms"])
    if front:
        ax.plot([v["latency_p50_ms"] for v in front], [v["bleu"] for v in front], "r--", lw=1, label="Pareto front")
    baseline = view.baseline.get("values")
    if baseline:
        ax.scatter([baseline["latency_p50_ms"]], [baseline["bleu"]], marker="*", s=250, c="red", label="teacher")
        if view.max_bleu_drop is not None:
            ax.axhline(baseline["bleu"] - view.max_bleu_drop, color="gray", lw=0.8, ls=":", label="max BLEU drop")
    for trial, value in zip(trials, values, strict=True):  # which trial each point is: `autocompress export --trial`
        ax.annotate(str(trial.number), (value["latency_p50_ms"], value["bleu"]), fontsize=7, alpha=0.8,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    if view.selected is not None:
        chosen = view.selected.user_attrs["values"]
        ax.scatter([chosen["latency_p50_ms"]], [chosen["bleu"]], s=260, facecolors="none", edgecolors="red",
                   linewidths=1.8, label=f"selected: trial {view.selected.number}")  # fmt: skip
    ax.set_xscale("log")  # an outlier (a slow precision) would squeeze every other point into a corner
    ax.set_xlabel(f"{titles['latency_p50_ms']} (log scale)")
    ax.set_ylabel(f"{titles['bleu']} (dev)")
    ax.set_title("BLEU against latency (black edge: meets the constraints)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _relabelled(ax: Any) -> Any:
    """Optuna calls the non-dominated trials "Best Trial": here they are the front, not the selected model."""
    legend = ax.get_legend()
    for text in legend.get_texts() if legend is not None else ():
        text.set_text({"Best Trial": "Pareto front (non-dominated)", "Trial": "other trials"}.get(text.get_text(),
                      text.get_text()))  # fmt: skip
    return ax


def _from_zero(view: StudyView, ax: Any) -> Any:
    """The hypervolume from 0, with the reference point it is measured from: a change reads at its true size."""
    ax.set_ylim(bottom=0)
    point = ", ".join(f"{o.title} {v:.4g}" for o, v in zip(view.objectives, reference_point(view), strict=True))
    ax.set_title(f"Hypervolume history (reference point: {point})", fontsize=9)
    return ax


def _enough(view: StudyView, draw: Callable[[], Any]) -> Any:
    """Importances from a handful of trials rank noise (temperature "driving" latency): drawn from MIN_IMPORTANCE."""
    if len(view.measured) < MIN_IMPORTANCE:
        raise ValueError(f"importances need {MIN_IMPORTANCE} measured trials; this study has {len(view.measured)}")
    return draw()


def write_plots(view: StudyView, out: Path) -> dict[str, str]:
    """name → file written, or → the reason it was skipped."""
    study = view.study
    names = list(view.settings["objectives"])  # file names: importance_bleu.png, importance_latency.png
    labels = [o.title for o in view.objectives]
    drawn: dict[str, str] = {}

    def optuna_plot(draw: Callable[[], object]) -> Callable[[Path], None]:
        def save(path: Path) -> None:
            result = draw()
            figure = result.figure if hasattr(result, "figure") else result[0].figure  # type: ignore[index]
            figure.set_size_inches(8, 5.5)
            figure.tight_layout()
            figure.savefig(path, dpi=110)
            plt.close(figure)

        return save

    plots: dict[str, Callable[[Path], None]] = {
        "pareto_bleu_latency": lambda p: bleu_latency(view, p),
        "pareto_3d": optuna_plot(lambda: _relabelled(ovm.plot_pareto_front(study, target_names=labels))),
        "hypervolume": optuna_plot(
            lambda: _from_zero(view, ovm.plot_hypervolume_history(study, reference_point=reference_point(view)))
        ),
        "timeline": optuna_plot(lambda: ovm.plot_timeline(study)),
    }
    for i, name in enumerate(names[:2]):
        plots[f"importance_{name}"] = optuna_plot(
            lambda i=i, label=labels[i]: _enough(view, lambda: ovm.plot_param_importances(
                study, target=lambda t: t.values[i], target_name=label
            ))
        )  # fmt: skip
    for name, save in plots.items():
        path = out / f"{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                save(path)
            drawn[name] = path.name
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as err:
            drawn[name] = f"not drawn: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            plt.close("all")
    return drawn
