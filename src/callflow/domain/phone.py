"""Phone numbers as callers present them, and the forms they are stored and looked up under.

The canonical form is the E.164 number without ``+`` (``84912406496``): the key the admin CLI writes
and the event's ``phone_number``. Rules (ADR 0003, ADR 0020):

- a number ``phonenumbers`` finds valid, read in the default region (``0912406496``,
  ``84912406496``, ``+84912406496``, ``0084912406496``), or bare digits that are a valid number once
  read as international (``33123456789``), is canonical E.164;
- a number written internationally (``+``, ``00``) that is not valid is bad input;
- any other string of 1 to 15 digits (an extension ``1001``, a short code ``1900``, a range
  ``phonenumbers`` does not know yet) is an *unrecognised* number, looked up as written;
- separators (space ``-`` ``.`` ``(`` ``)`` ``/``) are ignored; any other character is bad input.

Anonymous caller ids (``is_anonymous``) are not numbers: callers check for them first.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Optional

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from callflow.domain.errors import InvalidPhoneNumber

#: caller ids that mean "no number": what Asterisk, SIP privacy and PSTN gateways send
ANONYMOUS_CALLER_IDS = frozenset({"anonymous", "unknown", "restricted", "private", "unavailable", "withheld"})
PARSED_NUMBERS_KEPT = 8192  # numbers remembered once read (a few MB: the callers of the calls in progress)
MAX_DIGITS = 15  # E.164's limit, for numbers looked up as written
#: longest text read as a number (separators included): anything longer is refused before parsing,
#: so neither the regular expressions nor the memo of read numbers ever hold a long text
MAX_TEXT_CHARS = 64
_SEPARATORS = re.compile(r"[\s\-.()/]")
_DIALLABLE = re.compile(r"\+?[0-9]+")


def is_anonymous(raw: Optional[str]) -> bool:
    """True for a missing or blank caller id, or one of ``ANONYMOUS_CALLER_IDS`` (any case)."""
    text = (raw or "").strip().lower()
    return text == "" or text in ANONYMOUS_CALLER_IDS


@dataclass(frozen=True)
class PhoneNumber:
    """A caller's number: canonical form, national form (numbers of the default region), raw text.

    ``recognised`` is False for a number looked up as written (extension, short code...);
    ``international_prefix`` is how the default region dials abroad (``00`` in Vietnam).
    """

    canonical: str
    raw: str
    recognised: bool
    international_prefix: str = "00"
    #: what phonenumbers read, and in which region: the national form is worked out from them when
    #: asked for (formatting is work an event never needs: it carries only the canonical form)
    _parsed: Optional[phonenumbers.PhoneNumber] = field(default=None, compare=False, repr=False)
    _region: str = field(default="", compare=False, repr=False)

    @functools.cached_property
    def national(self) -> Optional[str]:
        """How the number is dialled inside the default region (``0912406496``); None for a number
        of another country or one looked up as written."""
        return None if self._parsed is None else _national_form(self._parsed, self._region)

    @classmethod
    def parse(cls, raw: str, region: str) -> PhoneNumber:
        """Read ``raw`` in ``region``; raises ``InvalidPhoneNumber`` saying what is wrong.

        Memoised: reading a number runs phonenumbers' regular expressions, and the
        same caller's number is read by checkphone and again by each event of the call.
        """
        text = raw.strip()
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidPhoneNumber(f"{text[:24]!r}... is {len(text)} characters long: not a phone number "
                                     f"(at most {MAX_TEXT_CHARS})")
        return _parse(text, region)

    @classmethod
    def _read(cls, text: str, region: str) -> PhoneNumber:
        dialled = _SEPARATORS.sub("", text)
        if _DIALLABLE.fullmatch(dialled) is None:
            raise InvalidPhoneNumber(f"{text!r} is not a phone number: only digits, a leading '+' and separators")
        parsed = _valid_number(dialled, region)
        if parsed is not None:
            canonical = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)[1:]
            return cls(canonical, text, True, _international_prefix(region), parsed, region)
        if dialled.startswith(("+", "00")):
            raise InvalidPhoneNumber(f"{text!r} is written as an international number but is not a valid one")
        if len(dialled) > MAX_DIGITS:
            raise InvalidPhoneNumber(f"{text!r} has {len(dialled)} digits (at most {MAX_DIGITS})")
        return cls(canonical=dialled, raw=text, recognised=False)

    def lookup_forms(self) -> tuple[str, ...]:
        """The distinct forms other tools may have stored this number under, canonical first.

        Canonical, national (``0912406496``), ``+`` E.164 (``+84912406496``), dialled from the default
        region (``0084912406496``) and the raw text.
        """
        forms = [self.canonical, self.national or ""]
        if self.recognised:
            forms += ["+" + self.canonical, self.international_prefix + self.canonical]
        forms.append(self.raw)
        return tuple(dict.fromkeys(f for f in forms if f))


@functools.lru_cache(maxsize=PARSED_NUMBERS_KEPT)
def _parse(text: str, region: str) -> PhoneNumber:
    return PhoneNumber._read(text, region)


def _valid_number(dialled: str, region: str) -> Optional[phonenumbers.PhoneNumber]:
    """The valid number ``dialled`` denotes in ``region``, else as international digits, else None.

    Bare digits are tried as international so a canonical form of another country reads back as
    itself; digits starting with a national or international prefix never are.
    """
    parsed = _parse_valid(dialled, region)
    if parsed is None and not dialled.startswith(("+", "0")):
        parsed = _parse_valid("+" + dialled, None)
    return parsed


def _parse_valid(text: str, region: Optional[str]) -> Optional[phonenumbers.PhoneNumber]:
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    return parsed if phonenumbers.is_valid_number(parsed) else None


def _international_prefix(region: str) -> str:
    """The digits the region dials before a country code (``00``; ``011`` in the US)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
    for prefix in (metadata.preferred_international_prefix, metadata.international_prefix) if metadata else ():
        if prefix and prefix.isdigit():
            return prefix
    return "00"


def _national_form(parsed: phonenumbers.PhoneNumber, region: str) -> Optional[str]:
    """How the number is dialled inside ``region`` (``0912406496``); None for another country."""
    if parsed.country_code != phonenumbers.country_code_for_region(region):
        return None
    return re.sub(r"\D", "", phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL))
