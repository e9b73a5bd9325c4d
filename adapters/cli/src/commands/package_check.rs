//! What `package validate` says beyond the manifest's own checks: every manifest problem at
//! once, and a warning for each task command naming a file the package does not contain.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cloacina_domain::package::{Manifest, ManifestError};

use crate::exit::CliError;

/// The refusal of an invalid manifest, listing every problem with its field path.
pub fn invalid(at: &Path, e: &ManifestError) -> CliError {
    let all = e.all();
    if all.len() == 1 {
        return CliError::Usage(format!("{}: the package manifest is invalid: {e}", at.display()));
    }
    let lines: Vec<String> = all.iter().map(|p| format!("  {p}")).collect();
    CliError::Usage(format!(
        "{}: the package manifest is invalid, {} problems:\n{}",
        at.display(),
        all.len(),
        lines.join("\n")
    ))
}

/// The files of the package folder `dir`, relative to it.
pub fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(folder) = todo.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() => out.extend(path.strip_prefix(dir).ok().map(Path::to_owned)),
                _ => {}
            }
        }
    }
    out
}

/// A warning for each command argument that names a file of the package (a relative program
/// path such as `./run.sh` or `bin/tool`, or an argument ending like a script) that `files`
/// lacks.
pub fn missing_files(manifest: &Manifest, files: &[PathBuf]) -> Vec<String> {
    let have: HashSet<PathBuf> = files.iter().map(|f| normal(f)).collect();
    let mut warnings = Vec::new();
    for (w, wf) in manifest.workflows.iter().enumerate() {
        // The manifest's task order is the run order; the field paths use the declared order,
        // which `package.toml` lists by id: name the task by id to stay unambiguous.
        for task in &wf.tasks {
            for (i, arg) in task.command.iter().enumerate() {
                if names_a_file(i, arg) && !have.contains(&normal(Path::new(arg))) {
                    warnings.push(format!(
                        "workflow[{w}] ({}) task '{}': command[{i}] '{arg}' is not a file of the package",
                        wf.name, task.id
                    ));
                }
            }
        }
    }
    warnings
}

/// Script endings an argument is taken as a file of the package by.
const SCRIPT_ENDINGS: [&str; 9] = [".sh", ".bash", ".py", ".rb", ".pl", ".js", ".mjs", ".ts", ".php"];

fn names_a_file(position: usize, arg: &str) -> bool {
    if arg.starts_with('-') || arg.starts_with('/') || arg.contains('$') || arg.contains('=') {
        return false;
    }
    let relative_program = position == 0 && arg.contains('/');
    relative_program || SCRIPT_ENDINGS.iter().any(|e| arg.ends_with(e) && arg.len() > e.len())
}

/// `./a/b` as `a/b`.
fn normal(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_a_command_names_are_told_apart_from_flags_programs_and_paths_outside() {
        assert!(names_a_file(1, "load.sh") && names_a_file(0, "./run") && names_a_file(0, "bin/tool"));
        assert!(names_a_file(2, "scripts/x.py"));
        assert!(!names_a_file(0, "python3") && !names_a_file(1, "-c") && !names_a_file(1, "/usr/bin/x.sh"));
        assert!(!names_a_file(1, "echo") && !names_a_file(1, "$HOME/x.sh") && !names_a_file(1, ".sh"));
        assert_eq!(normal(Path::new("./a/./b.sh")), PathBuf::from("a/b.sh"));
    }
}
