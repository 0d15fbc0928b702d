'use strict';
'require baseclass';
'require rpc';
'require attendant.logic as logic';

/*
 * Status → Overview: a notice when the upgrade server offers newer firmware. Runs only when
 * `login_check_for_upgrades` is set (Configuration page); asks the bridge's `check`, so it uses
 * the configured server and the router's own packages (ubus-bridge/contract.json).
 */

var callConfigGet = rpc.declare({ object: 'attendant', method: 'config_get' });
var callCheck = rpc.declare({ object: 'attendant', method: 'check' });

return baseclass.extend({
	title: _('Firmware upgrade'),

	load: function() {
		return L.resolveDefault(callConfigGet(), {}).then(function(config) {
			if (!config || logic.errorOf(config) || !config.login_check_for_upgrades)
				return null;
			return L.resolveDefault(callCheck(), null);
		});
	},

	render: function(check) {
		if (!check || logic.errorOf(check) || check.verdict !== 'upgrade_available')
			return null;
		var target = check.target || {};
		var current = check.current || {};
		return E('div', { 'class': 'alert-message notice', id: 'attendant-status-notice' }, [
			E('p', {}, _('Firmware %s (%s) is available; this router runs %s (%s).').format(
				target.version, target.version_code || '?', current.version, current.revision || '?')),
			E('a', { 'class': 'btn cbi-button cbi-button-action', href: L.url('admin', 'system', 'attendant', 'overview') },
				_('Go to firmware upgrade'))
		]);
	}
});
