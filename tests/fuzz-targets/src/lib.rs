//! What each fuzz target does with its input, on stable Rust: `fuzz/` (cargo-fuzz, nightly)
//! calls these, and `tests/corpus.rs` replays every file of `fuzz/corpus/<target>/` through
//! them in the ordinary test suite, so the targets cannot rot. Each one feeds hostile bytes to
//! one parser and checks what must hold of whatever it accepts; a panic is a finding.
//!
//! Targets: [`manifest`] (`package.toml`), [`archive`] (a `.cloacina` upload), [`key`] (a
//! bearer token), [`json_bodies`] (the JSON body of every route).

// A broken invariant is meant to panic: that is how a fuzzer reports it.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use cloacina_domain::package::Manifest;
use serde_json::Value;

/// The names of the targets, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub const TARGETS: [&str; 4] = ["manifest", "archive", "key", "json_bodies"];

/// Runs target `name` on `data`.
///
/// # Panics
/// On an unknown name, or where the target found a fault.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "manifest" => manifest(data),
        "archive" => archive(data),
        "key" => key(data),
        "json_bodies" => json_bodies(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// `package.toml`: whatever parses has its tasks in an order where each follows what it
/// depends on, unique task ids, and a task graph naming only tasks of its workflow.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(manifest) = Manifest::parse(text) else { return };
    assert_eq!(manifest.workflow_rows(chrono_epoch()).len(), manifest.workflows.len());
    for w in &manifest.workflows {
        let mut seen = std::collections::HashSet::new();
        for t in &w.tasks {
            for dep in &t.depends_on {
                assert!(seen.contains(dep.as_str()), "task {} comes before its dependency {dep}", t.id);
            }
            assert!(seen.insert(t.id.as_str()), "task id {} twice", t.id);
        }
        for node in w.graph() {
            assert!(node.dependencies.iter().all(|d| seen.contains(d.as_str())), "graph names an unknown task");
        }
    }
}

fn chrono_epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
}

/// A `.cloacina` archive: whatever the reader accepts has a manifest that parses again and
/// stays within the reader's limits.
pub fn archive(data: &[u8]) {
    let limits = cloacina_archive::Limits::default();
    let Ok(unpacked) = cloacina_archive::inspect(std::io::Cursor::new(data), &limits) else { return };
    assert_eq!(Manifest::parse(&unpacked.manifest_text).ok().as_ref(), Some(&unpacked.manifest));
    assert!(unpacked.bytes <= limits.max_bytes, "{} bytes unpacked", unpacked.bytes);
    assert!(unpacked.files <= limits.max_entries, "{} files", unpacked.files);
}

/// A bearer token: a minted key's id and digest are the token's own, and an id reads back
/// as it prints.
pub fn key(data: &[u8]) {
    use cloacina_domain::{ApiKeyId, KeyDigest, PresentedKey};
    let Ok(text) = std::str::from_utf8(data) else { return };
    match PresentedKey::parse(text) {
        Ok(PresentedKey::Minted { id, digest }) => {
            assert!(text.starts_with("clk_") && text.len() == 75, "minted shape: {text:?}");
            assert_eq!(digest, KeyDigest::of(text));
            assert_eq!(id.to_string().parse::<ApiKeyId>().ok(), Some(id));
        }
        Ok(PresentedKey::Supplied(secret)) => {
            let s = secret.expose();
            assert!((16..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()), "{s:?}");
        }
        Err(_) => {}
    }
    if let Ok(id) = text.parse::<ApiKeyId>() {
        assert_eq!(id.to_string().parse::<ApiKeyId>().ok(), Some(id));
    }
}

/// The JSON body of every route that takes one: it is read as an object or refused with a
/// 400 (`invalid_json` or `invalid_field`), never anything else.
pub fn json_bodies(data: &[u8]) {
    use cloacina_http::handlers::{executions, keys, tenants};
    check::<keys::CreateKeyBody>(data);
    check::<tenants::CreateTenantBody>(data);
    check::<tenants::UpdateTenantBody>(data);
    check::<executions::ExecuteBody>(data);
}

fn check<T: serde::de::DeserializeOwned>(data: &[u8]) {
    match cloacina_http::error::parse_json::<T>(data) {
        Ok(_) => {
            let value: Value = serde_json::from_slice(data).expect("accepted bytes are JSON");
            assert!(value.is_object(), "accepted a body that is not an object");
        }
        Err(e) => {
            assert_eq!(e.status.as_u16(), 400, "{}: {}", e.code, e.message);
            assert!(["invalid_json", "invalid_field"].contains(&e.code), "{}", e.code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_goes_through_the_key_target_as_minted() {
        use cloacina_domain::{ApiKeyId, MintedKey, PresentedKey};
        let minted = MintedKey::new(ApiKeyId::from_uuid(uuid_of(7)), [9; 32]);
        let text = minted.plaintext().expose().to_owned();
        assert!(matches!(PresentedKey::parse(&text), Ok(PresentedKey::Minted { .. })));
        key(text.as_bytes());
    }

    fn uuid_of(n: u8) -> uuid::Uuid {
        uuid::Uuid::from_bytes([n; 16])
    }

    #[test]
    #[should_panic(expected = "no fuzz target")]
    fn an_unknown_target_is_refused() {
        run("nothing", b"");
    }
}
