"""Table of Kamailio core (global) parameters known to the config reader.

Types drive value conversion; defaults are Kamailio's where pykemi relies on
them (``None`` means "Kamailio's default, not modelled here").  A parameter
missing from the table is accepted with a warning, since pykemi implements
only part of Kamailio's core.

``effect`` says what setting it does in pykemi: ``works`` (the runtime reads it:
tests/test_param_effects.py checks each has a reader), ``none`` (accepted for
Kamailio configs; a start-up warning names it) or ``"partial: <how>"`` (warned
about with the note). New parameters have no effect until marked otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ...kemi.model import NO_EFFECT, WORKS


class PType(Enum):
    INT = "int"
    BOOL = "bool"
    STR = "str"
    INT_OR_STR = "int|str"
    LISTEN = "listen"
    ALIAS = "alias"


@dataclass(frozen=True)
class GlobalSpec:
    name: str
    type: PType
    default: str | int | bool | None = None
    multi: bool = False  # may be given many times; values accumulate in a list
    doc: str = ""
    effect: str = NO_EFFECT  # works | none | "partial: <how>" (pykemi.kemi.model.EFFECT_PATTERN)


# Kamailio's lexer turns these words into the numbers 1/0 everywhere.
BOOL_WORDS: dict[str, bool] = {
    "yes": True,
    "true": True,
    "on": True,
    "enable": True,
    "no": False,
    "false": False,
    "off": False,
    "disable": False,
}

# alternative spellings Kamailio accepts -> canonical name
ALIASES: dict[str, str] = {
    "loadpath": "mpath",
    "uid": "user",
    "gid": "group",
    "wdir": "workdir",
    "mem_dbg": "memdbg",
    "mem_log": "memlog",
    "shm_mem_size": "shm_mem",
}

_I, _B, _S, _IS = PType.INT, PType.BOOL, PType.STR, PType.INT_OR_STR

_TABLE: list[GlobalSpec] = [
    # logging
    GlobalSpec("debug", _I, 0, doc="log level threshold (L_WARN=0 ... L_DBG=3)", effect=WORKS),
    GlobalSpec(
        "log_stderror",
        _B,
        False,
        doc="log to stderr instead of syslog",
        effect="partial: pykemi logs to stderr (it has no syslog); 'no' only sends the logs "
        "of a detached router to /dev/null",
    ),
    GlobalSpec("log_facility", _S, "LOG_DAEMON"),
    GlobalSpec("log_name", _S),
    GlobalSpec("log_prefix", _S),
    GlobalSpec("log_prefix_mode", _I, 0),
    GlobalSpec("log_color", _B, False),
    GlobalSpec("log_engine_type", _S),
    GlobalSpec("log_engine_data", _S),
    GlobalSpec("corelog", _I, -1, doc="level of core messages (L_ERR)"),
    GlobalSpec("memdbg", _I, 3),
    GlobalSpec("memlog", _I, 3),
    GlobalSpec("mem_summary", _I),
    GlobalSpec("mem_safety", _I),
    GlobalSpec("mem_join", _I),
    GlobalSpec("mem_status_mode", _I),
    GlobalSpec("latency_limit_action", _I, 0),
    GlobalSpec("latency_limit_db", _I, 0),
    GlobalSpec("latency_log", _I),
    GlobalSpec("latency_cfg_log", _I),
    GlobalSpec("verbose_startup", _B, False),
    GlobalSpec("sip_parser_log", _I),
    GlobalSpec("sip_parser_log_oneline", _I),
    GlobalSpec("sip_parser_mode", _I),
    # processes
    GlobalSpec("fork", _B, True, effect=WORKS),
    GlobalSpec("fork_delay", _I, 0),
    GlobalSpec("children", _I, 8, doc="UDP worker processes per listener", effect=WORKS),
    GlobalSpec("tcp_children", _I, doc="TCP workers (default: children)"),
    GlobalSpec("sctp_children", _I),
    GlobalSpec("socket_workers", _I),
    GlobalSpec("async_workers", _I, 0),
    GlobalSpec("async_usleep", _I, 0),
    GlobalSpec("async_nonblock", _B, False),
    GlobalSpec("async_workers_group", _S),
    GlobalSpec("modinit_delay", _I, 0),
    GlobalSpec("exit_timeout", _I, 60),
    GlobalSpec("user", _S, effect=WORKS),
    GlobalSpec("group", _S, effect=WORKS),
    GlobalSpec("chroot", _S, effect=WORKS),
    GlobalSpec("workdir", _S),
    GlobalSpec("rundir", _S),
    GlobalSpec("run_dir", _S),
    GlobalSpec("mpath", _S, doc="module directory"),
    GlobalSpec("open_files_limit", _I),
    GlobalSpec("disable_core_dump", _B, False),
    GlobalSpec("shm_mem", _I),
    GlobalSpec("shm_force_alloc", _B, False),
    GlobalSpec("mlock_pages", _B, False),
    GlobalSpec("rt_policy", _I),
    GlobalSpec("rt_prio", _I),
    GlobalSpec("rt_timer1_policy", _I),
    GlobalSpec("rt_timer1_prio", _I),
    GlobalSpec("rt_timer2_policy", _I),
    GlobalSpec("rt_timer2_prio", _I),
    GlobalSpec("server_id", _I, 0),
    # sockets and addresses
    GlobalSpec("listen", PType.LISTEN, multi=True, effect=WORKS),
    GlobalSpec("alias", PType.ALIAS, multi=True, effect=WORKS),
    GlobalSpec("auto_aliases", _B, True),
    GlobalSpec(
        "port",
        _I,
        5060,
        doc="port of listen= addresses written without one",
        effect="partial: the port of listen= addresses written without one; a config "
        "without listen= serves 127.0.0.1:5060",
    ),
    GlobalSpec("advertised_address", _S),
    GlobalSpec("advertised_port", _I),
    GlobalSpec("auto_bind_ipv6", _B, False),
    GlobalSpec("bind_ipv6_link_local", _I, 0),
    GlobalSpec("ip_free_bind", _B, False),
    GlobalSpec("mhomed", _B, False),
    GlobalSpec("tos", _IS),
    GlobalSpec("pmtu_discovery", _I, 0),
    GlobalSpec("mcast", _S),
    GlobalSpec("mcast_loopback", _B, False),
    GlobalSpec("mcast_ttl", _I),
    GlobalSpec("sock_mode", _I),
    GlobalSpec("sock_user", _S),
    GlobalSpec("sock_group", _S),
    # UDP
    GlobalSpec("udp4_raw", _I, 0),
    GlobalSpec("udp4_raw_mtu", _I, 1500),
    GlobalSpec("udp4_raw_ttl", _I),
    GlobalSpec("udp_mtu", _I, 0),
    GlobalSpec("udp_mtu_try_proto", _S),
    # TCP / TLS / SCTP
    GlobalSpec("disable_tcp", _B, False),
    GlobalSpec("enable_tls", _B, False),
    GlobalSpec("disable_tls", _B, True),
    GlobalSpec("enable_sctp", _I, 2),
    GlobalSpec("disable_sctp", _B),
    GlobalSpec("tcp_connection_lifetime", _I, 120, doc="seconds", effect=WORKS),
    GlobalSpec(
        "tcp_max_connections", _I, 2048, doc="accepted + outgoing connections", effect=WORKS
    ),
    GlobalSpec("tls_max_connections", _I, 2048),
    GlobalSpec("tcp_accept_no_cl", _B, False),
    GlobalSpec("tcp_accept_aliases", _B, False),
    GlobalSpec("tcp_accept_haproxy", _B, False),
    GlobalSpec("tcp_rd_buf_size", _I, 4096),
    GlobalSpec("tcp_connect_timeout", _I, 10, doc="seconds for an outgoing connect", effect=WORKS),
    GlobalSpec("tcp_send_timeout", _I, 10, doc="seconds without write progress", effect=WORKS),
    GlobalSpec("tcp_async", _B, True),
    GlobalSpec("tcp_buf_write", _B),
    GlobalSpec(
        "tcp_conn_wq_max", _I, 32 * 1024, doc="bytes queued on one connection", effect=WORKS
    ),
    GlobalSpec(
        "tcp_wq_max", _I, 10 * 1024 * 1024, doc="bytes queued on all connections", effect=WORKS
    ),
    GlobalSpec("tcp_wq_timeout", _I),
    GlobalSpec("tcp_crlf_ping", _B, True),
    GlobalSpec("tcp_defer_accept", _I),
    GlobalSpec("tcp_delayed_ack", _B),
    GlobalSpec("tcp_fd_cache", _B),
    GlobalSpec("tcp_keepalive", _B),
    GlobalSpec("tcp_keepcnt", _I),
    GlobalSpec("tcp_keepidle", _I),
    GlobalSpec("tcp_keepintvl", _I),
    GlobalSpec("tcp_linger2", _I),
    GlobalSpec(
        "tcp_no_connect", _B, False, doc="never open outgoing TCP connections", effect=WORKS
    ),
    GlobalSpec("tcp_reuse_port", _B, False),
    GlobalSpec("tcp_source_ipv4", _S),
    GlobalSpec("tcp_source_ipv6", _S),
    GlobalSpec("tcp_syncnt", _I),
    GlobalSpec("tcp_script_mode", _I),
    GlobalSpec("tcp_clone_rcvbuf", _I),
    GlobalSpec("tls_threads_mode", _I, 0),
    # DNS
    GlobalSpec("dns", _B, False),
    GlobalSpec("rev_dns", _B, False),
    GlobalSpec("dns_try_ipv6", _B),
    GlobalSpec("dns_try_naptr", _B),
    GlobalSpec("dns_use_search_list", _B, True),
    GlobalSpec("dns_search_full_match", _B, True),
    GlobalSpec("dns_retr_time", _I, effect=WORKS),
    GlobalSpec("dns_retr_no", _I, effect=WORKS),
    GlobalSpec("dns_servers_no", _I),
    GlobalSpec("dns_srv_lb", _B),
    GlobalSpec("dns_srv_loadbalancing", _B),
    GlobalSpec("dns_naptr_ignore_rfc", _B, True),
    GlobalSpec("dns_udp_pref", _I),
    GlobalSpec("dns_tcp_pref", _I),
    GlobalSpec("dns_tls_pref", _I),
    GlobalSpec("dns_sctp_pref", _I),
    GlobalSpec("dns_cache_init", _B),
    GlobalSpec("dns_cache_flags", _I),
    GlobalSpec("dns_cache_negative_ttl", _I, effect=WORKS),
    GlobalSpec("dns_cache_min_ttl", _I, effect=WORKS),
    GlobalSpec("dns_cache_max_ttl", _I, effect=WORKS),
    GlobalSpec("dns_cache_mem", _I, effect=WORKS),
    GlobalSpec("dns_cache_gc_interval", _I),
    GlobalSpec("dns_cache_del_nonexp", _B, effect=WORKS),
    GlobalSpec("dns_cache_rec_pref", _I),
    GlobalSpec("use_dns_cache", _B),
    GlobalSpec("use_dns_failover", _B, False),
    GlobalSpec("dst_blocklist_init", _B),
    GlobalSpec("use_dst_blocklist", _B),
    # SIP processing
    GlobalSpec("server_header", _S, effect=WORKS),
    GlobalSpec("user_agent_header", _S),
    GlobalSpec("server_signature", _B, True),
    GlobalSpec("sip_warning", _B, False),
    GlobalSpec("check_via", _B, False),
    GlobalSpec("reply_to_via", _B, False, effect=WORKS),
    GlobalSpec("phone2tel", _I, 1),
    GlobalSpec("syn_branch", _B, True),
    GlobalSpec("http_reply_parse", _B, False),
    GlobalSpec("onsend_route_reply", _B, False),
    GlobalSpec("local_rport", _B, False),
    GlobalSpec("maxbuffer", _I, 262144),
    GlobalSpec("max_while_loops", _I, 100),
    GlobalSpec("max_recursive_level", _I, 256),
    GlobalSpec("max_branches", _I, 12, effect=WORKS),
    GlobalSpec("pv_buffer_size", _I, 8192),
    GlobalSpec("pv_buffer_slots", _I, 10),
    GlobalSpec("pv_cache_limit", _I),
    GlobalSpec("pv_cache_action", _I),
    GlobalSpec("sql_buffer_size", _I),
    GlobalSpec("stats_name_separator", _S, "_"),
    GlobalSpec("uri_host_extra_chars", _S),
    GlobalSpec("version_table", _S, "version"),
    GlobalSpec("xavp_via_params", _S),
    GlobalSpec("xavp_via_fields", _S),
    GlobalSpec("route_locks_size", _I),
    GlobalSpec("return_mode", _I),
    # KEMI callbacks
    # pykemi's own parameters
    GlobalSpec("kemi.slot_capacity", _I, 1024, effect=WORKS),
    GlobalSpec("kemi.rpc_socket", _S, "", effect=WORKS),
    GlobalSpec("kemi.dispatch", _B, False, effect=WORKS),
    GlobalSpec("kemi.route_time_limit", _I, 2000, effect=WORKS),
    GlobalSpec("kemi.worker_memory_limit", _I, 0, effect=WORKS),
    GlobalSpec("kemi.worker_watchdog", _I, 10000, effect=WORKS),
    GlobalSpec(
        "kemi.tcp_max_connections_per_ip", _I, 1024, doc="accepted, per source IP", effect=WORKS
    ),
    GlobalSpec(
        "kemi.tcp_max_pending_connects", _I, 128, doc="outgoing connects in progress", effect=WORKS
    ),
    GlobalSpec("kemi.onsend_route_callback", _S, "ksr_onsend_route", effect=WORKS),
    GlobalSpec("kemi.reply_route_callback", _S, "ksr_reply_route", effect=WORKS),
    GlobalSpec("kemi.event_route_callback", _S, "", effect=WORKS),
    GlobalSpec("kemi.received_route_callback", _S, "", effect=WORKS),
    GlobalSpec(
        "received_route_mode", _I, 0, doc="1: run kemi.received_route_callback", effect=WORKS
    ),
    GlobalSpec("kemi.pre_routing_callback", _S, "", effect=WORKS),
]

KNOWN_GLOBALS: dict[str, GlobalSpec] = {spec.name: spec for spec in _TABLE}


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)
