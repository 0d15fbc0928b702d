// The web server of the end-to-end run: serves a test page that loads tests/luci-stub.js and the
// app's real files from htdocs/, and answers LuCI's JSON-RPC at POST /ubus/ (a batch array or
// one call, as uhttpd-mod-ubus takes them) by running the real rpcd plugin
// (`attendant-ubus --root ROOT call METHOD`, arguments as JSON on stdin), as rpcd's exec-plugin
// protocol does (https://openwrt.org/docs/techref/rpcd, "exec plugins"; rpcd's plugin.c).

import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, normalize, extname } from 'node:path';

/** Largest JSON-RPC request body accepted (the plugin itself takes at most 65536 bytes). */
const MAX_BODY = 65536;
/** rpcd kills an exec plugin call after 30 s; so does this server. */
const CALL_TIMEOUT_MS = 30000;

const TYPES = { '.js': 'application/javascript', '.css': 'text/css', '.html': 'text/html', '.json': 'application/json' };

const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>luci-app-attendant (test page)</title>
<link rel="stylesheet" href="/page.css"></head>
<body>
<header><span class="brand">OpenWrt</span> <span class="crumbs">System › Firmware upgrade</span>
<span class="note">luci-app-attendant on the project's LuCI stand-in, not LuCI's theme</span></header>
<div id="maincontent"><div id="tabmenu"></div><div id="view"></div></div>
<script>window.__luciStubOptions = { pollScale: __POLL_SCALE__ };</script>
<script src="/luci-stub.js"></script>
<script>
/* ?view=PATH loads a view as LuCI's view.ut does. ?include=PATH is the Status page's use of an
 * include (LuCI's view/status/index.js): one poll function at the default interval calls
 * load() and then render() on every tick, shows a non-null result, and drops the include for
 * good once load() rejects. */
var query = new URLSearchParams(location.search);
if (query.get('include')) {
	Promise.all([ L.require('view.' + query.get('include').split('/').join('.')), L.require('poll') ]).then(function(loaded) {
		var include = loaded[0], poll = loaded[1], failed = false;
		var section = E('div', { 'class': 'cbi-section hidden', id: 'status-include' }, [ E('h3', {}, [ include.title ]), E('div') ]);
		document.getElementById('view').appendChild(E('h2', {}, [ 'Status' ]));
		document.getElementById('view').appendChild(section);
		window.__includeTicks = 0;
		poll.add(function() {
			if (failed)
				return Promise.resolve();
			window.__includeTicks++;
			return include.load().catch(function() { failed = true; }).then(function(result) {
				var content = failed ? null : include.render(result);
				if (content != null) {
					section.classList.remove('hidden');
					L.dom.content(section.lastChild, content);
				}
			});
		});
	});
} else {
	L.require('ui').then(function(ui) {
		return ui.instantiateView(query.get('view') || 'attendant/overview');
	});
}
</script>
</body></html>
`;

/**
 * Starts the server on 127.0.0.1 (free port). `luci` is the luci/ directory, `bridge` the plugin
 * binary, `root` the fake router root, `env` the plugin's environment. Resolves to
 * {url, calls, close()}; `calls` lists {method, args, reply} for every ubus call.
 */
export function serve({ luci, bridge, root, env, pollScale = 0.25 }) {
	const calls = [];
	const server = createServer(async (req, res) => {
		try {
			const url = new URL(req.url, 'http://localhost');
			if (req.method === 'POST' && url.pathname.startsWith('/ubus')) {
				const body = JSON.parse(await readBody(req));
				const context = { bridge, root, env, calls };
				const reply = Array.isArray(body)
					? await Promise.all(body.map((one) => ubus(one, context)))
					: await ubus(body, context);
				res.writeHead(200, { 'Content-Type': 'application/json' });
				res.end(JSON.stringify(reply));
				return;
			}
			if (req.method !== 'GET') {
				res.writeHead(405).end();
				return;
			}
			if (url.pathname === '/' || url.pathname === '/index.html') {
				res.writeHead(200, { 'Content-Type': 'text/html' });
				res.end(PAGE.replace('__POLL_SCALE__', String(pollScale)));
				return;
			}
			let file;
			if (url.pathname === '/luci-stub.js')
				file = join(luci, 'tests/luci-stub.js');
			else if (url.pathname === '/page.css')
				file = join(luci, 'tests/e2e/page.css');
			else if (url.pathname.startsWith('/luci-static/'))
				file = join(luci, 'htdocs', normalize(url.pathname).replace(/^(\.\.[/\\])+/, ''));
			if (!file || !file.startsWith(luci)) {
				res.writeHead(404).end();
				return;
			}
			const data = await readFile(file);
			res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' });
			res.end(data);
		} catch (error) {
			res.writeHead(error.code === 'ENOENT' ? 404 : 500, { 'Content-Type': 'text/plain' });
			res.end(String(error.message));
		}
	});
	return new Promise((resolve) => {
		server.listen(0, '127.0.0.1', () => {
			const { port } = server.address();
			resolve({ url: `http://127.0.0.1:${port}`, calls, close: () => new Promise((r) => server.close(r)) });
		});
	});
}

function readBody(req) {
	return new Promise((resolve, reject) => {
		let size = 0;
		const chunks = [];
		req.on('data', (chunk) => {
			size += chunk.length;
			if (size > MAX_BODY) {
				reject(new Error(`request body larger than ${MAX_BODY} bytes`));
				req.destroy();
				return;
			}
			chunks.push(chunk);
		});
		req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
		req.on('error', reject);
	});
}

/** One JSON-RPC request: `call` on object `attendant` runs the plugin; `session access` is
 * granted (the test page's session never expires); another object is the JSON-RPC error
 * -32000, as uhttpd-mod-ubus answers. */
async function ubus(request, { bridge, root, env, calls }) {
	const { id, method, params } = request;
	if (method !== 'call' || !Array.isArray(params) || params.length < 3)
		return { jsonrpc: '2.0', id, error: { code: -32600, message: 'Invalid request' } };
	const [, object, name, args = {}] = params;
	if (object === 'session' && name === 'access')
		return { jsonrpc: '2.0', id, result: [0, { access: true }] };
	if (object !== 'attendant')
		return { jsonrpc: '2.0', id, error: { code: -32000, message: 'Object not found' } };
	const out = await run(bridge, ['--root', root, 'call', name], env, JSON.stringify(args));
	let reply;
	try {
		reply = JSON.parse(out.stdout);
	} catch {
		calls.push({ method: name, args, reply: null, stderr: out.stderr });
		return { jsonrpc: '2.0', id, result: [2] };
	}
	calls.push({ method: name, args, reply });
	return { jsonrpc: '2.0', id, result: [0, reply] };
}

function run(program, args, env, input) {
	return new Promise((resolve) => {
		const child = spawn(program, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
		let stdout = '';
		let stderr = '';
		const timer = setTimeout(() => child.kill('SIGKILL'), CALL_TIMEOUT_MS);
		child.stdout.on('data', (d) => { stdout += d; });
		child.stderr.on('data', (d) => { stderr += d; });
		child.on('close', (code) => {
			clearTimeout(timer);
			resolve({ code, stdout, stderr });
		});
		child.stdin.on('error', () => {});
		child.stdin.end(input);
	});
}
