# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""balancer-manager edits over HTTP, as a browser sends them."""

import http.client
import re
import urllib.parse

from lib.client import Client
from lib.env import HOST


def post_manager(env, params, client=None):
    """A balancer-manager POST as a browser sends it: nonce, Referer."""
    c = client or Client(env)
    path = "/balancer-manager"
    body = urllib.parse.urlencode(params)
    conn = http.client.HTTPConnection(HOST, env.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": "http://%s:%d%s" % (HOST, env.port, path)})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def manager_nonce(env, balancer=None):
    b = balancer or env.balancer
    status, _, body = Client(env).get("/balancer-manager")
    if status != 200:
        raise RuntimeError("balancer-manager answered %s" % status)
    m = re.search(r"b=%s&(?:amp;)?nonce=([0-9a-f-]+)" % re.escape(b),
                  body.decode("latin-1"))
    if not m:
        raise RuntimeError("no nonce for balancer %s on the manager page" % b)
    return m.group(1)


def manager_state(env, balancer=None):
    """{worker URL: status string} as the manager page shows them."""
    status, _, body = Client(env).get("/balancer-manager")
    text = body.decode("latin-1")
    out = {}
    for m in re.finditer(r"<td><a href=\"/balancer-manager\?b=%s&(?:amp;)?w="
                         r"([^&\"]+)[^>]*>[^<]*</a></td>(.*?)</tr>"
                         % re.escape(balancer or env.balancer), text, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", m.group(2), re.S)
        out[urllib.parse.unquote(m.group(1))] = cells
    return out


def member_url(env, name):
    return "http://%s:%d" % (HOST, env.members[name]["port"])


def edit_member(env, nonce, name, **fields):
    params = {"b": env.balancer, "w": member_url(env, name), "nonce": nonce}
    params.update(fields)
    return post_manager(env, params)


def add_member(env, nonce, name):
    return post_manager(env, {"b": env.balancer, "nonce": nonce, "b_wyes": "1",
                              "b_nwrkr": member_url(env, name)})
