//! Timestamps in the exact text forms the two services use: Seqera writes RFC 3339
//! with milliseconds (`2024-05-01T12:34:56.789Z`), GitHub without fractions
//! (`2024-05-01T12:34:56Z`); both put an RFC 7231 IMF-fixdate in the `Date` header
//! (`Wed, 01 May 2024 12:34:56 GMT`). Formatted by hand to avoid `time`'s macro features.
//!
//! Every timestamp the fakes hand out, `Date` headers included, comes from [`now`], so
//! a client may compare a secret's `updated_at` with the `Date` of an answer.

use time::OffsetDateTime;

/// The current time in UTC.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Seqera's form: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn seqera(t: OffsetDateTime) -> String {
    format!("{}.{:03}Z", seconds(t), t.millisecond())
}

/// GitHub's form: `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn github(t: OffsetDateTime) -> String {
    format!("{}Z", seconds(t))
}

/// The `Date` header's form (RFC 7231 IMF-fixdate): `Wed, 01 May 2024 12:34:56 GMT`.
pub(crate) fn http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let weekday = t.weekday().to_string();
    let month = t.month().to_string();
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        &weekday[..3],
        t.day(),
        &month[..3],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Seconds since the Unix epoch (for `x-ratelimit-reset`).
pub(crate) fn epoch_secs(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

fn seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_services() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_714_566_896_789_000_000).unwrap();
        assert_eq!(seqera(t), "2024-05-01T12:34:56.789Z");
        assert_eq!(github(t), "2024-05-01T12:34:56Z");
        assert_eq!(epoch_secs(t), 1_714_566_896);
        assert_eq!(http_date(t), "Wed, 01 May 2024 12:34:56 GMT");
        let t = OffsetDateTime::from_unix_timestamp(1_704_067_199).unwrap();
        assert_eq!(http_date(t), "Sun, 31 Dec 2023 23:59:59 GMT");
    }
}
