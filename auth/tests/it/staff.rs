//! Staff management: invitations, roles and their limits, deletion ending sessions at once.

use platform::Role;
use serde_json::{Value, json};
use testkit::{PASSWORD, TestApp};

async fn patch(
    app: &TestApp,
    bearer: &str,
    id: impl std::fmt::Display,
    body: Value,
) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/v1/users/{id}")))
        .header("authorization", bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, bearer: &str, id: impl std::fmt::Display) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/api/v1/users/{id}")))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_invited_cashier_signs_in_and_is_kept_out_of_staff_management() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;

    let me: Value = app
        .get_as("/api/v1/me", &cashier.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["role"], "cashier");
    assert_eq!(
        me["user"]["email_verified"], true,
        "accepting the mailed link verifies the email"
    );
    assert_eq!(me["user"]["full_name"], "Siti Aminah");
    assert_eq!(me["consents"][0]["purpose"], "account");

    // A cashier may not list, invite, change or delete staff.
    assert_eq!(
        app.get_as("/api/v1/users", &cashier.bearer())
            .await
            .status(),
        403
    );
    let invite = app
        .post_json(
            "/api/v1/users/invitations",
            Some(&cashier.bearer()),
            &json!({"email": "x@example.id", "role": "cashier"}),
        )
        .await;
    assert_eq!(invite.status(), 403);
    assert_eq!(
        patch(
            &app,
            &cashier.bearer(),
            merchant.owner.id,
            json!({"role": "cashier"})
        )
        .await
        .status(),
        403
    );

    // The owner sees both accounts, with names opened (and the read audited).
    let list: Value = app
        .get_as("/api/v1/users?limit=1", &merchant.owner.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let cursor = list["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get_as(
            &format!("/api/v1/users?limit=1&cursor={cursor}"),
            &merchant.owner.bearer(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"][0]["id"], cashier.id.to_string());
    assert_eq!(rest["items"][0]["email"], cashier.email.as_str());
    let accessed: i64 = sqlx::query_scalar(
        "select count(*) from outbox where tenant_id = $1 and event_type = 'pii.accessed' and payload->'resource'->>'id' = $2",
    )
    .bind(merchant.tenant)
    .bind(cashier.id.to_string())
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert!(accessed >= 1);

    // The same email cannot be invited twice while the account lives.
    let again = app
        .post_json(
            "/api/v1/users/invitations",
            Some(&merchant.owner.bearer()),
            &json!({"email": cashier.email, "role": "manager"}),
        )
        .await;
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn managers_cannot_make_or_touch_owners_and_the_last_owner_stays() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let manager = app.staff(&merchant, Role::Manager).await;
    let owner = &merchant.owner;

    let invite_owner = app
        .post_json(
            "/api/v1/users/invitations",
            Some(&manager.bearer()),
            &json!({"email": "boss@example.id", "role": "owner"}),
        )
        .await;
    assert_eq!(invite_owner.status(), 403);
    assert_eq!(
        patch(
            &app,
            &manager.bearer(),
            owner.id,
            json!({"role": "cashier"})
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        delete(&app, &manager.bearer(), owner.id).await.status(),
        403
    );
    assert_eq!(
        patch(
            &app,
            &manager.bearer(),
            manager.id,
            json!({"role": "owner"})
        )
        .await
        .status(),
        403
    );

    // The only owner cannot step down or be deleted.
    let demote = patch(&app, &owner.bearer(), owner.id, json!({"role": "manager"})).await;
    assert_eq!(demote.status(), 409);
    assert_eq!(demote.json::<Value>().await.unwrap()["code"], "last_owner");
    assert_eq!(delete(&app, &owner.bearer(), owner.id).await.status(), 409);

    // Promoting the manager ends their sessions (the old token carries the old role).
    let promoted = patch(
        &app,
        &owner.bearer(),
        manager.id,
        json!({"role": "owner", "full_name": "Siti A."}),
    )
    .await;
    assert_eq!(promoted.status(), 200);
    let profile: Value = promoted.json().await.unwrap();
    assert_eq!(profile["role"], "owner");
    assert_eq!(profile["full_name"], "Siti A.");
    assert_eq!(
        app.get_as("/api/v1/me", &manager.bearer()).await.status(),
        401
    );
    // Now there are two owners: the first may step down.
    assert_eq!(
        patch(&app, &owner.bearer(), owner.id, json!({"role": "manager"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn deleting_an_account_ends_its_sessions_at_once_and_frees_its_email() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    assert_eq!(
        app.get_as("/api/v1/me", &cashier.bearer()).await.status(),
        200
    );

    assert_eq!(
        delete(&app, &merchant.owner.bearer(), cashier.id)
            .await
            .status(),
        204
    );
    // The ended session is recorded as the owner's doing.
    let revoker: String = sqlx::query_scalar(
        "select actor->>'id' from outbox where tenant_id = $1 and event_type = 'session.revoked'",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(revoker, merchant.owner.id.to_string());
    assert_eq!(
        app.get_as("/api/v1/me", &cashier.bearer()).await.status(),
        401
    );
    let refresh = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            &json!({"refresh_token": cashier.refresh}),
        )
        .await;
    assert_eq!(refresh.status(), 401);
    let login = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"tenant": merchant.slug, "email": cashier.email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), 401);
    // Nothing to sign in with is kept for a deleted account.
    let hashes: i64 = sqlx::query_scalar("select count(*) from credentials where user_id = $1")
        .bind(cashier.id)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    assert_eq!(hashes, 0, "a deleted account keeps no password hash");
    assert_eq!(
        delete(&app, &merchant.owner.bearer(), cashier.id)
            .await
            .status(),
        404
    );
    let reinvite = app
        .post_json(
            "/api/v1/users/invitations",
            Some(&merchant.owner.bearer()),
            &json!({"email": cashier.email, "role": "cashier"}),
        )
        .await;
    assert_eq!(reinvite.status(), 201);
}

/// An owner invited but never signed up is no owner: the only one who signed up can neither
/// step down, delete their account nor have it erased, while that invitation is pending (#18).
#[tokio::test]
async fn an_owner_invitation_never_accepted_does_not_count_as_an_owner() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let email = format!("co-owner.{}@example.id", uuid::Uuid::now_v7().simple());
    let invited = app
        .post_json(
            "/api/v1/users/invitations",
            Some(&owner.bearer()),
            &json!({"email": email, "role": "owner", "locale": "en"}),
        )
        .await;
    assert_eq!(invited.status(), 201, "{}", invited.text().await.unwrap());
    let invitee: Value = invited.json().await.unwrap();

    let demote = patch(&app, &owner.bearer(), owner.id, json!({"role": "manager"})).await;
    assert_eq!(demote.status(), 409);
    assert_eq!(demote.json::<Value>().await.unwrap()["code"], "last_owner");
    let deleted = delete(&app, &owner.bearer(), owner.id).await;
    assert_eq!(deleted.status(), 409);
    assert_eq!(deleted.json::<Value>().await.unwrap()["code"], "last_owner");
    let erasure = app
        .post_json(
            "/api/v1/privacy/requests",
            Some(&owner.bearer()),
            &json!({"type": "erasure"}),
        )
        .await;
    assert_eq!(erasure.status(), 409, "{}", erasure.text().await.unwrap());
    assert_eq!(erasure.json::<Value>().await.unwrap()["code"], "last_owner");
    assert_eq!(
        app.get_as("/api/v1/me", &owner.bearer()).await.status(),
        200,
        "the owner is still there"
    );

    // The pending owner may go: the shop keeps its active owner.
    let id = invitee["user_id"].as_str().unwrap();
    assert_eq!(delete(&app, &owner.bearer(), id).await.status(), 204);
}
