//! Tests of option merging and validation.

use std::path::Path;

use super::*;

fn args<'a>(add: &'a [String], rev_code: Option<&str>) -> PlanArgs<'a> {
    PlanArgs {
        version_to: None,
        rev_code: rev_code.map(str::to_owned),
        add,
        remove: &[],
        clean_slate: false,
        ignored_defaults: &[],
        ignored_changes: &[],
        init_script: None,
        fstype: None,
        rootfs_size: None,
        force: false,
    }
}

#[test]
fn rev_code_accepts_none_and_version_codes_only() {
    let settings = Settings::default();
    assert_eq!(
        plan_options(&settings, args(&[], Some("none")))
            .unwrap()
            .rev_code,
        RevCode::None
    );
    assert_eq!(
        plan_options(&settings, args(&[], Some("r28959-29397011cc")))
            .unwrap()
            .rev_code,
        RevCode::Code("r28959-29397011cc".into())
    );
    let error = plan_options(&settings, args(&[], Some("latest"))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "revision `latest` is not of the form `rNNNNN-hash` or `none`"
    );
    assert_eq!(error.exit_status(), ExitStatus::Usage);
}

#[test]
fn command_line_lists_replace_the_config_lists() {
    let settings = Settings {
        add: vec!["htop".into()],
        ..Settings::default()
    };
    assert_eq!(
        plan_options(&settings, args(&[], None)).unwrap().add,
        ["htop"]
    );
    let cli = ["tcpdump,luci-app-sqm".to_owned(), "iperf3".to_owned()];
    assert_eq!(
        plan_options(&settings, args(&cli, None)).unwrap().add,
        ["tcpdump", "luci-app-sqm", "iperf3"]
    );
}

#[test]
fn init_script_is_read_and_size_checked() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("defaults.sh");
    std::fs::write(&script, "uci set system.@system[0].hostname=router\n").unwrap();
    let mut plan = args(&[], None);
    plan.init_script = Some(script.clone());
    let options = plan_options(&Settings::default(), plan).unwrap();
    assert_eq!(
        options.init_script.as_deref(),
        Some("uci set system.@system[0].hostname=router\n")
    );
    std::fs::write(&script, vec![b'#'; crate::check::MAX_INIT_SCRIPT_LEN + 1]).unwrap();
    let mut plan = args(&[], None);
    plan.init_script = Some(script);
    assert!(matches!(
        plan_options(&Settings::default(), plan),
        Err(Error::Usage(_))
    ));
}

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
