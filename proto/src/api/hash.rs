//! The request hash and the package-list rules around it.
//!
//! ASU identifies a build by `sha256_hex` over the separator-less concatenation of Python
//! `str()`/`repr()` renderings of the request (`get_request_hash` in <https://github.com/openwrt/asu/blob/main/asu/util.py>), computed
//! *before* the profile
//! alias is resolved. Clients only echo the hash the server returned, so we keep its shape
//! ([`RequestHash`]: 64 lowercase hex characters, full SHA-256) and replace the encoding with an
//! unambiguous one ([`request_hash`]), computed by the server *after* alias resolution so every
//! alias of one device shares one build.
//!
//! The package rules are ASU's: [`sanitize_profile`] (`,` → `_`), [`normalized_packages`]
//! (`packages_versions` keys replace `packages`, one leading `+` stripped, duplicates dropped,
//! first-requester order kept for the build command) and [`diff_packages`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::api::request::{BuildRequest, Filesystem, RepositoriesMode};

/// A full SHA-256 request hash; on the wire 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestHash(pub [u8; 32]);

/// Why a string is not a request hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestHashError {
    /// Not exactly 64 characters.
    #[error("request hash must be 64 hex characters, found {length}")]
    Length {
        /// The length found, in bytes.
        length: usize,
    },
    /// A character other than `0-9` or `a-f` (upper case is rejected too: hashes are canonical).
    #[error("request hash has `{found}` at position {position}, expected a lowercase hex digit")]
    NotHex {
        /// The offending character.
        found: char,
        /// Its character position.
        position: usize,
    },
}

/// The request as it is hashed: normalised, with the profile already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    /// `distro`.
    pub distro: String,
    /// `version`.
    pub version: String,
    /// `version_code` (`""` = any).
    pub version_code: String,
    /// `target/subtarget`.
    pub target: String,
    /// The profile after `,` → `_` and, on the server, after alias resolution.
    pub profile: String,
    /// The package set of [`normalized_packages`], sorted.
    pub packages: BTreeSet<String>,
    /// `packages_versions`, sorted by name.
    pub packages_versions: BTreeMap<String, String>,
    /// `diff_packages`.
    pub diff_packages: bool,
    /// `filesystem`.
    pub filesystem: Option<Filesystem>,
    /// `defaults`; an empty script is `None` (ASU builds both the same way).
    pub defaults: Option<String>,
    /// `rootfs_size_mb`.
    pub rootfs_size_mb: Option<u32>,
    /// `repositories`, sorted by name.
    pub repositories: BTreeMap<String, String>,
    /// `repository_keys` in request order (the order names the key files).
    pub repository_keys: Vec<String>,
    /// `repositories_mode`.
    pub repositories_mode: RepositoriesMode,
}

/// Domain separation tag, the first field of every encoding; bump it when the encoding changes.
pub const REQUEST_HASH_DOMAIN: &str = "attendant-build-request-v1";

impl CanonicalRequest {
    /// The canonical form of `request` with the profile only sanitised (`,` → `_`); the server
    /// then calls [`CanonicalRequest::with_profile`] with the resolved profile id.
    pub fn from_request(request: &BuildRequest) -> Self {
        Self {
            distro: request.distro.clone(),
            version: request.version.clone(),
            version_code: request.version_code.clone(),
            target: request.target.clone(),
            profile: sanitize_profile(&request.profile),
            packages: normalized_packages(request).into_iter().collect(),
            packages_versions: request.packages_versions.clone(),
            diff_packages: request.diff_packages,
            filesystem: request.filesystem,
            defaults: request.defaults.clone().filter(|d| !d.is_empty()),
            rootfs_size_mb: request.rootfs_size_mb,
            repositories: request.repositories.clone(),
            repository_keys: request.repository_keys.clone(),
            repositories_mode: request.repositories_mode,
        }
    }

    /// Replaces the profile, e.g. with the id an alias resolved to.
    #[must_use]
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = profile.into();
        self
    }

    /// The unambiguous byte encoding that [`request_hash`] digests.
    ///
    /// Every string is its UTF-8 length as a big-endian `u64` followed by its bytes; a list, set
    /// or map is its entry count as a big-endian `u64` followed by its entries (a map entry is
    /// key then value); an absent optional value is the byte `0`, a present one the byte `1`
    /// followed by the value; a boolean is one byte `0`/`1`; `rootfs_size_mb` is a big-endian
    /// `u32`; enums are their wire strings. Fields, in order: [`REQUEST_HASH_DOMAIN`], distro,
    /// version, version_code, target, profile, packages, packages_versions, diff_packages,
    /// filesystem, defaults, rootfs_size_mb, repositories, repository_keys, repositories_mode.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_str(&mut out, REQUEST_HASH_DOMAIN);
        put_str(&mut out, &self.distro);
        put_str(&mut out, &self.version);
        put_str(&mut out, &self.version_code);
        put_str(&mut out, &self.target);
        put_str(&mut out, &self.profile);
        put_len(&mut out, self.packages.len());
        for package in &self.packages {
            put_str(&mut out, package);
        }
        put_map(&mut out, &self.packages_versions);
        out.push(u8::from(self.diff_packages));
        match self.filesystem {
            None => out.push(0),
            Some(fs) => {
                out.push(1);
                put_str(&mut out, fs.as_str());
            }
        }
        match &self.defaults {
            None => out.push(0),
            Some(defaults) => {
                out.push(1);
                put_str(&mut out, defaults);
            }
        }
        match self.rootfs_size_mb {
            None => out.push(0),
            Some(size) => {
                out.push(1);
                out.extend_from_slice(&size.to_be_bytes());
            }
        }
        put_map(&mut out, &self.repositories);
        put_len(&mut out, self.repository_keys.len());
        for key in &self.repository_keys {
            put_str(&mut out, key);
        }
        put_str(&mut out, self.repositories_mode.as_str());
        out
    }
}

/// SHA-256 of [`CanonicalRequest::encode`].
pub fn request_hash(request: &CanonicalRequest) -> RequestHash {
    RequestHash(Sha256::digest(request.encode()).into())
}

/// ASU's profile sanitising: every `,` becomes `_` (`tplink,archer-c7-v5` →
/// `tplink_archer-c7-v5`).
pub fn sanitize_profile(profile: &str) -> String {
    profile.replace(',', "_")
}

/// The packages a request asks for, in first-requester order: the keys of `packages_versions`
/// when it is non-empty, else `packages`; one leading `+` stripped; empty names and duplicates
/// dropped. This is the list for the build command; its set is what is hashed.
pub fn normalized_packages(request: &BuildRequest) -> Vec<String> {
    let source: Vec<&str> = if request.packages_versions.is_empty() {
        request.packages.iter().map(String::as_str).collect()
    } else {
        request
            .packages_versions
            .keys()
            .map(String::as_str)
            .collect()
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(source.len());
    for name in source {
        let name = name.strip_prefix('+').unwrap_or(name);
        if !name.is_empty() && seen.insert(name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// ASU's `diff_packages` list (`build()` in <https://github.com/openwrt/asu/blob/main/asu/build.py>): a sorted `-<pkg>` for every default or
/// profile package that was not requested, followed by the requested packages unchanged, in
/// request order.
///
/// Profile package lists can themselves hold removals (`-ppp`); ASU turns `-` + `-ppp` into
/// `-ppp` by replacing `--` with `-`, and so does this.
pub fn diff_packages<S: AsRef<str>>(
    requested: &[S],
    default_packages: &BTreeSet<String>,
) -> Vec<String> {
    let requested_set: BTreeSet<&str> = requested.iter().map(AsRef::as_ref).collect();
    let removals: BTreeSet<String> = default_packages
        .iter()
        .filter(|p| !requested_set.contains(p.as_str()))
        .map(|p| format!("-{p}").replace("--", "-"))
        .collect();
    removals
        .into_iter()
        .chain(requested.iter().map(|p| p.as_ref().to_owned()))
        .collect()
}

impl fmt::Display for RequestHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RequestHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestHash({self})")
    }
}

impl FromStr for RequestHash {
    type Err = RequestHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(RequestHashError::Length { length: s.len() });
        }
        let mut out = [0u8; 32];
        let mut high = 0u8;
        for (position, c) in s.chars().enumerate() {
            let nibble = match c {
                '0'..='9' => u32::from(c) - u32::from('0'),
                'a'..='f' => u32::from(c) - u32::from('a') + 10,
                _ => return Err(RequestHashError::NotHex { found: c, position }),
            };
            let nibble = u8::try_from(nibble).unwrap_or(0);
            if position % 2 == 0 {
                high = nibble;
            } else if let Some(slot) = out.get_mut(position / 2) {
                *slot = (high << 4) | nibble;
            }
        }
        Ok(Self(out))
    }
}

impl Serialize for RequestHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u64::try_from(len).unwrap_or(u64::MAX).to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_map(out: &mut Vec<u8>, map: &BTreeMap<String, String>) {
    put_len(out, map.len());
    for (key, value) in map {
        put_str(out, key);
        put_str(out, value);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn request(packages: &[&str]) -> BuildRequest {
        let mut request = BuildRequest::new("24.10.6", "ath79/generic", "tplink,archer-c7-v5");
        request.packages = packages.iter().map(|p| (*p).to_owned()).collect();
        request
    }

    fn hash(request: &BuildRequest) -> RequestHash {
        request_hash(&CanonicalRequest::from_request(request))
    }

    #[test]
    fn hash_ignores_package_order_duplicates_and_plus() {
        let a = hash(&request(&["luci", "tmux", "luci"]));
        let b = hash(&request(&["+tmux", "luci"]));
        assert_eq!(a, b);
        assert_ne!(a, hash(&request(&["luci"])));
    }

    #[test]
    fn hash_covers_every_build_relevant_field() {
        let base = request(&["luci"]);
        let base_hash = hash(&base);
        type Change = Box<dyn Fn(&mut BuildRequest)>;
        let variants: Vec<Change> = vec![
            Box::new(|r| r.distro = "other".into()),
            Box::new(|r| r.version = "24.10.5".into()),
            Box::new(|r| r.version_code = "r1-x".into()),
            Box::new(|r| r.target = "ath79/nand".into()),
            Box::new(|r| r.profile = "other".into()),
            Box::new(|r| {
                r.packages_versions.insert("luci".into(), "1".into());
            }),
            Box::new(|r| r.diff_packages = true),
            Box::new(|r| r.filesystem = Some(Filesystem::Ext4)),
            Box::new(|r| r.defaults = Some("x".into())),
            Box::new(|r| r.rootfs_size_mb = Some(100)),
            Box::new(|r| {
                r.repositories.insert("a".into(), "https://a".into());
            }),
            Box::new(|r| r.repository_keys.push("k".into())),
            Box::new(|r| r.repositories_mode = RepositoriesMode::Append),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(
                hash(&changed),
                base_hash,
                "variant {i} did not change the hash"
            );
        }
        let mut client = base.clone();
        client.client = Some("luci/1".into());
        assert_eq!(hash(&client), base_hash, "client is not part of the hash");
    }

    #[test]
    fn aliases_share_a_hash_after_resolution() {
        let alias =
            CanonicalRequest::from_request(&request(&[])).with_profile("tplink_archer-c7-v5");
        let mut by_id = request(&[]);
        by_id.profile = "tplink_archer-c7-v5".into();
        assert_eq!(
            request_hash(&alias),
            request_hash(&CanonicalRequest::from_request(&by_id))
        );
        assert_eq!(
            CanonicalRequest::from_request(&request(&[])).profile,
            "tplink_archer-c7-v5"
        );
    }

    #[test]
    fn encoding_is_unambiguous_across_field_boundaries() {
        let mut a = request(&[]);
        a.version = "24.10.6".into();
        a.version_code = String::new();
        let mut b = request(&[]);
        b.version = "24.10.".into();
        b.version_code = "6".into();
        assert_ne!(hash(&a), hash(&b));
        let c = request(&["a b"]);
        let d = request(&["a", "b"]);
        assert_ne!(hash(&c), hash(&d));
    }

    #[test]
    fn empty_defaults_hash_like_no_defaults() {
        let mut a = request(&[]);
        a.defaults = Some(String::new());
        assert_eq!(hash(&a), hash(&request(&[])));
    }

    #[test]
    fn packages_versions_keys_replace_packages() {
        let mut r = request(&["ignored"]);
        r.packages_versions.insert("luci".into(), "1.0".into());
        r.packages_versions.insert("+tmux".into(), "3.4".into());
        // `packages_versions` is a map, so its names come in name order (`+tmux` < `luci`).
        assert_eq!(normalized_packages(&r), ["tmux", "luci"]);
    }

    #[test]
    fn normalized_packages_keep_first_requester_order() {
        let r = request(&["zzz", "test1", "+qqq", "test1", "", "aaa"]);
        assert_eq!(normalized_packages(&r), ["zzz", "test1", "qqq", "aaa"]);
    }

    #[test]
    fn sanitize_profile_replaces_every_comma() {
        assert_eq!(sanitize_profile("8dev,carambola2"), "8dev_carambola2");
        assert_eq!(sanitize_profile("a,b,c"), "a_b_c");
    }

    #[test]
    fn diff_packages_removes_unrequested_defaults_sorted_then_request_order() {
        let defaults: BTreeSet<String> = ["base-files", "dnsmasq", "ppp", "luci", "-wpad-basic"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let requested = ["tmux", "luci", "base-files", "-dropbear"];
        assert_eq!(
            diff_packages(&requested, &defaults),
            [
                "-dnsmasq",
                "-ppp",
                "-wpad-basic",
                "tmux",
                "luci",
                "base-files",
                "-dropbear"
            ]
        );
    }

    #[test]
    fn diff_packages_with_everything_requested_keeps_request() {
        let defaults: BTreeSet<String> = ["a", "b"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(diff_packages(&["b", "a", "c"], &defaults), ["b", "a", "c"]);
        assert_eq!(diff_packages::<&str>(&[], &defaults), ["-a", "-b"]);
    }

    #[test]
    fn request_hash_display_and_parse_agree() {
        let h = RequestHash([0xab; 32]);
        let text = h.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<RequestHash>().unwrap(), h);
        assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{text}\""));
    }

    #[test]
    fn rejects_non_canonical_request_hashes() {
        let upper = "AB".repeat(32);
        assert_eq!(
            upper.parse::<RequestHash>().unwrap_err().to_string(),
            "request hash has `A` at position 0, expected a lowercase hex digit"
        );
        assert_eq!(
            "abc".parse::<RequestHash>().unwrap_err().to_string(),
            "request hash must be 64 hex characters, found 3"
        );
        let truncated = "a".repeat(32);
        assert!(truncated.parse::<RequestHash>().is_err());
        let multibyte = format!("{}é", "a".repeat(62));
        assert!(multibyte.parse::<RequestHash>().is_err());
    }

    #[test]
    fn known_vector_is_stable() {
        // Pins the encoding: changing it silently would orphan every cached build. The value was
        // computed independently (Python, from the encoding documented on `encode`).
        assert_eq!(
            hash(&request(&["luci"])).to_string(),
            "a34d573778c0757143b69f84240624d71658845e48f4f03359012ea1b5a4a2ee"
        );
    }

    proptest! {
        #[test]
        fn request_hash_parse_never_panics(s in ".{0,80}") {
            let _ = s.parse::<RequestHash>();
        }

        #[test]
        fn request_hash_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let h = RequestHash(bytes);
            prop_assert_eq!(h.to_string().parse::<RequestHash>().unwrap(), h);
        }
    }
}
