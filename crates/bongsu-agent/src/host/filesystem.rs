//! The filesystem collector: mounts from `/proc/1/mounts` (or `/proc/mounts`), sizes by
//! `statvfs`, with node_exporter's default ignore lists.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex::Regex;

use crate::metrics::Metrics;
use crate::paths::{read_to_string, HostPaths};
use crate::Result;

/// One line of a mounts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub(crate) device: String,
    pub(crate) mount_point: String,
    pub(crate) fs_type: String,
    pub(crate) options: String,
}

impl MountEntry {
    pub(crate) fn read_only(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }
}

/// Undoes the kernel's octal escapes (`\040` for a space) in mounts fields.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = u32::from(oct[0] - b'0') * 64
                    + u32::from(oct[1] - b'0') * 8
                    + u32::from(oct[2] - b'0');
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            Some(MountEntry {
                device: unescape(f[0]),
                mount_point: unescape(f[1]),
                fs_type: f[2].to_owned(),
                options: f[3].to_owned(),
            })
        })
        .collect()
}

pub(crate) fn read_mounts(paths: &HostPaths) -> Result<Vec<MountEntry>> {
    let text = match read_to_string(&paths.proc("1/mounts")) {
        Ok(t) => t,
        Err(_) => read_to_string(&paths.proc("mounts"))?,
    };
    Ok(parse_mounts(&text))
}

/// Mount points whose `statvfs` did not return within the timeout (a hung network file
/// system); they are skipped, reported as device errors, until the call comes back.
pub(crate) type StuckMounts = Arc<Mutex<HashSet<String>>>;

/// node_exporter's `--collector.filesystem.mount-timeout` default.
pub(crate) const MOUNT_TIMEOUT: Duration = Duration::from_secs(5);

fn lock(s: &StuckMounts) -> std::sync::MutexGuard<'_, HashSet<String>> {
    // The set stays consistent even if a holder panicked: every update is one insert or remove.
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `statvfs` on a helper thread, waiting at most `timeout`, so one hung mount cannot stall
/// the whole pass.
fn statvfs_bounded(
    target: PathBuf,
    mount_point: &str,
    stuck: &StuckMounts,
    timeout: Duration,
) -> Option<rustix::fs::StatVfs> {
    if lock(stuck).contains(mount_point) {
        return None;
    }
    let (tx, rx) = sync_channel(1);
    let (stuck2, mp) = (stuck.clone(), mount_point.to_owned());
    let spawned = std::thread::Builder::new()
        .name("bongsu-statfs".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = tx.send(rustix::fs::statvfs(&target).ok());
            // It came back: the mount may be looked at again.
            lock(&stuck2).remove(&mp);
        });
    if spawned.is_err() {
        return None;
    }
    match rx.recv_timeout(timeout) {
        Ok(st) => st,
        Err(RecvTimeoutError::Timeout) => {
            let mut s = lock(stuck);
            s.insert(mount_point.to_owned());
            // The call may have returned between the timeout and taking the lock.
            if let Ok(st) = rx.try_recv() {
                s.remove(mount_point);
                return st;
            }
            None
        }
        Err(RecvTimeoutError::Disconnected) => None,
    }
}

pub(crate) fn collect(
    paths: &HostPaths,
    mount_exclude: &Regex,
    fs_type_exclude: &Regex,
    stuck: &StuckMounts,
    out: &mut Metrics,
) -> Result<()> {
    let mut seen = HashSet::new();
    for m in read_mounts(paths)? {
        if mount_exclude.is_match(&m.mount_point) || fs_type_exclude.is_match(&m.fs_type) {
            continue;
        }
        if !seen.insert((m.device.clone(), m.mount_point.clone(), m.fs_type.clone())) {
            continue;
        }
        let labels = [
            ("device", m.device.as_str()),
            ("fstype", m.fs_type.as_str()),
            ("mountpoint", m.mount_point.as_str()),
        ];
        let target = paths.root(&m.mount_point);
        let st = statvfs_bounded(target, &m.mount_point, stuck, MOUNT_TIMEOUT);
        out.gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
            &labels,
            if st.is_some() { 0.0 } else { 1.0 },
        );
        out.gauge(
            "node_filesystem_readonly",
            "Filesystem read-only status.",
            &labels,
            if m.read_only() { 1.0 } else { 0.0 },
        );
        let Some(st) = st else { continue };
        let bs = st.f_frsize as f64;
        out.gauge(
            "node_filesystem_size_bytes",
            "Filesystem size in bytes.",
            &labels,
            st.f_blocks as f64 * bs,
        );
        out.gauge(
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
            &labels,
            st.f_bfree as f64 * bs,
        );
        out.gauge(
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            &labels,
            st.f_bavail as f64 * bs,
        );
        out.gauge(
            "node_filesystem_files",
            "Filesystem total file nodes.",
            &labels,
            st.f_files as f64,
        );
        out.gauge(
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
            &labels,
            st.f_ffree as f64,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::defaults;

    #[test]
    fn parses_and_unescapes() {
        let m = parse_mounts(
            "/dev/sda1 / ext4 rw,relatime 0 0\n/dev/sdb1 /mnt/my\\040disk xfs ro,noatime 0 0\nshort\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mount_point, "/mnt/my disk");
        assert!(m[1].read_only());
        assert!(!m[0].read_only());
    }

    #[test]
    fn stuck_mounts_are_skipped_until_they_recover() {
        let stuck: StuckMounts = Arc::default();
        let d = tempfile::tempdir().unwrap();
        let st = statvfs_bounded(d.path().to_path_buf(), "/x", &stuck, MOUNT_TIMEOUT);
        assert!(st.is_some_and(|s| s.f_blocks > 0));
        stuck.lock().unwrap().insert("/x".into());
        assert!(statvfs_bounded(d.path().to_path_buf(), "/x", &stuck, MOUNT_TIMEOUT).is_none());
        assert!(statvfs_bounded(d.path().join("missing"), "/y", &stuck, MOUNT_TIMEOUT).is_none());
        assert!(
            !stuck.lock().unwrap().contains("/y"),
            "an error is not a hang"
        );
    }

    #[test]
    fn default_ignore_lists_match_node_exporter() {
        let mp = Regex::new(defaults::MOUNT_POINTS_EXCLUDE).unwrap();
        let ft = Regex::new(defaults::FS_TYPES_EXCLUDE).unwrap();
        for p in [
            "/proc",
            "/sys/fs/cgroup",
            "/dev",
            "/dev/shm",
            "/run/credentials/x",
            "/var/lib/docker/overlay2",
        ] {
            assert!(mp.is_match(p), "{p}");
        }
        for p in ["/", "/home", "/run", "/var/lib/docker", "/devices"] {
            assert!(!mp.is_match(p), "{p}");
        }
        for t in ["proc", "sysfs", "cgroup2", "overlay", "tracefs", "squashfs"] {
            assert!(ft.is_match(t), "{t}");
        }
        for t in ["ext4", "xfs", "tmpfs", "btrfs", "nfs4"] {
            assert!(!ft.is_match(t), "{t}");
        }
    }
}
