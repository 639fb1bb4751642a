"""Every verb of ``callflow`` answers ``--help`` with a usage line and exit status 0."""
from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from callflow.entrypoints.cli import build_parser, main


def verbs(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the parser tree: ("config",), ("config", "show"), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,)
                yield from verbs(sub, path + (name,))


ALL_VERBS: list[tuple[str, ...]] = list(verbs(build_parser()))


def test_the_cli_has_the_operator_verbs() -> None:
    """The operator verbs are registered (so the --help test below covers them)."""
    for expected in [("serve",), ("config", "show"), ("stats",), ("outbox", "status"), ("events", "tail")]:
        assert expected in ALL_VERBS


@pytest.mark.parametrize("path", ALL_VERBS, ids=" ".join)
def test_help_on_every_verb(path: tuple[str, ...], capsys) -> None:
    """``callflow <verb> --help`` prints a usage line naming the verb and exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: callflow {' '.join(path)}" in capsys.readouterr().out


def test_a_missing_verb_is_a_usage_error(capsys) -> None:
    """``callflow`` alone exits 2 with a usage message."""
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "usage: callflow" in capsys.readouterr().err


def test_log_lines_of_a_verb_go_to_stderr_not_stdout(capsys, monkeypatch):
    """A verb's stdout is its output (CSV, JSON): library and adapter log lines go to stderr."""
    import structlog

    from callflow.entrypoints import cli

    structlog.reset_defaults()  # structlog's own default prints to stdout
    def noisy(args):
        structlog.get_logger("callflow.test").warning("redis not reachable")
        print("payload")
        return 0

    monkeypatch.setattr(cli, "COMMAND_MODULES", ())
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda command=None: parser)
    sub = parser._subparsers._group_actions[0]
    sub.add_parser("noisy").set_defaults(func=noisy)
    assert cli.main(["noisy"]) == 0
    out, err = capsys.readouterr()
    assert out == "payload\n"
    assert "redis not reachable" in err


def test_top_level_help_lists_every_command_without_importing_one():
    """``callflow --help`` answers at once: no command module (nor Redis, RabbitMQ, the container)
    is imported for it, and it reads the same as the full command tree's help."""
    import subprocess
    import sys

    from callflow.entrypoints import cli

    assert cli.build_parser(None).format_help() == cli.build_parser().format_help()
    probe = ("import sys\nfrom callflow.entrypoints.cli import main\ntry:\n    main(['--help'])\n"
             "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.startswith(('callflow.entrypoints.commands',"
             " 'callflow.containers', 'aio_pika', 'redis', 'dependency_injector'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_command_imports_only_its_own_module():
    """``callflow config show`` needs neither Redis nor RabbitMQ nor the container."""
    import subprocess
    import sys

    probe = ("import sys\nfrom callflow.entrypoints.cli import main\nmain(['config', 'show'])\n"
             "print(sorted(m for m in sys.modules if m.startswith(('callflow.entrypoints.commands.',"
             " 'callflow.containers', 'aio_pika'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['callflow.entrypoints.commands.config']"


def test_one_error_path_maps_each_kind_of_failure_to_its_exit_status():
    """ADR 0083: bad values 2, a refused password 2 (whatever raised it), out of reach 3, else 1."""
    import csv

    from callflow.entrypoints.cli import CommandFailed, failure_of

    class AuthenticationError(Exception):  # redis-py's name; the CLI matches names, not imports
        pass

    def raised(error: BaseException, cause: BaseException) -> BaseException:
        error.__cause__ = cause
        return error

    assert failure_of(ValueError("Port could not be cast")).code == 2
    assert failure_of(csv.Error("field larger than field limit (131072)")).code == 2
    assert failure_of(ConnectionRefusedError("refused")).code == 3
    refused = failure_of(raised(RuntimeError("redis phone_lookup"), AuthenticationError("invalid password")))
    assert refused.code == 2 and "authentication failed" in str(refused)
    assert failure_of(KeyError("x")).code == 1 and "unexpected error: KeyError" in str(failure_of(KeyError("x")))
    assert failure_of(CommandFailed("said", 3)).code == 3
    assert "\n" not in str(failure_of(ValueError("two\nlines")))
