//! Command-line arguments.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  not found, absent (`blob has` false), or unhealthy (`verify`)
  2  usage error (bad arguments)
  3  invalid input: digest, reference, manifest, digest or size mismatch, argument
  4  corrupted: stored bytes do not match their digest (quarantined, never served)
  5  full or too large: over the byte cap, over the manifest limit, or no space on disk
  6  storage error (the cache directory: I/O, permissions, not a directory)
  7  expired or invalidated
  8  invalid configuration (config.json or flags)
  9  local I/O error outside the cache (reading FILE, writing the output)
 10  network: a registry could not be reached or kept failing (offline and not cached)
 11  unauthorized: a registry refused the credentials, or asked for some and none are known

Errors are one line on stderr: `ocicache: <code>: <message>`, where <code> is the
cache's stable error code (not_found, expired, corrupted, full, invalidated,
invalid_digest, invalid_reference, digest_mismatch, size_mismatch, invalid_manifest,
too_large, invalid_argument, invalid_config, storage, network, unauthorized) or
`usage` / `io`.";

/// A cache for OCI artifacts: manifests, blobs and tag → digest mappings, verified and
/// bounded, in a directory several processes can share.
#[derive(Debug, Parser)]
#[command(name = "ocicache", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The cache directory [default: $XDG_CACHE_HOME/ocicache or ~/.cache/ocicache].
    /// Settings come from config.json in it, if present.
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The engine running the cache's core.
    #[arg(long, global = true, value_enum, default_value_t = EngineArg::Component)]
    pub engine: EngineArg,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Override the byte cap (max_bytes) for this run.
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_bytes: Option<u64>,
    /// Print the cache's log records (recovery, eviction, corruption) on stderr.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Engines.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EngineArg {
    /// The core inside the ocicache.wasm component, run by wasmtime (sandboxed).
    Component,
    /// The core linked into this binary.
    Native,
}

/// Kinds of entries.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// A manifest.
    Manifest,
    /// A blob.
    Blob,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Blobs: put, get, has, rm.
    #[command(subcommand)]
    Blob(BlobCmd),
    /// Manifests: put, get.
    #[command(subcommand)]
    Manifest(ManifestCmd),
    /// Tag mappings: set, get, history, rm.
    #[command(subcommand)]
    Tag(TagCmd),
    /// List entries and tags.
    Ls,
    /// Counts and metrics.
    Stats {
        /// Metrics as Prometheus text.
        #[arg(long)]
        prometheus: bool,
    },
    /// Re-hash everything and report problems, symbolic links and special files among the
    /// stored files included (exit 1 when unhealthy).
    Verify,
    /// Remove corrupted and missing entries, adopt or remove stray files (a symbolic link
    /// itself, never its target).
    Repair,
    /// Remove expired entries, evict down to the cap's low watermark, and remove the partial
    /// downloads no pull is continuing.
    Gc,
    /// Pin an entry (protect it from eviction).
    Pin {
        /// manifest or blob.
        kind: KindArg,
        /// Its digest.
        digest: String,
    },
    /// Remove one pin.
    Unpin {
        /// manifest or blob.
        kind: KindArg,
        /// Its digest.
        digest: String,
    },
    /// Debug tools.
    #[command(subcommand)]
    Debug(DebugCmd),
    /// Print the effective settings.
    Config,
    /// Get an image or artifact by reference: from the cache when its tag is fresh and its
    /// content whole, else from its registry (or a mirror), verified. Prints what it did.
    Pull(PullArgs),
    /// Write an image from the cache into an OCI image layout.
    ///
    /// Writes the image REF names into DIR as an OCI image layout (oci-layout, index.json,
    /// blobs/), from the cache alone: a tag resolves through its cached mapping. Blobs are
    /// hard-linked from the cache when DIR is on the same filesystem, copied otherwise. An
    /// existing layout is added to (an entry with the same tag is replaced); skopeo and umoci
    /// read the image as DIR:TAG.
    Export {
        /// An image reference (`ghcr.io/org/app:1.0`, or `…@sha256:…`).
        reference: String,
        /// The layout directory (created if missing).
        #[arg(value_name = "DIR")]
        layout: PathBuf,
    },
    /// Read an OCI image layout into the cache, verified.
    ///
    /// Reads every blob and manifest, verified against its digest: every image in its index.json, or with DIR:TAG only the one tagged TAG (a path
    /// that names an existing directory as a whole is taken as DIR). Tags are recorded in the
    /// repository given by --name, else the one of each image's io.containerd.image.name; a
    /// tagged image with neither is refused. If any blob fails to verify, what the import
    /// stored is removed again.
    Import {
        /// DIR or DIR:TAG.
        #[arg(value_name = "DIR[:TAG]")]
        source: String,
        /// The repository the layout's tags belong to (`ghcr.io/org/app`).
        #[arg(long, value_name = "REPOSITORY")]
        name: Option<String>,
    },
    /// Create a cache in the directory even if it holds other files (other commands refuse
    /// such a directory and leave it unchanged): blobs and manifests under blobs/ and
    /// manifests/ whose bytes match their digest are adopted; every other file is left alone.
    Init,
}

/// `ocicache pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// An image reference (`ghcr.io/org/tool:1.4`, `nginx`, `host:5000/app@sha256:…`).
    pub reference: String,
    /// The platform to take from an index [default: this machine's].
    #[arg(
        long,
        value_name = "OS/ARCH[/VARIANT]",
        conflicts_with = "all_platforms"
    )]
    pub platform: Option<String>,
    /// Take every platform of an index.
    #[arg(long)]
    pub all_platforms: bool,
    /// Use only the cache: no network (a stale tag is served stale).
    #[arg(long)]
    pub offline: bool,
    /// Fail rather than serve a stale tag when the registry cannot be asked.
    #[arg(long)]
    pub no_stale: bool,
    /// Allow plain HTTP to this registry (loopback registries are always allowed).
    #[arg(long)]
    pub plain_http: bool,
    /// Trust the CA certificates in this PEM file instead of the system's.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// A mirror to try before the registry (repeat for several, tried in order), e.g.
    /// `http://127.0.0.1:5001` or `https://mirror.example`.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// Blob downloads at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
}

#[derive(Debug, Subcommand)]
pub enum BlobCmd {
    /// Store a blob, streamed from FILE (`-` for stdin); prints its digest.
    Put {
        /// The file to store, `-` for stdin.
        file: PathBuf,
        /// The digest it must have (default: stored under its sha256).
        #[arg(long)]
        digest: Option<String>,
    },
    /// Write a blob to stdout or to a file, verified.
    Get {
        /// The blob's digest.
        digest: String,
        /// Write to this file instead (created only once the blob verified).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Whether a blob is present (exit 1 if not).
    Has {
        /// The blob's digest.
        digest: String,
    },
    /// Remove a blob (absent is fine).
    Rm {
        /// The blob's digest.
        digest: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ManifestCmd {
    /// Store a manifest from FILE (`-` for stdin); prints its digest and media type.
    Put {
        /// The manifest file, `-` for stdin.
        file: PathBuf,
        /// The digest it must have (default: its sha256).
        #[arg(long)]
        digest: Option<String>,
        /// The media type the registry announced.
        #[arg(long)]
        media_type: Option<String>,
    },
    /// Write a manifest's exact bytes to stdout.
    Get {
        /// The manifest's digest.
        digest: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TagCmd {
    /// Record that REF points to DIGEST.
    Set {
        /// An image reference (`nginx:1.25`, `ghcr.io/org/app:1.0`).
        reference: String,
        /// The digest it points to.
        digest: String,
    },
    /// Print the digest REF points to.
    Get {
        /// An image reference.
        reference: String,
    },
    /// Print the digests REF pointed to, oldest first.
    History {
        /// An image reference.
        reference: String,
    },
    /// Remove a tag mapping.
    Rm {
        /// An image reference.
        reference: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DebugCmd {
    /// Export debug info, contents and tags as JSON to FILE (`-` for stdout).
    Export {
        /// Where to write.
        file: PathBuf,
    },
}
