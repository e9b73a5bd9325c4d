//! The archive adapter of the domain's [`PackageArchives`] port: an upload's file hashed and
//! inspected within the limits.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use cloacina_domain::ports::{ArchiveRefused, CheckedArchive, PackageArchives};
use sha2::{Digest, Sha256};

use crate::{Limits, inspect};

/// `.cloacina` archives, checked within `limits`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Archives {
    pub limits: Limits,
}

impl PackageArchives for Archives {
    fn check(&self, path: &Path) -> Result<CheckedArchive, ArchiveRefused> {
        let open = || File::open(path).map(BufReader::new).map_err(|e| ArchiveRefused::Unreadable(e.to_string()));
        let mut hasher = Sha256::new();
        let size_bytes =
            std::io::copy(&mut open()?, &mut hasher).map_err(|e| ArchiveRefused::Unreadable(e.to_string()))?;
        let checked = inspect(open()?, &self.limits).map_err(|e| ArchiveRefused::Invalid(e.to_string()))?;
        Ok(CheckedArchive {
            manifest: checked.manifest,
            manifest_text: checked.manifest_text,
            content_hash: format!("{:x}", hasher.finalize()),
            size_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_is_hashed_and_its_manifest_read_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("demo");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(
            src.join("package.toml"),
            "[package]\nname = \"demo\"\nversion = \"1.0.0\"\n[[workflow]]\nname = \"w\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n",
        )
        .unwrap();
        let file = dir.path().join("demo.cloacina");
        crate::pack(&src, File::create(&file).unwrap()).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let checked = Archives::default().check(&file).unwrap();
        assert_eq!(checked.content_hash, format!("{:x}", Sha256::digest(&bytes)));
        assert_eq!(checked.size_bytes, bytes.len() as u64);
        assert_eq!(checked.manifest.package.name.as_str(), "demo");
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not an archive").unwrap();
        assert!(
            matches!(Archives::default().check(&junk), Err(ArchiveRefused::Invalid(m)) if m.contains("not a package archive"))
        );
        assert!(matches!(Archives::default().check(&dir.path().join("gone")), Err(ArchiveRefused::Unreadable(_))));
    }
}
