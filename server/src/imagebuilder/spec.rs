//! Which ImageBuilder to get, checked so that its parts are safe as URL and file path segments.

use super::IbError;

/// Longest version, target or subtarget accepted in an [`IbSpec`], in bytes.
pub const MAX_SPEC_FIELD_LEN: usize = 64;

/// Longest [`IbSpec::version_path`], in bytes.
pub const MAX_VERSION_PATH_LEN: usize = 128;

/// Which ImageBuilder to get.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct IbSpec {
    /// The OpenWrt version: `24.10.0`, `SNAPSHOT`, `24.10-SNAPSHOT`.
    pub version: String,
    /// The branch path with the version filled in: `releases/24.10.0`, `snapshots`.
    pub version_path: String,
    /// The target: `x86`, `ath79`.
    pub target: String,
    /// The subtarget: `64`, `generic`.
    pub subtarget: String,
}

impl IbSpec {
    /// A spec from its four parts.
    pub fn new(
        version: impl Into<String>,
        version_path: impl Into<String>,
        target: impl Into<String>,
        subtarget: impl Into<String>,
    ) -> Self {
        Self {
            version: version.into(),
            version_path: version_path.into(),
            target: target.into(),
            subtarget: subtarget.into(),
        }
    }

    /// True for snapshot versions, whose ImageBuilder changes upstream over time.
    pub fn is_snapshot(&self) -> bool {
        self.version.to_ascii_uppercase().ends_with("SNAPSHOT")
    }

    /// Refuse anything that is not a plain path segment (the fields become URL and file paths).
    pub(super) fn check(&self) -> Result<(), IbError> {
        check_segment("version", &self.version, MAX_SPEC_FIELD_LEN)?;
        check_segment("target", &self.target, MAX_SPEC_FIELD_LEN)?;
        check_segment("subtarget", &self.subtarget, MAX_SPEC_FIELD_LEN)?;
        let path_ok = self.version_path.len() <= MAX_VERSION_PATH_LEN
            && self
                .version_path
                .split('/')
                .all(|part| check_segment("version_path", part, MAX_VERSION_PATH_LEN).is_ok());
        if !path_ok {
            return Err(invalid_spec(
                "version_path",
                &self.version_path,
                MAX_VERSION_PATH_LEN,
            ));
        }
        Ok(())
    }

    /// The upstream directory holding the ImageBuilder and `sha256sums`.
    pub(super) fn upstream_dir(&self) -> String {
        format!(
            "{}/targets/{}/{}",
            self.version_path, self.target, self.subtarget
        )
    }

    /// The single-flight key.
    pub(super) fn key(&self) -> String {
        format!("{}/{}/{}", self.version, self.target, self.subtarget)
    }
}

/// A file of an ImageBuilder's upstream directory, named by its path under the upstream:
/// `<version_path>/targets/<target>/<subtarget>/<file>` (the layout of
/// <https://downloads.openwrt.org>), as a remote worker asks the main server for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamFile {
    /// The ImageBuilder the file belongs to. The version is read from the path: `snapshots`
    /// is `SNAPSHOT`, any other version path ends with the version (`releases/24.10.5`,
    /// `releases/24.10-SNAPSHOT`).
    pub spec: IbSpec,
    /// The file name: `sha256sums`, `sha256sums.sig` or an archive.
    pub name: String,
}

impl UpstreamFile {
    /// Parses and checks `path` (every part a plain segment, as in [`IbSpec`]).
    pub fn parse(path: &str) -> Result<Self, IbError> {
        let malformed = || invalid_spec("path", path, MAX_VERSION_PATH_LEN);
        let (version_path, rest) = path.split_once("/targets/").ok_or_else(malformed)?;
        let mut parts = rest.split('/');
        let (Some(target), Some(subtarget), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let version = if version_path == "snapshots" {
            "SNAPSHOT"
        } else {
            version_path.rsplit('/').next().unwrap_or_default()
        };
        let spec = IbSpec::new(version, version_path, target, subtarget);
        spec.check()?;
        check_segment("file", name, MAX_SPEC_FIELD_LEN * 2)?;
        Ok(Self {
            spec,
            name: name.to_owned(),
        })
    }
}

/// The entry directory name for `spec` and an archive SHA-256.
pub(super) fn entry_name(spec: &IbSpec, sha256: &str) -> String {
    format!(
        "{}_{}_{}_{sha256}",
        spec.version, spec.target, spec.subtarget
    )
}

fn check_segment(field: &'static str, value: &str, max: usize) -> Result<(), IbError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid_spec(field, value, max))
    }
}

fn invalid_spec(field: &'static str, value: &str, max: usize) -> IbError {
    IbError::InvalidSpec {
        field,
        value: attendant_proto::excerpt::excerpt(value, 100),
        max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_spec_with_path_tricks() {
        let spec = IbSpec::new("24.10.0", "releases/../../etc", "x86", "64");
        let error = spec.check().unwrap_err();
        assert_eq!(
            error.to_string(),
            "ImageBuilder version_path `releases/../../etc` is not allowed: expected letters, \
             digits, `.`, `_` and `-` in `/`-separated parts, at most 128 bytes"
        );
        let spec = IbSpec::new("24.10.0", "releases/24.10.0", "x86/64", "64");
        assert!(matches!(
            spec.check(),
            Err(IbError::InvalidSpec {
                field: "target",
                ..
            })
        ));
        let spec = IbSpec::new("", "snapshots", "x86", "64");
        assert!(matches!(
            spec.check(),
            Err(IbError::InvalidSpec {
                field: "version",
                ..
            })
        ));
        assert!(
            IbSpec::new("24.10-SNAPSHOT", "releases/24.10-SNAPSHOT", "x86", "64")
                .check()
                .is_ok()
        );
    }

    #[test]
    fn upstream_file_paths_are_parsed_and_checked() {
        let file = UpstreamFile::parse("releases/24.10.5/targets/x86/64/sha256sums").unwrap();
        assert_eq!(
            file.spec,
            IbSpec::new("24.10.5", "releases/24.10.5", "x86", "64")
        );
        assert_eq!(file.name, "sha256sums");
        let file = UpstreamFile::parse("snapshots/targets/ath79/generic/sha256sums.sig").unwrap();
        assert_eq!(file.spec.version, "SNAPSHOT");
        for bad in [
            "releases/24.10.5/targets/x86/64",
            "releases/24.10.5/targets/x86/64/a/b",
            "releases/../targets/x86/64/sha256sums",
            "releases/24.10.5/targets/x86/64/..",
            "releases/24.10.5/x86/64/sha256sums",
        ] {
            assert!(
                matches!(UpstreamFile::parse(bad), Err(IbError::InvalidSpec { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn snapshot_versions_are_recognised() {
        assert!(IbSpec::new("SNAPSHOT", "snapshots", "x86", "64").is_snapshot());
        assert!(IbSpec::new("24.10-SNAPSHOT", "x", "x86", "64").is_snapshot());
        assert!(!IbSpec::new("24.10.0", "x", "x86", "64").is_snapshot());
    }
}
