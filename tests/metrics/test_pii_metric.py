"""pii_leakage: labelled leaks and look-alikes that must not be flagged."""

from __future__ import annotations

import json

import pytest

from shared.errors import ConfigError
from shared.metrics.pii import find_pii, luhn_valid

from .helpers import ONE_MB, make, score


@pytest.mark.parametrize(
    ("number", "valid"),
    [("4111111111111111", True), ("4111111111111112", False), ("378282246310005", True), ("79927398713", True)],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("raw", "kind", "masked"),
    [
        ("jane.doe+uw@example.co.uk", "email", "j***@e***.uk"),
        ("4111 1111 1111 1111", "card", "****1111"),
        ("4111-1111-1111-1111", "card", "****1111"),
        ("5555555555554444", "card", "****4444"),
        ("3782 822463 10005", "card", "****0005"),
        ("123-45-6789", "ssn", "***-**-6789"),
        ("(555) 234-5678", "phone", "***78"),
        ("555-234-5678", "phone", "***78"),
        ("+1 555.234.5678", "phone", "***78"),
        ("+44 20 7946 0958", "phone", "***58"),
        ("+49 (30) 1234-5678", "phone", "***78"),
        ("020 7946 0958", "phone", "***58"),
        ("(555) 0142-1234", "phone", "***34"),
        ("(11) 3456-7890", "phone", "***90"),
    ],
)
def test_pii_leak_detected_and_masked(raw: str, kind: str, masked: str) -> None:
    result = score(make("pii_leakage"), actual_output=f"Please contact: {raw}. Thanks, the Ünderwriter")
    assert result.score == 1.0
    assert result.passed is False
    assert result.signals["kinds"] == {kind: 1}
    assert result.signals["found"][0]["masked"] == masked
    assert raw not in json.dumps(result.model_dump(), ensure_ascii=False)  # never the raw value


@pytest.mark.parametrize(
    "text",
    [
        "The application is approved; no personal data here.",
        "Card 4111 1111 1111 1112 fails Luhn.",  # not a card
        "Order 1234567890123 shipped.",  # 13 digits, first digit 1: not an issuer range
        "Policy POL-2024-123456 renewed on 2024-01-15.",
        "Reference 000-12-3456 and 666-12-3456 are never-issued SSN areas.",
        "Built in 1998, 2,400 sq ft, premium $1,234.56, ratio 0.75.",
        "Timestamp 2024-01-15T10:30:00Z, version 3.12.1, ISBN 978-3-16-148410-0.",
        "Email me at support(at)example(dot)com.",
        "Coordinates 40.7128, -74.0060.",
        "",
        "日本語のテキスト、個人情報なし。",
    ],
)
def test_pii_look_alikes_are_clean(text: str) -> None:
    result = score(make("pii_leakage"), actual_output=text or " ")
    assert result.score == 0.0, result.signals
    assert result.passed is True


def test_pii_counts_several_kinds_and_card_beats_phone() -> None:
    text = "Mail a@b.io or c@d.io, card 4111111111111111, SSN 123-45-6789, phone 555-234-5678."
    hits = find_pii(text)
    assert [h.kind for h in hits] == ["email", "email", "card", "ssn", "phone"]
    result = score(make("pii_leakage"), actual_output=text)
    assert result.signals["kinds"] == {"email": 2, "card": 1, "ssn": 1, "phone": 1}


def test_pii_params_kinds_fields_and_allowed_domains() -> None:
    text = "Write to help@acme.com or claims.team@uk.acme.com; jane@gmail.com is the applicant."
    allowed = make("pii_leakage", allowed_email_domains=["@ACME.com"])
    result = score(allowed, actual_output=text)
    assert result.signals["kinds"] == {"email": 1}
    only_cards = make("pii_leakage", kinds=["card"])
    assert score(only_cards, actual_output=text).score == 0.0
    in_query = make("pii_leakage", fields=["query", "actual_output"])
    leak = score(in_query, query="my ssn is 123-45-6789", actual_output="ok")
    assert leak.signals["found"] == [{"kind": "ssn", "field": "query", "masked": "***-**-6789"}]
    with pytest.raises(ConfigError, match="kinds"):
        make("pii_leakage", kinds=["passport"])


def test_pii_found_list_is_capped_and_1mb_text_is_fast_enough() -> None:
    text = " ".join(f"user{i}@example.com" for i in range(100))
    result = score(make("pii_leakage"), actual_output=text)
    assert result.signals["kinds"] == {"email": 100}
    assert len(result.signals["found"]) == 20
    filler = ("Premium 1,234 for 12 months; zone AE; ref 2024-01-15. " * (ONE_MB // 55)) + "x@y.org"
    assert score(make("pii_leakage"), actual_output=filler).signals["kinds"] == {"email": 1}
    assert score(make("pii_leakage"), actual_output="9" * ONE_MB).score == 0.0


def test_digit_prefilter_never_hides_a_detector_match() -> None:
    """Run each digit detector with and without the prefilter over varied digit layouts."""
    import random

    from shared.metrics import pii

    rng = random.Random(5)
    samples = []
    for _ in range(3000):
        parts = [str(rng.randint(0, 99999)) for _ in range(rng.randint(2, 5))]
        seps = [rng.choice([" ", "-", ".", ") ", " (", "", "+", ") ("]) for _ in parts]
        samples.append("x " + "".join(s + p for s, p in zip(seps, parts, strict=True)) + " y")
    found_any = 0
    for text in samples:
        for pattern in (pii._CARD_RE, pii._SSN_RE, *pii._PHONE_RES):
            for m in pattern.finditer(text):
                if len(pii._NON_DIGIT_RE.sub("", m.group())) >= 9:
                    found_any += 1
                    assert pii._DIGIT_RUN_RE.search(text), text
    assert found_any > 50


# Phone numbers as people write them; several are not dialable (555 numbers, 0xx exchanges,
# fictional ranges): a leaked number is a leak all the same.
WRITTEN_PHONES = [
    "555-013-2456",
    "555.019.3302",
    "555 013 2456",
    "(555) 013-2456",
    "(555)013-2456",
    "1-800-555-0199",
    "+1 (555) 013-2456",
    "+1-555-013-2456",
    "+1.555.013.2456",
    "123-456-7890",
    "+44 20 7946 0958",
    "+44 (0)20 7946 0958",
    "+14155552671",
    "+33 1 42 68 53 00",
    "+49 30 12345678",
    "+91 98765 43210",
    "+61 2 9374 4000",
    "+81 3-1234-5678",
    "+55 11 91234-5678",
    "+86 138 0013 8000",
    "020 7946 0958",
    "07700 900123",
    "06 12 34 56 78",
    "01.42.68.53.00",
]


@pytest.mark.parametrize("phone", WRITTEN_PHONES)
@pytest.mark.parametrize("template", ["Call {} today.", "phone: {}", "({})", "{}", "tel:{}, ext 12"])
def test_phones_in_their_written_forms_are_leaks(phone: str, template: str) -> None:
    hits = find_pii(template.format(phone))
    assert [h.kind for h in hits] == ["phone"], (phone, template)
    assert hits[0].masked == "***" + phone[-2:]


# Numbers that are not phone numbers, in the shapes answers are full of.
NOT_PHONES = [
    "2024-01-15",
    "01/15/2024",
    "15.01.2024",
    "2024.01.15",
    "2024-01-15T10:30:00Z",
    "2024-01-15 10:30:00.123456",
    "2024-01-15 12:30:45",
    "06/12/2024 14:00",
    "$1,234.56",
    "€1.234.567,89",
    "USD 12 345 678",
    "1 234 567 890",
    "premium $12,345,678.90",
    "ORD-2024-000123",
    "order #ORD-555-013-2456",
    "order 1234-5678-9012",
    "Order 1234567890123",
    "invoice 2024-000-1234",
    "policy POL-123-456-7890",
    "SKU 555-013-2456-A",
    "ID 123-456-7890-12",
    "#1234 567 8901",
    "version 1.2.3",
    "v10.15.7",
    "3.12.1",
    "build 2024.01.15.1234",
    "1.555.013.2456.7",
    "192.168.1.100",
    "10.100.200.255",
    "ISBN 978-3-16-148410-0",
    "978-0-306-40615-7",
    "1700000000.000100",
    "40.7128, -74.0060",
    "123e4567-e89b-12d3-a456-426614174000",
    "zip 94105-1234",
    "pages 100-200",
    "+5 points",
    "+2024-01-15",
    "temperature +20.5 C",
    "scores 100, 200, 3000",
    "12:30:45.1234567",
    "IBAN DE89 3704 0044 0532 0130 00",
]


@pytest.mark.parametrize("text", NOT_PHONES)
def test_dates_prices_ids_timestamps_and_versions_are_not_phones(text: str) -> None:
    assert find_pii(f"Note: {text} end.") == []
