// Unit-test harness: a jsdom page running tests/luci-stub.js, whose fetch serves the app's files
// from htdocs/ and answers `/ubus/` JSON-RPC from a per-test table of replies. Replies come from
// ubus-bridge/contract.json (`contract()`), so the tests use the bridge's own examples.

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

/**
 * A page with the stub loaded. `ubus` maps a method name to a reply value or a function
 * (args, n) → reply, n counting that method's calls from 0. Unknown methods answer ubus status
 * 3 (method not found), as rpcd would.
 */
export function page(ubus = {}, { pollScale = 0.01, clipboard = true } = {}) {
	const dom = new JSDOM('<!DOCTYPE html><html><body><div id="tabmenu"></div><div id="view"></div></body></html>', {
		url: 'http://router.lan/cgi-bin/luci/admin/system/attendant/overview',
		runScripts: 'outside-only',
		pretendToBeVisual: true
	});
	const window = dom.window;
	const counts = {};
	const copied = [];
	window.__luciStubOptions = { pollScale };
	window.fetch = async (url, init = {}) => {
		const path = new URL(url, window.location.href).pathname;
		if (path.startsWith('/ubus/')) {
			const body = JSON.parse(init.body);
			const [, object, method, args] = body.params;
			const n = counts[method] = (counts[method] ?? -1) + 1;
			let result;
			if (object !== 'attendant' || !(method in ubus)) {
				result = [3];
			} else {
				const entry = ubus[method];
				const reply = typeof entry === 'function' ? await entry(args, n) : structuredClone(entry);
				result = [0, reply];
			}
			return response(200, JSON.stringify({ jsonrpc: '2.0', id: body.id, result }));
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
	return { dom, window, document: window.document, L: window.L, stub: window.__luciStub, copied };
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
	await instance.ready;
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

/** Clicks a button (by id or node) and waits for its handler's promise. */
export async function click(p, target) {
	const node = typeof target === 'string' ? p.document.getElementById(target) : target;
	if (!node)
		throw new Error(`no element ${target}`);
	node.dispatchEvent(new p.window.MouseEvent('click', { bubbles: true }));
	await settle();
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
