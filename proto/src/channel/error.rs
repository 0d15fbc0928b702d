//! The error of every channel metadata parser.

/// Which file a [`ChannelFormatError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataFile {
    /// `channels.json`.
    Channels,
    /// A per-device `index.json`.
    Index,
    /// The embedded `/etc/attendant/channel.json`.
    Stamp,
    /// An outcome report or the report salt (`/api/v1/report`).
    Report,
}

impl std::fmt::Display for MetadataFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Channels => "channels.json",
            Self::Index => "index.json",
            Self::Stamp => "channel.json",
            Self::Report => "report",
        })
    }
}

/// Why channel metadata was refused. Each variant names the file, and the field by its JSON path
/// (`channels.stable.devices`, `images[2].files[0].checksum`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelFormatError {
    /// The file is longer than its limit.
    #[error("`{file}` is {len} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// Which file.
        file: MetadataFile,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The file is not JSON of the expected shape.
    #[error("`{file}` is not valid: {reason}")]
    Json {
        /// Which file.
        file: MetadataFile,
        /// serde's message, with line and column.
        reason: String,
    },
    /// A field breaks a rule.
    #[error("`{file}` field `{field}` is `{value}`: {rule}")]
    Field {
        /// Which file.
        file: MetadataFile,
        /// The field's JSON path.
        field: String,
        /// The offending value, shortened and made printable.
        value: String,
        /// The rule, stating what was expected.
        rule: &'static str,
    },
    /// A list or map has more entries than its limit.
    #[error("`{file}` field `{field}` has {count} entries, more than the limit of {max}")]
    TooMany {
        /// Which file.
        file: MetadataFile,
        /// The field's JSON path.
        field: String,
        /// Entries found.
        count: usize,
        /// The limit.
        max: usize,
    },
}
