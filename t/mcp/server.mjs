#!/usr/bin/env node
// t/mcp/server.mjs --port PORT --name NAME [--max-seconds S] [--cookie NAME]:
// one member of t/mcp.t, a stateful MCP server on the streamable HTTP
// transport, built with the MCP TypeScript SDK as its documentation does it:
// one SDK transport per session, kept in memory in this process only, the
// Mcp-Session-Id made by the transport's sessionIdGenerator.  So a request
// that reaches a member other than the one that issued its session id is
// answered 404 "Session not found", as the SDK's own transport answers an id
// it does not know, and the client must start over.
//
// One tool, "count": the number of times it was called in this session, the
// member's name and the session id, so a client sees whether it stuck.
//
// Listens on 127.0.0.1 only; exits by itself after --max-seconds (default
// 600) or on SIGTERM/SIGINT.  --cookie NAME also sends the session id as a
// Set-Cookie NAME (only for t/mcp.t's check of the harness with today's
// cookie learning; MCP itself uses no cookie).
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';

const opt = { port: 0, name: '', 'max-seconds': 600, cookie: '' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in opt) || argv[i + 1] === undefined) {
        console.error(`server.mjs: unknown or incomplete option ${argv[i]}`);
        process.exit(2);
    }
    opt[k] = argv[i + 1];
}
const port = Number(opt.port);
if (!port || !opt.name) {
    console.error('usage: server.mjs --port PORT --name NAME [--max-seconds S] [--cookie NAME]');
    process.exit(2);
}

const transports = new Map();   // session id -> SDK transport

function mcpServer(session) {
    const server = new McpServer({ name: 'mod-affinity-test', version: '1.0.0' });
    server.registerTool('count', {
        description: 'How many times this tool was called in this session, and by which member',
    }, async () => {
        session.count++;
        return {
            content: [{
                type: 'text',
                text: JSON.stringify({ member: opt.name, count: session.count, session: session.id }),
            }],
        };
    });
    return server;
}

function jsonError(res, status, code, message) {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        req.on('data', (c) => {
            size += c.length;
            if (size > 1 << 20) {
                reject(new Error('body too large'));
                req.destroy();
                return;
            }
            chunks.push(c);
        });
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
    });
}

async function handle(req, res) {
    const path = new URL(req.url, 'http://127.0.0.1').pathname;
    if (path !== '/mcp') {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found\n');
        return;
    }
    const sid = req.headers['mcp-session-id'];
    if (req.method === 'GET') {
        // No standalone server-to-client stream: the spec lets a server
        // answer 405, and the SDK's client takes that as "no stream".
        res.writeHead(405, { Allow: 'POST, DELETE' });
        res.end();
        return;
    }
    if (req.method !== 'POST' && req.method !== 'DELETE') {
        res.writeHead(405, { Allow: 'POST, DELETE' });
        res.end();
        return;
    }
    let body;
    if (req.method === 'POST') {
        try {
            body = JSON.parse(await readBody(req));
        } catch (e) {
            jsonError(res, 400, -32700, 'Parse error');
            return;
        }
    }
    if (sid) {
        const transport = transports.get(sid);
        if (!transport) {
            // What the SDK's transport answers for a session it does not know
            jsonError(res, 404, -32001, 'Session not found');
            return;
        }
        await transport.handleRequest(req, res, body);
        return;
    }
    if (req.method === 'POST' && isInitializeRequest(body)) {
        const session = { id: null, count: 0 };
        const transport = new StreamableHTTPServerTransport({
            sessionIdGenerator: () => randomUUID(),
            enableJsonResponse: true,
            onsessioninitialized: (id) => {
                session.id = id;
                transports.set(id, transport);
            },
        });
        transport.onclose = () => {
            if (transport.sessionId) {
                transports.delete(transport.sessionId);
            }
        };
        await mcpServer(session).connect(transport);
        if (opt.cookie) {
            // the id is generated inside handleRequest: set the cookie when
            // the headers go out
            const writeHead = res.writeHead;
            res.writeHead = function (...a) {
                if (session.id) {
                    res.setHeader('Set-Cookie', `${opt.cookie}=${session.id}; Path=/; HttpOnly`);
                }
                return writeHead.apply(this, a);
            };
        }
        await transport.handleRequest(req, res, body);
        return;
    }
    jsonError(res, 400, -32000, 'Bad Request: No valid session ID provided');
}

const http = createServer((req, res) => {
    handle(req, res).catch((e) => {
        console.error(`${opt.name}: ${e.stack || e}`);
        if (!res.headersSent) {
            jsonError(res, 500, -32603, 'Internal error');
        } else {
            res.end();
        }
    });
});
// longer than any pause of a test run, so httpd never reuses a connection
// this end is closing
http.keepAliveTimeout = 60000;
http.listen(port, '127.0.0.1', () => {
    console.log(`${opt.name}: MCP server on 127.0.0.1:${port}`);
});

function stop() {
    http.close();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, Number(opt['max-seconds']) * 1000);
