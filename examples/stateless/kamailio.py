"""Stateless router: 200 to OPTIONS, 483 when Max-Forwards is exhausted, 404 otherwise."""

import KSR as KSR
import Router.Logger as Logger


def mod_init():
    KSR.info("===== from Python mod init\n")
    return kamailio()


class kamailio:
    def __init__(self):
        Logger.LM_INFO("===== kamailio.__init__\n")

    def child_init(self, rank):
        KSR.info(f"===== kamailio.child_init({rank})\n")
        return 0

    def ksr_request_route(self, msg):
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

    def ksr_reply_route(self, msg):
        KSR.info("===== response - from kamailio python script\n")
        return 1
