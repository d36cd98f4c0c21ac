//! The OpenAPI document's schema names, kept unique. utoipa names a schema after its Rust type,
//! and two types named alike in different modules (`Status`, `Settings`) would share one entry:
//! the later silently replaces the earlier, and an operation is documented with another's shape
//! (fuzzing found the privacy settings and five statuses answered against the wrong schema).
//! Every module registers its routes through [`crate::routes!`], which records each schema by
//! name; [`schema_collisions`] names those registered with two different shapes.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, PoisonError},
};

use utoipa_axum::router::UtoipaMethodRouter;

#[derive(Default)]
struct Registry {
    shapes: BTreeMap<String, String>,
    collisions: BTreeSet<String>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Records the schemas of one route (see [`crate::routes!`]) and hands the route on.
pub fn register<S>(route: UtoipaMethodRouter<S>) -> UtoipaMethodRouter<S> {
    let mut guard = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let registry = guard.get_or_insert_with(Registry::default);
    for (name, schema) in &route.0 {
        let shape = serde_json::to_string(schema).unwrap_or_default();
        match registry.shapes.get(name) {
            Some(known) if *known != shape => {
                registry.collisions.insert(name.clone());
            }
            Some(_) => {}
            None => {
                registry.shapes.insert(name.clone(), shape);
            }
        }
    }
    route
}

/// Schema names registered so far with two different shapes (build the routes first).
pub fn schema_collisions() -> Vec<String> {
    let guard = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    guard
        .as_ref()
        .map(|r| r.collisions.iter().cloned().collect())
        .unwrap_or_default()
}

/// `utoipa_axum::routes!`, with each schema the route documents recorded by name
/// ([`schema_collisions`]).
#[macro_export]
macro_rules! routes {
    ($($handler:tt)*) => {
        $crate::http::doc::register(::utoipa_axum::routes!($($handler)*))
    };
}

#[cfg(test)]
mod tests {
    mod health {
        #[derive(serde::Serialize, utoipa::ToSchema)]
        #[allow(dead_code, reason = "only its schema is used")]
        pub enum Status {
            Up,
            Down,
        }

        #[utoipa::path(get, path = "/health", responses((status = 200, body = Status)))]
        pub async fn health() -> axum::Json<Status> {
            axum::Json(Status::Up)
        }
    }

    mod requests {
        #[derive(serde::Serialize, utoipa::ToSchema)]
        #[allow(dead_code, reason = "only its schema is used")]
        pub enum Status {
            Open,
            Closed,
        }

        #[utoipa::path(get, path = "/requests", responses((status = 200, body = Status)))]
        pub async fn request() -> axum::Json<Status> {
            axum::Json(Status::Open)
        }

        #[utoipa::path(get, path = "/requests/again", responses((status = 200, body = Status)))]
        pub async fn again() -> axum::Json<Status> {
            axum::Json(Status::Closed)
        }
    }

    #[test]
    fn two_types_named_alike_are_a_collision_and_one_type_twice_is_not() {
        use self::{health::*, requests::*};
        let router = utoipa_axum::router::OpenApiRouter::<()>::new()
            .routes(crate::routes!(request))
            .routes(crate::routes!(again));
        assert!(
            !super::schema_collisions().contains(&"Status".to_owned()),
            "one type used by two routes"
        );
        let _ = router.routes(crate::routes!(health));
        assert_eq!(super::schema_collisions(), ["Status"]);
    }
}
