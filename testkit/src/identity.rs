//! Identity helpers: a merchant signed up through the real onboarding endpoint, staff invited
//! and accepted through the real endpoints, and the mailed tokens read back from the outbox
//! events that carry them (sealed under the person's key, opened here like the notifications
//! worker will).

use platform::{
    Role,
    id::{TenantId, UserId},
    pii::Sealed,
};
use serde_json::{Value, json};

use crate::TestApp;

pub const PASSWORD: &str = "kopi susu gula aren 42";

/// A signed-up merchant and its signed-in owner.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub tenant: TenantId,
    pub slug: String,
    pub owner: Staff,
}

/// A signed-in staff member.
#[derive(Debug, Clone)]
pub struct Staff {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub access: String,
    pub refresh: String,
}

impl Staff {
    pub fn actor(&self) -> platform::events::Actor {
        platform::events::Actor::User { id: self.id }
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.access)
    }
}

/// The onboarding body for a fresh merchant (unique slug and email).
pub fn signup_body() -> Value {
    let id = uuid::Uuid::now_v7().simple().to_string();
    json!({
        "business_name": format!("Toko {}", &id[20..]),
        "slug": format!("toko-{id}"),
        "locale": "id",
        "country": "ID",
        "owner": {
            "full_name": "Budi Santoso",
            "email": format!("budi.{id}@example.id"),
            "phone": "+628123456789",
            "password": PASSWORD,
        },
        "consents": [
            {"purpose": "account", "granted": true},
            {"purpose": "marketing", "granted": false},
        ],
    })
}

impl TestApp {
    pub async fn post_json(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(bearer) = bearer {
            request = request.header("authorization", bearer);
        }
        request.send().await.unwrap()
    }

    pub async fn get_as(&self, path: &str, bearer: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("authorization", bearer)
            .send()
            .await
            .unwrap()
    }

    /// Signs a merchant up through `POST /api/v1/onboarding/merchants` and signs its owner in.
    pub async fn merchant(&self) -> Merchant {
        let body = signup_body();
        let response = self
            .post_json("/api/v1/onboarding/merchants", None, &body)
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let created: Value = response.json().await.unwrap();
        let slug = body["slug"].as_str().unwrap().to_owned();
        let email = body["owner"]["email"].as_str().unwrap().to_owned();
        let tokens = self.login(&slug, &email, PASSWORD).await;
        Merchant {
            tenant: created["tenant"]["id"].as_str().unwrap().parse().unwrap(),
            slug,
            owner: Staff {
                id: created["owner"]["id"].as_str().unwrap().parse().unwrap(),
                email,
                role: Role::Owner,
                access: tokens["access_token"].as_str().unwrap().to_owned(),
                refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
            },
        }
    }

    /// A merchant whose owner has verified their address through the mailed link, as a shop
    /// must before it writes to any customer.
    pub async fn verified_merchant(&self) -> Merchant {
        let merchant = self.merchant().await;
        self.verify_owner(&merchant).await;
        merchant
    }

    /// The token of the owner's email-verification mail.
    pub async fn owner_verification_token(&self, merchant: &Merchant) -> String {
        self.mailed_token(
            merchant.tenant,
            merchant.owner.id,
            "staff.email_verification_requested",
            platform::events::sealed::EMAIL_VERIFICATION_TOKEN,
        )
        .await
    }

    /// The owner verifies their address through the mailed link.
    pub async fn verify_owner(&self, merchant: &Merchant) {
        let token = self.owner_verification_token(merchant).await;
        let verified = self
            .post_json(
                "/api/v1/auth/verify-email",
                None,
                &json!({ "token": token }),
            )
            .await;
        assert_eq!(verified.status(), 204);
    }

    /// Signs in; panics unless it succeeds.
    pub async fn login(&self, slug: &str, email: &str, password: &str) -> Value {
        let response = self
            .post_json(
                "/api/v1/auth/login",
                None,
                &json!({"tenant": slug, "email": email, "password": password}),
            )
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// Invites a staff member with `role` as the merchant's owner, accepts, signs them in.
    pub async fn staff(&self, merchant: &Merchant, role: Role) -> Staff {
        let email = format!("staff.{}@example.id", uuid::Uuid::now_v7().simple());
        let response = self
            .post_json(
                "/api/v1/users/invitations",
                Some(&merchant.owner.bearer()),
                &json!({"email": email, "role": role, "locale": "en"}),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let invited: Value = response.json().await.unwrap();
        let user: UserId = invited["user_id"].as_str().unwrap().parse().unwrap();
        let token = self
            .mailed_token(
                merchant.tenant,
                user,
                "staff.invited",
                users::invitations::TOKEN_FIELD,
            )
            .await;
        let response = self
            .post_json(
                "/api/v1/invitations/accept",
                None,
                &json!({
                    "token": token, "full_name": "Siti Aminah", "password": PASSWORD,
                    "consents": [{"purpose": "account", "granted": true}],
                }),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let tokens = self.login(&merchant.slug, &email, PASSWORD).await;
        Staff {
            id: user,
            email,
            role,
            access: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// The token of the latest `event_type` event for `user`, opened from its sealed form.
    pub async fn mailed_token(
        &self,
        tenant: TenantId,
        user: UserId,
        event_type: &str,
        field: &'static str,
    ) -> String {
        let payload: Value = sqlx::query_scalar(
            "select payload from outbox where tenant_id = $1 and event_type = $2 and payload->>'user_id' = $3
             order by seq desc limit 1",
        )
        .bind(tenant)
        .bind(event_type)
        .bind(user.to_string())
        .fetch_one(self.system.pool())
        .await
        .unwrap_or_else(|e| panic!("no {event_type} event for {user}: {e}"));
        self.open_token(tenant, user.0, &payload, field).await
    }

    /// The token of the latest `event_type` event about data subject `subject` (the privacy
    /// events name `"subject": {"kind", "id"}`), opened from its sealed form.
    pub async fn subject_token(
        &self,
        tenant: TenantId,
        subject: uuid::Uuid,
        event_type: &str,
    ) -> String {
        self.request_token(tenant, subject, event_type, None).await
    }

    /// Like [`TestApp::subject_token`], from the event of one data-subject request when
    /// `request` is given (a person may have several waiting).
    pub async fn request_token(
        &self,
        tenant: TenantId,
        subject: uuid::Uuid,
        event_type: &str,
        request: Option<&str>,
    ) -> String {
        let payload: Value = sqlx::query_scalar(
            "select payload from outbox where tenant_id = $1 and event_type = $2
               and payload->'subject'->>'id' = $3
               and ($4::text is null or payload->>'request_id' = $4)
             order by seq desc limit 1",
        )
        .bind(tenant)
        .bind(event_type)
        .bind(subject.to_string())
        .bind(request)
        .fetch_one(self.system.pool())
        .await
        .unwrap_or_else(|e| panic!("no {event_type} event about {subject}: {e}"));
        let field = match event_type {
            "consent.confirmation_requested" => platform::events::sealed::CONSENT_TOKEN,
            _ => platform::events::sealed::PRIVACY_TOKEN,
        };
        self.open_token(tenant, subject, &payload, field).await
    }

    async fn open_token(
        &self,
        tenant: TenantId,
        subject: uuid::Uuid,
        payload: &Value,
        field: &'static str,
    ) -> String {
        let sealed = Sealed::from_base64(payload["token_sealed"].as_str().unwrap()).unwrap();
        let mut tx = self.tenant_tx(tenant).await;
        let opened = self
            .state
            .pii
            .open(&mut tx, platform::pii::SubjectId(subject), field, &sealed)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        opened.value().unwrap().to_owned()
    }

    /// Outbox rows of a tenant (every committed change writes at least one). The notification
    /// sender's `pii.accessed` records are left out: a mail test running its workers at the same
    /// time may mail any test's tenant, which is no change made by a request.
    pub async fn outbox_count(&self, tenant: TenantId) -> i64 {
        sqlx::query_scalar(
            "select count(*) from outbox where tenant_id = $1
               and not (event_type = 'pii.accessed' and actor->>'name' = 'notifications')",
        )
        .bind(tenant)
        .fetch_one(self.system.pool())
        .await
        .unwrap()
    }
}
