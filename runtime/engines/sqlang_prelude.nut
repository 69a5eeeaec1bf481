// app_sqlang's KSR host (run by sqlang.py before the generated shims, as "kemi:prelude").
// ::_kemi_call (the native closure of sqlang_closure.c), ::_kemi_bases and ::_kemi_host
// (the host slots of KSR.x.drop and KSR.x.modf, after the exports) are set before.
::KSR <- {};
::_kemi_sigs <- {};
::_kemi_trace <- null;
::_kemi_numre <- regexp(@"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$");

::_kemi_sig <- function(slot, name, text, letters) {
    ::_kemi_sigs[slot] <- [name, text, letters];
}

::_kemi_base <- function(module) {
    return ::_kemi_bases[module];
}

::_kemi_check <- function(slot, args) {
    local s = ::_kemi_sigs[slot];
    local letters = s[2];
    local out = [];
    for (local i = 0; i < letters.len(); i++) {
        local v = i < args.len() ? args[i] : null;
        local t = typeof v;
        if (letters[i] == 's') {
            if (t == "integer" || t == "float") {
                v = v.tostring();
            } else if (t != "string") {
                throw s[0] + "(" + s[1] + "): argument #" + (i + 1) + " expects str, got " + t;
            }
        } else {
            if (t == "string") {
                if (!::_kemi_numre.match(v)) {
                    throw s[0] + "(" + s[1] + "): argument #" + (i + 1)
                        + " expects int, got string '" + v + "'";
                }
                v = v.tofloat();
                t = "float";
            }
            if (t == "float") {
                v = v.tointeger();  // truncates toward zero
            } else if (t != "integer") {
                throw s[0] + "(" + s[1] + "): argument #" + (i + 1) + " expects int, got " + t;
            }
        }
        out.append(v);
    }
    return out;
}

::KSR.x <- {
    exit = function() {
        throw "~~ksr~exit~~";
    },
    drop = function() {
        ::_kemi_call(::_kemi_host.drop);
        throw "~~ksr~exit~~";
    },
    modf = function(fname, ...) {
        local a = [this, ::_kemi_host.modf, fname.tostring()];
        foreach (v in vargv) a.append(v.tostring());
        return ::_kemi_call.acall(a);
    }
};

// keeps the script frames of an uncaught error (the stack is gone when Python sees it)
seterrorhandler(function(e) {
    if (e == "~~ksr~exit~~") return;
    local frames = [];
    for (local level = 2; ; level++) {
        local info = getstackinfos(level);
        if (info == null) break;
        if (info.src.len() < 5 || info.src.slice(0, 5) != "kemi:") {
            frames.append(info.func + " (" + info.src + ":" + info.line + ")");
        }
    }
    ::_kemi_trace = frames;
});
