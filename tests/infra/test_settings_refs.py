"""Every DASAN_* variable that compose, the k8s overlays or the Dockerfiles set is a real setting.

A variable that no settings class reads would be silently ignored in production. Each prefix maps
to the one settings class that owns it (docs/CONVENTIONS.md); a class that does not exist yet
fails its own test with a clear message.
"""

from __future__ import annotations

import importlib

import pytest
from pydantic_settings import BaseSettings

from .manifests import REPO, referenced_dasan_env

# prefix → (module, class). Longest prefix wins.
OWNERS = {
    "DASAN_KAFKA_": ("streaming.settings", "KafkaSettings"),
    "DASAN_PRIVACY_": ("streaming.settings", "PrivacySettings"),
    "DASAN_ASR_": ("asr.settings", "AsrSettings"),
    "DASAN_ASSIST_": ("assist.settings", "AssistSettings"),
    "DASAN_KB_": ("assist.knowledge", "KnowledgeSettings"),
    "DASAN_CONSOLE_": ("console.settings", "ConsoleSettings"),
}
# Read by streaming (paths.py / KafkaSettings' alias), not by a class with a prefix.
PATH_VARS = {"DASAN_SHARED_DIR", "DASAN_MODEL_DIR", "DASAN_VAR_DIR"}
ALIASES = {"DASAN_ENV": ("streaming.settings", "KafkaSettings")}


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variable names a pydantic-settings class reads."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif alias is not None and hasattr(alias, "choices"):
            names.update(str(c).upper() for c in alias.choices if isinstance(c, str))
        else:
            names.add(f"{prefix}{field.alias or field_name}".upper())
    return names


def owner(var: str) -> tuple[str, str] | None:
    if var in ALIASES:
        return ALIASES[var]
    for prefix in sorted(OWNERS, key=len, reverse=True):
        if var.startswith(prefix):
            return OWNERS[prefix]
    return None


def test_every_reference_has_an_owner() -> None:
    refs = referenced_dasan_env()
    assert {"DASAN_KAFKA_BOOTSTRAP", "DASAN_CONSOLE_DATABASE_URL", "DASAN_ASR_DEVICE"} <= refs.keys()
    orphans = {v: sorted(w) for v, w in refs.items() if v not in PATH_VARS and owner(v) is None}
    assert not orphans, f"DASAN_* variables with no settings class: {orphans}"


def test_path_variables_are_read_by_streaming_paths() -> None:
    source = (REPO / "streaming" / "paths.py").read_text(encoding="utf-8")
    for var in PATH_VARS & referenced_dasan_env().keys():
        assert f'"{var}"' in source, var


@pytest.mark.parametrize("cls_ref", sorted(set(OWNERS.values())), ids=lambda r: r[1])
def test_referenced_settings_exist(cls_ref: tuple[str, str]) -> None:
    module_name, class_name = cls_ref
    wanted = {v: w for v, w in referenced_dasan_env().items() if owner(v) == cls_ref}
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(
            f"{module_name}.{class_name} does not exist ({exc}); infra references {sorted(wanted)}",
            pytrace=False,
        )
    unknown = {v: sorted(w) for v, w in wanted.items() if v not in env_names(cls)}
    assert not unknown, f"not fields of {module_name}.{class_name}: {unknown}"


def test_env_names_helper_reads_prefix_and_alias() -> None:
    from streaming.settings import KafkaSettings

    names = env_names(KafkaSettings)
    assert {"DASAN_ENV", "DASAN_KAFKA_BOOTSTRAP", "DASAN_KAFKA_SASL_PASSWORD"} <= names
    assert "DASAN_KAFKA_ENV" not in names
