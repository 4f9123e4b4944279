use super::*;
use ocicache_core::ErrorKind;
use std::os::unix::fs::PermissionsExt;

/// A temp dir with a Docker config, an auth.json and a helper directory, none written yet.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn docker(&self, json: &str) -> &Self {
        std::fs::write(self.path("config.json"), json).unwrap();
        self
    }
    fn containers(&self, json: &str) -> &Self {
        std::fs::write(self.path("auth.json"), json).unwrap();
        self
    }
    /// Writes `docker-credential-<name>`, a `#!/bin/sh` script (run directly, not by a shell
    /// of ours) whose body sees the server URL in `$url`.
    fn helper(&self, name: &str, body: &str) -> &Self {
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let path = bin.join(format!("docker-credential-{name}"));
        let script =
            format!("#!/bin/sh\n[ \"$1\" = get ] || exit 9\nIFS= read -r url || true\n{body}\n");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }
    fn sources(&self) -> CredentialSources {
        CredentialSources::new(
            Some(self.path("config.json")),
            vec![self.path("auth.json")],
            vec![self.path("empty-bin"), self.path("bin")],
        )
    }
}

fn basic(username: &str, password: &str) -> Option<Credentials> {
    Some(Credentials::Basic {
        username: username.into(),
        password: password.into(),
    })
}

fn b64(s: &str) -> String {
    // The core's encoder is crate-private; the header it builds is `Basic <base64>`.
    let (user, password) = s.split_once(':').unwrap();
    Credentials::Basic {
        username: user.into(),
        password: password.into(),
    }
    .basic_header()
    .strip_prefix("Basic ")
    .unwrap()
    .to_owned()
}

#[test]
fn every_auths_form_is_understood() {
    let home = Home::new();
    home.docker(&format!(
        r#"{{"auths": {{
            "registry.example": {{"auth": "{}"}},
            "https://secure.example:5443/v2/": {{"username": "u2", "password": "p2"}},
            "http://plain.example": {{"identitytoken": "refresh-3"}},
            "Mixed.Example:5000": {{"auth": "{}"}},
            "ghcr.io/some-org": {{"auth": "{}"}},
            "nul.example": {{"auth": "{}"}},
            "both.example": {{"auth": "{}", "identitytoken": "wins"}},
            "marker.example": {{}},
            "half.example": {{"username": "only-user"}}
        }},
        "HttpHeaders": {{"User-Agent": "x"}}, "psFormat": "table"}}"#,
        b64("u1:p1:with:colons"),
        b64("u4:p4"),
        b64("u5:p5"),
        b64("u6:p6\0\0"),
        b64("u7:p7"),
    ));
    let s = home.sources();
    assert_eq!(
        s.lookup("registry.example").unwrap(),
        basic("u1", "p1:with:colons")
    );
    assert_eq!(s.lookup("secure.example:5443").unwrap(), basic("u2", "p2"));
    assert_eq!(
        s.lookup("plain.example").unwrap(),
        Some(Credentials::IdentityToken("refresh-3".into()))
    );
    assert_eq!(s.lookup("mixed.example:5000").unwrap(), basic("u4", "p4"));
    // Docker's CLI ignores a key's path in config.json.
    assert_eq!(s.lookup("ghcr.io").unwrap(), basic("u5", "p5"));
    assert_eq!(s.lookup("nul.example").unwrap(), basic("u6", "p6"));
    assert_eq!(
        s.lookup("both.example").unwrap(),
        Some(Credentials::IdentityToken("wins".into()))
    );
    assert_eq!(s.lookup("marker.example").unwrap(), None);
    assert_eq!(s.lookup("half.example").unwrap(), None);
    // Another port is another registry.
    assert_eq!(s.lookup("secure.example").unwrap(), None);
    assert_eq!(s.lookup("mixed.example").unwrap(), None);
    assert_eq!(s.lookup("unknown.example").unwrap(), None);
    // A URL is accepted where a registry is expected.
    assert_eq!(
        s.lookup("https://registry.example/v2/").unwrap(),
        basic("u1", "p1:with:colons")
    );
}

#[test]
fn docker_hub_has_four_names() {
    let home = Home::new();
    home.docker(&format!(
        r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}},
                       "registry-1.docker.io": {{"auth": "{}"}}}}}}"#,
        b64("hub:canonical"),
        b64("hub:other"),
    ));
    let s = home.sources();
    // Docker's own key wins over another spelling of the same registry.
    for name in [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "Docker.IO",
    ] {
        assert_eq!(s.lookup(name).unwrap(), basic("hub", "canonical"), "{name}");
    }
    // containers' auth.json writes `docker.io`.
    let home = Home::new();
    home.containers(&format!(
        r#"{{"auths": {{"docker.io": {{"auth": "{}"}}}}}}"#,
        b64("podman:hub")
    ));
    for name in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
        assert_eq!(
            home.sources().lookup(name).unwrap(),
            basic("podman", "hub"),
            "{name}"
        );
    }
}

/// A store that knows Docker Hub (by Docker's server URL), `stored.example`, and an identity
/// token for `token.example`; "not found" for anything else.
const STORE: &str = r#"case "$url" in
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hub-user","Secret":"hub-secret"}';;
  stored.example) echo '{"ServerURL":"stored.example","Username":"store-user","Secret":"store-secret"}';;
  token.example) echo '{"ServerURL":"token.example","Username":"<token>","Secret":"store-refresh"}';;
  *) echo "credentials not found in native keychain"; exit 1;;
esac"#;

#[test]
fn cred_helpers_then_creds_store_then_auths() {
    let home = Home::new();
    home.helper("store", STORE)
        .helper(
            "special",
            r#"case "$url" in
  special.example) echo '{"Username":"special-user","Secret":"special-secret"}';;
  *) echo "credentials not found in native keychain"; exit 1;;
esac"#,
        )
        .docker(&format!(
            r#"{{"credsStore": "store",
                "credHelpers": {{"special.example": "special", "silent.example": "special"}},
                "auths": {{
                    "special.example": {{"auth": "{a}"}},
                    "silent.example": {{"auth": "{a}"}},
                    "stored.example": {{"auth": "{a}"}},
                    "plain.example": {{"auth": "{a}"}},
                    "https://index.docker.io/v1/": {{}}
                }}}}"#,
            a = b64("file:secret"),
        ));
    let s = home.sources();
    assert_eq!(
        s.lookup("special.example").unwrap(),
        basic("special-user", "special-secret")
    );
    // The credHelpers entry alone answers for its registry: its auths entry is not used.
    assert_eq!(s.lookup("silent.example").unwrap(), None);
    assert_eq!(
        s.lookup("stored.example").unwrap(),
        basic("store-user", "store-secret")
    );
    assert_eq!(
        s.lookup("token.example").unwrap(),
        Some(Credentials::IdentityToken("store-refresh".into()))
    );
    // The store has nothing: the auths entry answers.
    assert_eq!(s.lookup("plain.example").unwrap(), basic("file", "secret"));
    assert_eq!(s.lookup("nothing.example").unwrap(), None);
    // Docker Hub is asked for by Docker's server URL, whatever name it is given.
    for name in ["docker.io", "registry-1.docker.io"] {
        assert_eq!(
            s.lookup(name).unwrap(),
            basic("hub-user", "hub-secret"),
            "{name}"
        );
    }
}

#[test]
fn cred_helpers_match_docker_hub_aliases_and_urls() {
    let home = Home::new();
    home.helper("store", STORE)
        .docker(r#"{"credHelpers": {"docker.io": "store", "https://stored.example": "store"}}"#);
    let s = home.sources();
    assert_eq!(
        s.lookup("index.docker.io").unwrap(),
        basic("hub-user", "hub-secret")
    );
    assert_eq!(
        s.lookup("stored.example").unwrap(),
        basic("store-user", "store-secret")
    );
    assert_eq!(s.lookup("other.example").unwrap(), None);
}

#[test]
fn a_failing_helper_is_an_error_naming_it() {
    let home = Home::new();
    home.helper("broken", "echo 'the keychain is locked' >&2; exit 3")
        .docker(r#"{"credsStore": "broken"}"#);
    let err = home.sources().lookup("any.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let message = err.to_string();
    for part in [
        "docker-credential-broken",
        "the keychain is locked",
        "credsStore",
        "config.json",
        "any.example",
    ] {
        assert!(message.contains(part), "{part:?} missing in {message}");
    }

    // Success with an answer that is not the protocol's JSON.
    let home = Home::new();
    home.helper("garbled", "echo 'hello'")
        .docker(r#"{"credHelpers": {"g.example": "garbled"}}"#);
    let err = home.sources().lookup("g.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("docker-credential-garbled"),
        "{err}"
    );
    assert!(err.to_string().contains("credHelpers"), "{err}");
}

#[test]
fn a_missing_or_misnamed_helper_is_an_error() {
    let home = Home::new();
    home.docker(r#"{"credsStore": "desktop"}"#);
    let err = home.sources().lookup("any.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("docker-credential-desktop"),
        "{err}"
    );
    assert!(err.to_string().contains("not installed"), "{err}");

    // A helper name cannot reach outside the search path.
    let home = Home::new();
    home.helper("x", STORE)
        .docker(r#"{"credHelpers": {"a.example": "../bin/docker-credential-x"}}"#);
    let err = home.sources().lookup("a.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("not a credential helper name"),
        "{err}"
    );

    // A non-executable file of the right name is not a helper.
    let home = Home::new();
    home.helper("noexec", STORE)
        .docker(r#"{"credsStore": "noexec"}"#);
    std::fs::set_permissions(
        home.path("bin/docker-credential-noexec"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = home.sources().lookup("stored.example").unwrap_err();
    assert!(err.to_string().contains("not installed"), "{err}");
}

#[test]
fn a_hanging_helper_is_killed_and_named() {
    let home = Home::new();
    // `exec`: the killed process is the sleeper itself, so nothing outlives the test.
    home.helper("hang", "exec sleep 60")
        .docker(r#"{"credsStore": "hang"}"#);
    let sources = home
        .sources()
        .with_helper_timeout(Duration::from_millis(200));
    let err = sources.lookup("any.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("docker-credential-hang"), "{err}");
    assert!(
        err.to_string().contains("did not answer within 200 ms"),
        "{err}"
    );
}

#[test]
fn a_helper_flooding_its_output_is_refused() {
    let home = Home::new();
    home.helper("flood", "exec yes")
        .docker(r#"{"credsStore": "flood"}"#);
    let err = home.sources().lookup("any.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("more than 1048576 bytes"), "{err}");
}

#[test]
fn auth_json_answers_when_config_json_has_nothing() {
    let home = Home::new();
    home.docker(&format!(
        r#"{{"auths": {{"both.example": {{"auth": "{}"}}, "marker.example": {{}}}}}}"#,
        b64("docker:wins")
    ))
    .containers(&format!(
        r#"{{"auths": {{
            "both.example": {{"auth": "{p}"}},
            "marker.example": {{"auth": "{p}"}},
            "only.example": {{"auth": "{p}"}},
            "quay.io/some-org": {{"auth": "{p}"}},
            "https://url.example/v2/": {{"auth": "{p}"}}
        }}}}"#,
        p = b64("podman:pw")
    ));
    let s = home.sources();
    assert_eq!(s.lookup("both.example").unwrap(), basic("docker", "wins"));
    assert_eq!(s.lookup("marker.example").unwrap(), basic("podman", "pw"));
    assert_eq!(s.lookup("only.example").unwrap(), basic("podman", "pw"));
    assert_eq!(s.lookup("url.example").unwrap(), basic("podman", "pw"));
    // A namespace's credentials are not the whole registry's.
    assert_eq!(s.lookup("quay.io").unwrap(), None);

    // Without any Docker config at all.
    let home = Home::new();
    home.containers(&format!(
        r#"{{"auths": {{"only.example": {{"auth": "{}"}}}}}}"#,
        b64("podman:pw")
    ));
    assert_eq!(
        home.sources().lookup("only.example").unwrap(),
        basic("podman", "pw")
    );

    // credHelpers in auth.json.
    let home = Home::new();
    home.helper("store", STORE)
        .containers(r#"{"credHelpers": {"stored.example": "store"}}"#);
    assert_eq!(
        home.sources().lookup("stored.example").unwrap(),
        basic("store-user", "store-secret")
    );
}

#[test]
fn no_files_no_credentials() {
    let home = Home::new();
    assert_eq!(home.sources().lookup("any.example").unwrap(), None);
    assert!(
        home.sources()
            .credentials_for(&["a", "b"])
            .unwrap()
            .is_empty()
    );
    // Docker accepts an empty file.
    home.docker("\n");
    assert_eq!(home.sources().lookup("any.example").unwrap(), None);
    // A path through a regular file is as absent as a missing one.
    let sources =
        CredentialSources::new(Some(home.path("config.json/config.json")), vec![], vec![]);
    assert_eq!(sources.lookup("any.example").unwrap(), None);
}

#[test]
fn malformed_files_are_invalid_config_naming_the_file_not_the_secret() {
    for (json, what) in [
        (r#"{"auths": {"#, "EOF"),
        (r#"["not", "an", "object"]"#, "not a JSON object"),
        (r#"{"auths": "hunter2"}"#, "auths is not a JSON object"),
        (
            r#"{"auths": {"r.example": "hunter2"}}"#,
            r#"auths["r.example"]"#,
        ),
        (
            r#"{"auths": {"r.example": {"auth": "hunter2!"}}}"#,
            "auth is not valid base64",
        ),
        // base64 of "hunter2", no colon.
        (
            r#"{"auths": {"r.example": {"auth": "aHVudGVyMg=="}}}"#,
            "auth is not base64 of user:password",
        ),
        (
            r#"{"auths": {"r.example": {"password": ["hunter2"]}}}"#,
            "password is not a string",
        ),
        (
            r#"{"credsStore": ["hunter2"]}"#,
            "credsStore is not a string",
        ),
        (
            r#"{"credHelpers": {"r.example": {"hunter2": 1}}}"#,
            "credHelpers[\"r.example\"] is not a string",
        ),
    ] {
        let home = Home::new();
        home.docker(json);
        let err = home.sources().lookup("r.example").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{json}");
        let message = err.to_string();
        assert!(
            message.contains(&home.path("config.json").display().to_string()),
            "{message}"
        );
        assert!(message.contains(what), "{what:?} missing in {message}");
        assert!(!message.contains("hunter2"), "secret in {message}");
        assert!(!format!("{err:?}").contains("hunter2"));
    }
    // The same for auth.json.
    let home = Home::new();
    home.containers("{");
    let err = home.sources().lookup("r.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("auth.json"), "{err}");
}

#[test]
fn huge_files_and_endless_devices_are_refused() {
    let home = Home::new();
    // 100 MB, sparse: refused by its size.
    let file = std::fs::File::create(home.path("config.json")).unwrap();
    file.set_len(100_000_000).unwrap();
    let err = home.sources().lookup("r.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
    assert!(err.to_string().contains("config.json"), "{err}");

    // An endless device: refused by the bounded read.
    let sources = CredentialSources::new(None, vec![PathBuf::from("/dev/zero")], vec![]);
    let err = sources.lookup("r.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("/dev/zero: larger than"), "{err}");

    // A directory where a file belongs.
    let sources = CredentialSources::new(Some(home.path("")), vec![], vec![]);
    let err = sources.lookup("r.example").unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
}

#[test]
fn debug_output_never_contains_a_secret() {
    let home = Home::new();
    home.helper("store", STORE).docker(&format!(
        r#"{{"credsStore": "store", "auths": {{"plain.example": {{"auth": "{}"}}}}}}"#,
        b64("file-user:file-secret")
    ));
    let s = home.sources();
    let map = s
        .credentials_for(&[
            "stored.example",
            "token.example",
            "plain.example",
            "docker.io",
        ])
        .unwrap();
    assert_eq!(map.len(), 5, "{map:?}");
    let printed = format!("{s:?} {map:?} {map:#?}");
    for secret in ["store-secret", "store-refresh", "file-secret", "hub-secret"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(printed.contains("store-user") && printed.contains("file-user"));
}

#[test]
fn credentials_for_builds_the_pull_map() {
    let home = Home::new();
    home.docker(&format!(
        r#"{{"auths": {{
            "https://index.docker.io/v1/": {{"auth": "{hub}"}},
            "mirror.example:5000": {{"auth": "{mirror}"}},
            "ghcr.io": {{"identitytoken": "gh"}}
        }}}}"#,
        hub = b64("hub:pw"),
        mirror = b64("mirror:pw"),
    ));
    let map = home
        .sources()
        .credentials_for(&[
            "docker.io",
            "https://Mirror.Example:5000/",
            "GHCR.io",
            "nothing.example",
            "ghcr.io",
        ])
        .unwrap();
    let expected: BTreeMap<String, Credentials> = [
        ("docker.io", basic("hub", "pw")),
        // The host the pull engine contacts for Docker Hub, and looks credentials up by.
        (ocicache_core::pull::DOCKER_HUB_API, basic("hub", "pw")),
        ("mirror.example:5000", basic("mirror", "pw")),
        ("ghcr.io", Some(Credentials::IdentityToken("gh".into()))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.unwrap()))
    .collect();
    assert_eq!(map, expected);

    let err = home.sources().credentials_for(&[""]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn the_environment_names_the_files_as_docker_and_podman_do() {
    let env = |vars: &[(&str, &str)]| {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CredentialSources::from_vars(|name| vars.get(name).map(OsString::from))
    };
    let s = env(&[
        ("HOME", "/home/u"),
        ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ("PATH", "/usr/bin:relative/bin::/bin"),
    ]);
    assert_eq!(
        s.docker_config,
        Some(PathBuf::from("/home/u/.docker/config.json"))
    );
    assert_eq!(
        s.containers_auth,
        [
            PathBuf::from("/run/user/1000/containers/auth.json"),
            PathBuf::from("/home/u/.config/containers/auth.json"),
        ]
    );
    // Relative and empty PATH entries are never searched.
    assert_eq!(
        s.helper_path,
        [PathBuf::from("/usr/bin"), PathBuf::from("/bin")]
    );
    assert_eq!(s.helper_timeout, DEFAULT_HELPER_TIMEOUT);

    let s = env(&[
        ("HOME", "/home/u"),
        ("DOCKER_CONFIG", "/etc/docker-cfg"),
        ("REGISTRY_AUTH_FILE", "/tmp/auth.json"),
        ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ("XDG_CONFIG_HOME", "/cfg"),
    ]);
    assert_eq!(
        s.docker_config,
        Some(PathBuf::from("/etc/docker-cfg/config.json"))
    );
    assert_eq!(
        s.containers_auth,
        [
            PathBuf::from("/tmp/auth.json"),
            PathBuf::from("/cfg/containers/auth.json"),
        ]
    );
    assert!(s.helper_path.is_empty());

    // Empty values count as unset; without HOME there is no default file.
    let s = env(&[("DOCKER_CONFIG", ""), ("REGISTRY_AUTH_FILE", "")]);
    assert_eq!(s.docker_config, None);
    assert!(s.containers_auth.is_empty());
}

#[test]
fn the_auth_file_is_asked_first() {
    let home = Home::new();
    home.docker(&format!(
        r#"{{"auths": {{"both.example": {{"auth": "{}"}}, "docker.example": {{"auth": "{}"}}}}}}"#,
        b64("docker:pw"),
        b64("docker:pw")
    ));
    std::fs::write(
        home.path("cache-auth.json"),
        format!(
            r#"{{"auths": {{"both.example": {{"auth": "{}"}}}}}}"#,
            b64("first:pw")
        ),
    )
    .unwrap();
    let s = home.sources().with_auth_file(home.path("cache-auth.json"));
    assert_eq!(s.lookup("both.example").unwrap(), basic("first", "pw"));
    assert_eq!(s.lookup("docker.example").unwrap(), basic("docker", "pw"));
    // A missing auth_file holds nothing.
    let s = home.sources().with_auth_file(home.path("absent.json"));
    assert_eq!(s.lookup("both.example").unwrap(), basic("docker", "pw"));
}
