//! The `durability` setting through the CLI, on both engines: `ocicache config` shows it
//! (`strict` unless `config.json` says `relaxed`), a relaxed directory stores and serves like a
//! strict one, and a bad value is `invalid_config`. (Which fsyncs each level makes is counted in
//! the library's unit tests: `durability_from_config_json_reaches_the_storage_on_both_engines`.)

mod common;

use common::{outcome, pattern, run, sha256};

#[test]
fn ocicache_config_shows_the_durability_and_both_engines_honour_it() {
    for (setting, level) in [
        (None, "strict"),
        (Some("strict"), "strict"),
        (Some("relaxed"), "relaxed"),
    ] {
        for engine in ["component", "native"] {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("cache");
            std::fs::create_dir(&dir).unwrap();
            if let Some(s) = setting {
                std::fs::write(
                    dir.join("config.json"),
                    format!(r#"{{"durability": "{s}"}}"#),
                )
                .unwrap();
            }
            let what = format!("{engine}, {setting:?}");
            let (code, out, err) = outcome(&run(&dir, &["--engine", engine, "--json", "config"]));
            assert_eq!(code, 0, "{what}: {err}");
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["durability"], level, "{what}");
            let data = pattern(3, 2_000_000);
            let file = root.path().join("in");
            std::fs::write(&file, &data).unwrap();
            let (code, out, err) = outcome(&run(
                &dir,
                &["--engine", engine, "blob", "put", file.to_str().unwrap()],
            ));
            assert_eq!(code, 0, "{what}: {err}");
            assert_eq!(out.trim(), sha256(&data).to_string(), "{what}");
            let back = root.path().join("out");
            let (code, _, err) = outcome(&run(
                &dir,
                &[
                    "--engine",
                    engine,
                    "blob",
                    "get",
                    out.trim(),
                    "-o",
                    back.to_str().unwrap(),
                ],
            ));
            assert_eq!(code, 0, "{what}: {err}");
            assert!(std::fs::read(&back).unwrap() == data, "{what}");
            let (code, _, err) = outcome(&run(&dir, &["--engine", engine, "verify"]));
            assert_eq!(code, 0, "{what}: {err}");
        }
    }
}

#[test]
fn a_bad_durability_is_invalid_config_on_both_engines() {
    for bad in [
        r#"{"durability": "sometimes"}"#,
        r#"{"durability": "relaxed", "verify_reads": false}"#,
    ] {
        for engine in ["component", "native"] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("config.json"), bad).unwrap();
            let (code, _, err) = outcome(&run(dir.path(), &["--engine", engine, "stats"]));
            assert_eq!(code, 8, "{engine} {bad}: {err}");
            assert!(err.contains("invalid_config"), "{engine} {bad}: {err}");
        }
    }
}
