//! `partest merge --junit OUT FILE...`: the shards' JUnit files joined into
//! one. Any standard JUnit is read (a `<testsuites>` root or a bare
//! `<testsuite>`; testcases with name, classname and time; failure, error,
//! skipped, flaky and rerun elements; properties, system-out/err), and its
//! structure is kept: every element and attribute is carried over as read.
//! Suites of the same name (one binary or module spread over shards) become
//! one suite; the counts of each suite and of the root are summed anew.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use quick_xml::Reader;
use quick_xml::events::Event;

/// An XML element, as read: attributes and text unescaped.
#[derive(Clone, Debug, PartialEq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Element(Element),
    Text(String),
    CData(String),
}

impl Element {
    fn new(name: &str) -> Element {
        Element {
            name: name.to_string(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn set_attr(&mut self, key: &str, value: String) {
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.attrs.push((key.to_string(), value)),
        }
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    fn has_child(&self, name: &str) -> bool {
        self.elements().any(|e| e.name == name)
    }
}

/// Parses one XML document into its root element.
pub fn parse(text: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let utf8 = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| e.to_string());
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML near byte {at}: {e}"))?;
        match event {
            Event::Start(e) => stack.push(element(&e, &reader, at)?),
            Event::Empty(e) => {
                let el = element(&e, &reader, at)?;
                close(&mut stack, &mut root, el)?;
            }
            Event::End(e) => {
                let name = utf8(e.name().as_ref())?;
                let el = stack
                    .pop()
                    .filter(|el| el.name == name)
                    .ok_or_else(|| format!("unexpected </{name}> near byte {at}"))?;
                close(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let raw = utf8(t.as_ref())?;
                    let text = quick_xml::escape::unescape(&raw)
                        .map_err(|e| format!("bad text near byte {at}: {e}"))?;
                    push_text(top, &text);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name = utf8(r.as_ref())?;
                    push_text(top, &resolve_entity(&name)?);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.children.push(Node::CData(utf8(c.as_ref())?));
                }
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions, doctypes.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!("unexpected end of file inside <{}>", stack[0].name));
    }
    root.ok_or_else(|| "no root element".to_string())
}

fn element(
    e: &quick_xml::events::BytesStart<'_>,
    reader: &Reader<&[u8]>,
    at: u64,
) -> Result<Element, String> {
    let utf8 = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| e.to_string());
    let mut el = Element::new(&utf8(e.name().as_ref())?);
    for attr in e.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute near byte {at}: {e}"))?;
        let value = attr
            .decoded_and_normalized_value(quick_xml::XmlVersion::Implicit1_0, reader.decoder())
            .map_err(|e| format!("bad attribute value near byte {at}: {e}"))?;
        el.attrs
            .push((utf8(attr.key.as_ref())?, value.into_owned()));
    }
    Ok(el)
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None if root.is_none() => *root = Some(el),
        None => return Err("more than one root element".into()),
    }
    Ok(())
}

fn push_text(el: &mut Element, text: &str) {
    if let Some(Node::Text(t)) = el.children.last_mut() {
        t.push_str(text);
    } else {
        el.children.push(Node::Text(text.to_string()));
    }
}

fn resolve_entity(name: &str) -> Result<String, String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => num.parse(),
        }
        .map_err(|_| format!("bad character reference &{name};"))?;
        return char::from_u32(code)
            .map(String::from)
            .ok_or_else(|| format!("bad character reference &{name};"));
    }
    quick_xml::escape::resolve_xml_entity(name)
        .map(str::to_string)
        .ok_or_else(|| format!("unknown entity &{name};"))
}

/// A merged report: the root, and what the merge noticed.
#[derive(Debug)]
pub struct Merged {
    pub root: Element,
    pub files: usize,
    pub suites: usize,
    pub tests: usize,
    /// Testcases (suite, classname, name) found more than once.
    pub duplicates: Vec<String>,
}

/// Joins JUnit documents: every `<testsuite>` of each (under a
/// `<testsuites>` root or as the root), suites of one name merged in the
/// order met, counts recomputed. The root keeps the first file's attributes;
/// its time is the longest of the inputs' (the shards ran side by side).
pub fn merge_documents(docs: &[(String, Element)]) -> Result<Merged, String> {
    let mut root = Element::new("testsuites");
    let mut suites: Vec<Element> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut wall: Option<f64> = None;
    for (origin, doc) in docs {
        let found: Vec<Element> = match doc.name.as_str() {
            "testsuites" => {
                if root.attrs.is_empty() {
                    root.attrs = doc.attrs.clone();
                }
                if let Some(t) = doc.attr("time").and_then(parse_time) {
                    wall = Some(wall.map_or(t, |w: f64| w.max(t)));
                }
                doc.elements()
                    .filter(|e| e.name == "testsuite")
                    .cloned()
                    .collect()
            }
            "testsuite" => {
                if let Some(t) = doc.attr("time").and_then(parse_time) {
                    wall = Some(wall.map_or(t, |w: f64| w.max(t)));
                }
                vec![doc.clone()]
            }
            other => {
                return Err(format!(
                    "{origin}: the root is <{other}>, not <testsuites> or <testsuite>: not JUnit XML"
                ));
            }
        };
        for suite in found {
            let name = suite.attr("name").unwrap_or_default().to_string();
            match by_name.get(&name) {
                Some(&at) => absorb(&mut suites[at], suite),
                None => {
                    by_name.insert(name, suites.len());
                    suites.push(suite);
                }
            }
        }
    }
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    let mut totals = Counts::default();
    for suite in &mut suites {
        let counts = Counts::of(suite);
        counts.write(suite);
        totals.add(&counts);
        let suite_name = suite.attr("name").unwrap_or_default().to_string();
        for case in suite.elements().filter(|e| e.name == "testcase") {
            let key = (
                suite_name.clone(),
                case.attr("classname").unwrap_or_default().to_string(),
                case.attr("name").unwrap_or_default().to_string(),
            );
            *seen.entry(key).or_default() += 1;
        }
    }
    let mut duplicates: Vec<String> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((suite, class, name), n)| {
            let class = if class.is_empty() {
                String::new()
            } else {
                format!("{class} ")
            };
            format!("{suite}: {class}{name} ({n}×)")
        })
        .collect();
    duplicates.sort();
    if root.attr("name").is_none() {
        root.set_attr("name", "partest".into());
    }
    totals.write_root(&mut root, wall);
    let suite_count = suites.len();
    root.children = suites.into_iter().map(Node::Element).collect();
    Ok(Merged {
        root,
        files: docs.len(),
        suites: suite_count,
        tests: totals.tests,
        duplicates,
    })
}

/// Appends `other`'s children (testcases, properties not already there,
/// system-out/err) to `into`.
fn absorb(into: &mut Element, other: Element) {
    for child in other.children {
        match &child {
            Node::Element(e) if e.name == "properties" => {
                if let Some(Node::Element(mine)) = into
                    .children
                    .iter_mut()
                    .find(|n| matches!(n, Node::Element(e) if e.name == "properties"))
                {
                    for p in e.elements() {
                        if !mine.elements().any(|m| m == p) {
                            mine.children.push(Node::Element(p.clone()));
                        }
                    }
                } else {
                    into.children.insert(0, child);
                }
            }
            Node::Element(e) if e.name == "system-out" || e.name == "system-err" => {
                let text = text_of(e);
                if let Some(Node::Element(mine)) = into
                    .children
                    .iter_mut()
                    .find(|n| matches!(n, Node::Element(m) if m.name == e.name))
                {
                    let joined = format!("{}{}", text_of(mine), text);
                    mine.children = vec![Node::Text(joined)];
                } else {
                    into.children.push(child);
                }
            }
            Node::Element(_) => into.children.push(child),
            Node::Text(_) | Node::CData(_) => {}
        }
    }
    // The suite ran on several machines: its time is the sum of theirs.
}

fn text_of(e: &Element) -> String {
    e.children
        .iter()
        .map(|n| match n {
            Node::Text(t) | Node::CData(t) => t.as_str(),
            Node::Element(_) => "",
        })
        .collect()
}

fn parse_time(s: &str) -> Option<f64> {
    // Some writers use a thousands separator ("1,234.5").
    s.trim()
        .replace(',', "")
        .parse()
        .ok()
        .filter(|t: &f64| t.is_finite())
}

#[derive(Default)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    time: f64,
}

impl Counts {
    fn of(suite: &Element) -> Counts {
        let mut c = Counts::default();
        let mut any_time = false;
        for case in suite.elements().filter(|e| e.name == "testcase") {
            c.tests += 1;
            if case.has_child("failure") {
                c.failures += 1;
            } else if case.has_child("error") {
                c.errors += 1;
            } else if case.has_child("skipped") {
                c.skipped += 1;
            }
            if let Some(t) = case.attr("time").and_then(parse_time) {
                c.time += t;
                any_time = true;
            }
        }
        if !any_time {
            c.time = suite.attr("time").and_then(parse_time).unwrap_or(0.0);
        }
        c
    }

    fn add(&mut self, other: &Counts) {
        self.tests += other.tests;
        self.failures += other.failures;
        self.errors += other.errors;
        self.skipped += other.skipped;
        self.time += other.time;
    }

    fn write(&self, el: &mut Element) {
        el.set_attr("tests", self.tests.to_string());
        el.set_attr("failures", self.failures.to_string());
        el.set_attr("errors", self.errors.to_string());
        el.set_attr("skipped", self.skipped.to_string());
        el.set_attr("time", format!("{:.3}", self.time));
    }

    fn write_root(&self, el: &mut Element, wall: Option<f64>) {
        self.write(el);
        el.set_attr("time", format!("{:.3}", wall.unwrap_or(self.time)));
    }
}

/// The document as XML text.
pub fn to_xml(root: &Element) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write_element(&mut out, root, 0);
    out.push('\n');
    out
}

fn write_element(out: &mut String, el: &Element, depth: usize) {
    let indent = "    ".repeat(depth);
    let _ = write!(out, "{indent}<{}", el.name);
    for (k, v) in &el.attrs {
        let _ = write!(out, " {k}=\"{}\"", escape(v, true));
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    let only_elements = el.children.iter().all(|n| match n {
        Node::Element(_) => true,
        Node::Text(t) => t.trim().is_empty(),
        Node::CData(_) => false,
    });
    if only_elements {
        for child in el.elements() {
            out.push('\n');
            write_element(out, child, depth + 1);
        }
        let _ = write!(out, "\n{indent}</{}>", el.name);
    } else {
        // Mixed content (output text): written exactly as read.
        for child in &el.children {
            match child {
                Node::Text(t) => out.push_str(&escape(t, false)),
                Node::CData(c) => {
                    let _ = write!(out, "<![CDATA[{}]]>", c.replace("]]>", "]]]]><![CDATA[>"));
                }
                Node::Element(e) => write_element(out, e, 0),
            }
        }
        let _ = write!(out, "</{}>", el.name);
    }
}

fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// Reads `files` and writes their merge to `out`; returns the merge.
pub fn merge_files(files: &[&Path], out: &Path) -> Result<Merged, String> {
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let root = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        docs.push((path.display().to_string(), root));
    }
    let merged = merge_documents(&docs)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, to_xml(&merged.root))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARD1: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="partest" tests="3" failures="1" errors="0" time="2.5">
    <testsuite name="tests/test_a.py" tests="3" failures="1" errors="0" skipped="0" time="1.5">
        <properties><property name="shard" value="1/2"/></properties>
        <testcase name="test_ok" classname="tests.test_a" time="0.5"/>
        <testcase name="test_bad" classname="tests.test_a" time="0.75">
            <failure message="assert 1 == 2" type="AssertionError">a &lt; b &amp; c&#10;line 2</failure>
            <system-out><![CDATA[printed <raw> & text]]></system-out>
        </testcase>
        <testcase name="test_flaky" classname="tests.test_a" time="0.25">
            <flakyFailure message="first try" type="x"><system-out>out</system-out></flakyFailure>
        </testcase>
    </testsuite>
</testsuites>
"#;

    // A bare <testsuite> root, as older pytest writes it, with the same
    // module on another machine, plus an error and a skip.
    const SHARD2: &str = r#"<testsuite name="tests/test_a.py" tests="2" time="1">
  <testcase name="test_err" classname="tests.test_a" time="1.0"><error message="boom"/></testcase>
  <testcase name="test_skip" classname="tests.test_a"><skipped message="no db"/></testcase>
  <system-out>shard 2's output</system-out>
</testsuite>"#;

    const SHARD3: &str = r#"<testsuites><testsuite name="cargo::bin" tests="1"><testcase name="it::works" time="2"><failure message="f"/><rerunFailure message="r"/></testcase></testsuite></testsuites>"#;

    fn merged() -> Merged {
        let docs = [SHARD1, SHARD2, SHARD3]
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("shard{i}"), parse(t).unwrap()))
            .collect::<Vec<_>>();
        merge_documents(&docs).unwrap()
    }

    #[test]
    fn suites_of_one_name_join_and_counts_are_recomputed() {
        let m = merged();
        assert_eq!((m.files, m.suites, m.tests), (3, 2, 6));
        assert!(m.duplicates.is_empty());
        let root = &m.root;
        assert_eq!(root.attr("tests"), Some("6"));
        assert_eq!(root.attr("failures"), Some("2"));
        assert_eq!(root.attr("errors"), Some("1"));
        assert_eq!(root.attr("skipped"), Some("1"));
        assert_eq!(root.attr("time"), Some("2.500"));
        let suites: Vec<&Element> = root.elements().collect();
        assert_eq!(suites[0].attr("tests"), Some("5"));
        assert_eq!(suites[0].attr("time"), Some("2.500"));
        assert_eq!(suites[1].attr("name"), Some("cargo::bin"));
    }

    #[test]
    fn what_was_read_is_written_back_and_reads_the_same() {
        let m = merged();
        let xml = to_xml(&m.root);
        assert!(xml.contains("a &lt; b &amp; c\nline 2"), "{xml}");
        assert!(xml.contains("<![CDATA[printed <raw> & text]]>"), "{xml}");
        assert!(xml.contains("<flakyFailure message=\"first try\""), "{xml}");
        assert!(xml.contains("<rerunFailure message=\"r\"/>"), "{xml}");
        assert!(
            xml.contains("<property name=\"shard\" value=\"1/2\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("<system-out>shard 2&apos;s output</system-out>")
                || xml.contains("<system-out>shard 2's output</system-out>"),
            "{xml}"
        );
        let again = parse(&xml).unwrap();
        assert_eq!(normalized(again), normalized(m.root.clone()));
        // quick-junit, a strict reader, takes the merged file too.
        let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(report.tests, 6);
    }

    /// Without the whitespace between elements (the writer indents anew).
    fn normalized(mut e: Element) -> Element {
        let only_elements = e.children.iter().all(|n| match n {
            Node::Text(t) => t.trim().is_empty(),
            Node::Element(_) => true,
            Node::CData(_) => false,
        });
        if only_elements {
            e.children.retain(|n| matches!(n, Node::Element(_)));
        }
        e.children = e
            .children
            .into_iter()
            .map(|n| match n {
                Node::Element(c) => Node::Element(normalized(c)),
                other => other,
            })
            .collect();
        e
    }

    #[test]
    fn duplicates_are_reported_and_bad_input_is_named() {
        let docs = [SHARD3, SHARD3]
            .iter()
            .map(|t| ("x".to_string(), parse(t).unwrap()))
            .collect::<Vec<_>>();
        let m = merge_documents(&docs).unwrap();
        assert_eq!(m.duplicates, ["cargo::bin: it::works (2×)"]);
        assert!(parse("<testsuites><testsuite>").is_err());
        assert!(parse("not xml").is_err());
        let html = parse("<html></html>").unwrap();
        assert!(
            merge_documents(&[("page".into(), html)])
                .unwrap_err()
                .contains("not JUnit")
        );
    }

    #[test]
    fn partest_s_own_junit_merges() {
        // What the JUnit writer makes today (quick-junit), read back.
        let mut suite = quick_junit::TestSuite::new("partest");
        suite.add_test_case(quick_junit::TestCase::new(
            "tests/a.sh",
            quick_junit::TestCaseStatus::success(),
        ));
        let mut report = quick_junit::Report::new("partest");
        report.add_test_suite(suite);
        let xml = report.to_string().unwrap();
        let m = merge_documents(&[("own".into(), parse(&xml).unwrap())]).unwrap();
        assert_eq!(m.tests, 1);
    }
}
