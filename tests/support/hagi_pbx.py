"""A private Asterisk (``/opt/asterisk``) that resolves names through a private dnsmasq, for ``hagi://``.

dnsmasq serves the SRV records on a loopback address of its own (port 53 there); Asterisk runs in
a private mount namespace whose ``/etc/resolv.conf`` names that address, so nothing of the
machine's resolver changes. Calls are placed with call files; each call's dialplan writes one line
(its times, ``AGISTATUS``, ``CALLFLOW_STATUS``, ``PHONE_POLICY``) to a file named after its unique id.
Needs root (Asterisk, the mount namespace, port 53), dnsmasq and unshare: ``available()`` says;
``install_if_missing()`` installs what it can first.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

ASTERISK = Path("/opt/asterisk/sbin/asterisk")
MODULES = ("res_speech", "res_agi", "pbx_config", "pbx_spool", "func_env", "func_strings", "func_logic",
           "res_timing_timerfd")
DNS_ADDRESS = "127.0.25.53"  # a loopback address of its own: port 53 there is free of any other resolver


def available() -> str:
    """Empty when the harness can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root (Asterisk, a mount namespace, port 53)"
    for tool in ("dnsmasq", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not ASTERISK.exists():
        return f"{ASTERISK} is not installed (see the project's Asterisk notes)"
    return ""


def install_if_missing() -> str:
    """``available()`` after ``scripts/asterisk install`` (Asterisk and dnsmasq-base) when something
    is missing and this is root; why not, when it still cannot run."""
    from bench.pbx import INSTALL_SCRIPT

    why = available()
    if why and os.geteuid() == 0:
        result = subprocess.run([str(INSTALL_SCRIPT), "install"], capture_output=True, text=True, timeout=900)
        why = available()
        if why and result.returncode != 0:
            why += f"; scripts/asterisk install: {(result.stderr or result.stdout).strip()[-400:]}"
    return why


class Dnsmasq:
    def __init__(self, workdir: Path, name: str, targets: list[tuple[int, int, int]]) -> None:
        """``targets``: (port, priority, weight) of 127.0.0.1 for ``_agi._tcp.NAME``."""
        records = [f"--srv-host=_agi._tcp.{name},127.0.0.1,{port},{priority},{weight}"
                   for port, priority, weight in targets]
        self._argv = ["dnsmasq", "--keep-in-foreground", "--port=53", f"--listen-address={DNS_ADDRESS}",
                      "--bind-interfaces", "--no-resolv", "--no-hosts", f"--pid-file={workdir / 'dnsmasq.pid'}",
                      "--log-facility=-", *records]
        self._log = open(workdir / "dnsmasq.log", "wb")
        self._process: subprocess.Popen[bytes] = subprocess.Popen(self._argv, stdout=self._log, stderr=self._log)
        time.sleep(0.3)
        if self._process.poll() is not None:
            raise RuntimeError(f"dnsmasq did not start: {(workdir / 'dnsmasq.log').read_text()}")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        self._log.close()


_DIALPLAN = """
[hagi-test]
exten => s,1,Answer(,i)
 same => n,Set(STARTED=${{STRFTIME(,,%s.%6q)}})
 same => n,Set(CALLFLOW_STATUS=)
 same => n,Set(PHONE_POLICY=)
 same => n,AGI({url}/checkphone,0912406496)
 same => n,Set(STATUS=${{IF($["${{CALLFLOW_STATUS}}" = ""]?-:${{CALLFLOW_STATUS}})}})
 same => n,Set(POLICY=${{IF($["${{PHONE_POLICY}}" = ""]?-:${{PHONE_POLICY}})}})
 same => n,Set(FILE({results}/${{UNIQUEID}})=${{STARTED}} ${{STRFTIME(,,%s.%6q)}} ${{AGISTATUS}} ${{STATUS}} ${{POLICY}})
 same => n,Hangup()
"""


class Pbx:
    """One Asterisk in ``workdir``, its dialplan calling ``url`` (``hagi://NAME``) per call."""

    def __init__(self, workdir: Path, url: str) -> None:
        self.dir = workdir
        self.results = workdir / "results"
        self.results.mkdir(parents=True)
        (workdir / "staging").mkdir()
        dirs = {name: workdir / name for name in ("etc", "lib", "db", "keys", "spool", "run", "log", "cache", "agi")}
        for path in dirs.values():
            path.mkdir()
        self.outgoing = dirs["spool"] / "outgoing"
        self.outgoing.mkdir()
        self.conf = dirs["etc"] / "asterisk.conf"
        self.conf.write_text(
            "[directories]\n"
            f"astetcdir => {dirs['etc']}\nastvarlibdir => {dirs['lib']}\nastdbdir => {dirs['db']}\n"
            f"astkeydir => {dirs['keys']}\nastspooldir => {dirs['spool']}\nastrundir => {dirs['run']}\n"
            f"astlogdir => {dirs['log']}\nastcachedir => {dirs['cache']}\nastagidir => {dirs['agi']}\n"
            "astmoddir => /opt/asterisk/lib/asterisk/modules\nastdatadir => /opt/asterisk/var/lib/asterisk\n"
            "astsbindir => /opt/asterisk/sbin\n[options]\nmaxcalls => 2000\n")
        (dirs["etc"] / "modules.conf").write_text(
            "[modules]\nautoload = no\n" + "".join(f"load => {m}.so\n" for m in MODULES))
        (dirs["etc"] / "logger.conf").write_text("[logfiles]\nmessages => notice,warning,error\n")
        (dirs["etc"] / "extensions.conf").write_text(_DIALPLAN.format(url=url, results=self.results))
        for name in ("cdr.conf", "cel.conf", "manager.conf", "http.conf"):
            (dirs["etc"] / name).write_text("")
        resolv = workdir / "resolv.conf"
        resolv.write_text(f"nameserver {DNS_ADDRESS}\noptions timeout:1 attempts:1\n")
        script = (f"mount --bind {resolv} /etc/resolv.conf && "
                  f"exec {ASTERISK} -C {self.conf} -f -n")
        self._out = open(workdir / "asterisk.out", "wb")
        self._process: subprocess.Popen[bytes] = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdout=self._out, stderr=self._out, stdin=subprocess.DEVNULL)
        self._seq = 0
        self.rx("core waitfullybooted", timeout=60)

    def rx(self, command: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run([str(ASTERISK), "-C", str(self.conf), "-rx", command],
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode == 0 or time.monotonic() > deadline:
                return done.stdout
            if self._process.poll() is not None:
                raise RuntimeError(f"Asterisk ended: {(self.dir / 'asterisk.out').read_text()[-2000:]}")
            time.sleep(0.2)

    def place(self) -> None:
        """One call (write then rename: pbx_spool never reads half a file)."""
        self._seq += 1
        staged = self.dir / "staging" / f"{self._seq}.call"
        staged.write_text("Channel: Local/s@hagi-test/n\nApplication: Wait\nData: 1\n")
        os.rename(staged, self.outgoing / staged.name)

    def outcomes(self) -> dict[str, tuple[float, float, str, str, str]]:
        """{unique id: (started, ended, AGISTATUS, CALLFLOW_STATUS or -, PHONE_POLICY or -)}."""
        found = {}
        for path in self.results.iterdir():
            parts = path.read_text().split()
            if len(parts) == 5:
                found[path.name] = (float(parts[0]), float(parts[1]), parts[2], parts[3], parts[4])
        return found

    def stop(self) -> None:
        if self._process.poll() is None:
            try:
                self.rx("core stop now", timeout=10)
            except (subprocess.TimeoutExpired, RuntimeError):
                pass
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._out.close()
