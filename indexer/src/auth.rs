//! Who may call the API (DESIGN §4.3): bearer tokens from a tokens file, each with a role.
//!
//! ```toml
//! [[token]]
//! name = "alice"                 # who, as the audit log records it
//! token = "…32+ random chars…"
//! role = "reader"                # reader: hot tier; auditor: every tier + the audit log; admin: + holds
//! ```
//! Roles are ordered: an auditor may do what a reader may, an admin what an auditor may.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Shortest token accepted: anything shorter is guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Searches the hot tier.
    Reader,
    /// Searches every tier and reads the audit log.
    Auditor,
    /// Also manages legal holds.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

/// A caller the API knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// The caller of an open API (no tokens file): anonymous, with every right.
    pub fn anonymous() -> Caller {
        Caller {
            name: "anonymous".to_owned(),
            role: Role::Admin,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    token: String,
    role: Role,
}

/// The tokens of a tokens file.
#[derive(Clone, Default)]
pub struct Tokens {
    by_token: HashMap<String, Caller>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.debug_struct("Tokens")
            .field("count", &self.by_token.len())
            .finish()
    }
}

impl Tokens {
    /// Reads a tokens file; errors name the file and the entry.
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read tokens file {}", path.display()))?;
        Tokens::parse(&text).with_context(|| format!("invalid tokens file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Tokens> {
        let file: TokensFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        if file.token.is_empty() {
            bail!("no [[token]] entries: an API with a tokens file but no tokens would refuse everyone");
        }
        let mut tokens = Tokens::default();
        for (n, entry) in file.token.into_iter().enumerate() {
            let which = format!("token {} ({:?})", n + 1, entry.name);
            if entry.name.trim().is_empty() {
                bail!("{which}: name is empty");
            }
            if entry.token.len() < MIN_TOKEN_LEN {
                bail!("{which}: token is shorter than {MIN_TOKEN_LEN} characters");
            }
            let caller = Caller {
                name: entry.name,
                role: entry.role,
            };
            if tokens.by_token.insert(entry.token, caller).is_some() {
                bail!("{which}: the same token is given twice");
            }
        }
        Ok(tokens)
    }

    /// The caller a bearer token belongs to.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        self.by_token.get(token)
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_files_are_checked_and_tokens_resolve_to_callers() {
        let tokens = Tokens::parse(
            r#"
            [[token]]
            name = "alice"
            token = "reader-token-0123456789"
            role = "reader"
            [[token]]
            name = "audrey"
            token = "auditor-token-0123456789"
            role = "auditor"
            "#,
        )
        .unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            tokens.caller("auditor-token-0123456789"),
            Some(&Caller {
                name: "audrey".into(),
                role: Role::Auditor
            })
        );
        assert_eq!(tokens.caller("nope"), None);
        assert!(Role::Reader < Role::Auditor && Role::Auditor < Role::Admin);
        assert!(!format!("{tokens:?}").contains("reader-token"));

        let cases = [
            ("", "no [[token]] entries"),
            (
                "[[token]]\nname = \"a\"\ntoken = \"short\"\nrole = \"reader\"",
                "shorter than 16",
            ),
            (
                "[[token]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrole = \"root\"",
                "unknown variant `root`",
            ),
            (
                "[[token]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrole = \"reader\"\nrol = 1",
                "unknown field `rol`",
            ),
            (
                "[[token]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrole = \"reader\"\n[[token]]\nname = \"b\"\ntoken = \"0123456789abcdef\"\nrole = \"admin\"",
                "token 2 (\"b\"): the same token is given twice",
            ),
        ];
        for (text, want) in cases {
            let error = format!("{:#}", Tokens::parse(text).unwrap_err());
            assert!(error.contains(want), "{text:?} gave {error:?}");
        }
    }
}
