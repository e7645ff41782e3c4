//! A small tmpfs mounted over a directory, for tests of a disk that fills up: sized,
//! resized, filled on purpose, and unmounted when dropped.
//!
//! Owns: the mount and the filler files in it. Never: touches anything outside its
//! directory. Mounting needs root (`mount(8)`); the end-to-end tests run as root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What [`Tmpfs::fill`] writes at a time.
const FILL_CHUNK_BYTES: usize = 64 * 1024;
/// Name of the files [`Tmpfs::fill`] writes (`.fill-0`, `.fill-1`, …).
const FILL_PREFIX: &str = ".fill-";

/// A tmpfs mounted over a directory until dropped. Declare it after whatever removes the
/// directory's parent (a `Testnet`, a `TempDir`) so that it is dropped, and unmounted, first.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` over `dir` (created if missing). What `dir` held is copied
    /// into the tmpfs, so a node's data dir keeps the store `cairn init` wrote.
    pub fn mount(dir: &Path, bytes: u64) -> Result<Tmpfs, String> {
        check_size(bytes)?;
        let staged = dir.with_extension("before-tmpfs");
        let had_contents = dir.exists();
        if had_contents {
            std::fs::rename(dir, &staged).map_err(|e| {
                format!("cannot move {} aside to mount a tmpfs: {e}", dir.display())
            })?;
        }
        let mounted = std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))
            .and_then(|()| {
                run(Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                    .arg(dir))
                .map_err(|e| {
                    format!(
                        "cannot mount a {bytes}-byte tmpfs on {}: {e} (mounting needs root)",
                        dir.display()
                    )
                })
            });
        // Puts the directory back as it was.
        let restore = || {
            if had_contents {
                let _ = std::fs::remove_dir(dir);
                let _ = std::fs::rename(&staged, dir);
            }
        };
        if let Err(e) = mounted {
            restore();
            return Err(e);
        }
        let tmpfs = Tmpfs {
            dir: dir.to_owned(),
        };
        if had_contents {
            let mut from = staged.clone().into_os_string();
            from.push("/.");
            if let Err(e) = run(Command::new("cp").arg("-a").arg(&from).arg(dir)) {
                drop(tmpfs);
                restore();
                return Err(format!(
                    "cannot copy {} into the tmpfs on {} (is it too small?): {e}",
                    staged.display(),
                    dir.display()
                ));
            }
            std::fs::remove_dir_all(&staged)
                .map_err(|e| format!("cannot remove {}: {e}", staged.display()))?;
        }
        Ok(tmpfs)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Changes the size limit (`mount -o remount,size=N`); it cannot go below what is used.
    pub fn resize(&self, bytes: u64) -> Result<(), String> {
        check_size(bytes)?;
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.dir))
        .map_err(|e| {
            format!(
                "cannot resize the tmpfs on {} to {bytes} bytes: {e}",
                self.dir.display()
            )
        })
    }

    /// The size limit in bytes.
    pub fn size(&self) -> u64 {
        self.statvfs().0
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        let (size, free) = self.statvfs();
        size - free
    }

    /// Bytes left.
    pub fn free(&self) -> u64 {
        self.statvfs().1
    }

    /// Writes a filler file until at most `leave_bytes` are left (or the disk is full, if
    /// someone else writes at the same time). Returns the file, which [`Tmpfs::unfill`]
    /// removes.
    pub fn fill(&self, leave_bytes: u64) -> Result<PathBuf, String> {
        let path = (0..)
            .map(|i| self.dir.join(format!("{FILL_PREFIX}{i}")))
            .find(|p| !p.exists())
            .expect("some filler name is free");
        let mut file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let chunk = vec![0xA5u8; FILL_CHUNK_BYTES];
        loop {
            let free = self.free();
            if free <= leave_bytes {
                break;
            }
            let n = (free - leave_bytes).min(FILL_CHUNK_BYTES as u64) as usize;
            match file.write_all(&chunk[..n]) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(format!("cannot write {}: {e}", path.display())),
            }
            // tmpfs counts whole pages: below one, another write would not shrink `free`.
            if n < page_bytes() {
                break;
            }
        }
        Ok(path)
    }

    /// Removes every filler file [`Tmpfs::fill`] wrote.
    pub fn unfill(&self) -> Result<(), String> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(FILL_PREFIX) {
                std::fs::remove_file(entry.path())
                    .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
            }
        }
        Ok(())
    }

    /// (size, bytes available), in bytes.
    fn statvfs(&self) -> (u64, u64) {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes())
            .expect("a path has no NUL byte");
        // SAFETY: statvfs(3) writes into the zeroed struct it is given; `path` is a valid
        // NUL-terminated string that outlives the call.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        assert_eq!(
            rc,
            0,
            "statvfs {}: {}",
            self.dir.display(),
            std::io::Error::last_os_error()
        );
        let frsize = st.f_frsize as u64;
        (st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize)
    }
}

impl Drop for Tmpfs {
    /// Unmounts, lazily if a process still has files open in it (a node being killed).
    fn drop(&mut self) {
        if run(Command::new("umount").arg(&self.dir)).is_err() {
            let _ = run(Command::new("umount").arg("-l").arg(&self.dir));
        }
    }
}

/// Whether this process may mount (is root); if not, says so on stderr, for a test that
/// needs a tmpfs to skip itself.
pub fn can_mount() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: mounting a tmpfs needs root");
    }
    root
}

/// tmpfs reads a size of 0 as "no limit", and one past `i64::MAX` wraps round to it.
fn check_size(bytes: u64) -> Result<(), String> {
    if bytes == 0 || bytes > i64::MAX as u64 {
        return Err(format!(
            "a tmpfs of {bytes} bytes would have no size limit; give 1 to {} bytes",
            i64::MAX
        ));
    }
    Ok(())
}

fn page_bytes() -> usize {
    // SAFETY: sysconf(3) with a valid name has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// Runs a command to completion: `Err` with its stderr unless it succeeded.
fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}",
            command.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn mounted(dir: &Path) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
        let dir = dir.to_str().expect("utf-8 path");
        mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(dir) && l.starts_with("tmpfs "))
    }

    #[test]
    fn a_tmpfs_keeps_what_the_directory_held_resizes_fills_and_unmounts_when_dropped() {
        if !can_mount() {
            return;
        }
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("kept"), b"block zero").unwrap();

        let tmpfs = Tmpfs::mount(&dir, 4 * MIB).expect("mount");
        assert!(mounted(&dir));
        assert_eq!(std::fs::read(dir.join("kept")).unwrap(), b"block zero");
        assert!(!dir.with_extension("before-tmpfs").exists());
        assert_eq!(tmpfs.size(), 4 * MIB);
        assert_eq!(tmpfs.used() + tmpfs.free(), tmpfs.size());

        tmpfs.fill(MIB).expect("fill");
        assert!(
            (MIB - 64 * 1024..=MIB).contains(&tmpfs.free()),
            "{} bytes free",
            tmpfs.free()
        );
        tmpfs.fill(0).expect("fill the rest");
        assert_eq!(tmpfs.free(), 0);
        let err = std::fs::write(dir.join("more"), vec![1u8; 8192]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");

        tmpfs.resize(8 * MIB).expect("resize");
        assert_eq!(tmpfs.size(), 8 * MIB);
        assert!(tmpfs.free() >= 4 * MIB - 64 * 1024);
        // A tmpfs cannot shrink below what it holds.
        assert!(tmpfs.resize(MIB).is_err());
        tmpfs.unfill().expect("unfill");
        assert!(tmpfs.used() < MIB, "{} bytes used", tmpfs.used());
        assert_eq!(std::fs::read(dir.join("kept")).unwrap(), b"block zero");

        drop(tmpfs);
        assert!(!mounted(&dir));
    }

    #[test]
    fn a_tmpfs_too_small_for_what_the_directory_held_is_not_mounted_and_the_directory_kept() {
        if !can_mount() {
            return;
        }
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("big"), vec![7u8; 2 * MIB as usize]).unwrap();
        let err = Tmpfs::mount(&dir, MIB).unwrap_err();
        assert!(err.contains("too small"), "{err}");
        assert!(!mounted(&dir));
        assert_eq!(std::fs::metadata(dir.join("big")).unwrap().len(), 2 * MIB);
        assert!(!dir.with_extension("before-tmpfs").exists());
    }

    #[test]
    fn a_busy_tmpfs_is_unmounted_lazily() {
        if !can_mount() {
            return;
        }
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("busy");
        let tmpfs = Tmpfs::mount(&dir, MIB).expect("mount");
        let open = std::fs::File::create(dir.join("open")).unwrap();
        drop(tmpfs);
        assert!(!mounted(&dir));
        drop(open);
    }

    #[test]
    fn a_size_that_tmpfs_reads_as_unlimited_is_refused_and_the_directory_left_as_it_was() {
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("kept"), b"x").unwrap();
        for bytes in [0, u64::MAX] {
            let err = Tmpfs::mount(&dir, bytes).unwrap_err();
            assert!(err.contains("no size limit"), "{err}");
        }
        assert!(!mounted(&dir));
        assert_eq!(std::fs::read(dir.join("kept")).unwrap(), b"x");
    }
}
