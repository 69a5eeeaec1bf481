"""Kamailio-style configuration reader (``kamailio.cfg`` with a KEMI ``cfgengine``).

``load_config(path)`` preprocesses the file (``#!define``, ``#!ifdef``,
includes, ``#!subst``) and returns a :class:`Config` with the global
parameters, listen sockets, loaded modules and their parameters.  Every error
is a :class:`ConfigError` whose text starts with ``FILE:LINE:``.
"""

from .globals import KNOWN_GLOBALS, GlobalSpec, PType
from .model import (
    KEMI_ENGINES,
    Config,
    ConfigError,
    GlobalScalar,
    GlobalValue,
    Listen,
    LoadModule,
    Location,
    ModParam,
)
from .parser import load_config, parse_config_text, parse_hostport

__all__ = [
    "KEMI_ENGINES",
    "KNOWN_GLOBALS",
    "Config",
    "ConfigError",
    "GlobalScalar",
    "GlobalSpec",
    "GlobalValue",
    "Listen",
    "LoadModule",
    "Location",
    "ModParam",
    "PType",
    "load_config",
    "parse_config_text",
    "parse_hostport",
]
