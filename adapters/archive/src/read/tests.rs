#![allow(clippy::unwrap_used)]

use std::io::Write;

use super::*;
use crate::pack;

const MANIFEST_TEXT: &str = r#"[package]
name = "demo"
version = "0.1.0"

[[workflow]]
name = "hello"

[[workflow.task]]
id = "greet"
command = ["sh", "greet.sh"]
"#;

/// A package folder on disk.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package.toml"), MANIFEST_TEXT).unwrap();
    std::fs::write(dir.path().join("greet.sh"), "echo hello\n").unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/data.txt"), "data").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("greet.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn packed() -> Vec<u8> {
    let mut out = Vec::new();
    pack(folder().path(), &mut out).unwrap();
    out
}

/// A raw header for `name`, written byte for byte (tar's own setters refuse what an attacker
/// would write).
fn raw_header(name: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    h
}

/// An entry an attacker adds: its header and its content.
type Entry = (tar::Header, Vec<u8>);

/// A gzip archive of the demo manifest plus `extra` entries.
fn hostile(extra: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let manifest = raw_header("demo-0.1.0/package.toml", tar::EntryType::Regular, MANIFEST_TEXT.len() as u64, None);
    b.append(&manifest, MANIFEST_TEXT.as_bytes()).unwrap();
    for (h, data) in extra {
        b.append(h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

#[test]
fn a_packed_folder_unpacks_with_its_files_and_modes() {
    let bytes = packed();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("unpacked");
    let u = unpack(bytes.as_slice(), &dest, &Limits::default()).unwrap();
    assert_eq!(u.root, dest.join("demo-0.1.0"));
    assert_eq!((u.files, u.manifest.package.name.as_str()), (3, "demo"));
    assert_eq!(std::fs::read_to_string(u.root.join("lib/data.txt")).unwrap(), "data");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(u.root.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("greet.sh"), mode("lib/data.txt")), (0o755, 0o644));
    }
    let seen = inspect(bytes.as_slice(), &Limits::default()).unwrap();
    assert_eq!((seen.files, seen.bytes), (u.files, u.bytes));
}

#[test]
fn packing_is_deterministic_so_the_same_folder_gives_the_same_bytes() {
    let dir = folder();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    pack(dir.path(), &mut a).unwrap();
    pack(dir.path(), &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bzip2_archives_are_read_too() {
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let h = raw_header("demo-0.1.0/package.toml", tar::EntryType::Regular, MANIFEST_TEXT.len() as u64, None);
        b.append(&h, MANIFEST_TEXT.as_bytes()).unwrap();
        b.finish().unwrap();
    }
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    enc.write_all(&tar_bytes).unwrap();
    let bytes = enc.finish().unwrap();
    assert_eq!(inspect(bytes.as_slice(), &Limits::default()).unwrap().manifest.package.version.to_string(), "0.1.0");
}

#[test]
fn malicious_entries_are_refused_and_nothing_is_written_anywhere() {
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        ("absolute", vec![(raw_header("/tmp/evil", tar::EntryType::Regular, 4, None), b"evil".to_vec())]),
        ("dotdot", vec![(raw_header("demo-0.1.0/../../evil", tar::EntryType::Regular, 4, None), b"evil".to_vec())]),
        ("symlink", vec![(raw_header("demo-0.1.0/link", tar::EntryType::Symlink, 0, Some("/etc/passwd")), vec![])]),
        ("hardlink", vec![(raw_header("demo-0.1.0/hard", tar::EntryType::Link, 0, Some("/etc/passwd")), vec![])]),
        ("device", vec![(raw_header("demo-0.1.0/dev", tar::EntryType::Char, 0, None), vec![])]),
        ("fifo", vec![(raw_header("demo-0.1.0/pipe", tar::EntryType::Fifo, 0, None), vec![])]),
        ("second folder", vec![(raw_header("other/file", tar::EntryType::Regular, 1, None), b"x".to_vec())]),
        ("duplicate", vec![(raw_header("demo-0.1.0/package.toml", tar::EntryType::Regular, 1, None), b"x".to_vec())]),
    ];
    for (what, extra) in cases {
        let bytes = hostile(&extra);
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("unpacked");
        let err = unpack(bytes.as_slice(), &dest, &Limits::default()).unwrap_err();
        let expected = match what {
            "absolute" | "dotdot" => matches!(err, ArchiveError::UnsafePath { .. }),
            "second folder" => matches!(err, ArchiveError::OutsideFolder { .. }),
            "duplicate" => matches!(err, ArchiveError::Duplicate(_)),
            _ => matches!(err, ArchiveError::Forbidden { .. }),
        };
        assert!(expected, "{what}: {err}");
        assert!(!dest.exists(), "{what}: the partial unpack is removed");
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0, "{what}: nothing written beside it");
        assert!(!std::path::Path::new("/tmp/evil").exists());
        assert!(inspect(bytes.as_slice(), &Limits::default()).is_err(), "{what}: inspect refuses too");
    }
}

#[test]
fn a_compression_bomb_stops_at_the_limit() {
    let big: u64 = 64 * 1024 * 1024;
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let manifest = raw_header("demo-0.1.0/package.toml", tar::EntryType::Regular, MANIFEST_TEXT.len() as u64, None);
    b.append(&manifest, MANIFEST_TEXT.as_bytes()).unwrap();
    b.append(&raw_header("demo-0.1.0/zeros", tar::EntryType::Regular, big, None), std::io::repeat(0).take(big))
        .unwrap();
    let bytes = b.into_inner().unwrap().finish().unwrap();
    assert!(bytes.len() < 1024 * 1024, "the bomb is small: {} bytes", bytes.len());
    let limits = Limits { max_entries: 100, max_bytes: 1024 * 1024 };
    let parent = tempfile::tempdir().unwrap();
    let err = unpack(bytes.as_slice(), &parent.path().join("u"), &limits).unwrap_err();
    assert!(matches!(err, ArchiveError::TooLarge(_)), "{err}");
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}

#[test]
fn too_many_entries_a_missing_or_mismatched_manifest_and_junk_are_refused() {
    let many: Vec<_> = (0..10)
        .map(|i| (raw_header(&format!("demo-0.1.0/f{i}"), tar::EntryType::Regular, 1, None), b"x".to_vec()))
        .collect();
    let limits = Limits { max_entries: 5, max_bytes: 1024 };
    assert!(matches!(inspect(hostile(&many).as_slice(), &limits), Err(ArchiveError::TooManyEntries(5))));

    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    b.append(&raw_header("demo-0.1.0/readme", tar::EntryType::Regular, 1, None), &b"x"[..]).unwrap();
    let no_manifest = b.into_inner().unwrap().finish().unwrap();
    assert!(matches!(inspect(no_manifest.as_slice(), &Limits::default()), Err(ArchiveError::NoManifest)));

    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let h = raw_header("demo-9.9.9/package.toml", tar::EntryType::Regular, MANIFEST_TEXT.len() as u64, None);
    b.append(&h, MANIFEST_TEXT.as_bytes()).unwrap();
    let mismatch = b.into_inner().unwrap().finish().unwrap();
    assert!(matches!(inspect(mismatch.as_slice(), &Limits::default()), Err(ArchiveError::FolderMismatch { .. })));

    assert!(matches!(inspect(&b"PK\x03\x04 a zip file"[..], &Limits::default()), Err(ArchiveError::NotAnArchive)));
    let mut truncated = packed();
    truncated.truncate(truncated.len() / 2);
    assert!(inspect(truncated.as_slice(), &Limits::default()).is_err());
}

#[test]
fn unpacking_never_reuses_an_existing_folder() {
    let parent = tempfile::tempdir().unwrap();
    let err = unpack(packed().as_slice(), parent.path(), &Limits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::Write(_)), "{err}");
}

/// A gzip archive of the demo manifest plus one file at `path`, however long (GNU long names).
fn with_long_path(path: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let manifest = raw_header("demo-0.1.0/package.toml", tar::EntryType::Regular, MANIFEST_TEXT.len() as u64, None);
    b.append(&manifest, MANIFEST_TEXT.as_bytes()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, path, &b"x"[..]).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

#[test]
fn names_and_paths_no_filesystem_can_hold_are_refused_before_anything_is_written() {
    let long_name = format!("demo-0.1.0/{}", "n".repeat(256));
    let deep = format!("demo-0.1.0/{}", vec!["d".repeat(200); 21].join("/"));
    for (what, path, why) in [
        ("a 256-byte name", long_name.as_str(), "longer than 255 bytes"),
        ("a 4,200-byte path", deep.as_str(), "longer than 4096 bytes"),
    ] {
        let bytes = with_long_path(path);
        let err = inspect(bytes.as_slice(), &Limits::default()).unwrap_err();
        assert!(matches!(err, ArchiveError::UnsafePath { .. }) && err.to_string().contains(why), "{what}: {err}");
        let parent = tempfile::tempdir().unwrap();
        assert!(unpack(bytes.as_slice(), &parent.path().join("u"), &Limits::default()).is_err(), "{what}");
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0, "{what}: nothing written");
    }
    // At the limits exactly, it unpacks.
    let longest = format!("demo-0.1.0/{}", "n".repeat(255));
    let parent = tempfile::tempdir().unwrap();
    unpack(with_long_path(&longest).as_slice(), &parent.path().join("u"), &Limits::default()).unwrap();
}
