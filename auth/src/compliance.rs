//! What `auth` tells the compliance verifier: its retention sweeps, which the verifier
//! dry-runs to find rows kept past their policy.

use std::sync::Arc;

use platform::{compliance::ComplianceProbe, retention::RetentionTask};

#[derive(Debug)]
pub struct Probe;

impl ComplianceProbe for Probe {
    fn retention_tasks(&self) -> Vec<Arc<dyn RetentionTask>> {
        crate::retention_tasks()
    }
}
