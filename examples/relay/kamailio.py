"""Kamailio KEMI Python relay example; the UAS host:port comes from #!define UAS_URI."""

import KSR as KSR
import Router.Logger as Logger


def dumpObj(obj):
    for attr in dir(obj):
        Logger.LM_INFO(f"obj.{attr} = {getattr(obj, attr)}\n")


def mod_init():
    KSR.info("===== from Python mod init\n")
    return kamailio()


class kamailio:
    def __init__(self):
        KSR.info("===== kamailio.__init__\n")
        self.uas = None  # KSR functions need a message: read the define on the first request

    def child_init(self, rank):
        KSR.info(f"===== kamailio.child_init({rank})\n")
        return 0

    def ksr_request_route(self, msg):
        KSR.info("===== request - from kamailio python script\n")
        if self.uas is None:
            self.uas = "sip:alice@" + KSR.kx.get_def("UAS_URI").split(":", 1)[1]
        msg.rewrite_ruri(self.uas)
        KSR.tm.t_on_branch("ksr_branch_route_one")
        KSR.tm.t_on_reply("ksr_onreply_route_one")
        KSR.tm.t_on_failure("ksr_failure_route_one")
        KSR.sl.send_reply(100, "Trying")
        if KSR.tm.t_relay() < 0:
            KSR.sl.send_reply(500, "Server error")
        return 1

    def ksr_reply_route(self, msg):
        KSR.info("===== response - from kamailio python script\n")
        return 1

    def ksr_branch_route_one(self, msg):
        KSR.info("===== branch route - from kamailio python script\n")
        return 1

    def ksr_onreply_route_one(self, msg):
        KSR.info("===== onreply route - from kamailio python script\n")
        return 1

    def ksr_failure_route_one(self, msg):
        KSR.info("===== failure route - from kamailio python script\n")
        return 1
