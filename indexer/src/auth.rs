//! Who may call the API (DESIGN §4.3): bearer tokens from a tokens file, each with a role.
//!
//! ```toml
//! [[token]]
//! name = "alice"                 # who, as the audit log records it
//! token = "…32+ random chars…"
//! role = "reader"                # reader: hot tier; auditor: every tier + the audit log; admin: + holds
//! namespaces = ["shop", "payments-*"]  # optional: sees only these namespaces (`*`: any characters)
//! ```
//! Roles are ordered: an auditor may do what a reader may, an admin what an auditor may. A token
//! with `namespaces` is scoped: the query engine adds the scope to everything it searches
//! (search, tail, stats, every tier, on every peer), its holds must select one of them, and its
//! audit entries record the scope. A token without `namespaces` sees every namespace.

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
    /// The namespaces it may see; `None`: all.
    pub namespaces: Option<NamespaceScope>,
}

/// The namespaces a scoped token may see: names, or patterns where `*` is any characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceScope(Vec<String>);

impl NamespaceScope {
    /// Checks the patterns of a token entry: at least one, none empty.
    pub fn new(patterns: Vec<String>) -> Result<NamespaceScope, String> {
        if patterns.is_empty() {
            return Err(
                "namespaces = []: a scoped token needs at least one namespace (omit the key to see all)"
                    .into(),
            );
        }
        for pattern in &patterns {
            if pattern.trim().is_empty() {
                return Err("namespaces: an entry is empty".into());
            }
            if pattern.chars().all(|c| c == '*') {
                return Err(format!(
                    "namespaces: {pattern:?} would see every namespace; omit the key instead"
                ));
            }
        }
        Ok(NamespaceScope(patterns))
    }

    /// The patterns, as the tokens file gives them.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// True when the scope covers `namespace`.
    pub fn allows(&self, namespace: &str) -> bool {
        self.0.iter().any(|pattern| glob_matches(pattern, namespace))
    }
}

/// `*` matches any run of characters (also none); every other character itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Caller {
    /// The patterns of its namespace scope, for its audit entries; `None` when it sees all.
    pub fn scope_patterns(&self) -> Option<Vec<String>> {
        self.namespaces.as_ref().map(|scope| scope.patterns().to_vec())
    }

    /// The caller of an open API (no tokens file): anonymous, with every right.
    pub fn anonymous() -> Caller {
        Caller {
            name: "anonymous".to_owned(),
            role: Role::Admin,
            namespaces: None,
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
    namespaces: Option<Vec<String>>,
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
            let namespaces = entry
                .namespaces
                .map(NamespaceScope::new)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{which}: {e}"))?;
            let caller = Caller {
                name: entry.name,
                role: entry.role,
                namespaces,
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
            [[token]]
            name = "team-shop"
            token = "shop-token-0123456789"
            role = "reader"
            namespaces = ["shop", "payments-*"]
            "#,
        )
        .unwrap();
        assert_eq!(tokens.len(), 3);
        assert_eq!(
            tokens.caller("auditor-token-0123456789"),
            Some(&Caller {
                name: "audrey".into(),
                role: Role::Auditor,
                namespaces: None,
            })
        );
        let scope = tokens
            .caller("shop-token-0123456789")
            .unwrap()
            .namespaces
            .clone()
            .unwrap();
        assert_eq!(scope.patterns(), ["shop", "payments-*"]);
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
            (
                "[[token]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrole = \"reader\"\nnamespaces = []",
                "token 1 (\"a\"): namespaces = []: a scoped token needs at least one namespace",
            ),
            (
                "[[token]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrole = \"reader\"\nnamespaces = [\"*\"]",
                "would see every namespace",
            ),
        ];
        for (text, want) in cases {
            let error = format!("{:#}", Tokens::parse(text).unwrap_err());
            assert!(error.contains(want), "{text:?} gave {error:?}");
        }
    }

    #[test]
    fn namespace_patterns_match_whole_names() {
        let scope = NamespaceScope::new(vec![
            "shop".into(),
            "payments-*".into(),
            "*-eu".into(),
            "a*b*c".into(),
        ])
        .unwrap();
        for yes in [
            "shop",
            "payments-",
            "payments-api",
            "web-eu",
            "abc",
            "aXbYc",
            "abbc",
        ] {
            assert!(scope.allows(yes), "{yes}");
        }
        for no in ["shop2", "xshop", "payments", "web-us", "ab", "acb", "abcd", ""] {
            assert!(!scope.allows(no), "{no}");
        }
    }
}
