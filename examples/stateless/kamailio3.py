"""Stateless router, function style (app_python3s): 200 to OPTIONS, 483 when Max-Forwards is
exhausted, 404 otherwise. The callbacks are module-level functions taking the SIP message."""

import KSR as KSR


def ksr_request_route(msg):
    KSR.info(f"===== request {msg.Method} from {msg.src_address[0]}\n")
    if KSR.maxfwd.process_maxfwd(10) < 0:
        KSR.sl.send_reply(483, "Too Many Hops")
        return 1
    if KSR.is_OPTIONS():
        KSR.sl.send_reply(200, "OK")
        KSR.x.exit()
    if KSR.is_ACK():
        return 1
    KSR.sl.send_reply(404, "Not Found")
    return 1


def ksr_reply_route(msg):
    KSR.info("===== response - from kamailio python3 script\n")
    return 1
