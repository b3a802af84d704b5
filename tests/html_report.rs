//! `--html FILE` and `partest report --html FILE`, looked at in a real
//! browser: Debian's chromium, headless, driven by playwright for Python
//! (no browser download). The page has one timeline row per slot and one
//! box per test attempt, and clicking a failed test's box shows its output.
//! Without chromium or playwright the test skips with a note; with CI=true
//! it fails.

use partest_e2e::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// What the browser saw on the page at `path`, after clicking the first
/// failed box: (rows, boxes, detail shown, detail's output).
const LOOK: &str = r##"
import json, sys
from playwright.sync_api import sync_playwright
path, chromium = sys.argv[1:]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-breakpad", "--disable-crash-reporter"])
    page = browser.new_page()
    page.goto("file://" + path)
    rows = page.locator(".slot-row").count()
    boxes = page.locator(".attempt").count()
    page.locator(".attempt.fail").first.click()
    shown = page.locator("#detail").is_visible()
    output = page.locator("#detail .output").inner_text()
    print(json.dumps({"rows": rows, "boxes": boxes, "shown": shown, "output": output}))
    browser.close()
"##;

fn browser_ready() -> bool {
    let chromium = std::path::Path::new(CHROMIUM).exists();
    let playwright = python_has("playwright", "playwright", "the HTML report's browser test");
    if chromium && playwright {
        return true;
    }
    assert!(
        !in_ci(),
        "CI=true but {CHROMIUM} (apt chromium) or playwright (pip) is missing"
    );
    eprintln!("skipping: needs {CHROMIUM} (apt-get install chromium) and playwright (pip)");
    false
}

fn look(page: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .args(["-c", LOOK])
        .arg(page)
        .arg(CHROMIUM)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", both(&out));
    serde_json::from_str(stdout(&out).trim()).expect("the browser's answer")
}

#[test]
fn the_html_report_has_a_row_per_slot_a_box_per_attempt_and_shows_a_failures_output() {
    if !browser_ready() {
        return;
    }
    let p = Project::new();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n",
    );
    for i in 0..5 {
        p.file(&format!("t/ok{i}.sh"), "sleep 0.05\n");
    }
    p.file("t/bad.sh", "echo boom-output-1234\nexit 1\n");
    let run = p.run_json(&[
        "run",
        "-n",
        "2",
        "--retries",
        "1",
        "--html",
        "out/report.html",
    ]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    let attempts = run.attempts().len() as u64;
    assert_eq!(attempts, 7, "5 passes and 2 attempts of the failure");
    for page in [p.path().join("out/report.html"), {
        // The same page again, from the last run's record.
        let out = p.run(&["report", "--html", "again.html"]);
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
        p.path().join("again.html")
    }] {
        let seen = look(&page);
        assert_eq!(seen["rows"], 2, "{seen}");
        assert_eq!(seen["boxes"], attempts, "{seen}");
        assert_eq!(seen["shown"], true, "{seen}");
        assert!(
            seen["output"]
                .as_str()
                .unwrap()
                .contains("boom-output-1234"),
            "{seen}"
        );
        let html = std::fs::read_to_string(&page).unwrap();
        for external in ["http://", "https://", "<link", "src="] {
            assert!(!html.contains(external), "the page reaches out: {external}");
        }
    }
}
