# app_ruby's Ruby side of the host, loaded by ruby.py before the generated shims, after
# KSR::SHIMS ("path:" of every loaded shim, to drop their frames) is set.
# _kemi_check re-raises with the script's backtrace (without the prelude and shim frames);
# _kemi_describe formats errors as "file:line: message (Class)".
module KSR
  PRELUDE = "#{__FILE__}:"

  # Raised by KSR::X.exit/drop. An Exception, not a StandardError, so a script's
  # `rescue => e` does not swallow the exit (as with Ruby's own SystemExit).
  class Exit < Exception
    def initialize(msg = "exit")
      super
    end
  end

  module X
    def self.exit
      raise KSR::Exit
    end

    def self.drop
      KSR._kemi_drop
      raise KSR::Exit
    end

    def self.modf(fname, *params)
      KSR._kemi_modf(fname, *params)
    end
  end

  def self._kemi_check(slot, args)
    _kemi_coerce(slot, args)
  rescue TypeError => e
    raise TypeError, e.message, caller.drop_while { |l| l.start_with?(*SHIMS, PRELUDE) }
  end

  # nil for a normal end: KSR::Exit, or (as Kamailio) any exception whose to_s is "exit"
  def self._kemi_describe(e)
    return nil if e.is_a?(KSR::Exit) || e.to_s == "exit"
    bt = e.backtrace || []
    shim = bt.take_while { |l| l.start_with?(*SHIMS) }
    bt = bt.drop(shim.size)
    text = "#{e.message} (#{e.class})"
    fn = shim.last && shim.last[/in `([^']*)'/, 1]
    text += " calling KSR function #{fn}" if fn
    return text if bt.empty?
    "#{bt.first}: #{text}" + bt.drop(1).map { |l| "\n\tfrom #{l}" }.join
  end
end
