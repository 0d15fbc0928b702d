//! A gzip writer using stored (uncompressed) deflate blocks.
//!
//! Fixture images named `.img.gz` and the `Packages.gz` indexes must be real gzip streams
//! (RFC 1952) so tools and clients can read them, but they are small, so compression is not
//! worth a dependency. Output is deterministic: mtime 0, no file name, OS "unknown".

/// Largest payload of one stored deflate block.
const MAX_STORED_BLOCK: usize = 65_535;

/// `data` as a gzip stream with stored blocks.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let blocks = data.len() / MAX_STORED_BLOCK + 1;
    let mut out = Vec::with_capacity(data.len() + blocks * 5 + 18);
    // Magic, CM=deflate, no flags, mtime 0, XFL 0, OS 255 (unknown).
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    let mut chunks = data.chunks(MAX_STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        // An empty stream still needs one final (empty) block.
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = u8::from(chunks.peek().is_none());
        // The chunk length is at most MAX_STORED_BLOCK, so it fits in u16.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.push(last);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32 by definition.
    let size = (data.len() as u64 & 0xffff_ffff) as u32;
    out.extend_from_slice(&size.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gzip")
            .args(["-dc"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        output.stdout
    }

    #[test]
    fn system_gzip_reads_what_we_write() {
        for len in [0, 1, 100, MAX_STORED_BLOCK, MAX_STORED_BLOCK + 1, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(gunzip(&gzip_stored(&data)), data, "length {len}");
        }
    }
}
