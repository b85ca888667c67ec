"""Query/passage templates (the prefixes a model was trained with), as a registry."""

from __future__ import annotations

from dataclasses import dataclass

from lextune.errors import ConfigError


@dataclass(frozen=True)
class Template:
    """Text put before a query and before a passage."""

    query: str = ""
    passage: str = ""
    name: str = "custom"


TEMPLATES: dict[str, Template] = {
    "e5": Template("query: ", "passage: ", "e5"),
    "bge": Template("Represent this sentence for searching relevant passages: ", "", "bge"),
    "bge-zh": Template("为这个句子生成表示以用于检索相关文章：", "", "bge-zh"),
    "none": Template("", "", "none"),
}


def register_template(template: Template) -> None:
    """Add a named template (for example a model family lextune does not know yet)."""
    TEMPLATES[template.name] = template


def get_template(spec: str | Template | tuple[str, str] | dict | None) -> Template | None:
    """Resolve a registry name, a Template, a (query, passage) pair or a dict; None stays None."""
    if spec is None or isinstance(spec, Template):
        return spec
    if isinstance(spec, str):
        if spec not in TEMPLATES:
            raise ConfigError(f"unknown template {spec!r}; known: {', '.join(sorted(TEMPLATES))}")
        return TEMPLATES[spec]
    if isinstance(spec, tuple) and len(spec) == 2:
        return Template(spec[0], spec[1])
    if isinstance(spec, dict):
        return Template(spec.get("query", ""), spec.get("passage", ""), spec.get("name", "custom"))
    raise ConfigError(f"a template is a name, a Template, a (query, passage) pair or a dict, not {spec!r}")


def template_from_prompts(prompts: dict[str, str] | None) -> Template:
    """Template from a sentence-transformers model's saved prompts (``query``, ``passage``/``document``)."""
    prompts = prompts or {}
    query = prompts.get("query", "")
    passage = prompts.get("passage", prompts.get("document", prompts.get("corpus", "")))
    for t in TEMPLATES.values():
        if (t.query, t.passage) == (query, passage):
            return t
    return Template(query, passage)
