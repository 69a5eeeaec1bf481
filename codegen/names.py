"""Reserved words per target language, and how names are escaped.

Member names (``KSR.<module>.<fn>``) and parameter names must be usable in
every target. A reserved word is escaped by appending ``_``; a name that
collides with another after escaping is rejected at validation time.
"""

from __future__ import annotations

import keyword
import re

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

RESERVED: dict[str, frozenset[str]] = {
    "python": frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) - {"_"},
    "lua": frozenset(
        "and break do else elseif end false for function goto if in local nil not or repeat "
        "return then true until while".split()
    ),
    "js": frozenset(
        "await break case catch class const continue debugger default delete do else enum export "
        "extends false finally for function if implements import in instanceof interface let new "
        "null package private protected public return static super switch this throw true try "
        "typeof var void while with yield arguments eval".split()
    ),
    "ruby": frozenset(
        "BEGIN END alias and begin break case class def defined do else elsif end ensure false "
        "for if in module next nil not or redo rescue retry return self super then true undef "
        "unless until when while yield __FILE__ __LINE__ __ENCODING__".split()
    ),
    "sqlang": frozenset(
        "base break case catch class clone continue const default delete else enum extends for "
        "foreach function if in local null resume return switch this throw try typeof while "
        "yield constructor instanceof true false static rawcall __LINE__ __FILE__".split()
    ),
}

# names the generated code itself uses; a spec name must not shadow them
PRIVATE_PREFIX = "_kemi_"


def escape(name: str, lang: str) -> str:
    """The spelling of ``name`` in ``lang``: reserved words get a trailing underscore."""
    return name + "_" if name in RESERVED[lang] else name


def reserved_in(name: str) -> list[str]:
    """Languages in which ``name`` is reserved."""
    return [lang for lang, words in RESERVED.items() if name in words]
