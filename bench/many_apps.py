"""Benchmark many apps at once (issue 16 §4): raw tools vs kiln on a git monorepo of N apps.

A monorepo of N apps (``bench/monorepo.py``: helm, kustomize, directory and jsonnet in turn,
one Argo CD Application each under ``argocd/``), then, all in the same run:

1. raw tools, one process per app, as Argo CD's repo-server would run them (``helm template``,
   ``kubectl kustomize`` on the edited overlay, go-jsonnet, ``cat`` for a directory app); their
   total wall time is the reference of every ratio;
2. ``kiln render PATH`` one process per app (the Application's options as flags), cold (empty
   cache) and warm (the same cache again);
3. ``kiln render --applications argocd/ -o json`` in one process, cold; then a commit changing
   one app (``one_app_commit``) and the same command again: targets <= 0.05x the raw total and
   max RSS <= 150 MB, with N-1 cache hits and 1 render;
4. ``kiln hydrate --applications argocd/ --output-dir OUT`` cold, and after the commit (must
   render one app and rewrite one manifest: checked by file hashes);
5. ``kiln diff --applications argocd/ --against HEAD~1 -o json`` after the commit (target
   < 10 s on 2 cores; one app changed).

Every kiln result is validated against the raw tools (objects parsed with PyYAML, compared per
app), so the benchmark cannot silently time failures: a mismatch is printed and the exit code
is 1. Max RSS is ``ru_maxrss`` of the waited child (the largest process of its tree, tools
included) and the kiln process's own ``VmHWM`` sampled from /proc. kiln runs as installed,
with bytecode written and read (no ``PYTHONDONTWRITEBYTECODE``). A step whose command this
kiln does not have yet is reported as "n/a".

Usage: python bench/many_apps.py [--apps N] [--sample N] [--jobs N] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.monorepo import (  # noqa: E402  (after the path set-up)
    BenchApp,
    Monorepo,
    RawCommand,
    canonical,
    kiln_flags,
    make_monorepo,
    one_app_commit,
    parse_output,
    raw_command,
)

TARGET_AFTER_COMMIT = 0.05
TARGET_RSS_MB = 150.0
TARGET_DIFF_S = 10.0


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Step:
    """One measured step: wall seconds and what was checked."""

    label: str
    seconds: float | None = None       # None: not run (command not available)
    cpu: float | None = None           # user + system CPU seconds of the process trees
    processes: int = 0
    rss_mb: float | None = None         # ru_maxrss of the child tree
    hwm_mb: float | None = None         # VmHWM of the kiln process itself
    ok: bool = True
    notes: list[str] = field(default_factory=list)
    target: str = ""


@dataclass
class Child:
    """A finished child process."""

    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float
    cpu: float
    rss_mb: float
    hwm_mb: float | None


def kiln_env(work: Path, cache: Path) -> dict[str, str]:
    """kiln's environment: its cache, a private HOME, bytecode on. PYTHONPATH names this
    checkout (as bench/cmp_server.py does): kiln's jsonnet worker, started with ``-I -S`` when
    threads run, cannot see an editable install's import hook without it."""
    home = work / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin",
                                 "/usr/bin", "/bin"]),
        "HOME": str(home), "KILN_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
    }


def run_child(argv: Sequence[str], *, cwd: Path, env: dict[str, str], out: Path,
              timeout: float = 3600) -> Child:
    """Run ``argv`` with stdout/stderr to files; wall time, ``ru_maxrss`` of the child (from
    wait4) and its own VmHWM (sampled from /proc until it exits)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    err = out.with_suffix(".stderr")
    hwm: list[int] = []
    with out.open("wb") as so, err.open("wb") as se:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=so, stderr=se,
                                stdin=subprocess.DEVNULL)
        done = threading.Event()

        def sample() -> None:
            status = Path(f"/proc/{proc.pid}/status")
            while not done.wait(0.02):
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            hwm.append(int(line.split()[1]))
                except (OSError, ValueError):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Child(proc.returncode, out.read_bytes(), err.read_bytes(), seconds,
                 usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                 max(hwm) / 1024 if hwm else None)


def children_cpu() -> float:
    """User + system CPU seconds of this process's waited-for children so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cache_objects(cache: Path) -> set[str]:
    """The manifest entries in a filesystem cache (``objects/xx/<key>``): a render that was not
    a hit adds one."""
    top = cache / "objects"
    return {str(p.relative_to(top)) for p in top.glob("*/*")} if top.is_dir() else set()


def slug(label: str) -> str:
    """A file-name-safe form of a step label."""
    return "".join(c if c.isalnum() else "-" for c in label)[:60]


def kiln_has(env: dict[str, str], *words: str, flag: str | None = None) -> bool:
    """Whether ``kiln WORDS --help`` works (and mentions ``flag``)."""
    proc = subprocess.run([sys.executable, "-m", "kiln", *words, "--help"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode == 0 and (flag is None or flag in proc.stdout)


# -- the steps ---------------------------------------------------------------------------------

def raw_tools(repo: Monorepo, apps: Sequence[BenchApp], scratch: Path
              ) -> tuple[Step, dict[str, list[str]], dict[str, float]]:
    """One raw tool process per app; returns the step, each app's canonical objects, and the
    total per kind."""
    commands: list[RawCommand] = [raw_command(repo, a, scratch) for a in apps]  # set-up
    expected: dict[str, list[str]] = {}
    per_kind: dict[str, float] = {}
    total = 0.0
    step = Step("raw tools, 1 process per app", processes=len(commands))
    cpu_started = children_cpu()
    for cmd in commands:
        started = time.perf_counter()
        out = cmd.run()
        elapsed = time.perf_counter() - started
        total += elapsed
        per_kind[cmd.app.kind] = per_kind.get(cmd.app.kind, 0.0) + elapsed
        objects = parse_output(out, cmd.output)
        if not objects:
            step.ok = False
            step.notes.append(f"{cmd.app.name}: no objects")
        expected[cmd.app.name] = canonical(objects)
    step.seconds, step.cpu = total, children_cpu() - cpu_started
    step.notes.append(", ".join(f"{k} {v:.1f} s" for k, v in sorted(per_kind.items())))
    return step, expected, per_kind


def check_app(step: Step, name: str, got: list[dict[str, Any]], expected: dict[str, list[str]]
              ) -> None:
    """Record a mismatch between kiln's objects and the raw tool's for app ``name``."""
    if canonical(got) != expected[name]:
        step.ok = False
        if len([n for n in step.notes if "differs" in n]) < 5:
            step.notes.append(f"{name}: objects differ from the raw tool's")


def per_app_kiln(repo: Monorepo, apps: Sequence[BenchApp], work: Path, cache: Path,
                 label: str, expected: dict[str, list[str]]) -> Step:
    """One ``kiln render PATH <flags> -o json`` process per app."""
    env = kiln_env(work, cache)
    step = Step(label, processes=len(apps))
    total, cpu, rss = 0.0, 0.0, 0.0
    for app in apps:
        argv = [sys.executable, "-m", "kiln", "render", app.path, "-o", "json", *kiln_flags(app)]
        child = run_child(argv, cwd=repo.root, env=env, out=work / "out" / "per-app.json")
        total += child.seconds
        cpu += child.cpu
        rss = max(rss, child.rss_mb)
        if child.returncode != 0:
            step.ok = False
            step.notes.append(f"{app.name}: exit {child.returncode}: "
                              f"{child.stderr.decode(errors='replace').strip()[-300:]}")
            continue
        check_app(step, app.name, parse_output(child.stdout, "json"), expected)
    step.seconds, step.cpu, step.rss_mb = total, cpu, rss
    return step


def _apps_by_path(repo: Monorepo) -> dict[str, BenchApp]:
    return {a.path: a for a in repo.apps}


def one_process(repo: Monorepo, work: Path, cache: Path, label: str,
                expected: dict[str, list[str]], jobs: int | None,
                changed: str | None = None) -> Step:
    """``kiln render --applications argocd/ -o json`` once; every app checked; with
    ``changed``: N-1 hits and 1 render expected."""
    env = kiln_env(work, cache)
    argv = [sys.executable, "-m", "kiln", "render", "--applications", "argocd", "-o", "json"]
    if jobs:
        argv += ["--jobs", str(jobs)]
    before = cache_objects(cache)
    child = run_child(argv, cwd=repo.root, env=env, out=work / "out" / f"{slug(label)}.json")
    step = Step(label, child.seconds, child.cpu, 1, child.rss_mb, child.hwm_mb)
    new = len(cache_objects(cache) - before)
    if child.returncode != 0:
        step.ok = False
        step.notes.append(f"exit {child.returncode}: "
                          f"{child.stderr.decode(errors='replace').strip()[-500:]}")
        return step
    doc = json.loads(child.stdout)
    by_path = _apps_by_path(repo)
    seen, hits, misses = set(), 0, []
    for entry in doc["apps"]:
        app = by_path.get(entry["path"])
        if app is None:
            step.ok = False
            step.notes.append(f"unexpected app path {entry['path']!r}")
            continue
        seen.add(app.name)
        if entry.get("cacheHit"):
            hits += 1
        else:
            misses.append(app.name)
        check_app(step, app.name, entry["objects"], expected)
    if len(seen) != len(repo.apps):
        step.ok = False
        step.notes.append(f"{len(seen)} of {len(repo.apps)} apps in the output")
    step.notes.append(f"{hits} hits, {len(misses)} renders; {new} new cache entries")
    if changed is not None and (misses != [changed] or new != 1):
        step.ok = False
        step.notes.append(f"expected 1 render ({changed}), got {misses[:5]}")
    return step


def tree_hashes(top: Path) -> dict[str, str]:
    """sha256 of every file under ``top``, by relative path."""
    if not top.exists():
        return {}
    return {str(p.relative_to(top)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(top.rglob("*")) if p.is_file()}


def hydrate(repo: Monorepo, work: Path, cache: Path, out: Path, label: str,
            expected: dict[str, list[str]], changed: BenchApp | None = None) -> Step:
    """``kiln hydrate --applications argocd/ --output-dir OUT``; cold: every manifest checked
    against the raw tools; after the commit: exactly the changed app's manifest rewritten."""
    env = kiln_env(work, cache)
    before, entries = tree_hashes(out), cache_objects(cache)
    argv = [sys.executable, "-m", "kiln", "hydrate", "--applications", "argocd",
            "--output-dir", str(out)]
    child = run_child(argv, cwd=repo.root, env=env, out=work / "out" / f"{slug(label)}.txt")
    step = Step(label, child.seconds, child.cpu, 1, child.rss_mb, child.hwm_mb)
    renders = len(cache_objects(cache) - entries)
    if child.returncode != 0:
        step.ok = False
        step.notes.append(f"exit {child.returncode}: "
                          f"{child.stderr.decode(errors='replace').strip()[-500:]}")
        return step
    after = tree_hashes(out)
    manifests = [p for p in after if p.endswith("manifest.yaml")]
    if len(manifests) != len(repo.apps):
        step.ok = False
        step.notes.append(f"{len(manifests)} manifest.yaml files for {len(repo.apps)} apps")
    if changed is None:
        for app in repo.apps:
            path = out / app.path / "manifest.yaml"
            if not path.exists():
                step.ok = False
                step.notes.append(f"{app.name}: no {app.path}/manifest.yaml")
                continue
            check_app(step, app.name, parse_output(path.read_bytes()), expected)
        step.notes.append(f"{len(after)} files written; {renders} renders (new cache entries)")
        return step
    rewritten = sorted(p for p in after if before.get(p) != after[p])
    removed = sorted(set(before) - set(after))
    step.notes.append(f"{renders} renders (new cache entries)")
    if renders != 1:
        step.ok = False
        step.notes.append("expected 1 render")
    step.notes.append(f"files rewritten: {len(rewritten)} ({', '.join(rewritten[:4])}"
                      f"{'...' if len(rewritten) > 4 else ''}); removed: {len(removed)}")
    changed_manifests = [p for p in rewritten if p.endswith("manifest.yaml")]
    if changed_manifests != [f"{changed.path}/manifest.yaml"] or removed:
        step.ok = False
        step.notes.append(f"expected only {changed.path}/manifest.yaml rewritten")
    check_app(step, changed.name,
              parse_output((out / changed.path / "manifest.yaml").read_bytes()), expected)
    return step


def pr_diff(repo: Monorepo, work: Path, cache: Path, changed: BenchApp, label: str,
            target: bool) -> Step:
    """``kiln diff --applications argocd/ --against HEAD~1 -o json``: one app changed."""
    env = kiln_env(work, cache)
    argv = [sys.executable, "-m", "kiln", "diff", "--applications", "argocd", "--against",
            "HEAD~1", "-o", "json"]
    entries = cache_objects(cache)
    child = run_child(argv, cwd=repo.root, env=env, out=work / "out" / f"{slug(label)}.json")
    step = Step(label, child.seconds, child.cpu, 1, child.rss_mb, child.hwm_mb,
                target=f"< {TARGET_DIFF_S:.0f} s" if target else "")
    step.notes.append(f"{len(cache_objects(cache) - entries)} renders (new cache entries)")
    if child.returncode != 1:  # 1: changes
        step.ok = False
        step.notes.append(f"exit {child.returncode} (expected 1, changes): "
                          f"{child.stderr.decode(errors='replace').strip()[-500:]}")
        return step
    doc = json.loads(child.stdout)
    names = [a.get("name") for a in doc["apps"] if a.get("changed")]
    step.notes.append(f"{len(doc['apps'])} apps, changed: {names[:5]}")
    if names != [changed.name] or len(doc["apps"]) != len(repo.apps):
        step.ok = False
        step.notes.append(f"expected {len(repo.apps)} apps and only {changed.name} changed")
    if target and step.seconds is not None and step.seconds >= TARGET_DIFF_S:
        step.notes.append("TARGET MISSED")
    return step


# -- the run -----------------------------------------------------------------------------------

def run(args: argparse.Namespace, work: Path) -> tuple[list[Step], dict[str, Any]]:
    """Every step, in order; returns the steps and the run's facts."""
    log(f"generating {args.apps} apps in {work / 'repo'}")
    started = time.perf_counter()
    repo = make_monorepo(work / "repo", args.apps)
    facts: dict[str, Any] = {"apps": args.apps, "cpus": os.cpu_count(),
                             "generate_s": round(time.perf_counter() - started, 2),
                             "commit": repo.head()}
    sample = repo.apps
    if args.sample and args.sample < len(repo.apps):
        stride = len(repo.apps) / args.sample
        sample = [repo.apps[int(k * stride)] for k in range(args.sample)]
    facts["per_app_sample"] = len(sample)
    env0 = kiln_env(work, work / "probe-cache")
    has_many = kiln_has(env0, "render", flag="--applications")
    has_hydrate = kiln_has(env0, "hydrate", flag="--applications")
    has_diff = kiln_has(env0, "diff", flag="--applications")

    steps: list[Step] = []
    log("raw tools, one process per app")
    raw, expected, _ = raw_tools(repo, repo.apps, work / "raw")
    steps.append(raw)
    log(f"raw tools: {raw.seconds:.1f} s")
    scale = len(repo.apps) / len(sample)  # per-app kiln steps on a sample: scaled to N

    log(f"kiln render PATH, one process per app ({len(sample)} apps), cold")
    cold = per_app_kiln(repo, sample, work, work / "cache-per-app", "kiln render PATH, "
                        "1 process per app, cold", expected)
    log(f"kiln render PATH, one process per app ({len(sample)} apps), warm")
    warm = per_app_kiln(repo, sample, work, work / "cache-per-app", "kiln render PATH, "
                        "1 process per app, warm", expected)
    for s in (cold, warm):
        if scale != 1 and s.seconds is not None:
            s.notes.append(f"{len(sample)} apps timed, scaled x{scale:.1f}")
            s.seconds *= scale
            s.cpu = s.cpu * scale if s.cpu is not None else None
    steps += [cold, warm]

    changed = repo.apps[args.change]
    render_cache, hydrate_cache = work / "cache-render", work / "cache-hydrate"
    hydrated = work / "hydrated"
    if has_many:
        log("kiln render --applications, one process, cold")
        steps.append(one_process(repo, work, render_cache, "kiln render --applications, "
                                 "1 process, cold", expected, args.jobs))
    else:
        steps.append(Step("kiln render --applications, 1 process, cold",
                          notes=["n/a: no kiln render --applications"]))
    if has_hydrate:
        log("kiln hydrate, cold")
        steps.append(hydrate(repo, work, hydrate_cache, hydrated, "kiln hydrate, cold",
                             expected))
    else:
        steps.append(Step("kiln hydrate, cold", notes=["n/a: no kiln hydrate"]))

    log(f"one-app commit: {changed.name}")
    facts["changed_app"] = changed.name
    facts["commit_after"] = one_app_commit(repo, changed.index)
    again = raw_command(repo, changed, work / "raw-after")
    expected[changed.name] = canonical(parse_output(again.run(), again.output))

    label = "kiln render --applications, 1 process, after a one-app commit"
    if has_many:
        log("kiln render --applications, after the commit")
        step = one_process(repo, work, render_cache, label, expected, args.jobs,
                           changed=changed.name)
        step.target = (f"<= {TARGET_AFTER_COMMIT}x raw, RSS <= {TARGET_RSS_MB:.0f} MB")
        steps.append(step)
    else:
        steps.append(Step(label, notes=["n/a: no kiln render --applications"]))
    if has_hydrate:
        log("kiln hydrate, after the commit")
        steps.append(hydrate(repo, work, hydrate_cache, hydrated, "kiln hydrate, after a "
                             "one-app commit", expected, changed=changed))
    else:
        steps.append(Step("kiln hydrate, after a one-app commit", notes=["n/a: no kiln hydrate"]))
    if has_diff:
        log("kiln diff --applications --against HEAD~1, cache warm from both revisions")
        steps.append(pr_diff(repo, work, render_cache, changed, "kiln diff --applications "
                             "--against HEAD~1, warm cache", target=True))
        if not args.no_diff_cold:
            log("kiln diff --applications --against HEAD~1, empty cache")
            steps.append(pr_diff(repo, work, work / "cache-diff", changed, "kiln diff "
                                 "--applications --against HEAD~1, empty cache",
                                 target=False))
    else:
        steps.append(Step("kiln diff --applications --against HEAD~1",
                          notes=["n/a: no kiln diff --applications"]))
    return steps, facts


def verdicts(steps: Sequence[Step]) -> None:
    """Mark the targets of issue 16 §4 on the steps that carry them (wall time, as the issue
    states them; the CPU ratio is printed beside it because the machine may be shared)."""
    raw = steps[0].seconds or float("nan")
    for s in steps:
        if s.target.startswith("<=") and s.seconds is not None:
            met = s.seconds / raw <= TARGET_AFTER_COMMIT and (
                s.rss_mb is None or s.rss_mb <= TARGET_RSS_MB)
            s.notes.append("target met" if met else "TARGET MISSED")
        elif s.target.startswith("<") and s.seconds is not None and "TARGET MISSED" not in \
                s.notes:
            s.notes.append("target met")


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else " " * width


def table(steps: Sequence[Step], facts: dict[str, Any]) -> str:
    """The human table: wall and CPU seconds, their ratios to the raw tools', RSS, checks."""
    raw, raw_cpu = steps[0].seconds or float("nan"), steps[0].cpu or float("nan")
    lines = [f"# many apps: {facts['apps']} apps (helm, kustomize, directory, jsonnet in turn), "
             f"{facts['cpus']} CPUs, load average {facts['load_before']} before, "
             f"{facts['load_after']} after; one-app commit on {facts.get('changed_app')}",
             f"# {facts['command']}",
             f"{'step':<62} {'wall s':>8} {'x raw':>7} {'CPU s':>8} {'x raw':>7} "
             f"{'RSS MB':>7} {'own MB':>7}  check"]
    for s in steps:
        ratio = s.seconds / raw if s.seconds is not None else None
        cpu_ratio = s.cpu / raw_cpu if s.cpu is not None else None
        check = ("ok" if s.ok else "FAILED") if s.seconds is not None else "n/a"
        lines.append(f"{s.label:<62} {_num(s.seconds, 8, 2)} {_num(ratio, 7, 3)} "
                     f"{_num(s.cpu, 8, 2)} {_num(cpu_ratio, 7, 3)} {_num(s.rss_mb, 7, 1)} "
                     f"{_num(s.hwm_mb, 7, 1)}  {check}")
        for note in s.notes:
            lines.append(f"    {note}")
        if s.target:
            lines.append(f"    target: {s.target}")
    lines.append("RSS MB: ru_maxrss of the process tree (tools included); own MB: the kiln "
                 "process's VmHWM")
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark; print the table (or JSON with --json); exit 1 on a failed check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=0,
                        help="time the one-process-per-app kiln steps on this many apps and "
                             "scale to N (default: every app)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="kiln render --jobs (default: kiln's own, the CPU count)")
    parser.add_argument("--change", type=int, default=None,
                        help="index of the app the one-app commit changes (default: N/2)")
    parser.add_argument("--no-diff-cold", action="store_true",
                        help="skip the PR diff with an empty cache (a CI without a kept cache)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.apps < 4:
        parser.error("--apps must be at least 4")
    if args.change is None:
        args.change = args.apps // 2
    if not 0 <= args.change < args.apps:
        parser.error("--change must be an app index")
    work = Path(tempfile.mkdtemp(prefix="kiln-many-", dir="/tmp"))
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        steps, facts = run(args, work)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    verdicts(steps)
    facts["load_before"] = load_before
    facts["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    facts["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    if args.json:
        raw = steps[0].seconds
        raw_cpu = steps[0].cpu
        print(json.dumps({**facts, "steps": [
            {**asdict(s), "ratio": (s.seconds / raw if s.seconds is not None and raw else None),
             "cpuRatio": (s.cpu / raw_cpu if s.cpu is not None and raw_cpu else None)}
            for s in steps]}, indent=2))
    else:
        print(table(steps, facts))
    if not all(s.ok for s in steps):
        sys.exit(1)


if __name__ == "__main__":
    main()
