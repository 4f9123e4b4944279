//! Running the machine's tools (`openssl`, `skopeo`) with their failures made readable.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Result, error};

/// Runs `program args…`, feeding `stdin`, and returns its stdout; a non-zero exit is an
/// error carrying the command line and stderr.
pub(crate) fn run<I, S>(program: &str, args: I, stdin: Option<&[u8]>) -> Result<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    run_command(&mut command, stdin)
}

/// Runs a prepared command as [`run`] does.
pub(crate) fn run_command(command: &mut Command, stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    let line = format!("{command:?}");
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| error!("cannot run {line}: {e} (is it installed?)"))?;
    if let Some(input) = stdin {
        // Written whole before reading: the inputs here (a JWT's signing input) are small.
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input)
            .map_err(|e| error!("writing to {line}: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| error!("waiting for {line}: {e}"))?;
    if !output.status.success() {
        return Err(error!(
            "{line} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    Ok(output.stdout)
}

/// A path as `&str` for a command line; the harness's paths live under the temp dir and are
/// UTF-8.
pub(crate) fn arg(path: &std::path::Path) -> &str {
    path.to_str().expect("harness paths are UTF-8")
}
