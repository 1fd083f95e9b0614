"""What a translation model is asked to do, and how: the language pair and the source prefix.

The families mark the task differently. MBart-50 and M2M100/NLLB use language tokens: the tokenizer puts the source
language's token on the source (its `src_lang`), and generation forces the target language's token first
(`forced_bos_token_id`), unless the decoder starts from it already (MBart en-ro). T5 reads a text prefix ("translate
English to Spanish: ", kept in the config's `task_specific_params`); a multilingual OPUS-MT Marian reads a `>>es<<`
prefix. A Task is resolved once from the model or the options, bound to the model and tokenizer (so that
save_pretrained writes it with them, and loading the saved directory resolves the same task without options), recorded
in the recipe and the artifact, and applied by evaluate, translate, distillation and every runtime.

Free of torch: the runtimes import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from autocompress.errors import UserInputError

# Sources are cut at this many tokens (the position limit of the families' usual checkpoints), whatever the output
# length limit: a long source must not be cut to the number of tokens the output may have.
MAX_SOURCE_TOKENS = 512
PREFIX_KEY = "translation_{}_to_{}"  # transformers' task_specific_params naming (t5-base: translation_en_to_de)


@dataclass(frozen=True)
class Task:
    source_prefix: str = ""
    source_lang: str | None = None
    target_lang: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Only what is set: a model with no task conventions (the demo) records nothing."""
        return {k: v for k, v in vars(self).items() if v}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Task:
        data = dict(data or {})
        unknown = sorted(set(data) - {"source_prefix", "source_lang", "target_lang"})
        if unknown:
            raise UserInputError(f"task has no setting {unknown[0]!r}: use source_prefix, source_lang, target_lang")
        return cls(**data)

    def sources(self, texts: Iterable[str]) -> list[str]:
        return [self.source_prefix + text for text in texts]

    def describe(self) -> str:
        pair = f"{self.source_lang or '?'}→{self.target_lang or '?'}" if self.source_lang or self.target_lang else ""
        prefix = f"prefix {self.source_prefix!r}" if self.source_prefix else ""
        return ", ".join(filter(None, (pair, prefix))) or "none"


def language_codes(tokenizer: Any) -> dict[str, int]:
    """The language tokens a multilingual tokenizer knows (code → token id); empty for the others."""
    for name in ("lang_code_to_id", "lang_token_to_id"):  # MBart(-50); M2M100
        found = getattr(tokenizer, name, None)
        if found:
            return dict(found)
    if hasattr(tokenizer, "src_lang"):  # NLLB: its language codes are its extra special tokens
        unk = tokenizer.unk_token_id
        tokens = [t for t in tokenizer.all_special_tokens if "_" in t and not t.startswith("<")]
        return {t: i for t in tokens if (i := tokenizer.convert_tokens_to_ids(t)) != unk}
    return {}


def language_token_id(tokenizer: Any, code: str) -> int:
    """The token id of a language code ('es' for M2M100, 'es_XX' for MBart-50, 'spa_Latn' for NLLB)."""
    get_lang_id = getattr(tokenizer, "get_lang_id", None)  # M2M100: 'es' → '__es__'
    if get_lang_id is not None:
        try:
            return int(get_lang_id(code))
        except KeyError:
            pass
    token_id = tokenizer.convert_tokens_to_ids(code)
    if token_id is None or token_id == tokenizer.unk_token_id:
        known = ", ".join(sorted(c.strip("_") for c in language_codes(tokenizer))[:12])
        raise UserInputError(f"language {code!r} is not one of this tokenizer's languages ({known}, …)")
    return int(token_id)


def special_ids(tokenizer: Any, extra: Iterable[int | None] = ()) -> set[int]:
    """Every id that must never reach output text: the tokenizer's special tokens and its language tokens (M2M100's
    are not marked special, so skip_special_tokens alone leaves `__es__` in the text), plus `extra`."""
    found = set(tokenizer.all_special_ids) | set(language_codes(tokenizer).values())
    found |= {i for i, token in getattr(tokenizer, "added_tokens_decoder", {}).items() if token.special}
    return found | {int(i) for i in extra if i is not None}


def decode(tokenizer: Any, rows: Iterable[Sequence[int]], skip: set[int]) -> list[str]:
    return [tokenizer.decode([int(t) for t in row if int(t) not in skip], skip_special_tokens=True) for row in rows]


def resolve_task(
    model_type: str,
    config: Any,
    generation: Any,
    tokenizer: Any,
    source_prefix: str | None = None,
    source_lang: str | None = None,
    target_lang: str | None = None,
) -> Task:
    """The task of a model: the options where given, else what the model (its config and generation config) and its
    tokenizer say; one line naming the option to give where that is unclear."""
    if language_codes(tokenizer):
        source = source_lang or getattr(tokenizer, "src_lang", None)
        target = target_lang or getattr(tokenizer, "tgt_lang", None) or _forced_language(config, generation, tokenizer)
        if target is None:
            raise UserInputError(
                f"this {model_type} model translates into several languages and names no target: give "
                "--target-lang (a code of its tokenizer, e.g. es, es_XX or spa_Latn)"
            )
        for code in (source, target):
            if code is not None:
                language_token_id(tokenizer, code)  # refuse an unknown code now
        return Task(source_prefix or "", source, target)
    if source_prefix is not None:
        return Task(source_prefix, source_lang, target_lang)
    codes = getattr(tokenizer, "supported_language_codes", None) or []  # multilingual OPUS-MT: >>es<< on the source
    if target_lang is not None and codes:
        token = f">>{target_lang}<<"
        if token not in codes:
            raise UserInputError(f"target language {target_lang!r} is not one of this model's ({', '.join(codes)})")
        return Task(f"{token} ", source_lang, target_lang)
    prefixes = _translation_prefixes(config)
    wanted = PREFIX_KEY.format(source_lang, target_lang)
    if wanted in prefixes:
        return Task(prefixes[wanted], source_lang, target_lang)
    if len(prefixes) == 1:
        key, prefix = next(iter(prefixes.items()))
        pair = key.removeprefix("translation_").split("_to_")
        return Task(prefix, *(pair if len(pair) == 2 else (source_lang, target_lang)))
    if len(prefixes) > 1:
        pairs = ", ".join(k.removeprefix("translation_").replace("_to_", "→") for k in sorted(prefixes))
        raise UserInputError(
            f"this {model_type} model has several translation prefixes ({pairs}): give --source-lang and "
            "--target-lang, or --source-prefix"
        )
    return Task("", source_lang, target_lang)


def _translation_prefixes(config: Any) -> dict[str, str]:
    params = getattr(config, "task_specific_params", None) or {}
    return {
        key: value["prefix"]
        for key, value in params.items()
        if key.startswith("translation") and isinstance(value, dict) and value.get("prefix")
    }


def _forced_language(config: Any, generation: Any, tokenizer: Any) -> str | None:
    """The target language the model itself forces or starts from, as a code of its tokenizer."""
    by_id = {i: code for code, i in language_codes(tokenizer).items()}
    forced = getattr(generation, "forced_bos_token_id", None) or getattr(config, "forced_bos_token_id", None)
    for token_id in (forced, getattr(config, "decoder_start_token_id", None)):
        if token_id in by_id:
            code = by_id[token_id]
            return code.strip("_") if hasattr(tokenizer, "get_lang_id") else code
    return None


def bind_tokenizer(task: Task, tokenizer: Any) -> None:
    """The tokenizer encodes the task's source language (and target language, for labels)."""
    if not language_codes(tokenizer):
        return
    if task.source_lang is not None:
        tokenizer.src_lang = task.source_lang
    if task.target_lang is not None:
        tokenizer.tgt_lang = task.target_lang


def bind(task: Task, model: Any, tokenizer: Any) -> None:
    """Make the model and tokenizer carry the task, so that generate() follows it and save_pretrained records it."""
    bind_tokenizer(task, tokenizer)
    if language_codes(tokenizer) and task.target_lang is not None:
        target = language_token_id(tokenizer, task.target_lang)
        if model.config.decoder_start_token_id != target:  # MBart en-ro starts from the language: nothing to force
            model.generation_config.forced_bos_token_id = target
    if task.source_prefix:
        params = dict(getattr(model.config, "task_specific_params", None) or {})
        key = PREFIX_KEY.format(task.source_lang, task.target_lang) if task.source_lang and task.target_lang else None
        params[key or "translation"] = {**params.get(key or "translation", {}), "prefix": task.source_prefix}
        model.config.task_specific_params = params
