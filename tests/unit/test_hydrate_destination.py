"""Where ``kiln hydrate`` writes an app: a Source Hydrator Application's ``syncSource.path``,
else the app's source path (or its name with ``--layout name``)."""

from __future__ import annotations

from kiln.apps import AppSpec
from kiln.hydrate.run import destination


def spec(path: str, hydrate_path: str | None = None) -> AppSpec:
    return AppSpec(name="web", path=path, app_settings={}, env={}, origin="apps/web.yaml",
                   hydrate_path=hydrate_path)


def test_a_source_hydrator_app_goes_to_its_sync_source_path() -> None:
    assert destination(spec("apps/web", "hydrated/web"), "path") == "hydrated/web"


def test_other_apps_go_to_their_source_path_or_name() -> None:
    assert destination(spec("apps/web"), "path") == "apps/web"
    assert destination(spec("apps/web", "hydrated/web"), "name") == "web"
