//! Authentication against a real OpenSSH sshd: ferry's generated key, ssh-agent, IdentityFile from an
//! ssh_config, ProxyJump, and the error that lists what was tried.

#![allow(clippy::unwrap_used)]

#[path = "common/sshd.rs"]
mod sshd;

use std::os::unix::fs::PermissionsExt;

use ferry::ssh::{Error, SshSession, Target, generate_ed25519_keypair};
use sshd::{Agent, Sshd};

async fn whoami(session: &SshSession) -> String {
    let out = session
        .exec("id -un")
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn generated_key_authenticates() {
    let sshd = Sshd::start();
    let session = SshSession::connect(&sshd.target(), &sshd.options())
        .await
        .unwrap();
    assert_eq!(whoami(&session).await, "root");
    let info = session.info();
    assert!(info.auth_method.starts_with("key "), "{info:?}");
    assert!(!info.cipher.is_empty());
    assert!(info.host_key.contains("SHA256:"));
}

#[tokio::test]
async fn agent_authenticates_and_failure_lists_attempts() {
    let sshd = Sshd::start();
    // A key the server does not know, first explicitly and then in the agent: both must be listed.
    let stranger = sshd.path("stranger");
    generate_ed25519_keypair(&stranger, "stranger").unwrap();
    let agent = Agent::start(sshd.dir.path());
    agent.add(&stranger);
    let mut opts = sshd.options();
    opts.identity = Some(stranger.clone());
    opts.agent_socket = Some(agent.socket.clone());
    let err = SshSession::connect(&sshd.target(), &opts)
        .await
        .unwrap_err();
    let Error::AuthFailed { tried, .. } = &err else {
        panic!("expected AuthFailed, got {err}");
    };
    let text = err.to_string();
    assert!(
        tried
            .iter()
            .any(|t| t.starts_with("key ") && t.contains("rejected")),
        "{text}"
    );
    assert!(
        tried
            .iter()
            .any(|t| t.starts_with("ssh-agent key") && t.contains("rejected")),
        "{text}"
    );

    // Now the agent also holds the authorized key: authentication goes through the agent.
    agent.add(&sshd.client_key);
    let session = SshSession::connect(&sshd.target(), &opts).await.unwrap();
    assert!(
        session.info().auth_method.starts_with("ssh-agent"),
        "{:?}",
        session.info()
    );
    assert_eq!(whoami(&session).await, "root");
}

#[tokio::test]
async fn loose_key_permissions_are_refused_and_reported() {
    let sshd = Sshd::start();
    let mut opts = sshd.options();
    let loose = sshd.path("loose");
    std::fs::copy(&sshd.client_key, &loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    opts.identity = Some(loose);
    let err = SshSession::connect(&sshd.target(), &opts)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::AuthFailed { .. }), "{text}");
    assert!(text.contains("0600"), "{text}");
}

#[tokio::test]
async fn ssh_config_identity_file_and_alias() {
    let sshd = Sshd::start();
    let mut opts = sshd.options();
    opts.identity = None;
    let config = sshd.path("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host other\n  HostName 10.255.255.1\nHost web-*\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n",
            sshd.port,
            sshd.client_key.display()
        ),
    )
    .unwrap();
    opts.ssh_config_file = Some(config);
    let session = SshSession::connect(&Target::host("web-1"), &opts)
        .await
        .unwrap();
    assert!(
        session.info().auth_method.starts_with("IdentityFile"),
        "{:?}",
        session.info()
    );
    assert_eq!(session.info().port, sshd.port);
    assert_eq!(whoami(&session).await, "root");
}

#[tokio::test]
async fn proxy_jump_one_hop() {
    // The jump host and the target are two separate sshds; the target is reached only through the jump
    // host's direct-tcpip channel (its own host key is checked separately).
    let jump = Sshd::start();
    let target = Sshd::start();
    let mut opts = jump.options();
    std::fs::write(
        &opts.ferry_known_hosts,
        format!("{}{}", jump.known_hosts_line(), target.known_hosts_line()),
    )
    .unwrap();
    // The target authorizes the same client key as the jump host.
    std::fs::copy(jump.path("authorized_keys"), target.path("authorized_keys")).unwrap();
    let config = jump.path("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host target\n  HostName 127.0.0.1\n  Port {}\n  User root\n  ProxyJump root@127.0.0.1:{}\n",
            target.port, jump.port
        ),
    )
    .unwrap();
    opts.ssh_config_file = Some(config);
    let session = SshSession::connect(&Target::host("target"), &opts)
        .await
        .unwrap();
    assert_eq!(
        session.info().via.as_deref(),
        Some(format!("root@127.0.0.1:{}", jump.port).as_str())
    );
    assert_eq!(whoami(&session).await, "root");

    // Same through sshOptions, which override the config (here: -J given, config empty).
    let mut opts2 = opts.clone();
    opts2.ssh_config_file = None;
    opts2.ssh_options = vec!["-J".into(), format!("root@127.0.0.1:{}", jump.port)];
    let session2 = SshSession::connect(&target.target(), &opts2).await.unwrap();
    assert!(session2.info().via.is_some());
    assert_eq!(whoami(&session2).await, "root");
}
