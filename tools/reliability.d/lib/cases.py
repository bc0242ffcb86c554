# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Hostile Cookie headers (scenarios hostile and drive)."""


def hostile_cases(env, rnd):
    """(label, [header lines], expected member or None, may_400)."""
    name = env.cookie.encode()
    ids = env.ids
    good = ids["m1"].encode()
    cases = []

    def ck(v):
        return [b"Cookie: " + v]

    rbytes = bytes(rnd.choice([c for c in range(0x20, 0x100) if c != 0x7f])
                   for _ in range(4000))
    cases.append(("random bytes", ck(rbytes), None, False))
    ctl = bytes(rnd.choice(list(range(0x01, 0x09)) + list(range(0x0b, 0x0d)) +
                           list(range(0x0e, 0x20)) + [0x7f, 0x80, 0xff, 0x3b, 0x3d])
                for _ in range(2000))
    cases.append(("control and high bytes", ck(ctl), None, True))
    many = b"; ".join(b"c%d=%d" % (i, i) for i in range(5000))
    cases.append(("5000 cookies, then a valid ID", ck(many + b"; " + name + b"=" + good),
                  "m1", False))
    cases.append(("1900 cookies in 8 KB", ck(b"a=1;" * 1900 + name + b"=" + good),
                  "m1", False))
    cases.append(("8 KB value", ck(name + b"=" + b"a" * 8000), None, False))
    cases.append(("8 KB value, 40 hex first", ck(name + b"=" + good + b"a" * 7960),
                  None, False))
    rep = b"; ".join([name + b"=x"] * 600)
    cases.append(("name x600, valid ID last", ck(rep + b"; " + name + b"=" + good),
                  "m1", False))
    rep2 = b"; ".join([name + b"=" + ids["m2"].upper().encode()] * 150)
    cases.append(("name x150 uppercase IDs", ck(rep2), None, False))
    cases.append(("quoted ID", ck(name + b'="' + good + b'"'), "m1", False))
    cases.append(("half-quoted ID", ck(name + b'="' + good), None, False))
    cases.append(("doubly quoted", ck(name + b'=""' + good + b'""'), None, False))
    cases.append(("quotes only", ck(b'"' * 3000), None, False))
    cases.append(("missing =", ck(name + b"; " + name + good + b"; ;;;; =; ==="),
                  None, False))
    for n in (0, 1, 39, 41, 80):
        cases.append(("ID of length %d" % n,
                      ck(name + b"=" + (good * 2)[:n]), None, False))
    cases.append(("ID upper case", ck(name + b"=" + good.upper()), None, False))
    cases.append(("ID with g", ck(name + b"=" + good[:39] + b"g"), None, False))
    cases.append(("ID with blanks", ck(name + b" \t= \t" + good + b" \t"), "m1", False))
    cases.append(("90 Cookie headers x 60 cookies",
                  [b"Cookie: " + b"; ".join(b"k%d_%d=v" % (h, i) for i in range(60))
                   for h in range(90)] + ck(name + b"=" + good), "m1", False))
    cases.append(("64 KB value", ck(name + b"=" + b"c" * 65000), None, False))
    cases.append(("header over the limit", ck(name + b"=" + b"b" * 70000), None, True))
    cases.append(("empty Cookie", [b"Cookie:"], None, False))
    cases.append(("two Cookie headers, the ID first in the second",
                  [b"Cookie: a=1", b"Cookie: " + name + b"=" + good], "m1", False))
    cases.append(("two Cookie headers, a bad value then a valid one",
                  [b"Cookie: " + name + b"=bad", b"Cookie: " + name + b"=" + good],
                  "m1", False))
    return cases
