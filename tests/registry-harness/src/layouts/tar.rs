//! Uncompressed tar archives of one regular file, written header by header (ustar), so that a
//! layer is a real filesystem change set that `umoci unpack` applies.

use std::io::{self, Write};

use super::content::SeededBytes;

const BLOCK: usize = 512;

#[cfg(test)]
/// The size of the archive [`write_single_file`] writes for a file of `size` bytes.
pub(crate) fn archive_size(size: u64) -> u64 {
    let block = BLOCK as u64;
    block + size.div_ceil(block) * block + 2 * block
}

/// Writes a tar holding `name` (mode 0644, owner 0:0, mtime 0) with `size` bytes from
/// `content`, then the two zero blocks that end an archive.
pub(crate) fn write_single_file(
    out: &mut dyn Write,
    name: &str,
    size: u64,
    content: &mut SeededBytes,
) -> io::Result<()> {
    assert!(name.len() < 100, "tar names here fit the ustar name field");
    assert!(size < 8 << 30, "ustar sizes have 11 octal digits");
    let mut header = [0u8; BLOCK];
    header[..name.len()].copy_from_slice(name.as_bytes());
    put(&mut header[100..108], "0000644\0");
    put(&mut header[108..116], "0000000\0");
    put(&mut header[116..124], "0000000\0");
    put(&mut header[124..136], &format!("{size:011o}\0"));
    put(&mut header[136..148], "00000000000\0");
    header[156] = b'0';
    put(&mut header[257..265], "ustar\x0000");
    put(&mut header[265..269], "root");
    put(&mut header[297..301], "root");
    // The checksum is computed with its own field as spaces.
    put(&mut header[148..156], "        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header[148..156], &format!("{sum:06o}\0 "));
    out.write_all(&header)?;

    let mut buf = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        content.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    let padding = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
    out.write_all(&vec![0u8; padding + 2 * BLOCK])?;
    Ok(())
}

fn put(field: &mut [u8], text: &str) {
    field[..text.len()].copy_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tar_lists_the_file_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.tar");
        let mut bytes = Vec::new();
        write_single_file(&mut bytes, "data/file.bin", 1000, &mut SeededBytes::new(1)).unwrap();
        assert_eq!(bytes.len() as u64, archive_size(1000));
        std::fs::write(&path, &bytes).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(listing.contains(" 1000 "), "{listing}");
        assert!(listing.trim_end().ends_with("data/file.bin"), "{listing}");
    }
}
