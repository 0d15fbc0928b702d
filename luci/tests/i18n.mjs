// Extracts every translatable string of luci-app-attendant (the `_('...')` calls of the JS
// files and the menu titles) into po/templates/attendant.pot, in the gettext template format
// LuCI's i18n-scan writes. `node tests/i18n.mjs` rewrites the template; `node tests/i18n.mjs
// --check` exits 1 when the committed template is out of date (the unit tests do the same).

import { readFileSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const POT = join(ROOT, 'po/templates/attendant.pot');

function files(dir, suffix) {
	return readdirSync(dir).flatMap((name) => {
		const path = join(dir, name);
		if (statSync(path).isDirectory())
			return files(path, suffix);
		return path.endsWith(suffix) ? [path] : [];
	}).sort();
}

function unescapeJs(text) {
	return text.replace(/\\(.)/g, (m, c) => ({ n: '\n', t: '\t' }[c] ?? c));
}

/** Every translatable string with the places it comes from: Map(msgid → [file:line]). */
export function extract() {
	const found = new Map();
	const add = (msgid, where) => {
		if (!found.has(msgid))
			found.set(msgid, []);
		found.get(msgid).push(where);
	};
	for (const path of files(join(ROOT, 'htdocs'), '.js')) {
		const source = readFileSync(path, 'utf8');
		const call = /\b_\(\s*(?:'((?:[^'\\\n]|\\.)*)'|"((?:[^"\\\n]|\\.)*)")\s*\)/g;
		for (const m of source.matchAll(call)) {
			const line = source.slice(0, m.index).split('\n').length;
			add(unescapeJs(m[1] ?? m[2]), `${relative(ROOT, path)}:${line}`);
		}
	}
	for (const path of files(join(ROOT, 'root/usr/share/luci/menu.d'), '.json')) {
		const menu = JSON.parse(readFileSync(path, 'utf8'));
		for (const entry of Object.values(menu))
			if (entry.title)
				add(entry.title, relative(ROOT, path));
	}
	return found;
}

function quote(text) {
	return '"' + text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') + '"';
}

/** The template text for `strings`, sorted by msgid so it is stable. */
export function render(strings) {
	let out = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n';
	for (const msgid of [...strings.keys()].sort()) {
		out += '\n';
		for (const where of strings.get(msgid))
			out += `#: ${where}\n`;
		out += `msgid ${quote(msgid)}\nmsgstr ""\n`;
	}
	return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
	const text = render(extract());
	if (process.argv.includes('--check')) {
		const current = readFileSync(POT, 'utf8');
		if (current !== text) {
			console.error('po/templates/attendant.pot is out of date; run: node tests/i18n.mjs');
			process.exit(1);
		}
	} else {
		writeFileSync(POT, text);
		console.log(`wrote ${relative(process.cwd(), POT)}: ${extract().size} strings`);
	}
}
