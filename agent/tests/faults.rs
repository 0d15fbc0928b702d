//! Hostile and failing servers: the agent gives up in bounded time and space, names the limit it
//! hit, and leaves what a later run can resume.
//! Issue 20: <https://github.com/attendant-openwrt/attendant/issues/20>.

mod util;

use std::process::Output;
use std::time::Duration;

use util::*;

/// Longest any of these runs may take before the harness stops it: far above the deadlines the
/// tests configure, far below what the agent would wait without them.
const RUN_LIMIT: Duration = Duration::from_secs(25);

#[test]
fn issue_20_a_metadata_answer_dripped_byte_by_byte_is_abandoned_at_the_deadline() {
    let overview = include_bytes!("../../proto/testdata/asu/overview.json").to_vec();
    let server = Server::start(move |seen, _| {
        let mut reply = Reply::bytes(200, overview.clone());
        if seen.path == "/json/v1/overview.json" {
            reply.drip = Some((1, Duration::from_millis(500)));
        }
        reply
    });
    let router = Router::new(&server.url);
    router.configure(&server.url, "\toption metadata_timeout '2'\n");
    let (output, took) = router.run_for_at_most(&["check"], RUN_LIMIT);
    assert_exit(&output, 5);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_stderr_has(
        &output,
        &format!(
            "`{}/json/v1/overview.json` did not answer in full within the metadata deadline of 2 s",
            server.url
        ),
    );
    assert_stderr_has(&output, "option metadata_timeout");
}

#[test]
fn issue_20_a_download_below_the_minimum_rate_aborts_and_resumes_later() {
    let picture = image(&[BOARD], "1.0");
    let mut offer = Offer::new(picture.clone());
    // 200 bytes per second against a floor of 1 KiB/s over 2 s.
    offer.drip_first_download = Some((100, Duration::from_millis(500)));
    let server = upgrade_server(offer);
    let router = Router::new(&server.url);
    router.configure(
        &server.url,
        "\toption min_download_rate '1024'\n\toption min_download_rate_window '2'\n",
    );
    let (output, took) = router.run_for_at_most(&["download"], RUN_LIMIT);
    assert_exit(&output, 5);
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_stderr_has(
        &output,
        "was slower than the minimum of 1024 bytes/s over 2 s",
    );
    assert_stderr_has(&output, "hint: run the same command again to resume");
    let kept = std::fs::read(router.path().join("tmp/firmware.bin")).unwrap();
    assert!(!kept.is_empty() && kept.len() < picture.len());
    assert_eq!(kept[..], picture[..kept.len()], "the kept part is a prefix");

    let (output, _) = router.run_for_at_most(&["download"], RUN_LIMIT);
    assert_exit(&output, 0);
    assert_eq!(
        std::fs::read(router.path().join("tmp/firmware.bin")).unwrap(),
        picture
    );
    let ranges = server.image_ranges();
    assert_eq!(
        ranges.last().unwrap().as_deref(),
        Some(format!("bytes={}-", kept.len()).as_str()),
        "{ranges:?}"
    );
}

/// Downloads an image whose build response states 100 000 bytes, though it is 300 000.
fn download_with_a_stated_size_too_small(without_length: bool) -> (Router, Vec<u8>, Output) {
    let picture = image(&[BOARD], "1.0");
    let mut offer = Offer::new(picture.clone());
    offer.stated_size = Some(100_000);
    offer.download_without_length = without_length;
    let server = upgrade_server(offer);
    let router = Router::new(&server.url);
    let (output, _) = router.run_for_at_most(&["download"], RUN_LIMIT);
    (router, picture, output)
}

#[test]
fn issue_20_an_image_larger_than_the_stated_size_is_refused_before_a_byte() {
    let (router, picture, output) = download_with_a_stated_size_too_small(false);
    assert_exit(&output, 5);
    assert_stderr_has(
        &output,
        &format!(
            "is {} bytes, more than the limit of 165536 bytes (the 100000 bytes the build \
             response states, plus 65536)",
            picture.len()
        ),
    );
    assert!(!router.path().join("tmp/firmware.bin").exists());
}

#[test]
fn issue_20_a_body_beyond_the_stated_size_is_cut_off_and_removed() {
    let (router, _, output) = download_with_a_stated_size_too_small(true);
    assert_exit(&output, 5);
    assert_stderr_has(
        &output,
        "sent more than the limit of 165536 bytes (the 100000 bytes the build response states, \
         plus 65536)",
    );
    assert!(!router.path().join("tmp/firmware.bin").exists());
}

#[test]
fn issue_20_a_download_keeps_the_reserve_free_and_writes_nothing() {
    let picture = image(&[BOARD], "1.0");
    let server = upgrade_server(Offer::new(picture));
    let router = Router::new(&server.url);
    // A reserve of 1 TiB: no test machine has that much free, so the image never fits.
    router.configure(&server.url, "\toption download_reserve '1073741824'\n");
    let (output, _) = router.run_for_at_most(&["download"], RUN_LIMIT);
    assert_exit(&output, 4);
    assert_stderr_has(&output, "of them kept free (`option download_reserve`)");
    assert!(!router.path().join("tmp/firmware.bin").exists());
}
