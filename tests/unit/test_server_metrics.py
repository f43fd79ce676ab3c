"""ServerMetrics scraped over real HTTP and read back with prometheus_client's own parser."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from kiln.core.deadline import Cancelled, Deadline, DeadlineExceeded
from kiln.core.errors import ConfigError, KilnError, ToolError
from kiln.server.gate import Gate
from kiln.server.metrics import (
    MetricsServer,
    ServerMetrics,
    outcome_of,
    parse_metrics_addr,
    serve_metrics,
)
from kiln.server.singleflight import SingleFlight
from tests.fuzz.bounds import FUZZ

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample at ``url``, keyed by (name, sorted labels), through the independent parser."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return parse(text)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture
def served() -> Iterator[tuple[ServerMetrics, MetricsServer]]:
    metrics = ServerMetrics()
    server = serve_metrics("127.0.0.1:0", metrics)
    yield metrics, server
    server()


def test_requests_and_durations_are_exposed(served: tuple[ServerMetrics, MetricsServer]
                                            ) -> None:
    metrics, server = served
    metrics.observe_request("GenerateManifest", "ok", 0.002)
    metrics.observe_request("GenerateManifest", "ok", 0.5)
    metrics.observe_request("GenerateManifest", "deadline", 58.0)
    metrics.observe_request("MatchRepository", "error", 0.0004)
    got = scrape(server.url)
    req = "kiln_requests_total"
    assert got[(req, (("method", "GenerateManifest"), ("outcome", "ok")))] == 2
    assert got[(req, (("method", "GenerateManifest"), ("outcome", "deadline")))] == 1
    assert got[(req, (("method", "MatchRepository"), ("outcome", "error")))] == 1
    hist = "kiln_request_duration_seconds"
    gen = ("method", "GenerateManifest")
    assert got[(hist + "_bucket", (("le", "0.001"), gen))] == 0
    assert got[(hist + "_bucket", (("le", "0.0025"), gen))] == 1
    assert got[(hist + "_bucket", (("le", "1.0"), gen))] == 2
    assert got[(hist + "_bucket", (("le", "60.0"), gen))] == 3
    assert got[(hist + "_bucket", (("le", "+Inf"), gen))] == 3
    assert got[(hist + "_count", (gen,))] == 3
    assert got[(hist + "_sum", (gen,))] == pytest.approx(58.502)
    assert got[(hist + "_bucket", (("le", "0.001"), ("method", "MatchRepository")))] == 1


def test_renders_bytes_and_counters_are_exposed(served: tuple[ServerMetrics, MetricsServer]
                                                ) -> None:
    metrics, server = served
    before = scrape(server.url)
    for result in ("hit", "render", "uncached"):  # present, at 0, before any render
        assert before[("kiln_renders_total", (("result", result),))] == 0
    for _ in range(3):
        metrics.count_render("hit")
    metrics.count_render("render")
    metrics.add_stream_bytes(1000)
    metrics.add_stream_bytes(24)
    metrics.add_extracted_bytes(300)
    metrics.add_extraction_avoided_bytes(700)
    metrics.count_tree_cache_hit()
    got = scrape(server.url)
    assert got[("kiln_renders_total", (("result", "hit"),))] == 3
    assert got[("kiln_renders_total", (("result", "render"),))] == 1
    assert got[("kiln_renders_total", (("result", "uncached"),))] == 0
    assert got[("kiln_stream_bytes_total", ())] == 1024
    assert got[("kiln_extracted_bytes_total", ())] == 300
    assert got[("kiln_extraction_avoided_bytes_total", ())] == 700
    assert got[("kiln_tree_cache_hits_total", ())] == 1
    assert got[("process_resident_memory_bytes", ())] > 1_000_000


def test_a_real_gate_and_single_flight_drive_the_gauges_and_the_shared_counter(
        served: tuple[ServerMetrics, MetricsServer]) -> None:
    metrics, server = served
    gate = Gate(1, on_change=metrics.gate_changed)
    flight: SingleFlight[str, str] = SingleFlight(on_shared=metrics.count_shared)
    release = threading.Event()
    inside = threading.Event()

    def render() -> str:
        inside.set()
        release.wait(10)
        return "objects"

    def request() -> None:
        with gate.slot(Deadline(30)):
            flight.do("key", render, Deadline(30))

    holder = threading.Thread(target=request)
    holder.start()
    assert inside.wait(5)
    queued = threading.Thread(target=request)
    queued.start()
    end = time.monotonic() + 5
    while gate.queued != 1:
        assert time.monotonic() < end
        time.sleep(0.01)
    got = scrape(server.url)
    assert got[("kiln_in_flight", ())] == 1
    assert got[("kiln_queue_depth", ())] == 1
    # A request that does not need a slot shares the running render.
    sharer = threading.Thread(target=lambda: flight.do("key", render, Deadline(30)))
    sharer.start()
    while flight.waiting() != 1:
        assert time.monotonic() < end
        time.sleep(0.01)
    release.set()
    for t in (holder, queued, sharer):
        t.join(10)
    got = scrape(server.url)
    assert got[("kiln_in_flight", ())] == 0
    assert got[("kiln_queue_depth", ())] == 0
    assert got[("kiln_singleflight_shared_total", ())] == 1


def test_two_instances_in_one_process_do_not_collide() -> None:
    one, two = ServerMetrics(), ServerMetrics()
    one.count_render("hit")
    two.count_render("render")
    two.count_render("render")
    a = parse(one.exposition()[0].decode())
    b = parse(two.exposition()[0].decode())
    assert a[("kiln_renders_total", (("result", "hit"),))] == 1
    assert a[("kiln_renders_total", (("result", "render"),))] == 0
    assert b[("kiln_renders_total", (("result", "render"),))] == 2
    assert b[("kiln_renders_total", (("result", "hit"),))] == 0
    assert one.exposition()[1].startswith("text/plain")


def test_unknown_label_values_are_refused() -> None:
    metrics = ServerMetrics(process=False)
    with pytest.raises(ValueError):
        metrics.observe_request("GenerateManifest", "fine", 1.0)
    with pytest.raises(ValueError):
        metrics.count_render("cached")


def test_outcome_of_tells_cancellation_from_deadline_from_error() -> None:
    assert outcome_of(None) == "ok"
    assert outcome_of(Cancelled("cancelled while x: y")) == "cancelled"
    assert outcome_of(DeadlineExceeded("gave up")) == "deadline"
    assert outcome_of(ToolError("helm: error: x")) == "error"
    assert outcome_of(RuntimeError("bug")) == "error"


def test_ipv6_loopback_is_served() -> None:
    metrics = ServerMetrics(process=False)
    metrics.count_render("hit")
    server = serve_metrics("[::1]:0", metrics)
    try:
        assert server.host == "::1"
        assert server.url == f"http://[::1]:{server.port}/metrics"
        assert scrape(server.url)[("kiln_renders_total", (("result", "hit"),))] == 1
    finally:
        server.stop()


def test_stop_closes_the_port() -> None:
    server = serve_metrics("127.0.0.1:0", ServerMetrics(process=False))
    url = server.url
    scrape(url)
    server()
    server()  # twice is fine
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_a_port_in_use_is_a_one_line_error() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        with pytest.raises(KilnError) as info:
            serve_metrics(f"127.0.0.1:{port}", ServerMetrics(process=False))
        assert info.value.one_line() == (f"--metrics-addr: cannot listen on '127.0.0.1:{port}':"
                                         " address already in use")
    finally:
        taken.close()


@pytest.mark.parametrize(("addr", "problem"), [
    ("9100", "no port"),
    ("localhost", "no port"),
    ("localhost:", "the port is not a number"),
    ("localhost:http", "the port is not a number"),
    ("localhost:-1", "the port is not a number"),
    ("localhost:65536", "the port is above 65535"),
    ("::1:9100", "an IPv6 address needs brackets"),
    ("[::1:9100", "an unclosed ["),
    ("[::1]x:9100", "text between ] and the port"),
    ("[[::1]]:9100", "not an IPv6 address in []"),
    ("[nothost]:9100", "not an IPv6 address in []"),
    ("host name:9100", "not a host name or address"),
    ("host/x:9100", "not a host name or address"),
    ("localhost:\uff19\uff11\uff10\uff10", "the port is not a number"),  # full-width digits
])
def test_bad_addresses_are_config_errors_naming_the_flag(addr: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        serve_metrics(addr, ServerMetrics(process=False))
    line = info.value.one_line()
    assert line.startswith(f"--metrics-addr: {problem} (expected HOST:PORT")
    assert "\n" not in line


@pytest.mark.parametrize(("addr", "expected"), [
    (":9100", ("0.0.0.0", 9100)),
    ("127.0.0.1:9100", ("127.0.0.1", 9100)),
    ("[::1]:9100", ("::1", 9100)),
    ("[::]:0", ("::", 0)),
    ("[0:0::1]:80", ("::1", 80)),
    ("metrics.local:65535", ("metrics.local", 65535)),
])
def test_good_addresses(addr: str, expected: tuple[str, int]) -> None:
    assert parse_metrics_addr(addr) == expected


@FUZZ
@given(st.text(max_size=40))
def test_fuzz_any_text_parses_or_is_a_config_error(text: str) -> None:
    try:
        host, port = parse_metrics_addr(text)
    except ConfigError as exc:
        assert "\n" not in exc.one_line()
        assert exc.one_line().startswith("--metrics-addr: ")
        return
    assert 0 <= port <= 65535
    assert host and " " not in host


@FUZZ
@given(st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]")),
       st.integers(0, 65535))
def test_fuzz_formatted_addresses_round_trip(host: str, port: int) -> None:
    got_host, got_port = parse_metrics_addr(f"{host}:{port}")
    assert got_port == port
    assert got_host == host.strip("[]")


def test_importing_the_server_core_does_not_import_prometheus_client() -> None:
    code = ("import sys, kiln.server, kiln.server.gate, kiln.server.singleflight, "
            "kiln.server.metrics, kiln.server.requestlog, kiln.server.lifecycle; "
            "print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
