//! Configuration in layers: built-in defaults, then a file (`--config FILE` or
//! `TENANTCTL_CONFIG`), then `TENANTCTL_…` environment variables, then flags.
//!
//! The file is YAML (or JSON) mapping option names to values, e.g.
//! `table: tenants-prod`, `lease-ttl: 30s`, `region: [eu-west-1, us-east-1]`. Each key
//! is the option's long name; it fills the option's environment variable when that is
//! not set already, so clap applies the usual precedence. Unknown keys are refused, and
//! values are never printed (a file may name secrets' locations).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Every `TENANTCTL_…` variable an option of `command` (or its subcommands) reads.
pub fn known_variables(command: &clap::Command) -> BTreeSet<String> {
    let mut known = BTreeSet::new();
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            known.insert(env.to_string_lossy().into_owned());
        }
    }
    for sub in command.get_subcommands() {
        known.extend(known_variables(sub));
    }
    known
}

/// The config file named by `--config` in `args`, else by `TENANTCTL_CONFIG`.
pub fn config_path(args: &[OsString], env: Option<OsString>) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    env.filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The environment variables the file `text` sets: `(variable, value)` for each key,
/// or what is wrong with it.
pub fn variables_from(text: &str, known: &BTreeSet<String>) -> Result<BTreeMap<String, String>, String> {
    let doc: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| format!("is not valid YAML or JSON: {e}"))?;
    let map = match doc {
        serde_norway::Value::Mapping(map) => map,
        serde_norway::Value::Null => return Ok(BTreeMap::new()),
        _ => return Err("must be a mapping of option names to values, e.g. `table: tenants-prod`".into()),
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let key = key
            .as_str()
            .ok_or_else(|| "has a key that is not a string; use option names like `lease-ttl`".to_owned())?
            .to_owned();
        let variable = format!("TENANTCTL_{}", key.to_uppercase().replace(['-', '.'], "_"));
        if variable == "TENANTCTL_CONFIG" || !known.contains(&variable) {
            let names: Vec<String> = known
                .iter()
                .filter(|v| *v != "TENANTCTL_CONFIG")
                .map(|v| {
                    v.trim_start_matches("TENANTCTL_")
                        .to_lowercase()
                        .replace('_', "-")
                })
                .collect();
            return Err(format!(
                "has an unknown option {key:?}; known options: {}",
                names.join(", ")
            ));
        }
        let text = match value {
            serde_norway::Value::String(s) => s,
            serde_norway::Value::Number(n) => n.to_string(),
            serde_norway::Value::Bool(b) => b.to_string(),
            serde_norway::Value::Sequence(items) => items
                .iter()
                .map(|i| match i {
                    serde_norway::Value::String(s) => Ok(s.clone()),
                    serde_norway::Value::Number(n) => Ok(n.to_string()),
                    _ => Err(format!(
                        "option {key:?} lists something that is not a plain value"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(format!("option {key:?} must be a plain value or a list of them")),
        };
        out.insert(variable, text);
    }
    Ok(out)
}

/// Reads the config file (if one is named) and fills the environment variables it
/// sets that are not set already. Call before any thread starts.
pub fn apply(command: &clap::Command) -> Result<(), String> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some(path) = config_path(&args, std::env::var_os("TENANTCTL_CONFIG")) else {
        return Ok(());
    };
    let text = read(&path)?;
    let variables = variables_from(&text, &known_variables(command))
        .map_err(|e| format!("the config file {} {e}", path.display()))?;
    for (variable, value) in variables {
        if std::env::var_os(&variable).is_none() {
            // Single-threaded here: main calls this before the runtime starts.
            std::env::set_var(variable, value);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the config file {} ({e}); fix --config / TENANTCTL_CONFIG",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        [
            "TENANTCTL_TABLE",
            "TENANTCTL_LEASE_TTL",
            "TENANTCTL_WORKER_REGIONS",
            "TENANTCTL_CONFIG",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }

    #[test]
    fn keys_become_their_options_variables() {
        let vars = variables_from("table: tenants-prod\nlease-ttl: 30s\n", &known()).unwrap();
        assert_eq!(vars["TENANTCTL_TABLE"], "tenants-prod");
        assert_eq!(vars["TENANTCTL_LEASE_TTL"], "30s");
        let json = variables_from(r#"{"worker-regions": ["eu-west-1", "us-east-1"]}"#, &known()).unwrap();
        assert_eq!(json["TENANTCTL_WORKER_REGIONS"], "eu-west-1,us-east-1");
    }

    #[test]
    fn unknown_keys_and_shapes_are_refused_with_the_known_names() {
        let e = variables_from("tabel: x\n", &known()).unwrap_err();
        assert!(
            e.contains("\"tabel\"") && e.contains("table") && e.contains("lease-ttl"),
            "{e}"
        );
        assert!(
            !e.contains("config,"),
            "the config option cannot point to another file: {e}"
        );
        assert!(variables_from("- table\n", &known())
            .unwrap_err()
            .contains("mapping"));
        assert!(variables_from("table: {a: 1}\n", &known()).is_err());
        assert!(variables_from("", &known()).unwrap().is_empty());
    }

    #[test]
    fn the_path_comes_from_the_flag_then_the_environment() {
        let args: Vec<OsString> = ["tenantctl", "--config", "a.yaml", "tenant", "list"]
            .map(OsString::from)
            .into();
        assert_eq!(
            config_path(&args, Some("b.yaml".into())),
            Some(PathBuf::from("a.yaml"))
        );
        let args: Vec<OsString> = ["tenantctl", "--config=c.yaml"].map(OsString::from).into();
        assert_eq!(config_path(&args, None), Some(PathBuf::from("c.yaml")));
        let args: Vec<OsString> = ["tenantctl"].map(OsString::from).into();
        assert_eq!(
            config_path(&args, Some("b.yaml".into())),
            Some(PathBuf::from("b.yaml"))
        );
        assert_eq!(config_path(&args, None), None);
    }

    #[test]
    fn the_real_cli_declares_the_documented_options() {
        use clap::CommandFactory;
        let known = known_variables(&crate::cli::Cli::command());
        for v in [
            "TENANTCTL_TABLE",
            "TENANTCTL_SERVER",
            "TENANTCTL_LISTEN",
            "TENANTCTL_LEASE_TTL",
        ] {
            assert!(known.contains(v), "{v} missing from {known:?}");
        }
    }
}
