/*
 * luci-stub.js: a small stand-in for LuCI's JavaScript runtime, written for Attendant's tests.
 *
 * It provides the part of LuCI's API that luci-app-attendant uses, with LuCI's semantics, so the
 * app's real view files run unchanged in jsdom (unit tests) and in Chromium (end to end):
 *
 *   globals   E(tag, attrs, children), _(text), N_(n, singular, plural), String.prototype.format
 *   L         L.require(name), L.resolveDefault, L.bind, L.url, L.env, L.Class, L.error
 *   loader    fetches <resource>/<name with . as />.js, reads its leading 'require x [as y]'
 *             statements, evaluates (function(window, document, L, deps...) { source }) and
 *             instantiates the class it returns, as luci.js does
 *   modules   baseclass, view (load → render → mount in #view, footer), rpc (declare → JSON-RPC
 *             2.0 POST to <ubuspath><object>.<method>, `expect`/`reject`), ui (showModal,
 *             hideModal, addNotification, awaitReconnect, createHandlerFn, instantiateView),
 *             poll (add, remove, start, stop, active)
 *
 * It is not LuCI: no form.js/CBI, no uci.js, no themes, no translations (catalogue lookups return
 * the source text). `window.__luciStub` records what a test needs to observe: every rpc
 * declaration and call, every notification and every awaitReconnect. Options come from `window.__luciStubOptions` (set before loading):
 * `resource`, `ubuspath`, `sessionid`, `pollScale` (multiplies poll intervals; tests use < 1).
 */
(function (window) {
	'use strict';

	var document = window.document;
	var options = window.__luciStubOptions || {};
	var record = window.__luciStub = { declarations: [], calls: [], reconnects: [], notifications: [], errors: [] };

	/* ---- String.prototype.format: %s %d %f %h %q %% with width/precision, as LuCI's ---- */

	function escapeHTML(s) {
		return String(s).replace(/&/g, '&#38;').replace(/</g, '&#60;').replace(/>/g, '&#62;')
			.replace(/"/g, '&#34;').replace(/'/g, '&#39;');
	}

	if (!String.prototype.format) {
		Object.defineProperty(String.prototype, 'format', {
			configurable: true,
			writable: true,
			value: function () {
				var args = arguments, i = 0;
				return String(this).replace(/%(%|(-)?(0)?(\d+)?(?:\.(\d+))?([sdfhq]))/g,
					function (m, all, left, zero, width, precision, type) {
						if (all === '%')
							return '%';
						var arg = args[i++], out;
						switch (type) {
						case 'd': out = String(Math.trunc(Number(arg)) || 0); break;
						case 'f': out = (Number(arg) || 0).toFixed(precision != null ? +precision : 6); break;
						case 'h': out = escapeHTML(arg == null ? '' : arg); break;
						case 'q': out = JSON.stringify(String(arg == null ? '' : arg)); break;
						default: out = (arg == null) ? '' : String(arg);
							if (precision != null) out = out.substring(0, +precision);
						}
						if (width && out.length < +width) {
							var pad = (zero && !left) ? '0' : ' ';
							out = left ? out + ' '.repeat(width - out.length) : pad.repeat(width - out.length) + out;
						}
						return out;
					});
			}
		});
	}

	/* ---- Class: LuCI's L.Class subset (extend, super, isSubclass) ---- */

	var Class = Object.assign(function () {}, {
		extend: function (properties) {
			var parent = this;
			var ctor = function () {
				if (typeof this.__init__ === 'function')
					this.__init__.apply(this, arguments);
			};
			ctor.prototype = Object.create(parent.prototype);
			Object.keys(properties || {}).forEach(function (key) {
				Object.defineProperty(ctor.prototype, key, {
					value: properties[key], writable: true, configurable: true, enumerable: true
				});
			});
			ctor.prototype.constructor = ctor;
			ctor.prototype.__base__ = parent.prototype;
			ctor.extend = Class.extend;
			ctor.isSubclass = Class.isSubclass;
			return ctor;
		},
		isSubclass: function (cls) {
			return typeof cls === 'function' && (cls === Class || cls.prototype instanceof Class);
		}
	});
	Class.prototype.super = function (key, args) {
		var proto = Object.getPrototypeOf(Object.getPrototypeOf(this));
		var fn = proto && proto[key];
		return (typeof fn === 'function') ? fn.apply(this, args || []) : fn;
	};

	/* ---- E(), _(), N_() ---- */

	function appendChildren(node, children) {
		if (children == null || children === false)
			return;
		if (Array.isArray(children)) {
			children.forEach(function (child) { appendChildren(node, child); });
		} else if (children instanceof window.Node) {
			node.appendChild(children);
		} else {
			node.appendChild(document.createTextNode(String(children)));
		}
	}

	function E(tag, attrs, children) {
		if (Array.isArray(attrs) || typeof attrs === 'string' || attrs instanceof window.Node) {
			children = attrs;
			attrs = null;
		}
		var node = document.createElement(tag);
		Object.keys(attrs || {}).forEach(function (key) {
			var value = attrs[key];
			if (value == null || value === false)
				return;
			if (typeof value === 'function')
				node.addEventListener(key, value);
			else if (typeof value === 'object')
				node.setAttribute(key, JSON.stringify(value));
			else
				node.setAttribute(key, value === true ? '' : String(value));
		});
		appendChildren(node, children);
		return node;
	}

	function translate(text) { return text; }
	function translatePlural(n, singular, plural) { return (n === 1) ? singular : plural; }

	/* ---- the module system ---- */

	var builtins = {};
	var loading = {};

	var L = {
		Class: Class,
		env: {
			resource: options.resource || '/luci-static/resources',
			ubuspath: options.ubuspath || '/ubus/',
			sessionid: options.sessionid || '00000000000000000000000000000000',
			scriptname: '/cgi-bin/luci',
			requestpath: []
		},
		bind: function (fn, self) {
			var extra = Array.prototype.slice.call(arguments, 2);
			return function () { return fn.apply(self, extra.concat(Array.prototype.slice.call(arguments))); };
		},
		resolveDefault: function (promise, fallback) {
			return Promise.resolve(promise).catch(function () { return fallback; });
		},
		url: function () {
			var parts = Array.prototype.slice.call(arguments).filter(function (p) { return p != null && p !== ''; });
			return L.env.scriptname + '/' + parts.join('/');
		},
		error: function (err) {
			record.errors.push(String(err && err.stack || err));
			var view = document.getElementById('view');
			if (view)
				view.appendChild(E('div', { 'class': 'alert-message error' }, String(err && err.message || err)));
			throw err;
		},
		require: function (name) {
			if (Object.prototype.hasOwnProperty.call(builtins, name))
				return Promise.resolve(builtins[name]);
			if (!loading[name])
				loading[name] = compile(name);
			return loading[name].then(function (cls) { return new cls(); });
		}
	};

	var REQUIRE_LINE = /^'require[ \t]+(\S+)(?:[ \t]+as[ \t]+([a-zA-Z_]\S*))?';?$/;

	function compile(name) {
		var url = L.env.resource + '/' + name.replace(/\./g, '/') + '.js';
		return window.fetch(url).then(function (response) {
			if (!response.ok)
				throw new Error('cannot load `' + url + '`: HTTP ' + response.status);
			return response.text();
		}).then(function (source) {
			var deps = [], names = [];
			var statements = source.split(/\n/);
			for (var i = 0; i < statements.length; i++) {
				var line = statements[i].trim();
				if (line === '' || line.indexOf('//') === 0 || line === "'use strict';")
					continue;
				var m = REQUIRE_LINE.exec(line);
				if (!m)
					break;
				deps.push(m[1]);
				names.push(m[2] || m[1].replace(/.*\./, ''));
			}
			return Promise.all(deps.map(function (dep) { return L.require(dep); })).then(function (instances) {
				var factory = new Function(['window', 'document', 'L'].concat(names).join(','),
					source + '\n//# sourceURL=' + url);
				var cls = factory.apply(null, [window, document, L].concat(instances));
				if (!Class.isSubclass(cls))
					throw new TypeError('`' + url + '` does not return a class');
				return cls;
			});
		});
	}

	/* ---- rpc ---- */

	var rpcId = 1;
	var rpc = {
		declare: function (decl) {
			record.declarations.push(decl);
			var call = function () {
				var args = {};
				var params = decl.params || [];
				for (var i = 0; i < params.length; i++)
					if (arguments[i] !== undefined)
						args[params[i]] = arguments[i];
				var body = { jsonrpc: '2.0', id: rpcId++, method: 'call',
					params: [L.env.sessionid, decl.object, decl.method, args] };
				var entry = { object: decl.object, method: decl.method, args: args };
				record.calls.push(entry);
				return window.fetch(L.env.ubuspath + decl.object + '.' + decl.method, {
					method: 'POST',
					headers: { 'Content-Type': 'application/json' },
					body: JSON.stringify(body)
				}).then(function (response) {
					if (!response.ok)
						throw new Error('RPC call to ' + decl.object + '/' + decl.method + ' failed with HTTP error ' + response.status);
					return response.json();
				}).then(function (msg) {
					if (msg.error)
						throw new Error('RPC call to ' + decl.object + '/' + decl.method + ' failed: ' + msg.error.message);
					var status = Array.isArray(msg.result) ? msg.result[0] : 0;
					var data = Array.isArray(msg.result) ? msg.result[1] : undefined;
					entry.status = status;
					entry.reply = data;
					if (status !== 0) {
						if (decl.reject)
							throw new Error('RPC call to ' + decl.object + '/' + decl.method + ' failed with ubus code ' + status);
						return status;
					}
					if (decl.expect) {
						for (var key in decl.expect) {
							if (key !== '' && data != null && typeof data === 'object')
								data = data[key];
							var fallback = decl.expect[key];
							if (data == null || (fallback != null && typeof data !== typeof fallback)
								|| Array.isArray(fallback) !== Array.isArray(data))
								data = fallback;
							break;
						}
					}
					return data;
				});
			};
			call.declaration = decl;
			return call;
		}
	};

	/* ---- poll ---- */

	var poll = {
		queue: [],
		running: false,
		add: function (fn, interval) {
			if (this.queue.some(function (e) { return e.fn === fn; }))
				return false;
			var entry = { fn: fn, interval: (interval || 5) * 1000 * (options.pollScale || 1), timer: null };
			this.queue.push(entry);
			if (this.running)
				this.schedule(entry);
			return true;
		},
		remove: function (fn) {
			var kept = [];
			this.queue.forEach(function (e) {
				if (e.fn === fn)
					window.clearTimeout(e.timer);
				else
					kept.push(e);
			});
			var removed = kept.length !== this.queue.length;
			this.queue = kept;
			return removed;
		},
		schedule: function (entry) {
			var self = this;
			entry.timer = window.setTimeout(function () {
				if (self.queue.indexOf(entry) < 0 || !self.running)
					return;
				Promise.resolve().then(entry.fn).catch(function (err) {
					record.errors.push(String(err));
				}).then(function () {
					if (self.queue.indexOf(entry) >= 0 && self.running)
						self.schedule(entry);
				});
			}, entry.interval);
		},
		start: function () {
			if (this.running)
				return false;
			this.running = true;
			this.queue.forEach(this.schedule, this);
			return true;
		},
		stop: function () {
			if (!this.running)
				return false;
			this.running = false;
			this.queue.forEach(function (e) { window.clearTimeout(e.timer); });
			return true;
		},
		active: function () { return this.running; }
	};

	/* ---- ui ---- */

	function overlay() {
		var node = document.getElementById('modal_overlay');
		if (!node) {
			node = E('div', { id: 'modal_overlay' }, E('div', { 'class': 'modal', role: 'dialog', 'aria-modal': 'true' }));
			document.body.appendChild(node);
		}
		return node;
	}

	var ui = {
		showModal: function (title, children) {
			var box = overlay();
			var dlg = box.firstChild;
			dlg.textContent = '';
			if (title != null)
				dlg.appendChild(E('h4', {}, title));
			appendChildren(dlg, children);
			document.body.classList.add('modal-overlay-active');
			return dlg;
		},
		hideModal: function () {
			document.body.classList.remove('modal-overlay-active');
			var box = document.getElementById('modal_overlay');
			if (box)
				box.firstChild.textContent = '';
		},
		addNotification: function (title, children) {
			var area = document.getElementById('tabmenu') || document.getElementById('view');
			var classes = Array.prototype.slice.call(arguments, 2);
			var node = E('div', { 'class': 'alert-message fade-in ' + classes.join(' ') }, [
				title != null ? E('h4', {}, title) : null, children
			]);
			record.notifications.push(node);
			if (area && area.parentNode)
				area.parentNode.insertBefore(node, area);
			else
				document.body.appendChild(node);
			return node;
		},
		awaitReconnect: function () {
			var hosts = Array.prototype.slice.call(arguments);
			record.reconnects.push(hosts);
			ui.showModal(translate('Waiting for device...'), [
				E('p', { 'class': 'spinning' }, translate('Device unreachable! Still waiting for device...'))
			]);
		},
		createHandlerFn: function (ctx, fn) {
			var extra = Array.prototype.slice.call(arguments, 2);
			if (typeof fn === 'string')
				fn = ctx[fn];
			return function (ev) {
				var button = ev && ev.currentTarget;
				if (button && button.classList)
					button.classList.add('spinning');
				if (button)
					button.disabled = true;
				return Promise.resolve(fn.apply(ctx, extra.concat([ev]))).finally(function () {
					if (button && button.classList)
						button.classList.remove('spinning');
					if (button)
						button.disabled = false;
				});
			};
		},
		instantiateView: function (path) {
			return L.require('view.' + path.replace(/\//g, '.'));
		}
	};

	/* ---- view ---- */

	var view = Class.extend({
		__init__: function () {
			var root = document.getElementById('view');
			if (root)
				root.textContent = '';
			var self = this;
			this.ready = Promise.resolve(this.load()).then(function (data) {
				return self.render(data);
			}).then(function (nodes) {
				var target = document.getElementById('view');
				if (target) {
					target.textContent = '';
					appendChildren(target, nodes);
					appendChildren(target, self.addFooter());
				}
				return nodes;
			}).catch(L.error);
		},
		load: function () {},
		render: function () {},
		handleSave: function () {},
		handleSaveApply: function () {},
		handleReset: function () {},
		addFooter: function () {
			var buttons = [];
			if (this.handleSaveApply)
				buttons.push(E('button', { 'class': 'cbi-button cbi-button-apply',
					click: ui.createHandlerFn(this, 'handleSaveApply') }, translate('Save & Apply')));
			if (this.handleSave)
				buttons.push(E('button', { 'class': 'cbi-button cbi-button-save',
					click: ui.createHandlerFn(this, 'handleSave') }, translate('Save')));
			if (this.handleReset)
				buttons.push(E('button', { 'class': 'cbi-button cbi-button-reset',
					click: ui.createHandlerFn(this, 'handleReset') }, translate('Reset')));
			return buttons.length ? E('div', { 'class': 'cbi-page-actions' }, buttons) : null;
		}
	});

	builtins.baseclass = Class;
	builtins.view = view;
	builtins.rpc = rpc;
	builtins.ui = ui;
	builtins.poll = poll;

	window.L = L;
	window.E = E;
	window._ = translate;
	window.N_ = translatePlural;
})(typeof window !== 'undefined' ? window : globalThis);
