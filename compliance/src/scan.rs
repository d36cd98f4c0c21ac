//! The PII-at-rest scan: every text, varchar, json/jsonb, string-array and bytea column of every
//! table, streamed row by row (memory stays flat however large a table grows), through
//! [`Detector`]. It reports counts per `table.column` and the tenants they belong to, never a
//! value.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use platform::compliance::Ctx;
use sqlx::{PgPool, Row};

use crate::shapes::{Detector, Hits};

#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    pub tables: usize,
    pub columns: usize,
    pub values: u64,
    pub bytes: u64,
    pub millis: u64,
    /// Hits per `table.column`, with up to 10 tenants each.
    pub hits: BTreeMap<String, (Hits, Vec<uuid::Uuid>)>,
    /// Tables the verifier's role cannot read (no grant, or no policy letting it see rows).
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    bytea: bool,
}

/// Rows read per table with `--fast`.
const FAST_ROWS: i64 = 20_000;

/// Scans the database as the verifier's role. With a tenant scope, only tables holding tenant
/// rows are read, and only that tenant's rows.
pub async fn scan(ctx: &Ctx) -> anyhow::Result<ScanResult> {
    let started = std::time::Instant::now();
    let detector = Detector::new();
    let columns = scannable_columns(&ctx.read).await?;
    let tenant_column = tenant_columns(&ctx.read).await?;
    let mut result = ScanResult::default();
    let scope = ctx.tenant.map(|t| vec![t.0]);
    for (table, cols) in &columns {
        let tenant_col = tenant_column.get(table).copied();
        if scope.is_some() && tenant_col.is_none() {
            continue;
        }
        if !readable(&ctx.read, table).await? {
            result.unreadable.push(table.clone());
            continue;
        }
        result.tables += 1;
        result.columns += cols.len();
        let select: Vec<String> = cols
            .iter()
            .map(|c| {
                if c.bytea {
                    format!("\"{}\"", c.name)
                } else {
                    format!("\"{}\"::text", c.name)
                }
            })
            .collect();
        let tenant_expr = tenant_col.map_or("null::uuid".to_owned(), |c| format!("\"{c}\""));
        let mut sql = format!(
            "select {tenant_expr}, {} from \"{table}\"",
            select.join(", ")
        );
        if let (Some(_), Some(col)) = (&scope, tenant_col) {
            sql.push_str(&format!(" where \"{col}\" = any($1)"));
        }
        if ctx.fast {
            sql.push_str(&format!(" limit {FAST_ROWS}"));
        }
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let query = match &scope {
            Some(ids) if tenant_col.is_some() => query.bind(ids.clone()),
            _ => query,
        };
        let mut rows = query.fetch(&ctx.read);
        while let Some(row) = rows.try_next().await? {
            let tenant: Option<uuid::Uuid> = row.try_get(0)?;
            for (i, col) in cols.iter().enumerate() {
                let found = if col.bytea {
                    let Some(bytes) = row.try_get::<Option<Vec<u8>>, _>(i + 1)? else {
                        continue;
                    };
                    result.bytes += bytes.len() as u64;
                    detector.find_bytes(&bytes)
                } else {
                    let Some(text) = row.try_get::<Option<String>, _>(i + 1)? else {
                        continue;
                    };
                    result.bytes += text.len() as u64;
                    detector.find(&text)
                };
                result.values += 1;
                if found.any() {
                    let entry = result
                        .hits
                        .entry(format!("{table}.{}", col.name))
                        .or_default();
                    entry.0.add(found);
                    if let Some(t) = tenant
                        && entry.1.len() < 10
                        && !entry.1.contains(&t)
                    {
                        entry.1.push(t);
                    }
                }
            }
        }
    }
    result.millis = started.elapsed().as_millis() as u64;
    Ok(result)
}

/// Text-like and bytea columns of every table (partitions through their parent).
async fn scannable_columns(read: &PgPool) -> anyhow::Result<BTreeMap<String, Vec<Column>>> {
    let rows = sqlx::query(
        "select c.relname::text as table_name, a.attname::text as column_name,
                (t.typname = 'bytea') as bytea
         from pg_attribute a
         join pg_class c on c.oid = a.attrelid
         join pg_namespace n on n.oid = c.relnamespace
         join pg_type t on t.oid = a.atttypid
         left join pg_type e on e.oid = t.typelem and t.typcategory = 'A'
         where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
           and a.attnum > 0 and not a.attisdropped
           and (t.typcategory = 'S' or t.typname in ('json', 'jsonb', 'bytea')
                or e.typcategory = 'S' or e.typname in ('json', 'jsonb'))
         order by 1, a.attnum",
    )
    .fetch_all(read)
    .await?;
    let mut columns: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for row in rows {
        columns
            .entry(row.get("table_name"))
            .or_default()
            .push(Column {
                name: row.get("column_name"),
                bytea: row.get("bytea"),
            });
    }
    Ok(columns)
}

async fn tenant_columns(read: &PgPool) -> anyhow::Result<BTreeMap<String, &'static str>> {
    Ok(crate::checks::tenant_tables(read)
        .await?
        .into_iter()
        .collect())
}

/// Whether the verifier's role can see the table's rows: a SELECT grant and, where row-level
/// security is on, a policy that lets it read.
async fn readable(read: &PgPool, table: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "select has_table_privilege(c.oid, 'SELECT')
                and (not c.relrowsecurity or exists (
                    select 1 from pg_policy p where p.polrelid = c.oid and p.polcmd in ('r', '*')
                      and exists (select 1 from unnest(p.polroles) r
                              where r = 0 or pg_has_role(current_user, r, 'USAGE'))))
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relname = $1",
    )
    .bind(table)
    .fetch_optional(read)
    .await?
    .unwrap_or(false))
}
