"""The CMP server's key memo (kiln.cmp.keymemo): a request's cache key from its tree alone.

Every test renders with the real engine (real helm for the chart) in one copy of a repository
(A, the directory the server extracted a request into) and looks up against another copy (B,
at another path) through the disk view and through an in-memory view of the same files. The
oracle is the engine itself: ``key_recipe(app in B).key``. A hit must equal it; after each
change that may matter, the lookup must miss and the engine's key must differ, or a fresh
record must give the engine's (unchanged) key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from kiln.cmp import generate
from kiln.cmp.keymemo import KeyMemo
from kiln.core.app import App
from kiln.core.disktree import DiskTree
from kiln.core.engine import Engine, RenderResult
from tests.helpers import tool
from tests.integration.test_cmp_e2e import (
    CHART_FILES,
    CONFIGMAP,
    DIRECTORY_APP,
    DIRECTORY_PARAMS,
    argocd_env,
)
from tests.unit.test_disktree import MemTree

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\ndata: {{v: '{}'}}\n"
HELM_PARAMS = (
    {"name": "helm-values-files", "array": ["values-prod.yaml"]},
    {"name": "helm-parameters", "map": {"image.tag": "1.0"}},
)
APPS: dict[str, tuple[str, str, Sequence[Mapping[str, Any]]]] = {
    "directory": ("apps/web", "web", DIRECTORY_PARAMS),
    "helm": ("apps/chart", "chart", HELM_PARAMS),
}
NEW_REVISION = {"ARGOCD_APP_REVISION": "f" * 40, "ARGOCD_APP_REVISION_SHORT": "f" * 7,
                "ARGOCD_APP_REVISION_SHORT_8": "f" * 8}


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def relink(link: Path, target: str) -> None:
    link.unlink()
    link.symlink_to(target)


def make_repo(repo: Path) -> Path:
    """A git checkout with a directory app and a chart, each reading a file through a symlink
    into a shared directory."""
    (repo / ".git").mkdir(parents=True)
    write(repo, {"README.md": "gitops\n", "apps/other/cm.yaml": CONFIGMAP,
                 "shared/one.yaml": CM.format("linked", "one"),
                 "shared/two.yaml": CM.format("linked", "two"),
                 "shared/prod-a.yaml": "replicas: 3\n", "shared/prod-b.yaml": "replicas: 5\n"})
    write(repo / "apps" / "web", DIRECTORY_APP)
    (repo / "apps" / "web" / "link.yaml").symlink_to("../../shared/one.yaml")
    write(repo / "apps" / "chart", {k: v for k, v in CHART_FILES.items()
                                    if k != "values-prod.yaml"})
    (repo / "apps" / "chart" / "values-prod.yaml").symlink_to("../../shared/prod-a.yaml")
    return repo


def copy(repo: Path, dest: Path) -> Path:
    shutil.copytree(repo, dest, symlinks=True)
    return dest


class Server:
    """What the server does around the memo, with the real engine: load the app under the
    request's environment, render it (a miss), record; and the engine's own key (the oracle)."""

    def __init__(self, tmp: Path, operator: dict[str, str]) -> None:
        self.operator = operator
        self.engine = Engine(cache_dir=tmp / "cache", entry_points=False, env=operator)

    def env(self, argo: dict[str, str]) -> dict[str, str]:
        return {**self.operator, **argo}

    def render(self, root: Path, app_rel: str, argo: dict[str, str]
               ) -> tuple[Engine, App, RenderResult]:
        env = self.env(argo)
        view = self.engine.for_request(env)
        app = generate.load(view, root / app_rel, env)
        return view, app, view.render(app)

    def record(self, memo: KeyMemo, root: Path, app_rel: str, argo: dict[str, str]) -> str:
        view, app, result = self.render(root, app_rel, argo)
        assert result.key is not None
        assert memo.record(view, app, result, tree_root=root, request=self.env(argo))
        return result.key

    def oracle(self, root: Path, app_rel: str, argo: dict[str, str]) -> str | None:
        env = self.env(argo)
        view = self.engine.for_request(env)
        return view.key_recipe(generate.load(view, root / app_rel, env)).key


def lookups(memo: KeyMemo, root: Path, app_rel: str, request: dict[str, str]
            ) -> list[str | None]:
    """The lookup through the disk view and through the in-memory view of ``root``."""
    return [memo.lookup(DiskTree(root), app_rel, request),
            memo.lookup(MemTree(root), app_rel, request)]


@pytest.fixture
def operator(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "home").mkdir()
    helm_dir = os.path.dirname(tool("helm"))
    return {"PATH": os.pathsep.join([helm_dir, os.environ["PATH"]]),
            "HOME": str(tmp_path / "home")}


@pytest.fixture
def server(tmp_path: Path, operator: dict[str, str]) -> Server:
    return Server(tmp_path, operator)


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path]:
    a = make_repo(tmp_path / "extract-a" / "repo")
    return a, copy(a, tmp_path / "elsewhere" / "b")


def argo_for(kind: str, **changes: str) -> dict[str, str]:
    app_rel, name, params = APPS[kind]
    return {**argocd_env(app_name=name, namespace="prod", source_path=app_rel, params=params),
            **changes}


@pytest.mark.parametrize("kind", list(APPS))
def test_a_copy_elsewhere_hits_with_the_engines_key(kind: str, server: Server,
                                                    repos: tuple[Path, Path]) -> None:
    a, b = repos
    app_rel = APPS[kind][0]
    argo = argo_for(kind)
    memo = KeyMemo()
    assert lookups(memo, b, app_rel, server.env(argo)) == [None, None]  # nothing recorded
    key = server.record(memo, a, app_rel, argo)
    assert server.oracle(b, app_rel, argo) == key
    assert lookups(memo, b, app_rel, server.env(argo)) == [key, key]
    # A new commit of the same files (nothing references the revision): still a hit.
    newer = {**argo, **NEW_REVISION}
    assert server.oracle(b, app_rel, newer) == key
    assert lookups(memo, b, app_rel, server.env(newer)) == [key, key]
    # The hit carries what Engine.render_cached needs, and it serves the same objects.
    hit = memo.find(MemTree(b), app_rel, server.env(argo))
    assert hit is not None and hit.key == key
    view, app_b, fresh = server.render(b, app_rel, argo)
    cached = view.render_cached(app_b, hit.key, renderer=hit.renderer, inputs=hit.inputs,
                                verified=hit.verified)
    assert cached is not None and cached.objects == fresh.objects
    assert hit.inputs == fresh.inputs and hit.renderer == fresh.renderer


Change = Callable[[Path, dict[str, str]], dict[str, str]]


def _content(kind: str) -> Change:
    def change(b: Path, argo: dict[str, str]) -> dict[str, str]:
        if kind == "directory":
            path = b / "apps/web/deploy.yaml"
            path.write_text(path.read_text().replace("replicas: 2", "replicas: 3"))
        else:
            (b / "shared/prod-a.yaml").write_text("replicas: 4\n")
        return argo
    return change


def _new_file_in_app(kind: str) -> Change:
    def change(b: Path, argo: dict[str, str]) -> dict[str, str]:
        where = "apps/web/extra/new.yaml" if kind == "directory" else \
            "apps/chart/templates/new.yaml"
        write(b, {where: CM.format("new", "1")})
        return argo
    return change


def _new_file_elsewhere(kind: str) -> Change:
    def change(b: Path, argo: dict[str, str]) -> dict[str, str]:
        write(b, {"apps/other/new.yaml": CM.format("new", "1")})
        return argo
    return change


def _retarget(kind: str) -> Change:
    def change(b: Path, argo: dict[str, str]) -> dict[str, str]:
        if kind == "directory":
            relink(b / "apps/web/link.yaml", "../../shared/two.yaml")
        else:
            relink(b / "apps/chart/values-prod.yaml", "../../shared/prod-b.yaml")
        return argo
    return change


def _app_file_comment(kind: str) -> Change:
    def change(b: Path, argo: dict[str, str]) -> dict[str, str]:
        write(b, {f"{APPS[kind][0]}/kiln.yaml": "# only a comment\n"})
        return argo
    return change


def _app_file_setting(kind: str) -> Change:
    def change(b: Path, argo: dict[str, str]) -> dict[str, str]:
        text = "directory:\n  include: '*.yaml'\n" if kind == "directory" else \
            "helm:\n  releaseName: other\n"
        write(b, {f"{APPS[kind][0]}/kiln.yaml": text})
        return argo
    return change


def _parameter(kind: str) -> Change:
    def change(b: Path, argo: dict[str, str]) -> dict[str, str]:
        app_rel, name, params = APPS[kind]
        if kind == "directory":
            params = [{"name": "directory-recurse", "string": "true"},
                      {"name": "directory-exclude", "string": "*cm*"}]
        else:
            params = [params[0], {"name": "helm-parameters", "map": {"image.tag": "2.0"}}]
        return argocd_env(app_name=name, namespace="prod", source_path=app_rel, params=params)
    return change


def _variable(name: str, value: str) -> Callable[[str], Change]:
    def make(kind: str) -> Change:
        return lambda b, argo: {**argo, name: value}
    return make


CHANGES: dict[str, tuple[Callable[[str], Change], bool | None]] = {
    # name: (change, whether the engine's key stays the same; None: the renderer decides,
    # e.g. helm reads every file of the chart directory, kiln.yaml included)
    "input content": (_content, False),
    "new file in the app": (_new_file_in_app, False),
    "new file elsewhere in the tree": (_new_file_elsewhere, True),
    "symlink retargeted": (_retarget, False),
    "kiln.yaml comment": (_app_file_comment, None),
    "kiln.yaml setting": (_app_file_setting, False),
    "parameter value": (_parameter, False),
    "KUBE_VERSION": (_variable("KUBE_VERSION", "1.30.0"), False),
    "namespace": (_variable("ARGOCD_APP_NAMESPACE", "staging"), False),
    "KILN_ setting": (_variable("KILN_TIMEOUT", "77"), True),
}


@pytest.mark.parametrize("kind", list(APPS))
@pytest.mark.parametrize("what", list(CHANGES))
def test_each_change_misses(kind: str, what: str, server: Server,
                            repos: tuple[Path, Path]) -> None:
    a, b = repos
    app_rel = APPS[kind][0]
    argo = argo_for(kind)
    memo = KeyMemo()
    key = server.record(memo, a, app_rel, argo)
    assert lookups(memo, b, app_rel, server.env(argo)) == [key, key]  # positive control
    make, same_key = CHANGES[what]
    changed = make(kind)(b, dict(argo))
    assert lookups(memo, b, app_rel, server.env(changed)) == [None, None]
    new_key = server.oracle(b, app_rel, changed)
    assert new_key is not None
    if same_key is not None:
        assert (new_key == key) is same_key
    # Recorded afresh, the changed request hits with the engine's key; the old one still
    # answers copy A.
    assert server.record(memo, b, app_rel, changed) == new_key
    assert lookups(memo, b, app_rel, server.env(changed)) == [new_key, new_key]
    assert lookups(memo, a, app_rel, server.env(argo)) == [key, key]


def test_param_variables_alone(server: Server, repos: tuple[Path, Path]) -> None:
    """Outside the JSON form (hand runs), the PARAM_* variables are the request."""
    a, b = repos
    argo = argocd_env(app_name="web", namespace="prod", source_path="apps/web",
                      params=DIRECTORY_PARAMS, param_json=False)
    assert "ARGOCD_APP_PARAMETERS" not in argo
    memo = KeyMemo()
    key = server.record(memo, a, "apps/web", argo)
    assert lookups(memo, b, "apps/web", server.env(argo)) == [key, key]
    changed = {**argo, "PARAM_DIRECTORY_EXCLUDE": "*cm*"}
    assert lookups(memo, b, "apps/web", server.env(changed)) == [None, None]
    assert server.oracle(b, "apps/web", changed) not in (None, key)


def test_a_referenced_revision_is_part_of_the_key(server: Server,
                                                  repos: tuple[Path, Path]) -> None:
    a, b = repos
    options = "helm:\n  values: 'revision: $ARGOCD_APP_REVISION'\n"
    for root in (a, b):
        write(root, {"apps/chart/kiln.yaml": options})
    argo = argo_for("helm")
    memo = KeyMemo()
    key = server.record(memo, a, "apps/chart", argo)
    assert lookups(memo, b, "apps/chart", server.env(argo)) == [key, key]
    newer = {**argo, **NEW_REVISION}
    assert lookups(memo, b, "apps/chart", server.env(newer)) == [None, None]
    assert server.oracle(b, "apps/chart", newer) not in (None, key)
    # Only the referenced variable counts: the short forms nothing references do not.
    shorter = {**argo, "ARGOCD_APP_REVISION_SHORT": "0" * 7}
    assert lookups(memo, b, "apps/chart", server.env(shorter)) == [key, key]


def test_a_tool_replaced_in_place_misses(tmp_path: Path, operator: dict[str, str],
                                         repos: tuple[Path, Path]) -> None:
    """The helm binary (named by KILN_HELM, a copy of the real one) is stamped: touching it
    is a miss and changes the engine's key."""
    a, b = repos
    helm = tmp_path / "bin" / "helm"
    helm.parent.mkdir()
    shutil.copy2(tool("helm"), helm)
    server = Server(tmp_path, {**operator, "KILN_HELM": str(helm)})
    argo = argo_for("helm")
    memo = KeyMemo()
    key = server.record(memo, a, "apps/chart", argo)
    assert lookups(memo, b, "apps/chart", server.env(argo)) == [key, key]
    st = helm.stat()
    os.utime(helm, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert lookups(memo, b, "apps/chart", server.env(argo)) == [None, None]
    new_key = server.oracle(b, "apps/chart", argo)
    assert new_key not in (None, key)
    assert server.record(memo, b, "apps/chart", argo) == new_key
    assert lookups(memo, b, "apps/chart", server.env(argo)) == [new_key, new_key]


def test_refusals(tmp_path: Path, server: Server, repos: tuple[Path, Path]) -> None:
    """What must not be recorded: no key, a key that depends on the location or on more than
    the files, a tree too large, an app outside the tree it was extracted into."""
    a, b = repos
    argo = argo_for("directory")
    view, app, result = server.render(a, "apps/web", argo)
    env = server.env(argo)
    assert result.recipe is not None

    def with_recipe(**changes: object) -> RenderResult:
        assert result.recipe is not None
        changed = RenderResult(None, False, result.key, result.renderer, result.inputs,
                               raw=b"[]")
        changed.recipe = dataclasses.replace(result.recipe, **changes)  # type: ignore[arg-type]
        return changed

    memo = KeyMemo()
    refused = [
        with_recipe(location=str(app.path)),
        with_recipe(portable=False),
        with_recipe(key=None, cacheable=False),
    ]
    for bad in refused:
        assert not memo.record(view, app, bad, tree_root=a, request=env)
    assert not KeyMemo(tree_limit=5).record(view, app, result, tree_root=a, request=env)
    assert not memo.record(view, app, result, tree_root=a / "apps" / "other", request=env)
    # The request must be the one the app was loaded from (else its slot would lie).
    other = server.env(argo_for("directory", ARGOCD_APP_NAMESPACE="staging"))
    assert not memo.record(view, app, result, tree_root=a, request=other)
    # A view that does not hold what the engine read is never recorded.
    (b / "apps/web/deploy.yaml").write_text(CM.format("other", "x"))
    assert not memo.record(view, app, result, tree_root=a, request=env, tree=MemTree(b))
    assert len(memo) == 0
    assert memo.record(view, app, result, tree_root=a, request=env)  # positive control
    assert len(memo) == 1


def test_a_render_with_secret_references_may_be_recorded(server: Server,
                                                         repos: tuple[Path, Path]) -> None:
    """The memo holds keys, not output: a stream with a Vault placeholder is recorded (the
    server resolves it per request, after the cache), and nothing of the request is kept in
    the clear."""
    a, b = repos
    secret = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n"
              "stringData:\n  password: <path:secret/data/db#password>\n")
    for root in (a, b):
        write(root, {"apps/web/secret.yaml": secret})
    argo = {**argo_for("directory"), "ARGOCD_ENV_TOKEN_LIKE": "s3cr3t-value-0123456789"}
    env = server.env(argo)
    view, app, result = server.render(a, "apps/web", argo)
    memo = KeyMemo()
    assert memo.record(view, app, result, tree_root=a, request=env)
    assert lookups(memo, b, "apps/web", env) == [result.key, result.key]
    held = repr(memo._slots)
    assert "s3cr3t-value-0123456789" not in held and "prod" not in held


def test_bounded_least_recently_used(server: Server, repos: tuple[Path, Path],
                                     tmp_path: Path) -> None:
    a, _ = repos
    memo = KeyMemo(max_entries=3)
    argos = [argo_for("directory", ARGOCD_APP_NAMESPACE=f"ns{i}") for i in range(5)]
    keys = [server.record(memo, a, "apps/web", argos[i]) for i in range(3)]
    assert len(memo) == 3
    assert memo.lookup(DiskTree(a), "apps/web", server.env(argos[0])) == keys[0]  # now newest
    keys += [server.record(memo, a, "apps/web", argos[i]) for i in (3, 4)]
    assert len(memo) == 3
    found = [memo.lookup(DiskTree(a), "apps/web", server.env(argo)) for argo in argos]
    assert found == [keys[0], None, None, keys[3], keys[4]]


def test_a_few_trees_per_request(server: Server, repos: tuple[Path, Path],
                                 tmp_path: Path) -> None:
    """Two branches of one app under the same request both hit; a slot keeps ``per_slot``."""
    a, _ = repos
    argo = argo_for("directory")
    memo = KeyMemo(per_slot=2)
    trees, keys = [], []
    for i in range(3):
        root = copy(a, tmp_path / f"branch-{i}")
        (root / "apps/web/deploy.yaml").write_text(CM.format("web", str(i)))
        trees.append(root)
        keys.append(server.record(memo, root, "apps/web", argo))
    assert len(set(keys)) == 3 and len(memo) == 2
    found = [memo.lookup(MemTree(root), "apps/web", server.env(argo)) for root in trees]
    assert found == [None, keys[1], keys[2]]
    # The same render recorded twice is held once.
    server.record(memo, trees[2], "apps/web", argo)
    assert len(memo) == 2


def test_app_paths_are_normalised_and_confined(server: Server,
                                               repos: tuple[Path, Path]) -> None:
    a, b = repos
    argo = argo_for("directory")
    memo = KeyMemo()
    key = server.record(memo, a, "apps/web", argo)
    env = server.env(argo)
    assert memo.lookup(MemTree(b), "./apps//web/", env) == key
    for bad in ("../apps/web", "/apps/web", "apps/other", ""):
        assert memo.lookup(MemTree(b), bad, env) is None


def test_threads_never_corrupt_it(server: Server, repos: tuple[Path, Path]) -> None:
    """8 threads record and look up at once into a memo smaller than what they record: every
    answer is the engine's key for that request or None, and the bound holds."""
    a, b = repos
    renders = []
    for i in range(6):
        argo = argo_for("directory", ARGOCD_APP_NAMESPACE=f"ns{i}")
        view, app, result = server.render(a, "apps/web", argo)
        renders.append((view, app, result, server.env(argo)))
    expected = {json.dumps(env, sort_keys=True): result.key
                for _, _, result, env in renders}
    memo = KeyMemo(max_entries=4)
    tree = MemTree(b)
    errors: list[BaseException] = []
    wrong: list[tuple[str | None, str | None]] = []

    def work(seed: int) -> None:
        try:
            for n in range(60):
                view, app, result, env = renders[(seed + n) % len(renders)]
                if n % 3 == 0:
                    memo.record(view, app, result, tree_root=a, request=env)
                got = memo.lookup(tree if n % 2 else DiskTree(b), "apps/web", env)
                want = expected[json.dumps(env, sort_keys=True)]
                if got not in (None, want):
                    wrong.append((got, want))
                assert len(memo) <= 4
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and not wrong
    assert 1 <= len(memo) <= 4
    # Still coherent: what it holds answers with the right keys.
    hits = [memo.lookup(tree, "apps/web", env) for _, _, _, env in renders]
    assert sum(h is not None for h in hits) == len(memo)
    assert all(h in (None, r[2].key) for h, r in zip(hits, renders, strict=True))


def test_lookup_reads_no_file(server: Server, repos: tuple[Path, Path],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Against an in-memory tree a lookup opens, lists and follows nothing on disk: only
    the recorded tools are stat-ed."""
    import builtins

    a, b = repos
    argo = argo_for("helm")
    memo = KeyMemo()
    key = server.record(memo, a, "apps/chart", argo)
    tree, env = MemTree(b), server.env(argo)
    stat_calls: list[str] = []
    real_stat = os.stat

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"disk read during lookup: {args!r}")

    def counting_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        stat_calls.append(str(path))
        return real_stat(path, *args, **kwargs)

    for name in ("open", "scandir", "lstat", "readlink", "listdir"):
        target = builtins if name == "open" else os
        monkeypatch.setattr(target, name, forbidden)
    monkeypatch.setattr(os, "stat", counting_stat)
    assert memo.lookup(tree, "apps/chart", env) == key
    monkeypatch.undo()
    ((_, (held,)),) = memo._slots.items()
    assert sorted(stat_calls) == sorted(t[0] for t in held.tools)
    assert os.path.realpath(tool("helm")) in stat_calls
