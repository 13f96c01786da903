//! Durations on both binaries' command lines and in their environment, written one way: humantime's
//! (`250ms`, `5s`, `2m`, `1h 30m`), which clap parses with [`humantime::parse_duration`].
//!
//! The spellings from before are still read for one release: a bare number whose unit was in the
//! name (`--model-timeout-seconds 120`, `SHUTDOWN_DELAY_MS=2000`), or a bare number of seconds
//! (`predictor probe --interval 1`). [`parse`] rewrites them into today's spelling before clap sees
//! the arguments, and returns one deprecation line for each, naming what to write instead, for the
//! binary to print or log. Each binary lists its old spellings once ([`OldSpelling`]).

use std::collections::HashSet;
use std::ffi::OsString;

/// The unit of an old spelling's bare number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
}

impl Unit {
    /// humantime's suffix for it.
    fn suffix(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Millis => "ms",
        }
    }

    /// How the old names ended: `--model-timeout-seconds`, `SHUTDOWN_DELAY_MS`.
    fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Millis => "ms",
        }
    }
}

/// One duration flag as it was written before humantime, read for one release.
#[derive(Clone, Copy, Debug)]
pub struct OldSpelling {
    /// The subcommand the flag belongs to (`serve`, `run`).
    pub subcommand: &'static str,
    /// The flag now, without its dashes (`model-timeout`).
    pub flag: &'static str,
    /// Its environment variable now (`MODEL_TIMEOUT`), if it has one.
    pub env: Option<&'static str>,
    /// Where the bare number was written.
    pub was: Was,
}

/// Where an old spelling's bare number was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Was {
    /// Under the flag's and variable's names with the unit appended (`--model-timeout-seconds 120`,
    /// `MODEL_TIMEOUT_SECONDS=120`).
    Suffixed(Unit),
    /// Under the flag's own name, in seconds (`--interval 1`).
    BareSeconds,
}

impl OldSpelling {
    /// A flag and variable that had the unit in their names.
    pub const fn suffixed(
        subcommand: &'static str,
        flag: &'static str,
        env: &'static str,
        unit: Unit,
    ) -> Self {
        Self {
            subcommand,
            flag,
            env: Some(env),
            was: Was::Suffixed(unit),
        }
    }

    /// A flag that kept its name and also took a bare number of seconds.
    pub const fn bare_seconds(subcommand: &'static str, flag: &'static str) -> Self {
        Self {
            subcommand,
            flag,
            env: None,
            was: Was::BareSeconds,
        }
    }

    fn unit(&self) -> Unit {
        match self.was {
            Was::Suffixed(unit) => unit,
            Was::BareSeconds => Unit::Seconds,
        }
    }

    /// The flag as it was: `--model-timeout-seconds`, `--interval`.
    pub fn old_flag(&self) -> String {
        match self.was {
            Was::Suffixed(unit) => format!("--{}-{}", self.flag, unit.name()),
            Was::BareSeconds => format!("--{}", self.flag),
        }
    }

    /// The variable as it was: `MODEL_TIMEOUT_SECONDS` (none for a flag that kept its name).
    pub fn old_env(&self) -> Option<String> {
        match self.was {
            Was::Suffixed(unit) => self
                .env
                .map(|env| format!("{env}_{}", unit.name().to_uppercase())),
            Was::BareSeconds => None,
        }
    }
}

/// The arguments in today's spelling, and a deprecation line for each old spelling read.
#[derive(Debug)]
struct Upgraded {
    args: Vec<OsString>,
    deprecations: Vec<String>,
}

/// `120` or `1.5`: what the old spellings took.
fn is_bare_number(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    [whole, fraction]
        .iter()
        .all(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Rewrites `old`'s spellings in `args` (the program name, then the subcommand, as clap gets them)
/// into today's. An old variable (read with `env`) that takes effect becomes a flag right after
/// the subcommand; the command line wins over it, as over any variable, and its new variable wins
/// too (silently when both say the same: how a caller serves binaries from before and after).
/// Errs when an old name holds something other than a number.
fn upgrade(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    old: &[OldSpelling],
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Upgraded, String> {
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let subcommand = args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    let old: Vec<&OldSpelling> = old.iter().filter(|o| o.subcommand == subcommand).collect();
    let mut deprecations = Vec::new();
    let given = upgrade_flags(&mut args, &old, &mut deprecations)?;
    let not_given = old.into_iter().filter(|o| !given.contains(o.flag));
    let from_env = upgrade_env(not_given, env, &mut deprecations)?;
    let after_subcommand = args.len().min(2);
    args.splice(after_subcommand..after_subcommand, from_env);
    Ok(Upgraded { args, deprecations })
}

/// The command line's part of [`upgrade`]: rewrites the old flags in place and returns the flags
/// given in either spelling.
fn upgrade_flags(
    args: &mut [OsString],
    old: &[&OldSpelling],
    deprecations: &mut Vec<String>,
) -> Result<HashSet<&'static str>, String> {
    let mut given = HashSet::new();
    let mut i = 2;
    while i < args.len() {
        let arg = args[i].to_str().unwrap_or_default();
        if arg == "--" {
            break;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (arg.to_string(), None),
        };
        let Some(spelling) = old
            .iter()
            .find(|o| name == o.old_flag() || name == format!("--{}", o.flag))
        else {
            i += 1;
            continue;
        };
        given.insert(spelling.flag);
        let value = match &inline {
            Some(value) => Some(value.clone()),
            None => args.get(i + 1).and_then(|v| v.to_str()).map(String::from),
        };
        let (flag, unit) = (format!("--{}", spelling.flag), spelling.unit());
        let value = match (spelling.was, value) {
            _ if name != spelling.old_flag() => None,
            (Was::Suffixed(_), Some(value)) if is_bare_number(&value) => Some(value),
            (Was::Suffixed(_), value) => {
                return Err(format!(
                    "{name} takes a number of {} ({:?} is not one); it is deprecated: write {flag} \
                     with a unit, e.g. {flag} 10{}",
                    unit.name(),
                    value.unwrap_or_default(),
                    unit.suffix()
                ));
            }
            // `0` is a humantime duration too.
            (Was::BareSeconds, Some(value))
                if is_bare_number(&value) && humantime::parse_duration(&value).is_err() =>
            {
                Some(value)
            }
            (Was::BareSeconds, _) => None,
        };
        let Some(value) = value else {
            i += 1;
            continue;
        };
        let now = format!("{value}{}", unit.suffix());
        deprecations.push(format!(
            "{name} {value} is deprecated and will be removed in the next release: write {flag} {now}"
        ));
        if inline.is_some() {
            args[i] = format!("{flag}={now}").into();
        } else {
            args[i] = flag.into();
            args[i + 1] = now.into();
            i += 1;
        }
        i += 1;
    }
    Ok(given)
}

/// The environment's part of [`upgrade`]: the flags that stand for the old variables that take
/// effect.
fn upgrade_env<'a>(
    old: impl Iterator<Item = &'a OldSpelling>,
    env: impl Fn(&str) -> Option<OsString>,
    deprecations: &mut Vec<String>,
) -> Result<Vec<OsString>, String> {
    let read = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut flags = Vec::new();
    for spelling in old {
        let (Some(old_env), Some(new_env)) = (spelling.old_env(), spelling.env) else {
            continue;
        };
        let Some(value) = read(&old_env) else {
            continue;
        };
        let unit = spelling.unit();
        let value = value.to_str().filter(|v| is_bare_number(v)).ok_or_else(|| {
            format!(
                "{old_env}={value:?} is not a number of {}; it is deprecated: set {new_env} with a \
                 unit, e.g. {new_env}=10{}",
                unit.name(),
                unit.suffix()
            )
        })?;
        let now = format!("{value}{}", unit.suffix());
        match read(new_env) {
            None => {
                deprecations.push(format!(
                    "{old_env} is deprecated and will be removed in the next release: set \
                     {new_env}={now}"
                ));
                flags.push(format!("--{}={now}", spelling.flag).into());
            }
            Some(set) => {
                let set = set.to_string_lossy();
                if humantime::parse_duration(&set).ok() != humantime::parse_duration(&now).ok() {
                    deprecations.push(format!(
                        "{old_env}={value} is ignored: {new_env}={set} is set ({old_env} is \
                         deprecated: remove it)"
                    ));
                }
            }
        }
    }
    Ok(flags)
}

/// [`upgrade`], then clap: the parsed command line and the deprecation lines to print or log. An
/// old spelling with a bad value is a clap error like any other. Debug builds also check that each
/// of `old` names a duration flag of `C` (as clap checks its own definitions), so every test that
/// parses does.
pub fn parse<C: clap::Parser>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    old: &[OldSpelling],
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<(C, Vec<String>), clap::Error> {
    debug_assert_eq!(stale(&C::command(), old), Vec::<String>::new());
    let upgraded = upgrade(args, old, env)
        .map_err(|message| C::command().error(clap::error::ErrorKind::ValueValidation, message))?;
    Ok((C::try_parse_from(upgraded.args)?, upgraded.deprecations))
}

/// [`parse`] on this process's arguments and environment.
pub fn parse_process<C: clap::Parser>(
    old: &[OldSpelling],
) -> Result<(C, Vec<String>), clap::Error> {
    parse(std::env::args_os(), old, |name| std::env::var_os(name))
}

/// The entries of `old` that name no flag (or not its variable) of their subcommand in `command`,
/// or whose flag's default is not a humantime duration.
fn stale(command: &clap::Command, old: &[OldSpelling]) -> Vec<String> {
    old.iter()
        .filter(|o| {
            let found = command
                .find_subcommand(o.subcommand)
                .and_then(|sub| sub.get_arguments().find(|a| a.get_long() == Some(o.flag)));
            !found.is_some_and(|arg| {
                arg.get_env().and_then(|e| e.to_str()) == o.env
                    && arg.get_default_values().iter().all(|default| {
                        humantime::parse_duration(&default.to_string_lossy()).is_ok()
                    })
            })
        })
        .map(|o| format!("{} {}", o.subcommand, o.old_flag()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[OldSpelling] = &[
        OldSpelling::suffixed("run", "model-timeout", "MODEL_TIMEOUT", Unit::Seconds),
        OldSpelling::suffixed("serve", "shutdown-delay", "SHUTDOWN_DELAY", Unit::Millis),
        OldSpelling::bare_seconds("probe", "interval"),
    ];

    fn upgrade_with(args: &[&str], env: &[(&str, &str)]) -> Result<Upgraded, String> {
        upgrade(args.iter().copied(), OLD, |name| {
            env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into())
        })
    }

    fn args(upgraded: &Upgraded) -> Vec<&str> {
        upgraded.args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn old_names_are_derived_from_the_new_ones_and_the_unit() {
        assert_eq!(OLD[0].old_flag(), "--model-timeout-seconds");
        assert_eq!(OLD[0].old_env().as_deref(), Some("MODEL_TIMEOUT_SECONDS"));
        assert_eq!(OLD[1].old_flag(), "--shutdown-delay-ms");
        assert_eq!(OLD[1].old_env().as_deref(), Some("SHUTDOWN_DELAY_MS"));
        assert_eq!(OLD[2].old_flag(), "--interval");
        assert_eq!(OLD[2].old_env(), None);
    }

    #[test]
    fn an_old_flag_becomes_the_new_one_with_its_unit_and_says_so() {
        let up =
            upgrade_with(&["bin", "run", "--model-timeout-seconds", "120", "-x"], &[]).unwrap();
        assert_eq!(args(&up), ["bin", "run", "--model-timeout", "120s", "-x"]);
        assert_eq!(
            up.deprecations,
            [
                "--model-timeout-seconds 120 is deprecated and will be removed in the next release: \
              write --model-timeout 120s"
            ]
        );
        let up = upgrade_with(&["bin", "serve", "--shutdown-delay-ms=2000"], &[]).unwrap();
        assert_eq!(args(&up), ["bin", "serve", "--shutdown-delay=2000ms"]);
        assert_eq!(up.deprecations.len(), 1);
    }

    #[test]
    fn an_old_variable_becomes_a_flag_after_the_subcommand_unless_something_newer_says_otherwise() {
        let old = [("SHUTDOWN_DELAY_MS", "2000")];
        let up = upgrade_with(&["bin", "serve", "--port", "1"], &old).unwrap();
        assert_eq!(
            args(&up),
            ["bin", "serve", "--shutdown-delay=2000ms", "--port", "1"]
        );
        assert_eq!(
            up.deprecations,
            [
                "SHUTDOWN_DELAY_MS is deprecated and will be removed in the next release: set \
              SHUTDOWN_DELAY=2000ms"
            ]
        );
        // The command line wins over any variable, in either spelling.
        let up = upgrade_with(&["bin", "serve", "--shutdown-delay=1s"], &old).unwrap();
        assert_eq!(args(&up), ["bin", "serve", "--shutdown-delay=1s"]);
        assert!(up.deprecations.is_empty(), "{:?}", up.deprecations);
        let up = upgrade_with(&["bin", "serve", "--shutdown-delay-ms", "1000"], &old).unwrap();
        assert_eq!(args(&up), ["bin", "serve", "--shutdown-delay", "1000ms"]);
        assert_eq!(up.deprecations.len(), 1, "the flag's, not the variable's");
        // The new variable wins: silently when it says the same, as both are set for binaries from
        // before and after.
        let both = [("SHUTDOWN_DELAY_MS", "2000"), ("SHUTDOWN_DELAY", "2s")];
        let up = upgrade_with(&["bin", "serve"], &both).unwrap();
        assert_eq!(args(&up), ["bin", "serve"]);
        assert!(up.deprecations.is_empty(), "{:?}", up.deprecations);
        let differ = [("SHUTDOWN_DELAY_MS", "2000"), ("SHUTDOWN_DELAY", "3s")];
        let up = upgrade_with(&["bin", "serve"], &differ).unwrap();
        assert_eq!(args(&up), ["bin", "serve"]);
        assert_eq!(
            up.deprecations,
            [
                "SHUTDOWN_DELAY_MS=2000 is ignored: SHUTDOWN_DELAY=3s is set (SHUTDOWN_DELAY_MS is \
              deprecated: remove it)"
            ]
        );
        // An empty variable is no variable.
        let up = upgrade_with(&["bin", "serve"], &[("SHUTDOWN_DELAY_MS", "")]).unwrap();
        assert_eq!(args(&up), ["bin", "serve"]);
    }

    #[test]
    fn only_the_subcommand_that_had_the_flag_is_rewritten() {
        let env = [
            ("SHUTDOWN_DELAY_MS", "2000"),
            ("MODEL_TIMEOUT_SECONDS", "9"),
        ];
        let given = [
            "bin",
            "drain",
            "--shutdown-delay-ms",
            "5",
            "--interval",
            "1",
        ];
        let up = upgrade_with(&given, &env).unwrap();
        assert_eq!(args(&up), given);
        assert!(up.deprecations.is_empty());
        let up = upgrade_with(&["bin"], &env).unwrap();
        assert_eq!(args(&up), ["bin"]);
        // Nor what follows `--`.
        let given = ["bin", "run", "--", "--model-timeout-seconds", "5"];
        assert_eq!(args(&upgrade_with(&given, &[]).unwrap()), given);
    }

    #[test]
    fn a_bare_number_of_seconds_gets_its_unit_and_a_duration_is_left_alone() {
        let up = upgrade_with(&["bin", "probe", "--interval", "1.5"], &[]).unwrap();
        assert_eq!(args(&up), ["bin", "probe", "--interval", "1.5s"]);
        assert_eq!(
            up.deprecations,
            [
                "--interval 1.5 is deprecated and will be removed in the next release: write \
              --interval 1.5s"
            ]
        );
        assert_eq!(
            args(&upgrade_with(&["bin", "probe", "--interval=3"], &[]).unwrap()),
            ["bin", "probe", "--interval=3s"]
        );
        for given in ["20ms", "1.5s", "2m", "0", "soon", "3h"] {
            let up = upgrade_with(&["bin", "probe", "--interval", given], &[]).unwrap();
            assert_eq!(args(&up), ["bin", "probe", "--interval", given]);
            assert!(up.deprecations.is_empty());
        }
    }

    #[test]
    fn an_old_name_with_anything_but_a_number_is_refused_naming_the_new_spelling() {
        for given in [
            &["bin", "run", "--model-timeout-seconds", "2m"][..],
            &["bin", "run", "--model-timeout-seconds=-1"],
            &["bin", "run", "--model-timeout-seconds"],
        ] {
            let error = upgrade_with(given, &[]).unwrap_err();
            assert!(
                error.starts_with("--model-timeout-seconds takes a number of seconds")
                    && error
                        .ends_with("write --model-timeout with a unit, e.g. --model-timeout 10s"),
                "{error}"
            );
        }
        let error = upgrade_with(&["bin", "serve"], &[("SHUTDOWN_DELAY_MS", "2s")]).unwrap_err();
        assert_eq!(
            error,
            "SHUTDOWN_DELAY_MS=\"2s\" is not a number of ms; it is deprecated: set SHUTDOWN_DELAY \
             with a unit, e.g. SHUTDOWN_DELAY=10ms"
        );
    }

    #[test]
    fn an_entry_that_names_no_duration_flag_of_its_subcommand_is_stale() {
        let serve = |env: &'static str, default: &'static str| {
            clap::Command::new("bin").subcommand(
                clap::Command::new("serve").arg(
                    clap::Arg::new("delay")
                        .long("shutdown-delay")
                        .env(env)
                        .default_value(default),
                ),
            )
        };
        assert!(stale(&serve("SHUTDOWN_DELAY", "0s"), &OLD[1..2]).is_empty());
        for command in [
            serve("SHUTDOWN_DELAY_MS", "0s"),
            serve("SHUTDOWN_DELAY", "2000"),
        ] {
            assert_eq!(stale(&command, &OLD[1..2]), ["serve --shutdown-delay-ms"]);
        }
        assert_eq!(
            stale(&serve("SHUTDOWN_DELAY", "0s"), &OLD[..1]),
            ["run --model-timeout-seconds"]
        );
    }

    #[test]
    fn today_spellings_are_humantime() {
        use std::time::Duration;
        let parse = humantime::parse_duration;
        assert_eq!(parse("20ms").unwrap(), Duration::from_millis(20));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse("3").is_err(), "a bare number needs a unit");
        assert!(parse("soon").is_err());
    }
}
