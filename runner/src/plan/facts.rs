//! What the machine says about how much parallelism it can take: CPUs and
//! their cgroup quota, memory, CI and container markers. Gathered once into
//! plain data so the worker count is a pure function that tests can feed.

use std::path::Path;

/// Everything the worker count depends on that comes from the machine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SystemFacts {
    /// Logical CPUs the OS reports (sysinfo).
    pub logical_cpus: usize,
    /// CPUs this process may be scheduled on (sched_getaffinity).
    pub affinity_cpus: Option<usize>,
    /// The cgroup CPU quota in CPUs (`cpu.max` 150000/100000 = 1.5).
    pub cpu_quota: Option<f64>,
    /// Bytes available now, the cgroup limit taken into account.
    pub available_memory: u64,
    /// The CI system, by the variable that gave it away (`GITHUB_ACTIONS`).
    pub ci: Option<String>,
    /// Why we think we are in a container (`/.dockerenv`).
    pub container: Option<String>,
}

/// `partest report`'s line on `[isolation]` private paths: whether a
/// namespace can be made here (probed in a forked child), and which.
pub fn private_paths_line(asked: bool) -> String {
    let asked = if asked {
        "asked for in [isolation]"
    } else {
        "not asked for"
    };
    match crate::exec::private_paths::probe() {
        Ok(namespace) => format!("private paths: available here, {namespace}; {asked}\n"),
        Err(why) => format!("private paths: NOT available here ({asked}): {why}\n"),
    }
}

/// Variables CI systems set; `CI` itself is checked for a truthy value.
const CI_VARS: &[&str] = &[
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "TEAMCITY_VERSION",
    "TF_BUILD",
    "BITBUCKET_BUILD_NUMBER",
    "DRONE",
    "APPVEYOR",
    "CODEBUILD_BUILD_ID",
    "BUILDKITE_AGENT_ID",
    "SEMAPHORE",
    "WOODPECKER",
];

impl SystemFacts {
    pub fn detect() -> SystemFacts {
        let mut sys = sysinfo::System::new().ok();
        let (logical_cpus, available_memory, cgroup) = match sys.as_mut() {
            Some(sys) => {
                sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
                sys.refresh_memory();
                (
                    sys.cpus().len(),
                    sys.available_memory(),
                    sys.cgroup_limits(),
                )
            }
            None => (0, 0, None),
        };
        let logical_cpus = if logical_cpus == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            logical_cpus
        };
        let available_memory = match cgroup {
            Some(limits) if limits.total_memory > 0 => available_memory.min(limits.free_memory),
            _ => available_memory,
        };
        SystemFacts {
            logical_cpus,
            affinity_cpus: affinity_cpus(),
            cpu_quota: cpu_quota(Path::new("/sys/fs/cgroup")),
            available_memory,
            ci: detect_ci(|k| std::env::var(k).ok()),
            container: detect_container(Path::new("/"), |k| std::env::var(k).ok()),
        }
    }
}

fn affinity_cpus() -> Option<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for pid 0 (us).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            Some(libc::CPU_COUNT(&set) as usize)
        } else {
            None
        }
    }
}

/// The CPU quota of our cgroup, v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`).
pub fn cpu_quota(cgroup_root: &Path) -> Option<f64> {
    let read = |p: &str| std::fs::read_to_string(cgroup_root.join(p)).ok();
    let ratio = |quota: &str, period: &str| -> Option<f64> {
        let q: f64 = quota.trim().parse().ok()?;
        let p: f64 = period.trim().parse().ok()?;
        (q > 0.0 && p > 0.0).then_some(q / p)
    };
    if let Some(max) = read("cpu.max") {
        let mut parts = max.split_whitespace();
        let (quota, period) = (parts.next()?, parts.next().unwrap_or("100000"));
        return if quota == "max" {
            None
        } else {
            ratio(quota, period)
        };
    }
    ratio(
        &read("cpu/cpu.cfs_quota_us")?,
        &read("cpu/cpu.cfs_period_us")?,
    )
}

pub fn detect_ci(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(v) = var("CI") {
        let v = v.trim().to_ascii_lowercase();
        if !(v.is_empty() || v == "0" || v == "false" || v == "no") {
            return Some(format!("CI={v}"));
        }
    }
    CI_VARS
        .iter()
        .find(|k| var(k).is_some_and(|v| !v.is_empty()))
        .map(|k| (*k).to_string())
}

pub fn detect_container(root: &Path, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    for marker in [".dockerenv", "run/.containerenv"] {
        if root.join(marker).exists() {
            return Some(format!("/{marker}"));
        }
    }
    if var("KUBERNETES_SERVICE_HOST").is_some() {
        return Some("KUBERNETES_SERVICE_HOST".into());
    }
    if let Some(kind) = var("container").filter(|v| !v.is_empty()) {
        return Some(format!("container={kind}"));
    }
    let cgroup = std::fs::read_to_string(root.join("proc/1/cgroup")).unwrap_or_default();
    ["docker", "kubepods", "containerd", "lxc", "podman"]
        .iter()
        .find(|k| cgroup.contains(*k))
        .map(|k| format!("/proc/1/cgroup mentions {k}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_quotas_v2_and_v1() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cpu_quota(dir.path()), None);
        std::fs::write(dir.path().join("cpu.max"), "150000 100000\n").unwrap();
        assert_eq!(cpu_quota(dir.path()), Some(1.5));
        std::fs::write(dir.path().join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(cpu_quota(dir.path()), None);
        let v1 = tempfile::tempdir().unwrap();
        std::fs::create_dir(v1.path().join("cpu")).unwrap();
        std::fs::write(v1.path().join("cpu/cpu.cfs_quota_us"), "200000").unwrap();
        std::fs::write(v1.path().join("cpu/cpu.cfs_period_us"), "100000").unwrap();
        assert_eq!(cpu_quota(v1.path()), Some(2.0));
        std::fs::write(v1.path().join("cpu/cpu.cfs_quota_us"), "-1").unwrap();
        assert_eq!(cpu_quota(v1.path()), None);
    }

    #[test]
    fn ci_is_detected_from_its_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(detect_ci(env(&[])), None);
        assert_eq!(detect_ci(env(&[("CI", "false")])), None);
        assert_eq!(
            detect_ci(env(&[("CI", "true")])).as_deref(),
            Some("CI=true")
        );
        assert_eq!(
            detect_ci(env(&[("GITLAB_CI", "1")])).as_deref(),
            Some("GITLAB_CI")
        );
    }

    #[test]
    fn containers_are_detected_from_markers() {
        let root = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        assert_eq!(detect_container(root.path(), none), None);
        assert_eq!(
            detect_container(root.path(), |k: &str| (k == "KUBERNETES_SERVICE_HOST")
                .then(|| "10.0.0.1".into()))
            .as_deref(),
            Some("KUBERNETES_SERVICE_HOST")
        );
        std::fs::create_dir_all(root.path().join("proc/1")).unwrap();
        std::fs::write(
            root.path().join("proc/1/cgroup"),
            "0::/kubepods/burstable/pod1\n",
        )
        .unwrap();
        assert!(
            detect_container(root.path(), none)
                .unwrap()
                .contains("kubepods")
        );
        std::fs::write(root.path().join(".dockerenv"), "").unwrap();
        assert_eq!(
            detect_container(root.path(), none).as_deref(),
            Some("/.dockerenv")
        );
    }
}
