// The overview view rendered in jsdom for every state, with the bridge's contract examples as
// replies; buttons are clicked and the calls the view makes are checked against the contract.
// After every test the page must read as text: no "null", "undefined", "[object …]" anywhere
// (LuCI prints such values instead of dropping them).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { page, view, example, errorReply, click, text, until, settle, plain, assertReadable, rpcError } from './harness.mjs';

const JOB = '0123456789abcdef';

function replies(overrides = {}) {
	return {
		info: example('info', 'ok'),
		config_get: example('config_get', 'ok'),
		status: example('status', 'idle'),
		...overrides
	};
}

async function open(t, ubus, options) {
	const p = page(ubus, options);
	t.after(() => {
		try {
			assertReadable(p, t.name);
		} finally {
			p.window.close();
		}
	});
	const instance = await view(p, 'attendant/overview');
	return { p, instance };
}

function calls(p, method) {
	return plain(p.stub.calls.filter((c) => c.method === method).map((c) => c.args));
}

function withConfig(changes) {
	return { ...example('config_get', 'ok'), ...changes };
}

test('idle: shows the current firmware and a check button, and does not check by itself', async (t) => {
	const { p } = await open(t, replies());
	const firmware = text(p, 'attendant-firmware-facts');
	for (const want of ['TP-Link Archer C7 v5', 'tplink,archer-c7-v5', 'ath79/generic', '24.10.4', 'r28427-6df0e3d02a'])
		assert.ok(firmware.includes(want), `${want} missing from: ${firmware}`);
	const check = p.document.getElementById('attendant-check');
	assert.ok(check, 'the check button is in the page');
	assert.equal(check.closest('#attendant-controls').id, 'attendant-controls', 'and inside the controls section');
	assert.equal(p.document.getElementById('attendant-controls').querySelector('h3'), null, 'no heading without advanced mode');
	assert.equal(p.document.getElementById('attendant-job-section'), null);
	assert.deepEqual(calls(p, 'check'), []);
	assert.equal(p.document.getElementById('attendant-version'), null, 'no advanced fields');
});

test('check on open: with auto_search the check runs when the page opens', async (t) => {
	const { p } = await open(t, replies({
		config_get: withConfig({ auto_search: true }),
		check: example('check', 'upgrade_available')
	}));
	await until(() => p.document.getElementById('attendant-verdict'), 'the verdict');
	assert.deepEqual(calls(p, 'check'), [{}]);
});

test('upgrade available: the offer lists what changes, the warnings, and offers the build', async (t) => {
	const { p } = await open(t, replies({ check: example('check', 'upgrade_available') }));
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-verdict'), 'the verdict');
	assert.equal(text(p, 'attendant-verdict'), 'Firmware 24.10.6 (r28959-29397011cc) is available; this router runs 24.10.4.');
	const rows = [...p.document.querySelectorAll('#attendant-changes tr[data-kind]')]
		.map((r) => [...r.cells].map((c) => c.textContent));
	assert.deepEqual(rows, [
		['luci', 'upgrade', '25.051.56747~54b8a24', '25.074.50000~b2c3d4e'],
		['auc', 'renamed', 'auc', 'owut'],
		['kmod-old', 'removed', 'kmod-old', '']
	]);
	assert.match(text(p, 'attendant-warnings'), /default package `kmod-usb3` is not installed.*To keep the package, enter it in "Add packages"/);
	assert.doesNotMatch(text(p, 'attendant-warnings'), /with `add`/, 'the bridge\'s words for the hint are not shown');
	assert.doesNotMatch(text(p, 'attendant-warnings'), /--|hint:/);
	assert.equal(p.document.getElementById('attendant-problems'), null);
	assert.ok(p.document.getElementById('attendant-build'));
	assert.match(text(p, 'attendant-offer-facts'), /1 upgraded, 0 downgraded, 40 unchanged/);
});

test('up to date: says so and offers no build', async (t) => {
	const upToDate = { ...example('check', 'upgrade_available'), verdict: 'up_to_date', packages: [], renamed: [], removed: [], warnings: [] };
	const { p } = await open(t, replies({ check: upToDate }));
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-verdict'), 'the verdict');
	assert.equal(text(p, 'attendant-verdict'), 'The firmware is up to date (24.10.4).');
	assert.equal(p.document.getElementById('attendant-build'), null);
	assert.equal(p.document.getElementById('attendant-changes'), null);
});

test('blocked: the problems are shown as blocking and there is no build button', async (t) => {
	const { p } = await open(t, replies({ check: example('check', 'blocked') }));
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-problems'), 'the problems');
	assert.match(text(p, 'attendant-problems'), /These problems block the upgrade.*`no-such-package` is not in the 24\.10\.6 index.*Leave the package out: take it out of "Add packages", or enter it in "Remove packages"/);
	assert.doesNotMatch(text(p, 'attendant-problems'), /with `remove`/, 'the bridge\'s words for the hint are not shown');
	assert.doesNotMatch(text(p, 'attendant-problems'), /--remove|hint:/);
	assert.equal(p.document.querySelector('#attendant-changes tr[data-kind]').dataset.kind, 'missing');
	assert.equal(p.document.getElementById('attendant-build'), null);
});

test('a check error shows the bridge message, the server detail and the build output', async (t) => {
	const { p } = await open(t, replies({ check: errorReply('server') }));
	await click(p, 'attendant-check');
	const panel = await until(() => p.document.querySelector('#attendant-offer .attendant-error'), 'the error');
	assert.equal(panel.dataset.code, 'server');
	assert.match(panel.textContent, /Server response: Error: Impossible package selection/);
	assert.ok(panel.querySelector('.attendant-error-stdout'));
	assert.ok(panel.querySelector('.attendant-error-stderr'));
});

for (const state of ['queued', 'building', 'downloading', 'verifying']) {
	test(`${state}: a running job found on load is shown with its progress and polled`, async (t) => {
		let n = 0;
		const { p } = await open(t, replies({ status: () => (n++ === 0 ? example('status', state) : example('status', state)) }));
		assert.equal(p.document.getElementById('attendant-state').dataset.state, state);
		const facts = text(p, 'attendant-job-facts');
		if (state === 'queued')
			assert.match(facts, /Queue position 2/);
		if (state === 'building') {
			assert.match(facts, /Build stage Building the image/);
			assert.match(facts, /Build time 40 s/);
		}
		if (state === 'downloading') {
			assert.match(facts, /Downloaded 3\.3 MB of 6\.6 MB/);
			assert.match(text(p, 'attendant-job-section'), /3\.3 MB of 6\.6 MB \(50%\)/);
		}
		if (state === 'verifying')
			assert.match(facts, /Downloaded 6\.6 MB of 6\.6 MB/);
		assert.match(facts, /Elapsed time 12 s/);
		assert.ok(p.document.getElementById('attendant-cancel'));
		await until(() => calls(p, 'status').length >= 3, 'more status polls');
		assert.deepEqual(calls(p, 'status').slice(1, 3), [{ job: JOB }, { job: JOB }], 'polls ask for the job it picked up');
	});
}

test('build: start, poll through the states, stop polling at ready', async (t) => {
	const sequence = ['queued', 'building', 'downloading', 'verifying', 'ready'];
	const { p } = await open(t, replies({
		check: example('check', 'upgrade_available'),
		start: example('start', 'started'),
		status: (args, n) => (n === 0 ? example('status', 'idle') : example('status', sequence[Math.min(n - 1, 4)]))
	}));
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-build'), 'the build button');
	await click(p, 'attendant-build');
	assert.deepEqual(calls(p, 'start'), [{ keep_settings: true }]);
	await until(() => p.document.getElementById('attendant-result'), 'the result', 3000);
	const polls = calls(p, 'status').length;
	await settle(100);
	assert.equal(calls(p, 'status').length, polls, 'polling stopped at ready');
	assert.equal(p.document.getElementById('attendant-offer').children.length, 0, 'the offer is gone');
});

test('ready: the verified result, keep settings checked, install with a warning, then reconnect', async (t) => {
	const { p } = await open(t, replies({
		status: (args, n) => example('status', n === 0 ? 'ready' : (n === 1 ? 'installing' : 'rebooting')),
		install: example('install', 'installing')
	}));
	const result = text(p, 'attendant-result');
	for (const want of ['24.10.6', '9f2c...e1', 'valid, signed by key abababababababab', 'compatible (compat_version 1.0)'])
		assert.ok(result.includes(want), `${want} missing from: ${result}`);
	assert.equal(p.document.getElementById('attendant-keep-settings').checked, true);
	assert.match(text(p, 'attendant-install-warning'), /reboots the router/);
	await click(p, 'attendant-install');
	assert.match(text(p, 'attendant-confirm-settings'), /settings are kept/);
	assert.deepEqual(calls(p, 'install'), [], 'nothing before the confirmation');
	await click(p, 'attendant-confirm-install');
	assert.deepEqual(calls(p, 'install'), [{ job: JOB, keep_settings: true }]);
	await until(() => p.stub.reconnects.length, 'awaitReconnect');
	assert.deepEqual(plain(p.stub.reconnects), [['router.lan']]);
});

test('install without keeping settings waits for the default address', async (t) => {
	const { p } = await open(t, replies({
		status: (args, n) => example('status', n === 0 ? 'ready' : 'rebooting'),
		install: example('install', 'installing')
	}));
	const box = p.document.getElementById('attendant-keep-settings');
	box.checked = false;
	box.dispatchEvent(new p.window.Event('change'));
	await click(p, 'attendant-install');
	assert.match(text(p, 'attendant-confirm-settings'), /NOT kept/);
	await click(p, 'attendant-confirm-install');
	assert.deepEqual(calls(p, 'install'), [{ job: JOB, keep_settings: false }]);
	await until(() => p.stub.reconnects.length, 'awaitReconnect');
	assert.deepEqual(plain(p.stub.reconnects), [['192.168.1.1', 'openwrt.lan']]);
});

test('installing found on load: warns not to power off and keeps polling', async (t) => {
	const { p } = await open(t, replies({ status: example('status', 'installing') }));
	assert.equal(p.document.getElementById('attendant-state').dataset.state, 'installing');
	assert.match(text(p, 'attendant-job-section'), /Do not power off/);
	await until(() => calls(p, 'status').length >= 2, 'a second poll');
});

test('failed: server detail, stdout and stderr, and the error data copied to the clipboard', async (t) => {
	const failed = example('status', 'failed');
	failed.error.stdout = 'Collected errors:\n * opkg_install_cmd: Cannot install package foo.';
	failed.error.stderr = 'make: *** [Makefile:221: image] Error 255';
	const { p } = await open(t, replies({ status: failed, config_get: withConfig({ auto_search: false }) }));
	const panel = p.document.querySelector('#attendant-job .attendant-error');
	assert.equal(panel.dataset.code, 'server');
	assert.match(panel.querySelector('.attendant-error-detail').textContent, /Server response: Error: Impossible package selection/);
	assert.equal(panel.querySelector('.attendant-error-stdout pre').textContent, failed.error.stdout);
	assert.equal(panel.querySelector('.attendant-error-stderr pre').textContent, failed.error.stderr);
	assert.match(panel.textContent, /could not build the image/);
	await click(p, panel.querySelector('.attendant-copy'));
	const copied = p.copied;
	assert.equal(copied.length, 1);
	const report = JSON.parse(copied[0]);
	assert.equal(report.error.detail, 'Error: Impossible package selection');
	assert.equal(report.error.stderr, failed.error.stderr);
	assert.equal(report.context.job, JOB);
	await settle(20);
	assert.equal(calls(p, 'status').length, 1, 'a failed job is not polled');
});

test('failed, no clipboard API: the fallback copies the error data as text, markup and all', async (t) => {
	const failed = example('status', 'failed');
	failed.error.stderr = 'sh: <stdin>: line 1: <b>make</b>: not found & more';
	const { p } = await open(t, replies({ status: failed, config_get: withConfig({ auto_search: false }) }), { clipboard: false });
	const copied = [];
	// jsdom has no execCommand; the stand-in records what the selected textarea holds.
	p.document.execCommand = (command) => {
		copied.push([command, p.document.querySelector('textarea').value]);
		return true;
	};
	await click(p, p.document.querySelector('#attendant-job .attendant-copy'));
	assert.equal(copied.length, 1);
	assert.equal(copied[0][0], 'copy');
	assert.equal(JSON.parse(copied[0][1]).error.stderr, failed.error.stderr);
	assert.equal(p.document.querySelector('textarea'), null, 'the textarea is removed again');
});

test('advanced mode: version, added and removed packages and force go into check and start', async (t) => {
	const { p } = await open(t, replies({
		config_get: withConfig({ advanced_mode: true }),
		check: example('check', 'upgrade_available'),
		start: example('start', 'started')
	}));
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-build'), 'the offer');
	const select = p.document.getElementById('attendant-version');
	assert.deepEqual([...select.options].map((o) => o.value), ['', '24.10.6', '24.10.5'], 'offered versions');
	select.value = '24.10.5';
	p.document.getElementById('attendant-add').value = 'tmux, htop';
	p.document.getElementById('attendant-remove').value = 'kmod-old';
	p.document.getElementById('attendant-force').checked = true;
	await click(p, 'attendant-check');
	await until(() => calls(p, 'check').length === 2 && p.document.getElementById('attendant-build'), 'the second offer');
	await click(p, 'attendant-build');
	const want = { version: '24.10.5', add: ['tmux', 'htop'], remove: ['kmod-old'], force: true };
	assert.deepEqual(calls(p, 'check'), [{}, want]);
	assert.deepEqual(calls(p, 'start'), [{ ...want, keep_settings: true }]);
});

test('a busy bridge answers with the running job, which the page then follows', async (t) => {
	const { p } = await open(t, replies({
		check: example('check', 'upgrade_available'),
		start: example('start', 'busy'),
		status: (args, n) => example('status', n === 0 ? 'idle' : 'building')
	}));
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-build'), 'the offer');
	await click(p, 'attendant-build');
	assert.match(p.stub.notifications.map((n) => n.textContent).join(), /already running/);
	// LuCI 24.10 takes the third argument as a timeout: the colour class must come fourth.
	const note = p.stub.notifications.find((n) => /already running/.test(n.textContent));
	assert.ok(note.classList.contains('info'), note.className);
	assert.equal(p.document.getElementById('maincontent').firstElementChild, note);
	await until(() => p.document.getElementById('attendant-state')?.dataset.state === 'building', 'the building state');
});

test('cancel asks the bridge to cancel the job and shows the cancelled state', async (t) => {
	// LuCI runs a new poll at once, so the job stays `building` until it is cancelled.
	let cancelled = false;
	const { p } = await open(t, replies({
		status: () => example('status', cancelled ? 'cancelled' : 'building'),
		cancel: () => {
			cancelled = true;
			return example('cancel', 'cancelled');
		}
	}));
	await click(p, 'attendant-cancel');
	assert.deepEqual(calls(p, 'cancel'), [{ job: JOB }]);
	await until(() => p.document.getElementById('attendant-state')?.dataset.state === 'cancelled', 'the cancelled state');
});

test('an unreadable router shows the info error instead of the firmware table', async (t) => {
	const { p } = await open(t, replies({ info: { error: { code: 'failure', message: 'cannot read `/usr/lib/os-release`: No such file or directory' } } }));
	assert.match(text(p, 'attendant-firmware'), /cannot read `\/usr\/lib\/os-release`/);
});

test('text from the server, the ImageBuilder and package names stays text, never markup', async (t) => {
	const markup = '<img src=x id=injected onerror="window.pwned=1">';
	const offer = example('check', 'upgrade_available');
	offer.packages[0].name = `luci${markup}`;
	offer.target.version = '24.10.6<b>';
	offer.warnings[0].message = 'default package `<stdin>` & friends';
	const failed = example('status', 'failed');
	failed.error.stderr = 'sh: <stdin>: line 1: make: not found & more';
	failed.error.detail = markup;
	const { p } = await open(t, replies({ check: offer, status: failed, config_get: withConfig({ auto_search: false }) }));
	const panel = p.document.querySelector('#attendant-job .attendant-error');
	assert.equal(panel.querySelector('.attendant-error-stderr pre').textContent, failed.error.stderr);
	assert.match(panel.querySelector('.attendant-error-detail').textContent, /<img src=x id=injected/);
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-verdict'), 'the verdict');
	assert.match(text(p, 'attendant-verdict'), /Firmware 24\.10\.6<b> \(/);
	assert.equal(p.document.querySelector('#attendant-changes tr[data-kind] td').textContent, `luci${markup}`);
	assert.match(text(p, 'attendant-warnings'), /default package `<stdin>` & friends/);
	assert.equal(p.document.getElementById('injected'), null, 'no element was made from outside text');
	assert.equal(p.document.querySelector('#attendant-offer stdin, #attendant-job stdin'), null);
});

test('a reply without versions shows "?" rather than undefined', async (t) => {
	const bare = { ...example('check', 'upgrade_available'), target: {}, current: {} };
	const { p } = await open(t, replies({ check: bare }));
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-verdict'), 'the verdict');
	assert.equal(text(p, 'attendant-verdict'), 'Firmware ? (?) is available; this router runs ?.');
});

test('a missing plugin (object not found) shows the error in the page instead of a stuck spinner', async (t) => {
	const p = page({}, { plugin: false });
	t.after(() => p.window.close());
	const ui = await p.L.require('ui');
	await ui.instantiateView('attendant/overview');
	await p.stub.views[0];
	await settle();
	assert.equal(p.document.querySelector('#view > .spinning'), null);
	assert.match(text(p, 'attendant-firmware'), /RPCError: RPC call to attendant\/info failed with error -32000: Object not found/);
	assert.ok(p.document.getElementById('attendant-check'), 'the page is there');
	assertReadable(p, 'without the plugin');
	assert.equal(p.stub.errors.length, 0, p.stub.errors.join('\n'));
});

test('a check the ACL denies shows the first line of the rejection, not its call stack', async (t) => {
	const { p } = await open(t, replies({ check: example('check', 'upgrade_available') }), { denied: ['check'] });
	await click(p, 'attendant-check');
	const panel = await until(() => p.document.querySelector('#attendant-offer .attendant-error'), 'the error');
	assert.equal(panel.querySelector('.attendant-error-message').textContent,
		'RPCError: RPC call to attendant/check failed with error -32002: Access denied');
	assert.ok(panel.querySelector('.attendant-copy'), 'the copy button is there');
});

test('a status poll that is lost shows the error and the next poll goes on', async (t) => {
	const { p } = await open(t, replies({
		status: (args, n) => (n === 1 ? rpcError(-32003, 'ubus request timed out') : example('status', 'building'))
	}));
	await until(() => p.document.querySelector('#attendant-job .attendant-error'), 'the lost poll');
	assert.match(text(p, 'attendant-job'), /failed with error -32003: ubus request timed out/);
	await until(() => p.document.getElementById('attendant-state')?.dataset.state === 'building', 'the next poll');
	assert.equal(p.stub.errors.length, 0, `nothing left unhandled: ${p.stub.errors.join('\n')}`);
});

test('the install dialog lists only what applies, and after the flash says the router is rebooting', async (t) => {
	const { p } = await open(t, replies({
		config_get: withConfig({ advanced_mode: true }),
		status: (args, n) => example('status', n === 0 ? 'ready' : 'rebooting'),
		install: example('install', 'installing')
	}));
	await click(p, 'attendant-install');
	const dialog = p.document.querySelector('#modal_overlay .modal');
	assert.equal(dialog.querySelector('#attendant-confirm-force'), null, 'no force warning without force');
	assert.deepEqual([...dialog.children].map((c) => c.tagName), ['H4', 'P', 'P', 'DIV']);
	assertReadable(p, 'the install dialog');
	await click(p, 'attendant-confirm-install');
	await until(() => p.stub.reconnects.length, 'awaitReconnect');
	assert.ok(p.document.body.classList.contains('modal-overlay-active'));
	assert.match(p.document.querySelector('#modal_overlay .modal').textContent, /Rebooting.*reloads when the router answers again/);
});

// The `channel` parts of `info` and `check` (issue 16's contract with the bridge), added to the
// contract examples until contract.json carries them.
const INFO_CHANNEL = { configured: 'stable', name: 'stable', build: 6, channel_target: null, phase: 42 };
const CHECK_CHANNEL = {
	name: 'stable', current_build: 6, target_build: 7, openwrt_version: '24.10.5',
	description: 'Q4 release <b>with</b> fixes', older_openwrt: false, phase: 42, phased_percentage: 50,
	phased_in: true, next_phase_at: null, prebuilt: true, redirect: null,
	paths: [{ builds: [7], score: 100, download_bytes: 12345678 }]
};

test('channels: the firmware shows channel, build and phase; the offer shows the build and its description as text', async (t) => {
	const { p } = await open(t, replies({
		info: { ...example('info', 'ok'), channel: INFO_CHANNEL },
		check: { ...example('check', 'upgrade_available'), channel: CHECK_CHANNEL }
	}));
	const firmware = text(p, 'attendant-firmware-facts');
	assert.match(firmware, /Channel stable/);
	assert.match(firmware, /Channel build 6/);
	assert.match(firmware, /Phase of this router 42 %/);
	assert.doesNotMatch(firmware, /Configured channel/, 'the same as the running one');
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-channel-facts'), 'the channel facts');
	const facts = text(p, 'attendant-channel-facts');
	assert.match(facts, /Offered build 7 \(OpenWrt 24\.10\.5\), this router runs build 6/);
	assert.match(facts, /Description Q4 release <b>with<\/b> fixes/, 'markup stays text');
	assert.equal(p.document.querySelector('#attendant-channel-facts b'), null);
	assert.match(facts, /offered to 50 % of routers; this router's phase is 42/);
	assert.match(facts, /Image the image the channel publishes/);
	assert.equal(p.document.querySelector('[data-channel-notice]'), null, 'phased in, same or newer OpenWrt');
});

test('channels: the offer names the packages that make the router take an image built for it', async (t) => {
	const { p } = await open(t, replies({
		info: { ...example('info', 'ok'), channel: INFO_CHANNEL },
		check: { ...example('check', 'upgrade_available'), channel: { ...CHECK_CHANNEL, prebuilt: false, extra_packages: ['htop', '<b>tmux</b>'] } }
	}));
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-channel-facts'), 'the channel facts');
	assert.match(text(p, 'attendant-channel-facts'),
		/Image built for this router, to keep packages the published image lacks: htop, <b>tmux<\/b>/);
	assert.equal(p.document.querySelector('#attendant-channel-facts b'), null, 'package names stay text');
});

test('channels: phased out says when this router\'s turn comes; an older OpenWrt is warned about', async (t) => {
	const phasedOut = { ...CHECK_CHANNEL, target_build: null, phased_in: false, phase: 73, next_phase_at: 73, older_openwrt: true, redirect: 'stable-25' };
	const { p } = await open(t, replies({
		info: { ...example('info', 'ok'), channel: { ...INFO_CHANNEL, configured: 'testing' } },
		check: { ...example('check', 'upgrade_available'), channel: phasedOut }
	}));
	assert.match(text(p, 'attendant-firmware-facts'), /Configured channel testing/);
	await click(p, 'attendant-check');
	await until(() => p.document.querySelector('[data-channel-notice]'), 'the channel notices');
	const notices = [...p.document.querySelectorAll('[data-channel-notice]')].map((n) => [n.dataset.channelNotice, n.textContent]);
	assert.deepEqual(notices, [
		['info', 'Phased out: this router\'s turn comes when the build is offered to 73 % of routers.'],
		['warning', 'This moves the router to an older OpenWrt version (24.10.5) than it runs now. Settings made for the newer version may not work; keep a backup.'],
		['info', 'The channel is redirected: after this upgrade the router follows channel stable-25.']
	]);
	assert.doesNotMatch(text(p, 'attendant-channel-facts'), /Offered build/, 'no build offered');
});

test('no channel in use: neither the firmware nor the offer shows channel rows', async (t) => {
	const { p } = await open(t, replies({
		info: { ...example('info', 'ok'), channel: null },
		check: { ...example('check', 'upgrade_available'), channel: null }
	}));
	assert.doesNotMatch(text(p, 'attendant-firmware-facts'), /Channel/);
	await click(p, 'attendant-check');
	await until(() => p.document.getElementById('attendant-verdict'), 'the verdict');
	assert.equal(p.document.getElementById('attendant-channel-facts'), null);
});

// Switching channels: the list from `channels`, a check of another channel, `config_set`.
const CHANNELS = {
	configured: 'stable',
	current: { channel: 'stable', build: 6 },
	channels: [
		{ name: 'beta', hidden: false, alias: null, redirect: null, latest: { build: 3, openwrt_version: '23.05.5', description: 'old <i>line</i>', phased_percentage: 100 } },
		{ name: 'old', hidden: true, alias: null, redirect: 'stable', latest: null },
		{ name: 'stable', hidden: false, alias: null, redirect: null, latest: { build: 7, openwrt_version: '24.10.5', description: 'Q4', phased_percentage: 50 } }
	]
};
const OLDER = { ...example('check', 'channel'), channel: { ...example('check', 'channel').channel, name: 'beta', current_build: 0, target_build: 3, openwrt_version: '23.05.5', older_openwrt: true } };

function channelReplies(check, overrides = {}) {
	return replies({
		info: { ...example('info', 'ok'), channel: INFO_CHANNEL },
		channels: CHANNELS,
		check: check,
		config_set: (args) => ({ ...example('config_set', 'ok'), channel: args.channel }),
		start: example('start', 'started'),
		...overrides
	});
}

function selectChannel(p, name) {
	const select = p.document.getElementById('attendant-channel');
	select.value = name;
	assert.equal(select.value, name);
}

test('channels: the list leaves hidden channels out; another channel is checked, then followed', async (t) => {
	const { p } = await open(t, channelReplies(example('check', 'channel')));
	await until(() => p.document.getElementById('attendant-channel'), 'the channel list');
	const options = [...p.document.querySelectorAll('#attendant-channel option')].map((o) => [o.value, o.textContent, o.selected]);
	assert.deepEqual(options, [
		['beta', 'beta: build 3, OpenWrt 23.05.5', false],
		['stable', 'stable: build 7, OpenWrt 24.10.5', true]
	]);
	assert.match(text(p, 'attendant-channel-section'), /This router follows the release channel stable/);
	selectChannel(p, 'beta');
	await click(p, 'attendant-channel-check');
	await until(() => p.document.getElementById('attendant-channel-facts'), 'the channel offer');
	assert.deepEqual(calls(p, 'check'), [{ channel: 'beta' }]);
	assert.equal(text(p, 'attendant-verdict'), 'Build 6 of channel stable (OpenWrt 24.10.5) is available; this router runs build 5 of it.');
	assert.equal(p.document.getElementById('attendant-changes'), null, 'a channel image has no package table');
	assert.match(text(p, 'attendant-offer-facts'), /Image openwrt-24\.10\.5-/);
	await click(p, 'attendant-channel-follow');
	await until(() => calls(p, 'config_set').length, 'the channel saved');
	assert.deepEqual(calls(p, 'config_set'), [{ channel: 'beta' }]);
	assert.equal(calls(p, 'check').length, 1, 'the offer checked already is not asked again');
	await until(() => p.stub.notifications.some((n) => /now follows channel beta/.test(n.textContent)), 'the notice');
	await until(() => calls(p, 'info').length === 2, 'the firmware read again');
});

test('channels: a switch to an older OpenWrt is confirmed with a warning first; cancel saves nothing', async (t) => {
	const { p } = await open(t, channelReplies(OLDER));
	await until(() => p.document.getElementById('attendant-channel'), 'the channel list');
	selectChannel(p, 'beta');
	await click(p, 'attendant-channel-follow');
	await until(() => p.document.getElementById('attendant-switch-warning'), 'the warning');
	assert.equal(text(p, 'attendant-switch-warning'),
		'Channel beta offers OpenWrt 23.05.5, which is older than the OpenWrt 24.10.4 this router runs. Going back can break settings and packages made for the newer version, and the configuration may not be kept; save a backup before installing.');
	assert.ok(p.document.body.classList.contains('modal-overlay-active'));
	assert.deepEqual(calls(p, 'config_set'), []);
	await click(p, 'attendant-switch-cancel');
	assert.ok(!p.document.body.classList.contains('modal-overlay-active'));
	assert.deepEqual(calls(p, 'config_set'), [], 'cancelled: nothing saved');
	await click(p, 'attendant-channel-follow');
	await until(() => p.document.getElementById('attendant-confirm-switch'), 'the warning again');
	await click(p, 'attendant-confirm-switch');
	await until(() => calls(p, 'config_set').length, 'the channel saved');
	assert.deepEqual(calls(p, 'config_set'), [{ channel: 'beta' }]);
});

test('channels: building on a checked channel switches to it (confirmed, saved) and starts on it', async (t) => {
	const { p } = await open(t, channelReplies(OLDER));
	await until(() => p.document.getElementById('attendant-channel'), 'the channel list');
	selectChannel(p, 'beta');
	await click(p, 'attendant-channel-check');
	await until(() => p.document.getElementById('attendant-build'), 'the offer');
	await click(p, 'attendant-build');
	await until(() => p.document.getElementById('attendant-confirm-switch'), 'the warning');
	assert.deepEqual(calls(p, 'start'), [], 'nothing starts before the confirmation');
	await click(p, 'attendant-confirm-switch');
	await until(() => calls(p, 'start').length, 'the build');
	assert.deepEqual(calls(p, 'config_set'), [{ channel: 'beta' }]);
	assert.equal(calls(p, 'start')[0].channel, 'beta');
});

test('channels: following none, and a router without channel metadata shows no channel section', async (t) => {
	const { p } = await open(t, channelReplies(example('check', 'channel')));
	await until(() => p.document.getElementById('attendant-channel-leave'), 'the leave button');
	await click(p, 'attendant-channel-leave');
	await until(() => calls(p, 'config_set').length, 'the channel cleared');
	assert.deepEqual(calls(p, 'config_set'), [{ channel: '' }]);

	const refused = { error: { code: 'metadata', message: 'no channel root key is pinned in `/etc/attendant/keys`', cause: 'no-root-key' } };
	const { channel: _unused, ...noChannel } = example('info', 'ok');
	const { p: plainRouter } = await open(t, replies({ info: noChannel, channels: refused }));
	await until(() => calls(plainRouter, 'channels').length, 'the channels call');
	await settle(20);
	assert.equal(plainRouter.document.getElementById('attendant-channel-section'), null);
	const { p: onChannel } = await open(t, replies({ info: { ...example('info', 'ok'), channel: INFO_CHANNEL }, channels: refused }));
	await until(() => onChannel.document.getElementById('attendant-channel-section'), 'the channel error');
	assert.match(text(onChannel, 'attendant-channel-section'), /Cannot read the release channels.*no channel root key/);
});
