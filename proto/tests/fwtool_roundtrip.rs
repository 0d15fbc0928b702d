//! fwtool trailers: a fixture built by an independent implementation (Python + zlib, see
//! `testdata/fwtool/README.md`), images built here, and property tests.

use attendant_proto::fwtool::{
    self, Block, BlockKind, Crc, CrcCheck, FwtoolError, Metadata, TAIL_LEN, Trailer,
};
use proptest::prelude::*;

const FIXTURE: &[u8] = include_bytes!("../testdata/fwtool/signed-image.bin");
const FIXTURE_METADATA: &[u8] = include_bytes!("../testdata/fwtool/metadata.json");
const FIXTURE_SIGNATURE: &[u8] = b"not a real ucert: placeholder signature blob for tests\n";

fn fixture_payload() -> Vec<u8> {
    (0..8192_u32).map(|i| ((i * 31 + 7) % 256) as u8).collect()
}

#[test]
fn reads_independently_built_fixture() {
    let blocks = fwtool::read_blocks(FIXTURE).unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].kind(), BlockKind::Metadata);
    assert_eq!(blocks[0].offset(), 8192);
    assert_eq!(blocks[0].data(), FIXTURE_METADATA);
    assert_eq!(blocks[1].kind(), BlockKind::Signature);
    assert_eq!(blocks[1].data(), FIXTURE_SIGNATURE);

    let metadata = Metadata::parse(blocks[0].data()).unwrap();
    assert_eq!(
        metadata.supported_devices,
        Some(vec!["glinet,gl-mt6000".to_owned()])
    );
    assert_eq!(metadata.compat_version.as_deref(), Some("1.0"));
    let version = metadata.version.as_ref().unwrap();
    assert_eq!(version.revision.as_deref(), Some("r28597-0425664679"));
    assert_eq!(version.target.as_deref(), Some("mediatek/filogic"));
    assert!(metadata.other.contains_key("custom_field"));
}

#[test]
fn writer_reproduces_fixture_byte_for_byte() {
    let mut image = fixture_payload();
    fwtool::append_block(&mut image, BlockKind::Metadata, FIXTURE_METADATA).unwrap();
    fwtool::append_block(&mut image, BlockKind::Signature, FIXTURE_SIGNATURE).unwrap();
    assert_eq!(image, FIXTURE);

    // The streaming writer gives the same bytes.
    let mut crc = Crc::new();
    let mut streamed = fixture_payload();
    crc.update(&streamed);
    let block = fwtool::block_bytes(BlockKind::Metadata, FIXTURE_METADATA, &crc).unwrap();
    crc.update(&block);
    streamed.extend_from_slice(&block);
    streamed.extend(fwtool::block_bytes(BlockKind::Signature, FIXTURE_SIGNATURE, &crc).unwrap());
    assert_eq!(streamed, FIXTURE);
}

#[test]
fn two_trailers_parse_back_exactly() {
    let metadata = Metadata::parse(FIXTURE_METADATA).unwrap();
    let mut image = vec![0x5a; 3000];
    fwtool::append_metadata(&mut image, &metadata).unwrap();
    let signed = image.len() as u64;
    fwtool::append_block(&mut image, BlockKind::Signature, b"sig").unwrap();
    let blocks = fwtool::read_blocks(&image).unwrap();
    assert_eq!(Metadata::parse(blocks[0].data()).unwrap(), metadata);
    assert_eq!(blocks[1].data(), b"sig");
    let tail = &image[image.len().saturating_sub(TAIL_LEN)..];
    let layouts = fwtool::parse_tail(tail, image.len() as u64).unwrap();
    assert_eq!(fwtool::signed_len(&layouts), Some(signed));
    assert_eq!(
        fwtool::image_len_without_blocks(&layouts, image.len() as u64),
        3000
    );
}

#[test]
fn corrupted_crc_is_a_typed_error() {
    let mut image = FIXTURE.to_vec();
    // The CRC field of the signature trailer.
    let at = image.len() - 12;
    image[at] ^= 0x80;
    assert!(matches!(
        fwtool::read_blocks(&image),
        Err(FwtoolError::CrcMismatch { offset, .. }) if offset == FIXTURE.len() as u64 - 16
    ));
}

#[test]
fn every_proper_prefix_of_a_trailer_fails_cleanly() {
    let trailer = &FIXTURE[FIXTURE.len() - 16..];
    Trailer::parse(trailer).unwrap();
    for len in 0..trailer.len() {
        assert_eq!(
            Trailer::parse(&trailer[..len]),
            Err(FwtoolError::TruncatedTrailer { found: len })
        );
    }
    // An image cut inside its last trailer never reads as complete.
    for cut in 1..16 {
        let image = &FIXTURE[..FIXTURE.len() - cut];
        match fwtool::read_blocks(image) {
            Ok(blocks) => assert!(blocks.len() < 2, "cut {cut}"),
            Err(error) => assert!(
                matches!(error, FwtoolError::TruncatedImage { .. }),
                "cut {cut}: {error}"
            ),
        }
    }
}

fn kind_strategy() -> impl Strategy<Value = BlockKind> {
    prop_oneof![
        Just(BlockKind::Signature),
        Just(BlockKind::Metadata),
        (2_u8..=255).prop_map(BlockKind::Unknown),
    ]
}

proptest! {
    #[test]
    fn read_blocks_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = fwtool::read_blocks(&bytes);
    }

    #[test]
    fn read_blocks_never_panics_on_mutated_fixture(
        at in 0..FIXTURE.len(), value in any::<u8>(), cut in 0..200_usize,
    ) {
        let mut image = FIXTURE.to_vec();
        image[at] = value;
        image.truncate(image.len() - cut);
        let _ = fwtool::read_blocks(&image);
    }

    #[test]
    fn parse_tail_never_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..512), extra in 0..u64::MAX / 2,
    ) {
        let _ = fwtool::parse_tail(&tail, tail.len() as u64 + extra);
        let _ = fwtool::parse_tail(&tail, extra);
    }

    #[test]
    fn metadata_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = Metadata::parse(&bytes);
    }

    #[test]
    fn trailers_round_trip(crc in any::<u32>(), kind in kind_strategy(), size in any::<u32>()) {
        let trailer = Trailer { crc, kind, size };
        prop_assert_eq!(Trailer::parse(&trailer.to_bytes()).unwrap(), trailer);
    }

    #[test]
    fn blocks_round_trip(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        blocks in proptest::collection::vec(
            (kind_strategy(), proptest::collection::vec(any::<u8>(), 0..256)), 0..=4),
        chunk in 1..700_usize,
    ) {
        // A payload that ends like a trailer would be read as one; keep the generated payload
        // free of the magic, as fwtool's format assumes.
        prop_assume!(!payload.windows(4).any(|w| w == b"FWx0"));
        let mut image = payload.clone();
        for (kind, data) in &blocks {
            fwtool::append_block(&mut image, *kind, data).unwrap();
        }
        let read: Vec<Block> = fwtool::read_blocks(&image).unwrap();
        prop_assert_eq!(read.len(), blocks.len());
        for (block, (kind, data)) in read.iter().zip(&blocks) {
            prop_assert_eq!(block.kind(), *kind);
            prop_assert_eq!(block.data(), data.as_slice());
        }
        let tail = &image[image.len().saturating_sub(TAIL_LEN)..];
        let layouts = fwtool::parse_tail(tail, image.len() as u64).unwrap();
        prop_assert_eq!(
            fwtool::image_len_without_blocks(&layouts, image.len() as u64),
            payload.len() as u64
        );
        let mut check = CrcCheck::new(layouts, image.len() as u64);
        for piece in image.chunks(chunk) {
            check.update(piece).unwrap();
        }
        prop_assert_eq!(check.finish().unwrap(), read);
    }
}
