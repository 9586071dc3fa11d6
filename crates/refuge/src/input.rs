//! Reading input files.

use crate::usage;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Read and parse a JSON file (`-` for standard input). Errors name the file, line, column and
/// what was expected, and are usage errors (exit 2).
pub fn read_json<T: DeserializeOwned>(path: &Path, option: &str) -> anyhow::Result<T> {
    let (name, text) = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| usage(format!("{option} -: cannot read standard input: {e}")))?;
        ("<stdin>".to_owned(), s)
    } else {
        let s = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("{option} {}: {e}", path.display())))?;
        (path.display().to_string(), s)
    };
    serde_json::from_str(&text).map_err(|e| usage(format!("{name}: {e}")))
}

/// Create an empty owner-only temporary file next to `target`, for an atomic write-then-rename.
pub fn private_temp_beside(target: &Path) -> anyhow::Result<PathBuf> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let tmp = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&tmp)
        .map_err(|e| usage(format!("--out {}: {e}", target.display())))?;
    Ok(tmp)
}
