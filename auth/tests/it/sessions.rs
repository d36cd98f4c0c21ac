//! Sign-in, refresh rotation with reuse detection, logout, revocation, failed-login limits.

use serde_json::{Value, json};
use testkit::{PASSWORD, TestApp};

async fn me(app: &TestApp, access: &str) -> reqwest::Response {
    app.get_as("/api/v1/me", &format!("Bearer {access}")).await
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/refresh",
        None,
        &json!({ "refresh_token": token }),
    )
    .await
}

#[tokio::test]
async fn verify_login_refresh_logout_and_the_old_tokens_stop_working() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;

    let before: Value = me(&app, &owner.access).await.json().await.unwrap();
    assert_eq!(before["user"]["email_verified"], false);
    assert_eq!(before["user"]["email"], owner.email.as_str());
    assert_eq!(before["tenant"]["slug"], merchant.slug.as_str());
    assert_eq!(before["user"]["role"], "owner");

    // Verify the email with the token the verification mail carries; the link works once.
    let token = app
        .mailed_token(
            merchant.tenant,
            owner.id,
            "staff.email_verification_requested",
            "events.email_verification_token",
        )
        .await;
    let verified = app
        .post_json(
            "/api/v1/auth/verify-email",
            None,
            &json!({ "token": token }),
        )
        .await;
    assert_eq!(verified.status(), 204);
    let again = app
        .post_json(
            "/api/v1/auth/verify-email",
            None,
            &json!({ "token": token }),
        )
        .await;
    assert_eq!(again.status(), 400);
    let after: Value = me(&app, &owner.access).await.json().await.unwrap();
    assert_eq!(after["user"]["email_verified"], true);

    // Refresh rotates both tokens.
    let rotated = refresh(&app, &owner.refresh).await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let access = rotated["access_token"].as_str().unwrap();
    let refresh_token = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(refresh_token, owner.refresh);
    assert_eq!(rotated["expires_in"], 900);
    assert_eq!(me(&app, access).await.status(), 200);

    // Logout ends the session: both access tokens and the refresh token are refused at once.
    let logout = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_eq!(me(&app, access).await.status(), 401);
    assert_eq!(me(&app, &owner.access).await.status(), 401);
    assert_eq!(refresh(&app, refresh_token).await.status(), 401);
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let first = merchant.owner.refresh.clone();
    let second: Value = refresh(&app, &first).await.json().await.unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    let second_access = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &second_access).await.status(), 200);

    // The stolen first token comes back: refused, and the legitimate chain dies with it.
    assert_eq!(refresh(&app, &first).await.status(), 401);
    assert_eq!(refresh(&app, &second_refresh).await.status(), 401);
    assert_eq!(me(&app, &second_access).await.status(), 401);
    let reason: String =
        sqlx::query_scalar("select revoked_reason from sessions where tenant_id = $1")
            .bind(merchant.tenant)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(reason, "refresh_token_reuse");

    // A new login is a new family and works.
    let tokens = app
        .login(&merchant.slug, &merchant.owner.email, PASSWORD)
        .await;
    assert_eq!(
        me(&app, tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    // Garbage is 401, not 500.
    assert_eq!(refresh(&app, "not-a-token").await.status(), 401);
}

#[tokio::test]
async fn wrong_passwords_are_limited_per_account_with_retry_after() {
    let app = TestApp::builder()
        .set("WARUNG_AUTH__MAX_FAILURES_PER_ACCOUNT", "3")
        .start()
        .await;
    let merchant = app.merchant().await;
    let attempt = |password: &'static str| {
        let body =
            json!({"tenant": merchant.slug, "email": merchant.owner.email, "password": password});
        let app = &app;
        async move { app.post_json("/api/v1/auth/login", None, &body).await }
    };
    for _ in 0..3 {
        let response = attempt("wrong password 123").await;
        assert_eq!(response.status(), 401);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "unauthorized");
    }
    // Locked: even the right password waits for the window.
    let locked = attempt(PASSWORD).await;
    testkit::rate_limited(locked, "failed_sign_ins_per_account").await;
    // Unknown accounts and shops answer like a wrong password.
    let unknown = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"tenant": merchant.slug, "email": "nobody@example.id", "password": PASSWORD}),
        )
        .await;
    assert_eq!(unknown.status(), 401);
    let no_shop = app.post_json("/api/v1/auth/login", None,
        &json!({"tenant": "no-such-shop-here", "email": merchant.owner.email, "password": PASSWORD})).await;
    assert_eq!(no_shop.status(), 401);
}

#[tokio::test]
async fn wrong_passwords_are_limited_per_client_address() {
    // The merchant signs up through an unlimited app; the limited one is called only from
    // 127.0.0.3 and 127.0.0.4, addresses no other test uses.
    let setup = TestApp::spawn().await;
    let merchant = setup.merchant().await;
    let app = TestApp::builder()
        .set("WARUNG_AUTH__MAX_FAILURES_PER_IP", "2")
        .start()
        .await;
    let mut conn = app.state.redis.conn();
    let keys = [
        app.state.redis.key("login-failures:ip:127.0.0.3"),
        app.state.redis.key("login-failures:ip:127.0.0.4"),
    ];
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    let attempt = |from: [u8; 4], email: String, password: &'static str| {
        app.client_from(from)
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"tenant": merchant.slug, "email": email, "password": password}))
            .send()
    };
    // Different accounts, one address.
    for n in 0..2 {
        let response = attempt(
            [127, 0, 0, 3],
            format!("guess{n}@example.id"),
            "wrong password 123",
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 401);
    }
    let refused = attempt([127, 0, 0, 3], merchant.owner.email.clone(), PASSWORD)
        .await
        .unwrap();
    testkit::rate_limited(refused, "failed_sign_ins_per_address").await;
    // Another address is not affected.
    let other = attempt([127, 0, 0, 4], merchant.owner.email.clone(), PASSWORD)
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn password_reset_answers_the_same_for_unknown_accounts_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let request = |email: String| {
        let body = json!({"tenant": merchant.slug, "email": email});
        let app = &app;
        async move {
            app.post_json("/api/v1/auth/password-reset/request", None, &body)
                .await
        }
    };
    let unknown = request("nobody@example.id".into()).await;
    let known = request(owner.email.clone()).await;
    assert_eq!(unknown.status(), 202);
    assert_eq!(known.status(), 202);
    assert_eq!(unknown.text().await.unwrap(), known.text().await.unwrap());

    let token = app
        .mailed_token(
            merchant.tenant,
            owner.id,
            "staff.password_reset_requested",
            "events.password_reset_token",
        )
        .await;
    let new_password = "teh manis hangat 2026";
    let weak = app
        .post_json(
            "/api/v1/auth/password-reset/confirm",
            None,
            &json!({"token": token, "password": "short"}),
        )
        .await;
    assert_eq!(weak.status(), 422);
    let confirmed = app
        .post_json(
            "/api/v1/auth/password-reset/confirm",
            None,
            &json!({"token": token, "password": new_password}),
        )
        .await;
    assert_eq!(confirmed.status(), 204);
    // Single use; every session ended; only the new password works.
    let reused = app
        .post_json(
            "/api/v1/auth/password-reset/confirm",
            None,
            &json!({"token": token, "password": new_password}),
        )
        .await;
    assert_eq!(reused.status(), 400);
    assert_eq!(me(&app, &owner.access).await.status(), 401);
    assert_eq!(refresh(&app, &owner.refresh).await.status(), 401);
    let old = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"tenant": merchant.slug, "email": owner.email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(old.status(), 401);
    app.login(&merchant.slug, &owner.email, new_password).await;
}

async fn forget(app: &TestApp, keys: &[String]) {
    let mut conn = app.state.redis.conn();
    let _: i64 = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_wrong_passwords_get_no_more_checks_than_the_limit() {
    let app = TestApp::builder()
        .set("WARUNG_AUTH__MAX_FAILURES_PER_ACCOUNT", "5")
        .start()
        .await;
    let merchant = app.merchant().await;
    let body = json!({"tenant": merchant.slug, "email": merchant.owner.email, "password": "wrong password 123"});
    let attempts = (0..40).map(|_| app.post_json("/api/v1/auth/login", None, &body));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 35), "{statuses:?}");
}

#[tokio::test]
async fn a_strangers_guesses_lock_the_stranger_out_not_the_person() {
    let app = TestApp::builder()
        .set("WARUNG_AUTH__MAX_FAILURES_PER_ACCOUNT", "3")
        .start()
        .await;
    let merchant = app.merchant().await;
    let attempt = |from: [u8; 4], password: &'static str| {
        app.client_from(from)
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"tenant": merchant.slug, "email": merchant.owner.email, "password": password}))
            .send()
    };
    for _ in 0..3 {
        let wrong = attempt([127, 0, 0, 5], "wrong password 123").await.unwrap();
        assert_eq!(wrong.status(), 401);
    }
    let locked = attempt([127, 0, 0, 5], PASSWORD).await.unwrap();
    testkit::rate_limited(locked, "failed_sign_ins_per_account").await;
    // The owner, elsewhere, signs in.
    let owner = attempt([127, 0, 0, 6], PASSWORD).await.unwrap();
    assert_eq!(owner.status(), 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited_not_the_proxy() {
    let setup = TestApp::spawn().await;
    let merchant = setup.merchant().await;
    let keys: Vec<String> = ["198.51.100.7", "198.51.100.8", "127.0.0.7"]
        .iter()
        .map(|ip| {
            setup
                .state
                .redis
                .key(format_args!("login-failures:ip:{ip}"))
        })
        .collect();
    forget(&setup, &keys).await;
    let behind_proxy = TestApp::builder()
        .set("WARUNG_AUTH__MAX_FAILURES_PER_IP", "2")
        .set("WARUNG_HTTP__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)
        .start()
        .await;
    let attempt =
        |app: &TestApp, from: [u8; 4], forwarded: &str, email: String, password: &'static str| {
            app.client_from(from)
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", forwarded)
                .json(&json!({"tenant": merchant.slug, "email": email, "password": password}))
                .send()
        };
    for n in 0..2 {
        let wrong = attempt(
            &behind_proxy,
            [127, 0, 0, 1],
            "198.51.100.7",
            format!("guess{n}@example.id"),
            "wrong password 123",
        )
        .await
        .unwrap();
        assert_eq!(wrong.status(), 401);
    }
    // The client behind the proxy is refused; a client forging its leftmost hop still is.
    for forwarded in ["198.51.100.7", "203.0.113.1, 198.51.100.7"] {
        let refused = attempt(
            &behind_proxy,
            [127, 0, 0, 1],
            forwarded,
            merchant.owner.email.clone(),
            PASSWORD,
        )
        .await
        .unwrap();
        assert_eq!(refused.status(), 429, "{forwarded}");
    }
    // Another client of the same proxy is not.
    let other = attempt(
        &behind_proxy,
        [127, 0, 0, 1],
        "198.51.100.8",
        merchant.owner.email.clone(),
        PASSWORD,
    )
    .await
    .unwrap();
    assert_eq!(other.status(), 200);

    // A peer that is not a trusted proxy cannot choose its address by header.
    for n in 0..2 {
        let wrong = attempt(
            &behind_proxy,
            [127, 0, 0, 7],
            &format!("192.0.2.{n}"),
            format!("guess{n}@example.id"),
            "wrong password 123",
        )
        .await
        .unwrap();
        assert_eq!(wrong.status(), 401);
    }
    let refused = attempt(
        &behind_proxy,
        [127, 0, 0, 7],
        "192.0.2.99",
        merchant.owner.email.clone(),
        PASSWORD,
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 429);
    forget(&setup, &keys).await;
}

#[tokio::test]
async fn a_reset_request_and_a_data_request_answer_no_sooner_for_unknown_addresses() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    for (path, body) in [
        (
            "/api/v1/auth/password-reset/request",
            json!({"tenant": merchant.slug, "email": "nobody@example.id"}),
        ),
        (
            "/api/v1/auth/password-reset/request",
            json!({"tenant": "no-such-shop-anywhere", "email": "nobody@example.id"}),
        ),
        (
            "/api/v1/privacy/requests",
            json!({"type": "access", "tenant": merchant.slug, "email": "nobody@example.id"}),
        ),
    ] {
        let started = std::time::Instant::now();
        let response = app.post_json(path, None, &body).await;
        assert_eq!(response.status(), 202);
        // The work done for a known address (sealing, storing, mailing) takes well under this
        // floor, so an unknown address must not answer sooner than it either.
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(400),
            "{path} answered an unknown address in {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_request_that_read_a_session_live_before_its_logout_cannot_revive_it() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let access = merchant.owner.access.clone();
    assert_eq!(me(&app, &access).await.status(), 200, "cached as live");
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let session = platform::id::SessionId(claims["sid"].as_str().unwrap().parse().unwrap());
    let logout = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    // A request that read the session live from PostgreSQL just before the logout committed
    // caches it now, after the revocation cleared the cache.
    auth::sessions::remember_live(&app.state.redis, merchant.tenant, session, 10_000).await;
    assert_eq!(
        me(&app, &access).await.status(),
        401,
        "revived by a late cache write"
    );
}

#[tokio::test]
async fn a_suspended_shop_is_signed_out_everywhere_until_it_is_active_again() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let set_status = |status: &'static str| {
        sqlx::query("update tenants set status = $2, updated_at = now() where id = $1")
            .bind(merchant.tenant)
            .bind(status)
            .execute(app.system.pool())
    };
    set_status("suspended").await.unwrap();
    assert_eq!(me(&app, &owner.access).await.status(), 401);
    assert_eq!(refresh(&app, &owner.refresh).await.status(), 401);
    let login = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"tenant": merchant.slug, "email": owner.email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), 401);
    // Suspension ends nothing for good: once active, the same session works again.
    set_status("active").await.unwrap();
    assert_eq!(me(&app, &owner.access).await.status(), 200);
}

/// Reset requests spend the client address's public-write budget: past it, 429 naming the
/// limit, and no further reset token is issued for the account.
#[tokio::test]
async fn reset_requests_from_one_address_are_throttled_and_the_refused_one_issues_nothing() {
    // Its own Redis prefix: the hour's counters start at zero on every run.
    let app = TestApp::builder()
        .isolated()
        .set("WARUNG_RATE_LIMIT__PUBLIC_WRITES_PER_IP_PER_HOUR", "3")
        .start()
        .await;
    // The requests come from an address of their own, apart from the sign-up's.
    let client = app.client_from([127, 0, 0, 91]);
    let merchant = app.merchant().await;
    let tokens = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from auth_tokens where tenant_id = $1 and purpose = 'password_reset'",
        )
        .bind(merchant.tenant)
        .fetch_one(app.system.pool())
        .await
        .unwrap()
    };
    let body = json!({"tenant": merchant.slug, "email": merchant.owner.email});
    let send = || {
        client
            .post(app.url("/api/v1/auth/password-reset/request"))
            .json(&body)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(send().await.unwrap().status(), 202);
    }
    assert_eq!(tokens().await, 3);
    testkit::rate_limited(send().await.unwrap(), "public_writes").await;
    assert_eq!(tokens().await, 3, "the refused request issued a token");
}
