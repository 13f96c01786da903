//! The `argocd` CLI as one person uses it (the platform admin, a team): their own config file (login
//! context) and HOME, every run bounded. The argocd-server tier and the node tier's web UI scenario (where
//! the admin sets the teams' first passwords) both drive it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{wait_output, without_proxy};

/// How long one CLI command may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// How the CLI reaches argocd-server.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain gRPC on loopback (`--plaintext`; the server runs `--insecure`).
    Plaintext,
    /// TLS to the server's self-signed certificate (`--insecure`: not verified).
    TlsUnverified,
}

/// One person's `argocd` CLI.
pub struct Cli {
    binary: PathBuf,
    config: PathBuf,
    home: PathBuf,
    /// Only the platform admin has one (for `argocd admin …`); the teams reach only argocd-server.
    kubeconfig: Option<PathBuf>,
    pub user: String,
    transport: Transport,
}

impl Cli {
    pub fn new(
        bin: &Path,
        dir: &Path,
        user: &str,
        kubeconfig: Option<&Path>,
        transport: Transport,
    ) -> Cli {
        let home = dir.join("cli").join(user);
        std::fs::create_dir_all(&home).expect("create CLI home");
        Cli {
            binary: bin.join("argocd"),
            config: home.join("config"),
            home,
            kubeconfig: kubeconfig.map(Path::to_path_buf),
            user: user.into(),
            transport,
        }
    }

    /// Runs `argocd <args> --config <own config>`, bounded by [`CLI_TIMEOUT`].
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd.env("KUBECONFIG", kubeconfig);
        }
        without_proxy(&mut cmd);
        let child = cmd.spawn().expect("start the argocd CLI");
        wait_output(child, CLI_TIMEOUT, &format!("argocd {args:?}"))
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let (stdout, stderr) = texts(&out);
        assert!(
            out.status.success(),
            "{} ran `argocd {}`: {}\n{stdout}\n{stderr}",
            self.user,
            args.join(" "),
            out.status
        );
        stdout
    }

    /// Runs a command that must fail; returns what it said (stdout + stderr).
    pub fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let (stdout, stderr) = texts(&out);
        assert!(
            !out.status.success(),
            "{} ran `argocd {}` and it succeeded:\n{stdout}",
            self.user,
            args.join(" ")
        );
        eprintln!(
            "[argocd-server] {} refused `argocd {}`: {}",
            self.user,
            args[..3.min(args.len())].join(" "),
            stderr.trim()
        );
        format!("{stdout}{stderr}")
    }

    /// `argocd login` as this CLI's user.
    pub fn login(&self, server: &str, password: &str) -> String {
        self.ok(&self.login_args(server, &self.user, password))
    }

    /// The arguments of `argocd login` to `server` as `user`.
    pub fn login_args<'a>(
        &self,
        server: &'a str,
        user: &'a str,
        password: &'a str,
    ) -> Vec<&'a str> {
        let transport = match self.transport {
            Transport::Plaintext => "--plaintext",
            Transport::TlsUnverified => "--insecure",
        };
        vec![
            "login",
            server,
            "--username",
            user,
            "--password",
            password,
            transport,
        ]
    }

    /// Sets `account`'s password (the admin for a team, with the admin's own `current` password).
    pub fn set_password(&self, account: &str, current: &str, new: &str) {
        self.ok(&[
            "account",
            "update-password",
            "--account",
            account,
            "--current-password",
            current,
            "--new-password",
            new,
        ]);
    }

    /// The admin: logs in with the password argocd-server generated at its first start
    /// (`argocd admin initial-password`, read with this CLI's kubeconfig); returns it.
    pub fn login_with_initial_password(&self, server: &str) -> String {
        let initial = self.ok(&["admin", "initial-password", "-n", super::argocd::ARGOCD_NS]);
        let initial = initial.lines().next().unwrap_or("").trim().to_string();
        assert_eq!(
            initial.len(),
            16,
            "argocd-initial-admin-secret: {initial:?}"
        );
        let said = self.login(server, &initial);
        assert!(
            said.contains("'admin:login' logged in successfully"),
            "{said}"
        );
        initial
    }
}

pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of a `Key:   value` line of `argocd app get`'s text output.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}
