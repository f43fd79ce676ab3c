"""What a newcomer tripped over (issue 13 §5): warnings, messages, documented examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, run_kiln
from tests.unit.test_plugins import install_dist


@pytest.mark.parametrize("command", ["render", "plugins"])
def test_broken_plugin_is_one_prefixed_warning(tmp_path: Path, cache_dir: Path,
                                               command: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_dist(site, "kiln-broken", "0.1", "kiln_broken", "raise RuntimeError('boom')\n",
                 "broken = kiln_broken")
    args = ["render", str(EXAMPLES / "guestbook"), "--cache-dir", str(cache_dir)]
    proc = run_kiln(*(args if command == "render" else ["plugins"]),
                    env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    mentions = [ln for ln in proc.stderr.splitlines() if "kiln-broken" in ln]
    assert len(mentions) == 1, proc.stderr
    assert mentions[0].startswith("kiln: WARNING: plugin 'broken' from distribution "
                                  "'kiln-broken' failed to load: RuntimeError: boom")
    assert "kiln-broken" not in proc.stdout
