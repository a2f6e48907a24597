//! A small `~/.ssh/config` parser and NixOps-style `sshOptions`.
//!
//! Layer: `ssh`, pure (no I/O besides reading the config file). Supported keywords: `Host` (patterns with `*`, `?`
//! and `!` negation), `HostName`, `User`, `Port`, `IdentityFile`, `IdentitiesOnly`, `IdentityAgent`, `ProxyJump`,
//! `UserKnownHostsFile`, `StrictHostKeyChecking`, `ConnectTimeout`, `ServerAliveInterval`, `ServerAliveCountMax`.
//! Other keywords are kept in [`HostConfig::ignored`] so the CLI can say they had no effect. `Match` blocks are
//! not evaluated (they never apply, except `Match all`), and `Include` is not followed: both are recorded as
//! ignored.
//!
//! As in OpenSSH the first value obtained for a keyword wins, except `IdentityFile`, which accumulates. The
//! per-machine `sshOptions` are applied before the file, so they override it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Error, Result};

/// What to do with a host key that no known_hosts file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrictHostKeyChecking {
    /// Refuse unknown hosts (OpenSSH `yes` and `ask`: ferry never asks).
    #[default]
    Yes,
    /// Record unknown keys in ferry's known_hosts and connect (`accept-new`, and `no`). A *changed* key is
    /// still refused: ferry never connects to a host whose key changed.
    AcceptNew,
}

/// One `Host` block (or a `Match` block, which never applies).
#[derive(Debug, Clone)]
struct Block {
    /// `(negated, pattern)`; empty for the implicit block before the first `Host` line (applies to all).
    patterns: Vec<(bool, String)>,
    /// True for `Match` blocks other than `Match all`.
    never: bool,
    /// `(lowercase keyword, value, "file:line")`.
    entries: Vec<(String, String, String)>,
}

/// A parsed ssh_config file.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

/// The options that apply to one host, after `sshOptions` and the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub identities_only: Option<bool>,
    /// `IdentityAgent`: `Some(None)` means `none` (agent disabled).
    pub identity_agent: Option<Option<PathBuf>>,
    pub proxy_jump: Option<String>,
    /// `UserKnownHostsFile`: `Some(vec![])` for `/dev/null` / `none`.
    pub user_known_hosts_files: Option<Vec<PathBuf>>,
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    pub connect_timeout: Option<Duration>,
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: Option<usize>,
    /// Options seen but without effect in ferry, as `origin: Keyword value`.
    pub ignored: Vec<String>,
}

/// The local user's home directory, from `$HOME`.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Expands a leading `~/` with `$HOME`.
pub fn expand_tilde(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if s == "~" => home_dir().unwrap_or_else(|| PathBuf::from(s)),
        _ => PathBuf::from(s),
    }
}

/// Matches `text` against an OpenSSH wildcard pattern (`*` any run, `?` one character). Case-insensitive,
/// as OpenSSH lowercases host names before matching.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    // Iterative matcher with backtracking on the last `*`: linear memory, no recursion on hostile input.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches a host against a pattern list: some positive pattern matches and no negated one does.
pub fn pattern_list_match(patterns: &[(bool, String)], host: &str) -> bool {
    let mut positive = false;
    for (negated, pat) in patterns {
        if wildcard_match(pat, host) {
            if *negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// Splits a config line's arguments: whitespace separated, double quotes group.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                any = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Splits `Keyword value`, `Keyword=value` or `Keyword = value`.
fn split_keyword(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let end = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    Some((key.to_ascii_lowercase(), rest.to_string()))
}

impl SshConfig {
    /// Parses ssh_config text; `origin` (usually the file name) is used in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut blocks = vec![Block {
            patterns: Vec::new(),
            never: false,
            entries: Vec::new(),
        }];
        for (idx, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let here = format!("{origin}:{}", idx + 1);
            let Some((key, value)) = split_keyword(line) else {
                // A keyword with no value.
                return Err(Error::Config {
                    origin: here,
                    reason: format!("missing value in {line:?}"),
                });
            };
            match key.as_str() {
                "host" => {
                    let patterns = split_args(&value)
                        .into_iter()
                        .map(|p| match p.strip_prefix('!') {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, p),
                        })
                        .collect::<Vec<_>>();
                    if patterns.is_empty() {
                        return Err(Error::Config {
                            origin: here,
                            reason: "Host without patterns".into(),
                        });
                    }
                    blocks.push(Block {
                        patterns,
                        never: false,
                        entries: Vec::new(),
                    });
                }
                "match" => {
                    let all = value.trim().eq_ignore_ascii_case("all");
                    let mut block = Block {
                        patterns: vec![(false, "*".into())],
                        never: !all,
                        entries: Vec::new(),
                    };
                    if !all {
                        block.entries.push(("match".into(), value, here));
                    }
                    blocks.push(block);
                }
                _ => {
                    if let Some(block) = blocks.last_mut() {
                        block.entries.push((key, value, here));
                    }
                }
            }
        }
        Ok(SshConfig { blocks })
    }

    /// Reads and parses a config file. A missing file is an empty config (like OpenSSH).
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SshConfig::default()),
            Err(source) => Err(Error::Io {
                op: "reading ssh config",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Applies every block matching `host` (the name as given, before `HostName`) onto `cfg`, in file order.
    pub fn apply_to(&self, host: &str, cfg: &mut HostConfig) -> Result<()> {
        for block in &self.blocks {
            let applies = block.patterns.is_empty() || pattern_list_match(&block.patterns, host);
            if block.never {
                for (key, value, origin) in &block.entries {
                    cfg.ignored
                        .push(format!("{origin}: {key} {value} (Match is not supported)"));
                }
                continue;
            }
            if !applies {
                continue;
            }
            for (key, value, origin) in &block.entries {
                cfg.apply(key, value, origin, host)?;
            }
        }
        Ok(())
    }
}

fn parse_yes_no(value: &str, origin: &str, key: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(Error::Config {
            origin: origin.into(),
            reason: format!("{key}: expected yes or no, got {value:?}"),
        }),
    }
}

fn parse_secs(value: &str, origin: &str, key: &str) -> Result<Duration> {
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| Error::Config {
            origin: origin.into(),
            reason: format!("{key}: expected a number of seconds, got {value:?}"),
        })
}

impl HostConfig {
    /// Applies one `keyword value` (keyword lowercase) unless the keyword already has a value.
    pub fn apply(&mut self, key: &str, value: &str, origin: &str, host: &str) -> Result<()> {
        let value = value.trim();
        let first = split_args(value).into_iter().next().unwrap_or_default();
        match key {
            "hostname" if self.hostname.is_none() => {
                self.hostname = Some(first.replace("%h", host));
            }
            "user" if self.user.is_none() => self.user = Some(first),
            "port" if self.port.is_none() => {
                self.port = Some(first.parse().map_err(|_| Error::Config {
                    origin: origin.into(),
                    reason: format!("Port: not a port number: {first:?}"),
                })?);
            }
            "identityfile" => {
                let path = self.expand_tokens(&first, host);
                if !self.identity_files.contains(&path) {
                    self.identity_files.push(path);
                }
            }
            "identitiesonly" if self.identities_only.is_none() => {
                self.identities_only = Some(parse_yes_no(&first, origin, "IdentitiesOnly")?);
            }
            "identityagent" if self.identity_agent.is_none() => {
                self.identity_agent = Some(match first.as_str() {
                    "none" => None,
                    "SSH_AUTH_SOCK" => std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
                    other => Some(self.expand_tokens(other, host)),
                });
            }
            "proxyjump" if self.proxy_jump.is_none() => {
                self.proxy_jump = Some(first);
            }
            "userknownhostsfile" if self.user_known_hosts_files.is_none() => {
                let files = split_args(value)
                    .into_iter()
                    .filter(|f| f != "/dev/null" && !f.eq_ignore_ascii_case("none"))
                    .map(|f| self.expand_tokens(&f, host))
                    .collect();
                self.user_known_hosts_files = Some(files);
            }
            "stricthostkeychecking" if self.strict_host_key_checking.is_none() => {
                self.strict_host_key_checking = Some(match first.to_ascii_lowercase().as_str() {
                    "yes" | "ask" | "true" => StrictHostKeyChecking::Yes,
                    "accept-new" | "no" | "off" | "false" => StrictHostKeyChecking::AcceptNew,
                    _ => {
                        return Err(Error::Config {
                            origin: origin.into(),
                            reason: format!("StrictHostKeyChecking: unknown value {first:?}"),
                        });
                    }
                });
            }
            "connecttimeout" if self.connect_timeout.is_none() => {
                self.connect_timeout = Some(parse_secs(&first, origin, "ConnectTimeout")?);
            }
            "serveraliveinterval" if self.server_alive_interval.is_none() => {
                self.server_alive_interval =
                    Some(parse_secs(&first, origin, "ServerAliveInterval")?);
            }
            "serveralivecountmax" if self.server_alive_count_max.is_none() => {
                self.server_alive_count_max = Some(first.parse().map_err(|_| Error::Config {
                    origin: origin.into(),
                    reason: format!("ServerAliveCountMax: not a number: {first:?}"),
                })?);
            }
            "hostname"
            | "user"
            | "port"
            | "identitiesonly"
            | "identityagent"
            | "proxyjump"
            | "userknownhostsfile"
            | "stricthostkeychecking"
            | "connecttimeout"
            | "serveraliveinterval"
            | "serveralivecountmax" => {
                // Already set by an earlier (higher-priority) source: first value wins.
            }
            _ => self.ignored.push(format!("{origin}: {key} {value}")),
        }
        Ok(())
    }

    /// Expands `~`, `%d` (home), `%h` (host), `%r` (remote user), `%u` (local user), `%p` (port), `%%`.
    fn expand_tokens(&self, s: &str, host: &str) -> PathBuf {
        let home = home_dir()
            .map(|h| h.display().to_string())
            .unwrap_or_default();
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('d') => out.push_str(&home),
                Some('h') => out.push_str(self.hostname.as_deref().unwrap_or(host)),
                Some('r') => out.push_str(self.user.as_deref().unwrap_or("")),
                Some('u') => out.push_str(&std::env::var("USER").unwrap_or_default()),
                Some('p') => out.push_str(&self.port.unwrap_or(22).to_string()),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        expand_tilde(&out)
    }

    /// Applies NixOps-style `sshOptions` (`-o Key=Value`, `-oKey=Value`, `-p PORT`, `-i FILE`, `-l USER`,
    /// `-J JUMP`). Flags that don't change how ferry connects (`-A`, `-T`, `-v`, ...) are recorded as ignored.
    pub fn apply_ssh_options(&mut self, args: &[String], host: &str) -> Result<()> {
        let origin = "sshOptions";
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(flag) = arg.strip_prefix('-') else {
                return Err(Error::Config {
                    origin: origin.into(),
                    reason: format!(
                        "unexpected argument {arg:?} (expected -o Key=Value, -p, -i, -l or -J)"
                    ),
                });
            };
            let mut chars = flag.chars();
            let Some(letter) = chars.next() else {
                return Err(Error::Config {
                    origin: origin.into(),
                    reason: "empty option \"-\"".into(),
                });
            };
            let attached = chars.as_str();
            let takes_value = matches!(
                letter,
                'o' | 'p'
                    | 'i'
                    | 'l'
                    | 'J'
                    | 'F'
                    | 'b'
                    | 'c'
                    | 'm'
                    | 'E'
                    | 'L'
                    | 'R'
                    | 'D'
                    | 'W'
                    | 'S'
                    | 'O'
                    | 'Q'
                    | 'w'
                    | 'e'
                    | 'B'
                    | 'I'
            );
            if !takes_value {
                self.ignored.push(format!("{origin}: {arg}"));
                continue;
            }
            let value = if attached.is_empty() {
                match it.next() {
                    Some(v) => v.clone(),
                    None => {
                        return Err(Error::Config {
                            origin: origin.into(),
                            reason: format!("{arg} needs a value"),
                        });
                    }
                }
            } else {
                attached.to_string()
            };
            match letter {
                'o' => {
                    let Some((key, val)) = split_keyword(&value) else {
                        return Err(Error::Config {
                            origin: origin.into(),
                            reason: format!("-o {value:?}: expected Key=Value"),
                        });
                    };
                    self.apply(&key, &val, origin, host)?;
                }
                'p' => self.apply("port", &value, origin, host)?,
                'i' => self.apply("identityfile", &value, origin, host)?,
                'l' => self.apply("user", &value, origin, host)?,
                'J' => self.apply("proxyjump", &value, origin, host)?,
                _ => self.ignored.push(format!("{origin}: -{letter} {value}")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.example.com", "a.example.com"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(wildcard_match("web?", "web1"));
        assert!(!wildcard_match("web?", "web12"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("WEB*", "web1"));
    }

    #[test]
    fn first_value_wins_and_negation() {
        let text = "\
# comment
Host web* !web-internal
  HostName %h.example.com
  User deploy
  Port=2222
  IdentityFile ~/.ssh/id_web
Host *
  User root
  IdentityFile \"/keys/all keys\"
  ProxyJump bastion
  StrictHostKeyChecking accept-new
  UserKnownHostsFile /dev/null
  ForwardAgent yes
";
        let cfg = SshConfig::parse(text, "cfg").unwrap();
        let mut web = HostConfig::default();
        cfg.apply_to("web1", &mut web).unwrap();
        assert_eq!(web.hostname.as_deref(), Some("web1.example.com"));
        assert_eq!(web.user.as_deref(), Some("deploy"));
        assert_eq!(web.port, Some(2222));
        assert_eq!(web.identity_files.len(), 2);
        assert_eq!(web.identity_files[1], PathBuf::from("/keys/all keys"));
        assert_eq!(web.proxy_jump.as_deref(), Some("bastion"));
        assert_eq!(
            web.strict_host_key_checking,
            Some(StrictHostKeyChecking::AcceptNew)
        );
        assert_eq!(web.user_known_hosts_files, Some(vec![]));
        assert_eq!(web.ignored.len(), 1, "{:?}", web.ignored);

        let mut internal = HostConfig::default();
        cfg.apply_to("web-internal", &mut internal).unwrap();
        assert_eq!(internal.hostname, None);
        assert_eq!(internal.user.as_deref(), Some("root"));
    }

    #[test]
    fn ssh_options_override_config() {
        let cfg = SshConfig::parse("Host h\n Port 2222\n User bob\n", "cfg").unwrap();
        let mut hc = HostConfig::default();
        let opts: Vec<String> = [
            "-o",
            "Port=3333",
            "-lalice",
            "-A",
            "-i",
            "/k",
            "-oStrictHostKeyChecking=no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        hc.apply_ssh_options(&opts, "h").unwrap();
        cfg.apply_to("h", &mut hc).unwrap();
        assert_eq!(hc.port, Some(3333));
        assert_eq!(hc.user.as_deref(), Some("alice"));
        assert_eq!(hc.identity_files, vec![PathBuf::from("/k")]);
        assert_eq!(
            hc.strict_host_key_checking,
            Some(StrictHostKeyChecking::AcceptNew)
        );
        assert_eq!(hc.ignored, vec!["sshOptions: -A".to_string()]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(SshConfig::parse("Host\n", "c").is_err());
        let cfg = SshConfig::parse("Port notaport\n", "c").unwrap();
        assert!(cfg.apply_to("x", &mut HostConfig::default()).is_err());
        let mut hc = HostConfig::default();
        assert!(hc.apply_ssh_options(&["-p".to_string()], "h").is_err());
        assert!(hc.apply_ssh_options(&["x".to_string()], "h").is_err());
        assert!(hc.apply_ssh_options(&["-".to_string()], "h").is_err());
    }
}
