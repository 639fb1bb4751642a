"""``callflow blacklist|vip ...`` against the real Redis (the test db): every verb, import with bad rows."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from callflow.entrypoints.cli import main
from tests.conftest import REDIS_URL
from tests.integration.cli_support import cli_env  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
BLACKLIST_KEY = "phone:blacklist:84912406496"


@pytest.fixture
def store(cli_env) -> Iterator[redis.Redis]:
    """The test db with empty phone lists before and after (only the phone:* keys are touched)."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)

    def clear() -> None:
        keys = list(client.scan_iter(match="phone:blacklist:*", count=1000)) + ["phone:vip"]
        client.delete(*keys)

    clear()
    yield client
    clear()
    client.close()


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch, cli_env) -> None:
    monkeypatch.setenv("CALLFLOW_REDIS_URL", "redis://127.0.0.1:1/0")


def test_blacklist_add_stores_the_canonical_form_for_a_day(store, capsys) -> None:
    """add: any written form is stored as phone:blacklist:{canonical} = "1" with TTL 86400."""
    assert main(["blacklist", "add", "0912406496"]) == 0
    assert store.get(BLACKLIST_KEY) == "1"
    assert 86390 < store.ttl(BLACKLIST_KEY) <= 86400
    assert "84912406496 added to the blacklist for 24 h (86400 s)" in capsys.readouterr().out


def test_adding_a_number_already_listed_says_so(store, capsys) -> None:
    """A second add of the same number (any form) says it was already there, and the TTL starts again."""
    assert main(["blacklist", "add", "--ttl", "60", "0912406496"]) == 0
    assert main(["blacklist", "add", "+84912406496"]) == 0
    out = capsys.readouterr().out
    assert "84912406496 added to the blacklist for 1 min (60 s)" in out
    assert "84912406496 already on the blacklist: it now expires in 24 h (86400 s)" in out
    assert 86390 < store.ttl(BLACKLIST_KEY) <= 86400
    assert main(["vip", "add", "0912406496", "0912406496"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["84912406496 added to the VIP list", "84912406496 already on the VIP list"]


@pytest.mark.parametrize("ttl,expected", [("60", (55, 60)), ("0", (-1, -1))])
def test_blacklist_add_ttl(store, ttl: str, expected) -> None:
    """--ttl SECONDS sets the entry's TTL; --ttl 0 stores it without expiry."""
    assert main(["blacklist", "add", "--ttl", ttl, "+84912406496"]) == 0
    low, high = expected
    assert low <= store.ttl(BLACKLIST_KEY) <= high


def test_blacklist_ttl_default_comes_from_the_setting(store, monkeypatch) -> None:
    """CALLFLOW_BLACKLIST_TTL_S sets the default TTL of add."""
    monkeypatch.setenv("CALLFLOW_BLACKLIST_TTL_S", "120")
    assert main(["blacklist", "add", "0084912406496"]) == 0
    assert 115 < store.ttl(BLACKLIST_KEY) <= 120


def test_add_refuses_bad_numbers_and_adds_the_others(store, capsys) -> None:
    """A bad argument is reported by position, exit 2, and the good ones are still added."""
    assert main(["vip", "add", "0912406496", "abc", "0987654321"]) == 2
    assert store.smembers("phone:vip") == {"84912406496", "84987654321"}
    assert "argument 2: 'abc' is not a phone number" in capsys.readouterr().err


def test_remove_deletes_every_form_checkphone_would_find(store, capsys) -> None:
    """remove: entries in canonical, national and + forms all go; exit 0."""
    store.set("phone:blacklist:84912406496", "1")
    store.set("phone:blacklist:0912406496", "1")
    store.sadd("phone:vip", "+84912406496", "84987654321")
    assert main(["blacklist", "remove", "+84 912 406 496"]) == 0
    assert main(["vip", "remove", "0912406496"]) == 0
    assert list(store.scan_iter(match="phone:blacklist:*")) == []
    assert store.smembers("phone:vip") == {"84987654321"}
    assert "2 entries removed from the blacklist" in capsys.readouterr().out


def test_remove_of_a_number_not_listed_exits_1(store, capsys) -> None:
    """remove of a number on neither list: exit 1 and says so."""
    assert main(["vip", "remove", "0912406496"]) == 1
    assert "not on the VIP list" in capsys.readouterr().err


def test_list_prints_every_number_sorted(store, capsys) -> None:
    """list: one number per line, sorted, as stored."""
    store.sadd("phone:vip", "84987654321", "84912406496", "0911111111")
    assert main(["vip", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["0911111111", "84912406496", "84987654321"]


@pytest.mark.parametrize("number", ["0912406496", "+84912406496", "84912406496", "0084912406496"])
def test_check_exits_0_when_listed_in_any_form(store, capsys, number: str) -> None:
    """check: a number stored in national form is found from every written form; the policy is printed."""
    store.set("phone:blacklist:0912406496", "1")
    store.sadd("phone:vip", "0912406496")
    assert main(["blacklist", "check", number]) == 0
    assert main(["vip", "check", number]) == 0
    assert "policy blacklist (blacklisted: yes, vip: yes)" in capsys.readouterr().out


def test_check_exits_1_when_not_listed_and_2_for_bad_input(store, capsys) -> None:
    """check: 1 for a number not on the list (policy normal printed), 2 for text that is no number."""
    store.sadd("phone:vip", "84912406496")
    assert main(["blacklist", "check", "0912406496"]) == 1
    assert "policy vip" in capsys.readouterr().out
    assert main(["blacklist", "check", "not-a-number"]) == 2


def test_import_reports_bad_rows_by_line_and_imports_the_rest(store, tmp_path: Path, capsys) -> None:
    """import: header and blank rows skipped, bad rows reported with their line, the rest stored."""
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("\ufeffphone,name\n0912406496,An\n\n+84 987 654 321,Binh\nabc,x\n8.49124E+10\n1001\n",
                        encoding="utf-8")
    assert main(["blacklist", "import", "--ttl", "3600", str(csv_file)]) == 2
    assert sorted(k.split(":")[-1] for k in store.scan_iter(match="phone:blacklist:*")) == [
        "1001", "84912406496", "84987654321"]
    assert 3590 < store.ttl(BLACKLIST_KEY) <= 3600
    err = capsys.readouterr().err
    assert "line 5: 'abc' is not a phone number" in err and "line 6: '8.49124E+10'" in err
    assert "3 added for 1 h (3600 s), 2 refused" in err


def test_import_reads_semicolon_separated_files(store, tmp_path: Path, capsys) -> None:
    """What spreadsheets write in VN and EU locales: ';' between columns (and decimal commas in cells)."""
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("số điện thoại;ghi chú\n0912406496;An, VIP\n+84 987 654 321;1,5\n", encoding="utf-8")
    assert main(["vip", "import", str(csv_file)]) == 0
    assert store.smembers("phone:vip") == {"84912406496", "84987654321"}
    assert "2 added, 0 refused" in capsys.readouterr().err


def test_import_says_how_many_were_already_listed(store, tmp_path: Path, capsys) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("0912406496\n0987654321\n")
    store.sadd("phone:vip", "84912406496")
    assert main(["vip", "import", str(csv_file)]) == 0
    assert "2 added (1 of them already listed, renewed), 0 refused" in capsys.readouterr().err


def test_blacklist_export_then_import_keeps_each_entrys_remaining_ttl(store, tmp_path: Path, capsys) -> None:
    """export writes each entry's seconds left (0: no expiry); importing the file restores them."""
    store.set("phone:blacklist:84912406496", "1", ex=600)
    store.set("phone:blacklist:84987654321", "1")
    out = tmp_path / "blacklist.csv"
    assert main(["blacklist", "export", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "number,ttl_s" and rows[2] == "84987654321,0"
    assert rows[1].startswith("84912406496,") and 590 < int(rows[1].split(",")[1]) <= 600
    store.delete("phone:blacklist:84912406496", "phone:blacklist:84987654321")
    assert main(["blacklist", "import", str(out)]) == 0
    assert 590 < store.ttl("phone:blacklist:84912406496") <= 600
    assert store.ttl("phone:blacklist:84987654321") == -1 and store.get("phone:blacklist:84987654321") == "1"


def test_a_bad_ttl_cell_refuses_its_row(store, tmp_path: Path, capsys) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("number,ttl_s\n0912406496,soon\n0987654321,\n")
    assert main(["blacklist", "import", "--ttl", "120", str(csv_file)]) == 2
    assert "line 2: TTL 'soon' is not a whole number of seconds" in capsys.readouterr().err
    assert 110 < store.ttl("phone:blacklist:84987654321") <= 120


def test_import_of_a_large_file_shows_progress(store, tmp_path: Path, capsys) -> None:
    """25 000 rows: all stored (batched writes), progress lines on standard error, exit 0."""
    csv_file = tmp_path / "many.csv"
    csv_file.write_text("".join(f"09{n:08d}\n" for n in range(25000)))
    assert main(["vip", "import", str(csv_file)]) == 0
    assert store.scard("phone:vip") == 25000
    assert capsys.readouterr().err.count("so far") == 2


def test_import_of_a_missing_file_exits_2(store, tmp_path: Path, capsys) -> None:
    """import of a file that cannot be read: exit 2 naming the file."""
    assert main(["vip", "import", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_export_round_trips_through_import(store, tmp_path: Path, capsys) -> None:
    """export to stdout and to a file (header + numbers); the file imports back to the same list."""
    store.sadd("phone:vip", "84987654321", "84912406496")
    assert main(["vip", "export"]) == 0
    assert capsys.readouterr().out.splitlines() == ["number", "84912406496", "84987654321"]
    out = tmp_path / "vip.csv"
    assert main(["vip", "export", str(out)]) == 0
    store.delete("phone:vip")
    assert main(["vip", "import", str(out)]) == 0
    assert store.smembers("phone:vip") == {"84912406496", "84987654321"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("argv", [["blacklist", "add", "0912406496"], ["blacklist", "remove", "0912406496"],
                                  ["vip", "list"], ["vip", "check", "0912406496"], ["vip", "export"]])
def test_unreachable_redis_exits_3(unreachable, argv, capsys) -> None:
    """Every verb that needs Redis says it cannot be reached and exits 3."""
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "Redis cannot be reached at redis://127.0.0.1:1/0" in err  # says to what
    assert "no answer within the timeout" not in err and "Connection" in err  # and why
    assert "checkphone answers DEGRADED" not in err  # the server's start-up warning is not the command's


def test_import_with_redis_unreachable_exits_3(unreachable, tmp_path: Path, capsys) -> None:
    """import with Redis down: exit 3, not a partial success."""
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("0912406496\n")
    assert main(["blacklist", "import", str(csv_file)]) == 3


def test_a_negative_ttl_is_a_usage_error(cli_env, capsys) -> None:
    """--ttl -5 is refused by the parser (exit 2) before anything is written."""
    with pytest.raises(SystemExit) as exit_info:
        main(["blacklist", "add", "--ttl", "-5", "0912406496"])
    assert exit_info.value.code == 2
