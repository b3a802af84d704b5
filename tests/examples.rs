//! The README's main job: the quickstart example with the embedded default
//! isolation (temp dirs + the built-in sqlite plugin), no server needed.

use partest_e2e::*;

#[test]
fn the_quickstart_example_passes_with_a_database_per_slot() {
    let dir = workspace().join("examples/quickstart");
    let out = partest(&dir).args(["run", "-n", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("9 passed, 0 failed"), "{text}");
    assert!(
        text.contains("SETUP"),
        "the template was migrated once: {text}"
    );
    // Teardown removed every slot database.
    let left: Vec<_> = walk(&dir.join(".partest/plugins"))
        .into_iter()
        .filter(|p| p.ends_with(".db"))
        .collect();
    assert!(left.is_empty(), "slot databases left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path.to_string_lossy().into_owned());
            }
        }
    }
    out
}
