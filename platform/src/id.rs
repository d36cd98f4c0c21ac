//! Newtype ids over UUIDv7 (time-ordered, so B-tree inserts stay local and ids sort by creation).
//! A `TenantId` cannot be passed where a `UserId` is expected. Module crates declare their own
//! with [`id_type!`].

/// Declares a UUIDv7 id newtype with serde, sqlx, OpenAPI, `Display` and `FromStr`.
#[macro_export]
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            ::serde::Serialize, ::serde::Deserialize, ::sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub ::uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(::uuid::Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> &::uuid::Uuid {
                &self.0
            }
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = ::uuid::Error;
            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map(Self)
            }
        }

        impl ::core::convert::From<::uuid::Uuid> for $name {
            fn from(id: ::uuid::Uuid) -> Self {
                Self(id)
            }
        }

        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                ::utoipa::openapi::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .format(Some(::utoipa::openapi::SchemaFormat::KnownFormat(
                        ::utoipa::openapi::KnownFormat::Uuid,
                    )))
                    .into()
            }
        }

        impl ::utoipa::ToSchema for $name {}
    };
}

id_type!(
    /// A merchant: the unit of isolation.
    TenantId
);
id_type!(
    /// A staff user or customer of one tenant.
    UserId
);
id_type!(
    /// A server-side login session.
    SessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_time_ordered() {
        let a = TenantId::new();
        let b = TenantId::new();
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b);
    }

    #[test]
    fn round_trips_through_text_and_json() {
        let id = UserId::new();
        assert_eq!(id.to_string().parse::<UserId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
