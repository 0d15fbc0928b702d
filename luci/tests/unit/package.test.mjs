// The configuration view, the status-page include, and the package's wiring: every rpc
// declaration and call against ubus-bridge/contract.json, ACL, menu and translation template.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { page, view, example, contract, click, text, until, settle, plain, assertReadable, statusPage, rpcError, LUCI, REPO } from './harness.mjs';
import { extract, POT } from '../i18n.mjs';

const TYPES = {
	boolean: (v) => typeof v === 'boolean',
	string: (v) => typeof v === 'string',
	integer: (v) => Number.isInteger(v),
	'array of strings': (v) => Array.isArray(v) && v.every((s) => typeof s === 'string')
};

/** Loads every file of the app that declares rpc calls and returns the declarations. */
async function declarations(t) {
	const p = page({ config_get: example('config_get', 'ok') });
	t.after(() => p.window.close());
	for (const name of ['view.attendant.overview', 'view.attendant.configuration', 'view.status.include.11_attendant'])
		await p.L.require(name).catch(() => {});
	return plain(p.stub.declarations);
}

test('every rpc declaration names a contract method and only its arguments', async (t) => {
	const c = contract();
	const decls = await declarations(t);
	const methods = new Set(decls.map((d) => d.method));
	assert.ok(decls.length >= 10, `only ${decls.length} declarations`);
	for (const d of decls) {
		assert.equal(d.object, c.object);
		assert.ok(d.method in c.methods, `\`${d.method}\` is not in contract.json`);
		for (const param of d.params || [])
			assert.ok(param in c.methods[d.method].arguments, `\`${d.method}\` has no argument \`${param}\``);
	}
	for (const m of ['info', 'config_get', 'check', 'start', 'status', 'cancel', 'install', 'config_set'])
		assert.ok(methods.has(m), `the app never declares \`${m}\``);
});

test('configuration: shows the settings from config_get and saves them through config_set', async (t) => {
	const config = { ...example('config_get', 'ok'), auto_search: true, rebuilders: ['https://rebuild.example.org'] };
	const p = page({ config_get: config, config_set: (args) => ({ ...config, ...args }) });
	t.after(() => p.window.close());
	await view(p, 'attendant/configuration');
	const doc = p.document;
	assert.equal(doc.getElementById('attendant-url').value, 'https://sysupgrade.openwrt.org');
	assert.equal(doc.getElementById('attendant-rebuilders').value, 'https://rebuild.example.org');
	assert.equal(doc.getElementById('attendant-auto_search').checked, true);
	assert.equal(doc.getElementById('attendant-advanced_mode').checked, false);
	assert.equal(doc.getElementById('attendant-keep_settings').checked, true);
	assert.equal(doc.getElementById('attendant-require_signature').checked, false);
	doc.getElementById('attendant-url').value = 'http://asu.lan:8000';
	doc.getElementById('attendant-advanced_mode').checked = true;
	doc.getElementById('attendant-require_signature').checked = true;
	await click(p, doc.querySelector('.cbi-button-save'));
	await until(() => text(p, 'attendant-config-message'), 'the save message');
	const sets = plain(p.stub.calls.filter((c) => c.method === 'config_set').map((c) => c.args));
	assert.deepEqual(sets, [{
		url: 'http://asu.lan:8000', rebuilders: ['https://rebuild.example.org'], auto_search: true,
		advanced_mode: true, login_check_for_upgrades: false, keep_settings: true, require_signature: true
	}]);
	assert.equal(text(p, 'attendant-config-message'), 'The configuration has been saved.');
	assertReadable(p, 'the configuration page');
});

test('configuration: a wrong server address is refused before anything is sent', async (t) => {
	const p = page({ config_get: example('config_get', 'ok'), config_set: example('config_set', 'ok') });
	t.after(() => p.window.close());
	await view(p, 'attendant/configuration');
	p.document.getElementById('attendant-url').value = 'sysupgrade.openwrt.org';
	await click(p, p.document.querySelector('.cbi-button-save'));
	assert.match(text(p, 'attendant-config-message'), /Server address must be an http:\/\/ or https:\/\/ URL, got "sysupgrade.openwrt.org"/);
	assert.equal(p.stub.calls.filter((c) => c.method === 'config_set').length, 0);
});

test('every call the views make carries only contract arguments of the documented types', async (t) => {
	const c = contract();
	const p = page({
		info: example('info', 'ok'),
		config_get: { ...example('config_get', 'ok'), advanced_mode: true },
		status: (args, n) => example('status', n === 0 ? 'idle' : 'ready'),
		check: example('check', 'upgrade_available'),
		start: example('start', 'started'),
		install: example('install', 'installing'),
		channels: example('channels', 'ok'),
		config_set: example('config_set', 'ok')
	});
	t.after(() => p.window.close());
	await view(p, 'attendant/overview');
	await until(() => p.document.getElementById('attendant-channel'), 'the channels');
	await click(p, 'attendant-channel-check');
	await until(() => p.document.getElementById('attendant-verdict'), 'the channel offer');
	await click(p, 'attendant-channel-follow');
	await until(() => p.stub.calls.some((x) => x.method === 'config_set'), 'the channel saved');
	p.document.getElementById('attendant-add').value = 'tmux';
	p.document.getElementById('attendant-force').checked = true;
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-build'), 'the offer');
	await click(p, 'attendant-build');
	await until(() => p.document.getElementById('attendant-install'), 'the result');
	p.document.getElementById('attendant-force-flash').checked = true;
	await click(p, 'attendant-install');
	await click(p, 'attendant-confirm-install');
	const calls = plain(p.stub.calls);
	assert.deepEqual([...new Set(calls.map((x) => x.method))].sort(), ['channels', 'check', 'config_get', 'config_set', 'info', 'install', 'start', 'status']);
	for (const call of calls) {
		const spec = c.methods[call.method].arguments;
		for (const [key, value] of Object.entries(call.args)) {
			assert.ok(key in spec, `${call.method}: unknown argument ${key}`);
			assert.ok(TYPES[spec[key].type](value), `${call.method}.${key} should be ${spec[key].type}, got ${JSON.stringify(value)}`);
		}
		for (const [key, arg] of Object.entries(spec))
			if (arg.required)
				assert.ok(key in call.args, `${call.method}: required ${key} missing`);
	}
	assert.deepEqual(calls.find((x) => x.method === 'install').args, { job: '0123456789abcdef', keep_settings: true, force: true });
	assert.deepEqual(calls.find((x) => x.method === 'check').args, { channel: 'stable' });
	assert.deepEqual(calls.find((x) => x.method === 'config_set').args, { channel: 'stable' });
});

test('status page: announces an upgrade only when login_check_for_upgrades is on', async (t) => {
	const on = page({ config_get: { ...example('config_get', 'ok'), login_check_for_upgrades: true }, check: example('check', 'upgrade_available') });
	const off = page({ config_get: example('config_get', 'ok'), check: example('check', 'upgrade_available') });
	t.after(() => { on.window.close(); off.window.close(); });
	for (const p of [on, off]) {
		const include = await p.L.require('view.status.include.11_attendant');
		const node = include.render(await include.load());
		if (node)
			p.document.body.appendChild(node);
	}
	assert.match(text(on, 'attendant-status-notice'), /Firmware 24\.10\.6 \(r28959-29397011cc\) is available; this router runs 24\.10\.4 \(r28427-6df0e3d02a\)/);
	assert.equal(on.document.querySelector('#attendant-status-notice a').getAttribute('href'), '/cgi-bin/luci/admin/system/attendant/overview');
	assert.equal(off.document.getElementById('attendant-status-notice'), null);
	assert.equal(off.stub.calls.filter((c) => c.method === 'check').length, 0, 'no check when the option is off');
	const blocked = page({ config_get: { ...example('config_get', 'ok'), login_check_for_upgrades: true }, check: example('check', 'blocked') });
	t.after(() => blocked.window.close());
	const include = await blocked.L.require('view.status.include.11_attendant');
	assert.equal(include.render(await include.load()), null);
	await settle();
});

test('status page: a channel\'s offer names the build, its description as text and the phase state', async (t) => {
	const offered = example('check', 'channel');
	const check = { ...offered, channel: { ...offered.channel, description: 'Q1 <b>fixes</b>' } };
	const p = page({ config_get: { ...example('config_get', 'ok'), login_check_for_upgrades: true, channel: 'stable' }, check });
	t.after(() => p.window.close());
	const include = await p.L.require('view.status.include.11_attendant');
	p.document.body.appendChild(include.render(await include.load()));
	const notice = p.document.getElementById('attendant-status-notice');
	assert.equal(notice.dataset.channel, 'stable');
	assert.deepEqual([...notice.querySelectorAll('p')].map((n) => n.textContent), [
		'Build 6 of channel stable (OpenWrt 24.10.5) is available; this router runs build 5.',
		'Q1 <b>fixes</b>',
		'The newest build, 7 (OpenWrt 24.10.6), is offered to 40 % of routers so far; this router\'s turn comes at 42 %.'
	]);
	assert.equal(notice.querySelector('b'), null, 'markup stays text');
	assert.equal(notice.querySelector('a').getAttribute('href'), '/cgi-bin/luci/admin/system/attendant/overview');
	assertReadable(p, 'the status page');
	// Phased out with nothing older to take: no notice.
	const waiting = page({ config_get: { ...example('config_get', 'ok'), login_check_for_upgrades: true }, check: example('check', 'channel_phased_out') });
	t.after(() => waiting.window.close());
	const other = await waiting.L.require('view.status.include.11_attendant');
	assert.equal(other.render(await other.load()), null);
	await settle();
});

test('status page: every tick asks check with max_age, so the bridge answers from its last check', async (t) => {
	const checks = [];
	const p = page({
		config_get: { ...example('config_get', 'ok'), login_check_for_upgrades: true },
		check: (args) => {
			checks.push(args);
			return { ...example('check', 'upgrade_available'), cached: checks.length > 1 };
		}
	}, { pollScale: 0.02 });
	t.after(() => p.window.close());
	const state = await statusPage(p, 'view.status.include.11_attendant');
	await until(() => checks.length >= 3, 'three ticks');
	assert.equal(state.failed, false);
	assert.deepEqual(plain(checks.slice(0, 3)), [{ max_age: 3600 }, { max_age: 3600 }, { max_age: 3600 }]);
	assert.match(text(p, 'attendant-status-notice'), /Firmware 24\.10\.6 \(r28959-29397011cc\) is available/);
	assert.equal(p.document.querySelectorAll('#attendant-status-notice').length, 1);
	assertReadable(p, 'the status page');
});

test('status page: the notice goes away when the upgrade is no longer offered', async (t) => {
	// The Status page keeps a section's old content when render returns null, so the include
	// must hand it something else once the offer is gone.
	let verdict = 'upgrade_available';
	const p = page({
		config_get: { ...example('config_get', 'ok'), login_check_for_upgrades: true },
		check: () => (verdict === 'upgrade_available' ? example('check', 'upgrade_available') : example('check', verdict))
	}, { pollScale: 0.02 });
	t.after(() => p.window.close());
	const state = await statusPage(p, 'view.status.include.11_attendant');
	await until(() => p.document.getElementById('attendant-status-notice'), 'the notice');
	verdict = 'up_to_date';
	const loads = state.loads;
	await until(() => state.loads >= loads + 2, 'two more ticks');
	await settle(30);
	assert.equal(p.document.getElementById('attendant-status-notice'), null, 'the notice is still shown');
	assert.equal(state.section.textContent.trim(), '');
	assert.equal(state.failed, false);
	verdict = 'upgrade_available';
	await until(() => p.document.getElementById('attendant-status-notice'), 'the notice again');
	assertReadable(p, 'the status page');
});

test('status page: a missing plugin, a denied ACL or a dead answer never makes load() reject', async (t) => {
	const cases = [
		page({}, { plugin: false, pollScale: 0.02 }),
		page({ config_get: example('config_get', 'ok') }, { denied: ['config_get'], pollScale: 0.02 }),
		page({ config_get: { ...example('config_get', 'ok'), login_check_for_upgrades: true }, check: rpcError(-32003, 'ubus request timed out') }, { pollScale: 0.02 }),
		page({ config_get: { ...example('config_get', 'ok'), login_check_for_upgrades: true }, check: { error: { code: 'server', message: 'unreachable' } } }, { pollScale: 0.02 })
	];
	t.after(() => cases.forEach((p) => p.window.close()));
	for (const p of cases) {
		const state = await statusPage(p, 'view.status.include.11_attendant');
		await until(() => state.loads >= 2, 'two ticks');
		await settle(30);
		assert.equal(state.failed, false, String(state.error));
		assert.ok(state.section.classList.contains('hidden'), 'nothing shown');
		assert.equal(p.stub.errors.length, 0, p.stub.errors.join('\n'));
	}
});

test('configuration: an unreadable configuration is shown as text; a read-only user gets a disabled Save', async (t) => {
	const p = page({ config_get: { error: { code: 'failure', message: 'cannot read `/etc/config/<attendedsysupgrade>`' } } }, { readonly: true });
	t.after(() => p.window.close());
	await view(p, 'attendant/configuration');
	assert.equal(text(p, 'attendant-config-error'), 'cannot read `/etc/config/<attendedsysupgrade>`');
	assert.equal(p.document.getElementById('attendant-url').value, '');
	assert.equal(p.document.querySelector('.cbi-button-save').disabled, true);
	assertReadable(p, 'the configuration page');
});

test('the ACL grants the bridge group exactly as the bridge does, and covers every method the views call', async () => {
	const ours = JSON.parse(readFileSync(join(LUCI, 'root/usr/share/rpcd/acl.d/luci-app-attendant.json'), 'utf8'));
	const bridge = JSON.parse(readFileSync(join(REPO, 'ubus-bridge/root/usr/share/rpcd/acl.d/attendant.json'), 'utf8'));
	const group = contract().acl.group;
	assert.deepEqual(Object.keys(ours), [group]);
	assert.deepEqual(ours[group].read, bridge[group].read);
	assert.deepEqual(ours[group].write, bridge[group].write);
	const granted = [...ours[group].read.ubus.attendant, ...ours[group].write.ubus.attendant].sort();
	assert.deepEqual(granted, Object.keys(contract().methods).sort());
	for (const [method, spec] of Object.entries(contract().methods))
		assert.ok(ours[group][spec.access].ubus.attendant.includes(method), `${method} not in the ${spec.access} part`);
});

test('the menu puts both views under System and depends on the ACL group', () => {
	const menu = JSON.parse(readFileSync(join(LUCI, 'root/usr/share/luci/menu.d/luci-app-attendant.json'), 'utf8'));
	assert.deepEqual(menu['admin/system/attendant'].depends.acl, [contract().acl.group]);
	assert.equal(menu['admin/system/attendant'].title, 'Firmware upgrade');
	for (const name of ['overview', 'configuration']) {
		const entry = menu[`admin/system/attendant/${name}`];
		assert.deepEqual(entry.action, { type: 'view', path: `attendant/${name}` });
		readFileSync(join(LUCI, `htdocs/luci-static/resources/view/attendant/${name}.js`));
	}
});

test('the translation template holds every string of the views and menu', () => {
	const pot = readFileSync(POT, 'utf8');
	const inPot = new Set([...pot.matchAll(/^msgid "((?:[^"\\]|\\.)*)"$/gm)].map((m) => JSON.parse(`"${m[1]}"`)).filter((s) => s !== ''));
	const inCode = new Set(extract().keys());
	const missing = [...inCode].filter((s) => !inPot.has(s));
	const stale = [...inPot].filter((s) => !inCode.has(s));
	assert.deepEqual({ missing, stale }, { missing: [], stale: [] }, 'run: node tests/i18n.mjs');
	assert.ok(inCode.has('Keep settings') && inCode.has('Check for upgrade') && inCode.has('Overview'));
});
