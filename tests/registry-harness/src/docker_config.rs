//! Client credential files as `docker login` writes them, for tests of a client that reads
//! `$DOCKER_CONFIG/config.json`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

/// A `config.json` with an `auths` entry per `(host, user, password)`, each
/// `{"auth": base64("user:password")}` under its host (`127.0.0.1:PORT`).
pub fn docker_config_json(entries: &[(&str, &str, &str)]) -> String {
    let mut auths = serde_json::Map::new();
    for (host, user, password) in entries {
        let auth = STANDARD.encode(format!("{user}:{password}"));
        auths.insert(host.to_string(), json!({ "auth": auth }));
    }
    serde_json::to_string_pretty(&json!({ "auths": auths })).expect("JSON of strings")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_is_base64_of_user_colon_password() {
        let config: serde_json::Value =
            serde_json::from_str(&docker_config_json(&[("127.0.0.1:5000", "alice", "pw")]))
                .unwrap();
        assert_eq!(config["auths"]["127.0.0.1:5000"]["auth"], "YWxpY2U6cHc=");
    }
}
