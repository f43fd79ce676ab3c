"""Shape checks on every Helm option value that reaches a helm command line.

Each check raises a one-line ConfigError naming the option (``helm.releaseName``,
``namespace``...) and the app; the command lines themselves also keep values out of flag
position (``--opt=VALUE``, ``--`` before positionals), see :mod:`.command`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from kiln.core import argv
from kiln.core.envsubst import envsubst
from kiln.core.errors import ConfigError

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.plugins.helm.options import HelmOptions
    from kiln.plugins.helm.remote import RemoteChart


def release(app: App, opts: HelmOptions) -> str:
    """Helm's release name: ``releaseName``, else the app name, else the directory name;
    checked against Helm's rule (a DNS-1123 subdomain of at most 53 characters)."""
    if opts.release_name:
        value, what = envsubst(opts.release_name, app.env), "helm.releaseName"
    elif app.name:
        value, what = app.name, "name (the default Helm release name)"
    else:
        value, what = app.path.name, "the app directory's name (the default Helm release name)"
    return argv.release_name(value, what, source=str(app.path))


def namespace(app: App, opts: HelmOptions) -> str:
    """The namespace ``helm template`` renders with: ``helm.namespace``, else the app's
    namespace, else ``default``; a DNS-1123 label."""
    if opts.namespace:
        return argv.dns_label(opts.namespace, "helm.namespace", source=str(app.path))
    if app.namespace:
        return argv.dns_label(app.namespace, "namespace", source=str(app.path))
    return "default"


def capabilities(app: App) -> None:
    """Check the app's ``kubeVersion`` and ``apiVersions`` (they become helm flags)."""
    where = str(app.path)
    if app.kube_version:
        argv.kube_version(app.kube_version, "kubeVersion", source=where)
    for api in app.api_versions:
        argv.api_version(api, "apiVersions", source=where)


def remote(chart: RemoteChart, where: str) -> None:
    """Check a remote chart's repository URL, chart name or ``oci://`` reference and version."""
    if chart.repo:
        argv.repo_url(chart.repo, "helm.repoURL", source=where)
    if chart.chart.startswith("oci://"):
        argv.repo_url(chart.chart, "helm.chart", source=where)
    else:
        argv.chart_name(chart.chart, "helm.chart", source=where)
    if chart.version:
        argv.chart_version(chart.version, "helm.version", source=where)


CREDENTIAL_VAR_PREFIX = "KILN_HELM_"
"""The only variables ``helm.username``/``helm.password`` may reference: an app chooses which
repository its credentials go to, so it must not be able to send kiln's other secrets
(``${VAULT_TOKEN}``, ``${AWS_SECRET_ACCESS_KEY}``) there as a password."""


def credential_references(opts: HelmOptions, where: str) -> None:
    """Refuse a ``$VAR`` in ``helm.username``/``helm.password`` not named ``KILN_HELM_*``."""
    from kiln.core.envsubst import referenced

    for key, text in (("helm.username", opts.username), ("helm.password", opts.password)):
        for name in sorted(referenced(text)):
            if not name.startswith(CREDENTIAL_VAR_PREFIX):
                raise ConfigError(f"{key}: may reference only {CREDENTIAL_VAR_PREFIX}* "
                                  f"variables, not ${{{name}}}", source=where)


def credentials(username: str, password: str, where: str) -> None:
    """Repository credentials hold no control characters (the password is never shown)."""
    argv.no_control(username, "helm.username", source=where)
    argv.no_control(password, "helm.password", source=where)


CREDENTIALS_URLS_ENV = "KILN_HELM_CREDENTIALS_URLS"
"""The operator's switch: the repository URLs kiln's own helm credentials may be sent to."""


def from_environment(raw: str, value: str) -> bool:
    """True when a credential ``value`` came from kiln's environment: the option was empty
    (the ``KILN_HELM_*`` default applied) or it references a variable."""
    from kiln.core.envsubst import referenced

    return bool(value) and (not raw or bool(referenced(raw)))


def _under(target: str, prefix: str) -> bool:
    target, prefix = target.rstrip("/"), prefix.rstrip("/")
    if "://" not in target:
        target = "oci://" + target
    if "://" not in prefix:
        prefix = "oci://" + prefix
    t_scheme, _, t_rest = target.partition("://")
    p_scheme, _, p_rest = prefix.partition("://")
    if t_scheme.lower() != p_scheme.lower():
        return False
    t_host, _, t_path = t_rest.partition("/")
    p_host, _, p_path = p_rest.partition("/")
    if t_host.lower() != p_host.lower():
        return False
    return not p_path or t_path == p_path or t_path.startswith(p_path + "/")


def operator_credentials_allowed(targets: Sequence[str], env: Mapping[str, str]) -> bool:
    """True when kiln's own credentials may go to every URL of ``targets``: always when
    ``$KILN_HELM_CREDENTIALS_URLS`` is unset, else only when each target is one of its
    comma-separated URLs or lies under one (same scheme and host, path prefix at a '/')."""
    allowed = [u.strip() for u in env.get(CREDENTIALS_URLS_ENV, "").split(",") if u.strip()]
    if not allowed:
        return True
    return all(any(_under(t, p) for p in allowed) for t in targets)
