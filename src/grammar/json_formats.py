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
- regex: a sound subset (anchors, literal characters and `.`, single quantifiers).
Other format names are annotations with a warning (see `json_schema.py`).
"""

from __future__ import annotations

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

# A sound subset of regular expressions (valid for Python's `re` and ECMA-262): optional
# anchors around literal characters and `.`, each with at most one `*`, `+` or `?`. Groups,
# classes, braces and escapes are left out (nesting is not regular; escapes need JSON ones).
_REGEX_ATOM = r"[A-Za-z0-9 _\-.,:;/@#%&=<>!'~`]"
REGEX = rf"\^?(?:{_REGEX_ATOM}[*+?]?)*\$?"

FORMATS: dict[str, str] = {
    "date": DATE,
    "time": TIME,
    "date-time": DATE_TIME,
    "uuid": UUID,
    "email": EMAIL,
    "hostname": HOSTNAME,
    "ipv4": IPV4,
    "uri": URI,
    "uri-reference": URI_REFERENCE,
    "regex": REGEX,
}
