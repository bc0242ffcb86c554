#!/usr/bin/env node
// t/mcp/client.mjs --url URL [--sessions S] [--calls N] [--max-reinit R]
//     [--timeout SECONDS] [--disable MANAGER_URL --balancer NAME --member WORKER_URL]
//
// t/mcp.t's MCP client: the MCP TypeScript SDK's own Client and
// StreamableHTTPClientTransport.  S sessions (default 20) run side by side;
// each initialises, lists the tools, then calls "count" N times (default 50).
// With --disable, every session stops after N/2 calls, the client disables
// WORKER_URL in balancer NAME through the balancer-manager at MANAGER_URL
// (the manager's own form: its nonce, w_status_D=1), and all go on.
//
// A call that fails with 404 (the member does not know the session: what the
// SDK's server answers) makes the session start over, as an MCP client
// does: a new initialisation without the old session id, then the same call
// again; so does a call made while the session has no working
// initialisation.  At most R times per session (default 1); after that the
// call counts as failed.
//
// Prints one JSON object on stdout: per session the calls that worked and
// failed, the 404s seen, the re-initialisations, and per call the member,
// the counter and which of the session's ids it used; totals; the disable's
// result.  Bounded: each request gives up after 10 s, the whole run after
// --timeout seconds (default 120; the summary then says "timedOut").
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const opt = {
    url: '', sessions: 20, calls: 50, 'max-reinit': 1, timeout: 120,
    disable: '', balancer: '', member: '',
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in opt) || argv[i + 1] === undefined) {
        console.error(`client.mjs: unknown or incomplete option ${argv[i]}`);
        process.exit(2);
    }
    opt[k] = argv[i + 1];
}
if (!opt.url || (opt.disable && (!opt.balancer || !opt.member))) {
    console.error('usage: client.mjs --url URL [--sessions S] [--calls N] [--max-reinit R] '
                  + '[--timeout SECONDS] [--disable MANAGER_URL --balancer NAME --member WORKER_URL]');
    process.exit(2);
}
const S = Number(opt.sessions), N = Number(opt.calls), R = Number(opt['max-reinit']);
const REQUEST = { timeout: 10000 };
const t0 = Date.now();

function short(e) {
    return String(e && e.message ? e.message : e).slice(0, 160);
}

// A 404 from the streamable HTTP transport (StreamableHTTPError.code)
function notFound(e) {
    return e && e.code === 404;
}

// One initialisation: connect (initialize + notifications/initialized),
// then tools/list must name "count".
async function initialise(rec) {
    const client = new Client({ name: 'mod-affinity-test-client', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(opt.url));
    try {
        await client.connect(transport, REQUEST);
        const tools = await client.listTools(undefined, REQUEST);
        if (!tools.tools.some((t) => t.name === 'count')) {
            throw new Error('tools/list has no "count"');
        }
        rec.sids.push(transport.sessionId);
        return { client, transport, ids: rec.sids.length - 1 };
    } catch (e) {
        rec.initFailed++;
        if (notFound(e)) {
            rec.notFound++;
        }
        rec.errors.length < 5 && rec.errors.push(`init: ${short(e)}`);
        await client.close().catch(() => {});
        return null;
    }
}

async function callOnce(conn) {
    if (!conn) {
        return { ok: false, error: 'not initialised' };
    }
    try {
        const res = await conn.client.callTool({ name: 'count', arguments: {} }, undefined, REQUEST);
        const v = JSON.parse(res.content[0].text);
        return { ok: true, member: v.member, count: v.count, session: v.session };
    } catch (e) {
        return { ok: false, notFound: notFound(e), error: short(e) };
    }
}

// All sessions meet at the half; the last to arrive runs the disable.
let arrived = 0, release;
const half = new Promise((r) => { release = r; });
let disableResult = null;

async function disableMember() {
    try {
        const page = await (await fetch(opt.disable)).text();
        const m = page.match(/nonce=([0-9a-f-]+)/);
        if (!m) {
            throw new Error('no nonce on the balancer-manager page');
        }
        const form = new URLSearchParams({ b: opt.balancer, nonce: m[1], w: opt.member, w_status_D: '1' });
        const res = await fetch(opt.disable, {
            method: 'POST', body: form,
            headers: { 'Content-Type': 'application/x-www-form-urlencoded', Referer: opt.disable },
        });
        await res.text();
        disableResult = { member: opt.member, status: res.status, atMs: Date.now() - t0 };
    } catch (e) {
        disableResult = { member: opt.member, error: short(e) };
    }
}

async function atHalf() {
    if (++arrived === S) {
        await disableMember();
        release();
    }
    await half;
}

async function session(i) {
    const rec = { session: i, ok: 0, failed: 0, notFound: 0, reinit: 0, initFailed: 0,
                  sids: [], calls: [], errors: [] };
    let conn = await initialise(rec);
    for (let k = 0; k < N; k++) {
        if (opt.disable && k === Math.floor(N / 2)) {
            await atHalf();
        }
        let r = await callOnce(conn);
        if (!r.ok && (r.notFound || !conn) && rec.reinit < R) {
            if (r.notFound) {
                rec.notFound++;
            }
            rec.reinit++;
            if (conn) {
                await conn.client.close().catch(() => {});
            }
            conn = await initialise(rec);
            r = await callOnce(conn);
        } else if (r.notFound) {
            rec.notFound++;
        }
        if (r.ok) {
            rec.ok++;
            rec.calls.push({ member: r.member, count: r.count, id: rec.sids.indexOf(r.session) });
        } else {
            rec.failed++;
            rec.calls.push({ member: null, count: 0, id: -1 });
            rec.errors.length < 5 && rec.errors.push(`call ${k + 1}: ${r.error}`);
        }
    }
    if (conn) {
        // end the session as a client does (DELETE); its answer is not counted
        await conn.transport.terminateSession().catch(() => {});
        await conn.client.close().catch(() => {});
    }
    return rec;
}

function summary(sessions, timedOut) {
    const sum = (f) => sessions.reduce((a, s) => a + f(s), 0);
    return {
        sessions,
        totals: {
            sessions: S, callsPerSession: N,
            ok: sum((s) => s.ok), failed: sum((s) => s.failed),
            notFound: sum((s) => s.notFound), reinit: sum((s) => s.reinit),
            sessionsReinitialised: sum((s) => (s.reinit > 0 ? 1 : 0)),
            initFailed: sum((s) => s.initFailed),
        },
        disable: disableResult,
        elapsedMs: Date.now() - t0,
        timedOut,
    };
}

const timer = setTimeout(() => {
    console.log(JSON.stringify(summary([], true)));
    process.exit(1);
}, Number(opt.timeout) * 1000);

const results = await Promise.all(Array.from({ length: S }, (_, i) => session(i)));
clearTimeout(timer);
console.log(JSON.stringify(summary(results, false)));
process.exit(0);
