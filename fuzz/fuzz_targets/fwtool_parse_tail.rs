//! `fwtool::parse_tail` on the last bytes of an image whose length the input also chooses (the
//! agent reads the tail of a file on disk without loading the whole image). The first 8 input
//! bytes are a little-endian count of bytes before the tail; the rest is the tail. Invariants:
//! the blocks tile the end of the file, stay within `TAIL_LEN` of it, and `signed_len` is the
//! offset of a final signature block.
#![no_main]

use attendant_fuzz::assert_error_text;
use attendant_proto::fwtool::{
    BlockKind, MAX_BLOCKS, TAIL_LEN, TRAILER_LEN, image_len_without_blocks, parse_tail, signed_len,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (before, tail) = match data.split_first_chunk::<8>() {
        Some((before, tail)) => (u64::from_le_bytes(*before) % (1 << 40), tail),
        None => (0, data),
    };
    let file_len = u64::try_from(tail.len())
        .unwrap_or(u64::MAX)
        .saturating_add(before);
    let layouts = match parse_tail(tail, file_len) {
        Ok(layouts) => layouts,
        Err(error) => {
            assert_error_text(&error);
            return;
        }
    };
    assert!(layouts.len() <= MAX_BLOCKS);
    let trailer_len = u64::try_from(TRAILER_LEN).unwrap_or(u64::MAX);
    let mut end = file_len;
    for layout in layouts.iter().rev() {
        assert_eq!(
            layout.trailer_offset.checked_add(trailer_len),
            Some(end),
            "{layout:?}"
        );
        assert!(layout.offset <= layout.trailer_offset, "{layout:?}");
        assert!(
            layout.data.len() <= layout.kind.max_data_len(),
            "{layout:?}"
        );
        end = layout.offset;
    }
    assert!(file_len - end <= u64::try_from(TAIL_LEN).unwrap_or(u64::MAX));
    assert_eq!(image_len_without_blocks(&layouts, file_len), end);
    let expected_signed = layouts
        .last()
        .filter(|layout| layout.kind == BlockKind::Signature)
        .map(|layout| layout.offset);
    assert_eq!(signed_len(&layouts), expected_signed);
});
