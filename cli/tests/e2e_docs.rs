//! Every `curl` example addressed to the master in the docs runs verbatim against a real
//! master and agents: the blocks of the operator guide marked `<!-- curl-test -->` as
//! whole scripts, in the order the guide gives them, and every one-line
//! `curl ... 127.0.0.1:5050...` elsewhere in README.md, the operator guide and the API
//! reference. Only the master's address is replaced by the test master's. Each `curl`
//! must get a 2xx answer (the HTTP status is checked by a wrapper around `curl`). Streams
//! (`curl -N`) are left to the event stream's own tests.

#[path = "../../master/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::*;

const MARK: &str = "<!-- curl-test -->";
const DOC_MASTER: &str = "127.0.0.1:5050";

/// Defined before each example: `curl` as written, failing the script on an HTTP error.
const PRELUDE: &str = r#"set -eo pipefail
curl() {
  local out code
  out=$(command curl -w '\n%{http_code}' "$@") || { echo "curl $*: failed" >&2; exit 1; }
  code=${out##*$'\n'}
  printf '%s\n' "${out%$'\n'*}"
  if [ "$code" -ge 400 ] || [ "$code" -lt 200 ]; then
    echo "curl $*: HTTP $code" >&2
    exit 1
  fi
}
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The fenced code blocks of `text` that follow the mark, in order.
fn marked_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARK {
            continue;
        }
        let Some(fence) = lines.next() else { break };
        assert!(
            fence.starts_with("```"),
            "a mark not followed by a code block"
        );
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        out.push(body.join("\n"));
    }
    out
}

/// One-line `curl` commands to the master inside fenced blocks that are not marked.
fn single_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut marked = false;
    let mut previous = "";
    for line in text.lines() {
        if line.starts_with("```") {
            if !in_block {
                marked = previous.trim() == MARK;
            }
            in_block = !in_block;
        } else if in_block
            && !marked
            && line.trim_start().starts_with("curl ")
            && line.contains(DOC_MASTER)
            && !line.trim_end().ends_with('\\')
            // A stream (`curl -N`) never ends by itself; the event stream has its own
            // end-to-end tests (master/tests/e2e_events_http.rs, cli/tests/e2e_logs.rs).
            && !line.contains(" -N ")
        {
            out.push(line.trim().to_string());
        }
        previous = line;
    }
    out
}

fn run_script(cluster: &Cluster, what: &str, script: &str) {
    let script = format!(
        "{PRELUDE}{}\n",
        script.replace(DOC_MASTER, &cluster.addr.to_string())
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{what} failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_curl_example_in_the_docs_works_verbatim() {
    for tool in ["curl", "jq", "bash"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing (scripts/test.sh installs it)");
    }
    // Agents serving their sandbox HTTP, for the examples that read a task's output.
    let mut cluster = Cluster::start_in(TempDir::new("docs"), 0, &[], None, &[]);
    for i in 0..2 {
        let listen = format!("127.0.0.1:{}", free_port());
        cluster.add_agent_with(i, &["--listen", &listen]);
    }
    cluster.wait_agents(2);
    // A framework with a running task, for the examples that act on one.
    let mut fw = Framework::subscribe(cluster.addr, "docs").await;
    let offers = fw.wait_offers(1).await;
    fw.accept(
        vec![offers[0].id.clone()],
        vec![launch(vec![shell_task(
            "docs-0",
            "cpus:0.5;mem:32",
            "sleep 300",
        )])],
        Some(3600.0),
    )
    .await
    .expect("launch");
    fw.wait_for("the task runs", |s| {
        s.get("docs-0")
            .is_some_and(|x| x.state == agora_proto::TaskState::Running as i32)
    })
    .await;

    let guide = std::fs::read_to_string(repo().join("docs/operator-guide.md")).expect("guide");
    let blocks = marked_blocks(&guide);
    assert!(
        blocks.len() >= 4,
        "the guide's marked curl examples: {}",
        blocks.len()
    );
    for (i, block) in blocks.iter().enumerate() {
        run_script(
            &cluster,
            &format!("operator guide example {}", i + 1),
            block,
        );
    }
    let mut lines = 0;
    for doc in ["README.md", "docs/operator-guide.md", "docs/api.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).expect("doc");
        for line in single_lines(&text) {
            run_script(&cluster, &format!("{doc}: {line}"), &line);
            lines += 1;
        }
    }
    assert!(lines >= 2, "one-line curl examples found: {lines}");

    // The examples did what they say.
    let s = cluster.state();
    let task = s["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|x| x["id"] == "docs-0"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(task["state"], "KILLED", "{task}");
    assert!(
        s["frameworks"]
            .as_array()
            .is_some_and(|f| f.iter().all(|x| x["status"] == "torn_down")),
        "{s}"
    );
    // Drained (with nothing left to drain it shows as deactivated).
    assert!(
        ["draining", "deactivated"].contains(&s["agents"][1]["status"].as_str().unwrap_or("")),
        "{s}"
    );
}

#[test]
fn the_extraction_finds_marked_blocks_and_single_lines() {
    let doc = "text\n<!-- curl-test -->\n```sh\nM=x\ncurl -s http://$M/a\n```\n\
               ```sh\ncurl -s http://127.0.0.1:5050/b   # comment\nagora tasks\ncurl -s http://127.0.0.1:5080/c\n```\n";
    assert_eq!(marked_blocks(doc), vec!["M=x\ncurl -s http://$M/a"]);
    assert_eq!(
        single_lines(doc),
        vec!["curl -s http://127.0.0.1:5050/b   # comment"]
    );
}

#[test]
fn bodies_need_no_content_type_but_cross_origin_pages_cannot_change_anything() {
    let cluster = Cluster::start(0);
    let a = cluster.addr;
    let body = r#"[{"role": "eng", "weight": 2}]"#;
    // A form-encoded or untyped JSON body is read as JSON (curl -d, scripts).
    let (code, text) = http_request_with(
        a,
        "PUT",
        "/api/v1/weights",
        Some(body),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    )
    .expect("put");
    assert_eq!(code, 200, "{text}");
    // A page of another origin cannot post to the master, whatever it sends.
    let (code, text) = http_request_with(
        a,
        "PUT",
        "/api/v1/weights",
        Some(r#"[{"role": "eng", "weight": 9}]"#),
        &[("Origin", "http://evil.example")],
    )
    .expect("put");
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("cross-origin change refused"), "{text}");
    let (_, weights) = http_get(a, "/api/v1/weights").expect("get");
    assert!(
        weights.contains(r#""weight":2"#) || weights.contains(r#""weight":2.0"#),
        "{weights}"
    );
    // The master's own pages (same origin) may.
    let (code, text) = http_request_with(
        a,
        "PUT",
        "/api/v1/weights",
        Some(body),
        &[("Origin", &format!("http://{a}"))],
    )
    .expect("put");
    assert_eq!(code, 200, "{text}");
    // An empty body where one is needed is a clear 400.
    let (code, text) = http_request(a, "PUT", "/api/v1/weights", None).expect("put");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("it is empty"), "{text}");
}
