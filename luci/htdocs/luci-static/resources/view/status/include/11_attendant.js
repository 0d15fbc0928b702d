'use strict';
'require baseclass';
'require rpc';
'require attendant.logic as logic';
'require attendant.text as text';

/*
 * Status → Overview: a notice when the upgrade server offers newer firmware (with a release
 * channel: the channel's offered build, its description and the phase state). Runs only when
 * `login_check_for_upgrades` is set (Configuration page); asks the bridge's `check`, so it uses
 * the configured server and the router's own packages (ubus-bridge/contract.json).
 *
 * The Status page calls load() and render() of every include on each of its poll ticks (every
 * 5 s by default) while it is open, and gives up on an include for good once its load()
 * rejects; so load() never rejects, and `check` is asked with CHECK_MAX_AGE: the bridge answers
 * from its last check while that is young enough and asks the upgrade server at most once per
 * CHECK_MAX_AGE, however many Status pages are open.
 */

/* Seconds a stored check result is good enough for the notice. New releases come weeks apart,
 * so a notice an hour late costs nothing, while one question per router per hour keeps a
 * public upgrade server's load independent of how long Status pages stay open. */
var CHECK_MAX_AGE = 3600;

var callConfigGet = rpc.declare({ object: 'attendant', method: 'config_get' });
var callCheck = rpc.declare({ object: 'attendant', method: 'check', params: [ 'max_age' ] });

return baseclass.extend({
	title: _('Firmware upgrade'),

	load: function() {
		return Promise.resolve().then(function() {
			return L.resolveDefault(callConfigGet(), null);
		}).then(function(config) {
			if (logic.errorOf(config) || !config.login_check_for_upgrades)
				return null;
			return L.resolveDefault(callCheck(CHECK_MAX_AGE), null);
		}).catch(function() {
			return null;
		});
	},

	render: function(check) {
		if (logic.errorOf(check) || check.verdict !== 'upgrade_available') {
			/* The Status page replaces a section's content only when render returns something
			 * other than null; after a null it keeps showing the previous content. So once a
			 * notice was shown, an empty element takes its place when the offer is gone (the
			 * router was upgraded, the option was turned off, the server withdrew the release);
			 * before that, null keeps the section hidden. See status/index.js of luci-mod-status:
			 * https://github.com/openwrt/luci/blob/openwrt-24.10/modules/luci-mod-status/htdocs/luci-static/resources/view/status/index.js */
			return this.noticeShown ? E('div', { id: 'attendant-status-no-notice' }) : null;
		}
		this.noticeShown = true;
		var link = E('a', { 'class': 'btn cbi-button cbi-button-action', href: L.url('admin', 'system', 'attendant', 'overview') },
			_('Go to firmware upgrade'));
		/* A release channel's offer: its build, description and this router's place in the
		 * rollout, from the `channel` part of the same reply. */
		var channelLines = logic.channelStatusNotice(check);
		if (channelLines)
			return E('div', { 'class': 'alert-message notice', id: 'attendant-status-notice', 'data-channel': check.channel.name },
				channelLines.map(function(line) { return E('p', {}, text.node(line)); }).concat([ link ]));
		var target = logic.versionOf(check.target);
		var current = logic.versionOf(check.current);
		return E('div', { 'class': 'alert-message notice', id: 'attendant-status-notice' }, [
			E('p', {}, text.node(_('Firmware %s (%s) is available; this router runs %s (%s).').format(
				target.version, target.version_code, current.version, current.revision))),
			link
		]);
	}
});
