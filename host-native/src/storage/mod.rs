//! Storage the native host lends the core.
//!
//! [`FsStorage`] keeps a cache directory on the real filesystem, durably and confined to its
//! root; see its module for the rules.

pub(crate) mod fs;

pub use fs::{
    FsStorage, MAX_COMPONENT_LEN, MAX_PATH_LEN, RESERVED_TOP_LEVEL, TEMP_DIR, check_path,
};
