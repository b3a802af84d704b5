//! `[isolation] private-paths` and `private-tmp`: every process a slot runs
//! (a test, a pytest worker, their children) sees its own directory at the
//! named paths, and the originals are never written.
//!
//! At slot set-up each path is copied under the slot's temp dir (symlinks
//! stay symlinks, modes are kept; `/tmp` and `/var/tmp` start empty). Each
//! process the slot spawns enters a mount namespace of its own between fork
//! and exec, makes every mount private to it, and bind-mounts the slot's
//! copies over the originals. The namespace is either a plain mount
//! namespace (root with CAP_SYS_ADMIN) or an unprivileged user namespace
//! that maps the user's own uid and gid to themselves; which one works is
//! found once, at start-up, in a forked child.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Where `private-tmp` gives each slot an empty directory of its own.
const TMP_DIRS: [&str; 2] = ["/tmp", "/var/tmp"];

/// The kind of namespace a slot's processes enter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// A mount namespace alone: needs CAP_SYS_ADMIN (root, outside a
    /// container that dropped it).
    Mount,
    /// An unprivileged user namespace mapping the user's uid and gid to
    /// themselves, with a mount namespace it owns.
    User { uid: u32, gid: u32 },
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Namespace::Mount => write!(f, "a mount namespace per process (CAP_SYS_ADMIN)"),
            Namespace::User { uid, gid } => write!(
                f,
                "an unprivileged user namespace per process (uid {uid} and gid {gid} \
                 mapped to themselves; files of other users show as nobody)"
            ),
        }
    }
}

/// A step of entering the namespace, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    Unshare = 1,
    Setgroups,
    UidMap,
    GidMap,
    MakePrivate,
    Bind,
    Chdir,
}

impl Step {
    fn from_u8(n: u8) -> Option<Step> {
        [
            Step::Unshare,
            Step::Setgroups,
            Step::UidMap,
            Step::GidMap,
            Step::MakePrivate,
            Step::Bind,
            Step::Chdir,
        ]
        .into_iter()
        .find(|s| *s as u8 == n)
    }

    fn describe(self, namespace: Namespace) -> &'static str {
        match (self, namespace) {
            (Step::Unshare, Namespace::Mount) => "unshare(CLONE_NEWNS)",
            (Step::Unshare, Namespace::User { .. }) => "unshare(CLONE_NEWUSER | CLONE_NEWNS)",
            (Step::Setgroups, _) => "writing /proc/self/setgroups",
            (Step::UidMap, _) => "writing /proc/self/uid_map",
            (Step::GidMap, _) => "writing /proc/self/gid_map",
            (Step::MakePrivate, _) => "making the mounts private (mount MS_REC | MS_PRIVATE)",
            (Step::Bind, _) => "a bind mount",
            (Step::Chdir, _) => "changing into the working directory again",
        }
    }
}

/// One step that failed, with its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub step: Step,
    pub errno: i32,
}

/// Neither kind of namespace can be entered here: why each attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    pub attempts: Vec<(Namespace, Failure)>,
    /// What the kernel's settings say, read after the attempts failed.
    pub sysctls: Vec<(&'static str, String)>,
}

impl Unavailable {
    /// The settings that forbid unprivileged user namespaces, if one does.
    fn forbidding_sysctl(&self) -> Option<String> {
        let value = |name: &str| {
            self.sysctls
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.trim())
        };
        if value("kernel.unprivileged_userns_clone") == Some("0") {
            return Some("sysctl kernel.unprivileged_userns_clone = 0 forbids unprivileged user namespaces: set it to 1 (sysctl -w kernel.unprivileged_userns_clone=1)".into());
        }
        if value("user.max_user_namespaces") == Some("0") {
            return Some("sysctl user.max_user_namespaces = 0 forbids user namespaces: raise it (sysctl -w user.max_user_namespaces=15000)".into());
        }
        if value("kernel.apparmor_restrict_unprivileged_userns") == Some("1") {
            return Some("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1): set it to 0, or give partest an AppArmor profile that allows userns".into());
        }
        None
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[isolation] private-paths/private-tmp need a mount namespace, and none can be made here: "
        )?;
        let tries: Vec<String> = self
            .attempts
            .iter()
            .map(|(ns, fail)| {
                format!(
                    "{} failed: {}",
                    fail.step.describe(*ns),
                    std::io::Error::from_raw_os_error(fail.errno)
                )
            })
            .collect();
        write!(f, "{}. ", tries.join("; "))?;
        match self.forbidding_sysctl() {
            Some(why) => write!(f, "{why}")?,
            None => write!(
                f,
                "run partest as root with CAP_SYS_ADMIN (in a container: --cap-add SYS_ADMIN, \
                 or a seccomp profile that allows unshare and user namespaces), or allow \
                 unprivileged user namespaces"
            )?,
        }
        write!(
            f,
            "; or remove private-paths and private-tmp from [isolation] in partest.toml"
        )
    }
}

impl std::error::Error for Unavailable {}

/// Finds which namespace a slot's processes can enter: a mount namespace
/// alone first, else a user namespace. Each is tried in a forked child
/// that enters it and bind-mounts one scratch directory over another.
pub fn probe() -> Result<Namespace, Unavailable> {
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut attempts = Vec::new();
    for namespace in [Namespace::Mount, Namespace::User { uid, gid }] {
        match try_in_child(namespace) {
            Ok(()) => return Ok(namespace),
            Err(failure) => attempts.push((namespace, failure)),
        }
    }
    let sysctls = [
        (
            "kernel.unprivileged_userns_clone",
            "/proc/sys/kernel/unprivileged_userns_clone",
        ),
        (
            "user.max_user_namespaces",
            "/proc/sys/user/max_user_namespaces",
        ),
        (
            "kernel.apparmor_restrict_unprivileged_userns",
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        ),
    ]
    .into_iter()
    .filter_map(|(name, file)| Some((name, std::fs::read_to_string(file).ok()?)))
    .collect();
    Err(Unavailable { attempts, sysctls })
}

/// Enters `namespace` in a forked child with one real bind mount.
fn try_in_child(namespace: Namespace) -> Result<(), Failure> {
    let failed = |errno| Failure {
        step: Step::Unshare,
        errno,
    };
    let scratch = tempfile::tempdir().map_err(|e| failed(e.raw_os_error().unwrap_or(0)))?;
    let (from, onto) = (scratch.path().join("from"), scratch.path().join("onto"));
    for dir in [&from, &onto] {
        std::fs::create_dir(dir).map_err(|e| failed(e.raw_os_error().unwrap_or(0)))?;
    }
    let entry = Entry::new(namespace, vec![(from, onto)]);
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(failed(last_errno()));
    }
    // SAFETY: the child runs only async-signal-safe calls (entering the
    // namespace, write, _exit) on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match entry.enter() {
            Ok(()) => 0,
            Err(f) => {
                let mut report = [0u8; 5];
                report[0] = f.step as u8;
                report[1..].copy_from_slice(&f.errno.to_ne_bytes());
                // SAFETY: writing our own buffer to our own pipe, then exiting.
                unsafe { libc::write(fds[1], report.as_ptr().cast(), report.len()) };
                1
            }
        };
        // SAFETY: _exit skips the parent's atexit handlers and buffers.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closing our copy of the write end; reading into our buffer.
    unsafe { libc::close(fds[1]) };
    let mut report = [0u8; 5];
    let read = unsafe { libc::read(fds[0], report.as_mut_ptr().cast(), report.len()) };
    unsafe { libc::close(fds[0]) };
    if pid < 0 {
        return Err(failed(last_errno()));
    }
    let mut status = 0;
    // SAFETY: reaping the child we forked.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 && last_errno() == libc::EINTR {}
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        return Ok(());
    }
    if read == report.len() as isize
        && let Some(step) = Step::from_u8(report[0])
    {
        let errno = i32::from_ne_bytes([report[1], report[2], report[3], report[4]]);
        return Err(Failure { step, errno });
    }
    Err(failed(libc::ECHILD))
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// What `[isolation]` asks for, resolved against the project: the run-wide
/// half, made once before any slot.
#[derive(Debug)]
pub struct PrivatePaths {
    /// Absolute paths, shallowest first (a nested one is mounted over its
    /// parent's copy).
    paths: Vec<PathBuf>,
    /// `/tmp` and `/var/tmp` under `private-tmp`, each once.
    tmp: Vec<PathBuf>,
    /// What stays visible at its own path inside a private `/tmp`: the
    /// project itself, when it lives there.
    keep: Vec<PathBuf>,
    namespace: Namespace,
    /// Mount points partest made, each with the topmost directory it
    /// created for it: removed again when the run ends.
    created: Vec<(PathBuf, PathBuf)>,
}

/// Why `[isolation]` cannot be used as written.
#[derive(Debug)]
pub enum PrivatePathsError {
    /// An entry partest cannot make private; the user changes the config.
    Path {
        entry: String,
        why: String,
    },
    Unavailable(Unavailable),
    /// A mount point could not be made.
    Io(String),
}

impl fmt::Display for PrivatePathsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivatePathsError::Path { entry, why } => {
                write!(f, "[isolation] private-paths entry {entry:?}: {why}")
            }
            PrivatePathsError::Unavailable(u) => u.fmt(f),
            PrivatePathsError::Io(m) => f.write_str(m),
        }
    }
}

impl PrivatePaths {
    /// Resolves the entries (relative ones from `root`), checks that a
    /// namespace can be entered here, and makes the missing mount points.
    /// `temp_base`: where partest's slot dirs live. `None` when nothing is
    /// asked for: then nothing is probed or made.
    pub fn new(
        entries: &[String],
        private_tmp: bool,
        root: &Path,
        temp_base: &Path,
    ) -> Result<Option<PrivatePaths>, PrivatePathsError> {
        if entries.is_empty() && !private_tmp {
            return Ok(None);
        }
        let tmp: Vec<PathBuf> = if private_tmp {
            let mut tmp: Vec<PathBuf> = TMP_DIRS
                .iter()
                .map(|d| resolve(Path::new(d)))
                .filter(|d| d.is_dir())
                .collect();
            tmp.dedup();
            tmp
        } else {
            Vec::new()
        };
        let temp_base = resolve(temp_base);
        let root = resolve(root);
        // A project inside /tmp stays visible (and its paths may be private).
        let keep: Vec<PathBuf> = tmp
            .iter()
            .any(|t| root.starts_with(t) && root != *t)
            .then(|| root.clone())
            .into_iter()
            .collect();
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let bad = |why: &str| PrivatePathsError::Path {
                entry: entry.clone(),
                why: why.to_string(),
            };
            if entry.trim().is_empty() {
                return Err(bad("an empty path"));
            }
            let path = resolve(&root.join(entry));
            if path.parent().is_none() {
                return Err(bad("the root directory cannot be made private"));
            }
            if temp_base.starts_with(&path) {
                return Err(bad(&format!(
                    "it holds partest's temp dir {}; for /tmp use private-tmp = true",
                    temp_base.display()
                )));
            }
            if let Some(t) = tmp
                .iter()
                .find(|t| path.starts_with(t) && !keep.iter().any(|k| path.starts_with(k)))
            {
                return Err(bad(&format!(
                    "it is inside {}, which private-tmp already makes private",
                    t.display()
                )));
            }
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        paths.sort_by_key(|p| p.components().count());
        let namespace = probe().map_err(PrivatePathsError::Unavailable)?;
        let mut made = PrivatePaths {
            paths,
            tmp,
            keep,
            namespace,
            created: Vec::new(),
        };
        for path in made.paths.clone() {
            if std::fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            let top = path
                .ancestors()
                .take_while(|a| !a.exists())
                .last()
                .unwrap_or(&path)
                .to_path_buf();
            std::fs::create_dir_all(&path).map_err(|e| {
                PrivatePathsError::Io(format!(
                    "[isolation] private-paths: cannot create the mount point {}: {e}",
                    path.display()
                ))
            })?;
            made.created.push((path, top));
        }
        Ok(Some(made))
    }

    pub fn namespace(&self) -> Namespace {
        self.namespace
    }

    /// The slot's half, at its set-up: copies of the paths (and empty temp
    /// dirs) under `slot_dir`, which goes with the slot's temp dir.
    pub fn for_slot(&self, slot_dir: &Path) -> std::io::Result<SlotMounts> {
        let base = slot_dir.join("private");
        std::fs::create_dir_all(&base)?;
        let slot_dir = resolve(slot_dir);
        let mut binds = Vec::new();
        for (i, path) in self.paths.iter().enumerate() {
            let copy = base.join(i.to_string());
            copy_tree(path, &copy).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot copy {} to {}: {e}", path.display(), copy.display()),
                )
            })?;
            binds.push((copy, path.clone()));
        }
        for (i, tmp) in self.tmp.iter().enumerate() {
            let fresh = base.join(format!("tmp{i}"));
            std::fs::create_dir(&fresh)?;
            // World-writable and sticky, as /tmp is.
            std::fs::set_permissions(&fresh, std::os::unix::fs::PermissionsExt::from_mode(0o1777))?;
            // The slot's own dir and the project stay where they are, bound
            // into the fresh dir before it covers the original.
            for kept in self.keep.iter().chain([&slot_dir]) {
                if let Ok(rel) = kept.strip_prefix(tmp)
                    && !rel.as_os_str().is_empty()
                {
                    let inside = fresh.join(rel);
                    std::fs::create_dir_all(&inside)?;
                    binds.push((kept.clone(), inside));
                }
            }
            binds.push((fresh, tmp.clone()));
        }
        Ok(SlotMounts {
            entry: Arc::new(Entry::new(self.namespace, binds)),
        })
    }
}

impl Drop for PrivatePaths {
    /// The mount points partest made go again (the originals were never
    /// written, so they are still empty).
    fn drop(&mut self) {
        for (path, top) in &self.created {
            for dir in path.ancestors().take_while(|a| a.starts_with(top)) {
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
        }
    }
}

/// One slot's mounts, ready for the spawn sites.
#[derive(Clone, Debug)]
pub struct SlotMounts {
    entry: Arc<Entry>,
}

impl SlotMounts {
    /// Makes `cmd` enter the slot's namespace between fork and exec.
    pub fn apply(&self, cmd: &mut Command) {
        let entry = self.entry.clone();
        // SAFETY: `enter` makes only async-signal-safe syscalls on data
        // prepared before the fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                entry
                    .enter()
                    .map_err(|f| std::io::Error::from_raw_os_error(f.errno))
            });
        }
    }
}

/// Everything the child needs, as C strings made before the fork: nothing
/// is allocated between fork and exec.
#[derive(Debug)]
struct Entry {
    namespace: Namespace,
    uid_map: CString,
    gid_map: CString,
    binds: Vec<(CString, CString)>,
}

impl Entry {
    fn new(namespace: Namespace, binds: Vec<(PathBuf, PathBuf)>) -> Entry {
        let (uid, gid) = match namespace {
            Namespace::User { uid, gid } => (uid, gid),
            Namespace::Mount => (0, 0),
        };
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
        Entry {
            namespace,
            uid_map: CString::new(format!("{uid} {uid} 1")).unwrap_or_default(),
            gid_map: CString::new(format!("{gid} {gid} 1")).unwrap_or_default(),
            binds: binds
                .iter()
                .map(|(from, onto)| (c(from), c(onto)))
                .collect(),
        }
    }

    /// In the child: a namespace of its own, every mount private to it,
    /// the binds, and the working directory looked up again (it may be
    /// under one of them).
    fn enter(&self) -> Result<(), Failure> {
        let fail = |step| {
            Err(Failure {
                step,
                errno: last_errno(),
            })
        };
        // SAFETY: raw syscalls on NUL-terminated strings owned by `self`.
        unsafe {
            match self.namespace {
                Namespace::Mount => {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return fail(Step::Unshare);
                    }
                }
                Namespace::User { .. } => {
                    if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                        return fail(Step::Unshare);
                    }
                    // gid_map may only be written once setgroups is denied.
                    for (file, text, step) in [
                        (c"/proc/self/setgroups", c"deny", Step::Setgroups),
                        (c"/proc/self/uid_map", self.uid_map.as_c_str(), Step::UidMap),
                        (c"/proc/self/gid_map", self.gid_map.as_c_str(), Step::GidMap),
                    ] {
                        if !write_file(file, text) {
                            return fail(step);
                        }
                    }
                }
            }
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return fail(Step::MakePrivate);
            }
            for (from, onto) in &self.binds {
                if libc::mount(
                    from.as_ptr(),
                    onto.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ) != 0
                {
                    return fail(Step::Bind);
                }
            }
            let mut cwd = [0 as libc::c_char; libc::PATH_MAX as usize];
            if !libc::getcwd(cwd.as_mut_ptr(), cwd.len()).is_null()
                && libc::chdir(cwd.as_ptr()) != 0
            {
                return fail(Step::Chdir);
            }
        }
        Ok(())
    }
}

/// Writes `text` to `file` with one write; async-signal-safe.
///
/// # Safety
/// Only raw syscalls on the given NUL-terminated strings.
unsafe fn write_file(file: &std::ffi::CStr, text: &std::ffi::CStr) -> bool {
    unsafe {
        let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let len = text.to_bytes().len();
        let written = libc::write(fd, text.as_ptr().cast(), len);
        libc::close(fd);
        written == len as isize
    }
}

/// An absolute, normalized path: symlinks resolved in the part that exists,
/// the rest appended (`..` and `.` removed lexically).
fn resolve(path: &Path) -> PathBuf {
    let mut lexical = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let existing = lexical
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let rest = lexical.strip_prefix(existing).unwrap_or(Path::new(""));
    match existing.canonicalize() {
        Ok(real) if rest.as_os_str().is_empty() => real,
        Ok(real) => real.join(rest),
        Err(_) => lexical,
    }
}

/// Copies `from` (a directory, file or symlink) to `to`: modes kept,
/// symlinks copied as symlinks, owners kept when partest runs as root.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(from)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else if kind.is_dir() {
        std::fs::create_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        // Last: a read-only directory is filled first.
        std::fs::set_permissions(to, meta.permissions())?;
    } else if kind.is_file() {
        std::fs::copy(from, to)?;
    } else {
        // A socket or fifo: nothing to copy, the mount point stays a file.
        std::fs::File::create(to)?;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_keep_modes_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("index");
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("sub/seg"), "data").unwrap();
        std::fs::set_permissions(from.join("sub/seg"), PermissionsExt::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("sub/seg", from.join("link")).unwrap();
        let to = dir.path().join("copy");
        copy_tree(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("sub/seg")).unwrap(), "data");
        let mode = std::fs::metadata(to.join("sub/seg"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(
            std::fs::read_link(to.join("link")).unwrap(),
            Path::new("sub/seg")
        );
    }

    #[test]
    fn paths_resolve_lexically_past_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(resolve(&dir.path().join("a/../b/./c")), real.join("b/c"));
    }

    #[test]
    fn entries_that_cannot_be_private_are_refused_by_name() {
        let root = tempfile::tempdir().unwrap();
        let temp = tempfile::tempdir().unwrap();
        let refuse = |entry: &str, tmp: bool| match PrivatePaths::new(
            &[entry.to_string()],
            tmp,
            root.path(),
            temp.path(),
        ) {
            Err(e @ PrivatePathsError::Path { .. }) => e.to_string(),
            other => panic!("{entry}: {other:?}"),
        };
        assert!(refuse("/", false).contains("root directory"));
        let holds = temp.path().parent().unwrap().to_string_lossy().into_owned();
        assert!(refuse(&holds, false).contains("partest's temp dir"));
        assert!(refuse("/var/tmp/app", true).contains("private-tmp"));
        assert!(refuse(" ", false).contains("empty"));
    }

    #[test]
    fn nothing_asked_for_means_nothing_probed_or_made() {
        let root = tempfile::tempdir().unwrap();
        let none = PrivatePaths::new(&[], false, root.path(), root.path()).unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn unavailable_names_the_step_the_sysctl_and_the_way_out() {
        let unavailable = Unavailable {
            attempts: vec![
                (
                    Namespace::Mount,
                    Failure {
                        step: Step::Unshare,
                        errno: libc::EPERM,
                    },
                ),
                (
                    Namespace::User {
                        uid: 1000,
                        gid: 1000,
                    },
                    Failure {
                        step: Step::Unshare,
                        errno: libc::ENOSPC,
                    },
                ),
            ],
            sysctls: vec![("user.max_user_namespaces", "0\n".into())],
        };
        let text = unavailable.to_string();
        assert!(text.contains("unshare(CLONE_NEWNS) failed"), "{text}");
        assert!(text.contains("CLONE_NEWUSER"), "{text}");
        assert!(text.contains("user.max_user_namespaces = 0"), "{text}");
        assert!(text.contains("remove private-paths"), "{text}");
        let container = Unavailable {
            sysctls: Vec::new(),
            ..unavailable
        };
        assert!(container.to_string().contains("--cap-add SYS_ADMIN"));
    }

    /// Where namespaces work (root here, or a kernel allowing user
    /// namespaces), a child sees the slot's copy and the original stays.
    #[test]
    fn a_child_sees_its_slots_copy_and_the_original_is_untouched() {
        if probe().is_err() {
            eprintln!("no namespace available here: the e2e probe test covers this case");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let slot = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("data")).unwrap();
        std::fs::write(root.path().join("data/f"), "original").unwrap();
        let paths = PrivatePaths::new(
            &["data".into(), "made/here".into()],
            false,
            root.path(),
            slot.path(),
        )
        .unwrap()
        .unwrap();
        assert!(root.path().join("made/here").is_dir());
        let mounts = paths.for_slot(slot.path()).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "cat data/f && echo changed > data/f && echo x > made/here/y",
        ])
        .current_dir(root.path());
        mounts.apply(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "original");
        assert_eq!(
            std::fs::read_to_string(root.path().join("data/f")).unwrap(),
            "original"
        );
        assert_eq!(
            std::fs::read_to_string(slot.path().join("private/0/f")).unwrap(),
            "changed\n"
        );
        drop(paths);
        assert!(!root.path().join("made").exists());
    }
}
