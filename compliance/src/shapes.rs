//! What personal data looks like in plaintext: email addresses, phone numbers and the
//! Indonesian national id (NIK). Tuned for precision on what a database holds besides PII
//! (UUIDs, timestamps, hashes, base64 ciphertext): a hit should be worth an operator's night.
//!
//! The NIK has no checksum: `PP RR DD DDMMYY SSSS` (province, regency, district, birth date with
//! 40 added to the day for women, serial). Precision comes from validating each part: the
//! province against the real list, non-zero regency and district, a real calendar date, a
//! non-zero serial.

use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Email,
    Phone,
    Nik,
}

impl Shape {
    pub const ALL: [Self; 3] = [Self::Email, Self::Phone, Self::Nik];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Nik => "nik",
        }
    }
}

/// Province codes of Indonesia (Kemendagri), including the Papua provinces formed in 2022.
const PROVINCES: [u8; 38] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, // Sumatra, Riau Islands
    31, 32, 33, 34, 35, 36, // Java
    51, 52, 53, // Bali, Nusa Tenggara
    61, 62, 63, 64, 65, // Kalimantan
    71, 72, 73, 74, 75, 76, // Sulawesi
    81, 82, // Maluku
    91, 92, 93, 94, 95, 96, // Papua
];

/// Whether 16 ASCII digits form a plausible NIK.
pub fn is_nik(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if bytes.len() != 16 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let two = |i: usize| (bytes[i] - b'0') * 10 + (bytes[i + 1] - b'0');
    let (province, regency, district) = (two(0), two(2), two(4));
    let (day, month) = (two(6), two(8));
    let serial = &digits[12..];
    if !PROVINCES.contains(&province) || regency == 0 || district == 0 || serial == "0000" {
        return false;
    }
    // Women's ids add 40 to the day of birth.
    let day = if day > 40 { day - 40 } else { day };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        // The year has two digits, so any February 29 may be real.
        2 => 29,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

/// Finds the shapes in text. Built once per scan (the regexes compile in microseconds, but a
/// scan calls [`Detector::find`] millions of times).
#[derive(Debug, Clone)]
pub struct Detector {
    uuid: Regex,
    email: Regex,
    phone: Regex,
    digits16: Regex,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hits {
    pub email: u64,
    pub phone: u64,
    pub nik: u64,
}

impl Hits {
    pub fn get(&self, shape: Shape) -> u64 {
        match shape {
            Shape::Email => self.email,
            Shape::Phone => self.phone,
            Shape::Nik => self.nik,
        }
    }

    pub fn any(&self) -> bool {
        self.email + self.phone + self.nik > 0
    }

    pub fn add(&mut self, other: Self) {
        self.email += other.email;
        self.phone += other.phone;
        self.nik += other.nik;
    }
}

impl Detector {
    #[expect(
        clippy::expect_used,
        reason = "constant patterns, covered by unit tests"
    )]
    pub fn new() -> Self {
        let re = |pattern: &str| Regex::new(pattern).expect("constant pattern");
        Self {
            uuid: re(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
            email: re(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}"),
            // Indonesian numbers (+62 / 62 / 0, then 8 and a mobile prefix), with the spaces
            // and dashes people type, or any E.164 number with its `+`. The groups around them
            // stand in for look-around: a digit run inside a longer token is not a phone.
            phone: re(concat!(
                r"(?:^|[^0-9A-Za-z+/_.])",
                r"((?:\+62|62|0)[ -]?8[1-9][0-9](?:[ -]?[0-9]){5,9}|\+[1-9][0-9]{7,14})",
                r"(?:$|[^0-9A-Za-z])"
            )),
            // Sixteen digits standing alone: a run inside a hex token (a SKU from a UUID, a
            // digest) is not an id someone typed.
            digits16: re(r"(?:^|[^0-9A-Za-z])([0-9]{16})(?:$|[^0-9A-Za-z])"),
        }
    }

    /// Counts each shape in `text`.
    pub fn find(&self, text: &str) -> Hits {
        let mut hits = Hits::default();
        // Cheap gates first: most values have no `@` and no run of digits.
        let has_at = text.contains('@');
        let digit_run = has_digit_run(text.as_bytes(), 8);
        if !has_at && !digit_run {
            return hits;
        }
        let cleaned;
        let text = if text.contains('-') && self.uuid.is_match(text) {
            cleaned = self.uuid.replace_all(text, " ");
            cleaned.as_ref()
        } else {
            text
        };
        if has_at {
            hits.email = self.email.find_iter(text).count() as u64;
        }
        if digit_run {
            hits.phone = self.phone.captures_iter(text).count() as u64;
            hits.nik = self
                .digits16
                .captures_iter(text)
                .filter(|c| c.get(1).is_some_and(|m| is_nik(m.as_str())))
                .count() as u64;
        }
        hits
    }

    /// Counts each shape in bytes (a `bytea` value): as text where it is text. Sealed values
    /// are random bytes, in which these shapes do not occur by chance.
    pub fn find_bytes(&self, bytes: &[u8]) -> Hits {
        self.find(&String::from_utf8_lossy(bytes))
    }
}

fn has_digit_run(bytes: &[u8], len: usize) -> bool {
    let mut run = 0;
    for b in bytes {
        if b.is_ascii_digit() {
            run += 1;
            if run >= len {
                return true;
            }
        } else if *b != b' ' && *b != b'-' {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_niks_are_found_for_men_and_women() {
        // Jakarta Selatan (31 74), district 05, born 12 May 1990, serial 0001.
        assert!(is_nik("3174051205900001"));
        // The same for a woman: day 12 + 40.
        assert!(is_nik("3174055205900001"));
        // Papua Barat Daya (2022), 29 February.
        assert!(is_nik("9601012902000123"));
        let d = Detector::new();
        assert_eq!(d.find("nik: 3174051205900001;").nik, 1);
        assert_eq!(d.find(r#"{"ktp":"3273015506880007"}"#).nik, 1);
    }

    #[test]
    fn invalid_parts_are_rejected() {
        assert!(!is_nik("1074051205900001"), "province 10 does not exist");
        assert!(!is_nik("9974051205900001"), "province 99 does not exist");
        assert!(!is_nik("3100051205900001"), "regency 00");
        assert!(!is_nik("3174001205900001"), "district 00");
        assert!(!is_nik("3174053205900001"), "day 32");
        assert!(!is_nik("3174057205900001"), "day 72 (32 + 40)");
        assert!(!is_nik("3174053102900001"), "31 February");
        assert!(!is_nik("3174051213900001"), "month 13");
        assert!(!is_nik("3174050005900001"), "day 00");
        assert!(!is_nik("3174051205900000"), "serial 0000");
        assert!(!is_nik("317405120590001"), "15 digits");
    }

    #[test]
    fn cards_phones_and_ids_are_not_niks() {
        let d = Detector::new();
        for text in [
            "4111111111111111",                     // a test Visa number: province 41
            "5500005555555559",                     // a test Mastercard: province 55
            "6281234567890123",                     // 62 then a month of 67
            "+6281234567890",                       // a phone
            "31740512059000012",                    // 17 digits
            "ts 1764561234567891 ns",               // a 16-digit stamp: province 17, month 34
            "0195d3e8-3174-7051-2059-000013174051", // inside a UUID
            "SKU-019dc3b1c3174051205900001fa27e9",  // inside a hex token (a SKU seen in a test run)
        ] {
            assert_eq!(d.find(text).nik, 0, "{text}");
        }
    }

    #[test]
    fn phones_are_found_in_the_ways_people_write_them() {
        let d = Detector::new();
        for text in [
            "+628123456789",
            "call 0812-3456-789 today",
            "+62 812 3456 7890",
            r#"{"phone":"08123456789"}"#,
            "+4915123456789",
        ] {
            assert_eq!(d.find(text).phone, 1, "{text}");
        }
    }

    #[test]
    fn ids_hashes_stamps_and_ciphertext_are_not_phones() {
        let d = Detector::new();
        for text in [
            "0195d3e8-0812-3456-7890-081234567890",
            "2026-12-01T04:06:50.081234567Z",
            "2026-12-01T04:06:50.081234567+07:00",
            "a3f08123456789b2c4",
            "QUJD+08123456789/xyz=",
            "order 1764561234567",
            "sha256 0812345678901234567890123456789012345678901234567890123456789012",
        ] {
            assert_eq!(d.find(text).phone, 0, "{text}");
        }
    }

    #[test]
    fn emails_are_found_and_other_at_signs_are_not() {
        let d = Detector::new();
        assert_eq!(d.find("budi@example.id").email, 1);
        assert_eq!(d.find(r#"{"to":"Siti.Rahma+toko@mail.co.id"}"#).email, 1);
        assert_eq!(d.find("@user mentioned 10 @ 5000").email, 0);
        assert_eq!(d.find_bytes(b"\x01\x02budi@example.id\xff").email, 1);
    }
}
