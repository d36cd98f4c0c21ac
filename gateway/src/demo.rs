//! `warung seed demo`: an Indonesian demo shop, made through Warung's own HTTP API so that
//! everything in it is what a real shop would have: sealed PII, consent evidence, an audit
//! record for every change, mail waiting in the outbox.
//!
//! The seed serves the API routes in-process (no workers, no jobs) on a loopback port and
//! drives them like a client would. Its clock starts two days back, so the shop has two days of
//! trading behind it; the last steps run at the present. Its requests speak as a documentation
//! address (192.0.2.10, through a trusted-proxy header only this in-process server accepts), so
//! they never spend the public-write budget of the operator's own address.
//!
//! A mailed link (the owner's verification, the cashier's invitation, a customer's consent or
//! data-subject confirmation) is followed by opening its token from the outbox event, as the
//! person would by clicking it. Idempotent: when the shop's slug is taken, nothing is done.
//! Refused in production.

use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use platform::{
    clock::{Clock, ManualClock},
    config::{Config, Environment},
    db::SystemDb,
    events::sealed,
    id::TenantId,
    pii::{Sealed, SubjectId},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{modules, server};

pub const SLUG: &str = "toko-demo";
pub const SHOP_NAME: &str = "Warung Sari Rasa";
pub const OWNER_EMAIL: &str = "sari@warung-sari-rasa.example";
pub const OWNER_PASSWORD: &str = "demo-pemilik-2026";
pub const CASHIER_EMAIL: &str = "budi.kasir@warung-sari-rasa.example";
pub const CASHIER_PASSWORD: &str = "demo-kasir-2026";
/// Where the seed's requests come from (RFC 5737 TEST-NET-1).
const SEED_ADDRESS: &str = "192.0.2.10";

/// A product: name, SKU, price in rupiah, stock.
type Item = (&'static str, &'static str, i64, i64);

/// Each category with its products.
const CATALOG: [(&str, [Item; 5]); 4] = [
    (
        "Minuman",
        [
            ("Kopi Susu Gula Aren", "MNM-001", 18_000, 120),
            ("Es Teh Manis", "MNM-002", 6_000, 200),
            ("Teh Botol 450 ml", "MNM-003", 5_000, 96),
            ("Air Mineral 600 ml", "MNM-004", 4_000, 240),
            ("Jus Alpukat", "MNM-005", 15_000, 40),
        ],
    ),
    (
        "Makanan",
        [
            ("Nasi Goreng Kampung", "MKN-001", 25_000, 60),
            ("Mie Ayam Bakso", "MKN-002", 22_000, 50),
            ("Soto Ayam Lamongan", "MKN-003", 23_000, 45),
            ("Nasi Uduk Komplit", "MKN-004", 17_000, 55),
            ("Gado-Gado", "MKN-005", 18_000, 35),
        ],
    ),
    (
        "Camilan",
        [
            ("Pisang Goreng (3 pcs)", "CML-001", 10_000, 80),
            ("Keripik Singkong Balado", "CML-002", 8_000, 70),
            ("Martabak Manis Cokelat", "CML-003", 35_000, 20),
            ("Kue Lapis Legit", "CML-004", 7_000, 48),
            ("Tahu Isi (4 pcs)", "CML-005", 6_000, 90),
        ],
    ),
    (
        "Kebutuhan Dapur",
        [
            ("Beras Pandan Wangi 5 kg", "DPR-001", 78_000, 25),
            ("Minyak Goreng 1 L", "DPR-002", 19_000, 60),
            ("Gula Pasir 1 kg", "DPR-003", 17_500, 50),
            ("Telur Ayam 1 kg", "DPR-004", 29_000, 30),
            ("Kecap Manis 520 ml", "DPR-005", 23_500, 40),
        ],
    ),
];

/// Name, email local part, phone, whether they said yes to marketing.
const CUSTOMERS: [(&str, &str, &str, bool); 12] = [
    ("Ani Wijaya", "ani.wijaya", "+62 812-1000-0001", true),
    ("Budi Santoso", "budi.santoso", "+62 812-1000-0002", false),
    ("Citra Lestari", "citra.lestari", "+62 812-1000-0003", true),
    (
        "Dewi Anggraini",
        "dewi.anggraini",
        "+62 812-1000-0004",
        false,
    ),
    ("Eko Prasetyo", "eko.prasetyo", "+62 812-1000-0005", false),
    ("Fajar Nugroho", "fajar.nugroho", "+62 812-1000-0006", false),
    ("Gita Permata", "gita.permata", "+62 812-1000-0007", true),
    (
        "Hendra Gunawan",
        "hendra.gunawan",
        "+62 812-1000-0008",
        false,
    ),
    ("Indah Sari", "indah.sari", "+62 812-1000-0009", true),
    ("Joko Susilo", "joko.susilo", "+62 812-1000-0010", false),
    ("Kartika Putri", "kartika.putri", "+62 812-1000-0011", false),
    ("Lukman Hakim", "lukman.hakim", "+62 812-1000-0012", false),
];
/// The customer who restricted the processing of their data (index into `CUSTOMERS`).
const RESTRICTED: usize = 7;
/// The customer whose rectification request waits for the owner.
const RECTIFYING: usize = 1;
/// Orders per trading day, and the payment methods they cycle through.
const ORDERS_PER_DAY: usize = 8;
const METHODS: [&str; 4] = ["cash", "qr", "cash", "card"];

/// What `seed` did.
#[derive(Debug)]
pub enum Outcome {
    Created(Summary),
    /// The shop was there already; nothing was changed.
    AlreadyThere,
}

#[derive(Debug)]
pub struct Summary {
    pub tenant: TenantId,
    pub products: usize,
    pub categories: usize,
    pub customers: usize,
    pub marketing: usize,
    pub orders: usize,
    pub days: usize,
}

/// Creates the demo shop, or does nothing when it exists.
pub async fn seed(mut config: Config) -> anyhow::Result<Outcome> {
    if config.environment == Environment::Production {
        bail!("the demo shop is not made in production (environment = production)");
    }
    config.http.trusted_proxies = vec!["127.0.0.1/32".parse().map_err(anyhow::Error::msg)?];
    config.http.client_address_header = platform::http::client::ForwardedHeader::XForwardedFor;
    config.http.metrics_bind = None;
    // The instance's relay sends what the seed wrote; the seed publishes nothing itself.
    config.outbox.relay = false;
    config.jobs.scheduler = false;
    config.rate_limit.per_ip_per_second = 1_000;
    config.rate_limit.per_ip_burst = 1_000;
    // Its public writes (sign-up, confirmations) count against its own address only; a few
    // runs an hour (the test command's) must not reach the limit.
    config.rate_limit.public_writes_per_ip_per_hour = 10_000;
    let now = Utc::now();
    let opened = opening(now);
    let clock = Arc::new(ManualClock::new(opened));
    let system = SystemDb::connect(&config.database)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let state = server::connect_at(config, clock.clone())?;
    let routes = modules::with_routes_only(Vec::new(), "all")?;
    let server = server::start(listener, state.clone(), system.clone(), &routes).await?;
    let shop = Shop {
        base: format!("http://{}", server.addr),
        http: reqwest::Client::new(),
        clock,
        opened,
        system,
        state,
        tenant: TenantId(uuid::Uuid::nil()),
    };
    let outcome = shop.build(now).await;
    server.shutdown().await;
    outcome
}

/// 07:00 in Jakarta two days before `now`: the shop opens, trades that day and the next.
fn opening(now: DateTime<Utc>) -> DateTime<Utc> {
    let jakarta = TimeDelta::hours(7);
    let day = (now + jakarta).date_naive() - TimeDelta::days(2);
    day.and_time(NaiveTime::from_hms_opt(7, 0, 0).unwrap_or_default())
        .and_utc()
        - jakarta
}

struct Shop {
    base: String,
    http: reqwest::Client,
    clock: Arc<ManualClock>,
    /// When the clock started: 07:00 in Jakarta, two days back.
    opened: DateTime<Utc>,
    system: SystemDb,
    state: platform::AppState,
    tenant: TenantId,
}

impl Shop {
    async fn build(mut self, now: DateTime<Utc>) -> anyhow::Result<Outcome> {
        let signup = json!({
            "business_name": SHOP_NAME, "slug": SLUG, "locale": "id", "country": "ID",
            "owner": {
                "full_name": "Sari Wulandari", "email": OWNER_EMAIL,
                "phone": "+62 811-2000-0001", "password": OWNER_PASSWORD,
            },
            "consents": [{"purpose": "account", "granted": true}],
        });
        let (status, created) = self
            .call(
                Method::POST,
                "/api/v1/onboarding/merchants",
                None,
                Some(&signup),
            )
            .await?;
        if status == StatusCode::CONFLICT && created["code"] == "slug_taken" {
            return Ok(Outcome::AlreadyThere);
        }
        let created = require(status, StatusCode::CREATED, created, "sign the shop up")?;
        self.tenant = TenantId(text(&created["tenant"]["id"])?.parse()?);
        let owner_id = text(&created["owner"]["id"])?.to_owned();
        let token = self
            .mailed_token(
                "staff.email_verification_requested",
                "user_id",
                &owner_id,
                sealed::EMAIL_VERIFICATION_TOKEN,
            )
            .await?;
        self.ok(
            Method::POST,
            "/api/v1/auth/verify-email",
            None,
            json!({ "token": token }),
        )
        .await?;
        let owner = self.sign_in(OWNER_EMAIL, OWNER_PASSWORD).await?;
        // A VAT-registered warung: prices with PPN 11 % in them, as Indonesian shelves show.
        self.ok(
            Method::PATCH,
            "/api/v1/tenant",
            Some(&owner),
            json!({
                "address": "Jl. Melati No. 5, Bandung 40115",
                "phone": "+62 22 2000 0001",
                "tax_id": "01.234.567.8-901.000",
                "receipt_header": "Buka setiap hari 07.00-21.00",
                "receipt_footer": "Terima kasih, sampai jumpa lagi!",
            }),
        )
        .await?;
        self.ok(
            Method::PUT,
            "/api/v1/sales/settings",
            Some(&owner),
            json!({
                "prices_include_tax": true,
                "standard_rate": {"name": "PPN", "rate_bp": 1100},
                "service_charge": null,
                "cashier_discount_limit_bp": 1000,
            }),
        )
        .await?;
        self.hire_cashier(&owner).await?;

        let mut products = Vec::new();
        for (category, items) in CATALOG {
            let category = self
                .ok(
                    Method::POST,
                    "/api/v1/categories",
                    Some(&owner),
                    json!({ "name": category }),
                )
                .await?;
            for (name, sku, price, stock) in items {
                let product = self
                    .ok(
                        Method::POST,
                        "/api/v1/products",
                        Some(&owner),
                        json!({
                            "name": name, "sku": sku, "price_minor": price, "currency": "IDR",
                            "stock": stock, "category_id": category["id"],
                        }),
                    )
                    .await?;
                products.push(text(&product["id"])?.to_owned());
            }
        }

        let cashier = self.sign_in(CASHIER_EMAIL, CASHIER_PASSWORD).await?;
        let mut customers = Vec::new();
        for (name, local, phone, marketing) in CUSTOMERS {
            let customer = self
                .ok(
                    Method::POST,
                    "/api/v1/customers",
                    Some(&cashier),
                    json!({
                        "full_name": name, "email": format!("{local}@example.id"), "phone": phone,
                        "locale": "id",
                        "consents": [
                            {"purpose": "orders", "granted": true},
                            {"purpose": "receipt_email", "granted": true},
                            {"purpose": "marketing", "granted": marketing},
                        ],
                    }),
                )
                .await?;
            let id = text(&customer["id"])?.to_owned();
            if marketing {
                // Marketing is double opt-in: the customer confirms through the mailed link.
                let token = self
                    .subject_token("consent.confirmation_requested", &id, sealed::CONSENT_TOKEN)
                    .await?;
                self.ok(
                    Method::POST,
                    "/api/v1/consents/confirm",
                    None,
                    json!({ "token": token }),
                )
                .await?;
            }
            customers.push(id);
        }

        let orders = self.trade(&products, &customers).await?;

        // The present: one customer restricted the processing of their data, another asked
        // for a correction that waits for the owner.
        self.clock.advance(now - self.clock.now());
        let owner = self.sign_in(OWNER_EMAIL, OWNER_PASSWORD).await?;
        self.confirmed_request(&owner, "restriction", &customers[RESTRICTED])
            .await?;
        self.confirmed_request(&owner, "rectification", &customers[RECTIFYING])
            .await?;

        Ok(Outcome::Created(Summary {
            tenant: self.tenant,
            products: products.len(),
            categories: CATALOG.len(),
            customers: customers.len(),
            marketing: CUSTOMERS.iter().filter(|c| c.3).count(),
            orders,
            days: 2,
        }))
    }

    /// The owner invites the cashier, who accepts through the mailed link.
    async fn hire_cashier(&self, owner: &str) -> anyhow::Result<()> {
        let invited = self
            .ok(
                Method::POST,
                "/api/v1/users/invitations",
                Some(owner),
                json!({"email": CASHIER_EMAIL, "role": "cashier", "locale": "id"}),
            )
            .await?;
        let token = self
            .mailed_token(
                "staff.invited",
                "user_id",
                text(&invited["user_id"])?,
                users::invitations::TOKEN_FIELD,
            )
            .await?;
        self.ok(
            Method::POST,
            "/api/v1/invitations/accept",
            None,
            json!({
                "token": token, "full_name": "Budi Hartono", "password": CASHIER_PASSWORD,
                "consents": [{"purpose": "account", "granted": true}],
            }),
        )
        .await?;
        Ok(())
    }

    /// Two trading days at the till, 08:00 to about 17:00: every order paid in full, one paid
    /// order partly refunded by the owner, one order cancelled before payment.
    async fn trade(&self, products: &[String], customers: &[String]) -> anyhow::Result<usize> {
        let mut count = 0;
        for day in 0..2 {
            // 08:00 on the trading day; the cashier signs in at the till.
            let open = self.opened + TimeDelta::days(day) + TimeDelta::hours(1);
            self.clock.advance(open - self.clock.now());
            let mut till = self.session(CASHIER_EMAIL, CASHIER_PASSWORD).await?;
            for n in 0..ORDERS_PER_DAY {
                let seq = usize::try_from(day)? * ORDERS_PER_DAY + n;
                self.clock
                    .advance(TimeDelta::minutes(61 + 7 * i64::try_from(seq % 5)?));
                // Access tokens last minutes: the till refreshes its session for each sale.
                till = self.refresh(&till).await?;
                let cashier = till.0.as_str();
                let lines: Vec<Value> = (0..1 + seq % 3)
                    .map(|k| {
                        json!({
                            "product_id": products[(seq * 7 + k * 3) % products.len()],
                            "quantity": 1 + (seq + k) % 2,
                        })
                    })
                    .collect();
                let mut body = json!({ "lines": lines });
                if seq % 3 != 2 {
                    body["customer_id"] = json!(customers[seq % customers.len()]);
                }
                let order = self
                    .keyed(Method::POST, "/api/v1/orders", cashier, body)
                    .await?;
                count += 1;
                let id = text(&order["id"])?;
                if day == 1 && n == 5 {
                    self.ok(
                        Method::POST,
                        &format!("/api/v1/orders/{id}/cancel"),
                        Some(cashier),
                        json!({}),
                    )
                    .await?;
                    continue;
                }
                self.keyed(
                    Method::POST,
                    &format!("/api/v1/orders/{id}/payments"),
                    cashier,
                    json!({"method": METHODS[seq % METHODS.len()], "amount_minor": order["total_minor"]}),
                )
                .await?;
                if day == 0 && n == 3 {
                    let owner = self.sign_in(OWNER_EMAIL, OWNER_PASSWORD).await?;
                    self.keyed(
                        Method::POST,
                        &format!("/api/v1/orders/{id}/refunds"),
                        &owner,
                        json!({"reason": "customer_return", "lines": [{"line_no": 1, "quantity": 1}]}),
                    )
                    .await?;
                }
            }
        }
        Ok(count)
    }

    /// The owner files `kind` for `customer` (at the till); the customer confirms it through
    /// the mailed identity check.
    async fn confirmed_request(
        &self,
        owner: &str,
        kind: &str,
        customer: &str,
    ) -> anyhow::Result<()> {
        self.ok(
            Method::POST,
            "/api/v1/privacy/requests",
            Some(owner),
            json!({"type": kind, "subject": {"kind": "customer", "id": customer}}),
        )
        .await?;
        let token = self
            .subject_token(
                "privacy.identity_check_requested",
                customer,
                sealed::PRIVACY_TOKEN,
            )
            .await?;
        self.ok(
            Method::POST,
            "/api/v1/privacy/requests/confirm",
            None,
            json!({ "token": token }),
        )
        .await?;
        Ok(())
    }

    /// Signs in; the access token.
    async fn sign_in(&self, email: &str, password: &str) -> anyhow::Result<String> {
        Ok(self.session(email, password).await?.0)
    }

    /// Signs in; the access and the refresh token.
    async fn session(&self, email: &str, password: &str) -> anyhow::Result<(String, String)> {
        let tokens = self
            .ok(
                Method::POST,
                "/api/v1/auth/login",
                None,
                json!({"tenant": SLUG, "email": email, "password": password}),
            )
            .await?;
        tokens_of(&tokens)
    }

    /// Trades the session's refresh token for fresh tokens.
    async fn refresh(&self, session: &(String, String)) -> anyhow::Result<(String, String)> {
        let tokens = self
            .ok(
                Method::POST,
                "/api/v1/auth/refresh",
                None,
                json!({"refresh_token": session.1}),
            )
            .await?;
        tokens_of(&tokens)
    }

    /// A request that must succeed (2xx); its JSON answer.
    async fn ok(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.call(method, path, bearer, Some(&body)).await?;
        if status.is_success() {
            Ok(answer)
        } else {
            Err(failed(path, status, &answer))
        }
    }

    /// A money-moving request, with its `Idempotency-Key`; it must succeed.
    async fn keyed(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self
            .send(method, path, Some(bearer), Some(&body), true)
            .await?;
        if status.is_success() {
            Ok(answer)
        } else {
            Err(failed(path, status, &answer))
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send(method, path, bearer, body, false).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
        idempotent: bool,
    ) -> anyhow::Result<(StatusCode, Value)> {
        // A few seconds pass between steps, as they would at a real till.
        self.clock.advance(TimeDelta::seconds(5));
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("x-forwarded-for", SEED_ADDRESS);
        if idempotent {
            request = request.header("idempotency-key", uuid::Uuid::now_v7().to_string());
        }
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = answer.status();
        Ok((status, answer.json().await.unwrap_or(Value::Null)))
    }

    /// The token of the latest `event_type` mail whose payload names `id` at `key`, opened as
    /// the mail's reader would get it.
    async fn mailed_token(
        &self,
        event_type: &str,
        key: &str,
        id: &str,
        field: &'static str,
    ) -> anyhow::Result<String> {
        let payload: Value = sqlx::query_scalar(
            "select payload from outbox where tenant_id = $1 and event_type = $2
               and payload->>$3 = $4 order by seq desc limit 1",
        )
        .bind(self.tenant.0)
        .bind(event_type)
        .bind(key)
        .bind(id)
        .fetch_one(self.system.pool())
        .await
        .with_context(|| format!("no {event_type} mail for {id}"))?;
        self.open(&payload, id, field).await
    }

    /// Like [`Shop::mailed_token`], for the events about a data subject (`"subject": {"id"}`).
    async fn subject_token(
        &self,
        event_type: &str,
        subject: &str,
        field: &'static str,
    ) -> anyhow::Result<String> {
        let payload: Value = sqlx::query_scalar(
            "select payload from outbox where tenant_id = $1 and event_type = $2
               and payload->'subject'->>'id' = $3 order by seq desc limit 1",
        )
        .bind(self.tenant.0)
        .bind(event_type)
        .bind(subject)
        .fetch_one(self.system.pool())
        .await
        .with_context(|| format!("no {event_type} mail for {subject}"))?;
        self.open(&payload, subject, field).await
    }

    async fn open(
        &self,
        payload: &Value,
        subject: &str,
        field: &'static str,
    ) -> anyhow::Result<String> {
        let sealed = Sealed::from_base64(text(&payload["token_sealed"])?)
            .context("the mailed token is not a sealed value")?;
        let mut tx = self.state.db.tenant(self.tenant).begin().await?;
        let opened = self
            .state
            .pii
            .open(&mut tx, SubjectId(subject.parse()?), field, &sealed)
            .await?;
        tx.rollback().await?;
        Ok(opened
            .value()
            .context("the mailed token is shredded")?
            .to_owned())
    }
}

fn tokens_of(answer: &Value) -> anyhow::Result<(String, String)> {
    Ok((
        text(&answer["access_token"])?.to_owned(),
        text(&answer["refresh_token"])?.to_owned(),
    ))
}

fn text(value: &Value) -> anyhow::Result<&str> {
    value
        .as_str()
        .with_context(|| format!("expected a string, got {value}"))
}

fn require(
    status: StatusCode,
    want: StatusCode,
    answer: Value,
    what: &str,
) -> anyhow::Result<Value> {
    if status == want {
        Ok(answer)
    } else {
        bail!("could not {what}: {status} {}", answer["code"])
    }
}

fn failed(path: &str, status: StatusCode, answer: &Value) -> anyhow::Error {
    anyhow::anyhow!(
        "demo seed stopped at {path}: {status} {} ({}); the shop `{SLUG}` is incomplete",
        answer["code"],
        answer["detail"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shop_opens_at_seven_in_jakarta_two_days_back() {
        let now: DateTime<Utc> = "2026-12-01T02:30:00Z".parse().unwrap();
        // 09:30 in Jakarta on 1 December: the shop opened at 07:00 on 29 November.
        assert_eq!(
            opening(now),
            "2026-11-29T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // 18:00 UTC is already the next day in Jakarta.
        let late: DateTime<Utc> = "2026-12-01T18:00:00Z".parse().unwrap();
        assert_eq!(
            opening(late),
            "2026-11-30T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn the_catalog_is_about_twenty_products_with_unique_skus() {
        let skus: std::collections::HashSet<_> = CATALOG
            .iter()
            .flat_map(|(_, items)| items.iter().map(|item| item.1))
            .collect();
        assert_eq!(skus.len(), 20);
        assert!(
            !CUSTOMERS[RESTRICTED].3,
            "the restricted customer is not mailed news"
        );
    }
}
