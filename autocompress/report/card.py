"""The model card of an exported trial (best/README.md, `autocompress export`): Hugging Face YAML front matter made
by huggingface_hub's own ModelCardData (licence inherited from the teacher, languages, tags, base model, pipeline,
model-index metrics with their sacrebleu signatures), then what the model is, how it compares with the teacher, how
it was measured, where it came from (study, storage, trial, autocompress version, date) and how to run it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from autocompress.engine.study import is_feasible
from autocompress.engine.view import StudyView
from autocompress.manifest import Manifest
from autocompress.report.recipe_text import describe


def model_card(
    view: StudyView,
    trial: FrozenTrial,
    recipe: dict[str, Any],
    table: str,
    rule: str | None,
    storage: str | None,
    artifact: Path,
) -> str:
    settings, values = view.settings, trial.user_attrs["values"]
    signatures = trial.user_attrs.get("signatures", {})
    manifest = Manifest.read(artifact)
    teacher = _teacher_card(settings.get("model", ""))
    languages = _languages(settings, teacher, artifact)
    feasible = is_feasible(trial)
    front = _front_matter(view, trial, manifest, teacher, languages, values, signatures)
    drop = settings.get("max_bleu_drop")
    verdict = (
        f"within the study's constraint (BLEU at most {drop} below the teacher's)"
        if feasible
        else f"**outside the study's constraint** (BLEU at most {drop} below the teacher's): not a candidate it "
        "would select"
    )
    chosen = f", selected by the `{rule}` rule" if rule else ""
    pair = " → ".join(languages) if len(languages) == 2 else ", ".join(languages) or "?"
    return f"""{front}
# {describe(recipe)} ({pair}): trial {trial.number} of study `{view.name}`

Compressed by autocompress from the teacher `{settings.get("model", "?")}`{chosen}; {verdict}.
Runtime {manifest.runtime}, precision {manifest.dtype}.

## Against the teacher (both measured in the same harness: exported artifact, same target)

{table}

## Recipe `{recipe["id"]}`

{_passes(recipe)}

## How it was measured

- BLEU: `{signatures.get("bleu", "")}`
- chrF: `{signatures.get("chrf", "")}`
- latency: `{signatures.get("latency_p50_ms", "")}`
- memory: `{signatures.get("peak_rss_mb", "")}`

## Provenance

- study `{view.name}`, trial {trial.number}, storage `{_redacted(storage)}`
- autocompress {_version()}, exported {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
- teacher licence: {teacher.get("license") or "none stated in the teacher's card"} (this model inherits it)

## Use it

{_usage(manifest)}
"""


def _front_matter(
    view: StudyView,
    trial: FrozenTrial,
    manifest: Manifest,
    teacher: dict[str, Any],
    languages: list[str],
    values: dict[str, Any],
    signatures: dict[str, Any],
) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    onnx = manifest.runtime == "onnxruntime"
    tags = ["translation", "autocompress", manifest.family, "onnx" if onnx else "ctranslate2", manifest.dtype]
    if any(p["name"] == "distill" for p in (manifest.recipe or {}).get("passes", [])):
        tags.append("distillation")
    dev = view.settings.get("dev") or "autocompress-demo-dev"
    pair = "-".join(languages)
    results = [
        EvalResult(
            task_type="translation",
            task_name=f"Translation {pair}",
            dataset_type=str(dev),
            dataset_name=Path(str(dev)).name,
            metric_type=metric,
            metric_name=name,
            metric_value=values[metric],
            metric_config=signatures.get(metric),
            verified=False,
        )
        for metric, name in (("bleu", "BLEU"), ("chrf", "chrF"))
        if values.get(metric) is not None
    ]
    data = ModelCardData(
        language=languages or None,
        license=teacher.get("license"),
        license_name=teacher.get("license_name"),
        license_link=teacher.get("license_link"),
        tags=tags,
        base_model=view.settings.get("model"),
        pipeline_tag="translation",
        library_name="transformers.js" if onnx else "ctranslate2",
        model_name=f"{view.name}-trial-{trial.number}",
        eval_results=results or None,
    )
    return f"---\n{data.to_yaml()}\n---\n"


def _teacher_card(model: str) -> dict[str, Any]:
    """The teacher card's metadata (licence, languages), or nothing where it has none."""
    from huggingface_hub import ModelCard

    path = Path(model) / "README.md"
    if not path.is_file():
        return {}
    try:
        return ModelCard.load(path).data.to_dict()
    except (ValueError, OSError):
        return {}


def _languages(settings: dict[str, Any], teacher: dict[str, Any], artifact: Path) -> list[str]:
    """Source and target: the task's, else the teacher card's, else the tokenizer's (Marian records them)."""
    task = settings.get("task") or {}
    if task.get("source_lang") and task.get("target_lang"):
        return [task["source_lang"], task["target_lang"]]
    listed = teacher.get("language")
    if listed:
        return [listed] if isinstance(listed, str) else list(listed)
    config = artifact / "tokenizer_config.json"
    tokenizer = json.loads(config.read_text()) if config.is_file() else {}
    return [tokenizer[k] for k in ("source_lang", "target_lang") if tokenizer.get(k)]


def _passes(recipe: dict[str, Any]) -> str:
    return "\n".join(f"- **{p['name']}**: {json.dumps(p['params'])}" for p in recipe["passes"])


def _usage(manifest: Manifest) -> str:
    if manifest.runtime == "ctranslate2":
        compute = manifest.precision.get("quantization", "default")
        vmap = ", and `use_vmap=True` in translate_batch (vmap.txt: its shortlist)" if manifest.shortlist else ""
        return (
            f'`ctranslate2.Translator("<this directory>", compute_type="{compute}")` (what it was measured at) with '
            f"the tokenizer saved here{vmap}."
        )
    files = manifest.files
    if "decoder_merged" not in files:
        return "`autocompress translate <this directory>` (an artifact of an earlier autocompress layout)."
    if manifest.shortlist or manifest.target_ids is not None:
        return (
            f"`autocompress translate <this directory>`. Its decoder ({files['decoder_merged']}) "
            + ("returns `decoder_hidden`, not `logits` (the lexical shortlist projects it)" if manifest.shortlist
               else "speaks a trimmed vocabulary (artifact.json `target_ids` maps it to the tokenizer's ids)")
            + ", which other loaders do not know."
        )  # fmt: skip
    dtype = files["encoder"].removesuffix(".onnx").partition("encoder_model")[2].lstrip("_") or "fp32"
    return f"""In Optimum's and transformers.js's layout ({files["encoder"]}, {files["decoder_merged"]}):

- transformers.js: `pipeline("translation", "<this directory>", {{ dtype: "{dtype}" }})`
- Optimum: `ORTModelForSeq2SeqLM.from_pretrained("<this directory>", subfolder="onnx", \
encoder_file_name="{Path(files["encoder"]).name}", decoder_file_name="{Path(files["decoder_merged"]).name}")`
- `autocompress translate <this directory>`"""


def _redacted(storage: str | None) -> str:
    """The storage URL without its password (a card is shared)."""
    if not storage:
        return "?"
    try:
        from sqlalchemy.engine import make_url

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # not a database URL: shown as given
        return storage


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("autocompress")
    except PackageNotFoundError:
        return "unknown"
