//! A Helm chart as a publishable archive: a chart directory packaged into a `.tgz`
//! the way `helm package` lays it out (`NAME/…`, `.helmignore` honoured), but byte for
//! byte reproducible (sorted entries, zero times and owners), so publishing the same
//! chart twice gives the same digest; or a `.tgz` made elsewhere, taken as-is.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ports::ChartArchive;

/// Why a chart could not be read or packaged.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("cannot read the chart at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Helm chart: {problem}")]
    NotAChart { path: PathBuf, problem: String },
}

#[derive(Deserialize)]
struct ChartYaml {
    name: String,
    version: String,
}

/// The chart at `path`: a chart directory (packaged here) or a packaged `.tgz`.
pub fn read_chart(path: &Path) -> Result<ChartArchive, ChartError> {
    let io = |source| ChartError::Io {
        path: path.to_owned(),
        source,
    };
    if std::fs::metadata(path).map_err(io)?.is_dir() {
        package_dir(path)
    } else {
        let bytes = std::fs::read(path).map_err(io)?;
        let meta = chart_yaml_in_archive(path, &bytes)?;
        Ok(ChartArchive {
            name: meta.name,
            chart_version: meta.version,
            bytes,
        })
    }
}

fn not_a_chart(path: &Path, problem: impl Into<String>) -> ChartError {
    ChartError::NotAChart {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

fn parse_chart_yaml(path: &Path, text: &str) -> Result<ChartYaml, ChartError> {
    let meta: ChartYaml = serde_norway::from_str(text)
        .map_err(|e| not_a_chart(path, format!("its Chart.yaml lacks a name or version: {e}")))?;
    if meta.name.is_empty() || meta.version.is_empty() {
        return Err(not_a_chart(path, "its Chart.yaml has an empty name or version"));
    }
    Ok(meta)
}

/// The `Chart.yaml` at the top of a packaged chart (`NAME/Chart.yaml`).
fn chart_yaml_in_archive(path: &Path, bytes: &[u8]) -> Result<ChartYaml, ChartError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(not_a_chart(
            path,
            "it is neither a directory nor a gzip archive; pass the chart directory or a .tgz from `helm package`",
        ));
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let entries = archive
        .entries()
        .map_err(|e| not_a_chart(path, format!("unreadable archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_a_chart(path, format!("unreadable archive: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| not_a_chart(path, format!("unreadable archive: {e}")))?
            .into_owned();
        let parts: Vec<_> = name.components().collect();
        if parts.len() == 2 && parts[1].as_os_str() == "Chart.yaml" {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| not_a_chart(path, format!("unreadable Chart.yaml: {e}")))?;
            return parse_chart_yaml(path, &text);
        }
    }
    Err(not_a_chart(path, "the archive holds no NAME/Chart.yaml"))
}

/// Packages the chart directory `dir`.
fn package_dir(dir: &Path) -> Result<ChartArchive, ChartError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ChartError::Io { path, source }
    };
    let chart_yaml = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).map_err(io(&chart_yaml))?;
    let meta = parse_chart_yaml(dir, &text)?;
    let ignore_file = dir.join(".helmignore");
    let ignore = match std::fs::read_to_string(&ignore_file) {
        Ok(text) => HelmIgnore::parse(&text).map_err(|problem| not_a_chart(dir, problem))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HelmIgnore::default(),
        Err(e) => return Err(io(&ignore_file)(e)),
    };
    let mut files = Vec::new();
    collect_files(dir, Path::new(""), &ignore, &mut files)?;
    files.sort();

    let gzip = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    for rel in &files {
        let full = dir.join(rel);
        let data = std::fs::read(&full).map_err(io(&full))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        let name = Path::new(&meta.name).join(rel);
        tar.append_data(&mut header, &name, data.as_slice())
            .map_err(io(&full))?;
    }
    let bytes = tar.into_inner().and_then(|gzip| gzip.finish()).map_err(io(dir))?;
    Ok(ChartArchive {
        name: meta.name,
        chart_version: meta.version,
        bytes,
    })
}

/// The files under `dir/rel` that `.helmignore` keeps, relative to the chart root.
fn collect_files(
    dir: &Path,
    rel: &Path,
    ignore: &HelmIgnore,
    out: &mut Vec<PathBuf>,
) -> Result<(), ChartError> {
    let here = dir.join(rel);
    let io = |source| ChartError::Io {
        path: here.clone(),
        source,
    };
    for entry in std::fs::read_dir(&here).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        let child = rel.join(entry.file_name());
        if kind.is_symlink() {
            return Err(not_a_chart(
                dir,
                format!(
                    "{} is a symbolic link; charts are packaged from plain files only",
                    child.display()
                ),
            ));
        }
        if ignore.ignores(&child, kind.is_dir()) {
            continue;
        }
        if kind.is_dir() {
            collect_files(dir, &child, ignore, out)?;
        } else {
            out.push(child);
        }
    }
    Ok(())
}

/// The `.helmignore` rules packaging honours: blank lines and `#` comments, globs with
/// `*` and `?` matched against a file's name (or, with a `/` inside, its path from the
/// chart root), and a trailing `/` for directories only. Negation (`!`) is refused
/// rather than misread.
#[derive(Debug, Default)]
struct HelmIgnore {
    rules: Vec<IgnoreRule>,
}

#[derive(Debug)]
struct IgnoreRule {
    pattern: String,
    dir_only: bool,
    whole_path: bool,
}

impl HelmIgnore {
    fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('!') {
                return Err(format!(
                    "its .helmignore negates a rule ({line}), which tenantctl does not package; \
                     list what to leave out without '!'"
                ));
            }
            let dir_only = line.ends_with('/');
            let pattern = line.trim_end_matches('/').trim_start_matches('/');
            rules.push(IgnoreRule {
                pattern: pattern.to_owned(),
                dir_only,
                whole_path: pattern.contains('/'),
            });
        }
        Ok(Self { rules })
    }

    fn ignores(&self, rel: &Path, is_dir: bool) -> bool {
        let path = rel.to_string_lossy().replace('\\', "/");
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.rules.iter().any(|rule| {
            (is_dir || !rule.dir_only) && glob(&rule.pattern, if rule.whole_path { &path } else { &name })
        })
    }
}

/// Whether `text` matches `pattern` (`*` any run of characters but '/', `?` one).
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => t.first().is_some_and(|&c| c != '/') && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("Chart.yaml"),
            "apiVersion: v2\nname: demo\nversion: 0.2.0\n",
        )
        .unwrap();
        std::fs::write(root.join(".helmignore"), "# comment\nci/\n*.bak\n").unwrap();
        std::fs::write(root.join("values.yaml"), "replicas: 1\n").unwrap();
        std::fs::create_dir_all(root.join("templates")).unwrap();
        std::fs::write(root.join("templates/deployment.yaml"), "kind: Deployment\n").unwrap();
        std::fs::write(root.join("templates/old.yaml.bak"), "stale\n").unwrap();
        std::fs::create_dir_all(root.join("ci")).unwrap();
        std::fs::write(root.join("ci/values.yaml"), "test: true\n").unwrap();
        dir
    }

    fn entry_names(bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_chart_directory_packages_like_helm_and_honours_helmignore() {
        let dir = chart_dir();
        let chart = read_chart(dir.path()).unwrap();
        assert_eq!(
            (chart.name.as_str(), chart.chart_version.as_str()),
            ("demo", "0.2.0")
        );
        assert_eq!(
            entry_names(&chart.bytes),
            [
                "demo/.helmignore",
                "demo/Chart.yaml",
                "demo/templates/deployment.yaml",
                "demo/values.yaml"
            ]
        );
    }

    #[test]
    fn packaging_the_same_chart_twice_gives_the_same_bytes() {
        let dir = chart_dir();
        let first = read_chart(dir.path()).unwrap();
        // Touching a file changes its time, not its content: the archive is the same.
        std::fs::write(dir.path().join("values.yaml"), "replicas: 1\n").unwrap();
        assert_eq!(read_chart(dir.path()).unwrap().bytes, first.bytes);
        std::fs::write(dir.path().join("values.yaml"), "replicas: 2\n").unwrap();
        assert_ne!(read_chart(dir.path()).unwrap().bytes, first.bytes);
    }

    #[test]
    fn a_packaged_chart_is_taken_as_is_and_named_by_its_chart_yaml() {
        let dir = chart_dir();
        let packaged = read_chart(dir.path()).unwrap();
        let file = dir.path().join("demo-0.2.0.tgz");
        std::fs::write(&file, &packaged.bytes).unwrap();
        assert_eq!(read_chart(&file).unwrap(), packaged);
    }

    #[test]
    fn what_is_not_a_chart_is_refused_with_what_to_pass() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chart.tgz");
        std::fs::write(&file, "plain text").unwrap();
        let err = read_chart(&file).unwrap_err().to_string();
        assert!(err.contains("neither a directory nor a gzip archive"), "{err}");
        let err = read_chart(dir.path()).unwrap_err().to_string();
        assert!(err.contains("Chart.yaml"), "{err}");
        std::fs::write(dir.path().join("Chart.yaml"), "name: x\nversion: 1.0.0\n").unwrap();
        std::fs::write(dir.path().join(".helmignore"), "!keep.txt\n").unwrap();
        let err = read_chart(dir.path()).unwrap_err().to_string();
        assert!(err.contains("negates a rule"), "{err}");
    }

    #[test]
    fn globs_match_names_and_stay_within_one_path_segment() {
        assert!(glob("*.bak", "a.bak"));
        assert!(glob("*~", "values.yaml~"));
        assert!(glob("fil?.txt", "file.txt"));
        assert!(!glob("*.bak", "a.bak.txt"));
        assert!(!glob("templates/*", "templates/x/y.yaml"));
        assert!(glob("templates/*.yaml", "templates/y.yaml"));
    }
}
