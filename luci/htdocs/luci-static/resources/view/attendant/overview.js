'use strict';
'require view';
'require rpc';
'require ui';
'require poll';
'require attendant.logic as logic';
'require attendant.text as text';

/*
 * System → Firmware upgrade → Overview: check, build, download, verify and install through the
 * ubus object `attendant` (the rpcd plugin of ubus-bridge). The router downloads and verifies the
 * image itself; the browser only shows the job. Methods and reply shapes:
 * ubus-bridge/contract.json. Decisions live in attendant/logic.js; the render* methods here turn
 * one reply into one DOM node each, so tests can render every state without a router.
 *
 * Every child list handed to E() is flat and holds only nodes and our own strings: LuCI prints
 * any other item (null, false, a nested array) as text. Text from outside goes in as text.node().
 */

var callInfo = rpc.declare({ object: 'attendant', method: 'info' });
var callConfigGet = rpc.declare({ object: 'attendant', method: 'config_get' });
var callCheck = rpc.declare({
	object: 'attendant', method: 'check',
	params: [ 'version', 'add', 'remove', 'force' ]
});
var callStart = rpc.declare({
	object: 'attendant', method: 'start',
	params: [ 'version', 'add', 'remove', 'force', 'keep_settings' ]
});
var callStatus = rpc.declare({ object: 'attendant', method: 'status', params: [ 'job' ] });
var callCancel = rpc.declare({ object: 'attendant', method: 'cancel', params: [ 'job' ] });
var callInstall = rpc.declare({
	object: 'attendant', method: 'install',
	params: [ 'job', 'keep_settings', 'force' ]
});

/* Seconds between two `status` calls while a job runs (each call is one local process). LuCI
 * polls in whole seconds. */
var POLL_INTERVAL = 2;

/* Milliseconds an informational notification stays before it fades (errors stay). */
var NOTICE_TIMEOUT = 5000;

function section(title, children, id) {
	return E('div', { 'class': 'cbi-section', id: id }, (title ? [ E('h3', {}, title) ] : []).concat(children));
}

function factTable(facts, id) {
	return E('table', { 'class': 'table', id: id }, facts.map(function(fact) {
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td left', width: '33%' }, text.node(fact[0])),
			E('td', { 'class': 'td left', 'data-fact': fact[0] }, text.node(fact[1]))
		]);
	}));
}

/* One warning or problem ({message, hint?}, contract `hints.shape`) as a list item: the message,
 * then what to do about it in this app's words (logic.finding maps the hint code). */
function findingItem(item, preformatted) {
	var finding = logic.finding(item);
	var children = [ preformatted ? E('pre', {}, text.node(finding.message)) : text.node(finding.message) ];
	if (finding.hint)
		children.push(E('div', { 'class': 'attendant-hint' }, text.node(finding.hint)));
	return E('li', {}, children);
}

function replaceContent(node, children) {
	while (node.firstChild)
		node.removeChild(node.firstChild);
	(Array.isArray(children) ? children : [ children ]).forEach(function(child) {
		if (child != null)
			node.appendChild(child);
	});
	return node;
}

return view.extend({
	handleSave: null,
	handleSaveApply: null,
	handleReset: null,

	load: function() {
		return Promise.all([
			callInfo().catch(logic.rpcFailure),
			callConfigGet().catch(logic.rpcFailure),
			L.resolveDefault(callStatus(), { state: 'idle' })
		]);
	},

	render: function(data) {
		this.info = data[0];
		this.config = logic.errorOf(data[1]) ? {} : data[1];
		this.status = data[2];
		this.check = null;
		this.job = null;
		this.keepSettings = this.config.keep_settings !== false;
		this.pollFn = L.bind(this.pollStatus, this);

		this.offerNode = E('div', { id: 'attendant-offer' });
		this.jobNode = E('div', { id: 'attendant-job' });
		this.controlsNode = this.renderControls(this.config, []);

		var page = E('div', { id: 'attendant' }, [
			E('h2', {}, _('Firmware upgrade')),
			E('div', { 'class': 'cbi-map-descr' }, _('Asks the upgrade server for new firmware built with the packages installed on this router. The router downloads the image, verifies its checksum, signature and board compatibility, and only then installs it.')),
			this.renderFirmware(this.info),
			this.controlsNode,
			this.offerNode,
			this.jobNode
		]);

		this.resume(this.status);
		return page;
	},

	/* After load: pick up a job that is running or finished (reload-safe), else check when
	 * the configuration asks for it. */
	resume: function(status) {
		var error = logic.errorOf(status);
		var phase = error ? 'idle' : logic.phase(status);
		if (phase !== 'idle') {
			this.job = status.job;
			this.showStatus(status);
			if (logic.isActive(status.state))
				this.startPolling();
			else if (status.state !== 'ready' && this.config.auto_search && !logic.errorOf(this.info))
				this.handleCheck();
		} else if (this.config.auto_search && !logic.errorOf(this.info)) {
			this.handleCheck();
		}
	},

	/* ---- rendering: one reply in, one node out ---- */

	renderFirmware: function(info) {
		var error = logic.errorOf(info);
		if (error)
			return section(_('Current firmware'), this.renderError(error, _('Cannot read the router\'s firmware')), 'attendant-firmware');
		return section(_('Current firmware'), factTable([
			[ _('Model'), info.model || _('unknown') ],
			[ _('Board'), info.board_name ],
			[ _('Target'), info.target ],
			[ _('Version'), info.version ],
			[ _('Revision'), info.revision ],
			[ _('Upgrade server'), info.server ]
		].concat(logic.channelFacts(info.channel)), 'attendant-firmware-facts'), 'attendant-firmware');
	},

	renderControls: function(config, offered) {
		var children = [];
		if (config.advanced_mode) {
			var versions = [ E('option', { value: '' }, _('Newest of the installed branch')) ];
			(offered || []).forEach(function(v) {
				versions.push(E('option', { value: v }, text.node(v)));
			});
			children.push(E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'attendant-version' }, _('Version')),
				E('div', { 'class': 'cbi-value-field' }, E('select', { id: 'attendant-version', 'class': 'cbi-input-select' }, versions))
			]));
			children.push(E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'attendant-add' }, _('Add packages')),
				E('div', { 'class': 'cbi-value-field' }, [
					E('input', { id: 'attendant-add', type: 'text', 'class': 'cbi-input-text', placeholder: 'luci-app-sqm tmux' }),
					E('div', { 'class': 'cbi-value-description' }, _('Names separated by spaces or commas'))
				])
			]));
			children.push(E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'attendant-remove' }, _('Remove packages')),
				E('div', { 'class': 'cbi-value-field' }, E('input', { id: 'attendant-remove', type: 'text', 'class': 'cbi-input-text' }))
			]));
			children.push(E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'attendant-force' }, _('Force')),
				E('div', { 'class': 'cbi-value-field' }, [
					E('input', { id: 'attendant-force', type: 'checkbox' }),
					E('div', { 'class': 'cbi-value-description' }, _('Build even when packages would be downgraded or nothing changed'))
				])
			]));
		}
		children.push(E('div', { 'class': 'cbi-page-actions' }, [
			E('button', {
				id: 'attendant-check',
				'class': 'cbi-button cbi-button-action',
				click: ui.createHandlerFn(this, 'handleCheck')
			}, _('Check for upgrade'))
		]));
		return section(config.advanced_mode ? _('Upgrade options') : null, children, 'attendant-controls');
	},

	renderChanges: function(check) {
		var rows = logic.changeRows(check);
		if (!rows.length)
			return E('p', { id: 'attendant-changes' }, _('No installed package changes version.'));
		return E('table', { 'class': 'table', id: 'attendant-changes' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, _('Package')),
				E('th', { 'class': 'th' }, _('Change')),
				E('th', { 'class': 'th' }, _('Installed')),
				E('th', { 'class': 'th' }, _('New'))
			])
		].concat(rows.map(function(row) {
			return E('tr', { 'class': 'tr change-' + row.kind, 'data-kind': row.kind }, [
				E('td', { 'class': 'td' }, text.node(row.name)),
				E('td', { 'class': 'td' }, text.node(logic.changeLabel(row.kind))),
				E('td', { 'class': 'td' }, text.node(row.from)),
				E('td', { 'class': 'td' }, text.node(row.to))
			]);
		})));
	},

	renderOffer: function(check) {
		var error = logic.errorOf(check);
		if (error)
			return this.renderError(error, _('The check failed'));
		var force = this.selection ? this.selection.force : false;
		var children = [];
		var target = logic.versionOf(check.target);
		var current = logic.versionOf(check.current);
		var headline;
		if (check.verdict === 'upgrade_available')
			headline = E('p', { 'class': 'alert-message notice', id: 'attendant-verdict', 'data-verdict': check.verdict },
				text.node(_('Firmware %s (%s) is available; this router runs %s.').format(target.version, target.version_code, current.version)));
		else if (check.verdict === 'blocked')
			headline = E('p', { 'class': 'alert-message error', id: 'attendant-verdict', 'data-verdict': check.verdict },
				text.node(_('An upgrade to %s cannot be built with the installed packages.').format(target.version)));
		else
			headline = E('p', { 'class': 'alert-message success', id: 'attendant-verdict', 'data-verdict': check.verdict },
				text.node(_('The firmware is up to date (%s).').format(current.version)));
		children.push(headline);

		var channel = logic.channelOffer(check.channel);
		if (channel) {
			children.push(factTable(channel.facts, 'attendant-channel-facts'));
			channel.notices.forEach(function(notice) {
				children.push(E('p', {
					'class': 'alert-message ' + (notice.kind === 'warning' ? 'warning' : 'notice'),
					'data-channel-notice': notice.kind
				}, text.node(notice.text)));
			});
		}

		if (check.verdict !== 'up_to_date' || force) {
			var facts = [ [ _('Target version'), '%s (%s)'.format(target.version, target.version_code) ] ];
			if (check.profile)
				facts.push([ _('Profile'), check.profile ]);
			if (check.image && check.image.name)
				facts.push([ _('Image'), check.image.name ]);
			if (check.summary)
				facts.push([ _('Packages'), _('%d upgraded, %d downgraded, %d unchanged, %d not available, %d new').format(
					check.summary.upgrade, check.summary.downgrade, check.summary.same, check.summary.missing, check.summary['new']) ]);
			children.push(factTable(facts, 'attendant-offer-facts'));
			children.push(E('h4', {}, _('What changes')));
			children.push(this.renderChanges(check));
		}

		if (Array.isArray(check.warnings) && check.warnings.length)
			children.push(E('div', { 'class': 'alert-message warning', id: 'attendant-warnings' }, [
				E('strong', {}, _('Warnings')),
				E('ul', {}, check.warnings.map(function(w) { return findingItem(w, false); }))
			]));
		if (Array.isArray(check.problems) && check.problems.length)
			children.push(E('div', { 'class': 'alert-message error', id: 'attendant-problems' }, [
				E('strong', {}, _('These problems block the upgrade')),
				E('ul', {}, check.problems.map(function(p) { return findingItem(p, true); }))
			]));

		if (logic.canBuild(check, force))
			children.push(E('div', { 'class': 'cbi-page-actions' }, [
				E('button', {
					id: 'attendant-build',
					'class': 'cbi-button cbi-button-positive',
					click: ui.createHandlerFn(this, 'handleBuild')
				}, _('Build and download'))
			]));
		return section(_('Upgrade'), children, 'attendant-offer-section');
	},

	renderError: function(error, title) {
		var self = this;
		var hint = logic.errorHint(error);
		var report = logic.errorReport(error, { selection: this.selection || {}, job: this.job || null,
			firmware: (this.info && !this.info.error) ? this.info : null });
		var children = [
			E('h4', {}, text.node(title || _('Error'))),
			E('p', { 'class': 'attendant-error-message' }, E('pre', {}, text.node(error.message || error.code)))
		];
		if (hint)
			children.push(E('p', { 'class': 'attendant-error-hint' }, text.node(hint)));
		if (error.detail != null)
			children.push(E('p', { 'class': 'attendant-error-detail' }, [ E('strong', {}, _('Server response: ')), text.node(error.detail) ]));
		if (Array.isArray(error.details) && error.details.length)
			children.push(E('ul', { 'class': 'attendant-error-details' }, error.details.map(function(d) {
				return E('li', {}, text.node(typeof d === 'string' ? d : JSON.stringify(d)));
			})));
		if (Array.isArray(error.problems) && error.problems.length)
			children.push(E('ul', { 'class': 'attendant-error-problems' }, error.problems.map(function(p) { return findingItem(p, true); })));
		if (error.stdout)
			children.push(E('details', { 'class': 'attendant-error-stdout', open: true }, [
				E('summary', {}, _('Build output (stdout)')), E('pre', {}, text.node(error.stdout)) ]));
		if (error.stderr)
			children.push(E('details', { 'class': 'attendant-error-stderr', open: true }, [
				E('summary', {}, _('Build errors (stderr)')), E('pre', {}, text.node(error.stderr)) ]));
		children.push(E('div', { 'class': 'cbi-page-actions' }, [
			E('button', {
				'class': 'cbi-button attendant-copy',
				click: function(ev) { return self.handleCopy(report, ev.currentTarget); }
			}, _('Copy error data to clipboard'))
		]));
		return E('div', { 'class': 'alert-message error attendant-error', 'data-code': String(error.code) }, children);
	},

	renderStatus: function(status) {
		var error = logic.errorOf(status);
		if (error)
			return this.renderError(error, _('Cannot read the job'));
		var phase = logic.phase(status);
		var children = [ E('p', { id: 'attendant-state', 'data-state': status.state }, E('strong', {}, logic.stateLabel(status.state))) ];
		if (status.message && phase !== 'failed')
			children.push(E('p', { 'class': 'attendant-message' }, text.node(status.message)));

		switch (phase) {
		case 'idle':
			return null;
		case 'progress':
			var progress = logic.progress(status);
			if (progress)
				children.push(E('div', { 'class': 'cbi-progressbar', title: progress.text, id: 'attendant-progress' },
					E('div', { style: 'width:%d%%'.format(progress.percent) })),
				E('p', { 'class': 'attendant-progress-text' }, text.node('%s (%d%%)'.format(progress.text, progress.percent))));
			else
				children.push(E('p', { 'class': 'spinning' }, _('Working…')));
			children.push(factTable(logic.statusFacts(status), 'attendant-job-facts'));
			children.push(E('div', { 'class': 'cbi-page-actions' }, E('button', {
				id: 'attendant-cancel', 'class': 'cbi-button cbi-button-negative',
				click: ui.createHandlerFn(this, 'handleCancel')
			}, _('Cancel'))));
			break;
		case 'ready':
			children.push(factTable(logic.resultFacts(status), 'attendant-result'));
			children.push(E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'attendant-keep-settings' }, _('Keep settings')),
				E('div', { 'class': 'cbi-value-field' }, [
					E('input', { id: 'attendant-keep-settings', type: 'checkbox', checked: this.keepSettings !== false ? 'checked' : null,
						change: L.bind(function(ev) { this.keepSettings = ev.currentTarget.checked; }, this) }),
					E('div', { 'class': 'cbi-value-description' }, _('Keep the current configuration. Unchecked, the router starts with the default configuration and its default address.'))
				])
			]));
			if (this.config && this.config.advanced_mode)
				children.push(E('div', { 'class': 'cbi-value' }, [
					E('label', { 'class': 'cbi-value-title', 'for': 'attendant-force-flash' }, _('Force flash')),
					E('div', { 'class': 'cbi-value-field' }, [
						E('input', { id: 'attendant-force-flash', type: 'checkbox' }),
						E('div', { 'class': 'cbi-value-description' }, _('Flash even when sysupgrade\'s own image checks fail (sysupgrade -F). Only for images you know fit this router.'))
					])
				]));
			children.push(E('p', { 'class': 'alert-message warning', id: 'attendant-install-warning' },
				_('Installing replaces the firmware and reboots the router. Do not power it off until it is back; this can take several minutes.')));
			children.push(E('div', { 'class': 'cbi-page-actions' }, [
				E('button', { id: 'attendant-install', 'class': 'cbi-button cbi-button-negative important',
					click: ui.createHandlerFn(this, 'handleInstall') }, _('Install'))
			]));
			break;
		case 'up_to_date':
			children.push(factTable(logic.statusFacts(status), 'attendant-job-facts'));
			break;
		case 'installing':
		case 'rebooting':
			children.push(E('p', { 'class': 'alert-message warning' },
				_('Do not power off the router. The page reconnects when the router is back.')));
			break;
		case 'failed':
			children.push(this.renderError(status.error || { code: 'failure', message: status.message || _('unknown error') },
				_('The upgrade failed')));
			break;
		case 'cancelled':
			break;
		}
		if (Array.isArray(status.warnings) && status.warnings.length && phase !== 'ready')
			children.push(E('ul', { 'class': 'attendant-job-warnings' }, status.warnings.map(function(w) { return findingItem(w, false); })));
		return section(_('Upgrade job'), children, 'attendant-job-section');
	},

	/* ---- actions ---- */

	readSelection: function() {
		var value = function(id, prop) {
			var node = document.getElementById(id);
			return node ? node[prop || 'value'] : null;
		};
		return {
			version: value('attendant-version'),
			add: value('attendant-add'),
			remove: value('attendant-remove'),
			force: !!value('attendant-force', 'checked')
		};
	},

	showStatus: function(status) {
		this.status = status;
		replaceContent(this.jobNode, this.renderStatus(status));
	},

	handleCheck: function() {
		this.selection = this.readSelection();
		var args = logic.requestArgs(this.selection);
		replaceContent(this.offerNode, E('p', { 'class': 'spinning', id: 'attendant-checking' }, _('Asking the server what is on offer…')));
		return callCheck(args.version, args.add, args.remove, args.force).catch(logic.rpcFailure).then(L.bind(function(reply) {
			this.check = reply;
			if (!logic.errorOf(reply) && this.config.advanced_mode && Array.isArray(reply.offered))
				this.updateVersions(reply.offered);
			replaceContent(this.offerNode, this.renderOffer(reply));
		}, this));
	},

	updateVersions: function(offered) {
		var select = document.getElementById('attendant-version');
		if (!select || select.options.length > 1)
			return;
		offered.forEach(function(v) { select.appendChild(E('option', { value: v }, text.node(v))); });
	},

	handleBuild: function() {
		var selection = this.selection || this.readSelection();
		var args = logic.requestArgs(selection);
		return callStart(args.version, args.add, args.remove, args.force, this.keepSettings).catch(logic.rpcFailure).then(L.bind(function(reply) {
			var error = logic.errorOf(reply);
			if (error) {
				replaceContent(this.jobNode, this.renderError(error, _('Cannot start the build')));
				return;
			}
			this.job = reply.job;
			if (reply.busy)
				ui.addNotification(null, E('p', {}, _('Another upgrade job is already running; showing it.')), NOTICE_TIMEOUT, 'info');
			replaceContent(this.offerNode, []);
			this.showStatus({ job: reply.job, state: reply.state });
			this.startPolling();
		}, this));
	},

	/* LuCI's poll loop is running (or starts with this entry) after boot, and runs a new entry at
	 * once when the loop was idle; a loop the user paused stays paused. */
	startPolling: function() {
		poll.add(this.pollFn, POLL_INTERVAL);
	},

	stopPolling: function() {
		poll.remove(this.pollFn);
	},

	/* A poll function that throws synchronously is dropped by LuCI for good, and a rejection is
	 * an unhandled error per run; so everything runs inside the promise and every failure is
	 * handled here. */
	pollStatus: function() {
		return Promise.resolve().then(L.bind(function() {
			return callStatus(this.job || undefined);
		}, this)).then(L.bind(function(status) {
			var error = logic.errorOf(status);
			if (error || !logic.isActive(status.state))
				this.stopPolling();
			if (this.installing) {
				this.followInstall(status);
				return;
			}
			this.showStatus(status);
		}, this)).catch(L.bind(function(err) {
			if (this.installing) {
				// The router stops answering while it flashes: that is the expected end.
				this.stopPolling();
				this.reconnect();
			} else {
				// A lost answer (a timeout, a restarting rpcd): shown, and the next poll retries.
				replaceContent(this.jobNode, this.renderError(logic.rpcFailure(err).error, _('Cannot read the job')));
			}
		}, this));
	},

	handleCancel: function() {
		return callCancel(this.job || undefined).catch(logic.rpcFailure).then(L.bind(function(reply) {
			var error = logic.errorOf(reply);
			if (error) {
				ui.addNotification(null, E('p', {}, text.node(error.message)), 0, 'error');
				return;
			}
			this.stopPolling();
			return this.pollOnce();
		}, this));
	},

	pollOnce: function() {
		return callStatus(this.job || undefined).catch(logic.rpcFailure).then(L.bind(this.showStatus, this));
	},

	handleInstall: function() {
		var keep = this.keepSettings !== false;
		var forceNode = document.getElementById('attendant-force-flash');
		var force = !!(forceNode && forceNode.checked);
		var children = [
			E('p', {}, _('The router flashes the verified image and reboots. It is unreachable for several minutes; do not power it off.')),
			E('p', { id: 'attendant-confirm-settings' }, keep
				? _('The current settings are kept.')
				: _('The settings are NOT kept: the router comes back with the default configuration at 192.168.1.1.'))
		];
		if (force)
			children.push(E('p', { 'class': 'alert-message warning', id: 'attendant-confirm-force' }, _('Force flash is on: sysupgrade will not refuse an image that fails its checks.')));
		ui.showModal(_('Install the new firmware?'), children.concat([
			E('div', { 'class': 'right' }, [
				E('button', { 'class': 'btn', click: ui.hideModal }, _('Cancel')),
				' ',
				E('button', { id: 'attendant-confirm-install', 'class': 'btn cbi-button-negative important',
					click: ui.createHandlerFn(this, 'confirmInstall', keep, force) }, _('Install'))
			])
		]));
	},

	confirmInstall: function(keep, force) {
		return callInstall(this.job, keep, force ? true : undefined).catch(logic.rpcFailure).then(L.bind(function(reply) {
			var error = logic.errorOf(reply);
			if (error) {
				ui.hideModal();
				replaceContent(this.jobNode, this.renderError(error, _('The installation did not start')));
				return;
			}
			this.installing = { keep: keep };
			this.showStatus({ job: reply.job, state: reply.state, command: reply.command });
			ui.showModal(_('Installing the firmware…'), [
				E('p', { 'class': 'spinning', id: 'attendant-installing' },
					_('The router checks the image once more and flashes it. Do not power it off.'))
			]);
			this.startPolling();
		}, this));
	},

	followInstall: function(status) {
		var error = logic.errorOf(status);
		if (!error && status.state === 'installing')
			return;
		this.showStatus(status);
		if (!error && status.state === 'rebooting') {
			this.reconnect();
		} else {
			this.installing = null;
			ui.hideModal();
		}
	},

	/* LuCI's awaitReconnect shows nothing while it waits, so the page says what is going on. */
	reconnect: function() {
		var keep = this.installing ? this.installing.keep : true;
		this.installing = null;
		ui.showModal(_('Rebooting…'), [
			E('p', { 'class': 'spinning', id: 'attendant-rebooting' },
				_('The router is rebooting into the new firmware. This page reloads when the router answers again; this can take several minutes.'))
		]);
		ui.awaitReconnect.apply(ui, logic.reconnectHosts(keep, window.location.host));
	},

	handleCopy: function(report, button) {
		var done = function() {
			if (button)
				button.setAttribute('data-copied', 'true');
			ui.addNotification(null, E('p', {}, _('The error data is in the clipboard.')), NOTICE_TIMEOUT, 'info');
		};
		if (window.navigator && window.navigator.clipboard && window.navigator.clipboard.writeText)
			return window.navigator.clipboard.writeText(report).then(done, L.bind(this.copyFallback, this, report, done));
		return this.copyFallback(report, done);
	},

	copyFallback: function(report, done) {
		var area = E('textarea', { style: 'position:fixed;opacity:0' }, [ text.node(report) ]);
		document.body.appendChild(area);
		area.select();
		try {
			document.execCommand('copy');
		} finally {
			document.body.removeChild(area);
		}
		done();
	}
});
