//! Query strings: read as text, every parameter checked by name, so that a bad value answers
//! `400` with the envelope naming the parameter (`limit=-1`, `since=abc`), and a parameter a
//! route does not take is refused rather than ignored.

use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The most rows one page holds, and how many a page of executions holds unless asked
/// (docs/api.md, "Reference compatibility").
pub const MAX_PAGE: u32 = 1000;
pub const DEFAULT_PAGE: u32 = 100;

/// A query string as `T`, whose fields are all `Option<String>` and which refuses unknown
/// fields: the only failures are an unknown or repeated parameter, answered `400
/// invalid_field` naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state).await.map(|Query(q)| StrictQuery(q)).map_err(|e| {
            let text = e.body_text();
            let message = text.trim_start_matches("Failed to deserialize query string: ").to_owned();
            let error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", format!("query: {message}"));
            match message.split('`').nth(1) {
                Some(field) => error.with_field(field),
                None => error,
            }
        })
    }
}

/// `limit` and `offset`, the paging of every list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Rows in the page, 1 to 1000 (default 1000).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Rows to skip (default 0).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<String>,
}

impl Paging {
    /// The page of `rows` asked for, and how many there are in all.
    ///
    /// # Errors
    /// `400 invalid_pagination` naming `limit` or `offset`.
    pub fn apply<T>(&self, rows: Vec<T>) -> Result<(Vec<T>, usize), ApiError> {
        let (limit, offset) = pagination(self.limit.as_deref(), self.offset.as_deref(), MAX_PAGE)?;
        let total = rows.len();
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        Ok((rows.into_iter().skip(skip).take(limit as usize).collect(), total))
    }
}

/// A page's `limit` and `offset` from their text: `limit` 1 to [`MAX_PAGE`] (`default` when
/// absent), `offset` 0 or more.
///
/// # Errors
/// `400 invalid_pagination` naming the parameter.
pub fn pagination(limit: Option<&str>, offset: Option<&str>, default: u32) -> Result<(u32, u64), ApiError> {
    let bad = |field: &str, message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_pagination", message).with_field(field)
    };
    let limit =
        match limit {
            None => default,
            Some(text) => text.parse::<u32>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
                bad("limit", format!("limit must be a whole number from 1 to {MAX_PAGE}, not {text:?}"))
            })?,
        };
    let offset = match offset {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad("offset", format!("offset must be a whole number, 0 or more, not {text:?}")))?,
    };
    Ok((limit, offset))
}

/// A whole number parameter `field`, 0 or more.
///
/// # Errors
/// `400 invalid_field` naming it.
pub fn whole(field: &str, text: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match text {
        None => Ok(default),
        Some(t) => t.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::invalid_field(field, format!("{field} must be a whole number, 0 or more, not {t:?}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paging_names_the_parameter_at_fault_and_slices_with_the_real_total() {
        for (limit, offset, field) in [
            (Some("-1"), None, "limit"),
            (Some("1e9"), None, "limit"),
            (Some("0"), None, "limit"),
            (Some("1001"), None, "limit"),
            (None, Some("-3"), "offset"),
            (None, Some("x"), "offset"),
        ] {
            let err = pagination(limit, offset, 100).unwrap_err();
            assert_eq!(
                (err.status, err.code, err.field.as_deref()),
                (StatusCode::BAD_REQUEST, "invalid_pagination", Some(field))
            );
        }
        assert_eq!(pagination(None, None, 100).unwrap(), (100, 0));
        assert_eq!(pagination(Some("1000"), Some("5"), 100).unwrap(), (1000, 5));
        let paging = Paging { limit: Some("2".into()), offset: Some("1".into()) };
        assert_eq!(paging.apply(vec![1, 2, 3, 4]).unwrap(), (vec![2, 3], 4));
        assert_eq!(Paging::default().apply(vec![1, 2]).unwrap(), (vec![1, 2], 2));
        let err = whole("since", Some("abc"), 0).unwrap_err();
        assert_eq!((err.code, err.field.as_deref()), ("invalid_field", Some("since")));
    }
}
