//! `predictor publish`: put a model file in a store (`s3://bucket/key`, `oci://registry/repository:tag`)
//! and say where it is and which file it is (URL + sha256); optionally write both into a Predictor
//! manifest in a Git checkout and commit, so a retrained model reaches the cluster through Git like code
//! does (the model's counterpart of `kustomize edit set image`).
//!
//! [`set_model`] is the pure edit of the manifest's text; [`publish`] and [`commit`] are the I/O.

use std::path::Path;
use std::process::Command;

use model_store::{StoreAccess, redact};

use crate::error::{Error, Result};
use crate::model::{ModelFile, sha256_hex};

/// Where a published model is and which file it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// What a Predictor's `spec.model.url` names: the same `s3://` URL, or the `oci://` artifact
    /// pinned by its manifest digest.
    pub url: String,
    pub sha256: String,
}

/// Uploads the model file `bytes` to `to` with `access` and says where it is. Refuses what is not a
/// model file of this program (a typo'd path must not reach a cluster).
pub async fn publish(
    bytes: Vec<u8>,
    to: &str,
    title: &str,
    access: &StoreAccess,
) -> Result<Published> {
    ModelFile::from_bytes(&bytes)?;
    let sha256 = sha256_hex(&bytes);
    let url = model_store::upload(bytes, to, title, access).await?;
    Ok(Published { url, sha256 })
}

/// `manifest` (a Predictor's YAML) with `spec.model.url` and `spec.model.sha256` set to `published`;
/// everything else (comments, order, quoting of other fields) kept byte for byte. Refuses a text with
/// no, or more than one, `model:` block holding both fields.
pub fn set_model(manifest: &str, published: &Published) -> Result<String, String> {
    let lines: Vec<&str> = manifest.split_inclusive('\n').collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let key_of = |line: &str| {
        let trimmed = line.trim_start();
        trimmed
            .split_once(':')
            .map(|(key, _)| key.trim_end().to_string())
    };
    let models: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| {
            key_of(line).as_deref() == Some("model")
                && line.trim_start()["model:".len()..].trim().is_empty()
        })
        .map(|(i, _)| i)
        .collect();
    let [model] = models.as_slice() else {
        return Err(format!(
            "expected one `model:` block (spec.model), found {}",
            models.len()
        ));
    };
    let parent = indent(lines[*model]);
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut child_indent = None;
    let mut set = (false, false);
    for (i, line) in lines.iter().enumerate().skip(model + 1) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let here = indent(line);
        if here <= parent {
            break;
        }
        let child = *child_indent.get_or_insert(here);
        if here != child {
            continue;
        }
        let newline = if line.ends_with('\n') { "\n" } else { "" };
        let pad = " ".repeat(here);
        match key_of(line).as_deref() {
            Some("url") => {
                out[i] = format!("{pad}url: {}{newline}", published.url);
                set.0 = true;
            }
            Some("sha256") => {
                out[i] = format!("{pad}sha256: {:?}{newline}", published.sha256);
                set.1 = true;
            }
            _ => {}
        }
    }
    match set {
        (true, true) => Ok(out.concat()),
        _ => Err("the `model:` block has no `url:` and `sha256:` to set".into()),
    }
}

/// Writes `published` into the Predictor manifest at `path` and commits that one file in its Git
/// checkout; the commit's message names the model. Returns the commit's id.
pub fn update_and_commit(path: &Path, published: &Published) -> Result<String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let updated = set_model(&text, published)
        .map_err(|reason| Error::Settings(format!("{}: {reason}", path.display())))?;
    if updated == text {
        return Err(Error::Settings(format!(
            "{} already names this model: nothing to commit",
            path.display()
        )));
    }
    std::fs::write(path, updated).map_err(|e| Error::io(path.display().to_string(), e))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = path.file_name().expect("a file was just written");
    let short = &published.sha256[..12];
    let message = format!(
        "model: {} (sha256 {short})\n\nspec.model.url: {}\nspec.model.sha256: {}\n",
        redact(&published.url),
        redact(&published.url),
        published.sha256
    );
    git(dir, &["add", "--"], file)?;
    git(dir, &["commit", "--quiet", "-m", &message, "--"], file)?;
    let head = Command::new("git")
        .current_dir(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .map_err(|e| Error::io("git", e))?;
    Ok(String::from_utf8_lossy(&head.stdout).trim().to_string())
}

/// Runs `git <args> <file>` in `dir`; its stderr is the error.
fn git(dir: &Path, args: &[&str], file: &std::ffi::OsStr) -> Result<()> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .arg(file)
        .output()
        .map_err(|e| Error::io("git (is it installed?)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "git {} failed in {}: {}",
            args[0],
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "4f2a9c5e8d7b6a1f0e3c2b1a9d8c7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d";

    fn published() -> Published {
        Published {
            url: "oci://10.77.0.1:5443/models/american@sha256:aa".into(),
            sha256: SHA.into(),
        }
    }

    #[test]
    fn sets_url_and_sha256_and_keeps_everything_else() {
        let manifest = "\
# The team's predictor.
apiVersion: mlops.example.com/v1alpha1
kind: Predictor
metadata:
  name: american   # keep me
spec:
  image: registry.local/american-predictor:0.2
  model:
    # Retrained weekly.
    url: http://model-store/models/v1.bin
    sha256: \"0000000000000000000000000000000000000000000000000000000000000000\"
    credentials:
      name: store-keys
  validation:
    data:
      url: http://model-store/data/test.csv
      sha256: \"1111111111111111111111111111111111111111111111111111111111111111\"
  port: 5008
";
        // The same file, byte for byte, but for the model's two lines.
        let expected = manifest
            .replace(
                "url: http://model-store/models/v1.bin",
                "url: oci://10.77.0.1:5443/models/american@sha256:aa",
            )
            .replace(
                "sha256: \"0000000000000000000000000000000000000000000000000000000000000000\"",
                &format!("sha256: \"{SHA}\""),
            );
        assert_ne!(expected, manifest);
        assert_eq!(set_model(manifest, &published()).unwrap(), expected);
    }

    #[test]
    fn refuses_manifests_without_exactly_one_model_block() {
        let none = "kind: Predictor\nspec:\n  image: x\n";
        assert!(
            set_model(none, &published())
                .unwrap_err()
                .contains("found 0")
        );
        let two = "spec:\n  model:\n    url: a\n    sha256: b\n---\nspec:\n  model:\n    url: c\n    sha256: d\n";
        assert!(
            set_model(two, &published())
                .unwrap_err()
                .contains("found 2")
        );
        let half = "spec:\n  model:\n    url: a\n  port: 5008\n";
        assert!(
            set_model(half, &published())
                .unwrap_err()
                .contains("no `url:` and `sha256:`")
        );
    }

    /// Why [`publish`] refused `bytes` for `url`.
    async fn refusal(bytes: Vec<u8>, url: &str) -> String {
        let err = publish(bytes, url, "m.bin", &StoreAccess::default()).await;
        err.unwrap_err().to_string()
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_model_file_and_other_schemes() {
        let err = refusal(b"not a model".to_vec(), "s3://models/m.bin").await;
        assert!(err.contains("not a predictor model file"), "{err}");
        let (bytes, _) = crate::testing::trained_model(
            crate::sample::SAMPLE_CSV.as_bytes(),
            "2026-11-27T00:00:00Z",
        );
        let err = refusal(bytes, "https://models.example.com/m.bin").await;
        assert!(err.contains("publish writes to s3://"), "{err}");
    }
}
