//! API tokens: format, hashing, scopes.
//!
//! A token is `bsu_` followed by 32 random bytes from the OS generator in unpadded base64url
//! (43 characters). Only its SHA-256 digest is stored: the secret has 256 bits of entropy, so a
//! fast hash is as good as a slow one here (argon2 is for low-entropy user passwords).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// Every bongsu API token starts with this, so secret scanners and people can recognize one.
pub const TOKEN_PREFIX: &str = "bsu_";

/// Random bytes in a token.
const TOKEN_RANDOM_BYTES: usize = 32;

/// Longest token name accepted, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 128;

/// What a token may do. `Admin` includes `Write`, which includes `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Query data and read metrics.
    Read,
    /// Read, and send data.
    Write,
    /// Everything, including managing tokens.
    Admin,
}

impl Scope {
    /// Whether a token with this scope may do something that needs `required`.
    ///
    /// ```
    /// use bongsu_state::Scope;
    /// assert!(Scope::Admin.allows(Scope::Read));
    /// assert!(!Scope::Read.allows(Scope::Write));
    /// ```
    pub fn allows(self, required: Scope) -> bool {
        self >= required
    }

    /// The scope's name as stored and shown: `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Scope> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(Error::InvalidScope(other.to_owned())),
        }
    }
}

/// What the store knows about a token. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Stable id, used to revoke.
    pub id: i64,
    /// A human name ("grafana", "ci").
    pub name: String,
    /// What the token may do.
    pub scope: Scope,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Last successful use, Unix milliseconds; updated at most once a minute.
    pub last_used_ms: Option<i64>,
    /// A revoked token never authenticates again.
    pub revoked: bool,
}

/// A freshly created token: its record and its secret, which is never stored nor shown again.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The stored record.
    pub info: TokenInfo,
    /// The secret to hand to the user, `bsu_...`.
    pub secret: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("info", &self.info)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// SHA-256 of a token's secret, as stored.
pub fn hash_token(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Generates a new secret: the prefix plus 32 OS-random bytes in base64url.
pub(crate) fn generate_secret() -> Result<String> {
    generate_secret_with_prefix(TOKEN_PREFIX)
}

/// Generates a new secret with `prefix` plus 32 OS-random bytes in base64url.
pub(crate) fn generate_secret_with_prefix(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Error::Random(e.to_string()))?;
    let mut s = String::with_capacity(prefix.len() + 43);
    s.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
    Ok(s)
}

/// Whether a string has the shape of a bongsu token (prefix, 43 base64url characters).
pub(crate) fn looks_like_token(s: &str) -> bool {
    looks_like_token_with_prefix(s, TOKEN_PREFIX)
}

/// Whether a string is `prefix` followed by 43 base64url characters.
pub(crate) fn looks_like_token_with_prefix(s: &str, prefix: &str) -> bool {
    match s.strip_prefix(prefix) {
        Some(rest) => {
            rest.len() == 43
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        None => false,
    }
}

/// Compares two digests without an early exit, so the time taken says nothing about where
/// they differ.
pub(crate) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Checks a token name: 1..=128 bytes, no control characters.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::InvalidName(
            "name is empty: give the token a name that says who uses it".to_owned(),
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::InvalidName(format!(
            "name is {} bytes, limit {MAX_NAME_BYTES}: shorten it",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidName(
            "name has control characters: use printable text".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scope_ordering_is_admin_over_write_over_read() {
        let all = [Scope::Read, Scope::Write, Scope::Admin];
        for have in all {
            for need in all {
                let expected = matches!(
                    (have, need),
                    (Scope::Admin, _)
                        | (Scope::Write, Scope::Write | Scope::Read)
                        | (Scope::Read, Scope::Read)
                );
                assert_eq!(have.allows(need), expected, "{have} allows {need}");
            }
        }
    }

    #[test]
    fn scope_parses_its_own_names_only() {
        for s in [Scope::Read, Scope::Write, Scope::Admin] {
            assert_eq!(s.as_str().parse::<Scope>().ok(), Some(s));
        }
        let err = "Admin".parse::<Scope>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid scope \"Admin\": use read, write or admin"
        );
    }

    #[test]
    fn generated_secrets_have_the_documented_shape_and_differ() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert!(a.starts_with("bsu_"));
        assert_eq!(a.len(), 4 + 43);
        assert!(looks_like_token(&a));
        assert_ne!(a, b);
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn hash_is_sha256_of_the_secret() {
        // SHA-256("abc") from FIPS 180-2.
        let h = hash_token("abc");
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(h[28..], [0xf2, 0x00, 0x15, 0xad]);
    }

    #[test]
    fn ct_eq_finds_a_difference_anywhere() {
        let a = [7u8; 32];
        assert!(ct_eq(&a, &a));
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 1;
            assert!(!ct_eq(&a, &b), "difference at byte {i}");
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("grafana").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("   ").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name(&"x".repeat(129)).is_err());
        assert!(validate_name(&"x".repeat(128)).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_strings_never_look_like_tokens_unless_shaped(s in ".{0,60}") {
            let shaped = s.starts_with("bsu_") && s.len() == 47
                && s[4..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            prop_assert_eq!(looks_like_token(&s), shaped);
        }
    }
}
