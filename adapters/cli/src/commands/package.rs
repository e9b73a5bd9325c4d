//! `package new|pack|validate`: making and checking packages, offline; `package upload|list`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use cloacina_archive::{Limits, file_name, inspect_files, pack};

use super::package_check;
use cloacina_domain::package::{Manifest, PackageName};
use serde_json::{Value, json};

use reqwest::Method;

use crate::args::{Globals, PackageCommand};
use crate::client::Context;
use crate::exit::CliError;
use crate::output::{Table, emit, items, text};

/// The scaffold `package new` writes: (file, contents, executable).
const TEMPLATE: [(&str, &str, bool); 4] = [
    ("package.toml", include_str!("package_template/package.toml"), false),
    ("extract.sh", include_str!("package_template/extract.sh"), true),
    ("transform.sh", include_str!("package_template/transform.sh"), true),
    ("load.sh", include_str!("package_template/load.sh"), true),
];

/// Runs a `package` command.
///
/// # Errors
/// [`CliError::Usage`] for a bad name or an invalid package, [`CliError::Local`] for files
/// that cannot be read or written.
pub async fn run(globals: Globals, cmd: PackageCommand) -> Result<(), CliError> {
    let format = globals.format();
    match cmd {
        PackageCommand::Keygen { name, dir } => super::signing::keygen(&name, &dir),
        PackageCommand::Sign { file, key } => super::signing::sign(&file, &key),
        PackageCommand::Upload { file } => {
            let ctx = Context::load(globals)?;
            let client = ctx.client()?;
            let tenant = ctx.tenant(&client).await?;
            let uploaded = client.upload(&format!("/v1/tenants/{tenant}/workflows"), &file).await?;
            emit(
                format,
                &uploaded,
                || {
                    let what = format!("{} {}", text(&uploaded, "name"), text(&uploaded, "version"));
                    let workflows: Vec<&str> =
                        uploaded["workflows"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    if uploaded["created"] == json!(true) {
                        format!("uploaded {what} to tenant {tenant}: workflows {}", workflows.join(", "))
                    } else {
                        format!("{what} was uploaded to tenant {tenant} before (same content): nothing changed")
                    }
                },
                || vec![text(&uploaded, "package_id")],
            )
        }
        PackageCommand::Inspect { name } => {
            let ctx = Context::load(globals)?;
            let client = ctx.client()?;
            let tenant = ctx.tenant(&client).await?;
            let listed = client.call(Method::GET, &format!("/v1/tenants/{tenant}/packages"), None::<&()>).await?;
            let (name, only) = split_version(&name);
            let versions: Vec<Value> = items(&listed)
                .into_iter()
                .filter(|p| p["name"].as_str() == Some(name) && only.is_none_or(|v| p["version"].as_str() == Some(v)))
                .collect();
            if versions.is_empty() {
                let what =
                    only.map_or_else(|| format!("package '{name}'"), |v| format!("version {v} of package '{name}'"));
                return Err(CliError::Api {
                    status: 404,
                    code: "package_not_found".into(),
                    message: format!("no {what} in tenant {tenant}"),
                });
            }
            let shown = json!({"tenant_id": tenant.as_str(), "name": name, "versions": versions});
            emit(format, &shown, || versions_table(&versions), || versions.iter().map(|p| text(p, "version")).collect())
        }
        PackageCommand::Delete { name, version } => {
            let (name, version) = match (split_version(&name), version) {
                ((n, None), Some(v)) => (n.to_owned(), v),
                ((n, Some(v)), None) => (n.to_owned(), v.to_owned()),
                ((_, Some(_)), Some(_)) => {
                    return Err(CliError::Usage(format!("'{name}' names a version already: drop VERSION")));
                }
                ((_, None), None) => {
                    return Err(CliError::Usage(format!(
                        "which version of '{name}'? give NAME VERSION or NAME@VERSION"
                    )));
                }
            };
            let ctx = Context::load(globals)?;
            let client = ctx.client()?;
            let tenant = ctx.tenant(&client).await?;
            let path = format!(
                "/v1/tenants/{tenant}/workflows/{}/{}",
                crate::client::segment(&name)?,
                crate::client::segment(&version)?
            );
            let gone = client.call(Method::DELETE, &path, None::<&()>).await?;
            emit(format, &gone, || format!("deleted {name} {version} from tenant {tenant}"), || vec![version.clone()])
        }
        PackageCommand::List => {
            let ctx = Context::load(globals)?;
            let client = ctx.client()?;
            let tenant = ctx.tenant(&client).await?;
            let listed = client.call(Method::GET, &format!("/v1/tenants/{tenant}/packages"), None::<&()>).await?;
            let packages = items(&listed);
            emit(
                format,
                &listed,
                || versions_table(&packages),
                // What `package inspect` and `package delete` take back.
                || packages.iter().map(|p| format!("{}@{}", text(p, "name"), text(p, "version"))).collect(),
            )
        }
        PackageCommand::New { name, dir } => {
            let name = PackageName::parse(&name).map_err(|e| CliError::Usage(format!("package name '{name}' {e}")))?;
            let dir = dir.unwrap_or_else(|| PathBuf::from(name.as_str()));
            scaffold(&dir, &name)?;
            let summary = json!({"name": name.as_str(), "path": dir.display().to_string()});
            emit(
                format,
                &summary,
                || {
                    format!(
                        "created package '{name}' in {}\nnext: cloacinactl package pack {0} && cloacinactl package upload {name}-0.1.0.cloacina",
                        dir.display()
                    )
                },
                || vec![dir.display().to_string()],
            )
        }
        PackageCommand::Pack { dir, file } => {
            let manifest = cloacina_archive::pack::read_manifest(&dir).map_err(|e| CliError::Usage(e.to_string()))?;
            let target = file.unwrap_or_else(|| PathBuf::from(file_name(&manifest)));
            write_atomically(&target, |out| pack(&dir, out).map(drop).map_err(|e| CliError::Usage(e.to_string())))?;
            let summary = json!({"name": manifest.package.name.as_str(), "version": manifest.package.version.to_string(),
                "file": target.display().to_string()});
            emit(format, &summary, || format!("packed {}", target.display()), || vec![target.display().to_string()])
        }
        PackageCommand::Validate { path } => {
            let (manifest, files, paths) = if path.is_dir() {
                let m = cloacina_archive::pack::read_manifest(&path).map_err(|e| match e {
                    cloacina_archive::PackError::Manifest(at, e) => package_check::invalid(&at, &e),
                    other => CliError::Usage(other.to_string()),
                })?;
                (m, None, package_check::files_of(&path))
            } else {
                let file = std::fs::File::open(&path)
                    .map_err(|e| CliError::Local(format!("cannot read {}: {e}", path.display())))?;
                let (seen, paths) =
                    inspect_files(std::io::BufReader::new(file), &Limits::default()).map_err(|e| match e {
                        cloacina_archive::ArchiveError::Manifest(e) => package_check::invalid(&path, &e),
                        other => CliError::Usage(format!("{}: {other}", path.display())),
                    })?;
                (seen.manifest, Some((seen.files, seen.bytes)), paths)
            };
            let warnings = package_check::missing_files(&manifest, &paths);
            for w in &warnings {
                crate::output::note(format!("warning: {w}"));
            }
            let mut summary = describe(&manifest, files);
            summary["warnings"] = json!(warnings);
            emit(format, &summary, || summary_text(&summary), || vec![manifest.package.name.to_string()])
        }
    }
}

fn versions_table(packages: &[Value]) -> String {
    let mut t = Table::new(&["NAME", "VERSION", "WORKFLOWS", "BYTES", "AGE"]);
    for p in packages {
        let workflows: Vec<&str> = p["workflows"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        t.row(vec![
            text(p, "name"),
            text(p, "version"),
            workflows.join(","),
            text(p, "size_bytes"),
            crate::output::age(p, "uploaded_at"),
        ]);
    }
    t.render_or("no packages")
}

fn scaffold(dir: &Path, name: &PackageName) -> Result<(), CliError> {
    let local = |e: std::io::Error| CliError::Local(format!("cannot create {}: {e}", dir.display()));
    if dir.exists() {
        return Err(CliError::Usage(format!("{} exists already: choose another name or --dir", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(local)?;
    for (file, text, executable) in TEMPLATE {
        let path = dir.join(file);
        std::fs::write(&path, text.replace("{{name}}", name.as_str())).map_err(local)?;
        #[cfg(unix)]
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(local)?;
        }
        #[cfg(not(unix))]
        let _ = executable;
    }
    Ok(())
}

/// Writes `target` through a temporary file in the same folder, renamed into place only when
/// complete.
fn write_atomically(
    target: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let folder = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let local = |e: std::io::Error| CliError::Local(format!("cannot write {}: {e}", target.display()));
    let tmp = folder.join(format!(
        ".{}.tmp-{}",
        target.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&tmp).map_err(local)?;
    let result = fill(&mut file).and_then(|()| file.flush().and_then(|()| file.sync_all()).map_err(local));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        local(e)
    })
}

fn describe(m: &Manifest, files: Option<(usize, u64)>) -> Value {
    let workflows: Vec<Value> = m
        .workflows
        .iter()
        .map(|w| {
            json!({
                "name": w.name.as_str(),
                "tasks": w.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
                "task_graph": w.graph().iter().map(crate::dag::node_json).collect::<Vec<_>>(),
                "triggers": w.triggers.iter().map(|t| json!({"name": t.name.as_str(), "cron": t.cron.as_str(),
                    "timezone": t.timezone.name()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut v = json!({
        "valid": true,
        "name": m.package.name.as_str(),
        "version": m.package.version.to_string(),
        "description": m.package.description,
        "workflows": workflows,
    });
    if let Some((count, bytes)) = files {
        v["files"] = json!(count);
        v["bytes"] = json!(bytes);
    }
    v
}

/// `NAME@VERSION` as its two parts; a bare name has no version.
fn split_version(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (arg, None),
    }
}

fn summary_text(v: &Value) -> String {
    let mut lines =
        vec![format!("package {} {}: valid", v["name"].as_str().unwrap_or("?"), v["version"].as_str().unwrap_or("?"))];
    for w in v["workflows"].as_array().into_iter().flatten() {
        let triggers = w["triggers"].as_array().map_or(0, Vec::len);
        lines.push(format!(
            "  workflow {} ({} trigger{})",
            w["name"].as_str().unwrap_or("?"),
            triggers,
            if triggers == 1 { "" } else { "s" }
        ));
        lines.push(crate::dag::draw_json(&w["task_graph"], "    "));
    }
    if let (Some(files), Some(bytes)) = (v["files"].as_u64(), v["bytes"].as_u64()) {
        lines.push(format!("  {files} files, {bytes} bytes unpacked"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaffold_is_a_valid_package_that_packs_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo-etl");
        scaffold(&dir, &PackageName::parse("demo-etl").unwrap()).unwrap();
        let manifest = cloacina_archive::pack::read_manifest(&dir).unwrap();
        let wf = &manifest.workflows[0];
        let ids: Vec<_> = wf.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["extract", "transform", "load"]);
        let archive = tmp.path().join("demo.cloacina");
        write_atomically(&archive, |out| pack(&dir, out).map(drop).map_err(|e| CliError::Usage(e.to_string())))
            .unwrap();
        let (seen, _) = inspect_files(std::fs::File::open(&archive).unwrap(), &Limits::default()).unwrap();
        assert_eq!((seen.manifest.package.name.as_str(), seen.files), ("demo-etl", 4));
        assert!(scaffold(&dir, &PackageName::parse("demo-etl").unwrap()).is_err(), "never overwrites");
    }

    #[test]
    fn a_failed_write_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("x.cloacina");
        let err = write_atomically(&target, |_| Err(CliError::Usage("boom".into())));
        assert!(err.is_err());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
