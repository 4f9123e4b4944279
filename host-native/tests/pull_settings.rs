//! The pull's settings in `config.json` (platform, auth_file, registries) beside the cache's:
//! read by `ocicache config` and `ocicache pull`, ignored by the cache's own reader, refused
//! when malformed, and never a reason for a pull to touch the network when it need not.

mod common;

use common::{outcome, run};

const SETTINGS: &str = r#"{
  "max_bytes": 1048576,
  "platform": "linux/arm/v7",
  "registries": {
    "registry.example:5000": { "mirrors": ["http://127.0.0.1:9"], "plain_http": true }
  }
}"#;

#[test]
fn ocicache_config_prints_the_pulls_settings_beside_the_caches() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), SETTINGS).unwrap();
    let (code, out, err) = outcome(&run(dir.path(), &["--json", "config"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["max_bytes"], 1048576, "the cache's own keys still apply");
    assert_eq!(v["platform"], "linux/arm/v7");
    assert_eq!(
        v["registries"]["registry.example:5000"]["mirrors"][0],
        "http://127.0.0.1:9"
    );
    assert_eq!(v["registries"]["registry.example:5000"]["plain_http"], true);
    // Every other command opens the directory as usual.
    let (code, _, err) = outcome(&run(dir.path(), &["stats"]));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_malformed_pull_setting_is_invalid_config_for_the_commands_that_read_it() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        r#"{"registries": {"x": {"mirror": []}}}"#,
        r#"{"platform": "linux"}"#,
        r#"{"registries": {"a": {"mirrors": ["ftp://x"]}}}"#,
    ] {
        std::fs::write(dir.path().join("config.json"), bad).unwrap();
        for args in [&["config"][..], &["pull", "--offline", "127.0.0.1:1/app:1"]] {
            let (code, _, err) = outcome(&run(dir.path(), args));
            assert_eq!(code, 8, "{bad} {args:?}: {err}");
            assert!(
                err.contains("invalid_config") && err.contains("config.json"),
                "{err}"
            );
        }
    }
}

#[test]
fn an_offline_pull_of_an_uncached_reference_is_network_and_asks_nobody() {
    let dir = tempfile::tempdir().unwrap();
    // A mirror on a port nobody listens on: an offline pull must not even try it.
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"registries": {"127.0.0.1:9": {"mirrors": ["http://127.0.0.1:9"]}}}"#,
    )
    .unwrap();
    let (code, _, err) = outcome(&run(
        dir.path(),
        &["pull", "--offline", "127.0.0.1:9/app:1"],
    ));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("network") && err.contains("offline"), "{err}");
}
