// Kamailio - equivalent of routing blocks in JavaScript (the KEMI relay example)
// The UAS address comes from the #!define UAS_URI of kamailio-jsdt.cfg.

var UAS = null;  // KSR functions need a message: read the define on the first request

// SIP request routing
// equivalent of request_route{}
function ksr_request_route() {
    KSR.info("===== request - from kamailio javascript script\n");

    if (KSR.maxfwd.process_maxfwd(10) < 0) {
        KSR.sl.send_reply(483, "Too Many Hops");
        return;
    }

    if (UAS === null) {
        UAS = KSR.kx.get_def("UAS_URI");
    }
    KSR.pv.sets("$du", UAS);
    KSR.tm.t_on_branch("ksr_branch_route_one");
    KSR.tm.t_on_reply("ksr_onreply_route_one");
    KSR.tm.t_on_failure("ksr_failure_route_one");

    if (KSR.tm.t_relay() < 0) {
        KSR.sl.send_reply(500, "Server error");
    }
}

// SIP response routing
// equivalent of reply_route{}
function ksr_reply_route() {
    KSR.info("===== response - from kamailio javascript script\n");
}

// branch route callback
// equivalent of a branch_route{}
function ksr_branch_route_one() {
    KSR.info("===== branch route - from kamailio javascript script\n");
}

// onreply route callback
// equivalent of an onreply_route{}
function ksr_onreply_route_one() {
    KSR.info("===== onreply route - from kamailio javascript script\n");
}

// failure route callback
// equivalent of a failure_route{}
function ksr_failure_route_one() {
    KSR.info("===== failure route - from kamailio javascript script\n");
}
