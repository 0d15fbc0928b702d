'use strict';
'require baseclass';

/*
 * The decisions of luci-app-attendant's views, as plain functions without DOM or RPC: which
 * panel a job state shows, what a `check` reply changes, the arguments of `check`/`start`,
 * progress and size formatting, error reports. The views call these; the unit tests call them
 * directly. Reply shapes: ubus-bridge/contract.json (methods `check`, `status`, error object).
 * Every text they return is a string (never undefined), for the views to put in text nodes.
 */

/* Job states that are still moving (status `states` of the contract). */
var ACTIVE_STATES = [ 'checking', 'queued', 'building', 'downloading', 'verifying', 'installing' ];

/* Build stages (ASU `imagebuilder_status`, current and older servers) in order, for a rough bar. */
var BUILD_STAGES = {
	init: [ 5, _('Starting') ],
	container_setup: [ 15, _('Preparing the build environment') ],
	download_imagebuilder: [ 20, _('Downloading the ImageBuilder') ],
	unpack_imagebuilder: [ 35, _('Unpacking the ImageBuilder') ],
	validate_revision: [ 40, _('Checking the revision') ],
	validate_manifest: [ 50, _('Resolving the packages') ],
	calculate_packages_hash: [ 55, _('Resolving the packages') ],
	building_image: [ 70, _('Building the image') ],
	signing_images: [ 90, _('Signing the image') ],
	done: [ 100, _('Build finished') ],
	failed: [ 100, _('Build failed') ]
};

/* Package changes of a `check` reply that the table lists (`same` is left out). */
var LISTED_CHANGES = [ 'downgrade', 'missing', 'upgrade', 'new', 'indeterminate' ];

/* What the user does about a warning, problem or error, by its hint code (contract.json
 * `hints.codes`), in the words of this app: the labels of its controls, else plain steps. The
 * bridge's own hint `message` names ubus call arguments and is English only, so it is shown
 * only for a code this table does not know yet (a newer bridge). */
var HINTS = {
	force: _('To build anyway, tick "Force" under "Upgrade options" and press "Check for upgrade" again. The options are shown when "Advanced mode" is on (Configuration tab).'),
	remove: _('Leave the package out: take it out of "Add packages", or enter it in "Remove packages", then press "Check for upgrade" again. The package fields are shown when "Advanced mode" is on (Configuration tab).'),
	ignored_defaults: _('To keep the package, enter it in "Add packages" (shown when "Advanced mode" is on, Configuration tab) and check again. If it was removed on purpose, add it to the list option ignored_defaults in /etc/config/attendedsysupgrade to silence this warning.'),
	init_script: _('To build the first-boot script into the new firmware as well, set the option init_script in /etc/config/attendedsysupgrade to the script file, then press "Check for upgrade" again.'),
	fstype: _('The server has no image for this filesystem. Set the option fstype in /etc/config/attendedsysupgrade to one it builds (for example squashfs), then press "Check for upgrade" again.'),
	version_to: _('The server builds nothing for the installed release. Choose a version it offers under "Version" (shown when "Advanced mode" is on, Configuration tab), then press "Check for upgrade" again.'),
	versions: _('Choose one of the versions the server offers under "Version", then press "Check for upgrade" again.'),
	unsupported_board: _('The server does not build firmware for this board, and no option here changes that. Another upgrade server ("Server address", Configuration tab) may support it.'),
	try_later: _('The server is busy or not up to date yet. Try again in a few minutes.'),
	ca_file: _('The router cannot read its list of trusted certificate authorities. Install the ca-bundle package (System → Software), then try again.'),
	free_space: _('The image does not fit. Free space on the router, or set the option image in /etc/config/attendedsysupgrade to a place with room, then press "Check for upgrade" and "Build and download" again.'),
	resume: _('The download kept breaking off. Press "Check for upgrade" and "Build and download" again; the download continues where it stopped.'),
	download_again: _('The downloaded image was damaged and nothing was installed. Press "Check for upgrade" and "Build and download" again to download it afresh.'),
	require_signature: _('The image is not signed and nothing was installed. Ask the upgrade server\'s operator to sign its images, or untick "Require signatures" in the Configuration tab and build again.'),
	pre_install: _('The pre-install script failed and nothing was flashed. Fix the script, or remove the option pre_install from /etc/config/attendedsysupgrade, then build and install again.'),
	force_flash: _('sysupgrade\'s own checks refused the image and nothing was flashed. Only if you are sure the image fits this router: build it again and tick "Force flash" before pressing "Install" (shown when "Advanced mode" is on, Configuration tab).'),
	clear_state: _('The upgrade job\'s state file is damaged. Delete the file named above (for example over SSH), then reload this page.')
};

/* What to do about a hint ({code, message}, contract `hints.shape`) in this app's words
 * (HINTS); a code it does not know yet shows the bridge's `message`; null without a hint.
 * Only finding() and errorHint() call it, so the views never see the bridge's wording of a
 * known code. */
function hintText(hint) {
	if (hint == null || typeof hint !== 'object')
		return null;
	if (typeof hint.code === 'string' && Object.prototype.hasOwnProperty.call(HINTS, hint.code))
		return HINTS[hint.code];
	return (hint.message != null) ? String(hint.message) : null;
}

/* Longest text put into the clipboard report from one output stream. */
var MAX_REPORT_STREAM = 65536;

return baseclass.extend({
	ACTIVE_STATES: ACTIVE_STATES,

	/* The bridge's error object of a reply (`{"error": {...}}`), or null. A `status` reply of a
	 * failed job also carries `error`, next to its `state`: that is a job's outcome, not an
	 * error of the call. A bare number is a ubus status from rpcd (no such method, no access). */
	errorOf: function(reply) {
		if (reply == null || typeof reply !== 'object')
			return { code: 'failure', message: _('The router gave no answer (ubus status %s)').format(String(reply)) };
		if (reply.error != null && typeof reply.error === 'object' && reply.state === undefined)
			return reply.error;
		return null;
	},

	/* A rejected rpc call as a reply carrying the bridge's error object, so the views show it
	 * where the reply would have gone. LuCI rejects when the plugin is not installed (-32000),
	 * the ACL denies the method (-32002), the session expired or the request timed out, and
	 * appends the call stack to the message: only its first line is shown. Plain function, so
	 * it can be passed to `.catch()`. */
	rpcFailure: function(err) {
		var message = (err != null && typeof err === 'object' && err.message != null) ? err.message : err;
		var first = String(message == null ? '' : message).split('\n')[0];
		var name = (err != null && typeof err === 'object' && err.name) ? String(err.name) + ': ' : '';
		return { error: { code: 'failure', message: name + (first || _('unknown error')) } };
	},

	/* The version facts of a `check` reply's `current` or `target`, with "?" for what is not
	 * known, so no text ever shows "undefined". */
	versionOf: function(facts) {
		var f = (facts != null && typeof facts === 'object') ? facts : {};
		var known = function(value) { return (value != null && value !== '') ? String(value) : '?'; };
		return { version: known(f.version), version_code: known(f.version_code), revision: known(f.revision) };
	},

	/* Whether a job in `state` is still running, so the page keeps polling `status`. */
	isActive: function(state) {
		return ACTIVE_STATES.indexOf(state) >= 0;
	},

	/* Which panel a `status` reply shows: idle, progress, ready, up_to_date, installing,
	 * rebooting, failed or cancelled. */
	phase: function(status) {
		var state = status && status.state;
		switch (state) {
		case 'checking':
		case 'queued':
		case 'building':
		case 'downloading':
		case 'verifying':
			return 'progress';
		case 'ready':
		case 'up_to_date':
		case 'installing':
		case 'rebooting':
		case 'failed':
		case 'cancelled':
			return state;
		default:
			return 'idle';
		}
	},

	/* One line for a state, shown above the details. */
	stateLabel: function(state) {
		switch (state) {
		case 'checking': return _('Checking the packages with the server');
		case 'queued': return _('Waiting in the build queue');
		case 'building': return _('The server is building the firmware');
		case 'downloading': return _('Downloading the firmware to the router');
		case 'verifying': return _('Verifying the firmware');
		case 'ready': return _('The firmware is verified and ready to install');
		case 'up_to_date': return _('The firmware is up to date');
		case 'installing': return _('Installing the firmware');
		case 'rebooting': return _('The router is rebooting into the new firmware');
		case 'failed': return _('The upgrade failed');
		case 'cancelled': return _('The upgrade was cancelled');
		default: return _('No upgrade in progress');
		}
	},

	/* A build stage's label; an unknown stage is shown as the server wrote it. */
	stageLabel: function(stage) {
		var known = Object.prototype.hasOwnProperty.call(BUILD_STAGES, stage) ? BUILD_STAGES[stage] : null;
		return known ? known[1] : String(stage);
	},

	/* The progress bar of a status: {percent, text}, or null when there is nothing to measure. */
	progress: function(status) {
		if (!status)
			return null;
		if ((status.state === 'downloading' || status.state === 'verifying') && status.total > 0) {
			var done = Math.min(status.downloaded || 0, status.total);
			return {
				percent: Math.floor(done * 100 / status.total),
				text: _('%s of %s').format(this.formatBytes(done), this.formatBytes(status.total))
			};
		}
		if (status.state === 'building' && status.build_stage != null) {
			var known = Object.prototype.hasOwnProperty.call(BUILD_STAGES, status.build_stage)
				? BUILD_STAGES[status.build_stage] : null;
			return { percent: known ? known[0] : 50, text: this.stageLabel(status.build_stage) };
		}
		return null;
	},

	/* The facts of a status worth a line each: [[label, value], ...] in display order. */
	statusFacts: function(status) {
		var facts = [];
		if (!status)
			return facts;
		if (status.version != null)
			facts.push([ _('Version'), status.version ]);
		if (status.queue_position != null && status.state === 'queued')
			facts.push([ _('Queue position'), String(status.queue_position) ]);
		if (status.build_stage != null && (status.state === 'building' || status.state === 'queued'))
			facts.push([ _('Build stage'), this.stageLabel(status.build_stage) ]);
		if (status.build_elapsed != null && status.state !== 'downloading' && status.state !== 'verifying')
			facts.push([ _('Build time'), this.formatDuration(status.build_elapsed) ]);
		if (status.downloaded != null && status.total != null)
			facts.push([ _('Downloaded'), _('%s of %s').format(this.formatBytes(status.downloaded), this.formatBytes(status.total)) ]);
		else if (status.downloaded != null)
			facts.push([ _('Downloaded'), this.formatBytes(status.downloaded) ]);
		if (status.elapsed != null)
			facts.push([ _('Elapsed time'), this.formatDuration(status.elapsed) ]);
		if (status.request_hash != null)
			facts.push([ _('Request'), status.request_hash ]);
		return facts;
	},

	/* The verified result of a `ready` status: [[label, value], ...]. */
	resultFacts: function(status) {
		var v = (status && status.verification) || {};
		var facts = [];
		facts.push([ _('Version'), v.image_version || status.version || _('unknown') ]);
		if (v.len != null)
			facts.push([ _('Size'), this.formatBytes(v.len) ]);
		facts.push([ _('SHA-256'), v.sha256 || _('unknown') ]);
		facts.push([ _('Signature'), v.signed_by ? _('valid, signed by key %s').format(v.signed_by) : _('none: the image is not signed') ]);
		facts.push([ _('Board compatibility'), v.compatibility || _('unknown') ]);
		if (Array.isArray(v.fwtool_blocks) && v.fwtool_blocks.length)
			facts.push([ _('Firmware trailer'), v.fwtool_blocks.join(', ') ]);
		if (v.path)
			facts.push([ _('Image file'), v.path ]);
		return facts;
	},

	/* The rows of the "what changes" table of a `check` reply:
	 * {kind, name, from, to} with kind one of downgrade, missing, upgrade, new, indeterminate,
	 * rename, removal; sorted by kind (the riskiest first), then name. */
	changeRows: function(check) {
		var rows = [];
		var packages = (check && Array.isArray(check.packages)) ? check.packages : [];
		packages.forEach(function(p) {
			if (LISTED_CHANGES.indexOf(p.change) >= 0)
				rows.push({ kind: p.change, name: p.name, from: p.installed || '', to: p.available || '' });
		});
		((check && check.renamed) || []).forEach(function(r) {
			rows.push({ kind: 'rename', name: r.from, from: r.from, to: r.to });
		});
		((check && check.removed) || []).forEach(function(r) {
			rows.push({ kind: 'removal', name: r.name, from: r.name, to: '' });
		});
		var order = LISTED_CHANGES.concat([ 'rename', 'removal' ]);
		rows.sort(function(a, b) {
			return (order.indexOf(a.kind) - order.indexOf(b.kind)) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
		});
		return rows;
	},

	/* The label of a change kind in the table. */
	changeLabel: function(kind) {
		switch (kind) {
		case 'upgrade': return _('upgrade');
		case 'downgrade': return _('downgrade');
		case 'missing': return _('not available');
		case 'new': return _('new');
		case 'indeterminate': return _('unknown');
		case 'rename': return _('renamed');
		case 'removal': return _('removed');
		default: return String(kind);
		}
	},

	/* Whether "Build and download" is offered for a `check` reply. */
	canBuild: function(check, force) {
		if (!check || this.errorOf(check))
			return false;
		if (check.verdict === 'upgrade_available')
			return true;
		return !!force && check.verdict === 'up_to_date';
	},

	/* Package names typed by the user: split on commas and white space, without duplicates. */
	packageList: function(text) {
		var seen = {};
		return String(text || '').split(/[\s,]+/).filter(function(name) {
			if (name === '' || seen[name])
				return false;
			seen[name] = true;
			return true;
		});
	},

	/* The arguments of `check`/`start` for the advanced selection {version, add, remove, force};
	 * keys without a value are left out so the bridge uses its defaults. */
	requestArgs: function(selection) {
		var args = {};
		var s = selection || {};
		if (s.version)
			args.version = String(s.version);
		var add = this.packageList(s.add);
		if (add.length)
			args.add = add;
		var remove = this.packageList(s.remove);
		if (remove.length)
			args.remove = remove;
		if (s.force)
			args.force = true;
		return args;
	},

	/* Where to wait for the router after the flash: this host when settings are kept, else the
	 * addresses of a fresh OpenWrt (as luci-app-attendedsysupgrade). */
	reconnectHosts: function(keepSettings, host) {
		return keepSettings ? [ host ] : [ '192.168.1.1', 'openwrt.lan' ];
	},

	/* A warning or problem of `check`, `status` or a `blocked` error ({message, hint?}, contract
	 * `hints.shape`) as {message, hint}: hint is what to do about it (hintText), or null. */
	finding: function(item) {
		if (item == null || typeof item !== 'object')
			return { message: String(item), hint: null };
		return { message: String(item.message != null ? item.message : ''), hint: hintText(item.hint) };
	},

	/* What the user can do about an error: the way out of its `hint` when it carries one (the
	 * most specific advice, hintText), else words for its code; null when the message says it
	 * all. */
	errorHint: function(error) {
		var hint = error ? hintText(error.hint) : null;
		if (hint != null)
			return hint;
		switch (error && error.code) {
		case 'server_busy': return _('The server\'s build queue is full. Try again in a few minutes.');
		case 'blocked': return _('Nothing was built. Remove or replace the packages named above (advanced mode), or choose another version.');
		case 'verification': return _('The image failed a check and was not installed. Nothing on the router was changed.');
		case 'server': return _('The server could not build the image. Its answer and the build output are below; copy them into a report if the problem stays.');
		case 'job_died': return _('The background job ended unexpectedly. Start again; the router log may say why.');
		case 'timeout': return _('The router did not answer in time. Reload the page to see the current state.');
		case 'no_job': return _('The job is no longer known. Check for an upgrade again.');
		default: return null;
		}
	},

	/* The text copied to the clipboard for an error: the error and what was asked, as JSON. */
	errorReport: function(error, context) {
		var copy = {};
		Object.keys(error || {}).forEach(function(key) {
			var value = error[key];
			copy[key] = (typeof value === 'string' && value.length > MAX_REPORT_STREAM)
				? value.substring(value.length - MAX_REPORT_STREAM) : value;
		});
		return JSON.stringify({ error: copy, context: context || {} }, null, 2);
	},

	/* The boolean settings of the configuration page: [key of config_get/config_set, label,
	 * description]. */
	CONFIG_FLAGS: [
		[ 'auto_search', _('Check on open'), _('Check for an upgrade when the firmware upgrade page opens') ],
		[ 'advanced_mode', _('Advanced mode'), _('Choose the version, add or remove packages, and force builds and flashing') ],
		[ 'login_check_for_upgrades', _('Announce on the status page'), _('Check for new firmware when the status page opens and show a notice') ],
		[ 'keep_settings', _('Keep settings'), _('Keep the configuration over an upgrade unless unchecked on the upgrade page') ],
		[ 'require_signature', _('Require signatures'), _('Refuse images that are not signed by a key in /etc/opkg/keys') ]
	],

	/* Whether `url` is an http:// or https:// URL with a host (what config_set accepts). */
	isServerUrl: function(url) {
		return /^https?:\/\/[^\s\/?#]+([\/?#]\S*)?$/.test(String(url || ''));
	},

	/* config_set arguments from the configuration form {url, rebuilders (text, one URL a line),
	 * flags: {key: bool}}: {args, errors}, errors naming each field that is wrong. */
	configArgs: function(form) {
		var errors = [];
		var args = {};
		var url = String(form.url || '').trim();
		if (this.isServerUrl(url))
			args.url = url;
		else
			errors.push(_('Server address must be an http:// or https:// URL, got "%s"').format(url));
		var rebuilders = String(form.rebuilders || '').split(/\s+/).filter(function(u) { return u !== ''; });
		rebuilders.forEach(function(u) {
			if (!this.isServerUrl(u))
				errors.push(_('Rebuilder must be an http:// or https:// URL, got "%s"').format(u));
		}, this);
		args.rebuilders = rebuilders;
		this.CONFIG_FLAGS.forEach(function(flag) {
			args[flag[0]] = !!(form.flags && form.flags[flag[0]]);
		});
		return { args: args, errors: errors };
	},

	/* Bytes as "6.3 MB" (decimal units, like the sizes the server prints). */
	formatBytes: function(bytes) {
		var n = Number(bytes) || 0;
		if (n < 1000)
			return _('%d B').format(n);
		var units = [ 'kB', 'MB', 'GB', 'TB' ];
		var i = -1;
		do {
			n /= 1000;
			i++;
		} while (n >= 1000 && i < units.length - 1);
		return '%.1f %s'.format(n, units[i]);
	},

	/* Seconds as "1 min 35 s" / "42 s". */
	formatDuration: function(seconds) {
		var s = Math.max(0, Math.floor(Number(seconds) || 0));
		if (s < 60)
			return _('%d s').format(s);
		var m = Math.floor(s / 60);
		if (m < 60)
			return _('%d min %d s').format(m, s % 60);
		return _('%d h %d min').format(Math.floor(m / 60), m % 60);
	},

	/* The facts of `info.channel` (null: no channel in use, no facts): the channel the running
	 * image belongs to, its build number, the configured channel when it differs, the phase. */
	channelFacts: function(channel) {
		if (channel == null || typeof channel !== 'object')
			return [];
		var known = function(value) { return (value != null && value !== '') ? String(value) : '?'; };
		var facts = [ [ _('Channel'), known(channel.name) ], [ _('Channel build'), known(channel.build) ] ];
		if (channel.configured != null && channel.configured !== channel.name)
			facts.push([ _('Configured channel'), String(channel.configured) ]);
		if (channel.channel_target != null && channel.channel_target !== '')
			facts.push([ _('Alias of'), String(channel.channel_target) ]);
		if (typeof channel.phase === 'number')
			facts.push([ _('Phase of this router'), '%d %%'.format(channel.phase) ]);
		return facts;
	},

	/* What the `channel` part of a `check` reply says (null: no channel in use): the offered
	 * build's facts (with the image the upgrade would flash: the published one, or one built for
	 * this router because of the packages it names), and notices — phased out ("your turn comes
	 * at X %"), a move to an older OpenWrt version (warned about), a redirect to another
	 * channel. Each notice is { kind: 'info'|'warning', text }. */
	channelOffer: function(channel) {
		if (channel == null || typeof channel !== 'object')
			return null;
		var known = function(value) { return (value != null && value !== '') ? String(value) : '?'; };
		var facts = [ [ _('Channel'), known(channel.name) ] ];
		if (channel.target_build != null)
			facts.push([ _('Offered build'), _('%s (OpenWrt %s), this router runs build %s').format(
				known(channel.target_build), known(channel.openwrt_version), known(channel.current_build)) ]);
		if (channel.description != null && channel.description !== '')
			facts.push([ _('Description'), String(channel.description) ]);
		var image = this.channelImage(channel);
		if (image)
			facts.push([ _('Image'), image ]);
		var newest = this.newestBeyond(channel);
		if (newest)
			facts.push([ _('Newest build'), _('%s (OpenWrt %s): %s').format(
				String(newest.build), known(newest.openwrt_version), known(newest.description)) ]);
		if (typeof channel.phased_percentage === 'number' && typeof channel.phase === 'number')
			facts.push([ _('Phased rollout'), _('offered to %d %% of routers; this router\'s phase is %d').format(
				channel.phased_percentage, channel.phase) ]);
		var notices = [];
		if (channel.phased_in === false) {
			var turn = (typeof channel.next_phase_at === 'number') ? channel.next_phase_at : channel.phase;
			notices.push({ kind: 'info', text: (typeof turn === 'number')
				? _('Phased out: this router\'s turn comes when the build is offered to %d %% of routers.').format(turn)
				: _('Phased out: the newest build is not offered to this router yet.') });
		}
		if (channel.older_openwrt === true)
			notices.push({ kind: 'warning', text: _('This moves the router to an older OpenWrt version (%s) than it runs now. Settings made for the newer version may not work; keep a backup.').format(known(channel.openwrt_version)) });
		if (channel.redirect != null && channel.redirect !== '')
			notices.push({ kind: 'info', text: _('The channel is redirected: after this upgrade the router follows channel %s.').format(String(channel.redirect)) });
		return { facts: facts, notices: notices };
	},

	/* Which image an upgrade to the offered build flashes, in words: the channel's published
	 * image, or (`prebuilt` false) one the server builds for this router, naming the installed
	 * packages (`extra_packages`) the published image lacks; null when no build is offered or
	 * the reply does not say. */
	channelImage: function(channel) {
		if (channel == null || typeof channel !== 'object' || channel.target_build == null || typeof channel.prebuilt !== 'boolean')
			return null;
		if (channel.prebuilt)
			return _('the image the channel publishes');
		var extra = Array.isArray(channel.extra_packages)
			? channel.extra_packages.filter(function(name) { return typeof name === 'string' && name !== ''; })
			: [];
		return extra.length
			? _('built for this router, to keep packages the published image lacks: %s').format(extra.join(', '))
			: _('built for this router');
	},

	/* The channel's newest build when it is not the one offered (a router phased out of it may
	 * be offered an older one, or none): the build the phase facts are about; else null. */
	newestBeyond: function(channel) {
		var newest = (channel != null && typeof channel === 'object') ? channel.newest : null;
		if (newest == null || typeof newest !== 'object' || typeof newest.build !== 'number')
			return null;
		return (newest.build !== channel.target_build) ? newest : null;
	},

	/* The Status page's "an update is available" notice for a channel's offer (a `check` reply
	 * with `channel` and an upgrade available): the offered build, its description, and where
	 * this router stands in the rollout — in it, or waiting for the newest build, with the
	 * percentage at which its turn comes. Null when there is nothing to take. Each line is a
	 * string for a text node. */
	channelStatusNotice: function(check) {
		if (!check || this.errorOf(check) || check.verdict !== 'upgrade_available'
			|| check.channel == null || typeof check.channel !== 'object' || check.channel.target_build == null)
			return null;
		var channel = check.channel;
		var known = function(value) { return (value != null && value !== '') ? String(value) : '?'; };
		var lines = [ _('Build %s of channel %s (OpenWrt %s) is available; this router runs build %s.').format(
			String(channel.target_build), known(channel.name), known(channel.openwrt_version), known(channel.current_build)) ];
		if (channel.description != null && channel.description !== '')
			lines.push(String(channel.description));
		var newest = this.newestBeyond(channel);
		if (channel.phased_in === false && newest) {
			var turn = (typeof channel.next_phase_at === 'number') ? channel.next_phase_at : channel.phase;
			lines.push((typeof turn === 'number' && typeof channel.phased_percentage === 'number')
				? _('The newest build, %s (OpenWrt %s), is offered to %d %% of routers so far; this router\'s turn comes at %d %%.').format(
					String(newest.build), known(newest.openwrt_version), channel.phased_percentage, turn)
				: _('The newest build, %s (OpenWrt %s), is not offered to this router yet.').format(
					String(newest.build), known(newest.openwrt_version)));
		}
		else if (channel.phased_in === true && typeof channel.phased_percentage === 'number' && channel.phased_percentage < 100
			&& typeof channel.phase === 'number')
			lines.push(_('Phased rollout: offered to %d %% of routers so far, this router (phase %d) among them.').format(
				channel.phased_percentage, channel.phase));
		return lines;
	},

	/* The verdict of a `check` reply for a channel, in words: the build offered, or why none is. */
	channelHeadline: function(check) {
		var channel = (check && check.channel) || {};
		var name = (channel.name != null && channel.name !== '') ? String(channel.name) : '?';
		if (check && check.verdict === 'upgrade_available')
			return _('Build %s of channel %s (OpenWrt %s) is available; this router runs build %s of it.').format(
				String(channel.target_build != null ? channel.target_build : '?'), name,
				(channel.openwrt_version != null && channel.openwrt_version !== '') ? String(channel.openwrt_version) : '?',
				String(channel.current_build != null ? channel.current_build : '?'));
		if (channel.phased_in === false)
			return _('Channel %s offers this router nothing new yet: its newest build is still being rolled out to other routers.').format(name);
		return _('The firmware is up to date on channel %s.').format(name);
	},

	/* The channels of a `channels` reply as choices { value, label } for a select: hidden ones
	 * left out (the bridge lists them only when asked for all), each with its newest build for
	 * this router. */
	channelChoices: function(reply) {
		var list = (reply && Array.isArray(reply.channels)) ? reply.channels : [];
		return list.filter(function(c) {
			return c != null && typeof c === 'object' && c.hidden !== true && typeof c.name === 'string' && c.name !== '';
		}).map(function(c) {
			var latest = (c.latest != null && typeof c.latest === 'object') ? c.latest : null;
			return {
				value: c.name,
				label: latest
					? _('%s: build %s, OpenWrt %s').format(c.name, String(latest.build), (latest.openwrt_version != null && latest.openwrt_version !== '') ? String(latest.openwrt_version) : '?')
					: _('%s: no build for this router').format(c.name)
			};
		});
	},

	/* Taking the offer of `check` (a reply for a channel) would be a switch to `channel` that lands on
	 * an older OpenWrt version than the router runs: the user confirms it first. */
	isOlderMove: function(check) {
		return !!(check && !this.errorOf(check) && check.channel != null && typeof check.channel === 'object'
			&& check.channel.older_openwrt === true && check.channel.target_build != null);
	},

	/* The warning of that confirmation, naming the channel and both versions. */
	olderMoveWarning: function(check) {
		var channel = (check && check.channel) || {};
		var running = (check && check.current && check.current.version) ? String(check.current.version) : '?';
		return _('Channel %s offers OpenWrt %s, which is older than the OpenWrt %s this router runs. Going back can break settings and packages made for the newer version, and the configuration may not be kept; save a backup before installing.').format(
			String(channel.name || '?'), String(channel.openwrt_version || '?'), running);
	}
});
