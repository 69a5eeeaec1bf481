# Kamailio - equivalent of routing blocks in Ruby (the KEMI relay example)
# The UAS address comes from the #!define UAS_URI of kamailio-ruby.cfg.

$uas = nil # KSR functions need a message: read the define on the first request

# SIP request routing
# equivalent of request_route{}
def ksr_request_route
  KSR.info("===== request - from kamailio ruby script\n")

  if KSR::MAXFWD.process_maxfwd(10) < 0
    KSR::SL.send_reply(483, "Too Many Hops")
    return
  end

  $uas ||= KSR::KX.get_def("UAS_URI")
  KSR::PV.sets("$du", $uas)
  KSR::TM.t_on_branch("ksr_branch_route_one")
  KSR::TM.t_on_reply("ksr_onreply_route_one")
  KSR::TM.t_on_failure("ksr_failure_route_one")

  if KSR::TM.t_relay() < 0
    KSR::SL.send_reply(500, "Server error")
  end
end

# SIP response routing
# equivalent of reply_route{}
def ksr_reply_route
  KSR.info("===== response - from kamailio ruby script\n")
end

# branch route callback
# equivalent of a branch_route{}
def ksr_branch_route_one
  KSR.info("===== branch route - from kamailio ruby script\n")
end

# onreply route callback
# equivalent of an onreply_route{}
def ksr_onreply_route_one
  KSR.info("===== onreply route - from kamailio ruby script\n")
end

# failure route callback
# equivalent of a failure_route{}
def ksr_failure_route_one
  KSR.info("===== failure route - from kamailio ruby script\n")
end
