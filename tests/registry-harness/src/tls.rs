//! A certificate authority made by the test with the `openssl` CLI, and the server
//! certificate for `127.0.0.1` / `localhost` that a TLS [`Registry`](crate::Registry) presents.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Context, Result};
use crate::tool::{arg, run};

/// A CA (key and certificate) and one server certificate it signed, as files in a directory.
///
/// Keys are ECDSA P-256: quick to generate, and accepted by Go (distribution, skopeo) and by
/// rustls alike.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    /// The temp dir of [`TestCa::new`], removed when the last copy goes.
    _temp: Option<Arc<tempfile::TempDir>>,
}

const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

impl TestCa {
    /// Copies the CA and server files of `self` into `dir` (which must exist): the same
    /// certificate serves any port of `127.0.0.1`, so registries can share one CA.
    pub(crate) fn copy_to(&self, dir: &Path) -> Result<TestCa> {
        for name in ["ca.crt", "server.crt", "server.key"] {
            fs::copy(self.dir.join(name), dir.join(name))?;
        }
        Ok(TestCa::at(dir))
    }

    /// Generates a fresh CA and a server certificate for `IP:127.0.0.1` and `DNS:localhost`
    /// into `dir`, which must exist.
    pub fn generate(dir: &Path) -> Result<TestCa> {
        let ca = TestCa::at(dir);
        let p = |name: &str| dir.join(name);
        let (ca_key, ca_crt) = (p("ca.key"), ca.ca_file());
        let (key, csr, ext, crt) = (
            p("server.key"),
            p("server.csr"),
            p("server.ext"),
            ca.server_cert_file(),
        );
        let mut args = vec!["req", "-x509"];
        args.extend(EC_KEY);
        args.extend(["-days", "3", "-subj", "/CN=ocicache test CA"]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        args.extend(["-keyout", arg(&ca_key), "-out", arg(&ca_crt)]);
        run("openssl", &args, None)?;

        let mut args = vec!["req"];
        args.extend(EC_KEY);
        args.extend([
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            arg(&key),
            "-out",
            arg(&csr),
        ]);
        run("openssl", &args, None)?;
        fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        let args = [
            "x509",
            "-req",
            "-days",
            "3",
            "-in",
            arg(&csr),
            "-CA",
            arg(&ca_crt),
            "-CAkey",
            arg(&ca_key),
            "-CAcreateserial",
            "-extfile",
            arg(&ext),
            "-out",
            arg(&crt),
        ];
        run("openssl", args, None)?;
        Ok(ca)
    }

    /// A new CA in a directory of its own, which the returned value removes on drop.
    pub fn new() -> Result<TestCa> {
        let dir = tempfile::Builder::new().prefix("ocicache-ca-").tempdir()?;
        let ca = TestCa::generate(dir.path())?;
        Ok(TestCa {
            dir: ca.dir,
            _temp: Some(Arc::new(dir)),
        })
    }

    /// The CA whose files are in `dir`.
    pub(crate) fn at(dir: &Path) -> TestCa {
        TestCa {
            dir: dir.to_path_buf(),
            _temp: None,
        }
    }

    /// The directory holding the CA's and the server's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM): what a client must trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server certificate (PEM), signed by the CA.
    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// The server's private key (PEM).
    pub fn server_key_file(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// A rustls server configuration presenting the server certificate (HTTP/1.1 only).
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let cert_file = self.server_cert_file();
        let key_file = self.server_key_file();
        let cert = run(
            "openssl",
            ["x509", "-in", arg(&cert_file), "-outform", "DER"],
            None,
        )?;
        let key = run(
            "openssl",
            [
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                arg(&key_file),
                "-outform",
                "DER",
            ],
            None,
        )?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context(|| "TLS versions".into())?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .context(|| "TLS server certificate".into())?;
        Ok(Arc::new(config))
    }
}
