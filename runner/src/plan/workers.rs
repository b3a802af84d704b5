//! The worker count: the smallest of every limit that applies, each kept
//! with its reason so `partest report` can show which one bound.

use std::fmt::Write as _;

use super::facts::SystemFacts;
use crate::config::{ByteSize, LimitsTable, WorkerCount};

/// One limit on the worker count.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    pub name: String,
    /// `None`: does not apply here (not in CI, say); shown, not counted.
    pub limit: Option<usize>,
    pub detail: String,
}

/// The worker count and everything behind it.
#[derive(Clone, Debug)]
pub struct WorkerPlan {
    pub workers: usize,
    pub requested: WorkerCount,
    /// Where the request came from: `-n`, a profile, `[run] workers`, the default.
    pub source: String,
    pub factors: Vec<Factor>,
}

/// What the count is computed from, besides the machine.
pub struct WorkerInputs<'a> {
    pub requested: WorkerCount,
    pub source: String,
    pub limits: &'a LimitsTable,
    /// None: not known before the workers start (pytest collects in them).
    pub test_count: Option<usize>,
    /// (plugin name, most slots it can serve).
    pub plugin_slots: &'a [(String, usize)],
}

pub fn plan_workers(inputs: &WorkerInputs, facts: &SystemFacts) -> WorkerPlan {
    let auto = inputs.requested == WorkerCount::Auto;
    let mut factors = Vec::new();
    let machine = |limit: Option<usize>| if auto { limit } else { None };

    let mut cores = facts.logical_cpus.max(1);
    let mut detail = format!("{} logical CPUs", facts.logical_cpus);
    if let Some(affinity) = facts.affinity_cpus.filter(|a| *a < cores) {
        cores = affinity.max(1);
        let _ = write!(detail, ", {affinity} in our CPU affinity");
    }
    match facts.cpu_quota {
        Some(quota) => {
            let by_quota = (quota.ceil() as usize).max(1);
            let _ = write!(detail, ", cgroup CPU quota {quota:.2}");
            cores = cores.min(by_quota);
        }
        None => detail.push_str(", no cgroup CPU quota"),
    }
    factors.push(Factor {
        name: "usable cores".into(),
        limit: machine(Some(cores)),
        detail,
    });

    let per_worker = inputs.limits.memory_per_worker;
    let by_memory = ((facts.available_memory / per_worker.0.max(1)) as usize).max(1);
    factors.push(Factor {
        name: "memory ÷ memory-per-worker".into(),
        limit: machine(Some(by_memory)),
        detail: format!(
            "{} available ÷ {per_worker} ([limits] memory-per-worker)",
            ByteSize(facts.available_memory)
        ),
    });

    factors.push(match &facts.ci {
        Some(ci) => Factor {
            name: "CI cap".into(),
            limit: machine(Some(inputs.limits.ci_max_workers)),
            detail: format!("{ci} ([limits] ci-max-workers)"),
        },
        None => Factor {
            name: "CI cap".into(),
            limit: None,
            detail: "not in CI".into(),
        },
    });
    factors.push(match &facts.container {
        Some(why) => Factor {
            name: "container cap".into(),
            limit: machine(Some(inputs.limits.container_max_workers)),
            detail: format!("{why} ([limits] container-max-workers)"),
        },
        None => Factor {
            name: "container cap".into(),
            limit: None,
            detail: "not in a container".into(),
        },
    });
    if !auto {
        for f in &mut factors {
            f.detail.push_str(&format!(
                " — not applied: workers = {} ({})",
                inputs.requested, inputs.source
            ));
        }
    }

    factors.push(match inputs.requested {
        WorkerCount::Fixed(n) => Factor {
            name: "requested".into(),
            limit: Some(n.get()),
            detail: format!("workers = {n} ({})", inputs.source),
        },
        WorkerCount::Auto => Factor {
            name: "requested".into(),
            limit: None,
            detail: format!("workers = auto ({})", inputs.source),
        },
    });
    factors.push(match inputs.test_count {
        Some(count) => Factor {
            name: "tests".into(),
            limit: Some(count.max(1)),
            detail: format!("{count} to run (no more slots than tests)"),
        },
        None => Factor {
            name: "tests".into(),
            limit: None,
            detail: "counted when the workers have collected (pytest)".into(),
        },
    });
    for (plugin, slots) in inputs.plugin_slots {
        factors.push(Factor {
            name: format!("plugin {plugin}"),
            limit: Some((*slots).max(1)),
            detail: format!("serves at most {slots} slots"),
        });
    }

    let workers = factors
        .iter()
        .filter_map(|f| f.limit)
        .min()
        .unwrap_or(1)
        .max(1);
    WorkerPlan {
        workers,
        requested: inputs.requested,
        source: inputs.source.clone(),
        factors,
    }
}

impl WorkerPlan {
    /// The factors whose limit equals the result: what bound it.
    pub fn binding(&self) -> impl Iterator<Item = &Factor> {
        self.factors
            .iter()
            .filter(move |f| f.limit == Some(self.workers))
    }

    /// The parallelization report, readable at a glance.
    pub fn render(&self) -> String {
        let width = self
            .factors
            .iter()
            .map(|f| f.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let mut out = String::new();
        let _ = writeln!(out, "  {:<width$}  {:>5}  why", "factor", "limit");
        for f in &self.factors {
            let limit = f.limit.map_or("-".to_string(), |n| n.to_string());
            let mark = if f.limit == Some(self.workers) {
                "  ◀ binds"
            } else {
                ""
            };
            let _ = writeln!(out, "  {:<width$}  {limit:>5}  {}{mark}", f.name, f.detail);
        }
        let bound: Vec<&str> = self.binding().map(|f| f.name.as_str()).collect();
        let _ = writeln!(
            out,
            "\nworkers = {}  (bound by: {})",
            self.workers,
            bound.join(", ")
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> SystemFacts {
        SystemFacts {
            logical_cpus: 64,
            affinity_cpus: Some(64),
            cpu_quota: None,
            available_memory: 64 << 30,
            ci: None,
            container: None,
        }
    }

    fn plan(
        requested: WorkerCount,
        facts: &SystemFacts,
        tests: usize,
        plugins: &[(String, usize)],
    ) -> WorkerPlan {
        let limits = LimitsTable::default();
        let inputs = WorkerInputs {
            requested,
            source: "test".into(),
            limits: &limits,
            test_count: Some(tests),
            plugin_slots: plugins,
        };
        plan_workers(&inputs, facts)
    }

    fn bound_by(p: &WorkerPlan) -> Vec<String> {
        p.binding().map(|f| f.name.clone()).collect()
    }

    #[test]
    fn a_cpu_quota_beats_the_hosts_core_count() {
        let f = SystemFacts {
            cpu_quota: Some(1.5),
            ..facts()
        };
        let p = plan(WorkerCount::Auto, &f, 1000, &[]);
        assert_eq!(p.workers, 2);
        assert_eq!(bound_by(&p), ["usable cores"]);
    }

    #[test]
    fn memory_ci_and_container_caps_each_bind() {
        let f = SystemFacts {
            available_memory: 3 << 29,
            ..facts()
        }; // 1.5 GiB / 512 MiB
        assert_eq!(plan(WorkerCount::Auto, &f, 1000, &[]).workers, 3);
        let f = SystemFacts {
            ci: Some("GITHUB_ACTIONS".into()),
            ..facts()
        };
        let p = plan(WorkerCount::Auto, &f, 1000, &[]);
        assert_eq!((p.workers, bound_by(&p)), (2, vec!["CI cap".to_string()]));
        let f = SystemFacts {
            container: Some("/.dockerenv".into()),
            ..facts()
        };
        assert_eq!(plan(WorkerCount::Auto, &f, 1000, &[]).workers, 4);
    }

    #[test]
    fn tests_and_plugins_cap_even_a_fixed_count() {
        let fixed = WorkerCount::Fixed(8.try_into().unwrap());
        assert_eq!(plan(fixed, &facts(), 3, &[]).workers, 3);
        let p = plan(fixed, &facts(), 100, &[("redis".into(), 5)]);
        assert_eq!(
            (p.workers, bound_by(&p)),
            (5, vec!["plugin redis".to_string()])
        );
        // A fixed count ignores the machine's factors but still shows them.
        let small = SystemFacts {
            logical_cpus: 1,
            ..facts()
        };
        let p = plan(fixed, &small, 100, &[]);
        assert_eq!(p.workers, 8);
        assert!(p.render().contains("not applied"));
    }

    #[test]
    fn the_report_marks_the_binding_factor() {
        let f = SystemFacts {
            logical_cpus: 2,
            ci: Some("CI=true".into()),
            ..facts()
        };
        let text = plan(WorkerCount::Auto, &f, 50, &[]).render();
        assert!(
            text.contains("workers = 2  (bound by: usable cores, CI cap)"),
            "{text}"
        );
        assert_eq!(text.matches("◀ binds").count(), 2, "{text}");
    }
}
