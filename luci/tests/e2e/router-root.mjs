// A fake router root for the end-to-end run, built from the demo server's fixture mirror: an
// OpenWrt 24.10.4 TP-Link Archer C7 v5 with the default packages of its profile (the release's
// `.manifest`) plus `tmux` and `htop`, in the shape the agent reads (agent/src/facts.rs: opkg's
// status database, the board and release files; the same layout as tests/src/router.rs writes), its
// configuration pointing at the demo server, the demo server's usign key trusted, and a
// recording `sysupgrade` in `bin/` that the harness puts first on PATH.

import { mkdirSync, readFileSync, writeFileSync, chmodSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';

export const VERSION = '24.10.4';
export const TARGET = 'ath79/generic';
export const PROFILE = 'tplink_archer-c7-v5';
export const BOARD = 'tplink,archer-c7-v5';
export const MODEL = 'TP-Link Archer C7 v5';
export const USER_PACKAGES = ['tmux', 'htop'];

function write(root, path, contents, mode) {
	const full = join(root, path);
	mkdirSync(dirname(full), { recursive: true });
	writeFileSync(full, contents);
	if (mode)
		chmodSync(full, mode);
}

/** Parses an opkg `Packages` file into stanzas (field name → value). */
export function parsePackages(text) {
	return text.split(/\n\n+/).map((block) => {
		const fields = {};
		for (const line of block.split('\n')) {
			const m = /^([A-Za-z0-9-]+): ?(.*)$/.exec(line);
			if (m)
				fields[m[1]] = m[2];
		}
		return fields;
	}).filter((f) => f.Package);
}

function packageFiles(www, arch, version) {
	const release = join(www, 'releases', version);
	const files = [];
	const feeds = join(release, 'packages', arch);
	for (const feed of readdirSync(feeds))
		if (existsSync(join(feeds, feed, 'Packages')))
			files.push(join(feeds, feed, 'Packages'));
	const target = join(release, 'targets', TARGET);
	files.push(join(target, 'packages', 'Packages'));
	for (const kmods of readdirSync(join(target, 'kmods')))
		if (existsSync(join(target, 'kmods', kmods, 'Packages')))
			files.push(join(target, 'kmods', kmods, 'Packages'));
	return files;
}

/**
 * Writes the root into `root`. `www` is the mirror's served tree, `server` the demo server's
 * URL, `publicKey` the text of its usign public key file, `version` the release the router runs
 * (VERSION unless given; the newest release of its branch makes an up-to-date router). Returns
 * the installed package names.
 */
export function writeRouterRoot({ root, www, server, publicKey, version = VERSION }) {
	const targetDir = join(www, 'releases', version, 'targets', TARGET);
	const profiles = JSON.parse(readFileSync(join(targetDir, 'profiles.json'), 'utf8'));
	const profile = profiles.profiles[PROFILE];
	const arch = profiles.arch_packages;

	const byName = new Map();
	const provides = new Map();
	for (const file of packageFiles(www, arch, version))
		for (const p of parsePackages(readFileSync(file, 'utf8'))) {
			byName.set(p.Package, p);
			for (const name of (p.Provides || '').split(/,\s*/).filter(Boolean))
				provides.set(name.replace(/\s*\(.*\)$/, '').replace(/=.*$/, ''), p.Package);
		}
	const resolve = (name) => (byName.has(name) ? name : provides.get(name));

	// The default image's packages, then the user's packages with their dependencies.
	const manifest = readFileSync(join(targetDir, `${profile.image_prefix}.manifest`), 'utf8');
	const installed = new Map();
	for (const line of manifest.split('\n')) {
		const m = /^(\S+) - (\S+)$/.exec(line);
		if (m)
			installed.set(m[1], m[2]);
	}
	const queue = [...USER_PACKAGES];
	while (queue.length) {
		const name = resolve(queue.shift());
		if (!name || installed.has(name))
			continue;
		const p = byName.get(name);
		installed.set(name, p.Version);
		for (const dep of (p.Depends || '').split(/,\s*/).filter(Boolean))
			queue.push(dep.replace(/\s*\(.*\)$/, '').split(/\s*\|\s*/)[0]);
	}

	const requested = new Set([...profiles.default_packages, ...profile.device_packages, ...USER_PACKAGES]);
	let status = '';
	for (const [name, version] of installed) {
		const p = byName.get(name) || {};
		const plainName = p.ABIVersion ? name.slice(0, name.length - p.ABIVersion.length) : name;
		status += `Package: ${name}\n`;
		if (p.ABIVersion)
			status += `ABIVersion: ${p.ABIVersion}\n`;
		status += `Version: ${version}\n`;
		if (p.Depends)
			status += `Depends: ${p.Depends}\n`;
		if (p.ABIVersion)
			status += `Provides: ${plainName}\n`;
		status += `Status: install ok installed\nArchitecture: ${p.Architecture || arch}\nInstalled-Time: 1761004800\n`;
		const top = name !== 'kernel' && (requested.has(name) || requested.has(plainName));
		if (!top)
			status += 'Auto-Installed: yes\n';
		status += '\n';
	}

	const revision = profiles.version_code;
	write(root, 'tmp/sysinfo/board_name', `${BOARD}\n`);
	write(root, 'tmp/sysinfo/model', `${MODEL}\n`);
	write(root, 'usr/lib/os-release',
		`NAME="OpenWrt"\nVERSION="${version}"\nID="openwrt"\nID_LIKE="lede openwrt"\n` +
		`PRETTY_NAME="OpenWrt ${version}"\nVERSION_ID="${version}"\nBUILD_ID="${revision}"\n` +
		`OPENWRT_BOARD="${TARGET}"\nOPENWRT_ARCH="${arch}"\nOPENWRT_TAINTS=""\n` +
		`OPENWRT_DEVICE_MANUFACTURER="OpenWrt"\nOPENWRT_RELEASE="OpenWrt ${version} ${revision}"\n`);
	write(root, 'proc/mounts', '/dev/root /rom squashfs ro,relatime 0 0\noverlayfs:/overlay / overlay rw,noatime 0 0\n');
	write(root, 'usr/lib/opkg/status', status);
	write(root, 'etc/config/attendedsysupgrade',
		`config server 'server'\n\toption url '${server}'\n\nconfig client 'client'\n` +
		`\toption upgrade_packages '1'\n\toption auto_search '0'\n\toption advanced_mode '0'\n\n` +
		`config attendant 'attendant'\n\toption require_signature '1'\n\toption poll_interval '500'\n`);
	const fingerprint = /public key ([0-9a-f]{16})/.exec(publicKey);
	if (!fingerprint)
		throw new Error(`not a usign public key file: ${publicKey}`);
	write(root, `etc/opkg/keys/${fingerprint[1]}`, publicKey);
	write(root, 'bin/sysupgrade',
		`#!/bin/sh\necho "$*" >> '${join(root, 'sysupgrade.log')}'\nexit 0\n`, 0o755);
	mkdirSync(join(root, 'tmp'), { recursive: true });
	return { installed: [...installed.keys()], revision, fingerprint: fingerprint[1] };
}
