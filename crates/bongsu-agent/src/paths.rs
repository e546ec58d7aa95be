use std::path::{Path, PathBuf};

/// Where the agent finds the host's `/proc`, `/sys` and root file system (for `/etc` and
/// mount points). node_exporter's `--path.procfs`, `--path.sysfs`, `--path.rootfs`; tests
/// point these at fixture trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self::host()
    }
}

impl HostPaths {
    /// This machine: `/proc`, `/sys`, `/`.
    pub fn host() -> Self {
        Self {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
        }
    }

    /// A tree laid out like a host under `root`: `root/proc`, `root/sys`, `root/etc`…
    pub fn under(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref();
        Self {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            rootfs: root.to_path_buf(),
        }
    }

    pub(crate) fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }

    pub(crate) fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }

    pub(crate) fn root(&self, rel: &str) -> PathBuf {
        self.rootfs.join(rel.trim_start_matches('/'))
    }
}

/// Reads a whole small file (a /proc or /sys entry) as text.
pub(crate) fn read_to_string(path: &Path) -> crate::Result<String> {
    std::fs::read_to_string(path).map_err(|e| crate::Error::read(path, e))
}
