//! Data-subject requests (DESIGN §6): what a person may ask of a shop about their data, the
//! legal clock on each request, and how the shop keeps to it.
//!
//! - [`requests`]: filing (any channel), the identity check by an emailed single-use token,
//!   fulfilment (export bundle, withdrawal, restriction, erasure scheduling), the owner's list.
//! - [`bundle`]: the export as JSON and CSV in a zip.
//! - [`erasure`]: the job that carries out due erasures across every module.
//! - [`provider`]: what `users` itself holds on a person (profile, consents, requests).
//! - [`retention`]: inactive guests and long-deleted staff, erased through the same flow.
//!
//! This file holds the rules only (no SQL, no HTTP): types, due dates and SLA states.

pub mod bundle;
pub mod erasure;
pub mod provider;
pub mod requests;
pub mod retention;

use chrono::{DateTime, Months, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the person asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    /// A copy of their data (delivered as the export bundle).
    Access,
    /// Their data in a machine-readable form (the same bundle: JSON and CSV).
    Export,
    /// Correcting their data: verified automatically, corrected by staff.
    Rectification,
    /// Keep the data but stop processing it.
    Restriction,
    /// Withdraw every optional consent at once.
    Withdrawal,
    /// Erase them (after the shop's grace period).
    Erasure,
}

impl RequestType {
    pub const ALL: [Self; 6] = [
        Self::Access,
        Self::Export,
        Self::Rectification,
        Self::Restriction,
        Self::Withdrawal,
        Self::Erasure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Export => "export",
            Self::Rectification => "rectification",
            Self::Restriction => "restriction",
            Self::Withdrawal => "withdrawal",
            Self::Erasure => "erasure",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }

    /// Builds an export bundle (rate-limited per person).
    pub fn exports(self) -> bool {
        matches!(self, Self::Access | Self::Export)
    }
}

/// Whose clock applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Jurisdiction {
    /// Indonesia, UU No. 27/2022 on Personal Data Protection.
    UuPdp,
    /// The EU's General Data Protection Regulation.
    Gdpr,
}

impl Jurisdiction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UuPdp => "uu_pdp",
            Self::Gdpr => "gdpr",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::UuPdp, Self::Gdpr]
            .into_iter()
            .find(|j| j.as_str() == value)
    }

    /// A new shop's default: Indonesian shops answer to UU PDP, every other to the GDPR.
    pub fn for_country(country: &str) -> Self {
        if country.eq_ignore_ascii_case("ID") {
            Self::UuPdp
        } else {
            Self::Gdpr
        }
    }
}

/// When a request received at `received` must be answered.
///
/// - UU PDP: 3 × 24 hours for access, export (access in machine-readable form), rectification,
///   restriction and withdrawal. It sets no shorter bound for erasure, for which the GDPR's
///   month is used as the outer limit.
/// - GDPR (art. 12(3)): one month for every type, counted as a calendar month (31 January →
///   28/29 February). The two-month extension for complex requests is a staff decision, not a
///   default.
pub fn due_at(
    jurisdiction: Jurisdiction,
    kind: RequestType,
    received: DateTime<Utc>,
) -> DateTime<Utc> {
    let month = || {
        received
            .checked_add_months(Months::new(1))
            .unwrap_or(received + TimeDelta::days(30))
    };
    match (jurisdiction, kind) {
        (Jurisdiction::UuPdp, RequestType::Erasure) | (Jurisdiction::Gdpr, _) => month(),
        (Jurisdiction::UuPdp, _) => received + TimeDelta::hours(72),
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RequestStatus)]
pub enum Status {
    /// The identity-check mail is out; nothing happens until its link is used.
    AwaitingVerification,
    /// Verified; staff must act (rectification).
    InProgress,
    /// Verified erasure waiting for the shop's grace period.
    Scheduled,
    /// Erasure under way (resumed by the job after a crash).
    Erasing,
    Completed,
    /// The identity-check link was never used.
    Expired,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingVerification => "awaiting_verification",
            Self::InProgress => "in_progress",
            Self::Scheduled => "scheduled",
            Self::Erasing => "erasing",
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::AwaitingVerification,
            Self::InProgress,
            Self::Scheduled,
            Self::Erasing,
            Self::Completed,
            Self::Expired,
            Self::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }

    /// Closed requests no longer run against their clock.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Completed | Self::Expired | Self::Rejected)
    }
}

/// A request against its clock, as the owner's list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sla {
    /// Open, with more than a day (or, for the 72-hour clock, more than a third of it) left.
    OnTime,
    /// Open, and the end is near: act now.
    DueSoon,
    /// Open past its due time.
    Overdue,
    /// Closed by its due time.
    Met,
    /// Closed after its due time.
    Missed,
}

/// The SLA state of a request at `now`. "Due soon" starts 24 hours before the due time: a
/// third of UU PDP's 72 hours, a working day under the GDPR's month.
pub fn sla(
    status: Status,
    due: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Sla {
    if status.is_closed() {
        return match closed_at {
            Some(at) if at > due => Sla::Missed,
            _ => Sla::Met,
        };
    }
    if now > due {
        Sla::Overdue
    } else if due - now <= TimeDelta::hours(24) {
        Sla::DueSoon
    } else {
        Sla::OnTime
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn uu_pdp_gives_three_days_for_access_restriction_and_withdrawal() {
        let received = at(2026, 11, 22, 9);
        for kind in [
            RequestType::Access,
            RequestType::Export,
            RequestType::Rectification,
            RequestType::Restriction,
            RequestType::Withdrawal,
        ] {
            assert_eq!(
                due_at(Jurisdiction::UuPdp, kind, received),
                at(2026, 11, 25, 9),
                "{kind:?}"
            );
        }
        assert_eq!(
            due_at(Jurisdiction::UuPdp, RequestType::Erasure, received),
            at(2026, 12, 22, 9)
        );
    }

    #[test]
    fn gdpr_gives_one_calendar_month_clamped_to_the_month_end() {
        for kind in RequestType::ALL {
            assert_eq!(
                due_at(Jurisdiction::Gdpr, kind, at(2026, 11, 22, 9)),
                at(2026, 12, 22, 9)
            );
        }
        assert_eq!(
            due_at(Jurisdiction::Gdpr, RequestType::Access, at(2027, 1, 31, 9)),
            at(2027, 2, 28, 9)
        );
        assert_eq!(
            due_at(Jurisdiction::Gdpr, RequestType::Access, at(2028, 1, 31, 9)),
            at(2028, 2, 29, 9)
        );
    }

    #[test]
    fn sla_states_follow_the_clock() {
        let due = at(2026, 11, 25, 9);
        let open = Status::AwaitingVerification;
        assert_eq!(sla(open, due, None, at(2026, 11, 23, 9)), Sla::OnTime);
        assert_eq!(sla(open, due, None, at(2026, 11, 24, 9)), Sla::DueSoon);
        assert_eq!(sla(open, due, None, at(2026, 11, 25, 9)), Sla::DueSoon);
        assert_eq!(sla(open, due, None, at(2026, 11, 25, 10)), Sla::Overdue);
        let done = Status::Completed;
        assert_eq!(
            sla(done, due, Some(at(2026, 11, 24, 0)), at(2027, 1, 1, 0)),
            Sla::Met
        );
        assert_eq!(
            sla(done, due, Some(at(2026, 11, 26, 0)), at(2027, 1, 1, 0)),
            Sla::Missed
        );
    }

    #[test]
    fn names_round_trip() {
        for kind in RequestType::ALL {
            assert_eq!(RequestType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Jurisdiction::for_country("ID"), Jurisdiction::UuPdp);
        assert_eq!(Jurisdiction::for_country("DE"), Jurisdiction::Gdpr);
        assert_eq!(Status::parse("erasing"), Some(Status::Erasing));
    }
}
