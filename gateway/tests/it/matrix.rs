//! Who may call what, checked route by route. The routes come from the OpenAPI document the
//! code generates, so a new route is in these tests the day it is written:
//! - no token: every protected route is 401;
//! - each staff role: 403 exactly where docs/API.md's matrix says "—";
//! - tenant B using tenant A's ids: 404 on every route with an id, and A is unchanged.

use platform::Role;
use serde_json::{Value, json};
use testkit::{Merchant, Staff, TestApp, workspace_root};

struct Route {
    method: reqwest::Method,
    path: String,
    /// `None`: public. `Some(None)`: any signed-in user. `Some(Some(p))`: permission `p`.
    permission: Option<Option<String>>,
    /// Every permission the route names (a route may need another for some requests).
    scopes: Vec<String>,
    /// Open to everyone, with more for a signed-in caller (`{}` among the requirements).
    optional: bool,
}

fn routes(spec: &Value) -> Vec<Route> {
    let mut routes = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let permission = op["security"].as_array().map(|reqs| {
                reqs.iter()
                    .filter_map(|r| r["bearer"].as_array())
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .next()
            });
            let optional = op["security"].as_array().is_some_and(|reqs| {
                reqs.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            let scopes = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["bearer"].as_array())
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            routes.push(Route {
                method: method.to_uppercase().parse().unwrap(),
                path: path.clone(),
                permission,
                scopes,
                optional,
            });
        }
    }
    routes
}

fn roles_of(permission: &str) -> Vec<Role> {
    gateway::modules::ALL
        .iter()
        .flat_map(|m| m.permissions.iter())
        .find(|p| p.name == permission)
        .unwrap_or_else(|| {
            panic!("route names permission `{permission}`, which no module declares")
        })
        .roles
        .to_vec()
}

/// Fills `{param}`s: with `ids` for the named ones, else a random id.
fn fill(path: &str, ids: &dyn Fn(&str, &str) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}')? + start;
        out.push_str(&rest[..start]);
        out.push_str(&ids(path, &rest[start + 1..end])?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

async fn call(app: &TestApp, route: &Route, path: &str, bearer: Option<&str>) -> u16 {
    call_with(app, route, path, bearer, json!({})).await
}

async fn call_with(
    app: &TestApp,
    route: &Route,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> u16 {
    let mut request = app
        .client
        .request(route.method.clone(), app.url(path))
        .header("idempotency-key", uuid::Uuid::now_v7().to_string());
    if let Some(bearer) = bearer {
        request = request.header("authorization", bearer);
    }
    if route.method != reqwest::Method::GET && route.method != reqwest::Method::DELETE {
        request = request.json(&body);
    }
    request.send().await.unwrap().status().as_u16()
}

/// A body each route with an id accepts as valid (`{}` where it needs none). A new route
/// with a body must be added here, or the cross-tenant probe fails on its 422.
fn valid_body(method: &reqwest::Method, path: &str) -> Value {
    match (method.as_str(), path) {
        ("PATCH", "/api/v1/categories/{id}") => json!({"name": "Lain-lain"}),
        ("PATCH", "/api/v1/customers/{id}") => json!({"full_name": "Ani Wijaya"}),
        ("PUT", "/api/v1/customers/{id}/consents") => {
            json!({"consents": [{"purpose": "receipt_email", "granted": false}]})
        }
        ("POST", "/api/v1/orders/{id}/payments") => json!({"method": "cash", "amount_minor": 1000}),
        ("POST", "/api/v1/orders/{id}/refunds") => {
            json!({"reason": "customer_return", "lines": [{"line_no": 1, "quantity": 1}]})
        }
        ("POST", "/api/v1/privacy/requests/{id}/resolve") => json!({"outcome": "rectified"}),
        ("PATCH", "/api/v1/products/{id}") => json!({"name": "Kopi Tubruk"}),
        ("POST", "/api/v1/products/{id}/stock-adjustments") => json!({"delta": 1}),
        ("PATCH", "/api/v1/users/{id}") => json!({"full_name": "Siti Aminah"}),
        ("POST", "/api/v1/shifts/{id}/cash-movements") => {
            json!({"direction": "in", "amount_minor": 1, "reason": "other"})
        }
        ("POST", "/api/v1/shifts/{id}/close") => json!({"counted_minor": 0}),
        _ => json!({}),
    }
}

async fn spec(app: &TestApp) -> Value {
    app.get("/api/openapi.json").await.json().await.unwrap()
}

#[tokio::test]
async fn every_protected_route_needs_a_token_and_every_permission_is_declared_and_used() {
    let app = TestApp::spawn().await;
    let routes = routes(&spec(&app).await);
    let random = |_: &str, _: &str| Some(uuid::Uuid::now_v7().to_string());
    let mut used = Vec::new();
    for route in routes.iter().filter(|r| r.permission.is_some()) {
        let path = fill(&route.path, &random).unwrap();
        if !route.optional {
            assert_eq!(
                call(&app, route, &path, None).await,
                401,
                "{} {} without a token",
                route.method,
                route.path
            );
        }
        assert_eq!(
            call(&app, route, &path, Some("Bearer not.a.jwt")).await,
            401,
            "{} {}",
            route.method,
            route.path
        );
        for permission in &route.scopes {
            roles_of(permission);
            used.push(permission.clone());
        }
    }
    for permission in gateway::modules::ALL.iter().flat_map(|m| m.permissions) {
        assert!(
            used.contains(&permission.name.to_owned()),
            "permission `{}` guards no route",
            permission.name
        );
    }
}

#[tokio::test]
async fn each_role_is_refused_exactly_where_the_matrix_says() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let manager = app.staff(&merchant, Role::Manager).await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let routes = routes(&spec(&app).await);
    let random = |_: &str, _: &str| Some(uuid::Uuid::now_v7().to_string());
    let mut checked = 0;
    for route in &routes {
        let Some(Some(permission)) = &route.permission else {
            continue;
        };
        let allowed = roles_of(permission);
        for staff in [&merchant.owner, &manager, &cashier] {
            let path = fill(&route.path, &random).unwrap();
            let status = call(&app, route, &path, Some(&staff.bearer())).await;
            if allowed.contains(&staff.role) {
                assert!(
                    status != 403 && status != 401,
                    "{} {} as {}: {status}",
                    route.method,
                    route.path,
                    staff.role
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{} {} as {}",
                    route.method, route.path, staff.role
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 9,
        "only {checked} checks: did the routes lose their permissions?"
    );
}

/// The operator's `platform_admin` token belongs to no shop: it opens exactly the routes whose
/// permission names `platform_admin`, and every other protected route, the "signed in" ones
/// (`/me`, one's own consents, the shop) and the public ones with more for staff included,
/// answers 403.
#[tokio::test]
async fn the_operators_token_opens_only_the_operators_routes() {
    let app = TestApp::spawn().await;
    let token = auth::Service::from_state(&app.state)
        .unwrap()
        .operator_token(platform::id::UserId::new(), chrono::Utc::now(), 600)
        .unwrap();
    let bearer = format!("Bearer {token}");
    let routes = routes(&spec(&app).await);
    let random = |_: &str, _: &str| Some(uuid::Uuid::now_v7().to_string());
    let (mut opened, mut refused) = (0, 0);
    for route in &routes {
        let Some(permission) = &route.permission else {
            continue;
        };
        let path = fill(&route.path, &random).unwrap();
        let status = call(&app, route, &path, Some(&bearer)).await;
        let allowed = permission
            .as_deref()
            .is_some_and(|p| roles_of(p).contains(&Role::PlatformAdmin));
        if allowed {
            assert!(
                ![401, 403].contains(&status) && status < 500,
                "{} {} as the operator: {status}",
                route.method,
                route.path
            );
            opened += 1;
        } else {
            assert_eq!(
                status, 403,
                "{} {} as the operator",
                route.method, route.path
            );
            refused += 1;
        }
    }
    assert!(
        opened >= 2 && refused >= 40,
        "{opened} opened, {refused} refused"
    );
}

/// Ids tenant A owns, one of each kind a route can name.
struct Fixtures {
    staff: String,
    product: String,
    category: String,
    customer: String,
    order: String,
    delivery: String,
    privacy_request: String,
    shift: String,
}

async fn fixtures(app: &TestApp, a: &Merchant, a_staff: &Staff) -> Fixtures {
    let owner = &a.owner;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let product = app.product(owner, 1000, 5).await;
    let category = app
        .send(
            "POST",
            "/api/v1/categories",
            owner,
            None,
            Some(&json!({"name": "Makanan"})),
        )
        .await;
    let customer = app
        .send(
            "POST",
            "/api/v1/customers",
            owner,
            None,
            Some(&testkit::customer_body("a@example.id")),
        )
        .await;
    let order = app
        .order(
            owner,
            &json!({"lines": [{"product_id": product["id"], "quantity": 1}]}),
        )
        .await;
    // A dead mail of A's (no worker runs here, so it is queued directly): retryable by A.
    let plan = notifications::domain::Plan {
        template: notifications::Template::PasswordReset,
        recipient: notifications::Recipient {
            kind: platform::pii::SubjectKind::Staff,
            id: a_staff.id.into(),
        },
    };
    let delivery = notifications::repo::queue(
        &app.system,
        a.tenant,
        uuid::Uuid::now_v7(),
        "direct",
        &plan,
        &json!({}),
        None,
    )
    .await
    .unwrap()
    .unwrap();
    sqlx::query(
        "update notification_deliveries set status = 'dead' where tenant_id = $1 and id = $2",
    )
    .bind(a.tenant)
    .bind(delivery.0)
    .execute(app.system.pool())
    .await
    .unwrap();
    let customer: Value = customer.json().await.unwrap();
    let request = app
        .send(
            "POST",
            "/api/v1/privacy/requests",
            owner,
            None,
            Some(&json!({"type": "rectification", "subject": {"kind": "customer", "id": customer["id"]}})),
        )
        .await;
    assert_eq!(request.status(), 201);
    let shift = app
        .send(
            "POST",
            "/api/v1/shifts",
            a_staff,
            None,
            Some(&json!({"opening_float_minor": 0})),
        )
        .await;
    assert_eq!(shift.status(), 201);
    Fixtures {
        shift: id(&shift.json().await.unwrap()),
        privacy_request: id(&request.json().await.unwrap()),
        delivery: delivery.to_string(),
        staff: a_staff.id.to_string(),
        product: id(&product),
        category: id(&category.json().await.unwrap()),
        customer: id(&customer),
        order: id(&order),
    }
}

/// The id of tenant A for every path parameter of every route. A route with a parameter
/// missing here fails the test: give it a fixture of tenant A.
fn ids_of(f: &Fixtures) -> impl Fn(&str, &str) -> Option<String> + '_ {
    move |path: &str, param: &str| {
        let kind = path.strip_prefix("/api/v1/")?.split('/').next()?;
        match (kind, param) {
            ("users", "id") => Some(f.staff.clone()),
            ("products", "id") => Some(f.product.clone()),
            ("categories", "id") => Some(f.category.clone()),
            ("customers", "id") => Some(f.customer.clone()),
            ("orders", "id") => Some(f.order.clone()),
            ("notifications", "id") => Some(f.delivery.clone()),
            ("privacy", "id") => Some(f.privacy_request.clone()),
            ("shifts", "id") => Some(f.shift.clone()),
            _ => None,
        }
    }
}

#[tokio::test]
async fn another_tenants_ids_answer_404_and_change_nothing() {
    let app = TestApp::spawn().await;
    let a = app.merchant().await;
    let a_cashier = app.staff(&a, Role::Cashier).await;
    let b = app.merchant().await;
    let routes = routes(&spec(&app).await);
    let fixtures = fixtures(&app, &a, &a_cashier).await;
    let ids = ids_of(&fixtures);
    let before = app.outbox_count(a.tenant).await;
    let mut checked = 0;
    for route in routes
        .iter()
        .filter(|r| r.permission.is_some() && r.path.contains('{'))
    {
        let path = fill(&route.path, &ids)
            .unwrap_or_else(|| panic!("no tenant-A fixture for {}: add one to ids_of", route.path));
        // A body that passes validation, so the id is what is judged: a 422 would hide whether
        // the route finds another tenant's object.
        let body = valid_body(&route.method, &route.path);
        let status = call_with(&app, route, &path, Some(&b.owner.bearer()), body).await;
        assert_eq!(
            status, 404,
            "{} {} with tenant A's id as tenant B",
            route.method, route.path
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} routes with ids");
    assert_eq!(
        app.outbox_count(a.tenant).await,
        before,
        "tenant B's calls changed tenant A"
    );
    // A's cashier is intact and still signed in.
    assert_eq!(
        app.get_as("/api/v1/me", &a_cashier.bearer()).await.status(),
        200
    );
}

#[test]
fn docs_api_md_holds_the_generated_permission_matrix() {
    let matrix = gateway::app::permission_matrix();
    let doc = std::fs::read_to_string(workspace_root().join("docs/API.md")).unwrap();
    assert!(
        doc.contains(&matrix),
        "docs/API.md's permission matrix is stale: paste the output of `cargo run -p gateway -- permissions`"
    );
}
