"""String `format`s as regexes over the string's characters (all ASCII, no JSON escapes).

Each regex accepts only strings that are valid for the format, and is as complete as a
regular language allows:
- date: RFC 3339 full-date with real calendars (30/31-day months, Feb 29 only in leap
  years: divisible by 4, not by 100 unless by 400); year 0000 is excluded (Python's
  `date.fromisoformat` rejects it).
- time: RFC 3339 full-time `HH:MM:SS[.frac](Z|±HH:MM)`; seconds 00–59 (leap second 60 is
  left out: most validators, Python's included, reject it). `t`/`z` may be lowercase.
- date-time: date `T` time.
- uuid: 8-4-4-4-12 hex digits, either case.
- email: RFC 5321 dot-atom local part `@` a hostname (labels of letters, digits and inner
  hyphens, at most 63 characters each). Quoted local parts and IP literals are left out.
- hostname: RFC 1123 labels as above, separated by dots.
- ipv4: dotted quad, 0–255 without leading zeros.
- uri, uri-reference: RFC 3986 syntax (scheme required for uri); IP-literal hosts (`[::1]`)
  are left out.
- regex: a sound subset (classes, escapes, groups three deep, bounded quantifiers;
  see `regex_format`).
Other format names are annotations with a warning (see `json_schema.py`).
"""

from __future__ import annotations

from collections.abc import Callable

from .expr import ExprPool

# a format too big to write as one regex: (pool, compile a regex piece) -> expression
FormatBuilder = Callable[[ExprPool, Callable[[str], int]], int]

_YEAR = r"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YY = r"(?:0[48]|[2468][048]|[13579][26])"
_LEAP_YEAR = rf"(?:[0-9]{{2}}{_LEAP_YY}|{_LEAP_YY}00)"
_MONTH_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
              r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              r"|02-(?:0[1-9]|1[0-9]|2[0-8]))")
DATE = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
TIME = rf"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?{_OFFSET}"
DATE_TIME = rf"{DATE}[Tt]{TIME}"
_HEX = "[0-9a-fA-F]"
UUID = rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})*"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
EMAIL = rf"{_ATEXT}+(?:\.{_ATEXT}+)*@{HOSTNAME}"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"

# RFC 3986 (IP-literal hosts `[...]` left out): scheme ":" hier-part ["?" query] ["#" fragment]
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_SEGMENT_NZ_NC = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}@]|{_PCT})+"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_AUTHORITY = (rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?"
              rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*(?::[0-9]*)?")
_ABEMPTY = rf"(?:/{_SEGMENT})*"
_ABSOLUTE = rf"/(?:{_SEGMENT_NZ}{_ABEMPTY})?"
_TAIL = rf"(?:\?{_QUERY})?(?:#{_QUERY})?"
URI = (rf"[A-Za-z][A-Za-z0-9+\-.]*:(?://{_AUTHORITY}{_ABEMPTY}|{_ABSOLUTE}"
       rf"|{_SEGMENT_NZ}{_ABEMPTY})?{_TAIL}")
_RELATIVE = (rf"(?://{_AUTHORITY}{_ABEMPTY}|{_ABSOLUTE}|{_SEGMENT_NZ_NC}{_ABEMPTY})?"
             rf"{_TAIL}")
URI_REFERENCE = rf"(?:{URI}|{_RELATIVE})"

# The `regex` format: a sound subset of regular expressions. Every string it accepts compiles
# with Python's `re` (what `jsonschema` checks) and as an ECMA-262 RegExp, with or without the
# `u` flag. Literal characters, `.`, escapes (`\d`, `\w`, `\s`, ... and escaped
# metacharacters), classes with ordered ranges (`[a-z0-9_]`, `[^"]`), anchors and `\b`,
# alternation, groups (capturing or `(?:`) nested at most three deep (deeper nesting is not
# regular), lookaheads at the top level, and quantifiers `* + ? {n} {m,} {m,n}` with m <= n
# (at most 3 digits), optionally lazy. Backreferences, lookbehinds, named groups and flags
# are left out. The nesting is built from expressions (`regex_format`), not written out as
# one regex: each level would repeat the text of the levels inside it.
_PRINTABLE = [chr(i) for i in range(0x20, 0x7F)]


def _class_of(chars) -> str:
    """A regex character class of exactly these characters."""
    return "[" + "".join("\\" + c if c in "\\]^-[" else c for c in chars) + "]"


def _regex_atom() -> str:
    """One quantifiable atom: a literal, an escape, `.` or a character class."""
    lit = _class_of(c for c in _PRINTABLE if c not in "\\^$.|?*+()[]{}")
    esc = r"\\[dDwWsSnrtfv\\^$.|?*+()\[\]{}/]"
    class_esc = r"\\[dDwWsSbnrtfv\\^$.|?*+()\[\]{}/-]"
    ranges = "|".join(f"{c}-[{c}-{last}]" for first, last in (("0", "9"), ("a", "z"), ("A", "Z"))
                      for c in map(chr, range(ord(first), ord(last) + 1)))
    in_class = _class_of(c for c in _PRINTABLE if c not in "\\]-[")
    first_lit = _class_of(c for c in _PRINTABLE if c not in "\\]-[^")
    item = f"(?:{ranges}|{class_esc}|{in_class})"
    first = f"(?:{ranges}|{class_esc}|{first_lit})"
    # `^` right after `[` negates; `[^]` is "anything" to ECMA and unterminated to Python
    char_class = rf"\[(?:\^?-{item}*|{first}{item}*|\^{item}+)-?\]"
    return f"(?:{lit}|{esc}|\\.|{char_class})"


def _regex_quantifier() -> str:
    """An optional quantifier: `* + ?` or braces with m <= n, then an optional lazy `?`."""
    same1 = "|".join(f"{a},[{a}-9]" for a in "0123456789")
    same2 = "|".join(f"{a}[0-9],[{int(a) + 1}-9][0-9]" for a in "12345678")
    same2 += "|" + "|".join(f"{a}{b},{a}[{b}-9]" for a in "123456789" for b in "0123456789")
    num = "(?:0|[1-9][0-9]{0,2})"
    bounds = (rf"\{{(?:{num},?|{same1}|{same2}|[0-9],[1-9][0-9]{{1,2}}"
              r"|[1-9][0-9],[1-9][0-9]{2})\}")
    return rf"(?:(?:[*+?]|{bounds})\??)?"


_REGEX_ATOM, _REGEX_QUANTIFIER = _regex_atom(), _regex_quantifier()


def regex_format(pool: ExprPool, regex: Callable[[str], int]) -> int:
    """The `regex` format's expression; `regex(text)` compiles a piece over the caller's
    characters."""
    quant, close = regex(_REGEX_QUANTIFIER), regex(r"\)")
    open_group = regex(r"\((?:\?:)?")

    def group(body: int) -> int:
        return pool.cat_all([open_group, body, close, quant])

    # `|` may stand anywhere: empty alternatives are valid
    piece = pool.alt([pool.cat(regex(_REGEX_ATOM), quant), regex(r"\^|\$|\\[bB]|\|")])
    body = pool.rep(piece, 0, None)  # no groups inside
    for _ in range(2):  # groups one, then two deep inside
        body = pool.rep(pool.alt([piece, group(body)]), 0, None)
    lookahead = pool.cat_all([regex(r"\(\?[=!]"), body, close])  # unquantified: `u` forbids it
    return pool.rep(pool.alt([piece, group(body), lookahead]), 0, None)


FORMATS: dict[str, str | FormatBuilder] = {
    "date": DATE,
    "time": TIME,
    "date-time": DATE_TIME,
    "uuid": UUID,
    "email": EMAIL,
    "hostname": HOSTNAME,
    "ipv4": IPV4,
    "uri": URI,
    "uri-reference": URI_REFERENCE,
    "regex": regex_format,
}
