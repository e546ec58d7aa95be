//! Small state files (tailer checkpoints, the journal cursor) read whole and replaced
//! atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Reads `path` whole and decodes it; a missing file is `Ok(None)`, a file that does not decode
/// is [`Error::Checkpoint`] naming it.
pub(crate) fn load<T>(
    path: &Path,
    decode: impl FnOnce(&[u8]) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => decode(&b).map(Some).map_err(|detail| Error::Checkpoint {
            path: path.to_path_buf(),
            detail,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::read(path, e)),
    }
}

/// Writes `bytes` to `<path>.tmp`, syncs it, renames it over `path` and syncs the directory,
/// so a crash leaves either the old or the new file, never a torn one.
pub(crate) fn store(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::write(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::write(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::write(path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all().map_err(|e| Error::write(dir, e))?;
    }
    Ok(())
}
