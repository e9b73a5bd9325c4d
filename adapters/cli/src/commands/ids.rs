//! Ids as people type them: a full id, or a unique prefix of at least [`SHORTEST_PREFIX`]
//! characters (what the table columns and `-o id` print is always accepted back).

use serde_json::Value;

use crate::client::{Client, segment};
use crate::exit::CliError;
use crate::output::{items, text};

/// The fewest characters of an id taken as its prefix.
pub const SHORTEST_PREFIX: usize = 8;

/// The full id of the execution `typed` names under `base` (`/v1/tenants/T/executions`).
///
/// # Errors
/// [`CliError::Usage`] for a prefix too short or matching several executions; a 404-shaped
/// [`CliError::Api`] when none matches; the server's refusal of the listing.
pub async fn execution(client: &Client, base: &str, typed: &str) -> Result<String, CliError> {
    let typed = segment(typed)?;
    if uuid::Uuid::try_parse(typed).is_ok() {
        return Ok(typed.to_owned());
    }
    let prefix = prefix_of(typed, "execution")?;
    let mut found = Vec::new();
    client
        .pages(base, "", |rows| {
            found.extend(rows.iter().map(|e| text(e, "execution_id")).filter(|id| id.starts_with(&prefix)));
            found.len() < 2
        })
        .await?;
    one_of(found, typed, "execution")
}

/// The id of the one execution `list` (an executions listing, newest first) starts with.
///
/// # Errors
/// A 404-shaped [`CliError::Api`] when the listing is empty.
pub fn latest(list: &Value, workflow: Option<&str>) -> Result<String, CliError> {
    items(list).first().map(|e| text(e, "execution_id")).ok_or_else(|| CliError::Api {
        status: 404,
        code: "not_found".into(),
        message: match workflow {
            Some(w) => format!("workflow '{w}' has no executions"),
            None => "the tenant has no executions".into(),
        },
    })
}

/// The one row of `rows` whose `id` field is `typed` or starts with it, else whose `name` is
/// `typed`: how a key is named in `key revoke`.
///
/// # Errors
/// As [`execution`].
pub fn by_id_or_name(rows: &[Value], typed: &str, noun: &str) -> Result<String, CliError> {
    if let Some(row) = rows.iter().find(|r| text(r, "id") == typed) {
        return Ok(text(row, "id"));
    }
    let named: Vec<String> = rows.iter().filter(|r| text(r, "name") == typed).map(|r| text(r, "id")).collect();
    if !named.is_empty() {
        return match <[String; 1]>::try_from(named) {
            Ok([id]) => Ok(id),
            Err(named) => Err(CliError::Usage(format!(
                "{} {noun}s are named '{typed}' ({}): give the id",
                named.len(),
                named.join(", ")
            ))),
        };
    }
    if !typed.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(CliError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!("no {noun} is named '{typed}'"),
        });
    }
    let prefix = prefix_of(typed, noun)?;
    let found = rows.iter().map(|r| text(r, "id")).filter(|id| id.starts_with(&prefix)).collect();
    one_of(found, typed, noun)
}

fn prefix_of(typed: &str, noun: &str) -> Result<String, CliError> {
    let prefix = typed.to_ascii_lowercase();
    if prefix.len() < SHORTEST_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(CliError::Usage(format!(
            "'{typed}' is not a {noun} id: give the full id or at least its first {SHORTEST_PREFIX} characters"
        )));
    }
    Ok(prefix)
}

fn one_of(found: Vec<String>, typed: &str, noun: &str) -> Result<String, CliError> {
    match <[String; 1]>::try_from(found) {
        Ok([id]) => Ok(id),
        Err(found) if found.is_empty() => Err(CliError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!("no {noun} id starts with '{typed}'"),
        }),
        Err(found) => Err(CliError::Usage(format!(
            "'{typed}' starts more than one {noun} id ({}, …): give more characters",
            found.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_is_found_by_id_prefix_or_unique_name() {
        let rows = vec![
            json!({"id": "11111111-aaaa-4000-8000-000000000001", "name": "ci"}),
            json!({"id": "11111111-bbbb-4000-8000-000000000002", "name": "dup"}),
            json!({"id": "22222222-cccc-4000-8000-000000000003", "name": "dup"}),
        ];
        assert_eq!(by_id_or_name(&rows, "ci", "key").unwrap(), "11111111-aaaa-4000-8000-000000000001");
        assert_eq!(by_id_or_name(&rows, "22222222", "key").unwrap(), "22222222-cccc-4000-8000-000000000003");
        assert_eq!(by_id_or_name(&rows, "11111111-BBBB", "key").unwrap(), "11111111-bbbb-4000-8000-000000000002");
        assert!(by_id_or_name(&rows, "dup", "key").unwrap_err().to_string().contains("2 keys are named 'dup'"));
        assert!(by_id_or_name(&rows, "11111111", "key").unwrap_err().to_string().contains("more than one"));
        assert!(by_id_or_name(&rows, "1111", "key").unwrap_err().to_string().contains("at least its first 8"));
        assert_eq!(by_id_or_name(&rows, "33333333", "key").unwrap_err().status(), crate::ExitStatus::NotFound);
        assert_eq!(by_id_or_name(&rows, "gone", "key").unwrap_err().status(), crate::ExitStatus::NotFound);
    }
}
