/*
 * luci-stub.js: a stand-in for LuCI's JavaScript runtime (branch openwrt-24.10), written for
 * Attendant's tests, so the app's real view files run unchanged in jsdom (unit tests) and in
 * Chromium (end to end).
 *
 * Everything the app uses follows the real code's rules, as read from
 * https://github.com/openwrt/luci/tree/openwrt-24.10/modules/luci-base/htdocs/luci-static/resources
 * (luci.js, cbi.js, rpc.js, ui.js) and checked by tests/unit/stub.test.mjs, one test per rule:
 *
 *   globals   E() = dom.create, _(), N_(), String.prototype.format, String.format
 *   L         require (one shared instance per module, `as`-less names with . → _), bind,
 *             resolveDefault, url, raise, error, hasViewPermission, env, dom, Poll, Class
 *   modules   baseclass, view (spinner, load → render → dom.content, footer), dom, poll,
 *             rpc (declare: batching, expect, filter, reject, RPCError, session expiry),
 *             ui (showModal, hideModal, addNotification, createHandlerFn, awaitReconnect,
 *             instantiateView)
 *
 * What it leaves out or does differently, and why that is harmless for the app, is listed in
 * tests/README.md. `window.__luciStub` records what a test observes: rpc declarations and calls,
 * notifications, awaitReconnect hosts, errors, the promise of each view's mounting (`views`)
 * and of each handler run by a button (`handlers`). Options come from
 * `window.__luciStubOptions` (set before loading): `resource`, `ubuspath`, `sessionid`,
 * `pollScale` (length of the poll ticker's second; tests use < 1), `readonly` (the view's menu
 * node is read-only).
 */
(function (window) {
	'use strict';

	var document = window.document;
	var options = window.__luciStubOptions || {};
	var record = window.__luciStub = {
		declarations: [], calls: [], reconnects: [], notifications: [], errors: [], views: [], handlers: []
	};

	/* ---- String.prototype.format, as cbi.js ---- */

	var HTML_ESCAPES = [ /&/g, '&#38;', /"/g, '&#34;', /'/g, '&#39;', /</g, '&#60;', />/g, '&#62;' ];
	var QUOTE_ESCAPES = [ /"/g, '&#34;', /'/g, '&#39;' ];

	function escape(s, table) {
		var t = typeof s;
		if (s == null || t === 'object' || t === 'function')
			return '';
		s = String(s);
		for (var i = 0; i < table.length; i += 2)
			s = s.replace(table[i], table[i + 1]);
		return s;
	}

	function format() {
		var str = String(this), out = '', args = arguments, used = 0, a, subst;
		var re = /^(([^%]*)%('.|0|\x20)?(-)?(\d+)?(\.\d+)?(%|b|c|d|u|f|o|s|x|X|q|h|j|t|m))/;
		while ((a = re.exec(str)) != null) {
			var leftpart = a[2], pPad = a[3], pJustify = a[4], pMinLength = a[5], pPrecision = a[6], pType = a[7];
			var pad = ' ';
			if (pType === '%') {
				subst = '%';
			} else if (used < args.length) {
				// With fewer arguments than conversions, `subst` keeps the previous value: LuCI
				// repeats it (and prints `undefined` when there was none).
				var param = args[used++];
				// LuCI reads the pad character of `'c` from the text before the %, not from the
				// flag; kept as it is.
				if (pPad && pPad.charAt(0) === "'")
					pad = leftpart.substr(1, 1);
				else if (pPad)
					pad = pPad;
				var precision = (pPrecision && pType === 'f') ? +pPrecision.substring(1) : -1;
				switch (pType) {
				case 'b': subst = Math.floor(+param || 0).toString(2); break;
				case 'c': subst = String.fromCharCode(+param || 0); break;
				case 'd': subst = Math.floor(+param || 0).toFixed(0); break;
				case 'u':
					var n = +param || 0;
					subst = Math.floor((n < 0) ? 0x100000000 + n : n).toFixed(0);
					break;
				case 'f': subst = (precision > -1) ? (+param || 0).toFixed(precision) : (+param || 0); break;
				case 'o': subst = Math.floor(+param || 0).toString(8); break;
				case 's': subst = param; break;
				case 'x': subst = Math.floor(+param || 0).toString(16).toLowerCase(); break;
				case 'X': subst = Math.floor(+param || 0).toString(16).toUpperCase(); break;
				case 'h': subst = escape(param, HTML_ESCAPES); break;
				case 'q': subst = escape(param, QUOTE_ESCAPES); break;
				case 't':
					var td = 0, th = 0, tm = 0, ts = (param || 0);
					if (ts > 59) { tm = Math.floor(ts / 60); ts = ts % 60; }
					if (tm > 59) { th = Math.floor(tm / 60); tm = tm % 60; }
					if (th > 23) { td = Math.floor(th / 24); th = th % 24; }
					subst = (td > 0) ? String.format('%dd %dh %dm %ds', td, th, tm, ts) : String.format('%dh %dm %ds', th, tm, ts);
					break;
				case 'm':
					var mf = pMinLength ? +pMinLength : 1000;
					var pr = pPrecision ? ~~(10 * +('0' + pPrecision)) : 2;
					var val = +param || 0, units = [ ' ', ' K', ' M', ' G', ' T', ' P', ' E' ], i;
					for (i = 0; i < units.length && val > mf; i++)
						val /= mf;
					subst = i ? val.toFixed(pr) + units[i] + (mf === 1024 ? 'i' : '') : val + ' ';
					pMinLength = null;
					break;
				}
			}
			if (pMinLength) {
				subst = String(subst);
				for (var k = subst.length; k < pMinLength; k++)
					subst = (pJustify === '-') ? subst + ' ' : pad + subst;
			}
			out += leftpart + subst;
			str = str.substr(a[1].length);
		}
		return out + str;
	}

	Object.defineProperty(String.prototype, 'format', { configurable: true, writable: true, value: format });
	String.format = function (fmt) {
		return format.apply(String(fmt), Array.prototype.slice.call(arguments, 1));
	};

	/* ---- Class: extend, singleton, instantiate, isSubclass, super, varargs (luci.js) ---- */

	var classIndex = 0;
	var superContext = {};

	var Class = Object.assign(function () {}, {
		extend: function (properties) {
			var props = {
				__id__: { value: classIndex },
				__base__: { value: this.prototype },
				__name__: { value: properties.__name__ || 'anonymous' + classIndex++ }
			};
			var ClassConstructor = function () {
				if (!(this instanceof ClassConstructor))
					throw new TypeError('Constructor must not be called without "new"');
				if (Object.getPrototypeOf(this).hasOwnProperty('__init__')) {
					if (typeof this.__init__ === 'function')
						this.__init__.apply(this, arguments);
				} else {
					this.super('__init__', arguments);
				}
			};
			for (var key in properties)
				if (!props[key] && Object.prototype.hasOwnProperty.call(properties, key))
					props[key] = { value: properties[key], writable: true };
			ClassConstructor.prototype = Object.create(this.prototype, props);
			Object.defineProperty(ClassConstructor.prototype, 'constructor', { value: ClassConstructor, writable: true });
			Object.assign(ClassConstructor, this);
			return ClassConstructor;
		},
		singleton: function (properties) {
			return Class.extend(properties).instantiate(Class.prototype.varargs(arguments, 1));
		},
		instantiate: function (args) {
			return new (Function.prototype.bind.apply(this, Class.prototype.varargs(args, 0, null)))();
		},
		isSubclass: function (classValue) {
			return classValue != null && typeof classValue === 'function' && classValue.prototype instanceof this;
		}
	});
	Class.prototype.varargs = function (args, offset) {
		return Array.prototype.slice.call(arguments, 2).concat(Array.prototype.slice.call(args, offset));
	};
	Class.prototype.super = function (key, callArgs) {
		if (key == null)
			return null;
		var slot = this.__id__ + '.' + key, stack = superContext[slot], proto;
		for (proto = Object.getPrototypeOf(stack ? stack[0] : Object.getPrototypeOf(this));
			proto != null && !Object.prototype.hasOwnProperty.call(proto, key);
			proto = Object.getPrototypeOf(proto)) {}
		if (proto == null)
			return null;
		var res = proto[key];
		if (arguments.length > 1) {
			if (typeof res !== 'function')
				throw new ReferenceError(key + ' is not a function in base class');
			if (typeof callArgs !== 'object')
				callArgs = this.varargs(arguments, 1);
			if (stack)
				stack.unshift(proto);
			else
				superContext[slot] = [ proto ];
			try {
				res = res.apply(this, callArgs);
			} finally {
				superContext[slot].shift();
				if (!superContext[slot].length)
					delete superContext[slot];
			}
		}
		return res;
	};

	/* ---- dom and E() (luci.js LuCI.dom) ---- */

	var dom = Class.singleton({
		__name__: 'LuCI.dom',
		registry: {},

		elem: function (e) {
			return e != null && typeof e === 'object' && 'nodeType' in e;
		},

		parse: function (s) {
			try {
				return new window.DOMParser().parseFromString(s, 'text/html').body.firstChild;
			} catch (e) {
				return null;
			}
		},

		/* An array is taken one level deep: its nodes are appended and every other item becomes
		 * a text node of its string (the null test is on the array, not the items); a function
		 * is called with the node; anything else that is not null is set as innerHTML. */
		append: function (node, children) {
			if (!this.elem(node))
				return null;
			if (Array.isArray(children)) {
				for (var i = 0; i < children.length; i++)
					if (this.elem(children[i]))
						node.appendChild(children[i]);
					else if (children !== null && children !== undefined)
						node.appendChild(document.createTextNode('' + children[i]));
				return node.lastChild;
			} else if (typeof children === 'function') {
				return this.append(node, children(node));
			} else if (this.elem(children)) {
				return node.appendChild(children);
			} else if (children !== null && children !== undefined) {
				node.innerHTML = '' + children;
				return node.lastChild;
			}
			return null;
		},

		content: function (node, children) {
			if (!this.elem(node))
				return null;
			var refs = node.querySelectorAll('[data-idref]');
			for (var i = 0; i < refs.length; i++)
				delete this.registry[refs[i].getAttribute('data-idref')];
			while (node.firstChild)
				node.removeChild(node.firstChild);
			return this.append(node, children);
		},

		/* null and undefined are skipped; a function is an event listener; an object or array
		 * is stored as JSON; anything else as its string, so `false` sets "false". */
		attr: function (node, key, val) {
			if (!this.elem(node))
				return null;
			var attr = null;
			if (typeof key === 'object' && key !== null) {
				attr = key;
			} else if (typeof key === 'string') {
				attr = {};
				attr[key] = val;
			}
			for (key in attr) {
				if (!Object.prototype.hasOwnProperty.call(attr, key) || attr[key] == null)
					continue;
				switch (typeof attr[key]) {
				case 'function': node.addEventListener(key, attr[key]); break;
				case 'object': node.setAttribute(key, JSON.stringify(attr[key])); break;
				default: node.setAttribute(key, attr[key]);
				}
			}
		},

		/* The second argument is the attribute map only when it is an object and not an array;
		 * otherwise it is the children and the third argument is ignored. */
		create: function () {
			var html = arguments[0], attr = arguments[1], data = arguments[2], elem;
			if (!(attr instanceof Object) || Array.isArray(attr)) {
				data = attr;
				attr = null;
			}
			if (Array.isArray(html)) {
				elem = document.createDocumentFragment();
				for (var i = 0; i < html.length; i++)
					elem.appendChild(this.create(html[i]));
			} else if (this.elem(html)) {
				elem = html;
			} else if (html.charCodeAt(0) === 60) {
				elem = this.parse(html);
			} else {
				elem = document.createElement(html);
			}
			if (!elem)
				return null;
			this.attr(elem, attr);
			this.append(elem, data);
			return elem;
		},

		parent: function (node, selector) {
			return (this.elem(node) && node.closest) ? node.closest(selector) : null;
		},

		isEmpty: function (node, ignoreFn) {
			for (var child = node.firstElementChild; child != null; child = child.nextElementSibling)
				if (!child.classList.contains('hidden') && (!ignoreFn || !ignoreFn(child)))
					return false;
			return true;
		}
	});

	function E() {
		return dom.create.apply(dom, arguments);
	}

	/* No catalogue is loaded, and LuCI returns the source text unchanged for an untranslated
	 * string. */
	function translate(text) { return text; }
	function translatePlural(n, singular, plural) { return (n != 1) ? plural : singular; }

	/* ---- L ---- */

	var classes = {};

	var L = {
		Class: Class,
		dom: dom,
		env: {
			resource: options.resource || '/luci-static/resources',
			ubuspath: options.ubuspath || '/ubus/',
			sessionid: options.sessionid || '00000000000000000000000000000000',
			scriptname: '/cgi-bin/luci',
			requestpath: [],
			dispatchpath: [],
			pollinterval: 5,
			nodespec: { satisfied: true, readonly: !!options.readonly }
		},
		bind: function (fn, self) {
			return Function.prototype.bind.apply(fn, Class.prototype.varargs(arguments, 2, self));
		},
		resolveDefault: function (value, def) {
			return Promise.resolve(value).catch(function () { return def; });
		},
		url: function () {
			var url = [ L.env.scriptname ];
			for (var i = 0; i < arguments.length; i++)
				if (/^(?:[a-zA-Z0-9_.%,;-]+\/)*[a-zA-Z0-9_.%,;-]+$/.test(arguments[i]))
					url.push('/', arguments[i]);
			if (url.length === 1)
				url.push('/');
			return url.join('');
		},
		hasViewPermission: function () {
			var spec = L.env.nodespec;
			if (spec == null || !spec.satisfied)
				return null;
			return !spec.readonly;
		},
		isObject: function (val) {
			return val != null && typeof val === 'object';
		},
		/* Builds the error (an Error is kept; a type name gives an Error of that name with the
		 * formatted message), appends the call stack to the message as luci.js does, throws. */
		raise: function (type, fmt) {
			var e, msg = fmt ? format.apply(fmt, Class.prototype.varargs(arguments, 2)) : null, stack = [];
			if (type instanceof Error) {
				e = type;
				if (msg)
					e.message = msg + ': ' + e.message;
			} else {
				try { throw new Error('stacktrace'); } catch (trace) { stack = String(trace.stack || '').split(/\n/).slice(1); }
				e = new (window[type] || Error)(msg || 'Unspecified error');
				e.name = type || 'Error';
				stack = stack.map(function (line) { return '  ' + line.trim(); }).filter(function (line) { return line.length > 2; });
				if (stack.length)
					e.message += '\n' + stack.join('\n');
			}
			throw e;
		},
		/* Shows an error once (a notification titled with its name, the message in <pre>) and
		 * throws it again. */
		error: function (type, fmt) {
			try {
				L.raise.apply(L, Array.prototype.slice.call(arguments));
			} catch (e) {
				if (!e.reported) {
					record.errors.push(String(e && e.stack || e));
					ui.addNotification(e.name || translate('Runtime error'), E('pre', {}, e.message), 'danger');
					e.reported = true;
				}
				throw e;
			}
		},
		require: function (name) {
			if (Object.prototype.hasOwnProperty.call(classes, name))
				return Promise.resolve(classes[name]);
			classes[name] = load(name).then(function (instance) {
				classes[name] = instance;
				var parts = name.split('.'), parent = L;
				for (var i = 0; parent && i < parts.length - 1; i++)
					parent = parent[parts[i]];
				if (parent)
					parent[parts[parts.length - 1]] = instance;
				return instance;
			});
			return classes[name];
		}
	};

	/* The 'require x [as y]' directives: string literals at the top of the file (comments and
	 * 'use strict' allowed); the first other token ends them. */
	function directives(source) {
		var deps = [], names = [], pos = 0;
		var token = /^\s*(?:\/\/[^\n]*|\/\*[\s\S]*?\*\/|'([^'\\\n]*)'\s*;?|"([^"\\\n]*)"\s*;?)/;
		for (;;) {
			var m = token.exec(source.substring(pos));
			if (!m)
				break;
			pos += m[0].length;
			var literal = m[1] != null ? m[1] : m[2];
			if (literal == null || literal === 'use strict')
				continue;
			var req = /^require[ \t]+(\S+)(?:[ \t]+as[ \t]+([a-zA-Z_]\S*))?$/.exec(literal);
			if (!req)
				break;
			deps.push(req[1]);
			names.push(req[2] || req[1].replace(/[^a-zA-Z0-9_]/g, '_'));
		}
		return { deps: deps, names: names };
	}

	function load(name) {
		var url = L.env.resource + '/' + name.replace(/\./g, '/') + '.js';
		return window.fetch(url).then(function (response) {
			if (!response.ok)
				L.raise('NetworkError', 'HTTP error %d while loading class file "%s"', response.status, url);
			return response.text();
		}).then(function (source) {
			var found = directives(source);
			return Promise.all(found.deps.map(function (dep) { return L.require(dep); })).then(function (instances) {
				var factory = new Function([ 'window', 'document', 'L' ].concat(found.names).join(','),
					source + '\n//# sourceURL=' + url);
				var cls = factory.apply(null, [ window, document, L ].concat(instances));
				if (!Class.isSubclass(cls))
					throw new TypeError('"' + name + '" factory yields invalid constructor');
				return new cls();
			});
		});
	}

	/* ---- poll (luci.js LuCI.poll): one ticker, entries run when tick % interval == 0 ---- */

	var SECOND = 1000 * (options.pollScale || 1);

	var poll = Class.singleton({
		__name__: 'LuCI.poll',
		queue: [],

		add: function (fn, interval) {
			if (interval == null || interval <= 0)
				interval = L.env.pollinterval || null;
			if (isNaN(interval) || typeof fn !== 'function')
				throw new TypeError('Invalid argument to LuCI.poll.add()');
			for (var i = 0; i < this.queue.length; i++)
				if (this.queue[i].fn === fn)
					return false;
			this.queue.push({ r: true, i: interval >>> 0, fn: fn });
			if (this.tick != null && !this.active())
				this.start();
			return true;
		},

		remove: function (fn) {
			if (typeof fn !== 'function')
				throw new TypeError('Invalid argument to LuCI.poll.remove()');
			var len = this.queue.length;
			for (var i = len; i > 0; i--)
				if (this.queue[i - 1].fn === fn)
					this.queue.splice(i - 1, 1);
			if (!this.queue.length && this.stop())
				this.tick = 0;
			return this.queue.length !== len;
		},

		start: function () {
			if (this.active())
				return false;
			this.tick = 0;
			if (this.queue.length) {
				this.timer = window.setInterval(this.step, SECOND);
				this.step();
				document.dispatchEvent(new window.CustomEvent('poll-start'));
			}
			return true;
		},

		stop: function () {
			if (!this.active())
				return false;
			document.dispatchEvent(new window.CustomEvent('poll-stop'));
			window.clearInterval(this.timer);
			delete this.timer;
			delete this.tick;
			return true;
		},

		/* A synchronous throw escapes: that entry keeps r = false and never runs again, and
		 * the entries after it miss this tick. A rejection does not stop the entry; LuCI leaves
		 * it unhandled (a console error), the stand-in records it in `errors`. */
		step: function () {
			for (var i = 0, e = null; (e = poll.queue[i]) != null; i++) {
				if ((poll.tick % e.i) !== 0)
					continue;
				if (!e.r)
					continue;
				e.r = false;
				Promise.resolve(e.fn()).finally((function () { this.r = true; }).bind(e)).catch(function (err) {
					record.errors.push('unhandled rejection of a poll function: ' + String(err && err.stack || err));
				});
			}
			poll.tick = (poll.tick + 1) % Math.pow(2, 32);
		},

		active: function () {
			return this.timer != null;
		}
	});

	/* ---- ui (ui.js) ---- */

	var modalDiv = null;

	function overlay() {
		if (!modalDiv) {
			modalDiv = document.body.appendChild(E('div', { id: 'modal_overlay', tabindex: -1 }, [
				E('div', { 'class': 'modal', role: 'dialog', 'aria-modal': true })
			]));
		}
		return modalDiv;
	}

	var ui = Class.singleton({
		__name__: 'LuCI.ui',

		/* Always an h4 (empty for a null title), then the children by dom.append's rules. */
		showModal: function (title, children) {
			var box = overlay(), dlg = box.firstElementChild;
			dlg.setAttribute('class', 'modal');
			for (var i = 2; i < arguments.length; i++)
				dlg.classList.add(arguments[i]);
			dom.content(dlg, dom.create('h4', {}, title));
			dom.append(dlg, children);
			document.body.classList.add('modal-overlay-active');
			box.scrollTop = 0;
			box.focus();
			return dlg;
		},

		/* The content stays in the DOM until the next showModal. */
		hideModal: function () {
			document.body.classList.remove('modal-overlay-active');
			if (modalDiv)
				modalDiv.blur();
		},

		/* 24.10: (title, children, timeout, ...classes); a timeout that is not a positive number
		 * is ignored, classes start at the fourth argument. */
		addNotification: function (title, children, timeout) {
			var mc = document.querySelector('#maincontent') || document.body;
			var msg = E('div', { 'class': 'alert-message fade-in', style: 'display:flex' }, [
				E('div', { style: 'flex:10' }),
				E('div', { style: 'flex:1 1 auto; display:flex' }, [
					E('button', {
						'class': 'btn',
						style: 'margin-left:auto; margin-top:auto',
						click: function (ev) {
							var banner = dom.parent(ev.target, '.alert-message');
							if (banner && banner.parentNode)
								banner.parentNode.removeChild(banner);
						}
					}, [ translate('Dismiss') ])
				])
			]);
			if (title != null)
				dom.append(msg.firstChild, E('h4', {}, title));
			dom.append(msg.firstChild, children);
			for (var i = 3; i < arguments.length; i++)
				msg.classList.add(arguments[i]);
			mc.insertBefore(msg, mc.firstElementChild);
			record.notifications.push(msg);
			if (typeof timeout === 'number' && timeout > 0)
				window.setTimeout(function () {
					if (msg.parentNode)
						msg.parentNode.removeChild(msg);
				}, timeout);
			return msg;
		},

		/* Records the hosts; shows nothing, as LuCI's own waits silently. */
		awaitReconnect: function () {
			record.reconnects.push(Array.prototype.slice.call(arguments));
		},

		/* null unless fn (or ctx[fn]) is a function; the handler needs the event after the
		 * extra arguments, returns undefined, and a synchronous throw leaves the button
		 * spinning and disabled. */
		createHandlerFn: function (ctx, fn) {
			if (typeof fn === 'string')
				fn = ctx[fn];
			if (typeof fn !== 'function')
				return null;
			var offset = arguments.length - 2;
			return Function.prototype.bind.apply(function () {
				var t = arguments[offset].currentTarget;
				t.classList.add('spinning');
				t.disabled = true;
				if (t.blur)
					t.blur();
				record.handlers.push(Promise.resolve(fn.apply(ctx, arguments)).finally(function () {
					t.classList.remove('spinning');
					t.disabled = false;
				}).catch(function (err) {
					record.errors.push(String(err && err.stack || err));
				}));
			}, Class.prototype.varargs(arguments, 2, ctx));
		},

		instantiateView: function (path) {
			var className = 'view.%s'.format(path.replace(/\//g, '.'));
			return L.require(className).then(function (instance) {
				if (!(instance instanceof View))
					throw new TypeError('Loaded class %s is not a descendant of View'.format(className));
				return instance;
			}).catch(function (err) {
				dom.content(document.querySelector('#view'), null);
				L.error(err);
			});
		}
	});

	/* ---- view (luci.js LuCI.view) ---- */

	var View = Class.extend({
		__name__: 'LuCI.view',

		__init__: function () {
			var vp = document.getElementById('view');
			dom.content(vp, E('div', { 'class': 'spinning' }, translate('Loading view…')));
			record.views.push(Promise.resolve(this.load())
				.then(L.bind(this.render, this))
				.then(L.bind(function (nodes) {
					var target = document.getElementById('view');
					dom.content(target, nodes);
					dom.append(target, this.addFooter());
				}, this)).catch(L.error));
		},

		load: function () {},
		render: function () {},
		handleSave: function () {},
		handleSaveApply: function () {},
		handleReset: function () {},

		/* Without forms the footer is read-only when the menu node is; a null handler leaves
		 * '' in its place, and three null handlers give an empty fragment. */
		addFooter: function () {
			var footer = E([]);
			var readonly = !L.hasViewPermission();
			var saveApply = this.handleSaveApply
				? E('div', { 'class': 'cbi-dropdown btn cbi-button cbi-button-apply important', disabled: readonly ? '' : null,
					click: ui.createHandlerFn(this, 'handleSaveApply', '0') }, [ translate('Save & Apply') ])
				: E([]);
			if (this.handleSaveApply || this.handleSave || this.handleReset) {
				footer.appendChild(E('div', { 'class': 'cbi-page-actions' }, [
					saveApply, ' ',
					this.handleSave ? E('button', { 'class': 'cbi-button cbi-button-save',
						click: ui.createHandlerFn(this, 'handleSave'), disabled: readonly || null }, [ translate('Save') ]) : '',
					' ',
					this.handleReset ? E('button', { 'class': 'cbi-button cbi-button-reset',
						click: ui.createHandlerFn(this, 'handleReset'), disabled: readonly || null }, [ translate('Reset') ]) : ''
				]));
			}
			return footer;
		}
	});

	/* ---- rpc (rpc.js) ---- */

	var STATUS_TEXT = [ 'Command OK', 'Invalid command', 'Invalid argument', 'Method not found',
		'Resource not found', 'No data received', 'Permission denied', 'Request timeout',
		'Not supported', 'Unspecified error', 'Connection lost' ];

	var rpcId = 1;
	var batch = null;
	var interceptors = [];

	/* Calls made before the next animation frame go out as one POST of a JSON array; replies
	 * are matched by position. */
	function enqueue(msg) {
		return new Promise(function (resolve, reject) {
			if (!batch) {
				batch = [];
				(window.requestAnimationFrame || function (fn) { return window.setTimeout(fn, 16); })(flush);
			}
			batch.push({ msg: msg, resolve: resolve, reject: reject });
		});
	}

	function flush() {
		var queued = batch;
		batch = null;
		window.fetch(L.env.ubuspath + '?' + Date.now(), {
			method: 'POST',
			headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify(queued.map(function (q) { return q.msg; }))
		}).then(function (response) {
			return response.ok ? response.json() : null;
		}).then(function (replies) {
			queued.forEach(function (q, i) {
				if (Array.isArray(replies) && replies[i] != null)
					q.resolve(replies[i]);
				else
					q.reject(new Error('No related RPC reply'));
			});
		}, function () {
			queued.forEach(function (q) { q.reject(new Error('XHR request aborted by browser')); });
		});
	}

	function post(msg) {
		return window.fetch(L.env.ubuspath + '?' + Date.now(), {
			method: 'POST',
			headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify(msg)
		}).then(function (response) {
			if (!response.ok)
				L.raise('RPCError', 'RPC call to %s/%s failed with HTTP error %d: %s',
					msg.params[1], msg.params[2], response.status, response.statusText || '?');
			return response.json();
		});
	}

	function handleCallReply(req, msg) {
		var type = Object.prototype.toString;
		if (msg == null || typeof msg !== 'object' || msg.jsonrpc !== '2.0')
			L.raise('RPCError', 'RPC call to %s/%s returned invalid message frame', req.object, req.method);
		if (msg.error && msg.error.code && msg.error.message)
			L.raise('RPCError', 'RPC call to %s/%s failed with error %d: %s', req.object, req.method, msg.error.code, msg.error.message || '?');
		var ret;
		if (Array.isArray(msg.result)) {
			if (req.raise && msg.result[0] !== 0)
				L.raise('RPCError', 'RPC call to %s/%s failed with ubus code %d: %s', req.object, req.method,
					msg.result[0], STATUS_TEXT[msg.result[0]] || 'Unknown error');
			ret = (msg.result.length > 1) ? msg.result[1] : msg.result[0];
		} else {
			ret = msg.result;
		}
		if (req.expect) {
			for (var key in req.expect) {
				if (ret != null && key !== '')
					ret = ret[key];
				if (ret == null || type.call(ret) !== type.call(req.expect[key]))
					ret = req.expect[key];
				break;
			}
		}
		if (typeof req.filter === 'function') {
			req.priv[0] = ret;
			req.priv[1] = req.params;
			ret = req.filter.apply(rpc, req.priv);
		}
		return ret;
	}

	var rpc = Class.singleton({
		__name__: 'LuCI.rpc',

		declare: function (decl) {
			record.declarations.push(decl);
			return caller(decl);
		},

		addInterceptor: function (fn) {
			if (typeof fn === 'function')
				interceptors.push(fn);
			return fn;
		}
	});

	/* One declared call: params by position, the rest private to `filter`. */
	function caller(decl) {
		return function () {
			var params = {}, priv = [ undefined, undefined ];
			if (Array.isArray(decl.params))
				for (var i = 0; i < decl.params.length; i++)
					params[decl.params[i]] = arguments[i];
			for (var j = Array.isArray(decl.params) ? decl.params.length : 0; j < arguments.length; j++)
				priv.push(arguments[j]);
			var req = { object: decl.object, method: decl.method, params: params, expect: decl.expect,
				filter: decl.filter, raise: decl.reject, priv: priv };
			var msg = { jsonrpc: '2.0', id: rpcId++, method: 'call',
				params: [ L.env.sessionid, decl.object, decl.method, params ] };
			var entry = { object: decl.object, method: decl.method, args: JSON.parse(JSON.stringify(params)) };
			record.calls.push(entry);
			return (decl.nobatch ? post(msg) : enqueue(msg)).then(function (reply) {
				entry.reply = reply;
				return Promise.all(interceptors.map(function (fn) { return fn(reply, req); })).then(function () {
					return handleCallReply(req, reply);
				});
			});
		};
	}

	/* Access denied (-32002) may mean the session is gone: ask session.access; when that fails
	 * too, stop polling, say so in a modal and reject with SessionError. */
	var callSessionAccess = caller({ object: 'session', method: 'access',
		params: [ 'scope', 'object', 'function' ], expect: { access: true } });

	rpc.addInterceptor(function (msg, req) {
		if (!L.isObject(msg) || !L.isObject(msg.error) || msg.error.code !== -32002)
			return;
		if (!L.isObject(req) || (req.object === 'session' && req.method === 'access'))
			return;
		return callSessionAccess('uci', 'luci', 'read').catch(notifySessionExpiry);
	});

	function notifySessionExpiry() {
		poll.stop();
		ui.showModal(translate('Session expired'), [
			E('div', { 'class': 'alert-message warning' },
				translate('A new login is required since the authentication session expired.')),
			E('div', { 'class': 'right' },
				E('div', { 'class': 'btn primary', click: function () { window.location.reload(); } }, translate('Log in…')))
		]);
		L.raise('SessionError', 'Login session is expired');
	}

	/* After boot the poll loop is armed but idle, so the first poll.add starts it. */
	poll.start();

	classes.baseclass = Class;
	classes.view = View;
	classes.dom = dom;
	classes.poll = poll;
	classes.rpc = rpc;
	classes.ui = ui;
	L.view = View;
	L.Poll = poll;
	L.rpc = rpc;
	L.ui = ui;

	window.L = L;
	window.E = E;
	window._ = translate;
	window.N_ = translatePlural;
})(typeof window !== 'undefined' ? window : globalThis);
