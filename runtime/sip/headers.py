"""Header names: compact forms, canonical spelling and the lookup key.

Every header is given a *key* once, at parse time: the lower-case full name
(compact forms expanded, so ``v`` and ``VIA`` both become ``via``). Lookups
compare keys with ``==`` and never lower-case per header again.
"""

from __future__ import annotations

import re

from ..core import log as klog

# RFC 3261 7.3.3 plus the compact forms registered by later RFCs (IANA sip-parameters).
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "d": "Request-Disposition",
    "j": "Reject-Contact",
    "y": "Identity",
    "n": "Identity-Info",
}

_FULL_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Remote-Party-ID",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)

# lower-case name (full or compact) -> canonical full name
CANONICAL: dict[str, str] = {n.lower(): n for n in _FULL_NAMES}
CANONICAL.update(COMPACT_FORMS)

# lower-case name (full or compact) -> key; filled further by header_key() as names are seen
_KEY: dict[str, str] = {n.lower(): n.lower() for n in _FULL_NAMES}
_KEY.update({c: full.lower() for c, full in COMPACT_FORMS.items()})
for _n in list(_KEY):
    # the spellings seen on the wire are cached as written too, so most lookups are one dict hit
    for _spelled in (CANONICAL[_n], _n.upper(), _n.title()):
        _KEY.setdefault(_spelled, _KEY[_n])
del _n, _spelled

# bound on names cached from the wire (a peer sending random names must not grow memory)
_KEY_CACHE_MAX = 4096
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")


def is_token(text: str) -> bool:
    """True when ``text`` is an RFC 3261 token (header names, methods)."""
    return _TOKEN.fullmatch(text) is not None


def parse_header_lines(txt: str) -> list[tuple[str, str]] | None:
    r"""Split ``"Name: value\\r\\n..."`` into (name, value) pairs; None if a line is malformed.

    Continuation lines (starting with white space) are folded into the previous header.
    """
    pairs: list[tuple[str, str]] = []
    for line in txt.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        if line[0] in " \t" and pairs:
            name, value = pairs[-1]
            pairs[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        # a bare CR left after splitting on LF would break the header on the wire
        if not sep or not is_token(name) or "\r" in value:
            klog.err(f"invalid header line [{line}]")
            return None
        pairs.append((name, value.strip()))
    return pairs


def header_key(name: str) -> str:
    """The lookup key of a header name: lower-case, compact forms expanded (``v`` -> ``via``)."""
    key = _KEY.get(name)
    if key is None:
        lower = name.lower()
        key = _KEY.get(lower, lower)
        if len(_KEY) < _KEY_CACHE_MAX:
            _KEY[name] = key
    return key


def canonical_name(name: str) -> str:
    """Canonical spelling (``v`` -> ``Via``, ``call-id`` -> ``Call-ID``); unknown: as given."""
    return CANONICAL.get(name.lower(), name)


def compact_form(name: str) -> str | None:
    """The compact form of a header name (``Via`` -> ``v``), or None when it has none."""
    return _COMPACT_OF.get(header_key(name))


_COMPACT_OF: dict[str, str] = {full.lower(): c for c, full in COMPACT_FORMS.items()}
