"""``callflow config show``: every setting in effect, secrets masked, bad values named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from callflow.config import Settings
from callflow.entrypoints.cli import main
from callflow.entrypoints.commands.config import mask_secret


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CALLFLOW_* from the outer environment, no .env but the test's own (cwd = tmp_path)."""
    import os

    for name in list(os.environ):
        if name.startswith("CALLFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("secret, shown", [
    ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:****@127.0.0.1:5672/"),
    ("redis://:hunter2@redis:6379/0", "redis://:****@redis:6379/0"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("rediss://u@[::1]:6380/1?password=p&db=2", "rediss://u@[::1]:6380/1?password=****&db=2"),
    ("amqps://user:p%40ss@mq.example:5671/vhost?heartbeat=30", "amqps://user:****@mq.example:5671/vhost?heartbeat=30"),
    ("just-a-token", "****"),
    ("redis://host:notaport/0", "****"),
])
def test_mask_secret_hides_passwords_only(secret: str, shown: str) -> None:
    """A URL keeps scheme, user, host, port, path and harmless query; its password is masked."""
    assert mask_secret(secret) == shown


def test_show_prints_every_setting_with_secrets_masked(monkeypatch, capsys) -> None:
    """Each Settings field appears once as CALLFLOW_NAME=value; the AMQP password does not appear."""
    monkeypatch.setenv("CALLFLOW_AMQP_URL", "amqp://callflow:s3cret-pw@mq:5672/")
    monkeypatch.setenv("CALLFLOW_AGI_HOST", "0.0.0.0")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    names = [line.split("=", 1)[0] for line in lines]
    assert names == [f"CALLFLOW_{field.upper()}" for field in Settings.model_fields]
    assert "CALLFLOW_AMQP_URL=amqp://callflow:****@mq:5672/" in lines
    assert "CALLFLOW_AGI_HOST=0.0.0.0" in lines


def test_show_reads_the_env_file_and_fills_derived_paths(tmp_path: Path, capsys) -> None:
    """Values from ./.env are shown; an unset outbox path shows the file under the data directory."""
    (tmp_path / ".env").write_text(f"CALLFLOW_HTTP_PORT=9200\nCALLFLOW_DATA_DIR={tmp_path}/d\n", encoding="utf-8")
    assert main(["config", "show", "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["CALLFLOW_HTTP_PORT"] == "9200"
    assert values["CALLFLOW_OUTBOX_PATH"] == f"{tmp_path}/d/outbox.sqlite3"
    assert values["CALLFLOW_FAIL_CLOSED"] == "false"


def test_invalid_values_are_named_and_exit_2(monkeypatch, capsys) -> None:
    """Each bad variable is named on stderr with what is wrong; exit status 2, no traceback."""
    monkeypatch.setenv("CALLFLOW_AGI_PORT", "99999")
    monkeypatch.setenv("CALLFLOW_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "show"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "CALLFLOW_AGI_PORT" in err and "CALLFLOW_TIMEZONE" in err and "Mars/Olympus" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name, url", [
    ("CALLFLOW_REDIS_URL", "http://x"),
    ("CALLFLOW_REDIS_URL", "redis://127.0.0.1:notaport/0"),
    ("CALLFLOW_AMQP_URL", "redis://127.0.0.1:5672/"),
    ("CALLFLOW_AMQP_URL", "not a url"),
])
def test_a_url_its_client_cannot_use_fails_show_with_exit_2(monkeypatch, capsys, name: str, url: str) -> None:
    """A URL with a wrong scheme or port cannot work: show names the variable and exits 2 (whether the
    settings themselves refuse it or show finds it), never 0."""
    monkeypatch.setenv(name, url)
    try:
        status = main(["config", "show"])
    except SystemExit as exit_info:
        status = exit_info.code
    assert status == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_usable_urls_pass(monkeypatch, capsys) -> None:
    monkeypatch.setenv("CALLFLOW_REDIS_URL", "unix:///run/redis.sock?db=1")
    monkeypatch.setenv("CALLFLOW_AMQP_URL", "amqps://u:p@mq.example:5671/vh")
    assert main(["config", "show"]) == 0
    assert capsys.readouterr().err == ""
