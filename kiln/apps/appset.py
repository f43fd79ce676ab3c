"""ApplicationSets: the Applications list and git-directory generators produce."""

from __future__ import annotations

from typing import Any

from kiln.apps.model import AppSpec
from kiln.apps.source import Checkout
from kiln.core.errors import ConfigError


def specs_of_application_set(doc: dict[str, Any], file: str, checkout: Checkout
                             ) -> list[AppSpec]:
    """The AppSpecs of every Application the ApplicationSet ``doc`` generates."""
    del doc, checkout
    raise ConfigError("ApplicationSet: not supported yet", source=file)
