"""PhoneNumber: every written form of a number reads as one canonical form (SPEC §1, ADR 0003/0020)."""
from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.domain.errors import InvalidPhoneNumber
from callflow.domain.phone import ANONYMOUS_CALLER_IDS, PhoneNumber, is_anonymous

VN = "VN"
SEPARATORS = st.sampled_from(["", " ", "-", ".", "/"])


def vn_numbers() -> st.SearchStrategy[str]:
    """National significant numbers phonenumbers finds valid in Vietnam (mobile and fixed line)."""
    prefixes = st.sampled_from(["3", "5", "7", "8", "9", "24", "28", "236", "251"])
    return st.builds(lambda p, rest: (p + rest)[:9] if p[0] in "35789" else (p + rest)[:10],
                     prefixes, st.text("0123456789", min_size=9, max_size=9)).filter(
        lambda nsn: phonenumbers.is_valid_number(phonenumbers.parse("+84" + nsn)))


def spaced(digits: str, separator: str) -> str:
    return separator.join(digits[i:i + 3] for i in range(0, len(digits), 3))


@pytest.mark.parametrize("written", ["0912406496", "+84912406496", "84912406496", "0084912406496",
                                     "+84 912 406 496", "091-240-6496", "(091) 240 6496", " 0912406496 "])
def test_the_spec_forms_are_one_number(written: str) -> None:
    """The four forms of the SPEC, and separated ones, read as 84912406496 with national 0912406496."""
    number = PhoneNumber.parse(written, VN)
    assert (number.canonical, number.national, number.recognised) == ("84912406496", "0912406496", True)
    assert number.raw == written.strip()


@given(vn_numbers(), st.sampled_from(["0", "84", "+84", "0084", "+84 "]), SEPARATORS)
def test_every_written_form_has_the_same_canonical(nsn: str, prefix: str, separator: str) -> None:
    """A Vietnamese number written nationally, internationally, with 00 or separators: one canonical."""
    number = PhoneNumber.parse(prefix + spaced(nsn, separator), VN)
    assert number.canonical == "84" + nsn
    assert number.national == "0" + nsn


@given(vn_numbers(), st.sampled_from(["0", "84", "+84", "0084"]))
def test_normalisation_is_idempotent(nsn: str, prefix: str) -> None:
    """The canonical form (and the national form) read back as the same number."""
    number = PhoneNumber.parse(prefix + nsn, VN)
    for form in (number.canonical, number.national):
        again = PhoneNumber.parse(form, VN)
        assert (again.canonical, again.national) == (number.canonical, number.national)


@given(st.text("0123456789", min_size=1, max_size=15))
def test_digit_strings_normalise_idempotently_or_are_refused(digits: str) -> None:
    """Any digit string but an invalid 00-number reads as digits whose canonical form is a fixed
    point, unless those bare digits are themselves a different valid Vietnamese number (846952889
    is both +84 6952889 and 0846952889: the default region wins)."""
    try:
        number = PhoneNumber.parse(digits, VN)
    except InvalidPhoneNumber:
        assert digits.startswith("00")
        return
    assert number.canonical.isdigit()
    again = PhoneNumber.parse(number.canonical, VN)
    if not number.recognised:
        assert again.canonical == number.canonical == digits
    elif again.canonical != number.canonical:
        as_national = phonenumbers.parse(number.canonical, VN)
        assert phonenumbers.is_valid_number(as_national)
        assert again.canonical == phonenumbers.format_number(as_national, phonenumbers.PhoneNumberFormat.E164)[1:]


@pytest.mark.parametrize("written,canonical", [("+33 1 23 45 67 89", "33123456789"),
                                                ("33123456789", "33123456789"),
                                                ("0016502530000", "16502530000"),
                                                ("16502530000", "16502530000")])
def test_foreign_numbers_are_canonical_e164_and_read_back(written: str, canonical: str) -> None:
    """A valid foreign number is canonical E.164; its bare digits read back as the same number."""
    number = PhoneNumber.parse(written, VN)
    assert number.canonical == canonical and number.national is None and number.recognised
    assert PhoneNumber.parse(number.canonical, VN).canonical == canonical


@pytest.mark.parametrize("written", ["1001", "113", "1900", "0912", "091240649612345"])
def test_short_and_unrecognised_numbers_are_looked_up_as_written(written: str) -> None:
    """Extensions, short codes, unknown ranges: canonical is the digits as written, no national form."""
    number = PhoneNumber.parse(written, VN)
    assert (number.canonical, number.national, number.recognised) == (written, None, False)
    assert number.lookup_forms() == (written,)


@pytest.mark.parametrize("written", ["abc", "0912406496x", "+", "()", "091*406", "+1001", "00123",
                                     "+84 1", "1234567890123456", "0912406496@example.com", "++84912406496",
                                     "٠٩١٢٤٠٦٤٩٦"])
def test_bad_input_is_refused_with_a_reason(written: str) -> None:
    """Letters, symbols, a bare '+', an invalid international number, > 15 digits: InvalidPhoneNumber."""
    with pytest.raises(InvalidPhoneNumber) as error:
        PhoneNumber.parse(written, VN)
    assert repr(written) in str(error.value)


def test_lookup_forms_are_distinct_canonical_first() -> None:
    """Canonical, national, +E.164, 00-international and the raw text, each once, canonical first."""
    assert PhoneNumber.parse("0084 912 406 496", VN).lookup_forms() == (
        "84912406496", "0912406496", "+84912406496", "0084912406496", "0084 912 406 496")
    assert PhoneNumber.parse("+84912406496", VN).lookup_forms() == (
        "84912406496", "0912406496", "+84912406496", "0084912406496")


@pytest.mark.parametrize("region,dialled_abroad", [("US", "01184912406496"), ("RU", "81084912406496")])
def test_the_international_form_uses_the_regions_prefix(region: str, dialled_abroad: str) -> None:
    """The form dialled from the default region uses its international prefix (011 in the US)."""
    number = PhoneNumber.parse("+84912406496", region)
    assert number.lookup_forms() == ("84912406496", "+84912406496", dialled_abroad)


@given(st.sampled_from(sorted(ANONYMOUS_CALLER_IDS) + ["", "  "]), st.booleans())
def test_anonymous_caller_ids_are_recognised_in_any_case(word: str, upper: bool) -> None:
    """anonymous, unknown, restricted, private, unavailable, withheld, blank: anonymous."""
    assert is_anonymous(word.upper() if upper else word.title())
    assert is_anonymous(None)


@pytest.mark.parametrize("text", ["0912406496", "anonymous1", "1001", "abc"])
def test_numbers_and_other_words_are_not_anonymous(text: str) -> None:
    """Only the listed words and blanks are anonymous: a number, or another word, is not."""
    assert not is_anonymous(text)


def test_a_very_long_caller_id_is_refused_before_parsing_and_not_remembered() -> None:
    """A 14 KB caller id: refused at once, and the memo of read numbers keeps no entry for it."""
    from callflow.domain.phone import MAX_TEXT_CHARS, _parse

    before = _parse.cache_info().currsize
    with pytest.raises(InvalidPhoneNumber, match="characters long"):
        PhoneNumber.parse("0" * 14000, "VN")
    with pytest.raises(InvalidPhoneNumber):
        PhoneNumber.parse("9" * (MAX_TEXT_CHARS + 1), "VN")
    assert _parse.cache_info().currsize == before
    assert PhoneNumber.parse("+84 (912) 406-496", "VN").canonical == "84912406496"
