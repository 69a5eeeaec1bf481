-- app_lua's callback runner (loaded by lua.py, called with the arguments below).
--
-- Runs a callback protected: the error handler keeps the exit marker as is and
-- adds a traceback (file:line) to every other error. With a time budget (limit > 0,
-- seconds; the outermost call only) a count hook checks the deadline every `count`
-- instructions and raises the timeout marker; after that it fires on every instruction
-- until the call returns, so a script's pcall cannot hold the error (the next instruction
-- outside the pcall raises again). C functions (string.rep) are not interrupted, and
-- code compiled by the LuaJIT JIT does not run hooks.
local marker, timeout, now, count = ...
local xpcall, traceback, unpack, tostring = xpcall, debug.traceback, unpack or table.unpack, tostring
local sethook, error, select = debug.sethook, error, select
local deadline, active = 0, false
local hook
hook = function()
    if active and now() > deadline then
        sethook(hook, "", 1)
        error(timeout, 0)
    end
end
-- hooks are per coroutine: a coroutine resumed during a timed call gets the hook too
local co = coroutine
local resume, create = co.resume, co.create
local function passon(ok, ...)  -- a timeout inside the coroutine goes on in its resumer
    if not ok and active and (...) == timeout then error(timeout, 0) end
    return ok, ...
end
co.resume = function(c, ...)
    if active then sethook(c, hook, "", count) end
    return passon(resume(c, ...))
end
co.wrap = function(f)
    local c = create(f)
    local function pass(ok, ...)
        if not ok then error((...), 0) end
        return ...
    end
    return function(...) return pass(co.resume(c, ...)) end
end
local function handler(e)
    if e == marker or e == timeout then return e end
    return traceback(tostring(e), 2)
end
local run = function(limit, f, ...)
    local n, args = select('#', ...), {...}
    if limit > 0 then
        deadline, active = now() + limit, true
        sethook(hook, "", count)
    end
    local ok, err = xpcall(function() return f(unpack(args, 1, n)) end, handler)
    if limit > 0 then sethook(); active = false end
    return ok, err
end
-- from Python after an error escaped the runner: C calls, no hook can fire in them
return run, sethook, function() active = false end
