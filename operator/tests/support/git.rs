//! A team's Git repository on local disk, as ArgoCD's repo server reads it (`file://`): init on
//! `main`, commit files, all isolated from the machine's git configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::run_ok;

/// A Git work tree on `main`, fetched by ArgoCD through `file://`.
pub struct GitRepo {
    pub dir: PathBuf,
}

impl GitRepo {
    /// An empty repository at `dir` (created).
    pub fn init(dir: &Path) -> GitRepo {
        std::fs::create_dir_all(dir).expect("create git dir");
        let repo = GitRepo { dir: dir.into() };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    /// The URL ArgoCD fetches it from.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// Runs git in the repository, isolated from the machine's git configuration; returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&self.dir)
                .args([
                    "-c",
                    "user.name=gitops test",
                    "-c",
                    "user.email=gitops@test.invalid",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null"),
        )
        .trim()
        .to_string()
    }

    /// Writes (Some) or deletes (None) files, commits them all, returns the new commit's SHA.
    pub fn commit(&self, message: &str, files: &[(&str, Option<&str>)]) -> String {
        for (path, content) in files {
            let full = self.dir.join(path);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(full.parent().expect("file in a dir")).unwrap();
                    std::fs::write(&full, text).expect("write file");
                }
                None => std::fs::remove_file(&full).expect("remove file"),
            }
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}
