"""A Path vector as the Route set of a request (registrar lookup, tm branches).

Kamailio's registrar gives each destination-set entry the Path stored with its contact; tm
puts that Path in front of the branch's Route headers. The R-URI's Path goes into the request
itself (``$hdr(Route)`` sees it), so an extra branch swaps it for its own.
"""

from __future__ import annotations

from .message import SipMessage

# ctx.extra keys: the Path of the R-URI's contact, and of each added branch (URI -> Path)
RURI_PATH = "ruri_path"
BRANCH_PATH = "branch_path"


def prepend_route(msg: SipMessage, value: str) -> None:
    """``Route: value`` before the first Route header, or right after the last Via when there
    is none (where Kamailio inserts it). ValueError for a CR/LF in ``value``."""
    headers = msg.headers
    pos = next((i for i, h in enumerate(headers) if h.key == "route"), None)
    if pos is None:
        pos = 1 + max((i for i, h in enumerate(headers) if h.key == "via"), default=-1)
    msg.append_header("Route", value)  # checks the value
    headers.insert(pos, headers.pop())
    msg.invalidate()


def swap_path(msg: SipMessage, ruri_path: str, path: str) -> None:
    """An extra branch's copy of the request: the R-URI's Path Route off, its own ``path`` on."""
    if ruri_path:
        headers = msg.headers
        for i, h in enumerate(headers):
            if h.key == "route" and h.value == ruri_path:
                del headers[i]
                msg.invalidate()
                break
    if path:
        prepend_route(msg, path)
