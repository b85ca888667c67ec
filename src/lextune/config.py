"""Stage configs: pydantic models, loadable from YAML, with ``--set a.b=value`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from lextune.errors import ConfigError

T = TypeVar("T", bound=BaseModel)


def _parse_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML scalars) to a nested dict."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = _parse_value(raw)
    return data


def load_config(model: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                section: str | None = None, **values: Any) -> T:
    """Validate a config from a YAML file (optionally one section of it), overrides and keyword values."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if section is not None:
            loaded = loaded.get(section, {}) if isinstance(loaded, dict) else {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
        data.update(loaded)
    data.update({k: v for k, v in values.items() if v is not None})
    apply_overrides(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        lines = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"].removeprefix("Value error, ")
                 for e in exc.errors()]
        raise ConfigError(f"invalid {model.__name__}{where}:\n  " + "\n  ".join(lines)) from exc


def save_config(config: BaseModel, path: str | Path) -> None:
    """Write a config as YAML (beside a stage's output)."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False),
                          encoding="utf-8")
