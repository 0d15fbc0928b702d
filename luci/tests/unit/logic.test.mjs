// The plain decisions of attendant/logic.js, fed with the bridge's contract examples.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { page, logic, contract, example, errorReply } from './harness.mjs';
import { extract } from '../i18n.mjs';

async function load(t) {
	const p = page();
	t.after(() => p.window.close());
	return logic(p);
}

test('every contract state maps to a panel and only moving states keep polling', async (t) => {
	const l = await load(t);
	const states = contract().methods.status.states;
	const panels = Object.fromEntries(states.map((s) => [s, l.phase({ state: s })]));
	assert.deepEqual(panels, {
		idle: 'idle', checking: 'progress', queued: 'progress', building: 'progress',
		downloading: 'progress', verifying: 'progress', ready: 'ready', up_to_date: 'up_to_date',
		installing: 'installing', rebooting: 'rebooting', failed: 'failed', cancelled: 'cancelled'
	});
	assert.deepEqual(states.filter((s) => l.isActive(s)),
		['checking', 'queued', 'building', 'downloading', 'verifying', 'installing']);
	assert.equal(l.phase({ state: 'something_new' }), 'idle');
	for (const s of states)
		assert.ok(l.stateLabel(s).length > 0, s);
});

test('the change table of an available upgrade lists upgrades, renames and removals but not unchanged packages', async (t) => {
	const l = await load(t);
	const check = example('check', 'upgrade_available');
	check.packages.push({ name: 'dnsmasq', installed: '2.90-r4', available: '2.90-r4', change: 'same', requested: true });
	check.packages.push({ name: 'zlib', installed: '1.3.1-r2', available: '1.3-r1', change: 'downgrade', requested: false });
	assert.deepEqual(l.changeRows(check), [
		{ kind: 'downgrade', name: 'zlib', from: '1.3.1-r2', to: '1.3-r1' },
		{ kind: 'upgrade', name: 'luci', from: '25.051.56747~54b8a24', to: '25.074.50000~b2c3d4e' },
		{ kind: 'rename', name: 'auc', from: 'auc', to: 'owut' },
		{ kind: 'removal', name: 'kmod-old', from: 'kmod-old', to: '' }
	]);
	assert.equal(l.changeLabel('missing'), 'not available');
});

test('a blocked check lists the missing package and offers no build', async (t) => {
	const l = await load(t);
	const check = example('check', 'blocked');
	assert.deepEqual(l.changeRows(check), [{ kind: 'missing', name: 'no-such-package', from: '', to: '' }]);
	assert.equal(l.canBuild(check, false), false);
	assert.equal(l.canBuild(check, true), false);
	assert.equal(l.canBuild(example('check', 'upgrade_available'), false), true);
	const upToDate = { ...example('check', 'upgrade_available'), verdict: 'up_to_date' };
	assert.equal(l.canBuild(upToDate, false), false);
	assert.equal(l.canBuild(upToDate, true), true, 'force builds when nothing changed');
	assert.equal(l.canBuild(errorReply('server'), true), false);
});

test('request arguments leave out what the user did not choose and split package lists', async (t) => {
	const l = await load(t);
	assert.deepEqual(l.requestArgs({ version: '', add: '  ', remove: '', force: false }), {});
	assert.deepEqual(l.requestArgs({ version: '24.10.6', add: 'tmux, htop tmux\nluci-app-sqm', remove: 'kmod-old', force: true }),
		{ version: '24.10.6', add: ['tmux', 'htop', 'luci-app-sqm'], remove: ['kmod-old'], force: true });
	const args = contract().methods.start.arguments;
	for (const key of Object.keys(l.requestArgs({ version: 'x', add: 'a', remove: 'b', force: true })))
		assert.ok(key in args, `start has no argument \`${key}\``);
});

test('download progress is measured in bytes and build progress by stage', async (t) => {
	const l = await load(t);
	assert.deepEqual(l.progress(example('status', 'downloading')), { percent: 50, text: '3.3 MB of 6.6 MB' });
	assert.deepEqual(l.progress(example('status', 'building')), { percent: 70, text: 'Building the image' });
	assert.equal(l.progress(example('status', 'queued')), null);
	assert.equal(l.progress({ state: 'building', build_stage: 'quantum_step' }).text, 'quantum_step');
	assert.equal(l.progress({ state: 'downloading', downloaded: 10, total: 0 }), null, 'no division by zero');
});

test('status facts show queue position, stage, elapsed time and bytes per state', async (t) => {
	const l = await load(t);
	const facts = (state) => Object.fromEntries(l.statusFacts(example('status', state)));
	assert.equal(facts('queued')['Queue position'], '2');
	assert.equal(facts('building')['Build stage'], 'Building the image');
	assert.equal(facts('building')['Build time'], '40 s');
	assert.equal(facts('downloading')['Downloaded'], '3.3 MB of 6.6 MB');
	assert.equal(facts('downloading')['Elapsed time'], '12 s');
	assert.equal(facts('queued')['Build stage'], undefined, 'queued example has no stage');
});

test('the verified result names version, SHA-256, signer and compatibility', async (t) => {
	const l = await load(t);
	const facts = Object.fromEntries(l.resultFacts(example('status', 'ready')));
	assert.equal(facts.Version, '24.10.6');
	assert.equal(facts['SHA-256'], '9f2c...e1');
	assert.equal(facts.Signature, 'valid, signed by key abababababababab');
	assert.equal(facts['Board compatibility'], 'compatible (compat_version 1.0)');
	assert.equal(facts.Size, '6.6 MB');
	const unsigned = example('status', 'ready');
	delete unsigned.verification.signed_by;
	assert.equal(Object.fromEntries(l.resultFacts(unsigned)).Signature, 'none: the image is not signed');
});

test('errors: the bridge error object is found, hints depend on the code, the report is bounded JSON', async (t) => {
	const l = await load(t);
	assert.equal(l.errorOf(example('info', 'ok')), null);
	assert.equal(l.errorOf(errorReply('server')).detail, 'Error: Impossible package selection');
	assert.equal(l.errorOf(3).code, 'failure', 'a bare ubus status is an error');
	assert.equal(l.errorOf(example('status', 'failed')), null, 'a failed job is a status, not a call error');
	for (const code of Object.keys(contract().error.codes))
		assert.notEqual(l.errorHint({ code }), undefined, code);
	assert.match(l.errorHint({ code: 'server_busy' }), /queue is full/);
	assert.match(l.errorHint(errorReply('usage').error), /^Choose one of the versions the server offers under "Version"/,
		'an error that carries a hint shows the app\'s words for its code');
	const big = { code: 'server', message: 'm', stdout: 'x'.repeat(70000) + 'END' };
	const report = JSON.parse(l.errorReport(big, { job: 'j' }));
	assert.equal(report.error.stdout.length, 65536);
	assert.ok(report.error.stdout.endsWith('END'), 'the tail of the output is kept');
	assert.equal(report.context.job, 'j');
});

test('findings: the message and the app\'s words for the hint, never the bridge\'s call arguments', async (t) => {
	const l = await load(t);
	const [problem] = example('check', 'blocked').problems;
	assert.deepEqual(l.finding(problem), {
		message: 'package `no-such-package` is not in the 24.10.6 index for `ath79/generic`',
		hint: 'Leave the package out: take it out of "Add packages", or enter it in "Remove packages", then press "Check for upgrade" again. The package fields are shown when "Advanced mode" is on (Configuration tab).'
	});
	assert.deepEqual(l.finding({ message: 'no image to install' }), { message: 'no image to install', hint: null });
	assert.deepEqual(l.finding('plain text'), { message: 'plain text', hint: null });
});

test('every hint code of the contract has translatable words naming this app\'s controls, not the bridge\'s', async (t) => {
	const l = await load(t);
	const codes = Object.keys(contract().hints.codes);
	assert.ok(codes.length >= 17, `contract.json lists only ${codes.length} hint codes`);
	const msgids = extract();
	const words = new Map();
	for (const code of codes) {
		const bridge = `the bridge's words for ${code}`;
		const hint = l.finding({ message: 'found', hint: { code, message: bridge } }).hint;
		assert.ok(hint && hint !== bridge, `\`${code}\` has no words of the app`);
		assert.doesNotMatch(hint, /`|--/, `\`${code}\` names call arguments or flags: ${hint}`);
		assert.ok(msgids.has(hint), `the words for \`${code}\` are not a _() string: ${hint}`);
		assert.equal(l.errorHint({ code: 'failure', message: 'm', hint: { code, message: bridge } }), hint,
			`an error with hint \`${code}\` shows the same words`);
		words.set(hint, [...(words.get(hint) || []), code]);
	}
	for (const [hint, same] of words)
		assert.equal(same.length, 1, `codes ${same.join(', ')} share the words: ${hint}`);
	assert.match(l.finding({ message: 'm', hint: { code: 'force', message: 'x' } }).hint, /tick "Force"/);
	assert.match(l.finding({ message: 'm', hint: { code: 'require_signature', message: 'x' } }).hint, /untick "Require signatures"/);
	assert.match(l.finding({ message: 'm', hint: { code: 'ca_file', message: 'x' } }).hint, /Install the ca-bundle package \(System → Software\)/);
	assert.match(l.errorHint(errorReply('usage').error), /under "Version"/);
});

test('a hint code this app does not know yet shows the bridge\'s message', async (t) => {
	const l = await load(t);
	const newer = { code: 'some_new_way_out', message: 'do the new thing with `new_argument`' };
	assert.equal(l.finding({ message: 'found', hint: newer }).hint, newer.message);
	assert.equal(l.errorHint({ code: 'failure', message: 'm', hint: newer }), newer.message);
	assert.equal(l.errorHint({ code: 'server_busy', message: 'm', hint: newer }), newer.message,
		'the hint is more specific than the words for the error code');
	assert.equal(l.finding({ message: 'found', hint: { code: 'constructor' } }).hint, null,
		'a code is looked up as a key of the table only, not of its prototype');
	assert.equal(l.finding({ message: 'found', hint: { code: 'toString', message: 'bridge' } }).hint, 'bridge');
	assert.equal(l.errorHint({ code: 'failure', message: 'm' }), null, 'no hint and no words for the code');
});

test('after the flash the page waits for this host only when settings are kept', async (t) => {
	const l = await load(t);
	assert.deepEqual(l.reconnectHosts(true, 'router.lan:8080'), ['router.lan:8080']);
	assert.deepEqual(l.reconnectHosts(false, 'router.lan'), ['192.168.1.1', 'openwrt.lan']);
});

test('sizes and durations read well', async (t) => {
	const l = await load(t);
	assert.equal(l.formatBytes(999), '999 B');
	assert.equal(l.formatBytes(6553600), '6.6 MB');
	assert.equal(l.formatBytes(2.5e9), '2.5 GB');
	assert.equal(l.formatBytes('junk'), '0 B');
	assert.equal(l.formatDuration(42), '42 s');
	assert.equal(l.formatDuration(95), '1 min 35 s');
	assert.equal(l.formatDuration(7260), '2 h 1 min');
	assert.equal(l.formatDuration(-3), '0 s');
});

test('the configuration form turns into config_set arguments and names wrong addresses', async (t) => {
	const l = await load(t);
	const ok = l.configArgs({ url: ' https://asu.example.org ', rebuilders: 'https://a.example\nhttp://b.example:8000/x',
		flags: { auto_search: true, require_signature: true } });
	assert.deepEqual(ok.errors, []);
	assert.deepEqual(ok.args, {
		url: 'https://asu.example.org', rebuilders: ['https://a.example', 'http://b.example:8000/x'],
		auto_search: true, advanced_mode: false, login_check_for_upgrades: false, keep_settings: false,
		require_signature: true
	});
	const setArgs = contract().methods.config_set.arguments;
	for (const key of Object.keys(ok.args))
		assert.ok(key in setArgs, `config_set has no argument \`${key}\``);
	const bad = l.configArgs({ url: 'ftp://x', rebuilders: 'not-a-url', flags: {} });
	assert.deepEqual(bad.errors, [
		'Server address must be an http:// or https:// URL, got "ftp://x"',
		'Rebuilder must be an http:// or https:// URL, got "not-a-url"'
	]);
});

test('a rejected call becomes an error reply with the first line of its message', async (t) => {
	const p = page();
	t.after(() => p.window.close());
	const l = await logic(p);
	const rejection = p.window.eval("var e = new Error('RPC call to attendant/check failed with error -32002: Access denied\\n  at handleCallReply (rpc.js:82:7)'); e.name = 'RPCError'; e");
	assert.deepEqual(l.rpcFailure(rejection), {
		error: { code: 'failure', message: 'RPCError: RPC call to attendant/check failed with error -32002: Access denied' }
	});
	assert.deepEqual(l.rpcFailure('plain words'), { error: { code: 'failure', message: 'plain words' } });
	assert.deepEqual(l.rpcFailure(undefined), { error: { code: 'failure', message: 'unknown error' } });
	assert.deepEqual(l.errorOf(l.rpcFailure('x')), { code: 'failure', message: 'x' });
});

test('version facts fill what is missing with "?" so no text shows undefined', async (t) => {
	const l = await load(t);
	assert.deepEqual(l.versionOf({ version: '24.10.6', version_code: 'r1-abc' }), { version: '24.10.6', version_code: 'r1-abc', revision: '?' });
	assert.deepEqual(l.versionOf(undefined), { version: '?', version_code: '?', revision: '?' });
	assert.deepEqual(l.versionOf({ version: '' }), { version: '?', version_code: '?', revision: '?' });
});

test('channel offer: no channel in use is null; phased out names the turn, else a plain notice', async (t) => {
	const l = await load(t);
	assert.equal(l.channelOffer(null), null);
	assert.deepEqual(l.channelFacts(null), []);
	const offer = l.channelOffer({ name: 'stable', current_build: 6, target_build: null, phased_in: false, phase: 12, next_phase_at: null });
	assert.deepEqual(offer.notices.map((n) => n.text), ['Phased out: this router\'s turn comes when the build is offered to 12 % of routers.']);
	assert.deepEqual(offer.facts, [['Channel', 'stable']]);
	const unknown = l.channelOffer({ phased_in: false });
	assert.deepEqual(unknown.facts, [['Channel', '?']]);
	assert.equal(unknown.notices[0].text, 'Phased out: the newest build is not offered to this router yet.');
	assert.deepEqual(l.channelFacts({ name: 'stable', build: 0, configured: null, phase: null }),
		[['Channel', 'stable'], ['Channel build', '0']]);
});

test('channel offers: the headline, the choices of the list, and when a switch needs the older-version warning', async (t) => {
	const l = await load(t);
	const offered = example('check', 'channel');
	const phasedOut = example('check', 'channel_phased_out');
	assert.equal(l.channelHeadline(offered), 'Build 6 of channel stable (OpenWrt 24.10.5) is available; this router runs build 5 of it.');
	assert.equal(l.channelHeadline(phasedOut), 'Channel stable offers this router nothing new yet: its newest build is still being rolled out to other routers.');
	assert.equal(l.channelHeadline({ ...phasedOut, channel: { ...phasedOut.channel, phased_in: true } }), 'The firmware is up to date on channel stable.');
	assert.deepEqual(l.channelChoices(example('channels', 'ok')), [{ value: 'stable', label: 'stable: build 7, OpenWrt 24.10.5' }]);
	assert.deepEqual(l.channelChoices({ channels: [{ name: 'x', hidden: true, latest: null }, { name: 'y', hidden: false, latest: null }, null] }),
		[{ value: 'y', label: 'y: no build for this router' }]);
	assert.deepEqual(l.channelChoices(errorReply('server')), []);
	assert.equal(l.isOlderMove(offered), false);
	const older = { ...offered, channel: { ...offered.channel, older_openwrt: true } };
	assert.equal(l.isOlderMove(older), true);
	assert.equal(l.isOlderMove({ ...older, channel: { ...older.channel, target_build: null } }), false, 'nothing to move to');
	assert.equal(l.isOlderMove(errorReply('server')), false);
	assert.match(l.olderMoveWarning(older), /^Channel stable offers OpenWrt 24\.10\.5, which is older than the OpenWrt 24\.10\.4 this router runs\./);
});

test('status notice for a channel: the offered build, its description and where the router stands in the rollout', async (t) => {
	const l = await load(t);
	const offered = example('check', 'channel');
	// Phased out of the newest build, offered an older one: both named, with the turn.
	assert.deepEqual(l.channelStatusNotice(offered), [
		'Build 6 of channel stable (OpenWrt 24.10.5) is available; this router runs build 5.',
		'24.10.5 with the March fixes',
		'The newest build, 7 (OpenWrt 24.10.6), is offered to 40 % of routers so far; this router\'s turn comes at 42 %.'
	]);
	const phasedIn = { ...offered, channel: { ...offered.channel, target_build: 7, newest: { build: 7, openwrt_version: '24.10.6', description: 'd' },
		description: '', phased_in: true, phased_percentage: 50, next_phase_at: null } };
	assert.deepEqual(l.channelStatusNotice(phasedIn), [
		'Build 7 of channel stable (OpenWrt 24.10.5) is available; this router runs build 5.',
		'Phased rollout: offered to 50 % of routers so far, this router (phase 42) among them.'
	]);
	const everyone = { ...phasedIn, channel: { ...phasedIn.channel, phased_percentage: 100 } };
	assert.equal(l.channelStatusNotice(everyone).length, 1, 'a full rollout needs no phase line');
	// Nothing to take, no channel, an error: no channel notice.
	assert.equal(l.channelStatusNotice(example('check', 'channel_phased_out')), null);
	assert.equal(l.channelStatusNotice(example('check', 'upgrade_available')), null);
	assert.equal(l.channelStatusNotice(errorReply('server')), null);
	assert.equal(l.newestBeyond(offered.channel).build, 7);
	// The Overview's offer names the newest build beside the offered one.
	assert.deepEqual(l.channelOffer(offered.channel).facts.find((f) => f[0] === 'Newest build'),
		['Newest build', '7 (OpenWrt 24.10.6): 24.10.6, rolling out']);
	assert.equal(l.channelOffer(phasedIn.channel).facts.find((f) => f[0] === 'Newest build'), undefined);
	assert.equal(l.newestBeyond(phasedIn.channel), null, 'the newest is the offered build');
});

test('channel offers name the image: the published one, or one built for the packages it lacks', async (t) => {
	const l = await load(t);
	const offered = example('check', 'channel').channel;
	const image = (channel) => (l.channelOffer(channel).facts.find((f) => f[0] === 'Image') || [])[1];
	assert.equal(image(offered), 'built for this router, to keep packages the published image lacks: htop');
	assert.equal(image({ ...offered, extra_packages: ['htop', 'luci-app-sqm', 7, ''] }),
		'built for this router, to keep packages the published image lacks: htop, luci-app-sqm');
	assert.equal(image({ ...offered, extra_packages: [] }), 'built for this router');
	assert.equal(image({ ...offered, extra_packages: null }), 'built for this router');
	assert.equal(image({ ...offered, prebuilt: true, extra_packages: [] }), 'the image the channel publishes');
	assert.equal(image({ ...offered, target_build: null }), undefined, 'no build offered, no image');
	assert.equal(image({ ...offered, prebuilt: null }), undefined, 'the reply does not say');
	assert.deepEqual(l.channelOffer(offered).facts.map((f) => f[0]),
		['Channel', 'Offered build', 'Description', 'Image', 'Newest build', 'Phased rollout']);
});
