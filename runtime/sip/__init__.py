"""SIP message layer: parsing, headers, URIs and stateless replies."""

from .headers import COMPACT_FORMS, canonical_name, header_key
from .message import (
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    Header,
    SipMessage,
    SipParseError,
    Via,
    frame_length,
    parse_message,
    parse_via,
)
from .nameaddr import NameAddr, parse_name_addr
from .reply import gen_to_tag, make_reply, relayed_reply_address, reply_address
from .uri import SipUri, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "MAX_HEADERS",
    "MAX_MESSAGE_SIZE",
    "Header",
    "NameAddr",
    "SipMessage",
    "SipParseError",
    "SipUri",
    "Via",
    "canonical_name",
    "frame_length",
    "gen_to_tag",
    "header_key",
    "make_reply",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "relayed_reply_address",
    "reply_address",
]
