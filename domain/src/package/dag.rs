//! A workflow's tasks as a graph: every dependency known, none on itself or repeated, no
//! cycle; and the order to run them in.

use std::collections::HashMap;

use super::names::TaskId;

/// What is wrong with a workflow's dependencies. Indexes point into the task list, and into
/// the task's `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    #[error("depends on '{name}', which is not a task of this workflow")]
    Unknown { task: usize, dep: usize, name: String },
    #[error("a task cannot depend on itself")]
    OnItself { task: usize, dep: usize },
    #[error("'{name}' is listed twice")]
    Repeated { task: usize, dep: usize, name: String },
    #[error("dependency cycle: {}", .path.join(" → "))]
    Cycle { task: usize, path: Vec<String> },
}

/// Checks the graph and returns the task indexes in an order where every task comes after its
/// dependencies; among tasks free to go, declaration order.
///
/// # Errors
/// The first [`DagError`] found, in declaration order.
pub fn order(tasks: &[(TaskId, Vec<TaskId>)]) -> Result<Vec<usize>, DagError> {
    let index: HashMap<&TaskId, usize> = tasks.iter().enumerate().map(|(i, (id, _))| (id, i)).collect();
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(tasks.len());
    for (t, (id, depends_on)) in tasks.iter().enumerate() {
        let mut mine = Vec::with_capacity(depends_on.len());
        for (d, dep) in depends_on.iter().enumerate() {
            let Some(&j) = index.get(dep) else {
                return Err(DagError::Unknown { task: t, dep: d, name: dep.to_string() });
            };
            if dep == id {
                return Err(DagError::OnItself { task: t, dep: d });
            }
            if mine.contains(&j) {
                return Err(DagError::Repeated { task: t, dep: d, name: dep.to_string() });
            }
            mine.push(j);
        }
        deps.push(mine);
    }
    // Kahn's algorithm, always taking the first ready task in declaration order.
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (t, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(t);
        }
    }
    let mut done = vec![false; tasks.len()];
    let mut out = Vec::with_capacity(tasks.len());
    while out.len() < tasks.len() {
        let Some(next) = (0..tasks.len()).find(|&t| !done[t] && waiting[t] == 0) else {
            return Err(cycle(tasks, &deps, &done));
        };
        done[next] = true;
        out.push(next);
        for &t in &dependents[next] {
            waiting[t] -= 1;
        }
    }
    Ok(out)
}

/// A cycle among the tasks not yet placed: walk dependencies from the first of them until a
/// task repeats.
fn cycle(tasks: &[(TaskId, Vec<TaskId>)], deps: &[Vec<usize>], done: &[bool]) -> DagError {
    let start = (0..tasks.len()).find(|&t| !done[t]).unwrap_or(0);
    let mut path = vec![start];
    let mut at = start;
    while let Some(&next) = deps[at].iter().find(|&&d| !done[d]) {
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut names: Vec<String> = path[pos..].iter().map(|&i| tasks[i].0.to_string()).collect();
            names.push(tasks[next].0.to_string());
            return DagError::Cycle { task: path[pos], path: names };
        }
        path.push(next);
        at = next;
    }
    DagError::Cycle { task: start, path: vec![tasks[start].0.to_string()] }
}

/// The tasks by level: level 0 holds the tasks that depend on nothing, level n those whose
/// furthest dependency is on level n − 1. Tasks on one level may run side by side; within a
/// level, the order given. `deps` gives each task's id with the ids it depends on; an id that
/// names no task is ignored.
pub fn levels(deps: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = deps.iter().enumerate().map(|(i, (id, _))| (id.as_str(), i)).collect();
    let mut level = vec![0usize; deps.len()];
    // At most one pass per task settles every level, whatever the order given; a cycle (which
    // a validated workflow never has) stops there too.
    for _ in 0..deps.len() {
        let mut changed = false;
        for (t, (_, on)) in deps.iter().enumerate() {
            let want = on.iter().filter_map(|d| index.get(d.as_str())).map(|&d| level[d] + 1).max().unwrap_or(0);
            if want > level[t] {
                level[t] = want;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut out: Vec<Vec<String>> = vec![Vec::new(); level.iter().max().map_or(0, |m| m + 1)];
    for (t, (id, _)) in deps.iter().enumerate() {
        out[level[t]].push(id.clone());
    }
    out
}

#[cfg(test)]
mod level_tests {
    use super::levels;

    fn g(edges: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        edges.iter().map(|(t, d)| ((*t).to_owned(), d.iter().map(|s| (*s).to_owned()).collect())).collect()
    }

    #[test]
    fn parallel_tasks_share_a_level_and_a_diamond_has_three() {
        let wide: Vec<(String, Vec<String>)> = (1..=60).map(|i| (format!("t{i:02}"), Vec::new())).collect();
        assert_eq!(levels(&wide).len(), 1);
        assert_eq!(levels(&wide)[0].len(), 60);
        let diamond = g(&[("extract", &[]), ("a", &["extract"]), ("b", &["extract"]), ("load", &["a", "b"])]);
        assert_eq!(levels(&diamond), [vec!["extract"], vec!["a", "b"], vec!["load"]]);
        // The furthest dependency decides, in any order given.
        let skewed = g(&[("load", &["a", "extract"]), ("a", &["extract"]), ("extract", &[])]);
        assert_eq!(levels(&skewed), [vec!["extract"], vec!["a"], vec!["load"]]);
        assert!(levels(&[]).is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dag(spec: &[(&str, &[&str])]) -> Vec<(TaskId, Vec<TaskId>)> {
        spec.iter()
            .map(|(id, deps)| (TaskId::parse(id).unwrap(), deps.iter().map(|d| TaskId::parse(d).unwrap()).collect()))
            .collect()
    }

    #[test]
    fn dependencies_come_first_and_ties_keep_declaration_order() {
        let tasks = dag(&[("load", &["transform"]), ("extract", &[]), ("transform", &["extract"]), ("audit", &[])]);
        assert_eq!(order(&tasks).unwrap(), vec![1, 2, 0, 3]);
    }

    #[test]
    fn unknown_self_and_repeated_dependencies_are_named() {
        assert_eq!(
            order(&dag(&[("a", &[]), ("b", &["a", "nope"])])),
            Err(DagError::Unknown { task: 1, dep: 1, name: "nope".into() })
        );
        assert_eq!(order(&dag(&[("a", &["a"])])), Err(DagError::OnItself { task: 0, dep: 0 }));
        assert_eq!(
            order(&dag(&[("a", &[]), ("b", &["a", "a"])])),
            Err(DagError::Repeated { task: 1, dep: 1, name: "a".into() })
        );
    }

    #[test]
    fn a_cycle_is_reported_with_its_path() {
        let err = order(&dag(&[("start", &[]), ("a", &["c"]), ("b", &["a"]), ("c", &["b", "start"])])).unwrap_err();
        let DagError::Cycle { path, .. } = &err else { panic!("{err:?}") };
        assert_eq!(path.first(), path.last());
        assert_eq!(path.len(), 4, "{err}");
        assert!(err.to_string().starts_with("dependency cycle: "));
    }

    proptest! {
        /// Random graphs whose edges point only backwards are acyclic: the order must be a
        /// permutation that puts every dependency first.
        #[test]
        fn every_acyclic_graph_is_ordered_dependencies_first(edges in proptest::collection::vec((0usize..12, 0usize..12), 0..40)) {
            let n = 12;
            let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
            for (a, b) in edges {
                let (hi, lo) = (a.max(b), a.min(b));
                if hi != lo && !deps[hi].contains(&lo) {
                    deps[hi].push(lo);
                }
            }
            let tasks: Vec<(TaskId, Vec<TaskId>)> = (0..n)
                .map(|i| (TaskId::parse(&format!("t{i}")).unwrap(), deps[i].iter().map(|d| TaskId::parse(&format!("t{d}")).unwrap()).collect()))
                .collect();
            let got = order(&tasks).unwrap();
            let mut pos = vec![0; n];
            for (p, &t) in got.iter().enumerate() { pos[t] = p; }
            let mut sorted = got.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            for (t, ds) in deps.iter().enumerate() {
                for &d in ds { prop_assert!(pos[d] < pos[t]); }
            }
        }

        /// Closing any chain into a loop is always caught.
        #[test]
        fn every_loop_is_caught(len in 1usize..10) {
            let tasks: Vec<(TaskId, Vec<TaskId>)> = (0..len)
                .map(|i| (TaskId::parse(&format!("t{i}")).unwrap(), vec![TaskId::parse(&format!("t{}", (i + 1) % len)).unwrap()]))
                .collect();
            prop_assert!(order(&tasks).is_err());
        }
    }
}
