//! The check that `docs/settings.md` lists every environment variable a binary reads: the `env` of
//! each of its flags (from its clap `Command`), the old spellings it still reads, the variables its
//! code reads by name (a scan of the source) and those its libraries read. Each binary's unit tests
//! call [`assert_documented`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The list of settings, from the workspace root.
pub const SETTINGS: &str = "docs/settings.md";

/// Variables the libraries both binaries link read themselves: the log filter (tracing-subscriber),
/// the CA bundle (rustls-native-certs, through the platform verifier), the HDFS user (hdfs-native).
pub const LIBRARY_VARIABLES: &[&str] = &["RUST_LOG", "SSL_CERT_FILE", "HADOOP_USER_NAME"];

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails unless [`SETTINGS`] names each variable `command` reads (an argument's `env`, in any
/// subcommand), each `old` spelling, each variable read by name in the code under `sources`
/// (directories from the workspace root, see [`source_variables`]), and each of `libraries`, as
/// `` `NAME` ``.
#[cfg(feature = "durations")]
pub fn assert_documented(
    command: &clap::Command,
    old: &[crate::cli::durations::OldSpelling],
    sources: &[&str],
    libraries: &[&str],
) {
    let mut names: BTreeSet<String> = old.iter().filter_map(|o| o.old_env()).collect();
    let mut commands = vec![command];
    while let Some(command) = commands.pop() {
        names.extend(
            command
                .get_arguments()
                .filter_map(|arg| arg.get_env()?.to_str().map(String::from)),
        );
        commands.extend(command.get_subcommands());
    }
    names.extend(source_variables(sources));
    names.extend(libraries.iter().map(|name| name.to_string()));
    let doc = std::fs::read_to_string(workspace().join(SETTINGS)).expect("read the settings");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "{SETTINGS} does not name {missing:?} (as `NAME`): add a row for each to its table"
    );
}

/// The variables the code under `dirs` (from the workspace root) reads by name: the string a call
/// of `var`, `var_os` or `either` (`std::env`'s, and the closures that wrap them) is given, or the
/// `const NAME: &str = "…"` it names, in the files that call `std::env::var` or `var_os`. Test code
/// is skipped: `tests.rs`, `testing`, `fixtures.rs`, what follows a line `#[cfg(test)]`, and
/// comments.
pub fn source_variables(dirs: &[&str]) -> BTreeSet<String> {
    let mut code = Vec::new();
    for dir in dirs {
        collect_code(&workspace().join(dir), &mut code);
    }
    let constants: BTreeMap<&str, &str> = code.iter().flat_map(|c| constants(c)).collect();
    let mut names = BTreeSet::new();
    for code in &code {
        for argument in code_arguments(code) {
            match argument.strip_prefix('"') {
                Some(literal) => names.insert(literal.trim_end_matches('"').to_string()),
                None => match constants.get(argument.rsplit("::").next().unwrap_or("")) {
                    Some(value) => names.insert(value.to_string()),
                    None => false,
                },
            };
        }
    }
    names
}

fn collect_code(dir: &Path, code: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if matches!(name, "tests.rs" | "testing" | "testing.rs" | "fixtures.rs") {
            continue;
        }
        if path.is_dir() {
            collect_code(&path, code);
        } else if name.ends_with(".rs") {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            let lines = text
                .lines()
                .take_while(|line| line.trim() != "#[cfg(test)]")
                .filter(|line| !line.trim_start().starts_with("//"));
            let lines = lines.collect::<Vec<_>>().join("\n");
            // Only files that read this process's environment: elsewhere `var` may read a pod spec's.
            if lines.contains("env::var") {
                code.push(lines);
            }
        }
    }
}

/// `NAME` → `"VALUE"` of each `const NAME: &str = "VALUE";`.
fn constants(code: &str) -> Vec<(&str, &str)> {
    code.lines()
        .filter_map(|line| {
            let rest = line.split("const ").nth(1)?;
            let (name, rest) = rest.split_once(": &str = \"")?;
            Some((name.trim(), rest.strip_suffix("\";")?))
        })
        .collect()
}

/// The arguments of each call of `var(`, `var_os(` or `either(`: string literals (with their
/// quotes) and paths.
fn code_arguments(code: &str) -> Vec<&str> {
    let mut arguments = Vec::new();
    for callee in ["var(", "var_os(", "either("] {
        for (at, _) in code.match_indices(callee) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[at + callee.len()..];
            let Some(end) = rest.find(')') else { continue };
            arguments.extend(
                rest[..end]
                    .split(',')
                    .map(|a| a.trim().trim_start_matches('&'))
                    .filter(|a| a.starts_with('"') || is_constant(a)),
            );
        }
    }
    arguments
}

/// A path to a constant: `ENV`, `crate::egress::ENV`.
fn is_constant(path: &str) -> bool {
    let name = path.rsplit("::").next().unwrap_or("");
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_name_literals_and_constants() {
        let code = "pub const ENV: &str = \"MLOPS_X\";\n\
            let a = std::env::var(\"ONE\");\n\
            let b = env::var_os(crate::egress::ENV);\n\
            let c = either(\"TWO\", \"THREE\");\n\
            let d = var(name); let e = covar(\"NOT\");";
        assert_eq!(constants(code), [("ENV", "MLOPS_X")]);
        assert_eq!(
            code_arguments(code),
            ["\"ONE\"", "crate::egress::ENV", "\"TWO\"", "\"THREE\""]
        );
    }

    #[test]
    fn the_stores_read_their_variables_by_name() {
        let names = source_variables(&["model-store/src"]);
        for name in [
            "MLOPS_EGRESS_ONLY",
            "AWS_ACCESS_KEY_ID",
            "AWS_ENDPOINT",
            "REGISTRY_AUTH_FILE",
        ] {
            assert!(names.contains(name), "{name} not in {names:?}");
        }
    }
}
