//! `firebreak serve` end to end, through real HTTP: tokens and roles, the
//! OpenAPI document, a decision carried by a signature (not a token), live
//! events resumed by `Last-Event-ID`, the loopback rule; and the dashboard in
//! a real browser (Chromium over WebDriver): sign in, every page without a
//! script error, the history plot against the database, filtering, a live
//! update, and an approval signed in the browser with a key file.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Project, approvers, key, pending, requests, spec};
use serde_json::{Value, json};

/// A running `firebreak serve` on a free loopback port, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(project: &Project) -> Server {
        let mut child = project
            .command(&["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve started");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the bound address");
        Server {
            child,
            url: line.trim().to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// GET `path` with `token`: (status, body as JSON or as a string).
fn get(server: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = agent().get(format!("{}{path}", server.url));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().expect("answered");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POST `body` as JSON to `path` with `token`: (status, JSON body).
fn post(server: &Server, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let mut response = agent()
        .post(format!("{}{path}", server.url))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect("answered");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn token(project: &Project, name: &str, role: &str) -> String {
    let (code, stdout, stderr) = project.exec(&["tokens", "new", name, "--role", role]);
    assert_eq!(code, 0, "{stderr}");
    stdout.trim().to_string()
}

/// A governed campaign halted at a firebreak: the adversary proposer asks for
/// a bigger budget and a wider space; bob may approve (quorum 1).
fn halted_campaign(project: &Project) -> (String, String) {
    let (bob_key, bob) = key(project, "bob");
    let (_, carol) = key(project, "carol");
    let governance = approvers(&[("bob", &bob), ("carol", &carol)], 1, "");
    let text = spec(
        "governed",
        r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
        "sampler = \"adversary\"\nn_trials = 6\nask_changes = true",
        &format!("env = {{ MODE = \"ok\" }}\n\n{governance}"),
    );
    let path = project.spec("governed.toml", &text);
    let path = path.to_str().expect("utf-8").to_string();
    let (code, _, stderr) = project.exec_within(120, &["run", &path]);
    assert_eq!(code, 3, "halted at the firebreak: {stderr}");
    (bob_key, path)
}

fn sign(project: &Project, request: &str, key: &str) -> String {
    let (code, stdout, stderr) = project.exec(&["sign", request, "--key", key]);
    assert_eq!(code, 0, "{stderr}");
    stdout.trim().to_string()
}

#[test]
fn the_api_lets_tokens_in_and_only_a_signature_decides() {
    let project = Project::new();
    let (bob_key, spec_path) = halted_campaign(&project);
    let budget = pending(&project, "budget");
    let space = pending(&project, "space");
    let auditor = token(&project, "audrey", "auditor");
    let approver = token(&project, "bob-token", "approver");
    let server = Server::start(&project);

    // Health needs nothing; everything else a token.
    assert_eq!(get(&server, "/api/v1/health", None).0, 200);
    for path in [
        "/api/v1/campaigns",
        "/api/v1/requests",
        "/api/v1/ledger",
        "/api/v1/events",
    ] {
        assert_eq!(get(&server, path, None).0, 401, "{path} without a token");
        assert_eq!(
            get(&server, path, Some("fbt_0000_bad")).0,
            401,
            "{path} with a wrong token"
        );
    }
    let (status, listed) = get(&server, "/api/v1/campaigns", Some(&auditor));
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed[0]["name"], "governed");
    assert_eq!(listed[0]["pending_requests"], 2, "{listed}");
    assert!(
        listed[0]["state"]
            .as_str()
            .is_some_and(|s| s.contains("halted")),
        "{listed}"
    );

    // The OpenAPI document names every endpoint the server answers.
    let (status, doc) = get(&server, "/api/v1/openapi.json", None);
    assert_eq!(status, 200);
    for path in [
        "/api/v1/campaigns/{name}/trials",
        "/api/v1/requests/{id}/decision",
        "/api/v1/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }

    // An auditor reads everything and decides nothing.
    let signature = sign(&project, &budget, &bob_key);
    let decision = json!({"by": "bob", "verdict": "approve", "signature": signature});
    let path = format!("/api/v1/requests/{budget}/decision");
    let (status, answer) = post(&server, &path, &auditor, &decision);
    assert_eq!(status, 403, "{answer}");
    // An approver's token with a signature made for another request: refused,
    // and the refusal is in the ledger.
    let other =
        json!({"by": "bob", "verdict": "approve", "signature": sign(&project, &space, &bob_key)});
    let (status, answer) = post(&server, &path, &approver, &other);
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("signature")),
        "{answer}"
    );
    let (_, denied) = get(&server, "/api/v1/ledger?kind=denied&from=0", Some(&auditor));
    assert!(
        denied["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|d| d["payload"]["data"]["principal"] == "bob")),
        "{denied}"
    );
    // A token alone, without a signature, is not a decision.
    let unsigned = json!({"by": "bob", "verdict": "approve", "signature": ""});
    assert_eq!(post(&server, &path, &approver, &unsigned).0, 403);
    // The right signature decides.
    let (status, answer) = post(&server, &path, &approver, &decision);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "approved", "{answer}");
    assert!(
        requests(&project)
            .iter()
            .any(|r| r["id"] == budget.as_str() && r["state"] == "approved")
    );

    // Live events: resumed after a given entry, in order, none missing.
    let (_, page) = get(&server, "/api/v1/ledger?limit=1", Some(&auditor));
    let size = page["size"].as_u64().expect("size");
    let resume_after = size - 5;
    let mut response = agent()
        .get(format!("{}/api/v1/events", server.url))
        .header("Authorization", format!("Bearer {auditor}"))
        .header("Last-Event-ID", resume_after.to_string())
        .call()
        .expect("events");
    assert_eq!(response.status().as_u16(), 200);
    let mut reader = BufReader::new(response.body_mut().as_reader());
    let mut ids = Vec::new();
    let mut line = String::new();
    while ids.len() < 4 {
        line.clear();
        reader.read_line(&mut line).expect("an event line");
        if let Some(id) = line.strip_prefix("id: ") {
            ids.push(id.trim().parse::<u64>().expect("numeric id"));
        }
    }
    assert_eq!(
        ids,
        (resume_after + 1..resume_after + 5).collect::<Vec<_>>()
    );

    // A revoked token is refused at once.
    let (_, me) = get(&server, "/api/v1/me", Some(&auditor));
    let id = me["token"].as_str().expect("token id").to_string();
    let (code, _, stderr) = project.exec(&["tokens", "revoke", &id]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(get(&server, "/api/v1/campaigns", Some(&auditor)).0, 401);
    drop(server);

    // The approved budget lets the campaign go on.
    let (code, _, stderr) = project.exec_within(120, &["run", &spec_path]);
    assert!(project.trials("governed").len() > 6, "{code}: {stderr}");
    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
}

#[test]
fn a_public_address_needs_tls() {
    let project = Project::new();
    let (code, _, stderr) = project.exec(&["serve", "--bind", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("without TLS"), "{stderr}");
}

/// The Schemathesis program `scripts/schemathesis.sh install` made.
fn schemathesis() -> std::path::PathBuf {
    let venv = std::env::var_os("FIREBREAK_SCHEMATHESIS_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/firebreak/schemathesis")
        });
    let program = venv.join("bin/schemathesis");
    assert!(
        program.exists(),
        "{} is missing: run scripts/schemathesis.sh install",
        program.display()
    );
    program
}

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let project = Project::new();
    halted_campaign(&project);
    let admin = token(&project, "fuzzer", "admin");
    let server = Server::start(&project);

    // Without a token every operation but the health check answers 401.
    let (_, doc) = get(&server, "/api/v1/openapi.json", None);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, operations) in paths {
        let concrete = path
            .replace("{name}", "governed")
            .replace("{number}", "0")
            .replace("{seq}", "0")
            .replace("{id}", "R1")
            .replace("{job}", "1");
        for method in operations.as_object().expect("operations").keys() {
            let response = match method.as_str() {
                "get" => agent().get(format!("{}{concrete}", server.url)).call(),
                _ => agent()
                    .post(format!("{}{concrete}", server.url))
                    .header("Content-Type", "application/json")
                    .send("{}"),
            }
            .expect("answered");
            let expected = if path == "/api/v1/health" { 200 } else { 401 };
            assert_eq!(response.status().as_u16(), expected, "{method} {path}");
        }
    }

    // With one: no 5xx, and every answer's type and shape as documented.
    let out = std::process::Command::new(schemathesis())
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", server.url),
            "-H",
            &format!("Authorization: Bearer {admin}"),
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            // The event stream never ends; the API test reads it.
            "--exclude-path",
            "/api/v1/events",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--seed",
            "1",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its cache of findings goes to the project's folder, not the repository.
        .current_dir(project.path())
        .output()
        .expect("schemathesis ran");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("Tested: 18"),
        "every operation but the stream: {report}"
    );
}

// ---- the dashboard in a real browser ------------------------------------

/// `chromedriver` on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> fantoccini::Client {
    // The WebDriver client's TLS stack sees two crypto providers; pick one.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--window-size=1400,1000",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    fantoccini::ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// The browser's console messages of level SEVERE since the last call
/// (Chrome's log endpoint), plus what the page's script recorded.
async fn console_errors(client: &fantoccini::Client, driver: &Driver) -> Vec<String> {
    let session = client
        .session_id()
        .await
        .ok()
        .flatten()
        .expect("session id");
    let mut response = agent()
        .post(format!(
            "http://127.0.0.1:{}/session/{session}/se/log",
            driver.port
        ))
        .header("Content-Type", "application/json")
        .send(json!({"type": "browser"}).to_string())
        .expect("log");
    let text = response.body_mut().read_to_string().expect("log body");
    let log: Value = serde_json::from_str(&text).expect("log JSON");
    let mut errors: Vec<String> = log["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["level"] == "SEVERE")
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        .collect();
    let recorded = client
        .execute(
            "return (window.firebreak && window.firebreak.errors) || ['no dashboard script']",
            vec![],
        )
        .await
        .expect("script ran");
    errors.extend(
        recorded
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e.to_string()),
    );
    errors
}

async fn wait_for<F, Fut>(what: &str, seconds: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn text_of(client: &fantoccini::Client, css: &str) -> String {
    match client.find(fantoccini::Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Types `text` into the element `css` finds.
async fn type_into(client: &fantoccini::Client, css: &str, text: &str) {
    let element = client
        .find(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    element.clear().await.expect("cleared");
    element.send_keys(text).await.expect("typed");
}

/// Signs in at `login` with `token`.
async fn sign_in(client: &fantoccini::Client, login: &str, token: &str) {
    client.goto(login).await.expect("login page");
    type_into(client, "#token", token).await;
    client
        .find(fantoccini::Locator::Id("sign-in"))
        .await
        .expect("button")
        .click()
        .await
        .expect("clicked");
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let project = Project::new();
    let (bob_key, governed_spec) = halted_campaign(&project);
    // A campaign with failed and complete trials, for the table's filters.
    let mixed = spec(
        "mixed",
        "x = { type = \"float\", low = 0.0, high = 1.0 }\nmode = { type = \"categorical\", choices = [\"ok\", \"fail\"] }",
        "sampler = \"random\"\nn_trials = 12",
        "",
    );
    let mixed = project.spec("mixed.toml", &mixed);
    let (code, _, stderr) = project.exec_within(120, &["run", mixed.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    // A slow campaign that a run will finish while the browser watches.
    let live = spec(
        "live",
        "x = { type = \"float\", low = 0.0, high = 1.0 }",
        "sampler = \"random\"\nn_trials = 4",
        "env = { MODE = \"steps\" }",
    );
    let live = project.spec("live.toml", &live);
    let live = live.to_str().expect("utf-8").to_string();
    let approver = token(&project, "bob", "approver");
    let auditor = token(&project, "audrey", "auditor");
    let budget = pending(&project, "budget");
    let server = Server::start(&project);
    let driver = Driver::start();
    let screenshots = std::env::var_os("FIREBREAK_SCREENSHOTS").map(std::path::PathBuf::from);
    let profile = tempfile::tempdir().expect("profile");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = browser(&driver, profile.path()).await;
        let url = |path: &str| format!("{}{path}", server.url);
        let shoot = |name: &'static str| {
            let client = client.clone();
            let dir = screenshots.clone();
            async move {
                if let Some(dir) = dir {
                    let png = client.screenshot().await.expect("screenshot");
                    std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
                }
            }
        };

        // Signing in: a page sends a stranger to the sign-in form; a wrong token
        // is refused, the approver's lets them in.
        client.goto(&url("/")).await.expect("home");
        assert!(client.current_url().await.expect("url").path().ends_with("/login"));
        sign_in(&client, &url("/login"), "fbt_nope_nope").await;
        assert!(text_of(&client, "#refused").await.contains("not valid"));
        sign_in(&client, &url("/login"), &approver).await;
        wait_for("the campaign list", 10, || async { text_of(&client, "#campaigns").await.contains("mixed") }).await;
        shoot("campaigns").await;
        // The refused sign-in above logged its 401: that one was expected.
        console_errors(&client, &driver).await;

        // Every page renders with no script error.
        let trial_page = "/campaigns/mixed/trials/0".to_string();
        for page in ["/", "/campaigns/mixed", &trial_page, "/ledger", "/inbox"] {
            client.goto(&url(page)).await.expect("page");
            tokio::time::sleep(Duration::from_millis(700)).await;
            let errors = console_errors(&client, &driver).await;
            assert!(errors.is_empty(), "{page}: {errors:?}");
        }

        // The trial page checks its proposal's inclusion proof in the browser.
        client.goto(&url(&trial_page)).await.expect("trial");
        wait_for("the proof check", 10, || async { !text_of(&client, "#proof-check").await.contains("checking") }).await;
        let check = text_of(&client, "#proof-check").await;
        assert!(check.starts_with("verified in this browser"), "{check}");
        shoot("trial").await;

        // The history plot's points are the database's finished trials with a value.
        client.goto(&url("/campaigns/mixed")).await.expect("campaign");
        wait_for("the table", 10, || async { text_of(&client, "#trial-total").await == "12" }).await;
        let plotted = client
            .execute("return window.firebreak.history.map(p => [p.n, p.v])", vec![])
            .await
            .expect("history");
        let expected: Vec<Value> = project
            .trials("mixed")
            .iter()
            .filter(|t| t["metrics"]["y"].is_number())
            .map(|t| json!([t["number"], t["metrics"]["y"]]))
            .collect();
        assert!(!expected.is_empty() && expected.len() < 12, "some trials failed, some did not");
        assert_eq!(plotted, Value::Array(expected.clone()));
        shoot("campaign").await;

        // Filtering the table by state.
        let failed = 12 - expected.len();
        client
            .find(fantoccini::Locator::Css("#trial-filter select[name=state]"))
            .await
            .expect("state filter")
            .select_by_value("failed")
            .await
            .expect("selected");
        wait_for("the filtered table", 10, || async {
            text_of(&client, "#trial-total").await == failed.to_string()
        })
        .await;
        let states = client
            .execute("return [...document.querySelectorAll('#trials tbody tr td:nth-child(2)')].map(c => c.textContent)", vec![])
            .await
            .expect("states");
        assert!(states.as_array().is_some_and(|s| s.len() == failed && s.iter().all(|v| v == "failed")), "{states}");

        // A trial finished by a running campaign appears without a reload.
        let mut run = project.command(&["run", &live]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("run");
        // The campaign exists once its run has created it.
        wait_for("the live campaign", 30, || async {
            agent().get(format!("{}/api/v1/campaigns/live", server.url)).header("Authorization", format!("Bearer {auditor}")).call().is_ok_and(|r| r.status() == 200)
        })
        .await;
        client.goto(&url("/campaigns/live")).await.expect("live page");
        client.execute("window.__stayed = true", vec![]).await.expect("marked");
        wait_for("a live trial", 60, || async {
            text_of(&client, "#trial-total").await.parse::<u32>().is_ok_and(|n| n >= 3)
        })
        .await;
        let stayed = client.execute("return window.__stayed === true", vec![]).await.expect("marker");
        assert_eq!(stayed, Value::Bool(true), "the page updated without a reload");
        let _ = run.wait();

        // The approvals inbox: bob approves the budget with his key file.
        client.goto(&url("/inbox")).await.expect("inbox");
        shoot("inbox").await;
        let card = format!("#request-{budget} form.decide");
        type_into(&client, &format!("{card} input[name=by]"), "bob").await;
        client.find(fantoccini::Locator::Css(&format!("{card} input[name=key]"))).await.expect("key input").send_keys(&bob_key).await.expect("file chosen");
        client.find(fantoccini::Locator::Css(&format!("{card} button.approve"))).await.expect("approve").click().await.expect("clicked");
        wait_for("the decision", 20, || async { text_of(&client, &format!("{card} output")).await.contains("recorded") }).await;
        assert!(requests(&project).iter().any(|r| r["id"] == budget.as_str() && r["state"] == "approved"));
        // The decision is in the ledger view.
        client.goto(&url("/ledger")).await.expect("ledger");
        wait_for("the decision in the ledger", 10, || async { text_of(&client, "#ledger").await.contains("request_decided") }).await;
        shoot("ledger").await;

        // An auditor's session shows no decision buttons.
        client.delete_all_cookies().await.expect("signed out");
        sign_in(&client, &url("/login"), &auditor).await;
        wait_for("signed in", 10, || async { text_of(&client, "#campaigns").await.contains("mixed") }).await;
        client.goto(&url("/inbox")).await.expect("inbox");
        assert!(client.find(fantoccini::Locator::Css("button.approve")).await.is_err());
        client.close().await.expect("closed");
    });

    // And the campaign goes on under the approved budget.
    let (_, _, stderr) = project.exec_within(120, &["run", &governed_spec]);
    assert!(project.trials("governed").len() > 6, "{stderr}");
    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
}
