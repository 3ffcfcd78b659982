"""Every setting of every service in one table (``dasan config``; docs/configuration.md is its output)."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic_settings import BaseSettings

from streaming import paths

# (service, module, class) — the one list of settings classes.
SETTINGS_CLASSES: list[tuple[str, str, str]] = [
    ("kafka (all services)", "streaming.settings", "KafkaSettings"),
    ("masking of personal data (all services)", "streaming.settings", "PrivacySettings"),
    ("asr gateway and workers", "asr.settings", "AsrSettings"),
    ("knowledge base", "assist.knowledge", "KnowledgeSettings"),
    ("assist service", "assist.settings", "AssistSettings"),
    ("console and recorder", "console.settings", "ConsoleSettings"),
]


def settings_classes() -> list[tuple[str, type[BaseSettings]]]:
    out = []
    for service, module, name in SETTINGS_CLASSES:
        out.append((service, getattr(importlib.import_module(module), name)))
    return out


def env_names(cls: type[BaseSettings]) -> dict[str, Any]:
    """{ENV_VAR: field info} for a pydantic-settings class."""
    prefix = cls.model_config.get("env_prefix", "")
    out = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        out[(alias or f"{prefix}{name}").upper()] = info
    return out


def _symbolic_paths(value: Any) -> str:
    """A computed default, with this machine's folders written as the variables that set them.

    Path defaults hang off DASAN_VAR_DIR / DASAN_MODEL_DIR / DASAN_SHARED_DIR, whose own defaults
    depend on where the repository is checked out; the documentation must not.
    """
    if isinstance(value, list):
        return "[" + ", ".join(_symbolic_paths(v) for v in value) + "]"
    text = str(value)
    for var, folder in (
        ("$DASAN_VAR_DIR", paths.var_dir()),
        ("$DASAN_MODEL_DIR", paths.model_dir()),
        ("$DASAN_SHARED_DIR", paths.shared_dir()),
    ):
        text = text.replace(str(folder), var)
    return text


def _default(info: Any) -> str:
    if info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:
            return "(computed)"
        return _symbolic_paths(value)
    v = info.default
    if hasattr(v, "get_secret_value"):
        return "(secret)"
    return repr(v)


def print_settings(markdown: bool = False) -> None:
    for service, cls in settings_classes():
        if markdown:
            print(f"\n## {service} — `{cls.__module__}.{cls.__name__}`\n")
            print("| variable | default | meaning |\n|---|---|---|")
        else:
            print(f"\n[{service}] {cls.__module__}.{cls.__name__}")
        for env, info in env_names(cls).items():
            desc = (info.description or "").replace("|", "\\|")
            if markdown:
                print(f"| `{env}` | `{_default(info)}` | {desc} |")
            else:
                print(f"  {env:44s} = {_default(info):28s} {desc}")
