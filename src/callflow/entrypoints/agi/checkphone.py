"""The ``checkphone`` route: a caller's number in, PHONE_POLICY and its companions out.

The variables are a contract with dialplans (docs/reference.md, AGI variables).

Decisions: ADR 0018, 0021, 0070 (how the variables are set), 0091 (the number in the log).
"""
from __future__ import annotations

import weakref
from typing import Any

import structlog

from callflow.containers import resolved
from callflow.domain.policy import PhonePolicy, PolicyResult
from callflow.entrypoints.agi.session import AgiSession, Route
from callflow.service_layer.check_phone import CheckPhone

#: time kept back from the lookup for the answer: one EXEC MSet, or four SET VARIABLEs where MSet is missing
ANSWER_RESERVE_S = 0.1
#: longest number shown in a log line (a caller id can be any text, of any length)
MAX_LOGGED_NUMBER = 40


async def build_checkphone_route(app: Any) -> CheckPhoneRoute:
    """The route wired from ``app`` (the Application container, resources initialised).

    Async: on real adapters the use case depends on the Redis client, an async Resource, so
    dependency-injector hands it out as an awaitable.
    """
    settings = app.settings()
    return CheckPhoneRoute(await resolved(app.check_phone()), await resolved(app.phone_policy()),
                           deadline_s=settings.checkphone_deadline_ms / 1000.0,
                           log_full_numbers=settings.log_numbers == "full")


class CheckPhoneRoute(Route):
    """Checks ``agi_arg_1`` when given and not blank, else ``agi_callerid``; sets the four variables.

    The lookup gets what is left of the deadline minus ``ANSWER_RESERVE_S``, so a slow Redis still
    leaves time to answer DEGRADED; past the deadline the server calls ``fallback``. A session whose
    answer was decided before the cut gets that answer again, never a default that contradicts it
    (a blacklisted caller is not let through because Asterisk was slow to acknowledge).
    """

    name = "checkphone"

    def __init__(self, check_phone: CheckPhone, policy: PhonePolicy, deadline_s: float,
                 log_full_numbers: bool = False) -> None:
        self.deadline_s = deadline_s
        self._shown = shown_in_full if log_full_numbers else masked
        self._check_phone = check_phone
        self._policy = policy
        self._decided: weakref.WeakKeyDictionary[AgiSession, PolicyResult] = weakref.WeakKeyDictionary()

    async def handle(self, session: AgiSession) -> None:
        within_s = max(0.0, session.remaining() - ANSWER_RESERVE_S)
        number = number_to_check(session)
        # on the session's summary line: "why was this caller blocked?" is answered from the log
        structlog.contextvars.bind_contextvars(number=self._shown(number))
        result = await self._check_phone.execute(number, within_s)
        self._decided[session] = result
        await answer(session, result)
        del self._decided[session]

    async def fallback(self, session: AgiSession, reason: str) -> None:
        """The decided answer if there is one; else ``error``: ERROR, ``deadline`` or ``overloaded``:
        DEGRADED, with the policy fail-open or fail-closed."""
        result = self._decided.pop(session, None)
        if result is None:
            result = self._policy.error() if reason == "error" else self._policy.degraded()
        await answer(session, result)


def masked(number: str) -> str:
    """``0912406496`` → ``0912***496``: enough to find a caller one already knows, not to read a list
    of callers off the log. Seven characters or fewer (extensions, short codes): as is."""
    if len(number) <= 7:
        return number
    return f"{number[:4]}***{number[-3:]}"


def shown_in_full(number: str) -> str:
    """The number as given (``CALLFLOW_LOG_NUMBERS=full``), cut at ``MAX_LOGGED_NUMBER`` characters."""
    return number if len(number) <= MAX_LOGGED_NUMBER else number[:MAX_LOGGED_NUMBER] + "..."


def number_to_check(session: AgiSession) -> str:
    """``agi_arg_1`` (``AGI(agi://.../checkphone,${CALLERID(num)})``) unless blank, else ``agi_callerid``."""
    if session.args and session.args[0].strip():
        return session.args[0]
    return session.env.get("agi_callerid", "")


async def answer(session: AgiSession, result: PolicyResult) -> None:
    """The four variables in one ``EXEC MSet``, CALLFLOW_STATUS last; one SET VARIABLE each, one at
    a time, where Asterisk lacks MSet."""
    structlog.contextvars.bind_contextvars(policy=result.policy)
    await session.set_variables(result.variables())
