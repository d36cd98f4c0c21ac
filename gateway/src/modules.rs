//! The module list and `--modules` selection.

use platform::{Module, health::Dependency};

/// Every module, in dependency order (`admin` is gateway's own: the operator's routes).
pub const ALL: [Module; 9] = [
    tenants::MODULE,
    users::MODULE,
    auth::MODULE,
    products::MODULE,
    orders::MODULE,
    notifications::MODULE,
    audit::MODULE,
    crate::admin::MODULE,
    crate::verify::MODULE,
];

/// What the gateway's own edge needs whatever modules run: PostgreSQL (every module), Redis
/// (sessions and rate limits, once auth lands).
pub const EDGE_NEEDS: &[Dependency] = &[Dependency::Postgres, Dependency::Redis];

/// Adds the modules of `spec` (a comma-separated list, may be empty) whose HTTP routes this
/// process serves without running their workers or jobs: the request path can then answer
/// `/api/v1/audit/...` and `/api/v1/notifications/...` while those modules' consumers run in
/// their own processes. Their routes only need PostgreSQL.
pub fn with_routes_only(mut modules: Vec<Module>, spec: &str) -> anyhow::Result<Vec<Module>> {
    if spec.trim().is_empty() {
        return Ok(modules);
    }
    for mut module in select(spec)? {
        if modules.iter().any(|m| m.name == module.name) {
            continue;
        }
        module.workers = |_| Vec::new();
        module.jobs = |_| Vec::new();
        module.needs = &[Dependency::Postgres];
        modules.push(module);
    }
    Ok(modules)
}

/// `all` or a comma-separated list of module names.
pub fn select(spec: &str) -> anyhow::Result<Vec<Module>> {
    let spec = spec.trim();
    if spec.is_empty() || spec == "all" {
        return Ok(ALL.to_vec());
    }
    let mut chosen = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(module) = ALL.iter().find(|m| m.name == name) else {
            let known: Vec<_> = ALL.iter().map(|m| m.name).collect();
            anyhow::bail!(
                "unknown module `{name}`; known modules: all, {}",
                known.join(", ")
            );
        };
        if !chosen.iter().any(|m: &Module| m.name == name) {
            chosen.push(*module);
        }
    }
    Ok(chosen)
}

/// The dependencies a process running `modules` cannot be ready without.
pub fn required_dependencies(modules: &[Module]) -> Vec<Dependency> {
    let mut needs: Vec<Dependency> = EDGE_NEEDS
        .iter()
        .chain(modules.iter().flat_map(|m| m.needs))
        .copied()
        .collect();
    needs.sort();
    needs.dedup();
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_all_or_a_named_subset() {
        assert_eq!(select("all").unwrap().len(), ALL.len());
        let names: Vec<_> = select("orders, audit,orders")
            .unwrap()
            .iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["orders", "audit"]);
        let err = select("orders,billing").unwrap_err().to_string();
        assert!(
            err.contains("billing") && err.contains("notifications"),
            "{err}"
        );
    }

    #[test]
    fn routes_only_modules_serve_routes_without_workers_or_jobs() {
        let edge = with_routes_only(select("orders").unwrap(), "notifications, orders").unwrap();
        let names: Vec<_> = edge.iter().map(|m| m.name).collect();
        assert_eq!(names, ["orders", "notifications"]);
        let notifications = edge[1];
        assert_eq!(notifications.needs, &[Dependency::Postgres]);
        assert!(
            !(notifications.router)()
                .into_openapi()
                .paths
                .paths
                .is_empty(),
            "its routes are kept"
        );
        assert_eq!(with_routes_only(ALL.to_vec(), "").unwrap().len(), ALL.len());
        assert!(with_routes_only(Vec::new(), "billing").is_err());
    }

    #[test]
    fn required_dependencies_follow_the_modules() {
        let audit_only = required_dependencies(&select("audit").unwrap());
        assert!(audit_only.contains(&Dependency::Kafka));
        assert!(!audit_only.contains(&Dependency::Smtp));
        let all = required_dependencies(&select("all").unwrap());
        assert_eq!(all, Dependency::ALL.to_vec());
    }
}
