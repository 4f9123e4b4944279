//! htpasswd files for distribution's Basic auth, which accepts bcrypt entries only.

use crate::error::{Context, Result};

/// The htpasswd lines for `users`, as `htpasswd -B` writes them (`$2y$`).
///
/// Cost 4, bcrypt's least: the registry checks the password on every request, and at the
/// usual cost 10 that alone would take tens of milliseconds per request.
pub(crate) fn entries(users: &[(String, String)]) -> Result<String> {
    let mut text = String::new();
    for (user, password) in users {
        let hash = bcrypt::hash_with_result(password, 4)
            .context(|| format!("bcrypt for {user}"))?
            .format_for_version(bcrypt::Version::TwoY);
        text.push_str(&format!("{user}:{hash}\n"));
    }
    Ok(text)
}
