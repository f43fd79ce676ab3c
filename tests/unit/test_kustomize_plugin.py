"""The kustomize plugin's pure parts: edit rules, build options, the input walk, remote pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.core.app import App
from kiln.core.context import RenderContext
from kiln.core.errors import ConfigError, InputError
from kiln.core.tools import ToolVersions
from kiln.plugins.kustomize import KustomizeRenderer
from kiln.plugins.kustomize.edit import apply_edits, merge_images, parse_image_arg, split_image
from kiln.plugins.kustomize.options import KustomizeOptions, parse_build_options
from kiln.plugins.kustomize.walk import is_remote, remote_pinned, walk
from tests.helpers import write_tree


@pytest.mark.parametrize(("image", "expected"), [
    ("nginx", ("nginx", "", "")),
    ("nginx:1.2", ("nginx", "1.2", "")),
    ("localhost:5000/nginx", ("localhost:5000/nginx", "", "")),
    ("localhost:5000/nginx:1.2", ("localhost:5000/nginx", "1.2", "")),
    ("nginx@sha256:abc", ("nginx", "", "sha256:abc")),
    ("nginx:1.2@sha256:abc", ("nginx", "1.2", "sha256:abc")),
])
def test_split_image_like_kustomize(image: str, expected: tuple[str, str, str]) -> None:
    assert split_image(image) == expected


def test_parse_image_args() -> None:
    assert parse_image_arg("nginx:2") == {"name": "nginx", "newTag": "2"}
    assert parse_image_arg("web=reg/web:3") == {"name": "web", "newName": "reg/web", "newTag": "3"}
    assert parse_image_arg("web=reg/web") == {"name": "web", "newName": "reg/web"}
    with pytest.raises(ConfigError):
        parse_image_arg("nginx")


def test_merge_images_keeps_fields_marked_star_and_sorts() -> None:
    existing = [{"name": "b", "newName": "reg/b", "newTag": "1"}, {"name": "a", "newTag": "0"}]
    merged = merge_images(existing, ["b=*:2", "c:9"])
    assert merged == [{"name": "a", "newTag": "0"},
                      {"name": "b", "newName": "reg/b", "newTag": "2"},
                      {"name": "c", "newTag": "9"}]


def test_edits_replace_prefix_and_namespace() -> None:
    opts = KustomizeOptions(name_prefix="new-", namespace="ns")
    out = apply_edits({"namePrefix": "old-", "namespace": "x"}, opts, {}, Path("."), "k")
    assert out == {"namePrefix": "new-", "namespace": "ns"}


def test_labels_refuse_existing_key_without_force() -> None:
    opts = KustomizeOptions(common_labels={"team": "b"})
    with pytest.raises(ConfigError, match="forceCommonLabels"):
        apply_edits({"commonLabels": {"team": "a"}}, opts, {}, Path("."), "k")
    forced = KustomizeOptions(common_labels={"team": "b"}, force_common_labels=True)
    assert apply_edits({"commonLabels": {"team": "a"}}, forced, {}, Path("."), "k")[
        "commonLabels"] == {"team": "b"}


def test_labels_without_selector_join_a_matching_group() -> None:
    opts = KustomizeOptions(common_labels={"b": "2"}, label_without_selector=True)
    out = apply_edits({"labels": [{"pairs": {"a": "1"}}]}, opts, {}, Path("."), "k")
    assert out["labels"] == [{"pairs": {"a": "1", "b": "2"}}]


def test_include_templates_needs_without_selector() -> None:
    opts = KustomizeOptions(common_labels={"b": "2"}, label_include_templates=True)
    with pytest.raises(ConfigError):
        apply_edits({}, opts, {}, Path("."), "k")


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ConfigError):
        apply_edits({}, KustomizeOptions(namespace="Not_Valid"), {}, Path("."), "k")
    with pytest.raises(ConfigError):
        apply_edits({}, KustomizeOptions(common_labels={"k": "bad value"}), {}, Path("."), "k")


def test_env_substitution_for_images_and_labels_only() -> None:
    opts = KustomizeOptions(images=["web:$REV"], common_labels={"rev": "$REV"},
                            common_annotations={"rev": "$REV"})
    out = apply_edits({}, opts, {"REV": "abc"}, Path("."), "k")
    assert out["images"] == [{"name": "web", "newTag": "abc"}]
    assert out["commonLabels"] == {"rev": "abc"}
    assert out["commonAnnotations"] == {"rev": "$REV"}


def test_build_options() -> None:
    operator = {"KILN_KUSTOMIZE_ALLOW_BUILD_OPTIONS": "--load-restrictor=LoadRestrictionsNone"}
    flags = parse_build_options("--enable-helm --load-restrictor=LoadRestrictionsNone "
                                "--helm-api-versions a/v1,b/v2 --enable-managedby-label",
                                operator)
    assert flags.enable_helm and flags.load_restrictor == "LoadRestrictionsNone"
    assert flags.helm_api_versions == ("a/v1", "b/v2")
    assert flags.argv == ("--enable-managedby-label=true",)
    for bad in ("--enable-exec", "--mount x", "build", "--load-restrictor Foo",
                "--load-restrictor", "--load-restrictor LoadRestrictionsNone"):
        with pytest.raises(ConfigError):
            parse_build_options(bad, {})


@pytest.mark.parametrize(("ref", "pinned"), [
    ("https://github.com/org/repo//deploy?ref=v1.2.3", True),
    ("github.com/org/repo/deploy?ref=0123456789abcdef0123456789abcdef01234567", True),
    ("git@github.com:org/repo.git/deploy?ref=main", False),
    ("https://github.com/org/repo//deploy", False),
    ("https://example.com/manifests/app.yaml", False),
])
def test_remote_pins(ref: str, pinned: bool) -> None:
    assert is_remote(ref)
    assert remote_pinned(ref) is pinned


def test_walk_follows_every_reference_kind(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "base/kustomization.yaml": "resources: [d.yaml]\n",
        "base/d.yaml": "x",
        "comp/kustomization.yaml": "kind: Component\n",
        "app/kustomization.yml": """
            resources: [../base, r.yaml]
            components: [../comp]
            crds: [crd.yaml]
            configurations: [conf.yaml]
            patches: [{path: p.yaml}]
            patchesStrategicMerge: [psm.yaml]
            patchesJson6902: [{path: pj.yaml, target: {kind: X}}]
            replacements: [{path: rep.yaml}]
            openapi: {path: schema.json}
            configMapGenerator:
            - {name: c, files: [f.txt, key=g.txt], envs: [e.env]}
            secretGenerator:
            - {name: s, env: s.env}
            transformers: [t.yaml]
        """,
        "app/t.yaml": "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: t}\n"
                      "path: tp.yaml\n",
        **{f"app/{n}": "x" for n in ("r.yaml", "crd.yaml", "conf.yaml", "p.yaml", "psm.yaml",
                                     "pj.yaml", "rep.yaml", "schema.json", "f.txt", "g.txt",
                                     "e.env", "s.env", "tp.yaml")},
    })
    closure = walk(root / "app", root)
    rels = sorted(str(p.relative_to(root.resolve())) for p in closure.files)
    assert rels == sorted([
        "base/kustomization.yaml", "base/d.yaml", "comp/kustomization.yaml",
        "app/kustomization.yml", "app/t.yaml",
        *(f"app/{n}" for n in ("r.yaml", "crd.yaml", "conf.yaml", "p.yaml", "psm.yaml",
                               "pj.yaml", "rep.yaml", "schema.json", "f.txt", "g.txt", "e.env",
                               "s.env", "tp.yaml")),
    ])
    assert not closure.unpinned


def test_walk_refuses_two_kustomization_files(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"app/kustomization.yaml": "{}\n", "app/Kustomization": "{}\n"})
    with pytest.raises(InputError, match="more than one"):
        walk(root / "app", root)


def _inputs(app_dir: Path, cache: Path) -> tuple[bool, str]:
    ctx = RenderContext(state_dir=cache, env={}, tool_versions=ToolVersions(cache))
    inputs = KustomizeRenderer().inputs(App(path=app_dir, source_root=app_dir), ctx)
    return inputs.cacheable, inputs.reason


def test_unpinned_remote_makes_the_app_uncacheable(tmp_path: Path) -> None:
    app = write_tree(tmp_path / "a", {"kustomization.yaml":
                                 "resources: ['https://github.com/org/repo//x?ref=main']\n"})
    cacheable, reason = _inputs(app, tmp_path / "c")
    assert not cacheable and "not pinned" in reason
    pinned = write_tree(tmp_path / "b", {"kustomization.yaml":
                                    "resources: ['https://github.com/org/repo//x?ref=v2.0.1']\n"})
    assert _inputs(pinned, tmp_path / "c") == (True, "")


def test_remote_chart_needs_an_exact_version(tmp_path: Path) -> None:
    app = write_tree(tmp_path / "a", {"kustomization.yaml": """
        helmCharts:
        - {name: redis, repo: 'https://charts.example.com', version: '>=1.0'}
    """})
    opts = {"kustomize": KustomizeOptions(build_options="--enable-helm")}
    ctx = RenderContext(state_dir=tmp_path / "c", env={}, tool_versions=ToolVersions(None))
    renderer = KustomizeRenderer()
    inputs = renderer.inputs(App(path=app, source_root=app, options=opts), ctx)
    assert not inputs.cacheable and "exact version" in inputs.reason


def test_detect(tmp_path: Path) -> None:
    renderer = KustomizeRenderer()
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        app = write_tree(tmp_path / name.replace(".", "_"), {name: "{}\n"})
        assert renderer.detect(App(path=app))
    assert not renderer.detect(App(path=write_tree(tmp_path / "none", {"x.yaml": ""})))


def test_walk_refuses_absolute_paths(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"app/x.yaml": "x"})
    write_tree(root, {"app/kustomization.yaml": f"resources: [{root / 'app' / 'x.yaml'}]\n"})
    with pytest.raises(InputError, match="absolute paths"):
        walk(root / "app", root)


def test_walk_follows_symlinks_inside_the_root(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"shared/kustomization.yaml": "resources: [cm.yaml]\n",
                            "shared/cm.yaml": "x", "app/kustomization.yaml": "resources: [s]\n"})
    (root / "app" / "s").symlink_to("../shared")
    closure = walk(root / "app", root)
    real = root.resolve()
    assert closure.links == {real / "app" / "s": "../shared"}
    assert real / "shared" / "cm.yaml" in closure.files
