"""Argv-safe value checks (kiln.core.argv), the command lines built from them, the kustomize
buildOptions allowlist and the tool environment: unit and property tests.

The oracle for the property tests is the definition of "flag-shaped" itself: a value that is
accepted never starts with '-' and holds no control character, whatever the input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.core import argv
from kiln.core.errors import ConfigError
from kiln.core.toolenv import tool_environment
from kiln.plugins.helm.command import TemplateArgs, template_argv
from kiln.plugins.helm.remote import Credentials
from kiln.plugins.kustomize.helmcharts import check_chart
from kiln.plugins.kustomize.options import parse_build_options

PAYLOADS = ["--post-renderer=/bin/sh", "-f/etc/passwd", "$(touch MARKER)", ";touch MARKER",
            "`touch MARKER`", "ok\n--post-renderer=/bin/sh", "a\x00b", "-", "--"]
"""Flag-shaped and shell-metacharacter values every checker must refuse."""

Check = Callable[..., str]
CHECKERS: dict[str, Check] = {
    "plain": argv.plain, "dns_label": argv.dns_label, "dns_subdomain": argv.dns_subdomain,
    "release_name": argv.release_name, "kube_version": argv.kube_version,
    "api_version": argv.api_version, "chart_version": argv.chart_version,
    "chart_name": argv.chart_name, "repo_url": argv.repo_url, "image": argv.image,
    "qualified_name": argv.qualified_name, "set_key": argv.set_key,
    "jsonnet_tla": argv.jsonnet_tla, "jsonnet_ext_var": argv.jsonnet_ext_var,
    "path_value": argv.path_value,
}
"""Every checker whose accepted values must never be flag-shaped."""
SHELL_SAFE = {name for name in CHECKERS if name not in ("plain", "path_value")}
"""Checkers that also refuse shell metacharacters ($, `, ;)."""

GOOD: list[tuple[str, str]] = [
    ("dns_label", "shop"), ("dns_label", "a-1"), ("dns_subdomain", "web.shop-1"),
    ("release_name", "my-release"), ("release_name", "a" * 53),
    ("kube_version", "1.31.0"), ("kube_version", "v1.29.4+k3s1"), ("kube_version", "1.29+"),
    ("kube_version", "1.31"),
    ("api_version", "v1"), ("api_version", "apps/v1"), ("api_version", "v1/ConfigMap"),
    ("api_version", "monitoring.coreos.com/v1/ServiceMonitor"),
    ("api_version", "autoscaling/v2beta2"),
    ("chart_version", "1.2.3"), ("chart_version", "^1.2"), ("chart_version", ">=1.0.0 <2.0.0"),
    ("chart_version", "1.x"), ("chart_version", "*"), ("chart_version", "v2.0.0-rc.1+b5"),
    ("chart_name", "nginx"), ("chart_name", "my_chart.v2"),
    ("repo_url", "https://charts.example.com/stable"), ("repo_url", "http://127.0.0.1:8080"),
    ("repo_url", "oci://registry.example.com/charts"), ("repo_url", "ghcr.io/org/charts"),
    ("repo_url", "localhost:5000/charts"),
    ("image", "nginx=nginx:1.27"), ("image", "reg.io:5000/a/b@sha256:" + "0" * 64),
    ("image", "web=*:v2"),
    ("qualified_name", "app.kubernetes.io/name"), ("qualified_name", "tier"),
    ("set_key", "image.tag"), ("set_key", "hosts[0].name"),
    ("set_key", "ingress.annotations.kubernetes\\.io/ingress\\.class"),
    ("set_key", "a\\,b"), ("jsonnet_tla", "env"), ("jsonnet_ext_var", "app.name-1"),
    ("path_value", "/abs/values.yaml"), ("plain", "anything $(goes) here"),
]
BAD: list[tuple[str, str]] = [
    ("dns_label", "Shop"), ("dns_label", "a" * 64), ("dns_label", "a.b"), ("dns_label", ""),
    ("release_name", "a" * 54), ("release_name", "Under_score"),
    ("kube_version", "latest"), ("api_version", "apps/v1/"), ("api_version", "Apps/v1"),
    ("chart_version", " 1.0"), ("chart_name", "../etc"), ("chart_name", "a b"),
    ("repo_url", "file:///etc"), ("repo_url", "ftp://x.example.com/"), ("repo_url", "https://"),
    ("repo_url", "https://x.example.com:99999/"), ("repo_url", "https://a b.example.com"),
    ("repo_url", "s3://bucket/charts"), ("image", "a b"),
    ("qualified_name", "a/b/c"), ("qualified_name", "-a"), ("qualified_name", "Bad_/x"),
    ("set_key", "a,b"), ("set_key", "a=b"), ("set_key", "a b"), ("jsonnet_tla", "a-b"),
    ("jsonnet_ext_var", "1x"), ("path_value", "relative/values.yaml"),
]


@pytest.mark.parametrize(("name", "value"), GOOD, ids=[f"{n}:{v[:30]}" for n, v in GOOD])
def test_accepts_valid_values(name: str, value: str) -> None:
    assert CHECKERS[name](value, "opt") == value


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}:{v[:30]}" for n, v in BAD])
def test_refuses_invalid_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=r"^opt: "):
        CHECKERS[name](value, "opt")


def _refusals() -> list[tuple[str, str]]:
    """(checker, payload) pairs that must be refused: flag-shaped or control-character payloads
    by every checker, shell metacharacters by those whose shape excludes them."""
    return [(name, payload) for name in sorted(CHECKERS) for payload in PAYLOADS
            if name in SHELL_SAFE or payload.startswith("-") or argv.CONTROL.search(payload)]


@pytest.mark.parametrize(("name", "payload"), _refusals())
def test_payloads_are_refused_with_one_line_naming_the_option(name: str, payload: str) -> None:
    with pytest.raises(ConfigError) as info:
        CHECKERS[name](payload, "helm.releaseName", source="/app")
    line = info.value.one_line()
    assert line.startswith("/app: helm.releaseName: ")
    assert "\n" not in info.value.message and "\x00" not in info.value.message


def test_label_values_and_affixes() -> None:
    assert argv.label_value("", "l") == "" and argv.label_value("v1.2_x-y", "l") == "v1.2_x-y"
    assert argv.name_affix("-v2", "suffix") == "-v2"  # written into YAML, never onto argv
    for bad in ("-bad-", "a" * 64, "a b", "$(x)"):
        with pytest.raises(ConfigError):
            argv.label_value(bad, "l")
    for bad in ("--post-renderer=/bin/sh", "UPPER", "a;b", "a\nb"):
        with pytest.raises(ConfigError):
            argv.name_affix(bad, "kustomize.nameSuffix")


def test_set_value_allows_anything_but_nul() -> None:
    for value in ("--post-renderer=/bin/sh", "$(touch x)", "multi\nline"):
        assert argv.set_value(value, "v") == value
    with pytest.raises(ConfigError):
        argv.set_value("a\x00b", "v")


def test_no_control_keeps_secret_out_of_the_message() -> None:
    with pytest.raises(ConfigError) as info:
        argv.no_control("s3cret\nvalue", "helm.password")
    assert "s3cret" not in info.value.one_line()


def test_long_values_are_cut_in_messages() -> None:
    with pytest.raises(ConfigError) as info:
        argv.dns_label("-" + "a" * 500, "namespace")
    assert len(info.value.one_line()) < 250


# -- properties ------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
FLAGGY = st.one_of(TEXT, st.sampled_from(PAYLOADS), TEXT.map(lambda s: "-" + s),
                   TEXT.map(lambda s: "--" + s))


def _not_flag_shaped(value: str) -> bool:
    return bool(value) and not value.startswith("-") and not argv.CONTROL.search(value)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(CHECKERS)), value=FLAGGY)
def test_checkers_accept_only_values_that_are_not_flag_shaped(name: str, value: str) -> None:
    try:
        result = CHECKERS[name](value, "opt")
    except ConfigError as exc:
        assert exc.message.startswith("opt: ") and "\n" not in exc.message
        return
    assert result == value and _not_flag_shaped(value)
    if name in SHELL_SAFE:
        assert not set(value) & set("$`;&|\\\"'()<> ") or name in ("chart_version", "set_key")


SET_FLAGS = ("--set", "--set-string", "--set-file")
JOINED = re.compile(r"--(repo|version|namespace|values|set|set-string|set-file|kube-version|"
                    r"api-versions)=.*", re.S)
BOOLS = {"--include-crds", "--skip-tests", "--skip-schema-validation", "--pass-credentials"}


@settings(max_examples=200, deadline=None)
@given(release=FLAGGY, chart=FLAGGY, namespace=FLAGGY, files=st.lists(FLAGGY, max_size=3),
       sets=st.lists(st.tuples(st.sampled_from(SET_FLAGS), FLAGGY), max_size=3),
       kube=FLAGGY, apis=st.lists(FLAGGY, max_size=3), repo=FLAGGY, version=FLAGGY)
def test_template_argv_never_puts_a_value_in_flag_position(
        release: str, chart: str, namespace: str, files: list[str],
        sets: list[tuple[str, str]], kube: str, apis: list[str], repo: str,
        version: str) -> None:
    cmd = template_argv("helm", TemplateArgs(
        release=release, chart=chart, namespace=namespace, value_files=files, sets=sets,
        kube_version=kube, api_versions=apis, repo=repo, version=version))
    assert cmd[:2] == ["helm", "template"]
    cut = len(cmd) - 3
    assert cmd[cut:] == ["--", release, chart]
    for word in cmd[2:cut]:
        assert JOINED.fullmatch(word) or word in BOOLS, word


def test_credentials_are_joined_to_their_flags() -> None:
    flags = Credentials(username="--user", password="-p --x").flags()
    assert flags == ["--username=--user", "--password=-p --x"]


# -- kustomize buildOptions -------------------------------------------------------------------

ALLOW = "KILN_KUSTOMIZE_ALLOW_BUILD_OPTIONS"


@pytest.mark.parametrize("text", [
    "--enable-alpha-plugins", "--enable-exec", "--mount=type=bind,src=/,dst=/h", "--network",
    "--env=A=B", "-e A", "--as-current-user", "--load-restrictor=LoadRestrictionsNone",
    "--load-restrictor LoadRestrictionsNone", "--output=/tmp/x", "-o /tmp/x",
    "--helm-command=/bin/sh", "--helm-kube-version=--post-renderer=/bin/sh",
    "--helm-api-versions=$(touch x)", "--reorder=--x", "--post-renderer=/bin/sh", "build",
    "--enable-helm=yes",
])
def test_build_options_refused_by_default(text: str) -> None:
    with pytest.raises(ConfigError, match=r"kustomize\.buildOptions"):
        parse_build_options(text, {})


def test_build_options_default_allowlist() -> None:
    flags = parse_build_options("--enable-helm --helm-kube-version 1.31.0 --helm-api-versions "
                                "a/v1,b/v2 --reorder none --helm-debug "
                                "--load-restrictor LoadRestrictionsRootOnly", {})
    assert flags.enable_helm and flags.helm_kube_version == "1.31.0"
    assert flags.helm_api_versions == ("a/v1", "b/v2")
    assert flags.argv == ("--reorder=none", "--helm-debug=true")


def test_operator_widens_build_options() -> None:
    operator = {ALLOW: "--enable-alpha-plugins, --load-restrictor=LoadRestrictionsNone,--foo"}
    flags = parse_build_options("--enable-alpha-plugins --load-restrictor LoadRestrictionsNone "
                                "--foo=bar", operator)
    assert flags.argv == ("--enable-alpha-plugins", "--foo=bar")
    assert flags.load_restrictor == "LoadRestrictionsNone"
    for never in ("--output=x", "--helm-command=/bin/sh"):
        with pytest.raises(ConfigError):
            parse_build_options(never, {ALLOW: never.split("=")[0]})


KNOWN = ("--enable-helm", "--helm-debug", "--enable-managedby-label", "--load-restrictor",
         "--helm-kube-version", "--helm-api-versions", "--reorder")


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.one_of(FLAGGY, st.sampled_from(KNOWN)), max_size=5))
def test_build_options_pass_on_only_allowlisted_flags(words: list[str]) -> None:
    try:
        flags = parse_build_options(" ".join(words), {})
    except ConfigError as exc:
        assert exc.message.startswith("kustomize.buildOptions") and "\n" not in exc.message
        return
    for word in flags.argv:
        assert word.split("=")[0] in KNOWN and not argv.CONTROL.search(word)
    assert flags.load_restrictor == "LoadRestrictionsRootOnly"
    for value in (flags.helm_kube_version or "1", *flags.helm_api_versions):
        assert _not_flag_shaped(value)


def test_helm_charts_fields_are_checked(tmp_path: Path) -> None:
    kfile = tmp_path / "kustomization.yaml"
    check_chart({"name": "c", "releaseName": "r", "version": "1.2.3", "namespace": "ns",
                 "repo": "https://charts.example.com", "apiVersions": ["apps/v1"]}, kfile)
    for field, value in (("releaseName", "--post-renderer=/bin/sh"), ("name", "-x"),
                         ("namespace", "$(touch x)"), ("repo", "file:///etc"),
                         ("version", "--devel"), ("kubeVersion", "x;y"),
                         ("apiVersions", ["--x"])):
        with pytest.raises(ConfigError) as info:
            check_chart({"name": "c", field: value}, kfile)
        assert info.value.source == str(kfile) and field in info.value.message


# -- tool environment -------------------------------------------------------------------------

SECRETS = {"VAULT_TOKEN": "t", "AVP_SECRET_ID": "s", "AWS_SECRET_ACCESS_KEY": "k",
           "AWS_ACCESS_KEY_ID": "i", "SOPS_AGE_KEY": "AGE-SECRET-KEY-1", "SOPS_AGE_KEY_FILE": "/k",
           "GOOGLE_APPLICATION_CREDENTIALS": "/g.json", "ARGOCD_ENV_TOKEN": "x",
           "KILN_HELM_PASSWORD": "p", "KUBECONFIG": "/kube", "ARGOCD_APP_NAME": "a"}
KEPT = {"PATH": "/bin", "HOME": "/home/k", "HELM_CACHE_HOME": "/h", "HTTPS_PROXY": "http://p",
        "no_proxy": "x", "LC_ALL": "C", "SSL_CERT_FILE": "/ca", "TMPDIR": "/t"}


def test_tool_environment_drops_credentials() -> None:
    assert tool_environment({**SECRETS, **KEPT}) == KEPT


def test_operator_widens_tool_environment() -> None:
    env = {**SECRETS, **KEPT, "KILN_TOOL_ENV_ALLOW": "VAULT_TOKEN, AWS_*"}
    got = tool_environment(env)
    assert got["VAULT_TOKEN"] == "t" and {"AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"} <= set(got)
    assert "SOPS_AGE_KEY" not in got and "KILN_TOOL_ENV_ALLOW" not in got
    # The switch is read from the operator's environment, not from the one being filtered.
    assert "VAULT_TOKEN" not in tool_environment(env, operator={})


@pytest.mark.parametrize(("target", "allowed", "ok"), [
    ("https://charts.example.com/stable", "https://charts.example.com", True),
    ("https://charts.example.com", "https://charts.example.com/", True),
    ("https://charts.example.com.evil.io", "https://charts.example.com", False),
    ("https://charts.example.com/stable-evil", "https://charts.example.com/stable", False),
    ("http://charts.example.com", "https://charts.example.com", False),
    ("oci://reg.example.com/charts/web", "reg.example.com/charts", True),
    ("reg.example.com/charts", "oci://reg.example.com", True),
    ("https://evil.io", "https://charts.example.com,https://evil.io/x", False),
])
def test_operator_credentials_scoped_to_urls(target: str, allowed: str, ok: bool) -> None:
    from kiln.plugins.helm.checks import operator_credentials_allowed

    env = {"KILN_HELM_CREDENTIALS_URLS": allowed}
    assert operator_credentials_allowed([target], env) is ok
    assert operator_credentials_allowed([target], {})  # unset: every repository (as before)
