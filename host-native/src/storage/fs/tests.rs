use super::*;
use std::os::unix::fs::symlink;

fn storage() -> (tempfile::TempDir, FsStorage) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStorage::open(dir.path()).unwrap();
    (dir, fs)
}

fn put(fs: &mut FsStorage, path: &str, data: &[u8]) -> Result<(), StorageError> {
    let t = fs.create_temp(Some(data.len() as u64))?;
    fs.write_temp(t, data)?;
    fs.commit_temp(t, path)
}

fn read_all(fs: &mut FsStorage, path: &str) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    let mut buf = [0u8; 3];
    loop {
        let n = fs.read_at(path, out.len() as u64, &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Every file and directory under `root`, with file contents: to show that nothing changed.
fn tree(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        let mut entries: Vec<_> = fs::read_dir(at).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                out.push((rel, None));
                walk(root, &p, out);
            } else if t.is_symlink() {
                out.push((rel, Some(b"<symlink>".to_vec())));
            } else {
                out.push((rel, Some(fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

fn temps_on_disk(root: &Path) -> usize {
    fs::read_dir(root.join(TEMP_DIR)).map_or(0, |d| d.count())
}

const HOSTILE: &[&str] = &[
    "",
    "/",
    "/etc/passwd",
    "..",
    "../x",
    "a/../../x",
    "blobs/../../x",
    ".",
    "./blobs/x",
    "blobs/./x",
    "blobs//x",
    "blobs/x/",
    "/blobs/x",
    "blobs\\..\\x",
    "blobs/x\0y",
    "\0",
    "blobs/sp ace",
    "blobs/é",
    "blobs/x:y",
    "blobs/*",
    "tmp/1-2-3.tmp",
    "tmp",
    "lock",
    "config.json",
];

#[test]
fn hostile_paths_are_refused_by_every_method_and_change_nothing() {
    let (dir, mut fs) = storage();
    put(&mut fs, "blobs/sha256/aa", b"keep").unwrap();
    let long = "a/".repeat(MAX_PATH_LEN / 2) + "a";
    let long_component = "a".repeat(MAX_COMPONENT_LEN + 1);
    let mut cases: Vec<&str> = HOSTILE.to_vec();
    cases.push(&long);
    cases.push(&long_component);
    let before = tree(dir.path());
    for &path in &cases {
        let invalid = |r: Result<(), StorageError>| {
            assert!(
                matches!(r, Err(StorageError::InvalidPath(_))),
                "{path:?}: {r:?}"
            );
        };
        invalid(fs.append(path, b"x"));
        invalid(fs.read_at(path, 0, &mut [0; 4]).map(drop));
        invalid(fs.size(path).map(drop));
        invalid(fs.list(path).map(drop));
        invalid(fs.remove(path));
        invalid(put(&mut fs, path, b"x"));
    }
    assert_eq!(tree(dir.path()), before, "hostile paths changed nothing");
    assert_eq!(temps_on_disk(dir.path()), 0, "failed commits leave no temp");
}

#[test]
fn valid_paths_are_accepted() {
    for p in [
        "blobs/sha256/ab",
        "index/journal-0",
        "a",
        "A.b_c-d/e",
        "x/tmp",
        "locks",
    ] {
        check_path(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

#[test]
fn commit_makes_the_temp_the_file_and_leaves_no_temp() {
    let (dir, mut fs) = storage();
    let t = fs.create_temp(None).unwrap();
    fs.write_temp(t, b"hello ").unwrap();
    assert_eq!(temps_on_disk(dir.path()), 1);
    assert_eq!(
        fs.size("blobs/sha256/x").unwrap(),
        None,
        "invisible until commit"
    );
    fs.write_temp(t, b"world").unwrap();
    fs.commit_temp(t, "blobs/sha256/x").unwrap();
    assert_eq!(read_all(&mut fs, "blobs/sha256/x").unwrap(), b"hello world");
    assert_eq!(temps_on_disk(dir.path()), 0);
    assert!(
        fs.write_temp(t, b"more").is_err(),
        "a committed temp is gone"
    );
    assert!(fs.commit_temp(t, "blobs/sha256/y").is_err());
    // Committing replaces previous content.
    put(&mut fs, "blobs/sha256/x", b"new").unwrap();
    assert_eq!(read_all(&mut fs, "blobs/sha256/x").unwrap(), b"new");
}

#[test]
fn abort_removes_the_temp() {
    let (dir, mut fs) = storage();
    let t = fs.create_temp(Some(10)).unwrap();
    fs.write_temp(t, b"data").unwrap();
    fs.abort_temp(t).unwrap();
    assert_eq!(temps_on_disk(dir.path()), 0);
    fs.abort_temp(t).unwrap();
    assert!(fs.commit_temp(t, "blobs/x").is_err());
    assert_eq!(fs.size("blobs/x").unwrap(), None);
}

#[test]
fn append_creates_then_appends() {
    let (_dir, mut fs) = storage();
    fs.append("index/journal-0", b"one").unwrap();
    fs.append("index/journal-0", b"two").unwrap();
    assert_eq!(read_all(&mut fs, "index/journal-0").unwrap(), b"onetwo");
    assert_eq!(fs.size("index/journal-0").unwrap(), Some(6));
}

#[test]
fn read_at_is_positioned() {
    let (_dir, mut fs) = storage();
    put(&mut fs, "f", b"0123456789").unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(fs.read_at("f", 3, &mut buf).unwrap(), 4);
    assert_eq!(&buf, b"3456");
    assert_eq!(fs.read_at("f", 8, &mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"89");
    assert_eq!(fs.read_at("f", 10, &mut buf).unwrap(), 0);
    assert_eq!(fs.read_at("f", 100, &mut buf).unwrap(), 0);
    assert!(matches!(
        fs.read_at("missing", 0, &mut buf),
        Err(StorageError::NotFound(_))
    ));
}

#[test]
fn a_replaced_or_removed_file_never_serves_old_bytes() {
    let (_dir, mut fs) = storage();
    put(&mut fs, "blobs/a", b"old old").unwrap();
    let mut buf = [0u8; 3];
    fs.read_at("blobs/a", 0, &mut buf).unwrap();
    put(&mut fs, "blobs/a", b"NEW NEW").unwrap();
    assert_eq!(fs.read_at("blobs/a", 0, &mut buf).unwrap(), 3);
    assert_eq!(&buf, b"NEW");
    fs.remove("blobs/a").unwrap();
    assert!(matches!(
        fs.read_at("blobs/a", 0, &mut buf),
        Err(StorageError::NotFound(_))
    ));
}

#[test]
fn size_list_and_remove() {
    let (_dir, mut fs) = storage();
    assert_eq!(fs.size("nothing/here").unwrap(), None);
    assert_eq!(fs.list("nothing").unwrap(), Vec::<String>::new());
    put(&mut fs, "blobs/sha256/b", b"bb").unwrap();
    put(&mut fs, "blobs/sha256/a", b"a").unwrap();
    put(&mut fs, "blobs/sha512/c", b"c").unwrap();
    assert_eq!(fs.list("blobs/sha256").unwrap(), ["a", "b"]);
    assert_eq!(
        fs.list("blobs").unwrap(),
        ["sha256", "sha512"],
        "direct names only"
    );
    assert_eq!(fs.size("blobs/sha256/b").unwrap(), Some(2));
    fs.remove("blobs/sha256/b").unwrap();
    fs.remove("blobs/sha256/b").unwrap();
    fs.remove("never/was").unwrap();
    assert_eq!(fs.size("blobs/sha256/b").unwrap(), None);
    assert_eq!(fs.list("blobs/sha256").unwrap(), ["a"]);
}

#[test]
fn list_skips_names_the_core_cannot_address() {
    let (dir, mut fs) = storage();
    put(&mut fs, "blobs/ok", b"x").unwrap();
    fs::write(dir.path().join("blobs/with space"), b"x").unwrap();
    fs::write(dir.path().join("blobs/é"), b"x").unwrap();
    assert_eq!(fs.list("blobs").unwrap(), ["ok"]);
}

#[test]
fn symlinks_are_never_followed() {
    let (dir, mut fs) = storage();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    let before_outside = tree(outside.path());

    // A directory component that is a symlink out of the root.
    symlink(outside.path(), dir.path().join("blobs")).unwrap();
    for r in [
        fs.append("blobs/secret", b"x"),
        put(&mut fs, "blobs/new", b"x"),
        fs.read_at("blobs/secret", 0, &mut [0; 4]).map(drop),
        fs.size("blobs/secret").map(drop),
        fs.list("blobs").map(drop),
        fs.remove("blobs/secret"),
    ] {
        assert!(matches!(r, Err(StorageError::InvalidPath(_))), "{r:?}");
    }
    fs::remove_file(dir.path().join("blobs")).unwrap();

    // A final file that is a symlink: absent for size, refused for reads and appends.
    fs::create_dir(dir.path().join("manifests")).unwrap();
    symlink(
        outside.path().join("secret"),
        dir.path().join("manifests/m"),
    )
    .unwrap();
    assert_eq!(fs.size("manifests/m").unwrap(), None);
    assert!(fs.read_at("manifests/m", 0, &mut [0; 4]).is_err());
    assert!(fs.append("manifests/m", b"x").is_err());
    // Committing onto it replaces the link, not its target.
    put(&mut fs, "manifests/m", b"mine").unwrap();
    assert_eq!(read_all(&mut fs, "manifests/m").unwrap(), b"mine");
    assert_eq!(
        tree(outside.path()),
        before_outside,
        "nothing outside changed"
    );
}

#[test]
fn root_must_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"unrelated").unwrap();
    assert!(matches!(
        FsStorage::open(&file),
        Err(StorageError::InvalidPath(_))
    ));
    assert_eq!(fs::read(&file).unwrap(), b"unrelated");
    // A missing root is created.
    let fresh = dir.path().join("a/b");
    FsStorage::open(&fresh).unwrap();
    assert!(fresh.join(TEMP_DIR).is_dir());
}

#[test]
fn clear_temps_removes_only_temps_of_dead_writers() {
    let (dir, mut a) = storage();
    let mut b = FsStorage::open(dir.path()).unwrap();
    // A live temp of another storage (as another process would hold) and one of our own.
    let live_b = b.create_temp(None).unwrap();
    b.write_temp(live_b, b"b's download").unwrap();
    let live_a = a.create_temp(None).unwrap();
    a.write_temp(live_a, b"a's download").unwrap();
    // Leftovers of dead writers: unlocked files, and a symlink.
    fs::write(dir.path().join("tmp/999-1-0.tmp"), b"dead").unwrap();
    fs::write(dir.path().join("tmp/999-2-0.tmp"), b"dead").unwrap();
    symlink("/etc/passwd", dir.path().join("tmp/link")).unwrap();
    assert_eq!(a.clear_temps().unwrap(), 3);
    assert_eq!(temps_on_disk(dir.path()), 2, "both live temps survive");
    assert!(fs::metadata("/etc/passwd").is_ok());
    // Both writers still commit.
    b.commit_temp(live_b, "blobs/b").unwrap();
    a.commit_temp(live_a, "blobs/a").unwrap();
    assert_eq!(read_all(&mut a, "blobs/b").unwrap(), b"b's download");
    // A writer that goes away without committing releases its lock: its temp is then cleared.
    let abandoned = b.create_temp(None).unwrap();
    b.write_temp(abandoned, b"partial").unwrap();
    assert_eq!(a.clear_temps().unwrap(), 0);
    drop(b);
    assert_eq!(temps_on_disk(dir.path()), 1, "dropping does not remove");
    assert_eq!(a.clear_temps().unwrap(), 1);
    assert_eq!(temps_on_disk(dir.path()), 0);
}

#[test]
fn errors_map_to_the_core_vocabulary() {
    let p = Path::new("x");
    let os = io::Error::from_raw_os_error;
    assert_eq!(map_err(os(libc::ENOSPC), p), StorageError::NoSpace);
    assert_eq!(map_err(os(libc::EDQUOT), p), StorageError::NoSpace);
    assert!(matches!(
        map_err(os(libc::ENOENT), p),
        StorageError::NotFound(_)
    ));
    assert!(matches!(
        map_err(os(libc::ELOOP), p),
        StorageError::InvalidPath(_)
    ));
    assert!(matches!(map_err(os(libc::EIO), p), StorageError::Io(_)));
}

/// The real thing where the machine allows it: a tiny tmpfs fills up (needs root; skipped
/// otherwise).
#[test]
fn a_full_device_is_no_space() {
    let mnt = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(mnt.path())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let result = (|| {
        let mut fs = FsStorage::open(mnt.path())?;
        let t = fs.create_temp(None)?;
        for _ in 0..64 {
            fs.write_temp(t, &[7u8; 4096])?;
        }
        Ok::<(), StorageError>(())
    })();
    let _ = std::process::Command::new("umount")
        .arg(mnt.path())
        .status();
    assert_eq!(result, Err(StorageError::NoSpace));
}

/// Swaps `dir/blobs/sha256` for a symbolic link to `outside` (keeping the real directory as
/// `blobs/sha256.moved`), as a hostile process racing with us would.
fn swap_for_a_symlink(root: &Path, outside: &Path) {
    let real = root.join("blobs/sha256");
    fs::rename(&real, root.join("blobs/sha256.moved")).unwrap();
    symlink(outside, &real).unwrap();
}

/// Undoes [`swap_for_a_symlink`].
fn unswap(root: &Path) {
    fs::remove_file(root.join("blobs/sha256")).unwrap();
    fs::rename(root.join("blobs/sha256.moved"), root.join("blobs/sha256")).unwrap();
}

#[test]
fn a_directory_swapped_for_a_symlink_is_never_followed() {
    let (dir, mut fs) = storage();
    let root = dir.path();
    let outside = tempfile::tempdir().unwrap();
    // Outside, files under the names the operations below use.
    for name in ["x", "new", "journal", "outside-marker"] {
        fs::write(outside.path().join(name), b"outside").unwrap();
    }
    let before_outside = tree(outside.path());
    put(&mut fs, "blobs/sha256/x", b"inside").unwrap();

    // Between two operations: the next one is refused.
    swap_for_a_symlink(root, outside.path());
    for r in [
        fs.read_at("blobs/sha256/x", 0, &mut [0; 8]).map(drop),
        fs.size("blobs/sha256/x").map(drop),
        fs.list("blobs/sha256").map(drop),
        fs.remove("blobs/sha256/x"),
        fs.append("blobs/sha256/journal", b"record"),
        put(&mut fs, "blobs/sha256/new", b"mine"),
    ] {
        assert!(matches!(r, Err(StorageError::InvalidPath(_))), "{r:?}");
    }
    unswap(root);
    assert_eq!(tree(outside.path()), before_outside);

    // Within one operation, between its checks and its use: it acts on the directory it
    // checked (now `blobs/sha256.moved`, still inside the root), or fails; never outside.
    type Op = Box<dyn Fn(&mut FsStorage) -> Result<Vec<u8>, StorageError>>;
    let ops: Vec<(&str, Op)> = vec![
        (
            "read_at",
            Box::new(|fs| {
                let mut buf = [0u8; 16];
                let n = fs.read_at("blobs/sha256/x", 0, &mut buf)?;
                Ok(buf[..n].to_vec())
            }),
        ),
        (
            "size",
            Box::new(|fs| Ok(format!("{:?}", fs.size("blobs/sha256/x")?).into_bytes())),
        ),
        (
            "list",
            Box::new(|fs| Ok(fs.list("blobs/sha256")?.join(",").into_bytes())),
        ),
        (
            "remove",
            Box::new(|fs| fs.remove("blobs/sha256/x").map(|()| Vec::new())),
        ),
        (
            "append",
            Box::new(|fs| {
                fs.append("blobs/sha256/journal", b"record")
                    .map(|()| Vec::new())
            }),
        ),
        (
            "commit",
            Box::new(|fs| put(fs, "blobs/sha256/new", b"mine").map(|()| Vec::new())),
        ),
    ];
    for (name, op) in ops {
        put(&mut fs, "blobs/sha256/x", b"inside").unwrap();
        let (root_path, outside_path) = (root.to_path_buf(), outside.path().to_path_buf());
        BETWEEN_CHECK_AND_USE.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                swap_for_a_symlink(&root_path, &outside_path)
            }))
        });
        let result = op(&mut fs);
        let swapped = BETWEEN_CHECK_AND_USE
            .with(|h| h.borrow_mut().take())
            .is_none();
        assert!(swapped, "{name}: the swap ran");
        assert_eq!(
            tree(outside.path()),
            before_outside,
            "{name}: nothing outside changed"
        );
        match result {
            Ok(seen) => {
                let seen = String::from_utf8_lossy(&seen).into_owned();
                assert!(
                    !seen.contains("outside") && !seen.contains("Some(7)"),
                    "{name}: read outside: {seen}"
                );
            }
            Err(e) => assert!(matches!(e, StorageError::InvalidPath(_)), "{name}: {e:?}"),
        }
        unswap(root);
        let _ = fs::remove_file(root.join("blobs/sha256/journal"));
        let _ = fs::remove_file(root.join("blobs/sha256/new"));
    }
}

#[test]
fn a_removal_is_durable() {
    let (_dir, mut fs) = storage();
    put(&mut fs, "blobs/sha256/aa", b"bytes").unwrap();
    SYNCED_DIRS.with(|s| s.borrow_mut().clear());
    fs.remove("blobs/sha256/aa").unwrap();
    let synced = SYNCED_DIRS.with(|s| s.borrow().clone());
    assert!(
        synced.iter().any(|d| d.ends_with("blobs/sha256")),
        "the directory that held the file was fsynced: {synced:?}"
    );
    // Removing what is not there syncs nothing and is not an error.
    SYNCED_DIRS.with(|s| s.borrow_mut().clear());
    fs.remove("blobs/sha256/aa").unwrap();
    fs.remove("nothing/here").unwrap();
    assert!(SYNCED_DIRS.with(|s| s.borrow().is_empty()));
}

/// Bytes allocated on the device for the only temp in `root/tmp`, and its length.
fn temp_allocation(root: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let entry = fs::read_dir(root.join(TEMP_DIR))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let m = entry.metadata().unwrap();
    (m.blocks() * 512, m.len())
}

#[test]
fn an_announced_size_is_reserved_on_the_device() {
    let (dir, mut fs) = storage();
    let t = fs.create_temp(Some(4 << 20)).unwrap();
    let (allocated, len) = temp_allocation(dir.path());
    assert_eq!(len, 0, "nothing written yet");
    assert!(allocated >= 4 << 20, "{allocated} bytes allocated");
    // A hint, not a limit: more may be written, and what was not used is given back.
    fs.write_temp(t, &[1u8; 1000]).unwrap();
    fs.commit_temp(t, "blobs/small").unwrap();
    let m = fs::metadata(dir.path().join("blobs/small")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(m.len(), 1000);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "{} bytes kept",
        m.blocks() * 512
    );
    let t = fs.create_temp(Some(10)).unwrap();
    fs.write_temp(t, &[2u8; 100_000]).unwrap();
    fs.commit_temp(t, "blobs/large").unwrap();
    assert_eq!(fs.size("blobs/large").unwrap(), Some(100_000));
}

/// Where the machine allows it (root): an announced size larger than the free space of a tiny
/// tmpfs fails at once, before a byte is streamed, and leaves no temp.
#[test]
fn an_announced_size_beyond_the_free_space_is_no_space_at_once() {
    let mnt = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(mnt.path())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let result = (|| {
        let mut fs = FsStorage::open(mnt.path())?;
        let big = fs.create_temp(Some(1 << 20)).map(drop);
        let left = temps_on_disk(mnt.path());
        // What fits is reserved and written.
        let t = fs.create_temp(Some(64 << 10))?;
        fs.write_temp(t, &[3u8; 64 << 10])?;
        fs.commit_temp(t, "blobs/fits")?;
        Ok::<_, StorageError>((big, left))
    })();
    let _ = std::process::Command::new("umount")
        .arg(mnt.path())
        .status();
    assert_eq!(result, Ok((Err(StorageError::NoSpace), 0)));
}

#[test]
fn special_files_are_listed_absent_and_never_opened_blocking() {
    let (dir, mut fs) = storage();
    put(&mut fs, "blobs/sha256/ok", b"x").unwrap();
    let blobs = dir.path().join("blobs/sha256");
    symlink("/etc/passwd", blobs.join("link")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(blobs.join("fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    // Listed, so that the integrity check can report them; but not content.
    assert_eq!(fs.list("blobs/sha256").unwrap(), ["fifo", "link", "ok"]);
    for name in ["fifo", "link"] {
        let path = format!("blobs/sha256/{name}");
        assert_eq!(fs.size(&path).unwrap(), None, "{name}");
        assert!(
            matches!(
                fs.read_at(&path, 0, &mut [0; 4]),
                Err(StorageError::NotFound(_))
            ),
            "{name}"
        );
        assert!(fs.append(&path, b"x").is_err(), "{name}");
    }
    // Removing one removes the entry itself.
    fs.remove("blobs/sha256/link").unwrap();
    fs.remove("blobs/sha256/fifo").unwrap();
    assert_eq!(fs.list("blobs/sha256").unwrap(), ["ok"]);
    assert!(fs::metadata("/etc/passwd").is_ok());
}

/// fsyncs of files and directories made by `f` on this thread.
fn syncs_of(f: impl FnOnce()) -> (u64, usize) {
    SYNCED_FILES.with(|n| n.set(0));
    SYNCED_DIRS.with(|s| s.borrow_mut().clear());
    f();
    (
        SYNCED_FILES.with(|n| n.get()),
        SYNCED_DIRS.with(|s| s.borrow().len()),
    )
}

#[test]
fn strict_syncs_every_change_and_relaxed_none() {
    let (dir, mut fs) = storage();
    let work = |fs: &mut FsStorage, n: u8| {
        put(fs, &format!("blobs/sha256/a{n}"), b"bytes").unwrap();
        fs.append(&format!("index/journal-{n}"), b"record").unwrap();
        fs.append(&format!("index/journal-{n}"), b"record").unwrap();
        fs.remove(&format!("blobs/sha256/a{n}")).unwrap();
    };
    // Strict (the default): the commit syncs the file and its new and final directories, each
    // append its file (the first also the directory), the removal its directory.
    let (files, dirs) = syncs_of(|| work(&mut fs, 0));
    assert_eq!(files, 3, "commit + two appends");
    assert!(dirs >= 4, "{dirs} directories");
    assert_eq!(fs.set_durability(Durability::Relaxed), Durability::Relaxed);
    assert_eq!(
        syncs_of(|| work(&mut fs, 1)),
        (0, 0),
        "relaxed syncs nothing"
    );
    // The same changes, visible to every reader at once.
    assert_eq!(fs.size("blobs/sha256/a1").unwrap(), None);
    assert_eq!(
        read_all(&mut fs, "index/journal-1").unwrap(),
        b"recordrecord"
    );
    put(&mut fs, "blobs/sha256/b", b"kept").unwrap();
    let mut other = FsStorage::open(dir.path()).unwrap();
    assert_eq!(read_all(&mut other, "blobs/sha256/b").unwrap(), b"kept");
    // And back.
    assert_eq!(fs.set_durability(Durability::Strict), Durability::Strict);
    let (files, _) = syncs_of(|| work(&mut fs, 2));
    assert_eq!(files, 3);
}
