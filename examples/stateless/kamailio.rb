# Stateless router: 200 to OPTIONS, 483 when Max-Forwards is exhausted,
# 404 for any other request.
def ksr_request_route
  KSR.info("===== request " + KSR::PV.get("$rm") + " from " + KSR::PV.get("$si") + "\n")

  if KSR::MAXFWD.process_maxfwd(10) < 0
    KSR::SL.send_reply(483, "Too Many Hops")
    return
  end

  if KSR.is_OPTIONS
    KSR::SL.send_reply(200, "OK")
    # Ruby's exit ends the route normally, in Kamailio's app_ruby too (KSR::X.exit in pykemi)
    exit
  end

  return if KSR.is_ACK

  KSR::SL.send_reply(404, "Not Found")
end

def ksr_reply_route
  KSR.info("===== response - from kamailio ruby script\n")
end
