"""A private instance of the real Asterisk (22.10.1 in /opt/asterisk) for tests and the benchmark.

    with Pbx(dialplan) as pbx:                       # config in a temporary directory, started, booted
        call_id = pbx.place("test-checkphone", variables={"NUMBER": "0912406496"})
        report = pbx.wait_report(call_id)            # what the dialplan wrote with REPORT(...)
        assert report["CALLFLOW_STATUS"] == "OK"

Calls are placed by call files, written beside the spool and renamed into it (pbx_spool never reads
half a file): ``Local/ID@CONTEXT/n`` whose first leg waits; the dialplan in CONTEXT runs on the second
leg with ``${EXTEN}`` = ID. The dialplan hands results back through the ``[pbx-report]`` subroutine
this module adds: ``Gosub(pbx-report,s,1(NAME))`` appends NAME and the base64 of ``${NAME}`` to one
report file, ``Gosub(pbx-report,done,1)`` ends the call's report. Base64 keeps any value intact
(commas, parentheses, line breaks, non-ASCII). Values too long for one call-file line (1,024 bytes)
are split by ``place`` and joined again by ``Gosub(pbx-input,s,1(NAME))``.

Used as a context manager it stops the instance (``core stop now``, then SIGKILL) whatever happens.
"""
from __future__ import annotations

import base64
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
BINARY = Path(os.environ.get("CALLFLOW_ASTERISK_BINARY", "/opt/asterisk/sbin/asterisk"))
PREFIX = BINARY.parent.parent
INSTALL_SCRIPT = ROOT / "scripts" / "asterisk"

#: what FastAGI work through Local channels and call files needs, nothing that listens on a port
MODULES = (
    "res_speech", "res_agi", "pbx_config", "pbx_spool", "res_clioriginate", "app_stack", "app_verbose",
    "app_exec", "app_system", "app_softhangup", "func_base64", "func_env", "func_strings", "func_logic",
    "func_channel", "func_callerid", "func_cut", "func_global", "func_math", "func_shell",
    "func_hangupcause", "codec_ulaw", "codec_alaw", "format_sln", "format_wav", "format_pcm",
    "bridge_simple", "bridge_holding", "bridge_builtin_features", "res_timing_timerfd",
)
_CHUNK = 800  # base64 characters per call-file line, well within pbx_spool's 1,024-byte buffer
_ids = itertools.count(int(time.time() * 1000) % 10**9 * 1000)

HELPERS = """
[pbx-report]
; Gosub(pbx-report,s,1(NAME)): one line "ID NAME BASE64" in the report file; ID is the
; extension the call was placed to (Local/ID@CONTEXT), read from the channel's name
exten => s,1,Set(PBX_CALL=${IF($["${PBX_CALL}" = ""]?${CUT(CUT(CHANNEL,@,1),/,2)}:${PBX_CALL})})
 same => n,Set(FILE(${PBX_REPORT},,,al,u)=${PBX_CALL} ${ARG1} ${BASE64_ENCODE(${${ARG1}})})
 same => n,Return()
; Gosub(pbx-report,done,1): the call's report is complete
exten => done,1,Set(PBX_CALL=${IF($["${PBX_CALL}" = ""]?${CUT(CUT(CHANNEL,@,1),/,2)}:${PBX_CALL})})
 same => n,Set(FILE(${PBX_REPORT},,,al,u)=${PBX_CALL} . )
 same => n,Return()

[pbx-input]
; Gosub(pbx-input,s,1(NAME)): NAME = the value place() passed in pieces (NAME__0, NAME__1, ...)
exten => s,1,Set(PBX_B64=)
 same => n,Set(PBX_I=0)
 same => n(next),GotoIf($[${EXISTS(${${ARG1}__${PBX_I}})}]?:done)
 same => n,Set(PBX_B64=${PBX_B64}${${ARG1}__${PBX_I}})
 same => n,Set(PBX_I=$[${PBX_I} + 1])
 same => n,Goto(next)
 same => n(done),Set(${ARG1}=${BASE64_DECODE(${PBX_B64})})
 same => n,Return()
"""


class PbxUnavailable(RuntimeError):
    """Asterisk is not installed here and could not be installed."""


def installed() -> bool:
    """The binary is there and runs (``-V``: its libraries are installed too)."""
    if not (BINARY.is_file() and os.access(BINARY, os.X_OK)):
        return False
    try:
        return subprocess.run([str(BINARY), "-V"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_installed() -> None:
    """Runs ``scripts/asterisk install`` when the binary is missing; ``PbxUnavailable`` if it fails."""
    if installed():
        return
    result = subprocess.run([str(INSTALL_SCRIPT), "install"], capture_output=True, text=True, timeout=900)
    if result.returncode != 0 or not installed():
        raise PbxUnavailable(f"scripts/asterisk install exited {result.returncode} and {BINARY} -V does not run: "
                             f"{(result.stderr or result.stdout).strip()[-800:]}")


def strip_general_sections(dialplan: str) -> str:
    """``dialplan`` without its ``[general]`` and ``[globals]`` sections, so it can be ``#include``d
    (a sample dialplan may still carry them; the globals it needs are set by the includer)."""
    kept: list[str] = []
    skipping = False
    for line in dialplan.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            skipping = stripped[1:stripped.index("]")].strip().lower() in ("general", "globals")
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"


class Pbx:
    """One private Asterisk: its own directory, control socket, spool and report file."""

    def __init__(self, dialplan: str, globals_: Optional[Mapping[str, str]] = None,
                 includes: Mapping[str, str] = {}, modules: Sequence[str] = MODULES,
                 directory: Optional[Path] = None, verbose: int = 0, verbose_log: bool = False,
                 log_levels: str = "notice,warning,error") -> None:
        """``dialplan``: extensions.conf contexts; ``globals_``: its [globals]; ``includes``: file
        name -> text, written beside extensions.conf and ``#include``d at its end; ``verbose_log``:
        verbose messages (``agi set debug on`` shows every AGI line) go to ``log/verbose.log``."""
        self._own_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="callflow-pbx-")) if directory is None else directory
        self.dialplan = dialplan
        self.globals = dict(globals_ or {})
        self.includes = dict(includes)
        self.modules = tuple(modules)
        self.verbose = verbose
        self.verbose_log = verbose_log
        self.log_levels = log_levels
        self.process: Optional[subprocess.Popen] = None
        self.report_path = self.dir / "report.log"
        self._report_offset = 0
        self._partial = b""
        self.reports: dict[str, dict[str, str]] = {}
        self.finished: dict[str, float] = {}  # call id -> time.monotonic() its report was seen complete

    # --- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> Pbx:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def conf(self) -> Path:
        return self.dir / "etc" / "asterisk.conf"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def write_config(self) -> None:
        etc = self.dir / "etc"
        for sub in ("etc", "lib", "db", "keys", "spool/outgoing", "spool/staging", "run", "log", "cache", "agi"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        d = self.dir
        (etc / "asterisk.conf").write_text(
            "[directories]\n"
            f"astetcdir => {etc}\nastvarlibdir => {d / 'lib'}\nastdbdir => {d / 'db'}\n"
            f"astkeydir => {d / 'keys'}\nastspooldir => {d / 'spool'}\nastrundir => {d / 'run'}\n"
            f"astlogdir => {d / 'log'}\nastcachedir => {d / 'cache'}\nastagidir => {d / 'agi'}\n"
            f"astmoddir => {PREFIX / 'lib/asterisk/modules'}\nastdatadir => {PREFIX / 'var/lib/asterisk'}\n"
            f"astsbindir => {PREFIX / 'sbin'}\n"
            "[options]\nmaxload = 0\nhideconnect = yes\ntransmit_silence = no\n"
        )
        (etc / "modules.conf").write_text(
            "[modules]\nautoload = no\n" + "".join(f"load => {m}.so\n" for m in self.modules))
        (etc / "logger.conf").write_text(
            f"[general]\n[logfiles]\nmessages.log => {self.log_levels}\n"
            + ("verbose.log => verbose\n" if self.verbose_log else ""))
        for name in ("cdr.conf", "cel.conf", "manager.conf", "http.conf", "ccss.conf", "features.conf",
                     "indications.conf", "udptl.conf", "acl.conf", "rtp.conf"):
            (etc / name).write_text("")
        (etc / "cdr.conf").write_text("[general]\nenable = no\n")
        (etc / "cel.conf").write_text("[general]\nenable = no\n")
        (etc / "pbx_spool.conf").write_text("")
        if not self.report_path.exists():  # FILE()'s line mode appends only to a file that exists
            self.report_path.write_bytes(b"")
        for name, text in self.includes.items():
            (etc / name).write_text(text)
        globals_text = f"PBX_REPORT={self.report_path}\n" + "".join(f"{k}={v}\n" for k, v in self.globals.items())
        include_lines = "".join(f"#include \"{etc / name}\"\n" for name in self.includes)
        (etc / "extensions.conf").write_text(
            "[general]\nstatic=yes\nwriteprotect=yes\n\n[globals]\n" + globals_text + "\n"
            + HELPERS + "\n" + self.dialplan + "\n" + include_lines)

    def start(self, timeout_s: float = 60.0) -> None:
        ensure_installed()
        self.write_config()
        log = open(self.dir / "console.log", "wb")
        args = [str(BINARY), "-C", str(self.conf), "-f", "-n", "-q"]
        if self.verbose:
            args[-1:] = ["-" + "v" * self.verbose]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"asterisk exited ({self.process.returncode}) at start: {self.console_tail()}")
            if (self.dir / "run" / "asterisk.ctl").exists():
                result = self._rx("core waitfullybooted", check=False, timeout_s=max(1.0, deadline - time.monotonic()))
                if result.returncode == 0:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"asterisk did not boot in {timeout_s} s: {self.console_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                subprocess.run([str(BINARY), "-C", str(self.conf), "-rx", "core stop now"],
                               capture_output=True, timeout=10)
                process.wait(10)
            except (subprocess.TimeoutExpired, OSError):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if self._own_dir and os.environ.get("CALLFLOW_PBX_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def console_tail(self, lines: int = 30) -> str:
        texts = []
        for name in ("console.log", "log/messages.log"):
            path = self.dir / name
            if path.exists():
                texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(texts)

    # --- control ----------------------------------------------------------------------------------
    def _rx(self, command: str, check: bool = True, timeout_s: float = 20.0) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BINARY), "-C", str(self.conf), "-rx", command],
                                capture_output=True, text=True, timeout=timeout_s)
        if check and result.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed: {result.stdout}{result.stderr}")
        return result

    def cli(self, command: str) -> str:
        """One CLI command over the control socket; its output."""
        return self._rx(command).stdout

    def reload_dialplan(self, dialplan: Optional[str] = None) -> None:
        if dialplan is not None:
            self.dialplan = dialplan
        self.write_config()
        self.cli("dialplan reload")

    # --- calls ------------------------------------------------------------------------------------
    def place(self, context: str, variables: Mapping[str, str] = {}, wait_s: int = 30,
              call_id: Optional[str] = None) -> str:
        """A call into ``context`` (extension = the returned call id); ``variables`` are set on the
        channel before the dialplan runs (any value: passed as base64 pieces, decoded by the
        ``pbx-input`` subroutine on demand, or used as is when plain)."""
        call_id = call_id or str(next(_ids))
        lines = [f"Channel: Local/{call_id}@{context}/n", "Application: Wait", f"Data: {wait_s}",
                 "MaxRetries: 0"]
        for name, value in variables.items():
            if _plain(value):
                lines.append(f"Setvar: {name}={value}")
            encoded = base64.b64encode(value.encode("utf-8", "surrogateescape")).decode()
            for n, start in enumerate(range(0, max(len(encoded), 1), _CHUNK)):
                lines.append(f"Setvar: {name}__{n}={encoded[start:start + _CHUNK]}")
        staging = self.dir / "spool" / "staging" / f"{call_id}.call"
        staging.write_text("\n".join(lines) + "\n")
        os.rename(staging, self.dir / "spool" / "outgoing" / f"{call_id}.call")
        return call_id

    def originate(self, context: str, call_id: Optional[str] = None, wait_s: int = 30) -> str:
        """A call placed with the CLI's ``channel originate`` instead of a call file (no variables)."""
        call_id = call_id or str(next(_ids))
        self.cli(f"channel originate Local/{call_id}@{context}/n application Wait {wait_s}")
        return call_id

    # --- reports ----------------------------------------------------------------------------------
    def new_lines(self) -> list[bytes]:
        """The complete lines the dialplan appended to the report file since the last read."""
        try:
            with open(self.report_path, "rb") as f:
                f.seek(self._report_offset)
                data = f.read()
        except FileNotFoundError:
            return []
        if not data:
            return []
        self._report_offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return lines

    def poll_reports(self) -> list[str]:
        """Reads what ``pbx-report`` appended since the last poll; the call ids completed by it."""
        done = []
        now = time.monotonic()
        for raw in self.new_lines():
            parts = raw.decode("ascii", "replace").split(" ")
            if len(parts) < 2:
                continue
            call_id, name = parts[0], parts[1]
            if name == ".":
                self.finished[call_id] = now
                done.append(call_id)
                continue
            value = base64.b64decode(parts[2]) if len(parts) > 2 and parts[2] else b""
            self.reports.setdefault(call_id, {})[name] = value.decode("utf-8", "surrogateescape")
        return done

    def wait_report(self, call_id: str, timeout_s: float = 20.0) -> dict[str, str]:
        """The values the call reported, once its report is complete."""
        deadline = time.monotonic() + timeout_s
        while call_id not in self.finished:
            self.poll_reports()
            if call_id in self.finished:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"call {call_id} reported nothing complete in {timeout_s} s "
                                   f"(so far {self.reports.get(call_id)}): {self.console_tail(15)}")
            time.sleep(0.01)
        return self.reports.get(call_id, {})

    def wait_reports(self, call_ids: Iterable[str], timeout_s: float = 30.0) -> dict[str, dict[str, str]]:
        return {call_id: self.wait_report(call_id, timeout_s) for call_id in list(call_ids)}


def _plain(value: str) -> bool:
    """Safe as is on a call-file line and in a dialplan expression."""
    return len(value) <= 200 and all(c.isalnum() and c.isascii() or c in "._-:/+@" for c in value)
