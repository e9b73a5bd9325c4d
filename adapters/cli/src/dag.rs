//! A workflow's task graph drawn for people: its levels (tasks on one level may run side by
//! side), then each task with what it waits for, its command, timeout, attempts and the names
//! of its environment variables.

use cloacina_domain::package::TaskNode;
use cloacina_domain::package::dag::levels;

use crate::output::Table;

/// A node of a `task_graph` as the API gives it (the workflow detail, `package validate -o
/// json`); fields an older server lacks are left empty.
pub fn node_from_json(v: &serde_json::Value) -> TaskNode {
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
    };
    TaskNode {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        dependencies: strings("dependencies"),
        command: strings("command"),
        timeout: std::time::Duration::from_secs(v["timeout_seconds"].as_u64().unwrap_or_default()),
        max_attempts: v["max_attempts"].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or_default(),
        env: strings("env"),
    }
}

/// The JSON [`node_from_json`] reads, for a task of a manifest read here.
pub fn node_json(n: &TaskNode) -> serde_json::Value {
    serde_json::json!({
        "id": n.id,
        "dependencies": n.dependencies,
        "command": n.command,
        "timeout_seconds": n.timeout.as_secs(),
        "max_attempts": n.max_attempts,
        "env": n.env,
    })
}

/// The graph of `task_graph` (a JSON array of nodes).
pub fn draw_json(task_graph: &serde_json::Value, indent: &str) -> String {
    let nodes: Vec<TaskNode> = task_graph.as_array().into_iter().flatten().map(node_from_json).collect();
    draw(&nodes, indent)
}

/// The widest line of task ids on one level before it wraps.
const WIDTH: usize = 96;

/// The graph, each line indented by `indent`.
pub fn draw(nodes: &[TaskNode], indent: &str) -> String {
    let edges: Vec<(String, Vec<String>)> = nodes.iter().map(|n| (n.id.clone(), n.dependencies.clone())).collect();
    let by_level = levels(&edges);
    let mut out = vec![format!(
        "{indent}{} task{} in {} level{}{}",
        nodes.len(),
        plural(nodes.len()),
        by_level.len(),
        plural(by_level.len()),
        if by_level.iter().any(|l| l.len() > 1) { " (tasks on one level run side by side)" } else { "" }
    )];
    let number = by_level.len().to_string().len();
    for (i, level) in by_level.iter().enumerate() {
        let mut line = String::new();
        let mut first = true;
        for id in level {
            if !line.is_empty() && line.len() + id.len() + 2 > WIDTH {
                out.push(level_line(indent, number, first.then_some(i + 1), &line));
                first = false;
                line.clear();
            }
            if !line.is_empty() {
                line.push_str("  ");
            }
            line.push_str(id);
        }
        out.push(level_line(indent, number, first.then_some(i + 1), &line));
    }
    let mut table = Table::new(&["TASK", "AFTER", "COMMAND", "TIMEOUT", "ATTEMPTS", "ENV"]);
    for n in nodes {
        table.row(vec![
            n.id.clone(),
            if n.dependencies.is_empty() { "-".into() } else { n.dependencies.join(", ") },
            n.command.join(" "),
            humantime::format_duration(n.timeout).to_string(),
            n.max_attempts.to_string(),
            if n.env.is_empty() { "-".into() } else { n.env.join(", ") },
        ]);
    }
    out.extend(table.render().lines().map(|l| format!("{indent}{l}")));
    out.join("\n")
}

fn level_line(indent: &str, width: usize, number: Option<usize>, ids: &str) -> String {
    match number {
        Some(n) => format!("{indent}  {n:>width$}  {ids}"),
        None => format!("{indent}  {:>width$}  {ids}", ""),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, after: &[&str]) -> TaskNode {
        TaskNode {
            id: id.into(),
            dependencies: after.iter().map(|s| (*s).to_owned()).collect(),
            command: vec!["sh".into(), format!("{id}.sh")],
            timeout: std::time::Duration::from_secs(300),
            max_attempts: 1,
            env: Vec::new(),
        }
    }

    #[test]
    fn a_diamond_is_three_levels_with_the_middle_side_by_side() {
        let d = [node("extract", &[]), node("a", &["extract"]), node("b", &["extract"]), node("load", &["a", "b"])];
        let drawn = draw(&d, "");
        let lines: Vec<&str> = drawn.lines().collect();
        assert_eq!(lines[0], "4 tasks in 3 levels (tasks on one level run side by side)");
        assert_eq!(&lines[1..4], ["  1  extract", "  2  a  b", "  3  load"]);
        assert!(
            lines[4].starts_with("TASK") && lines[8].starts_with("load     a, b     sh load.sh     5m       1"),
            "{drawn}"
        );
    }

    #[test]
    fn sixty_independent_tasks_are_one_level_wrapped() {
        let wide: Vec<TaskNode> = (1..=60).map(|i| node(&format!("t{i:02}"), &[])).collect();
        let drawn = draw(&wide, "");
        assert!(drawn.starts_with("60 tasks in 1 level (tasks"), "{drawn}");
        let level_lines: Vec<&str> = drawn.lines().skip(1).take_while(|l| !l.starts_with("TASK")).collect();
        assert!(level_lines.len() > 1 && level_lines.iter().all(|l| l.len() <= WIDTH + 5), "{drawn}");
        assert!(level_lines[0].starts_with("  1  t01  t02") && level_lines[1].starts_with("     t"), "{drawn}");
        assert!(!drawn.contains('→'));
    }
}
