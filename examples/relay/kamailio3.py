"""Kamailio KEMI Python 3 relay example in the function style of app_python3s.

Module-level callbacks take the SIP message: ksr_request_route(msg) is the
request_route{}, the names given to KSR.tm.t_on_*() are module-level functions too.
The UAS address comes from the #!define UAS_URI of kamailio-python3.cfg.
"""

import KSR as KSR

uas = None  # KSR functions need a message: read the define on the first request


# SIP request routing
# equivalent of request_route{}
def ksr_request_route(msg):
    global uas
    KSR.info("===== request - from kamailio python3 script\n")

    if KSR.maxfwd.process_maxfwd(10) < 0:
        KSR.sl.send_reply(483, "Too Many Hops")
        return 1

    if uas is None:
        uas = KSR.kx.get_def("UAS_URI")
    KSR.pv.sets("$du", uas)
    KSR.tm.t_on_branch("ksr_branch_route_one")
    KSR.tm.t_on_reply("ksr_onreply_route_one")
    KSR.tm.t_on_failure("ksr_failure_route_one")

    if KSR.tm.t_relay() < 0:
        KSR.sl.send_reply(500, "Server error")
    return 1


# SIP response routing
# equivalent of reply_route{}
def ksr_reply_route(msg):
    KSR.info("===== response - from kamailio python3 script\n")
    return 1


# branch route callback
# equivalent of a branch_route{}
def ksr_branch_route_one(msg):
    KSR.info("===== branch route - from kamailio python3 script\n")
    return 1


# onreply route callback
# equivalent of an onreply_route{}
def ksr_onreply_route_one(msg):
    KSR.info("===== onreply route - from kamailio python3 script\n")
    return 1


# failure route callback
# equivalent of a failure_route{}
def ksr_failure_route_one(msg):
    KSR.info("===== failure route - from kamailio python3 script\n")
    return 1
