// The stand-in itself (tests/luci-stub.js), one test per rule of LuCI's runtime that the app
// relies on, with the results the real runtime (openwrt-24.10 luci.js, cbi.js, rpc.js, ui.js)
// gives for the same calls. Code runs inside the page (window.eval), as the app's does, so
// `instanceof Object` and friends see the page's own classes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { page, settle, until, ubusStatus, rpcError, plain } from './harness.mjs';

function open(t, ubus, options) {
	const p = page(ubus, options);
	t.after(() => p.window.close());
	return p;
}

/** Evaluates `source` in the page; returns the result. */
function run(p, source) {
	return p.window.eval(source);
}

/** The children of a node as [nodeName, text] pairs. */
function children(node) {
	return [...node.childNodes].map((n) => [n.nodeName, n.textContent]);
}

test('E: null and false in a child array print as text', (t) => {
	const p = open(t);
	const div = run(p, "E('div', {}, [ null, 'a', false, 0, undefined ])");
	assert.equal(div.textContent, 'nullafalse0undefined');
	assert.equal(div.children.length, 0);
});

test('E: a nested array is one text of its string, its nodes are not in the DOM', (t) => {
	const p = open(t);
	const div = run(p, "E('div', {}, [ null, [ E('div'), E('span') ] ])");
	assert.equal(div.textContent, 'null[object HTMLDivElement],[object HTMLSpanElement]');
	assert.equal(div.querySelector('div, span'), null);
	assert.equal(run(p, "E('div', {}, [ [ 'a', 'b', null ] ])").textContent, 'a,b,');
});

test('E: a single string child is parsed as HTML; strings in an array are text', (t) => {
	const p = open(t);
	const html = run(p, "E('div', {}, '<b>x</b> & y')");
	assert.deepEqual(children(html), [['B', 'x'], ['#text', ' & y']]);
	const mangled = run(p, "E('pre', {}, 'a <stdin> & b')");
	assert.notEqual(mangled.textContent, 'a <stdin> & b', 'the unknown element swallows the text');
	assert.ok(mangled.querySelector('stdin'));
	const text = run(p, "E('div', {}, [ '<b>x</b>' ])");
	assert.deepEqual(children(text), [['#text', '<b>x</b>']]);
	assert.equal(run(p, "E('div', {}, 0)").textContent, '0');
	assert.equal(run(p, "E('div', {}, false)").textContent, 'false');
	assert.equal(run(p, "E('div', {}, null)").childNodes.length, 0);
});

test('E: a second argument that is not a plain object is the children, and a node there is lost', (t) => {
	const p = open(t);
	assert.equal(run(p, "E('p', 'text')").textContent, 'text');
	assert.equal(run(p, "E('p', [ 'a', E('i', {}, [ 'b' ]) ])").innerHTML, 'a<i>b</i>');
	assert.equal(run(p, "E('p', null, 'kids')").outerHTML, '<p></p>');
	assert.equal(run(p, "E('p', E('b', {}, [ 'x' ]))").outerHTML, '<p></p>', 'a node as 2nd argument is the attribute map');
});

test('E: a function child is called with the node; a Promise prints as text', (t) => {
	const p = open(t);
	assert.equal(run(p, "E('div', {}, function (n) { return [ E('i'), 'x' ]; })").innerHTML, '<i></i>x');
	assert.equal(run(p, "E('div', {}, [ Promise.resolve(1) ])").textContent, '[object Promise]');
	assert.match(run(p, "E('div', {}, [ function () { return 1; } ])").textContent, /^function/);
});

test('E: tag forms — HTML string (first node), existing node, array as a fragment', (t) => {
	const p = open(t);
	assert.equal(run(p, "E('<b>x</b><i>y</i>')").outerHTML, '<b>x</b>');
	assert.equal(run(p, "var n = document.createElement('p'); E(n, { id: 'a' }, [ 'z' ]) === n && n.outerHTML"), '<p id="a">z</p>');
	const fragment = run(p, "E([ E('a'), E('b') ])");
	assert.equal(fragment.nodeType, 11);
	assert.equal(fragment.childNodes.length, 2);
	assert.throws(() => run(p, "E('div x')"));
});

test('E: attributes — null and undefined skipped, false and true set as text, objects as JSON, functions as listeners', (t) => {
	const p = open(t);
	const node = run(p, "window.clicked = 0; E('input', { a: null, b: undefined, c: false, d: true, e: 0, f: '', g: { x: 1 }, click: function () { window.clicked++; } })");
	assert.equal(node.hasAttribute('a'), false);
	assert.equal(node.hasAttribute('b'), false);
	assert.equal(node.getAttribute('c'), 'false');
	assert.equal(node.getAttribute('d'), 'true');
	assert.equal(node.getAttribute('e'), '0');
	assert.equal(node.getAttribute('f'), '');
	assert.equal(node.getAttribute('g'), '{"x":1}');
	node.dispatchEvent(new p.window.MouseEvent('click'));
	assert.equal(p.window.clicked, 1);
});

test('dom.content replaces the children by the same rules; dom.elem is true for anything with nodeType', async (t) => {
	const p = open(t);
	const dom = await p.L.require('dom');
	const node = run(p, "E('div', {}, [ E('span') ])");
	dom.content(node, run(p, "[ 'a', null ]"));
	assert.equal(node.innerHTML, 'anull');
	dom.content(node, null);
	assert.equal(node.childNodes.length, 0);
	assert.equal(dom.elem(run(p, '({ nodeType: 1 })')), true);
	assert.equal(dom.elem('div'), false);
	assert.equal(dom.elem(null), false);
	assert.equal(p.L.dom, dom);
});

test('format: %s prints undefined and null; missing arguments repeat the previous one', (t) => {
	const p = open(t);
	assert.equal(run(p, "'[%s][%s]'.format(undefined, null)"), '[undefined][null]');
	assert.equal(run(p, "'%s-%s-%s'.format('a')"), 'a-a-a');
	assert.equal(run(p, "'%s'.format()"), 'undefined');
});

test('format: numbers, escapes, padding and units as cbi.js', (t) => {
	const p = open(t);
	assert.deepEqual(plain(run(p, "[ 1.7, -1.5, 'abc', '42' ].map(function (v) { return '%d'.format(v); })")), ['1', '-2', '0', '42']);
	assert.equal(run(p, "'%f'.format(1.5) + ' ' + '%.2f'.format(1.005)"), '1.5 1.00');
	assert.equal(run(p, `'%h'.format('<a href="x">&\\'')`), '&#60;a href=&#34;x&#34;&#62;&#38;&#39;');
	assert.equal(run(p, `'%q'.format('"q\\' <b>')`), '&#34;q&#39; <b>');
	assert.equal(run(p, "'[%5s][%-5s][%05d][%.2s]'.format('ab', 'ab', 42, 'abcdef')"), '[   ab][ab   ][00042][abcdef]');
	assert.equal(run(p, "'%m'.format(1500000)"), '1.50 M');
	assert.equal(run(p, "'%1024.2m'.format(1048576)"), '1024.00 Ki');
	assert.equal(run(p, "'%t'.format(3725)"), '1h 2m 5s');
	assert.equal(run(p, "'%d%%'.format(50)"), '50%');
});

test('N_: plural unless n is 1 (loosely)', (t) => {
	const p = open(t);
	assert.equal(run(p, "N_(1, 'one', 'many') + N_('1', 'one', 'many') + N_(0, 'one', 'many')"), 'oneonemany');
});

test('require: one shared instance per module, bound under its name with . turned into _', async (t) => {
	const p = open(t);
	const a = await p.L.require('attendant.logic');
	const b = await p.L.require('attendant.logic');
	assert.equal(a, b);
	assert.equal(p.L.attendant, undefined, 'a dotted name is not put on L');
	const include = await p.L.require('view.status.include.11_attendant');
	assert.equal(typeof include.load, 'function');
	assert.equal(await p.L.require('ui'), p.L.ui);
	await assert.rejects(p.L.require('attendant.nothing'), (e) => e.name === 'NetworkError' && /HTTP error 404/.test(e.message));
});

test('require: a file whose `require x` has no `as` binds x with . as _', async (t) => {
	const p = open(t);
	const source = "'use strict';\n'require baseclass';\n'require attendant.logic';\nreturn baseclass.extend({ seen: function () { return typeof attendant_logic.isActive; } });";
	const original = p.window.fetch;
	p.window.fetch = async (url, init) => (String(url).endsWith('/probe.js')
		? { ok: true, status: 200, text: async () => source } : original(url, init));
	const probe = await p.L.require('probe');
	assert.equal(probe.seen(), 'function');
	assert.equal(p.L.probe, probe, 'a one-word name is put on L');
});

test('Class: members are not enumerable, new is required, super walks the ancestors', (t) => {
	const p = open(t);
	const result = run(p, `(function () {
		var A = L.Class.extend({ __init__: function (x) { this.x = x; }, f: function () { return 'A'; } });
		var B = A.extend({ f: function () { return 'B' + this.super('f', []); } });
		var C = B.extend({ f: function () { return 'C' + this.super('f', []); } });
		var c = new C(7);
		var threw = false;
		try { C(); } catch (e) { threw = e instanceof TypeError; }
		return { f: c.f(), x: c.x, keys: Object.keys(Object.getPrototypeOf(c)), threw: threw, sub: A.isSubclass(C) };
	})()`);
	assert.deepEqual(plain(result), { f: 'CBA', x: 7, keys: [], threw: true, sub: true });
});

test('resolveDefault: only a rejection becomes the default; a ubus status number passes', async (t) => {
	const p = open(t);
	assert.equal(await p.L.resolveDefault(Promise.reject(new Error('x')), 'd'), 'd');
	assert.equal(await p.L.resolveDefault(Promise.resolve(3), 'd'), 3);
	assert.equal(await p.L.resolveDefault(Promise.resolve(null), 'd'), null);
});

test('url: parts with other characters are dropped; null gives an empty segment', (t) => {
	const p = open(t);
	assert.equal(p.L.url(), '/cgi-bin/luci/');
	assert.equal(p.L.url('admin', 'system', 'attendant', 'overview'), '/cgi-bin/luci/admin/system/attendant/overview');
	assert.equal(p.L.url('admin/system', 'x y', 'a?b', '', null, 5), '/cgi-bin/luci/admin/system//5');
});

function declare(p, spec) {
	return run(p, `(function () { var rpc = L.rpc; return rpc.declare(${spec}); })()`);
}

test('rpc: calls in one frame go out as one POST of a JSON array', async (t) => {
	const p = open(t, { info: { a: 1 }, config_get: { b: 2 } });
	const info = declare(p, "{ object: 'attendant', method: 'info' }");
	const config = declare(p, "{ object: 'attendant', method: 'config_get' }");
	const replies = await Promise.all([info(), config()]);
	assert.deepEqual(plain(replies), [{ a: 1 }, { b: 2 }]);
	assert.equal(p.posts.length, 1);
	assert.ok(Array.isArray(p.posts[0]) && p.posts[0].length === 2);
	const single = declare(p, "{ object: 'attendant', method: 'info', nobatch: true }");
	await single();
	assert.ok(!Array.isArray(p.posts[1]), 'nobatch posts one object');
});

test('rpc: params by position, undefined left out, extra arguments go to filter', async (t) => {
	const p = open(t, { check: (args) => args });
	const call = declare(p, "{ object: 'attendant', method: 'check', params: [ 'version', 'add' ], filter: function (data, params, extra) { return [ data, params.version, extra ]; } }");
	assert.deepEqual(plain(await call('24.10.6', undefined, 'private')), [{ version: '24.10.6' }, '24.10.6', 'private']);
});

test('rpc: status 0 without data resolves 0; a non-zero status resolves the number', async (t) => {
	const p = open(t, { info: ubusStatus(0), status: ubusStatus(6) });
	assert.equal(await declare(p, "{ object: 'attendant', method: 'info' }")(), 0);
	assert.equal(await declare(p, "{ object: 'attendant', method: 'status' }")(), 6);
	assert.equal(await declare(p, "{ object: 'attendant', method: 'no_such_method' }")(), 3);
});

test('rpc: expect applies to whatever came back, by type tag; a status number gives the default', async (t) => {
	const p = open(t, { info: { list: 'not an array', n: 5 }, status: ubusStatus(3), config_get: { v: null } });
	assert.deepEqual(plain(await declare(p, "{ object: 'attendant', method: 'info', expect: { list: [] } }")()), []);
	assert.equal(await declare(p, "{ object: 'attendant', method: 'info', expect: { n: 0 } }")(), 5);
	assert.deepEqual(plain(await declare(p, "{ object: 'attendant', method: 'status', expect: { '': {} } }")()), {});
	assert.equal(await declare(p, "{ object: 'attendant', method: 'info', expect: { n: null } }")(), null, 'a null default always wins');
	assert.equal(await declare(p, "{ object: 'attendant', method: 'config_get', expect: { v: 'd' } }")(), 'd');
});

test('rpc: reject turns a non-zero status into RPCError with the status text', async (t) => {
	const p = open(t, { status: ubusStatus(6) });
	await assert.rejects(declare(p, "{ object: 'attendant', method: 'status', reject: true }")(),
		(e) => e.name === 'RPCError' && e.message.split('\n')[0] === 'RPC call to attendant/status failed with ubus code 6: Permission denied');
});

test('rpc: an unknown object rejects with -32000, and the message carries the call stack', async (t) => {
	const p = open(t);
	await assert.rejects(declare(p, "{ object: 'nothing', method: 'info' }")(), (e) => {
		assert.equal(e.name, 'RPCError');
		assert.equal(e.message.split('\n')[0], 'RPC call to nothing/info failed with error -32000: Object not found');
		assert.ok(e.message.split('\n').length > 1, 'stack lines follow the first line');
		return true;
	});
});

test('rpc: access denied with a live session stays an RPCError; a dead session is SessionError, a modal and no polling', async (t) => {
	const denied = open(t, { start: {} }, { denied: ['start'] });
	await assert.rejects(declare(denied, "{ object: 'attendant', method: 'start' }")(),
		(e) => e.name === 'RPCError' && /failed with error -32002: Access denied/.test(e.message));
	assert.equal(denied.document.body.classList.contains('modal-overlay-active'), false);

	const expired = open(t, { info: {} }, { expired: true });
	const poll = await expired.L.require('poll');
	poll.add(() => Promise.resolve(), 5);
	assert.equal(poll.active(), true);
	await assert.rejects(declare(expired, "{ object: 'attendant', method: 'info' }")(),
		(e) => e.name === 'SessionError' && /^Login session is expired/.test(e.message));
	assert.equal(poll.active(), false);
	assert.match(expired.document.querySelector('#modal_overlay .modal').textContent, /Session expired.*new login is required/);
});

test('poll: the first add after boot runs the function at once; intervals are whole seconds', async (t) => {
	const p = open(t, {}, { pollScale: 0.02 });
	const poll = await p.L.require('poll');
	let runs = 0;
	let halves = 0;
	const fn = () => { runs++; };
	assert.equal(poll.add(fn, 1), true);
	assert.equal(runs, 1, 'run inside add');
	assert.equal(poll.add(fn, 1), false, 'the same function twice');
	poll.add(() => { halves++; }, 0.5);
	await until(() => runs >= 3, 'more runs');
	assert.equal(halves, 0, 'an interval of 0.5 s is floored to 0 and never runs');
	assert.throws(() => poll.add('x', 1), (e) => e.name === 'TypeError');
	assert.throws(() => poll.add(fn, NaN), (e) => e.name === 'TypeError');
});

test('poll: a synchronous throw kills the entry for good; a rejection does not', async (t) => {
	const p = open(t, {}, { pollScale: 0.02 });
	const poll = await p.L.require('poll');
	let thrown = 0;
	let rejected = 0;
	poll.add(() => { rejected++; return Promise.reject(new Error('later')); }, 1);
	// The loop already runs, so this one first runs on the next tick, where its throw escapes.
	poll.add(() => { thrown++; throw new Error('now'); }, 1);
	await until(() => rejected >= 3, 'the rejecting entry keeps running');
	assert.equal(thrown, 1);
	assert.ok(p.stub.errors.some((e) => /unhandled rejection of a poll function: Error: later/.test(e)));
});

test('poll: removing the last entry stops the loop and the next add starts it again', async (t) => {
	const p = open(t, {}, { pollScale: 0.02 });
	const poll = await p.L.require('poll');
	let runs = 0;
	const fn = () => { runs++; };
	poll.add(fn, 1);
	assert.equal(poll.remove(fn), true);
	assert.equal(poll.active(), false);
	poll.add(fn, 1);
	assert.equal(runs, 2);
	assert.equal(poll.active(), true);
	poll.stop();
	poll.remove(fn);
	poll.add(fn, 1);
	assert.equal(poll.active(), false, 'after stop() the loop is disarmed');
	assert.equal(runs, 2);
});

test('ui.showModal: always an h4, child arrays by the append rules; hideModal keeps the content', async (t) => {
	const p = open(t);
	const ui = p.L.ui;
	const dlg = run(p, "L.ui.showModal(null, [ null, E('p', {}, [ 'x' ]) ], 'extra')");
	assert.deepEqual(children(dlg), [['H4', ''], ['#text', 'null'], ['P', 'x']]);
	assert.ok(dlg.classList.contains('extra'));
	assert.ok(p.document.body.classList.contains('modal-overlay-active'));
	ui.hideModal();
	assert.equal(p.document.body.classList.contains('modal-overlay-active'), false);
	assert.equal(dlg.querySelector('p').textContent, 'x');
	run(p, "L.ui.showModal('T', '<b>html</b>')");
	assert.deepEqual(children(p.document.querySelector('.modal')), [['B', 'html']], 'a string replaces the h4');
});

test('ui.addNotification: the third argument is a timeout; classes start at the fourth; newest first in #maincontent', async (t) => {
	const p = open(t);
	const ignored = run(p, "L.ui.addNotification(null, E('p', {}, [ 'a' ]), 'info')");
	assert.deepEqual([...ignored.classList], ['alert-message', 'fade-in'], "'info' as a timeout is ignored");
	const info = run(p, "L.ui.addNotification('Title', E('p', {}, [ 'b' ]), 30, 'info')");
	assert.ok(info.classList.contains('info'));
	assert.equal(p.document.getElementById('maincontent').firstElementChild, info);
	assert.equal(info.querySelector('h4').textContent, 'Title');
	assert.ok([...info.querySelectorAll('button')].some((b) => b.textContent === 'Dismiss'));
	await until(() => !info.parentNode, 'the timeout removes it');
	assert.ok(ignored.parentNode, 'without a timeout it stays');
});

test('ui.createHandlerFn: null for a missing method, extra arguments first, the button spins until the promise settles', async (t) => {
	const p = open(t);
	const result = run(p, `(function () {
		var ctx = { seen: null, go: function (a, ev) { this.seen = [ a, ev.type ]; return new Promise(function (r) { window.finish = r; }); } };
		var button = E('button');
		var handler = L.ui.createHandlerFn(ctx, 'go', 'extra');
		window.returned = handler({ currentTarget: button, type: 'click' });
		return { missing: L.ui.createHandlerFn(ctx, 'nothing'), ctx: ctx, button: button };
	})()`);
	assert.equal(result.missing, null);
	assert.equal(p.window.returned, undefined);
	assert.deepEqual(plain(result.ctx.seen), ['extra', 'click']);
	assert.ok(result.button.disabled && result.button.classList.contains('spinning'));
	p.window.finish();
	await settle();
	assert.ok(!result.button.disabled && !result.button.classList.contains('spinning'));
});

test('view: a spinner first, then the render result by dom.content rules, then the footer', async (t) => {
	const p = open(t);
	const View = await p.L.require('view');
	const started = run(p, `(function (View) {
		var V = View.extend({ load: function () { return new Promise(function (r) { window.loaded = r; }); },
			render: function () { return [ null, E('p', {}, [ 'body' ]) ]; }, handleSaveApply: null, handleReset: null });
		new V();
		return document.getElementById('view').innerHTML;
	})`)(View);
	assert.match(started, /class="spinning"/);
	p.window.loaded();
	await p.stub.views[0];
	const view = p.document.getElementById('view');
	assert.equal(view.childNodes[0].textContent, 'null', 'a null item of the render array prints');
	const actions = view.querySelector('.cbi-page-actions');
	assert.deepEqual([...actions.querySelectorAll('button')].map((b) => b.className), ['cbi-button cbi-button-save']);
	assert.equal(actions.querySelector('button').disabled, false);
});

test('view: a read-only menu node disables the footer buttons; all handlers null give no footer', async (t) => {
	const p = open(t, {}, { readonly: true });
	const View = await p.L.require('view');
	run(p, "(function (View) { new (View.extend({ render: function () { return E('p'); }, handleSaveApply: null, handleReset: null }))(); })")(View);
	await p.stub.views[0];
	assert.equal(p.document.querySelector('#view .cbi-button-save').disabled, true);
	run(p, "(function (View) { new (View.extend({ render: function () { return E('p', { id: 'bare' }); }, handleSave: null, handleSaveApply: null, handleReset: null }))(); })")(View);
	await p.stub.views[1];
	assert.ok(p.document.getElementById('bare'));
	assert.equal(p.document.querySelector('#view .cbi-page-actions'), null);
});

test('view: a failing load leaves the spinner and shows a notification titled with the error name', async (t) => {
	const p = open(t);
	const View = await p.L.require('view');
	run(p, "(function (View) { new (View.extend({ load: function () { return Promise.reject(new TypeError('boom')); } }))(); })")(View);
	await p.stub.views[0].catch(() => {});
	assert.ok(p.document.querySelector('#view .spinning'));
	const banner = p.document.querySelector('#maincontent > .alert-message');
	assert.equal(banner.querySelector('h4').textContent, 'TypeError');
	assert.match(banner.querySelector('pre').textContent, /boom/);
});
