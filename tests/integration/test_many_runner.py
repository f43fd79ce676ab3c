"""render_many with one warm engine: concurrent renders give what each app's real tool gives
alone, in spec order, and a failing app never stops the others."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from kiln.apps import specs_for_paths
from kiln.apps.model import AppSpec
from kiln.core.engine import Engine
from kiln.core.errors import ConfigError, KilnError
from kiln.many.runner import AppOutcome, load_spec, render_many
from tests.helpers import write_tree
from tests.integration.many_repo import RepoApp, make_repo, oracle

pytestmark = pytest.mark.integration

COUNTS = {"directory": 3, "kustomize": 3, "helm": 3, "jsonnet": 2}


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[RepoApp]]:
    root = tmp_path / "repo"
    return root, make_repo(root, COUNTS)


def _engine(tmp_path: Path, name: str, *, use_cache: bool = False) -> Engine:
    return Engine(tmp_path / name, use_cache=use_cache, entry_points=False)


def _objects(outcomes: list[AppOutcome]) -> list[object]:
    out: list[object] = []
    for outcome in outcomes:
        assert outcome.error is None, outcome.error.one_line()
        assert outcome.result is not None
        out.append(outcome.result.objects)
    return out


def test_four_jobs_equal_one_job_equal_each_real_tool(repo: tuple[Path, list[RepoApp]],
                                                      tmp_path: Path) -> None:
    root, apps = repo
    specs = specs_for_paths([str(root / a.path) for a in apps], repo_root=root)
    expected = [oracle(root, app, tmp_path) for app in apps]

    class Seen:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.running = 0
            self.most = 0
            self.threads: set[str] = set()

        def started(self, spec: AppSpec) -> None:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.threads.add(threading.current_thread().name)
            time.sleep(0.05)  # let the others start: the overlap is what is under test

        def finished(self, outcome: AppOutcome) -> None:
            with self.lock:
                self.running -= 1

    seen = Seen()
    four = render_many(_engine(tmp_path, "c4"), root, specs, jobs=4, progress=seen)
    one = render_many(_engine(tmp_path, "c1"), root, specs, jobs=1)
    assert [o.spec for o in four] == specs == [o.spec for o in one]
    assert _objects(four) == _objects(one) == expected
    assert seen.most > 1 and len(seen.threads) > 1  # they did run at once
    assert all(not o.result.cache_hit for o in four if o.result is not None)


def test_a_warm_engine_serves_every_app_from_the_cache_the_second_time(
        repo: tuple[Path, list[RepoApp]], tmp_path: Path) -> None:
    root, apps = repo
    specs = specs_for_paths([str(root / a.path) for a in apps], repo_root=root)
    engine = _engine(tmp_path, "cache", use_cache=True)
    first = render_many(engine, root, specs, jobs=4)
    second = render_many(engine, root, specs, jobs=4)
    assert not any(o.result.cache_hit for o in first if o.result is not None)
    assert all(o.result is not None and o.result.cache_hit for o in second)
    assert _objects(first) == _objects(second)
    # the keys four threads put together are the ones one thread does (tool stamps included)
    alone = render_many(_engine(tmp_path, "alone", use_cache=True), root, specs, jobs=1)
    keys = [o.result.key for o in first if o.result is not None]
    assert len(keys) == len(specs) and all(keys)
    assert keys == [o.result.key for o in alone if o.result is not None]


def test_a_failing_app_is_kept_in_its_outcome_and_the_others_complete(
        repo: tuple[Path, list[RepoApp]], tmp_path: Path) -> None:
    root, apps = repo
    write_tree(root / "apps/broken", {"Chart.yaml": "apiVersion: v2\nname: broken\n"
                                      "version: 0.1.0\n",
                                      "templates/bad.yaml": "{{ fail \"chosen failure\" }}\n"})
    paths = [str(root / a.path) for a in apps]
    paths.insert(2, str(root / "apps/broken"))
    specs = specs_for_paths(paths, repo_root=root)
    outcomes = render_many(_engine(tmp_path, "c"), root, specs, jobs=4)
    failed = [o for o in outcomes if o.error is not None]
    assert [o.spec.path for o in failed] == ["apps/broken"]
    assert isinstance(failed[0].error, KilnError)
    line = failed[0].error.one_line()
    assert line.startswith(specs[2].name + ": ") and "chosen failure" in line
    good = [o for o in outcomes if o.error is None]
    assert _objects(good) == [oracle(root, a, tmp_path) for a in apps]


def test_a_path_leaving_the_repository_is_refused_naming_the_origin(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_tree(tmp_path / "outside", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\n"
                                      "metadata: {name: x}\n"})
    root.mkdir()
    engine = _engine(tmp_path, "c")
    for bad in ("../outside", "/etc", "apps/../../outside"):
        spec = AppSpec(name="evil", path=bad, app_settings={}, env={},
                       origin="apps/evil.yaml: Application evil")
        with pytest.raises(ConfigError) as caught:
            load_spec(engine, root, spec)
        assert caught.value.one_line().startswith("apps/evil.yaml: Application evil: ")
    (root / "link").symlink_to(tmp_path / "outside")
    spec = AppSpec(name="evil", path="link", app_settings={}, env={}, origin="o.yaml")
    with pytest.raises(ConfigError, match="symbolic link"):
        load_spec(engine, root, spec)


def test_the_plugin_environment_and_app_settings_reach_the_app(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_tree(root / "apps/web", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\n"
                                   "metadata: {name: x}\n"})
    spec = AppSpec(name="web", path="apps/web",
                   app_settings={"directory": {"recurse": True}},
                   env={"ARGOCD_APP_NAME": "argocd_web", "ARGOCD_APP_NAMESPACE": "prod",
                        "ARGOCD_ENV_COLOUR": "blue", "KUBE_VERSION": "1.30.0"},
                   origin="apps/web.yaml: Application web")
    engine = _engine(tmp_path, "c")
    app = load_spec(engine, root, spec, settings={"namespace": "operator-wins"})
    assert app.name == "web"
    assert app.namespace == "operator-wins"
    assert app.kube_version == "1.30.0"
    assert app.env["ARGOCD_ENV_COLOUR"] == "blue"
    assert app.root == root
    assert app.options["directory"].recurse is True
    assert load_spec(engine, root, spec).namespace == "prod"


def test_kiln_timeout_bounds_each_app_not_the_batch(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    apps = make_repo(root, {"directory": 3})
    specs = specs_for_paths([str(root / a.path) for a in apps], repo_root=root)
    slow: list[str] = []

    class Slow:
        def started(self, spec: AppSpec) -> None:
            time.sleep(0.4)  # counted in no app's render, but in a batch-wide limit
            slow.append(spec.path)

        def finished(self, outcome: AppOutcome) -> None:
            pass

    engine = Engine(tmp_path / "c", use_cache=False, entry_points=False,
                    env={"KILN_TIMEOUT": "1"})
    outcomes = render_many(engine, root, specs, jobs=1, progress=Slow())
    assert [o.error for o in outcomes] == [None, None, None] and len(slow) == 3


def test_an_operator_variable_in_the_env_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_tree(root / "app", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
    spec = AppSpec(name="a", path="app", app_settings={}, env={"KILN_HELM": "/tmp/evil"},
                   origin="a.yaml: Application a")
    with pytest.raises(ConfigError, match="KILN_HELM"):
        load_spec(_engine(tmp_path, "c"), root, spec)
    outcomes = render_many(_engine(tmp_path, "c"), root, [spec], jobs=2)
    assert outcomes[0].error is not None and "KILN_HELM" in outcomes[0].error.one_line()


def test_each_apps_options_see_its_own_argo_cd_variables_not_the_shells(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for name in ("a", "b"):
        write_tree(root / name, {
            "Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n",
            "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
                                 "data: {colour: {{ .Values.colour | quote }}}\n"})
    settings = {"helm": {"parameters": [{"name": "colour", "value": "$ARGOCD_ENV_COLOUR"}]}}
    specs = [AppSpec(name=n, path=n, app_settings=settings,
                     env={"ARGOCD_ENV_COLOUR": "chosen-for-a"} if n == "a" else {},
                     origin=f"{n}.yaml: Application {n}") for n in ("a", "b")]
    engine = Engine(tmp_path / "c", use_cache=True, entry_points=False,
                    env={**os.environ, "ARGOCD_ENV_COLOUR": "from-the-shell"})
    outcomes = render_many(engine, root, specs, jobs=2)
    colours = [out.result.objects[0]["data"]["colour"] for out in outcomes
               if out.result is not None]
    assert len(colours) == 2 and colours[0] == "chosen-for-a"
    assert "from-the-shell" not in colours[1]
