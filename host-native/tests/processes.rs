//! Real processes on one directory: concurrency, SIGKILL in the middle of a put, corruption
//! on disk. Every test spawns the built `ocicache` binary.

mod common;

use common::{bin, outcome, pattern, run, sha256, temps};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn verify_healthy(dir: &Path) {
    let (code, out, err) = outcome(&run(dir, &["verify"]));
    assert_eq!(code, 0, "verify: {out}{err}");
    assert!(out.contains("healthy"), "{out}");
}

fn blob_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_processes_put_and_read_concurrently() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let inputs = root.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    const N: u64 = 50;
    // Phase 1: two writers, each putting 50 distinct blobs, concurrently.
    let put_all = |who: u64| {
        let dir = dir.clone();
        let inputs = inputs.clone();
        std::thread::spawn(move || {
            (0..N)
                .map(|i| {
                    let data = pattern(who * 1000 + i, 1000 + (i as usize) * 997);
                    let file = inputs.join(format!("{who}-{i}"));
                    std::fs::write(&file, &data).unwrap();
                    let (code, out, err) =
                        outcome(&run(&dir, &["blob", "put", file.to_str().unwrap()]));
                    assert_eq!(code, 0, "put {who}/{i}: {err}");
                    assert_eq!(out.trim(), sha256(&data).to_string());
                    (out.trim().to_owned(), data)
                })
                .collect::<Vec<_>>()
        })
    };
    let (a, b) = (put_all(1), put_all(2));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());

    // Phase 2: each reads the other's blobs, concurrently, into files.
    let read_all = |who: &str, blobs: Vec<(String, Vec<u8>)>| {
        let dir = dir.clone();
        let out_dir = root.path().join(format!("out-{who}"));
        std::fs::create_dir(&out_dir).unwrap();
        std::thread::spawn(move || {
            for (i, (digest, data)) in blobs.into_iter().enumerate() {
                let target = out_dir.join(i.to_string());
                let (code, _, err) = outcome(&run(
                    &dir,
                    &["blob", "get", &digest, "-o", target.to_str().unwrap()],
                ));
                assert_eq!(code, 0, "get {digest}: {err}");
                assert_eq!(std::fs::read(&target).unwrap(), data);
            }
        })
    };
    let (ra, rb) = (read_all("a", b.clone()), read_all("b", a.clone()));
    ra.join().unwrap();
    rb.join().unwrap();

    verify_healthy(&dir);
    let (code, out, _) = outcome(&run(&dir, &["--json", "ls"]));
    assert_eq!(code, 0);
    let listing: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listing["contents"].as_array().unwrap().len(),
        2 * N as usize
    );
    assert_eq!(blob_files(&dir).len(), 2 * N as usize);
    assert!(temps(&dir).is_empty());
}

/// Starts `ocicache blob put -` and feeds it `data` from a pipe, killing it with SIGKILL after
/// `before_kill` bytes (all of them, then closing the pipe, when `None`) and `delay`.
fn killed_put(dir: &Path, data: &[u8], before_kill: Option<usize>, delay: Duration) {
    let mut child = Command::new(bin())
        .arg("--dir")
        .arg(dir)
        .args(["blob", "put", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let upto = before_kill.unwrap_or(data.len());
    for chunk in data[..upto].chunks(64 << 10) {
        if stdin.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = stdin.flush();
    if before_kill.is_none() {
        drop(stdin);
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
    } else {
        // Let the child consume what was written (it is then blocked reading the pipe).
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        drop(stdin);
    }
}

#[test]
fn sigkill_during_a_large_put_leaves_a_consistent_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    // Something already stored must survive every kill.
    let keep = pattern(7, 100_000);
    let keep_file = root.path().join("keep");
    std::fs::write(&keep_file, &keep).unwrap();
    let (code, _, err) = outcome(&run(&dir, &["blob", "put", keep_file.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");

    let data = pattern(42, 24 << 20);
    let digest = sha256(&data).to_string();
    let points: Vec<(Option<usize>, u64)> = vec![
        (Some(1 << 20), 200),    // early in the write
        (Some(12 << 20), 300),   // halfway
        (Some(data.len()), 300), // every byte written, input not yet closed
        (None, 0),               // input closed: killed as late as we can get, at several delays
        (None, 2),
        (None, 10),
        (None, 30),
        (None, 80),
    ];
    let mut committed = 0;
    for (i, (before_kill, delay)) in points.into_iter().enumerate() {
        killed_put(&dir, &data, before_kill, Duration::from_millis(delay));
        // The next process opens the directory (clearing the dead writer's temp) and verifies.
        verify_healthy(&dir);
        assert!(
            temps(&dir).is_empty(),
            "kill point {i}: temp left: {:?}",
            temps(&dir)
        );
        // No partial blob: every stored file is complete (verify re-hashed them), and the big
        // one is either fully there or absent.
        let (code, _, _) = outcome(&run(&dir, &["blob", "has", &digest]));
        match code {
            0 => {
                committed += 1;
                let out = root.path().join(format!("check-{i}"));
                let (code, _, err) = outcome(&run(
                    &dir,
                    &["blob", "get", &digest, "-o", out.to_str().unwrap()],
                ));
                assert_eq!(code, 0, "{err}");
                assert!(
                    std::fs::read(&out).unwrap() == data,
                    "kill point {i}: wrong bytes"
                );
                // Remove it again so the next kill point starts from the same state.
                assert_eq!(outcome(&run(&dir, &["blob", "rm", &digest])).0, 0);
            }
            1 => {}
            other => panic!("kill point {i}: blob has exited {other}"),
        }
        if before_kill.is_some() {
            assert_eq!(
                code, 1,
                "kill point {i}: a blob killed mid-write must not exist"
            );
        }
        assert_eq!(blob_files(&dir), [sha256(&keep).hex()], "kill point {i}");
        let (code, _, _) = outcome(&run(&dir, &["blob", "has", &sha256(&keep).to_string()]));
        assert_eq!(code, 0, "kill point {i}: earlier content survives");
    }
    eprintln!("late kills that still committed: {committed}");
}

#[test]
fn corruption_on_disk_is_reported_never_served_and_repaired() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let data = pattern(3, 3 << 20);
    let file = root.path().join("blob");
    std::fs::write(&file, &data).unwrap();
    let (code, out, _) = outcome(&run(&dir, &["blob", "put", file.to_str().unwrap()]));
    assert_eq!(code, 0);
    let digest = out.trim().to_owned();
    verify_healthy(&dir);

    // Flip one byte near the end of the stored file.
    let stored = dir.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let mut bytes = std::fs::read(&stored).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();

    let (code, out, _) = outcome(&run(&dir, &["verify"]));
    assert_eq!(code, 1, "verify reports it: {out}");
    assert!(out.contains("corrupted"), "{out}");

    // Never served: to a file (not created, no temp left beside it) …
    let target = root.path().join("out").join("blob");
    std::fs::create_dir(root.path().join("out")).unwrap();
    let (code, _, err) = outcome(&run(
        &dir,
        &["blob", "get", &digest, "-o", target.to_str().unwrap()],
    ));
    assert_eq!(code, 4, "{err}");
    assert!(err.starts_with("ocicache: corrupted: "), "{err}");
    assert!(!target.exists(), "no output file");
    assert_eq!(
        std::fs::read_dir(root.path().join("out")).unwrap().count(),
        0
    );
    // … nor to stdout, where the last chunk is withheld and the exit code says so.
    let o = run(&dir, &["blob", "get", &digest]);
    assert_ne!(o.status.code(), Some(0));
    assert!(o.stdout.len() < data.len());

    let (code, out, err) = outcome(&run(&dir, &["repair"]));
    assert_eq!(code, 0, "{out}{err}");
    verify_healthy(&dir);
    assert_eq!(outcome(&run(&dir, &["blob", "has", &digest])).0, 1);
    // Put again, it is served.
    assert_eq!(
        outcome(&run(&dir, &["blob", "put", file.to_str().unwrap()])).0,
        0
    );
    let o = run(&dir, &["blob", "get", &digest]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout == data);
}

#[test]
fn a_temp_of_a_live_writer_survives_another_process() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let data = pattern(9, 4 << 20);
    let mut child = Command::new(bin())
        .arg("--dir")
        .arg(&dir)
        .args(["blob", "put", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data[..1 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(temps(&dir).len(), 1);
    // Another process opens (clear_temps) and repairs (clear_temps again) meanwhile.
    assert_eq!(outcome(&run(&dir, &["repair"])).0, 0);
    assert_eq!(temps(&dir).len(), 1, "the live writer's temp survives");
    stdin.write_all(&data[1 << 20..]).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        sha256(&data).to_string()
    );
    verify_healthy(&dir);
}

#[test]
fn blob_get_into_a_fifo_or_through_a_symlink_keeps_what_the_path_is() {
    use std::os::unix::fs::FileTypeExt;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cache");
    let data = pattern(77, 300_000);
    let file = work.path().join("in");
    std::fs::write(&file, &data).unwrap();
    let (code, out, err) = outcome(&run(&dir, &["blob", "put", file.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let digest = out.trim().to_owned();

    // A FIFO (as `-o /dev/null` is a device): written in place, never replaced by a file.
    let fifo = work.path().join("pipe");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let fifo = fifo.clone();
        // If the FIFO were replaced, this reader would wait forever: the test fails on a
        // timeout instead.
        std::thread::spawn(move || tx.send(std::fs::read(fifo).unwrap()));
    }
    let (code, _, err) = outcome(&run(
        &dir,
        &["blob", "get", &digest, "-o", fifo.to_str().unwrap()],
    ));
    assert_eq!(code, 0, "{err}");
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the FIFO's reader got the blob");
    assert_eq!(got, data);
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO must still be a FIFO"
    );

    // A symbolic link to a file: the link stays, its target gets the bytes.
    let target = work.path().join("target");
    std::fs::write(&target, b"old").unwrap();
    let link = work.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (code, _, err) = outcome(&run(
        &dir,
        &["blob", "get", &digest, "-o", link.to_str().unwrap()],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), data);

    // A directory is refused, and left alone.
    let (code, _, _) = outcome(&run(
        &dir,
        &["blob", "get", &digest, "-o", work.path().to_str().unwrap()],
    ));
    assert_eq!(code, 9);
}
