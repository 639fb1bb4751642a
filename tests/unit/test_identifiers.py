"""Values that go into Redis keys and routing keys (domain/identifiers, ADR 0030)."""
from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.domain.errors import InvalidEvent
from callflow.domain.identifiers import (
    MAX_IDENTIFIER_LENGTH,
    customer_id_problem,
    identifier_problem,
    is_identifier,
    require_identifier,
)

ALLOWED = string.ascii_letters + string.digits + "_.-"
identifiers = st.text(alphabet=ALLOWED, min_size=1, max_size=MAX_IDENTIFIER_LENGTH)


@given(identifiers)
def test_allowed_characters_within_the_length_are_accepted(value):
    """Any non-empty string of [A-Za-z0-9_.-] up to the limit is an identifier, returned unchanged."""
    assert is_identifier(value)
    assert require_identifier("CUSTOMER_ID", value) == value


@given(st.text(min_size=1, max_size=80).filter(lambda v: any(c not in ALLOWED for c in v)))
def test_any_other_character_is_refused(value):
    """A single character outside the allowed set is enough to refuse the value."""
    assert not is_identifier(value)
    with pytest.raises(InvalidEvent):
        require_identifier("CUSTOMER_ID", value)


@pytest.mark.parametrize(
    "value, words",
    [
        ("", "is missing"),
        ("a#b", "'#'"),
        ("a*", "'*'"),
        ("a b", "' '"),
        ("a\nb", "'\\n'"),
        ("a:b", "':'"),
        ("Nguyễn", "'ễ'"),
        ("x" * 300, "300 characters long"),
        ("x" * (MAX_IDENTIFIER_LENGTH + 1), f"at most {MAX_IDENTIFIER_LENGTH}"),
    ],
)
def test_refusals_say_why(value, words):
    """Each refusal names the value and the reason: missing, too long, or the first bad character."""
    problem = identifier_problem("CUSTOMER_ID", value)
    assert problem.startswith("CUSTOMER_ID ")
    assert words in problem
    with pytest.raises(InvalidEvent) as refused:
        require_identifier("CUSTOMER_ID", value)
    assert refused.value.reason == problem


def test_longest_identifier_is_accepted():
    """The limit itself is allowed: MAX_IDENTIFIER_LENGTH characters."""
    assert is_identifier("9" * MAX_IDENTIFIER_LENGTH)


@pytest.mark.parametrize("value", ["invalid", "INVALID", "inValid"])
def test_invalid_is_reserved_as_a_customer_id(value):
    """``invalid`` names callflow's own queue of refused events: never a customer's, in any case."""
    assert "reserved" in customer_id_problem("CUSTOMER_ID", value)
    assert identifier_problem("CALL_STATUS", value) == ""  # only customer ids are reserved


@pytest.mark.parametrize("value", ["invalids", "in-valid", "11223344", "invalid_2"])
def test_names_near_the_reserved_one_are_customer_ids(value):
    assert customer_id_problem("CUSTOMER_ID", value) == ""
