'use strict';
'require view';
'require rpc';
'require ui';
'require attendant.logic as logic';
'require attendant.text as text';

/*
 * System → Firmware upgrade → Configuration: the settings of /etc/config/attendedsysupgrade that
 * the web interface uses, read and written through the bridge (`config_get`/`config_set` of the
 * ubus object `attendant`, ubus-bridge/contract.json), so the bridge validates every value.
 * As on the Overview, child lists hold only nodes and our own strings, and text from outside
 * (the saved values, the bridge's messages) goes in as text.node().
 */

var callConfigGet = rpc.declare({ object: 'attendant', method: 'config_get' });
var callConfigSet = rpc.declare({
	object: 'attendant', method: 'config_set',
	params: [ 'url', 'rebuilders', 'auto_search', 'advanced_mode', 'login_check_for_upgrades',
		'keep_settings', 'require_signature' ]
});

return view.extend({
	handleSaveApply: null,
	handleReset: null,

	load: function() {
		return callConfigGet().catch(logic.rpcFailure);
	},

	render: function(config) {
		var error = logic.errorOf(config);
		this.config = error ? {} : config;
		var fields = [
			E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'attendant-url' }, _('Server address')),
				E('div', { 'class': 'cbi-value-field' }, [
					E('input', { id: 'attendant-url', type: 'text', 'class': 'cbi-input-text', value: this.config.url || '' }),
					E('div', { 'class': 'cbi-value-description' }, _('The upgrade server that builds the images (ASU API)'))
				])
			]),
			E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'attendant-rebuilders' }, _('Rebuilders')),
				E('div', { 'class': 'cbi-value-field' }, [
					E('textarea', { id: 'attendant-rebuilders', 'class': 'cbi-input-textarea', rows: 2 },
						text.node(Array.isArray(this.config.rebuilders) ? this.config.rebuilders.join('\n') : '')),
					E('div', { 'class': 'cbi-value-description' }, _('Further servers that rebuild the image to cross-check it, one address a line'))
				])
			])
		];
		logic.CONFIG_FLAGS.forEach(function(flag) {
			fields.push(E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'attendant-' + flag[0] }, flag[1]),
				E('div', { 'class': 'cbi-value-field' }, [
					E('input', { id: 'attendant-' + flag[0], type: 'checkbox', checked: this.config[flag[0]] ? 'checked' : null }),
					E('div', { 'class': 'cbi-value-description' }, flag[2])
				])
			]));
		}, this);
		this.messageNode = E('div', { id: 'attendant-config-message' });
		var page = [
			E('h2', {}, _('Firmware upgrade: configuration')),
			E('div', { 'class': 'cbi-map-descr' }, _('Settings shared with owut and luci-app-attendedsysupgrade (/etc/config/attendedsysupgrade).'))
		];
		if (error)
			page.push(E('div', { 'class': 'alert-message error', id: 'attendant-config-error' }, text.node(error.message)));
		return E('div', { id: 'attendant-configuration' }, page.concat([
			E('div', { 'class': 'cbi-section' }, fields),
			this.messageNode
		]));
	},

	readForm: function() {
		var flags = {};
		logic.CONFIG_FLAGS.forEach(function(flag) {
			var node = document.getElementById('attendant-' + flag[0]);
			flags[flag[0]] = !!(node && node.checked);
		});
		return {
			url: document.getElementById('attendant-url').value,
			rebuilders: document.getElementById('attendant-rebuilders').value,
			flags: flags
		};
	},

	handleSave: function() {
		var result = logic.configArgs(this.readForm());
		var message = this.messageNode;
		while (message.firstChild)
			message.removeChild(message.firstChild);
		if (result.errors.length) {
			message.appendChild(E('div', { 'class': 'alert-message error' },
				E('ul', {}, result.errors.map(function(e) { return E('li', {}, text.node(e)); }))));
			return Promise.resolve(false);
		}
		var a = result.args;
		return callConfigSet(a.url, a.rebuilders, a.auto_search, a.advanced_mode, a.login_check_for_upgrades,
			a.keep_settings, a.require_signature).catch(logic.rpcFailure).then(L.bind(function(reply) {
			var error = logic.errorOf(reply);
			if (error) {
				message.appendChild(E('div', { 'class': 'alert-message error' }, text.node(error.message)));
				return false;
			}
			this.config = reply;
			message.appendChild(E('div', { 'class': 'alert-message success' }, _('The configuration has been saved.')));
			return true;
		}, this));
	}
});
