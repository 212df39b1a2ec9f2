//! logq's command line, and where endpoints and the token come from: flags, then environment
//! (`LOGQ_ENDPOINT`, `LOGQ_TOKEN`), then `~/.config/logq/config.toml`, then the default
//! `http://127.0.0.1:7280`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use corral_schema::Level;
use corral_schema::api::GroupBy;
use serde::Deserialize;

use corral_schema::api::{ApiQuery, Selector};

use crate::client::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Timeouts};

/// Default endpoint: a standalone indexer on this machine.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7280";

/// Shows one request across every service, in time order, from corral's indexers.
#[derive(Debug, Parser)]
#[command(
    name = "logq",
    version,
    about,
    long_about = None,
    disable_version_flag = true,
    after_help = "Examples:
  logq --corr 4bf92f3577b34da6a3ce929d0e0e4736           one request, every service (TUI on a terminal)
  logq --corr 4bf92f35… -o jsonl | jq .msg               the same records as JSON lines
  logq search 'timeout AND fields.http.status:504' --since 1h --service gateway
  logq search 'card declined' --level warn --follow      matches so far, then new ones as they arrive
  logq tail --service payments --level error             errors as they are indexed
  logq stats --by version --service payments --since 30m error rate of a canary vs the stable version
  logq holds add --corr 4bf92f35… --reason \"case 4711\"    keep one request's records past retention
  logq holds list                                         every legal hold in force (auditor)
  logq audit --since 7d --who alice -o jsonl              who queried what, through any indexer
  logq --endpoint http://indexer-0:7280 --endpoint http://indexer-1:7280 --corr …

Endpoints: --endpoint (repeatable), else LOGQ_ENDPOINT (comma-separated), else `endpoints` in
~/.config/logq/config.toml, else http://127.0.0.1:7280. Token: --token, LOGQ_TOKEN, or `token` in the
config file.
Timeouts: an endpoint that does not answer within --timeout (default 30s; `timeout` in the config
file) or cannot be connected to within --connect-timeout (3s) is named on stderr and the others'
results are still shown; a tail that sends nothing for --timeout is ended the same way.
Searches past the indexers' page size (max_limit, 10000 by default) are paged automatically:
`--limit 1000000 -o jsonl` exports a million records.
Exit status: 0 when something matched, 1 when nothing did, 2 on error (or when no endpoint answered),
3 when something matched but the answer is incomplete (what was not searched is printed on stderr)."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Correlation id: every record of one request, across every service. `--trace` is the
    /// same: a W3C `traceparent` or OpenTelemetry `trace_id` in a line fills its corr.
    #[arg(long, global = true, value_name = "ID", visible_alias = "trace")]
    pub corr: Option<String>,
    /// Start of the time range: RFC 3339 or a duration back from now (`15m`, `24h`, `7d`).
    #[arg(long, global = true, value_name = "WHEN")]
    pub since: Option<String>,
    /// End of the time range: RFC 3339 or a duration back from now.
    #[arg(long, global = true, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only this service.
    #[arg(long, global = true)]
    pub service: Option<String>,
    /// Only this version of the service (`logq -V` prints logq's own version).
    #[arg(long, global = true)]
    pub version: Option<String>,
    /// Only this instance.
    #[arg(long, global = true)]
    pub instance: Option<String>,
    /// Only this Kubernetes namespace.
    #[arg(long, global = true)]
    pub namespace: Option<String>,
    /// Minimum level: trace, debug, info, warn, error, fatal.
    #[arg(long, global = true, value_parser = parse_level)]
    pub level: Option<Level>,
    /// Most records to show (the indexers' default is 1000).
    #[arg(long, global = true)]
    pub limit: Option<usize>,
    /// Indexer URL; repeat to query several in parallel.
    #[arg(long = "endpoint", global = true, value_name = "URL")]
    pub endpoints: Vec<String>,
    /// API token (`Authorization: Bearer`).
    #[arg(long, global = true, env = "LOGQ_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output: tui (default on a terminal), text (default otherwise), jsonl, logfmt.
    #[arg(short = 'o', long = "output", global = true, value_enum)]
    pub output: Option<Output>,
    /// After the matches so far, keep showing new ones as they are indexed (--corr and search).
    #[arg(short = 'f', long, global = true)]
    pub follow: bool,
    /// Longest wait for an endpoint's answer (and longest silence of a tail): 30s, 2m, 500ms.
    #[arg(long, global = true, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Longest wait to connect to an endpoint.
    #[arg(long, global = true, value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// Config file (default ~/.config/logq/config.toml).
    #[arg(long, global = true, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Print logq's version.
    #[arg(short = 'V', long = "logq-version", action = ArgAction::Version)]
    pub print_version: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Records matching a query over msg and fields (tantivy syntax: words, "phrases", AND/OR, fields.user.id:42).
    Search {
        /// The query.
        query: String,
    },
    /// Records as they are indexed, until interrupted.
    Tail,
    /// Count and error rate per service, version, instance or level.
    Stats {
        /// What to group by.
        #[arg(long, value_parser = parse_group_by)]
        by: GroupBy,
    },
    /// Legal holds: records they match are never deleted by retention (auditor: list; admin: add, release).
    Holds {
        #[command(subcommand)]
        action: HoldsAction,
    },
    /// The audit log of every query, hold change and retention step (auditor), merged across the cluster.
    Audit {
        /// Only entries of this caller (a token's name, or `retention`).
        #[arg(long)]
        who: Option<String>,
    },
}

/// What `logq holds` does.
#[derive(Debug, Subcommand)]
pub enum HoldsAction {
    /// Every hold in force.
    List,
    /// Places a hold on the records the selector flags match (--corr, --service, --version,
    /// --instance, --namespace, --level, --since, --until; instants, not durations); prints its id.
    Add {
        /// Why the records are held (case, ticket): required.
        #[arg(long)]
        reason: String,
        /// Only records matching this query over msg and fields, too.
        #[arg(long, value_name = "QUERY")]
        query: Option<String>,
    },
    /// Releases a hold: its records follow retention again.
    Release {
        /// The hold's id (from `logq holds list`).
        id: String,
    },
}

/// How results are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Tui,
    Text,
    Jsonl,
    Logfmt,
}

fn parse_level(text: &str) -> Result<Level, String> {
    Level::parse_strict(text)
}

fn parse_group_by(text: &str) -> Result<GroupBy, String> {
    text.parse()
}

/// `~/.config/logq/config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub endpoints: Vec<String>,
    pub token: Option<String>,
    /// As `--timeout`.
    pub timeout: Option<String>,
    /// As `--connect-timeout`.
    pub connect_timeout: Option<String>,
}

impl ConfigFile {
    /// Reads the config file: `path` if given (it must exist), else the default location if
    /// it exists.
    pub fn load(path: Option<&PathBuf>) -> anyhow::Result<ConfigFile> {
        let (path, required) = match path {
            Some(path) => (path.clone(), true),
            None => match default_config_path() {
                Some(path) => (path, false),
                None => return Ok(ConfigFile::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ConfigFile::default());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read config {}", path.display())),
        };
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config {}: {}", path.display(), e.message()))
    }
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("logq").join("config.toml"))
}

/// Endpoints and token after flags, environment and config file.
pub fn resolve_endpoints(args: &Args, config: &ConfigFile) -> (Vec<String>, Option<String>) {
    let endpoints = if !args.endpoints.is_empty() {
        args.endpoints.clone()
    } else if let Some(env) = std::env::var("LOGQ_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        env.split(',')
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect()
    } else if !config.endpoints.is_empty() {
        config.endpoints.clone()
    } else {
        vec![DEFAULT_ENDPOINT.to_owned()]
    };
    let token = args.token.clone().or_else(|| config.token.clone());
    (endpoints, token)
}

/// Timeouts after flags, then the config file, then the defaults.
pub fn resolve_timeouts(args: &Args, config: &ConfigFile) -> anyhow::Result<Timeouts> {
    let pick = |flag: &Option<String>, file: &Option<String>, name: &str, default| -> anyhow::Result<_> {
        let (text, from) = match (flag, file) {
            (Some(text), _) => (text, format!("--{}", name.replace('_', "-"))),
            (None, Some(text)) => (text, format!("{name} in the config file")),
            (None, None) => return Ok(default),
        };
        let duration = corral_schema::duration::parse_duration(text)
            .map_err(|e| anyhow::anyhow!("{from} = {text:?}: {e}"))?;
        if duration.is_zero() {
            anyhow::bail!("{from} = {text:?}: must be more than 0");
        }
        Ok(duration)
    };
    Ok(Timeouts {
        connect: pick(
            &args.connect_timeout,
            &config.connect_timeout,
            "connect_timeout",
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        response: pick(&args.timeout, &config.timeout, "timeout", DEFAULT_TIMEOUT)?,
    })
}

impl Args {
    /// The output mode: as asked, else TUI on a terminal, text otherwise.
    pub fn output(&self) -> Output {
        self.output.unwrap_or(
            if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
                Output::Tui
            } else {
                Output::Text
            },
        )
    }

    /// The filters shared by search, tail and stats as query parameters.
    /// The request the flags describe (its selector; pages are logq's business).
    pub fn query(&self) -> ApiQuery {
        let q = match &self.command {
            Some(Command::Search { query }) => Some(query.clone()),
            _ => None,
        };
        ApiQuery {
            selector: Selector {
                corr: self.corr.clone(),
                q,
                service: self.service.clone(),
                version: self.version.clone(),
                instance: self.instance.clone(),
                namespace: self.namespace.clone(),
                level: self.level,
                since: self.since.clone(),
                until: self.until.clone(),
            },
            ..ApiQuery::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_query_parameters() {
        let args = Args::try_parse_from([
            "logq",
            "search",
            "card declined",
            "--since",
            "1h",
            "--level",
            "WARN",
            "--version",
            "2.4.0",
            "--limit",
            "5",
        ])
        .unwrap();
        assert_eq!(
            args.query().to_pairs(),
            vec![
                ("q", "card declined".to_string()),
                ("version", "2.4.0".to_string()),
                ("since", "1h".to_string()),
                ("level", "warn".to_string()),
            ]
        );
        assert_eq!(args.limit, Some(5));
        let stats = Args::try_parse_from(["logq", "stats", "--by", "version"]).unwrap();
        assert!(matches!(
            stats.command,
            Some(Command::Stats { by: GroupBy::Version })
        ));
        let bad = Args::try_parse_from(["logq", "--level", "loud"])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("expected one of trace"), "{bad}");
        let bad = Args::try_parse_from(["logq", "stats", "--by", "pod"])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("cannot group by"), "{bad}");
    }

    #[test]
    fn endpoints_come_from_flags_then_config_then_default() {
        let config = ConfigFile {
            endpoints: vec!["http://from-config:7280".into()],
            token: Some("t".into()),
            ..ConfigFile::default()
        };
        let args =
            Args::try_parse_from(["logq", "--endpoint", "http://a:1", "--endpoint", "http://b:2"]).unwrap();
        let (endpoints, token) = resolve_endpoints(&args, &config);
        assert_eq!(endpoints, vec!["http://a:1", "http://b:2"]);
        assert_eq!(token.as_deref(), Some("t"));
        let none = Args::try_parse_from(["logq"]).unwrap();
        if std::env::var("LOGQ_ENDPOINT").is_err() {
            assert_eq!(
                resolve_endpoints(&none, &config).0,
                vec!["http://from-config:7280"]
            );
            assert_eq!(
                resolve_endpoints(&none, &ConfigFile::default()).0,
                vec![DEFAULT_ENDPOINT]
            );
        }
    }

    #[test]
    fn timeouts_come_from_flags_then_config_then_defaults() {
        let none = Args::try_parse_from(["logq"]).unwrap();
        assert_eq!(
            resolve_timeouts(&none, &ConfigFile::default()).unwrap(),
            Timeouts::default()
        );
        let config = ConfigFile {
            timeout: Some("2m".into()),
            connect_timeout: Some("500ms".into()),
            ..ConfigFile::default()
        };
        let from_file = resolve_timeouts(&none, &config).unwrap();
        assert_eq!(from_file.response, std::time::Duration::from_secs(120));
        assert_eq!(from_file.connect, std::time::Duration::from_millis(500));
        let flag = Args::try_parse_from(["logq", "--timeout", "2s"]).unwrap();
        assert_eq!(
            resolve_timeouts(&flag, &config).unwrap().response,
            std::time::Duration::from_secs(2)
        );
        let bad = Args::try_parse_from(["logq", "--timeout", "soon"]).unwrap();
        let error = resolve_timeouts(&bad, &config).unwrap_err().to_string();
        assert!(error.contains("--timeout = \"soon\""), "{error}");
        let zero = Args::try_parse_from(["logq", "--connect-timeout", "0s"]).unwrap();
        let error = resolve_timeouts(&zero, &config).unwrap_err().to_string();
        assert!(error.contains("must be more than 0"), "{error}");
    }

    #[test]
    fn config_files_reject_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "endpoints = [\"http://x:7280\"]\ntoken = \"s\"\n").unwrap();
        let config = ConfigFile::load(Some(&path)).unwrap();
        assert_eq!(config.endpoints, vec!["http://x:7280"]);
        std::fs::write(&path, "endpoint = \"http://x:7280\"\n").unwrap();
        let error = ConfigFile::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("unknown field `endpoint`"), "{error}");
        let missing = ConfigFile::load(Some(&dir.path().join("nope.toml")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot read config"), "{missing}");
    }
}
