//! The rules for user keys, as the documented front-end enforces them.

use crate::error::InputError;

/// Longest key accepted, in characters (Unicode scalar values).
pub const KEY_CHARS_MAX: usize = 48;

/// Checks a key: non-empty, no white space, at most [`KEY_CHARS_MAX`] characters.
///
/// Any other character is allowed, `/` and `..` included: a key is a name in the
/// key index, never a path.
pub fn validate_key(key: &str) -> Result<(), InputError> {
    let bad = |why| {
        Err(InputError::BadKey {
            key: crate::error::echo(key),
            why,
        })
    };
    if key.is_empty() {
        return bad("a key must not be empty");
    }
    if key.chars().any(char::is_whitespace) {
        return bad("a key must not contain white space");
    }
    if key.chars().count() > KEY_CHARS_MAX {
        return bad("a key must be at most 48 characters long");
    }
    if key.chars().any(char::is_control) {
        return bad("a key must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        assert!(validate_key("test").is_ok());
        assert!(validate_key("../../etc/passwd").is_ok());
        assert!(validate_key(&"x".repeat(48)).is_ok());
        assert!(validate_key(&"é".repeat(48)).is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("a b").is_err());
        assert!(validate_key("a\tb").is_err());
        assert!(validate_key("a\u{3000}b").is_err());
        assert!(validate_key(&"x".repeat(49)).is_err());
        assert!(validate_key("a\u{1}b").is_err());
    }
}
