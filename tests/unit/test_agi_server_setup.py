"""How the AGI server is put together: route table, registry checks, source filter, timebox."""
from __future__ import annotations

import asyncio
import ipaddress
import warnings

import pytest
from structlog.testing import capture_logs

from callflow.entrypoints.agi import routes as route_table
from callflow.entrypoints.agi.access import RejectionLog, SourceNetworks
from callflow.entrypoints.agi.fastagi import AgiLimits, FastAgiApplication
from callflow.entrypoints.agi.runner import RouteRunner
from callflow.entrypoints.agi.timebox import TimeBoxExpired, timebox
from tests.support.agi_routes import EchoRoute, ScriptRoute


def test_application_builds_outside_a_running_loop_without_deprecation():
    """Building the application asks nothing of the event loop (no get_event_loop() outside one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FastAgiApplication(AgiLimits())


def test_a_plain_function_endpoint_is_refused_with_a_clear_error():
    """A sync endpoint would return before its work is done: refused up front, with a clear error."""
    app = FastAgiApplication(AgiLimits())
    with pytest.raises(TypeError, match="must be an async function"):
        app.add_route("sync", lambda session: None)

    async def endpoint(session):
        return None

    app.add_route("async", endpoint)
    assert app.route_names() == ["async"]
    with pytest.raises(ValueError):
        app.add_route("async", endpoint)


def test_a_route_registered_twice_is_refused():
    """Two endpoints for one route would leave one of them silently unused."""
    app = FastAgiApplication(AgiLimits())

    async def endpoint(session):
        return None

    app.add_route("checkphone", endpoint)
    with pytest.raises(ValueError, match="'checkphone' is already registered"):
        app.add_route("checkphone", endpoint)
    assert app.route_names() == ["checkphone"]


def test_a_route_with_a_sync_handle_or_no_deadline_is_refused():
    """A route must have async handle/fallback and a positive deadline."""
    class SyncRoute(ScriptRoute):
        def handle(self, session):  # type: ignore[override]
            return None

    with pytest.raises(TypeError, match="handle must be an async method"):
        RouteRunner(SyncRoute(lambda s: None), grace_s=0.1)
    with pytest.raises(ValueError, match="positive deadline"):
        RouteRunner(EchoRoute(deadline_s=0), grace_s=0.1)


def build_echo(app):
    return EchoRoute()


async def build_echo_later(app):
    return EchoRoute(name="later")


def build_nothing(app):
    return object()


async def test_build_routes_awaits_async_builders_and_refuses_a_misnamed_route():
    """Each entry of the table adds a route by name; sync and async builders both work; a builder
    whose route answers to another name (two routes would then share one) or that builds no Route
    stops the start."""
    built = await route_table.build_routes(object(), None, {"echo": build_echo, "later": build_echo_later})
    assert sorted(built) == ["echo", "later"] and built["later"].name == "later"
    with pytest.raises(ValueError, match="AGI route 'again': build_echo built the route 'echo'"):
        await route_table.build_routes(object(), None, {"echo": build_echo, "again": build_echo})
    with pytest.raises(TypeError, match="not a Route"):
        await route_table.build_routes(object(), None, {"nothing": build_nothing})


def test_the_route_table_holds_the_routes_of_the_spec():
    """SPEC §1: dialplans call exactly these two routes."""
    assert sorted(route_table.ROUTES) == ["checkphone", "event"]


async def test_every_route_of_the_table_is_built_from_the_container():
    """The real table, on in-memory adapters: each builder gives the route its key names."""
    from callflow.config import Settings
    from callflow.containers import build_application, resolved

    settings = Settings(_env_file=None)
    app = build_application(settings, in_memory=True)
    await resolved(app.init_resources())
    try:
        built = await route_table.build_routes(app, settings)
        assert {name: route.name for name, route in built.items()} == {"checkphone": "checkphone", "event": "event"}
    finally:
        await resolved(app.shutdown_resources())


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("fe80::1%eth0", False), ("", False), ("garbage", False),
])
def test_source_networks(host, allowed):
    """Only configured networks may connect; IPv4-mapped IPv6 peers are judged as IPv4."""
    networks = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert SourceNetworks(networks).allows(host) is allowed


def test_rejections_are_logged_once_per_interval_with_a_count():
    """A flood of refused connections gives one log line per reason per interval, not one each."""
    rejections = RejectionLog(interval_s=60)
    with capture_logs() as logs:
        for _ in range(5):
            rejections.note("source_not_allowed", "10.0.0.1", 0)
        rejections.note("draining", "127.0.0.1", 3)
    assert [(line["reason"], line["similar_since_last_line"]) for line in logs] == [
        ("source_not_allowed", 0), ("draining", 0)]


async def test_timebox_expires_and_leaves_the_task_usable():
    """The box raises TimeBoxExpired at its deadline; afterwards the task awaits normally."""
    with pytest.raises(TimeBoxExpired):
        with timebox(0.02):
            await asyncio.sleep(1)
    with timebox(1.0):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    assert cancelling is None or cancelling() == 0


async def test_timebox_lets_an_outside_cancellation_through():
    """Cancelling the task from outside is a cancellation, not a timeout."""
    async def boxed():
        with timebox(5):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(boxed())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("setting, host", [
    ("::ffff:127.0.0.1/128", "127.0.0.1"), ("::ffff:127.0.0.1/128", "::ffff:127.0.0.1"),
    ("::ffff:10.0.0.0/104", "10.9.8.7"),
])
def test_an_ipv4_mapped_network_in_the_settings_matches_its_ipv4_clients(setting, host):
    """``::ffff:127.0.0.1/128`` used to be kept as IPv6 and never matched: clients are judged as IPv4."""
    from callflow.config import Settings

    networks = Settings(_env_file=None, allowed_networks=setting).allowed_network_list
    assert SourceNetworks(networks).allows(host)
    assert not SourceNetworks(networks).allows("192.0.2.1")
