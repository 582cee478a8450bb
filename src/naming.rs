//! Managed tokens and their names (SPEC §3): `<token-name>-YYYYMMDD-HHMMSS`, which tokens
//! are managed, and which of them are older or newer.

use std::collections::HashSet;

use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::seqera::TokenInfo;
use crate::settings::TokenName;

const STAMP: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]-[hour][minute][second]");

/// `<base>-YYYYMMDD-HHMMSS` for a moment (UTC).
pub fn stamped(base: &TokenName, at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{}-{}",
        base.as_str(),
        at.format(STAMP).expect("UTC dates format")
    )
}

/// The creation moment in a stamped name, if `name` is `<base>-<stamp>`.
pub fn stamp_of(base: &TokenName, name: &str) -> Option<OffsetDateTime> {
    let rest = name.strip_prefix(base.as_str())?.strip_prefix('-')?;
    if rest.len() != 15
        || !rest.bytes().enumerate().all(|(i, b)| {
            if i == 8 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
    {
        return None;
    }
    PrimitiveDateTime::parse(rest, STAMP)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Managed: exactly `<base>` (adopted) or `<base>-YYYYMMDD-HHMMSS`. Nothing else is revoked.
pub fn is_managed(base: &TokenName, name: &str) -> bool {
    name == base.as_str() || stamp_of(base, name).is_some()
}

/// The managed tokens among `all`, newest (highest id) first.
pub fn managed(base: &TokenName, all: &[TokenInfo]) -> Vec<TokenInfo> {
    let mut m: Vec<TokenInfo> = all
        .iter()
        .filter(|t| is_managed(base, &t.name))
        .cloned()
        .collect();
    m.sort_by_key(|t| std::cmp::Reverse(t.id));
    m
}

/// When a token was created: Seqera's `dateCreated`, else the stamp in its name.
pub fn created_at(base: &TokenName, t: &TokenInfo) -> Option<OffsetDateTime> {
    t.date_created.or_else(|| stamp_of(base, &t.name))
}

/// The first free stamped name at or after `at`, moving on a second at a time.
pub fn free_name(
    base: &TokenName,
    mut at: OffsetDateTime,
    taken: &HashSet<String>,
) -> (String, OffsetDateTime) {
    loop {
        let name = stamped(base, at);
        if !taken.contains(&name) {
            return (name, at);
        }
        at += Duration::SECOND;
    }
}

/// Which managed tokens to revoke once `new_id` is in place: those older than it, except the
/// newest `keep` of them. Never one newer than `new_id`.
pub fn to_revoke(managed_newest_first: &[TokenInfo], new_id: u64, keep: usize) -> Vec<TokenInfo> {
    managed_newest_first
        .iter()
        .filter(|t| t.id < new_id)
        .skip(keep)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn base() -> TokenName {
        TokenName::parse("ci").unwrap()
    }

    fn tok(id: u64, name: &str) -> TokenInfo {
        TokenInfo {
            id,
            name: name.into(),
            date_created: None,
            last_used: None,
        }
    }

    #[test]
    fn names() {
        let at = datetime!(2026-11-28 07:04:05 UTC);
        assert_eq!(stamped(&base(), at), "ci-20261128-070405");
        assert_eq!(stamp_of(&base(), "ci-20261128-070405"), Some(at));
        let longest = TokenName::parse(&"x".repeat(34)).unwrap();
        assert_eq!(stamped(&longest, at).len(), 50);
    }

    #[test]
    fn managed_names_only() {
        for yes in ["ci", "ci-20261128-070405", "ci-19991231-235959"] {
            assert!(is_managed(&base(), yes), "{yes}");
        }
        for no in [
            "ci-",
            "ci-x",
            "ci-20261128-07040",
            "ci-20261128-0704055",
            "ci-20261328-070405",
            "cid-20261128-070405",
            "ci-20261128_070405",
            "ci-prod",
            "CI",
            "ci-20261128-070405-1",
            "xci",
        ] {
            assert!(!is_managed(&base(), no), "{no}");
        }
    }

    #[test]
    fn free_name_moves_on_a_second() {
        let at = datetime!(2026-11-28 23:59:59 UTC);
        let taken: HashSet<String> = [
            "ci-20261128-235959".to_string(),
            "ci-20261129-000000".to_string(),
        ]
        .into();
        assert_eq!(free_name(&base(), at, &taken).0, "ci-20261129-000001");
    }

    #[test]
    fn revoke_selection() {
        let all = vec![
            tok(3, "ci"),
            tok(9, "ci-20260101-000000"),
            tok(5, "other"),
            tok(12, "ci-20260301-000000"),
            tok(20, "ci-20260401-000000"),
        ];
        let m = managed(&base(), &all);
        assert_eq!(m.iter().map(|t| t.id).collect::<Vec<_>>(), [20, 12, 9, 3]);
        // New token 15: 20 is newer (another run) and is never touched.
        let ids = |v: Vec<TokenInfo>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(to_revoke(&m, 15, 0)), [12, 9, 3]);
        assert_eq!(ids(to_revoke(&m, 15, 1)), [9, 3]);
        assert_eq!(ids(to_revoke(&m, 15, 5)), Vec::<u64>::new());
    }

    proptest! {
        #[test]
        fn stamped_names_are_managed_and_parse_back(secs in 0i64..4_102_444_800) {
            let at = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            let name = stamped(&base(), at);
            prop_assert!(is_managed(&base(), &name));
            prop_assert_eq!(stamp_of(&base(), &name), Some(at));
        }

        #[test]
        fn revoke_never_touches_newer_or_kept(ids in proptest::collection::btree_set(1u64..1000, 0..20), new_id in 1u64..1000, keep in 0usize..5) {
            let all: Vec<TokenInfo> = ids.iter().map(|i| tok(*i, &format!("ci-2026010{}-000000", i % 9 + 1))).collect();
            let m = managed(&base(), &all);
            let r = to_revoke(&m, new_id, keep);
            prop_assert!(r.iter().all(|t| t.id < new_id));
            let older = m.iter().filter(|t| t.id < new_id).count();
            prop_assert_eq!(r.len(), older.saturating_sub(keep));
        }
    }
}
