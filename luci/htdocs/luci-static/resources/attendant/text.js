'use strict';
'require baseclass';

/*
 * Text from outside the app (the upgrade server, the ImageBuilder's output, package names,
 * error details, the bridge's messages) as DOM text nodes.
 *
 * LuCI's E() and dom.append() set a single string child as innerHTML, so the browser parses it
 * as HTML: `<stdin>` in a build log vanishes into an unknown element, and a package name or
 * server message holding markup would run in the router's admin session. A text node is shown
 * as it is. They also turn every other non-node child (null, undefined, false, a nested array)
 * into its string, so `null` would be printed; here a missing value is an empty text node.
 * See https://github.com/openwrt/luci/blob/openwrt-24.10/modules/luci-base/htdocs/luci-static/resources/luci.js
 * (`dom.append`).
 */

return baseclass.extend({
	/* `value` as one text node; null and undefined give an empty one. */
	node: function(value) {
		return document.createTextNode(value == null ? '' : String(value));
	}
});
