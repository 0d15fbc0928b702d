//! Tests of the command line's options and validation.

use std::path::Path;

use super::*;

#[test]
fn server_must_be_http_or_https() {
    let root = tempfile::tempdir().unwrap();
    let error = settings(root.path(), Some("sysupgrade.openwrt.org"), None).unwrap_err();
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    let ok = settings(
        root.path(),
        Some("https://asu.example.org/"),
        Some(Path::new("/ca.pem")),
    )
    .unwrap();
    assert_eq!(ok.server, "https://asu.example.org");
    assert_eq!(ok.ca_file.as_deref(), Some(Path::new("/ca.pem")));
}

#[test]
fn flash_options_follow_the_config_unless_overridden() {
    let mut settings = Settings::default();
    assert!(flash_options(&settings, false, false, None, false).keep_settings);
    assert!(!flash_options(&settings, true, false, None, false).keep_settings);
    settings.keep_settings = false;
    assert!(!flash_options(&settings, false, false, None, false).keep_settings);
}

#[test]
fn poll_interval_has_a_floor() {
    let settings = Settings::default();
    assert_eq!(poll_interval(&settings, None).unwrap().as_millis(), 2000);
    assert!(poll_interval(&settings, Some(100)).is_err());
}

#[test]
fn a_missing_command_is_a_usage_error() {
    let args = parse(&["attendant".to_owned()]).unwrap();
    assert_eq!(run(args), ExitCode::from(2));
}

#[test]
fn a_command_line_gives_its_plan_options_over_the_config() {
    let root = tempfile::tempdir().unwrap();
    let args = parse(&[
        "attendant".to_owned(),
        "check".to_owned(),
        "--root".to_owned(),
        root.path().display().to_string(),
        "--add".to_owned(),
        "htop,tcpdump".to_owned(),
        "--force".to_owned(),
    ])
    .unwrap();
    let options = args.plan_options().unwrap().unwrap();
    assert_eq!(options.add, ["htop", "tcpdump"]);
    assert!(options.force);
    let status = parse(&["attendant".to_owned(), "status".to_owned()]).unwrap();
    assert!(status.plan_options().is_none());
}
