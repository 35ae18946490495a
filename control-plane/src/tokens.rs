//! Secret tokens: generation, type prefixes and the hashes that are all the store keeps.

use std::fmt;

use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// Random bytes in every token: 256 bits, beyond guessing.
const TOKEN_ENTROPY_BYTES: usize = 32;

/// What a token grants, told by its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Operator API access.
    Admin,
    /// One-time (or few-times) right to register a runner.
    Registration,
    /// A registered runner's identity.
    Runner,
    /// A sandbox runner's identity, bound to its sandbox.
    Sandbox,
}

impl TokenKind {
    /// The prefix that starts every token of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Admin => "kiln_adm_",
            TokenKind::Registration => "kiln_reg_",
            TokenKind::Runner => "kiln_rnr_",
            TokenKind::Sandbox => "kiln_sbx_",
        }
    }
}

/// A token in clear text. Shown once to whoever created it, then only its hash is kept.
/// `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A new random token of `kind`.
    pub fn generate(kind: TokenKind) -> Self {
        let mut bytes = [0u8; TOKEN_ENTROPY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let body: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Token(format!("{}{body}", kind.prefix()))
    }

    /// Wraps a token received from outside (a header, an environment variable).
    pub fn from_secret(text: impl Into<String>) -> Self {
        Token(text.into().trim().to_owned())
    }

    /// True when the token carries `kind`'s prefix.
    pub fn is_kind(&self, kind: TokenKind) -> bool {
        self.0.starts_with(kind.prefix())
    }

    /// The clear text, for the one place that must show or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form: hex SHA-256. The tokens carry 256 random bits, so a fast hash is
    /// enough; there is nothing to brute-force.
    pub fn hash(&self) -> TokenHash {
        let digest = Sha256::digest(self.0.as_bytes());
        TokenHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Hex SHA-256 of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHash(pub String);

impl TokenHash {
    /// Compares two hashes in constant time.
    pub fn matches(&self, other: &TokenHash) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_prefixed_unique_and_long() {
        let a = Token::generate(TokenKind::Runner);
        let b = Token::generate(TokenKind::Runner);
        assert!(a.is_kind(TokenKind::Runner));
        assert!(!a.is_kind(TokenKind::Admin));
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), "kiln_rnr_".len() + 64);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = Token::generate(TokenKind::Admin);
        assert!(!format!("{token:?}").contains(&token.expose()[9..]));
    }

    #[test]
    fn hash_is_stable_and_compares() {
        let token = Token::from_secret("kiln_adm_abc");
        assert!(token
            .hash()
            .matches(&Token::from_secret(" kiln_adm_abc\n").hash()));
        assert!(!token
            .hash()
            .matches(&Token::from_secret("kiln_adm_abd").hash()));
    }
}
