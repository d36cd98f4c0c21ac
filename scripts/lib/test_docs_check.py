"""The docs check fails on an error code missing from docs/API.md (negative controls)."""

import unittest

import docs_check

ERROR_RS = '''
impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) | Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } | Self::Unprocessable { code, .. } => code,
            Self::Validation(_) => "validation_failed",
            Self::Unavailable(dep) => dep.unavailable_code(),
        }
    }
}
'''
HEALTH_RS = '''
    pub fn unavailable_code(self) -> &'static str {
        match self {
            Self::Postgres => "database_unavailable",
        }
    }
'''
HANDLER_RS = 'return Err(Error::conflict(\n    "sku_taken", "taken"));'
API_MD = """
| Status | `code` | When |
| --- | --- | --- |
| 422 | `validation_failed` | invalid |
| 503 | `database_unavailable` | down |
| 409 | `sku_taken` | taken |
"""


def check(api_md, handler=HANDLER_RS):
    codes = docs_check.fixed_codes(ERROR_RS, HEALTH_RS)
    codes.update(docs_check.call_site_codes([("x.rs", handler)])[0])
    return docs_check.problems(codes, docs_check.documented(api_md))


class DocsCheck(unittest.TestCase):
    def test_a_table_that_lists_every_code_with_its_status_passes(self):
        self.assertEqual(check(API_MD), [])

    def test_a_code_missing_from_the_table_fails(self):
        found = check(API_MD, handler=HANDLER_RS + '\nError::conflict("order_not_open", "x")')
        self.assertEqual(len(found), 1)
        self.assertIn("order_not_open", found[0])

    def test_a_code_under_the_wrong_status_fails(self):
        found = check(API_MD.replace("| 503 | `database_unavailable`", "| 500 | `database_unavailable`"))
        self.assertTrue(any("database_unavailable" in f and "[500]" in f for f in found), found)

    def test_a_listed_code_that_nothing_answers_with_fails(self):
        found = check(API_MD + "| 409 | `gone_code` | old |\n")
        self.assertEqual(found, ["docs/API.md lists `gone_code` (409), which no code answers with"])


if __name__ == "__main__":
    unittest.main()


CONFIG_RS = '''
fn defaults() -> serde_json::Value {
    serde_json::json!({
        "environment": "development",
        "http": { "bind": "127.0.0.1:8080", "body_limit_bytes": 1_048_576, },
        "kafka": { "brokers": "127.0.0.1:9092", "rebuild_after_ms": 60_000 },
    })
}
'''
README = """
| Key (env) | Default | Meaning |
| --- | --- | --- |
| `WARUNG_ENVIRONMENT` | `development` | mode |
| `WARUNG_HTTP__BIND`, `__BODY_LIMIT_BYTES` | x | y |
| `WARUNG_KAFKA__BROKERS` / `__REBUILD_AFTER_MS` | x | y |
"""


class SettingsCheck(unittest.TestCase):
    def missing(self, readme):
        return docs_check.default_settings(CONFIG_RS) - docs_check.documented_settings(readme)

    def test_every_default_in_the_table_passes(self):
        self.assertEqual(docs_check.default_settings(CONFIG_RS), {
            "WARUNG_ENVIRONMENT", "WARUNG_HTTP__BIND", "WARUNG_HTTP__BODY_LIMIT_BYTES",
            "WARUNG_KAFKA__BROKERS", "WARUNG_KAFKA__REBUILD_AFTER_MS"})
        self.assertEqual(self.missing(README), set())

    def test_a_setting_missing_from_the_table_fails(self):
        readme = README.replace(" / `__REBUILD_AFTER_MS`", "")
        self.assertEqual(self.missing(readme), {"WARUNG_KAFKA__REBUILD_AFTER_MS"})

    def test_a_continuation_counts_only_in_its_own_section(self):
        readme = README.replace("`__BODY_LIMIT_BYTES`", "`x`") + \
            "| `WARUNG_KAFKA__BROKERS`, `__BODY_LIMIT_BYTES` | x | y |\n"
        self.assertEqual(self.missing(readme), {"WARUNG_HTTP__BODY_LIMIT_BYTES"})

    def test_a_row_after_a_blank_line_is_still_read_but_prose_is_not(self):
        readme = README + "\nThe `WARUNG_OTHER__KEY` in prose.\n"
        self.assertNotIn("WARUNG_OTHER__KEY", docs_check.documented_settings(readme))
