//! [`SshSession`]: one authenticated russh connection to a host, and the channels opened on it.
//!
//! Layer: `ssh` (tokio). Connecting resolves the host through `sshOptions` and `~/.ssh/config`, optionally
//! tunnels through a `ProxyJump` host (a `direct-tcpip` channel on the jump host's own session), checks the host
//! key against known_hosts, then authenticates: (1) the explicit key, (2) ssh-agent, (3) `IdentityFile`s.
//!
//! Timeouts, so that nothing hangs: TCP connect, handshake and authentication each run under the connect
//! timeout; channel opens get a generous limit; an established connection sends keepalives and is declared dead after
//! `keepalive_max` unanswered ones, which ends every channel on it with [`Error::ConnectionLost`].
//!
//! Cancellation: dropping a [`RemoteProcess`] or an [`SshStream`] closes its channel; dropping the
//! [`SshSession`] closes the connection (and the jump host's).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use russh::client::{self, Handle, Msg};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, Sig};

use super::config::{HostConfig, SshConfig, StrictHostKeyChecking, home_dir};
use super::error::{Error, Result};
use super::keys::load_private_key;
use super::known_hosts::{self, Verdict, fingerprint};
use super::quote::{Escalation, SUDO_PROMPT_MARKER, SUDO_STARTED_MARKER};
use super::stream::SshStream;

/// `[user@]host[:port]`, as given on the command line or in a network file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Target {
    /// A target with just a host name (or `~/.ssh/config` alias).
    pub fn host(host: impl Into<String>) -> Self {
        Target {
            user: None,
            host: host.into(),
            port: None,
        }
    }

    /// Parses `[user@]host[:port]`; IPv6 literals go in brackets: `[::1]:2222`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidTarget {
            target: s.to_string(),
            reason: reason.to_string(),
        };
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(bad("empty user name")),
            None => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner.split_once(']').ok_or_else(|| bad("missing ]"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("unexpected text after ]")),
            }
        } else if rest.matches(':').count() == 1 {
            let (h, p) = rest.split_once(':').ok_or_else(|| bad("bad port"))?;
            (h, Some(p))
        } else {
            (rest, None)
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("empty or invalid host name"));
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| bad("port must be 1-65535"))?,
            ),
            None => None,
        };
        Ok(Target {
            user,
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// How to connect. [`ConnectOptions::from_env`] gives OpenSSH-like defaults from `$HOME` and `$SSH_AUTH_SOCK`;
/// tests build one without touching the user's files.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// (1) The deployment's own private key, tried first. Must be mode 0600.
    pub identity: Option<PathBuf>,
    /// (2) The ssh-agent socket (default `$SSH_AUTH_SOCK`); `IdentityAgent` in the config overrides it.
    pub agent_socket: Option<PathBuf>,
    /// The ssh_config file to read (default `~/.ssh/config`); `None` reads none.
    pub ssh_config_file: Option<PathBuf>,
    /// Per-machine `deployment.sshOptions`; they override the config file.
    pub ssh_options: Vec<String>,
    /// ferry's own known_hosts: checked first and the only file ferry writes.
    pub ferry_known_hosts: PathBuf,
    /// The user's known_hosts files (default `~/.ssh/known_hosts{,2}`); `UserKnownHostsFile` replaces them.
    pub user_known_hosts: Vec<PathBuf>,
    /// Record unknown host keys in `ferry_known_hosts` instead of refusing them.
    pub accept_new_host_keys: bool,
    /// Limit for each of TCP connect, handshake and authentication (`ConnectTimeout` overrides it).
    pub connect_timeout: Duration,
    /// Keepalive period on an established connection (`ServerAliveInterval` overrides it).
    pub keepalive_interval: Duration,
    /// Unanswered keepalives before the connection is declared dead (`ServerAliveCountMax` overrides it).
    pub keepalive_max: usize,
    /// Prefer these ciphers (OpenSSH names); empty keeps russh's order.
    pub ciphers: Vec<String>,
}

impl ConnectOptions {
    /// Defaults from the environment: `~/.ssh/config`, `~/.ssh/known_hosts`, `$SSH_AUTH_SOCK`, and
    /// `$XDG_DATA_HOME/ferry/known_hosts` (else `~/.local/share/ferry/known_hosts`) as ferry's file.
    pub fn from_env() -> Self {
        let home = home_dir();
        let data = std::env::var_os("XDG_DATA_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        ConnectOptions {
            identity: None,
            agent_socket: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            ssh_config_file: home.as_ref().map(|h| h.join(".ssh/config")),
            ssh_options: Vec::new(),
            ferry_known_hosts: data.join("ferry/known_hosts"),
            user_known_hosts: home
                .as_ref()
                .map(|h| vec![h.join(".ssh/known_hosts"), h.join(".ssh/known_hosts2")])
                .unwrap_or_default(),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(10),
            keepalive_max: 3,
            ciphers: Vec::new(),
        }
    }

    /// Options that read no user file and use no agent: only what the caller sets.
    pub fn isolated(ferry_known_hosts: PathBuf) -> Self {
        ConnectOptions {
            identity: None,
            agent_socket: None,
            ssh_config_file: None,
            ssh_options: Vec::new(),
            ferry_known_hosts,
            user_known_hosts: Vec::new(),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(10),
            keepalive_max: 3,
            ciphers: Vec::new(),
        }
    }
}

/// Facts about an established connection.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The target as the user named it.
    pub name: String,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    /// The negotiated cipher (OpenSSH name), e.g. `chacha20-poly1305@openssh.com`.
    pub cipher: String,
    /// `type SHA256:...` of the host key that was accepted.
    pub host_key: String,
    /// The method that authenticated us, e.g. `key /path`, `ssh-agent (comment)`.
    pub auth_method: String,
    /// The jump host, if any.
    pub via: Option<String>,
    /// Options from sshOptions / ssh_config that have no effect in ferry.
    pub ignored_options: Vec<String>,
}

/// State shared between the russh handler (which runs in russh's task) and ferry's handles.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    cipher: Mutex<Option<String>>,
    host_key: Mutex<Option<String>>,
    host_key_error: Mutex<Option<Error>>,
    disconnect: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data (strings) is still meaningful.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Why the connection ended, if it did.
    pub(crate) fn disconnect_reason(&self) -> Option<String> {
        lock(&self.disconnect).clone()
    }
}

/// The russh handler: host key policy and bookkeeping.
struct Client {
    name: String,
    check_host: String,
    check_port: u16,
    known_files: Vec<PathBuf>,
    ferry_file: PathBuf,
    accept_new: bool,
    shared: Arc<Shared>,
}

impl Client {
    fn check_key(&self, key: &russh::keys::PublicKey) -> Result<()> {
        let fp = fingerprint(key);
        match known_hosts::check(&self.known_files, &self.check_host, self.check_port, key)? {
            Verdict::Trusted { .. } => Ok(()),
            Verdict::Unknown if self.accept_new => {
                known_hosts::append(&self.ferry_file, &self.check_host, self.check_port, key)
            }
            Verdict::Unknown => Err(Error::UnknownHostKey {
                host: self.name.clone(),
                fingerprint: fp,
                ferry_file: self.ferry_file.clone(),
            }),
            Verdict::Changed {
                file,
                line,
                known_fingerprint,
            } => Err(Error::HostKeyChanged {
                host: self.name.clone(),
                presented_fingerprint: fp,
                known_fingerprint,
                file,
                line,
            }),
            Verdict::Revoked { file, line } => Err(Error::HostKeyRevoked {
                host: self.name.clone(),
                fingerprint: fp,
                file,
                line,
            }),
        }
    }
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            // We never advertise certificate algorithms, so this is a protocol violation.
            *lock(&self.shared.host_key_error) = Some(Error::ChannelRefused {
                host: self.name.clone(),
                op: "host certificate (not supported)",
            });
            return Ok(false);
        };
        *lock(&self.shared.host_key) = Some(fingerprint(key));
        match self.check_key(key) {
            Ok(()) => Ok(true),
            Err(e) => {
                *lock(&self.shared.host_key_error) = Some(e);
                Ok(false)
            }
        }
    }

    async fn kex_done(
        &mut self,
        _shared_secret: Option<&[u8]>,
        names: &russh::Names,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        *lock(&self.shared.cipher) = Some(names.cipher.as_ref().to_string());
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let text = match &reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                format!(
                    "server disconnected: {} ({:?})",
                    info.message, info.reason_code
                )
            }
            client::DisconnectReason::Error(russh::Error::KeepaliveTimeout) => {
                "no answer to keepalives (host stalled or network down)".to_string()
            }
            client::DisconnectReason::Error(russh::Error::InactivityTimeout) => {
                "inactivity timeout".to_string()
            }
            client::DisconnectReason::Error(e) => e.to_string(),
        };
        lock(&self.shared.disconnect).get_or_insert(text);
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// One SSH connection to one host. Cheap to share behind an `Arc`: every method takes `&self`, and channels
/// opened concurrently are multiplexed on the one connection.
pub struct SshSession {
    handle: Handle<Client>,
    shared: Arc<Shared>,
    info: SessionInfo,
    channel_timeout: Duration,
    /// Keeps the jump host's connection (which carries ours) alive.
    _jump: Option<Box<SshSession>>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("info", &self.info)
            .finish()
    }
}

/// The options that apply to `target`: the target's own user/port, then sshOptions, then ssh_config.
fn resolve(target: &Target, opts: &ConnectOptions) -> Result<HostConfig> {
    let mut hc = HostConfig {
        user: target.user.clone(),
        port: target.port,
        ..HostConfig::default()
    };
    hc.apply_ssh_options(&opts.ssh_options, &target.host)?;
    if let Some(path) = &opts.ssh_config_file {
        SshConfig::load(path)?.apply_to(&target.host, &mut hc)?;
    }
    Ok(hc)
}

fn classify_connect_error(name: &str, addr: String, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused {
            host: name.to_string(),
            addr,
        },
        _ => Error::Unreachable {
            host: name.to_string(),
            addr,
            source: e,
        },
    }
}

/// The bytes under an SSH session: a TCP socket, or a channel on the jump host.
enum Transport {
    Tcp(tokio::net::TcpStream),
    Jump(SshStream),
}

impl SshSession {
    /// Connects and authenticates to `target`.
    pub async fn connect(target: &Target, opts: &ConnectOptions) -> Result<SshSession> {
        Box::pin(Self::connect_inner(target, opts)).await
    }

    async fn connect_inner(target: &Target, opts: &ConnectOptions) -> Result<SshSession> {
        let name = target.to_string();
        let hc = resolve(target, opts)?;
        let hostname = hc.hostname.clone().unwrap_or_else(|| target.host.clone());
        let port = hc.port.unwrap_or(22);
        let user = hc
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "root".to_string());
        let timeout = hc.connect_timeout.unwrap_or(opts.connect_timeout);
        let timed_out = |stage: &'static str| Error::Timeout {
            host: name.clone(),
            stage,
            timeout,
        };

        // The jump host: the last hop of a `ProxyJump a,b` list; it reaches its own predecessors itself.
        let mut jump = None;
        let transport = match hc
            .proxy_jump
            .as_deref()
            .filter(|j| !j.eq_ignore_ascii_case("none"))
        {
            Some(spec) => {
                let (rest, last) = match spec.rsplit_once(',') {
                    Some((rest, last)) => (Some(rest), last),
                    None => (None, spec),
                };
                let jump_target = Target::parse(last.trim_start_matches("ssh://"))?;
                let mut jump_opts = opts.clone();
                jump_opts.ssh_options = match rest {
                    Some(r) => vec!["-J".to_string(), r.to_string()],
                    None => Vec::new(),
                };
                let jump_session = SshSession::connect(&jump_target, &jump_opts).await?;
                let stream = jump_session.open_direct_tcpip(&hostname, port).await?;
                jump = Some(Box::new(jump_session));
                Transport::Jump(stream)
            }
            None => {
                let addrs: Vec<std::net::SocketAddr> = tokio::time::timeout(
                    timeout,
                    tokio::net::lookup_host((hostname.as_str(), port)),
                )
                .await
                .map_err(|_| timed_out("name resolution"))?
                .map_err(|source| Error::Resolve {
                    host: name.clone(),
                    hostname: hostname.clone(),
                    source,
                })?
                .collect();
                let mut last_err = None;
                let mut sock = None;
                for addr in &addrs {
                    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await
                    {
                        Ok(Ok(s)) => {
                            sock = Some(s);
                            break;
                        }
                        Ok(Err(e)) => {
                            last_err = Some(classify_connect_error(&name, addr.to_string(), e))
                        }
                        Err(_) => last_err = Some(timed_out("TCP connect")),
                    }
                }
                match sock {
                    Some(s) => {
                        // Small request/response messages (exec, channel opens) must not wait for Nagle.
                        let _ = s.set_nodelay(true);
                        Transport::Tcp(s)
                    }
                    None => {
                        return Err(last_err.unwrap_or_else(|| Error::Resolve {
                            host: name.clone(),
                            hostname: hostname.clone(),
                            source: std::io::Error::other("no addresses"),
                        }));
                    }
                }
            }
        };

        let mut known_files = vec![opts.ferry_known_hosts.clone()];
        known_files.extend(
            hc.user_known_hosts_files
                .clone()
                .unwrap_or_else(|| opts.user_known_hosts.clone()),
        );
        let accept_new = opts.accept_new_host_keys
            || hc.strict_host_key_checking == Some(StrictHostKeyChecking::AcceptNew);

        let mut preferred = russh::Preferred::default();
        // Ask for a host key type we already know first (OpenSSH does the same), so a host with several key
        // types is not mistaken for a changed one.
        let known_algs = known_hosts::known_algorithms(&known_files, &hostname, port);
        if !known_algs.is_empty() {
            let mut order: Vec<Algorithm> = known_algs.clone();
            order.extend(
                preferred
                    .key
                    .iter()
                    .filter(|a| !known_algs.contains(a))
                    .cloned(),
            );
            preferred.key = Cow::Owned(order);
        }
        if opts.ciphers.is_empty() && cpu_has_fast_aes() {
            // With AES-NI, AES-GCM is the fastest cipher russh offers (measured in benches/ssh.rs: about 1.1x
            // OpenSSH's time for a 256 MiB stream, against 1.6-1.9x with chacha20-poly1305, which russh runs
            // slower than OpenSSH does). The server still picks from what both sides offer.
            let gcm = [russh::cipher::AES_256_GCM, russh::cipher::AES_128_GCM];
            let mut order: Vec<russh::cipher::Name> = gcm.to_vec();
            order.extend(
                preferred
                    .cipher
                    .iter()
                    .filter(|c| !gcm.contains(c))
                    .cloned(),
            );
            preferred.cipher = Cow::Owned(order);
        }
        if !opts.ciphers.is_empty() {
            let mut order = Vec::new();
            for c in &opts.ciphers {
                let n = russh::cipher::Name::try_from(c.as_str()).map_err(|_| Error::Config {
                    origin: "ciphers".into(),
                    reason: format!("unsupported cipher {c:?}"),
                })?;
                order.push(n);
            }
            preferred.cipher = Cow::Owned(order);
        }
        let interval = hc.server_alive_interval.unwrap_or(opts.keepalive_interval);
        let config = Arc::new(client::Config {
            preferred,
            keepalive_interval: (!interval.is_zero()).then_some(interval),
            keepalive_max: hc.server_alive_count_max.unwrap_or(opts.keepalive_max),
            // Bigger windows and packets than russh's defaults keep a single channel near line rate.
            window_size: 16 * 1024 * 1024,
            maximum_packet_size: 65535,
            nodelay: true,
            ..client::Config::default()
        });
        let shared = Arc::new(Shared::default());
        let handler = Client {
            name: name.clone(),
            check_host: hostname.clone(),
            check_port: port,
            known_files,
            ferry_file: opts.ferry_known_hosts.clone(),
            accept_new,
            shared: shared.clone(),
        };
        let handshake = async {
            match transport {
                Transport::Tcp(s) => client::connect_stream(config, s, handler).await,
                Transport::Jump(s) => client::connect_stream(config, s, handler).await,
            }
        };
        let mut handle = match tokio::time::timeout(timeout, handshake).await {
            Err(_) => return Err(timed_out("SSH handshake")),
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                if let Some(err) = lock(&shared.host_key_error).take() {
                    return Err(err);
                }
                return Err(match e {
                    russh::Error::IO(io) => Error::ConnectionLost {
                        host: name.clone(),
                        op: "handshake",
                        reason: io.to_string(),
                    },
                    russh::Error::Disconnect | russh::Error::HUP => Error::ConnectionLost {
                        host: name.clone(),
                        op: "handshake",
                        reason: "closed by the remote side".into(),
                    },
                    source => Error::Protocol {
                        host: name.clone(),
                        op: "handshake",
                        source,
                    },
                });
            }
        };

        let agent = match &hc.identity_agent {
            Some(a) => a.clone(),
            None => opts.agent_socket.clone(),
        };
        let auth = Authenticator {
            name: &name,
            user: &user,
            identity: opts.identity.as_deref(),
            agent: if hc.identities_only == Some(true) {
                None
            } else {
                agent.as_deref()
            },
            files: &hc.identity_files,
        };
        let auth_method = tokio::time::timeout(timeout, auth.run(&mut handle))
            .await
            .map_err(|_| timed_out("authentication"))??;

        let info = SessionInfo {
            name,
            hostname,
            port,
            user,
            cipher: lock(&shared.cipher).clone().unwrap_or_default(),
            host_key: lock(&shared.host_key).clone().unwrap_or_default(),
            auth_method,
            via: jump.as_ref().map(|j| j.info.name.clone()),
            ignored_options: hc.ignored,
        };
        Ok(SshSession {
            handle,
            shared,
            info,
            // A busy connection can take a while to confirm a channel (russh queues opens behind window-blocked
            // data); a dead one is caught by keepalives. This limit only guards against a server that ignores us.
            channel_timeout: timeout.max(Duration::from_secs(60)),
            _jump: jump,
        })
    }

    /// Facts about this connection (user, cipher, host key, how we authenticated).
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// True once the connection is gone; every later operation fails with [`Error::ConnectionLost`].
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    fn lost(&self, op: &'static str) -> Error {
        Error::ConnectionLost {
            host: self.info.name.clone(),
            op,
            reason: self
                .shared
                .disconnect_reason()
                .unwrap_or_else(|| "connection closed".to_string()),
        }
    }

    fn map_channel_err(&self, op: &'static str, e: russh::Error) -> Error {
        match e {
            russh::Error::ChannelOpenFailure(_) | russh::Error::RequestDenied => {
                Error::ChannelRefused {
                    host: self.info.name.clone(),
                    op,
                }
            }
            russh::Error::SendError
            | russh::Error::Disconnect
            | russh::Error::HUP
            | russh::Error::IO(_) => self.lost(op),
            source => Error::Protocol {
                host: self.info.name.clone(),
                op,
                source,
            },
        }
    }

    async fn open_session_channel(&self, op: &'static str) -> Result<Channel<Msg>> {
        if self.is_closed() {
            return Err(self.lost(op));
        }
        match tokio::time::timeout(self.channel_timeout, self.handle.channel_open_session()).await {
            Err(_) => Err(Error::Timeout {
                host: self.info.name.clone(),
                stage: "channel open",
                timeout: self.channel_timeout,
            }),
            Ok(r) => r.map_err(|e| self.map_channel_err(op, e)),
        }
    }

    /// Runs `command` (one string, parsed by the remote user's shell; see [`super::quote_command`]).
    pub async fn exec(&self, command: &str) -> Result<RemoteProcess> {
        let channel = self.open_session_channel("exec").await?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.map_channel_err("exec", e))?;
        Ok(RemoteProcess::new(
            channel,
            self.info.name.clone(),
            self.shared.clone(),
        ))
    }

    /// Runs `script` as root through `escalation` (e.g. `sudo -H --`). If `sudo_password` is given it is written
    /// to sudo's stdin when sudo prompts for it, never put on a command line. With no password, sudo must
    /// not need one. When the session user is root, `script` runs directly.
    pub async fn exec_as_root(
        &self,
        script: &str,
        escalation: &Escalation,
        sudo_password: Option<&str>,
    ) -> Result<RemoteProcess> {
        if self.info.user == "root" {
            return self.exec(script).await;
        }
        let with_password = sudo_password.is_some() && escalation.is_sudo();
        let command = if sudo_password.is_none() && escalation.is_sudo() {
            // -n: fail at once instead of waiting for a password nobody will type.
            let mut e = escalation.clone();
            e.command.insert(1.min(e.command.len()), "-n".to_string());
            e.wrap(script, false)
        } else {
            escalation.wrap(script, with_password)
        };
        let mut process = self.exec(&command).await?;
        if with_password {
            process.sudo_password = sudo_password.map(str::to_string);
        }
        Ok(process)
    }

    /// Opens an interactive channel with a PTY: a login shell when `command` is `None`.
    pub async fn exec_pty(&self, command: Option<&str>, pty: &PtyRequest) -> Result<RemoteProcess> {
        let channel = self.open_session_channel("pty").await?;
        channel
            .request_pty(true, &pty.term, pty.cols, pty.rows, 0, 0, &[])
            .await
            .map_err(|e| self.map_channel_err("pty request", e))?;
        match command {
            Some(c) => channel.exec(true, c).await,
            None => channel.request_shell(true).await,
        }
        .map_err(|e| self.map_channel_err("shell", e))?;
        Ok(RemoteProcess::new(
            channel,
            self.info.name.clone(),
            self.shared.clone(),
        ))
    }

    /// Runs `command` (e.g. `nix-daemon --stdio`) and returns its stdin/stdout as a byte stream.
    /// stderr is kept (the last 64 KiB) for error messages: see [`SshStream::stderr_tail`].
    pub async fn open_stream(&self, command: &str) -> Result<SshStream> {
        let channel = self.open_session_channel("stream").await?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.map_channel_err("exec", e))?;
        Ok(SshStream::new(
            channel,
            self.info.name.clone(),
            self.shared.clone(),
        ))
    }

    /// A `direct-tcpip` channel to `host:port` as seen from this host (what ProxyJump uses).
    pub async fn open_direct_tcpip(&self, host: &str, port: u16) -> Result<SshStream> {
        if self.is_closed() {
            return Err(self.lost("direct-tcpip"));
        }
        let open = self
            .handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0);
        let channel = match tokio::time::timeout(self.channel_timeout, open).await {
            Err(_) => {
                return Err(Error::Timeout {
                    host: self.info.name.clone(),
                    stage: "direct-tcpip open",
                    timeout: self.channel_timeout,
                });
            }
            Ok(r) => r.map_err(|e| self.map_channel_err("direct-tcpip", e))?,
        };
        Ok(SshStream::new(
            channel,
            self.info.name.clone(),
            self.shared.clone(),
        ))
    }

    /// Closes the connection politely.
    pub async fn close(self) -> Result<()> {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok(())
    }
}

/// The three authentication sources, in order.
struct Authenticator<'a> {
    name: &'a str,
    user: &'a str,
    identity: Option<&'a Path>,
    agent: Option<&'a Path>,
    files: &'a [PathBuf],
}

impl Authenticator<'_> {
    /// Offers the private key in `path`: `Some(description)` when the server accepts it; otherwise why not is
    /// pushed onto `tried` (a load failure as `load_error` followed by the error, or a rejection).
    async fn try_key_file(
        &self,
        handle: &mut Handle<Client>,
        path: &Path,
        label: &str,
        load_error: String,
        rsa_hash: Option<russh::keys::HashAlg>,
        tried: &mut Vec<String>,
    ) -> Result<Option<String>> {
        let key = match load_private_key(path) {
            Ok(key) => key,
            Err(e) => {
                tried.push(format!("{load_error}{e}"));
                return Ok(None);
            }
        };
        let what = format!(
            "{label} {} ({})",
            path.display(),
            fingerprint(key.public_key())
        );
        let accepted = handle
            .authenticate_publickey(
                self.user,
                PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash),
            )
            .await
            .map_err(|source| Error::Protocol {
                host: self.name.to_string(),
                op: "authentication",
                source,
            })?
            .success();
        if accepted {
            return Ok(Some(what));
        }
        tried.push(format!("{what}: rejected by the server"));
        Ok(None)
    }

    /// Returns a description of the method that worked, or [`Error::AuthFailed`] listing every attempt.
    async fn run(&self, handle: &mut Handle<Client>) -> Result<String> {
        let mut tried = Vec::new();
        let rsa_hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();

        // (1) The deployment's own key.
        if let Some(path) = self.identity {
            let load_error = format!("key {}: ", path.display());
            if let Some(what) = self
                .try_key_file(handle, path, "key", load_error, rsa_hash, &mut tried)
                .await?
            {
                return Ok(what);
            }
        } else {
            tried.push("no deployment key given".to_string());
        }

        // (2) ssh-agent.
        match self.agent {
            None => tried.push(
                "ssh-agent: none (SSH_AUTH_SOCK unset, or IdentitiesOnly/IdentityAgent none)"
                    .into(),
            ),
            Some(sock) => match AgentClient::connect_uds(sock).await {
                Err(e) => tried.push(format!(
                    "ssh-agent at {}: cannot connect: {e}",
                    sock.display()
                )),
                Ok(mut agent) => match agent.request_identities().await {
                    Err(e) => tried.push(format!(
                        "ssh-agent at {}: listing keys failed: {e}",
                        sock.display()
                    )),
                    Ok(ids) if ids.is_empty() => {
                        tried.push(format!("ssh-agent at {}: holds no keys", sock.display()))
                    }
                    Ok(ids) => {
                        for id in ids {
                            let AgentIdentity::PublicKey { key, comment } = id else {
                                continue;
                            };
                            let what = format!("ssh-agent key {} ({comment})", fingerprint(&key));
                            let hash = matches!(key.algorithm(), Algorithm::Rsa { .. })
                                .then_some(rsa_hash)
                                .flatten();
                            match handle
                                .authenticate_publickey_with(self.user, key, hash, &mut agent)
                                .await
                            {
                                Ok(r) if r.success() => return Ok(what),
                                Ok(_) => tried.push(format!("{what}: rejected by the server")),
                                Err(e) => tried.push(format!("{what}: agent failed to sign: {e}")),
                            }
                            if handle.is_closed() {
                                break;
                            }
                        }
                    }
                },
            },
        }

        // (3) IdentityFiles from sshOptions / ssh_config, else OpenSSH's default names that exist.
        let defaults: Vec<PathBuf>;
        let files: &[PathBuf] = if self.files.is_empty() {
            defaults = home_dir()
                .map(|h| {
                    ["id_ed25519", "id_ecdsa", "id_rsa"]
                        .iter()
                        .map(|f| h.join(".ssh").join(f))
                        .filter(|p| p.exists())
                        .collect()
                })
                .unwrap_or_default();
            if defaults.is_empty() {
                tried.push("IdentityFile: none configured, no ~/.ssh/id_* found".into());
            }
            &defaults
        } else {
            self.files
        };
        for path in files {
            if handle.is_closed() {
                break;
            }
            if let Some(what) = self
                .try_key_file(
                    handle,
                    path,
                    "IdentityFile",
                    "IdentityFile ".into(),
                    rsa_hash,
                    &mut tried,
                )
                .await?
            {
                return Ok(what);
            }
        }
        if handle.is_closed() {
            tried.push(
                "the server closed the connection (too many attempts? see MaxAuthTries)".into(),
            );
        }
        Err(Error::AuthFailed {
            host: self.name.to_string(),
            user: self.user.to_string(),
            tried,
        })
    }
}

/// Terminal characteristics for [`SshSession::exec_pty`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyRequest {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit-status`.
    Code(u32),
    /// `exit-signal`: the signal name without `SIG` (e.g. `KILL`).
    Signal {
        name: String,
        core_dumped: bool,
        message: String,
    },
    /// The channel closed without either (some servers do that when the process is killed).
    Unknown,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }

    /// The code a local shell would report: the exit code, or 128 + signal number, or 255 (like `ssh`).
    pub fn shell_code(&self) -> u8 {
        match self {
            ExitStatus::Code(c) => u8::try_from(*c).unwrap_or(255),
            ExitStatus::Signal { name, .. } => 128u8.saturating_add(signal_number(name)),
            ExitStatus::Unknown => 255,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal {
                name, core_dumped, ..
            } => {
                write!(
                    f,
                    "killed by SIG{name}{}",
                    if *core_dumped { " (core dumped)" } else { "" }
                )
            }
            ExitStatus::Unknown => write!(f, "no exit status"),
        }
    }
}

fn signal_number(name: &str) -> u8 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 127,
    }
}

pub(crate) fn sig_name(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(s) => s.as_str(),
    }
    .to_string()
}

/// One event from a running remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The last event: how the command ended (delivered once the channel has closed, so after all output).
    Exit(ExitStatus),
}

/// Everything a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
}

/// A command running on a session channel. Output is streamed by [`RemoteProcess::next_event`].
pub struct RemoteProcess {
    channel: Channel<Msg>,
    host: String,
    shared: Arc<Shared>,
    status: Option<ExitStatus>,
    saw_eof: bool,
    finished: bool,
    sudo_password: Option<String>,
    sudo_prompts: u32,
    /// EOF on stdin was requested before sudo asked for the password: send it right after the password.
    eof_after_password: bool,
    /// The escalated command is running (its marker was seen): stdin and stderr are the command's.
    sudo_started: bool,
}

impl std::fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteProcess")
            .field("host", &self.host)
            .finish()
    }
}

impl RemoteProcess {
    fn new(channel: Channel<Msg>, host: String, shared: Arc<Shared>) -> Self {
        RemoteProcess {
            channel,
            host,
            shared,
            status: None,
            saw_eof: false,
            finished: false,
            sudo_password: None,
            sudo_prompts: 0,
            eof_after_password: false,
            sudo_started: false,
        }
    }

    fn lost(&self, op: &'static str) -> Error {
        Error::ConnectionLost {
            host: self.host.clone(),
            op,
            reason: self
                .shared
                .disconnect_reason()
                .unwrap_or_else(|| "connection closed".to_string()),
        }
    }

    /// The next piece of output, or the exit status (last), or `None` after that.
    pub async fn next_event(&mut self) -> Result<Option<ExecEvent>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            match self.channel.wait().await {
                Some(ChannelMsg::Data { data }) => return Ok(Some(ExecEvent::Stdout(data))),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    if let Some(chunk) = self.handle_sudo_prompt(data).await? {
                        return Ok(Some(ExecEvent::Stderr(chunk)));
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    self.status.get_or_insert(ExitStatus::Code(exit_status));
                }
                Some(ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    ..
                }) => {
                    self.status.get_or_insert(ExitStatus::Signal {
                        name: sig_name(&signal_name),
                        core_dumped,
                        message: error_message,
                    });
                }
                Some(ChannelMsg::Eof) => self.saw_eof = true,
                Some(ChannelMsg::Close) => {
                    self.finished = true;
                    return Ok(Some(ExecEvent::Exit(
                        self.status.take().unwrap_or(ExitStatus::Unknown),
                    )));
                }
                Some(_) => {}
                None => {
                    self.finished = true;
                    // The channel ended without a close: the connection went away under us.
                    if self.status.is_some() && self.saw_eof {
                        return Ok(Some(ExecEvent::Exit(
                            self.status.take().unwrap_or(ExitStatus::Unknown),
                        )));
                    }
                    return Err(self.lost("command output"));
                }
            }
        }
    }

    /// Strips sudo's prompt from stderr and answers it (once) with the password; strips the "started" marker
    /// and sends a deferred EOF once the command runs.
    async fn handle_sudo_prompt(&mut self, data: Bytes) -> Result<Option<Bytes>> {
        if self.sudo_password.is_none() || self.sudo_started {
            return Ok(Some(data));
        }
        let mut text = String::from_utf8_lossy(&data).into_owned();
        if text.contains(SUDO_PROMPT_MARKER) {
            self.sudo_prompts += 1;
            if self.sudo_prompts > 1 {
                return Err(Error::Escalation {
                    host: self.host.clone(),
                    reason: "sudo rejected the password".into(),
                });
            }
            let mut line = self
                .sudo_password
                .as_deref()
                .unwrap_or_default()
                .as_bytes()
                .to_vec();
            line.push(b'\n');
            self.channel
                .data_bytes(line)
                .await
                .map_err(|_| self.lost("sending the sudo password"))?;
            text = text.replace(SUDO_PROMPT_MARKER, "");
        }
        let started = format!("{SUDO_STARTED_MARKER}\n");
        if text.contains(&started) {
            self.sudo_started = true;
            // Never keep the password around longer than needed.
            self.sudo_password = None;
            text = text.replacen(&started, "", 1);
            if self.eof_after_password {
                self.eof_after_password = false;
                let _ = self.channel.eof().await;
            }
        }
        // sudo prints a newline after reading the password from stdin; it is not the command's output.
        if self.sudo_prompts == 1 && !self.sudo_started && text == "\n" {
            text.clear();
        }
        Ok((!text.is_empty()).then(|| Bytes::from(text.into_bytes())))
    }

    /// Writes to the command's stdin.
    pub async fn write_stdin(&self, data: &[u8]) -> Result<()> {
        self.channel
            .data_bytes(Bytes::copy_from_slice(data))
            .await
            .map_err(|_| self.lost("writing stdin"))
    }

    /// Sends EOF on stdin.
    pub async fn close_stdin(&mut self) -> Result<()> {
        if self.sudo_password.is_some() && !self.sudo_started {
            // sudo may still read the password from stdin: closing it now would starve it.
            self.eof_after_password = true;
            return Ok(());
        }
        self.channel
            .eof()
            .await
            .map_err(|_| self.lost("closing stdin"))
    }

    /// Sends a signal (OpenSSH sshd honours these since 7.9).
    pub async fn signal(&self, signal: Sig) -> Result<()> {
        self.channel
            .signal(signal)
            .await
            .map_err(|_| self.lost("signal"))
    }

    /// Informs the remote PTY that the local terminal was resized.
    pub async fn window_change(&self, cols: u32, rows: u32) -> Result<()> {
        self.channel
            .window_change(cols, rows, 0, 0)
            .await
            .map_err(|_| self.lost("window change"))
    }

    /// Closes stdin and collects all output. For small outputs; stream big ones with `next_event`.
    pub async fn wait_with_output(mut self) -> Result<Output> {
        let _ = self.close_stdin().await;
        let mut out = Output {
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: ExitStatus::Unknown,
        };
        while let Some(ev) = self.next_event().await? {
            match ev {
                ExecEvent::Stdout(d) => out.stdout.extend_from_slice(&d),
                ExecEvent::Stderr(d) => out.stderr.extend_from_slice(&d),
                ExecEvent::Exit(s) => out.status = s,
            }
        }
        Ok(out)
    }
}

/// Whether the CPU has the AES and carry-less multiplication instructions that make AES-GCM fast.
fn cpu_has_fast_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("alice@web1:2222").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("alice"), "web1", Some(2222))
        );
        let t = Target::parse("[::1]:22").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        assert_eq!(t.to_string(), "[::1]:22");
        assert_eq!(Target::parse("::1").unwrap().host, "::1");
        assert_eq!(Target::parse("h").unwrap(), Target::host("h"));
        for bad in ["", "@h", "h:0", "h:99999", "h:x", "[::1", "[::1]x", "a b"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ExitStatus::Code(3).shell_code(), 3);
        assert_eq!(ExitStatus::Code(300).shell_code(), 255);
        let s = ExitStatus::Signal {
            name: "KILL".into(),
            core_dumped: false,
            message: String::new(),
        };
        assert_eq!(s.shell_code(), 137);
    }
}
