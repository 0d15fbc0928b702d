//! The rules for the strings in channel metadata, one function per kind of value.
//!
//! Each returns the broken rule as a sentence stating what was expected; the parsers put it into
//! a [`ChannelFormatError::Field`](super::ChannelFormatError::Field) with the field's path.
//! The server checks names with the same functions before it publishes them, so a name it
//! accepts is one every router accepts.

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_NAME_LEN: usize = 128;

/// Longest device name (`target/subtarget/profile`), in bytes.
pub const MAX_DEVICE_LEN: usize = 192;

/// Longest URL path (`index`, `path`, `signature`), in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// Longest file name of an image, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;

/// Longest short token (an OpenWrt version, a revision, a package name, an image type), in bytes.
pub const MAX_TOKEN_LEN: usize = 128;

/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// Longest server URL in the embedded stamp, in bytes.
pub const MAX_SERVER_URL_LEN: usize = 512;

/// A channel name: `[a-z0-9][a-z0-9._/-]*`, at most [`MAX_CHANNEL_NAME_LEN`] bytes, no `..`, no
/// empty path segment, no trailing `/` (names may nest: `lab/canary`).
pub fn channel_name(name: &str) -> Result<(), &'static str> {
    const RULE: &str = "expected a channel name: lowercase letters, digits and `._/-`, starting \
                        with a letter or digit, no `..`, no empty segment, at most 128 bytes";
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b));
    if !first_ok
        || !chars_ok
        || name.len() > MAX_CHANNEL_NAME_LEN
        || name.contains("..")
        || name.contains("//")
        || name.ends_with('/')
    {
        return Err(RULE);
    }
    Ok(())
}

/// A device: `target/subtarget/profile` (`ath79/generic/tplink_archer-c7-v5`), three segments of
/// letters, digits and `._,+-`, at most [`MAX_DEVICE_LEN`] bytes.
pub fn device_name(name: &str) -> Result<(), &'static str> {
    const RULE: &str = "expected a device `target/subtarget/profile` of letters, digits and \
                        `._,+-`, at most 192 bytes";
    let mut segments = 0_usize;
    for part in name.split('/') {
        segments += 1;
        segment(part).map_err(|_| RULE)?;
    }
    if segments != 3 || name.len() > MAX_DEVICE_LEN {
        return Err(RULE);
    }
    Ok(())
}

/// An OpenWrt target: `target/subtarget` (`ath79/generic`).
pub fn target(name: &str) -> Result<(), &'static str> {
    const RULE: &str = "expected `target/subtarget` of letters, digits and `._,+-`";
    match name.split_once('/') {
        Some((target, subtarget)) if segment(target).is_ok() && segment(subtarget).is_ok() => {
            Ok(())
        }
        _ => Err(RULE),
    }
}

/// An absolute URL path from the server's root: starts with `/`, letters, digits and
/// `-._~+,=@%/:` only, no `.` or `..` segment, no empty segment, at most [`MAX_PATH_LEN`] bytes.
pub fn url_path(path: &str) -> Result<(), &'static str> {
    const RULE: &str = "expected an absolute URL path (`/channels/...`) without `..`, empty \
                        segments, query or fragment, at most 1024 bytes";
    let Some(rest) = path.strip_prefix('/') else {
        return Err(RULE);
    };
    let chars_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+,=@%/:".contains(&b));
    if !chars_ok
        || path.len() > MAX_PATH_LEN
        || rest
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(RULE);
    }
    Ok(())
}

/// A SHA-256 digest: 64 lowercase hex digits.
pub fn sha256(digest: &str) -> Result<(), &'static str> {
    if digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err("expected a SHA-256 digest: 64 lowercase hex digits")
    }
}

/// A short token (version, revision, package, profile, image type, filesystem): 1 to
/// [`MAX_TOKEN_LEN`] letters, digits and `._+~_-`.
pub fn token(value: &str) -> Result<(), &'static str> {
    if !value.is_empty()
        && value.len() <= MAX_TOKEN_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~_-".contains(&b))
    {
        Ok(())
    } else {
        Err("expected 1 to 128 letters, digits and `._+~_-`")
    }
}

/// An image's file name: 1 to [`MAX_FILE_NAME_LEN`] letters, digits and `._+~,=_-`, not starting
/// with `.`.
pub fn file_name(name: &str) -> Result<(), &'static str> {
    if !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= MAX_FILE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~,=_-".contains(&b))
    {
        Ok(())
    } else {
        Err(
            "expected a file name of letters, digits and `._+~,=_-`, not starting with `.`, at \
             most 255 bytes",
        )
    }
}

/// Free text (a description): at most [`MAX_DESCRIPTION_LEN`] bytes, no control characters but
/// line breaks and tabs (a reader escapes the rest before showing it, but an escape sequence in
/// signed metadata is a mistake worth refusing early).
pub fn text(value: &str) -> Result<(), &'static str> {
    if value.len() <= MAX_DESCRIPTION_LEN
        && !value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        Ok(())
    } else {
        Err(
            "expected text without control characters other than line breaks and tabs, at most \
             4096 bytes",
        )
    }
}

/// An image's root filesystem: empty (an image without one, such as a kernel) or a [`token`].
pub fn filesystem(value: &str) -> Result<(), &'static str> {
    if value.is_empty() || token(value).is_ok() {
        Ok(())
    } else {
        Err("expected nothing or 1 to 128 letters, digits and `._+~_-`")
    }
}

/// The server's base URL: `https://` or `http://`, printable ASCII without spaces, at most
/// [`MAX_SERVER_URL_LEN`] bytes.
pub fn server_url(url: &str) -> Result<(), &'static str> {
    let scheme_ok = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty());
    if scheme_ok && url.len() <= MAX_SERVER_URL_LEN && url.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("expected an `https://` or `http://` URL without spaces, at most 512 bytes")
    }
}

fn segment(part: &str) -> Result<(), ()> {
    if part.is_empty()
        || part.len() > 64
        || part == "."
        || part == ".."
        || !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._,+-".contains(&b))
    {
        return Err(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        for good in ["stable", "lab/canary", "24.10", "a", "x-y_z", "0day"] {
            assert_eq!(channel_name(good), Ok(()), "{good}");
        }
        for bad in [
            "", "Stable", "-x", ".x", "a/../b", "a..b", "a//b", "a/", "/a", "a b", "ä",
        ] {
            assert!(channel_name(bad).is_err(), "{bad}");
        }
        assert!(channel_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn device_names() {
        assert_eq!(device_name("ath79/generic/tplink_archer-c7-v5"), Ok(()));
        assert_eq!(device_name("x86/64/generic"), Ok(()));
        for bad in [
            "ath79/generic",
            "a/b/c/d",
            "a//c",
            "../b/c",
            "a/b/c d",
            "a/b/",
        ] {
            assert!(device_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn url_paths() {
        assert_eq!(
            url_path("/channels/stable/x86/64/generic/index.json"),
            Ok(())
        );
        assert_eq!(url_path("/channels/pool/ab/ab12-openwrt.bin.sig"), Ok(()));
        for bad in [
            "channels/x",
            "/",
            "/a//b",
            "/a/../b",
            "/a/./b",
            "/a/",
            "/a?b",
            "/a#b",
            "/a b",
            "/a\\b",
        ] {
            assert!(url_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_tokens_and_names() {
        assert_eq!(sha256(&"a".repeat(64)), Ok(()));
        assert!(sha256(&"A".repeat(64)).is_err());
        assert!(sha256(&"a".repeat(63)).is_err());
        assert_eq!(token("24.10.5"), Ok(()));
        assert_eq!(token("r28959-29397011cc"), Ok(()));
        assert!(token("").is_err());
        assert!(token("a b").is_err());
        assert_eq!(file_name("openwrt-24.10.5-squashfs-sysupgrade.bin"), Ok(()));
        assert!(file_name(".hidden").is_err());
        assert!(file_name("a/b").is_err());
        assert_eq!(target("ath79/generic"), Ok(()));
        assert!(target("ath79").is_err());
        assert!(target("ath79/generic/x").is_err());
        assert_eq!(text("Q4 release, with luci"), Ok(()));
        assert_eq!(text("two\nlines\tand a tab"), Ok(()));
        assert!(text("escape\u{1b}[2J").is_err());
        assert!(text("carriage\rreturn").is_err());
        assert_eq!(filesystem(""), Ok(()));
        assert_eq!(filesystem("squashfs"), Ok(()));
        assert!(filesystem("a b").is_err());
        assert_eq!(server_url("https://upgrade.example.org"), Ok(()));
        assert!(server_url("ftp://x").is_err());
        assert!(server_url("https://").is_err());
        assert!(server_url("https://a b").is_err());
    }
}
