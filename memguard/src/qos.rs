//! The Kubernetes QoS class implied by `oom_score_adj`.
//!
//! The kubelet sets `oom_score_adj` of every container process from the pod's QoS class:
//! `-997` for Guaranteed, `1000` for BestEffort, and `1000 - 1000 * request / node capacity`
//! clamped to `2..=999` for Burstable. That makes the class readable from inside the container,
//! and it tells how early the *global* OOM killer will pick this process.

use serde::Serialize;

/// Kubernetes pod QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum QosClass {
    /// Requests equal limits for every container; `oom_score_adj = -997`; killed last.
    Guaranteed,
    /// Some requests set; `oom_score_adj` in `2..=999`.
    Burstable,
    /// No requests or limits; `oom_score_adj = 1000`; killed first.
    BestEffort,
}

impl QosClass {
    /// The class the kubelet's `oom_score_adj` policy implies, or `None` for values the kubelet
    /// never sets (for example `0`, the default of a process not started by a kubelet).
    pub fn from_oom_score_adj(adj: i32) -> Option<QosClass> {
        match adj {
            -997 => Some(QosClass::Guaranteed),
            1000 => Some(QosClass::BestEffort),
            2..=999 => Some(QosClass::Burstable),
            _ => None,
        }
    }

    /// The class name as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::QosClass;

    #[test]
    fn kubelet_values() {
        assert_eq!(QosClass::from_oom_score_adj(-997), Some(QosClass::Guaranteed));
        assert_eq!(QosClass::from_oom_score_adj(1000), Some(QosClass::BestEffort));
        assert_eq!(QosClass::from_oom_score_adj(2), Some(QosClass::Burstable));
        assert_eq!(QosClass::from_oom_score_adj(999), Some(QosClass::Burstable));
        assert_eq!(QosClass::from_oom_score_adj(0), None);
        assert_eq!(QosClass::from_oom_score_adj(-1000), None);
    }
}
