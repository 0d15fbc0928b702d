//! The fwtool trailer at the end of a sysupgrade image, and sysupgrade's compatibility decision.
//!
//! OpenWrt's `fwtool` (openwrt/openwrt `package/system/fwtool/src/{fwtool.c,fwimage.h,crc32.h}`,
//! <https://github.com/openwrt/openwrt/tree/main/package/system/fwtool/src>) appends blocks to an
//! image. Each block ends with a 16-byte trailer, all fields big-endian:
//!
//! ```text
//! magic u32 = 0x46577830 ("FWx0") | crc32 u32 | type u8 | pad[3] | size u32
//! ```
//!
//! `size` counts the whole block: payload, trailer and, for metadata, the 8-byte header
//! (`version u32 = 0`, `flags u32`). `type` 0 is a signature (a ucert blob, at most
//! [`MAX_SIGNATURE_LEN`]), 1 is metadata (JSON, at most [`MAX_METADATA_LEN`]). The CRC runs over
//! **every byte of the file before the trailer**, earlier blocks included, with the reflected
//! polynomial 0xEDB88320, start value 0xFFFFFFFF and no final XOR (see [`Crc`]). Blocks are read
//! backwards from the end of the file until the bytes before a block are not a trailer.
//!
//! # Reading
//!
//! - In memory: [`read_blocks`] returns every block in file order with its CRC checked.
//! - Streaming (a 64 MiB image on a router): read the last [`TAIL_LEN`] bytes, call
//!   [`parse_tail`] to get each block's [`BlockLayout`] (kind, payload, offsets, the CRC its
//!   trailer promises), then stream the whole file once through a [`CrcCheck`], which checks each
//!   CRC as the stream passes the trailer and turns the layouts into checked [`Block`]s.
//!   [`image_len_without_blocks`] and [`signed_len`] give the payload lengths that hashes and the
//!   ucert signature cover.
//!
//! # Writing
//!
//! [`append_metadata`] and [`append_block`] do what `fwtool -I` and `fwtool -S` do to a file in
//! memory; [`block_bytes`] returns the bytes to append to a file given the [`Crc`] of what is
//! already there.
//!
//! # Compatibility
//!
//! [`check_image`] reproduces `fwtool_check_image` from sysupgrade's `/lib/upgrade/fwtool.sh`
//! (openwrt/openwrt `package/base-files/files/lib/upgrade/fwtool.sh`) and its refusal texts.
//!
//! # Why one file
//!
//! About 1100 lines before the tests, most of them doc comments on error variants and metadata
//! fields. Trailer parsing, metadata and the compatibility decision share the error type and are
//! always used together by the agent's verify step; if the file grows further, the natural split
//! is `fwtool/{trailer,metadata,compat}.rs`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};
use crate::json;

/// The trailer magic, `"FWx0"` big-endian (`FWIMAGE_MAGIC`).
pub const MAGIC: u32 = 0x4657_7830;

/// Length of a block trailer.
pub const TRAILER_LEN: usize = 16;

/// Length of the header before the JSON of a metadata block (`struct fwimage_header`).
pub const METADATA_HEADER_LEN: usize = 8;

/// Largest metadata JSON, in bytes (fwtool's `METADATA_MAXLEN`, 30 KiB).
pub const MAX_METADATA_LEN: usize = 30 * 1024;

/// Largest signature (ucert) blob, in bytes (fwtool's `SIGNATURE_MAXLEN`, 1 KiB).
pub const MAX_SIGNATURE_LEN: usize = 1024;

/// Largest payload of a block of a type fwtool does not define (as large as a metadata block).
pub const MAX_UNKNOWN_LEN: usize = METADATA_HEADER_LEN + MAX_METADATA_LEN;

/// Most blocks read from one image. Real images carry one metadata and one signature block.
pub const MAX_BLOCKS: usize = 4;

/// How many bytes at the end of an image all blocks together may take, and so how many bytes
/// a streaming caller passes to [`parse_tail`]: one maximal metadata block and two maximal
/// signature blocks, trailers included (32 840 bytes).
pub const TAIL_LEN: usize =
    (METADATA_HEADER_LEN + MAX_METADATA_LEN + TRAILER_LEN) + 2 * (MAX_SIGNATURE_LEN + TRAILER_LEN);

/// The type byte of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// Type 0: a ucert signature chain over everything before the block.
    Signature,
    /// Type 1: an 8-byte header and the image metadata JSON.
    Metadata,
    /// Any other type byte, kept as found.
    Unknown(u8),
}

impl BlockKind {
    /// The kind for a trailer's type byte.
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0 => Self::Signature,
            1 => Self::Metadata,
            other => Self::Unknown(other),
        }
    }

    /// The trailer's type byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Signature => 0,
            Self::Metadata => 1,
            Self::Unknown(other) => other,
        }
    }

    /// Largest payload of this kind, not counting the metadata header.
    pub fn max_data_len(self) -> usize {
        match self {
            Self::Signature => MAX_SIGNATURE_LEN,
            Self::Metadata => MAX_METADATA_LEN,
            Self::Unknown(_) => MAX_UNKNOWN_LEN,
        }
    }

    fn header_len(self) -> usize {
        match self {
            Self::Metadata => METADATA_HEADER_LEN,
            Self::Signature | Self::Unknown(_) => 0,
        }
    }
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signature => f.write_str("signature"),
            Self::Metadata => f.write_str("metadata"),
            Self::Unknown(byte) => write!(f, "unknown (type {byte})"),
        }
    }
}

/// What is wrong with an image's fwtool blocks or metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FwtoolError {
    /// Fewer than 16 bytes were given for a trailer.
    #[error("fwtool trailer is {found} bytes, expected {TRAILER_LEN}")]
    TruncatedTrailer {
        /// Bytes found.
        found: usize,
    },
    /// The image ends inside a trailer: the magic sits less than 16 bytes before the end.
    #[error(
        "image ends inside a fwtool trailer: the `FWx0` magic is {from_end} bytes before the \
         end, a trailer is {TRAILER_LEN}; the image is truncated"
    )]
    TruncatedImage {
        /// Distance of the magic from the end of the file.
        from_end: usize,
    },
    /// A trailer does not start with the magic.
    #[error("fwtool trailer has magic `{found:#010x}`, expected `{MAGIC:#010x}`")]
    BadMagic {
        /// The first four bytes, big-endian.
        found: u32,
    },
    /// A trailer's size is smaller than the trailer (and header) itself.
    #[error("{kind} block at offset {offset} has size {size}, less than the minimum {min}")]
    BlockTooSmall {
        /// Block type.
        kind: BlockKind,
        /// The trailer's size field.
        size: u32,
        /// The smallest possible size.
        min: usize,
        /// Offset of the trailer.
        offset: u64,
    },
    /// A block's payload is larger than fwtool allows for its type.
    #[error("{kind} block at offset {offset} holds {len} bytes, more than the limit of {max}")]
    BlockTooLarge {
        /// Block type.
        kind: BlockKind,
        /// Payload length.
        len: usize,
        /// The limit for this type.
        max: usize,
        /// Offset of the trailer (or `0` when writing).
        offset: u64,
    },
    /// A trailer's size reaches before the start of the file.
    #[error(
        "{kind} block trailer at offset {offset} claims {size} bytes, but the file has only \
         {available} bytes up to there"
    )]
    BlockBeyondFile {
        /// Block type.
        kind: BlockKind,
        /// The trailer's size field.
        size: u32,
        /// Bytes from the file start to the trailer's end.
        available: u64,
        /// Offset of the trailer.
        offset: u64,
    },
    /// The tail handed to [`parse_tail`] does not reach back far enough.
    #[error(
        "the last {tail_len} bytes of the image are not enough to read its fwtool blocks; pass \
         the last {TAIL_LEN} bytes (or the whole file if shorter)"
    )]
    TailTooShort {
        /// Bytes given.
        tail_len: usize,
    },
    /// The tail handed to [`parse_tail`] is longer than the file.
    #[error("tail of {tail_len} bytes is longer than the {file_len}-byte file")]
    TailLongerThanFile {
        /// Bytes given.
        tail_len: usize,
        /// The file length given.
        file_len: u64,
    },
    /// A block's CRC does not match the bytes before its trailer.
    #[error(
        "fwtool CRC mismatch for the trailer at offset {offset}: the trailer says \
         `{expected:08x}`, the image gives `{found:08x}`; the image is corrupted"
    )]
    CrcMismatch {
        /// CRC from the trailer.
        expected: u32,
        /// CRC computed over the bytes before the trailer.
        found: u32,
        /// Offset of the trailer.
        offset: u64,
    },
    /// A streamed image was not as long as the layout said.
    #[error("streamed {found} bytes of an image that was {expected} bytes when its tail was read")]
    LengthMismatch {
        /// The file length given to [`CrcCheck::new`].
        expected: u64,
        /// Bytes streamed.
        found: u64,
    },
    /// Metadata JSON is larger than [`MAX_METADATA_LEN`].
    #[error("image metadata is {len} bytes, more than the limit of {max} bytes")]
    MetadataTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A metadata block's header version is not 0.
    #[error("metadata block at offset {offset} has header version {version}, expected 0")]
    BadMetadataVersion {
        /// The version field.
        version: u32,
        /// Offset of the block.
        offset: u64,
    },
    /// The metadata is not the JSON object sysupgrade expects.
    #[error("image metadata is not valid: {message}")]
    BadJson {
        /// What serde_json said.
        message: String,
    },
    /// More than [`MAX_BLOCKS`] blocks.
    #[error("image has more than {max} fwtool blocks")]
    TooManyBlocks {
        /// The limit.
        max: usize,
    },
    /// The blocks together take more than [`TAIL_LEN`] bytes.
    #[error("fwtool blocks take {len} bytes at the end of the image, more than the limit of {max}")]
    BlocksTooLarge {
        /// Bytes taken.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A compat_version is not `major.minor`.
    #[error("compat_version `{value}` is not of the form `major.minor` (like `1.0`)")]
    BadCompatVersion {
        /// The start of the value.
        value: String,
    },
}

/// The fwtool CRC32: reflected polynomial 0xEDB88320, start 0xFFFFFFFF, no final XOR.
///
/// That is the bitwise complement of the usual (zlib) CRC32: `Crc::new()` fed `data` has
/// `value() == !crc32fast::hash(data)`. It is computed here eight bytes at a time over 8 KiB of
/// tables built at compile time, instead of by a crate with larger tables and SIMD paths: the
/// router binary is size-bound, and this keeps the CRC faster than the SHA-512 that checking the
/// image's signature runs over the same bytes (docs/benchmarks.md).
///
/// ```
/// use attendant_proto::fwtool::Crc;
///
/// let mut crc = Crc::new();
/// crc.update(b"123456789");
/// assert_eq!(crc.value(), !0xCBF4_3926); // the zlib CRC32 of "123456789", complemented
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crc {
    value: u32,
}

/// Slicing-by-8 tables: `CRC_TABLES[0][b]` is the register after shifting byte `b` through the
/// polynomial; `CRC_TABLES[k][b]` the same followed by `k` zero bytes.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time, where an index out of range fails the build"
)]
const CRC_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut byte = 0;
    while byte < 256 {
        let mut register = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            register = if register & 1 == 1 {
                (register >> 1) ^ 0xEDB8_8320
            } else {
                register >> 1
            };
            bit += 1;
        }
        tables[0][byte] = register;
        byte += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut byte = 0;
        while byte < 256 {
            let previous = tables[k - 1][byte];
            tables[k][byte] = (previous >> 8) ^ tables[0][(previous & 0xFF) as usize];
            byte += 1;
        }
        k += 1;
    }
    tables
};

/// `CRC_TABLES[k][byte]`.
#[expect(
    clippy::indexing_slicing,
    reason = "k is a constant below 8 at every call and a u8 always indexes a 256-entry table"
)]
fn crc_entry(k: usize, byte: u8) -> u32 {
    CRC_TABLES[k][usize::from(byte)]
}

impl Default for Crc {
    fn default() -> Self {
        Self { value: 0xFFFF_FFFF }
    }
}

impl Crc {
    /// A CRC over no bytes (value 0xFFFFFFFF).
    pub fn new() -> Self {
        Self::default()
    }

    /// Continue from a CRC value, for example one read from a trailer.
    pub fn from_value(value: u32) -> Self {
        Self { value }
    }

    /// Feed bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        let (words, rest) = bytes.as_chunks::<8>();
        let mut crc = self.value;
        for &[b0, b1, b2, b3, b4, b5, b6, b7] in words {
            let [l0, l1, l2, l3] = (crc ^ u32::from_le_bytes([b0, b1, b2, b3])).to_le_bytes();
            crc = crc_entry(7, l0)
                ^ crc_entry(6, l1)
                ^ crc_entry(5, l2)
                ^ crc_entry(4, l3)
                ^ crc_entry(3, b4)
                ^ crc_entry(2, b5)
                ^ crc_entry(1, b6)
                ^ crc_entry(0, b7);
        }
        for &byte in rest {
            let [low, ..] = crc.to_le_bytes();
            crc = crc_entry(0, low ^ byte) ^ (crc >> 8);
        }
        self.value = crc;
    }

    /// The CRC of everything fed so far, as fwtool writes it in a trailer.
    pub fn value(&self) -> u32 {
        self.value
    }
}

/// A 16-byte block trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// CRC of every byte before the trailer.
    pub crc: u32,
    /// Block type.
    pub kind: BlockKind,
    /// Block length: payload, metadata header and trailer.
    pub size: u32,
}

impl Trailer {
    /// Parse exactly [`TRAILER_LEN`] bytes. The three pad bytes are ignored, as fwtool does.
    pub fn parse(bytes: &[u8]) -> Result<Self, FwtoolError> {
        let truncated = || FwtoolError::TruncatedTrailer { found: bytes.len() };
        let fields: &[u8; TRAILER_LEN] = bytes.try_into().map_err(|_| truncated())?;
        let (magic, rest) = fields.split_first_chunk::<4>().ok_or_else(truncated)?;
        let (crc, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let (kind, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let (size, _) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let magic = u32::from_be_bytes(*magic);
        if magic != MAGIC {
            return Err(FwtoolError::BadMagic { found: magic });
        }
        let [kind, _pad @ ..] = *kind;
        Ok(Self {
            crc: u32::from_be_bytes(*crc),
            kind: BlockKind::from_byte(kind),
            size: u32::from_be_bytes(*size),
        })
    }

    /// The trailer's bytes (pad zeroed).
    pub fn to_bytes(&self) -> [u8; TRAILER_LEN] {
        let mut out = [0_u8; TRAILER_LEN];
        let fields = [
            MAGIC.to_be_bytes(),
            self.crc.to_be_bytes(),
            [self.kind.to_byte(), 0, 0, 0],
            self.size.to_be_bytes(),
        ];
        for (chunk, field) in out.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&field);
        }
        out
    }
}

/// A block found in an image's tail, its CRC not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockLayout {
    /// Block type.
    pub kind: BlockKind,
    /// Offset of the block's first byte (the metadata header, or the payload).
    pub offset: u64,
    /// Offset of the trailer: the CRC covers the file up to here.
    pub trailer_offset: u64,
    /// The CRC the trailer promises for the bytes before it.
    pub crc: u32,
    /// The payload: the JSON for metadata (after the header), the ucert blob for a signature.
    pub data: Vec<u8>,
}

/// A block whose CRC was checked against the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    layout: BlockLayout,
}

impl Block {
    /// Block type.
    pub fn kind(&self) -> BlockKind {
        self.layout.kind
    }

    /// The payload: the JSON for metadata (after the header), the ucert blob for a signature.
    pub fn data(&self) -> &[u8] {
        &self.layout.data
    }

    /// Offset of the block's first byte.
    pub fn offset(&self) -> u64 {
        self.layout.offset
    }

    /// Offset of the block's trailer.
    pub fn trailer_offset(&self) -> u64 {
        self.layout.trailer_offset
    }

    /// The (checked) CRC of the bytes before the trailer.
    pub fn crc(&self) -> u32 {
        self.layout.crc
    }

    /// Where the block sits.
    pub fn layout(&self) -> &BlockLayout {
        &self.layout
    }
}

/// All blocks of an image in memory, in file order, CRCs checked.
pub fn read_blocks(image: &[u8]) -> Result<Vec<Block>, FwtoolError> {
    let file_len = len_u64(image.len());
    let tail_start = image.len().saturating_sub(TAIL_LEN);
    let tail = image.get(tail_start..).unwrap_or_default();
    let layouts = parse_tail(tail, file_len)?;
    let mut check = CrcCheck::new(layouts, file_len);
    check.update(image)?;
    check.finish()
}

/// The blocks at the end of a `file_len`-byte file, given its last bytes `tail`, in file order.
///
/// Pass the last [`TAIL_LEN`] bytes, or the whole file when it is shorter. CRCs are not checked
/// here; stream the file through a [`CrcCheck`] made from the result.
pub fn parse_tail(tail: &[u8], file_len: u64) -> Result<Vec<BlockLayout>, FwtoolError> {
    let tail_len = len_u64(tail.len());
    let base = file_len
        .checked_sub(tail_len)
        .ok_or(FwtoolError::TailLongerThanFile {
            tail_len: tail.len(),
            file_len,
        })?;
    let slice = |from: u64, to: u64| -> Result<&[u8], FwtoolError> {
        let from = usize::try_from(from.checked_sub(base).ok_or(FwtoolError::TailTooShort {
            tail_len: tail.len(),
        })?)
        .map_err(|_| FwtoolError::TailTooShort {
            tail_len: tail.len(),
        })?;
        let to = usize::try_from(to.saturating_sub(base)).unwrap_or(usize::MAX);
        tail.get(from..to).ok_or(FwtoolError::TailTooShort {
            tail_len: tail.len(),
        })
    };
    let trailer_len = len_u64(TRAILER_LEN);
    let mut blocks = Vec::new();
    let mut end = file_len;
    while let Some(trailer_offset) = end.checked_sub(trailer_len) {
        let bytes = slice(trailer_offset, end)?;
        let trailer = match Trailer::parse(bytes) {
            Ok(trailer) => trailer,
            Err(_) if end == file_len => {
                if let Some(from_end) = magic_in_last_bytes(bytes) {
                    return Err(FwtoolError::TruncatedImage { from_end });
                }
                break;
            }
            Err(_) => break,
        };
        if blocks.len() == MAX_BLOCKS {
            return Err(FwtoolError::TooManyBlocks { max: MAX_BLOCKS });
        }
        let kind = trailer.kind;
        let min = TRAILER_LEN + kind.header_len();
        let size = usize::try_from(trailer.size).unwrap_or(usize::MAX);
        let Some(data_len) = size.checked_sub(min) else {
            return Err(FwtoolError::BlockTooSmall {
                kind,
                size: trailer.size,
                min,
                offset: trailer_offset,
            });
        };
        if data_len > kind.max_data_len() {
            return Err(FwtoolError::BlockTooLarge {
                kind,
                len: data_len,
                max: kind.max_data_len(),
                offset: trailer_offset,
            });
        }
        let offset =
            end.checked_sub(u64::from(trailer.size))
                .ok_or(FwtoolError::BlockBeyondFile {
                    kind,
                    size: trailer.size,
                    available: end,
                    offset: trailer_offset,
                })?;
        let used = file_len.saturating_sub(offset);
        if used > len_u64(TAIL_LEN) {
            return Err(FwtoolError::BlocksTooLarge {
                len: used,
                max: TAIL_LEN,
            });
        }
        let block = slice(offset, trailer_offset)?;
        let (header, data) =
            block
                .split_at_checked(kind.header_len())
                .ok_or(FwtoolError::TailTooShort {
                    tail_len: tail.len(),
                })?;
        if let Some(version) = header.first_chunk::<4>() {
            let version = u32::from_be_bytes(*version);
            if version != 0 {
                return Err(FwtoolError::BadMetadataVersion { version, offset });
            }
        }
        blocks.push(BlockLayout {
            kind,
            offset,
            trailer_offset,
            crc: trailer.crc,
            data: data.to_vec(),
        });
        end = offset;
    }
    blocks.reverse();
    Ok(blocks)
}

/// Length of the image before its first block (the whole file when there is none).
pub fn image_len_without_blocks(layouts: &[BlockLayout], file_len: u64) -> u64 {
    layouts.first().map_or(file_len, |layout| layout.offset)
}

/// Length of the message the image's ucert signature covers: everything before the last block
/// when that is a signature (what `fwtool -T -s /dev/null` writes), `None` when the image ends
/// in another kind of block or none.
pub fn signed_len(layouts: &[BlockLayout]) -> Option<u64> {
    layouts
        .last()
        .filter(|layout| layout.kind == BlockKind::Signature)
        .map(|layout| layout.offset)
}

/// Checks the CRCs of [`parse_tail`]'s layouts while the whole file streams through once.
#[derive(Debug, Clone)]
pub struct CrcCheck {
    layouts: Vec<BlockLayout>,
    next: usize,
    position: u64,
    file_len: u64,
    crc: Crc,
}

impl CrcCheck {
    /// Prepare to check `layouts` of a `file_len`-byte file.
    pub fn new(layouts: Vec<BlockLayout>, file_len: u64) -> Self {
        Self {
            layouts,
            next: 0,
            position: 0,
            file_len,
            crc: Crc::new(),
        }
    }

    /// Feed the next bytes of the file; fails as soon as a trailer's CRC does not match.
    pub fn update(&mut self, mut chunk: &[u8]) -> Result<(), FwtoolError> {
        let end = self.position.saturating_add(len_u64(chunk.len()));
        if end > self.file_len {
            return Err(FwtoolError::LengthMismatch {
                expected: self.file_len,
                found: end,
            });
        }
        while let Some(layout) = self.layouts.get(self.next) {
            let Some(until) = layout.trailer_offset.checked_sub(self.position) else {
                break;
            };
            let Some((head, rest)) = usize::try_from(until)
                .ok()
                .and_then(|at| chunk.split_at_checked(at))
            else {
                break;
            };
            self.crc.update(head);
            self.position = layout.trailer_offset;
            let found = self.crc.value();
            if found != layout.crc {
                return Err(FwtoolError::CrcMismatch {
                    expected: layout.crc,
                    found,
                    offset: layout.trailer_offset,
                });
            }
            self.next = self.next.saturating_add(1);
            chunk = rest;
        }
        self.crc.update(chunk);
        self.position = self.position.saturating_add(len_u64(chunk.len()));
        Ok(())
    }

    /// After the last byte: the blocks, CRCs checked.
    pub fn finish(self) -> Result<Vec<Block>, FwtoolError> {
        if self.position != self.file_len || self.next != self.layouts.len() {
            return Err(FwtoolError::LengthMismatch {
                expected: self.file_len,
                found: self.position,
            });
        }
        Ok(self
            .layouts
            .into_iter()
            .map(|layout| Block { layout })
            .collect())
    }
}

/// The bytes `fwtool -I`/`-S` would append for a block of `kind` with payload `data` to a file
/// whose bytes so far give `crc`. Metadata gets the 8-byte header (version 0, flags 0).
pub fn block_bytes(kind: BlockKind, data: &[u8], crc: &Crc) -> Result<Vec<u8>, FwtoolError> {
    if data.len() > kind.max_data_len() {
        return Err(match kind {
            BlockKind::Metadata => FwtoolError::MetadataTooLarge {
                len: data.len(),
                max: MAX_METADATA_LEN,
            },
            _ => FwtoolError::BlockTooLarge {
                kind,
                len: data.len(),
                max: kind.max_data_len(),
                offset: 0,
            },
        });
    }
    let header_len = kind.header_len();
    let size = data
        .len()
        .saturating_add(header_len)
        .saturating_add(TRAILER_LEN);
    let mut out = Vec::with_capacity(size);
    out.resize(header_len, 0);
    out.extend_from_slice(data);
    let mut crc = crc.clone();
    crc.update(&out);
    let trailer = Trailer {
        crc: crc.value(),
        kind,
        size: u32::try_from(size).unwrap_or(u32::MAX),
    };
    out.extend_from_slice(&trailer.to_bytes());
    Ok(out)
}

/// Append a block to an image in memory (`fwtool -S` for a signature, `-I` for metadata JSON).
pub fn append_block(image: &mut Vec<u8>, kind: BlockKind, data: &[u8]) -> Result<(), FwtoolError> {
    let mut crc = Crc::new();
    crc.update(image);
    let bytes = block_bytes(kind, data, &crc)?;
    image.extend_from_slice(&bytes);
    Ok(())
}

/// Append `metadata` as a metadata block (`fwtool -I`).
pub fn append_metadata(image: &mut Vec<u8>, metadata: &Metadata) -> Result<(), FwtoolError> {
    append_block(image, BlockKind::Metadata, &metadata.to_json()?)
}

/// The image metadata JSON (`include/image-commands.mk` `metadata_json`). Unknown keys are kept
/// in `other`, so parsing and serializing again keeps every value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Board names this image installs on (when `compat_version` is `1.0`; otherwise a warning
    /// for devices that do not know `compat_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_devices: Option<Vec<String>>,
    /// Board names this image installs on when `compat_version` is not `1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_supported_devices: Option<Vec<String>>,
    /// The image's configuration compatibility, `major.minor` (missing means `1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat_version: Option<String>,
    /// Text shown when the compat_version check refuses the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat_message: Option<String>,
    /// Format version of this JSON (`1.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<String>,
    /// The release the image was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ImageVersion>,
    /// Every other key, kept as found.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The `version` object of the metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageVersion {
    /// Distribution, `OpenWrt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dist: Option<String>,
    /// Release, `24.10.1` or `SNAPSHOT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Source revision, `r28597-0425664679`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Target/subtarget, `mediatek/filogic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Device (profile) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// Every other key, kept as found.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Metadata {
    /// Parse metadata JSON (at most [`MAX_METADATA_LEN`] bytes).
    pub fn parse(bytes: &[u8]) -> Result<Self, FwtoolError> {
        json::decode(
            bytes,
            MAX_METADATA_LEN,
            |len| FwtoolError::MetadataTooLarge {
                len,
                max: MAX_METADATA_LEN,
            },
            |error| FwtoolError::BadJson {
                message: error.to_string(),
            },
        )
    }

    /// The JSON, as fwtool would embed it.
    pub fn to_json(&self) -> Result<Vec<u8>, FwtoolError> {
        serde_json::to_vec(self).map_err(|error| FwtoolError::BadJson {
            message: error.to_string(),
        })
    }
}

/// A `compat_version`: `major.minor`, both decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompatVersion {
    /// A change here means the image cannot be flashed with sysupgrade.
    pub major: u32,
    /// A change here means the configuration cannot be kept.
    pub minor: u32,
}

impl CompatVersion {
    /// `1.0`, what sysupgrade assumes when a device or image says nothing.
    pub const DEFAULT: Self = Self { major: 1, minor: 0 };

    /// Parse `major.minor`.
    pub fn parse(text: &str) -> Result<Self, FwtoolError> {
        let bad = || FwtoolError::BadCompatVersion {
            value: excerpt(text, MAX_VALUE_CHARS),
        };
        let (major, minor) = text.split_once('.').ok_or_else(bad)?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse::<u32>().map_err(|_| bad())
        };
        Ok(Self {
            major: number(major)?,
            minor: number(minor)?,
        })
    }
}

impl Default for CompatVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for CompatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What sysupgrade knows about the running device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCompat {
    /// `/tmp/sysinfo/board_name`.
    pub board_name: String,
    /// `/tmp/sysinfo/oem_name`, when present and not empty.
    pub oem_name: Option<String>,
    /// uci `system.@system[0].compat_version` ([`CompatVersion::DEFAULT`] when unset).
    pub compat_version: CompatVersion,
}

/// The sysupgrade options that change the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Configuration is kept (no `sysupgrade -n`; `SAVE_CONFIG=1`).
    pub keep_settings: bool,
    /// `--ignore-minor-compat-version` (`IGNORE_MINOR_COMPAT=1`).
    pub ignore_minor_compat: bool,
    /// The target sets `REQUIRE_IMAGE_METADATA=1`.
    pub require_metadata: bool,
}

/// The outcome of [`check_image`]; `Display` follows sysupgrade's messages, without its advice
/// (`sysupgrade -n`, `-F`), which the caller words for its own users.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compatibility {
    /// The image lists the device and the compat_version allows the upgrade.
    Ok,
    /// The image has no metadata; a refusal only when `required`.
    NoMetadata {
        /// The target requires metadata.
        required: bool,
    },
    /// The image's compat_version is not `major.minor`.
    InvalidCompatVersion {
        /// The value found.
        value: String,
    },
    /// The device list sysupgrade reads is missing from the metadata.
    MissingDeviceList {
        /// `supported_devices` or `new_supported_devices`.
        field: &'static str,
    },
    /// The device is not in the image's device list.
    BoardNotSupported {
        /// The device's board name.
        board: String,
        /// The image's device list.
        supported: Vec<String>,
    },
    /// The major compat_version differs: sysupgrade cannot install the image at all.
    MajorChange {
        /// The device's compat_version.
        device: CompatVersion,
        /// The image's compat_version.
        image: CompatVersion,
        /// The image's compat_message.
        message: Option<String>,
    },
    /// The compat_version differs: the image installs only without keeping the configuration.
    MinorChangeNeedsNoKeep {
        /// The device's compat_version.
        device: CompatVersion,
        /// The image's compat_version.
        image: CompatVersion,
        /// The image's compat_message.
        message: Option<String>,
    },
    /// The image matched the device's OEM name (vendor firmware): the configuration cannot be
    /// kept.
    OemNeedsNoKeep {
        /// The OEM name that matched.
        oem_name: String,
        /// The image's compat_message.
        message: Option<String>,
    },
}

impl Compatibility {
    /// True when sysupgrade would accept the image.
    pub fn is_compatible(&self) -> bool {
        matches!(self, Self::Ok | Self::NoMetadata { required: false })
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let compat_message = |f: &mut fmt::Formatter<'_>, message: &Option<String>| match message
            .as_deref()
            .filter(|text| !text.is_empty())
        {
            Some(text) => write!(f, "\n\n{text}"),
            None => Ok(()),
        };
        match self {
            Self::Ok => f.write_str("the image supports this device"),
            Self::NoMetadata { required: false } => f.write_str("image metadata not present"),
            Self::NoMetadata { required: true } => {
                f.write_str("image metadata not present, and this target requires it")
            }
            Self::InvalidCompatVersion { value } => write!(
                f,
                "image compat_version `{value}` is not of the form `major.minor`"
            ),
            Self::MissingDeviceList { field } => {
                write!(f, "invalid image metadata: `{field}` is missing")
            }
            Self::BoardNotSupported { board, supported } => {
                write!(
                    f,
                    "device `{board}` not supported by this image\n\nsupported devices:"
                )?;
                for device in supported {
                    write!(f, " `{device}`")?;
                }
                Ok(())
            }
            Self::MajorChange {
                device,
                image,
                message,
            } => {
                write!(
                    f,
                    "the device is supported, but this image is incompatible for sysupgrade \
                     based on the image version (`{device}`->`{image}`)"
                )?;
                compat_message(f, message)
            }
            Self::MinorChangeNeedsNoKeep {
                device,
                image,
                message,
            } => {
                write!(
                    f,
                    "the device is supported, but the config is incompatible to the new image \
                     (`{device}`->`{image}`)"
                )?;
                compat_message(f, message)
            }
            Self::OemNeedsNoKeep { oem_name, message } => {
                write!(
                    f,
                    "the image is for the OEM device `{oem_name}`: the config is incompatible \
                     to it (`OpenWrt`->`OEM`)"
                )?;
                compat_message(f, message)
            }
        }
    }
}

/// sysupgrade's `fwtool_check_image` decision for `metadata` (`None`: the image has none).
///
/// As in `/lib/upgrade/fwtool.sh`: a missing image compat_version means `1.0`; the device list is
/// `new_supported_devices` when the image's compat_version is not the string `1.0`, else
/// `supported_devices`; the first entry equal to the board name or the OEM name decides. A major
/// change always refuses (even with `ignore_minor_compat`). Any other difference, or a match on
/// the OEM name, refuses only while keeping settings and without `ignore_minor_compat`.
/// (fwtool.sh compares the whole compat strings for the minor check, `${v#.*}` strips nothing;
/// with equal majors that is the same as comparing minors.)
pub fn check_image(
    metadata: Option<&Metadata>,
    device: &DeviceCompat,
    options: CheckOptions,
) -> Compatibility {
    let Some(metadata) = metadata else {
        return Compatibility::NoMetadata {
            required: options.require_metadata,
        };
    };
    let raw = metadata
        .compat_version
        .as_deref()
        .filter(|text| !text.is_empty())
        .unwrap_or("1.0");
    let Ok(image) = CompatVersion::parse(raw) else {
        return Compatibility::InvalidCompatVersion {
            value: excerpt(raw, MAX_VALUE_CHARS),
        };
    };
    let (field, list) = if raw == "1.0" {
        ("supported_devices", &metadata.supported_devices)
    } else {
        ("new_supported_devices", &metadata.new_supported_devices)
    };
    let Some(list) = list else {
        return Compatibility::MissingDeviceList { field };
    };
    let oem = device.oem_name.as_deref().filter(|name| !name.is_empty());
    let Some(matched) = list
        .iter()
        .find(|entry| **entry == device.board_name || Some(entry.as_str()) == oem)
    else {
        return Compatibility::BoardNotSupported {
            board: device.board_name.clone(),
            supported: list.clone(),
        };
    };
    let message = metadata.compat_message.clone();
    if device.compat_version.major != image.major {
        return Compatibility::MajorChange {
            device: device.compat_version,
            image,
            message,
        };
    }
    let oem_match = Some(matched.as_str()) == oem;
    if options.keep_settings && !options.ignore_minor_compat {
        if oem_match {
            return Compatibility::OemNeedsNoKeep {
                oem_name: matched.clone(),
                message,
            };
        }
        if device.compat_version != image {
            return Compatibility::MinorChangeNeedsNoKeep {
                device: device.compat_version,
                image,
                message,
            };
        }
    }
    Compatibility::Ok
}

/// Where the `FWx0` magic sits in the last trailer-sized window when not at its start: the
/// distance from the end of the file.
fn magic_in_last_bytes(window: &[u8]) -> Option<usize> {
    let magic = MAGIC.to_be_bytes();
    window
        .windows(magic.len())
        .enumerate()
        .skip(1)
        .find(|(_, bytes)| *bytes == magic)
        .map(|(at, _)| window.len().saturating_sub(at))
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Metadata {
        Metadata::parse(
            br#"{"supported_devices":["glinet,gl-mt6000"],"compat_version":"1.0",
                "metadata_version":"1.1","custom":{"a":1},
                "version":{"dist":"OpenWrt","version":"24.10.1","revision":"r28597-0425664679",
                "target":"mediatek/filogic","board":"glinet_gl-mt6000","extra":true}}"#,
        )
        .unwrap()
    }

    fn signed_image() -> Vec<u8> {
        let mut image: Vec<u8> = (0..5000_u32).map(|i| (i * 7 % 256) as u8).collect();
        append_metadata(&mut image, &metadata()).unwrap();
        append_block(&mut image, BlockKind::Signature, b"ucert blob").unwrap();
        image
    }

    fn device(board: &str, compat: &str) -> DeviceCompat {
        DeviceCompat {
            board_name: board.to_owned(),
            oem_name: None,
            compat_version: CompatVersion::parse(compat).unwrap(),
        }
    }

    #[test]
    fn crc_is_complement_of_zlib_crc32() {
        let mut crc = Crc::new();
        assert_eq!(crc.value(), 0xFFFF_FFFF);
        crc.update(b"123456789");
        // zlib CRC32 of "123456789" is 0xCBF43926.
        assert_eq!(crc.value(), !0xCBF4_3926);
        assert_eq!(crc.value(), !crc32fast::hash(b"123456789"));
        let mut resumed = Crc::new();
        resumed.update(b"1234");
        let mut resumed = Crc::from_value(resumed.value());
        resumed.update(b"56789");
        assert_eq!(resumed.value(), crc.value());
    }

    proptest::proptest! {
        #[test]
        fn crc_matches_zlib_crc32_complemented_at_any_split(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..4096),
            split in 0usize..4096,
        ) {
            let split = split.min(data.len());
            let (head, tail) = data.split_at(split);
            let mut crc = Crc::new();
            crc.update(head);
            let mut crc = Crc::from_value(crc.value());
            crc.update(tail);
            proptest::prop_assert_eq!(crc.value(), !crc32fast::hash(&data));
        }
    }

    #[test]
    fn reads_back_metadata_and_signature() {
        let image = signed_image();
        let blocks = read_blocks(&image).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].kind(), BlockKind::Metadata);
        assert_eq!(blocks[0].offset(), 5000);
        assert_eq!(Metadata::parse(blocks[0].data()).unwrap(), metadata());
        assert_eq!(blocks[1].kind(), BlockKind::Signature);
        assert_eq!(blocks[1].data(), b"ucert blob");
        assert_eq!(blocks[1].trailer_offset(), image.len() as u64 - 16);
        let layouts: Vec<_> = blocks.iter().map(|b| b.layout().clone()).collect();
        assert_eq!(image_len_without_blocks(&layouts, image.len() as u64), 5000);
        assert_eq!(signed_len(&layouts), Some(blocks[1].offset()));
    }

    #[test]
    fn image_without_blocks_has_none() {
        assert_eq!(read_blocks(&[0xff; 100]).unwrap(), vec![]);
        assert_eq!(read_blocks(&[]).unwrap(), vec![]);
    }

    #[test]
    fn rejects_corrupted_crc() {
        let mut image = signed_image();
        image[10] ^= 0xff;
        let err = read_blocks(&image).unwrap_err();
        assert!(
            matches!(err, FwtoolError::CrcMismatch { offset, .. } if offset > 5000),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("fwtool CRC mismatch for the trailer at offset")
        );
    }

    #[test]
    fn rejects_truncated_trailer() {
        let image = signed_image();
        let err = read_blocks(&image[..image.len() - 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image ends inside a fwtool trailer: the `FWx0` magic is 13 bytes before the end, a \
             trailer is 16; the image is truncated"
        );
        let trailer = &image[image.len() - 16..];
        for len in 0..16 {
            assert_eq!(
                Trailer::parse(&trailer[..len]),
                Err(FwtoolError::TruncatedTrailer { found: len })
            );
        }
    }

    #[test]
    fn every_proper_prefix_of_a_signed_image_loses_or_fails() {
        let image = signed_image();
        let full = read_blocks(&image).unwrap();
        for len in 0..image.len() {
            if let Ok(blocks) = read_blocks(&image[..len]) {
                assert!(blocks.len() < full.len(), "prefix {len} read as complete");
            }
        }
    }

    #[test]
    fn streaming_check_matches_in_memory_read() {
        let image = signed_image();
        let tail = &image[image.len().saturating_sub(TAIL_LEN)..];
        let layouts = parse_tail(tail, image.len() as u64).unwrap();
        let mut check = CrcCheck::new(layouts, image.len() as u64);
        for chunk in image.chunks(333) {
            check.update(chunk).unwrap();
        }
        assert_eq!(check.finish().unwrap(), read_blocks(&image).unwrap());
    }

    #[test]
    fn rejects_short_tail_and_short_stream() {
        let image = signed_image();
        let err = parse_tail(&image[image.len() - 40..], image.len() as u64).unwrap_err();
        assert_eq!(err, FwtoolError::TailTooShort { tail_len: 40 });
        let layouts = parse_tail(&image, image.len() as u64).unwrap();
        let mut check = CrcCheck::new(layouts, image.len() as u64);
        check.update(&image[..100]).unwrap();
        assert!(matches!(
            check.finish(),
            Err(FwtoolError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn rejects_bad_sizes() {
        let mut image = vec![0_u8; 64];
        let trailer = Trailer {
            crc: 0,
            kind: BlockKind::Metadata,
            size: 20,
        };
        image.extend_from_slice(&trailer.to_bytes());
        assert!(matches!(
            read_blocks(&image),
            Err(FwtoolError::BlockTooSmall { min: 24, .. })
        ));
        let len = image.len();
        image[len - 4..].copy_from_slice(&1000_u32.to_be_bytes());
        assert!(matches!(
            read_blocks(&image),
            Err(FwtoolError::BlockBeyondFile { .. })
        ));
        image[len - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            read_blocks(&image),
            Err(FwtoolError::BlockTooLarge { .. })
        ));
    }

    #[test]
    fn rejects_bad_metadata_header_version() {
        let mut image = vec![0_u8; 10];
        let mut block = vec![0, 0, 0, 1, 0, 0, 0, 0];
        block.extend_from_slice(b"{}");
        let mut crc = Crc::new();
        crc.update(&image);
        crc.update(&block);
        image.extend_from_slice(&block);
        let trailer = Trailer {
            crc: crc.value(),
            kind: BlockKind::Metadata,
            size: 26,
        };
        image.extend_from_slice(&trailer.to_bytes());
        assert_eq!(
            read_blocks(&image).unwrap_err().to_string(),
            "metadata block at offset 10 has header version 1, expected 0"
        );
    }

    #[test]
    fn rejects_too_many_blocks() {
        let mut image = vec![1_u8; 10];
        for _ in 0..=MAX_BLOCKS {
            append_block(&mut image, BlockKind::Unknown(7), b"x").unwrap();
        }
        assert_eq!(
            read_blocks(&image),
            Err(FwtoolError::TooManyBlocks { max: MAX_BLOCKS })
        );
    }

    #[test]
    fn refuses_to_write_oversized_blocks() {
        let mut image = Vec::new();
        let err = append_block(&mut image, BlockKind::Signature, &[0; 1025]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "signature block at offset 0 holds 1025 bytes, more than the limit of 1024"
        );
        let err = append_block(&mut image, BlockKind::Metadata, &[b' '; 30 * 1024 + 1]);
        assert!(matches!(err, Err(FwtoolError::MetadataTooLarge { .. })));
        assert!(image.is_empty());
    }

    #[test]
    fn metadata_keeps_unknown_keys() {
        let text =
            br#"{"supported_devices":["a"],"x":[1,2],"version":{"dist":"OpenWrt","y":null}}"#;
        let parsed = Metadata::parse(text).unwrap();
        let again: Value = serde_json::from_slice(&parsed.to_json().unwrap()).unwrap();
        let original: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(again, original);
        assert!(matches!(
            Metadata::parse(b"[1]"),
            Err(FwtoolError::BadJson { .. })
        ));
    }

    #[test]
    fn parses_compat_versions() {
        assert_eq!(
            CompatVersion::parse("1.1").unwrap(),
            CompatVersion { major: 1, minor: 1 }
        );
        for bad in ["", "1", "1.", ".1", "a.b", "1.0.0", "+1.0", "1.-0"] {
            assert!(CompatVersion::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CompatVersion::parse("x").unwrap_err().to_string(),
            "compat_version `x` is not of the form `major.minor` (like `1.0`)"
        );
    }

    #[test]
    fn accepts_listed_board() {
        let result = check_image(
            Some(&metadata()),
            &device("glinet,gl-mt6000", "1.0"),
            CheckOptions {
                keep_settings: true,
                ..CheckOptions::default()
            },
        );
        assert_eq!(result, Compatibility::Ok);
        assert!(result.is_compatible());
    }

    #[test]
    fn refuses_unlisted_board() {
        let result = check_image(
            Some(&metadata()),
            &device("tplink,archer-c7-v2", "1.0"),
            CheckOptions::default(),
        );
        assert!(!result.is_compatible());
        assert_eq!(
            result.to_string(),
            "device `tplink,archer-c7-v2` not supported by this image\n\nsupported devices: \
             `glinet,gl-mt6000`"
        );
    }

    #[test]
    fn missing_metadata_refuses_only_when_required() {
        let dev = device("a", "1.0");
        assert!(check_image(None, &dev, CheckOptions::default()).is_compatible());
        let required = CheckOptions {
            require_metadata: true,
            ..CheckOptions::default()
        };
        assert_eq!(
            check_image(None, &dev, required),
            Compatibility::NoMetadata { required: true }
        );
    }

    #[test]
    fn compat_changes_follow_sysupgrade() {
        let mut meta = Metadata {
            supported_devices: Some(vec!["warning: use -n".to_owned()]),
            new_supported_devices: Some(vec!["ubnt,edgerouter-x".to_owned()]),
            compat_version: Some("2.0".to_owned()),
            compat_message: Some("Partition layout changed".to_owned()),
            ..Metadata::default()
        };
        let keep = CheckOptions {
            keep_settings: true,
            ..CheckOptions::default()
        };
        let old = device("ubnt,edgerouter-x", "1.0");
        let result = check_image(Some(&meta), &old, keep);
        assert_eq!(
            result.to_string(),
            "the device is supported, but this image is incompatible for sysupgrade based on the \
             image version (`1.0`->`2.0`)\n\nPartition layout changed"
        );
        let ignore = CheckOptions {
            ignore_minor_compat: true,
            ..keep
        };
        assert!(matches!(
            check_image(Some(&meta), &old, ignore),
            Compatibility::MajorChange { .. }
        ));

        meta.compat_version = Some("1.1".to_owned());
        meta.compat_message = None;
        let result = check_image(Some(&meta), &old, keep);
        assert_eq!(
            result.to_string(),
            "the device is supported, but the config is incompatible to the new image \
             (`1.0`->`1.1`)"
        );
        assert_eq!(check_image(Some(&meta), &old, ignore), Compatibility::Ok);
        assert_eq!(
            check_image(Some(&meta), &old, CheckOptions::default()),
            Compatibility::Ok
        );

        meta.new_supported_devices = None;
        assert_eq!(
            check_image(Some(&meta), &old, keep),
            Compatibility::MissingDeviceList {
                field: "new_supported_devices"
            }
        );
        meta.compat_version = Some("one".to_owned());
        assert!(matches!(
            check_image(Some(&meta), &old, keep),
            Compatibility::InvalidCompatVersion { .. }
        ));
    }

    #[test]
    fn oem_match_needs_no_keep() {
        let meta = Metadata {
            supported_devices: Some(vec!["vendor-fw".to_owned()]),
            ..Metadata::default()
        };
        let dev = DeviceCompat {
            oem_name: Some("vendor-fw".to_owned()),
            ..device("openwrt,board", "1.0")
        };
        let keep = CheckOptions {
            keep_settings: true,
            ..CheckOptions::default()
        };
        assert!(matches!(
            check_image(Some(&meta), &dev, keep),
            Compatibility::OemNeedsNoKeep { .. }
        ));
        assert_eq!(
            check_image(Some(&meta), &dev, CheckOptions::default()),
            Compatibility::Ok
        );
    }
}
