//! `fwtool::read_blocks` on a whole sysupgrade image (downloaded from a server). Invariants:
//! - streaming the image through `parse_tail` + `CrcCheck` in arbitrary chunks (what the agent
//!   does with a download) gives exactly what `read_blocks` gives;
//! - the blocks tile the end of the file: each trailer ends where the next block starts, the last
//!   one at the end of the file, and no payload exceeds its kind's limit;
//! - stripping the blocks and appending them again with `append_block` gives an image of the same
//!   length whose blocks read back with the same kinds, offsets and payloads.
#![no_main]

use attendant_fuzz::{assert_error_text, fail};
use attendant_proto::fwtool::{
    Block, CrcCheck, FwtoolError, MAX_BLOCKS, TAIL_LEN, TRAILER_LEN, append_block,
    image_len_without_blocks, parse_tail, read_blocks,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|image: &[u8]| {
    let whole = read_blocks(image);
    let streamed = stream(image);
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "streamed blocks differ from read_blocks"),
        (Err(_), Err(_)) => {}
        _ => fail(&format!(
            "read_blocks and the streamed check disagree: {whole:?} vs {streamed:?}"
        )),
    }
    let blocks = match whole {
        Ok(blocks) => blocks,
        Err(error) => {
            assert_error_text(&error);
            return;
        }
    };
    assert!(blocks.len() <= MAX_BLOCKS, "{} blocks", blocks.len());

    let file_len = u64::try_from(image.len()).unwrap_or(u64::MAX);
    let trailer_len = u64::try_from(TRAILER_LEN).unwrap_or(u64::MAX);
    let mut end = file_len;
    for block in blocks.iter().rev() {
        assert_eq!(
            block.trailer_offset().checked_add(trailer_len),
            Some(end),
            "block trailer does not end where the next block starts: {block:?}"
        );
        let room = block.trailer_offset().checked_sub(block.offset());
        let data_len = u64::try_from(block.data().len()).unwrap_or(u64::MAX);
        assert!(
            room.is_some_and(|room| data_len <= room),
            "payload does not fit between block start and trailer: {block:?}"
        );
        assert!(block.data().len() <= block.kind().max_data_len());
        end = block.offset();
    }
    assert!(file_len - end <= u64::try_from(TAIL_LEN).unwrap_or(u64::MAX));
    let layouts: Vec<_> = blocks.iter().map(|block| block.layout().clone()).collect();
    assert_eq!(image_len_without_blocks(&layouts, file_len), end);

    let Some(prefix) = usize::try_from(end).ok().and_then(|end| image.get(..end)) else {
        fail("first block offset is outside the image");
    };
    let mut rebuilt = prefix.to_vec();
    for block in &blocks {
        if let Err(error) = append_block(&mut rebuilt, block.kind(), block.data()) {
            fail(&format!(
                "a block that was read cannot be appended again: {error}"
            ));
        }
    }
    assert_eq!(
        rebuilt.len(),
        image.len(),
        "rebuilt image has another length"
    );
    match read_blocks(&rebuilt) {
        Ok(again) => assert_eq!(
            shape(&again),
            shape(&blocks),
            "rebuilt image reads differently"
        ),
        Err(error) => fail(&format!("rebuilt image does not read: {error}")),
    }
});

/// What the agent does: the tail first, then every byte through the CRC check, in chunks whose
/// size the input chooses.
fn stream(image: &[u8]) -> Result<Vec<Block>, FwtoolError> {
    let file_len = u64::try_from(image.len()).unwrap_or(u64::MAX);
    let tail = image
        .get(image.len().saturating_sub(TAIL_LEN)..)
        .unwrap_or_default();
    let layouts = parse_tail(tail, file_len)?;
    let chunk = usize::from(image.first().copied().unwrap_or(0) % 61) + 1;
    let mut check = CrcCheck::new(layouts, file_len);
    for piece in image.chunks(chunk) {
        check.update(piece)?;
    }
    check.finish()
}

/// The parts of a block that survive rewriting (the CRC changes when a metadata header's flags
/// or a trailer's pad bytes were not zero).
fn shape(blocks: &[Block]) -> Vec<(u8, u64, u64, &[u8])> {
    blocks
        .iter()
        .map(|block| {
            (
                block.kind().to_byte(),
                block.offset(),
                block.trailer_offset(),
                block.data(),
            )
        })
        .collect()
}
