//! Checks on the strings that reach git or a process, shared by both sides so that a
//! value refused by the control plane would also be refused by the runner.
//!
//! Each check returns a lowercase reason on failure; callers add the field name.

use crate::limits::MAX_NAME_BYTES;

/// A repository URL or path: not empty, not an option in disguise, no control characters.
pub fn repo(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.starts_with('-') {
        return Err("starts with '-', which git would read as an option".into());
    }
    if value.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    Ok(())
}

/// A git ref or branch name, following `git check-ref-format`'s rules.
pub fn git_ref(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(format!("is longer than {MAX_NAME_BYTES} bytes"));
    }
    if value.starts_with('-') {
        return Err("starts with '-', which git would read as an option".into());
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(*c))
    {
        return Err(format!("contains {c:?}, which git does not allow in a ref"));
    }
    let bad_shape = value.contains("..")
        || value.contains("@{")
        || value.contains("//")
        || value.starts_with('/')
        || value.ends_with('/')
        || value.ends_with('.')
        || value.ends_with(".lock")
        || value == "@"
        || value.split('/').any(|part| part.starts_with('.'));
    if bad_shape {
        return Err("is not a valid git ref name".into());
    }
    Ok(())
}

/// An environment variable name: letters, digits and `_`, not starting with a digit.
pub fn env_name(value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("is not a valid environment variable name".into());
    }
    Ok(())
}

/// A container image reference such as `kiln-sandbox:latest` or
/// `registry.example/team/agent@sha256:...`: never an option in disguise.
pub fn image(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(format!("is longer than {MAX_NAME_BYTES} bytes"));
    }
    if value.starts_with('-') {
        return Err("starts with '-', which docker would read as an option".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(format!("contains {bad:?}, which no image reference has"));
    }
    Ok(())
}

/// A runner name or capability: printable, short, not empty.
pub fn name(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("is empty".into());
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(format!("is longer than {MAX_NAME_BYTES} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_in_disguise_are_refused() {
        assert!(repo("--upload-pack=touch /tmp/pwned").is_err());
        assert!(git_ref("--output=/etc/passwd").is_err());
    }

    #[test]
    fn ordinary_values_pass() {
        assert!(repo("https://example.com/a/b.git").is_ok());
        assert!(repo("/srv/git/app").is_ok());
        assert!(git_ref("kiln/0193-abc").is_ok());
        assert!(git_ref("v1.2.3").is_ok());
        assert!(env_name("RUST_LOG").is_ok());
    }

    #[test]
    fn malformed_refs_are_refused() {
        for bad in [
            "a..b", "a b", "a/", ".hidden", "a/.b", "x.lock", "a:b", "a@{1}", "",
        ] {
            assert!(git_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_env_names_are_refused() {
        for bad in ["", "1A", "A-B", "A B", "A=B"] {
            assert!(env_name(bad).is_err(), "{bad}");
        }
    }
}
