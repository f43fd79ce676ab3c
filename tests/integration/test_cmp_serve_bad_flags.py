"""``kiln cmp serve`` with bad settings: one ``kiln: error:`` line, nothing on stdout, no
socket left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import assert_clean_failure, run_kiln


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--parallelism", "0"], {}, "--parallelism"),
    (["--metrics-addr", "not-an-address"], {}, "--metrics-addr"),
    ([], {"KILN_CMP_MAX_FILES": "many"}, "KILN_CMP_MAX_FILES"),
    ([], {"KILN_CMP_TREE_CACHE_BYTES": "lots"}, "KILN_CMP_TREE_CACHE_BYTES"),
])
def test_bad_settings_are_one_line(tmp_path: Path, args: list[str], env: dict[str, str],
                                   needle: str) -> None:
    socket = tmp_path / "kiln.sock"
    proc = run_kiln("cmp", "serve", "--socket", str(socket), *args,
                    env={"TMPDIR": str(tmp_path), "KILN_CACHE_DIR": str(tmp_path / "c"), **env},
                    timeout=60)
    assert_clean_failure(proc, needle)
    assert not socket.exists()


def test_a_file_where_the_socket_goes_is_not_removed(tmp_path: Path) -> None:
    socket = tmp_path / "kiln.sock"
    socket.write_text("not a socket\n")
    proc = run_kiln("cmp", "serve", "--socket", str(socket),
                    env={"TMPDIR": str(tmp_path), "KILN_CACHE_DIR": str(tmp_path / "c")},
                    timeout=60)
    assert_clean_failure(proc, "not a socket")
    assert socket.read_text() == "not a socket\n"
