//! Access tokens at the edge: only EdDSA tokens signed by our keys, for our issuer and
//! audience, unexpired, of a live session, are accepted. Everything else is 401.

use auth::keys::{Claims, Keys};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use testkit::{Merchant, TestApp};

async fn status_with(app: &TestApp, token: &str) -> u16 {
    app.get_as("/api/v1/me", &format!("Bearer {token}"))
        .await
        .status()
        .as_u16()
}

fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn unsigned(header: Value, claims: &Claims) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_string(claims).unwrap())
    )
}

async fn merchant() -> (TestApp, Merchant, Keys) {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let keys = Keys::from_config(&app.state.config.auth).unwrap();
    (app, merchant, keys)
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_401() {
    let (app, merchant, keys) = merchant().await;
    let good = merchant.owner.access.clone();
    assert_eq!(status_with(&app, &good).await, 200);
    let claims = claims_of(&good);
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();

    // alg: none
    let none = unsigned(json!({"alg": "none", "typ": "JWT", "kid": kid}), &claims);
    assert_eq!(status_with(&app, &none).await, 401);

    // HS256 "signed" with our public key (the classic algorithm-confusion attack), both as the
    // JWKS `x` and as its decoded bytes.
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    for secret in [x.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(&x).unwrap()] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.clone());
        let hs = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(status_with(&app, &hs).await, 401);
    }

    // Signed by us, but expired / for another audience / another issuer.
    let now = chrono::Utc::now().timestamp();
    let expired = Claims {
        iat: now - 1000,
        exp: now - 60,
        ..claims.clone()
    };
    assert_eq!(status_with(&app, &keys.sign(&expired).unwrap()).await, 401);
    let elsewhere = Claims {
        aud: "another-api".into(),
        ..claims.clone()
    };
    assert_eq!(
        status_with(&app, &keys.sign(&elsewhere).unwrap()).await,
        401
    );
    let impostor = Claims {
        iss: "evil".into(),
        ..claims.clone()
    };
    assert_eq!(status_with(&app, &keys.sign(&impostor).unwrap()).await, 401);

    // A role edited into a valid token breaks its signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["role"] = json!("platform_admin");
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_eq!(status_with(&app, &parts.join(".")).await, 401);

    // The same claims signed properly still work: the refusals above were for the right reasons.
    assert_eq!(status_with(&app, &keys.sign(&claims).unwrap()).await, 200);
    // Malformed headers are 401 too.
    let no_scheme = app.get_as("/api/v1/me", &good).await;
    assert_eq!(no_scheme.status(), 401);
}

#[tokio::test]
async fn a_token_of_a_revoked_session_is_401_at_once() {
    let (app, merchant, keys) = merchant().await;
    let claims = claims_of(&merchant.owner.access);
    assert_eq!(status_with(&app, &merchant.owner.access).await, 200);
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let revoked = app
        .state
        .sessions
        .revoke_user(&mut tx, merchant.owner.actor(), merchant.owner.id, "test")
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    tx.commit().await.unwrap();
    assert_eq!(status_with(&app, &merchant.owner.access).await, 401);
    // Even a fresh, perfectly signed token naming that session.
    assert_eq!(status_with(&app, &keys.sign(&claims).unwrap()).await, 401);
}

#[tokio::test]
async fn the_tenant_comes_from_the_token_never_from_headers() {
    let app = TestApp::spawn().await;
    let a = app.merchant().await;
    let b = app.merchant().await;
    let response = app
        .client
        .get(app.url("/api/v1/tenant"))
        .header("authorization", b.owner.bearer())
        .header("x-tenant-id", a.tenant.to_string())
        .header("x-tenant-slug", a.slug.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tenant: Value = response.json().await.unwrap();
    assert_eq!(tenant["id"], b.tenant.to_string());
    // No token, no tenant: a header alone is not a caller.
    let anonymous = app
        .client
        .get(app.url("/api/v1/tenant"))
        .header("x-tenant-id", a.tenant.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
