//! Quoting for the remote POSIX shell, and privilege escalation (`sudo -H --` by default).
//!
//! Layer: `ssh`, pure. SSH sends one command string that the remote user's shell parses, so every word ferry
//! builds is quoted here. A sudo password never appears on a command line: sudo is run with `-S` and a
//! recognisable prompt, and the password is written to stdin only when that prompt shows up on stderr.

/// The prompt ferry asks sudo to print; seeing it on stderr means "send the password now".
pub const SUDO_PROMPT_MARKER: &str = "[ferry-sudo-password-prompt]";

/// Printed on stderr by the escalated shell before the command runs (when a password may be sent): from then
/// on stdin belongs to the command, so a deferred EOF can be sent and no password is ever written.
pub const SUDO_STARTED_MARKER: &str = "[ferry-sudo-started]";

/// Quotes one word for a POSIX shell: unchanged if it only has safe characters, else single-quoted.
pub fn quote_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Quotes every word and joins them with spaces: the remote shell will see exactly these words.
pub fn quote_command<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote_word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How to run commands as root on a host that ferry reaches as a non-root `targetUser`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// NixOps `privilegeEscalationCommand`; default `["sudo", "-H", "--"]`.
    pub command: Vec<String>,
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            command: vec!["sudo".into(), "-H".into(), "--".into()],
        }
    }
}

impl Escalation {
    /// The command line that runs the shell command `script` as root. With `with_password`, and when the
    /// escalation command is sudo, sudo reads the password from stdin (`-S`) after printing
    /// [`SUDO_PROMPT_MARKER`] on stderr.
    pub fn wrap(&self, script: &str, with_password: bool) -> String {
        let mut words: Vec<String> = Vec::with_capacity(self.command.len() + 5);
        for (i, w) in self.command.iter().enumerate() {
            words.push(w.clone());
            if i == 0 && with_password && self.is_sudo() {
                words.push("-S".into());
                words.push("-p".into());
                words.push(SUDO_PROMPT_MARKER.into());
            }
        }
        let script = if with_password && self.is_sudo() {
            format!("printf '%s\\n' '{SUDO_STARTED_MARKER}' >&2; {script}")
        } else {
            script.to_string()
        };
        words.extend(["sh".to_string(), "-c".to_string(), script]);
        quote_command(&words)
    }

    /// Whether the escalation command is sudo (the only one whose password prompt ferry can answer).
    pub fn is_sudo(&self) -> bool {
        self.command
            .first()
            .is_some_and(|c| c == "sudo" || c.ends_with("/sudo"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_word("abc-1.2/x"), "abc-1.2/x");
        assert_eq!(quote_word(""), "''");
        assert_eq!(quote_word("a b"), "'a b'");
        assert_eq!(quote_word("it's"), r"'it'\''s'");
        assert_eq!(quote_word("$HOME;rm"), "'$HOME;rm'");
        assert_eq!(quote_command(&["echo", "a b", "*"]), "echo 'a b' '*'");
    }

    #[test]
    fn sudo_wrap() {
        let e = Escalation::default();
        assert_eq!(e.wrap("id -u", false), "sudo -H -- sh -c 'id -u'");
        assert_eq!(
            e.wrap("id -u", true),
            r#"sudo -S -p '[ferry-sudo-password-prompt]' -H -- sh -c 'printf '\''%s\n'\'' '\''[ferry-sudo-started]'\'' >&2; id -u'"#
        );
        let doas = Escalation {
            command: vec!["doas".into()],
        };
        assert_eq!(doas.wrap("true", true), "doas sh -c true");
    }
}
