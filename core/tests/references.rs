//! Image references: the canonical text (`Display`) is the key of a tag mapping, so it must
//! lead back to the same reference (`parse(display(r)) == r`), and distinct references must
//! never share it. Docker's reference grammar (`distribution/reference`, as ported by
//! `oci-spec`) is the yardstick for what a string means.
//!
//! `PROPTEST_CASES` (default 256) and `PROPTEST_RNG_SEED` (default: a fixed seed) are honored.

use oci_spec::distribution::Reference as OciReference;
use ocicache_core::Reference;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// A registry host as a user may type it: DNS names in any case, `localhost`, Docker Hub's
/// aliases, IPv6 literals.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,3}[a-zA-Z0-9])?", 1..4)
            .prop_map(|labels| labels.join(".")),
        1 => prop::sample::select(vec![
            "localhost", "LocalHost", "docker.io", "Docker.IO", "index.docker.io",
            "registry-1.docker.io", "X", "x", "MyRegistry",
        ])
        .prop_map(str::to_owned),
        1 => "\\[[0-9a-fA-F:]{1,8}\\]",
    ]
}

/// `host[:port]`, ports sometimes out of range.
fn domain() -> impl Strategy<Value = String> {
    (host(), prop::option::of("[0-9]{1,6}")).prop_map(|(h, port)| match port {
        Some(p) => format!("{h}:{p}"),
        None => h,
    })
}

/// A repository path: components of the grammar's alphabet, sometimes one long enough to
/// cross the 255-character limit once normalized.
fn path() -> impl Strategy<Value = String> {
    let component = "[a-z0-9]{1,3}(([._]|__|-{1,2})[a-z0-9]{1,3}){0,2}";
    prop_oneof![
        4 => prop::collection::vec(component, 1..4).prop_map(|c| c.join("/")),
        1 => (prop::option::of(component), 240usize..260).prop_map(|(first, n)| {
            let long = "a".repeat(n);
            first.map_or(long.clone(), |f| format!("{f}/{long}"))
        }),
    ]
}

/// A reference string built from the grammar's pieces: `[domain/]path[:tag][@digest]`.
fn reference_text() -> impl Strategy<Value = String> {
    let tag = prop_oneof![
        4 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}",
        1 => "[a-z]{127,129}",
    ];
    let digest = prop_oneof![
        "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")),
        "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}")),
    ];
    (
        prop::option::of(domain()),
        path(),
        prop::option::of(tag),
        prop::option::of(digest),
    )
        .prop_map(|(domain, path, tag, digest)| {
            let mut s = domain.map_or(String::new(), |d| format!("{d}/"));
            s.push_str(&path);
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(d) = digest {
                s.push('@');
                s.push_str(&d);
            }
            s
        })
}

/// `text` with the ASCII case of its first `/`-separated component changed where `flip` says.
fn recase_first_component(text: &str, flip: &[bool]) -> String {
    let end = text.find('/').unwrap_or(0);
    text.char_indices()
        .map(|(i, c)| {
            if i < end && flip.get(i).copied().unwrap_or(false) {
                if c.is_ascii_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            } else {
                c
            }
        })
        .collect()
}

/// Checks that the canonical text of `r` parses back to `r` and is a fixed point.
fn assert_round_trip(input: &str, r: &Reference) -> Result<(), TestCaseError> {
    let text = r.to_string();
    let again = Reference::parse(&text)
        .map_err(|e| TestCaseError::fail(format!("{input:?} printed as {text:?}: {e}")))?;
    prop_assert_eq!(&again, r, "{:?} printed as {:?}", input, text);
    prop_assert_eq!(again.to_string(), text);
    Ok(())
}

fn proptest_config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0x0C1C_4EF5);
    }
    // Failures are reported with their shrunk input; no regression files are kept.
    config.failure_persistence = None;
    config
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn printed_references_parse_back_to_themselves(text in reference_text()) {
        if let Ok(r) = Reference::parse(&text) {
            assert_round_trip(&text, &r)?;
        }
    }

    #[test]
    fn any_text_that_parses_round_trips(text in "[aAxXy0-9./:@_\\[\\]-]{1,24}") {
        if let Ok(r) = Reference::parse(&text) {
            assert_round_trip(&text, &r)?;
        }
    }

    #[test]
    fn distinct_references_never_share_a_canonical_form(
        a in reference_text(),
        b in reference_text(),
        flip in prop::collection::vec(any::<bool>(), 0..16),
    ) {
        // Pairs that differ only in the case of the first component (`X/y` and `x/y`) are
        // where a wrong normalization would merge two images; unrelated pairs keep it honest.
        let recased = recase_first_component(&a, &flip);
        for (s, t) in [(&a, &recased), (&a, &b)] {
            if let (Ok(r), Ok(q)) = (Reference::parse(s), Reference::parse(t)) {
                prop_assert_eq!(
                    r == q,
                    r.to_string() == q.to_string(),
                    "{:?} and {:?} print as {} and {}", s, t, r, q
                );
            }
        }
    }

    #[test]
    fn reads_references_as_docker_does(text in reference_text()) {
        let ours = Reference::parse(&text);
        let Some(theirs) = docker_reading(&text) else {
            return Ok(());
        };
        match (ours, theirs) {
            (Ok(r), Ok(o)) => {
                prop_assert_eq!(r.registry(), o.registry.as_str(), "{:?}", text);
                prop_assert_eq!(r.repository(), o.repository.as_str(), "{:?}", text);
                prop_assert_eq!(r.tag(), o.tag.as_deref(), "{:?}", text);
                prop_assert_eq!(
                    r.digest().map(|d| d.to_string()),
                    o.digest.clone(),
                    "{:?}", text
                );
            }
            (Err(_), Err(_)) => {}
            (Err(_), Ok(o)) => {
                // We refuse what cannot be a registry where Docker is lax: ports no TCP port
                // can be, and a first component that splitDockerDomain takes for a domain
                // (it has a '.') but that is no host name (`a.b_c/d`: Docker then keeps the
                // whole name as a path with no domain at all).
                let host = o.registry.rsplit_once(':').map_or(o.registry.as_str(), |(h, _)| h);
                let not_a_host = !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
                prop_assert!(
                    has_impossible_port(&text) || not_a_host,
                    "{:?}: we refuse it, Docker reads {:?}", text, o
                );
            }
            (Ok(r), Err(e)) => {
                prop_assert!(false, "{:?}: we read {}, Docker refuses it: {}", text, r, e);
            }
        }
    }
}

/// Docker's reading of `text` through `oci-spec`'s port of its grammar, normalized as the cache
/// normalizes (registry names compared without case, Docker Hub's aliases are `docker.io`).
/// `None` where `oci-spec` does not follow Docker: it reads a dotless first component with
/// upper-case letters (`X/y`) as a Docker Hub repository (Docker reads a registry, the cache
/// too), and it has no IPv6 literals.
fn docker_reading(text: &str) -> Option<Result<Parts, String>> {
    let first = text.split_once('/').map(|(f, _)| f);
    if text.contains('[')
        || first.is_some_and(|f| {
            !f.contains(['.', ':']) && f != "localhost" && f.bytes().any(|b| b.is_ascii_uppercase())
        })
    {
        return None;
    }
    Some(match OciReference::try_from(text) {
        Ok(o) => {
            let mut registry = o.registry().to_ascii_lowercase();
            let mut repository = o.repository().to_owned();
            if matches!(
                registry.as_str(),
                "index.docker.io" | "registry-1.docker.io"
            ) {
                registry = "docker.io".to_owned();
            }
            // oci-spec compares the Docker Hub aliases case-sensitively; the cache does not.
            if registry == "docker.io" && !repository.contains('/') {
                repository = format!("library/{repository}");
                if repository.len() > 255 {
                    return Some(Err("repository longer than 255 characters".to_owned()));
                }
            }
            Ok(Parts {
                registry,
                repository,
                tag: o.tag().map(str::to_owned),
                digest: o.digest().map(str::to_owned),
            })
        }
        Err(e) => Err(e.to_string()),
    })
}

#[derive(Debug)]
struct Parts {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Whether the first component has a port of more than five digits or above 65535.
fn has_impossible_port(text: &str) -> bool {
    let Some((first, _)) = text.split_once('/') else {
        return false;
    };
    first
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.len() > 5 || port.parse::<u32>().is_ok_and(|p| p > 65535))
}

#[test]
fn an_upper_case_first_component_names_a_registry() {
    // Docker reads `X/y:1` as registry `X`, repository `y`: a first component with an
    // upper-case letter is a host, since repositories are lower-case.
    let upper = Reference::parse("X/y:1").unwrap();
    assert_eq!((upper.registry(), upper.repository()), ("X", "y"));
    assert_eq!(upper.to_string(), "X/y:1");
    let hub = Reference::parse("docker.io/x/y:1").unwrap();
    assert_eq!(Reference::parse("x/y:1").unwrap(), hub);
    assert_ne!(upper, hub);
    assert_ne!(upper.to_string(), hub.to_string());
    assert_eq!(Reference::parse(&upper.to_string()).unwrap(), upper);
    // Names that are registries without their case keep being lower-cased.
    for (input, canonical) in [
        ("LocalHost/y:1", "localhost/y:1"),
        ("HOST:5000/y:1", "host:5000/y:1"),
        (
            "Registry.Example.COM/a/b",
            "registry.example.com/a/b:latest",
        ),
        ("MyRegistry/team/app", "MyRegistry/team/app:latest"),
    ] {
        let r = Reference::parse(input).unwrap();
        assert_eq!(r.to_string(), canonical, "{input}");
        assert_eq!(Reference::parse(canonical).unwrap(), r, "{input}");
    }
}

#[test]
fn the_length_limit_applies_to_the_normalized_repository() {
    // Docker's limit: 255 characters of repository path, `library/` included.
    let at_limit = format!("x/{}", "a".repeat(253));
    let r = Reference::parse(&at_limit).unwrap();
    assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
    for over in ["a".repeat(248), format!("x/{}", "a".repeat(254))] {
        assert!(
            Reference::parse(&over).is_err(),
            "{} characters",
            over.len()
        );
    }
    let long_registry = format!("{}.io/app", "r".repeat(200));
    let r = Reference::parse(&long_registry).unwrap();
    assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
}
