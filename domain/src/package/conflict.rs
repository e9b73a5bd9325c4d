//! When an upload or a delete of a package version is refused, and which workflows a version
//! may put in force. The stores load what these need under the package's lock and apply the
//! answer; neither decides (docs/packages.md).

use std::collections::HashMap;

use crate::workflow::WorkflowRow;

use super::{NewPackage, PackageName, PackageRecord};

/// Why an upload or a delete of a package version is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageConflict {
    #[error(
        "package {name} {version} was uploaded before with other content; versions are immutable: give this one a new version"
    )]
    VersionTaken { name: PackageName, version: semver::Version },
    #[error("workflow '{workflow}' belongs to package '{owner}'")]
    WorkflowTaken { workflow: String, owner: String },
    #[error("trigger '{trigger}' belongs to package '{owner}': trigger names are unique in a tenant")]
    TriggerTaken { trigger: String, owner: String },
    #[error(
        "package {name} {version} is in use by {executions} unfinished execution(s): cancel them or let them finish first"
    )]
    InUse { name: PackageName, version: semver::Version, executions: u64 },
}

/// What to do with an upload, given what the store holds.
#[derive(Debug, Clone, PartialEq)]
pub enum UploadPlan {
    /// These exact bytes were uploaded before (this row): change nothing.
    Existing(PackageRecord),
    /// Store the version; `in_force` says its workflows take over (no higher version exists).
    Store { in_force: bool },
}

impl NewPackage {
    /// Decides an upload from the row holding the same bytes, if any, and the versions of
    /// this package already stored (as stored text; one that does not parse counts for
    /// nothing).
    ///
    /// # Errors
    /// [`PackageConflict::VersionTaken`]: this name and version hold other bytes.
    pub fn plan_upload(
        &self,
        same_bytes: Option<PackageRecord>,
        versions: &[String],
    ) -> Result<UploadPlan, PackageConflict> {
        if let Some(found) = same_bytes {
            return Ok(UploadPlan::Existing(found));
        }
        let stored: Vec<semver::Version> = versions.iter().filter_map(|v| semver::Version::parse(v).ok()).collect();
        let info = &self.manifest.package;
        if stored.contains(&info.version) {
            return Err(PackageConflict::VersionTaken { name: info.name.clone(), version: info.version.clone() });
        }
        Ok(UploadPlan::Store { in_force: stored.iter().all(|v| *v <= info.version) })
    }
}

impl PackageRecord {
    /// Whether this version may be deleted while `unfinished` executions (pending or
    /// running) use it.
    ///
    /// # Errors
    /// [`PackageConflict::InUse`] while any does.
    pub fn check_delete(&self, unfinished: u64) -> Result<(), PackageConflict> {
        if unfinished > 0 {
            return Err(PackageConflict::InUse {
                name: self.name.clone(),
                version: self.version.clone(),
                executions: unfinished,
            });
        }
        Ok(())
    }

    /// Whether deleting this version takes its package's workflows out of force, given the
    /// version in force (if any): then the highest remaining version's take their place.
    pub fn was_in_force(&self, in_force: Option<&str>) -> bool {
        in_force.and_then(|v| semver::Version::parse(v).ok()).is_some_and(|v| v == self.version)
    }
}

/// Which of `workflows` (one version of `package`) go in force, given the package that owns
/// each name now (`owners`, by workflow name). A name another package declares refuses the
/// whole set when `strict` (an upload), and stays its owner's otherwise (an older version
/// brought back by a delete).
///
/// # Errors
/// [`PackageConflict::WorkflowTaken`], when `strict`.
pub fn workflows_in_force<'a>(
    package: &str,
    workflows: &'a [WorkflowRow],
    owners: &HashMap<String, String>,
    strict: bool,
) -> Result<Vec<&'a WorkflowRow>, PackageConflict> {
    let mut kept = Vec::with_capacity(workflows.len());
    for w in workflows {
        match owners.get(&w.name).filter(|owner| *owner != package) {
            Some(owner) if strict => {
                return Err(PackageConflict::WorkflowTaken { workflow: w.name.clone(), owner: owner.clone() });
            }
            Some(_) => {}
            None => kept.push(w),
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn new_package(version: &str) -> NewPackage {
        let text = format!(
            "[package]\nname = \"etl\"\nversion = \"{version}\"\n[[workflow]]\nname = \"nightly\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n"
        );
        NewPackage {
            id: uuid::Uuid::new_v4(),
            manifest: super::super::Manifest::parse(&text).unwrap(),
            manifest_text: text,
            archive: "/dev/null".into(),
            size_bytes: 10,
            content_hash: format!("hash-{version}"),
            uploaded_at: Utc::now(),
            uploaded_by: None,
            signature: None,
        }
    }

    #[test]
    fn the_same_bytes_change_nothing_and_a_taken_version_with_other_bytes_is_refused() {
        let new = new_package("1.2.0");
        let earlier = new_package("1.2.0").record();
        assert_eq!(new.plan_upload(Some(earlier.clone()), &["1.2.0".into()]), Ok(UploadPlan::Existing(earlier)));
        assert!(matches!(
            new.plan_upload(None, &["1.0.0".into(), "1.2.0".into()]),
            Err(PackageConflict::VersionTaken { .. })
        ));
    }

    #[test]
    fn a_new_version_takes_over_only_if_no_higher_one_is_stored() {
        let new = new_package("1.2.0");
        assert_eq!(new.plan_upload(None, &[]), Ok(UploadPlan::Store { in_force: true }));
        assert_eq!(new.plan_upload(None, &["1.1.9".into(), "junk".into()]), Ok(UploadPlan::Store { in_force: true }));
        assert_eq!(new.plan_upload(None, &["1.10.0".into()]), Ok(UploadPlan::Store { in_force: false }));
    }

    #[test]
    fn a_version_in_use_is_kept_and_the_refusal_says_by_how_many() {
        let rec = new_package("2.0.0").record();
        assert_eq!(rec.check_delete(0), Ok(()));
        let refused = rec.check_delete(3).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "package etl 2.0.0 is in use by 3 unfinished execution(s): cancel them or let them finish first"
        );
        assert!(rec.was_in_force(Some("2.0.0")));
        assert!(!rec.was_in_force(Some("1.0.0")) && !rec.was_in_force(None));
    }

    #[test]
    fn a_workflow_another_package_owns_refuses_an_upload_and_stays_its_owners_on_a_delete() {
        let rows = new_package("1.0.0").workflow_rows();
        let owners = HashMap::from([("nightly".to_owned(), "other".to_owned())]);
        assert_eq!(
            workflows_in_force("etl", &rows, &owners, true),
            Err(PackageConflict::WorkflowTaken { workflow: "nightly".into(), owner: "other".into() })
        );
        assert!(workflows_in_force("etl", &rows, &owners, false).unwrap().is_empty());
        let own = HashMap::from([("nightly".to_owned(), "etl".to_owned())]);
        assert_eq!(workflows_in_force("etl", &rows, &own, true).unwrap().len(), 1);
    }
}
