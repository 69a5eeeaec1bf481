// app_jsdt's KSR host (evaluated by js.py before the generated shims).
//
// Host functions are handed over as globals (the only way the quickjs package
// exposes Python callables), captured here and deleted again. Every function of
// this file is named _kemi_*: js.py drops those frames from script stack traces.
// No route time budget: the quickjs binding's only interrupt (Context.set_time_limit)
// refuses every call into Python while it is set, i.e. every KSR function. A runaway
// script is ended by the server's worker watchdog (kemi.worker_watchdog).
var KSR = {};
(function (g) {
    "use strict";
    var sigs = [];
    var drop = g._kemi_host_drop, modf = g._kemi_host_modf;
    var call = g._kemi_host_call;
    delete g._kemi_host_drop;
    delete g._kemi_host_modf;
    delete g._kemi_host_call;

    function _kemi_sig(slot, name, text, letters) {
        sigs[slot] = [name, text, letters];
    }

    function what(v) {
        return v === null ? "null" : typeof v;
    }

    function _kemi_check(slot, args) {
        var s = sigs[slot], letters = s[2], out = [], i, v, n;
        for (i = 0; i < letters.length; i++) {
            v = args[i];
            if (letters.charAt(i) === "s") {
                if (typeof v === "number") {
                    v = String(v);
                } else if (typeof v !== "string") {
                    throw new TypeError(s[0] + "(" + s[1] + "): argument #" + (i + 1) +
                        " expects str, got " + what(v));
                }
            } else {
                if (typeof v === "string") {
                    n = Number(v);
                    if (/^\s*$/.test(v) || n !== n) {
                        throw new TypeError(s[0] + "(" + s[1] + "): argument #" + (i + 1) +
                            " expects int, got string '" + v + "'");
                    }
                    v = n;
                }
                if (typeof v !== "number" || v !== v) {
                    throw new TypeError(s[0] + "(" + s[1] + "): argument #" + (i + 1) +
                        " expects int, got " + what(v));
                }
                // truncate toward zero as duk_to_int; |0 also makes it an int for Python
                v = (v >= -2147483648 && v <= 2147483647) ? (v | 0) :
                    (v < 0 ? Math.ceil(v) : Math.floor(v));
            }
            out[i] = v;
        }
        return out;
    }

    KSR.x = {
        exit: function _kemi_exit() {
            throw "~~ksr~exit~~";
        },
        drop: function _kemi_drop() {
            drop();
            throw "~~ksr~exit~~";
        },
        modf: function _kemi_modf(fname) {
            var a = [], i;
            for (i = 1; i < arguments.length && i <= 7; i++) {
                a.push(typeof arguments[i] === "string" ? arguments[i] : String(arguments[i]));
            }
            return modf(String(fname), a.length, a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
        }
    };

    // a generated shim is a function expression: (KSR, call, base, check, sig)
    g._kemi_load = function _kemi_load(shim, base) {
        shim(KSR, call, base, _kemi_check, _kemi_sig);
    };

    // KEMI "none" functions return undefined in JS: wrap them by arity
    g._kemi_none = function _kemi_none(path, nargs) {
        var parts = path.split("."), t = KSR, i, f;
        for (i = 0; i < parts.length - 1; i++) {
            t = t[parts[i]];
        }
        f = t && t[parts[i]];
        if (typeof f !== "function") {
            return;
        }
        t[parts[i]] = [
            function _kemi_n0() { f(); },
            function _kemi_n1(a) { f(a); },
            function _kemi_n2(a, b) { f(a, b); },
            function _kemi_n3(a, b, c) { f(a, b, c); },
            function _kemi_n4(a, b, c, d) { f(a, b, c, d); },
            function _kemi_n5(a, b, c, d, e) { f(a, b, c, d, e); },
            function _kemi_n6(a, b, c, d, e, h) { f(a, b, c, d, e, h); }
        ][nargs];
    };

    g._kemi_isfn = function _kemi_isfn(name) {
        return typeof g[name] === "function";
    };
})(this);
