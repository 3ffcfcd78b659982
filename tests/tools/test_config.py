"""Settings: one class per service, every field documented, docs/configuration.md up to date."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from dasan.config import env_names, print_settings, settings_classes

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("service", "cls"), settings_classes(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_every_setting_has_a_prefix_a_default_and_a_description(service, cls) -> None:
    for env, info in env_names(cls).items():
        assert env.startswith("DASAN_"), env
        assert info.description, f"{cls.__name__}: {env} has no description"
        assert not info.is_required(), f"{cls.__name__}: {env} has no default"
    cls()  # the defaults alone make a valid configuration (development)


def test_configuration_doc_is_generated_from_the_settings() -> None:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_settings(markdown=True)
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert buf.getvalue().strip() in doc, (
        "docs/configuration.md is stale: regenerate with `dasan config --markdown`"
    )
