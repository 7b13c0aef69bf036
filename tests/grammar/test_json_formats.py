"""String formats: every accepted string is valid, and valid strings are accepted."""

from __future__ import annotations

import datetime
import json
import random
import re
import uuid
import warnings

import pytest

from tests.grammar.walks import random_output
from tines.grammar import GrammarSpec
from tines.grammar.json_formats import DATE, DATE_TIME, EMAIL, HOSTNAME, IPV4, TIME, UUID


def test_date_is_exactly_the_calendar():
    for year in (1, 1900, 1999, 2000, 2023, 2024, 2100, 2400, 9999):
        for month in range(0, 14):
            for day in range(0, 33):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                try:
                    datetime.date(year, month, day)
                    valid = True
                except ValueError:
                    valid = False
                assert bool(re.fullmatch(DATE, text)) == valid, text
    assert not re.fullmatch(DATE, "0000-01-01")


def test_time_and_date_time():
    for ok in ["23:59:59Z", "00:00:00.123+05:30", "12:30:00z", "08:30:06-08:00"]:
        assert re.fullmatch(TIME, ok), ok
    for bad in ["24:00:00Z", "12:60:00Z", "12:00:00", "12:00:00+24:00", "08:30:06 PST"]:
        assert not re.fullmatch(TIME, bad), bad
    assert re.fullmatch(DATE_TIME, "2024-02-29T12:00:00Z")
    assert not re.fullmatch(DATE_TIME, "2023-02-29T12:00:00Z")
    for text in ["2024-02-29T12:00:00.5+01:00", "1999-12-31t23:59:59z"]:
        assert re.fullmatch(DATE_TIME, text)
        datetime.datetime.fromisoformat(text.upper())


def test_uuid():
    for _ in range(20):
        assert re.fullmatch(UUID, str(uuid.uuid4()))
    assert re.fullmatch(UUID, str(uuid.uuid4()).upper())
    assert not re.fullmatch(UUID, "2eb8aa08-aa98-11ea-b4aa-73b441d1638")


def test_email_and_hostname():
    for ok in ["bob_42@research.lab.university.edu", "first.last@sub.domain.co.uk",
               "a+b@x.io", "o'neil@example.com", "user@localhost"]:
        assert re.fullmatch(EMAIL, ok), ok
    for bad in ["a..b@x.com", ".a@x.com", "a@-x.com", "a@x-.com", "a b@x.com", "@x.com",
                "2962"]:
        assert not re.fullmatch(EMAIL, bad), bad
    assert re.fullmatch(HOSTNAME, "www.example.com")
    assert not re.fullmatch(HOSTNAME, "-a-host-name-that-starts-with--")
    assert not re.fullmatch(HOSTNAME, "a" * 64)


def test_ipv4():
    assert re.fullmatch(IPV4, "192.168.0.255")
    for bad in ["256.0.0.1", "01.2.3.4", "1.2.3", "127.0.0.0.1"]:
        assert not re.fullmatch(IPV4, bad)


REGEX_SCHEMA = {"type": "string", "format": "regex"}
VALID_REGEXES = ["^ab+c.*$", "^[a-zA-Z0-9_]{3,16}$", r"^\d{3}-\d{4}$",
                 r"^(?=.*[A-Z])(?=.*\d).{8,}$", "^(https?://)?[a-z]+\\.(com|org)$", r"\bword\b",
                 r'[^"\\]+', "(a|b)*?c", "x{10,12}", "[-a][a-][^^]", "(((a)))", "", "a|"]
INVALID_REGEXES = ["*", "[z-a]", "a{3,1}", "(", ")", "a**", "[]", "*a", "[a", "^*", "[^]",
                   "\\", r"\1"]
OUTSIDE_THE_SUBSET = ["(?<=a)b", "(?=a)*", "((((a))))"]  # valid, left out (see json_formats)


def test_regex_format_accepts_common_patterns_and_only_valid_ones(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.json_schema(REGEX_SCHEMA))
    for text in VALID_REGEXES:
        re.compile(text)
        assert g.accepts_text(json.dumps(text)), text
    for text in INVALID_REGEXES:
        with pytest.raises(re.error):
            re.compile(text)
    for text in INVALID_REGEXES + OUTSIDE_THE_SUBSET:
        assert not g.accepts_text(json.dumps(text)), text


def test_every_regex_the_format_generates_compiles(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.json_schema(REGEX_SCHEMA))
    rng = random.Random(0)
    for _ in range(300):
        text = json.loads(random_output(g, rng, 50, "a(()|)[]^$*+?{}0,1-\\.d:=!"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # e.g. "[a&&b]": still compiles
            re.compile(text)
