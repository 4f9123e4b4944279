use super::*;
use crate::ErrorKind;
use crate::pull::auth::base64;

fn b64(s: &str) -> String {
    base64(s.as_bytes())
}

fn basic(username: &str, password: &str) -> Option<Credentials> {
    Some(Credentials::Basic {
        username: username.into(),
        password: password.into(),
    })
}

fn docker(json: &str) -> LoginFile {
    LoginFile::parse("/h/config.json", LoginFileKind::Docker, json.as_bytes()).unwrap()
}

fn containers(json: &str) -> LoginFile {
    LoginFile::parse("/run/auth.json", LoginFileKind::Containers, json.as_bytes()).unwrap()
}

/// A scripted helper: what each program answers for each server URL (`None`: "not found").
type Helpers<'a> = &'a dyn Fn(&HelperCall) -> HelperOutcome;

fn answer(json: &str) -> HelperOutcome {
    HelperOutcome::Exited {
        success: true,
        status: "exit status: 0".into(),
        stdout: json.as_bytes().to_vec(),
        stderr: Vec::new(),
    }
}

fn not_found() -> HelperOutcome {
    HelperOutcome::Exited {
        success: false,
        status: "exit status: 1".into(),
        stdout: b"credentials not found in native keychain\n".to_vec(),
        stderr: Vec::new(),
    }
}

/// Runs a lookup to its end; the helper calls made, in order.
fn run(
    files: Vec<LoginFile>,
    registries: &[&str],
    helpers: Helpers<'_>,
) -> (Result<BTreeMap<String, Credentials>>, Vec<HelperCall>) {
    let mut calls = Vec::new();
    let result = (|| {
        let mut lookup = CredentialLookup::new(files, registries)?;
        loop {
            match lookup.poll()? {
                LookupStep::RunHelper(call) => {
                    let outcome = helpers(&call);
                    calls.push(call);
                    lookup.helper_done(outcome)?;
                }
                LookupStep::Done(found) => return Ok(found),
            }
        }
    })();
    (result, calls)
}

fn no_helpers(call: &HelperCall) -> HelperOutcome {
    panic!("no helper expected, asked for {call:?}")
}

fn one(file: LoginFile, registry: &str) -> Option<Credentials> {
    lookup_in(vec![file], registry, &no_helpers)
}

fn lookup_in(files: Vec<LoginFile>, registry: &str, helpers: Helpers<'_>) -> Option<Credentials> {
    let found = run(files, &[registry], helpers).0.unwrap();
    found.get(&registry_key(registry)).cloned()
}

#[test]
fn every_auths_form_is_understood() {
    let json = format!(
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
        }}, "HttpHeaders": {{"User-Agent": "x"}}}}"#,
        b64("u1:p1:with:colons"),
        b64("u4:p4"),
        b64("u5:p5"),
        b64("u6:p6\0\0"),
        b64("u7:p7"),
    );
    let f = || docker(&json);
    assert_eq!(one(f(), "registry.example"), basic("u1", "p1:with:colons"));
    assert_eq!(one(f(), "secure.example:5443"), basic("u2", "p2"));
    assert_eq!(
        one(f(), "plain.example"),
        Some(Credentials::IdentityToken("refresh-3".into()))
    );
    assert_eq!(one(f(), "mixed.example:5000"), basic("u4", "p4"));
    // Docker's CLI ignores a key's path in config.json.
    assert_eq!(one(f(), "ghcr.io"), basic("u5", "p5"));
    assert_eq!(one(f(), "nul.example"), basic("u6", "p6"));
    assert_eq!(
        one(f(), "both.example"),
        Some(Credentials::IdentityToken("wins".into()))
    );
    for none in [
        "marker.example",
        "half.example",
        "secure.example",
        "mixed.example",
        "unknown.example",
    ] {
        assert_eq!(one(f(), none), None, "{none}");
    }
    assert_eq!(
        one(f(), "https://registry.example/v2/"),
        basic("u1", "p1:with:colons")
    );
}

#[test]
fn docker_hub_has_four_names_and_two_keys() {
    let json = format!(
        r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}},
                       "registry-1.docker.io": {{"auth": "{}"}}}}}}"#,
        b64("hub:canonical"),
        b64("hub:other"),
    );
    for name in [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "Docker.IO",
    ] {
        assert_eq!(
            one(docker(&json), name),
            basic("hub", "canonical"),
            "{name}"
        );
    }
    let found = run(vec![docker(&json)], &["docker.io"], &no_helpers)
        .0
        .unwrap();
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["docker.io", "registry-1.docker.io"]
    );
    let auth = containers(&format!(
        r#"{{"auths": {{"docker.io": {{"auth": "{}"}}}}}}"#,
        b64("podman:hub")
    ));
    assert_eq!(one(auth, "index.docker.io"), basic("podman", "hub"));
}

/// Knows Docker Hub (by Docker's server URL), `stored.example`, and an identity token for
/// `token.example`; "not found" for anything else.
fn store(call: &HelperCall) -> HelperOutcome {
    match (call.program.as_str(), call.input.as_str()) {
        ("docker-credential-store", "https://index.docker.io/v1/") => answer(
            r#"{"ServerURL":"https://index.docker.io/v1/","Username":"hub-user","Secret":"hub-secret"}"#,
        ),
        ("docker-credential-store", "stored.example") => {
            answer(r#"{"Username":"store-user","Secret":"store-secret"}"#)
        }
        ("docker-credential-store", "token.example") => {
            answer(r#"{"Username":"<token>","Secret":"store-refresh"}"#)
        }
        ("docker-credential-special", "special.example") => {
            answer(r#"{"Username":"special-user","Secret":"special-secret"}"#)
        }
        _ => not_found(),
    }
}

#[test]
fn cred_helpers_then_creds_store_then_auths() {
    let json = format!(
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
    );
    let look = |r: &str| lookup_in(vec![docker(&json)], r, &store);
    assert_eq!(
        look("special.example"),
        basic("special-user", "special-secret")
    );
    // The credHelpers entry alone answers for its registry: its auths entry is not used.
    assert_eq!(look("silent.example"), None);
    assert_eq!(look("stored.example"), basic("store-user", "store-secret"));
    assert_eq!(
        look("token.example"),
        Some(Credentials::IdentityToken("store-refresh".into()))
    );
    // The store has nothing: the auths entry answers.
    assert_eq!(look("plain.example"), basic("file", "secret"));
    assert_eq!(look("nothing.example"), None);
    assert_eq!(
        look("registry-1.docker.io"),
        basic("hub-user", "hub-secret")
    );

    // The helper is asked once per registry, with the server URL.
    let (found, calls) = run(
        vec![docker(&json)],
        &["special.example", "docker.io", "Special.Example"],
        &store,
    );
    assert_eq!(found.unwrap().len(), 3);
    assert_eq!(
        calls,
        [
            HelperCall {
                program: "docker-credential-special".into(),
                input: "special.example".into()
            },
            HelperCall {
                program: "docker-credential-store".into(),
                input: "https://index.docker.io/v1/".into()
            },
        ]
    );
}

#[test]
fn files_answer_in_order_and_namespaces_are_not_registries() {
    let d = || {
        docker(&format!(
            r#"{{"auths": {{"both.example": {{"auth": "{}"}}, "marker.example": {{}}}}}}"#,
            b64("docker:wins")
        ))
    };
    let c = || {
        containers(&format!(
            r#"{{"auths": {{
                "both.example": {{"auth": "{p}"}},
                "marker.example": {{"auth": "{p}"}},
                "quay.io/some-org": {{"auth": "{p}"}},
                "https://url.example/v2/": {{"auth": "{p}"}}
            }}}}"#,
            p = b64("podman:pw")
        ))
    };
    let look = |r: &str| lookup_in(vec![d(), c()], r, &no_helpers);
    assert_eq!(look("both.example"), basic("docker", "wins"));
    assert_eq!(look("marker.example"), basic("podman", "pw"));
    assert_eq!(look("url.example"), basic("podman", "pw"));
    assert_eq!(look("quay.io"), None);
    // The other order: the first file wins.
    assert_eq!(
        lookup_in(vec![c(), d()], "both.example", &no_helpers),
        basic("podman", "pw")
    );
    // A credHelpers entry in the first file that has nothing leaves the next file its say.
    let helper_first = docker(r#"{"credHelpers": {"both.example": "store"}}"#);
    assert_eq!(
        lookup_in(vec![helper_first, c()], "both.example", &store),
        basic("podman", "pw")
    );
}

#[test]
fn failing_helpers_are_errors_naming_helper_file_field_and_registry() {
    let file = || docker(r#"{"credsStore": "broken"}"#);
    let failed = |outcome: HelperOutcome| {
        let (result, _) = run(vec![file()], &["any.example"], &|_| outcome.clone());
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        let message = err.to_string();
        for part in [
            "docker-credential-broken",
            "credsStore",
            "/h/config.json",
            "any.example",
        ] {
            assert!(message.contains(part), "{part:?} missing in {message}");
        }
        message
    };
    let m = failed(HelperOutcome::Exited {
        success: false,
        status: "exit status: 3".into(),
        stdout: Vec::new(),
        stderr: b"the keychain is locked\nmore\n".to_vec(),
    });
    assert!(
        m.ends_with("failed (exit status: 3): the keychain is locked"),
        "{m}"
    );
    assert!(failed(HelperOutcome::NotInstalled).contains("not installed"));
    assert!(failed(HelperOutcome::Failed("did not answer".into())).ends_with("did not answer"));
    assert!(failed(answer("hello")).contains("answered something other than JSON"));
    assert!(failed(answer(r#"{"Secret": 1}"#)).contains("Secret that is not a string"));
    // An empty secret is nothing.
    let (found, _) = run(vec![file()], &["any.example"], &|_| {
        answer(r#"{"Username": "u"}"#)
    });
    assert!(found.unwrap().is_empty());

    // A helper name cannot reach outside the search path: refused before anything runs.
    let bad = docker(r#"{"credHelpers": {"a.example": "../bin/x"}}"#);
    let (result, calls) = run(vec![bad], &["a.example"], &no_helpers);
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("not a credential helper name"),
        "{err}"
    );
    assert!(calls.is_empty());
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
        let err =
            LoginFile::parse("/h/config.json", LoginFileKind::Docker, json.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{json}");
        let message = err.to_string();
        assert!(message.contains("/h/config.json: "), "{message}");
        assert!(message.contains(what), "{what:?} missing in {message}");
        assert!(!message.contains("hunter2"), "secret in {message}");
    }
    let huge = vec![b' '; MAX_LOGIN_BYTES as usize + 1];
    let err = LoginFile::parse("f", LoginFileKind::Docker, &huge).unwrap_err();
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
    // Docker accepts an empty file.
    assert_eq!(one(docker("\n"), "any.example"), None);
}

#[test]
fn debug_output_never_contains_a_secret() {
    let file = docker(&format!(
        r#"{{"credsStore": "store", "auths": {{"plain.example": {{"auth": "{}"}}}}}}"#,
        b64("file-user:file-secret")
    ));
    let lookup = CredentialLookup::new(vec![file], &["plain.example"]).unwrap();
    let printed = format!("{lookup:?} {lookup:#?}");
    assert!(!printed.contains("file-secret"), "{printed}");
    assert!(printed.contains("plain.example"), "{printed}");
}

#[test]
fn misuse_is_an_invalid_argument() {
    let err = CredentialLookup::new(Vec::new(), &[""]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let mut lookup = CredentialLookup::new(Vec::new(), &["r.example"]).unwrap();
    assert_eq!(
        lookup
            .helper_done(HelperOutcome::NotInstalled)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    let file = docker(r#"{"credsStore": "store"}"#);
    let mut lookup = CredentialLookup::new(vec![file], &["r.example"]).unwrap();
    assert!(matches!(lookup.poll().unwrap(), LookupStep::RunHelper(_)));
    assert_eq!(
        lookup.poll().unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn base64_decodes_with_or_without_padding() {
    assert_eq!(decode_base64(b"").unwrap(), b"");
    assert_eq!(decode_base64(b"Zg==").unwrap(), b"f");
    assert_eq!(decode_base64(b"Zg").unwrap(), b"f");
    assert_eq!(decode_base64(b"Zm8=").unwrap(), b"fo");
    assert_eq!(decode_base64(b"Zm9v").unwrap(), b"foo");
    assert_eq!(
        decode_base64(b"QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap(),
        b"Aladdin:open sesame"
    );
    for bad in [&b"Z"[..], b"Zg=", b"Zm9v=", b"Z===", b"Zm-v", b"Zm9v\n"] {
        assert_eq!(
            decode_base64(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
