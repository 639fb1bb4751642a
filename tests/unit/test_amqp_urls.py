"""CALLFLOW_AMQP_URL: one URL or a cluster's nodes separated by commas; clear errors, no password shown."""
from __future__ import annotations

from typing import Callable

import pytest
from pydantic import ValidationError

from callflow.amqp_urls import node_address, parse_amqp_urls, shown, with_heartbeat
from callflow.config import Settings
from callflow.entrypoints.commands.config import effective_values, mask_secret, url_problems


def test_one_url_is_a_list_of_one() -> None:
    assert parse_amqp_urls("amqp://guest:guest@127.0.0.1:5672/") == ("amqp://guest:guest@127.0.0.1:5672/",)


def test_several_urls_keep_their_order_and_lose_surrounding_spaces() -> None:
    value = "amqp://u:p@node-b:5672/prod , amqps://u:p@node-a/prod,amqp://u:p@[::1]:5673/prod"
    assert parse_amqp_urls(value) == (
        "amqp://u:p@node-b:5672/prod", "amqps://u:p@node-a/prod", "amqp://u:p@[::1]:5673/prod",
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", "the URL is empty"),
        ("amqp://h1/,", "URL 2 of 2 is empty"),
        ("amqp://h1/,,amqp://h2/", "URL 2 of 3 is empty"),
        ("http://h1/", "the URL (http://h1/) must start with amqp:// or amqps:// ('http://')"),
        ("amqp://h1/,h2:5672", "URL 2 of 2 (****) must start with amqp:// or amqps:// (no scheme)"),
        ("amqp:///vhost", "names no host"),
        ("amqp://h1:0/", "has port 0"),
        ("amqp://h1:70000/", "is not a valid URL"),
        ("amqp://h1/,amqp://h1/", "the same broker URL is given twice"),
    ],
)
def test_bad_values_say_which_url_and_why(value: str, expected: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_amqp_urls(value)
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    "value",
    [
        "amqp://user:s3cr,et@h1/",  # a comma in a password cuts the URL in two
        "amqp://user:s3cr@h1/,amqp://user:s3cr,et@h2/",
        "amqp://user:s3cr@h1:notaport/",
        "ftp://user:s3cr@h1/",
    ],
)
def test_errors_never_show_a_password(value: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_amqp_urls(value)
    assert "s3cr" not in str(raised.value)


def test_a_password_cut_by_a_comma_gets_the_hint_to_encode_it() -> None:
    with pytest.raises(ValueError) as raised:
        parse_amqp_urls("amqp://user:pa,ss@h1/")
    assert "%2C" in str(raised.value)
    assert parse_amqp_urls("amqp://user:pa%2Css@h1/") == ("amqp://user:pa%2Css@h1/",)


def test_shown_masks_the_password_and_keeps_the_rest() -> None:
    assert shown("amqps://user:secret@h1:5671/prod") == "amqps://user:****@h1:5671/prod"
    assert shown("amqp://h1/") == "amqp://h1/"


def test_node_address_names_host_and_port_with_the_scheme_default() -> None:
    assert node_address("amqp://u:p@h1/") == "h1:5672"
    assert node_address("amqps://u:p@h1/") == "h1:5671"
    assert node_address("amqp://[::1]:24501/") == "[::1]:24501"


def test_settings_refuse_a_bad_list_naming_the_variable(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValidationError) as raised:
        make_settings(amqp_url="amqp://h1/,redis://h2/")
    assert "URL 2 of 2" in str(raised.value)


def test_settings_give_the_urls_in_order(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(amqp_url="amqp://u:p@h2:1/,amqp://u:p@h1:2/")
    assert settings.amqp_urls == ("amqp://u:p@h2:1/", "amqp://u:p@h1:2/")


def test_queue_type_is_classic_or_quorum(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().amqp_queue_type == "classic"
    assert make_settings(amqp_queue_type="quorum").amqp_queue_type == "quorum"
    with pytest.raises(ValidationError):
        make_settings(amqp_queue_type="stream")


def test_config_show_masks_every_password_of_the_list(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(amqp_url="amqp://u:one@h1:1/v, amqp://u:two@h2:2/v,amqps://u:three@h3/v")
    shown_value = effective_values(settings)["CALLFLOW_AMQP_URL"]
    assert shown_value == "amqp://u:****@h1:1/v,amqp://u:****@h2:2/v,amqps://u:****@h3/v"
    assert mask_secret("amqp://u:one@h1/") == "amqp://u:****@h1/"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("amqp://u:p@h1/", "amqp://u:p@h1/?heartbeat=5"),
        ("amqp://u:p@h1/v?name=callflow", "amqp://u:p@h1/v?name=callflow&heartbeat=5"),
        ("amqp://u:p@h1/?heartbeat=30", "amqp://u:p@h1/?heartbeat=30"),
        ("amqp://u:p@h1/?heartbeat=0", "amqp://u:p@h1/?heartbeat=0"),  # the operator's own choice stays
    ],
)
def test_heartbeat_is_asked_for_unless_the_url_names_one(url: str, expected: str) -> None:
    assert with_heartbeat(url) == expected


def test_config_show_finds_no_problem_in_a_list_of_urls(make_settings: Callable[..., Settings]) -> None:
    """Each URL of the list is checked on its own (a port followed by a comma is not a bad port)."""
    settings = make_settings(amqp_url="amqp://u:p@h1:5672,amqp://u:p@h2:5672,amqps://u:p@h3")
    assert url_problems(settings) == []
