// Stateless router: 200 to OPTIONS, 483 when Max-Forwards is exhausted,
// 404 for any other request.
function ksr_request_route() {
    KSR.info("===== request " + KSR.pv.get("$rm") + " from " + KSR.pv.get("$si") + "\n");

    if (KSR.maxfwd.process_maxfwd(10) < 0) {
        KSR.sl.send_reply(483, "Too Many Hops");
        return;
    }

    if (KSR.is_OPTIONS()) {
        KSR.sl.send_reply(200, "OK");
        KSR.x.exit();
    }

    if (KSR.is_ACK()) {
        return;
    }
    KSR.sl.send_reply(404, "Not Found");
}

function ksr_reply_route() {
    KSR.info("===== response - from kamailio squirrel script\n");
}
