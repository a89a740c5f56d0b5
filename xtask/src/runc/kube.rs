//! Kubernetes-shaped hierarchies built with real cgroups: `kubepods` (the node-allocatable
//! limit) → QoS class cgroup → `pod<uid>` (the pod limit, set by the "kubelet" — this code) →
//! the container, which runc creates with the container limit and the kubelet's
//! `oom_score_adj`, in the cgroupfs driver's naming (`kubepods/burstable/pod<uid>/<id>`) and the
//! systemd driver's (`kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/
//! cri-containerd-<id>.scope`, plain directories named like that).
//!
//! In each container `memguard status --json` must report the right limit, limiting cgroup and
//! QoS class; `java -XshowSettings:system -version` runs in the same container for the README's
//! comparison. Under a private cgroup namespace on v2 the pod's limit is above the namespace
//! root: `limit_maybe_hidden` must be true, and `MEMGUARD_LIMIT` (what a Downward API
//! `resourceFieldRef: limits.memory` sets) must restore the right answer.

use serde_json::Value;

use super::cases::Container;
use super::cgroup::{TestCgroup, Version};
use super::{Env, Tally, Verdict};

const MIB: u64 = 1 << 20;
const POD_UID: &str = "3f1c2d4e-5b6a-4c7d-8e9f-0a1b2c3d4e5f";
const CTR_ID: &str = "8a9b0c1d2e3f40516273849506a7b8c9d0e1f2031425364758697a8b9c0d1e2f";
/// The node-allocatable limit the kubelet puts on `kubepods`.
const KUBEPODS_LIMIT: u64 = 1024 * MIB;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Cgroupfs,
    Systemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    fn name(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }

    /// The kubelet's `oom_score_adj`: -997, 1000, and for Burstable `1000 - 1000 * request /
    /// capacity` clamped to 2..=999 (here a pod requesting a quarter of the node: 750).
    fn oom_score_adj(self) -> i32 {
        match self {
            Qos::Guaranteed => -997,
            Qos::Burstable => 750,
            Qos::BestEffort => 1000,
        }
    }
}

/// Where the limit must be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Kubepods,
    Pod,
    Container,
    /// From the `MEMGUARD_LIMIT` override.
    Override,
    /// Hidden above the namespace root on v2 (no limit visible).
    Hidden,
}

#[derive(Debug, Clone)]
struct Layout {
    driver: Driver,
    qos: Qos,
    pod_limit: Option<u64>,
    ctr_limit: Option<u64>,
    cgroup_ns: bool,
    /// `MEMGUARD_LIMIT` in the container's environment (the Downward API's way).
    downward_limit: Option<u64>,
}

/// One row of the README's matrix.
#[derive(Debug, Clone)]
pub struct Row {
    version: &'static str,
    layout: String,
    limits: String,
    adj: String,
    memguard: String,
    jdk: String,
}

impl Layout {
    /// The cgroup names from `kubepods` down to the pod, and the container's name.
    fn names(&self) -> (Vec<String>, String) {
        let uid_sd = POD_UID.replace('-', "_");
        match self.driver {
            Driver::Cgroupfs => {
                let mut v = vec!["kubepods".to_owned()];
                match self.qos {
                    Qos::Guaranteed => {}
                    Qos::Burstable => v.push("burstable".into()),
                    Qos::BestEffort => v.push("besteffort".into()),
                }
                v.push(format!("pod{POD_UID}"));
                (v, CTR_ID.to_owned())
            }
            Driver::Systemd => {
                let mut v = vec!["kubepods.slice".to_owned()];
                let pod = match self.qos {
                    Qos::Guaranteed => format!("kubepods-pod{uid_sd}.slice"),
                    Qos::Burstable => {
                        v.push("kubepods-burstable.slice".into());
                        format!("kubepods-burstable-pod{uid_sd}.slice")
                    }
                    Qos::BestEffort => {
                        v.push("kubepods-besteffort.slice".into());
                        format!("kubepods-besteffort-pod{uid_sd}.slice")
                    }
                };
                v.push(pod);
                (v, format!("cri-containerd-{CTR_ID}.scope"))
            }
        }
    }

    /// The layout as the README shows it (`…` for the ids).
    fn display(&self) -> String {
        let (names, ctr) = self.names();
        let short =
            |s: &str| s.replace(POD_UID, "<uid>").replace(&POD_UID.replace('-', "_"), "<uid>").replace(CTR_ID, "<id>");
        let mut path = names.iter().map(|n| short(n)).collect::<Vec<_>>().join("/");
        path.push('/');
        path.push_str(&short(&ctr));
        format!("`{path}`{}", if self.cgroup_ns { " + private cgroup ns" } else { "" })
    }

    fn limits(&self) -> String {
        let m = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), |b| format!("{} Mi", b / MIB));
        let mut s =
            format!("kubepods {} / pod {} / ctr {}", KUBEPODS_LIMIT / MIB, m(self.pod_limit), m(self.ctr_limit));
        if let Some(d) = self.downward_limit {
            s.push_str(&format!("; `MEMGUARD_LIMIT={d}`"));
        }
        s
    }

    /// Where memguard must find the limit, and its value. On v2 a private cgroup namespace
    /// hides everything above the container; `MEMGUARD_LIMIT` applies when lower than what is
    /// detected (or nothing is).
    fn expected(&self, version: Version) -> (At, Option<u64>) {
        let mut best = (At::Kubepods, KUBEPODS_LIMIT);
        if let Some(p) = self.pod_limit.filter(|p| *p < best.1) {
            best = (At::Pod, p);
        }
        if let Some(c) = self.ctr_limit.filter(|c| *c <= best.1) {
            best = (At::Container, c);
        }
        let detected = if self.cgroup_ns && version == Version::V2 && best.0 != At::Container {
            (At::Hidden, None)
        } else {
            (best.0, Some(best.1))
        };
        match (self.downward_limit, detected.1) {
            (Some(d), None) => (At::Override, Some(d)),
            (Some(d), Some(l)) if d < l => (At::Override, Some(d)),
            _ => detected,
        }
    }
}

fn layouts() -> Vec<Layout> {
    let l = |driver, qos, pod: Option<u64>, ctr: Option<u64>| Layout {
        driver,
        qos,
        pod_limit: pod.map(|m| m * MIB),
        ctr_limit: ctr.map(|m| m * MIB),
        cgroup_ns: false,
        downward_limit: None,
    };
    let mut v = Vec::new();
    for d in [Driver::Cgroupfs, Driver::Systemd] {
        v.push(l(d, Qos::Guaranteed, Some(256), Some(256)));
        v.push(l(d, Qos::Burstable, Some(256), None));
        v.push(l(d, Qos::Burstable, Some(512), Some(192)));
        v.push(l(d, Qos::Burstable, Some(256), Some(384)));
        v.push(l(d, Qos::BestEffort, None, None));
    }
    // Kubernetes on cgroup v2 gives every container a private cgroup namespace.
    let mut ns = l(Driver::Systemd, Qos::Burstable, Some(256), None);
    ns.cgroup_ns = true;
    v.push(ns.clone());
    ns.downward_limit = Some(256 * MIB);
    v.push(ns);
    let mut ns_ctr = l(Driver::Systemd, Qos::Burstable, Some(512), Some(192));
    ns_ctr.cgroup_ns = true;
    v.push(ns_ctr);
    v
}

/// Every layout; returns the rows of the README's table.
pub fn matrix(env: &Env, tally: &mut Tally) -> Vec<Row> {
    let mut rows = Vec::new();
    for layout in layouts() {
        let name = format!("{} k8s {} {} [{}]", env.version(), layout.display(), layout.qos.name(), layout.limits());
        tally.case(&name, || {
            let row = one(env, &layout)?;
            let detail = format!("memguard: {}; JDK: {}", row.memguard, row.jdk);
            rows.push(row);
            Ok(Verdict::Pass(detail))
        });
    }
    rows
}

/// `Some("256.00M")`-style JDK value, or the error text.
fn jdk_value(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Memory Limit:"))
        .map_or_else(|| "no `Memory Limit:` line (java failed?)".to_owned(), |v| v.trim().to_owned())
}

fn one(env: &Env, layout: &Layout) -> Result<Row, String> {
    let top = env.kit.cgroup("k8s");
    let (names, ctr) = layout.names();
    // Parents before children: each is dropped (removed) after the ones declared later.
    let mut chain = Chain(Vec::new());
    for n in &names {
        let cg = chain.0.last().unwrap_or(&top).child(n);
        chain.0.push(cg);
    }
    chain.0[0].set_limit(KUBEPODS_LIMIT);
    let pod = chain.0.last().expect("pod cgroup");
    if let Some(p) = layout.pod_limit {
        pod.set_limit(p);
    }
    // Lowering oom_score_adj (Guaranteed's -997) needs CAP_SYS_RESOURCE; a sandbox without it
    // runs that layout without the value (and checks that no class is claimed).
    let adj = Some(layout.qos.oom_score_adj()).filter(|a| *a >= 0 || has_cap_sys_resource());
    let java = std::process::Command::new("java").arg("-version").output().is_ok_and(|o| o.status.success());
    let mg = env.memguard.display().to_string();
    let script = if java {
        format!(
            "{mg} status --json; echo MEMGUARD_JDK; java -Xmx32m -XX:-UsePerfData -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XshowSettings:system -version 2>&1"
        )
    } else {
        format!("{mg} status --json")
    };
    let c = Container::new(env, &top, pod, &ctr, |s| {
        s.args = vec!["sh".into(), "-c".into(), script];
        s.memory_limit = layout.ctr_limit;
        s.oom_score_adj = adj;
        s.cgroup_ns = layout.cgroup_ns;
        if let Some(d) = layout.downward_limit {
            s.env.push(("MEMGUARD_LIMIT".into(), d.to_string()));
        }
    });
    let out = c.run(if env.in_vm { 300 } else { 60 });
    let (json, jdk) = out.stdout.split_once("MEMGUARD_JDK").unwrap_or((&out.stdout, ""));
    let s: Value =
        serde_json::from_str(json.trim()).map_err(|e| format!("status JSON ({e}): {} {}", out.stdout, out.stderr))?;
    let jdk = if java { jdk_value(jdk) } else { "(no java here)".to_owned() };

    let (at, value) = layout.expected(env.kit.version);
    // The limiting cgroup as memguard reports it: a path outside a namespace; in one, `/` for
    // the container itself and nothing (v1: the hierarchical limit above the root) otherwise.
    let (names, ctr) = layout.names();
    let top_path = top_path_of(&c.seen_path, &names, &ctr);
    // On v1 the runtime mounts only the container's own memory cgroup directory: a limit above
    // it is found through `hierarchical_memory_limit`, without a path.
    let v1 = env.kit.version == Version::V1;
    let expected_cgroup: Option<String> = match (at, layout.cgroup_ns) {
        (At::Container, true) => Some("/".into()),
        (_, true) | (At::Hidden | At::Override, _) => None,
        (At::Kubepods | At::Pod, false) if v1 => None,
        (At::Kubepods, false) => Some(format!("{top_path}/{}", names[0])),
        (At::Pod, false) => Some(format!("{top_path}/{}", names.join("/"))),
        (At::Container, false) => Some(c.seen_path.clone()),
    };
    let fail = |what: &str| Err(format!("{what}: expected {at:?} {value:?} {expected_cgroup:?}; got {s:#}"));
    if s["limit_bytes"].as_u64() != value {
        return fail("limit_bytes");
    }
    if at != At::Override && at != At::Hidden && s["limit_applied"] != "cgroup" {
        return fail("limit_applied");
    }
    if at == At::Override && s["limit_applied"] != "override" {
        return fail("limit_applied (override)");
    }
    let want_cgroup = expected_cgroup.as_deref().map_or(Value::Null, Value::from);
    if s["limit_cgroup"] != want_cgroup {
        return fail("limit_cgroup");
    }
    let (want_qos, want_adj) = match adj {
        Some(a) => (Value::from(layout.qos.name()), a),
        None => (Value::Null, 0),
    };
    if s["qos_class"] != want_qos || s["oom_score_adj"] != want_adj {
        return fail("qos_class / oom_score_adj");
    }
    let hidden_expected = layout.cgroup_ns && env.kit.version == Version::V2;
    if s["limit_maybe_hidden"] != hidden_expected {
        return fail("limit_maybe_hidden");
    }
    let shown_cgroup = s["limit_cgroup"].as_str().map_or_else(
        || {
            if s["limit_bytes"].is_null() {
                "—".to_owned()
            } else if s["limit_applied"] == "override" {
                "`MEMGUARD_LIMIT`".to_owned()
            } else if layout.cgroup_ns {
                "above the ns root".to_owned()
            } else {
                "above the container (hierarchical_memory_limit)".to_owned()
            }
        },
        |p| short_path(p, &names, &ctr),
    );
    let qos = s["qos_class"]
        .as_str()
        .map_or_else(|| "no QoS class (oom_score_adj 0: no CAP_SYS_RESOURCE here)".to_owned(), str::to_owned);
    let memguard = format!(
        "{} at {} ({}), {}{}",
        s["limit_bytes"].as_u64().map_or_else(|| "no limit".to_owned(), |b| format!("{} Mi", b / MIB)),
        shown_cgroup,
        s["limit_applied"].as_str().unwrap_or("?"),
        qos,
        if s["limit_maybe_hidden"] == true { ", limit_maybe_hidden" } else { "" }
    );
    Ok(Row {
        version: env.version(),
        layout: layout.display(),
        limits: layout.limits(),
        adj: adj.map_or_else(|| "0 (no CAP_SYS_RESOURCE)".to_owned(), |a| a.to_string()),
        memguard,
        jdk,
    })
}

/// Nested test cgroups, removed children first.
struct Chain(Vec<TestCgroup>);

impl Drop for Chain {
    fn drop(&mut self) {
        while self.0.pop().is_some() {}
    }
}

/// The test's top cgroup path, from the container's full path (`seen_path` without a namespace).
fn top_path_of(seen: &str, names: &[String], ctr: &str) -> String {
    let tail = format!("/{}/{ctr}", names.join("/"));
    seen.strip_suffix(&tail).unwrap_or(seen).to_owned()
}

/// A limiting cgroup path shortened for the table: from `kubepods` on, ids elided.
fn short_path(p: &str, names: &[String], ctr: &str) -> String {
    let from = p.find(names[0].as_str()).map_or(p, |i| &p[i..]);
    let _ = ctr;
    from.replace(POD_UID, "<uid>").replace(&POD_UID.replace('-', "_"), "<uid>").replace(CTR_ID, "<id>")
}

/// The README's Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| cgroup | layout | limits set (MiB) | oom_score_adj | memguard reports (limit, limiting cgroup, source, QoS) | JDK 17 `Memory Limit` |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in rows {
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.version, r.layout, r.limits, r.adj, r.memguard, r.jdk
        ));
    }
    t
}

/// Whether this process may lower `oom_score_adj` (CAP_SYS_RESOURCE in its effective set).
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapEff:")).map(|v| v.trim().to_owned()))
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}
