//! Unpacking an OCI image layout with Debian's `umoci`, the check that a layout's image is
//! usable as a root filesystem.

use std::path::Path;

use crate::error::Result;
use crate::tool::{arg, run};

/// Runs `umoci unpack --rootless --image LAYOUT_DIR:LAYOUT_REF BUNDLE_DIR`; the image's
/// filesystem is then in `BUNDLE_DIR/rootfs`. `bundle_dir` must not exist yet.
pub fn umoci_unpack(layout_dir: &Path, layout_ref: &str, bundle_dir: &Path) -> Result<()> {
    let image = format!("{}:{layout_ref}", arg(layout_dir));
    run(
        "umoci",
        ["unpack", "--rootless", "--image", &image, arg(bundle_dir)],
        None,
    )
    .map(drop)
}
