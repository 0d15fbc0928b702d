// Unit-test harness: a jsdom page running tests/luci-stub.js, whose fetch serves the app's files
// from htdocs/ and answers `/ubus/` JSON-RPC (LuCI's batched arrays and single calls) from a
// per-test table of replies, with uhttpd-mod-ubus's answers for what the table does not hold.
// Replies come from ubus-bridge/contract.json (`contract()`), so the tests use the bridge's own
// examples.

import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JSDOM } from 'jsdom';

const HERE = dirname(fileURLToPath(import.meta.url));
export const LUCI = join(HERE, '../..');
export const REPO = join(LUCI, '..');
const STUB = readFileSync(join(LUCI, 'tests/luci-stub.js'), 'utf8');

/** The bridge's contract file, parsed fresh (tests may change their copy). */
export function contract() {
	return JSON.parse(readFileSync(join(REPO, 'ubus-bridge/contract.json'), 'utf8'));
}

/** A deep copy of a contract example: `example('status', 'ready')`. */
export function example(method, reply) {
	const value = contract().methods[method].replies[reply];
	if (value === undefined)
		throw new Error(`contract.json has no reply ${method}.${reply}`);
	return structuredClone(value);
}

/** A contract error example wrapped as a reply: `errorReply('blocked')`. */
export function errorReply(code) {
	return structuredClone(contract().error.examples[code]);
}

/** A reply that is a bare ubus status (no data), as rpcd sends for a failed call: `ubusStatus(3)`. */
export function ubusStatus(code) {
	return { [STATUS]: code };
}

/** A reply that is a JSON-RPC error of uhttpd-mod-ubus: `rpcError(-32002, 'Access denied')`. */
export function rpcError(code, message) {
	return { [RPC_ERROR]: { code, message } };
}

const STATUS = Symbol('ubus status');
const RPC_ERROR = Symbol('JSON-RPC error');

/**
 * A page with the stub loaded. `ubus` maps a method of the object `attendant` to a reply value
 * or a function (args, n) → reply, n counting that method's calls from 0; a reply may be
 * `ubusStatus(n)` or `rpcError(code, message)`. As uhttpd and rpcd answer: a method the table
 * does not hold is ubus status 3 (method not found), another object is -32000 (object not
 * found), a method in `denied` is -32002 (access denied), and with `expired` every call is
 * -32002 and `session access` fails too (the login session is gone). `plugin: false` answers
 * as a router without the plugin: `attendant` is not found either.
 */
export function page(ubus = {}, { pollScale = 0.01, clipboard = true, denied = [], expired = false, readonly = false, plugin = true } = {}) {
	const dom = new JSDOM('<!DOCTYPE html><html><body><div id="maincontent"><div id="tabmenu"></div><div id="view"></div></div></body></html>', {
		url: 'http://router.lan/cgi-bin/luci/admin/system/attendant/overview',
		runScripts: 'outside-only',
		pretendToBeVisual: true
	});
	const window = dom.window;
	const counts = {};
	const copied = [];
	const posts = [];
	window.__luciStubOptions = { pollScale, readonly };
	const answer = async (message) => {
		const [, object, method, args] = message.params;
		const frame = (body) => ({ jsonrpc: '2.0', id: message.id, ...body });
		if (expired || denied.includes(method))
			return frame({ error: { code: -32002, message: 'Access denied' } });
		if (object === 'session' && method === 'access')
			return frame({ result: [0, { access: true }] });
		if (object !== 'attendant' || !plugin)
			return frame({ error: { code: -32000, message: 'Object not found' } });
		if (!(method in ubus))
			return frame({ result: [3] });
		const n = counts[method] = (counts[method] ?? -1) + 1;
		const entry = ubus[method];
		const reply = typeof entry === 'function' ? await entry(args, n) : entry;
		if (reply !== null && typeof reply === 'object' && STATUS in reply)
			return frame({ result: [reply[STATUS]] });
		if (reply !== null && typeof reply === 'object' && RPC_ERROR in reply)
			return frame({ error: reply[RPC_ERROR] });
		return frame({ result: [0, structuredClone(reply)] });
	};
	window.fetch = async (url, init = {}) => {
		const path = new URL(url, window.location.href).pathname;
		if (path === '/ubus/') {
			const body = JSON.parse(init.body);
			posts.push(body);
			const replies = Array.isArray(body) ? await Promise.all(body.map(answer)) : await answer(body);
			return response(200, JSON.stringify(replies));
		}
		if (path.startsWith('/luci-static/resources/')) {
			try {
				return response(200, readFileSync(join(LUCI, 'htdocs', path), 'utf8'));
			} catch {
				return response(404, 'not found');
			}
		}
		return response(404, 'not found');
	};
	if (clipboard)
		Object.defineProperty(window.navigator, 'clipboard', {
			value: { writeText: async (text) => { copied.push(text); } }
		});
	window.eval(STUB);
	return { dom, window, document: window.document, L: window.L, stub: window.__luciStub, copied, posts };
}

function response(status, text) {
	return {
		ok: status >= 200 && status < 300,
		status,
		text: async () => text,
		json: async () => JSON.parse(text)
	};
}

/** Loads a view as LuCI does (`ui.instantiateView`) and waits until it is mounted. */
export async function view(p, path) {
	const ui = await p.L.require('ui');
	const instance = await ui.instantiateView(path);
	await p.stub.views[p.stub.views.length - 1];
	await settle();
	if (p.stub.errors.length)
		throw new Error(`the view failed: ${p.stub.errors.join('\n')}`);
	return instance;
}

/** Lets pending promises and short timers run. */
export function settle(ms = 5) {
	return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `predicate()` is truthy (polls every 5 ms, fails after `limit` ms). */
export async function until(predicate, what, limit = 2000) {
	const started = Date.now();
	for (;;) {
		const value = predicate();
		if (value)
			return value;
		if (Date.now() - started > limit)
			throw new Error(`timed out waiting for ${what}`);
		await settle(5);
	}
}

/** Clicks a button (by id or node) and waits for the promises of the handlers it ran. */
export async function click(p, target) {
	const node = typeof target === 'string' ? p.document.getElementById(target) : target;
	if (!node)
		throw new Error(`no element ${target}`);
	const before = p.stub.handlers.length;
	node.dispatchEvent(new p.window.MouseEvent('click', { bubbles: true }));
	await Promise.all(p.stub.handlers.slice(before));
	await settle();
}

/** Everything a user reads on the page (the view, notifications and an open dialog). */
export function visibleText(p) {
	const parts = [p.document.getElementById('maincontent').textContent];
	if (p.document.body.classList.contains('modal-overlay-active'))
		parts.push(p.document.getElementById('modal_overlay').textContent);
	return parts.join('\n');
}

/** Fails when the page shows what a value, not a text, would print: null, undefined, NaN,
 * [object …] or a function's source. */
export function assertReadable(p, where) {
	const seen = visibleText(p);
	const bad = seen.match(/\b(null|undefined|NaN)\b|\[object [A-Za-z]+\]|function\s*\(/);
	if (bad)
		throw new Error(`${where}: the page shows \`${bad[0]}\`:\n${seen.replace(/\s+/g, ' ').slice(0, 2000)}`);
}

/**
 * The Status page's use of an include, as LuCI's status/index.js does it: one poll function
 * (the default interval) that calls load() and then render() on every tick, shows a non-null
 * result in a section, and gives up on the include for good when load() rejects.
 */
export async function statusPage(p, name) {
	const include = await p.L.require(name);
	const section = p.document.createElement('div');
	section.className = 'cbi-section hidden';
	section.id = 'status-include';
	p.document.getElementById('view').appendChild(section);
	const state = { loads: 0, failed: false, section };
	const poll = await p.L.require('poll');
	const tick = p.window.eval('(function (include, section, state) { return function () {' +
		'if (state.failed) return Promise.resolve();' +
		'state.loads++;' +
		'return include.load().catch(function (e) { state.failed = true; state.error = e; return null; }).then(function (result) {' +
		'if (state.failed) return;' +
		'var content = include.render(result);' +
		'if (content != null) { section.classList.remove("hidden"); L.dom.content(section, content); }' +
		'}); }; })')(include, section, state);
	poll.add(tick);
	return state;
}

/** Text of an element by id, text nodes joined by a space, white space collapsed ('' when missing). */
export function text(p, id) {
	const node = p.document.getElementById(id);
	if (!node)
		return '';
	const walker = p.document.createTreeWalker(node, p.window.NodeFilter.SHOW_TEXT);
	const parts = [];
	while (walker.nextNode())
		parts.push(walker.currentNode.nodeValue);
	return parts.join(' ').replace(/\s+/g, ' ').trim();
}

/** A value from the page's realm as a plain node value (arrays and objects of this realm). */
export function plain(value) {
	return (value !== null && typeof value === 'object') ? JSON.parse(JSON.stringify(value)) : value;
}

/** The logic module, loaded through the stub like the views load it; results come back plain. */
export async function logic(p = page()) {
	const module = await p.L.require('attendant.logic');
	return new Proxy(module, {
		get: (target, key) => (typeof target[key] === 'function')
			? (...args) => plain(target[key].apply(target, args))
			: target[key]
	});
}
