//! Redaction before a record leaves the node (`[[redact]]` in the collector config).
//!
//! A rule finds secrets or personal data either by **field path** (`fields.user.email`,
//! `fields.card.*`: `*` is any one key, arrays are looked through) or by **pattern** over `msg`
//! and every string value under `fields` (a built-in, or the user's `regex`). Its action:
//! - `mask`: the matched text (a field rule: the whole value) becomes `***`;
//! - `hash`: it becomes `hmac:<first 16 hex digits of HMAC-SHA-256(key, text)>`, so the same
//!   value always gives the same token and a search for it still finds every record holding it
//!   (a field's non-string value is hashed as its JSON text);
//! - `drop`: the value is removed — the field from `fields`, or `msg` emptied — whatever else it
//!   held.
//!
//! Rules apply in config order; a record any rule changed is flagged `redacted`. Numbers, booleans
//! and object keys are not scanned by patterns (a field rule reaches them). Patterns are first run
//! together as one [`RegexSet`] over each string, so a string that holds none costs one pass.

use std::fmt;

use corral_schema::{Flag, Record};
use hmac::{Hmac, Mac};
use regex::{Regex, RegexBuilder, RegexSet};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;

/// What a masked value or match becomes.
pub const MASK: &str = "***";
/// Prefix of a hashed value: `hmac:` and 16 hex digits.
pub const HASH_PREFIX: &str = "hmac:";
/// Environment variable holding the `hash` key when `redact_key_file` is not set.
pub const KEY_ENV: &str = "CORRAL_REDACT_KEY";
/// Most `[[redact]]` rules: which rules changed a record fits one `u64`.
const MAX_RULES: usize = 64;
/// Longest user regex accepted, compiled (the `regex` crate's own default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A `[[redact]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    pub builtin: Option<String>,
    pub fields: Option<Vec<String>>,
    pub regex: Option<String>,
    pub action: Option<String>,
}

/// What a rule does to what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Drop,
    Mask,
    Hash,
}

impl Action {
    fn parse(text: &str) -> Result<Action, String> {
        match text {
            "drop" => Ok(Action::Drop),
            "mask" => Ok(Action::Mask),
            "hash" => Ok(Action::Hash),
            other => Err(format!("action = {other:?}: expected drop, mask or hash")),
        }
    }
}

/// The built-in patterns: name, regex, the capture group that is the secret (0: the whole
/// match), and a check a candidate must also pass.
type Builtin = (&'static str, &'static str, usize, Option<fn(&str) -> bool>);

/// `(?-u:\b)` is an ASCII word boundary: it keeps the patterns on the regex crate's DFA even
/// over non-ASCII text.
const BUILTINS: [Builtin; 6] = [
    (
        "email",
        r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?-u:\b)",
        0,
        None,
    ),
    // 13 to 19 digits, optionally grouped by spaces or dashes, starting as the card networks'
    // numbers do (2–6), and passing the Luhn check: millisecond timestamps (1…) and most other
    // long numbers are left alone.
    (
        "card",
        r"(?-u:\b)[2-6](?:[ -]?[0-9]){12,18}(?-u:\b)",
        0,
        Some(luhn_valid),
    ),
    // The token after `Bearer`, which stays: `Authorization: Bearer ***`.
    ("bearer", r"(?i:bearer)[ \t]+([A-Za-z0-9._~+/-]+=*)", 1, None),
    // Three base64url parts, the first two JSON objects (`{"` is `eyJ`).
    (
        "jwt",
        r"(?-u:\b)eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
        0,
        None,
    ),
    // AWS access key ids: a four-letter kind (AKIA long-term, ASIA temporary, …) and 16 more.
    (
        "aws_key",
        r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA)[A-Z0-9]{16}(?-u:\b)",
        0,
        None,
    ),
    (
        "ipv4",
        r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?-u:\b)",
        0,
        None,
    ),
];

/// Returns the names of the built-in patterns.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, ..)| *name)
}

/// True when the digits of `text` (13 to 19 of them) pass the Luhn check.
fn luhn_valid(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if !i.is_multiple_of(2) {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A text pattern of a rule.
#[derive(Clone)]
struct Pattern {
    regex: Regex,
    /// The capture group replaced (0: the whole match).
    group: usize,
    check: Option<fn(&str) -> bool>,
}

/// One step of a field path: a key, or `*` for any key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Any,
}

#[derive(Clone)]
enum Finder {
    Pattern(Pattern),
    /// Paths below `fields`.
    Fields(Vec<Vec<Step>>),
}

#[derive(Clone)]
struct Rule {
    name: String,
    finder: Finder,
    action: Action,
}

/// The compiled `[[redact]]` rules of a collector, applied to every record it builds.
#[derive(Clone, Default)]
pub struct Redactor {
    rules: Vec<Rule>,
    /// Every pattern rule's regex, in rule order, for the one pass that tells which may match.
    set: Option<RegexSet>,
    /// For each regex of `set`, its rule's index.
    set_rules: Vec<usize>,
    /// The fewest bytes any pattern can match: shorter strings are not scanned.
    min_len: usize,
    key: Option<Vec<u8>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rule_names().collect::<Vec<_>>())
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Redactor {
    /// Compiles rules; `key` is the `hash` key (from `redact_key_file` or [`KEY_ENV`]). Errors
    /// name the rule (by its `name`, else its position) and what is wrong with it.
    pub fn compile(raw: &[RawRule], key: Option<Vec<u8>>) -> anyhow::Result<Redactor> {
        if raw.len() > MAX_RULES {
            anyhow::bail!("{} [[redact]] rules: at most {MAX_RULES} are accepted", raw.len());
        }
        let mut rules = Vec::with_capacity(raw.len());
        for (index, rule) in raw.iter().enumerate() {
            let label = match &rule.name {
                Some(name) => format!("redact rule {name:?}"),
                None => format!("redact rule #{}", index + 1),
            };
            let compiled = compile_rule(rule, key.is_some()).map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            if rules.iter().any(|r: &Rule| r.name == compiled.name) {
                anyhow::bail!("{label}: another rule has the same name");
            }
            rules.push(compiled);
        }
        let mut set_rules = Vec::new();
        let mut sources = Vec::new();
        let mut min_len = usize::MAX;
        for (index, rule) in rules.iter().enumerate() {
            if let Finder::Pattern(pattern) = &rule.finder {
                set_rules.push(index);
                sources.push(pattern.regex.as_str().to_owned());
                // Unknown (never for a pattern that compiled): scan everything.
                let shortest = regex_syntax::parse(pattern.regex.as_str())
                    .ok()
                    .and_then(|hir| hir.properties().minimum_len())
                    .unwrap_or(1);
                min_len = min_len.min(shortest.max(1));
            }
        }
        let set = if sources.is_empty() {
            None
        } else {
            Some(
                regex::RegexSetBuilder::new(&sources)
                    .size_limit(REGEX_SIZE_LIMIT * sources.len().max(1))
                    .build()
                    .map_err(|e| anyhow::anyhow!("redact rules together: {e}"))?,
            )
        };
        Ok(Redactor {
            rules,
            set,
            set_rules,
            min_len,
            key,
        })
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Returns the rules' names, in order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Applies every rule to `record`; calls `changed(rule name)` once for each rule that
    /// changed it, and flags it `redacted` if any did.
    pub fn apply(&self, record: &mut Record, mut changed: impl FnMut(&str)) {
        if self.rules.is_empty() {
            return;
        }
        // Bit `i`: rule `i` changed the record.
        let mut hits = 0u64;
        for (index, rule) in self.rules.iter().enumerate() {
            if let Finder::Fields(paths) = &rule.finder {
                for path in paths {
                    if self.apply_path(&mut record.fields, path, rule.action) {
                        hits |= 1 << index;
                    }
                }
            }
        }
        if self.set.is_some() {
            if self.redact_text(&mut record.msg, &mut hits) == Outcome::Drop {
                record.msg.clear();
            }
            self.redact_map(&mut record.fields, &mut hits);
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if hits & (1 << index) != 0 {
                changed(&rule.name);
            }
        }
        if hits != 0 {
            record.add_flag(Flag::Redacted);
        }
    }

    /// Applies one field path to `map`; true when it found something.
    fn apply_path(&self, map: &mut Map<String, Value>, path: &[Step], action: Action) -> bool {
        let Some((step, rest)) = path.split_first() else {
            return false;
        };
        let keys: Vec<String> = match step {
            Step::Key(key) => map.contains_key(key).then(|| key.clone()).into_iter().collect(),
            Step::Any => map.keys().cloned().collect(),
        };
        let mut found = false;
        for key in keys {
            if rest.is_empty() {
                found = true;
                match action {
                    Action::Drop => {
                        map.remove(&key);
                    }
                    Action::Mask => {
                        map.insert(key, Value::String(MASK.to_owned()));
                    }
                    Action::Hash => {
                        let value = &map[&key];
                        let text = match value {
                            Value::String(text) => self.hash(text),
                            other => self.hash(&other.to_string()),
                        };
                        map.insert(key, Value::String(text));
                    }
                }
            } else if let Some(value) = map.get_mut(&key) {
                found |= self.apply_path_value(value, rest, action);
            }
        }
        found
    }

    fn apply_path_value(&self, value: &mut Value, path: &[Step], action: Action) -> bool {
        match value {
            Value::Object(map) => self.apply_path(map, path, action),
            Value::Array(items) => {
                let mut found = false;
                for item in items {
                    found |= self.apply_path_value(item, path, action);
                }
                found
            }
            _ => false,
        }
    }

    /// Runs the pattern rules over every string under `map`; removes the values a `drop`
    /// rule matched.
    fn redact_map(&self, map: &mut Map<String, Value>, hits: &mut u64) {
        map.retain(|_, value| self.redact_value(value, hits) == Outcome::Keep);
    }

    fn redact_value(&self, value: &mut Value, hits: &mut u64) -> Outcome {
        match value {
            Value::String(text) => self.redact_text(text, hits),
            Value::Object(map) => {
                self.redact_map(map, hits);
                Outcome::Keep
            }
            Value::Array(items) => {
                items.retain_mut(|item| self.redact_value(item, hits) == Outcome::Keep);
                Outcome::Keep
            }
            _ => Outcome::Keep,
        }
    }

    /// Runs the pattern rules over one string, rewriting it in place.
    fn redact_text(&self, text: &mut String, hits: &mut u64) -> Outcome {
        let Some(set) = &self.set else {
            return Outcome::Keep;
        };
        if text.len() < self.min_len {
            return Outcome::Keep;
        }
        let matched = set.matches(text);
        if !matched.matched_any() {
            return Outcome::Keep;
        }
        for set_index in matched.iter() {
            let index = self.set_rules[set_index];
            let rule = &self.rules[index];
            let Finder::Pattern(pattern) = &rule.finder else {
                continue;
            };
            match self.replace(text, pattern, rule.action) {
                Some(Outcome::Drop) => {
                    *hits |= 1 << index;
                    return Outcome::Drop;
                }
                Some(Outcome::Keep) => *hits |= 1 << index,
                None => {}
            }
        }
        Outcome::Keep
    }

    /// Replaces every (checked) match of `pattern` in `text`; `None` when there was none.
    fn replace(&self, text: &mut String, pattern: &Pattern, action: Action) -> Option<Outcome> {
        let mut out = String::new();
        let mut last = 0;
        for captures in pattern.regex.captures_iter(text) {
            let Some(secret) = captures.get(pattern.group) else {
                continue;
            };
            if secret.is_empty() || pattern.check.is_some_and(|check| !check(secret.as_str())) {
                continue;
            }
            if action == Action::Drop {
                return Some(Outcome::Drop);
            }
            out.push_str(&text[last..secret.start()]);
            match action {
                Action::Hash => out.push_str(&self.hash(secret.as_str())),
                _ => out.push_str(MASK),
            }
            last = secret.end();
        }
        if last == 0 && out.is_empty() {
            return None;
        }
        out.push_str(&text[last..]);
        *text = out;
        Some(Outcome::Keep)
    }

    /// `hmac:` and the first 16 hex digits of HMAC-SHA-256(key, text).
    fn hash(&self, text: &str) -> String {
        // A hash rule is refused at compile time without a key.
        let key = self.key.as_deref().unwrap_or_default();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(HASH_PREFIX.len() + 16);
        out.push_str(HASH_PREFIX);
        for byte in &digest[..8] {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }
}

/// Whether a value stays after redaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Keep,
    Drop,
}

fn compile_rule(raw: &RawRule, have_key: bool) -> Result<Rule, String> {
    let name = match &raw.name {
        Some(name) if !name.trim().is_empty() => name.clone(),
        _ => return Err("needs a name".into()),
    };
    let action = Action::parse(
        raw.action
            .as_deref()
            .ok_or("needs an action (drop, mask or hash)")?,
    )?;
    if action == Action::Hash && !have_key {
        return Err(format!(
            "action = \"hash\" needs a key: set redact_key_file in the config or {KEY_ENV}"
        ));
    }
    let finder = match (&raw.builtin, &raw.fields, &raw.regex) {
        (Some(builtin), None, None) => {
            let Some((_, source, group, check)) = BUILTINS.iter().find(|(n, ..)| n == builtin) else {
                return Err(format!(
                    "builtin = {builtin:?}: expected one of {}",
                    builtin_names().collect::<Vec<_>>().join(", ")
                ));
            };
            Finder::Pattern(Pattern {
                regex: Regex::new(source).map_err(|e| format!("built-in {builtin}: {e}"))?,
                group: *group,
                check: *check,
            })
        }
        (None, Some(fields), None) => {
            if fields.is_empty() {
                return Err("fields = []: name at least one path".into());
            }
            Finder::Fields(fields.iter().map(|f| parse_path(f)).collect::<Result<_, _>>()?)
        }
        (None, None, Some(source)) => {
            let regex = RegexBuilder::new(source)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("regex = {source:?}: {e}"))?;
            if regex.is_match("") {
                return Err(format!("regex = {source:?} matches the empty string"));
            }
            Finder::Pattern(Pattern {
                regex,
                group: 0,
                check: None,
            })
        }
        (None, None, None) => return Err("needs one of builtin, fields or regex".into()),
        _ => return Err("takes only one of builtin, fields or regex".into()),
    };
    Ok(Rule { name, finder, action })
}

/// Parses `fields.a.b`, `fields.card.*` into the steps below `fields`.
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let Some(rest) = path.strip_prefix("fields.") else {
        return Err(format!("field path {path:?} must start with \"fields.\""));
    };
    rest.split('.')
        .map(|step| match step {
            "" => Err(format!("field path {path:?} has an empty step")),
            "*" => Ok(Step::Any),
            key => Ok(Step::Key(key.to_owned())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(name: &str, finder: (&str, &str), action: &str) -> RawRule {
        let mut raw = RawRule {
            name: Some(name.into()),
            builtin: None,
            fields: None,
            regex: None,
            action: Some(action.into()),
        };
        match finder.0 {
            "builtin" => raw.builtin = Some(finder.1.into()),
            "regex" => raw.regex = Some(finder.1.into()),
            _ => raw.fields = Some(finder.1.split(',').map(String::from).collect()),
        }
        raw
    }

    fn record(msg: &str, fields: Value) -> Record {
        let Value::Object(fields) = fields else {
            panic!("fields must be an object");
        };
        Record {
            msg: msg.into(),
            fields,
            ..Record::default()
        }
    }

    fn redact(rules: &[RawRule], record: &mut Record) -> Vec<String> {
        let redactor = Redactor::compile(rules, Some(b"test-key".to_vec())).unwrap();
        let mut changed = Vec::new();
        redactor.apply(record, |name| changed.push(name.to_owned()));
        changed
    }

    #[test]
    fn each_builtin_masks_what_it_names_and_leaves_look_alikes() {
        // (builtin, text, expected text after mask)
        let cases = [
            ("email", "mail ann.lee+x@shop.example.com now", "mail *** now"),
            (
                "email",
                "no at sign here, user at example dot com",
                "no at sign here, user at example dot com",
            ),
            ("card", "paid with 4111 1111 1111 1111 ok", "paid with *** ok"),
            ("card", "paid with 4111-1111-1111-1111", "paid with ***"),
            ("card", "card 5500005555555559.", "card ***."),
            // Fails the Luhn check.
            ("card", "order 4111111111111112", "order 4111111111111112"),
            // A millisecond timestamp that passes Luhn but starts with 1.
            ("card", "at 1795428900259", "at 1795428900259"),
            (
                "bearer",
                "Authorization: Bearer abc.DEF-123_x==",
                "Authorization: Bearer ***",
            ),
            (
                "bearer",
                "authorization: bearer t0k3n",
                "authorization: bearer ***",
            ),
            (
                "jwt",
                "token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_x9 rest",
                "token=*** rest",
            ),
            ("aws_key", "key AKIAIOSFODNN7EXAMPLE used", "key *** used"),
            ("aws_key", "key AKIAIOSFODNN7EXAMPL", "key AKIAIOSFODNN7EXAMPL"),
            (
                "ipv4",
                "from 10.1.2.254:8080 to 192.168.0.1",
                "from ***:8080 to ***",
            ),
            ("ipv4", "version 300.1.2.3", "version 300.1.2.3"),
        ];
        for (builtin, text, want) in cases {
            let mut rec = record(text, json!({}));
            let changed = redact(&[rule("r", ("builtin", builtin), "mask")], &mut rec);
            assert_eq!(rec.msg, want, "{builtin} over {text:?}");
            assert_eq!(!changed.is_empty(), text != want, "{builtin} over {text:?}");
            assert_eq!(rec.has_flag(Flag::Redacted), text != want);
        }
    }

    #[test]
    fn patterns_reach_every_string_under_fields_but_not_numbers() {
        let mut rec = record(
            "login",
            json!({"user": {"email": "a@b.io", "ids": ["x", "c@d.io"]}, "n": 42, "ok": true}),
        );
        let changed = redact(&[rule("emails", ("builtin", "email"), "mask")], &mut rec);
        assert_eq!(changed, ["emails"]);
        assert_eq!(
            Value::Object(rec.fields),
            json!({"user": {"email": "***", "ids": ["x", "***"]}, "n": 42, "ok": true})
        );
        assert_eq!(rec.msg, "login");
    }

    #[test]
    fn field_paths_take_wildcards_and_look_through_arrays() {
        let mut rec = record(
            "m",
            json!({"card": {"number": "4111", "exp": "12/30"}, "users": [{"email": "a"}, {"email": "b", "id": 1}], "keep": "k"}),
        );
        let changed = redact(
            &[
                rule("cards", ("fields", "fields.card.*"), "mask"),
                rule("emails", ("fields", "fields.users.email"), "drop"),
                rule("absent", ("fields", "fields.nope.x"), "mask"),
            ],
            &mut rec,
        );
        assert_eq!(changed, ["cards", "emails"]);
        assert_eq!(
            Value::Object(rec.fields),
            json!({"card": {"number": "***", "exp": "***"}, "users": [{}, {"id": 1}], "keep": "k"})
        );
    }

    #[test]
    fn hash_is_keyed_and_the_same_for_the_same_value() {
        let rules = [rule("h", ("fields", "fields.email,fields.n"), "hash")];
        let mut one = record("", json!({"email": "ann@example.com", "n": 7}));
        let mut two = record("", json!({"email": "ann@example.com", "n": 7}));
        redact(&rules, &mut one);
        redact(&rules, &mut two);
        assert_eq!(one.fields, two.fields);
        let token = one.fields["email"].as_str().unwrap();
        assert!(
            token.starts_with(HASH_PREFIX) && token.len() == HASH_PREFIX.len() + 16,
            "{token}"
        );
        assert!(token[5..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(one.fields["email"], one.fields["n"]);
        // A pattern hashes the match alone, to the same token as the field's value.
        let mut msg = record("mail from ann@example.com", json!({}));
        redact(&[rule("e", ("builtin", "email"), "hash")], &mut msg);
        assert_eq!(msg.msg, format!("mail from {token}"));
        // Another key, another token.
        let other = Redactor::compile(&rules, Some(b"other".to_vec())).unwrap();
        let mut three = record("", json!({"email": "ann@example.com"}));
        other.apply(&mut three, |_| {});
        assert_ne!(three.fields["email"], one.fields["email"]);
    }

    #[test]
    fn drop_by_pattern_removes_the_value_holding_the_match() {
        let mut rec = record(
            "acct-123456 closed",
            json!({"note": "see acct-000001", "list": ["acct-999999", "fine"], "other": "x"}),
        );
        redact(&[rule("accounts", ("regex", "acct-[0-9]{6}"), "drop")], &mut rec);
        assert_eq!(rec.msg, "");
        assert_eq!(Value::Object(rec.fields), json!({"list": ["fine"], "other": "x"}));
    }

    #[test]
    fn a_record_with_nothing_to_redact_is_untouched() {
        let mut rec = record("GET /health 200 in 3ms", json!({"path": "/health", "ms": 3}));
        let before = rec.clone();
        let changed = redact(
            &[
                rule("e", ("builtin", "email"), "mask"),
                rule("c", ("builtin", "card"), "mask"),
                rule("f", ("fields", "fields.user.email"), "drop"),
            ],
            &mut rec,
        );
        assert!(changed.is_empty());
        assert_eq!(rec, before);
    }

    #[test]
    fn bad_rules_are_errors_naming_the_rule() {
        let no_name = RawRule {
            name: None,
            ..rule("x", ("builtin", "email"), "mask")
        };
        let two_finders = RawRule {
            regex: Some("x".into()),
            ..rule("both", ("builtin", "email"), "mask")
        };
        let nothing = RawRule {
            builtin: None,
            ..rule("none", ("builtin", "email"), "mask")
        };
        let cases: Vec<(Vec<RawRule>, &str)> = vec![
            (
                vec![rule("mails", ("builtin", "e-mail"), "mask")],
                "redact rule \"mails\": builtin = \"e-mail\": expected one of email, card",
            ),
            (
                vec![rule("acc", ("regex", "acct-[0-9"), "mask")],
                "redact rule \"acc\": regex = \"acct-[0-9\"",
            ),
            (
                vec![rule("empty", ("regex", "x*"), "mask")],
                "redact rule \"empty\": regex = \"x*\" matches the empty string",
            ),
            (
                vec![rule("p", ("fields", "user.email"), "mask")],
                "redact rule \"p\": field path \"user.email\" must start with \"fields.\"",
            ),
            (vec![rule("p", ("fields", "fields.a..b"), "mask")], "empty step"),
            (
                vec![rule("act", ("builtin", "email"), "erase")],
                "redact rule \"act\": action = \"erase\": expected drop, mask or hash",
            ),
            (
                vec![rule("h", ("builtin", "email"), "hash")],
                "redact rule \"h\": action = \"hash\" needs a key",
            ),
            (vec![no_name], "redact rule #1: needs a name"),
            (
                vec![two_finders],
                "redact rule \"both\": takes only one of builtin, fields or regex",
            ),
            (
                vec![nothing],
                "redact rule \"none\": needs one of builtin, fields or regex",
            ),
            (
                vec![
                    rule("d", ("builtin", "email"), "mask"),
                    rule("d", ("builtin", "card"), "mask"),
                ],
                "redact rule \"d\": another rule has the same name",
            ),
        ];
        for (rules, want) in cases {
            let error = format!("{:#}", Redactor::compile(&rules, None).unwrap_err());
            assert!(error.contains(want), "{want:?} not in {error:?}");
        }
    }

    #[test]
    fn short_strings_skip_the_scan_and_rules_are_bounded() {
        let redactor = Redactor::compile(&[rule("e", ("builtin", "email"), "mask")], None).unwrap();
        assert_eq!(redactor.min_len, 6, "a@b.co");
        let mut rec = record("a@b.co", json!({"x": "a@b.c"}));
        redactor.apply(&mut rec, |_| {});
        assert_eq!((rec.msg.as_str(), &rec.fields["x"]), ("***", &json!("a@b.c")));
        let many: Vec<RawRule> = (0..=MAX_RULES)
            .map(|n| rule(&format!("r{n}"), ("builtin", "email"), "mask"))
            .collect();
        let error = format!("{:#}", Redactor::compile(&many, None).unwrap_err());
        assert!(error.contains("65 [[redact]] rules: at most 64"), "{error}");
    }

    #[test]
    fn luhn_accepts_test_card_numbers_and_refuses_their_neighbours() {
        for good in [
            "4111111111111111",
            "5500005555555559",
            "378282246310005",
            "6011111111111117",
        ] {
            assert!(luhn_valid(good), "{good}");
        }
        for bad in ["4111111111111112", "1234", "41111111111111111111"] {
            assert!(!luhn_valid(bad), "{bad}");
        }
    }
}
